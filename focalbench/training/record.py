"""The run record on disk: one directory per run, named by the hash of its resolved config.

    <results_dir>/runs/<run_id>/
        config.yaml     the fully resolved config
        history.csv     per epoch: train loss, validation metrics, lr, time
        per_class.csv   per class: training count, shot group, alpha, test/val recall, precision, F1
        train.log       progress lines (sweeps log here instead of the terminal)
        metrics.json    written LAST and atomically: it is what makes the run "done"
        error.json      instead of metrics.json when the run raised; the run is retried next time
        lock.json       while a process trains the run (see focalbench.training.lock)

A run is *done*, and its record reused instead of training again, only when its metrics.json has status
``ok`` or ``diverged`` (the same config diverges again), names this run id and has this version of the
record (:data:`focalbench.identity.RECORD_VERSION`). A killed run leaves no metrics.json and a failed one an
error.json: either is simply run again. Every file is written to a temporary name in the same folder and
renamed into place, so a reader never sees half a file.

``--force`` moves a run's record aside, to ``<results_dir>/replaced/<run_id>.<UTC time>/``, before training
again: if the new attempt fails, the run's folder holds its error.json, never the old metrics.json.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from focalbench.identity import RECORD_VERSION

METRICS_FILE = "metrics.json"
ERROR_FILE = "error.json"
LOCK_FILE = "lock.json"
LOGITS_FILE = "logits.npz"  # the final model's validation and test logits, for `focalbench report --rescore`
MODEL_FILE = "model.pt"  # save_model=true: the final weights, a state dict (torch.load(weights_only=True))
CLASS_HISTORY_FILE = "train_classes.csv"  # per epoch and class: seen, mean p_t, loss share (class_stats.py)
REPLACED_DIR = "replaced"
# The statuses of a finished run whose record is reused: "diverged" too, since the same config diverges again.
REUSABLE = ("ok", "diverged")


def runs_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "runs"


def run_dir(results_dir: str | Path, run_id: str) -> Path:
    return runs_dir(results_dir) / run_id


def is_done(path: Path) -> bool:
    """Whether the record in run folder ``path`` is complete and reusable: its metrics.json (written last)
    has a reusable status (ok, diverged), this folder's run id and this record version."""
    return reusable(read_metrics(path), Path(path).name)


def reusable(metrics: dict | None, run_id: str) -> bool:
    return (
        isinstance(metrics, dict)
        and metrics.get("status") in REUSABLE
        and metrics.get("run_id") == run_id
        and metrics.get("record_version") == RECORD_VERSION
    )


def status(path: Path) -> str:
    """The state of run folder ``path`` from its files: ``ok`` or ``diverged`` (done), ``error`` (the last
    attempt raised, or a metrics.json that is not reusable), or ``missing`` (nothing finished yet)."""
    metrics = read_metrics(path)
    if reusable(metrics, Path(path).name):
        return metrics["status"]
    if metrics is not None or (Path(path) / ERROR_FILE).is_file():
        return "error"
    return "missing"


def move_aside(path: Path, results_dir: str | Path) -> Path | None:
    """Move the record in run folder ``path`` (every file but the lock) to
    ``<results_dir>/replaced/<run_id>.<UTC time>/``; return that folder, or None when there was nothing."""
    path = Path(path)
    entries = [p for p in path.iterdir() if p.name != LOCK_FILE] if path.is_dir() else []
    if not entries:
        return None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = Path(results_dir) / REPLACED_DIR / f"{path.name}.{stamp}"
    n = 1
    while target.exists():
        n += 1
        target = Path(results_dir) / REPLACED_DIR / f"{path.name}.{stamp}-{n}"
    target.mkdir(parents=True)
    for entry in entries:
        os.replace(entry, target / entry.name)
    return target


def write_atomic(path: Path, text: str | bytes | Callable[[BinaryIO], None]) -> None:
    """Write ``text`` (str as UTF-8, bytes, or a writer callback that streams into the open binary file, e.g.
    ``lambda f: np.savez(f, ...)``) to ``path`` via a temporary file in the same folder and an atomic rename:
    a reader sees the old file or the new one, never half of one. focalbench's one atomic-write helper
    (records, reports and their plots, benchmarks, caches)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") if isinstance(text, str) else os.fdopen(fd, "wb") as f:
            if callable(text):
                text(f)
            else:
                f.write(text)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates the file private (0600); give it the permissions of a file opened normally.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_weights(path: Path, state: dict) -> None:
    """``model.pt``: a model's state dict (CPU tensors), written atomically (a killed run leaves no
    half-written file); ``torch.load(path, weights_only=True)`` reads it."""
    import torch

    write_atomic(path, lambda f: torch.save(state, f))


def lacks_weights(path: Path) -> bool:
    """Whether a done run folder has no ``model.pt`` (made without ``save_model=true``)."""
    return is_done(path) and not (Path(path) / MODEL_FILE).is_file()


def write_logits(path: Path, logits: dict) -> None:
    """``logits.npz``: for each split in ``logits`` ({"val"|"test": (logits [N, C], labels [N])}), arrays
    ``<split>_logits`` (float32, as scored: times the probability scale) and ``<split>_labels`` (int64).
    Plain arrays, no pickle: ``np.load(path, allow_pickle=False)`` reads it."""
    import numpy as np

    arrays = {}
    for split, (values, labels) in logits.items():
        arrays[f"{split}_logits"] = values.detach().cpu().float().numpy()
        arrays[f"{split}_labels"] = labels.detach().cpu().long().numpy()
    write_atomic(path, lambda f: np.savez_compressed(f, **arrays))


def read_logits(path: Path) -> dict:
    """{"val"|"test": (logits float32 tensor, labels int64 tensor)} from ``write_logits``'s file."""
    import numpy as np
    import torch

    with np.load(path, allow_pickle=False) as npz:
        splits = sorted({k.rsplit("_", 1)[0] for k in npz.files})
        return {
            s: (torch.from_numpy(npz[f"{s}_logits"]), torch.from_numpy(npz[f"{s}_labels"])) for s in splits
        }


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def write_csv(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0].keys()), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_atomic(path, buf.getvalue())


def read_metrics(path: Path) -> dict | None:
    """The run's metrics.json, or None when there is none (or it cannot be read)."""
    return _read_json(Path(path) / METRICS_FILE)


def read_error(path: Path) -> dict | None:
    return _read_json(Path(path) / ERROR_FILE)


def _read_json(f: Path) -> dict | None:
    try:
        return json.loads(f.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # unreadable or not JSON: not a record to trust
        return None
