"""The comparison report of a set of runs: cells × metrics, mean ± std over seeds, paired Δ against a
baseline, the best cell per metric, and everything a reader needs to interpret the numbers.

Entry points (used by ``focalbench report`` and at the end of ``focalbench sweep``):

- :func:`build_report` (run folders -> :class:`Report`), :func:`report_for_sweep` (a sweep folder -> Report),
- :func:`write_report` (Report -> ``table.md``, ``table.csv``, ``table.tex``, ``summary.json`` and the PNG
  plots, all written atomically and byte-identical when regenerated from the same records),
- :func:`render_console` (a rich rendering for the terminal), :func:`finish_sweep_report` (all of it after
  a sweep).

Definitions:

- Metrics are the FINAL-epoch values on the balanced test set, unless named ``best_val.<metric>`` (test
  metrics at the epoch with the best validation balanced accuracy), which are labelled as such.
- A cell's value is mean ± sample std (ddof = 1) over its ok runs (one per seed); the std is "—" for n = 1.
- Δ is the paired difference (cell − baseline) over the seeds both share, with a 95% Student-t CI
  (:mod:`focalbench.reports.stats`). Seeds without a partner are left out, and the report says so.
- Baseline: a selector (``"gamma=0 alpha=none"``); by default ``loss=ce alpha=none`` if such a cell exists,
  else ``gamma=0 alpha=none``, else the first cell. When the grid also varies the setting (data, ρ, model,
  ...), the selector may match one cell per setting: each cell is compared with the baseline of its own
  setting, and the best cell is marked within each setting.
- Cells are ordered by the first appearance of their runs in the run list (a sweep's ``sweep.json`` order).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from focalbench.errors import ConfigError
from focalbench.reports import aggregate as agg
from focalbench.reports.stats import PairedDelta, Summary, inside_noise, paired_delta, summarize

DEFAULT_BASELINES = ("loss=ce alpha=none", "gamma=0 alpha=none")


@dataclass
class MetricStats:
    """One metric of one cell."""

    values: dict[int, float]  # seed -> value
    summary: Summary
    delta: PairedDelta | None  # vs the cell's baseline; None for a baseline itself or without a baseline
    best: bool = False


@dataclass
class BestNote:
    """The best cell of one metric within one setting, and whether its lead is inside the noise."""

    metric: str
    group: int
    best: agg.Cell
    runner_up: agg.Cell | None
    inside: bool | None  # None: cannot tell
    evidence: str


@dataclass
class Report:
    title: str
    runs: list[agg.RunRecord]
    cells: list[agg.Cell]
    metrics: list[str]
    varying: list[str]  # dotted keys that vary across cells, in label order
    baseline: str  # the selector used
    baseline_of: dict[str, agg.Cell | None]  # cell key -> its baseline cell
    groups: list[list[agg.Cell]]  # settings: cells compared with each other
    group_labels: list[str]
    stats: dict[tuple[str, str], MetricStats]  # (cell key, metric) -> stats
    best: list[BestNote] = field(default_factory=list)

    @property
    def failed(self) -> list[agg.RunRecord]:
        return [r for r in self.runs if not r.ok]

    def cell(self, label: str) -> agg.Cell:
        return next(c for c in self.cells if c.label == label)

    def group_of(self, cell: agg.Cell) -> int:
        return next(i for i, g in enumerate(self.groups) if cell in g)


# ----------------------------------------------------------------------------------------------------------
# Building
# ----------------------------------------------------------------------------------------------------------


def build_report(
    run_dirs: list[Path], metrics: list[str] | None = None, baseline: str | None = None, title: str = "runs"
) -> Report:
    """Read the run folders, group them into cells and compute every statistic of the report.

    ``metrics``: metric names (see :data:`focalbench.reports.aggregate.METRIC_INFO`, plus ``best_val.<m>``);
    default :data:`~focalbench.reports.aggregate.DEFAULT_METRICS`. ``baseline``: a selector, or None for
    the default. Raises ConfigError for an unknown metric, a selector that matches no cell (the message
    lists the cells) or one that matches several cells of one setting, and when no run is ok.
    """
    metrics = list(metrics or agg.DEFAULT_METRICS)
    for m in metrics:
        agg.check_metric(m)
    runs = [agg.read_run(Path(d)) for d in run_dirs]
    cells = agg.group_cells(runs)
    if not cells:
        listed = ", ".join(f"{r.run_id} ({r.status})" for r in runs) or "no runs given"
        raise ConfigError(f"no completed run to report: {listed}")
    varying = agg.varying_keys([c.config for c in cells])
    selector, baseline_of, groups = resolve_baseline(cells, varying, baseline)
    report = Report(
        title=title,
        runs=runs,
        cells=cells,
        metrics=metrics,
        varying=varying,
        baseline=selector,
        baseline_of=baseline_of,
        groups=groups,
        group_labels=[group_label(g, varying, selector) for g in groups],
        stats={},
    )
    for cell in cells:
        base = baseline_of.get(cell.key)
        for m in metrics:
            values = agg.seed_values(cell, m)
            delta = None
            if base is not None and base is not cell:
                delta = paired_delta(values, agg.seed_values(base, m))
            report.stats[(cell.key, m)] = MetricStats(
                values, summarize([values[s] for s in sorted(values)]), delta
            )
    report.best = mark_best(report)
    return report


def resolve_baseline(
    cells: list[agg.Cell], varying: list[str], selector: str | None
) -> tuple[str, dict[str, agg.Cell | None], list[list[agg.Cell]]]:
    """The selector used, each cell's baseline, and the settings (groups of cells compared together).

    One matching cell is the baseline of every cell (one group). Several matching cells must lie in
    different settings (the varying keys outside the loss keys and outside the selector); each setting
    then has its own baseline, or none.
    """
    if selector is None:
        for candidate in DEFAULT_BASELINES:
            try:
                return resolve_baseline(cells, varying, candidate)
            except ConfigError:
                continue
        # No named baseline fits: the first cell is everyone's baseline. Chosen as an object, because its
        # label rounds values (gamma=2.74407) and would not select it back.
        return cells[0].label, {c.key: cells[0] for c in cells}, [list(cells)]
    chosen = agg.select_cells(cells, selector)
    if len(chosen) == 1:
        return selector, {c.key: chosen[0] for c in cells}, [list(cells)]
    setting = setting_keys(varying, selector)
    groups: dict[tuple, list[agg.Cell]] = {}
    for cell in cells:
        groups.setdefault(tuple(agg.canonical(cell.config.get(k)) for k in setting), []).append(cell)
    baseline_of: dict[str, agg.Cell | None] = {}
    for members in groups.values():
        hits = [c for c in members if c in chosen]
        if len(hits) > 1:
            raise ConfigError(
                f"baseline '{selector}' matches {len(hits)} cells ({agg.list_cells(hits)}); "
                f'add keys to pick one, e.g. "{selector} {_distinguishing_pair(hits, varying)}"'
            )
        for cell in members:
            baseline_of[cell.key] = hits[0] if hits else None
    return selector, baseline_of, list(groups.values())


def setting_keys(varying: list[str], selector: str) -> list[str]:
    """The varying keys that define a setting (cells compared with each other): those the selector does not
    name. A selector that names a loss key (``loss=ce alpha=none``) compares losses, so the loss keys are not
    part of the setting; one that names none (``precision=fp32``) compares that key within each loss cell."""
    named = {k for k, _ in agg.parse_selector(selector)}
    compares_losses = bool(named & agg.LOSS_KEYS)
    return [k for k in varying if k not in named and not (compares_losses and k in agg.LOSS_KEYS)]


def _distinguishing_pair(cells: list[agg.Cell], varying: list[str]) -> str:
    for key in varying:
        if len({agg.canonical(c.config.get(key)) for c in cells}) > 1:
            return f"{agg.short_name(key)}={agg.format_value(cells[0].config.get(key))}"
    return ""


def group_label(cells: list[agg.Cell], varying: list[str], selector: str) -> str:
    """The setting shared by a group, e.g. 'imbalance=10'; 'all cells' for a single group."""
    keys = [
        k
        for k in setting_keys(varying, selector)
        if len({agg.canonical(c.config.get(k)) for c in cells}) == 1
    ]
    shared = agg.cell_label(cells[0].config, keys) if keys else ""
    return shared or "all cells"


def mark_best(report: Report) -> list[BestNote]:
    """Per setting and metric with a direction: the best cell by mean, the runner-up, and the noise check."""
    notes = []
    for gi, members in enumerate(report.groups):
        for m in report.metrics:
            better = agg.metric_info(m)[2]
            ranked = [c for c in members if report.stats[(c.key, m)].summary.mean is not None]
            if better is None or len(ranked) < 2:
                continue
            sign = -1.0 if better == "higher" else 1.0
            # sorted() is stable: among equal means the earlier cell wins.
            ranked = sorted(ranked, key=lambda c: sign * report.stats[(c.key, m)].summary.mean)
            best, runner = ranked[0], ranked[1]
            sb, sr = report.stats[(best.key, m)], report.stats[(runner.key, m)]
            sb.best = True
            inside, evidence = inside_noise(sb.values, sr.values, sb.summary.std, sr.summary.std)
            notes.append(BestNote(m, gi, best, runner, inside, evidence))
    return notes


# ----------------------------------------------------------------------------------------------------------
# Entry points for the CLI
# ----------------------------------------------------------------------------------------------------------


def report_for_sweep(
    sweep_dir: Path, metrics: list[str] | None = None, baseline: str | None = None, title: str | None = None
) -> Report:
    """The report of one sweep folder (``results/sweeps/<name>``), titled by the sweep's name by default."""
    sweep_dir = Path(sweep_dir)
    return build_report(agg.sweep_run_dirs(sweep_dir), metrics, baseline, title or f"sweep {sweep_dir.name}")


def default_output_dir(paths: list[str | Path]) -> Path:
    """Where ``focalbench report`` writes when no folder is given: the sweep folder, when exactly one sweep
    folder (holding sweep.json) is reported; otherwise ConfigError asking for an output folder."""
    if len(paths) == 1 and (Path(paths[0]) / "sweep.json").is_file():
        return Path(paths[0])
    raise ConfigError("several folders or runs are reported: say where to write the tables with --out DIR")


def write_report(
    report: Report,
    out_dir: Path,
    formats: tuple[str, ...] = ("md", "csv", "latex", "json"),
    plots: bool = True,
) -> list[Path]:
    """Write the tables (and, with ``plots``, the PNGs) into ``out_dir``; return the paths written.

    ``formats``: any of md (table.md), csv (table.csv), latex (table.tex), json (summary.json). The plots
    are drawn first so that summary.json can list them and the ones skipped, with the reason.
    """
    from focalbench.reports import plots as plotting
    from focalbench.reports import tables

    allowed = ("md", "csv", "latex", "json")
    unknown = [f for f in formats if f not in allowed]
    if unknown:
        raise ConfigError(f"unknown report format '{unknown[0]}'; choose from: {', '.join(allowed)}")
    out_dir = Path(out_dir)
    written: list[Path] = []
    drawn, skipped = plotting.draw_all(report, out_dir) if plots else ({}, {"all": "plots not asked for"})
    written.extend(drawn.values())
    writers = {
        "md": ("table.md", tables.to_markdown),
        "csv": ("table.csv", tables.to_csv),
        "latex": ("table.tex", tables.to_latex),
        "json": ("summary.json", lambda r: tables.to_json(r, drawn, skipped)),
    }
    from focalbench.training.record import write_atomic

    for fmt in formats:
        name, render = writers[fmt]
        path = out_dir / name
        write_atomic(path, render(report))
        written.append(path)
    return written


def render_console(report: Report, console: Console | None = None) -> None:
    """Print the report's table, best-cell notes and failed runs with rich."""
    from focalbench.reports import tables

    tables.print_console(report, console or Console())


def finish_sweep_report(
    plan,
    outcome,
    console: Console | None = None,
    baseline: str | None = None,
    metrics: list[str] | None = None,
) -> Report | None:
    """After ``focalbench sweep``: report the sweep folder, write its tables and plots there, print it.

    ``plan``/``outcome`` are the SweepPlan and SweepOutcome (``write_sweep_list`` must have run). Returns
    None, after saying why, when no run of the sweep finished.
    """
    console = console or Console()
    failed = outcome.failed
    try:
        report = report_for_sweep(plan.sweep_dir, metrics, baseline)
    except ConfigError as exc:
        if failed and len(failed) == len(outcome.statuses):
            console.print(f"[red]no run of sweep {plan.name} finished[/]: {exc}")
            return None
        raise
    render_console(report, console)
    written = write_report(report, plan.sweep_dir)
    ok = len(outcome.statuses) - len(failed)
    line = f"{ok} of {len(outcome.statuses)} runs ok in {outcome.wall_time_s:.1f}s"
    if failed:
        line += f"; [red]{len(failed)} failed[/] (see error.json in their run folders)"
    console.print(line + f"; report: {', '.join(p.name for p in written)} in {plan.sweep_dir}")
    return report
