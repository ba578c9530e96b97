"""The statistics of reports and claims.

- A cell's value: mean and sample std (ddof = 1) over its seeds; std None for one seed.
- Paired difference of A against B over the seeds they share, S = seeds(A) ∩ seeds(B), n = |S|:
  d_s = A_s − B_s, Δ = mean(d), s_d = std(d, ddof=1), and the level-c interval
  Δ ± t_{(1+c)/2, n−1} · s_d / √n (Student's t, as ``scipy.stats.ttest_rel``). Pairing removes the
  seed-to-seed variation both cells share (same data, same initial weights). n = 1: no interval; s_d = 0:
  the interval is [Δ, Δ]. Against a fixed number v: d_s = A_s − v over all of A's seeds (one-sample t).
- "Inside the noise", best cell against the runner-up: with >= 2 shared seeds, their paired 95% CI
  includes 0; otherwise |difference of means| < the larger of their stds; one seed each: cannot tell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sps

NOISE_RULE = (
    "best vs runner-up is 'inside the noise' when their paired 95% CI (on >= 2 shared seeds) includes 0; "
    "unpaired (< 2 shared seeds), when |difference of means| < the larger of the two stds"
)


@dataclass(frozen=True)
class Summary:
    mean: float | None
    std: float | None  # ddof = 1; None for n < 2
    n: int


@dataclass(frozen=True)
class PairedDelta:
    """Δ = mean over paired seeds of (A − B), its t interval (``ci95``: at 95% unless another level was
    asked for), and the seeds paired. Fields in the order of summary.json's "delta_vs_baseline"."""

    delta: float | None
    ci95: tuple[float | None, float | None]
    n: int
    std: float | None  # of the differences d_s (ddof = 1)
    seeds: tuple[int, ...]  # the paired seeds, sorted
    seeds_available: tuple[int, ...]  # the union of both sides' seeds, sorted
    diffs: tuple[float, ...] = field(default=(), metadata={"json": False})  # d_s, in seed order

    @property
    def partial(self) -> bool:
        """True when some seed of either side had no partner and was left out."""
        return self.seeds != self.seeds_available

    def pairing_note(self) -> str:
        """'paired on seeds 0,1 of 0,1,2' when seeds were left out, else ''."""
        paired, available = (",".join(map(str, s)) for s in (self.seeds, self.seeds_available))
        return f"paired on seeds {paired or 'none'} of {available}" if self.partial else ""


def summarize(values: list[float]) -> Summary:
    """Mean and sample std (ddof = 1) of ``values``; mean None when empty, std None when fewer than 2."""
    if not values:
        return Summary(None, None, 0)
    arr = np.asarray(values, dtype=np.float64)
    return Summary(float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else None, int(arr.size))


def t_interval(diffs: list[float], confidence: float = 0.95) -> tuple[float | None, float | None]:
    """mean ± t_{(1+c)/2, n−1} · s / √n of ``diffs``; (None, None) for n < 2."""
    if len(diffs) < 2:
        return None, None
    arr = np.asarray(diffs, dtype=np.float64)
    t = float(sps.t.ppf(0.5 + confidence / 2, len(diffs) - 1))
    half = t * float(arr.std(ddof=1)) / math.sqrt(len(diffs))
    return float(arr.mean()) - half, float(arr.mean()) + half


def paired_delta(a: dict[int, float], b: dict[int, float] | float, confidence: float = 0.95) -> PairedDelta:
    """Paired Δ of A minus B over their shared seeds (``a``, ``b``: {seed: value}), with its t interval;
    ``b`` a number v: Δ of A − v over all of A's seeds, with the one-sample interval."""
    b = b if isinstance(b, dict) else dict.fromkeys(a, float(b))
    shared, union = tuple(sorted(set(a) & set(b))), tuple(sorted(set(a) | set(b)))
    diffs = [a[s] - b[s] for s in shared]
    if not diffs:
        return PairedDelta(None, (None, None), 0, None, shared, union)
    std = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
    ci = t_interval(diffs, confidence)
    return PairedDelta(float(np.mean(diffs)), ci, len(diffs), std, shared, union, tuple(diffs))


def inside_noise(best: dict, runner_up: dict, best_std, runner_std) -> tuple[bool | None, str]:
    """Whether best − runner-up ({seed: value} each) is inside the noise, and the evidence in words;
    (None, reason) when it cannot be told. The stds are the cells' own, for the unpaired rule."""
    paired = paired_delta(best, runner_up)
    if paired.n >= 2:
        low, high = paired.ci95
        evidence = f"paired Δ {paired.delta:+.4g}, 95% CI [{low:+.4g}, {high:+.4g}], n={paired.n}"
        return low <= 0.0 <= high, evidence
    stds = [s for s in (best_std, runner_std) if s is not None]
    if not stds:
        return None, "one seed each: cannot tell"
    diff = float(np.mean(list(best.values())) - np.mean(list(runner_up.values())))
    return bool(abs(diff) < max(stds)), f"unpaired Δ {diff:+.4g} vs larger std {max(stds):.4g}"
