"""Import in a background thread what a command needs only at its end, while it trains.

``focalbench sweep`` ends with its report, whose modules import pandas, scipy and matplotlib (about 1.5 s on
a 2-core CPU). Training spends most of its time in torch kernels, which release the GIL, so these imports can
run meanwhile on another core instead of after the last run, when a core is idle. A failed import is ignored
here: the report's own import raises it again, in the main thread, where it is reported.
"""

from __future__ import annotations

import importlib
import os
import threading

REPORT_MODULES = (
    "focalbench.reports.report",
    "focalbench.reports.tables",
    "focalbench.reports.plots",
    "focalbench.reports.loss_curves",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)


def spare_core() -> bool:
    """Whether a core is idle: the 1-minute load average plus this process leaves one. On a busy machine the
    imports would only take time from the training (measured: a loaded 2-core machine gained nothing)."""
    if not hasattr(os, "getloadavg"):
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return os.getloadavg()[0] + 1.0 <= cores - 0.5


def preload(modules: tuple[str, ...] = REPORT_MODULES, force: bool = False) -> threading.Thread | None:
    """Start importing ``modules`` in a daemon thread when a core is spare (or ``force``); return the thread."""
    if not (force or spare_core()):
        return None

    def work() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 (the main thread's import reports it)
                continue

    thread = threading.Thread(target=work, name="focalbench-preload", daemon=True)
    thread.start()
    return thread
