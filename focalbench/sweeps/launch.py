"""Running a planned sweep through ``@hydra.main`` in multirun mode, so that Hydra's launchers (basic, joblib,
submitit local and SLURM) and sweepers work unchanged.

The parent process draws one progress bar (runs finished out of the total, with ETA) by watching the run
records appear on disk; this works the same whether the runs execute in this process, in joblib workers or in
SLURM jobs. Workers log to their run's ``train.log`` only.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from focalbench.config import config_dir, register_schema
from focalbench.errors import ConfigError, LaunchError
from focalbench.sweeps.plan import SweepPlan
from focalbench.training import record

# inprocess: focalbench's own sequential loop in this process (the default for --jobs 1); the others are
# Hydra's launchers, reached through @hydra.main in multirun mode.
BUILTIN_LAUNCHERS = ("inprocess", "basic", "joblib", "submitit_local", "submitit_slurm")


def available_launchers() -> list[str]:
    presets = [p.stem for p in (config_dir() / "hydra" / "launcher").glob("*.yaml")]
    return sorted(set(BUILTIN_LAUNCHERS) | set(presets))


def resolve_launcher(launcher: str | None, jobs: int) -> str:
    """``--launcher`` as given, else joblib for ``--jobs`` > 1, else the in-process loop."""
    if launcher is None:
        return "joblib" if jobs > 1 else "inprocess"
    if launcher not in available_launchers():
        raise ConfigError(f"unknown launcher '{launcher}'; choose one of: {', '.join(available_launchers())}")
    return launcher


@dataclass
class SweepOutcome:
    statuses: dict[str, str]  # run_id -> ok | diverged | error | missing
    wall_time_s: float

    @property
    def failed(self) -> list[str]:
        return [rid for rid, s in self.statuses.items() if s != "ok"]


def hydra_argv(plan: SweepPlan, launcher: str, jobs: int) -> list[str]:
    """The command line handed to ``@hydra.main``: the user's overrides plus where Hydra may write."""
    argv = [
        "focalbench",
        "--multirun",
        *plan.overrides,
        f"results_dir={_quoted(plan.results_dir)}",
        f"jobs={jobs}",
        "quiet=true",
        f"hydra/launcher={launcher}",
        f"hydra.sweep.dir={_quoted(plan.sweep_dir / 'hydra')}",
        "hydra.sweep.subdir=${hydra.job.num}",
        "hydra.output_subdir=null",
        "hydra/job_logging=disabled",
        "hydra/hydra_logging=disabled",
    ]
    if launcher == "joblib":
        argv.append(f"hydra.launcher.n_jobs={jobs}")
    return argv


def _quoted(path: Path) -> str:
    """A path as a quoted value of Hydra's override grammar (paths may hold '=' or ',')."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def run_sweep(
    plan: SweepPlan,
    launcher: str,
    jobs: int,
    show_progress: bool = True,
    fuse: bool | None = None,
    max_fuse: int | None = None,
) -> SweepOutcome:
    """Run every cell of ``plan`` not yet done, via Hydra multirun with ``launcher``; wait for them all.
    ``fuse``/``max_fuse``: fused groups for the in-process launcher (``focalbench.sweeps.fuse``)."""
    from hydra import main as hydra_main
    from hydra.core.global_hydra import GlobalHydra

    from focalbench.sweeps.task import sweep_task

    register_schema()
    GlobalHydra.instance().clear()
    started = time.time()
    if plan.open_ended:
        plan.run_list.unlink(missing_ok=True)  # this sweep's trials note their run ids afresh
    pending = [
        rid for rid in plan.unique_run_ids() if not record.is_done(record.run_dir(plan.results_dir, rid))
    ]
    watcher = _ProgressWatcher(plan, pending, started, show_progress)
    if launcher == "inprocess" and plan.open_ended:
        launcher = "basic"  # an open-ended sweeper (Optuna) needs Hydra's multirun to pick its trials
    if launcher == "inprocess" and pending:
        watcher.start()
        try:
            run_inprocess(plan, pending, jobs, fuse=fuse, max_fuse=max_fuse, progress=watcher)
        finally:
            watcher.stop()
    elif pending or plan.open_ended:
        saved_argv = sys.argv
        sys.argv = hydra_argv(plan, launcher, jobs)
        watcher.start()
        try:
            hydra_main(config_path=str(config_dir()), config_name="config", version_base="1.3")(sweep_task)()
        except SystemExit as exc:  # Hydra reports launcher errors itself and exits
            if exc.code not in (0, None):
                watcher.stop()
                raise LaunchError(
                    f"the {launcher} launcher failed (exit code {exc.code}); runs finished so far "
                    f"are kept, rerun the same command to resume"
                ) from None
        finally:
            sys.argv = saved_argv
            GlobalHydra.instance().clear()
            watcher.stop()
    return SweepOutcome(collect_statuses(plan), time.time() - started)


def pending_cells(plan: SweepPlan, pending: list[str]) -> list:
    """The plan's cells whose run ids are pending, each run id once, in grid order."""
    todo, cells = set(pending), []
    for cell in plan.cells:
        if cell.run_id in todo:
            todo.discard(cell.run_id)
            cells.append(cell)
    return cells


def run_inprocess(
    plan: SweepPlan,
    pending: list[str],
    jobs: int,
    fuse: bool | None = None,
    max_fuse: int | None = None,
    progress=None,
) -> None:
    """Run the pending cells in this process, through the same ``execute_run`` as every launcher, without
    Hydra's per-job set-up (which composes each cell a second time): what Hydra's basic launcher does, minus
    its overhead. Cells that can train together run as fused groups (``focalbench.sweeps.fuse``).
    ``--launcher basic`` still goes through Hydra."""
    from omegaconf import OmegaConf

    from focalbench.sweeps.fuse import plan_groups, run_groups

    def prepare(cell):
        cfg = cell.cfg.copy()
        OmegaConf.update(cfg, "results_dir", str(plan.results_dir))
        OmegaConf.update(cfg, "jobs", jobs)
        OmegaConf.update(cfg, "quiet", True)
        return cfg

    run_groups(plan_groups(pending_cells(plan, pending), fuse, max_fuse), prepare, progress)


def collect_statuses(plan: SweepPlan) -> dict[str, str]:
    statuses = {}
    for rid in plan.unique_run_ids():
        rdir = record.run_dir(plan.results_dir, rid)
        metrics = record.read_metrics(rdir)
        if metrics is not None:
            statuses[rid] = metrics.get("status", "ok")
        elif record.read_error(rdir) is not None:
            statuses[rid] = "error"
        else:
            statuses[rid] = "missing"
    return statuses


class _ProgressWatcher:
    """A rich progress bar fed by polling the run directories for finished records."""

    def __init__(self, plan: SweepPlan, pending: list[str], started: float, enabled: bool):
        self.plan, self.pending, self.started, self.enabled = plan, pending, started, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.progress = None

    def _finished(self, rid: str) -> bool:
        rdir = record.run_dir(self.plan.results_dir, rid)
        err = rdir / record.ERROR_FILE
        return record.is_done(rdir) or (err.is_file() and err.stat().st_mtime >= self.started)

    def start(self) -> None:
        if not self.enabled:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.fields[prefix]}{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[unit]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        total = None if self.plan.open_ended else len(self.pending)
        self.task = self.progress.add_task(self.plan.name, total=total, prefix="sweep ", unit="runs")
        self.progress.start()
        self._thread.start()

    def add_group(self, label: str, epochs: int):
        """A bar for one fused group (its epochs), labelled with its members; None when not shown."""
        if self.progress is None:
            return None
        return self.progress.add_task(label, total=epochs, prefix="  ", unit="epochs")

    def update(self, task, epochs_done: int) -> None:
        if self.progress is not None and task is not None:
            self.progress.update(task, completed=epochs_done)

    def _count(self) -> int:
        if self.plan.open_ended:  # trials are not known in advance: count those noted so far
            return len(self.plan.unique_run_ids())
        return sum(self._finished(r) for r in self.pending)

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            self.progress.update(self.task, completed=self._count())

    def stop(self) -> None:
        if self.progress is None or self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.progress.update(self.task, completed=self._count())
        self.progress.stop()


def write_sweep_list(plan: SweepPlan, outcome: SweepOutcome) -> Path:
    """``sweeps/<name>/sweep.json``: the overrides, and per cell its overrides, run id and status."""
    path = plan.sweep_dir / "sweep.json"
    record.write_json(
        path,
        {
            "name": plan.name,
            "overrides": plan.overrides,
            "sweeper": plan.sweeper,
            "runs": [
                {"run_id": c.run_id, "overrides": c.overrides, "status": outcome.statuses.get(c.run_id)}
                for c in plan.cells
            ]
            or [{"run_id": rid, "status": status} for rid, status in outcome.statuses.items()],
            "run_ids": plan.unique_run_ids(),
            "wall_time_s": round(outcome.wall_time_s, 3),
        },
    )
    return Path(path)
