"""The task function that Hydra's launchers call once per job (in this process, in joblib workers, in a
submitit / SLURM job or in a Ray task).

A grid sweep hands the launcher one job per fused group (``+fuse_group=N``, see :mod:`focalbench.sweeps.jobs`):
the task trains that group. An open-ended sweeper (Optuna) picks one cell per job: the task runs the cell
through the same code path as ``focalbench run``, quietly, and returns the validation balanced accuracy, the
objective the sweeper maximises (never a test metric).
"""

from __future__ import annotations

from omegaconf import DictConfig

from focalbench.sweeps.jobs import GROUP_KEY

RUN_LIST = "run_ids.txt"


def sweep_task(cfg: DictConfig) -> float:
    """Run one cell; note its run id in the sweep's run list; return its validation balanced accuracy
    (NaN when the run failed or has no validation split, which Optuna records as a failed trial).

    A cell that repeats an earlier cell's run id in the grid is skipped (the earlier job runs it). A run that
    another process is training is left to it: the parent process waits for that record after the launcher
    returns. An open-ended sweeper (Optuna) needs the value now, so its trial waits for it in place."""
    from focalbench.training.runner import execute_run

    if GROUP_KEY in cfg:
        run_group(int(cfg[GROUP_KEY]))
        return float("nan")
    if _repeated_cell(cfg):
        return float("nan")
    outcome = execute_run(cfg, quiet=True, wait=_open_ended())
    note_run_id(outcome.run_id)
    val = (outcome.metrics or {}).get("val") or {}
    return float(val.get("balanced_accuracy", float("nan")))


def run_group(index: int) -> None:
    """Train group ``index`` of the sweep this Hydra job belongs to (its ``groups.json`` is beside Hydra's
    sweep folder). Failures are recorded per member (``error.json``), never raised."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from focalbench.sweeps.jobs import run_group_job

    run_group_job(Path(HydraConfig.get().sweep.dir).parent, index)


def _repeated_cell(cfg: DictConfig) -> bool:
    """Whether this job repeats an earlier job's run id, or is a combination that does not apply (both listed
    by the parent in duplicates.json)."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    from focalbench.identity import run_id
    from focalbench.sweeps.launch import SKIPPED, read_duplicates

    if not HydraConfig.initialized():
        return False
    hc = HydraConfig.get()
    num = hc.job.get("num", None)
    repeats = read_duplicates(Path(hc.sweep.dir).parent)
    if num is None or int(num) not in repeats:
        return False
    # a combination that does not apply (gamma=2 with loss=ce): the parent left it out of the plan
    return repeats[int(num)] in (SKIPPED, run_id(cfg))


def _open_ended() -> bool:
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return False
    target = str(HydraConfig.get().sweeper.get("_target_", ""))
    return not target.endswith("BasicSweeper")


def note_run_id(run_id: str) -> None:
    """Append the run id to ``run_ids.txt`` beside Hydra's sweep folder: an open-ended sweeper (Optuna)
    chooses its cells as it goes, and this list is how the sweep knows its runs afterwards.
    One short line per O_APPEND write, so concurrent workers do not interleave."""
    from pathlib import Path

    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    sweep_dir = Path(HydraConfig.get().sweep.dir).parent
    with open(sweep_dir / RUN_LIST, "a", encoding="utf-8") as f:
        f.write(run_id + "\n")
