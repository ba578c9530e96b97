"""What the CLI prints for one run (its metrics table), for a dataset (its class table) and at the end of a
sweep (its report, rendered by focalbench.reports.render)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# Where stdout is not a terminal (a pipe, a file) nothing wraps or cuts text to a width: a table as wide as
# its cells needs, up to this many columns (rich would otherwise assume 80 and cut cells to '…').
PIPED_WIDTH = 1000


def console_settings() -> dict:
    """How focalbench prints, for rich's Console: in a terminal, rich's own choices; where stdout is not a
    terminal, :data:`PIPED_WIDTH` columns (rich never styles what is not a terminal, unless FORCE_COLOR asks);
    with NO_COLOR set (not empty), no style at all, not even bold (https://no-color.org)."""
    settings: dict = {}
    if not sys.stdout.isatty():
        settings["width"] = PIPED_WIDTH
    if os.environ.get("NO_COLOR"):
        settings["color_system"] = None
    return settings


def make_console() -> Console:
    """The console a command prints through (:func:`console_settings`)."""
    return Console(**console_settings())


def configure_rich() -> None:
    """Give rich's global console (progress bars, ``rich.print``) the same settings as :func:`make_console`."""
    import rich

    rich.reconfigure(**console_settings())


# (key in metrics["test"], label, format)
RUN_METRICS = (
    ("accuracy", "top-1 accuracy %", "{:.2f}"),
    ("balanced_accuracy", "balanced accuracy %", "{:.2f}"),
    ("macro_f1", "macro-F1 %", "{:.2f}"),
    ("many_shot_acc", "many-shot acc %", "{:.2f}"),
    ("medium_shot_acc", "medium-shot acc %", "{:.2f}"),
    ("few_shot_acc", "few-shot acc %", "{:.2f}"),
    ("nll", "NLL (nats)", "{:.4f}"),
    ("ece", "ECE % (15 bins)", "{:.2f}"),
)
FEATURE_ROWS = 20  # data info: inputs listed in the feature table


def _fmt(value, fmt: str) -> str:
    return "—" if value is None else fmt.format(value)


def run_sanity_lines(outcome) -> list[str]:
    """The sanity flags of a finished run (:mod:`focalbench.reports.sanity`), one warning line each."""
    import yaml

    from focalbench.reports.sanity import history, sanity_flags

    cfg_file = Path(outcome.run_dir) / "config.yaml"
    cfg = (yaml.safe_load(cfg_file.read_text()) if cfg_file.is_file() else None) or {}
    batch = cfg.get("batch_size")
    changes = bool(cfg.get("alpha_start_epoch") or 0)
    flags = sanity_flags(outcome.metrics, history(outcome.run_dir), int(batch) if batch else None, changes)
    return [f"warning: {'probabilities degenerate: ' if f.degenerate else ''}{f.text}" for f in flags]


def print_run_summary(outcome, console: Console | None = None) -> None:
    """The metrics table of one run: final epoch on test, and test at the best validation epoch."""
    console = console or make_console()
    m = outcome.metrics
    if outcome.status == "error":
        console.print(
            f"[red]run {outcome.run_id} failed:[/] {outcome.error}  (see {outcome.run_dir}/error.json)"
        )
        return
    if outcome.status == "skipped":
        console.print(
            f"run {outcome.run_id} is already done; showing its record (use --force to run it again)"
        )
    if m["status"] == "diverged":
        d = m["divergence"]
        console.print(
            f"[red]run {outcome.run_id} diverged[/] at epoch {d['epoch']}, step {d['step']} "
            f"(last finite loss {d['last_finite_loss']})"
        )
        return
    best = m.get("best_val")
    table = Table(title=f"{m['cell']}  seed={m['seed']}")
    table.add_column("metric")
    table.add_column("test, final epoch", justify="right")
    if best:
        table.add_column(f"test, best-val epoch ({best['epoch']})", justify="right")
    if m.get("val"):
        table.add_column("val, final epoch", justify="right")
    for key, label, fmt in RUN_METRICS:
        row = [label, _fmt(m["test"].get(key), fmt)]
        if best:
            row.append(_fmt(best["test"].get(key), fmt))
        if m.get("val"):
            row.append(_fmt(m["val"].get(key), fmt))
        table.add_row(*row)
    console.print(table)
    alpha = (m.get("loss") or {}).get("alpha_resolved")
    if alpha is not None:  # which class gets which weight, by name
        from focalbench.reports.aggregate import alpha_per_class, class_names

        names = class_names(outcome.run_dir)
        console.print(
            escape(f"α = {m['loss'].get('alpha')} per class: {alpha_per_class(alpha, names)}"),
            highlight=False,
        )
    cal = m.get("calibration")
    if cal:
        console.print(
            f"temperature T={cal['temperature']:.3f} (fitted on the validation split): "
            f"test NLL {cal['nll_ts']:.4f}, ECE {cal['ece_ts']:.2f}% after scaling"
        )
    for line in run_sanity_lines(outcome):
        console.print(f"[yellow]{escape(line)}[/]", highlight=False)
    t = m["timing"]
    console.print(
        f"{t['epochs']} epochs in {t['train_time_s']:.1f}s ({t['images_per_s']:.0f} img/s) on "
        f"{m['environment']['device']} ({m['environment']['precision']}); record: {outcome.run_dir}"
    )
    env = m["environment"]
    if env.get("bf16_convolutions"):
        console.print(
            f"[yellow]note: this CPU has no native bf16 ({env['cpu']}): the convolutions ran as fp32 products "
            "rounded to bf16, at about fp32's speed; precision=auto would pick fp32[/yellow]"
        )


def print_data_info(cfg, console: Console | None = None, missing_allowed: bool | None = None) -> None:
    """The class-count table of a dataset config (loads the data on the CPU). ``missing_allowed``: the user's
    ``data.missing_as_category`` (None: the source has no such key), for the line on missing categories."""
    import torch

    from focalbench.data import describe, load_data

    console = console or make_console()
    data = load_data(cfg.data, torch.device("cpu"))
    info = describe(data, int(cfg.eval.many_threshold), int(cfg.eval.few_threshold))
    rho = cfg.data.imbalance
    ratio = "natural class counts" if rho is None else f"imbalance {rho:g} ({cfg.data.profile})"
    table = Table(title=f"{cfg.data.name}: {ratio}")
    rows = info["classes"]
    alpha = _resolved_alpha(cfg, data.train_counts)
    if alpha is not None:  # the class weights a run of this config would train with, beside each class's name
        rows = [row | {f"α ({cfg.alpha})": f"{w:.4g}"} for row, w in zip(rows, alpha, strict=True)]
    for col in rows[0]:
        table.add_column(str(col), justify="left" if col in ("name", "group") else "right")
    for row in rows:
        table.add_row(*[str(v) for v in row.values()])
    console.print(table)
    for key, value in info.items():
        if key == "achieved_imbalance":  # one figure for the imbalance (describe() keeps both for records)
            console.print(
                f"imbalance ρ = n_max / n_min: {value:.4g} (the class counts before the validation split, the "
                "longtail column; the training split's own counts are the train column)"
            )
        elif key not in ("classes", "features", "measured_imbalance"):
            console.print(f"{key}: {value}")
    missing = (info.get("inputs") or {}).get("missing") or {}
    if missing:
        console.print(escape(missing_categories_line(missing, bool(missing_allowed))), highlight=False)
    features = info.get("features") or []
    if features:  # your own vector data: the raw training split's inputs, the first FEATURE_ROWS of them
        shown = Table(title="features (training split, before standardisation)")
        for col in features[0]:
            shown.add_column(col, justify="left" if col == "feature" else "right")
        for row in features[:FEATURE_ROWS]:
            shown.add_row(*[v if isinstance(v, str) else f"{v:.4g}" for v in row.values()])
        console.print(shown)
        if len(features) > FEATURE_ROWS:
            console.print(f"... and {len(features) - FEATURE_ROWS} more inputs")


def _resolved_alpha(cfg, train_counts) -> list[float] | None:
    """The per-class weights ``cfg.alpha`` gives for these training counts (None: unweighted), as a run
    resolves them (focalbench.losses.resolve_alpha)."""
    from omegaconf import OmegaConf

    from focalbench.losses import resolve_alpha

    given = OmegaConf.to_container(cfg.alpha) if OmegaConf.is_config(cfg.alpha) else cfg.alpha
    weights = resolve_alpha(
        given, list(train_counts), beta=float(cfg.loss.beta), normalize=str(cfg.loss.normalize)
    )
    return None if weights is None else [float(w) for w in weights.cpu()]


def missing_categories_line(missing: dict[str, int], allowed: bool) -> str:
    """``data info``'s line on missing values in categorical columns: how many, what they become, and whether
    runs take them (``data.missing_as_category=true``) or refuse them."""
    counts = ", ".join(f"'{column}' {n} row{'s' if n != 1 else ''}" for column, n in missing.items())
    become = ", ".join(f"'{column}=<missing>'" for column in missing)
    if allowed:
        return f"missing values in categorical column(s) {counts}: kept as the category {become} (data.missing_as_category=true)"
    return (
        f"warning: missing values in categorical column(s) {counts}: runs refuse them; fill them, or keep them "
        f"as the category {become} with data.missing_as_category=true"
    )


def finish_sweep_report(
    plan,
    outcome,
    console=None,
    baseline=None,
    metrics=None,
    group_by=None,
    margin=None,
    resolution=None,
    full=False,
):
    """After ``focalbench sweep``: report the sweep folder (``plan``'s, whose sweep.json is written), write
    its files there, print it and return the Report; None, after saying why, when no run finished."""
    from focalbench.errors import ConfigError
    from focalbench.reports.render import print_report
    from focalbench.reports.report import report_for_sweep, write_report

    console = console or make_console()
    try:
        report = report_for_sweep(
            plan.sweep_dir, metrics, baseline, group_by=group_by, margin=margin, resolution=resolution
        )
    except ConfigError as exc:
        if outcome.failed and len(outcome.failed) == len(outcome.statuses):
            console.print(f"[red]no run of sweep {plan.name} finished[/]: {exc}")
            return None
        raise
    print_report(report, console, full=full)
    written = write_report(report, plan.sweep_dir)
    line = f"{len(outcome.statuses) - len(outcome.failed)} of {len(outcome.statuses)} runs ok in {outcome.wall_time_s:.1f}s"
    if outcome.failed:
        line += f"; [red]{len(outcome.failed)} failed[/] (see error.json in their run folders)"
    console.print(line + f"; report: {', '.join(p.name for p in written)} in {plan.sweep_dir}")
    return report
