"""CLI start-up: ``focalbench --help`` against ``python -c pass``, each in a fresh subprocess.

Both commands run alternately (interleaved, so that load from other processes hits them alike), ``repeats``
times each after one untimed warm-up of each (which fills the OS file cache); the figure is the median. The
start-up cost focalbench adds is the difference of the medians. Target: under 0.5 s.

Run alone: ``python bench/bench_cli.py [--quick]``.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_sweep import focalbench_command
from bench.common import check, interleaved_times, section, section_script

SECTION = "CLI start-up"
TARGET_EXTRA_S = 0.5


def _runner(cmd: list[str]):
    def run_once() -> None:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    return run_once


def run(quick: bool = False) -> dict:
    """Median start-up of ``focalbench --help`` and of ``python -c pass``.

    Returns a section result with one check: baseline = python's median, candidate = focalbench's median
    (seconds), ratio = their quotient; the target is on the difference (< 0.5 s).
    """
    repeats = 3 if quick else 7
    help_cmd = [*focalbench_command(), "--help"]
    times = interleaved_times(
        {"python": _runner([sys.executable, "-c", "pass"]), "focalbench": _runner(help_cmd)}, repeats
    )
    python_s, focalbench_s = (statistics.median(times[k]) for k in ("python", "focalbench"))
    extra = focalbench_s - python_s
    checks = [
        check(
            "`focalbench --help` start-up",
            "python -c pass",
            python_s,
            "focalbench --help",
            focalbench_s,
            "s",
            f"extra < {TARGET_EXTRA_S:g} s",
            extra < TARGET_EXTRA_S,
        )
    ]
    details = {
        "command": " ".join(help_cmd),
        "repeats": repeats,
        "python_s": python_s,
        "focalbench_s": focalbench_s,
        "extra_s": extra,
        "all_times_s": times,
    }
    notes = [f"focalbench adds {extra:.3f} s to a bare interpreter start ({repeats} runs each, medians)"]
    return section(SECTION, checks, details, notes)


def main() -> None:
    section_script(__doc__, run, "3 runs each instead of 7")


if __name__ == "__main__":
    main()
