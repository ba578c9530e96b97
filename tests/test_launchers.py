"""Fused groups through every launcher: joblib (--jobs N), submitit, Ray; per-group resources; failures and
resume with group jobs."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
import yaml
from omegaconf import OmegaConf

from focalbench.config import compose
from focalbench.sweeps.plan import Cell, expand_grid
from tests.conftest import TINY, kill_sweep_when_done, mtimes, records, run_cli, write_lock


def group_sizes(recs: dict[str, dict]) -> list[int]:
    """The sizes of the distinct fused groups the records name (a run trained alone counts as 1)."""
    groups = {tuple(m["fused_group"]["run_ids"]) if "fused_group" in m else (rid,) for rid, m in recs.items()}
    return sorted(len(g) for g in groups)


def cells(n: int, *extra: str) -> list[Cell]:
    return [Cell([f"seed={s}"], compose([f"seed={s}", *extra]), f"run{s}") for s in range(n)]


# ----------------------------------------------------------------------------------------------------------
# Planning: groups for workers, resources per group
# ----------------------------------------------------------------------------------------------------------


def test_groups_are_split_so_that_every_worker_has_one():
    from focalbench.sweeps.fuse import plan_groups

    twelve = cells(12)
    assert [len(g.cells) for g in plan_groups(twelve)] == [12]
    assert [len(g.cells) for g in plan_groups(twelve, workers=2)] == [6, 6]
    assert [len(g.cells) for g in plan_groups(twelve, workers=5)] == [3, 3, 2, 2, 2]
    assert all(g.fused for g in plan_groups(twelve, workers=5))
    # grid order is kept: each group is a run of consecutive cells
    assert [c.run_id for g in plan_groups(twelve, workers=2) for c in g.cells] == [c.run_id for c in twelve]
    # more workers than cells: every cell alone, nothing more to split
    assert [len(g.cells) for g in plan_groups(cells(3), workers=8)] == [1, 1, 1]
    # --max-fuse is the user's choice: kept as given, even with idle workers
    assert [len(g.cells) for g in plan_groups(twelve, max_fuse=12, workers=2)] == [12]
    assert [len(g.cells) for g in plan_groups(twelve, max_fuse=1, workers=2)] == [1] * 12
    # runs that cannot fuse occupy workers too: two of them already keep two workers busy
    mixed = cells(2, "model.dropout=0.2") + cells(4)
    assert [len(g.cells) for g in plan_groups(mixed, workers=2)] == [1, 1, 4]
    assert [len(g.cells) for g in plan_groups(mixed, workers=4)] == [1, 1, 2, 2]


def test_group_resources_follow_the_groups_size_and_device():
    from focalbench.sweeps.fuse import member_bytes
    from focalbench.sweeps.jobs import BASE_JOB_MEM_GB, group_resources

    image = ["data=cifar10_lt", "model=resnet32", "device=cuda"]
    one, twelve = [compose(image)], [compose(image)] * 12
    small, large = group_resources(one), group_resources(twelve)
    assert small["gpus_per_node"] == large["gpus_per_node"] == 1
    per_member_gb = member_bytes(one[0]) / 2**30
    assert large["mem_gb"] >= BASE_JOB_MEM_GB + 12 * per_member_gb > small["mem_gb"] >= BASE_JOB_MEM_GB
    assert "timeout_min" not in large and "cpus_per_task" not in large  # nothing known: the preset's
    cpu = group_resources([compose(["device=cpu", "threads=3"])] * 4, run_seconds=600)
    assert cpu["gpus_per_node"] == 0 and cpu["cpus_per_task"] == 3
    assert cpu["timeout_min"] == 2 * 4 * 10  # twice the members' summed median time, in minutes
    assert group_resources([compose(["device=cpu"])], run_seconds=1)["timeout_min"] == 10  # the floor


def test_group_jobs_keep_the_users_launcher_settings(tmp_path):
    from focalbench.sweeps.fuse import plan_groups
    from focalbench.sweeps.jobs import group_job_resources, read_group_jobs, write_group_jobs
    from focalbench.sweeps.launch import cell_config, hydra_argv
    from focalbench.sweeps.plan import plan_sweep

    plan = plan_sweep(
        [
            "gamma=0,2",
            "seed=0,1",
            "device=cpu",
            *TINY,
            f"results_dir={tmp_path}",
            "++hydra.launcher.mem_gb=64",
        ]
    )
    groups = plan_groups(plan.cells, workers=2)
    write_group_jobs(plan, groups, lambda cell: cell_config(plan, cell, 2))
    written = read_group_jobs(plan.sweep_dir)
    assert [job["run_ids"] for job in written] == [[c.run_id for c in g.cells] for g in groups]
    assert all(job["fused"] for job in written) and len(written) == 2
    # the user's ++hydra.launcher.mem_gb=64 stands: the group's own estimate is not written over it
    assert group_job_resources(plan.sweep_dir, ["+fuse_group=1"]) == {"gpus_per_node": 0}
    assert group_job_resources(plan.sweep_dir, ["gamma=2"]) == {}  # not a group job
    argv = hydra_argv(plan, "submitit_slurm", 2, groups=len(groups))
    assert "+fuse_group=0,1" in argv and "++hydra.launcher.mem_gb=64" in argv
    assert not any(a.startswith(("gamma=", "seed=")) for a in argv)  # the cells are in groups.json
    assert any(a.endswith("submitit_groups.GroupSlurmLauncher") for a in argv)
    # launcher settings do not name the sweep
    assert plan.name.startswith("gamma=0,2_seed=0,1_device=cpu_") and "mem_gb" not in plan.name


def test_dry_run_lists_the_jobs_a_launcher_gets(tmp_path):
    out = run_cli("sweep", "gamma=0,1,2,5", *TINY, "--jobs", "2", "--dry-run", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "launcher joblib: one job per group, 2 job(s)" in out.stdout
    assert "2 fused group(s) of 6, 6 runs" in out.stdout and not (tmp_path / "results").exists()


# ----------------------------------------------------------------------------------------------------------
# Through the CLI
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_jobs_2_trains_fused_groups_with_the_inprocess_sweeps_run_ids(tmp_path):
    grid = ["gamma=0,1,2,5", *TINY, "threads=1"]
    inprocess = run_cli("sweep", *grid, f"results_dir={tmp_path / 'seq'}", cwd=tmp_path)
    parallel = run_cli("sweep", *grid, "--jobs", "2", f"results_dir={tmp_path / 'jobs'}", cwd=tmp_path)
    for out in (inprocess, parallel):
        assert out.returncode == 0, out.stderr
    seq, par = records(tmp_path / "seq"), records(tmp_path / "jobs")
    assert len(seq) == 12 and set(par) == set(seq)
    assert all(m["status"] == "ok" for m in par.values())
    assert group_sizes(seq) == [12] and group_sizes(par) == [6, 6]
    assert "launcher joblib, 2 job(s)" in parallel.stdout
    for rid, m in par.items():
        assert m["fused_group"]["run_ids"].count(rid) == 1
        assert {"config.yaml", "history.csv", "train.log"} <= {
            p.name for p in (tmp_path / "jobs/runs" / rid).iterdir()
        }
    listing = json.loads(next((tmp_path / "jobs" / "sweeps").glob("*/sweep.json")).read_text())
    assert set(listing["run_ids"]) == set(seq) and {r["status"] for r in listing["runs"]} == {"ok"}


@pytest.mark.slow
def test_submitit_local_trains_fused_groups(tmp_path):
    out = run_cli(
        "sweep", "gamma=0,2", "seed=0,1", *TINY, "threads=1", "--launcher", "submitit_local", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    recs = records(tmp_path / "results")
    assert len(recs) == 4 and group_sizes(recs) == [4] and {m["status"] for m in recs.values()} == {"ok"}
    # the job ran in a submitit task (its logs are in the sweep's hydra folder), as one job for the group
    logs = list((tmp_path / "results" / "sweeps").glob("*/hydra/.submitit/*/*_log.out"))
    assert len(logs) == 1, logs


CRASH_HOOK = """
    import os, time
    from pathlib import Path

    import focalbench.sweeps.jobs as jobs

    real = jobs.run_group_job

    def crash_after_the_others(sweep_dir, index):
        # The group whose members include gamma=5 dies (a worker killed, out of memory), once the other
        # group's records are all written: the worker crash must leave them as they are.
        group = jobs.read_group_jobs(sweep_dir)[index]
        if any("gamma: 5" in text for text in group["configs"]):
            runs = Path(sweep_dir).parents[1] / "runs"
            deadline = time.time() + 120
            while len(list(runs.glob("*/metrics.json"))) < 3 and time.time() < deadline:
                time.sleep(0.05)
            os._exit(9)
        return real(sweep_dir, index)

    jobs.run_group_job = crash_after_the_others
"""


@pytest.mark.slow
def test_a_diverging_member_or_a_crashed_group_leaves_the_others_records(tmp_path):
    """Six runs in two fused groups of three, on two workers. In the first group one member diverges (absurd
    class weights from its second epoch): it is recorded as diverged, its group mates train on. The second
    group's worker dies: the sweep stops with one line, the first group's records stay, and a rerun trains
    only the second group."""
    huge = "[" + ",".join(["3e38"] * 10) + "]"
    grid = [
        "gamma=0,2,5",
        f"alpha=none,{huge}",
        "alpha_start_epoch=2",
        "loss=focal",
        "seed=0",
        *TINY,
        "threads=1",
    ]
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(textwrap.dedent(CRASH_HOOK))
    pythonpath = os.pathsep.join([str(hook), *filter(None, [os.environ.get("PYTHONPATH")])])
    crashed = run_cli(
        "sweep", *grid, "--jobs", "2", "--max-fuse", "3", cwd=tmp_path, env={"PYTHONPATH": pythonpath}
    )
    assert crashed.returncode == 1, crashed.stdout + crashed.stderr
    err = crashed.stderr.strip().splitlines()
    assert len(err) == 1 and "the joblib launcher failed (TerminatedWorkerError: A worker process" in err[0]
    assert "rerun the same command to resume" in err[0] and err[0].endswith("launcher.log")
    assert "Traceback" in next((tmp_path / "results" / "sweeps").glob("*/launcher.log")).read_text()
    results = tmp_path / "results"
    first = records(results)
    assert len(first) == 3 and group_sizes(first) == [3]
    assert sorted(m["status"] for m in first.values()) == ["diverged", "ok", "ok"]
    gammas = [yaml.safe_load((results / "runs" / rid / "config.yaml").read_text())["gamma"] for rid in first]
    assert sorted(gammas) == [0, 0, 2]  # the crashed group's runs (gamma 2 and 5) are not there
    before = mtimes(results)

    again = run_cli("sweep", *grid, "--jobs", "2", "--max-fuse", "3", cwd=tmp_path)
    assert again.returncode == 1, again.stderr  # the diverged run is a failed run
    assert "3 of 6 runs already done" in again.stdout
    after = records(results)
    assert len(after) == 6 and group_sizes(after) == [3, 3]
    assert sorted(m["status"] for m in after.values()) == ["diverged"] * 3 + ["ok"] * 3  # each huge alpha
    assert {k: v for k, v in mtimes(results).items() if k in before} == before  # not trained again


@pytest.mark.slow
def test_a_killed_jobs_2_sweep_resumes(tmp_path, sleeper):
    """Kill a --jobs 2 sweep midway, then rerun it: only the missing run trains. Midway is made certain:
    one run is locked by another live process, so the sweep trains the other eleven in two fused groups and
    waits for that one; it is killed (with its workers) while it waits."""
    from focalbench.identity import run_id

    argv = ["sweep", "gamma=0,1,2,5", *TINY, "threads=1", "--jobs", "2"]
    held = run_id(compose(expand_grid(["gamma=0,1,2,5", *TINY, "threads=1", "seed=0,1,2"])[-1]))
    lock = write_lock(tmp_path / "results" / "runs" / held, pid=sleeper.pid)
    kill_sweep_when_done(argv, tmp_path, n_done=11)
    finished = mtimes(tmp_path / "results")
    assert len(finished) == 11 and held not in finished
    assert group_sizes(records(tmp_path / "results")) == [5, 6]  # the held run was left out of its group

    lock.unlink()  # the other process is gone
    out = run_cli(*argv, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "11 of 12 runs already done" in out.stdout
    after = mtimes(tmp_path / "results")
    assert len(after) == 12 and held in after
    assert {k: after[k] for k in finished} == finished  # finished runs were not run again


# ----------------------------------------------------------------------------------------------------------
# Ray: a real local head
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def ray_head():
    """A Ray head on 127.0.0.1 with 2 CPUs and no dashboard, started by this process (its address is
    yielded), and always shut down after the test."""
    import ray  # the dev extra installs it: this test is never skipped

    context = ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_ray_launcher_runs_a_grid_on_a_local_head(tmp_path, ray_head):
    grid = ["gamma=0,2", "seed=0,1", *TINY, "threads=1", "device=cpu"]
    out = run_cli(
        "sweep",
        *grid,
        "--launcher",
        "ray",
        "--jobs",
        "2",
        f"++hydra.launcher.address={ray_head}",
        "--name",
        "r",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "launcher ray, 2 job(s)" in out.stdout and "4 of 4 runs ok" in out.stdout
    results = tmp_path / "results"
    recs = records(results)
    assert len(recs) == 4 and {m["status"] for m in recs.values()} == {"ok"}
    assert group_sizes(recs) == [2, 2]
    listing = json.loads((results / "sweeps" / "r" / "sweep.json").read_text())
    assert set(listing["run_ids"]) == set(recs) and {r["status"] for r in listing["runs"]} == {"ok"}
    table = (results / "sweeps" / "r" / "table.md").read_text()
    assert "gamma=0" in table and "gamma=2" in table
    assert (results / "sweeps" / "r" / "report.html").is_file()
    # device=auto cannot be resolved for a cluster's nodes: refused before anything runs
    auto = run_cli("sweep", "gamma=0", "seed=0", *TINY, "--launcher", "ray", "--name", "auto", cwd=tmp_path)
    assert auto.returncode == 2 and "device=auto with --launcher ray" in auto.stderr
    assert not (results / "sweeps" / "auto").exists()


def test_the_slurm_launcher_submits_one_array_per_group_size(tmp_path, monkeypatch):
    """GroupSlurmLauncher against a recording stand-in for submitit's executor (no SLURM here): jobs whose
    groups ask for the same resources share an array, each array gets its groups' resources over the preset's,
    and the results come back in job order."""
    import submitit

    from focalbench.sweeps.jobs import GROUPS_FILE
    from hydra_plugins.focalbench_launchers.submitit_groups import GroupSlurmLauncher

    small, large = {"gpus_per_node": 1, "mem_gb": 5}, {"gpus_per_node": 1, "mem_gb": 9, "timeout_min": 30}
    sweep = tmp_path / "sweeps" / "s"
    sweep.mkdir(parents=True)
    (sweep / GROUPS_FILE).write_text(
        json.dumps({"groups": [{"resources": r} for r in (small, large, small)]})
    )
    arrays = []

    class Job:
        def __init__(self, num):
            self.num = num

        def results(self):
            return [f"job {self.num}"]

    class RecordingExecutor:
        def __init__(self, cluster, folder, **_):
            assert cluster == "slurm"
            self.params = {}
            arrays.append(self)

        def update_parameters(self, **params):
            self.params.update(params)

        def map_array(self, fn, overrides, _key, nums, *_):
            self.nums = list(nums)
            return [Job(num) for num in nums]

    monkeypatch.setattr(submitit, "AutoExecutor", RecordingExecutor)
    launcher = GroupSlurmLauncher(
        submitit_folder=str(sweep / "hydra" / ".submitit"), partition="gpu", mem_gb=32, timeout_min=120
    )
    launcher.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep / "hydra")}}})
    results = launcher.launch([[f"+fuse_group={i}"] for i in range(3)], initial_job_idx=0)
    assert results == ["job 0", "job 1", "job 2"]
    assert [a.nums for a in arrays] == [[0, 2], [1]]
    assert arrays[0].params == {"slurm_partition": "gpu", "mem_gb": 5, "timeout_min": 120, "gpus_per_node": 1}
    assert arrays[1].params == {"slurm_partition": "gpu", "mem_gb": 9, "timeout_min": 30, "gpus_per_node": 1}


def test_ray_task_options_come_from_the_group_unless_set(monkeypatch):
    from hydra_plugins.focalbench_launchers.ray_launcher import RayLauncher

    group = {"gpus_per_node": 1, "cpus_per_task": 3, "mem_gb": 9}
    assert RayLauncher().task_options(group) == {"num_cpus": 3, "num_gpus": 1, "max_retries": 0}
    assert RayLauncher().task_options({"gpus_per_node": 0}) == {
        "num_cpus": 1,
        "num_gpus": 0,
        "max_retries": 0,
    }
    packed = RayLauncher(num_gpus=0.25, num_cpus=2).task_options(group)
    assert packed["num_gpus"] == 0.25 and packed["num_cpus"] == 2
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert RayLauncher().init_arguments() == {
        "address": "local",
        "log_to_driver": False,
        "include_dashboard": False,
    }
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert RayLauncher(init={"namespace": "x"}).init_arguments() == {
        "address": "10.0.0.1:6379",
        "log_to_driver": False,
        "namespace": "x",
    }
    assert RayLauncher(address="ray://h:10001").init_arguments()["address"] == "ray://h:10001"
