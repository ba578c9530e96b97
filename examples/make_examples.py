"""Build the small example data sets of this folder, one per "your own data" source (seeded, about 250 KB).

    python examples/make_examples.py            # writes examples/fraud.csv, embeddings.npz, shapes/
    python examples/make_examples.py --out DIR  # somewhere else

The data sets and how they are made live in :mod:`focalbench.examples`, so that an installed focalbench writes
the same files (``focalbench examples fraud.csv``); this script writes all three.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from focalbench.examples import (  # noqa: F401  (the tests build tiny versions through this module)
    ANIMALS,
    MERCHANTS,
    SHAPES,
    draw_shape,
    make_embeddings,
    make_images,
    make_table,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    out = parser.parse_args().out
    for made in (
        make_table(out / "fraud.csv"),
        make_embeddings(out / "embeddings.npz"),
        make_images(out / "shapes"),
    ):
        print(made)


if __name__ == "__main__":
    main()
