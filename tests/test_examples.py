"""focalbench examples: the documentation's example data, written anywhere, the same as the checkout's."""

from __future__ import annotations

import numpy as np

from tests.conftest import REPO, run_cli


def test_examples_writes_the_documented_file_outside_the_repository(tmp_path):
    """`data.path=examples/fraud.csv` used to fail outside a checkout: the file was not installed."""
    assert REPO not in tmp_path.parents
    out = run_cli("examples", "fraud.csv", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    written = tmp_path / "examples" / "fraud.csv"
    assert written.read_bytes() == (REPO / "examples" / "fraud.csv").read_bytes()
    assert "try: focalbench data info data=table data.path=examples/fraud.csv" in out.stdout
    command = out.stdout.split("try: focalbench ", 1)[1].split()
    info = run_cli(*command, cwd=tmp_path)  # the documented command, where the user is
    assert info.returncode == 0, info.stderr
    assert "natural class counts" in info.stdout and "merchant=online" in info.stdout

    again = run_cli("examples", "fraud.csv", cwd=tmp_path)
    assert again.returncode == 2 and "exists already; nothing written" in again.stderr
    unknown = run_cli("examples", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "choose one of: fraud.csv, embeddings.npz, shapes" in unknown.stderr
    listed = run_cli("examples", cwd=tmp_path)
    assert listed.returncode == 0 and all(
        n in listed.stdout for n in ("fraud.csv", "embeddings.npz", "shapes")
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["examples"]


def test_the_examples_are_made_exactly_as_the_committed_files(tmp_path):
    from focalbench.examples import write_example

    npz = write_example("embeddings", tmp_path)
    with np.load(npz) as made, np.load(REPO / "examples" / "embeddings.npz") as committed:
        assert all(np.array_equal(made[k], committed[k]) for k in ("x", "y"))
    shapes = write_example("shapes", tmp_path / "d")
    made = sorted(p.relative_to(shapes).as_posix() for p in shapes.rglob("*.png"))
    committed = sorted(
        p.relative_to(REPO / "examples" / "shapes").as_posix()
        for p in (REPO / "examples" / "shapes").rglob("*.png")
    )
    assert made == committed and len(made) == 215
    first = "circle/000.png"
    assert (shapes / first).read_bytes() == (REPO / "examples" / "shapes" / first).read_bytes()
