"""Renderings of a :class:`~focalbench.reports.report.Report`: markdown, CSV, LaTeX, JSON and the terminal.

Every renderer is a pure function of the report (no clock, no absolute paths, cells in report order), so
the same records always give byte-identical files. Numbers are formatted per metric (percent with 2
decimals, NLL with 4, seconds with 1); the CSV and JSON keep full precision.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from focalbench.reports import aggregate as agg
from focalbench.reports.stats import NOISE_RULE, PairedDelta, Summary

DASH = "—"
DEFINITIONS = {
    "values": "final-epoch metrics on the balanced test set; best_val.<metric> is the test metric at the epoch "
    "with the best validation balanced accuracy",
    "cell": "mean ± sample std (ddof=1) over seeds; std is '—' for n=1; n = number of seeds",
    "delta": "paired Δ = mean over shared seeds of (cell − baseline), with its 95% Student-t CI "
    "(t_{0.975,n−1}·s_d/√n); seeds without a partner are left out",
    "best": "best cell per metric (higher is better for accuracy-type metrics and images/s; lower for NLL, "
    "ECE, error and time), marked within each setting; " + NOISE_RULE,
    "order": "cells in order of first appearance in the run list (the sweep's grid order)",
    "units": "accuracy-type metrics and ECE in percent; NLL in nats; time in seconds",
}


# ----------------------------------------------------------------------------------------------------------
# Formatting
# ----------------------------------------------------------------------------------------------------------


def fmt_summary(s: Summary, fmt: str) -> str:
    if s.mean is None:
        return DASH
    std = DASH if s.std is None else fmt.format(s.std)
    return f"{fmt.format(s.mean)} ± {std}"


def fmt_signed(value: float, fmt: str) -> str:
    text = fmt.format(value)
    return text if text.startswith("-") else "+" + text


def fmt_delta(d: PairedDelta | None, fmt: str, is_baseline: bool) -> str:
    if is_baseline:
        return "baseline"
    if d is None:
        return "no baseline"
    if d.delta is None:
        return "no shared seed"
    if d.ci_low is None:
        return f"{fmt_signed(d.delta, fmt)} (n=1, no CI)"
    return f"{fmt_signed(d.delta, fmt)} [{fmt_signed(d.ci_low, fmt)}, {fmt_signed(d.ci_high, fmt)}]"


def _value_cell(report, cell: agg.Cell, metric: str, bold: tuple[str, str]) -> str:
    st = report.stats[(cell.key, metric)]
    text = fmt_summary(st.summary, agg.metric_info(metric)[1])
    if st.summary.n and st.summary.n != len(cell.runs):
        text += f" (n={st.summary.n})"
    if st.best:
        note = next(b for b in report.best if b.best is cell and b.metric == metric)
        text = f"{bold[0]}{text}{bold[1]}" + (" ≈" if note.inside else "")
    return text


def _delta_cell(report, cell: agg.Cell, metric: str) -> str:
    st = report.stats[(cell.key, metric)]
    if st.summary.mean is None:  # no value at all, e.g. few-shot accuracy when no class is few-shot
        return DASH
    text = fmt_delta(st.delta, agg.metric_info(metric)[1], report.baseline_of.get(cell.key) is cell)
    if st.delta is not None and st.delta.partial:
        text += " †"
    return text


def value_frame(report, bold: tuple[str, str] = ("**", "**")) -> pd.DataFrame:
    rows = []
    for cell in report.cells:
        row = {"cell": cell.label, "n": len(cell.runs), "seeds": ",".join(str(s) for s in sorted(cell.seeds))}
        for m in report.metrics:
            row[agg.metric_info(m)[0]] = _value_cell(report, cell, m, bold)
        rows.append(row)
    return pd.DataFrame(rows)


def delta_frame(report) -> pd.DataFrame:
    rows = []
    for cell in report.cells:
        row = {"cell": cell.label}
        for m in report.metrics:
            row["Δ " + agg.metric_info(m)[0]] = _delta_cell(report, cell, m)
        rows.append(row)
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------------------------
# The notes below the tables
# ----------------------------------------------------------------------------------------------------------


def _first_ok(cell: agg.Cell) -> dict:
    return cell.runs[0].metrics or {}


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def baseline_lines(report) -> list[str]:
    lines = []
    for gi, members in enumerate(report.groups):
        base = report.baseline_of.get(members[0].key)
        where = "" if len(report.groups) == 1 else f" in setting {report.group_labels[gi]}"
        lines.append(
            f"'{base.label}'{where}" if base else f"none{where} (no cell matches the selector there)"
        )
    return lines


def pairing_lines(report) -> list[str]:
    lines = []
    for cell in report.cells:
        notes = _unique(
            [
                f"{agg.metric_info(m)[0]}: {st.delta.pairing_note()}"
                for m in report.metrics
                if (st := report.stats[(cell.key, m)]).delta is not None and st.delta.partial
            ]
        )
        if notes:
            lines.append(f"'{cell.label}' vs its baseline: " + "; ".join(notes))
    return lines


def best_lines(report) -> list[str]:
    lines = []
    for note in report.best:
        label, fmt, _ = agg.metric_info(note.metric)
        where = "" if len(report.groups) == 1 else f" [{report.group_labels[note.group]}]"
        mean = report.stats[(note.best.key, note.metric)].summary.mean
        verdict = {True: "inside the noise", False: "outside the noise", None: "cannot tell"}[note.inside]
        lines.append(
            f"{label}{where}: '{note.best.label}' ({fmt.format(mean)}), runner-up '{note.runner_up.label}': "
            f"{verdict} ({note.evidence})"
        )
    return lines


def alpha_lines(report) -> list[str]:
    lines = []
    for cell in report.cells:
        loss = _first_ok(cell).get("loss") or {}
        resolved = loss.get("alpha_resolved")
        weights = (
            "none (unweighted)" if resolved is None else "[" + ", ".join(f"{w:.4g}" for w in resolved) + "]"
        )
        extra = f", β={cell.config.get('loss.beta'):g}" if loss.get("alpha") == "effective_num" else ""
        lines.append(f"'{cell.label}': α = {loss.get('alpha')}{extra} → per-class {weights}")
    return lines


def convention_lines(report) -> list[str]:
    return _unique([str((_first_ok(c).get("loss") or {}).get("mean_convention")) for c in report.cells])


def shot_lines(report) -> list[str]:
    lines = []
    for cell in report.cells:
        data = _first_ok(cell).get("data") or {}
        many, few = cell.config.get("eval.many_threshold"), cell.config.get("eval.few_threshold")
        counts = data.get("train_counts") or []
        if many is None or few is None:
            continue
        groups = (
            sum(c > many for c in counts),
            sum(few <= c <= many for c in counts),
            sum(c < few for c in counts),
        )
        lines.append(
            f"many-shot: > {many}, medium: {few}–{many}, few-shot: < {few} training examples "
            f"(counted on the training split): {groups[0]} / {groups[1]} / {groups[2]} classes"
        )
    return _unique(lines)


def data_lines(report) -> list[str]:
    lines = []
    for cell in report.cells:
        d = _first_ok(cell).get("data") or {}
        text = (
            f"{d.get('dataset')}: ρ = {agg.format_value(d.get('imbalance'))} ({d.get('profile')} profile), "
            f"data_seed {d.get('data_seed')}; train {d.get('n_train')}, val {d.get('n_val')}, "
            f"test {d.get('n_test')} (balanced); training class counts {d.get('train_counts')}"
        )
        if d.get("official_copy") is False:
            text += "; UNOFFICIAL COPY of the dataset (checksums differ from the official archives)"
        lines.append(text)
    return _unique(lines)


def setup_lines(report) -> list[str]:
    lines = []
    for cell in report.cells:
        for run in cell.runs:
            m = run.metrics or {}
            model, env = m.get("model") or {}, m.get("environment") or {}
            lines.append(
                f"model {model.get('name')} ({model.get('parameters')} parameters), "
                f"{(m.get('timing') or {}).get('epochs')} epochs, on {env.get('device')} "
                f"({env.get('precision')}), torch {env.get('torch')}, focalbench {env.get('focalbench')}"
            )
    return _unique(lines)


def not_ok_rows(report) -> list[dict[str, Any]]:
    return [
        {
            "run": r.run_id,
            "cell": agg.cell_label(r.config, report.varying)
            if r.config and report.varying
            else (agg.default_label(r.config) if r.config else "?"),
            "seed": DASH if r.seed is None else r.seed,
            "status": r.status,
            "why": r.message,
        }
        for r in report.failed
    ]


def notes(report) -> dict[str, list[str]]:
    return {
        "baseline": baseline_lines(report),
        "pairing": pairing_lines(report),
        "best": best_lines(report),
        "alpha": alpha_lines(report),
        "mean_convention": convention_lines(report),
        "shot_thresholds": shot_lines(report),
        "data": data_lines(report),
        "setup": setup_lines(report),
    }


# ----------------------------------------------------------------------------------------------------------
# Markdown, CSV, LaTeX, JSON
# ----------------------------------------------------------------------------------------------------------


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-markdown table; '|' inside cells is escaped and text that looks numeric stays as written."""
    escaped = frame.map(lambda x: x.replace("|", "\\|") if isinstance(x, str) else x)
    return escaped.to_markdown(index=False, disable_numparse=True)


def to_markdown(report) -> str:
    n = notes(report)
    ok = sum(r.ok for r in report.runs)
    out = [
        f"# Report: {report.title}",
        "",
        f"{len(report.cells)} cells from {len(report.runs)} runs ({ok} ok, {len(report.runs) - ok} not ok). "
        f"Values: {DEFINITIONS['values']}. Each cell: {DEFINITIONS['cell']}. Order: {DEFINITIONS['order']}. "
        f"Units: {DEFINITIONS['units']}.",
        "",
        f"Baseline selector `{report.baseline}` → " + "; ".join(n["baseline"]) + ".",
        "",
        "## Mean ± std over seeds",
        "",
        markdown_table(value_frame(report)),
        "",
        "**bold**: best cell of the metric; ≈: its lead over the runner-up is inside the noise.",
        "",
        "## Paired Δ against the baseline: mean [95% CI]",
        "",
        markdown_table(delta_frame(report)),
        "",
        f"Δ: {DEFINITIONS['delta']}. †: some seeds had no partner (see below).",
        "",
    ]
    sections = [
        ("Seeds left out of the pairing", n["pairing"]),
        ("Best cell per metric", [f"Rule: {DEFINITIONS['best']}.", *n["best"]]),
        ("Class weights α (resolved from the training counts)", n["alpha"]),
        ("Loss reduction ('mean' convention)", n["mean_convention"]),
        ("Many / medium / few-shot groups", n["shot_thresholds"]),
        ("Data", n["data"]),
        ("Setup", n["setup"]),
    ]
    for title, lines in sections:
        if lines:
            out += [f"## {title}", "", *[f"- {line}" for line in lines], ""]
    rows = not_ok_rows(report)
    out += ["## Runs not in the table (failed, diverged, incomplete or missing)", ""]
    out += [markdown_table(pd.DataFrame(rows)) if rows else "None: every run finished.", ""]
    return "\n".join(out)


def to_csv(report) -> str:
    """One row per cell: the varying keys, n, seeds, and per metric mean, std, n, Δ, CI, Δ n and best."""
    rows = []
    for cell in report.cells:
        row: dict[str, Any] = {"cell": cell.label}
        for key in report.varying:
            row[agg.short_name(key)] = agg.format_value(cell.config.get(key))
        row["n"] = len(cell.runs)
        row["seeds"] = ";".join(str(s) for s in sorted(cell.seeds))
        row["baseline"] = (report.baseline_of.get(cell.key) or agg.Cell("", {}, label="")).label
        for m in report.metrics:
            st = report.stats[(cell.key, m)]
            d = st.delta
            row |= {
                f"{m}_mean": st.summary.mean,
                f"{m}_std": st.summary.std,
                f"{m}_n": st.summary.n,
                f"{m}_delta": None if d is None else d.delta,
                f"{m}_delta_ci_low": None if d is None else d.ci_low,
                f"{m}_delta_ci_high": None if d is None else d.ci_high,
                f"{m}_delta_n": None if d is None else d.n,
                f"{m}_best": st.best,
            }
        rows.append(row)
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    escaped = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    return (
        escaped.replace("±", r"$\pm$")
        .replace("Δ", r"$\Delta$")
        .replace("≈", r"$\approx$")
        .replace("†", r"$\dagger$")
        .replace("—", "--")
        .replace("ρ", r"$\rho$")
    )


def _latex_table(frame: pd.DataFrame, caption: str) -> str:
    frame = frame.map(latex_escape)
    frame.columns = [latex_escape(c) for c in frame.columns]
    # The bold markers were written as the placeholders below, which survive escaping.
    frame = frame.map(lambda s: s.replace("BOLDSTART", r"\textbf{").replace("BOLDEND", "}"))
    body = frame.style.hide(axis="index").to_latex(hrules=True, column_format="l" * frame.shape[1])
    return f"% {caption}\n{body}"


def to_latex(report) -> str:
    """Two tabulars (booktabs rules): mean ± std per cell, and the paired Δ with its 95% CI."""
    values = value_frame(report, bold=("BOLDSTART", "BOLDEND"))
    return "\n".join(
        [
            f"% Report: {report.title}. {DEFINITIONS['values']}; {DEFINITIONS['cell']}.",
            f"% Baseline: {report.baseline}. \\textbf{{bold}}: best; $\\approx$: inside the noise.",
            _latex_table(values, "mean ± std over seeds"),
            _latex_table(delta_frame(report), "paired Δ against the baseline, mean [95% CI]"),
        ]
    )


def _delta_json(d: PairedDelta | None) -> dict | None:
    if d is None:
        return None
    return {
        "delta": d.delta,
        "ci95": [d.ci_low, d.ci_high],
        "n": d.n,
        "std": d.std,
        "seeds": list(d.seeds),
        "seeds_available": list(d.all_seeds),
    }


def to_json(report, plots: dict, skipped: dict[str, str]) -> str:
    """summary.json: every number of the tables, the rules used, the notes, not-ok runs and the plots."""
    cells = []
    for cell in report.cells:
        base = report.baseline_of.get(cell.key)
        entry = {
            "label": cell.label,
            "config": {agg.short_name(k): cell.config.get(k) for k in report.varying},
            "seeds": sorted(cell.seeds),
            "run_ids": [r.run_id for r in sorted(cell.runs, key=lambda r: r.seed)],
            "baseline": None if base is None else base.label,
            "alpha_resolved": (_first_ok(cell).get("loss") or {}).get("alpha_resolved"),
            "metrics": {},
        }
        for m in report.metrics:
            st = report.stats[(cell.key, m)]
            entry["metrics"][m] = {
                "mean": st.summary.mean,
                "std": st.summary.std,
                "n": st.summary.n,
                "values": {str(s): v for s, v in sorted(st.values.items())},
                "best": st.best,
                "delta_vs_baseline": _delta_json(st.delta),
            }
        cells.append(entry)
    summary = {
        "title": report.title,
        "definitions": DEFINITIONS,
        "metrics": {m: agg.metric_info(m)[0] for m in report.metrics},
        "varying_keys": [agg.short_name(k) for k in report.varying],
        "baseline_selector": report.baseline,
        "settings": report.group_labels,
        "cells": cells,
        "best": [
            {
                "metric": b.metric,
                "setting": report.group_labels[b.group],
                "best": b.best.label,
                "runner_up": b.runner_up.label if b.runner_up else None,
                "inside_noise": b.inside,
                "evidence": b.evidence,
            }
            for b in report.best
        ],
        "notes": notes(report),
        "not_ok_runs": not_ok_rows(report),
        "plots": {name: path.name for name, path in plots.items()},
        "plots_skipped": skipped,
    }
    return json.dumps(summary, indent=2, ensure_ascii=False, default=str) + "\n"


# ----------------------------------------------------------------------------------------------------------
# Terminal
# ----------------------------------------------------------------------------------------------------------


def print_console(report, console: Console) -> None:
    """The comparison (each metric: mean ± std, and Δ [95% CI] below it), then the best cells and the
    failures. One wide table when the terminal has room, else one small table per metric."""
    title = f"{report.title}: final-epoch test metrics, mean ± std over seeds; Δ vs baseline [95% CI]"
    values = {
        (c.key, m): _value_cell(report, c, m, ("[bold]", "[/bold]"))
        for c in report.cells
        for m in report.metrics
    }
    deltas = {(c.key, m): _delta_cell(report, c, m) for c in report.cells for m in report.metrics}
    label_width = max(len(c.label) for c in report.cells)
    column_width = {
        m: max(
            len(agg.metric_info(m)[0]),
            *(len(values[c.key, m]) - 13 * ("[bold]" in values[c.key, m]) for c in report.cells),
            *(len(deltas[c.key, m]) for c in report.cells),
        )
        for m in report.metrics
    }
    if label_width + 8 + sum(w + 3 for w in column_width.values()) <= console.width:
        table = Table(title=title, box=box.SIMPLE_HEAD)
        table.add_column("cell", no_wrap=True)
        table.add_column("n", justify="right")
        for m in report.metrics:
            table.add_column(agg.metric_info(m)[0], justify="right", no_wrap=True)
        for cell in report.cells:
            cells = [
                f"{values[cell.key, m]}\n[dim]{escape(deltas[cell.key, m])}[/dim]" for m in report.metrics
            ]
            table.add_row(escape(cell.label), str(len(cell.runs)), *cells)
        console.print(table)
    else:
        console.print(f"[bold]{escape(title)}[/]")
        for m in report.metrics:
            table = Table(title=agg.metric_info(m)[0], box=box.SIMPLE_HEAD, title_justify="left")
            table.add_column("cell", overflow="fold")
            table.add_column("n", justify="right")
            table.add_column("mean ± std", justify="right", no_wrap=True)
            table.add_column("Δ [95% CI]", justify="right", no_wrap=True)
            for cell in report.cells:
                table.add_row(
                    escape(cell.label), str(len(cell.runs)), values[cell.key, m], escape(deltas[cell.key, m])
                )
            console.print(table)
    n = notes(report)
    console.print(escape(f"baseline `{report.baseline}` → " + "; ".join(n["baseline"])), highlight=False)
    for line in n["pairing"]:
        console.print(escape(f"† {line}"), highlight=False)
    for line in n["best"]:
        console.print(escape(f"best {line}"), highlight=False)
    for row in not_ok_rows(report):
        console.print(
            f"[red]{row['status']}[/]: "
            + escape(f"run {row['run']} ({row['cell']}, seed {row['seed']}): {row['why']}"),
            highlight=False,
        )
