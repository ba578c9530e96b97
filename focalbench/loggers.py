"""Trackers: each finished run logged to MLflow, TensorBoard or Weights & Biases (the ``logger`` config group).

``logger=mlflow``, ``logger=tensorboard``, ``logger=wandb`` or several (``logger=[mlflow,tensorboard]``)
choose the trackers; ``logger=none`` (the default) chooses none, and then no tracker library is imported.

Contract:

- A run is logged **from its finished record**, after metrics.json (written last, atomically) is on disk:
  the record stays the source of truth, and every tracker shows exactly what the record holds. Each run is
  logged as its own tracker run, so the members of a fused group (trained in one process) are separate runs.
- Each run logs its resolved config as parameters (flattened, ``optim.lr``), its run id, cell, status and
  record path as tags, its history (``history.csv``) as metrics per epoch (step = epoch), its final metrics
  (``test.balanced_accuracy``, ``val.nll``, ``calibration.ece_ts``, ``timing.train_time_s``, ...) and its
  record files as artifacts (TensorBoard, which has no artifacts, gets the record path as text).
- A run that is trained is logged. A run whose record is reused (already done) is logged only when the
  tracker has no run for it yet (looked up by its run id), so turning a logger on for records already made
  logs them once, and running a command again does not log duplicates. ``--force`` trains again and logs
  the new record as a new tracker run.
- A sweep's report is logged once per sweep folder as its own run, the sweep's runs as its children where
  the tracker has that notion: MLflow sets each run's ``mlflow.parentRunId`` tag (a run in several sweeps is
  shown under the last one); TensorBoard writes ``<save_dir>/sweeps/<name>``; wandb logs a ``sweep-report``
  run whose config lists the run ids.
- A tracker's failure (an unreachable server, a full disk) is one warning line on stderr per tracker
  and process, after which that tracker is not tried again in the process; it never fails a run or changes
  its record. (A chosen tracker whose package is not installed is refused at plan time instead:
  :func:`focalbench.config.validate_logger`.)
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LOGGERS = ("mlflow", "tensorboard", "wandb")
RUN_ID_TAG = "focalbench.run_id"
SWEEP_TAG = "focalbench.sweep_dir"
# The record's files a tracker gets as artifacts: every file of the run folder but its lock (and temporary
# files, which start with a dot).
SKIPPED_FILES = ("lock.json",)
# Sections of metrics.json whose numbers are the run's final metrics.
FINAL_SECTIONS = ("test", "val", "best_val", "calibration", "timing", "divergence")

Warn = Callable[[str], None]

# Trackers that failed in this process: not tried again (one warning each, not one per run).
_failed: set[str] = set()


def chosen(cfg: Any) -> dict[str, dict]:
    """The chosen trackers and their settings, ``{name: {key: value}}``; ``{}`` for ``logger=none``. Imports
    nothing: a run without a logger pays nothing for this module."""
    node = cfg.get("logger") if hasattr(cfg, "get") else getattr(cfg, "logger", None)
    if not node:
        return {}
    from omegaconf import OmegaConf

    tree = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node)
    return {name: dict(tree[name] or {}) for name in LOGGERS if name in tree}


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _guarded(name: str, what: str, action: Callable[[], Any], warn: Warn | None) -> Any:
    """``action()``; on any exception, one warning (the first for ``name`` in this process) and None."""
    if name in _failed:
        return None
    try:
        return action()
    except Exception as exc:  # a tracker must never fail a run or a sweep
        _failed.add(name)
        (warn or _stderr)(
            f"warning: logger {name} failed while logging {what} ({_first_line(exc)}); not logging to "
            f"{name} again in this process; the records on disk are complete"
        )
        return None


# ----------------------------------------------------------------------------------------------------------
# A finished record, read back from disk
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RunRecord:
    """What a tracker logs of one run, read from its folder."""

    run_id: str
    path: Path
    config: dict
    metrics: dict
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.metrics.get('cell', '')} seed={self.metrics.get('seed', '')} [{self.run_id}]".strip()

    @property
    def tags(self) -> dict[str, str]:
        return {
            RUN_ID_TAG: self.run_id,
            "focalbench.record": str(self.path),
            "focalbench.cell": str(self.metrics.get("cell", "")),
            "focalbench.status": str(self.metrics.get("status", "")),
            "focalbench.record_version": str(self.metrics.get("record_version", "")),
        }

    def params(self) -> dict[str, str]:
        """The resolved config, flattened to dotted keys, without the logger's own settings."""
        tree = {k: v for k, v in self.config.items() if k != "logger"}
        return {k: _param_value(v) for k, v in flatten(tree).items()}

    def final_metrics(self) -> dict[str, float]:
        out = {}
        for section in FINAL_SECTIONS:
            node = self.metrics.get(section)
            if isinstance(node, dict):
                for key, value in flatten(node).items():
                    if _is_number(value):
                        out[f"{section}.{key}"] = float(value)
        return out

    def files(self) -> list[Path]:
        return sorted(
            p
            for p in self.path.iterdir()
            if p.is_file() and p.name not in SKIPPED_FILES and not p.name.startswith(".")
        )


def read_record(rdir: Path) -> RunRecord:
    """The finished record in run folder ``rdir`` (metrics.json, config.yaml, history.csv)."""
    import yaml

    rdir = Path(rdir).resolve()
    metrics = json.loads((rdir / "metrics.json").read_text())
    config = yaml.safe_load((rdir / "config.yaml").read_text()) or {}
    history = []
    path = rdir / "history.csv"
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                parsed = {k: _float(v) for k, v in row.items()}
                history.append({k: v for k, v in parsed.items() if v is not None})
    return RunRecord(str(metrics.get("run_id", rdir.name)), rdir, config, metrics, history)


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts to one level of dotted keys; lists and scalars are leaves."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, full + "."))
        else:
            out[full] = value
    return out


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:6000]  # MLflow's limit on a parameter's value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _float(text: str | None) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _epoch(row: dict[str, float], index: int) -> int:
    return int(row.get("epoch", index + 1))


# ----------------------------------------------------------------------------------------------------------
# Entry points: a run, a run outcome, a sweep
# ----------------------------------------------------------------------------------------------------------


def log_run(cfg: Any, rdir: Path, *, only_new: bool = False, warn: Warn | None = None) -> None:
    """Log the finished record in ``rdir`` to every tracker ``cfg`` chooses; with ``only_new``, only to the
    trackers that have no run with this run id yet. Never raises (see the module's contract)."""
    trackers = chosen(cfg)
    if not trackers:
        return
    try:
        record = read_record(rdir)
    except Exception as exc:  # a record that cannot be read is not logged; the run itself is unaffected
        (warn or _stderr)(
            f"warning: run {Path(rdir).name} not logged: its record cannot be read ({_first_line(exc)})"
        )
        return
    for name, settings in trackers.items():

        def action(name=name, settings=settings):
            tracker = TRACKERS[name](settings, str(cfg.results_dir))
            if not (only_new and tracker.has_run(record.run_id)):
                tracker.log_run(record)

        _guarded(name, f"run {record.run_id}", action, warn)


def log_outcome(cfg: Any, outcome, warn: Warn | None = None) -> None:
    """Log a ``RunOutcome``: a trained run (ok, diverged) always, a reused one (skipped) when new to the
    tracker; a failed or locked run not (its record is not finished here)."""
    if not chosen(cfg) or outcome.status not in ("ok", "diverged", "skipped"):
        return
    log_run(cfg, outcome.run_dir, only_new=outcome.status == "skipped", warn=warn)


def log_sweep(
    cfg: Any,
    sweep_dir: Path,
    name: str,
    run_dirs: list[Path],
    overrides: list[str],
    warn: Warn | None = None,
) -> None:
    """Log a sweep's report (the files in ``sweep_dir``) once as its own tracker run, with the sweep's
    finished runs (``run_dirs``) as its children; runs the tracker does not have yet are logged first."""
    trackers = chosen(cfg)
    if not trackers:
        return
    from focalbench.training import record

    done = [Path(d) for d in run_dirs if record.is_done(Path(d))]  # finished records of this version only
    for d in done:
        log_run(cfg, d, only_new=True, warn=warn)
    for tracker_name, settings in trackers.items():

        def action(tracker_name=tracker_name, settings=settings):
            tracker = TRACKERS[tracker_name](settings, str(cfg.results_dir))
            tracker.log_sweep(Path(sweep_dir).resolve(), name, [d.name for d in done], overrides)

        _guarded(tracker_name, f"sweep {name}", action, warn)


def locations(cfg: Any) -> dict[str, str]:
    """Where each chosen tracker writes, ``{name: uri or folder}`` (imports no tracker), for the line that
    tells the user where to look: ``mlflow ui --backend-store-uri <uri>``, ``tensorboard --logdir <folder>``."""
    root = Path(str(cfg.results_dir)).expanduser().resolve()
    out = {}
    for name, settings in chosen(cfg).items():
        if name == "mlflow":
            out[name] = settings.get("tracking_uri") or f"sqlite:///{root / 'mlflow.db'}"
        elif name == "tensorboard":
            out[name] = str(Path(settings.get("save_dir") or root / "tensorboard").expanduser().resolve())
        else:
            folder = Path(settings.get("save_dir") or root).expanduser().resolve() / "wandb"
            out[name] = f"{folder} ({settings.get('mode') or 'offline'})"
    return out


def plan_config(plan) -> Any:
    """The config whose ``logger`` a sweep's plan runs with: its first cell's, or for an open-ended sweeper
    (Optuna, no cells in advance) its base config."""
    if plan.cells:
        return plan.cells[0].cfg
    from focalbench.config import compose
    from focalbench.sweeps.plan import fixed_overrides

    return compose(fixed_overrides(plan.overrides))


def prepare(cfg: Any, warn: Warn | None = None) -> None:
    """Set the chosen trackers up once, before a sweep's runs start: MLflow's SQLite store is created (its
    schema migrated) and its experiment made here, not by several workers at once."""
    for name, settings in chosen(cfg).items():
        _guarded(name, "its set-up", lambda n=name, s=settings: TRACKERS[n](s, str(cfg.results_dir)), warn)


def log_plan(plan, warn: Warn | None = None, say: Callable[[str], None] | None = None) -> None:
    """After a sweep (``focalbench sweep``, ``focalbench reproduce``) has written its report: with a
    ``logger=`` chosen, log the report as one tracker run with the sweep's runs as children (:func:`log_sweep`);
    then ``say`` where the trackers are. Never raises: the sweep and its report are done."""
    try:
        cfg = plan_config(plan)
    except Exception:  # the plan was validated before it ran; nothing to log if its config cannot be had now
        return
    if not chosen(cfg):
        return
    from focalbench.training import record

    run_dirs = [record.run_dir(plan.results_dir, rid) for rid in plan.unique_run_ids()]
    log_sweep(cfg, plan.sweep_dir, plan.name, run_dirs, list(plan.overrides), warn)
    if say is not None:
        say("logged to " + "; ".join(f"{k}: {v}" for k, v in locations(cfg).items()))


def sweep_files(sweep_dir: Path) -> list[Path]:
    """The report's files in a sweep folder (not Hydra's own folder)."""
    return sorted(p for p in Path(sweep_dir).iterdir() if p.is_file() and not p.name.startswith("."))


# ----------------------------------------------------------------------------------------------------------
# MLflow
# ----------------------------------------------------------------------------------------------------------


class MLflowTracker:
    """MLflow through ``MlflowClient`` (no fluent global state: safe with several runs per process).

    ``tracking_uri`` null is ``sqlite:///<results_dir>/mlflow.db``; the experiment, when this creates it,
    keeps its artifacts in ``<results_dir>/mlflow-artifacts`` (MLflow's own default would be ./mlruns of the
    current folder)."""

    def __init__(self, settings: dict, results_dir: str):
        # An unreachable server must cost seconds, not MLflow's default of minutes of retries; a user's own
        # settings of these variables win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "15")
        from mlflow.tracking import MlflowClient

        root = Path(results_dir).expanduser().resolve()
        self.uri = settings.get("tracking_uri") or f"sqlite:///{root / 'mlflow.db'}"  # as locations() says
        if self.uri.startswith("sqlite:///"):
            Path(self.uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.client = MlflowClient(tracking_uri=self.uri)
        name = str(settings.get("experiment_name") or "focalbench")
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            self.experiment_id = experiment.experiment_id
        else:
            location = (root / "mlflow-artifacts").as_uri() if settings.get("tracking_uri") is None else None
            try:
                self.experiment_id = self.client.create_experiment(name, artifact_location=location)
            except Exception:  # another worker created it first
                experiment = self.client.get_experiment_by_name(name)
                if experiment is None:
                    raise
                self.experiment_id = experiment.experiment_id

    def find(self, tag: str, value: str) -> str | None:
        """The newest MLflow run of this experiment whose ``tag`` is ``value``."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{tag}` = '{value}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        return runs[0].info.run_id if runs else None

    def has_run(self, run_id: str) -> bool:
        return self.find(RUN_ID_TAG, run_id) is not None

    def log_run(self, record: RunRecord) -> None:
        from mlflow.entities import Metric, Param

        run = self.client.create_run(
            self.experiment_id, run_name=record.name, tags={**record.tags, "mlflow.source.name": "focalbench"}
        )
        rid = run.info.run_id
        try:
            now = int(time.time() * 1000)
            metrics = [
                Metric(key, value, now, _epoch(row, i))
                for i, row in enumerate(record.history)
                for key, value in row.items()
                if key != "epoch"
            ]
            last = _epoch(record.history[-1], len(record.history) - 1) if record.history else 0
            metrics += [Metric(k, v, now, last) for k, v in record.final_metrics().items()]
            params = [Param(k, v) for k, v in record.params().items()]
            self.client.log_batch(rid, metrics=metrics, params=params)
            for path in record.files():
                self.client.log_artifact(rid, str(path), artifact_path="record")
        except BaseException:
            self.client.set_terminated(rid, status="FAILED")
            raise
        self.client.set_terminated(
            rid, status="FINISHED" if record.metrics.get("status") == "ok" else "FAILED"
        )

    def log_sweep(self, sweep_dir: Path, name: str, run_ids: list[str], overrides: list[str]) -> None:
        """The sweep's parent run: one per sweep folder (a rerun of the sweep logs into the same one)."""
        from mlflow.entities import Param, RunTag

        parent = self.find(SWEEP_TAG, str(sweep_dir))
        if parent is None:
            run = self.client.create_run(
                self.experiment_id,
                run_name=f"sweep {name}",
                tags={
                    SWEEP_TAG: str(sweep_dir),
                    "focalbench.sweep": name,
                    "mlflow.source.name": "focalbench",
                },
            )
            parent = run.info.run_id
            self.client.log_batch(
                parent, params=[Param("overrides", _param_value(" ".join(overrides)))], tags=[]
            )
        else:
            self.client.update_run(parent, status="RUNNING")
        self.client.log_batch(parent, tags=[RunTag("focalbench.runs", _param_value(",".join(run_ids)))])
        for path in sweep_files(sweep_dir):
            self.client.log_artifact(parent, str(path), artifact_path="report")
        for rid in run_ids:
            child = self.find(RUN_ID_TAG, rid)
            if child is not None:
                self.client.set_tag(child, "mlflow.parentRunId", parent)
        self.client.set_terminated(parent, status="FINISHED")


# ----------------------------------------------------------------------------------------------------------
# TensorBoard
# ----------------------------------------------------------------------------------------------------------


class TensorBoardTracker:
    """TensorBoard event files, one folder per run: ``<save_dir>/<run_id>`` (``save_dir`` null is
    ``<results_dir>/tensorboard``). A run logged again (``--force``) replaces its folder whole: the folder is
    written beside it and renamed into place, so a reader sees the old events or the new ones."""

    def __init__(self, settings: dict, results_dir: str):
        base = settings.get("save_dir") or Path(results_dir) / "tensorboard"
        self.root = Path(base).expanduser().resolve()

    def has_run(self, run_id: str) -> bool:
        return any((self.root / run_id).glob("events.out.tfevents.*"))

    def _write(self, target: Path, fill: Callable[[Any], None]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            writer = SummaryWriter(log_dir=str(tmp))
            try:
                fill(writer)
            finally:
                writer.close()
            old = None
            if target.exists():
                old = target.parent / f".{target.name}.old.{os.getpid()}"
                os.replace(target, old)
            os.replace(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def log_run(self, record: RunRecord) -> None:
        import yaml

        def fill(writer) -> None:
            for i, row in enumerate(record.history):
                for key, value in row.items():
                    if key != "epoch":
                        writer.add_scalar(key, value, _epoch(row, i))
            last = _epoch(record.history[-1], len(record.history) - 1) if record.history else 0
            for key, value in record.final_metrics().items():
                writer.add_scalar(key, value, last)
            for key, value in record.tags.items():
                writer.add_text(key, value, 0)
            config = yaml.safe_dump(
                {k: v for k, v in record.config.items() if k != "logger"}, sort_keys=False
            )
            writer.add_text("config", "```\n" + config + "```", 0)

        self._write(self.root / record.run_id, fill)

    def log_sweep(self, sweep_dir: Path, name: str, run_ids: list[str], overrides: list[str]) -> None:
        def fill(writer) -> None:
            writer.add_text("sweep/overrides", " ".join(overrides), 0)
            writer.add_text("sweep/folder", str(sweep_dir), 0)
            writer.add_text("sweep/runs", ", ".join(f"[{r}](../../{r})" for r in run_ids), 0)
            table = sweep_dir / "table.md"
            if table.is_file():
                writer.add_text("sweep/report", table.read_text(encoding="utf-8"), 0)

        self._write(self.root / "sweeps" / name, fill)


# ----------------------------------------------------------------------------------------------------------
# Weights & Biases
# ----------------------------------------------------------------------------------------------------------


class WandbTracker:
    """Weights & Biases, offline by default (``mode: offline``: no account; ``wandb sync`` uploads later). Its
    run folders are in ``<save_dir>/wandb`` (``save_dir`` null is the results folder); a run's wandb id is
    ``<run_id>-<time>``, so that a run logged again (``--force``) is a new wandb run and its folder is found
    by the run id."""

    def __init__(self, settings: dict, results_dir: str):
        self.settings = settings
        self.dir = Path(settings.get("save_dir") or results_dir).expanduser().resolve()

    def has_run(self, run_id: str) -> bool:
        return any((self.dir / "wandb").glob(f"*run-*-{run_id}-*"))

    def _init(self, **kwargs):
        os.environ.setdefault("WANDB_SILENT", "true")  # no banner, no sync hints on the run's terminal
        import wandb

        self.dir.mkdir(parents=True, exist_ok=True)
        return wandb.init(
            project=str(self.settings.get("project") or "focalbench"),
            entity=self.settings.get("entity"),
            mode=str(self.settings.get("mode") or "offline"),
            dir=str(self.dir),
            reinit="create_new",
            settings=wandb.Settings(console="off", silent=True, x_disable_stats=True),
            **kwargs,
        )

    def log_run(self, record: RunRecord) -> None:
        import wandb

        run = self._init(
            id=f"{record.run_id}-{int(time.time() * 1000):x}",
            name=record.name,
            config={k: v for k, v in record.config.items() if k != "logger"},
            tags=[record.run_id],
            job_type="run",
        )
        try:
            for i, row in enumerate(record.history):
                run.log({k: v for k, v in row.items() if k != "epoch"}, step=_epoch(row, i))
            run.summary.update({**record.final_metrics(), **record.tags})
            artifact = wandb.Artifact(f"record-{record.run_id}", type="focalbench-record")
            for path in record.files():
                artifact.add_file(str(path), name=path.name)
            run.log_artifact(artifact)
        finally:
            run.finish(exit_code=0 if record.metrics.get("status") == "ok" else 1)

    def log_sweep(self, sweep_dir: Path, name: str, run_ids: list[str], overrides: list[str]) -> None:
        import wandb

        run = self._init(
            name=f"sweep {name}",
            config={"overrides": overrides, "run_ids": run_ids, "sweep_dir": str(sweep_dir)},
            job_type="sweep-report",
        )
        try:
            artifact = wandb.Artifact(f"report-{_artifact_name(name)}", type="focalbench-report")
            for path in sweep_files(sweep_dir):
                artifact.add_file(str(path), name=path.name)
            run.log_artifact(artifact)
        finally:
            run.finish()


def _artifact_name(text: str) -> str:
    """A wandb artifact name: letters, digits, dashes, underscores and dots only."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)[:100]


TRACKERS: dict[str, Callable[[dict, str], Any]] = {
    "mlflow": MLflowTracker,
    "tensorboard": TensorBoardTracker,
    "wandb": WandbTracker,
}
