"""The report model: one tree of dataclasses, built from run records (:mod:`focalbench.reports.report`) and
written as ``summary.json`` (:func:`to_json`). The tables (markdown, CSV, LaTeX), the terminal view and
the verdicts are renderings of this tree (:mod:`focalbench.reports.render`) and compute nothing themselves;
only the plots also read the runs, for per-class values and reliability bins the tree does not hold.

    Report
      cells: [Cell]            label, config (its varying keys), seeds, run ids, baseline, resolved α
        metrics: {m: MetricStats}  mean, std, n, value per seed, best?, delta_vs_baseline (PairedDelta)
      best: [Best]             per setting and metric: the best cell, the runner-up, inside the noise?
      notes: {topic: [line]}   what a reader needs below the tables (baselines, α, data, setup, ...)
      not_ok_runs
      answer: Answer            what a careful reader concludes, in sentences (focalbench.reports.answer)
      plots, plots_skipped
      claims: SuiteVerdicts    suites only: one Verdict per claim (focalbench.reports.claims)

Field order is the key order of summary.json. Fields marked ``HIDDEN`` link the tree to the records and
are not written; ``claims`` is written only when set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any

from focalbench.reports.aggregate import RunRecord
from focalbench.reports.stats import PairedDelta

HIDDEN = {"json": False}


@dataclass
class MetricStats:
    """One metric of one cell: mean ± sample std (ddof = 1) over its seeds, and Δ against its baseline."""

    mean: float | None
    std: float | None  # None for n < 2
    n: int
    values: dict[int, float]  # seed -> value, sorted by seed
    best: bool = False
    delta_vs_baseline: PairedDelta | None = None  # None for a baseline itself, or without a baseline


@dataclass(eq=False)  # a cell is itself: `in` and `is` compare identities, never field by field
class Cell:
    """The ok runs of one grid point: same semantic config, one run per seed."""

    label: str
    config: dict[str, Any]  # short name -> value, for the keys that vary across the report's cells
    seeds: list[int]
    run_ids: list[str]  # in seed order
    baseline: str | None  # label of the cell it is compared with
    alpha_resolved: list[float] | None
    metrics: dict[str, MetricStats] = field(default_factory=dict)
    full_config: dict[str, Any] = field(default_factory=dict, metadata=HIDDEN)  # flattened, every key
    runs: list[RunRecord] = field(default_factory=list, metadata=HIDDEN)  # in order of appearance
    setting: int = field(default=0, metadata=HIDDEN)  # index into Report.settings


@dataclass
class Best:
    """The best cell of one metric within one setting (labels), and whether its lead is inside the noise."""

    metric: str
    setting: str
    best: str
    runner_up: str
    inside_noise: bool | None  # None: cannot tell
    evidence: str


@dataclass
class Report:
    title: str
    definitions: dict[str, str]
    metrics: dict[str, str]  # metric -> label, in column order
    varying_keys: list[str]  # short names of the keys that vary across cells, in label order
    baseline_selector: str
    settings: list[str]  # labels of the groups of cells compared with each other (--group-by)
    cells: list[Cell]
    best: list[Best]
    notes: dict[str, list[str]]
    not_ok_runs: list[dict[str, Any]]
    answer: Any = None  # answer.Answer: the findings and the sentences, built from this model
    plots: dict[str, str] = field(default_factory=dict)  # plot -> file name
    plots_skipped: dict[str, str] = field(default_factory=dict)  # plot -> why
    claims: Any = field(default=None, metadata={"omit_none": True})  # claims.SuiteVerdicts
    varying: list[str] = field(default_factory=list, metadata=HIDDEN)  # dotted keys of varying_keys

    @property
    def undefined_metrics(self) -> list[str]:
        """Metrics with no value in any cell (few-shot accuracy when no class has < 20 training images):
        the tables leave their columns out and name them once."""
        return [m for m in self.metrics if all(c.metrics[m].n == 0 for c in self.cells)]

    @property
    def shown_metrics(self) -> list[str]:
        return [m for m in self.metrics if m not in self.undefined_metrics]

    def best_of(self, cell: Cell, metric: str) -> Best | None:
        """The Best entry naming ``cell`` for ``metric``, if it is the best cell of its setting."""
        key = (metric, self.settings[cell.setting], cell.label)
        return next((b for b in self.best if (b.metric, b.setting, b.best) == key), None)


def to_dict(obj: Any) -> Any:
    """Dataclasses to plain dicts (fields in order, HIDDEN ones and unset ``omit_none`` ones left out),
    tuples to lists; anything else as is."""
    if is_dataclass(obj):
        items = {f.name: getattr(obj, f.name) for f in fields(obj) if f.metadata.get("json", True)}
        omit = {f.name for f in fields(obj) if f.metadata.get("omit_none") and items[f.name] is None}
        return {k: to_dict(v) for k, v in items.items() if k not in omit}
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    """The JSON text of a model object: indented, UTF-8 kept as is (±, Δ, ρ), one final newline."""
    return json.dumps(to_dict(obj), indent=2, ensure_ascii=False, default=str) + "\n"
