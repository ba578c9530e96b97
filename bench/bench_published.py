"""focalbench against a training script written the way the published ones are, as whole processes.

- baseline: ``python bench/published_train.py --epochs 1`` (the LDAM-DRW ``cifar_train.py`` structure:
  torchvision CIFAR-10-LT, a ``DataLoader`` with per-sample RandomCrop, flip and Normalize, 4 workers,
  batch 128, NCHW fp32 ResNet-32, one epoch plus the test pass; see that file);
- focalbench: ``focalbench run experiment=ldam_recipe epochs=1`` at the default precision (``auto``: what
  ``focalbench.identity.resolve_precision`` picks on this machine), in a fresh results folder: the same
  ResNet-32, data and optimiser, one epoch plus its evaluation and record.

Both read CIFAR-10 from the same folder (``$FOCALBENCH_DATA``, else ``<repo>/../shared/data``; the section
is skipped without it). The commands run interleaved after one untimed round (which fills the file cache);
each figure is the median over the rounds. Target: the published-style script takes at least 2x
focalbench's wall time. The machine's CPU model is in the report header, since the ratio depends on it
(its fp32 speed).

Run alone: ``python bench/bench_published.py [--quick]``.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_sweep import focalbench_command
from bench.common import check, find_cifar_root, interleaved_times, process_runner, section, section_script
from focalbench.identity import resolve_precision

SECTION = "vs a published-style script"
TARGET = 2.0
SCRIPT = Path(__file__).resolve().with_name("published_train.py")


def run(quick: bool = False) -> dict:
    """Median wall time of each whole process over ``rounds`` interleaved rounds; one check."""
    root, found = find_cifar_root()
    if root is None:
        return section(SECTION, reason=found)
    rounds = 1 if quick else 2
    precision = resolve_precision("auto", "cpu")
    published = [sys.executable, str(SCRIPT), "--root", root, "--epochs", "1"]
    ours = [*focalbench_command(), "run", "experiment=ldam_recipe", "epochs=1", "device=cpu"]
    data_env = {"FOCALBENCH_DATA": root}
    commands = {
        "published-style": process_runner(published, True, data_env),
        "focalbench": process_runner(ours, True, data_env),
    }
    try:
        times = interleaved_times(commands, rounds, warmup=0 if quick else 1)
    except RuntimeError as exc:
        return section(SECTION, reason=str(exc))
    base_s, ours_s = (statistics.median(times[k]) for k in commands)
    speedup = base_s / ours_s
    checks = [
        check(
            f"ResNet-32, 1 epoch + test pass, whole process (focalbench at precision={precision})",
            "published-style script",
            base_s,
            "focalbench run experiment=ldam_recipe epochs=1",
            ours_s,
            "s",
            f">= {TARGET:g}x faster",
            speedup >= TARGET,
            ratio=speedup,
        )
    ]
    notes = [
        f"speed-up {speedup:.2f}x (published-style {base_s:.1f} s, focalbench {ours_s:.1f} s; {rounds} "
        f"interleaved round(s), medians; focalbench's precision: {precision}); {found}"
    ]
    details = {"rounds": rounds, "times_s": times, "precision": precision, "data": found}
    return section(SECTION, checks, details, notes)


def main() -> None:
    section_script(__doc__, run, "1 round, no warm-up round")


if __name__ == "__main__":
    main()
