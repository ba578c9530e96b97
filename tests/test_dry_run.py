"""Knowing what will run: `sweep --dry-run` and `run --cfg` show it and write nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from focalbench.training import record
from tests.conftest import TINY, run_cli, write_lock

GRID = ["gamma=0,2", "seed=0,1", *TINY]


def snapshot(folder: Path) -> dict[str, int]:
    return (
        {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}
        if folder.exists()
        else {}
    )


def status_by_run(stdout: str) -> dict[str, str]:
    """run id -> status, from the dry run's table rows."""
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"\b([0-9a-f]{12})\s+(done|pending|failed|locked)\b", stdout)
    }


@pytest.mark.slow
def test_dry_run_lists_the_grid_and_writes_nothing(tmp_path):
    out = run_cli("sweep", *GRID, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.iterdir()) == [], "a dry run writes nothing"
    assert "4 cells, 4 runs" in out.stdout and "gamma=2 seed=1" in out.stdout
    statuses = status_by_run(out.stdout)
    assert len(statuses) == 4 and set(statuses.values()) == {"pending"}
    assert "4 run(s) to train" in out.stdout
    # No similar record: the estimate comes from a timed probe of one run, which wrote nothing either.
    assert re.search(r"about [\d.]+ s, from a timed probe for 4 run\(s\)", out.stdout), out.stdout

    # The ids it shows are the ids the sweep uses.
    assert run_cli("sweep", "gamma=0", "seed=0,1", *TINY, cwd=tmp_path).returncode == 0
    done_ids = {p.name for p in (tmp_path / "results" / "runs").iterdir()}
    assert done_ids <= set(statuses)


@pytest.mark.slow
def test_dry_run_shows_done_failed_locked_and_pending_runs_and_estimates_the_time(tmp_path, sleeper):
    assert run_cli("sweep", "gamma=0", "seed=0,1", *TINY, cwd=tmp_path).returncode == 0
    results = tmp_path / "results"
    statuses = status_by_run(run_cli("sweep", *GRID, "--dry-run", cwd=tmp_path).stdout)
    pending = sorted(rid for rid, s in statuses.items() if s == "pending")
    assert len(pending) == 2
    record.write_json(record.run_dir(results, pending[0]) / record.ERROR_FILE, {"status": "error"})
    write_lock(record.run_dir(results, pending[1]), sleeper.pid)
    before = snapshot(results)

    out = run_cli("sweep", *GRID, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert snapshot(results) == before, "a dry run writes nothing"
    statuses = status_by_run(out.stdout)
    assert sorted(statuses.values()) == ["done", "done", "failed", "locked"]
    assert statuses[pending[0]] == "failed" and statuses[pending[1]] == "locked"
    assert "1 run(s) to train" in out.stdout and "1 running elsewhere" in out.stdout
    assert re.search(r"about [\d.]+ s, from the median time of similar records for 1 run", out.stdout), (
        out.stdout
    )


@pytest.mark.slow
def test_dry_run_marks_a_repeated_cell(tmp_path):
    out = run_cli("sweep", "gamma=2,2.0", "seed=0", *TINY, "--dry-run", cwd=tmp_path)
    assert out.returncode == 0 and "2 cells, 1 runs" in out.stdout and "repeat: runs once" in out.stdout


@pytest.mark.slow
def test_run_cfg_prints_the_resolved_config_and_writes_nothing(tmp_path):
    out = run_cli("run", "loss=balanced_ce", "imbalance=10", "--cfg", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    cfg = yaml.safe_load(out.stdout)
    assert cfg["loss"]["name"] == "ce" and cfg["alpha"] == "inverse_freq" and cfg["gamma"] == 0
    assert cfg["data"]["imbalance"] == 10  # interpolations resolved
    assert list(tmp_path.iterdir()) == []
    bad = run_cli("run", "gama=1", "--cfg", cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("focalbench: error: unknown config key 'gama'")


@pytest.mark.slow
def test_a_cluster_launcher_needs_an_explicit_device(tmp_path):
    out = run_cli("sweep", "gamma=0", "seed=0", "--launcher", "submitit_slurm", cwd=tmp_path)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1
    assert "device=auto with --launcher submitit_slurm" in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_probe_times_a_few_real_training_steps_and_writes_nothing(tmp_path, monkeypatch):
    from focalbench.config import compose
    from focalbench.sweeps.plan import PROBE_STEPS, PROBE_WARMUP, probe_run_time

    monkeypatch.chdir(tmp_path)
    # 1800 training examples at batch_size 16: 113 steps an epoch, far more than the probe's 7
    cfg = compose(["data.n_max=1000", "data.test_per_class=20", "epochs=4", "batch_size=16", "threads=1"])
    probe = probe_run_time(cfg)
    assert probe.seconds is not None and probe.seconds > 0, probe.note
    steps = re.search(r"over (\d+) timed steps, x (\d+) steps", probe.note)
    assert steps and int(steps.group(1)) == PROBE_STEPS and int(steps.group(2)) > PROBE_WARMUP + PROBE_STEPS
    assert list(tmp_path.iterdir()) == []
    # A run shorter than the probe is trained whole; a run that cannot be probed says why, never raises.
    short = probe_run_time(compose([*TINY, "batch_size=4096", "epochs=2", "threads=1"]))
    assert short.seconds is not None and "trained whole (2 steps)" in short.note
    broken = compose([*TINY, "threads=1"])
    broken.data.n_max = -5
    assert probe_run_time(broken).seconds is None


def test_runs_without_similar_records_are_estimated_from_one_probe_per_kind(tmp_path, monkeypatch):
    from focalbench.sweeps.plan import Probe, estimate_with_probes, plan_sweep

    monkeypatch.chdir(tmp_path)
    plan = plan_sweep(["gamma=0,2", "seed=0,1", "model=mlp,linear", *TINY])
    probed = []

    def fake_probe(cfg):
        probed.append(str(cfg.model.name))
        return Probe(10.0, "fake") if cfg.model.name == "mlp" else Probe(None, "linear: no probe (why)")

    estimate = estimate_with_probes(plan, plan.unique_run_ids(), probe=fake_probe)
    assert sorted(probed) == ["linear", "mlp"]  # one probe per kind, not per run
    assert estimate.probed == 4 and estimate.seconds == 40.0 and estimate.unknown == 4
    assert estimate.probe_notes == ["fake", "linear: no probe (why)"]


def test_a_run_is_timed_by_records_of_its_own_precision(tmp_path):
    """bf16 trains a conv net about 2x faster than fp32 on a CPU with native bf16: an fp32 run is not
    estimated from bf16 records (nor the other way), whatever precision=auto means on this machine."""
    from focalbench.sweeps.plan import record_times, similarity_key

    cfg = {"data": {"name": "cifar10_lt", "n_classes": 10}, "model": {"name": "cnn"}, "epochs": 25}
    for rid, precision, wall in [("a" * 12, "bf16", 500.0), ("b" * 12, "fp32", 1100.0)]:
        rdir = record.run_dir(tmp_path, rid)
        rdir.mkdir(parents=True)
        # the config says auto; the record's environment says what auto meant where it ran
        (rdir / "config.yaml").write_text(yaml.safe_dump({**cfg, "device": "auto", "precision": "auto"}))
        env = {"device": "cpu", "precision": precision}
        metrics = {"status": "ok", "timing": {"wall_time_s": wall}, "environment": env}
        (rdir / record.METRICS_FILE).write_text(json.dumps(metrics))
    times = record_times(tmp_path)
    assert times[similarity_key({**cfg, "device": "cpu", "precision": "bf16"})] == [500.0]
    assert times[similarity_key({**cfg, "device": "cpu", "precision": "fp32"})] == [1100.0]
