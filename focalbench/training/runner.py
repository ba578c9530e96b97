"""One complete run: config -> data -> model -> training -> evaluation -> run record.

:func:`execute_run` is the single code path behind ``focalbench run`` and every cell of ``focalbench sweep``.
It never raises for a failed run: a divergence is recorded as a finished run with status "diverged" (the same
config diverges again, so it is not retried), any other exception is written to ``error.json`` (the run is not
done and a rerun retries it). Either way the caller, e.g. a sweep of many runs, carries on.

A run is trained only under its lock (:mod:`focalbench.training.lock`): a run that another live process is
training is not trained here; the caller either gets the outcome "locked" or waits for that record.
"""

from __future__ import annotations

import os
import platform
import random
import socket
import subprocess
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

import focalbench
from focalbench.config import cell_label
from focalbench.hardware import cpu_model
from focalbench.identity import RECORD_VERSION, resolve_device, resolve_precision, run_id
from focalbench.training import lock as run_lock
from focalbench.training import record

__all__ = ["RunOutcome", "execute_run", "resolve_device", "resolve_precision"]

# Seconds between two looks at a run that another process is training (FOCALBENCH_LOCK_POLL).
DEFAULT_POLL_S = 1.0


def poll_s() -> float:
    try:
        value = float(os.environ.get("FOCALBENCH_LOCK_POLL", "") or DEFAULT_POLL_S)
    except ValueError:
        value = DEFAULT_POLL_S
    return value if value > 0 else DEFAULT_POLL_S


@dataclass
class RunOutcome:
    run_id: str
    run_dir: Path
    status: str  # "ok" | "diverged" | "error" | "skipped" (already done) | "locked" (trained elsewhere now)
    metrics: dict | None = None
    error: str | None = None  # the error; for "locked", who holds the lock
    replaced: Path | None = None  # --force: where the old record was moved


def execute_run(
    cfg: DictConfig,
    *,
    quiet: bool = False,
    force: bool = False,
    wait: bool = False,
    notify: run_lock.Notify | None = None,
) -> RunOutcome:
    """Run ``cfg`` unless its record is already complete; write the record; never raise for a failed run.

    ``quiet`` sends progress to ``train.log`` in the run directory instead of the terminal (sweep workers).
    ``force`` moves a complete record aside (:func:`record.move_aside`) and trains again. When another live
    process holds the run's lock, return the outcome "locked", or with ``wait`` poll until that process is
    done (and reuse its record) or gone (and take the run over). ``notify`` receives the one-line messages
    about locks (default: stderr).

    When ``cfg`` chooses trackers (``logger=...``), the finished record is logged to them after the lock is
    released (:func:`focalbench.loggers.log_outcome`: a reused record only when new to the tracker); a
    tracker's failure is a warning and leaves the outcome as it is.
    """
    outcome = _execute_run(cfg, quiet=quiet, force=force, wait=wait, notify=notify)
    if cfg.get("logger"):  # no tracker chosen: nothing imported
        from focalbench.loggers import log_outcome

        log_outcome(cfg, outcome)
    return outcome


def _execute_run(
    cfg: DictConfig, *, quiet: bool, force: bool, wait: bool, notify: run_lock.Notify | None
) -> RunOutcome:
    notify = notify or run_lock.stderr_notify
    from focalbench.data import resolve_run_config

    cfg = resolve_run_config(cfg)  # data.resplit=auto: the record says what the run did
    rid = run_id(cfg)
    rdir = record.run_dir(cfg.results_dir, rid)
    announced = False
    while True:
        if record.is_done(rdir) and not force:
            if cfg.get("save_model", False) and record.lacks_weights(rdir):
                notify(weights_missing_line(1))
            return RunOutcome(rid, rdir, "skipped", metrics=record.read_metrics(rdir))
        claim = run_lock.try_acquire(rdir, notify)
        if isinstance(claim, run_lock.RunLock):
            break
        if not wait:
            return RunOutcome(rid, rdir, "locked", error=claim.holder())
        if not announced:
            notify(f"run {rid} is running elsewhere ({claim.holder()}); waiting for its record")
            announced = True
        time.sleep(poll_s())
    with claim:
        if record.is_done(rdir) and not force:  # finished by another process just before we claimed it
            return RunOutcome(rid, rdir, "skipped", metrics=record.read_metrics(rdir))
        replaced = record.move_aside(rdir, cfg.results_dir) if force else None
        if replaced is not None:
            notify(f"run {rid}: moved its old record to {replaced}")
        outcome = _attempt(cfg, rid, rdir, quiet, claim)
        outcome.replaced = replaced
        return outcome


def weights_missing_line(count: int, command: str = "run") -> str:
    """The one line for ``save_model=true`` with done records that have no weights (made without it): a done
    run is reused by its id, not trained again, so nothing would write them."""
    which = "this run's record was" if command == "run" else f"{count} of the grid's done records were"
    return (
        f"save_model=true: {which} made without save_model, so no weights (model.pt) are kept and the record "
        f"is reused as it is; to get them, train again: focalbench {command} ... save_model=true --force (the "
        f"old record moves to results/replaced/)"
    )


def _attempt(cfg: DictConfig, rid: str, rdir: Path, quiet: bool, claim: run_lock.RunLock) -> RunOutcome:
    """Train under the lock ``claim``; write metrics.json or error.json."""
    (rdir / record.ERROR_FILE).unlink(missing_ok=True)
    record.write_atomic(rdir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    log_path = rdir / "train.log"
    # Appended to, one "attempt" line per training attempt: a run killed and retried shows both.
    with open(log_path, "a", encoding="utf-8") as log, _progress_reporter(cfg, quiet, log) as progress:
        log.write(
            f"attempt: pid {os.getpid()} on {socket.gethostname()} at "
            f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} (record version {RECORD_VERSION})\n"
        )
        log.flush()
        try:
            metrics = _train_and_record(cfg, rid, rdir, progress)
        except Exception as exc:  # a failed run must not take its sweep down
            error = {
                "status": "error",
                "run_id": rid,
                "record_version": RECORD_VERSION,
                "cell": cell_label(cfg),
                "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc(),
            }
            log.write(error["traceback"])
            record.write_json(rdir / record.ERROR_FILE, error)
            return RunOutcome(rid, rdir, "error", error=error["error"])
        finally:
            if claim.lost:
                log.write("warning: another process took this run's lock over while it trained\n")
    return RunOutcome(rid, rdir, metrics["status"], metrics=metrics)


def _train_and_record(cfg: DictConfig, rid: str, rdir: Path, progress) -> dict:
    _pay_one_time_costs()
    wall0 = time.perf_counter()
    with deterministic_algorithms(bool(cfg.deterministic)):
        return _train_seeded(cfg, rid, rdir, progress, wall0)


def _train_seeded(cfg: DictConfig, rid: str, rdir: Path, progress, wall0: float) -> dict:
    from focalbench.data import load_data, run_data_config
    from focalbench.training.loop import Diverged, train

    device, precision = set_up_process(cfg)
    data = load_data(run_data_config(cfg), device)
    setup = prepare_run(cfg, rid, data, device, precision)
    try:
        outcome = train(cfg, data, setup.model, setup.alpha, device, precision, progress)
    except Diverged as div:
        outcome = div
    return write_record(cfg, rdir, setup, data, outcome, wall_time_s=time.perf_counter() - wall0)


@dataclass
class RunSetup:
    """What a run trains (its model and resolved alpha) and the record's fixed part (``base``)."""

    model: Any
    alpha: Any  # per-class weights on the device, or None
    base: dict


def set_up_process(cfg: DictConfig) -> tuple[Any, str]:
    """Seed every generator, set the thread count and resolve the device and precision for one run.

    Returns ``(device, precision)``. Shared by training and the dry run's timed probe, so that the probe
    times the same process set-up that a run gets.
    """
    from focalbench.registry import DATASETS

    seed_everything(int(cfg.seed))
    vector_data = DATASETS.get(cfg.data.name).meta["kind"] == "vector"
    set_threads(int(cfg.threads), int(cfg.jobs), vector_data=vector_data)
    device = resolve_device(cfg.device)
    return device, resolve_precision(cfg.precision, device)


def prepare_run(cfg: DictConfig, rid: str, data, device, precision: str) -> RunSetup:
    """Build the run's model and alpha and the fixed part of its record. The model's initialisation draws from
    torch's global generator: call this right after ``seed_everything(cfg.seed)``, as every path does. A loss
    with a prior for the classifier's bias (``loss=sigmoid_focal``) sets it here (:func:`init_head_bias`)."""
    import torch

    from focalbench.losses import mean_convention, resolve_alpha
    from focalbench.losses._checks import loss_mean
    from focalbench.models import build_model, count_parameters, init_norm_classifier_ldam
    from focalbench.training.loop import alpha_start, probability_scale

    model = build_model(cfg.model, data.input_shape, data.n_classes)
    if str(cfg.model.get("norm_classifier_init", "linear")) == "ldam":
        init_norm_classifier_ldam(model)
    init_head_bias(cfg, model)
    model = model.to(device)
    if cfg.channels_last and data.kind == "image":
        model = model.to(memory_format=torch.channels_last)
    if cfg.compile:
        model = torch.compile(model)
    alpha = resolve_alpha(
        _plain(cfg.alpha), data.train_counts, beta=float(cfg.loss.beta), normalize=str(cfg.loss.normalize)
    )
    if alpha is not None:
        alpha = alpha.to(device)

    base = {
        "run_id": rid,
        "record_version": RECORD_VERSION,
        "cell": cell_label(cfg),
        "seed": int(cfg.seed),
        "loss": {
            "name": cfg.loss.name,
            "gamma": None if cfg.gamma is None else float(cfg.gamma),
            "alpha": _plain(cfg.alpha),
            "alpha_resolved": None if alpha is None else [round(float(a), 6) for a in alpha.cpu()],
            "mean_convention": mean_convention(loss_mean(cfg)),
            # deferred re-weighting: alpha applied from this epoch on (1-based; 1 = from the start)
            "alpha_from_epoch": None if alpha is None else alpha_start(cfg) + 1,
        },
        "data": {
            **data.info,
            "train_counts": list(data.train_counts),
            "longtail_counts": list(data.longtail_counts),
            "shot_thresholds": {
                "many": f"> {cfg.eval.many_threshold}",
                "few": f"< {cfg.eval.few_threshold}",
                "counted_on": "training split",
            },
        },
        "model": {"name": cfg.model.name, "parameters": count_parameters(model)},
        # probabilities, NLL and ECE are those of softmax(probability_scale * logits); see loop.probability_scale
        "probability_scale": probability_scale(cfg),
        "environment": environment(device, precision),
    }
    return RunSetup(model, alpha, base)


def init_head_bias(cfg: DictConfig, model) -> None:
    """Start the classifier's bias where the run's loss asks (its registry fact ``head_bias_prior``, pi from the
    config): b = -log((1 - pi)/pi) for every class, Lin et al. 2017's prior initialisation, so every class
    starts at sigmoid(b) = pi. Other losses leave the model as built. Called on the freshly built model, before
    it is moved or copied (a fused group stacks the members' models, biases included)."""
    import math

    from focalbench.models import init_classifier_bias
    from focalbench.registry import LOSSES

    prior_of = LOSSES.get(str(cfg.loss.name)).meta.get("head_bias_prior")
    if prior_of is None:
        return
    prior = prior_of(cfg)
    # A model that multiplies its logits by a fixed scale (the cnn's logit_scale) gets b / scale, so that the
    # initial logit, not the bias, is b.
    scale = float(getattr(model, "logit_scale", 1.0))
    init_classifier_bias(model, -math.log((1.0 - prior) / prior) / scale)


def write_record(
    cfg: DictConfig,
    rdir: Path,
    setup: RunSetup,
    data,
    outcome,
    *,
    wall_time_s: float,
    train_time_s: float | None = None,
    extra: dict | None = None,
) -> dict:
    """Write the record of a finished training (``outcome``: a ``TrainResult`` or a ``Diverged``) and return its
    metrics: history.csv, per_class.csv and, last, metrics.json. Every path that trains calls this (a run, a
    member of a fused group). ``train_time_s`` replaces the result's own (a fused member's share of its group);
    ``extra`` adds keys to metrics.json (e.g. ``fused_group``)."""
    from focalbench.data import shot_groups
    from focalbench.training.loop import Diverged

    extra = extra or {}
    if isinstance(outcome, Diverged):
        metrics = {
            "status": "diverged",
            **setup.base,
            "divergence": {
                "epoch": outcome.epoch,
                "step": outcome.step,
                "last_finite_loss": outcome.last_finite_loss,
            },
            "timing": {"wall_time_s": round(wall_time_s, 3)},
            **extra,
        }
        record.write_csv(rdir / "history.csv", outcome.history)
        record.write_json(rdir / record.METRICS_FILE, metrics)
        return metrics

    result = outcome
    train_time = result.train_time_s if train_time_s is None else train_time_s
    groups = shot_groups(data.train_counts, int(cfg.eval.many_threshold), int(cfg.eval.few_threshold))
    record.write_csv(rdir / "history.csv", result.history)
    record.write_csv(rdir / "per_class.csv", per_class_rows(data, groups, setup.alpha, result))
    record.write_csv(rdir / record.CLASS_HISTORY_FILE, result.class_history)
    record.write_logits(rdir / record.LOGITS_FILE, result.logits)
    if result.final_state is not None:  # save_model=true: before metrics.json marks the run done
        record.write_weights(rdir / record.MODEL_FILE, result.final_state)
    metrics = {
        "status": "ok",
        **setup.base,
        "test": result.final_test,
        "val": result.final_val,
        "best_val": result.best_val,
        "calibration": result.calibration,
        "timing": {
            "wall_time_s": round(wall_time_s, 3),
            "train_time_s": round(train_time, 3),
            "images_per_s": round(result.images_seen / max(train_time, 1e-9), 1),
            "epochs": int(cfg.epochs),
        },
        **extra,
    }
    record.write_json(rdir / record.METRICS_FILE, metrics)  # last: this makes the run "done"
    return metrics


@lru_cache(maxsize=1)
def _pay_one_time_costs() -> None:
    """Pay the process's one-time costs before a run's clock starts, so that the first run of a sweep is not
    timed slower than the rest: the git commit of the record (a subprocess). (The optimizer no longer imports
    torch._dynamo: focalbench.training.optim.)"""
    git_commit()


def per_class_rows(data, groups: list[str], alpha, result) -> list[dict]:
    """One row per class: training count, shot group, alpha, test and validation counts, and the final test
    recall, precision and F1 and validation recall."""
    rows = []
    for c in range(data.n_classes):
        row = {
            "class": c,
            "name": data.class_names[c],
            "train_count": data.train_counts[c],
            "group": groups[c],
            "alpha": None if alpha is None else round(float(alpha[c]), 6),
        }
        # how many examples each class's scores rest on (a recall from 11 test images is not one from 1,000)
        row["test_count"] = sum(result.final_test["confusion_matrix"][c])
        for key in ("recall", "precision", "f1"):
            row[f"test_{key}"] = _round(result.final_test[f"per_class_{key}"][c])
        if result.final_val is not None:
            row["val_count"] = sum(result.final_val["confusion_matrix"][c])
            row["val_recall"] = _round(result.final_val["per_class_recall"][c])  # None: class not in val
        rows.append(row)
    return rows


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _plain(value):
    """OmegaConf containers to plain Python (alpha may be a ListConfig)."""
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


# ----------------------------------------------------------------------------------------------------------
# Environment: seeds, threads, device, precision
# ----------------------------------------------------------------------------------------------------------


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch from one seed."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextmanager
def deterministic_algorithms(enabled: bool):
    """Force torch's deterministic algorithms inside the block when ``enabled``, and restore the process-wide
    settings afterwards, so a later run in the same process (a sweep) does not inherit them."""
    import torch

    if not enabled:
        yield
        return
    saved = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    saved_env = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(saved[0])
        torch.backends.cudnn.benchmark = saved[1]
        if saved_env is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def set_threads(threads: int, jobs: int, vector_data: bool) -> None:
    """Set torch's intra-op threads: ``threads`` if > 0, else 1 for vector data, else an equal share of the
    cores for each of ``jobs`` concurrent runs (so jobs x threads <= cores, no oversubscription)."""
    import torch

    if threads <= 0:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = 1 if vector_data else max(1, cores // max(1, jobs))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def environment(device, precision: str) -> dict:
    import torch

    from focalbench.training.bf16_conv import DESCRIPTION as BF16_CONV_DESCRIPTION
    from focalbench.training.loop import rounds_bf16_convolutions

    env = {
        "device": str(device),
        "precision": precision,
        "torch": torch.__version__,
        "focalbench": focalbench.__version__,
        "git_commit": git_commit(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    if rounds_bf16_convolutions(device, precision):
        env["bf16_convolutions"] = BF16_CONV_DESCRIPTION
    return env


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The project's git commit when focalbench runs from a checkout, else None."""
    repo = Path(focalbench.__file__).resolve().parent.parent
    if not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


# ----------------------------------------------------------------------------------------------------------
# Progress: a rich bar in the terminal, or lines in train.log
# ----------------------------------------------------------------------------------------------------------


class _progress_reporter:
    """Context manager yielding a progress callback: rich bar when interactive, log lines when quiet."""

    def __init__(self, cfg: DictConfig, quiet: bool, log):
        self.cfg, self.quiet, self.log = cfg, quiet, log
        self.bar = None

    def __enter__(self):
        if not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeRemainingColumn(),
                transient=False,
            )
            self.bar.start()
            self.task = self.bar.add_task(cell_label(self.cfg), total=int(self.cfg.epochs), status="")
        return self.callback

    def callback(self, event: dict) -> None:
        if event["event"] == "epoch":
            val = event.get("val_balanced_accuracy")
            status = (
                f"loss {event['train_loss']:.4f}  val bal-acc {val:.2f}%  "
                if val is not None
                else f"loss {event['train_loss']:.4f}  "
            ) + f"{event['images_per_s']:.0f} img/s"
            self.log.write(f"epoch {event['epoch']}: {status}\n")
            self.log.flush()
            if self.bar is not None:
                self.bar.update(self.task, completed=event["epoch"], status=status)
        elif event["event"] == "step" and self.bar is not None:
            self.bar.update(
                self.task,
                status=f"epoch {event['epoch'] + 1} step {event['step']}/{event['steps']}"
                f"  loss {event['loss']:.4f}",
            )

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.stop()
        return False
