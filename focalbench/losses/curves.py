"""How much focal loss shrinks the loss of well-classified examples: ``focalbench losses`` (a table) and
``loss_vs_pt.png`` (Figure 1 of Lin et al.). Every number comes from the library's own ``focal_loss`` on
2-class logits [0, log(p / (1 − p))], whose softmax gives p_t = p exactly, so the table checks the code
that training uses: loss = FL(p_t) = −(1 − p_t)^γ log p_t (α none), ce = −log p_t (γ = 0),
factor = loss / ce = (1 − p_t)^γ, reduction = ce / loss (how many times smaller than CE).

``baseline_rows`` puts the long-tail baselines beside them at the same p_t, where a per-example view makes
sense: FLSD-53 (a function of p_t alone) and logit-adjusted CE for the most and the least frequent class of
CIFAR-10-LT (ρ = 100), on 10-class logits [logit, 0, ..., 0] whose plain softmax gives p_t. LDAM is left out:
its loss depends on cosine logits and its scale s, not on p_t alone.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from focalbench.errors import ConfigError
from focalbench.losses.flsd import flsd_loss
from focalbench.losses.focal import focal_loss
from focalbench.losses.logit_adjusted import logit_adjusted_loss
from focalbench.training.record import write_atomic

PT_GRID: tuple[float, ...] = (0.1, 0.25, 0.5, 0.6, 0.75, 0.9, 0.99)
_PT_MAX = 1.0 - 1e-12  # p_t = 1 has no finite logit: the plot ends this close to it (the loss is ~1e-12)


def focal_loss_at_pt(gamma: float, pts: Sequence[float]) -> np.ndarray:
    """Per-example focal loss (α none) in nats at each true-class probability in ``pts`` (in (0, 1)),
    computed in float64 by ``focal_loss`` on logits [0, logit(p_t)]."""
    p = torch.as_tensor(list(pts), dtype=torch.float64)
    if p.numel() and not bool(((p > 0) & (p < 1)).all()):
        raise ConfigError(f"pts must be probabilities strictly between 0 and 1, got {list(pts)}")
    logits = torch.stack([torch.zeros_like(p), torch.log(p) - torch.log1p(-p)], dim=1)
    target = torch.ones(p.numel(), dtype=torch.long)
    return focal_loss(logits, target, gamma=gamma, reduction="none").numpy()


def loss_table(gammas: Sequence[float], pts: Sequence[float] = PT_GRID) -> list[dict[str, float]]:
    """One row per (gamma, p_t), gammas outermost: gamma, p_t, loss, factor, ce, reduction (module
    docstring). ConfigError for a bad gamma or a p_t outside (0, 1)."""
    ce, keys = focal_loss_at_pt(0.0, pts), ("gamma", "p_t", "loss", "factor", "ce", "reduction")
    return [
        dict(zip(keys, map(float, (gamma, p_t, fl, fl / c, c, c / fl)), strict=True))
        for gamma in gammas
        for p_t, fl, c in zip(pts, focal_loss_at_pt(gamma, pts), ce, strict=True)
    ]


CIFAR10_LT_COUNTS = (5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50)  # rho = 100 (Cao et al. 2019)


def _ten_class_logits(pts: Sequence[float], target: int) -> tuple[torch.Tensor, torch.Tensor]:
    """float64 logits [N, 10], 0 except log(9 p / (1 - p)) at ``target``, so softmax gives p_t = p there."""
    p = torch.as_tensor(list(pts), dtype=torch.float64)
    logits = torch.zeros(p.numel(), 10, dtype=torch.float64)
    logits[:, target] = torch.log(9.0 * p) - torch.log1p(-p)
    return logits, torch.full((p.numel(),), target, dtype=torch.long)


def baseline_rows(pts: Sequence[float] = PT_GRID) -> list[tuple[str, list[float]]]:
    """(label, per-example loss at each p_t) for the baselines with a per-example view (module docstring)."""
    two_class = torch.stack(
        [
            torch.zeros(len(pts), dtype=torch.float64),
            torch.logit(torch.tensor(list(pts), dtype=torch.float64)),
        ],
        1,
    )
    rows = [
        ("FLSD-53", flsd_loss(two_class, torch.ones(len(pts), dtype=torch.long), reduction="none").tolist())
    ]
    for target, which in ((0, "most frequent"), (9, "least frequent")):
        logits, labels = _ten_class_logits(pts, target)
        loss = logit_adjusted_loss(logits, labels, CIFAR10_LT_COUNTS, tau=1.0, reduction="none")
        rows.append((f"logit-adjusted τ=1, {which} class (n={CIFAR10_LT_COUNTS[target]})", loss.tolist()))
    return rows


def plot_loss_vs_pt(gammas: Sequence[float], path: str | os.PathLike[str]) -> Path:
    """Write (atomically) a PNG of the loss against p_t in (0, 1], one curve per gamma, like Figure 1 of
    Lin et al. 2017, on matplotlib's Agg canvas (imported here; the global backend is left alone)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(path)
    pts = np.linspace(1e-3, _PT_MAX, 600)
    fig = Figure(figsize=(6.0, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for gamma in gammas:
        ax.plot(pts, focal_loss_at_pt(gamma, pts), label=f"γ = {gamma:g}", linewidth=1.8)
    ax.axvspan(0.6, 1.0, color="0.92", zorder=0)
    ax.text(0.8, 4.6, "well-classified\nexamples", ha="center", va="top", fontsize=9)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 5.0)
    ax.set_xlabel("probability of ground truth class")
    ax.set_ylabel("loss")
    ax.set_title("FL(p_t) = -(1 - p_t)^γ log p_t")
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, 0.8))
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    write_atomic(out, buf.getvalue())
    return out
