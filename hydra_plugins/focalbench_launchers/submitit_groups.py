"""hydra-submitit-launcher with resources per fused group (``focalbench sweep --launcher submitit_slurm``).

The stock launcher submits a sweep as one job array, every task with the same resources. A focalbench sweep
hands it one job per fused group (:mod:`focalbench.sweeps.jobs`), and groups differ in size: this launcher
submits one array per distinct set of group resources (GPUs, CPUs, memory, time; read from the sweep's
``groups.json``), all before waiting for any, so that groups of every size queue at once. Everything else
(the executor, the parameters of ``hydra.launcher``, how each task runs its job) is the stock launcher's.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    BaseSubmititLauncher,
    LocalLauncher,
    SlurmLauncher,
)
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


class _GroupResources(BaseSubmititLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from focalbench.sweeps.jobs import group_job_resources

        assert self.config is not None
        init_keys = {"submitit_folder", "max_num_timeout"}
        init_params = {"folder": self.params["submitit_folder"]}
        if "max_num_timeout" in self.params:
            init_params[f"{self._EXECUTOR}_max_num_timeout"] = self.params["max_num_timeout"]
        baseparams = set(OmegaConf.structured(BaseQueueConf).keys())
        base = {
            (k if k in baseparams else f"{self._EXECUTOR}_{k}"): v
            for k, v in self.params.items()
            if k not in init_keys
        }
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # one array per distinct resource set, in the order of its first job
        arrays: dict[str, list[tuple]] = {}
        for num, overrides in enumerate(job_overrides, start=initial_job_idx):
            resources = group_job_resources(sweep_dir.parent, overrides)
            log.info(f"\t#{num} : {' '.join(filter_overrides(overrides))} {resources}")
            job = (list(overrides), "hydra.sweep.dir", num, f"job_id_for_{num}", Singleton.get_state())
            arrays.setdefault(json.dumps(resources, sort_keys=True), []).append(job)
        submitted = {}  # job number -> its submitit job
        for key, jobs in arrays.items():
            executor = submitit.AutoExecutor(cluster=self._EXECUTOR, **init_params)
            executor.update_parameters(**{**base, **_resource_params(json.loads(key), self._EXECUTOR)})
            handles = executor.map_array(self, *zip(*jobs, strict=True))
            submitted.update({job[2]: handle for job, handle in zip(jobs, handles, strict=True)})
        return [submitted[num].results()[0] for num in sorted(submitted)]  # in job order, as Hydra expects


def _resource_params(resources: dict[str, Any], executor: str) -> dict[str, Any]:
    """A group's resources as submitit parameters; a local executor has no memory or CPU reservation."""
    if executor == "local":
        return {k: v for k, v in resources.items() if k in ("gpus_per_node", "timeout_min")}
    return dict(resources)


class GroupSlurmLauncher(_GroupResources, SlurmLauncher):
    """``--launcher submitit_slurm`` (and the ``slurm`` preset): one array task per group, sized per group."""


class GroupLocalLauncher(_GroupResources, LocalLauncher):
    """``--launcher submitit_local``: the same submission path, on this machine."""
