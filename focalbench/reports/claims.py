"""What a claim of a suite means, and its verdict. A claim (its format: :mod:`focalbench.sweeps.reproduce`)
names a metric (or "all"), cells A and B by selectors (or a fixed value for B), a direction and a margin.

Per metric, over the seeds S both cells share (against ``value``: all of A's seeds), d_s = A_s − B_s,
n = |S|, Δ = mean(d), and the t interval Δ ± t_{(1+c)/2, n−1}·std(d)/√n (:mod:`.stats`). Verdicts:

- ``greater``: pass iff the 95% CI's lower bound > margin (the effect exceeds the margin, established at
  95%); fail iff its upper bound ≤ margin; otherwise inconclusive. ``less``: the mirror image (upper
  bound < −margin). n < 2 (no interval): inconclusive.
- ``at_least`` (non-inferiority, for a metric where higher is better: A is at least B − margin), tested
  one-sided at 5%: pass iff the 90% CI's lower bound > −margin; FAIL iff its upper bound < −margin (A is
  established worse by more than the margin); otherwise inconclusive. ``at_most`` (for a metric where lower
  is better, e.g. ECE: A is at most B + margin): pass iff the 90% CI's upper bound < margin; FAIL iff its
  lower bound > margin. A one-sided hypothesis ("focal loss is no worse than CE") is tested so, not as
  two-sided equivalence.
- ``within``: equivalence by two one-sided tests (TOST, 5% each): pass iff the 90% CI lies inside
  (−margin, +margin); fail iff it lies wholly outside [−margin, +margin]; otherwise inconclusive (too few
  or too noisy seeds to decide). n < 2: inconclusive.
- ``equal``: pass iff |d_s| ≤ margin on EVERY paired seed (for "the same computation"); else fail.
- No paired seed: inconclusive. ``metric: all`` skips, and names, the metrics no run of either cell
  defines (few-shot accuracy when no class has < 20 training images); a metric named on its own that no
  run defines is inconclusive.
- A claim passes iff every metric passes; it fails if one fails, else it is inconclusive if one is. A
  claim whose selector matches no cell, or several, fails (a claim that cannot be checked does not hold),
  except in a study in progress: while some of the suite's runs have no record, a claim whose selector
  matches no cell is ``not_run`` (its cells are among the runs still to train). ``reproduce`` exits 1
  unless every claim passes: an inconclusive or not-run claim is not established.

Multiplicity (``multiplicity:`` in the suite; ``holm`` by default, or ``none``). Each claim's p-value is
that of the one-sided t test behind its pass rule (greater: H0 Δ ≤ margin; less: Δ ≥ −margin; at_least:
Δ ≤ −margin; at_most: Δ ≥ margin; within: the larger of its two one-sided p-values; a claim of several
metrics: the largest over them, since it needs all). So a claim passes unadjusted iff p < its level α: 0.025
for greater and less (the 95% CI's bound: 2.5% on one side), 0.05 for at_least, at_most and within.
``equal`` claims (exact agreement) have no p-value and are outside the family. Holm's step-down adjustment
over the m claims with a p-value: sorted p_(1) ≤ ... ≤ p_(m), p_adj_(i) = max_{j ≤ i} min(1, (m − j + 1)
p_(j)). The adjusted verdict of a claim that passes unadjusted is pass iff p_adj < its α, else
INCONCLUSIVE ("does not survive Holm"); FAIL and INCONCLUSIVE stay. The family-wise error rate of the
pass verdicts is then at most 5% (2.5% where every claim is greater/less). Both verdicts are shown;
``reproduce`` exits on the adjusted ones.

Verdicts are part of the report (``Report.claims``, in summary.json) and rendered from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from focalbench.errors import ConfigError
from focalbench.reports import aggregate as agg
from focalbench.reports.model import Cell
from focalbench.reports.stats import PairedDelta, paired_delta

DIRECTIONS = ("greater", "less", "at_least", "at_most", "equal", "within")
ONE_SIDED_5 = ("at_least", "at_most", "within")  # tested at 5% per side: the 90% CI
MULTIPLICITY = ("holm", "none")
ALL_METRICS = agg.TEST_METRICS
PASS, FAIL, INCONCLUSIVE, SKIPPED, NOT_RUN = "pass", "fail", "inconclusive", "skipped", "not_run"
VERDICTS = (PASS, FAIL, INCONCLUSIVE, NOT_RUN)  # a claim's; SKIPPED is a metric's within a claim


@dataclass(frozen=True)
class Claim:
    text: str
    metrics: tuple[str, ...]
    a: str
    b: str | None
    value: float | None
    direction: str
    margin: float
    published: dict | None = None  # reference numbers, never shown as measured
    all_metrics: bool = False  # metric: all (metrics no run defines are skipped, not inconclusive)

    @property
    def ci_level(self) -> float:
        """90% for the tests at 5% per side (at_least, at_most, within: TOST), else 95%."""
        return 0.90 if self.direction in ONE_SIDED_5 else 0.95

    @property
    def alpha(self) -> float:
        """The level of the one-sided test behind the pass rule: 0.05 at 90% CIs, 0.025 at 95%."""
        return 0.05 if self.direction in ONE_SIDED_5 else 0.025

    def rule(self) -> str:
        """The pass rule in words, with this claim's margin."""
        m = f"{self.margin:g}"
        rules = {"greater": f"95% CI lower bound > {m}", "less": f"95% CI upper bound < −{m}"}
        rules |= {"at_least": f"90% CI lower bound > −{m} (non-inferiority)"}
        rules |= {"at_most": f"90% CI upper bound < {m} (non-inferiority)"}
        rules |= {"equal": f"|A − B| ≤ {m} on every paired seed", "within": f"90% CI inside ±{m} (TOST)"}
        return rules[self.direction]


@dataclass
class Check:
    """One metric of one claim, as measured."""

    metric: str
    delta: float | None
    ci: tuple[float | None, float | None]
    ci_level: float
    n: int
    seeds: tuple[int, ...]
    seeds_available: tuple[int, ...]
    max_abs_diff: float | None
    verdict: str  # pass | fail | inconclusive | skipped
    reason: str | None = None
    p_value: float | None = None  # of the one-sided test behind the pass rule (module docstring)


@dataclass
class Verdict:
    claim: Claim
    rule: str
    a_cell: str | None  # the labels of the cells the selectors matched
    b_cell: str | None
    verdict: str  # pass | fail | inconclusive | not_run: after the multiplicity adjustment, if there is one
    error: str | None = None  # why the claim could not be checked
    measured: list[Check] = field(default_factory=list)
    p_value: float | None = None  # the claim's: the largest of its metrics' (None: equal, or not measured)
    p_adjusted: float | None = None  # Holm-adjusted (None without adjustment)
    verdict_unadjusted: str | None = None  # the verdict before the adjustment
    adjustment: str | None = None  # why the adjustment changed the verdict

    @property
    def against(self) -> str:
        """B as shown: its cell's label, its selector, or the fixed value."""
        return self.b_cell or self.claim.b or f"{self.claim.value:g}"


@dataclass
class SuiteVerdicts:
    suite: dict[str, Any]  # name, description, grids, baseline
    all_hold: bool
    counts: dict[str, int]  # pass / fail / inconclusive / not_run (adjusted)
    claims: list[Verdict]
    multiplicity: str = "holm"  # holm | none
    counts_unadjusted: dict[str, int] | None = None


def check_claims(suite, cells: list[Cell], runs_missing: int = 0) -> SuiteVerdicts:
    """One verdict per claim of ``suite``, measured on ``cells`` (a report's cells), adjusted for multiplicity
    as the suite declares (``suite.multiplicity``: holm by default). ``runs_missing``: how many of the suite's
    runs have no record yet; while there are some, a claim whose selector matches no cell is not run yet,
    not failed (and outside Holm's family until it is measured)."""
    verdicts = [check_claim(c, cells) for c in suite.claims]
    if runs_missing:
        for v in verdicts:
            if v.verdict == FAIL and not v.measured and "matches no cell" in (v.error or ""):
                v.verdict = v.verdict_unadjusted = NOT_RUN
                v.error = (
                    f"not run yet: no record of its cells ({runs_missing} of the suite's runs have none)"
                )
    multiplicity = getattr(suite, "multiplicity", "holm")
    raw_counts = {s: sum(v.verdict == s for v in verdicts) for s in VERDICTS}
    if multiplicity == "holm":
        adjust_holm(verdicts)
    counts = {s: sum(v.verdict == s for v in verdicts) for s in VERDICTS}
    about = dict(name=suite.name, description=suite.description, grids=suite.grids, baseline=suite.baseline)
    return SuiteVerdicts(about, counts[PASS] == len(verdicts), counts, verdicts, multiplicity, raw_counts)


def holm_adjust(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the input order: p_adj_(i) = max_{j <= i} min(1, (m - j + 1)
    p_(j)) over the p-values sorted ascending (m = len(p_values))."""
    m = len(p_values)
    order = sorted(range(m), key=p_values.__getitem__)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def adjust_holm(verdicts: list[Verdict]) -> None:
    """Set each verdict's ``p_adjusted`` and its adjusted verdict (module docstring), in place."""
    family = [v for v in verdicts if v.p_value is not None]
    for v, p_adj in zip(family, holm_adjust([v.p_value for v in family]), strict=True):
        v.p_adjusted = p_adj
        if v.verdict == PASS and not p_adj < v.claim.alpha:
            v.verdict = INCONCLUSIVE
            v.adjustment = f"does not survive Holm over {len(family)} claims (p_adj ≥ {v.claim.alpha:g})"


def check_claim(claim: Claim, cells: list[Cell]) -> Verdict:
    """The verdict of one claim: one Check per metric, combined (rules in the module docstring)."""
    try:
        a = _one_cell(cells, claim.a)
        b = _one_cell(cells, claim.b) if claim.b is not None else None
    except ConfigError as exc:
        return Verdict(claim, claim.rule(), None, None, FAIL, str(exc))
    verdict = Verdict(claim, claim.rule(), a.label, None if b is None else b.label, PASS)
    for metric in claim.metrics:
        values_a, values_b = agg.seed_values(a.runs, metric), agg.seed_values(b.runs, metric) if b else {}
        if values_a or values_b:
            d = paired_delta(values_a, values_b if b else claim.value, claim.ci_level)
            check = _check(claim, metric, d, *judge(claim.direction, claim.margin, d))
            check.p_value = p_value(claim.direction, claim.margin, d)
            verdict.measured.append(check)
        else:  # e.g. few-shot accuracy when no class has < 20 training images
            nothing = PairedDelta(None, (None, None), 0, None, (), ())
            undefined = SKIPPED if claim.all_metrics else INCONCLUSIVE
            verdict.measured.append(_check(claim, metric, nothing, undefined, "not defined for these data"))
    states = {c.verdict for c in verdict.measured} - {SKIPPED}
    verdict.verdict = FAIL if FAIL in states else PASS if states == {PASS} else INCONCLUSIVE
    verdict.verdict_unadjusted = verdict.verdict
    verdict.error = None if states else "no metric of the claim is defined for these data"
    ps = [c.p_value for c in verdict.measured if c.verdict != SKIPPED]
    verdict.p_value = max(ps) if ps and all(p is not None for p in ps) else None
    return verdict


def p_value(direction: str, margin: float, d: PairedDelta) -> float | None:
    """The p-value of the one-sided t test behind a claim's pass rule (module docstring); None for
    ``equal`` and for fewer than 2 paired seeds. With no spread in the differences, 0 or 1."""
    if direction == "equal" or d.n < 2:
        return None
    from scipy import stats as sps

    def upper_tail(shift: float) -> float:  # P(T >= t) for H0: Δ <= shift
        if not d.std:
            return 0.0 if d.delta > shift else 1.0
        return float(sps.t.sf((d.delta - shift) / (d.std / d.n**0.5), d.n - 1))

    def lower_tail(shift: float) -> float:  # P(T <= t) for H0: Δ >= shift
        if not d.std:
            return 0.0 if d.delta < shift else 1.0
        return float(sps.t.cdf((d.delta - shift) / (d.std / d.n**0.5), d.n - 1))

    tests = {
        "greater": lambda: upper_tail(margin),
        "less": lambda: lower_tail(-margin),
        "at_least": lambda: upper_tail(-margin),
        "at_most": lambda: lower_tail(margin),
        "within": lambda: max(upper_tail(-margin), lower_tail(margin)),
    }
    return tests[direction]()


def judge(direction: str, margin: float, d: PairedDelta) -> tuple[str, str | None]:
    """(verdict, reason) of one metric from its paired differences (rules in the module docstring).
    ``less`` is ``greater`` with the signs flipped."""
    if d.n == 0:
        return INCONCLUSIVE, "no paired seed"
    if direction == "equal":
        worst = max(abs(x) for x in d.diffs)
        return (PASS, None) if worst <= margin else (FAIL, f"max |A − B| = {worst:.3g} > {margin:g}")
    if d.n < 2:
        return INCONCLUSIVE, "n = 1: no CI; needs at least 2 paired seeds"
    level = f"{0.90 if direction in ONE_SIDED_5 else 0.95:.0%} CI"
    if direction in ("at_least", "at_most"):
        low, high = d.ci95
        if direction == "at_least":
            if low > -margin:
                return PASS, None
            if high < -margin:
                return FAIL, f"{level} wholly below −{margin:g}: A is worse by more than the margin"
            return INCONCLUSIVE, f"{level} includes −{margin:g}"
        if high < margin:
            return PASS, None
        if low > margin:
            return FAIL, f"{level} wholly above {margin:g}: A is worse by more than the margin"
        return INCONCLUSIVE, f"{level} includes {margin:g}"
    if direction in ("greater", "less"):
        sign, bound = (1, f"{margin:g}") if direction == "greater" else (-1, f"−{margin:g}")
        low, high = sorted(sign * x for x in d.ci95)
        if low > margin:
            return PASS, None
        if high <= margin:
            return FAIL, f"{level} does not reach beyond {bound}"
        return INCONCLUSIVE, f"{level} includes {bound}"
    low, high = d.ci95
    if -margin < low and high < margin:
        return PASS, None
    if low > margin or high < -margin:
        return FAIL, f"{level} wholly outside ±{margin:g}"
    return INCONCLUSIVE, f"{level} not inside ±{margin:g}: too few or too noisy seeds to decide"


def _check(claim: Claim, metric: str, d: PairedDelta, verdict: str, reason: str | None) -> Check:
    worst, level = max((abs(x) for x in d.diffs), default=None), claim.ci_level
    return Check(metric, d.delta, d.ci95, level, d.n, d.seeds, d.seeds_available, worst, verdict, reason)


def _one_cell(cells: list[Cell], selector: str) -> Cell:
    """The one cell ``selector`` matches; ConfigError when it matches none (listing the cells) or several."""
    chosen = agg.select(cells, [c.full_config for c in cells], selector)
    if len(chosen) != 1:
        what = "no cell; the cells are" if not chosen else f"{len(chosen)} cells"
        listed = "; ".join(f"'{c.label}'" for c in chosen or cells)
        raise ConfigError(f"selector '{selector}' matches {what}: {listed}")
    return chosen[0]
