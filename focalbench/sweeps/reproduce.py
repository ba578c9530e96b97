"""``focalbench reproduce <suite>``: run a suite's grid(s) into one sweep folder, report it, check its claims.

A suite is an experiment config, ``configs/experiment/<name>.yaml`` (``# @package _global_``), that sets the
base settings of its runs and holds a top-level ``suite:`` key (not part of any run id)::

    suite:
      description: what the suite shows
      grid:                              # sweep overrides; a list of lists is several grids in one sweep
        - ["loss=ce,balanced_ce", "seed=0,1,2"]
        - ["loss=focal", "gamma=0,2", "seed=0,1,2"]
      baseline: "loss=ce alpha=none"     # the report's --baseline, --metrics, --group-by (all optional)
      metrics: [balanced_accuracy, ...]
      group_by: [data]
      multiplicity: holm                 # holm (default) or none: the claims' family-wise correction
      claims:                            # what they mean: focalbench.reports.claims
        - claim: "balanced CE beats CE on few-shot accuracy by more than 20 points"
          metric: few_shot_acc           # a metric, a list of them, or "all" (the test metrics)
          a: "loss=ce alpha=inverse_freq"  # selectors of cells A and B (or value: a fixed number for B)
          b: "loss=ce alpha=none"
          direction: greater             # greater | less | at_least | at_most | equal | within
          margin: 20.0                   # in the metric's unit (points for percentages); default 0
          published: {a: 25.43, b: 29.64, source: "..."}   # optional; shown apart, never as measured

The steps, each a function a Python user can call too:

0. :func:`load_suite` (and :func:`list_suites`, :func:`suite_of_sweep`): the suite, validated.
1. :func:`plan_suite`: one :class:`~focalbench.sweeps.plan.SweepPlan` per grid of the suite, each planned as
   ``focalbench sweep experiment=<suite> <grid...> <overrides...>`` (user overrides last, so they win) and
   all named after the suite, so they share ``results/sweeps/<suite>/``. Every cell is validated before
   anything runs.
2. :func:`run_suite`: run the plans (resuming what is done) and write one ``sweep.json`` listing every run
   of every grid, in grid order.
3. :func:`reproduce`: the suite's report, verdicts included (tables, plots, ``summary.json``,
   ``verdicts.md``, ``verdicts.json``) in that sweep folder, printed too; returns the exit code: 0 when every
   run finished and every claim passes, 1 otherwise (a failed run, a FAIL, or an INCONCLUSIVE claim: one
   the seeds cannot establish is not established).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from focalbench.errors import ConfigError
from focalbench.reports import aggregate as agg
from focalbench.reports.claims import ALL_METRICS, DIRECTIONS, MULTIPLICITY, Claim, check_claims
from focalbench.reports.report import report_for_sweep

EXIT_OK = 0
EXIT_FAILED = 1
SUITE_KEYS = ("description", "grid", "baseline", "metrics", "group_by", "multiplicity", "claims")
CLAIM_KEYS = ("claim", "metric", "a", "b", "value", "direction", "margin", "published")


@dataclass
class Suite:
    name: str
    description: str
    grids: list[list[str]]
    baseline: str | None
    metrics: list[str] | None
    group_by: list[str] | None
    claims: list[Claim]
    multiplicity: str = "holm"  # holm | none: how the claims' verdicts are adjusted (reports.claims)


def list_suites() -> list[str]:
    """The experiment configs that declare a top-level ``suite:`` key."""
    import yaml

    from focalbench.config import config_dir

    paths = sorted((config_dir() / "experiment").glob("*.yaml"))
    return [p.stem for p in paths if (yaml.safe_load(p.read_text()) or {}).get("suite") is not None]


def load_suite(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Compose ``experiment=<name>`` (plus ``overrides``, e.g. a ``hydra.searchpath`` for user configs) and
    parse its ``suite:`` key. ConfigError naming the suites when there is no such suite."""
    from omegaconf import OmegaConf

    from focalbench.config import compose

    suites = ", ".join(list_suites())
    try:
        cfg = compose([f"experiment={name}", *overrides])
    except ConfigError as exc:
        if "experiment" in str(exc):
            raise ConfigError(f"unknown suite '{name}'; choose one of: {suites}") from None
        raise
    if cfg.suite is None:
        raise ConfigError(
            f"experiment '{name}' has no suite: key, so it is not a suite; choose one of: {suites}"
        )
    return parse_suite(name, OmegaConf.to_container(cfg.suite, resolve=True))


def parse_suite(name: str, raw: Any) -> Suite:
    """A Suite from the plain ``suite:`` mapping; ConfigError naming the bad field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"suite {name}: the suite: key must be a mapping with {', '.join(SUITE_KEYS)}")
    check_keys(raw, SUITE_KEYS, f"suite {name}")
    grid = raw.get("grid")
    if not grid or not isinstance(grid, list):
        raise ConfigError(f"suite {name}: grid must be a list of sweep overrides (or a list of such lists)")
    grids = [list(map(str, g)) for g in grid] if isinstance(grid[0], list) else [list(map(str, grid))]
    for m in raw.get("metrics") or []:
        agg.check_metric(m)
    claims = [parse_claim(name, i, c) for i, c in enumerate(raw.get("claims") or [])]
    if not claims:
        raise ConfigError(f"suite {name}: claims is empty; a suite states at least one claim")
    desc, group_by = str(raw.get("description") or ""), raw.get("group_by")
    multiplicity = raw.get("multiplicity", "holm")
    if multiplicity not in MULTIPLICITY:
        raise ConfigError(
            f"suite {name}: multiplicity={multiplicity} is not valid; choose one of: {', '.join(MULTIPLICITY)}"
        )
    return Suite(name, desc, grids, raw.get("baseline"), raw.get("metrics"), group_by, claims, multiplicity)


def parse_claim(suite: str, index: int, raw: Any) -> Claim:
    """A Claim from a suite's ``claims:`` entry; ConfigError naming the claim and the bad field."""
    where = f"suite {suite}, claim {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a claim is a mapping with keys {', '.join(CLAIM_KEYS)}")
    check_keys(raw, CLAIM_KEYS, where)
    for key in ("claim", "metric", "a", "direction"):
        if raw.get(key) in (None, ""):
            raise ConfigError(f"{where}: '{key}' is required")
    if raw["direction"] not in DIRECTIONS:
        raise ConfigError(
            f"{where}: direction={raw['direction']} is not valid; choose one of: {', '.join(DIRECTIONS)}"
        )
    if (raw.get("b") is None) == (raw.get("value") is None):
        raise ConfigError(f"{where}: give exactly one of 'b' (a cell selector) or 'value' (a number)")
    metric, margin, value = raw["metric"], raw.get("margin", 0.0), raw.get("value")
    metrics = ALL_METRICS if metric == "all" else tuple([metric] if isinstance(metric, str) else metric)
    for m in metrics:
        agg.check_metric(m)
    if not _is_number(margin) or not math.isfinite(margin) or margin < 0:
        raise ConfigError(f"{where}: margin={margin} is out of range: must be a number >= 0")
    if value is not None and not _is_number(value):
        raise ConfigError(f"{where}: value={value} must be a number")
    for side in (s for s in (raw["a"], raw.get("b")) if s is not None):
        agg.parse_selector(side)
    b, value = (None if x is None else t(x) for x, t in ((raw.get("b"), str), (value, float)))
    text, direction = str(raw["claim"]), str(raw["direction"])
    return Claim(
        text,
        metrics,
        str(raw["a"]),
        b,
        value,
        direction,
        float(margin),
        raw.get("published"),
        metric == "all",
    )


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check_keys(raw: dict, allowed: tuple[str, ...], where: str) -> None:
    """ConfigError naming the first key of ``raw`` that is not ``allowed``."""
    if unknown := [k for k in raw if k not in allowed]:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(allowed)}")


def suite_report(
    suite: Suite, sweep_dir: Path, metrics=None, baseline=None, group_by=None, margin=None, resolution=None
):
    """The report of the sweep folder a suite wrote: the suite's title, and its baseline, metrics and group-by
    unless given; its verdicts in ``claims``. ``focalbench report`` of that folder gives the same files."""
    group_by = group_by if group_by is not None else suite.group_by
    metrics, baseline = metrics or suite.metrics, baseline or suite.baseline
    title = f"suite {suite.name}"
    report = report_for_sweep(sweep_dir, metrics, baseline, title, group_by, margin, resolution, suite=True)
    missing = sum(r["status"] in ("missing", "incomplete") for r in report.not_ok_runs)
    report.claims = check_claims(suite, report.cells, runs_missing=missing)
    return report


def suite_of_sweep(sweep_dir: Path) -> Suite | None:
    """The suite whose ``focalbench reproduce NAME`` wrote this sweep folder (the folder is named NAME and
    its first override is ``experiment=NAME``), or None for any other sweep."""
    listing = json.loads((Path(sweep_dir) / "sweep.json").read_text())
    name, overrides = listing.get("name"), listing.get("overrides") or []
    if not overrides or overrides[0] != f"experiment={name}":
        return None
    try:
        return load_suite(name, [o for o in overrides if o.startswith("hydra.searchpath")])
    except ConfigError:
        return None


def plan_suite(suite: Suite, overrides: list[str] | tuple[str, ...] = (), name: str | None = None) -> list:
    from focalbench.sweeps.plan import plan_sweep

    return [
        plan_sweep([f"experiment={suite.name}", *grid, *overrides], name=name or suite.name)
        for grid in suite.grids
    ]


def list_suite(suite: Suite, overrides: list[str] | tuple[str, ...] = (), name: str | None = None):
    """Plan the suite without training: the merged (SweepPlan, SweepOutcome) with each run's status as its
    record says (ok, diverged, or missing), after writing sweep.json. For reporting a study in progress.

    ConfigError, with nothing written, when no run of the suite has a record there: a wrong results_dir, or
    records of an older version (their run ids differ), would otherwise overwrite the sweep's listing with
    every run "missing"."""
    from focalbench.sweeps.launch import SweepOutcome, write_sweep_list
    from focalbench.training import record

    plans = plan_suite(suite, overrides, name)
    merged = _merge(suite, plans, overrides)
    statuses = {}
    for cell in merged.cells:
        rdir = merged.run_dir(cell)
        metrics = record.read_metrics(rdir) if record.is_done(rdir) else None
        statuses[cell.run_id] = (metrics or {}).get("status", "missing")
    if all(status == "missing" for status in statuses.values()):
        from focalbench.sweeps.plan import precision_note

        note = precision_note(merged)
        raise ConfigError(
            f"--report-only: none of the {len(statuses)} runs of suite {suite.name} has a record under "
            f"{merged.results_dir / 'runs'}; nothing written ("
            + (note if note else f"check results_dir=, or train them with focalbench reproduce {suite.name}")
            + ")"
        )
    outcome = SweepOutcome(statuses, 0.0)
    write_sweep_list(merged, outcome)
    return merged, outcome


def _merge(suite: Suite, plans: list, overrides) -> Any:
    """One SweepPlan of all the suite's grids, each run once, in grid order."""
    from focalbench.sweeps.plan import SweepPlan

    seen: set[str] = set()
    cells = [c for p in plans for c in p.cells if not (c.run_id in seen or seen.add(c.run_id))]
    return SweepPlan(plans[0].name, [f"experiment={suite.name}", *overrides], cells, plans[0].results_dir)


def run_suite(
    suite: Suite,
    plans: list,
    overrides: list[str] | tuple[str, ...] = (),
    launcher: str = "inprocess",
    jobs: int = 1,
    show_progress: bool = True,
):
    """Run every grid of ``suite`` (its ``plans``, from :func:`plan_suite`); return the merged (SweepPlan,
    SweepOutcome) after writing sweep.json."""
    from focalbench.sweeps.launch import SweepOutcome, run_sweep, write_sweep_list

    statuses: dict[str, str] = {}
    wall = 0.0
    for plan in plans:
        outcome = run_sweep(plan, launcher, jobs, show_progress=show_progress)
        statuses.update(outcome.statuses)
        wall += outcome.wall_time_s
    merged = _merge(suite, plans, overrides)
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
    report_only: bool = False,
) -> int:
    """Run suite ``name``, write and print its report and verdicts; return 0 if all runs and claims are ok.

    ``overrides`` are extra Hydra overrides applied to every run (e.g. ``results_dir=/tmp/r``, ``device=cuda``
    or the ``hydra.searchpath`` of ``--config-dir``). Raises ConfigError for an unknown suite or a bad grid.
    ``report_only``: train nothing; report and judge the records there are (a study in progress), with the
    missing runs listed as such.
    """
    from focalbench.console import make_console
    from focalbench.reports.render import print_report
    from focalbench.reports.report import write_report

    console = console or make_console()
    search = [o for o in overrides if o.startswith("hydra.searchpath")]
    suite = load_suite(name, search)
    console.print(f"suite [bold]{escape(suite.name)}[/]: {escape(suite.description.strip())}")
    from focalbench.sweeps.plan import precision_note

    if report_only:
        plan, outcome = list_suite(suite, overrides, sweep_name)
        done = sum(s != "missing" for s in outcome.statuses.values())
        console.print(f"{done} of {len(outcome.statuses)} runs have records; nothing trained (--report-only)")
        if note := precision_note(plan):
            console.print(escape(note), highlight=False)
    else:
        plans = plan_suite(suite, overrides, sweep_name)
        if note := precision_note(_merge(suite, plans, overrides)):
            console.print(escape(note), highlight=False)  # before hours of training under other run ids
        plan, outcome = run_suite(suite, plans, overrides, launcher, jobs, show_progress)
    report = suite_report(suite, plan.sweep_dir)
    print_report(report, console)
    written = write_report(report, plan.sweep_dir)
    from focalbench.loggers import log_plan

    log_plan(plan)  # with logger=...: the report as one tracker run, the runs as its children
    console.print(
        f"{len(outcome.statuses) - len(outcome.failed)} of {len(outcome.statuses)} runs ok in "
        f"{outcome.wall_time_s:.1f}s; wrote {', '.join(Path(p).name for p in written)} in {plan.sweep_dir}"
    )
    return EXIT_FAILED if outcome.failed or not report.claims.all_hold else EXIT_OK
