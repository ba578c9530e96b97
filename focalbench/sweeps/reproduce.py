"""``focalbench reproduce <suite>``: run a suite's grid(s) into one sweep folder, report it, check its claims.

The steps, each a function a Python user can call too:

1. :func:`plan_suite`: one :class:`~focalbench.sweeps.plan.SweepPlan` per grid of the suite, each planned as
   ``focalbench sweep experiment=<suite> <grid...> <overrides...>`` (user overrides last, so they win) and
   all named after the suite, so they share ``results/sweeps/<suite>/``. Every cell is validated before
   anything runs.
2. :func:`run_suite`: run the plans (resuming what is done) and write one ``sweep.json`` listing every run
   of every grid, in grid order.
3. :func:`reproduce`: the report (tables and plots) and the verdicts (``verdicts.md``, ``verdicts.json``) in
   that sweep folder, printed too; returns the exit code: 0 when every run finished and every claim holds,
   1 otherwise.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.markup import escape

from focalbench.reports.claims import Suite, check_claims, failed, load_suite, render_verdicts, write_verdicts

EXIT_OK = 0
EXIT_FAILED = 1


def plan_suite(suite: Suite, overrides: list[str] | tuple[str, ...] = (), name: str | None = None) -> list:
    from focalbench.sweeps.plan import plan_sweep

    return [
        plan_sweep([f"experiment={suite.name}", *grid, *overrides], name=name or suite.name)
        for grid in suite.grids
    ]


def run_suite(
    suite: Suite,
    overrides: list[str] | tuple[str, ...] = (),
    name: str | None = None,
    launcher: str = "inprocess",
    jobs: int = 1,
    show_progress: bool = True,
):
    """Run every grid of ``suite``; return the merged (SweepPlan, SweepOutcome) after writing sweep.json."""
    from focalbench.sweeps.launch import SweepOutcome, run_sweep, write_sweep_list
    from focalbench.sweeps.plan import SweepPlan

    plans = plan_suite(suite, overrides, name)
    statuses: dict[str, str] = {}
    wall = 0.0
    for plan in plans:
        outcome = run_sweep(plan, launcher, jobs, show_progress=show_progress)
        statuses.update(outcome.statuses)
        wall += outcome.wall_time_s
    seen: set[str] = set()
    cells = [c for p in plans for c in p.cells if not (c.run_id in seen or seen.add(c.run_id))]
    merged = SweepPlan(plans[0].name, [f"experiment={suite.name}", *overrides], cells, plans[0].results_dir)
    outcome = SweepOutcome(statuses, wall)
    write_sweep_list(merged, outcome)
    return merged, outcome


def reproduce(
    name: str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    sweep_name: str | None = None,
    launcher: str = "inprocess",
    jobs: int = 1,
    console: Console | None = None,
    show_progress: bool = True,
) -> int:
    """Run suite ``name``, write and print its report and verdicts; return 0 if all runs and claims are ok.

    ``overrides`` are extra Hydra overrides applied to every run (e.g. ``results_dir=/tmp/r``, ``device=cuda``
    or the ``hydra.searchpath`` of ``--config-dir``). Raises ConfigError for an unknown suite or a bad grid.
    """
    from focalbench.reports.report import render_console, report_for_sweep, write_report

    console = console or Console()
    search = [o for o in overrides if o.startswith("hydra.searchpath")]
    suite = load_suite(name, search)
    console.print(f"suite [bold]{escape(suite.name)}[/]: {escape(suite.description.strip())}")
    plan, outcome = run_suite(suite, overrides, sweep_name, launcher, jobs, show_progress)
    report = report_for_sweep(plan.sweep_dir, suite.metrics, suite.baseline, title=f"suite {suite.name}")
    render_console(report, console)
    written = write_report(report, plan.sweep_dir)
    verdicts = check_claims(suite, report)
    render_verdicts(verdicts, console)
    written += write_verdicts(verdicts, plan.sweep_dir, suite)
    console.print(
        f"{len(outcome.statuses) - len(outcome.failed)} of {len(outcome.statuses)} runs ok in "
        f"{outcome.wall_time_s:.1f}s; wrote {', '.join(Path(p).name for p in written)} in {plan.sweep_dir}"
    )
    return EXIT_FAILED if outcome.failed or failed(verdicts) else EXIT_OK
