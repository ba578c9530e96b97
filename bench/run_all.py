"""Run every benchmark section, print one table, and write ``results/bench.md`` and ``results/bench.json``.

Sections (each a module in ``bench/`` with ``run(quick=False) -> dict``, see ``bench/common.py``):

1. data pipeline (``bench_data``): focalbench's on-device batches against a torchvision DataLoader.
2. training throughput (``bench_train.run``): one epoch of cnn on CIFAR-10-LT rho=100, target >= 3x.
3. model FLOP utilisation (``bench_train.run_mfu``): target >= 40 % of the measured peak.
4. loss cost (``bench_loss``): focal_loss against F.cross_entropy, target <= 2x time and memory.
5. sweep overhead (``bench_sweep``): 12-cell sweep wall against its runs' training time, target <= 10 %.
6. CLI start-up (``bench_cli``): ``focalbench --help`` against ``python -c pass``, target < 0.5 s extra.
7. fused groups (``bench_fused``): 12 mlp runs as one fused group against one by one, target >= 6x; 8 cnn
   and 8 resnet32 runs on CIFAR-10-LT (information).
8. start-up (``bench_startup``): ``focalbench run`` against ``python -c "import torch"``, target <= 1.5x;
   ``focalbench sweep gamma=0,1,2,5`` against ``focalbench run``, target <= 1.5x.
9. against a published-style script (``bench_published``): one ResNet-32 epoch plus the test pass as
   LDAM-DRW's ``cifar_train.py`` does it (torchvision DataLoader, per-sample transforms, fp32) against
   ``focalbench run experiment=ldam_recipe epochs=1``, whole processes, target >= 2x.
10. launchers (``bench_launchers``): ``focalbench sweep gamma=0,1,2,5 --jobs 2`` with fused groups against
    ``--max-fuse 1`` (every run its own job), and a small CIFAR-10-LT cnn grid the same way (information).

Every figure is a ratio against a baseline measured side by side in this run. Sections that need CIFAR-10
(``$FOCALBENCH_DATA``, else ``<repo>/../shared/data``) are skipped, with the reason, when it is missing; a
section that fails is reported as an error and the others still run. Both output files are written
atomically. ``--quick`` shrinks every section (about a minute in all).

Usage: ``python bench/run_all.py [--quick] [--only train,loss,...] [--merge]``. ``--merge`` reruns the
``--only`` sections into the existing report, keeping the others (same CPU model only; the rerun's date and
load are written beside them), for a section fixed or retimed after a full run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from bench import (
    bench_cli,
    bench_data,
    bench_fused,
    bench_launchers,
    bench_loss,
    bench_published,
    bench_startup,
    bench_sweep,
    bench_train,
)
from bench.common import (
    HEADERS,
    RESULTS_DIR,
    check,
    find_cifar_root,
    markdown_table,
    print_sections,
    section,
    table_rows,
    write_atomic,
)
from focalbench.hardware import cpu_model

SECTIONS = ("data", "train", "mfu", "loss", "sweep", "cli", "fused", "startup", "published", "launchers")


def data_section(quick: bool) -> dict:
    """``bench_data.run`` as a section result (reported for information: the issue sets no target)."""
    result = bench_data.run(quick=quick)
    checks = [
        check(
            "data pipeline images/s (batches on device)",
            "torchvision DataLoader + per-sample transforms",
            result["torchvision_images_per_s"],
            "iter_train_batches",
            result["focalbench_images_per_s"],
            "img/s",
            "info",
            None,
            ratio=result["speedup"],
        )
    ]
    return section("data pipeline", checks, details=result)


def run_sections(quick: bool, only: tuple[str, ...]) -> list[dict]:
    """Run the chosen sections in order; a section that raises becomes an "error" result."""
    results: list[dict] = []
    cache: dict = {}

    def cifar():
        if "cifar" not in cache:
            root, _ = find_cifar_root()
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            cache["cifar"] = None if root is None else bench_train.load_cifar_lt(root, device)
        return cache["cifar"]

    runners = {
        "data": lambda: data_section(quick),
        "train": lambda: bench_train.run(quick=quick, data=cifar()),
        "mfu": lambda: bench_train.run_mfu(cache["train"], quick=quick, data=cifar()),
        "loss": lambda: bench_loss.run(quick=quick),
        "sweep": lambda: bench_sweep.run(quick=quick),
        "cli": lambda: bench_cli.run(quick=quick),
        "fused": lambda: bench_fused.run(
            quick=quick, cifar=cifar(), device="cuda" if torch.cuda.is_available() else "cpu"
        ),
        "startup": lambda: bench_startup.run(quick=quick),
        "published": lambda: bench_published.run(quick=quick),
        "launchers": lambda: bench_launchers.run(quick=quick),
    }
    names = {"mfu": bench_train.MFU_SECTION, "train": bench_train.SECTION, "fused": bench_fused.SECTION}
    for key in SECTIONS:
        if key not in only:
            continue
        if key == "train" and cifar() is None:
            result = section(bench_train.SECTION, reason=find_cifar_root()[1])
        elif key == "mfu" and "train" not in cache:
            result = section(bench_train.MFU_SECTION, reason="needs the train section (--only ...,train)")
        else:
            start = time.perf_counter()
            print(f"[bench] {key} ...", file=sys.stderr, flush=True)
            try:
                result = runners[key]()
            except Exception as exc:  # one broken section must not hide the others' figures
                result = section(names.get(key, key), reason=f"{type(exc).__name__}: {exc}")
                result["status"] = "error"
                result["traceback"] = traceback.format_exc()
            result["seconds"] = round(time.perf_counter() - start, 1)
        result["key"] = key
        cache[key] = result
        results.append(result)
    return results


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (rounded), where the OS reports them."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def environment(started: float, load_start: list[float] | None) -> dict:
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "cpu_model": cpu_model(),
        "cpu_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_start": load_start,
        "load_average_end": load_average(),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def merge_into(stored: dict, results: list[dict], env: dict) -> dict:
    """``stored`` (a bench.json) with ``results``' sections in place of its own of the same key, the others
    kept, in SECTIONS order; the rerun's environment is added to ``stored["reruns"]``. Raises ValueError
    where the two cannot be one report: another CPU model, or a stored report without section keys."""
    if stored["environment"]["cpu_model"] != env["cpu_model"]:
        raise ValueError(
            f"results/bench.json is from {stored['environment']['cpu_model']}, this CPU is {env['cpu_model']}: "
            "run every section (no --merge)"
        )
    if any("key" not in r for r in stored["sections"]):
        raise ValueError("results/bench.json predates section keys: run every section (no --merge)")
    rerun = {r["key"]: r for r in results}
    by_key = {r["key"]: r for r in stored["sections"]} | rerun
    sections = [by_key[k] for k in SECTIONS if k in by_key]
    reruns = [*stored.get("reruns", []), {"sections": list(rerun), **env}]
    return {**stored, "sections": sections, "reruns": reruns}


def markdown_report(results: list[dict], env: dict, quick: bool, reruns: list[dict] = ()) -> str:
    """results/bench.md: the table, the notes and the environment (regenerated on every run)."""
    lines = [
        "# focalbench benchmarks",
        "",
        f"Generated by `python bench/run_all.py{' --quick' if quick else ''}` on {env['date']} "
        f"({env['device']}: {env['cpu_model']}, {env['cpu_cores']} cores, torch {env['torch']}, {env['total_seconds']} s in all; "
        f"load average {env['load_average_start']} at start, {env['load_average_end']} at end: the machine "
        "may be shared, which is why every figure is a ratio against a baseline measured in the same run).",
        *(
            f"Rerun with `--only {','.join(r['sections'])} --merge` on {r['date']} (load average "
            f"{r['load_average_start']} at start, {r['load_average_end']} at end): those sections' figures "
            "are from that run, each still a ratio within it."
            for r in reruns
        ),
        "",
        markdown_table(HEADERS, table_rows(results)),
        "",
        "## Notes",
        "",
    ]
    for r in results:
        lines += [f"- **{r['section']}**: {note}" for note in r["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small versions of every section (~1 minute)")
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections, from: {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace only the --only sections in results/bench.json (same CPU model), keeping the others",
    )
    args = parser.parse_args(argv)
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"--only: unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    stored = None
    if args.merge:
        try:
            stored = json.loads((RESULTS_DIR / "bench.json").read_text())
        except (OSError, ValueError) as exc:
            parser.error(f"--merge: no results/bench.json to merge into ({exc})")
        if stored.get("quick") != args.quick:
            parser.error("--merge: results/bench.json was written with" + ("" if stored.get("quick") else "out")
                         + " --quick; merge only the same kind of run")  # fmt: skip
        if stored["environment"]["cpu_model"] != cpu_model():  # say so before the sections run, not after
            parser.error(f"--merge: results/bench.json is from {stored['environment']['cpu_model']}, this CPU is "
                         f"{cpu_model()}: run every section (no --merge)")  # fmt: skip
    started, load_start = time.perf_counter(), load_average()
    results = run_sections(args.quick, only)
    env = environment(started, load_start)
    print_sections(results)
    report = {"environment": env, "quick": args.quick, "sections": results}
    if stored is not None:
        try:
            report = merge_into(stored, results, env)
        except ValueError as exc:
            print(f"--merge: {exc}; nothing written", file=sys.stderr)
            return 2
    write_atomic(RESULTS_DIR / "bench.json", json.dumps(report, indent=2, default=str) + "\n")
    write_atomic(
        RESULTS_DIR / "bench.md",
        markdown_report(report["sections"], report["environment"], args.quick, report.get("reruns", [])),
    )
    print(f"wrote {RESULTS_DIR / 'bench.md'} and {RESULTS_DIR / 'bench.json'} ({env['total_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
