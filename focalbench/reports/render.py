"""Renderings of the report model (:mod:`.model`), which holds every number and note: markdown, CSV, LaTeX,
the terminal and a suite's verdicts, each a pure function of it. Numbers are formatted per metric (percent:
2 decimals, NLL 4, seconds 1; CSV and summary.json: full precision). Metrics no run defines are left out
of the tables and named once below them."""

from __future__ import annotations

import io

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table

from focalbench.console import make_console
from focalbench.reports import aggregate as agg
from focalbench.reports.model import Cell, Report

DASH = "—"
NOT_OK_SHOWN = 6  # runs not in the tables named one by one in the terminal; beyond that, counted
RULE_WIDTH = 100  # the answer's rules: at most this wide (a pipe's console is 1,000 columns)


def signed(value: float, fmt: str) -> str:
    text = fmt.format(value)
    return text if text.startswith("-") else "+" + text


def value_text(report: Report, cell: Cell, metric: str, bold: tuple[str, str] = ("**", "**")) -> str:
    """'mean ± std' (std '—' for one seed), '(n=k)' when only k of the cell's seeds have the metric, in
    ``bold`` for the best cell of its setting, then ' ≈' when its lead is inside the noise."""
    st, fmt = cell.metrics[metric], agg.metric_info(metric)[1]
    if st.mean is None:
        return DASH
    text = f"{fmt.format(st.mean)} ± {DASH if st.std is None else fmt.format(st.std)}"
    text += f" (n={st.n})" if st.n != len(cell.seeds) else ""
    best = report.best_of(cell, metric)
    return f"{bold[0]}{text}{bold[1]}" + (" ≈" if best.inside_noise else "") if best else text


def delta_text(cell: Cell, metric: str) -> str:
    """'Δ [low, high]' against the cell's baseline, or 'baseline', 'no baseline', 'no shared seed',
    '(n=1, no CI)'; then '†' when seeds were left out of the pairing."""
    st, fmt = cell.metrics[metric], agg.metric_info(metric)[1]
    d = st.delta_vs_baseline
    if st.mean is None or cell.baseline == cell.label or d is None:
        return DASH if st.mean is None else "baseline" if cell.baseline == cell.label else "no baseline"
    if d.delta is None:
        text = "no shared seed"
    elif d.ci95[0] is None:
        text = f"{signed(d.delta, fmt)} (n=1, no CI)"
    else:
        text = f"{signed(d.delta, fmt)} [{signed(d.ci95[0], fmt)}, {signed(d.ci95[1], fmt)}]"
    return text + (" †" if d.partial else "")


def column_label(report: Report, metric: str, flagged: list[str]) -> str:
    """A metric's column header: its label, with ``‡`` when it rests on few test examples (:mod:`.basis`)."""
    return report.metrics[metric] + (" ‡" if metric in flagged else "")


def flagged_line(report: Report) -> list[str]:
    """The line under the tables that explains ``‡`` (none when no metric is flagged)."""
    from focalbench.reports.basis import FEW_TEST_EXAMPLES, flagged_metrics

    if not flagged_metrics(report):
        return []
    return [
        f"‡: rests on fewer than {FEW_TEST_EXAMPLES} test examples in some cell, so its CI is wide (see "
        "'What each metric rests on')."
    ]


def value_frame(report: Report, bold: tuple[str, str] = ("**", "**")) -> pd.DataFrame:
    from focalbench.reports.basis import flagged_metrics

    flagged, rows = flagged_metrics(report), []
    for c in report.cells:
        rows.append({"cell": c.label, "n": len(c.seeds), "seeds": ",".join(map(str, c.seeds))})
        rows[-1] |= {
            column_label(report, m, flagged): value_text(report, c, m, bold) for m in report.shown_metrics
        }
    return pd.DataFrame(rows)


def delta_frame(report: Report) -> pd.DataFrame:
    from focalbench.reports.basis import flagged_metrics

    flagged = flagged_metrics(report)
    metrics = [
        m for m in report.shown_metrics if m not in agg.TIME_METRICS
    ]  # time is not compared between cells
    deltas = (
        {"Δ " + column_label(report, m, flagged): delta_text(c, m) for m in metrics} for c in report.cells
    )
    return pd.DataFrame([{"cell": c.label} | d for c, d in zip(report.cells, deltas, strict=True)])


def undefined_line(report: Report) -> list[str]:
    """The line naming the metrics left out of the tables because no run has a value (none if none)."""
    missing = ", ".join(report.undefined_metrics)
    return [f"Not defined for these data (no run has a value), so left out: {missing}."] if missing else []


# The metrics whose chance level is stated beside the tables: balanced accuracy's, and top-1 accuracy's (and its
# error's). Macro-F1 and the shot groups have no one chance level, so none is claimed for them.
CHANCE_METRICS = ("balanced_accuracy", "accuracy", "top1_error")


def chance_lines(report: Report) -> list[str]:
    """The chance level beside the accuracy tables, once per distinct data: balanced accuracy 100/C % (what
    any constant prediction scores, and uniform random guessing on average), and, where top-1 accuracy is
    shown, the share of the test set's most frequent class (what always predicting that class scores), so that
    a near-chance result reads as one. [] when no such metric is shown or no run says its class count."""
    base = {m.split(".", 1)[-1] for m in report.shown_metrics}
    if not base & set(CHANCE_METRICS):
        return []
    lines = []
    for cell in report.cells:
        metrics = cell.runs[0].metrics or {}
        test, data = metrics.get("test") or {}, metrics.get("data") or {}
        classes = len(test.get("per_class_recall") or data.get("train_counts") or [])
        if classes < 2:
            continue
        line = f"balanced accuracy {100 / classes:.2f} % (1/C, C = {classes} classes)"
        matrix = test.get("confusion_matrix") or []
        counts = [sum(row) for row in matrix if isinstance(row, list)]
        if base & {"accuracy", "top1_error"} and sum(counts) > 0:
            share = 100 * max(counts) / sum(counts)
            line += (
                f"; top-1 accuracy {share:.2f} % (always the test set's most frequent class: "
                f"{max(counts)} of {sum(counts)})"
            )
        lines.append((str(data.get("dataset") or "these data"), line))
    found = list(dict.fromkeys(lines))
    if len({line for _, line in found}) == 1:  # one chance level: the data's name says nothing more
        return [f"Chance level: {found[0][1]}."]
    return [f"Chance level, {dataset}: {line}." for dataset, line in found]


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-markdown table; '|' inside cells is escaped and text that looks numeric stays as written."""
    escaped = frame.map(lambda x: x.replace("|", "\\|") if isinstance(x, str) else x)
    return escaped.to_markdown(index=False, disable_numparse=True)


def markdown(report: Report) -> str:
    """table.md: the values, the paired Δ, the notes, and the runs that are not in the tables."""
    n, defs, not_ok = report.notes, report.definitions, len(report.not_ok_runs)
    runs = sum(len(c.seeds) for c in report.cells) + not_ok
    blocks = [
        f"# Report: {report.title}",
        *answer_markdown(report),
        f"{len(report.cells)} cells from {runs} runs ({runs - not_ok} ok, {not_ok} not ok). Values: "
        f"{defs['values']}. Each cell: {defs['cell']}. Order: {defs['order']}. Units: {defs['units']}.",
        f"Baseline selector `{report.baseline_selector}` → " + "; ".join(n["baseline"]) + ".",
        "## Mean ± std over seeds",
        markdown_table(value_frame(report)),
        "**bold**: best cell of the metric; ≈: its lead over the runner-up is inside the noise.",
        *chance_lines(report),
        "## Paired Δ against the baseline: mean [95% CI]",
        markdown_table(delta_frame(report)),
        f"Δ: {defs['delta']}. †: some seeds had no partner (see below).",
        *flagged_line(report),
        *undefined_line(report),
    ]
    sections = note_sections(report) | {"Data": n["data"], "Setup": n["setup"]}
    listed = {title: "\n".join(f"- {line}" for line in lines) for title, lines in sections.items() if lines}
    blocks += [f"## {title}\n\n{lines}" for title, lines in listed.items()]
    rows = report.not_ok_runs
    blocks += ["## Runs not in the table (failed, diverged, incomplete or missing)"]
    blocks += [markdown_table(pd.DataFrame(rows)) if rows else "None: every run finished."]
    return "\n\n".join(blocks) + "\n"


def note_sections(report: Report) -> dict[str, list[str]]:
    """The notes below the tables, by section title (table.md adds data and setup; report.html puts those
    under provenance)."""
    n, defs = report.notes, report.definitions
    return {
        "Sanity flags (runs recorded as ok whose results are absurd)": n.get("sanity", []),
        "One run under two names": n.get("same_runs", []),
        "Seeds left out of the pairing": n["pairing"],
        "What each metric rests on (classes and test examples per run)": n.get("basis", []),
        "Best cell per metric": [f"Rule: {defs['best']}.", *n["best"]],
        "Class weights α (resolved from the training counts)": n["alpha"],
        "Loss reduction ('mean' convention)": n["mean_convention"],
        "Many / medium / few-shot groups": n["shot_thresholds"],
        "Time": n.get("time", []),
    }


def answer_markdown(report: Report) -> list[str]:
    """table.md's opening: the answer in words (``Report.answer``), one bullet per sentence."""
    if report.answer is None:
        return []
    return ["## Answer", "\n".join(f"- {line}" for line in report.answer.lines), "## The tables"]


CSV_STATS = ("mean", "std", "n", "delta", "delta_ci_low", "delta_ci_high", "delta_n", "best")


def csv(report: Report) -> str:
    """table.csv, one row per cell: the varying keys, n, seeds, the baseline, and per metric its mean, std,
    n, Δ, Δ's CI and n, and whether the cell is the best."""
    rows = []
    for cell in report.cells:
        row = {"cell": cell.label} | {k: agg.format_value(v) for k, v in cell.config.items()}
        seeds = ";".join(map(str, cell.seeds))
        row |= {"n": len(cell.seeds), "seeds": seeds, "baseline": cell.baseline or ""}
        for m in report.shown_metrics:
            st, d = cell.metrics[m], cell.metrics[m].delta_vs_baseline
            delta = (None,) * 4 if d is None else (d.delta, *d.ci95, d.n)
            numbers = (st.mean, st.std, st.n, *delta, st.best)
            row |= {f"{m}_{k}": x for k, x in zip(CSV_STATS, numbers, strict=True)}
        rows.append(row)
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


# fmt: off
_LATEX = str.maketrans({"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                        "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                        "±": r"$\pm$", "Δ": r"$\Delta$", "≈": r"$\approx$", "†": r"$\dagger$", "—": "--",
                        "ρ": r"$\rho$"})
# fmt: on


def latex_table(frame: pd.DataFrame, caption: str) -> str:
    """One booktabs tabular; bold was written as BOLDSTART/BOLDEND, which survive escaping."""
    frame = frame.map(lambda s: str(s).translate(_LATEX))
    frame = frame.map(lambda s: s.replace("BOLDSTART", r"\textbf{").replace("BOLDEND", "}"))
    frame.columns = [str(c).translate(_LATEX) for c in frame.columns]
    body = frame.style.hide(axis="index").to_latex(hrules=True, column_format="l" * frame.shape[1])
    return f"% {caption}\n{body}"


def latex(report: Report) -> str:
    """table.tex: two tabulars, mean ± std per cell and the paired Δ with its 95% CI."""
    defs = report.definitions
    out = [
        f"% Report: {report.title}. {defs['values']}; {defs['cell']}.",
        f"% Baseline: {report.baseline_selector}. \\textbf{{bold}}: best; $\\approx$: inside the noise.",
        latex_table(value_frame(report, bold=("BOLDSTART", "BOLDEND")), "mean ± std over seeds"),
        latex_table(delta_frame(report), "paired Δ against the baseline, mean [95% CI]"),
    ]
    return "\n".join(out + [f"% {line}\n" for line in undefined_line(report)])


def rich_table(frame: pd.DataFrame, title: str, markup: bool = False) -> Table:
    """A rich table of a frame; its text is escaped unless it holds rich ``markup`` already. A cell too
    narrow for its text wraps it (``overflow="fold"``): a number is never cut to '…'."""
    table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    for column in map(str, frame.columns):
        table.add_column(column, overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(str(x) if markup else escape(str(x)) for x in row))
    return table


def compact_frame(report: Report, metric: str = "balanced_accuracy") -> pd.DataFrame:
    """The terminal's narrow table: cell, n, the primary metric (mean ± std) and its Δ [95% CI]."""
    metric = metric if metric in report.shown_metrics else report.shown_metrics[0]
    label = report.metrics[metric]
    rows = [
        {"cell": c.label, "n": len(c.seeds), label: value_text(report, c, metric, ("", "")),
         "Δ [95% CI]": delta_text(c, metric)}
        for c in report.cells
    ]  # fmt: skip
    return pd.DataFrame(rows)


def table_width(frame: pd.DataFrame) -> int:
    """The width a rich table of ``frame`` needs without wrapping (text plus padding and rules)."""
    widths = [max([len(str(c)), *(len(str(x)) for x in frame[c])]) for c in frame.columns]
    return sum(widths) + 3 * len(widths) + 1


def print_answer(report: Report, console: Console) -> None:
    """The answer, one paragraph per sentence, under a rule; wrapped to the terminal's width."""
    if report.answer is None:
        return
    width = min(console.width, RULE_WIDTH)  # a pipe's console is very wide; its rules need not be
    console.print(Rule("[bold]answer[/]", align="left"), width=width)
    for line in report.answer.lines:
        console.print(escape(line), highlight=False)
    console.print(Rule(style="dim"), width=width)


def print_report(report: Report, console: Console | None = None, full: bool = False) -> None:
    """The terminal view: the answer; then the tables of table.md when ``full`` or when they fit the
    terminal, else a compact table (cell, n, balanced accuracy and its Δ [95% CI]); the notes that matter
    at a glance, the runs that failed, and a suite's verdicts."""
    console = console or make_console()
    print_answer(report, console)
    values = value_frame(report, bold=("BOLDSTART", "BOLDEND"))
    deltas = delta_frame(report)
    wide = full or max(table_width(values), table_width(deltas)) <= console.width
    if wide:
        values = values.map(lambda x: escape(str(x)))  # then markup
        values = values.map(lambda x: x.replace("BOLDSTART", "[bold]").replace("BOLDEND", "[/bold]"))
        title = f"{report.title}: final-epoch test metrics, mean ± std over seeds"
        console.print(rich_table(values, title, markup=True))
        console.print(rich_table(deltas, "paired Δ against the baseline, mean [95% CI]"))
    else:
        title = f"{report.title}: final epoch, test, mean ± std over seeds; Δ against the baseline"
        console.print(rich_table(compact_frame(report), title))
        console.print("every metric: table.md in the sweep folder, or --full", style="dim")
    notes = report.notes
    head = f"baseline `{report.baseline_selector}` → " + "; ".join(notes["baseline"])
    lines = [
        *chance_lines(report),
        head,
        *undefined_line(report),
        *flagged_line(report),
        *notes.get("same_runs", []),
    ]
    lines += [f"rests on: {line}" for line in notes.get("basis", []) if "‡" in line]
    lines += [f"† {line}" for line in notes["pairing"]]
    lines += [f"best {line}" for line in notes["best"]] if wide else []
    for line in lines:
        console.print(escape(line), highlight=False)
    shown = (
        report.not_ok_runs if len(report.not_ok_runs) <= NOT_OK_SHOWN else report.not_ok_runs[:NOT_OK_SHOWN]
    )
    for r in shown:
        why = escape(f"run {r['run']} ({r['cell']}, seed {r['seed']}): {r['why']}")
        console.print(f"[red]{r['status']}[/]: {why}", highlight=False)
    if len(shown) < len(report.not_ok_runs):
        from focalbench.reports.answer import not_ok_summary

        console.print(
            f"... runs not in the tables: {escape(not_ok_summary(report.not_ok_runs))}", highlight=False
        )
    if report.claims is not None:
        print_verdicts(report.claims, console)


LABELS = {
    "pass": "pass",
    "fail": "FAIL",
    "inconclusive": "INCONCLUSIVE",
    "skipped": "skipped",
    "not_run": "not run yet",
}
VERDICT_COLUMNS = ("#", "claim", "A", "B", "rule", "metric", "Δ = A − B", "CI", "n", "p", "verdict", "why")
ADJUSTED_COLUMN = "Holm-adjusted"  # the claim's verdict after the multiplicity adjustment, with p_adj
RULES = (
    "Measured here: Δ = mean over paired seeds of (A − B) (or A − value), final-epoch test metrics, with its "
    "Student-t CI at the level stated and n = number of paired seeds. greater: pass when the 95% CI's lower "
    "bound exceeds the margin, FAIL when its upper bound does not; less: the mirror image; within (TOST): "
    "pass when the 90% CI lies inside ±margin, FAIL when wholly outside; equal: |A − B| ≤ margin on every "
    "seed. at_least / at_most (non-inferiority, one-sided at 5%): pass when the 90% CI's lower bound exceeds "
    "−margin / its upper bound is below +margin. Otherwise INCONCLUSIVE: not established with these seeds. "
    "metric all skips metrics no run defines. p: the one-sided p-value of the pass rule's test."
)
HOLM_RULE = (
    "Multiplicity: Holm's step-down correction over the claims with a p-value; a claim passes after it when "
    "its adjusted p is below its level (0.025 for greater/less, 0.05 for at_least/at_most/within). The "
    "verdict column is each test alone; the Holm-adjusted column is the claim's verdict, and the one that counts."
)


def _p(x: float | None) -> str:
    return DASH if x is None else f"{x:.2g}" if x >= 1e-4 else "<1e-4"


def _num(x: float | None) -> str:
    return DASH if x is None else f"{x:+.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:+.2e}"


def verdict_rows(verdicts) -> list[dict[str, str]]:
    """One row per claim and metric (a claim's own columns on its first row only): the measured effect,
    its CI and level, n (with the seeds paired, when not all), the verdict and why."""
    rows = []
    for i, v in enumerate(verdicts.claims, 1):
        own = []
        for c in v.measured:
            ci = DASH if c.ci[0] is None else f"{c.ci_level:.0%} [{_num(c.ci[0])}, {_num(c.ci[1])}]"
            paired, available = (",".join(map(str, x)) for x in (c.seeds, c.seeds_available))
            partial = f" (paired on seeds {paired} of {available})" if c.n and paired != available else ""
            n = f"{c.n}{partial}"
            own.append({"metric": agg.metric_info(c.metric)[0], "Δ = A − B": _num(c.delta), "CI": ci, "n": n})
            own[-1]["p"] = _p(c.p_value)
            own[-1] |= {"verdict": LABELS[c.verdict], "why": c.reason or ""}
        if v.error:  # the claim could not be checked (a selector), or none of its metrics is defined
            own.append({"metric": DASH, "Δ = A − B": DASH, "CI": DASH, "n": "0", "p": DASH})
            own[-1]["verdict"] = LABELS[v.verdict]
            own[-1]["why"] = v.error
        claim = (str(i), v.claim.text, v.a_cell or v.claim.a, v.against, v.rule)
        head = dict(zip(VERDICT_COLUMNS[:5], claim, strict=True))
        if verdicts.multiplicity != "none":
            head[ADJUSTED_COLUMN] = _adjusted(v)
        rows += [(head if j == 0 else dict.fromkeys(head, "")) | row for j, row in enumerate(own)]
    return rows


def verdict_columns(verdicts) -> tuple[str, ...]:
    """The verdict table's columns: ``VERDICT_COLUMNS``, plus the adjusted verdict under a multiplicity rule."""
    return VERDICT_COLUMNS + ((ADJUSTED_COLUMN,) if verdicts.multiplicity != "none" else ())


def _adjusted(v) -> str:
    """'pass (p_adj 0.012)', 'INCONCLUSIVE (p_adj 0.079: does not survive ...)', or the verdict alone."""
    note = "" if v.p_adjusted is None else f"p_adj {_p(v.p_adjusted)}"
    note = f"{note}: {v.adjustment}" if v.adjustment else note
    return f"{LABELS[v.verdict]} ({note})" if note else LABELS[v.verdict]


def overall_line(verdicts) -> str:
    """'4 of 4 claims hold', or how many do not and why: FAIL, INCONCLUSIVE (not established), or not run
    yet (a study in progress)."""
    counts, total = verdicts.counts, len(verdicts.claims)
    line = f"{counts['pass']} of {total} claims hold"
    line = (
        line if verdicts.all_hold else f"{line}; {counts['fail']} FAIL, {counts['inconclusive']} INCONCLUSIVE"
    )
    if counts.get("not_run"):
        line += f", {counts['not_run']} not run yet"
    raw = verdicts.counts_unadjusted
    if verdicts.multiplicity == "holm" and raw is not None:
        line += f" (after Holm's correction; {raw['pass']} of {total} before it)"
    return line


def print_verdicts(verdicts, console: Console | None = None) -> None:
    """The verdict table (without the columns A, B and why, which the verdict carries), then the overall line."""
    console = console or make_console()
    frame = pd.DataFrame(verdict_rows(verdicts), columns=verdict_columns(verdicts)).fillna("").map(escape)
    style = {"pass": "green", "skipped": "dim", "INCONCLUSIVE": "yellow", "not run yet": "yellow"}
    verdicts_why = zip(frame.verdict, frame.why, strict=True)
    frame["verdict"] = [f"[{style.get(v, 'red')}]{v}{f' ({w})' if w else ''}[/]" for v, w in verdicts_why]
    title = "claims: measured effect Δ = A − B over paired seeds"
    console.print(rich_table(frame.drop(columns=["A", "B", "why"]), title, markup=True))
    console.print(f"[{'green' if verdicts.all_hold else 'red'}]{overall_line(verdicts)}[/]")


def verdicts_markdown(verdicts) -> str:
    """verdicts.md: the suite, how many claims hold, the rules, the table, and published numbers apart."""
    suite = verdicts.suite
    description = [suite["description"].strip()] if suite["description"] else []
    blocks = [f"# Claims of suite {suite['name']}", *description]
    blocks += [f"**{overall_line(verdicts)}.**", RULES]
    blocks += [HOLM_RULE] if verdicts.multiplicity == "holm" else []
    frame = pd.DataFrame(verdict_rows(verdicts), columns=verdict_columns(verdicts)).fillna("")
    blocks += [markdown_table(frame)]
    published = [(i, v.claim) for i, v in enumerate(verdicts.claims, 1) if v.claim.published]
    if published:
        blocks.append("## Published (not measured here)")
        blocks.append("Numbers from the papers, for orientation only; they were not produced by these runs.")
        lines = []
        for i, claim in published:
            p = claim.published
            parts, note = ", ".join(f"{k} = {p[k]}" for k in ("a", "b", "value") if k in p), p.get("note")
            source = f"{'; ' + note if note else ''} — source: {p.get('source', 'unknown')}"
            lines.append(f"- claim {i} ({claim.text}): {p.get('metric', '')} {parts}{source}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
