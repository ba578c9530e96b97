"""The run record on disk: one directory per run, named by the hash of its resolved config.

    <results_dir>/runs/<run_id>/
        config.yaml     the fully resolved config
        history.csv     per epoch: train loss, validation metrics, lr, time
        per_class.csv   per class: training count, shot group, alpha, test/val recall, precision, F1
        train.log       progress lines (sweeps log here instead of the terminal)
        metrics.json    written LAST and atomically: its existence is what makes the run "done"
        error.json      instead of metrics.json when the run raised; the run is retried next time

A killed run leaves no metrics.json, so it is simply run again. Every file is written to a temporary name
in the same folder and renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.json"
ERROR_FILE = "error.json"


def runs_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / "runs"


def run_dir(results_dir: str | Path, run_id: str) -> Path:
    return runs_dir(results_dir) / run_id


def is_done(path: Path) -> bool:
    """A run counts as done only when its metrics.json exists (it is written last)."""
    return (Path(path) / METRICS_FILE).is_file()


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and an atomic rename: a reader sees
    the old file or the new one, never half of one. focalbench's one atomic-write helper (records, reports,
    plots' companions, benchmarks)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
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
    """The run's metrics.json, or None when the run is not done."""
    f = Path(path) / METRICS_FILE
    return json.loads(f.read_text()) if f.is_file() else None


def read_error(path: Path) -> dict | None:
    f = Path(path) / ERROR_FILE
    return json.loads(f.read_text()) if f.is_file() else None
