"""A Hydra launcher on Ray's task API (``focalbench sweep --launcher ray``): one Ray task per job.

A focalbench sweep hands it one job per fused group (:mod:`focalbench.sweeps.jobs`); each task asks Ray for
the group's CPUs and GPUs (``num_cpus``: the pinned ``threads``, else 1; ``num_gpus``: 1 for a group on
CUDA, else 0), unless ``hydra.launcher.num_cpus`` / ``num_gpus`` set them for every task (a fraction of a
GPU packs several groups on one). The launcher connects to ``hydra.launcher.address`` (``HOST:6379`` or
``ray://HOST:10001``), else to ``$RAY_ADDRESS``, else starts a local Ray for the sweep and stops it after.

The workers need focalbench importable (installed on every node, or the same ``PYTHONPATH``) and the results
folder at the same path as the driver: they write the records there, and the sweep reads them.

A task whose worker dies (killed, out of memory) loses its group only: the launcher says which, the other
groups go on, and the sweep lists that group's runs as missing (a rerun trains them).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, run_job, setup_globals
from hydra.plugins.launcher import Launcher
from omegaconf import DictConfig, OmegaConf, open_dict

log = logging.getLogger(__name__)


class RayLauncher(Launcher):
    def __init__(
        self,
        address: str | None = None,
        num_cpus: float | None = None,
        num_gpus: float | None = None,
        init: dict | None = None,
        **_: Any,
    ) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.init = (
            OmegaConf.to_container(init, resolve=True) if OmegaConf.is_config(init) else dict(init or {})
        )
        self.config: DictConfig | None = None
        self.hydra_context = None
        self.task_function = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def task_options(self, resources: dict) -> dict:
        """Ray's options for one task: the launcher's settings, else the group's resources."""
        cpus = self.num_cpus if self.num_cpus is not None else resources.get("cpus_per_task", 1)
        gpus = self.num_gpus if self.num_gpus is not None else resources.get("gpus_per_node", 0)
        return {"num_cpus": cpus, "num_gpus": gpus, "max_retries": 0}

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import ray

        from focalbench.sweeps.jobs import group_job_resources

        assert self.config is not None
        setup_globals()
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        started_here = not ray.is_initialized()
        if started_here:
            ray.init(**self.init_arguments())
        try:
            task = ray.remote(_run_job)
            refs = []
            for num, overrides in enumerate(job_overrides, start=initial_job_idx):
                options = self.task_options(group_job_resources(sweep_dir.parent, overrides))
                refs.append(
                    task.options(**options).remote(
                        self.hydra_context,
                        self.config,
                        self.task_function,
                        list(overrides),
                        num,
                        Singleton.get_state(),
                    )
                )
            return [
                self._result(ray, ref, num, overrides)
                for num, (ref, overrides) in enumerate(
                    zip(refs, job_overrides, strict=True), start=initial_job_idx
                )
            ]
        finally:
            if started_here:
                ray.shutdown()

    def init_arguments(self) -> dict:
        """``ray.init``'s arguments: the address (a new local Ray when none), and for a new local Ray no
        dashboard; ``hydra.launcher.init`` adds or replaces any."""
        address = self.address or os.environ.get("RAY_ADDRESS") or "local"
        kwargs: dict[str, Any] = {"address": address, "log_to_driver": False}
        if address == "local":
            kwargs["include_dashboard"] = False
        return {**kwargs, **self.init}

    @staticmethod
    def _result(ray, ref, num: int, overrides) -> JobReturn:
        """The job's result; a task whose worker died gives a finished job without a value (its group's
        runs are then missing, not the whole sweep lost)."""
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            print(f"ray: job {num} ({' '.join(overrides)}) failed: {first}", file=sys.stderr)
            ret = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED)
            ret.return_value = float("nan")
            return ret


def _run_job(hydra_context, config: DictConfig, task_function, overrides: list[str], num: int, singletons):
    """One job in a Ray worker: the job's config composed as Hydra's own launchers do, then the task."""
    Singleton.set_state(singletons)
    setup_globals()
    sweep_config = hydra_context.config_loader.load_sweep_config(config, list(overrides))
    with open_dict(sweep_config.hydra.job) as job:
        job.id = f"ray_{num}"
        job.num = num
    return run_job(
        hydra_context=hydra_context,
        task_function=task_function,
        config=sweep_config,
        job_dir_key="hydra.sweep.dir",
        job_subdir_key="hydra.sweep.subdir",
    )
