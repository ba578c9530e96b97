"""The task function that Hydra's launchers call once per grid cell (in this process, in joblib workers, or in a
submitit / SLURM job). It runs the cell through the same code path as ``focalbench run``, quietly, and returns
the validation balanced accuracy, the objective a sweeper such as Optuna maximises (never a test metric).
"""

from __future__ import annotations

from omegaconf import DictConfig


def sweep_task(cfg: DictConfig) -> float | None:
    from focalbench.training.runner import execute_run

    outcome = execute_run(cfg, quiet=True)
    metrics = outcome.metrics or {}
    val = metrics.get("val") or {}
    return val.get("balanced_accuracy")
