"""``report.html``: the report on one self-contained page, rendered from the report model with Jinja2.

One file: inline CSS, every figure embedded as a base64 PNG, no script and no network request (the only links
are relative ones to the run records). It holds, in order: the answer (:mod:`.answer`), the Δ plot, the
comparison tables, a suite's verdicts, the other figures, the notes, and the provenance (data and whether its
files are the official archives, device, CPU, precision, versions, git commits, and every run id linked to
its record). Like every other output it is a rendering of the :class:`~.model.Report` and computes nothing;
the template is ``templates/report.html.j2``.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from focalbench.reports import render
from focalbench.reports.model import Report

TEMPLATE = "report.html.j2"
CAPTIONS = {
    "delta": "Paired Δ against the baseline, 95% CI over seeds, per metric of the answer (green: better beyond "
    "the noise, red: worse, grey: no difference detected; the shaded band is the equivalence margin).",
    "metric_vs_gamma": "Balanced accuracy against γ, mean ± std over seeds; dashed: losses without γ, at their mean.",
    "per_class_recall": "Per-class test recall of the baseline and the best cell, classes by training count.",
    "reliability": "Reliability diagrams: accuracy against confidence (15 bins, pooled over seeds), with ECE.",
    "loss_vs_pt": "The loss against p_t for the γ values of the report (the focal loss paper's Figure 1).",
    "class_mechanism": "Per class: the training examples' mean p_t and the class's share of the training loss.",
    "learning_curves": "Validation balanced accuracy and NLL against the epoch, per cell (mean, range over seeds).",
}
BOLD = ("BOLDSTART", "BOLDEND")


def _environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    folder = Path(__file__).with_name("templates")
    return Environment(loader=FileSystemLoader(folder), autoescape=select_autoescape(["html", "j2"]))


def _cells(frame) -> dict:
    """A frame as {columns, rows}, each table cell {text, bold} (bold: the best cell of its setting)."""
    rows = []
    for row in frame.itertuples(index=False):
        cells = []
        for x in map(str, row):
            bold = x.startswith(BOLD[0])
            cells.append({"text": x.replace(BOLD[0], "").replace(BOLD[1], ""), "bold": bold})
        rows.append(cells)
    return {"columns": list(map(str, frame.columns)), "rows": rows}


def _figures(report: Report, out_dir: Path) -> dict:
    """{plot: {src (a data: URI), caption}} of the plots drawn into ``out_dir``, in the report's order."""
    figures = {}
    for name, filename in report.plots.items():
        path = Path(out_dir) / filename
        if path.is_file():
            data = base64.b64encode(path.read_bytes()).decode("ascii")
            figures[name] = {"src": f"data:image/png;base64,{data}", "caption": CAPTIONS.get(name, name)}
    return figures


def _verdicts(report: Report) -> dict | None:
    if report.claims is None:
        return None
    columns = render.verdict_columns(report.claims)
    # a verdict cell's class: by its whole text ("not run yet"), else by its first word ("pass (p_adj …)")
    css = {"pass": "pass", "FAIL": "fail", "INCONCLUSIVE": "inconclusive", "not run yet": "inconclusive"}
    rows = []
    for row in render.verdict_rows(report.claims):
        cells = []
        for column in columns:
            text = str(row.get(column, "") or "")
            cells.append({"text": text, "css": css.get(text, css.get(text.split(" ", 1)[0], ""))})
        rows.append(cells)
    rules = render.RULES + (" " + render.HOLM_RULE if report.claims.multiplicity == "holm" else "")
    return {"overall": render.overall_line(report.claims), "rules": rules, "columns": columns, "rows": rows}


def _provenance(report: Report) -> list[str]:
    """Data, device, CPU, precision, versions and commits of the runs, each distinct line once."""
    envs = [(r.metrics or {}).get("environment") or {} for c in report.cells for r in c.runs]
    lines = list(report.notes.get("data", [])) + list(report.notes.get("setup", []))
    lines += sorted({f"CPU: {e['cpu']}" for e in envs if e.get("cpu")})
    commits = sorted({e["git_commit"][:12] for e in envs if e.get("git_commit")})
    if commits:
        lines.append(f"git commit{'s' if len(commits) > 1 else ''} of the runs: {', '.join(commits)}")
    return lines


def _records(report: Report, out_dir: Path) -> list[dict]:
    """Every run of the report, linked to its metrics.json by a path relative to the page."""
    rows = []
    for cell in report.cells:
        for run in cell.runs:
            target = Path(run.run_dir) / "metrics.json"
            href = Path(os.path.relpath(target, Path(out_dir).resolve())).as_posix()
            rows.append({"cell": cell.label, "seed": run.seed, "run_id": run.run_id, "status": "ok",
                         "href": href, "href_text": "metrics.json"})  # fmt: skip
    for r in report.not_ok_runs:
        rows.append({"cell": r["cell"], "seed": r["seed"], "run_id": r["run"], "status": r["status"],
                     "href": "", "href_text": r["why"]})  # fmt: skip
    return rows


def _notes(report: Report) -> dict[str, list[str]]:
    baseline = [f"selector {report.baseline_selector}: " + "; ".join(report.notes["baseline"])]
    sections = {"Baseline": baseline} | render.note_sections(report)
    return {title: lines for title, lines in sections.items() if lines}


def render_html(report: Report, out_dir: Path) -> str:
    """The page's HTML, with the figures already drawn into ``out_dir`` embedded."""
    recommendations = {s.recommendation for s in (report.answer.settings if report.answer else [])}
    answer_lines = [
        {"text": line, "recommendation": line.split("] ", 1)[-1] in recommendations}
        for line in (report.answer.lines if report.answer else [])
    ]
    not_ok, runs = len(report.not_ok_runs), sum(len(c.seeds) for c in report.cells)
    defs = report.definitions
    context = {
        "report": report,
        "summary_line": f"{len(report.cells)} cells from {runs + not_ok} runs ({runs} ok, {not_ok} not ok); "
        f"baseline: {report.baseline_selector}.",
        "answer_lines": answer_lines,
        "definitions": f"Values: {defs['values']}. Each cell: {defs['cell']}. Δ: {defs['delta']}. "
        f"Units: {defs['units']}.",
        "values": _cells(render.value_frame(report, bold=BOLD)),
        "deltas": _cells(render.delta_frame(report)),
        "undefined": render.undefined_line(report),
        "chance": render.chance_lines(report),
        "verdicts": _verdicts(report),
        "figures": _figures(report, out_dir),
        "skipped": report.plots_skipped,
        "notes": _notes(report),
        "provenance": _provenance(report),
        "records": _records(report, out_dir),
    }
    return _environment().get_template(TEMPLATE).render(**context)
