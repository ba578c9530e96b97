"""Suites and claims: loading and validating suites, the verdicts of each direction on known numbers (pass,
FAIL, INCONCLUSIVE), the verdict files (published numbers kept apart), and `reproduce` end to end: the
shipped `ci` suite holds, and a suite with a claim that fails or cannot be established exits 1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf
from rich.console import Console

from focalbench.errors import ConfigError
from focalbench.reports import aggregate as agg
from focalbench.reports.claims import ALL_METRICS, check_claim, check_claims
from focalbench.reports.model import to_json
from focalbench.reports.render import print_verdicts, verdicts_markdown
from focalbench.reports.report import build_report, report_paths, write_report
from focalbench.sweeps.reproduce import (
    list_suites,
    load_suite,
    parse_claim,
    parse_suite,
    reproduce,
    suite_of_sweep,
    suite_report,
)
from tests.conftest import run_cli

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
    (c,) = v.measured
    assert v.verdict == c.verdict == "pass"
    assert c.delta == pytest.approx(11.0)
    assert c.n == 3 and c.seeds == (0, 1, 2) and c.seeds_available == (0, 1, 2, 3)  # B's seed 3: no partner
    assert c.ci_level == 0.95 and 5.0 < c.ci[0] < 11.0 < c.ci[1]


# A − B = 10, 12, 11 on few_shot_acc: Δ = 11, 95% CI [8.52, 13.48], 90% CI [9.31, 12.69].
@pytest.mark.parametrize(
    ("kw", "verdict", "why"),
    [
        ({"direction": "greater", "margin": 1000.0}, "fail", "95% CI does not reach beyond 1000"),
        ({"direction": "less", "margin": 0.0}, "fail", "95% CI does not reach beyond −0"),
        ({"direction": "within", "margin": 5.0}, "fail", "90% CI wholly outside ±5"),
        ({"direction": "equal", "margin": 11.5}, "fail", "max |A − B| = 12 > 11.5"),  # one seed off is enough
        # The mean beats the margin and the CI excludes 0, but the 95% lower bound (8.52) does not beat 9.
        ({"direction": "greater", "margin": 9.0}, "inconclusive", "95% CI includes 9"),
        ({"direction": "less", "margin": 0.0, "value": 50.0}, "pass", None),  # 40,43,41 < 50
        # |Δ| = 11 <= 11.5, but the 90% CI reaches 12.69: equivalence within 11.5 is not established.
        ({"direction": "within", "margin": 11.5}, "inconclusive", "90% CI not inside ±11.5"),
        ({"direction": "within", "margin": 13.0}, "pass", None),
    ],
)
def test_verdicts_of_each_direction(cells, kw, verdict, why):
    v = check_claim(claim(**kw), cells)
    assert v.verdict == verdict
    assert (v.measured[0].reason or "").startswith(why or "")


def test_greater_needs_the_ci_bound_beyond_the_margin(tmp_path):
    # A - B = +30, -10: mean +10 > margin 5 and the old rule's mean test passes, but with n = 2 the 95% CI
    # is [-244, +264]: the claim is not established either way.
    dirs = [
        _record(tmp_path, "a0", 0, "inverse_freq", few_shot_acc=60.0),
        _record(tmp_path, "a1", 1, "inverse_freq", few_shot_acc=20.0),
        _record(tmp_path, "b0", 0, "none", few_shot_acc=30.0),
        _record(tmp_path, "b1", 1, "none", few_shot_acc=30.0),
    ]
    cells = build_report(dirs, metrics=["few_shot_acc"]).cells
    v = check_claim(claim(direction="greater", margin=5.0), cells)
    assert v.verdict == "inconclusive" and v.measured[0].reason == "95% CI includes 5"
    assert v.measured[0].delta == pytest.approx(10.0)


def test_within_is_inconclusive_when_the_seeds_cannot_decide(tmp_path):
    # n = 1: |Δ| = 1 <= 4 passed under the old rule; with no interval, equivalence is not established.
    one = [
        _record(tmp_path / "1", f"{x}0", 0, alpha, few_shot_acc=v)
        for x, alpha, v in (("a", "inverse_freq", 31.0), ("b", "none", 30.0))
    ]
    v = check_claim(claim(direction="within", margin=4.0), build_report(one).cells)
    assert v.verdict == "inconclusive" and v.measured[0].reason.startswith("n = 1")
    # n = 2, differences 0 and 3: |Δ| = 1.5 <= 4, but the 90% CI is [-8, +11]: too wide to decide.
    two = [
        _record(tmp_path / "2", "a0", 0, "inverse_freq", few_shot_acc=30.0),
        _record(tmp_path / "2", "a1", 1, "inverse_freq", few_shot_acc=33.0),
        _record(tmp_path / "2", "b0", 0, "none", few_shot_acc=30.0),
        _record(tmp_path / "2", "b1", 1, "none", few_shot_acc=30.0),
    ]
    v = check_claim(claim(direction="within", margin=4.0), build_report(two).cells)
    assert v.verdict == "inconclusive" and v.measured[0].ci_level == 0.90
    assert v.measured[0].ci[0] < -4.0 and v.measured[0].ci[1] > 4.0


def test_equal_value_and_several_metrics(cells):
    assert check_claim(claim(metric="nll", direction="equal", margin=1e-6), cells).verdict == "pass"
    assert check_claim(claim(metric="nll", direction="equal", margin=1e-8), cells).verdict == "fail"
    v = check_claim(
        claim(direction="greater", value=30.0, margin=5.0), cells
    )  # 40,43,41 - 30: lower bound 7.5
    assert v.verdict == "pass" and v.measured[0].n == 3 and v.measured[0].delta == pytest.approx(34 / 3)
    both = check_claim(claim(metric=["few_shot_acc", "nll"], direction="greater", margin=5.0), cells)
    assert [c.verdict for c in both.measured] == ["pass", "fail"] and both.verdict == "fail"


def test_unresolvable_claims_do_not_pass(cells):
    v = check_claim(claim(a="alpha=effective_num", direction="greater"), cells)
    assert v.verdict == "fail" and "matches no cell" in v.error
    # A suite whose runs all have records: a selector that matches nothing is a failed claim, not one waiting.
    suite = parse_suite(
        "t",
        {
            "grid": ["seed=0"],
            "claims": [
                {
                    "claim": "c",
                    "metric": "few_shot_acc",
                    "a": "alpha=effective_num",
                    "b": "alpha=none",
                    "direction": "greater",
                }
            ],
        },
    )
    assert check_claims(suite, cells, runs_missing=0).claims[0].verdict == "fail"
    waiting = check_claims(suite, cells, runs_missing=3)
    assert (
        waiting.claims[0].verdict == "not_run"
        and "3 of the suite's runs have none" in waiting.claims[0].error
    )
    assert waiting.counts == {"pass": 0, "fail": 0, "inconclusive": 0, "not_run": 1} and not waiting.all_hold
    v = check_claim(claim(a="gamma=0", direction="greater"), cells)
    assert v.verdict == "fail" and "matches 2 cells" in v.error
    v = check_claim(claim(metric="balanced_accuracy", direction="within", margin=100.0), cells)
    assert v.verdict == "inconclusive" and v.measured[0].reason == "not defined for these data"


def test_metric_all_skips_metrics_the_data_do_not_define(tmp_path):
    """few_shot_acc is None in every record (no class has < 20 training images): `metric: all` skips it
    and says so; the old rule failed the claim ("no paired seed")."""
    dirs = []
    for seed in (0, 1):
        for x, alpha in (("a", "inverse_freq"), ("b", "none")):
            test = dict.fromkeys(ALL_METRICS, 50.0 + seed) | {"few_shot_acc": None}
            dirs.append(_record(tmp_path, f"{x}{seed}", seed, alpha, **test))
    cells = build_report(dirs).cells
    v = check_claim(claim(metric="all", direction="equal", margin=1e-6), cells)
    assert v.verdict == "pass"
    skipped = [c for c in v.measured if c.verdict == "skipped"]
    assert [c.metric for c in skipped] == ["few_shot_acc"] and skipped[
        0
    ].reason == "not defined for these data"
    suite = parse_suite(
        "t",
        {
            "grid": ["seed=0"],
            "claims": [
                {
                    "claim": "same",
                    "metric": "all",
                    "a": "alpha=inverse_freq",
                    "b": "alpha=none",
                    "direction": "equal",
                    "margin": 1e-6,
                }
            ],
        },
    )
    verdicts = check_claims(suite, cells)
    assert verdicts.all_hold
    md = verdicts_markdown(verdicts)
    assert "| few-shot %" in md and "skipped" in md and "not defined for these data" in md


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        (
            {"direction": "bigger"},
            "direction=bigger is not valid; choose one of: greater, less, at_least, at_most, equal, within",
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
    assert {"ci", "cifar10_lt", "cifar10_lt_cpu", "cifar10_lt_cpu_precision"} <= set(list_suites())
    ci = load_suite("ci")
    assert len(ci.grids) == 3 and ci.baseline == "loss=ce alpha=none"
    assert [c.direction for c in ci.claims] == ["greater", "greater", "equal", "within", "greater"]
    assert ci.claims[2].metrics == ALL_METRICS
    lt = load_suite("cifar10_lt")
    published = [c.published["a"] for c in lt.claims if c.published]
    assert published == [29.62, 25.43, 22.97, 22.33] and "top1_error" in lt.metrics
    with pytest.raises(ConfigError, match="unknown suite 'cii'; choose one of: .*ci.*cifar10_lt"):
        load_suite("cii")
    with pytest.raises(ConfigError, match="has no suite: key"):
        load_suite("debug")
    with pytest.raises(ConfigError, match="claims is empty"):
        parse_suite("x", {"grid": ["seed=0"], "claims": []})


def test_verdict_files_keep_published_numbers_apart(cells):
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

    verdicts = check_claims(suite, cells)
    assert [v.verdict for v in verdicts.claims] == ["pass", "fail"]
    md = verdicts_markdown(verdicts)
    measured, published = md.split("## Published (not measured here)")
    assert "99.0" not in measured and "99.0" in published and "a paper" in published
    assert "**1 of 2 claims hold; 1 FAIL, 0 INCONCLUSIVE (after Holm's correction; 1 of 2 before it).**" in md
    doc = json.loads(to_json(verdicts))
    counts = {"pass": 1, "fail": 1, "inconclusive": 0, "not_run": 0}
    assert doc["all_hold"] is False and doc["counts"] == counts
    assert doc["claims"][0]["measured"][0]["delta"] == pytest.approx(11.0)
    assert doc["claims"][0]["claim"]["published"]["a"] == 99.0
    console = Console(record=True, width=200)
    print_verdicts(verdicts, console)
    text = console.export_text()
    assert "1 of 2 claims hold; 1 FAIL, 0 INCONCLUSIVE" in text
    # Each verdict line: the effect, its CI with the level, n, the verdict.
    assert "+11" in text and "95% [+8.516, +13.48]" in text and "pass" in text


# ----------------------------------------------------------------------------------------------------------
# reproduce, end to end
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_ci_suite_holds_and_its_folder_reports_the_same(tmp_path):
    console = Console(record=True, width=200)
    code = reproduce("ci", [f"results_dir={tmp_path}"], console=console, show_progress=False)
    sweep = tmp_path / "sweeps" / "ci"
    doc = json.loads((sweep / "verdicts.json").read_text())
    assert code == 0, console.export_text()
    assert doc["all_hold"] and len(doc["claims"]) == 5
    assert [c["verdict"] for c in doc["claims"]] == ["pass"] * 5
    listing = json.loads((sweep / "sweep.json").read_text())
    assert len(listing["run_ids"]) == 25  # 5 cells x 5 seeds
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["claims"] == doc  # the verdicts are part of the one report object
    # `focalbench report <the suite's folder>` regenerates every file byte for byte, verdicts included.
    suite = suite_of_sweep(sweep)
    assert suite is not None and suite.name == "ci"
    written = write_report(suite_report(suite, sweep), tmp_path / "again")
    assert {p.name for p in written} >= {
        "table.md",
        "summary.json",
        "verdicts.md",
        "verdicts.json",
        "metric_vs_gamma.png",
    }
    for path in written:
        if path.name == "report.html":  # its links to the run records are relative to where the page is
            continue
        assert path.read_bytes() == (sweep / path.name).read_bytes(), path.name
    # A plain report of the same runs is a sweep report, without verdicts.
    assert report_paths([sweep]).claims is None


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
  description: a tiny suite with a claim that cannot hold and one that its seeds cannot establish
  grid:
    - ["loss=ce,balanced_ce", "seed=0,1"]
    - ["loss=focal", "gamma=2", "seed=0"]
  claims:
    - claim: "balanced CE beats CE on few-shot accuracy by 1000 points"
      metric: few_shot_acc
      a: "loss=ce alpha=inverse_freq"
      b: "loss=ce alpha=none"
      direction: greater
      margin: 1000.0
    - claim: "focal loss is within 50 points of CE (one seed: no interval)"
      metric: balanced_accuracy
      a: "loss=focal"
      b: "loss=ce alpha=none"
      direction: within
      margin: 50.0
"""


@pytest.fixture(scope="module")
def tiny_suite_run(tmp_path_factory):
    """The tiny suite reproduced once for this module: (its hydra.searchpath override, the results folder,
    the exit code, the printed text)."""
    tmp_path = tmp_path_factory.mktemp("tiny_suite")
    configs = tmp_path / "configs"
    (configs / "experiment").mkdir(parents=True)
    (configs / "experiment" / "tiny_suite.yaml").write_text(TINY_SUITE)
    search = f"hydra.searchpath=[file://{configs}]"
    console = Console(record=True, width=200)
    overrides = [search, f"results_dir={tmp_path / 'results'}"]
    code = reproduce("tiny_suite", overrides, console=console, show_progress=False)
    return search, tmp_path / "results", code, console.export_text()


def test_reproduce_exits_non_zero_when_a_claim_fails_or_is_inconclusive(tiny_suite_run):
    _, results, code, text = tiny_suite_run
    assert code == 1
    doc = json.loads((results / "sweeps" / "tiny_suite" / "verdicts.json").read_text())
    fails, unsure = doc["claims"]
    assert fails["verdict"] == "fail" and fails["measured"][0]["n"] == 2
    assert fails["measured"][0]["delta"] < 1000.0
    assert unsure["verdict"] == "inconclusive" and unsure["measured"][0]["n"] == 1
    assert unsure["measured"][0]["ci"] == [None, None]  # |Δ| is surely < 50, but one seed has no interval
    assert "0 of 2 claims hold; 1 FAIL, 1 INCONCLUSIVE" in text
    assert agg.collect_run_dirs([results / "sweeps" / "tiny_suite"])


def test_report_only_judges_the_records_there_are_and_writes_nothing_without_any(tmp_path, tiny_suite_run):
    """``--report-only`` trains nothing and lists the missing runs; with no record at all (a wrong results_dir,
    or records of an older version) it refuses with one line and writes nothing."""
    search, finished, _, _ = tiny_suite_run
    results = tmp_path / "results"
    shutil.copytree(finished, results)
    runs = sorted((results / "runs").iterdir())
    shutil.rmtree(runs[0])  # one run of five "not finished yet"

    console = Console(record=True, width=200)
    reproduce("tiny_suite", [search, f"results_dir={results}"], console=console, report_only=True)
    assert "4 of 5 runs have records; nothing trained (--report-only)" in console.export_text()
    assert sorted((results / "runs").iterdir()) == runs[1:]  # nothing trained
    listing = json.loads((results / "sweeps" / "tiny_suite" / "sweep.json").read_text())
    assert sorted(c["status"] for c in listing["runs"]) == ["missing", "ok", "ok", "ok", "ok"]

    # Only the focal cell's run not finished yet: its claim is not run yet, not failed, and says so.
    waiting = tmp_path / "waiting"
    shutil.copytree(finished, waiting)
    for run in (waiting / "runs").iterdir():
        if yaml.safe_load((run / "config.yaml").read_text())["loss"]["name"] == "focal":
            shutil.rmtree(run)
    console = Console(record=True, width=200)
    code = reproduce("tiny_suite", [search, f"results_dir={waiting}"], console=console, report_only=True)
    doc = json.loads((waiting / "sweeps" / "tiny_suite" / "verdicts.json").read_text())
    assert code == 1 and [c["verdict"] for c in doc["claims"]] == ["fail", "not_run"]
    assert "0 of 2 claims hold; 1 FAIL, 0 INCONCLUSIVE, 1 not run yet" in console.export_text()

    empty = tmp_path / "elsewhere"
    out = run_cli("reproduce", "tiny_suite", search, f"results_dir={empty}", "--report-only", cwd=tmp_path)
    assert out.returncode == 2
    assert "none of the 5 runs of suite tiny_suite has a record" in out.stderr
    assert "(check results_dir=, or train them with focalbench reproduce tiny_suite)" in out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert not (empty / "sweeps").exists()


@pytest.mark.parametrize(
    "name", ["ci", "cifar10_lt", "cifar10_lt_cpu", "cifar10_lt_cpu_precision", "article", "article_precision"]
)
def test_every_claim_selects_exactly_one_cell_of_its_suite(name, monkeypatch):
    """A typo in a selector would make a claim fail only after hours of training: check it at no cost, on the
    planned grid (composed and validated, nothing trained)."""
    from focalbench.reports import aggregate as agg
    from focalbench.sweeps import plan as plan_module
    from focalbench.sweeps.reproduce import plan_suite

    monkeypatch.setattr(plan_module, "check_data_available", lambda cfg: None)  # no CIFAR files needed
    suite = load_suite(name)
    cells = [c for plan in plan_suite(suite) for c in plan.cells]
    configs = {}
    for cell in cells:  # one entry per cell of seeds: the seed does not select
        flat = agg.flatten(agg.semantic_part(OmegaConf.to_container(cell.cfg, resolve=True)))
        configs[tuple(sorted((k, str(v)) for k, v in flat.items()))] = flat
    flats = list(configs.values())
    for claim in suite.claims:
        for selector in filter(None, (claim.a, claim.b)):
            assert len(agg.select(flats, flats, selector)) == 1, (claim.text, selector)


# ----------------------------------------------------------------------------------------------------------
# One-sided non-inferiority, p-values and Holm's correction
# ----------------------------------------------------------------------------------------------------------


# Swapped sides: A − B = −10, −12, −11 (Δ = −11, 90% CI [−12.69, −9.31]).
@pytest.mark.parametrize(
    ("kw", "swap", "verdict", "why"),
    [
        ({"direction": "at_least", "margin": 0.0}, False, "pass", None),
        ({"direction": "at_least", "margin": 5.0}, True, "fail", "90% CI wholly below −5"),
        ({"direction": "at_least", "margin": 10.0}, True, "inconclusive", "90% CI includes −10"),
        ({"direction": "at_most", "margin": 0.0}, True, "pass", None),
        ({"direction": "at_most", "margin": 5.0}, False, "fail", "90% CI wholly above 5"),
        ({"direction": "at_most", "margin": 10.0}, False, "inconclusive", "90% CI includes 10"),
    ],
)
def test_non_inferiority_is_one_sided_at_5_percent(cells, kw, swap, verdict, why):
    c = claim(**kw)
    if swap:
        c = parse_claim(
            "t",
            0,
            {"claim": "c", "metric": "few_shot_acc", "a": "alpha=none", "b": "alpha=inverse_freq"} | kw,
        )
    v = check_claim(c, cells)
    assert v.verdict == verdict and v.measured[0].ci_level == 0.90
    assert (v.measured[0].reason or "").startswith(why or "")


@pytest.mark.parametrize(
    ("direction", "margin", "alternative", "shift"),
    [("greater", 9.0, "greater", 9.0), ("less", 0.0, "less", 0.0), ("at_least", 12.0, "greater", -12.0),
     ("at_most", 11.5, "less", 11.5)],
)  # fmt: skip
def test_p_values_are_scipys_one_sided_t_tests(cells, direction, margin, alternative, shift):
    from scipy import stats as sps

    v = check_claim(claim(direction=direction, margin=margin), cells)
    expected = sps.ttest_1samp([10.0, 12.0, 11.0], shift, alternative=alternative).pvalue
    assert v.p_value == pytest.approx(expected, rel=1e-9)
    assert (v.p_value < v.claim.alpha) == (v.verdict == "pass")  # the CI rule and the test agree


def test_within_takes_the_larger_of_its_two_one_sided_p_values(cells):
    from scipy import stats as sps

    v = check_claim(claim(direction="within", margin=13.0), cells)
    diffs = [10.0, 12.0, 11.0]
    p_low = sps.ttest_1samp(diffs, -13.0, alternative="greater").pvalue
    p_high = sps.ttest_1samp(diffs, 13.0, alternative="less").pvalue
    assert v.p_value == pytest.approx(max(p_low, p_high), rel=1e-9)
    assert check_claim(claim(direction="equal", margin=11.5), cells).p_value is None  # outside the family


def test_holm_adjusted_p_values():
    from focalbench.reports.claims import holm_adjust

    assert holm_adjust([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5]) == [0.5]
    assert holm_adjust([0.2, 0.9]) == pytest.approx([0.4, 0.9])


def _suite(claims, multiplicity="holm"):
    from types import SimpleNamespace

    return SimpleNamespace(
        name="t", description="", grids=[], baseline=None, claims=claims, multiplicity=multiplicity
    )


def test_holm_turns_passes_that_need_the_whole_family_into_inconclusive(tmp_path):
    """Two claims, each with A − B = 2, 4, 3 (p = 0.0175 < 0.025 alone): together Holm multiplies the smaller
    p by 2 (0.035 >= 0.025), and neither holds. A third, clear claim (p = 0.0014) survives."""
    dirs = []
    for seed, d in enumerate((2.0, 4.0, 3.0)):
        dirs.append(_record(tmp_path, f"a{seed}", seed, "inverse_freq", few_shot_acc=30 + d, nll=1 + d))
        dirs.append(_record(tmp_path, f"b{seed}", seed, "none", few_shot_acc=30.0, nll=1.0))
    cells = build_report(dirs, metrics=["few_shot_acc", "nll"]).cells
    claims = [claim(direction="greater"), claim(direction="greater", metric="nll")]
    unadjusted = check_claims(_suite(claims, "none"), cells)
    assert [v.verdict for v in unadjusted.claims] == ["pass", "pass"] and unadjusted.all_hold
    adjusted = check_claims(_suite(claims), cells)
    assert [v.verdict for v in adjusted.claims] == ["inconclusive", "inconclusive"]
    assert [v.verdict_unadjusted for v in adjusted.claims] == ["pass", "pass"]
    assert adjusted.claims[0].p_adjusted == pytest.approx(2 * adjusted.claims[0].p_value)
    assert "does not survive Holm over 2 claims" in adjusted.claims[0].adjustment
    assert not adjusted.all_hold and adjusted.counts_unadjusted["pass"] == 2
    text = verdicts_markdown(adjusted)
    assert "0 of 2 claims hold" in text and "(after Holm's correction; 2 of 2 before it)" in text
    assert "Holm-adjusted" in text and "p_adj" in text


def test_a_clear_claim_survives_holm(cells):
    claims = [claim(direction="greater"), claim(direction="equal", margin=12.0)]
    verdicts = check_claims(_suite(claims), cells)
    assert [v.verdict for v in verdicts.claims] == ["pass", "pass"]
    assert verdicts.claims[0].p_adjusted == pytest.approx(verdicts.claims[0].p_value)  # a family of one
    assert verdicts.claims[1].p_adjusted is None


def test_a_suite_declares_its_multiplicity_rule():
    raw = {"grid": ["seed=0"], "claims": [{"claim": "c", "metric": "nll", "a": "gamma=0", "value": 1.0,
                                           "direction": "less"}]}  # fmt: skip
    assert parse_suite("s", raw).multiplicity == "holm"  # the default
    assert parse_suite("s", raw | {"multiplicity": "none"}).multiplicity == "none"
    with pytest.raises(ConfigError, match="multiplicity=bonferroni is not valid"):
        parse_suite("s", raw | {"multiplicity": "bonferroni"})
