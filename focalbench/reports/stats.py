"""The statistics of the report and the claims: mean ± std over seeds, and paired differences with a t CI.

- mean and sample standard deviation (ddof = 1) of a cell's per-seed values; the std is undefined (None)
  for a single seed.
- Paired difference of cell A against cell B over the seeds they share, S = seeds(A) ∩ seeds(B), n = |S|:
  d_s = A_s − B_s, Δ = mean(d), s_d = std(d, ddof=1), and the 95% confidence interval
  Δ ± t_{0.975, n−1} · s_d / √n (Student's t, as in ``scipy.stats.ttest_rel``). Pairing removes the
  seed-to-seed variation the two cells share (same data subset, same initial weights for the same seed).
  With n = 1 there is a difference but no interval (None). With s_d = 0 the interval is [Δ, Δ].
  Against a fixed number v instead of a cell: d_s = A_s − v over all of A's seeds (a one-sample t).
- "Inside the noise", for the best cell against the runner-up on one metric (:func:`inside_noise`): when
  they share at least 2 seeds, the paired 95% CI of their difference includes 0; otherwise (unpaired)
  |difference of means| < the larger of their two stds; with no std at all (one seed each) it cannot be told.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

CONFIDENCE = 0.95
NOISE_RULE = (
    "best vs runner-up is 'inside the noise' when their paired 95% CI (on >= 2 shared seeds) includes 0; "
    "unpaired (< 2 shared seeds), when |difference of means| < the larger of the two stds"
)


@dataclass(frozen=True)
class Summary:
    """Mean ± sample std of one metric over the seeds of one cell."""

    mean: float | None
    std: float | None  # ddof = 1; None for n < 2
    n: int


@dataclass(frozen=True)
class PairedDelta:
    """Δ = mean over paired seeds of (A − B), its 95% t interval, and which seeds were paired."""

    delta: float | None
    ci_low: float | None
    ci_high: float | None
    n: int
    seeds: tuple[int, ...]  # the paired seeds, sorted
    all_seeds: tuple[int, ...]  # the union of both sides' seeds, sorted
    std: float | None = None  # std of the per-seed differences (ddof = 1)

    @property
    def partial(self) -> bool:
        """True when some seed of either side had no partner and was left out."""
        return self.seeds != self.all_seeds

    def pairing_note(self) -> str:
        """'paired on seeds 0,1 of 0,1,2' when seeds were left out, else ''."""
        if not self.partial:
            return ""
        return f"paired on seeds {_seeds(self.seeds) or 'none'} of {_seeds(self.all_seeds)}"


def _seeds(seeds: tuple[int, ...]) -> str:
    return ",".join(str(s) for s in seeds)


def summarize(values: list[float]) -> Summary:
    """Mean and sample std (ddof = 1) of ``values``; mean None when empty, std None when fewer than 2."""
    if not values:
        return Summary(None, None, 0)
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else None
    return Summary(float(arr.mean()), std, int(arr.size))


def t_interval(diffs: list[float], confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """The two-sided t interval of the mean of ``diffs``: mean ± t_{(1+c)/2, n−1} · s / √n; (None, None)
    for n < 2."""
    n = len(diffs)
    if n < 2:
        return None, None
    arr = np.asarray(diffs, dtype=np.float64)
    mean, sd = float(arr.mean()), float(arr.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return mean - half, mean + half


def paired_delta(a: dict[int, float], b: dict[int, float]) -> PairedDelta:
    """Paired Δ of A minus B over their shared seeds (``a``, ``b``: {seed: value})."""
    shared = tuple(sorted(set(a) & set(b)))
    union = tuple(sorted(set(a) | set(b)))
    diffs = [a[s] - b[s] for s in shared]
    return _delta(diffs, shared, union)


def delta_to_value(a: dict[int, float], value: float) -> PairedDelta:
    """Δ of A minus a fixed number over all of A's seeds, with the one-sample t interval."""
    seeds = tuple(sorted(a))
    return _delta([a[s] - float(value) for s in seeds], seeds, seeds)


def _delta(diffs: list[float], seeds: tuple[int, ...], union: tuple[int, ...]) -> PairedDelta:
    if not diffs:
        return PairedDelta(None, None, None, 0, seeds, union)
    low, high = t_interval(diffs)
    std = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
    return PairedDelta(float(np.mean(diffs)), low, high, len(diffs), seeds, union, std)


def inside_noise(
    best: dict[int, float], runner_up: dict[int, float], best_std: float | None, runner_std: float | None
) -> tuple[bool | None, str]:
    """Whether best − runner-up is inside the noise (see the module docstring), and the evidence in words.

    Returns (None, reason) when it cannot be told (one seed each, nothing to pair).
    """
    paired = paired_delta(best, runner_up)
    if paired.n >= 2:
        inside = paired.ci_low <= 0.0 <= paired.ci_high
        return inside, (
            f"paired Δ {paired.delta:+.4g}, 95% CI [{paired.ci_low:+.4g}, {paired.ci_high:+.4g}], n={paired.n}"
        )
    stds = [s for s in (best_std, runner_std) if s is not None]
    if not stds:
        return None, "one seed each: cannot tell"
    diff = float(np.mean(list(best.values())) - np.mean(list(runner_up.values())))
    return bool(abs(diff) < max(stds)), f"unpaired Δ {diff:+.4g} vs larger std {max(stds):.4g}"
