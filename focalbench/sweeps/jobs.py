"""Group jobs: what a sweep hands to a launcher other than the in-process loop.

The sweep plans its fused groups (:func:`focalbench.sweeps.fuse.plan_groups`) in the parent process and
writes them to ``sweeps/<name>/groups.json``: per group, its members' full configs (resolved, so that a
worker on another machine composes nothing), their run ids and the resources the group asks of a launcher.
The launcher then gets one job per group, not per cell: Hydra multirun over ``+fuse_group=0,...,G-1``, so
that joblib, submitit (local or SLURM, one array task per group) and the Ray launcher all start the same task
function (:func:`focalbench.sweeps.task.sweep_task`), which calls :func:`run_group_job`. A run that cannot
fuse is a group of one. The records are those of the in-process path: the same run ids, locks, resume,
``fused_group`` notes, and each member's failure isolated (``training.fused.execute_group``).

Resources per group (:func:`group_resources`): a GPU when the group trains on CUDA (one group fills it: its
size was chosen from memory), none on a CPU; memory from the same estimate that sizes the group in process
(``fuse.member_bytes``); a time limit from similar finished records when there are some; threads when pinned.
A key the user sets on the command line (``++hydra.launcher.mem_gb=64``) is never replaced.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from focalbench.training import record

GROUPS_FILE = "groups.json"
GROUP_KEY = "fuse_group"  # the override (+fuse_group=N) that tells a launcher's job which group it trains
BASE_JOB_MEM_GB = 4  # a job's process before its models: the interpreter, torch and the data set
MEM_HEADROOM = 2.0  # times the estimate: member_bytes leaves out allocator slack and temporaries
TIMEOUT_HEADROOM = 2.0  # times the members' summed median time: fused groups are faster, nodes may be slower
TIMEOUT_FLOOR_MIN = 10
# Launcher settings that group_resources fills in (hydra-submitit-launcher's names); the Ray launcher maps
# gpus_per_node and cpus_per_task to a task's num_gpus and num_cpus.
RESOURCE_KEYS = ("gpus_per_node", "cpus_per_task", "mem_gb", "timeout_min")


def group_resources(cfgs: list[DictConfig], run_seconds: float | None = None) -> dict[str, int]:
    """What one group job asks for: ``gpus_per_node`` (1 on CUDA, else 0), ``mem_gb`` (the interpreter and data
    plus twice the group's estimated training memory, ``fuse.member_bytes`` times its size), ``cpus_per_task``
    (only when ``threads`` is pinned) and ``timeout_min`` (only given ``run_seconds``, the median time of
    similar finished runs: twice the members' sum, at least ``TIMEOUT_FLOOR_MIN``)."""
    from focalbench.sweeps.fuse import device_type, member_bytes

    cfg = cfgs[0]
    per_member = member_bytes(cfg) or 0
    out = {
        "gpus_per_node": 1 if device_type(cfg) == "cuda" else 0,
        "mem_gb": math.ceil(BASE_JOB_MEM_GB + MEM_HEADROOM * per_member * len(cfgs) / 2**30),
    }
    if int(cfg.threads) > 0:
        out["cpus_per_task"] = int(cfg.threads)
    if run_seconds:
        minutes = TIMEOUT_HEADROOM * run_seconds * len(cfgs) / 60
        out["timeout_min"] = max(TIMEOUT_FLOOR_MIN, math.ceil(minutes))
    return out


def user_launcher_keys(overrides: list[str]) -> set[str]:
    """The ``hydra.launcher.<key>`` settings given on the command line (with or without ``+``/``++``)."""
    keys = set()
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key.startswith("hydra.launcher."):
            keys.add(key.removeprefix("hydra.launcher."))
    return keys


def write_group_jobs(plan, groups: list, prepare) -> Path:
    """Write ``groups.json`` in the plan's sweep folder (atomically): per group, whether it is fused, its run
    ids, its members' resolved configs (``prepare(cell) -> cfg``, the config the cell runs with) and its
    resources, less those the user set on the command line. Returns the file."""
    import statistics

    from focalbench.sweeps.plan import record_times, similarity_key

    times = record_times(plan.results_dir)
    fixed = user_launcher_keys(plan.overrides)
    jobs = []
    for group in groups:
        cfgs = [prepare(c) for c in group.cells]
        similar = times.get(similarity_key(cfgs[0]))
        resources = group_resources(cfgs, statistics.median(similar) if similar else None)
        jobs.append(
            {
                "fused": group.fused,
                "label": group.label,
                "run_ids": [c.run_id for c in group.cells],
                "configs": [OmegaConf.to_yaml(cfg, resolve=True) for cfg in cfgs],
                "resources": {k: v for k, v in resources.items() if k not in fixed},
            }
        )
    path = Path(plan.sweep_dir) / GROUPS_FILE
    record.write_json(path, {"groups": jobs})
    return path


def read_group_jobs(sweep_dir: Path) -> list[dict]:
    """The groups of ``groups.json`` in ``sweep_dir`` (empty when there is none)."""
    try:
        return list(json.loads((Path(sweep_dir) / GROUPS_FILE).read_text())["groups"])
    except (OSError, ValueError, KeyError, TypeError):
        return []


def group_job_resources(sweep_dir: Path, overrides) -> dict:
    """For a launcher: the resources of the group that a job's ``overrides`` name (``+fuse_group=N``); empty
    for a job that is not a group job."""
    index = group_index(overrides)
    groups = read_group_jobs(sweep_dir)
    if index is None or not 0 <= index < len(groups):
        return {}
    return dict(groups[index].get("resources") or {})


def group_index(overrides) -> int | None:
    for override in overrides:
        key, _, value = override.partition("=")
        if key.lstrip("+") == GROUP_KEY:
            return int(value)
    return None


def run_group_job(sweep_dir: Path, index: int) -> list:
    """Train group ``index`` of ``groups.json`` in ``sweep_dir``, as the in-process loop would
    (``fuse.run_groups``): fused when it is, members already done skipped, members locked elsewhere left to
    their process. Returns each member's ``RunOutcome``."""
    from focalbench.errors import LaunchError
    from focalbench.sweeps.fuse import FuseGroup, run_groups

    groups = read_group_jobs(sweep_dir)
    if not 0 <= index < len(groups):
        raise LaunchError(f"{Path(sweep_dir) / GROUPS_FILE} has no group {index}: was the sweep restarted?")
    job = groups[index]
    cfgs = [OmegaConf.create(text) for text in job["configs"]]
    group = FuseGroup(list(cfgs), bool(job["fused"]), "", [job.get("label", "")] * len(cfgs))
    return run_groups([group], lambda cfg: cfg)
