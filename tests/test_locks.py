"""Claiming runs: one process trains a run at a time; stale locks are taken over; --force moves aside."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from focalbench.config import compose
from focalbench.identity import run_id
from focalbench.training import lock, record, runner
from focalbench.training.runner import execute_run
from tests.conftest import TINY, run_cli, write_lock

GRID = ["gamma=0,2", "seed=0,1", *TINY]


def attempts(run_dir: Path) -> list[str]:
    """The 'attempt' lines of a run's train.log: one per training attempt, appended, never rewritten."""
    log = run_dir / "train.log"
    return (
        [line for line in log.read_text().splitlines() if line.startswith("attempt: ")]
        if log.is_file()
        else []
    )


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_lock_is_exclusive_holds_who_and_when_and_is_released(tmp_path):
    messages = []
    held = lock.try_acquire(tmp_path / "run", messages.append)
    assert isinstance(held, lock.RunLock)
    data = json.loads((tmp_path / "run" / "lock.json").read_text())
    assert data["pid"] == os.getpid() and data["host"] == socket.gethostname() and data["started"] > 0
    second = lock.try_acquire(tmp_path / "run", messages.append)
    assert isinstance(second, lock.LockInfo) and not second.stale  # held: nobody else gets it
    held.release()
    assert not (tmp_path / "run" / "lock.json").exists() and messages == []
    again = lock.try_acquire(tmp_path / "run", messages.append)
    assert isinstance(again, lock.RunLock)
    again.release()


def test_a_live_holder_keeps_its_lock(tmp_path, sleeper):
    write_lock(tmp_path / "run", sleeper.pid)
    found = lock.try_acquire(tmp_path / "run", pytest.fail)
    assert isinstance(found, lock.LockInfo) and not found.stale and found.pid == sleeper.pid


def test_a_lock_of_a_dead_process_is_taken_over_with_a_message(tmp_path):
    write_lock(tmp_path / "run", dead_pid())
    messages = []
    held = lock.try_acquire(tmp_path / "run", messages.append)
    assert isinstance(held, lock.RunLock)
    assert len(messages) == 1 and "is dead" in messages[0] and "taking it over" in messages[0]
    held.release()


def test_a_lock_without_heartbeat_for_the_timeout_is_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("FOCALBENCH_LOCK_TIMEOUT", "60")
    write_lock(tmp_path / "fresh", 12345, host="another-host")
    assert not lock.inspect(tmp_path / "fresh").stale  # another host's pid cannot be checked: trust it
    write_lock(tmp_path / "old", 12345, host="another-host", age_s=120)
    info = lock.inspect(tmp_path / "old")
    assert info.stale and "no heartbeat for" in info.stale_reason
    messages = []
    held = lock.try_acquire(tmp_path / "old", messages.append)
    assert isinstance(held, lock.RunLock) and "taking it over" in messages[0]
    held.release()


def test_the_holder_refreshes_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setenv("FOCALBENCH_LOCK_TIMEOUT", "0.4")  # heartbeat every 0.1 s
    held = lock.try_acquire(tmp_path / "run")
    path = tmp_path / "run" / "lock.json"
    os.utime(path, (1000.0, 1000.0))
    deadline = time.time() + 30
    while path.stat().st_mtime < 2000 and time.time() < deadline:
        time.sleep(0.05)
    assert path.stat().st_mtime > time.time() - 30, "the heartbeat did not refresh the lock"
    held.release()


def test_a_run_locked_by_a_live_process_is_not_trained(results, sleeper):
    cfg = compose([*TINY, f"results_dir={results}"])
    rdir = record.run_dir(results, run_id(cfg))
    write_lock(rdir, sleeper.pid)
    outcome = execute_run(cfg, quiet=True)
    assert outcome.status == "locked" and str(sleeper.pid) in outcome.error
    assert sorted(p.name for p in rdir.iterdir()) == ["lock.json"]  # nothing written beside the lock


def test_run_waits_for_a_locked_run_and_takes_it_over_when_its_holder_dies(results, sleeper, monkeypatch):
    monkeypatch.setenv("FOCALBENCH_LOCK_POLL", "0.05")
    cfg = compose([*TINY, f"results_dir={results}"])
    rdir = record.run_dir(results, run_id(cfg))
    write_lock(rdir, sleeper.pid)
    messages = []

    def notify(message):  # the holder dies once we are waiting for it
        messages.append(message)
        if "waiting" in message:
            sleeper.kill()
            sleeper.wait()

    outcome = execute_run(cfg, quiet=True, wait=True, notify=notify)
    assert outcome.status == "ok"
    assert "running elsewhere" in messages[0] and "taking it over" in messages[1]
    assert len(attempts(rdir)) == 1 and not (rdir / "lock.json").exists()


def test_force_moves_the_old_record_aside_and_a_failed_retry_leaves_no_valid_record(results, monkeypatch):
    cfg = compose([*TINY, f"results_dir={results}"])
    first = execute_run(cfg, quiet=True)
    old_metrics = (first.run_dir / "metrics.json").read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(runner, "_train_and_record", broken)
    again = execute_run(cfg, quiet=True, force=True, notify=lambda m: None)
    assert again.status == "error" and "out of memory" in again.error
    assert not record.is_done(first.run_dir)
    assert sorted(p.name for p in first.run_dir.iterdir()) == ["config.yaml", "error.json", "train.log"]
    assert again.replaced is not None and again.replaced.parent == results / "replaced"
    assert (again.replaced / "metrics.json").read_text() == old_metrics
    assert len(attempts(again.replaced)) == 1 and len(attempts(first.run_dir)) == 1


@pytest.mark.slow
def test_run_force_trains_again(tmp_path):
    assert run_cli("run", *TINY, cwd=tmp_path).returncode == 0
    (rdir,) = (tmp_path / "results" / "runs").iterdir()
    before = (rdir / "metrics.json").stat().st_mtime_ns
    out = run_cli("run", *TINY, "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "moved its old record" in out.stdout and "already done" not in out.stdout
    assert (rdir / "metrics.json").stat().st_mtime_ns != before and len(attempts(rdir)) == 1
    (old,) = (tmp_path / "results" / "replaced").iterdir()
    assert old.name.startswith(rdir.name + ".") and (old / "metrics.json").is_file()


@pytest.mark.slow
def test_sweep_force_retrains_every_run_of_the_grid(tmp_path):
    grid = ["gamma=0,2", "seed=0", *TINY]
    assert run_cli("sweep", *grid, cwd=tmp_path).returncode == 0
    out = run_cli("sweep", *grid, "--force", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "moved 2 old record(s)" in out.stdout and "2 of 2 runs ok" in out.stdout
    assert len(list((tmp_path / "results" / "replaced").iterdir())) == 2
    for rdir in (tmp_path / "results" / "runs").iterdir():
        assert record.is_done(rdir) and len(attempts(rdir)) == 1


@pytest.mark.slow
def test_a_grid_listing_one_run_twice_trains_it_once(tmp_path):
    out = run_cli("sweep", "gamma=2,2.0", "seed=0", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "2 cells, 0 of 1 runs already done" in out.stdout
    (rdir,) = (tmp_path / "results" / "runs").iterdir()
    assert len(attempts(rdir)) == 1


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [["--launcher", "basic"], ["--jobs", "2"]], ids=["basic", "joblib"])
def test_hydra_launchers_train_a_repeated_run_once(tmp_path, launcher):
    out = run_cli("sweep", "gamma=2,2.0", "seed=0", *TINY, *launcher, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    (rdir,) = (tmp_path / "results" / "runs").iterdir()
    assert len(attempts(rdir)) == 1


def _sweep_process(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "PYTHONUNBUFFERED": "1", "FOCALBENCH_LOCK_POLL": "0.1"}
    env.pop("FOCALBENCH_RESULTS", None)
    return subprocess.Popen(
        [sys.executable, "-m", "focalbench", "sweep", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_two_sweeps_on_one_results_folder_train_each_run_once(tmp_path):
    """Two identical sweeps started together: every run is trained exactly once, by one of them (its
    train.log's attempt lines are appended by every attempt), and both end with the full table."""
    first, second = _sweep_process(tmp_path, *GRID), _sweep_process(tmp_path, *GRID)
    outputs = [p.communicate(timeout=600)[0] for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    runs = sorted((tmp_path / "results" / "runs").iterdir())
    assert len(runs) == 4
    trainers = []
    for rdir in runs:
        lines = attempts(rdir)
        assert len(lines) == 1, (rdir.name, lines)
        assert record.is_done(rdir) and not (rdir / "lock.json").exists()
        trainers.append(int(lines[0].split()[2]))
    assert set(trainers) <= {first.pid, second.pid}
    for out in outputs:
        assert "4 of 4 runs ok" in out, out
        assert "gamma=0" in out and "gamma=2" in out
    # How the work was shared depends on timing; either way it was shared, never repeated.
    print("runs trained per process:", {pid: trainers.count(pid) for pid in (first.pid, second.pid)})


@pytest.mark.slow
def test_a_sweep_waits_for_a_run_running_elsewhere_and_takes_it_over_if_that_process_dies(tmp_path, sleeper):
    from focalbench.sweeps.plan import plan_sweep

    plan = plan_sweep([*GRID, f"results_dir={tmp_path / 'results'}"])
    locked = plan.cells[0].run_id
    write_lock(record.run_dir(tmp_path / "results", locked), sleeper.pid)
    proc = _sweep_process(tmp_path, *GRID)
    seen = []
    for line in proc.stdout:  # the sweep trains the rest, then says it waits for the locked run
        seen.append(line)
        if "running elsewhere" in line:
            break
    assert any(locked in line for line in seen), seen
    assert len(list((tmp_path / "results" / "runs").glob("*/metrics.json"))) < 4
    sleeper.kill()  # the other process dies without releasing its lock
    sleeper.wait()
    rest = proc.communicate(timeout=600)[0]
    assert proc.returncode == 0, "".join(seen) + rest
    assert "is dead" in rest and "taking it over" in rest and "4 of 4 runs ok" in rest
    for rdir in (tmp_path / "results" / "runs").iterdir():
        assert len(attempts(rdir)) == 1 and record.is_done(rdir)
    assert str(proc.pid) in attempts(record.run_dir(tmp_path / "results", locked))[0]
