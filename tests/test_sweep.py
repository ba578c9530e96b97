"""focalbench sweep: the grid, resume and reuse, failures, and launchers that agree with each other."""

from __future__ import annotations

import json

import pytest

from focalbench.config import compose
from focalbench.sweeps.plan import expand_grid
from tests.conftest import TINY, kill_sweep_when_done, mtimes, records, run_cli, write_lock
from tests.test_run import comparable


def test_a_grid_without_seeds_gets_three(tmp_path):
    from focalbench.sweeps.plan import plan_sweep

    plan = plan_sweep(["gamma=0,2", f"results_dir={tmp_path}"])
    assert sorted((c.cfg.gamma, c.cfg.seed) for c in plan.cells) == [
        (0, 0),
        (0, 1),
        (0, 2),
        (2, 0),
        (2, 1),
        (2, 2),
    ]
    assert plan.name == "gamma=0,2"  # named by what the user typed, not by the seeds added
    assert len(plan_sweep(["gamma=0,2", "seed=5", f"results_dir={tmp_path}"]).cells) == 2


def test_grid_expands_like_hydra_basic_sweeper():
    assert expand_grid(["gamma=0,1", "seed=0,1,2"]) == [
        [f"gamma={g}", f"seed={s}"] for g in (0, 1) for s in (0, 1, 2)
    ]
    assert len(expand_grid(["seed=range(0,4)", "alpha=none,inverse_freq"])) == 8
    assert len(expand_grid(["gamma=choice(0,2)"])) == 2
    assert expand_grid(["gamma=2"]) == [["gamma=2"]]


@pytest.mark.slow
def test_sweep_runs_the_grid_then_resumes_and_reuses(tmp_path):
    out = run_cli("sweep", "gamma=0,2", "seed=0,1", *TINY, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "0 of 4 runs already done" in out.stdout
    results = tmp_path / "results"
    assert len(records(results)) == 4
    sweep = json.loads(
        (
            results / "sweeps" / "gamma=0,2_seed=0,1_n_max=200_test_per_class=50_epochs=3" / "sweep.json"
        ).read_text()
    )
    assert len(sweep["run_ids"]) == 4 and {r["status"] for r in sweep["runs"]} == {"ok"}
    before = mtimes(results)

    again = run_cli("sweep", "gamma=0,2", "seed=0,1", *TINY, cwd=tmp_path)
    assert again.returncode == 0 and "4 of 4 runs already done" in again.stdout
    assert mtimes(results) == before  # nothing ran again

    overlap = run_cli("sweep", "gamma=0,2,5", "seed=0", *TINY, "--name", "overlap", cwd=tmp_path)
    assert overlap.returncode == 0 and "2 of 3 runs already done" in overlap.stdout
    assert len(records(results)) == 5
    assert {k: v for k, v in mtimes(results).items() if k in before} == before


@pytest.mark.slow
def test_a_killed_sweep_resumes_where_it_stopped(tmp_path, sleeper):
    """Kill a sweep midway, then rerun it: only the missing runs train.

    "Midway" is made certain, not timed: one run of the grid is locked by another live process, so the sweep
    trains the other seven runs and then waits for that one; it is killed while it waits, whatever the speed
    of the machine.
    """
    from focalbench.identity import run_id

    argv = ["sweep", "gamma=0,1,2,5", "seed=0,1", *TINY]
    held = run_id(compose(expand_grid(argv[1:])[-1]))
    lock = write_lock(tmp_path / "results" / "runs" / held, pid=sleeper.pid)
    kill_sweep_when_done(argv, tmp_path, n_done=7)
    finished = mtimes(tmp_path / "results")
    assert len(finished) == 7 and held not in finished

    lock.unlink()  # the other process is gone
    out = run_cli(*argv, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert f"{len(finished)} of 8 runs already done" in out.stdout
    after = mtimes(tmp_path / "results")
    assert len(after) == 8 and held in after
    assert {k: after[k] for k in finished} == finished  # finished runs were not run again


@pytest.mark.slow
def test_one_failing_run_does_not_stop_the_others(tmp_path):
    out = run_cli("sweep", "loss=ce", "optim.lr=0.1,1e20", "seed=0", *TINY, cwd=tmp_path)
    assert out.returncode == 1
    statuses = sorted(m["status"] for m in records(tmp_path / "results").values())
    assert statuses == ["diverged", "ok"]
    assert "diverged" in out.stdout and "1 failed" in out.stdout


@pytest.mark.slow
def test_parallel_and_submitit_launchers_give_the_same_records_as_sequential(tmp_path):
    # --no-fuse, for every launcher (they all train fused groups otherwise): a fused group agrees with its
    # unfused runs to float rounding only (tests/test_fused.py)
    grid = ["gamma=0,2", "seed=0", *TINY, "--no-fuse"]
    sequential = run_cli("sweep", *grid, f"results_dir={tmp_path / 'seq'}", cwd=tmp_path)
    basic = run_cli("sweep", *grid, "--launcher", "basic", f"results_dir={tmp_path / 'basic'}", cwd=tmp_path)
    joblib = run_cli("sweep", *grid, "--jobs", "2", f"results_dir={tmp_path / 'joblib'}", cwd=tmp_path)
    submitit = run_cli(
        "sweep", *grid, "--launcher", "submitit_local", f"results_dir={tmp_path / 'submitit'}", cwd=tmp_path
    )
    for out in (sequential, basic, joblib, submitit):
        assert out.returncode == 0, out.stderr
    reference = {rid: comparable(m) for rid, m in records(tmp_path / "seq").items()}
    assert len(reference) == 2
    for name in ("basic", "joblib", "submitit"):
        other = {rid: comparable(m) for rid, m in records(tmp_path / name).items()}
        assert other == reference, name
    assert "launcher inprocess" in sequential.stdout and "launcher basic" in basic.stdout
    assert "launcher submitit_local" in submitit.stdout and "launcher joblib, 2 job(s)" in joblib.stdout


@pytest.mark.slow
def test_optuna_sweeper_tunes_on_the_validation_split(tmp_path):
    """hydra/sweeper=tune (the optuna extra): trials are picked as the sweep goes, each returns its
    validation balanced accuracy, and the sweep lists the runs its trials made."""
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper", reason="the optuna extra is not installed")
    import yaml

    out = run_cli(
        "sweep",
        "hydra/sweeper=tune",
        "gamma=interval(0,5)",
        "alpha=choice(none,inverse_freq)",
        "hydra.sweeper.n_trials=3",
        *TINY,
        "--name",
        "tune",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    sweep_dir = tmp_path / "results" / "sweeps" / "tune"
    sweep = json.loads((sweep_dir / "sweep.json").read_text())
    runs = records(tmp_path / "results")
    assert (
        sweep["sweeper"] == "tune" and 1 <= len(sweep["run_ids"]) <= 3 and set(sweep["run_ids"]) == set(runs)
    )
    best = yaml.safe_load((sweep_dir / "hydra" / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(max(m["val"]["balanced_accuracy"] for m in runs.values()))


def test_a_sweep_never_replaces_another_grids_report(tmp_path, monkeypatch, capsys):
    """Reusing --name used to replace another sweep's sweep.json and report without a word."""
    from focalbench.cli import main
    from focalbench.sweeps.launch import SweepOutcome, write_sweep_list
    from focalbench.sweeps.plan import plan_sweep

    monkeypatch.chdir(tmp_path)
    plan = plan_sweep(["gamma=0,2", "seed=0", *TINY], name="mine")
    listing = write_sweep_list(plan, SweepOutcome({c.run_id: "ok" for c in plan.cells}, 1.0))
    before = listing.read_bytes()

    assert main(["sweep", "gamma=0,5", "seed=0", *TINY, "--name", "mine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--name mine: " in err[0] and "holds another sweep (" in err[0], err
    assert "gamma=0,2 seed=0)" in err[0] and err[0].endswith("; choose another --name")
    assert listing.read_bytes() == before and not (tmp_path / "results" / "runs").exists()

    # The same grid again is a resume: in another order, with settings that change no run, it is allowed.
    assert main(["sweep", "seed=0", *TINY, "gamma=0,2", "quiet=true", "--name", "mine", "--dry-run"]) == 0
    assert listing.read_bytes() == before
