"""The report's figures, drawn headless on matplotlib's Agg canvas (the global backend is left alone) and
written atomically as PNG; each plot function returns the path, or why it does not apply:

- ``metric_vs_gamma.png``: balanced accuracy against γ, one line per value of the other varying keys,
  error bars = sample std over seeds. Skipped when γ does not vary.
- ``per_class_recall.png``, ``reliability.png``: the baseline and the best cell on balanced accuracy (of
  the first setting); recall per class by training count, and reliability bins pooled over seeds.
- ``loss_vs_pt.png``: the loss against p_t for the report's γ values and γ = 0 (:mod:`focalbench.losses.curves`).
- ``delta.png``: the answer in one picture: each cell's paired Δ against its baseline with its 95% CI, one
  panel per metric family of the answer (balanced accuracy, the tail, calibration), a zero line, and the
  equivalence band ±margin on the primary metric (balanced accuracy unless ``--metrics`` named another first)
  when a margin was given. Skipped when nothing was compared.
- ``learning_curves.png``: validation balanced accuracy and NLL against the epoch per cell (mean, range over
  seeds): is training still improving at its end (:mod:`.convergence`)?
- ``class_mechanism.png``: per class, by training count, the mean p_t of the training examples and the class's
  share of the training loss (each run's ``train_classes.csv``, averaged over the epochs, then over seeds),
  for the first setting's baseline and its cells without class weights (CE and focal loss at each γ): are
  the rare classes the hard ones, and does focal loss move the loss toward them? Skipped when no such run
  recorded the statistics.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from focalbench.losses.curves import plot_loss_vs_pt
from focalbench.reports import aggregate as agg
from focalbench.reports.model import Cell, Report
from focalbench.reports.stats import summarize
from focalbench.training.record import write_atomic


def _figure(width: float, height: float):
    """A matplotlib Figure on its own Agg canvas; matplotlib is imported here, when a plot is drawn."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path) -> Path:
    """Render ``fig`` to PNG and write it atomically. No "Software" entry: the bytes then depend on the
    data alone, not on the matplotlib version."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    write_atomic(Path(path), buf.getvalue())
    return Path(path)


def default_cells(report: Report) -> list[Cell]:
    """The cells shown per class and in reliability diagrams: the first setting's baseline, and the best
    cell on balanced accuracy there if that is another cell."""
    first = [c for c in report.cells if c.setting == 0]
    by_label = {c.label: c for c in report.cells}
    chosen = [by_label.get(first[0].baseline) or first[0]]
    key = ("balanced_accuracy", report.settings[0])
    noted = [b.best for b in report.best if (b.metric, b.setting) == key]
    if noted:
        best = by_label[noted[0]]
    else:  # balanced accuracy is not a column of the report: rank by it here
        means = {c.label: list(agg.seed_values(c.runs, "balanced_accuracy").values()) for c in first}
        best = max((c for c in first if means[c.label]), key=lambda c: np.mean(means[c.label]), default=None)
    if best is not None and best is not chosen[0]:
        chosen.append(best)
    return chosen


def plot_metric_vs_gamma(report: Report, path: Path, metric: str = "balanced_accuracy") -> Path | str:
    """The plot, or the reason it does not apply (a string). The cells of losses without γ (logit adjustment,
    LDAM, ...) are drawn as dashed horizontal reference lines at their mean, named in the legend, so that
    the plot leaves no cell of the report out without saying so."""
    if "gamma" not in report.varying:
        return "γ does not vary across the cells"
    lines: dict[str, list[tuple[float, float, float]]] = {}
    with_gamma = [c for c in report.cells if c.full_config.get("gamma") is not None]  # LDAM, ... have none
    for cell in (c for c in with_gamma if agg.seed_values(c.runs, metric)):
        s = summarize(list(dict(sorted(agg.seed_values(cell.runs, metric).items())).values()))
        # one line per cell label without its gamma (the report's readable label, so that a line is named
        # as the tables name its cells)
        name = " ".join(t for t in cell.label.split() if not t.startswith("gamma=")) or "all cells"
        lines.setdefault(name, []).append((float(cell.full_config["gamma"]), s.mean, s.std or 0.0))
    if not lines:
        return f"no cell has {metric}"
    no_gamma = [c for c in report.cells if c.full_config.get("gamma") is None]
    # The legend goes under the axes, one entry a line, and the figure grows with it: inside the axes a
    # dozen long labels covered the curves.
    legend_h = 0.2 + 0.16 * (len(lines) + len(no_gamma))
    height = 4.0 + legend_h
    label, fig = agg.metric_info(metric)[0], _figure(7.2, height)
    ax = fig.add_axes((0.1, (legend_h + 0.6) / height, 0.86, (3.4 - 0.35) / height - 0.02))
    for name, points in lines.items():
        x, y, e = (np.array(v) for v in zip(*sorted(points), strict=True))
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, linewidth=1.6, label=name)
    for i, cell in enumerate(no_gamma):
        values = list(agg.seed_values(cell.runs, metric).values())
        if values:  # a loss without γ: one value whatever γ, so a reference line across the plot
            mean = summarize(values).mean
            style = ("--", "-.", ":")[i % 3]
            ax.axhline(mean, color=f"C{(len(lines) + i) % 10}", linestyle=style, linewidth=1.2,
                       label=f"{cell.label} (no γ)")  # fmt: skip
    ax.set(xlabel="γ (focusing parameter)", ylabel=label)
    ax.set_title(f"{label} against γ (mean ± std over seeds, final epoch, test)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.6 / 3.05), frameon=False)
    return save_png(fig, path)


def plot_per_class_recall(report: Report, path: Path, cells: list[Cell] | None = None) -> Path | str:
    """Bars of mean test recall per class ± std over seeds, classes by training count, largest first."""
    cells = cells or default_cells(report)
    counts = list(((cells[0].runs[0].metrics or {}).get("data") or {}).get("train_counts") or [])
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    if not order:
        return "the records hold no training class counts"
    fig = _figure(max(6.4, 0.45 * len(order) * len(cells) + 2), 4.4)
    ax, width = fig.add_subplot(), 0.8 / len(cells)
    for i, cell in enumerate(cells):
        per_seed = [((r.metrics or {}).get("test") or {}).get("per_class_recall") or [] for r in cell.runs]
        stats = [summarize([v[c] for v in per_seed if c < len(v) and v[c] is not None]) for c in order]
        x = np.arange(len(order)) + (i - (len(cells) - 1) / 2) * width
        means = [np.nan if s.mean is None else s.mean for s in stats]
        ax.bar(x, means, width, yerr=[s.std or 0.0 for s in stats], capsize=2, label=cell.label)
    ax.set_xticks(np.arange(len(order)), [f"{c}\n({counts[c]})" for c in order], fontsize=7)
    ax.set(xlabel="class (training count), most frequent first", ylabel="test recall %", ylim=(0, 105))
    ax.set_title("per-class recall, mean ± std over seeds (final epoch, balanced test set)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def pooled_reliability(cell: Cell) -> tuple[np.ndarray, ...] | None:
    """The cell's reliability bins pooled over seeds, in percent: (lower edges, widths, confidence,
    accuracy), where a bin's confidence and accuracy are means over seeds weighted by the bin's counts."""
    bins = [b for r in cell.runs if (b := ((r.metrics or {}).get("test") or {}).get("reliability"))]
    if not bins:
        return None
    counts = [np.asarray(b["count"], dtype=float) for b in bins]
    total = sum(counts)

    def weighted(key: str) -> np.ndarray:  # per bin: Σ over seeds of count · value
        values = [np.array([v or 0.0 for v in b[key]], dtype=float) for b in bins]
        return sum(n * v for n, v in zip(counts, values, strict=True))

    with np.errstate(invalid="ignore", divide="ignore"):
        conf, acc = (np.where(total > 0, weighted(key) / total, np.nan) for key in ("confidence", "accuracy"))
    lower, upper = np.asarray(bins[0]["bin_lower"]), np.asarray(bins[0]["bin_upper"])
    return lower * 100, (upper - lower) * 100, conf, acc


def plot_reliability(report: Report, path: Path, cells: list[Cell] | None = None) -> Path | str:
    """Reliability diagrams: accuracy against confidence, 15 bins pooled over seeds, with the cell's ECE."""
    by_label = {c.label: c for c in cells or default_cells(report)}
    pooled = {label: p for label, c in by_label.items() if (p := pooled_reliability(c)) is not None}
    if not pooled:
        return "the records hold no reliability bins"
    fig = _figure(4.0 * len(pooled), 4.2)
    for i, (label, (lower, widths, conf, acc)) in enumerate(pooled.items()):
        ax = fig.add_subplot(1, len(pooled), i + 1)
        bars = {"align": "edge", "edgecolor": "k", "linewidth": 0.5, "label": "accuracy"}
        ax.bar(lower, np.nan_to_num(acc), widths, **bars)
        ax.plot([0, 100], [0, 100], "--", color="0.4", linewidth=1, label="perfect calibration")
        ax.plot(conf, acc, "o", color="C3", markersize=3, label="(confidence, accuracy)")
        ece = summarize(list(agg.seed_values(by_label[label].runs, "ece").values())).mean
        ax.set_title(f"{label}\nECE {ece:.2f}%" if ece is not None else label, fontsize=8)
        ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="confidence %")
        if i == 0:
            ax.set_ylabel("accuracy %")
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save_png(fig, path)


def plot_loss_curves(report: Report, path: Path) -> Path:
    gammas = {float(c.full_config["gamma"]) for c in report.cells if c.full_config.get("gamma") is not None}
    return plot_loss_vs_pt(sorted({0.0} | gammas), path)


def plot_delta(report: Report, path: Path) -> Path | str:
    """Δ against the baseline with 95% CIs, per metric of the answer (see the module docstring)."""
    answer = report.answer
    findings = [f for s in (answer.settings if answer else []) for f in s.findings if f.delta is not None]
    if not findings:
        return "no cell was compared with a baseline"
    metrics = list(dict.fromkeys(f.metric for f in findings))
    multi = len(report.settings) > 1
    labels = list(dict.fromkeys(f.cell for f in findings))
    fig = _figure(3.6 * len(metrics) + 2.2, 0.42 * len(labels) + 1.6)
    axes = [fig.add_subplot(1, len(metrics), i + 1) for i in range(len(metrics))]
    colors = {"better": "C2", "worse": "C3", "no_difference": "0.45", "equivalent": "C0", "no_ci": "0.7"}
    for ax, metric in zip(axes, metrics, strict=True):
        for f in (f for f in findings if f.metric == metric):
            y = labels.index(f.cell)
            low, high = f.ci95 if f.ci95[0] is not None else (f.delta, f.delta)
            ax.errorbar(f.delta, y, xerr=[[f.delta - low], [high - f.delta]], fmt="o", capsize=3,
                        color=colors.get(f.verdict, "0.45"), markersize=5)  # fmt: skip
        ax.axvline(0.0, color="k", linewidth=0.8)
        primary = any(f.metric == metric and f.family == "primary" for f in findings)
        if primary and answer.margin is not None:  # the margin is in points of the primary metric
            ax.axvspan(
                -answer.margin, answer.margin, color="C0", alpha=0.12, label=f"±{answer.margin:g} margin"
            )
            ax.legend(fontsize=7, loc="lower right")
        better = agg.metric_info(metric)[2]
        ax.set_title(f"Δ {agg.metric_info(metric)[0]}\n({'higher' if better != 'lower' else 'lower'} is better)",
                     fontsize=9)  # fmt: skip
        ax.set_yticks(range(len(labels)), labels if ax is axes[0] else [""] * len(labels), fontsize=7)
        ax.set_ylim(-0.7, len(labels) - 0.3)
        ax.invert_yaxis()
        ax.grid(True, axis="x", alpha=0.3)
    where = " per setting" if multi else ""
    fig.suptitle(f"paired Δ against the baseline{where}, 95% CI over seeds (green: better, red: worse, "
                 "grey: no difference detected)", fontsize=9)  # fmt: skip
    fig.tight_layout()
    return save_png(fig, path)


MECHANISM_LOSSES = ("ce", "focal")  # the cells the mechanism plot compares: no class weights, CE or focal


def mechanism_cells(report: Report) -> list[Cell]:
    """The first setting's baseline, then its cells of CE or focal loss without class weights (at most 6)."""
    first = [c for c in report.cells if c.setting == 0]
    by_label = {c.label: c for c in first}
    baseline = by_label.get(first[0].baseline) if first else None

    def unweighted(c: Cell) -> bool:
        loss = c.full_config.get("loss.name", c.full_config.get("loss"))
        return loss in MECHANISM_LOSSES and c.full_config.get("alpha") in (None, "none")

    chosen = [baseline] if baseline is not None else []
    chosen += [c for c in first if c is not baseline and unweighted(c)]
    return chosen[:6]


def class_statistics(cell: Cell) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean p_t, loss share) per class of a cell: each run's train_classes.csv averaged over its epochs, then
    the mean over the cell's runs; None when no run recorded them."""
    import pandas as pd

    per_run = []
    for run in cell.runs:
        path = Path(run.run_dir) / "train_classes.csv"
        if not path.is_file():
            continue
        table = pd.read_csv(path).groupby("class")[["mean_p_t", "loss_share"]].mean().sort_index()
        per_run.append(table.to_numpy(dtype=float))
    if not per_run:
        return None
    mean = np.nanmean(np.stack(per_run), axis=0)
    return mean[:, 0], mean[:, 1]


def plot_class_mechanism(report: Report, path: Path) -> Path | str:
    """Mean p_t and loss share per class, by training count, for ``mechanism_cells``; the share of the
    training examples drawn as grey bars under the loss shares."""
    cells = [(c, s) for c in mechanism_cells(report) if (s := class_statistics(c)) is not None]
    if len(cells) < 2:
        return "fewer than two cells of CE or focal loss without class weights recorded train_classes.csv"
    counts = list(((cells[0][0].runs[0].metrics or {}).get("data") or {}).get("train_counts") or [])
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    x = np.arange(len(order))
    fig = _figure(max(9.0, 0.5 * len(order) + 5), 4.2)
    ax_p, ax_share = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    example_share = np.array([counts[c] for c in order], dtype=float) / max(sum(counts), 1)
    ax_share.bar(x, 100 * example_share, 0.8, color="0.85", label="share of the training examples")
    for cell, (p_t, share) in cells:
        ax_p.plot(x, [p_t[c] for c in order], marker="o", linewidth=1.4, label=cell.label)
        ax_share.plot(x, [100 * share[c] for c in order], marker="o", linewidth=1.4, label=cell.label)
    ticks = [f"{c}\n({counts[c]})" for c in order]
    for ax in (ax_p, ax_share):
        ax.set_xticks(x, ticks, fontsize=7)
        ax.set_xlabel("class (training count), most frequent first")
        ax.grid(True, alpha=0.3)
    ax_p.set(ylabel="mean p_t of the training examples", ylim=(0, 1))
    ax_p.set_title("how hard each class is (mean over epochs and seeds)", fontsize=9)
    ax_share.set(ylabel="share of the training loss %")
    ax_share.set_title("where the training loss goes (mean over epochs and seeds)", fontsize=9)
    ax_share.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, path)


def _learning_curves(report: Report, path: Path) -> Path | str:
    from focalbench.reports.convergence import plot_learning_curves

    return plot_learning_curves(report, path)


PLOTS = {
    "delta": ("delta.png", plot_delta),
    "metric_vs_gamma": ("metric_vs_gamma.png", plot_metric_vs_gamma),
    "per_class_recall": ("per_class_recall.png", plot_per_class_recall),
    "reliability": ("reliability.png", plot_reliability),
    "loss_vs_pt": ("loss_vs_pt.png", plot_loss_curves),
    "class_mechanism": ("class_mechanism.png", plot_class_mechanism),
    "learning_curves": ("learning_curves.png", _learning_curves),
}


def draw_all(report: Report, out_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw every plot into ``out_dir``: ({name: path} drawn, {name: reason} skipped)."""
    drawn, skipped = {}, {}
    for name, (filename, draw) in PLOTS.items():
        result = draw(report, Path(out_dir) / filename)
        if isinstance(result, Path):
            drawn[name] = result
        else:  # and remove a stale plot of an earlier grid, which would mislead
            skipped[name] = result
            (Path(out_dir) / filename).unlink(missing_ok=True)
    return drawn, skipped
