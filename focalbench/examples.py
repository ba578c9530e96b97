"""The small example data sets the documentation uses, one per "your own data" source, made deterministically.

``focalbench examples NAME`` writes one where you are (``./examples/NAME`` by default), so the documented
commands (``data.path=examples/fraud.csv``) work outside a checkout; ``examples/make_examples.py`` writes all
three into the checkout's ``examples/``. The same seed gives the same bytes (a test checks them against the
committed files):

- ``fraud.csv`` (``data=table``): 3,000 card transactions, about 3 % fraudulent (``is_fraud``), with numeric
  columns, a boolean and a categorical column (``merchant``).
- ``embeddings.npz`` (``data=features``): 32-dimensional "embeddings" of 5 classes with string labels and a
  natural long tail (400 down to 10 examples per class), arrays ``x`` and ``y``.
- ``shapes/`` (``data=image_folder``): 32x32 PNG drawings of circles, squares and triangles, one sub-folder per
  class, 150 / 50 / 15 images.

Every function takes its size, so the tests build tiny versions of the same data.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focalbench.errors import ConfigError

MERCHANTS = ("grocery", "restaurant", "online", "travel", "electronics")
ANIMALS = ("cat", "dog", "fox", "owl", "yak")
SHAPES = ("circle", "square", "triangle")


def make_table(path: Path, n_rows: int = 3000, fraud_rate: float = 0.03, seed: int = 0) -> Path:
    """A transactions table: amount, hour, transactions in the last 24 h, card present, merchant, is_fraud."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    fraud = rng.random(n_rows) < fraud_rate
    fraud[:2] = [True, False]  # both classes, whatever the size
    amount = np.where(fraud, rng.lognormal(4.2, 1.0, n_rows), rng.lognormal(3.5, 0.9, n_rows))
    hour = np.where(
        fraud & (rng.random(n_rows) < 0.6), rng.integers(0, 6, n_rows), rng.integers(0, 24, n_rows)
    )
    recent = rng.poisson(np.where(fraud, 3.5, 2.0))
    present = np.where(fraud, rng.random(n_rows) < 0.2, rng.random(n_rows) < 0.7)
    weights = np.where(fraud[:, None], [0.05, 0.05, 0.5, 0.2, 0.2], [0.4, 0.3, 0.15, 0.05, 0.1])
    merchant = [MERCHANTS[rng.choice(len(MERCHANTS), p=w)] for w in weights]
    frame = pd.DataFrame(
        {
            "amount": np.round(amount, 2),
            "hour": hour,
            "n_last_24h": recent,
            "card_present": present,
            "merchant": merchant,
            "is_fraud": fraud.astype(int),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def make_embeddings(
    path: Path, counts: tuple[int, ...] = (400, 160, 64, 26, 10), dim: int = 32, seed: int = 0
) -> Path:
    """Gaussian clusters (one per class, string labels) in ``dim`` dimensions, saved as ``x`` and ``y``."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.0, (len(counts), dim)) * 0.3
    xs = [centres[c] + rng.normal(0.0, 1.0, (n, dim)) for c, n in enumerate(counts)]
    ys = [np.full(n, ANIMALS[c]) for c, n in enumerate(counts)]
    order = rng.permutation(sum(counts))
    x = np.concatenate(xs).astype(np.float32)[order]
    y = np.concatenate(ys).astype(str)[order]
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=x, y=y)
    return path


def draw_shape(shape: str, rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """One uint8 ``[3, size, size]`` image: a coloured shape at a random place on a plain background."""
    rows, cols = np.mgrid[0:size, 0:size]
    radius = rng.uniform(0.25, 0.35) * size
    cy, cx = size / 2 + rng.uniform(-0.1, 0.1, 2) * size
    if shape == "circle":
        mask = (rows - cy) ** 2 + (cols - cx) ** 2 <= radius**2
    elif shape == "square":
        mask = (np.abs(rows - cy) <= radius * 0.85) & (np.abs(cols - cx) <= radius * 0.85)
    else:
        top = cy - radius
        mask = (rows >= top) & (rows <= cy + radius) & (np.abs(cols - cx) <= (rows - top) / 2)
    background = rng.integers(0, 120, 3)
    colour = rng.integers(130, 256, 3)
    image = np.where(mask[None], colour[:, None, None], background[:, None, None])
    return image.astype(np.uint8)


def make_images(folder: Path, counts: tuple[int, ...] = (150, 50, 15), size: int = 32, seed: int = 0) -> Path:
    """``folder/<shape>/<i>.png`` for each shape, ``counts[c]`` images of shape ``c``."""
    import torch
    from torchvision.io import encode_png, write_file

    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():  # torchvision 0.29 deprecates its image codecs in favour of TorchCodec
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="torchvision")
        for shape, n in zip(SHAPES, counts, strict=False):
            (folder / shape).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                png = encode_png(torch.from_numpy(draw_shape(shape, rng, size)), compression_level=9)
                write_file(str(folder / shape / f"{i:03d}.png"), png)
    return folder


@dataclass(frozen=True)
class Example:
    """One example data set: how to make it, what it is, and a command that reads it from ``examples/``."""

    make: Callable[[Path], Path]
    what: str
    try_it: str


EXAMPLES: dict[str, Example] = {
    "fraud.csv": Example(
        make_table,
        "data=table: 3,000 card transactions, about 3 % fraudulent (is_fraud), a categorical merchant column",
        "focalbench data info data=table data.path=examples/fraud.csv data.target=is_fraud "
        "data.categorical=[merchant]",
    ),
    "embeddings.npz": Example(
        make_embeddings,
        "data=features: 32-dimensional embeddings of 5 classes, 400 down to 10 examples per class",
        "focalbench data info data=features data.path=examples/embeddings.npz model=linear",
    ),
    "shapes": Example(
        make_images,
        "data=image_folder: 32x32 PNGs of circles, squares and triangles (150 / 50 / 15), a folder per class",
        "focalbench data info data=image_folder data.path=examples/shapes model=cnn",
    ),
}


def example_named(name: str) -> str:
    """The example's name (``fraud`` and ``fraud.csv`` are ``fraud.csv``); ConfigError listing the names."""
    by_stem = {n.split(".", 1)[0]: n for n in EXAMPLES}
    if name in EXAMPLES or name.rstrip("/") in by_stem:
        return name if name in EXAMPLES else by_stem[name.rstrip("/")]
    raise ConfigError(f"unknown example '{name}'; choose one of: {', '.join(EXAMPLES)}")


def write_example(name: str, out_dir: Path) -> Path:
    """Write example ``name`` into ``out_dir`` (created); refuse to replace a file or folder already there."""
    target = Path(out_dir) / example_named(name)
    if target.exists():
        raise ConfigError(
            f"{target} exists already; nothing written (remove it, or write elsewhere with --out DIR)"
        )
    try:
        return EXAMPLES[target.name].make(target)
    except OSError as exc:
        raise ConfigError(f"cannot write {target}: {exc.strerror or exc}") from None
