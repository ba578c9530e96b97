"""Shared fixtures: tiny configs that train in a fraction of a second, and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# A tiny synthetic task: ~450 training samples, 3 epochs.
TINY = ["data.n_max=200", "data.test_per_class=50", "epochs=3"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FOCALBENCH_TEST_DATA", REPO.parent / "shared" / "data"))
HAS_CIFAR10 = (SHARED_DATA / "cifar-10-batches-py" / "data_batch_1").is_file()
needs_cifar10 = pytest.mark.skipif(
    not HAS_CIFAR10, reason=f"CIFAR-10 copy not found at {SHARED_DATA} (set FOCALBENCH_TEST_DATA)"
)


def run_cli(
    *args: str, cwd: Path, env: dict | None = None, timeout: float = 300
) -> subprocess.CompletedProcess:
    """Run ``focalbench ARGS`` in a subprocess, as a user would type it."""
    inherited = {k: v for k, v in os.environ.items() if k != "FOCALBENCH_RESULTS"}
    full_env = {**inherited, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "focalbench", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"
