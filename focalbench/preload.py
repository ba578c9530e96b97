"""Import in a background thread what a command needs only at its end, while it trains.

``focalbench sweep`` ends with its report, whose modules import pandas, scipy and matplotlib (about 1.5 s on
a 2-core CPU). Training spends most of its time in torch kernels, which release the GIL, so these imports can
run meanwhile on another core instead of after the last run. A failed import is ignored here: the report's
own import raises it again, in the main thread, where it is reported.
"""

from __future__ import annotations

import importlib
import threading

REPORT_MODULES = (
    "focalbench.reports.report",
    "focalbench.reports.tables",
    "focalbench.reports.plots",
    "focalbench.reports.loss_curves",
    "matplotlib.figure",
    "matplotlib.backends.backend_agg",
)


def preload(modules: tuple[str, ...] = REPORT_MODULES) -> threading.Thread:
    """Start importing ``modules`` in a daemon thread; return the thread."""

    def work() -> None:
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: S112 (the main thread's import reports it)
                continue

    thread = threading.Thread(target=work, name="focalbench-preload", daemon=True)
    thread.start()
    return thread
