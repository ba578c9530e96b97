"""Building the report model (:mod:`.model`) from run records, and writing its files (:func:`write_report`:
plots, table.md/.csv/.tex, summary.json, a suite's verdicts; atomically; same records, same bytes).

- Cells pool the seeds of one grid point; values are FINAL-epoch test metrics (``best_val.<metric>``: test
  metrics at the best-validation epoch, labelled so).
- Settings (``--group-by``): cells are compared only within a setting, the cells that share the values of
  the group-by keys. Default: every varying key that is neither a loss key (loss, gamma, alpha, beta) nor
  named by the baseline selector, so that losses are compared within each data / model / ρ setting.
- Baseline: a selector matching at most one cell per setting; by default ``loss=ce alpha=none`` where it
  fits, else ``gamma=0 alpha=none``, else the first cell of each setting. Δ = paired (cell − baseline)
  with a 95% t CI; the best cell per setting and metric, and whether its lead is noise (:mod:`.stats`).
"""

from __future__ import annotations

import json
from pathlib import Path

from focalbench.errors import ConfigError, ReportError
from focalbench.reports import aggregate as agg
from focalbench.reports.basis import basis_lines
from focalbench.reports.model import Best, Cell, MetricStats, Report, to_json
from focalbench.reports.sanity import cell_flag_lines
from focalbench.reports.stats import NOISE_RULE, inside_noise, paired_delta, summarize
from focalbench.training.record import write_atomic

DEFAULT_BASELINES = ("loss=ce alpha=none", "gamma=0 alpha=none")
FORMATS = (
    "md",
    "csv",
    "latex",
    "json",
    "html",
)  # the report's files; `report --format parquet` adds runs.parquet
REPORT_FORMATS = (*FORMATS, "parquet")


def check_formats(formats) -> None:
    """ConfigError naming the first of ``formats`` that ``focalbench report --format`` does not know."""
    if unknown := [f for f in formats if f not in REPORT_FORMATS]:
        raise ConfigError(f"unknown report format '{unknown[0]}'; choose from: {', '.join(REPORT_FORMATS)}")


DEFINITIONS = {
    "values": "final-epoch metrics on the balanced test set; best_val.<metric> is the test metric at the epoch "
    "with the best validation balanced accuracy",
    "cell": "mean ± sample std (ddof=1) over seeds; std is '—' for n=1; n = number of seeds",
    "delta": "paired Δ = mean over shared seeds of (cell − baseline), with its 95% Student-t CI "
    "(t_{0.975,n−1}·s_d/√n); seeds without a partner are left out",
    "best": "best cell per metric (higher is better for accuracy-type metrics and images/s; lower for NLL, "
    "ECE, error and time), marked within each setting; " + NOISE_RULE,
    "order": "cells in order of first appearance in the run list (the sweep's grid order)",
    "units": "accuracy-type metrics and ECE in percent; NLL in nats; time in seconds",
}


def build_report(
    run_dirs,
    metrics=None,
    baseline=None,
    title: str = "runs",
    group_by=None,
    margin: float | None = None,
    resolution: float | None = None,
    rerun: list[str] | None = None,
    loss_names: dict[str, list[str]] | None = None,
    first_as_baseline: bool = True,
    answer_on_metrics: bool = False,
) -> Report:
    """The report of the runs in ``run_dirs``. ``metrics``: names of :data:`.aggregate.METRIC_INFO` or
    ``best_val.<m>``; ``baseline``: a selector; ``group_by``: keys (short, dotted, or env.device,
    env.precision, env.focalbench, which also split cells), [] for one setting; None: the defaults.
    ConfigError for an unknown metric or key, a baseline matching no cell or several of one setting, or no
    ok run; ReportError when a cell mixes runs made with different focalbench versions, devices or precisions.
    ``margin``, ``resolution`` and ``rerun`` go to the answer (:func:`.answer.build_answer`);
    ``answer_on_metrics``: the answer compares on ``metrics`` (the user named them) instead of its three
    families.
    ``loss_names``: {run id: the loss names the user typed for it} (:func:`.aggregate.typed_loss_names`), so
    that cells read as the user named them. ``first_as_baseline`` False: where no default selector fits, no
    cell is the baseline (a tuning sweep's first trial is an arbitrary point, not a reference).
    """
    from focalbench.reports.answer import DEFAULT_RESOLUTION, build_answer

    chosen = list(metrics) if answer_on_metrics and metrics else None
    metrics = list(metrics or agg.DEFAULT_METRICS)
    for m in metrics:
        agg.check_metric(m)
    runs = [agg.read_run(Path(d)) for d in run_dirs]
    agg.unify_data_paths(runs)  # one data file is one cell, however its path was typed
    keys = None if group_by is None else list(dict.fromkeys(agg.ALIASES.get(k, k) for k in group_by))
    cells = group_cells(runs, [k for k in keys or [] if k in agg.ENV_FIELDS])
    if not cells:
        listed = ", ".join(f"{r.run_id} ({r.status})" for r in runs) or "no runs given"
        raise ConfigError(f"no completed run to report: {listed}")
    varying = agg.varying_keys([c.full_config for c in cells])
    typed = [_typed_names(cell, loss_names or {}) for cell in cells]
    labels = agg.readable_labels([c.full_config for c in cells], varying, typed)
    for cell, label in zip(cells, labels, strict=True):
        cell.label = label
    for cell in cells:
        cell.config = {agg.short_name(k): cell.full_config.get(k) for k in varying}
    check_environment(cells)
    selector, settings = assign_baselines(cells, varying, baseline, keys, first_as_baseline)
    by_label = {c.label: c for c in cells}
    for cell in cells:
        cell.metrics = {m: metric_stats(cell, by_label.get(cell.baseline), m) for m in metrics}
    labels, shorts = {m: agg.metric_info(m)[0] for m in metrics}, [agg.short_name(k) for k in varying]
    not_ok = [not_ok_row(r, varying) for r in runs if not r.ok]
    report = Report(title, DEFINITIONS, labels, shorts, selector, settings, cells, [], {}, not_ok)
    report.varying = varying
    report.best = mark_best(report)
    report.notes = notes(report)
    if same := same_run_lines(cells, typed):  # only where there are some: other summaries stay as they were
        report.notes["same_runs"] = same
    report.answer = build_answer(report, margin, resolution or DEFAULT_RESOLUTION, rerun, chosen)
    return report


def group_cells(runs: list[agg.RunRecord], env_keys: list[str]) -> list[Cell]:
    """The ok runs grouped by semantic config (plus the ``env_keys`` named by --group-by), in order of
    first appearance. A second ok run of one cell with the same seed (records copied by hand) is dropped."""
    cells: dict[str, Cell] = {}
    for run in (r for r in runs if r.ok):
        config = run.config | {k: run.env[k] for k in env_keys}
        key = json.dumps(config, sort_keys=True, default=str)
        cell = cells.setdefault(key, Cell("", {}, [], [], None, None, full_config=config))
        if run.seed not in cell.seeds:
            cell.runs.append(run)
            cell.seeds.append(run.seed)
    for cell in cells.values():
        cell.seeds, cell.run_ids = map(list, zip(*sorted((r.seed, r.run_id) for r in cell.runs), strict=True))
        cell.alpha_resolved = ((cell.runs[0].metrics or {}).get("loss") or {}).get("alpha_resolved")
    return list(cells.values())


def _typed_names(cell: Cell, loss_names: dict[str, list[str]]) -> list[str]:
    """The loss names typed for the cell's runs, in order, each once."""
    return list(dict.fromkeys(name for rid in cell.run_ids for name in loss_names.get(rid, [])))


def same_run_lines(cells: list[Cell], typed: list[list[str]]) -> list[str]:
    """One line per cell that the user named twice (an alias: ``balanced_softmax`` is ``logit_adjusted``
    with τ = 1, one config and so one run id), e.g. ``balanced_softmax = logit_adjusted tau=1: one run,
    shown as 'loss=balanced_softmax'``."""
    lines = []
    for cell, names in zip(cells, typed, strict=True):
        if len(names) < 2:
            continue
        own = " ".join(
            f"{k.removeprefix('loss.')}={agg.format_value(v)}"
            for k, v in cell.full_config.items()
            if k.startswith("loss.") and k not in ("loss.name", "loss.beta", "loss.normalize", "loss.mean")
        )
        lines.append(f"{' = '.join(names)}{' ' + own if own else ''}: one run, shown as '{cell.label}'")
    return lines


def check_environment(cells: list[Cell]) -> None:
    """ReportError when the runs of one cell were made with different focalbench versions, device types or
    precisions: they are not repeats of one experiment, and a mean over them would hide it."""
    for cell in cells:
        for key in (k for k in agg.ENV_FIELDS if k not in cell.full_config):  # else split by --group-by
            found: dict[str, list[str]] = {}
            for run in cell.runs:
                found.setdefault(str(run.env[key]), []).append(run.run_id)
            if len(found) > 1:
                mixed = "; ".join(f"{value}: {', '.join(ids)}" for value, ids in found.items())
                what = f"cell '{cell.label}' mixes runs made with different {key.removeprefix('env.')}"
                fix = f"report them separately, or add {key} to --group-by to give each its own cell"
                raise ReportError(f"{what} ({mixed}); {fix}")


def split_settings(cells: list[Cell], keys: list[str]) -> list[str]:
    """Set each cell's ``setting`` (cells with the same values of ``keys``, in order of appearance) and
    return the settings' labels: the keys that vary among cells ('all cells' when none does)."""
    configs = [c.full_config for c in cells]
    agg.check_keys(keys, configs, "--group-by")
    shown = [k for k in keys if len({agg.canonical(c.get(k)) for c in configs}) > 1]
    settings: dict[tuple, int] = {}
    for cell in cells:
        values = tuple(agg.canonical(cell.full_config.get(k)) for k in shown)
        cell.setting = settings.setdefault(values, len(settings))
    firsts = {c.setting: c.full_config for c in reversed(cells)}
    return [agg.cell_label(firsts[i], shown) if shown else "all cells" for i in range(len(settings))]


def assign_baselines(
    cells: list[Cell], varying: list[str], selector, group_by, first_as_baseline: bool = True
) -> tuple[str, list[str]]:
    """Split the cells into settings and give each cell the baseline of its setting (none where no cell
    matches); return the selector used and the settings' labels. ConfigError when the selector matches no
    cell, or several cells of one setting; the default selectors are tried in turn."""
    if selector is None:
        for candidate in DEFAULT_BASELINES:
            try:
                return assign_baselines(cells, varying, candidate, group_by, first_as_baseline)
            except ConfigError:
                continue
    named = {k for k, _ in agg.parse_selector(selector)} if selector else set()
    setting_keys = [k for k in varying if not agg.is_loss_key(k) and k not in named]
    keys = group_by if group_by is not None else setting_keys
    labels = split_settings(cells, keys)
    chosen = agg.select(cells, [c.full_config for c in cells], selector) if selector else []
    if selector and not chosen:
        hint = ""
        if "loss=balanced_ce" in selector.split():
            hint = ' (balanced_ce is loss=ce with class weights: select it as "loss=ce alpha=inverse_freq")'
        listed = "; ".join(f"'{c.label}'" for c in cells)
        raise ConfigError(f"selector '{selector}' matches no cell{hint}; the cells are: {listed}")
    for index, label in enumerate(labels):
        members = [c for c in cells if c.setting == index]
        hits = [c for c in members if c in chosen] if selector else members[: int(first_as_baseline)]
        if len(hits) > 1:
            where = "" if len(labels) == 1 else f" of setting {label}"
            listed, example = "; ".join(f"'{c.label}'" for c in hits), distinguishing_pair(hits, varying)
            raise ConfigError(
                f"baseline '{selector}' matches {len(hits)} cells{where} ({listed}); add keys to pick one, "
                f'e.g. "{selector} {example}", or compare within groups with --group-by'
            )
        for cell in members:
            cell.baseline = hits[0].label if hits else None
    if selector is None and not first_as_baseline:
        selector = NO_TUNING_BASELINE
    elif selector is None:  # no default selector fits: the first cell of each setting
        selector = cells[0].label if len(labels) == 1 else "the first cell of each setting"
    return selector, labels


NO_TUNING_BASELINE = (
    "none: a tuning sweep's trials hold no CE (loss=ce alpha=none) or gamma=0 alpha=none cell, and its first "
    'trial is no reference; name one with --baseline "gamma=..." or add such a run to the report'
)


def distinguishing_pair(cells: list[Cell], varying: list[str]) -> str:
    """``key=value`` of the first key that tells ``cells`` apart, for error messages."""
    key = next((k for k in varying if len({agg.canonical(c.full_config.get(k)) for c in cells}) > 1), None)
    return f"{agg.short_name(key)}={agg.format_value(cells[0].full_config.get(key))}" if key else ""


def metric_stats(cell: Cell, baseline: Cell | None, metric: str) -> MetricStats:
    """Mean ± std of ``metric`` over the cell's seeds, and its paired Δ against ``baseline`` (not itself)."""
    values = dict(sorted(agg.seed_values(cell.runs, metric).items()))
    s = summarize(list(values.values()))
    compared = baseline is not None and baseline is not cell and metric not in agg.TIME_METRICS
    delta = paired_delta(values, agg.seed_values(baseline.runs, metric)) if compared else None
    return MetricStats(s.mean, s.std, s.n, values, False, delta)


TIME_NOTE = (
    "time is shown per run and never compared between cells: the members of a fused group record their share "
    "of the group's time (the sweep's own wall time is printed when it ends)"
)


def mark_best(report: Report) -> list[Best]:
    """Per setting and metric with a direction: the best cell by mean (the earlier among equal means), the
    runner-up, and whether the lead is inside the noise. Time metrics are not ranked (``aggregate.TIME_METRICS``)."""
    found = []
    for index, label in enumerate(report.settings):
        for m in (m for m in report.metrics if agg.metric_info(m)[2] and m not in agg.TIME_METRICS):
            sign = -1.0 if agg.metric_info(m)[2] == "higher" else 1.0
            ranked = [c for c in report.cells if c.setting == index and c.metrics[m].mean is not None]
            if len(ranked) < 2:
                continue
            best, runner = sorted(ranked, key=lambda c: sign * c.metrics[m].mean)[:2]
            sb, sr = best.metrics[m], runner.metrics[m]
            sb.best = True
            inside, evidence = inside_noise(sb.values, sr.values, sb.std, sr.std)
            found.append(Best(m, label, best.label, runner.label, inside, evidence))
    return found


def not_ok_row(run: agg.RunRecord, varying: list[str]) -> dict:
    label = agg.cell_label(run.config, varying) if run.config else "?"
    seed = "—" if run.seed is None else run.seed
    return {"run": run.run_id, "cell": label, "seed": seed, "status": run.status, "why": run.message}


def notes(report: Report) -> dict[str, list[str]]:
    """The lines below the tables, by topic; lines that repeat across cells are listed once."""
    cells, unique = report.cells, lambda lines: list(dict.fromkeys(lines))
    return {
        "baseline": baseline_lines(report),
        "pairing": [line for c in cells if (line := pairing_line(report, c))],
        "best": [best_line(report, b) for b in report.best],
        "alpha": [alpha_line(c) for c in cells],
        "mean_convention": unique(str(_first(c, "loss").get("mean_convention")) for c in cells),
        "shot_thresholds": unique(line for c in cells if (line := shot_line(c))),
        "data": unique(data_line(_first(c, "data")) for c in cells),
        "setup": unique(setup_line(r.metrics or {}) for c in cells for r in c.runs),
        "time": [TIME_NOTE] if any(m in agg.TIME_METRICS for m in report.metrics) else [],
        "basis": basis_lines(report),
        "sanity": cell_flag_lines(report),
    }


def _first(cell: Cell, section: str) -> dict:
    """A section of the metrics.json of the cell's first run (α, data and loss are the same for all seeds)."""
    return (cell.runs[0].metrics or {}).get(section) or {}


def baseline_lines(report: Report) -> list[str]:
    lines = []
    for index, label in enumerate(report.settings):
        base = next(c.baseline for c in report.cells if c.setting == index)
        where = f" in setting {label}" if len(report.settings) > 1 else ""
        lines.append(f"'{base}'{where}" if base else f"none{where} (no cell matches the selector there)")
    return lines


def pairing_line(report: Report, cell: Cell) -> str:
    deltas = [(m, s.delta_vs_baseline) for m, s in cell.metrics.items() if s.delta_vs_baseline]
    lines = dict.fromkeys(f"{report.metrics[m]}: {d.pairing_note()}" for m, d in deltas if d.partial)
    return f"'{cell.label}' vs its baseline: " + "; ".join(lines) if lines else ""


def best_line(report: Report, b: Best) -> str:
    label, fmt, _ = agg.metric_info(b.metric)
    where = f" [{b.setting}]" if len(report.settings) > 1 else ""
    mean = next(c for c in report.cells if c.label == b.best).metrics[b.metric].mean
    verdict = {True: "inside the noise", False: "outside the noise", None: "cannot tell"}[b.inside_noise]
    return f"{label}{where}: '{b.best}' ({fmt.format(mean)}), runner-up '{b.runner_up}': {verdict} ({b.evidence})"


def alpha_line(cell: Cell) -> str:
    loss, w = _first(cell, "loss"), cell.alpha_resolved
    weights = agg.alpha_per_class(w, agg.class_names(cell.runs[0].run_dir) if w is not None else None)
    beta = f", β={cell.full_config.get('loss.beta'):g}" if loss.get("alpha") == "effective_num" else ""
    return f"'{cell.label}': α = {loss.get('alpha')}{beta} → per class: {weights}"


def shot_line(cell: Cell) -> str:
    many, few = cell.full_config.get("eval.many_threshold"), cell.full_config.get("eval.few_threshold")
    if many is None or few is None:
        return ""
    counts = _first(cell, "data").get("train_counts") or []
    groups = f"{sum(c > many for c in counts)} / {sum(few <= c <= many for c in counts)} / {sum(c < few for c in counts)}"
    return (
        f"many-shot: > {many}, medium: {few}–{many}, few-shot: < {few} training examples "
        f"(counted on the training split): {groups} classes"
    )


def data_line(d: dict) -> str:
    unofficial = "; UNOFFICIAL COPY of the dataset (checksums differ from the official archives)"
    return (
        f"{d.get('dataset')}: {_ratio(d)}, data_seed {d.get('data_seed')}; train {d.get('n_train')}, "
        f"val {d.get('n_val')}, test {d.get('n_test')} ({_test_kind(d)}); training class counts "
        f"{d.get('train_counts')}{_provenance(d)}"
    ) + (unofficial if d.get("official_copy") is False else "")


def _ratio(d: dict) -> str:
    if d.get("imbalance") is None:  # your own data at its natural class counts
        return f"natural class counts, measured ρ = {agg.format_value(d.get('measured_imbalance'))}"
    return f"ρ = {agg.format_value(d.get('imbalance'))} ({d.get('profile')} profile)"


def _test_kind(d: dict) -> str:
    """Synthetic and CIFAR test sets are balanced; your own data's is given, or carved from imbalanced data
    (and then imbalanced itself: balanced accuracy and per-class metrics are the numbers to read)."""
    test = d.get("test")
    if test is None:
        return "balanced"
    return "given" if test == "given" else f"{test}: as imbalanced as the data; read balanced accuracy"


def _provenance(d: dict) -> str:
    prov = d.get("provenance") or {}
    return f"; from {prov['path']} (sha256 {str(prov.get('sha256'))[:12]}…)" if prov.get("path") else ""


def setup_line(m: dict) -> str:
    model, env = m.get("model") or {}, m.get("environment") or {}
    return (
        f"model {model.get('name')} ({model.get('parameters')} parameters), "
        f"{(m.get('timing') or {}).get('epochs')} epochs, on {env.get('device')} "
        f"({env.get('precision')}), torch {env.get('torch')}, focalbench {env.get('focalbench')}"
    )


def report_for_sweep(
    sweep_dir: Path,
    metrics=None,
    baseline=None,
    title=None,
    group_by=None,
    margin=None,
    resolution=None,
    suite: bool = False,
) -> Report:
    """The report of one sweep folder (``results/sweeps/<name>``), titled "sweep <name>" by default; the
    answer's suggested command reruns the sweep's own overrides (not for a ``suite``, whose grids are in its
    config: its answer names the seeds to add instead). ``metrics`` given to a sweep's report are what its
    answer compares on; a suite's answer keeps its three families (its claims name their own metrics)."""
    title = title or f"sweep {Path(sweep_dir).name}"
    listing = json.loads((Path(sweep_dir) / "sweep.json").read_text())
    rerun = None if suite else [o for o in listing.get("overrides") or [] if not o.startswith("hydra.")]
    return build_report(
        agg.sweep_run_dirs(Path(sweep_dir)),
        metrics,
        baseline,
        title,
        group_by,
        margin,
        resolution,
        rerun,
        loss_names=agg.typed_loss_names([Path(sweep_dir)]),
        # a tuner's (Optuna's) trials: compare with the user's baseline or CE / gamma=0, never its first trial
        first_as_baseline=listing.get("sweeper", "basic") == "basic",
        answer_on_metrics=not suite,
    )


def report_paths(
    paths: list[Path], metrics=None, baseline=None, group_by=None, margin=None, resolution=None
) -> Report:
    """What ``focalbench report PATHS`` reports: one sweep folder as its sweep did ("sweep <name>", so that
    the same records give the same files), anything else titled "report"."""
    if len(paths) == 1 and (Path(paths[0]) / "sweep.json").is_file():
        return report_for_sweep(
            paths[0], metrics, baseline, group_by=group_by, margin=margin, resolution=resolution
        )
    runs = agg.collect_run_dirs(paths)
    names = agg.typed_loss_names([p for p in paths if (Path(p) / "sweep.json").is_file()])
    return build_report(
        runs,
        metrics,
        baseline,
        "report",
        group_by,
        margin,
        resolution,
        loss_names=names,
        answer_on_metrics=True,
    )


def write_report(report: Report, out_dir: Path, formats=FORMATS, plots: bool = True) -> list[Path]:
    """Write the plots (with ``plots``; first, so that summary.json lists them and report.html embeds them),
    the files of ``formats`` (tables, summary.json, report.html) and a suite's verdicts into ``out_dir``;
    return the paths written."""
    from focalbench.reports import plots as plotting
    from focalbench.reports import render
    from focalbench.reports.html import render_html

    if unknown := [f for f in formats if f not in FORMATS]:
        raise ConfigError(f"unknown report format '{unknown[0]}'; choose from: {', '.join(FORMATS)}")
    none = ({}, {"all": "plots not asked for"})
    drawn, skipped = plotting.draw_all(report, Path(out_dir)) if plots else none
    report.plots, report.plots_skipped = {name: path.name for name, path in drawn.items()}, skipped
    files = {"md": ("table.md", render.markdown), "csv": ("table.csv", render.csv)}
    files |= {"latex": ("table.tex", render.latex), "json": ("summary.json", to_json)}
    files |= {"html": ("report.html", lambda r: render_html(r, Path(out_dir)))}  # embeds the plots drawn
    texts = {files[f][0]: files[f][1](report) for f in formats}
    if report.claims is not None:
        texts["verdicts.md"] = render.verdicts_markdown(report.claims)
        texts["verdicts.json"] = to_json(report.claims)
    for name, text in texts.items():
        write_atomic(Path(out_dir) / name, text)
    return [*drawn.values(), *(Path(out_dir) / name for name in texts)]
