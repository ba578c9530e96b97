"""Helpers shared by the benchmark sections: where things are, how to time them, how results look.

Every section's ``run(quick=False) -> dict`` returns a *section result*::

    {
        "section": str,            # e.g. "training throughput"
        "status": "ok" | "skipped",
        "reason": str | None,      # why a section was skipped (e.g. no CIFAR-10 copy found)
        "checks": [check, ...],    # one per target, see :func:`check`
        "details": {...},          # every other measured figure, JSON-serialisable
        "notes": [str, ...],       # findings in words (what bounds a figure, proposals)
    }

A *check* compares a candidate against a baseline measured side by side in the same process (never an
absolute time against a constant): ``ratio = candidate / baseline``, and the target is a bound on that
ratio, or, for start-up time, on the difference.
"""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from focalbench.training.record import write_atomic  # noqa: F401  (one atomic-write helper, re-exported)

REPO_ROOT = Path(__file__).resolve().parents[1]
# Where the report and profiles go: results/, or $FOCALBENCH_BENCH_OUT (bench/gpu.sh writes to its own folder).
RESULTS_DIR = Path(os.environ.get("FOCALBENCH_BENCH_OUT") or REPO_ROOT / "results")


def find_cifar_root() -> tuple[str | None, str]:
    """The CIFAR-10 folder to use and how it was found: ``$FOCALBENCH_DATA``, else ``<repo>/../shared/data``.

    Returns ``(root, description)``; ``root`` is None (and the description says why) when neither holds
    ``cifar-10-batches-py``.
    """
    candidates = []
    if os.environ.get("FOCALBENCH_DATA"):
        candidates.append(("$FOCALBENCH_DATA", Path(os.environ["FOCALBENCH_DATA"])))
    candidates.append(("../shared/data", REPO_ROOT.parent / "shared" / "data"))
    for label, path in candidates:
        if (path / "cifar-10-batches-py").is_dir():
            return str(path), f"CIFAR-10 from {path} ({label})"
    looked = ", ".join(str(p) for _, p in candidates)
    return None, f"no CIFAR-10 copy (cifar-10-batches-py) in {looked}; set FOCALBENCH_DATA"


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time in seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``torch.set_num_threads(n)``, restoring the previous count afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def process_runner(cmd: list[str], fresh_results: bool, env: dict | None = None) -> Callable[[], None]:
    """A function that runs ``cmd`` as a whole process in a fresh temporary folder (its working directory,
    and with ``fresh_results`` its ``FOCALBENCH_RESULTS``), with ``env`` added to the environment, and raises
    RuntimeError with the output's last lines when it exits non-zero. For timing whole commands."""
    import subprocess
    import tempfile

    def run_once() -> None:
        full_env = {**os.environ, **(env or {})}
        with tempfile.TemporaryDirectory(prefix="focalbench-bench-") as tmp:
            if fresh_results:
                full_env["FOCALBENCH_RESULTS"] = tmp
            proc = subprocess.run(cmd, env=full_env, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode}: {' | '.join(tail)}")

    return run_once


def interleaved_times(
    fns: dict[str, Callable[[], object]], rounds: int, warmup: int = 1
) -> dict[str, list[float]]:
    """Wall times in seconds of each ``fns[name]()``, ``rounds`` of them, calling the functions in turn.

    Interleaving spreads the load of other processes on a shared machine over all candidates alike, so
    the ratios between them stay meaningful when absolute times drift.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def check(
    name: str,
    baseline_label: str,
    baseline: float,
    candidate_label: str,
    candidate: float,
    unit: str,
    target: str,
    met: bool | None,
    ratio: float | None = None,
) -> dict:
    """One target: both figures, their ratio (candidate / baseline unless given), the target and the verdict.

    ``met`` None marks a figure reported for information, with no target of its own.
    """
    if ratio is None:
        ratio = candidate / baseline if baseline else math.nan
    return {
        "name": name,
        "baseline_label": baseline_label,
        "baseline": float(baseline),
        "candidate_label": candidate_label,
        "candidate": float(candidate),
        "unit": unit,
        "ratio": float(ratio),
        "target": target,
        "met": None if met is None else bool(met),
    }


def section(
    name: str,
    checks: list[dict] | None = None,
    details: dict | None = None,
    notes: list[str] | None = None,
    reason: str | None = None,
) -> dict:
    """A section result (see the module docstring); ``reason`` set means the section was skipped."""
    return {
        "section": name,
        "status": "skipped" if reason else "ok",
        "reason": reason,
        "checks": checks or [],
        "details": details or {},
        "notes": notes or [],
    }


def fmt(value: float, unit: str = "") -> str:
    """A figure for a table: thousands separators for large values, 3 significant digits otherwise."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    if abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}"
    return f"{text} {unit}".strip()


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def section_script(doc: str, run, quick_help: str) -> None:
    """The ``__main__`` of a one-section benchmark module: parse ``--quick``, run, print the table."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    print_sections([run(quick=parser.parse_args().quick)])


HEADERS = ["section", "figure", "baseline", "focalbench", "ratio", "target", "met"]


def table_rows(results: list[dict]) -> list[list[str]]:
    """One row per check (figures with units, ratio, target, verdict); one row per skipped section."""
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["section"], f"{r['status']}: {r['reason']}", "", "", "", "", ""])
            continue
        for c in r["checks"]:
            verdict = "info" if c["met"] is None else ("yes" if c["met"] else "NO")
            ratio = f"{c['ratio']:.3g}x" if math.isfinite(c["ratio"]) else "n/a"
            rows.append(
                [
                    r["section"],
                    c["name"],
                    f"{fmt(c['baseline'], c['unit'])} ({c['baseline_label']})",
                    f"{fmt(c['candidate'], c['unit'])} ({c['candidate_label']})",
                    ratio,
                    c["target"],
                    verdict,
                ]
            )
    return rows


def print_sections(results: list[dict]) -> None:
    """Print the results table and every section's notes to stdout."""
    rows = table_rows(results)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(HEADERS)]
    line = "  ".join(h.ljust(w) for h, w in zip(HEADERS, widths, strict=True))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    for r in results:
        for note in r["notes"]:
            print(f"- {r['section']}: {note}")
