"""Running a planned sweep: in this process, or through ``@hydra.main`` in multirun mode, so that Hydra's
launchers (basic, joblib, submitit local and SLURM, and focalbench's Ray launcher) and sweepers work unchanged.

Every launcher trains fused groups: the sweep plans them first (:func:`focalbench.sweeps.fuse.plan_groups`,
with ``--jobs`` workers to keep busy), then the in-process loop runs them one after another, and a launcher
gets one job per group (:mod:`focalbench.sweeps.jobs`). An open-ended sweeper (Optuna) picks one cell per job.

The parent process draws one progress bar (runs finished out of the total, with ETA) by watching the run
records appear on disk; this works the same whether the runs execute in this process, in joblib workers or in
SLURM jobs. Workers log to their run's ``train.log`` only.

Each run is trained once, whatever runs beside it:

- a grid that lists one run twice (the same run id, e.g. ``gamma=2,2.0``) trains it once: the in-process
  loop skips repeats, and Hydra's launchers get the list of repeated jobs (``duplicates.json`` in the sweep
  folder), which the task function skips;
- a run that another process is training (its lock is live, see :mod:`focalbench.training.lock`) is shown
  as running elsewhere and left to it; after the rest of the grid, the sweep waits for those records, and
  trains a run itself if its lock goes stale (the other process died).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from focalbench.config import config_dir, register_schema
from focalbench.errors import ConfigError, LaunchError
from focalbench.sweeps.plan import Cell, SweepPlan
from focalbench.training import record

# inprocess: focalbench's own sequential loop in this process (the default for --jobs 1); the others are
# Hydra's launchers, reached through @hydra.main in multirun mode.
BUILTIN_LAUNCHERS = ("inprocess", "basic", "joblib", "submitit_local", "submitit_slurm", "ray")
# Launchers whose runs execute on other machines: a run id there must not depend on this machine.
REMOTE_LAUNCHERS = ("submitit_slurm", "slurm", "ray")
# The stock submitit launchers, replaced by their focalbench subclasses that size each group's job
# (hydra_plugins/focalbench_launchers/submitit_groups.py); the slurm preset names its class itself.
GROUP_LAUNCHER_CLASSES = {
    "submitit_local": "hydra_plugins.focalbench_launchers.submitit_groups.GroupLocalLauncher",
    "submitit_slurm": "hydra_plugins.focalbench_launchers.submitit_groups.GroupSlurmLauncher",
}
DUPLICATES_FILE = "duplicates.json"
SKIPPED = "skipped"  # read_duplicates' mark for a job whose combination does not apply
LAUNCHER_LOG = "launcher.log"  # in the sweep folder: the launcher's own report when it failed

Say = Callable[[str], None]


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


def hydra_argv(plan: SweepPlan, launcher: str, jobs: int, groups: int | None = None) -> list[str]:
    """The command line handed to ``@hydra.main``: the user's overrides plus where Hydra may write. With
    ``groups``, one job per fused group (``+fuse_group=0,...``; the cells are in ``groups.json``): of the
    user's overrides only Hydra's own are kept (launcher settings, config folders)."""
    if groups is None:
        grid = list(plan.overrides)
    else:
        from focalbench.sweeps.jobs import GROUP_KEY

        grid = [o for o in plan.overrides if o.lstrip("+~").startswith("hydra")]
        grid.append(f"+{GROUP_KEY}={','.join(str(i) for i in range(groups))}")
    argv = [
        "focalbench",
        "--multirun",
        *grid,
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
    if launcher in GROUP_LAUNCHER_CLASSES:
        argv.append(f"hydra.launcher._target_={GROUP_LAUNCHER_CLASSES[launcher]}")
    return argv


def _quoted(path: Path) -> str:
    """A path as a quoted value of Hydra's override grammar (paths may hold '=' or ',')."""
    return "'" + str(path).replace("\\", "\\\\").replace("'", "\\'") + "'"


def is_remote(launcher: str) -> bool:
    return launcher in REMOTE_LAUNCHERS or "slurm" in launcher


def check_launcher_identity(plan: SweepPlan, launcher: str) -> None:
    """A run id resolves ``device=auto`` on the machine that computes it; on a cluster the planner and the
    node would disagree, so remote launchers need an explicit device."""
    if not is_remote(launcher):
        return
    if any(str(c.cfg.device) == "auto" for c in plan.cells):
        raise ConfigError(
            f"device=auto with --launcher {launcher}: the runs execute on other machines, whose device "
            f"this one cannot resolve; set device=cuda or device=cpu"
        )


def run_sweep(
    plan: SweepPlan,
    launcher: str,
    jobs: int,
    show_progress: bool = True,
    *,
    force: bool = False,
    say: Say | None = None,
    fuse: bool | None = None,
    max_fuse: int | None = None,
) -> SweepOutcome:
    """Run every cell of ``plan`` not yet done, via Hydra multirun with ``launcher``; wait for them all,
    including the runs that other processes are training. ``force`` moves every record of the grid aside
    first, so that every run trains again. ``say`` prints a line (default: to the terminal).
    ``fuse``/``max_fuse``: how cells form fused groups (``focalbench.sweeps.fuse``), whatever the launcher."""
    from hydra.core.global_hydra import GlobalHydra

    check_launcher_identity(plan, launcher)
    register_schema()
    GlobalHydra.instance().clear()
    started = time.time()
    if plan.open_ended:
        plan.run_list.unlink(missing_ok=True)  # this sweep's trials note their run ids afresh
    watcher = _ProgressWatcher(plan, [], started, show_progress, say)
    if force:
        replace_records(plan, watcher.say)
    pending = [
        rid for rid in plan.unique_run_ids() if not record.is_done(record.run_dir(plan.results_dir, rid))
    ]
    watcher.pending = pending
    if launcher == "inprocess" and plan.open_ended:
        launcher = "basic"  # an open-ended sweeper (Optuna) needs Hydra's multirun to pick its trials
    if launcher == "inprocess" and pending:
        watcher.start()
        try:
            elsewhere = run_inprocess(plan, pending, jobs, watcher.say, fuse, max_fuse, watcher)
            wait_for_others(plan, pending, jobs, started, watcher.say, announced=elsewhere)
        finally:
            watcher.stop()
    elif pending or plan.open_ended:
        watcher.start()
        try:
            launch_with_hydra(plan, launcher, jobs, fuse=fuse, max_fuse=max_fuse, pending=pending)
            wait_for_others(plan, pending, jobs, started, watcher.say, train_here=not is_remote(launcher))
        finally:
            watcher.stop()
    return SweepOutcome(collect_statuses(plan), time.time() - started)


def launch_with_hydra(
    plan: SweepPlan,
    launcher: str,
    jobs: int,
    *,
    fuse: bool | None = None,
    max_fuse: int | None = None,
    pending: list[str] | None = None,
) -> None:
    """Run the ``pending`` runs of the grid through ``@hydra.main`` in multirun mode with ``launcher``: one
    job per fused group (planned for ``jobs`` workers); an open-ended sweeper picks one cell per job."""
    from hydra import main as hydra_main
    from hydra.core.global_hydra import GlobalHydra

    from focalbench.sweeps.task import sweep_task

    saved_argv = sys.argv
    if plan.open_ended:
        sys.argv = hydra_argv(plan, launcher, jobs)
        write_duplicates(plan)
    else:
        from focalbench.sweeps.fuse import plan_groups
        from focalbench.sweeps.jobs import write_group_jobs

        cells = list(first_cells(plan, pending if pending is not None else plan.unique_run_ids()).values())
        groups = plan_groups(cells, fuse, max_fuse, workers=jobs)
        write_group_jobs(plan, groups, lambda cell: cell_config(plan, cell, jobs))
        sys.argv = hydra_argv(plan, launcher, jobs, groups=len(groups))
    # Hydra prints a launcher's failure as a traceback: it goes to the sweep's launcher.log, and the user
    # gets one line naming the error and that file.
    captured = io.StringIO()
    failed = False
    try:
        with contextlib.redirect_stderr(captured):
            hydra_main(config_path=str(config_dir()), config_name="config", version_base="1.3")(sweep_task)()
    except SystemExit as exc:  # Hydra reports launcher errors itself and exits
        if exc.code not in (0, None):
            failed = True
            log = plan.sweep_dir / LAUNCHER_LOG
            record.write_atomic(log, captured.getvalue())
            raise LaunchError(
                f"the {launcher} launcher failed ({launcher_error(captured.getvalue())}); runs finished so "
                f"far are kept, rerun the same command to resume; details in {log}"
            ) from None
    finally:
        sys.argv = saved_argv
        GlobalHydra.instance().clear()
        if not failed:
            sys.stderr.write(captured.getvalue())


def launcher_error(text: str) -> str:
    """The last exception line of a traceback, short: ``TerminatedWorkerError: A worker process ...``
    (its first sentence, without the module path); ``exit code 1`` when there is none."""
    for line in reversed(text.strip().splitlines()):
        match = re.match(r"^(?:[\w.]+\.)?(\w+(?:Error|Exception|Exit)):\s*(.*)$", line.strip())
        if match:
            name, message = match.groups()
            return f"{name}: {message.split('. ')[0].rstrip('.')}" if message else name
    return "exit code 1"


def cell_config(plan: SweepPlan, cell: Cell, jobs: int):
    """The config a cell runs with in this process (results folder made absolute, quiet)."""
    from omegaconf import OmegaConf

    cfg = cell.cfg.copy()
    OmegaConf.update(cfg, "results_dir", str(plan.results_dir))
    OmegaConf.update(cfg, "jobs", jobs)
    OmegaConf.update(cfg, "quiet", True)
    return cfg


def first_cells(plan: SweepPlan, run_ids: list[str]) -> dict[str, Cell]:
    """The first cell of the grid with each run id in ``run_ids``."""
    wanted = set(run_ids)
    out: dict[str, Cell] = {}
    for cell in plan.cells:
        if cell.run_id in wanted and cell.run_id not in out:
            out[cell.run_id] = cell
    return out


def run_inprocess(
    plan: SweepPlan,
    pending: list[str],
    jobs: int,
    say: Say | None = None,
    fuse: bool | None = None,
    max_fuse: int | None = None,
    progress=None,
) -> set[str]:
    """Run the pending cells in this process, through the same ``execute_run`` as every launcher, without
    Hydra's per-job set-up (which composes each cell a second time): what Hydra's basic launcher does, minus
    its overhead. ``--launcher basic`` still goes through Hydra. Cells that can train together run as fused
    groups (``focalbench.sweeps.fuse``; ``fuse``/``max_fuse``); a cell repeated in the grid runs once; a run
    locked by another process is left to it (see :func:`wait_for_others`). ``progress`` draws one bar per
    fused group. Returns the run ids found running elsewhere."""
    from focalbench.sweeps.fuse import plan_groups, run_groups

    say = say or _print
    groups = plan_groups(list(first_cells(plan, pending).values()), fuse, max_fuse)
    outcomes = run_groups(groups, lambda cell: cell_config(plan, cell, jobs), progress, notify=say)
    elsewhere = set()
    for outcome in outcomes:
        if outcome.status == "locked":
            say(f"run {outcome.run_id} is running elsewhere ({outcome.error}); waiting for it after the rest")
            elsewhere.add(outcome.run_id)
    return elsewhere


def wait_for_others(
    plan: SweepPlan,
    pending: list[str],
    jobs: int,
    started: float,
    say: Say | None = None,
    announced: set[str] | None = None,
    train_here: bool = True,
) -> None:
    """Wait for the pending runs that other processes are training, polling their folders, until each is
    done or has failed there; a run whose lock goes stale (its process died), or that nobody ran, is trained
    here, unless ``train_here`` is False (a cluster launcher: this is a login node), when it is left
    missing (a rerun resumes it). Open-ended sweeps (Optuna) wait inside each trial instead."""
    if plan.open_ended:
        return
    from focalbench.training import lock as run_lock
    from focalbench.training.runner import execute_run, poll_s

    say = say or _print
    cells = first_cells(plan, pending)
    remaining = [rid for rid in pending if not _finished(plan, rid, started)]
    announced = set(announced or ())
    while remaining:
        for rid in list(remaining):
            rdir = record.run_dir(plan.results_dir, rid)
            if _finished(plan, rid, started):
                remaining.remove(rid)
                continue
            held = run_lock.inspect(rdir)
            if held is not None and not held.stale:
                if rid not in announced:
                    say(f"waiting for run {rid}: running elsewhere ({held.holder()})")
                    announced.add(rid)
                continue
            if not train_here:
                remaining.remove(rid)
                continue
            outcome = execute_run(cell_config(plan, cells[rid], jobs), quiet=True, notify=say)
            if outcome.status != "locked":
                remaining.remove(rid)
        if remaining:
            time.sleep(poll_s())


def _finished(plan: SweepPlan, rid: str, started: float) -> bool:
    """Done, or failed since this sweep started (an error.json from this sweep or from another process)."""
    rdir = record.run_dir(plan.results_dir, rid)
    err = rdir / record.ERROR_FILE
    if record.is_done(rdir):
        return True
    try:
        return err.stat().st_mtime >= started
    except FileNotFoundError:
        return False


def replace_records(plan: SweepPlan, say: Say | None = None) -> None:
    """--force: move every record of the grid aside (under its lock), so that every run trains again. A run
    that another process is training now is left to it."""
    from focalbench.training import lock as run_lock

    say = say or _print
    moved = 0
    for rid in plan.unique_run_ids():
        rdir = record.run_dir(plan.results_dir, rid)
        if not rdir.is_dir():
            continue
        claim = run_lock.try_acquire(rdir, say)
        if not isinstance(claim, run_lock.RunLock):
            say(f"run {rid} is running elsewhere ({claim.holder()}): its new record is kept, not replaced")
            continue
        with claim:
            if record.move_aside(rdir, plan.results_dir) is not None:
                moved += 1
    if moved:
        say(f"--force: moved {moved} old record(s) to {plan.results_dir / record.REPLACED_DIR}")


def write_duplicates(plan: SweepPlan) -> None:
    """For Hydra's launchers: the job numbers (grid positions) that repeat an earlier cell's run id, which
    the task function skips (see focalbench.sweeps.task)."""
    if plan.open_ended:
        return
    seen: set[str] = set()
    repeats = []
    for num, cell in enumerate(plan.cells):
        job = num if cell.job is None else cell.job
        if cell.run_id in seen:
            repeats.append({"job": job, "run_id": cell.run_id})
        seen.add(cell.run_id)
    skipped = [s.job for s in plan.skipped]  # combinations that do not apply (gamma=2 with loss=ce)
    record.write_json(plan.sweep_dir / DUPLICATES_FILE, {"repeats": repeats, "skipped": skipped})


def read_duplicates(sweep_dir: Path) -> dict[int, str]:
    """{job number: run id} of the jobs that repeat an earlier job's run; a skipped job (a combination that
    does not apply) maps to ``SKIPPED``."""
    try:
        data = json.loads((Path(sweep_dir) / DUPLICATES_FILE).read_text())
        found = {int(r["job"]): str(r["run_id"]) for r in data.get("repeats", [])}
        return found | {int(job): SKIPPED for job in data.get("skipped", [])}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _print(message: str) -> None:
    from rich.markup import escape

    from focalbench.console import make_console

    make_console().print(escape(message))


def collect_statuses(plan: SweepPlan) -> dict[str, str]:
    return {rid: record.status(record.run_dir(plan.results_dir, rid)) for rid in plan.unique_run_ids()}


class _ProgressWatcher:
    """A rich progress bar fed by polling the run directories for finished records."""

    def __init__(self, plan: SweepPlan, pending: list[str], started: float, enabled: bool, say: Say | None):
        self.plan, self.pending, self.started, self.enabled = plan, pending, started, enabled
        self._say = say
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self.progress = None
        self._done: set[str] = set()

    def say(self, message: str) -> None:
        """Print a line above the progress bar (or through the sweep's own printer)."""
        if self._say is not None:
            self._say(message)
        elif self.progress is not None and not self._stop.is_set():
            from rich.markup import escape

            self.progress.console.print(escape(message))
        else:
            _print(message)

    def _finished(self, rid: str) -> bool:
        if rid not in self._done and _finished(self.plan, rid, self.started):
            self._done.add(rid)
        return rid in self._done

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
            # combinations of the grid that do not apply (gamma=2 with loss=ce), not run
            "skipped": [
                {"overrides": s.overrides, "subject": s.subject, "setting": s.setting, "reason": s.reason}
                for s in plan.skipped
            ],
            "run_ids": plan.unique_run_ids(),
            "wall_time_s": round(outcome.wall_time_s, 3),
        },
    )
    return Path(path)
