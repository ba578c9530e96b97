"""``focalbench report --rescore``: recompute a run's metrics from the logits its record stores.

A record of version 3 or later holds the final model's validation and test logits (``logits.npz``, as scored:
times the probability scale). When a metric's definition changes (a new calibration fit, a new tail metric),
the runs need not be trained again: this recomputes ``test``, ``val`` and ``calibration`` in ``metrics.json``
with today's code (``training.loop.scores_from_logits``, the same function a run uses), keeps every other
field, notes ``rescored: {focalbench, at}``, and writes the file atomically. The run id does not change: the
training it identifies is the same. The best-validation-epoch metrics (``best_val``) are kept as recorded:
their logits are not stored. Runs without stored logits (older records), and runs that did not finish, are
left as they are and counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from focalbench.reports.aggregate import collect_run_dirs


@dataclass
class RescoreOutcome:
    rescored: list[Path] = field(default_factory=list)
    without_logits: list[Path] = field(default_factory=list)  # older records, or unfinished runs
    not_ok: list[Path] = field(default_factory=list)  # diverged, failed or incomplete: nothing to score


def rescore_run(run_dir: Path) -> str:
    """Rescore one run folder in place; returns "rescored", "without_logits" or "not_ok"."""
    from focalbench import __version__
    from focalbench.training import record
    from focalbench.training.loop import scores_from_logits

    metrics_path = run_dir / record.METRICS_FILE
    if not metrics_path.is_file():
        return "not_ok"
    metrics = json.loads(metrics_path.read_text())
    if metrics.get("status") != "ok":
        return "not_ok"
    logits_path = run_dir / record.LOGITS_FILE
    if not logits_path.is_file():
        return "without_logits"
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    ev = cfg.get("eval") or {}
    metric_kw = dict(
        train_counts=metrics["data"]["train_counts"],
        many_threshold=int(ev.get("many_threshold", 100)),
        few_threshold=int(ev.get("few_threshold", 20)),
        n_bins=int(ev.get("ece_bins", 15)),
    )
    logits = record.read_logits(logits_path)
    val = logits.get("val", (None, None))
    test, final_val, calibration = scores_from_logits(*logits["test"], *val, metric_kw)
    metrics |= {"test": test, "val": final_val, "calibration": calibration}
    metrics["rescored"] = {"focalbench": __version__, "at": datetime.now(UTC).isoformat(timespec="seconds")}
    record.write_json(metrics_path, metrics)
    return "rescored"


def rescore_paths(paths: list[str | Path]) -> RescoreOutcome:
    """Rescore every run folder that ``paths`` name (sweep, run or results folders)."""
    outcome = RescoreOutcome()
    for run_dir in collect_run_dirs(paths):
        getattr(outcome, rescore_run(run_dir)).append(run_dir)
    return outcome
