"""Pinned records: three runs alone, recorded once and compared with what today's code writes.

What a run computes must not change without a new ``RECORD_VERSION`` (focalbench/identity.py): a study that
is producing records keeps reusing them by their run ids. These tests train three runs and compare their
records with values pinned in ``tests/data/pinned_records.json``:

- ``synthetic``: the synthetic default (the mlp, focal loss) on the tiny task of ``conftest.TINY``, seed 0;
- ``cifar10_lt_cnn``: the cnn on CIFAR-10-LT for 2 epochs in fp32 (said explicitly, so that the run id does
  not depend on whether the CPU has native bf16), with small widths and one thread to stay fast and stable;
- ``ldam_drw``: LDAM-DRW on the tiny synthetic task for 5 epochs, so that deferred re-weighting switches the
  class weights on at the last epoch (0.8 of 5 epochs).

For each run the pins hold its run id, its metrics.json without the fields that legitimately vary between
executions (``timing``, ``environment``: times, git commit, versions, threads, CPU; ``data.root``: where the
CIFAR archives were read from), history.csv without its
``time_s`` and ``images_per_s`` columns, train_classes.csv, and for each array of logits.npz its sha256,
shape, sum and sum of absolute values.

Exactness. On the CPU model and torch version the pins were made with (recorded in the JSON) everything is
compared exactly, sha256 of the logits included: that is the proof that a change (the one training loop)
left the records unchanged. Elsewhere another CPU's (or torch build's) kernels may vectorise and sum in
another order and round the last bits differently, and training amplifies that: a flipped prediction moves
a per-class recall by points. So elsewhere the test compares what must not depend on the machine: the run
id, the data section (class counts, sizes), every label and text, and the record's structure (its keys, the
CSV columns and rows, the logits' shapes and labels); the trained numbers are compared only on the pinning
machine.

The pins are made by ``python -m tests.test_pinned_records --write`` with the code they pin. Never rewrite them
to make a failing test pass: a change that moves them changes what runs compute (raise ``RECORD_VERSION``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA, TINY, needs_cifar10

PINS = Path(__file__).parent / "data" / "pinned_records.json"

# The three runs, as overrides of focalbench's defaults (results_dir is added per test).
RUNS: dict[str, list[str]] = {
    "synthetic": [*TINY, "seed=0"],
    "cifar10_lt_cnn": [
        "data=cifar10_lt",
        "model=cnn",
        "epochs=2",
        "precision=fp32",
        "seed=0",
        "model.widths=[16,32,32]",
        "model.stem=16",
        "threads=1",  # left out of the run id; one thread makes the float sums' order the same on any machine
        f"data.root={SHARED_DATA}",  # left out of the run id
    ],
    "ldam_drw": ["data.n_max=200", "data.test_per_class=50", "loss=ldam_drw", "epochs=5", "seed=0"],
}
VARYING_METRICS = ("timing", "environment")  # times, git commit, versions, threads, CPU
VARYING_DATA = (
    "root",
)  # metrics.json's data.root: the folder the CIFAR archives were read from, not which data
VARYING_HISTORY = ("time_s", "images_per_s")


# ----------------------------------------------------------------------------------------------------------
# A record, reduced to what must not change
# ----------------------------------------------------------------------------------------------------------


def run_record(name: str, results_dir: Path) -> dict:
    """Train run ``name`` of :data:`RUNS` into ``results_dir`` and return its pinned summary."""
    from focalbench.config import compose
    from focalbench.training.runner import execute_run

    outcome = execute_run(compose([*RUNS[name], f"results_dir={results_dir}"]), quiet=True)
    assert outcome.status == "ok", outcome.error
    return summarise(outcome.run_dir)


def summarise(run_dir: Path) -> dict:
    """The parts of a run's record that the pins hold (module docstring)."""
    metrics = {
        k: v
        for k, v in json.loads((run_dir / "metrics.json").read_text()).items()
        if k not in VARYING_METRICS
    }
    metrics["data"] = {k: v for k, v in metrics["data"].items() if k not in VARYING_DATA}
    return {
        "run_id": metrics["run_id"],
        "metrics": metrics,
        "history": [
            {k: v for k, v in row.items() if k not in VARYING_HISTORY}
            for row in read_csv(run_dir / "history.csv")
        ],
        "train_classes": read_csv(run_dir / "train_classes.csv"),
        "logits": logits_summary(run_dir / "logits.npz"),
    }


def read_csv(path: Path) -> list[dict]:
    """The rows of a record's CSV, values as written (text)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def logits_summary(path: Path) -> dict:
    """Per array of logits.npz: sha256 of its bytes, shape, dtype, sum and sum of absolute values."""
    import numpy as np

    with np.load(path, allow_pickle=False) as arrays:
        return {
            name: {
                "sha256": hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest(),
                "shape": list(a.shape),
                "dtype": str(a.dtype),
                "sum": float(a.astype(np.float64).sum()),
                "abs_sum": float(np.abs(a.astype(np.float64)).sum()),
            }
            for name, a in sorted(arrays.items())
        }


def machine() -> dict:
    """What decides whether the pins can be compared exactly: the CPU model and the torch version."""
    import torch

    from focalbench.hardware import cpu_model

    return {"cpu": cpu_model(), "torch": torch.__version__}


# ----------------------------------------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------------------------------------


def assert_same_record(got: dict, pinned: dict, exact: bool) -> None:
    """``got`` equals ``pinned``: exactly, or (``exact`` false, another machine) in everything that does not
    depend on the machine (module docstring)."""
    assert got["run_id"] == pinned["run_id"]
    if exact:
        assert_close(got, pinned, rel=0.0, path="record")
        return
    for name, summary in pinned["logits"].items():
        if name.endswith("_labels"):
            assert got["logits"][name] == summary, name
        assert got["logits"][name]["shape"] == summary["shape"], name
    assert_close(got["metrics"]["data"], pinned["metrics"]["data"], rel=0.0, path="record.metrics.data")
    assert_same_structure({**got, "logits": None}, {**pinned, "logits": None}, path="record")


def assert_same_structure(got, pinned, path: str) -> None:
    """The same keys, list lengths, texts and booleans all the way down; numbers (also numbers written as CSV
    text) may differ."""
    if isinstance(pinned, dict):
        assert isinstance(got, dict) and got.keys() == pinned.keys(), f"{path}: keys differ"
        for key in pinned:
            assert_same_structure(got[key], pinned[key], f"{path}.{key}")
    elif isinstance(pinned, list):
        assert isinstance(got, list) and len(got) == len(pinned), f"{path}: lengths differ"
        for i, (g, p) in enumerate(zip(got, pinned, strict=True)):
            assert_same_structure(g, p, f"{path}[{i}]")
    elif _number(pinned) is not None or pinned is None:
        assert got is None or _number(got) is not None, f"{path}: {got!r} is not a number"
    else:
        assert got == pinned, f"{path}: {got!r} != {pinned!r}"


def assert_close(got, pinned, rel: float, path: str) -> None:
    """Recursive equality; numbers (also numbers written as CSV text) within ``rel``, NaN equal to NaN."""
    if isinstance(pinned, dict):
        assert isinstance(got, dict) and got.keys() == pinned.keys(), f"{path}: keys differ"
        for key in pinned:
            assert_close(got[key], pinned[key], rel, f"{path}.{key}")
    elif isinstance(pinned, list):
        assert isinstance(got, list) and len(got) == len(pinned), f"{path}: lengths differ"
        for i, (g, p) in enumerate(zip(got, pinned, strict=True)):
            assert_close(g, p, rel, f"{path}[{i}]")
    elif rel > 0 and _number(pinned) is not None and _number(got) is not None:
        g, p = _number(got), _number(pinned)
        assert (math.isnan(g) and math.isnan(p)) or g == pytest.approx(p, rel=rel), (
            f"{path}: {got} != {pinned}"
        )
    else:
        same_nan = (
            isinstance(pinned, float) and isinstance(got, float) and math.isnan(pinned) and math.isnan(got)
        )
        assert same_nan or got == pinned, f"{path}: {got!r} != {pinned!r}"


def _number(value) -> float | None:
    """``value`` as a float when it is a number or the text of one (CSV cells); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def load_pins() -> dict:
    return json.loads(PINS.read_text())


def check(name: str, results_dir: Path) -> None:
    pins = load_pins()
    got = run_record(name, results_dir)
    assert_same_record(got, pins["runs"][name], exact=machine() == pins["machine"])


# ----------------------------------------------------------------------------------------------------------
# The tests
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _restore_threads():
    """A run sets torch's thread count for the process (``runner.set_threads``); put it back, so that the
    tests after these do not depend on whether these ran first."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_synthetic_default_record_is_pinned(tmp_path):
    check("synthetic", tmp_path)


def test_ldam_drw_record_is_pinned(tmp_path):
    check("ldam_drw", tmp_path)


@pytest.mark.slow
@needs_cifar10
def test_cifar10_lt_cnn_record_is_pinned(tmp_path):
    check("cifar10_lt_cnn", tmp_path)


def write_pins() -> None:
    """Train the three runs and write the pins (only with the code they are to pin: module docstring)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        runs = {name: run_record(name, Path(tmp) / name) for name in RUNS}
    PINS.parent.mkdir(parents=True, exist_ok=True)
    PINS.write_text(json.dumps({"machine": machine(), "runs": runs}, indent=1) + "\n")
    print(f"wrote {PINS}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.test_pinned_records --write")
    write_pins()


def test_the_comparison_is_exact_on_the_pinned_machine_and_structural_elsewhere():
    """The comparison itself, on the pins (no training): exact mode catches a change in the last bit; elsewhere
    trained numbers may differ, but another run id, another class count or a missing key is caught."""
    import copy

    pinned = load_pins()["runs"]["synthetic"]

    def nudged(factor: float) -> dict:
        record = copy.deepcopy(pinned)
        record["metrics"]["test"]["nll"] *= factor
        record["history"][-1]["train_loss"] = repr(float(record["history"][-1]["train_loss"]) * factor)
        record["logits"]["test_logits"]["sum"] *= factor
        record["logits"]["test_logits"]["sha256"] = "0" * 64
        return record

    assert_same_record(copy.deepcopy(pinned), pinned, exact=True)
    with pytest.raises(AssertionError):
        assert_same_record(nudged(1 + 1e-12), pinned, exact=True)
    assert_same_record(nudged(1.05), pinned, exact=False)
    with pytest.raises(AssertionError):
        assert_same_record({**pinned, "run_id": "000000000000"}, pinned, exact=False)
    other_counts = copy.deepcopy(pinned)
    other_counts["metrics"]["data"]["train_counts"][0] += 1
    with pytest.raises(AssertionError):
        assert_same_record(other_counts, pinned, exact=False)
    missing_key = copy.deepcopy(pinned)
    del missing_key["metrics"]["test"]["nll"]
    with pytest.raises(AssertionError):
        assert_same_record(missing_key, pinned, exact=False)
