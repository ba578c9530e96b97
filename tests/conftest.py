"""Shared fixtures: tiny configs that train in a fraction of a second, and a CLI runner."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
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


def pytest_configure(config):
    """Under pytest-xdist (``make test``), each worker gets its share of the cores for torch's intra-op threads,
    so that the workers do not oversubscribe the machine."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // int(workers)))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def write_lock(run_dir: Path, pid: int, host: str | None = None, age_s: float = 0.0) -> Path:
    """A run's lock file as another process (``pid`` on ``host``) would hold it, ``age_s`` since its last
    heartbeat."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "lock.json"
    path.write_text(
        json.dumps({"pid": pid, "host": host or socket.gethostname(), "started": time.time(), "token": "t0"})
    )
    if age_s:
        old = time.time() - age_s
        os.utime(path, (old, old))
    return path


@pytest.fixture
def sleeper():
    """A live process on this host that is not this one (a stand-in for another sweep)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def records(results: Path) -> dict[str, dict]:
    """Every finished run's metrics.json under ``results/runs``, by run id."""
    return {p.parent.name: json.loads(p.read_text()) for p in (results / "runs").glob("*/metrics.json")}


def mtimes(results: Path) -> dict[str, int]:
    """When each finished run's record was written (ns), by run id: a rerun that trains nothing keeps them."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (results / "runs").glob("*/metrics.json")}


def kill_sweep_when_done(argv: list[str], cwd: Path, n_done: int, timeout_s: float = 300) -> None:
    """Start ``focalbench *argv`` in its own process group, wait until ``n_done`` runs have records under
    ``cwd/results`` (or it exits), then SIGKILL the whole group, workers included: a machine that dies mid-sweep."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "focalbench", *argv],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    runs = cwd / "results" / "runs"
    deadline = time.time() + timeout_s
    while len(list(runs.glob("*/metrics.json"))) < n_done and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
