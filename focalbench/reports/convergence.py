"""Is a cell still learning when its training stops? A verdict made on under-trained runs may flip with more
epochs (on a small real table, CE at 30 epochs lost to focal loss, and at 150 epochs the gap was gone).

Per run, from its ``history.csv``: the least-squares slope of the validation balanced accuracy against the
epoch over the last ``TAIL_FRACTION`` of the epochs (at least ``MIN_EPOCHS``), in points per epoch. Per cell:
the mean slope over its seeds with a 95% Student-t CI. A cell is **still improving** when that CI lies above
``MIN_SLOPE`` (0.01 points per epoch; with one seed: no CI, so nothing is said). The answer then says the verdict may change with more epochs and
suggests doubling them; ``learning_curves.png`` draws the validation balanced accuracy and NLL against the
epoch, mean and range over seeds, per cell.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from focalbench.reports.model import Cell
from focalbench.reports.stats import t_interval

TAIL_FRACTION = 0.3
MIN_EPOCHS = 3
# A rise slower than this (points per epoch: 1 point in 100 epochs) is not worth more epochs.
MIN_SLOPE = 0.01
METRIC = "val_balanced_accuracy"


@dataclass
class Convergence:
    """The end of training of one cell: the slope of its validation balanced accuracy."""

    cell: str
    epochs: int
    window: int  # the last epochs the slope is fitted on
    slope: float | None  # points per epoch, mean over seeds
    ci95: tuple[float | None, float | None]
    n: int  # seeds with a history
    still_improving: bool | None  # None: cannot tell (no history, too few epochs, or one seed)


def history(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "history.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))


def series(rows: list[dict], column: str) -> np.ndarray:
    """A history column as floats (NaN where empty: no validation split)."""
    return np.array([float(r[column]) if r.get(column) not in (None, "") else np.nan for r in rows])


def tail_slope(values: np.ndarray) -> tuple[float | None, int]:
    """(slope per epoch of the last ``TAIL_FRACTION`` of ``values``, window length); None when too short."""
    window = max(MIN_EPOCHS, int(round(TAIL_FRACTION * len(values))))
    tail = values[-window:]
    if len(values) < MIN_EPOCHS or np.isnan(tail).any():
        return None, window
    x = np.arange(len(tail), dtype=float)
    return float(np.polyfit(x, tail, 1)[0]), window


def cell_convergence(cell: Cell) -> Convergence:
    slopes, epochs, window = [], 0, 0
    for run in cell.runs:
        rows = history(run.run_dir)
        if METRIC not in (rows[0] if rows else {}):
            continue
        slope, window = tail_slope(series(rows, METRIC))
        epochs = len(rows)
        if slope is not None:
            slopes.append(slope)
    if not slopes:
        return Convergence(cell.label, epochs, window, None, (None, None), 0, None)
    low, high = t_interval(slopes)
    improving = None if low is None else low > MIN_SLOPE
    return Convergence(
        cell.label, epochs, window, float(np.mean(slopes)), (low, high), len(slopes), improving
    )


def under_trained_sentence(c: Convergence) -> str:
    return (
        f"'{c.cell}' is still improving at its last epoch (validation balanced accuracy {c.slope:+.2f} points per "
        f"epoch over the last {c.window} of {c.epochs} epochs, 95% CI [{c.ci95[0]:+.2f}, {c.ci95[1]:+.2f}]): "
        f"under-trained, so the verdict may change with more epochs; try epochs={2 * c.epochs}."
    )


def plot_learning_curves(report, path: Path) -> Path | str:
    """Validation balanced accuracy and NLL against the epoch, per cell: mean over seeds, range shaded."""
    from focalbench.reports.plots import _figure, save_png

    curves = {}
    for cell in report.cells:
        per_run = [history(r.run_dir) for r in cell.runs]
        per_run = [rows for rows in per_run if rows and METRIC in rows[0]]
        if per_run:
            length = min(len(rows) for rows in per_run)
            curves[cell.label] = {
                column: np.stack([series(rows[:length], column) for rows in per_run])
                for column in (METRIC, "val_nll")
            }
    if not curves:
        return "no run recorded validation metrics per epoch"
    fig = _figure(11.0, 4.2)
    axes = [fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)]
    for label, data in curves.items():
        for ax, column in zip(axes, (METRIC, "val_nll"), strict=True):
            values = data[column]
            x = np.arange(1, values.shape[1] + 1)
            (line,) = ax.plot(x, np.nanmean(values, axis=0), linewidth=1.4, label=label)
            ax.fill_between(x, np.nanmin(values, axis=0), np.nanmax(values, axis=0), alpha=0.15,
                            color=line.get_color())  # fmt: skip
    axes[0].set(xlabel="epoch", ylabel="validation balanced accuracy %")
    axes[1].set(xlabel="epoch", ylabel="validation NLL")
    axes[0].set_title("learning curves: mean over seeds, range shaded", fontsize=9)
    axes[1].set_title("validation NLL", fontsize=9)
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return save_png(fig, path)
