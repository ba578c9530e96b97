"""Fused groups through a launcher: ``focalbench sweep ... --jobs 2`` (two joblib workers, one job per fused
group) against the same command with ``--max-fuse 1`` (every run its own job: the behaviour before launchers
got groups), as whole commands, side by side.

- the default sweep (``gamma=0,1,2,5``, seeds 0,1,2: 12 runs of the synthetic task, ``mlp``): fused, two
  groups of 6 (one per worker), against 12 jobs of one run. Rounds alternate the two commands, so that load
  from other processes falls on both; the figure is the median ratio of wall times.
- a small CIFAR-10-LT ``cnn`` grid on the CPU (``epochs=1``, ``gamma=0,1,2,5``, seed 0): ``--fuse`` (on a CPU
  a cnn is not fused by default, ``focalbench.sweeps.fuse.CPU_FUSED_MODELS``) against ``--max-fuse 1``. Needs
  the CIFAR-10 archives (``$FOCALBENCH_DATA``, see :func:`bench.common.find_cifar_root`); skipped without them.

Both sides run with ``threads=1`` (one torch thread per worker: two workers on two cores) in fresh results
folders; the check's ratio is fused wall / unfused wall (below 1: fused is faster), no target. The CPU model
goes to the details.

Run alone: ``python bench/bench_launchers.py [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_sweep import focalbench_command
from bench.common import check, find_cifar_root, interleaved_times, process_runner, section, section_script
from focalbench.hardware import cpu_model

SECTION = "launchers: fused groups with --jobs 2"
DEFAULT_GRID = ("gamma=0,1,2,5",)  # seeds 0,1,2 by default: 12 runs
QUICK_GRID = ("gamma=0,2", "seed=0,1", "epochs=5")
CNN_GRID = ("data=cifar10_lt", "model=cnn", "epochs=1", "gamma=0,1,2,5", "seed=0", "device=cpu")


def compare(grid: tuple[str, ...], fused_flag: tuple[str, ...], rounds: int, env: dict | None = None) -> dict:
    """Wall times of ``sweep GRID --jobs 2 FUSED_FLAG`` and ``sweep GRID --jobs 2 --max-fuse 1``, interleaved,
    each a whole process in a fresh results folder; the median of the per-round ratios."""
    base = [*focalbench_command(), "sweep", *grid, "threads=1", "--jobs", "2", "--name", "bench"]
    commands = {"fused": [*base, *fused_flag], "unfused": [*base, "--max-fuse", "1"]}
    times = interleaved_times(
        {name: process_runner(cmd, fresh_results=True, env=env) for name, cmd in commands.items()},
        rounds=rounds,
        warmup=0,
    )
    ratios = [f / u for f, u in zip(times["fused"], times["unfused"], strict=True)]
    return {
        "commands": {
            name: "focalbench " + " ".join(cmd[len(focalbench_command()) :]) for name, cmd in commands.items()
        },
        "fused_s": times["fused"],
        "unfused_s": times["unfused"],
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


def run(quick: bool = False, with_cnn: bool = True, grid: tuple[str, ...] | None = None) -> dict:
    """Both comparisons (the cnn one only with CIFAR-10 on disk and ``with_cnn``, not ``quick``); a section
    result with one information check per comparison (ratio = fused wall / unfused wall). ``grid`` replaces
    the default sweep's overrides (tests pass a tiny one)."""
    grid = grid or (QUICK_GRID if quick else DEFAULT_GRID)
    details: dict = {"cpu": cpu_model()}
    checks, notes = [], []
    try:
        default = compare(grid, (), rounds=1 if quick else 2)
    except RuntimeError as exc:
        return section(SECTION, reason=str(exc))
    details["default"] = default
    checks.append(_check(f"sweep {' '.join(grid)} --jobs 2", default))
    notes.append(_note("default sweep", default))
    root, why = find_cifar_root()
    if not with_cnn or quick:
        notes.append("cnn grid: not run (--quick)")
    elif root is None:
        notes.append(f"cnn grid: skipped ({why})")
    else:
        try:
            cnn = compare(CNN_GRID, ("--fuse",), rounds=1, env={"FOCALBENCH_DATA": root})
        except RuntimeError as exc:
            notes.append(f"cnn grid: failed ({exc})")
        else:
            details["cnn"] = cnn
            checks.append(_check("sweep cnn grid (CPU) --jobs 2 --fuse", cnn))
            notes.append(_note("cnn grid", cnn))
    notes.append(f"CPU: {details['cpu']}; a shared machine: other processes load it during both commands")
    return section(SECTION, checks, details, notes)


def _check(name: str, result: dict) -> dict:
    return check(
        name,
        "--max-fuse 1 (each run its own job)",
        statistics.median(result["unfused_s"]),
        "fused groups",
        statistics.median(result["fused_s"]),
        "s",
        "info",
        None,
        ratio=result["ratio"],
    )


def _note(what: str, result: dict) -> str:
    fused = ", ".join(f"{t:.1f}" for t in result["fused_s"])
    unfused = ", ".join(f"{t:.1f}" for t in result["unfused_s"])
    return (
        f"{what}: fused {fused} s against unfused {unfused} s per round: {1 / result['ratio']:.2f}x as fast "
        f"(`{result['commands']['fused']}` against `{result['commands']['unfused']}`)"
    )


def main() -> None:
    section_script(__doc__, run, "a 4-cell sweep of 5 epochs, no cnn grid")


if __name__ == "__main__":
    main()
