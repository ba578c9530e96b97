"""Start-up and whole commands: a default ``focalbench run`` against ``python -c "import torch"``, and the
default sweep against one run, each command in a fresh subprocess with a fresh results folder.

The three commands run in turn (interleaved, so that load from other processes falls on all alike), after
one untimed round (which fills the OS file cache); each figure is the median over the rounds.

- ``focalbench run`` (the synthetic default: 30 epochs of the mlp, evaluation, the record, the summary
  table) against ``python -c "import torch"``. Target: <= 1.5x.
- ``focalbench sweep gamma=0,1,2,5`` (12 runs: planning, training, records, the report with its tables and
  plots) against one ``focalbench run``. Target: <= 1.5x.

Run alone: ``python bench/bench_startup.py [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_sweep import focalbench_command
from bench.common import check, interleaved_times, process_runner, section, section_script

SECTION = "start-up"
TARGET_RUN = 1.5
TARGET_SWEEP = 1.5
SWEEP = ("gamma=0,1,2,5",)


def run(
    quick: bool = False,
    sweep: tuple[str, ...] = SWEEP,
    run_args: tuple[str, ...] = (),
    rounds: int | None = None,
    warmup: int = 1,
) -> dict:
    """Median wall times of the three commands over ``rounds`` interleaved rounds (2 quick, else 4) after
    ``warmup`` untimed ones; two checks."""
    rounds = rounds or (2 if quick else 4)
    fb = focalbench_command()
    commands = {
        "import torch": process_runner([sys.executable, "-c", "import torch"], fresh_results=False),
        "focalbench run": process_runner([*fb, "run", *run_args], fresh_results=True),
        "focalbench sweep": process_runner([*fb, "sweep", *sweep], fresh_results=True),
    }
    try:
        times = interleaved_times(commands, rounds, warmup)
    except RuntimeError as exc:
        return section(SECTION, reason=str(exc))
    torch_s, run_s, sweep_s = (statistics.median(times[k]) for k in commands)
    run_ratios = [r / t for r, t in zip(times["focalbench run"], times["import torch"], strict=True)]
    sweep_ratios = [s / r for s, r in zip(times["focalbench sweep"], times["focalbench run"], strict=True)]
    checks = [
        check(
            "`focalbench run` (default) wall time",
            'python -c "import torch"',
            torch_s,
            "focalbench run",
            run_s,
            "s",
            f"<= {TARGET_RUN:g}x",
            run_s / torch_s <= TARGET_RUN,
        ),
        check(
            f"`focalbench sweep {' '.join(sweep)}` wall time",
            "focalbench run",
            run_s,
            "focalbench sweep",
            sweep_s,
            "s",
            f"<= {TARGET_SWEEP:g}x",
            sweep_s / run_s <= TARGET_SWEEP,
        ),
    ]
    notes = [
        f"run / import torch: {run_s / torch_s:.2f}x (per round {min(run_ratios):.2f}-{max(run_ratios):.2f}x); "
        f"sweep / run: {sweep_s / run_s:.2f}x (per round {min(sweep_ratios):.2f}-{max(sweep_ratios):.2f}x); "
        f"{rounds} interleaved rounds, medians",
    ]
    details = {"rounds": rounds, "times_s": times, "sweep": list(sweep), "run_args": list(run_args)}
    return section(SECTION, checks, details, notes)


def main() -> None:
    section_script(__doc__, run, "2 rounds instead of 4")


if __name__ == "__main__":
    main()
