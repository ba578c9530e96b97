"""The README's headline, generated from a suite's report: "The article, claim by claim".

``headline_markdown(report, sweep_link)`` renders, from a suite report (its verdicts included):

- how complete the study is (runs with records of runs planned; verdicts provisional until every run is in);
- one row per claim: the statement, what was measured (Δ, its CI, n), p after Holm's correction, the verdict
  and the verdict in words; where the test metrics at the best-validation epoch would change the verdict, that
  too (the headline is the final epoch's);
- the published numbers beside the claims they belong to, each with how it was selected;
- a compact method table (balanced accuracy, the tail, ECE, ECE after scaling; Δ against the baseline) of
  the first setting, and for the methods run in other settings (a longer budget, other long-tailed
  subsets) balanced accuracy and Δ in each, and in words what each other setting changed (Δ's CI above,
  below or holding 0, there and in the first setting);
- the Δ plot; statement 5's mechanism in numbers (how hard the rarest classes are, and their share of the
  training loss under CE and focal loss) and its plot, linked from the sweep folder;
- the study's precision and, given a precision suite's sweep folder, its claims (bf16 against fp32) with the
  caveat its rule sets for a loss whose claim does not hold; the study's compute (runs, hours, machines).

``python -m focalbench.reports.headline SWEEP_DIR README.md [PRECISION_SWEEP_DIR]`` rewrites the block between
``<!-- article:start -->`` and ``<!-- article:end -->`` in the README; ``tests/test_headline.py`` checks that
the committed block is what the committed records give.
"""

from __future__ import annotations

import re
import sys
from dataclasses import replace
from pathlib import Path

from focalbench.reports import aggregate as agg
from focalbench.reports.claims import FAIL, NOT_RUN, PASS, check_claim
from focalbench.reports.model import Cell, Report
from focalbench.reports.render import DASH, delta_text, markdown_table, value_text

START, END = "<!-- article:start -->", "<!-- article:end -->"
HEADLINE_METRICS = ("balanced_accuracy", "tail_acc", "ece", "ece_ts")
IN_WORDS = {
    PASS: "holds",
    FAIL: "does not hold",
    "inconclusive": "not established",
}


def _num(x: float | None, fmt: str = "{:+.2f}") -> str:
    return DASH if x is None else fmt.format(x)


NOT_RUN_TEXT = "not run yet"


def not_run(verdict) -> bool:
    """A claim whose cells have no record yet, in a study in progress (:data:`claims.NOT_RUN`)."""
    return verdict.verdict == NOT_RUN


def measured(verdict) -> str:
    """'+1.23 [−0.4, +2.9] (90% CI), n = 5' of a claim's first metric (or why nothing was measured)."""
    if not_run(verdict):
        return NOT_RUN_TEXT
    if verdict.error and not verdict.measured:
        return verdict.error
    check = verdict.measured[0]
    if check.delta is None:
        return "no paired seed yet"
    if check.ci[0] is None:
        return f"{_num(check.delta)}, n = {check.n} (no CI)"
    level = f"{check.ci_level:.0%}"
    return f"{_num(check.delta)} [{_num(check.ci[0])}, {_num(check.ci[1])}] ({level} CI), n = {check.n}"


def in_words(verdict) -> str:
    """The verdict in words, with why when it is not a plain pass."""
    if not_run(verdict):
        return NOT_RUN_TEXT
    words = IN_WORDS[verdict.verdict]
    if verdict.adjustment:
        return f"{words}: passes alone, but not after Holm's correction"
    reason = next((c.reason for c in verdict.measured if c.reason), None) or verdict.error
    return f"{words} ({reason})" if reason and verdict.verdict != PASS else words


def best_val_note(verdict, cells) -> str:
    """The verdict at the best-validation epoch, when it differs from the final epoch's ('' otherwise)."""
    claim = verdict.claim
    metrics = [m for m in claim.metrics if m in agg.TEST_METRICS]
    if len(metrics) != 1 or claim.all_metrics:
        return ""
    alt = check_claim(replace(claim, metrics=(f"best_val.{metrics[0]}",)), cells)
    if alt.verdict == verdict.verdict_unadjusted or not alt.measured or alt.measured[0].delta is None:
        return ""
    return f"at the best-validation epoch: {measured(alt)}, {IN_WORDS[alt.verdict]}"


def published(claim) -> str:
    p = claim.published or {}
    if not p:
        return ""
    numbers = ", ".join(f"{k} = {p[k]}" for k in ("a", "b", "value") if k in p)
    parts = [x for x in (p.get("metric"), numbers, p.get("note"), p.get("source")) if x]
    return "; ".join(parts)


def claims_table(report: Report) -> str:
    rows = []
    for i, v in enumerate(report.claims.claims, 1):
        rows.append(
            {
                "#": str(i),
                "statement": v.claim.text,
                "measured: Δ = A − B": measured(v),
                "p (Holm)": DASH if v.p_adjusted is None else f"{v.p_adjusted:.2g}",
                "verdict": in_words(v),
                "best-val epoch": best_val_note(v, report.cells),
            }
        )
    import pandas as pd

    return markdown_table(pd.DataFrame(rows))


def method_label(report: Report, cell: Cell) -> str:
    """The cell's label without its setting's ``key=value`` tokens (the table or column already names the
    setting), so that one method reads the same in every setting."""
    if len(report.settings) < 2:
        return cell.label
    setting = set(report.settings[cell.setting].split())
    return " ".join(t for t in cell.label.split() if t not in setting) or cell.label


def lead_metric(report: Report) -> str | None:
    """The first headline metric the report shows (the one the settings table and its words compare), or None."""
    return next((m for m in HEADLINE_METRICS if m in report.shown_metrics), None)


def methods_table(report: Report) -> str:
    """Cell, n, and per headline metric mean ± std with Δ [95% CI], the first setting only."""
    import pandas as pd

    metrics = [m for m in HEADLINE_METRICS if m in report.shown_metrics]
    rows = []
    for cell in (c for c in report.cells if c.setting == 0):
        row = {"method": method_label(report, cell), "n": str(len(cell.seeds))}
        for m in metrics:
            row[report.metrics[m]] = value_text(report, cell, m, ("", ""))
            row[f"Δ {report.metrics[m]}"] = delta_text(cell, m)
        rows.append(row)
    return markdown_table(pd.DataFrame(rows))


def settings_table(report: Report) -> str:
    """The methods run in a setting other than the first (another budget, another long-tailed subset), a
    column per setting: the first headline metric's mean ± std, n and Δ [95% CI] against the setting's own
    baseline ('—' where the method was not run). '' when the report has one setting."""
    import pandas as pd

    metric = lead_metric(report)
    if metric is None or len(report.settings) < 2:
        return ""
    by_method: dict[str, dict[int, Cell]] = {}
    for cell in report.cells:
        by_method.setdefault(method_label(report, cell), {})[cell.setting] = cell
    rows = []
    for method, cells in by_method.items():
        if set(cells) == {0}:  # only in the first setting: the methods table has it
            continue
        row = {"method": method}
        for i, setting in enumerate(report.settings):
            cell = cells.get(i)
            if cell is None:
                row[setting] = DASH
                continue
            delta = delta_text(cell, metric)
            value = f"{value_text(report, cell, metric, ('', ''))}, n = {len(cell.seeds)}"
            row[setting] = value if delta in ("baseline", "no baseline") else f"{value}; Δ {delta}"
        rows.append(row)
    return markdown_table(pd.DataFrame(rows)) if rows else ""


def completeness(report: Report) -> tuple[int, int]:
    done = sum(len(c.seeds) for c in report.cells) + sum(
        r["status"] == "diverged" for r in report.not_ok_runs
    )
    return done, done + sum(r["status"] in ("missing", "incomplete") for r in report.not_ok_runs)


def side_of_baseline(cell: Cell, metric: str) -> str | None:
    """Where the cell's 95% CI of Δ against its baseline lies: 'higher', 'lower', or 'not apart' (it holds 0);
    None without a CI."""
    d = cell.metrics[metric].delta_vs_baseline
    if d is None or d.ci95[0] is None:
        return None
    return "higher" if d.ci95[0] > 0 else "lower" if d.ci95[1] < 0 else "not apart"


def setting_changes(report: Report) -> list[str]:
    """One line per other setting: for each method in both it and the first setting (the baseline left out),
    where its Δ against the setting's own baseline lies in each (higher / lower / not apart, 95% CI) and
    whether that changed. What a longer budget or another long-tailed subset changed, in words."""
    metric = lead_metric(report)
    if metric is None or len(report.settings) < 2:
        return []
    first = {method_label(report, c): c for c in report.cells if c.setting == 0}
    base_tokens = report.settings[0].split()
    lines = []
    for i, setting in enumerate(report.settings[1:], 1):
        changed = " ".join(t for t in setting.split() if t not in base_tokens)
        parts = []
        for cell in (c for c in report.cells if c.setting == i and c.baseline != c.label):
            before = first.get(method_label(report, cell))
            sides = (side_of_baseline(before, metric), side_of_baseline(cell, metric)) if before else None
            if not sides or None in sides:
                continue
            verdict = "unchanged" if sides[0] == sides[1] else "changed"
            parts.append(
                f"{method_label(report, cell)}: {sides[0]} ({delta_text(before, metric)}) → {sides[1]} "
                f"({delta_text(cell, metric)}), {verdict}"
            )
        if parts:
            lines.append(f"- `{changed}`: " + "; ".join(parts) + ".")
    return lines


def across_settings(report: Report) -> str:
    """The settings table under its heading, then the lines of :func:`setting_changes` under their lead-in
    ('' when the report has one setting)."""
    table = settings_table(report)
    if not table:
        return ""
    name, baseline = report.metrics[lead_metric(report)], report.baseline_selector
    text = (
        f"#### Across settings\n\n{name}: mean ± std over seeds, n, and Δ [95% CI] against `{baseline}` of the "
        "same setting (paired seeds). Each setting is its own comparison: another budget or another long-tailed "
        "subset.\n\n" + table
    )
    lines = setting_changes(report)
    if lines:
        text += (
            f"\n\nWhat each setting changed against `{report.settings[0]}`: where Δ {name} against `{baseline}` "
            "lies (its 95% CI above 0: higher; below: lower; holding 0: not apart), there and here.\n\n"
            + "\n".join(lines)
        )
    return text


def mechanism_text(report: Report) -> str:
    """Statement 5's mechanism in numbers, from each run's ``train_classes.csv`` (mean over epochs, then
    seeds; the cells of the mechanism plot): how hard the rarest fifth of the classes is against the most
    frequent fifth (mean p_t), and what share of the training loss it holds under each loss. '' when fewer
    than two cells recorded the statistics."""
    from focalbench.reports.basis import tail_classes
    from focalbench.reports.plots import class_statistics, mechanism_cells

    cells = [(c, st) for c in mechanism_cells(report) if (st := class_statistics(c)) is not None]
    counts = (
        list(((cells[0][0].runs[0].metrics or {}).get("data") or {}).get("train_counts") or [])
        if cells
        else []
    )
    if len(cells) < 2 or not counts:
        return ""
    tail = tail_classes(counts)
    head = sorted(sorted(range(len(counts)), key=lambda c: (-counts[c], c))[: len(tail)])
    (base, (p_t, share)), others = cells[0], cells[1:]
    example_share = 100 * sum(counts[c] for c in tail) / sum(counts)
    tail_p, head_p = (sum(p_t[k] for k in group) / len(group) for group in (tail, head))
    loss_shares = "; ".join(
        f"`{method_label(report, c)}`: {100 * sum(st[1][k] for k in tail):.1f} %" for c, st in others
    )
    return (
        f"**Where the training loss goes** (statement 5; each run's `train_classes.csv`, mean over epochs and "
        f"seeds). The rarest fifth of the classes ({', '.join(map(str, tail))}: {example_share:.1f} % of the "
        f"training examples) {'are' if tail_p < head_p else 'are not'} the hard ones: under "
        f"`{method_label(report, base)}` their mean p_t is {tail_p:.2f}, against {head_p:.2f} "
        f"for the most frequent fifth ({', '.join(map(str, head))}). Their share of the training loss: "
        f"{100 * sum(share[k] for k in tail):.1f} % under `{method_label(report, base)}`; {loss_shares}."
    )


def precision_text(report: Report, precision: Report | None) -> str:
    """The study's precision and the test behind it: one line per claim of ``precision`` (a precision suite's
    report, bf16 against fp32 on the study's recipe), what was measured and the verdict after Holm; ''
    without one. A loss whose claim does not pass carries the caveat "bf16, equivalence to fp32 not shown"."""
    if precision is None:
        return ""
    runs = {str(r.config.get("precision")) for c in report.cells for r in c.runs}
    lines = [f"- {v.claim.text}: {measured(v)}; {in_words(v)}" for v in precision.claims.claims]
    failed = [v.claim.text.split(":")[0] for v in precision.claims.claims if v.verdict not in (PASS, NOT_RUN)]
    caveat = (
        f" Where a claim does not hold ({'; '.join(dict.fromkeys(failed))}), that loss's results here carry "
        "the caveat **bf16, equivalence to fp32 not shown**."
        if failed
        else ""
    )
    machines: dict[str, set[str]] = {}
    for run in (r for c in precision.cells for r in c.runs):
        env = (run.metrics or {}).get("environment") or {}
        machines.setdefault(str(env.get("precision")), set()).add(str(env.get("cpu") or env.get("device")))
    where = "; ".join(f"{p} on {', '.join(sorted(m))}" for p, m in sorted(machines.items()))
    return (
        f"**Precision.** This study's runs are {' and '.join(sorted(runs))} (autocast on the CPU; fp32 master "
        f"weights, the loss in float32). `focalbench reproduce {precision.title.removeprefix('suite ')}`, "
        "bf16 against fp32 on this recipe, paired by seed, equivalence within ±1 point (TOST, 90% CI), "
        f"Holm ({where}):\n\n" + "\n".join(lines) + f"\n\n{caveat.strip()}"
    ).rstrip()


def compute_text(report: Report) -> str:
    """The study's compute so far, from each record's ``timing.wall_time_s`` and ``environment`` (CPU or
    device, precision and how its bf16 convolutions ran, threads): the runs and hours of run wall time, in all and per machine. Run wall time
    summed over runs is machine time times the runs that shared it. '' when no record has a wall time."""
    groups: dict[str, list[float]] = {}
    for cell in report.cells:
        for run in cell.runs:
            metrics = run.metrics or {}
            wall = (metrics.get("timing") or {}).get("wall_time_s")
            if not isinstance(wall, (int, float)):
                continue
            env = metrics.get("environment") or {}
            where = env.get("cpu") if env.get("device") == "cpu" else env.get("device")
            threads = env.get("threads")
            per_run = f", {threads} thread{'s' if threads != 1 else ''} a run" if threads else ""
            # bf16 on a CPU without native bf16: its convolutions were fp32 products rounded to bf16
            rounded = (
                " (convolutions as fp32 products rounded to bf16)" if env.get("bf16_convolutions") else ""
            )
            key = f"{where}, {env.get('precision')}{rounded}{per_run}"
            groups.setdefault(key, []).append(float(wall))
    if not groups:
        return ""
    total = [w for walls in groups.values() for w in walls]
    parts = "; ".join(f"{len(w)} on {key}: {sum(w) / 3600:.1f} h" for key, w in groups.items())
    done, planned = completeness(report)
    title = "Compute so far" if done < planned else "Compute"
    return (
        f"**{title}**: {len(total)} runs, {sum(total) / 3600:.1f} h of run wall time (each record's "
        f"`timing.wall_time_s`; runs that shared a machine each count their own time): {parts}."
    )


def headline_markdown(report: Report, sweep_link: str, precision: Report | None = None) -> str:
    """The block (module docstring); ``sweep_link`` is the sweep folder relative to the README; ``precision``
    the report of the study's precision suite, if it has one."""
    done, total = completeness(report)
    verdicts = report.claims
    status = (
        f"**All {total} runs are in.**"
        if done == total
        else f"**In progress: {done} of {total} runs have records; every verdict below is provisional** "
        "(a claim with fewer seeds than planned has a wider CI, and Holm's correction runs over the claims "
        "measured so far: the p-values grow as the rest come in)."
    )
    from focalbench.reports.render import overall_line

    published_rows = [(i, v.claim) for i, v in enumerate(verdicts.claims, 1) if v.claim.published]
    anchors = "\n".join(f"- claim {i}: {published(c)}" for i, c in published_rows)
    blocks = [
        "### The article, claim by claim",
        f"`focalbench reproduce article`: {verdicts.suite['description'].strip()} {status}"
        + f" {overall_line(verdicts)}.",
        claims_table(report),
        "Δ over paired seeds, final-epoch test metrics; CIs at the level each rule uses (95% for greater/less, "
        "90% for within); p after Holm's correction over the family. A statement of the article that does not "
        "hold is a finding of this study, not a failure of the tool.",
        "**Published numbers, for orientation** (not measured here; best-test-epoch selection where the authors' "
        "scripts pick the best epoch on the test set, while this study reports the final epoch):\n\n"
        + anchors
        if anchors
        else "",
        "#### Methods" + (f" ({report.settings[0]})" if len(report.settings) > 1 else ""),
        methods_table(report),
        across_settings(report),
        f"![Δ against CE]({sweep_link}/delta.png)",
        mechanism_text(report),
        f"![where the training loss goes]({sweep_link}/class_mechanism.png)",
        precision_text(report, precision),
        compute_text(report),
        f"Everything else (tables, figures, verdicts, `report.html`): [`{sweep_link}/`]({sweep_link}/).",
    ]
    return "\n\n".join(b for b in blocks if b)


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the article markers replaced by ``block``."""
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ValueError(f"no {START} … {END} block")
    return pattern.sub(lambda _: f"{START}\n{block}\n{END}", text)


def main(argv: list[str]) -> int:
    from focalbench.sweeps.reproduce import suite_of_sweep, suite_report

    sweep_dir, readme = Path(argv[0]), Path(argv[1])
    reports = []
    for folder in [sweep_dir, *map(Path, argv[2:3])]:
        suite = suite_of_sweep(folder)
        if suite is None:
            print(f"{folder}: not a folder written by focalbench reproduce", file=sys.stderr)
            return 2
        reports.append(suite_report(suite, folder))
    link = Path(sweep_dir).resolve().relative_to(readme.resolve().parent).as_posix()
    block = headline_markdown(reports[0], link, reports[1] if len(reports) > 1 else None)
    readme.write_text(replace_block(readme.read_text(), block))
    print(f"wrote the headline of {sweep_dir} into {readme}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
