"""Suites and claims: loading and validating suites, the pass rules of each direction on known numbers,
the verdict files (published numbers kept apart), and `reproduce` end to end: the shipped `ci` suite holds,
and a suite with an impossible claim fails with a non-zero exit code.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from focalbench.errors import ConfigError
from focalbench.reports import aggregate as agg
from focalbench.reports.claims import (
    ALL_METRICS,
    check_claim,
    check_claims,
    list_suites,
    load_suite,
    parse_claim,
    parse_suite,
    render_verdicts,
    write_verdicts,
)
from focalbench.reports.report import build_report
from focalbench.sweeps.reproduce import reproduce

# ----------------------------------------------------------------------------------------------------------
# Cells with known numbers
# ----------------------------------------------------------------------------------------------------------


def _record(runs: Path, rid: str, seed: int, alpha: str, **test: float) -> Path:
    rdir = runs / rid
    rdir.mkdir(parents=True)
    cfg = {"data": {"name": "synthetic"}, "loss": {"name": "ce"}, "gamma": 0.0, "alpha": alpha, "seed": seed}
    (rdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    metrics = {"status": "ok", "seed": seed, "loss": {"alpha": alpha}, "data": {}, "test": test}
    (rdir / "metrics.json").write_text(json.dumps(metrics))
    return rdir


# Per seed: A - B = 10, 12, 11 on few_shot_acc (mean 11, CI about [8.5, 13.5]); 0, 0, 2e-7 on nll.
A_VALUES = {0: (40.0, 1.0), 1: (43.0, 1.1), 2: (41.0, 1.2 + 2e-7)}
B_VALUES = {0: (30.0, 1.0), 1: (31.0, 1.1), 2: (30.0, 1.2), 3: (35.0, 1.3)}


@pytest.fixture
def cells(tmp_path):
    dirs = [
        _record(tmp_path, f"a{s}", s, "inverse_freq", few_shot_acc=f, nll=n) for s, (f, n) in A_VALUES.items()
    ]
    dirs += [_record(tmp_path, f"b{s}", s, "none", few_shot_acc=f, nll=n) for s, (f, n) in B_VALUES.items()]
    return build_report(dirs, metrics=["few_shot_acc", "nll"]).cells


def claim(**kw):
    raw = {"claim": "c", "metric": "few_shot_acc", "a": "alpha=inverse_freq", "b": "alpha=none"} | kw
    if "value" in kw:
        raw.pop("b")
    return parse_claim("t", 0, raw)


def test_greater_passes_on_a_clear_effect_and_reports_it(cells):
    v = check_claim(claim(direction="greater", margin=5.0), cells)
    (c,) = v.checks
    assert v.passed and c.passed
    assert c.delta.delta == pytest.approx(11.0)
    assert c.delta.n == 3 and c.delta.seeds == (0, 1, 2)
    assert c.delta.pairing_note() == "paired on seeds 0,1,2 of 0,1,2,3"  # B's seed 3 has no partner
    assert 0 < c.delta.ci_low < 11.0 < c.delta.ci_high


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"direction": "greater", "margin": 1000.0}, "Δ ≤ 1000"),  # an impossible margin fails
        ({"direction": "less", "margin": 0.0}, "Δ ≥ −0"),
        ({"direction": "within", "margin": 10.0}, "|Δ| = 11 > 10"),
        ({"direction": "equal", "margin": 11.5}, "max |A − B| = 12 > 11.5"),  # one seed off is enough
        ({"direction": "greater", "margin": 12.0, "value": 30.0}, "Δ ≤ 12"),  # 40,43,41 - 30: mean 11.33
    ],
)
def test_claims_fail_as_designed(cells, kw, why):
    v = check_claim(claim(**kw), cells)
    assert not v.passed
    assert v.checks[0].reason == why


def test_greater_needs_the_ci_to_exclude_zero(tmp_path):
    # A - B = +30, -10 (mean +10 > margin 5, but with n = 2 the CI is very wide): fails on the CI.
    dirs = [
        _record(tmp_path, "a0", 0, "inverse_freq", few_shot_acc=60.0),
        _record(tmp_path, "a1", 1, "inverse_freq", few_shot_acc=20.0),
        _record(tmp_path, "b0", 0, "none", few_shot_acc=30.0),
        _record(tmp_path, "b1", 1, "none", few_shot_acc=30.0),
    ]
    cells = build_report(dirs, metrics=["few_shot_acc"]).cells
    v = check_claim(claim(direction="greater", margin=5.0), cells)
    assert not v.passed and v.checks[0].reason == "95% CI includes 0"
    assert v.checks[0].delta.delta == pytest.approx(10.0)


def test_equal_within_value_and_several_metrics(cells):
    assert check_claim(claim(metric="nll", direction="equal", margin=1e-6), cells).passed
    assert not check_claim(claim(metric="nll", direction="equal", margin=1e-8), cells).passed
    assert check_claim(claim(direction="within", margin=11.5), cells).passed
    v = check_claim(claim(direction="greater", value=30.0, margin=10.0), cells)
    assert v.passed and v.checks[0].delta.n == 3 and v.checks[0].delta.delta == pytest.approx(34 / 3)
    both = check_claim(claim(metric=["few_shot_acc", "nll"], direction="greater", margin=5.0), cells)
    assert [c.passed for c in both.checks] == [True, False] and not both.passed


def test_unresolvable_claims_fail_instead_of_passing(cells):
    v = check_claim(claim(a="alpha=effective_num", direction="greater"), cells)
    assert not v.passed and "matches no cell" in v.error
    v = check_claim(claim(a="gamma=0", direction="greater"), cells)
    assert not v.passed and "matches 2 cells" in v.error
    v = check_claim(claim(metric="balanced_accuracy", direction="within", margin=100.0), cells)
    assert not v.passed and v.checks[0].reason == "no paired seed with this metric"


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (
            {"direction": "bigger"},
            "direction=bigger is not valid; choose one of: greater, less, equal, within",
        ),
        ({"direction": "greater", "value": 3.0}, "exactly one of 'b'"),
        ({"direction": "greater", "margin": -1}, "margin=-1 is out of range"),
        ({"direction": "greater", "metric": "f1"}, "unknown metric 'f1'"),
        ({"direction": "greater", "colour": "red"}, "unknown key 'colour'"),
        ({"direction": "greater", "a": "gamma"}, "not key=value"),
    ],
)
def test_bad_claims_are_config_errors(raw, match):
    base = {"claim": "c", "metric": "few_shot_acc", "a": "alpha=none", "b": "alpha=none"}
    with pytest.raises(ConfigError, match=match.replace("(", r"\(").replace("|", r"\|")):
        parse_claim("t", 0, base | raw)


def test_suites_load_and_unknown_suites_are_listed():
    assert {"ci", "cifar10_lt"} <= set(list_suites())
    ci = load_suite("ci")
    assert len(ci.grids) == 2 and ci.baseline == "loss=ce alpha=none"
    assert [c.direction for c in ci.claims] == ["greater", "greater", "equal", "within"]
    assert ci.claims[2].metrics == ALL_METRICS
    lt = load_suite("cifar10_lt")
    assert all(c.published for c in lt.claims[:3]) and "top1_error" in lt.metrics
    with pytest.raises(ConfigError, match="unknown suite 'cii'; choose one of: .*ci.*cifar10_lt"):
        load_suite("cii")
    with pytest.raises(ConfigError, match="has no suite: key"):
        load_suite("debug")
    with pytest.raises(ConfigError, match="claims is empty"):
        parse_suite("x", {"grid": ["seed=0"], "claims": []})


def test_verdict_files_keep_published_numbers_apart(cells, tmp_path):
    suite = parse_suite(
        "t",
        {
            "grid": ["seed=0,1,2"],
            "claims": [
                {
                    "claim": "re-weighting helps the tail",
                    "metric": "few_shot_acc",
                    "a": "alpha=inverse_freq",
                    "b": "alpha=none",
                    "direction": "greater",
                    "margin": 5.0,
                    "published": {"metric": "few-shot %", "a": 99.0, "b": 1.0, "source": "a paper"},
                },
                {
                    "claim": "impossible",
                    "metric": "few_shot_acc",
                    "a": "alpha=inverse_freq",
                    "b": "alpha=none",
                    "direction": "greater",
                    "margin": 1000.0,
                },
            ],
        },
    )

    class _Report:  # check_claims only needs the cells
        pass

    report = _Report()
    report.cells = cells
    verdicts = check_claims(suite, report)
    assert [v.passed for v in verdicts] == [True, False]
    md_path, json_path = write_verdicts(verdicts, tmp_path, suite)
    md = md_path.read_text()
    measured, published = md.split("## Published (not measured here)")
    assert "99.0" not in measured and "99.0" in published and "a paper" in published
    assert "**1 of 2 claims hold.**" in md
    doc = json.loads(json_path.read_text())
    assert doc["all_hold"] is False
    assert doc["claims"][0]["measured"][0]["delta"] == pytest.approx(11.0)
    assert doc["claims"][0]["published_not_measured_here"]["a"] == 99.0
    console = Console(record=True, width=200)
    render_verdicts(verdicts, console)
    assert "1 of 2 claims do not hold" in console.export_text()


# ----------------------------------------------------------------------------------------------------------
# reproduce, end to end
# ----------------------------------------------------------------------------------------------------------


def test_the_ci_suite_holds(tmp_path):
    console = Console(record=True, width=200)
    code = reproduce("ci", [f"results_dir={tmp_path}"], console=console, show_progress=False)
    sweep = tmp_path / "sweeps" / "ci"
    doc = json.loads((sweep / "verdicts.json").read_text())
    assert code == 0, console.export_text()
    assert doc["all_hold"] and len(doc["claims"]) == 4
    listing = json.loads((sweep / "sweep.json").read_text())
    assert len(listing["run_ids"]) == 12
    for name in ("table.md", "summary.json", "verdicts.md", "metric_vs_gamma.png"):
        assert (sweep / name).is_file()


TINY_SUITE = """# @package _global_
defaults:
  - override /data: synthetic
  - override /model: mlp
data:
  n_max: 200
  test_per_class: 50
epochs: 3
device: cpu
suite:
  description: a tiny suite with one claim that cannot hold
  grid: ["loss=ce,balanced_ce", "seed=0,1"]
  claims:
    - claim: "balanced CE beats CE on few-shot accuracy by 1000 points"
      metric: few_shot_acc
      a: "loss=ce alpha=inverse_freq"
      b: "loss=ce alpha=none"
      direction: greater
      margin: 1000.0
"""


def test_reproduce_exits_non_zero_when_a_claim_fails(tmp_path):
    configs = tmp_path / "configs"
    (configs / "experiment").mkdir(parents=True)
    (configs / "experiment" / "tiny_suite.yaml").write_text(TINY_SUITE)
    overrides = [f"hydra.searchpath=[file://{configs}]", f"results_dir={tmp_path / 'results'}"]
    console = Console(record=True, width=200)
    code = reproduce("tiny_suite", overrides, console=console, show_progress=False)
    assert code == 1
    doc = json.loads((tmp_path / "results" / "sweeps" / "tiny_suite" / "verdicts.json").read_text())
    (item,) = doc["claims"]
    assert item["passed"] is False and item["measured"][0]["n"] == 2
    assert item["measured"][0]["delta"] < 1000.0
    assert "1 of 1 claims do not hold" in console.export_text()
    assert agg.collect_run_dirs([tmp_path / "results" / "sweeps" / "tiny_suite"])
