"""Sweep overhead: the wall time of ``focalbench sweep`` against the training time of its runs.

The sweep (default: ``gamma=0,1,2,5 seed=0,1,2``, 12 cells of the default synthetic task, as ``make run`` but
with three seeds) runs through the CLI in a subprocess, with ``FOCALBENCH_RESULTS`` pointing at a fresh
temporary folder, so that start-up, imports, planning, every run and the final table are all counted. The
baseline is the sum over its runs of ``metrics.json`` ``timing.train_time_s`` (the training epochs alone);
the sum of ``timing.wall_time_s`` (a run end to end: data, model, training, evaluation, record) is reported too.

- sequential (``--jobs 1``): overhead = wall / sum(train_time_s) - 1. Target: <= 10 %.
- ``--jobs 2``: wall against sum(train_time_s) / 2, the ideal with two workers (reported, no target; each
  worker trains on one thread, so its runs' training times differ from the sequential ones).

When the sequential target is missed, :func:`profile_sweep` runs the same sweep under ``cProfile``
(``python -m cProfile -m focalbench sweep ...``) and splits its time into planning (Hydra composition of every cell),
data generation, training epochs, evaluation, record writing, the final table and the rest (Hydra's
multirun and per-job setup, imports); the top functions by cumulative time go
to ``results/bench_sweep_profile.txt``.

Run alone: ``python bench/bench_sweep.py [--quick]``.
"""

from __future__ import annotations

import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import RESULTS_DIR, check, section, section_script, write_atomic

SECTION = "sweep overhead"
TARGET_OVERHEAD = 0.10
DEFAULT_OVERRIDES = ("gamma=0,1,2,5", "seed=0,1,2")
QUICK_OVERRIDES = ("gamma=0,2", "seed=0,1", "epochs=10")
TINY_OVERRIDES = ("gamma=0,2", "seed=0", "epochs=2", "data.n_max=200", "data.test_per_class=50")

# Where a sweep's time goes: (label, predicate on a cProfile function key (file, line, name)).
# Each entry is a function that is not called from inside another entry, so their cumulative times add up.
PHASES = (
    ("planning (compose + validate every cell)", lambda f, n: f.endswith("sweeps/plan.py") and n == "plan_sweep"),
    ("data generation (load_data)", lambda f, n: f.endswith("focalbench/data/__init__.py") and n == "load_data"),
    ("model build", lambda f, n: f.endswith("focalbench/models/__init__.py") and n == "build_model"),
    ("training + evaluation (train, fused train_group)",
     lambda f, n: f.endswith("training/loop.py") and n == "train" or f.endswith("training/fused.py") and n == "train_group"),
    ("record writing", lambda f, n: f.endswith("training/record.py") and n in ("write_json", "write_csv")),
    ("environment (git commit, versions)", lambda f, n: f.endswith("training/runner.py") and n == "environment"),
    ("final report (tables, plots)", lambda f, n: f.endswith("focalbench/console.py") and n == "finish_sweep_report"),
)  # fmt: skip
EVALUATION = (
    ("evaluation inside train (predict_logits, metrics, temperature)",
     lambda f, n: f.endswith("training/loop.py") and n == "predict_logits"
     or f.endswith("training/metrics.py") and n in ("classification_metrics", "fit_temperature",
                                                    "calibration_metrics", "reliability_bins")),
)  # fmt: skip


def focalbench_command() -> list[str]:
    """The ``focalbench`` console script next to this interpreter, else ``python -m focalbench``."""
    script = Path(sys.executable).with_name("focalbench")
    if script.is_file():
        return [str(script)]
    found = shutil.which("focalbench")
    return [found] if found else [sys.executable, "-m", "focalbench"]


def read_run_timings(results_dir: Path) -> list[dict]:
    """``timing`` of every ``runs/*/metrics.json`` under ``results_dir``."""
    return [json.loads(p.read_text())["timing"] for p in sorted(results_dir.glob("runs/*/metrics.json"))]


def timed_sweep(overrides: tuple[str, ...], jobs: int) -> dict:
    """Run the sweep in a subprocess into a fresh results folder; its wall time and its runs' timings."""
    with tempfile.TemporaryDirectory(prefix="focalbench-bench-sweep-") as tmp:
        env = {**os.environ, "FOCALBENCH_RESULTS": tmp}
        cmd = [*focalbench_command(), "sweep", *overrides, "--jobs", str(jobs), "--name", "bench"]
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        timings = read_run_timings(Path(tmp))
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"`{' '.join(cmd)}` exited with {proc.returncode}: {' | '.join(tail)}")
    return {
        "jobs": jobs,
        "wall_s": wall,
        "runs": len(timings),
        "sum_train_time_s": sum(t["train_time_s"] for t in timings),
        "sum_run_wall_time_s": sum(t["wall_time_s"] for t in timings),
    }


def profile_sweep(overrides: tuple[str, ...], top: int = 30) -> dict:
    """Run the sweep under cProfile (``python -m cProfile -m focalbench sweep ...``, a fresh process, so that
    imports count); time per phase (see ``PHASES``), import time, and a top-N listing by cumulative time."""
    with tempfile.TemporaryDirectory(prefix="focalbench-bench-profile-") as tmp:
        out = Path(tmp) / "sweep.prof"
        env = {**os.environ, "FOCALBENCH_RESULTS": str(Path(tmp) / "results")}
        cmd = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "focalbench", "sweep", *overrides]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"profiling `{' '.join(cmd)}` failed with exit code {proc.returncode}")
        timings = read_run_timings(Path(tmp) / "results")
        stats = pstats.Stats(str(out))
        listing = io.StringIO()
        pstats.Stats(str(out), stream=listing).sort_stats("cumulative").print_stats(top)

    def cumulative(matches) -> float:
        return sum(row[3] for (f, _line, n), row in stats.stats.items() if matches(f, n))

    total = stats.total_tt
    phases = {label: cumulative(matches) for label, matches in PHASES}
    accounted = sum(phases.values())
    phases.update({label: cumulative(matches) for label, matches in EVALUATION})
    phases["training epochs (sum of train_time_s, inside train)"] = sum(t["train_time_s"] for t in timings)
    phases["the rest (interpreter start-up, imports, CLI)"] = total - accounted
    # cProfile counts a recursive function's cumulative time once, at its outermost call.
    phases["all imports (overlaps the phases above)"] = cumulative(
        lambda f, n: n == "_find_and_load" and "importlib._bootstrap" in f
    )
    return {"total_s": total, "phases_s": phases, "listing": listing.getvalue()}


def run(quick: bool = False, overrides: tuple[str, ...] | None = None, profile: bool = True) -> dict:
    """Sequential and ``--jobs 2`` sweeps through the CLI; their overhead over their runs' training time.

    Args:
        quick: a 4-cell sweep of 10 epochs instead of the 12-cell default.
        overrides: the sweep's overrides (tests pass a tiny one).
        profile: profile the sweep in process when the sequential target is missed.

    Returns a section result: the sequential check (ratio = wall / sum(train_time_s), target <= 1.10) and the
    ``--jobs 2`` figure (ratio = wall / (sum(train_time_s) / 2), for information).
    """
    overrides = overrides or (QUICK_OVERRIDES if quick else DEFAULT_OVERRIDES)
    try:
        sequential = timed_sweep(overrides, jobs=1)
        parallel = timed_sweep(overrides, jobs=2)
    except RuntimeError as exc:
        return section(SECTION, reason=str(exc))
    label = "focalbench sweep " + " ".join(overrides)
    seq_ratio = sequential["wall_s"] / sequential["sum_train_time_s"]
    checks = [
        check(
            f"sweep wall, {sequential['runs']} runs, sequential",
            "sum of runs' train_time_s",
            sequential["sum_train_time_s"],
            "sweep wall (subprocess)",
            sequential["wall_s"],
            "s",
            f"<= {1 + TARGET_OVERHEAD:.2f}x",
            seq_ratio <= 1 + TARGET_OVERHEAD,
        ),
        check(
            f"sweep wall, {parallel['runs']} runs, --jobs 2",
            "sum of runs' train_time_s / 2",
            parallel["sum_train_time_s"] / 2,
            "sweep wall (subprocess)",
            parallel["wall_s"],
            "s",
            "info",
            None,
        ),
    ]
    details = {"command": label, "sequential": sequential, "jobs_2": parallel}
    notes = [
        f"sequential: wall {sequential['wall_s']:.1f} s = {seq_ratio - 1:+.0%} over sum(train_time_s) "
        f"{sequential['sum_train_time_s']:.1f} s, {sequential['wall_s'] / sequential['sum_run_wall_time_s'] - 1:+.0%} "
        f"over sum(wall_time_s) {sequential['sum_run_wall_time_s']:.1f} s"
    ]
    if profile and seq_ratio > 1 + TARGET_OVERHEAD:
        prof = profile_sweep(overrides)
        path = RESULTS_DIR / "bench_sweep_profile.txt"
        phases = "\n".join(f"{v:8.2f} s  {k}" for k, v in prof["phases_s"].items())
        write_atomic(
            path,
            f"cProfile of `{label}` (python -m cProfile -m focalbench), {prof['total_s']:.2f} s in all\n\n"
            f"Time by phase (cumulative; cProfile slows Python-heavy code more than torch kernels):\n{phases}\n\n"
            f"{prof['listing']}",
        )
        details["profile"] = {"total_s": prof["total_s"], "phases_s": prof["phases_s"], "file": str(path)}
        ranked = sorted(
            ((k, v) for k, v in prof["phases_s"].items() if not k.startswith("training + evaluation")),
            key=lambda kv: kv[1],
            reverse=True,
        )
        notes.append(
            "profile (cProfile): "
            + "; ".join(f"{k} {v:.1f} s ({v / prof['total_s']:.0%})" for k, v in ranked[:5])
        )
    return section(SECTION, checks, details, notes)


def main() -> None:
    section_script(__doc__, run, "a 4-cell sweep of 10 epochs")


if __name__ == "__main__":
    main()
