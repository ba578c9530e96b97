"""The answer: what a careful reader concludes from a report, in sentences, computed from the report model.

For every setting (the cells compared with one baseline), each cell is compared with the baseline on three
metric families, each with its paired Δ and 95% Student-t CI over the shared seeds (:mod:`.stats`):

- primary: balanced accuracy;
- tail: few-shot accuracy where some class is few-shot, else ``tail_acc`` (the rarest fifth of the classes);
- calibration: ECE, and ECE after temperature scaling where a temperature was fitted.

Where the user names the metrics (``focalbench report --metrics``: ``chosen``), the answer compares on
exactly those, in their order, instead: the first with a direction is the primary metric (the recommendation,
"what would settle it" and ``--margin`` rest on it), the others are compared each on its own. So a tuning sweep reported with ``--metrics val.balanced_accuracy,...`` is answered
on validation, never chosen on the test set. Time metrics are never compared (``aggregate.TIME_METRICS``).

Each comparison is classified (``Finding.verdict``):

- ``better`` / ``worse``: the 95% CI excludes 0 (by the metric's direction: higher accuracy, lower ECE);
- ``no_difference``: the CI contains 0 ("no difference detected"); the sentence says how large an effect the
  CI still allows;
- ``equivalent``: only with an equivalence margin (``margin``, in points of the primary metric; ``--margin``):
  the 90% CI lies inside ±margin (two one-sided tests), on the primary metric;
- ``no_ci``: one paired seed, no interval: nothing can be told;
- ``not_compared``: no seed in common with the baseline.

Multiplicity: the cells of a setting are compared with one baseline, so each (setting, metric) is a family of
k comparisons; two-sided paired t p-values are Holm-adjusted within it, and a ``better``/``worse`` whose
adjusted p is not below 0.05 is marked as not surviving the correction (``survives_holm``).

What would settle it: for each ``no_difference`` on the primary metric with at least 2 paired seeds, the seeds
n at which t_{0.975, n-1} * s_d / sqrt(n) <= ``resolution`` (1 point of balanced accuracy by default), with s_d
the observed standard deviation of the paired differences: an estimate, since s_d is itself noisy.

Convergence (:mod:`.convergence`): a cell whose validation balanced accuracy is still rising at its last epoch
(the 95% CI of the slope over the last 30% of the epochs above 0) is called under-trained, with a suggested
``epochs``: its verdicts may change with more training.

A recommendation is made only where the evidence carries one: cell X "is the best supported choice" when X
beats the baseline beyond the noise (and survives Holm) and no other cell is better than X beyond the noise
(their paired 95% CI); when several cells beat the baseline but cannot be told apart, they are named and none
is preferred; when none beats it: "keep the baseline". Cells are never ranked inside the noise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from focalbench.reports import aggregate as agg
from focalbench.reports import basis
from focalbench.reports.convergence import cell_convergence, under_trained_sentence
from focalbench.reports.model import Cell, Report
from focalbench.reports.stats import PairedDelta, paired_delta

PRIMARY = "balanced_accuracy"  # the primary metric unless the user names the metrics
DEFAULT_RESOLUTION = 1.0  # points of balanced accuracy: the CI half-width "what would settle it" aims for
HOLM_LEVEL = 0.05


@dataclass
class Finding:
    """One cell against its baseline on one metric."""

    cell: str
    family: str  # primary | tail | calibration
    metric: str
    delta: float | None
    ci95: tuple[float | None, float | None]
    n: int
    seeds: tuple[int, ...]
    seeds_available: tuple[int, ...]
    verdict: str  # better | worse | no_difference | equivalent | no_ci | not_compared
    p_value: float | None = None  # two-sided paired t test of Δ = 0
    p_holm: float | None = None  # Holm-adjusted within its (setting, metric)
    survives_holm: bool | None = None  # for better/worse: adjusted p < 0.05
    within_margin: bool | None = None  # with a margin: the 90% CI inside ±margin (primary metric)


@dataclass
class Settle:
    """How many seeds would make a "no difference detected" on the primary metric precise enough."""

    cell: str
    n_now: int
    std_of_differences: float
    seeds_needed: int
    resolution: float


@dataclass
class SettingAnswer:
    setting: str
    baseline: str | None
    cells_compared: int
    comparisons: int  # cells x metrics compared with the baseline
    primary: str | None = PRIMARY  # the metric the recommendation rests on; None: no metric to compare on
    findings: list[Finding] = field(default_factory=list)
    settle: list[Settle] = field(default_factory=list)
    recommendation: str = ""
    sentences: list[str] = field(default_factory=list)
    convergence: list = field(default_factory=list)  # convergence.Convergence per cell, baseline included


@dataclass
class Answer:
    """The answer of a report: per setting, the findings and the sentences; ``lines`` is everything in
    reading order (what the terminal, table.md and report.html show)."""

    covers: str  # what the intervals cover
    resolution: float
    margin: float | None
    settings: list[SettingAnswer]
    settle_command: str | None
    lines: list[str]


# ----------------------------------------------------------------------------------------------------------
# Comparisons
# ----------------------------------------------------------------------------------------------------------


def family_metrics(cells: list[Cell], chosen: list[str] | None = None) -> dict[str, list[str]]:
    """The metrics of each family that some run of ``cells`` defines. ``chosen`` (the user's metrics): the
    first of them with a direction is ``primary``, the others with one are ``chosen``, in the given order."""

    def defined(metric: str) -> bool:
        return any(agg.seed_values(c.runs, metric) for c in cells)

    if chosen is not None:
        usable = [
            m
            for m in dict.fromkeys(chosen)
            if agg.metric_info(m)[2] and m not in agg.TIME_METRICS and defined(m)
        ]
        return {"primary": usable[:1], "chosen": usable[1:]}
    tail = next((m for m in ("few_shot_acc", "tail_acc") if defined(m)), None)
    families = {"primary": [PRIMARY] if defined(PRIMARY) else [], "tail": [tail] if tail else []}
    families["calibration"] = [m for m in ("ece", "ece_ts") if defined(m)]
    return families


def two_sided_p(d: PairedDelta) -> float | None:
    """p of the paired t test of Δ = 0; None for fewer than 2 pairs."""
    if d.n < 2 or d.delta is None:
        return None
    if not d.std:
        return 0.0 if d.delta != 0 else 1.0
    from scipy import stats as sps

    return float(2 * sps.t.sf(abs(d.delta) / (d.std / math.sqrt(d.n)), d.n - 1))


def classify(d: PairedDelta, metric: str) -> str:
    """better | worse | no_difference | no_ci | not_compared (see the module docstring)."""
    if d.n == 0 or d.delta is None:
        return "not_compared"
    if d.n < 2:
        return "no_ci"
    low, high = d.ci95
    higher_is_better = agg.metric_info(metric)[2] != "lower"
    if low > 0 or high < 0:
        return "better" if (low > 0) == higher_is_better else "worse"
    return "no_difference"


def compare(cell: Cell, baseline: Cell, family: str, metric: str, margin: float | None) -> Finding:
    d = paired_delta(agg.seed_values(cell.runs, metric), agg.seed_values(baseline.runs, metric))
    finding = Finding(
        cell.label, family, metric, d.delta, d.ci95, d.n, d.seeds, d.seeds_available, classify(d, metric)
    )
    finding.p_value = two_sided_p(d)
    if margin is not None and family == "primary" and d.n >= 2:  # a margin is in points of the primary
        low, high = paired_delta(
            agg.seed_values(cell.runs, metric), agg.seed_values(baseline.runs, metric), 0.90
        ).ci95
        finding.within_margin = -margin < low and high < margin
        if finding.verdict == "no_difference" and finding.within_margin:
            finding.verdict = "equivalent"
    return finding


def holm(findings: list[Finding]) -> None:
    """Holm-adjust the p-values of one family of comparisons, in place."""
    from focalbench.reports.claims import holm_adjust

    tested = [f for f in findings if f.p_value is not None]
    for f, p in zip(tested, holm_adjust([f.p_value for f in tested]), strict=True):
        f.p_holm = p
        if f.verdict in ("better", "worse"):
            f.survives_holm = p < HOLM_LEVEL


def seeds_to_resolve(std: float, resolution: float, at_most: int = 1000) -> int:
    """The smallest n >= 2 with t_{0.975, n-1} * std / sqrt(n) <= resolution (``at_most`` if none below)."""
    from scipy import stats as sps

    for n in range(2, at_most + 1):
        if float(sps.t.ppf(0.975, n - 1)) * std / math.sqrt(n) <= resolution:
            return n
    return at_most


# ----------------------------------------------------------------------------------------------------------
# Sentences
# ----------------------------------------------------------------------------------------------------------


def _num(metric: str, x: float) -> str:
    text = agg.metric_info(metric)[1].format(x)
    return text if text.startswith("-") else "+" + text


def effect(f: Finding) -> str:
    """'+1.02, 95% CI [-1.81, +3.85], 3 seeds' (with the pairing when seeds were left out)."""
    if f.delta is None:
        return "no shared seed"
    seeds = f"{f.n} seed{'s' if f.n != 1 else ''}"
    if f.seeds != f.seeds_available:
        seeds += f", paired on seeds {','.join(map(str, f.seeds))} of {','.join(map(str, f.seeds_available))}"
    if f.ci95[0] is None:
        return f"{_num(f.metric, f.delta)}, no CI ({seeds})"
    return f"{_num(f.metric, f.delta)}, 95% CI [{_num(f.metric, f.ci95[0])}, {_num(f.metric, f.ci95[1])}], {seeds}"


def metric_name(metric: str) -> str:
    """The metric as a sentence names it: 'balanced accuracy', 'validation balanced accuracy', 'balanced
    accuracy at the best-validation epoch'."""
    if metric.startswith("val."):
        return "validation " + metric_name(metric.removeprefix("val."))
    if metric.startswith("best_val."):
        return metric_name(metric.removeprefix("best_val.")) + " at the best-validation epoch"
    return {
        "balanced_accuracy": "balanced accuracy",
        "few_shot_acc": "few-shot accuracy",
        "tail_acc": "accuracy on the rarest classes",
        "ece": "ECE",
        "ece_ts": "ECE after temperature scaling",
    }.get(metric, agg.metric_info(metric)[0])


def _holm_note(f: Finding, k: int) -> str:
    return f" (does not survive Holm's correction over {k} comparisons)" if f.survives_holm is False else ""


def metric_sentences(findings: list[Finding], metric: str, baseline: str, k: int) -> list[str]:
    """The sentences of one metric: what is better or worse beyond the noise, what cannot be told."""
    name = metric_name(metric)
    better_is = "lowers" if agg.metric_info(metric)[2] == "lower" else "raises"
    worse_is = "raises" if better_is == "lowers" else "lowers"
    verb = {"better": better_is, "worse": worse_is}
    # "raises ECE" reads as good news to many: where lower is better, say which way is better
    judged = (
        {"better": " (better)", "worse": " (worse)"} if better_is == "lowers" else {"better": "", "worse": ""}
    )
    out = []
    moved = [f for f in findings if f.verdict in ("better", "worse")]
    for direction in ("better", "worse"):
        group = [f for f in moved if f.verdict == direction]
        if len(group) == 1:
            f = group[0]
            out.append(
                f"'{f.cell}' {verb[direction]} {name}{judged[direction]} against '{baseline}': "
                f"{effect(f)}{_holm_note(f, k)}."
            )
        elif group:
            listed = "; ".join(f"'{f.cell}' {effect(f)}{_holm_note(f, k)}" for f in group)
            verb_plural = verb[direction][:-1]  # raises -> raise, lowers -> lower
            out.append(
                f"{len(group)} cells {verb_plural} {name}{judged[direction]} against '{baseline}': {listed}."
            )
    equivalent = [f for f in findings if f.verdict == "equivalent"]
    for f in equivalent:
        out.append(f"'{f.cell}' is equivalent to '{baseline}' on {name} within the margin: {effect(f)}.")
    null = [f for f in findings if f.verdict == "no_difference"]
    if null and not moved:
        widest = max(null, key=lambda f: max(abs(f.ci95[0]), abs(f.ci95[1])))
        closest = max(null, key=lambda f: f.delta if agg.metric_info(metric)[2] != "lower" else -f.delta)
        out.append(
            f"No cell differs from '{baseline}' on {name} beyond the noise (the largest gain: '{closest.cell}' "
            f"{effect(closest)}); the CIs still allow effects from {_num(metric, widest.ci95[0])} to "
            f"{_num(metric, widest.ci95[1])} ('{widest.cell}')."
        )
    elif null:
        listed = "; ".join(f"'{f.cell}' {effect(f)}" for f in null)
        out.append(f"No difference detected on {name} for {listed}.")
    for f in (f for f in findings if f.verdict == "no_ci"):
        out.append(
            f"'{f.cell}' on {name}: {effect(f)}: one paired seed gives no interval, so nothing can be told."
        )
    for f in (f for f in findings if f.verdict == "not_compared"):
        out.append(f"'{f.cell}' shares no seed with '{baseline}': not compared on {name}.")
    return out


def recommend(
    setting_cells: list[Cell], baseline: Cell, findings: list[Finding], chosen: list[str] | None = None
) -> str:
    """The recommendation on the primary metric, only where the evidence carries one."""
    primary = [f for f in findings if f.family == "primary"]
    if not primary:
        if chosen is not None:
            return (
                f"None of the metrics asked for ({', '.join(chosen)}) can be compared between cells here "
                "(time never is), so nothing is recommended."
            )
        return "Balanced accuracy is not measured here, so nothing is recommended."
    metric = primary[0].metric
    name = metric_name(metric)
    winners = [f for f in primary if f.verdict == "better" and f.survives_holm is not False]
    if not winners:
        if all(f.verdict in ("no_ci", "not_compared") for f in primary):
            return f"Too few paired seeds to compare anything with '{baseline.label}': run more seeds."
        return f"No setting beats '{baseline.label}' on {name} on this data: keep it."
    by_label = {c.label: c for c in setting_cells}

    def beaten_by_another(f: Finding) -> bool:
        mine = agg.seed_values(by_label[f.cell].runs, metric)
        for other in winners:
            if other is f:
                continue
            d = paired_delta(agg.seed_values(by_label[other.cell].runs, metric), mine)
            if d.n >= 2 and d.ci95[0] > 0:
                return True
        return False

    unbeaten = [f for f in winners if not beaten_by_another(f)]
    if len(unbeaten) == 1:
        f = unbeaten[0]
        return f"On {name}, '{f.cell}' is the best supported choice: {effect(f)} against '{baseline.label}'."
    names = ", ".join(f"'{f.cell}'" for f in unbeaten)
    return (
        f"{names} each beat '{baseline.label}' on {name} beyond the noise, but cannot be told apart "
        "from each other with these seeds: none is preferred."
    )


# ----------------------------------------------------------------------------------------------------------
# The answer
# ----------------------------------------------------------------------------------------------------------


def covers_line(report: Report) -> str:
    """What the report's intervals cover: training seeds only, on one split per setting, or training seeds and
    as many random splits (your own data with ``data.resplit``: seed ``i`` carved split ``i``)."""
    data = [((r.metrics or {}).get("data") or {}) for c in report.cells for r in c.runs]
    resplit = sorted({str(d.get("data_seed")) for d in data if d.get("resplit")})
    fixed = sorted({str(d.get("data_seed")) for d in data if not d.get("resplit")})
    lines = []
    if resplit:
        n = len(resplit)
        lines.append(
            f"The 95% CIs cover the variation between training seeds and {n} random stratified split"
            f"{'s' if n != 1 else ''} of the data (data.resplit: seed i trains and tests on the split of data "
            f"seed data_seed+i; carved with data seeds {', '.join(resplit)}), paired by seed: they include which "
            "examples the test split holds."
        )
    if fixed:
        split = f"data seed {fixed[0]}" if len(fixed) == 1 else f"data seeds {', '.join(fixed)}"
        where = "Where the split is fixed, the" if resplit else "The"
        lines.append(
            f"{where} 95% CIs cover the variation between training seeds, paired by seed, on one draw of the "
            f"data per setting ({split}): they leave out which examples the split holds."
        )
    return " ".join(lines)


def build_answer(
    report: Report,
    margin: float | None = None,
    resolution: float = DEFAULT_RESOLUTION,
    rerun: list[str] | None = None,
    chosen: list[str] | None = None,
) -> Answer:
    """The answer of ``report`` (module docstring). ``rerun``: the sweep's overrides, for the suggested
    command of "what would settle it"; ``chosen``: the metrics the user named, to compare on instead of the
    three families (None: the families)."""
    settings = []
    for index, label in enumerate(report.settings):
        cells = [c for c in report.cells if c.setting == index]
        by_label = {c.label: c for c in cells}
        baseline = by_label.get(cells[0].baseline) if cells else None
        if baseline is None:
            settings.append(
                SettingAnswer(label, None, 0, 0, sentences=[f"No baseline in {label}: nothing compared."])
            )
            continue
        others = [c for c in cells if c is not baseline]
        families = family_metrics(cells, chosen)
        primary = next(iter(families["primary"]), None)
        setting = SettingAnswer(label, baseline.label, len(others), 0, primary)
        for family, metrics in families.items():
            for metric in metrics:
                found = [compare(c, baseline, family, metric, margin) for c in others]
                holm(found)
                setting.findings += found
                setting.comparisons += len(found)
        for f in setting.findings:
            if f.family == "primary" and f.verdict in ("no_difference", "equivalent") and f.n >= 2:
                d = paired_delta(
                    agg.seed_values(by_label[f.cell].runs, primary), agg.seed_values(baseline.runs, primary)
                )
                need = seeds_to_resolve(d.std or 0.0, resolution)
                if need > f.n:
                    setting.settle.append(Settle(f.cell, f.n, d.std or 0.0, need, resolution))
        setting.recommendation = recommend(cells, baseline, setting.findings, chosen)
        setting.convergence = [cell_convergence(c) for c in cells]
        setting.sentences = setting_sentences(report, setting, families)
        settings.append(setting)
    needed = max((s.seeds_needed for st in settings for s in st.settle), default=None)
    command = settle_command(rerun, needed) if needed else None
    lines = answer_lines(report, settings, command, margin, chosen is not None)
    return Answer(covers_line(report), resolution, margin, settings, command, lines)


def setting_sentences(report: Report, setting: SettingAnswer, families: dict[str, list[str]]) -> list[str]:
    k = setting.cells_compared
    out = []
    for family, metrics in families.items():
        for metric in metrics:
            found = [f for f in setting.findings if f.metric == metric and f.family == family]
            out += metric_sentences(found, metric, setting.baseline, k)
    under_trained = [c for c in setting.convergence if c.still_improving]
    out += [under_trained_sentence(c) for c in under_trained]
    out.append(setting.recommendation)
    if setting.settle:
        each = "; ".join(
            f"'{s.cell}' about {s.seeds_needed} (paired std {s.std_of_differences:.2f} over {s.n_now})"
            for s in setting.settle
        )
        out.append(
            f"What would settle the comparisons that detected no difference on {metric_name(setting.primary)}: "
            f"seeds for a 95% CI of ±{setting.settle[0].resolution:g} point: {each}."
        )
    return out


def settle_command(rerun: list[str] | None, seeds: int) -> str:
    """The suggested command: the sweep again with ``seed=range(0,N)`` (runs already done are reused)."""
    if rerun is None:
        return f'run the grid with "seed=range(0,{seeds})" (records already made are reused)'
    kept = [o for o in rerun if o.split("=", 1)[0].lstrip("+") != "seed"]
    return " ".join(["focalbench sweep", *kept, f'"seed=range(0,{seeds})"'])


def not_ok_summary(rows: list[dict], listed_up_to: int = 6) -> str:
    """The runs that are not in the comparison: each named when few, else counted by status."""
    if len(rows) <= listed_up_to:
        return "; ".join(sorted({f"'{r['cell']}' seed {r['seed']} ({r['status']})" for r in rows}))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    return ", ".join(f"{n} runs {status}" for status, n in sorted(counts.items())) + " (listed in table.md)"


def answer_lines(
    report: Report, settings: list[SettingAnswer], command: str | None, margin, chosen: bool = False
) -> list[str]:
    lines = []
    for s in settings:
        head = f"[{s.setting}] " if len(settings) > 1 else ""
        if s.baseline is not None:
            metrics = len({f.metric for f in s.findings})
            asked = ""
            if chosen and s.primary:
                asked = f" (the metrics asked for; the first, {metric_name(s.primary)}, carries the recommendation)"
            lines.append(
                f"{head}{s.cells_compared} cell{'s' if s.cells_compared != 1 else ''} compared with '{s.baseline}' "
                f"on {metrics} metric{'s' if metrics != 1 else ''}{asked}: "
                f"{s.comparisons} comparisons, Holm-adjusted per metric."
            )
        lines += [f"{head}{x}" for x in s.sentences]
    if report.not_ok_runs:
        lines.append(f"Not in the comparison: {not_ok_summary(report.not_ok_runs)}.")
    if command:
        lines.append(f"To settle the open comparisons: {command}")
    lines += [f"Sanity: {line}." for line in report.notes.get("sanity", [])]
    few = basis.answer_sentence(report)
    if few:
        lines.append(few)
    lines.append(covers_line(report))
    if margin is not None:
        primaries = list(dict.fromkeys(metric_name(s.primary) for s in settings if s.primary))
        lines.append(
            f"Equivalence margin: ±{margin:g} points of {' / '.join(primaries) or 'balanced accuracy'} "
            "(90% CI, two one-sided tests)."
        )
    return lines
