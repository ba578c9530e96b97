"""Run records as a pandas DataFrame, for notebooks: ``focalbench.results.load(path)``.

::

    import focalbench.results
    df = focalbench.results.load("results/sweeps/gamma=0,1,2,5")
    df.groupby("gamma")["test.balanced_accuracy"].agg(["mean", "std"])

``path`` (or a list of them) is a sweep folder (its ``sweep.json`` lists the runs, in grid order), a run
folder, a folder of run folders (``results/runs``) or a results folder holding ``runs/`` (the same paths as
``focalbench report``). The frame has **one row per run**, in that order, and these columns:

- ``run_id``, ``status`` (ok | diverged | error | incomplete | missing), ``seed``, ``cell`` (the run's loss
  cell, e.g. ``focal gamma=2 alpha=none``), ``message`` (why a run that is not ok is not);
- the run's semantic config from its ``config.yaml``, flattened to dotted keys: ``loss.name``, ``gamma``,
  ``alpha``, ``imbalance``, ``epochs``, ``data.name``, ``data.path``, ``model.name``, ``optim.lr``, ... (the
  keys that do not change a result, such as ``results_dir``, are left out, as in the run id). A column whose
  values mix types (``alpha``: ``none`` and ``0.25``) or hold lists (``alpha=[1,2]``) is written as strings
  (``"0.25"``, ``"[1,2]"``), so every frame can be saved to Parquet;
- every scalar metric of ``metrics.json``: ``test.<metric>`` (final epoch, e.g. ``test.balanced_accuracy``,
  ``test.few_shot_acc``, ``test.nll``, ``test.ece``), ``val.<metric>`` (final epoch on the validation split),
  ``best_val.epoch``, ``best_val.val_balanced_accuracy`` and ``best_val.test.<metric>`` (test at the best
  validation epoch), ``calibration.temperature``, ``calibration.nll_ts``, ``calibration.ece_ts``, and for a
  diverged run ``divergence.epoch`` / ``divergence.step``. Per-class lists are not columns (they are in each
  run's ``per_class.csv``);
- ``wall_time_s``, ``train_time_s`` and ``images_per_s`` (from the record's timing), ``data.sha256`` (the
  data file's digest, for your own data) and ``run_dir``.

Metrics are in the record's units: accuracy-type metrics and ECE in percent, NLL in nats. A run that is not
ok has NaN metrics. :func:`write_parquet` saves a frame atomically.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from focalbench.errors import ConfigError

METRIC_BLOCKS = ("test", "val", "best_val", "calibration", "divergence")
TIMING_KEYS = ("wall_time_s", "train_time_s", "images_per_s")
LEADING = ("run_id", "status", "seed", "cell")
TRAILING = ("message", "run_dir")


def _scalars(block: Any, prefix: str) -> dict[str, Any]:
    """The numeric and boolean leaves of a metrics block, as dotted keys (lists and strings left out)."""
    out: dict[str, Any] = {}
    if not isinstance(block, dict):
        return out
    for key, value in block.items():
        if isinstance(value, dict):
            out.update(_scalars(value, f"{prefix}{key}."))
        elif value is None or isinstance(value, (bool, int, float)):
            out[f"{prefix}{key}"] = value
    return out


def _row(run) -> dict[str, Any]:
    metrics = run.metrics or {}
    row: dict[str, Any] = {
        "run_id": run.run_id,
        "status": run.status,
        "seed": run.seed,
        "cell": metrics.get("cell"),
    }
    row.update(run.config)
    for block in METRIC_BLOCKS:
        row.update(_scalars(metrics.get(block), f"{block}."))
    timing = metrics.get("timing") or {}
    for key in TIMING_KEYS:
        row[key] = timing.get(key)
    provenance = (metrics.get("data") or {}).get("provenance") or {}
    row["data.sha256"] = provenance.get("sha256")
    row["message"] = run.message
    row["run_dir"] = str(run.run_dir)
    return row


def _uniform(values: list[Any]) -> list[Any]:
    """Values of one column as one type: lists, or a mix of strings and numbers, become strings."""
    from focalbench.reports.aggregate import format_value

    present = [v for v in values if v is not None]
    kinds = {
        "number" if isinstance(v, (int, float)) and not isinstance(v, bool) else type(v).__name__
        for v in present
    }
    if len(kinds) <= 1 and not any(isinstance(v, (list, tuple, dict)) for v in present):
        return values
    return [None if v is None else v if isinstance(v, str) else _as_text(v, format_value) for v in values]


def _as_text(value: Any, format_value) -> str:
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return format_value(value)


def load(path: str | Path | list[str | Path]):
    """One row per run under ``path`` (a sweep, run, runs or results folder, or a list of them).

    Returns:
        a ``pandas.DataFrame`` with the columns of the module docstring (empty, with the leading columns, when
        the folder holds no run).

    Raises:
        ConfigError: a path that is none of those folders.
    """
    import pandas as pd

    from focalbench.reports.aggregate import collect_run_dirs, read_run

    paths = list(path) if isinstance(path, (list, tuple)) else [path]
    for p in paths:
        if not Path(p).expanduser().exists():
            raise ConfigError(f"{p}: no such sweep, run or results folder")
    rows = [_row(read_run(d)) for d in collect_run_dirs(paths)]
    if not rows:
        return pd.DataFrame(columns=[*LEADING, *TRAILING])
    columns = list(dict.fromkeys(k for row in rows for k in row))
    ordered = [*LEADING, *(c for c in columns if c not in LEADING and c not in TRAILING), *TRAILING]
    data = {c: _uniform([row.get(c) for row in rows]) for c in ordered}
    frame = pd.DataFrame(data, columns=ordered)
    for column in frame.columns:  # numeric columns with missing values: float with NaN, not object
        if frame[column].dtype == object and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in frame[column]
        ):
            frame[column] = pd.to_numeric(frame[column])
    return frame


def write_parquet(df, path: str | Path) -> Path:
    """Save ``df`` as Parquet (pyarrow), atomically (``focalbench.training.record.write_atomic``)."""
    import io

    from focalbench.training.record import write_atomic

    buf = io.BytesIO()
    df.to_parquet(buf, engine="pyarrow", index=False)
    write_atomic(Path(path), buf.getvalue())
    return Path(path)
