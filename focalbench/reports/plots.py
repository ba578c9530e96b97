"""The report's figures, drawn headless (matplotlib's Agg canvas; the global backend is left alone) and
written atomically as PNG next to the tables:

- ``metric_vs_gamma.png``: a metric (default balanced accuracy) against γ, one line per combination of
  the other varying keys (α, loss name, ρ, ...), error bars = sample std over seeds (none for n = 1).
  Skipped when γ does not vary.
- ``per_class_recall.png``: mean test recall per class (error bars: std over seeds) for chosen cells
  (default: the baseline and the best cell on balanced accuracy), classes ordered by training count, largest
  first, each labelled with its count.
- ``reliability.png``: reliability diagrams of the same cells from ``test.reliability``, bins pooled over
  seeds (per bin: accuracy and confidence averaged with the bin counts as weights).
- ``loss_vs_pt.png``: focal loss against p_t for the γ values of the report, and γ = 0 (CE) for reference
  (:func:`focalbench.reports.loss_curves.plot_loss_vs_pt`).

:func:`draw_all` returns the plots drawn and, for each one skipped, the reason.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from focalbench.reports import aggregate as agg
from focalbench.reports.stats import summarize


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: Path) -> Path:
    """Render ``fig`` to PNG bytes and write them atomically (temporary file + rename)."""
    buf = io.BytesIO()
    # No "Software" entry: the bytes then depend on the data alone, not on the matplotlib version.
    fig.savefig(buf, format="png", metadata={"Software": None})
    _write_bytes_atomic(Path(path), buf.getvalue())
    return Path(path)


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    import os
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def default_cells(report) -> list[agg.Cell]:
    """The cells shown per class and in reliability diagrams: the (first setting's) baseline and the best
    cell on balanced accuracy there, if that is another cell."""
    first = report.groups[0]
    chosen = [report.baseline_of.get(first[0].key) or first[0]]
    best = next((b.best for b in report.best if b.metric == "balanced_accuracy" and b.group == 0), None)
    if best is None:
        ranked = [c for c in first if agg.seed_values(c, "balanced_accuracy")]
        best = max(
            ranked,
            key=lambda c: np.mean(list(agg.seed_values(c, "balanced_accuracy").values())),
            default=None,
        )
    if best is not None and best is not chosen[0]:
        chosen.append(best)
    return chosen


# ----------------------------------------------------------------------------------------------------------
# The plots
# ----------------------------------------------------------------------------------------------------------


def plot_metric_vs_gamma(report, path: Path, metric: str = "balanced_accuracy") -> Path | str:
    """The plot, or the reason it does not apply (a string)."""
    if "gamma" not in report.varying:
        return "γ does not vary across the cells"
    others = [k for k in report.varying if k != "gamma"]
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for cell in report.cells:
        values = agg.seed_values(cell, metric)
        if not values or cell.config.get("gamma") is None:  # a loss without gamma has no point on this axis
            continue
        s = summarize([values[k] for k in sorted(values)])
        name = agg.cell_label(cell.config, others) if others else "all cells"
        lines.setdefault(name, []).append((float(cell.config["gamma"]), s.mean, s.std or 0.0))
    if not lines:
        return f"no cell has {metric}"
    label = agg.metric_info(metric)[0]
    fig = _figure(6.4, 4.4)
    ax = fig.add_subplot()
    for name, points in lines.items():
        points.sort()
        x, y, e = (np.array(v) for v in zip(*points, strict=True))
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, linewidth=1.6, label=name)
    ax.set_xlabel("γ (focusing parameter)")
    ax.set_ylabel(label)
    ax.set_title(f"{label} against γ (mean ± std over seeds, final epoch, test)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)


def _class_order(cell: agg.Cell) -> tuple[list[int], list[int]]:
    counts = list((cell.runs[0].metrics or {}).get("data", {}).get("train_counts") or [])
    order = sorted(range(len(counts)), key=lambda c: (-counts[c], c))
    return order, counts


def plot_per_class_recall(report, path: Path, cells: list[agg.Cell] | None = None) -> Path | str:
    cells = cells or default_cells(report)
    order, counts = _class_order(cells[0])
    if not order:
        return "the records hold no training class counts"
    fig = _figure(max(6.4, 0.45 * len(order) * len(cells) + 2), 4.4)
    ax = fig.add_subplot()
    width = 0.8 / len(cells)
    for i, cell in enumerate(cells):
        per_seed = [(r.metrics or {}).get("test", {}).get("per_class_recall") or [] for r in cell.runs]
        means, stds = [], []
        for c in order:
            s = summarize([v[c] for v in per_seed if c < len(v) and v[c] is not None])
            means.append(np.nan if s.mean is None else s.mean)
            stds.append(s.std or 0.0)
        x = np.arange(len(order)) + (i - (len(cells) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, capsize=2, label=cell.label)
    ax.set_xticks(np.arange(len(order)), [f"{c}\n({counts[c]})" for c in order], fontsize=7)
    ax.set_xlabel("class (training count), most frequent first")
    ax.set_ylabel("test recall %")
    ax.set_ylim(0, 105)
    ax.set_title("per-class recall, mean ± std over seeds (final epoch, balanced test set)", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)


def pooled_reliability(cell: agg.Cell) -> dict[str, list] | None:
    """The cell's reliability bins pooled over seeds: counts summed, confidence and accuracy count-weighted."""
    bins = [(r.metrics or {}).get("test", {}).get("reliability") for r in cell.runs]
    bins = [b for b in bins if b]
    if not bins:
        return None
    lower, upper = bins[0]["bin_lower"], bins[0]["bin_upper"]
    count = np.zeros(len(lower))
    conf = np.zeros(len(lower))
    acc = np.zeros(len(lower))
    for b in bins:
        n = np.asarray(b["count"], dtype=float)
        count += n
        conf += n * np.array([v or 0.0 for v in b["confidence"]], dtype=float)
        acc += n * np.array([v or 0.0 for v in b["accuracy"]], dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "bin_lower": list(lower),
            "bin_upper": list(upper),
            "count": count.tolist(),
            "confidence": np.where(count > 0, conf / count, np.nan).tolist(),
            "accuracy": np.where(count > 0, acc / count, np.nan).tolist(),
        }


def plot_reliability(report, path: Path, cells: list[agg.Cell] | None = None) -> Path | str:
    cells = [c for c in (cells or default_cells(report)) if pooled_reliability(c) is not None]
    if not cells:
        return "the records hold no reliability bins"
    fig = _figure(4.0 * len(cells), 4.2)
    for i, cell in enumerate(cells):
        rel = pooled_reliability(cell)
        ax = fig.add_subplot(1, len(cells), i + 1)
        lower = np.asarray(rel["bin_lower"]) * 100
        widths = (np.asarray(rel["bin_upper"]) - np.asarray(rel["bin_lower"])) * 100
        ax.bar(
            lower,
            np.nan_to_num(rel["accuracy"]),
            widths,
            align="edge",
            edgecolor="k",
            linewidth=0.5,
            label="accuracy",
        )
        ax.plot([0, 100], [0, 100], "--", color="0.4", linewidth=1, label="perfect calibration")
        ax.plot(
            np.asarray(rel["confidence"]),
            np.asarray(rel["accuracy"]),
            "o",
            color="C3",
            markersize=3,
            label="(confidence, accuracy)",
        )
        ece = summarize(list(agg.seed_values(cell, "ece").values())).mean
        ax.set_title(f"{cell.label}\nECE {ece:.2f}%" if ece is not None else cell.label, fontsize=8)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_xlabel("confidence %")
        if i == 0:
            ax.set_ylabel("accuracy %")
            ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return save_png(fig, path)


def plot_loss_curves(report, path: Path) -> Path | str:
    from focalbench.reports.loss_curves import plot_loss_vs_pt

    gammas = sorted(
        {0.0} | {float(c.config["gamma"]) for c in report.cells if c.config.get("gamma") is not None}
    )
    return plot_loss_vs_pt(gammas, path)


PLOTS = {
    "metric_vs_gamma": ("metric_vs_gamma.png", plot_metric_vs_gamma),
    "per_class_recall": ("per_class_recall.png", plot_per_class_recall),
    "reliability": ("reliability.png", plot_reliability),
    "loss_vs_pt": ("loss_vs_pt.png", plot_loss_curves),
}


def draw_all(report, out_dir: Path) -> tuple[dict[str, Path], dict[str, str]]:
    """Draw every plot into ``out_dir``: ({name: path} drawn, {name: reason} skipped)."""
    drawn, skipped = {}, {}
    for name, (filename, draw) in PLOTS.items():
        result = draw(report, Path(out_dir) / filename)
        if isinstance(result, Path):
            drawn[name] = result
        else:
            skipped[name] = result
            (Path(out_dir) / filename).unlink(
                missing_ok=True
            )  # a stale plot from an earlier grid would mislead
    return drawn, skipped
