"""Reproduction suites and their claims: `focalbench reproduce <suite>` re-runs a grid and checks what it claims.

A suite is a Hydra experiment config, ``configs/experiment/<name>.yaml`` (``# @package _global_``), that sets
the base settings of its runs and holds a top-level ``suite:`` key (not part of any run id)::

    suite:
      description: what the suite shows
      grid:                      # Hydra sweep overrides; a list of lists is several grids run into one sweep
        - ["loss=ce,balanced_ce", "seed=0,1,2"]
        - ["loss=focal", "gamma=0,2", "seed=0,1,2"]
      baseline: "loss=ce alpha=none"     # the report's baseline selector (optional)
      metrics: [balanced_accuracy, ...]  # the report's metrics (optional; default: the report's defaults)
      claims:
        - claim: "balanced CE beats CE on few-shot accuracy by more than 20 points"
          metric: few_shot_acc           # a metric name, a list of them, or "all"
          a: "loss=ce alpha=inverse_freq"  # selector of cell A
          b: "loss=ce alpha=none"          # selector of cell B ...
          # value: 30.0                    # ... or a fixed number instead of b
          direction: greater             # greater | less | equal | within
          margin: 20.0                   # in the metric's unit (points for percentages); default 0
          published:                     # optional; shown apart, as published and NOT measured here
            a: 25.43
            b: 29.64
            metric: top1_error
            source: "Cui et al. 2019, Table 2"

How a claim is checked, per metric (``all`` = every scalar test metric: accuracy, balanced accuracy, macro-F1,
many/medium/few-shot accuracy, NLL and ECE; timing is not a result of the loss and is left out):

- the differences d_s = A_s − B_s over the seeds S both cells share (against ``value``: d_s = A_s − value
  over all of A's seeds); n = |S|; the effect Δ = mean(d); its 95% CI = Δ ± t_{0.975,n−1}·std(d)/√n.
- ``greater``: passes iff n ≥ 2, Δ > margin, and the CI's lower bound > 0 (A is ahead by more than the
  margin on average, and the lead is not a seed fluke). ``less``: the mirror image (Δ < −margin, upper
  bound < 0).
- ``equal``: passes iff n ≥ 1 and |d_s| ≤ margin for EVERY paired seed (use it for "the same computation").
- ``within``: passes iff n ≥ 1 and |Δ| ≤ margin. This bounds the mean difference; it is not an
  equivalence test, and the CI is reported next to it so that a reader can see how well n seeds pin Δ down.
- A claim with several metrics passes iff every metric passes. A claim whose selector matches no cell, or
  more than one, or whose cells share no seed, fails (a claim that cannot be checked does not hold).

A verdict reports the measured effect, its CI, n and pass/fail. Published numbers are never mixed with
measured ones: they are listed in their own section, headed "published (not measured here)".
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from focalbench.errors import ConfigError
from focalbench.reports import aggregate as agg
from focalbench.reports.stats import PairedDelta, delta_to_value, paired_delta

DIRECTIONS = ("greater", "less", "equal", "within")
ALL_METRICS = agg.TEST_METRICS
CLAIM_KEYS = ("claim", "metric", "a", "b", "value", "direction", "margin", "published")
SUITE_KEYS = ("description", "grid", "baseline", "metrics", "claims")


@dataclass(frozen=True)
class Claim:
    claim: str
    metrics: tuple[str, ...]
    a: str
    b: str | None
    value: float | None
    direction: str
    margin: float
    published: dict | None = None

    def rule(self) -> str:
        """The pass rule in words, with this claim's margin."""
        m = f"{self.margin:g}"
        return {
            "greater": f"n ≥ 2, Δ > {m} and 95% CI lower bound > 0",
            "less": f"n ≥ 2, Δ < −{m} and 95% CI upper bound < 0",
            "equal": f"|A − B| ≤ {m} on every paired seed",
            "within": f"|Δ| ≤ {m}",
        }[self.direction]

    @property
    def against(self) -> str:
        return self.b if self.b is not None else f"{self.value:g}"


@dataclass
class Suite:
    name: str
    description: str
    grids: list[list[str]]
    baseline: str | None
    metrics: list[str] | None
    claims: list[Claim]


@dataclass
class Check:
    """One metric of one claim: the measured effect and whether it passes."""

    metric: str
    delta: PairedDelta | None
    max_abs: float | None  # max |d_s|, for equal
    passed: bool
    reason: str = ""


@dataclass
class Verdict:
    claim: Claim
    a_label: str | None
    b_label: str | None
    checks: list[Check] = field(default_factory=list)
    error: str = ""  # why the claim could not be checked

    @property
    def passed(self) -> bool:
        return not self.error and bool(self.checks) and all(c.passed for c in self.checks)


# ----------------------------------------------------------------------------------------------------------
# Loading a suite
# ----------------------------------------------------------------------------------------------------------


def list_suites() -> list[str]:
    """The experiment configs that declare a top-level ``suite:`` key."""
    import yaml

    from focalbench.config import config_dir

    names = []
    for path in sorted((config_dir() / "experiment").glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        if isinstance(data, dict) and data.get("suite") is not None:
            names.append(path.stem)
    return names


def load_suite(name: str, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Compose ``experiment=<name>`` (plus ``overrides``, e.g. a ``hydra.searchpath`` for user configs) and
    parse its ``suite:`` key. Raises ConfigError naming the suites when there is no such suite."""
    from omegaconf import OmegaConf

    from focalbench.config import compose

    try:
        cfg = compose([f"experiment={name}", *overrides])
    except ConfigError as exc:
        if "experiment" in str(exc):
            raise ConfigError(f"unknown suite '{name}'; choose one of: {', '.join(list_suites())}") from None
        raise
    if cfg.suite is None:
        raise ConfigError(
            f"experiment '{name}' has no suite: key, so it is not a suite; choose one of: {', '.join(list_suites())}"
        )
    return parse_suite(name, OmegaConf.to_container(cfg.suite, resolve=True))


def parse_suite(name: str, raw: Any) -> Suite:
    """A Suite from the plain ``suite:`` mapping; ConfigError naming the bad field."""
    if not isinstance(raw, dict):
        raise ConfigError(f"suite {name}: the suite: key must be a mapping with {', '.join(SUITE_KEYS)}")
    _check_keys(raw, SUITE_KEYS, f"suite {name}")
    grid = raw.get("grid")
    if not grid or not isinstance(grid, list):
        raise ConfigError(f"suite {name}: grid must be a list of sweep overrides (or a list of such lists)")
    grids = [list(map(str, g)) for g in grid] if isinstance(grid[0], list) else [list(map(str, grid))]
    metrics = raw.get("metrics")
    for m in metrics or []:
        agg.check_metric(m)
    claims = [parse_claim(name, i, c) for i, c in enumerate(raw.get("claims") or [])]
    if not claims:
        raise ConfigError(f"suite {name}: claims is empty; a suite states at least one claim")
    return Suite(name, str(raw.get("description") or ""), grids, raw.get("baseline"), metrics, claims)


def parse_claim(suite: str, index: int, raw: Any) -> Claim:
    where = f"suite {suite}, claim {index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a claim is a mapping with keys {', '.join(CLAIM_KEYS)}")
    _check_keys(raw, CLAIM_KEYS, where)
    for key in ("claim", "metric", "a", "direction"):
        if raw.get(key) in (None, ""):
            raise ConfigError(f"{where}: '{key}' is required")
    if raw["direction"] not in DIRECTIONS:
        raise ConfigError(
            f"{where}: direction={raw['direction']} is not valid; choose one of: {', '.join(DIRECTIONS)}"
        )
    if (raw.get("b") is None) == (raw.get("value") is None):
        raise ConfigError(f"{where}: give exactly one of 'b' (a cell selector) or 'value' (a number)")
    metric = raw["metric"]
    metrics = ALL_METRICS if metric == "all" else tuple([metric] if isinstance(metric, str) else metric)
    for m in metrics:
        agg.check_metric(m)
    margin = raw.get("margin", 0.0)
    if (
        not isinstance(margin, (int, float))
        or isinstance(margin, bool)
        or not math.isfinite(margin)
        or margin < 0
    ):
        raise ConfigError(f"{where}: margin={margin} is out of range: must be a number >= 0")
    value = raw.get("value")
    if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise ConfigError(f"{where}: value={value} must be a number")
    agg.parse_selector(raw["a"])
    if raw.get("b") is not None:
        agg.parse_selector(raw["b"])
    return Claim(
        claim=str(raw["claim"]),
        metrics=tuple(metrics),
        a=str(raw["a"]),
        b=None if raw.get("b") is None else str(raw["b"]),
        value=None if value is None else float(value),
        direction=str(raw["direction"]),
        margin=float(margin),
        published=raw.get("published"),
    )


def _check_keys(raw: dict, allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; allowed: {', '.join(allowed)}")


# ----------------------------------------------------------------------------------------------------------
# Checking
# ----------------------------------------------------------------------------------------------------------


def check_claims(suite: Suite, report) -> list[Verdict]:
    """One verdict per claim of ``suite``, measured on the cells of ``report`` (a built Report)."""
    return [check_claim(claim, report.cells) for claim in suite.claims]


def check_claim(claim: Claim, cells: list[agg.Cell]) -> Verdict:
    try:
        a = _one_cell(cells, claim.a)
        b = _one_cell(cells, claim.b) if claim.b is not None else None
    except ConfigError as exc:
        return Verdict(claim, None, None, error=str(exc))
    verdict = Verdict(claim, a.label, None if b is None else b.label)
    for metric in claim.metrics:
        values_a = agg.seed_values(a, metric)
        delta = (
            paired_delta(values_a, agg.seed_values(b, metric)) if b else delta_to_value(values_a, claim.value)
        )
        verdict.checks.append(_judge(claim, metric, delta, values_a, b))
    return verdict


def _one_cell(cells: list[agg.Cell], selector: str) -> agg.Cell:
    chosen = agg.select_cells(cells, selector)
    if len(chosen) > 1:
        raise ConfigError(f"selector '{selector}' matches {len(chosen)} cells ({agg.list_cells(chosen)})")
    return chosen[0]


def _judge(claim: Claim, metric: str, d: PairedDelta, values_a: dict[int, float], b) -> Check:
    if d.n == 0:
        return Check(metric, d, None, False, "no paired seed with this metric")
    if b is not None:
        values_b = agg.seed_values(b, metric)
        diffs = [values_a[s] - values_b[s] for s in d.seeds]
    else:
        diffs = [values_a[s] - claim.value for s in d.seeds]
    max_abs = max(abs(x) for x in diffs)
    m = claim.margin
    if claim.direction in ("greater", "less"):
        if d.n < 2:
            return Check(metric, d, max_abs, False, "needs at least 2 paired seeds for a CI")
        if claim.direction == "greater":
            passed, reason = d.delta > m and d.ci_low > 0, ""
            if not passed:
                reason = f"Δ ≤ {m:g}" if d.delta <= m else "95% CI includes 0"
        else:
            passed, reason = d.delta < -m and d.ci_high < 0, ""
            if not passed:
                reason = f"Δ ≥ −{m:g}" if d.delta >= -m else "95% CI includes 0"
        return Check(metric, d, max_abs, passed, reason)
    if claim.direction == "equal":
        passed = max_abs <= m
        return Check(metric, d, max_abs, passed, "" if passed else f"max |A − B| = {max_abs:.3g} > {m:g}")
    passed = abs(d.delta) <= m
    return Check(metric, d, max_abs, passed, "" if passed else f"|Δ| = {abs(d.delta):.3g} > {m:g}")


def failed(verdicts: list[Verdict]) -> list[Verdict]:
    return [v for v in verdicts if not v.passed]


# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------


def _num(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:+.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:+.2e}"


def _ci(d: PairedDelta | None) -> str:
    if d is None or d.ci_low is None:
        return "—"
    return f"[{_num(d.ci_low)}, {_num(d.ci_high)}]"


def _rows(verdicts: list[Verdict]) -> list[dict[str, str]]:
    """One row per claim and metric; a claim's own columns are filled on its first row only."""
    rows = []
    for i, v in enumerate(verdicts, 1):
        base = {
            "#": str(i),
            "claim": v.claim.claim,
            "A": v.a_label or v.claim.a,
            "B": v.b_label or v.claim.against,
            "rule": v.claim.rule(),
        }
        blank = dict.fromkeys(base, "")
        if v.error:
            rows.append(
                base
                | {
                    "metric": "—",
                    "Δ = A − B": "—",
                    "95% CI": "—",
                    "n": "0",
                    "verdict": "FAIL",
                    "why": v.error,
                }
            )
            continue
        for j, c in enumerate(v.checks):
            d = c.delta
            rows.append(
                (base if j == 0 else blank)
                | {
                    "metric": agg.metric_info(c.metric)[0],
                    "Δ = A − B": _num(d.delta if d else None),
                    "95% CI": _ci(d),
                    "n": str(d.n if d else 0) + (f" ({d.pairing_note()})" if d and d.partial else ""),
                    "verdict": "pass" if c.passed else "FAIL",
                    "why": c.reason,
                }
            )
    return rows


def render_verdicts(verdicts: list[Verdict], console: Console | None = None) -> None:
    """A rich table of the verdicts (one row per claim and metric), then the overall line."""
    console = console or Console()
    table = Table(title="claims: measured effect Δ = A − B over paired seeds")
    cols = ("#", "claim", "metric", "Δ = A − B", "95% CI", "n", "rule", "verdict")
    for col in cols:
        table.add_column(col, justify="right" if col in ("Δ = A − B", "n") else "left")
    for row in _rows(verdicts):
        style = "green" if row["verdict"] == "pass" else "red"
        verdict = row["verdict"] + (f" ({row['why']})" if row["why"] else "")
        table.add_row(*[escape(row[c]) for c in cols[:-1]], f"[{style}]{escape(verdict)}[/]")
    console.print(table)
    bad = failed(verdicts)
    if bad:
        console.print(f"[red]{len(bad)} of {len(verdicts)} claims do not hold[/]")
    else:
        console.print(f"[green]all {len(verdicts)} claims hold[/]")


def verdicts_markdown(verdicts: list[Verdict], suite: Suite | None = None) -> str:
    import pandas as pd

    out = [f"# Claims{f' of suite {suite.name}' if suite else ''}", ""]
    if suite and suite.description:
        out += [suite.description.strip(), ""]
    bad = failed(verdicts)
    out += [f"**{len(verdicts) - len(bad)} of {len(verdicts)} claims hold.**", ""]
    out += [
        "Measured here: Δ = mean over paired seeds of (A − B) (or A − value), final-epoch test metrics, "
        "with its 95% Student-t CI and n = number of paired seeds. Rules: greater: n ≥ 2, Δ > margin and "
        "CI lower bound > 0; less: the mirror image; equal: |A − B| ≤ margin on every seed; within: "
        "|Δ| ≤ margin (a bound on the mean, not an equivalence test).",
        "",
        pd.DataFrame(_rows(verdicts))
        .map(lambda x: x.replace("|", "\\|"))
        .to_markdown(index=False, disable_numparse=True),
        "",
    ]
    published = [v for v in verdicts if v.claim.published]
    if published:
        out += [
            "## Published (not measured here)",
            "",
            "Numbers from the papers, for orientation only; they were not produced by these runs.",
            "",
        ]
        for i, v in enumerate(verdicts, 1):
            p = v.claim.published
            if not p:
                continue
            parts = [f"{k} = {p[k]}" for k in ("a", "b", "value") if k in p]
            metric = p.get("metric", "")
            out.append(
                f"- claim {i} ({v.claim.claim}): {metric} {', '.join(parts)}"
                f"{'; ' + p['note'] if p.get('note') else ''} — source: {p.get('source', 'unknown')}"
            )
        out.append("")
    return "\n".join(out)


def verdicts_json(verdicts: list[Verdict], suite: Suite | None = None) -> str:
    items = []
    for v in verdicts:
        c = v.claim
        items.append(
            {
                "claim": c.claim,
                "a": c.a,
                "a_cell": v.a_label,
                "b": c.b,
                "b_cell": v.b_label,
                "value": c.value,
                "direction": c.direction,
                "margin": c.margin,
                "rule": c.rule(),
                "passed": v.passed,
                "error": v.error or None,
                "measured": [
                    {
                        "metric": k.metric,
                        "delta": k.delta.delta if k.delta else None,
                        "ci95": [k.delta.ci_low, k.delta.ci_high] if k.delta else [None, None],
                        "n": k.delta.n if k.delta else 0,
                        "seeds": list(k.delta.seeds) if k.delta else [],
                        "seeds_available": list(k.delta.all_seeds) if k.delta else [],
                        "max_abs_diff": k.max_abs,
                        "passed": k.passed,
                        "reason": k.reason or None,
                    }
                    for k in v.checks
                ],
                "published_not_measured_here": c.published,
            }
        )
    doc = {
        "suite": None
        if suite is None
        else {
            "name": suite.name,
            "description": suite.description,
            "grids": suite.grids,
            "baseline": suite.baseline,
        },
        "all_hold": not failed(verdicts),
        "claims": items,
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_verdicts(verdicts: list[Verdict], out_dir: Path, suite: Suite | None = None) -> list[Path]:
    """``verdicts.md`` and ``verdicts.json`` in ``out_dir`` (atomically); returns their paths."""
    from focalbench.training.record import write_atomic

    out_dir = Path(out_dir)
    paths = [out_dir / "verdicts.md", out_dir / "verdicts.json"]
    write_atomic(paths[0], verdicts_markdown(verdicts, suite))
    write_atomic(paths[1], verdicts_json(verdicts, suite))
    return paths
