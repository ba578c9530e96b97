"""The README's headline is what the committed records of the article study give, and the generator says a
study in progress is in progress."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from focalbench.reports.headline import (
    END,
    START,
    across_settings,
    compute_text,
    headline_markdown,
    mechanism_text,
    methods_table,
    replace_block,
    setting_changes,
    settings_table,
)
from focalbench.reports.report import build_report
from focalbench.sweeps.reproduce import suite_of_sweep, suite_report
from tests.conftest import REPO

SWEEP = REPO / "results" / "article" / "sweeps" / "article"
PRECISION_SWEEP = REPO / "results" / "article" / "sweeps" / "article_precision"


@pytest.mark.skipif(
    not (SWEEP / "sweep.json").is_file(), reason="the article study's sweep folder is not committed"
)
def test_the_readme_headline_regenerates_from_the_committed_records():
    report = suite_report(suite_of_sweep(SWEEP), SWEEP)
    precision = PRECISION_SWEEP
    precision = (
        suite_report(suite_of_sweep(precision), precision) if (precision / "sweep.json").is_file() else None
    )
    expected = headline_markdown(report, "results/article/sweeps/article", precision)
    readme = (REPO / "README.md").read_text()
    block = re.search(re.escape(START) + r"\n(.*)\n" + re.escape(END), readme, re.S).group(1)
    assert block == expected, (
        "README.md: run python -m focalbench.reports.headline results/article/sweeps/article README.md "
        "results/article/sweeps/article_precision"
    )


def test_replace_block_keeps_the_rest_and_needs_the_markers():
    text = f"a\n{START}\nold\n{END}\nb\n"
    assert replace_block(text, "new") == f"a\n{START}\nnew\n{END}\nb\n"
    with pytest.raises(ValueError, match="no <!-- article:start -->"):
        replace_block("no markers", "new")


def _run(root, rid, seed, alpha, epochs, data_seed, balanced_accuracy, environment=None, wall=None):
    rdir = root / rid
    rdir.mkdir(parents=True)
    cfg = {
        "data": {"name": "synthetic", "data_seed": data_seed},
        "loss": {"name": "ce", "beta": 0.9999},
        "gamma": 0.0,
        "alpha": alpha,
        "seed": seed,
        "epochs": epochs,
    }
    (rdir / "config.yaml").write_text(yaml.safe_dump(cfg))
    test = {"balanced_accuracy": balanced_accuracy}
    metrics = {"status": "ok", "seed": seed, "loss": {"alpha": alpha}, "data": {}, "test": test}
    if environment is not None:
        metrics |= {"environment": environment, "timing": {"wall_time_s": wall}}
    (rdir / "metrics.json").write_text(json.dumps(metrics))
    return rdir


def test_compute_text_sums_the_records_wall_time_per_machine(tmp_path):
    zen = {"device": "cpu", "cpu": "AMD EPYC (native bf16: avx512_bf16)", "precision": "bf16", "threads": 1}
    xeon = {"device": "cpu", "cpu": "Intel Xeon (native bf16: amx_bf16)", "precision": "bf16", "threads": 2}
    avx2 = {"device": "cpu", "cpu": "AMD EPYC (no native bf16)", "precision": "bf16", "threads": 1}
    avx2["bf16_convolutions"] = "bf16 operands, fp32 products, rounded to bf16 (no native bf16 on this CPU)"
    dirs = [
        _run(tmp_path, "a0", 0, "none", 25, 0, 60.0, zen, 1800.0),
        _run(tmp_path, "a1", 1, "none", 25, 0, 61.0, zen, 1800.0),
        _run(tmp_path, "b0", 0, "effective_num", 25, 0, 55.0, xeon, 3600.0),
        _run(tmp_path, "b1", 1, "effective_num", 25, 0, 56.0, xeon, None),  # no wall time: not counted
        _run(tmp_path, "b2", 2, "effective_num", 25, 0, 57.0, avx2, 1800.0),
    ]
    report = build_report(dirs, metrics=["balanced_accuracy"])
    assert compute_text(report) == (
        "**Compute**: 4 runs, 2.5 h of run wall time (each record's `timing.wall_time_s`; runs that shared a "
        "machine each count their own time): 2 on AMD EPYC (native bf16: avx512_bf16), bf16, 1 thread a run: "
        "1.0 h; 1 on Intel Xeon (native bf16: amx_bf16), bf16, 2 threads a run: 1.0 h; 1 on AMD EPYC (no "
        "native bf16), bf16 (convolutions as fp32 products rounded to bf16), 1 thread a run: 0.5 h."
    )
    assert compute_text(build_report(dirs[3:4], metrics=["balanced_accuracy"])) == ""


def test_methods_run_in_several_settings_get_one_row_with_a_column_per_setting(tmp_path):
    # CE and class-balanced CE at 25 and 100 epochs; CE alone on a second long-tailed subset.
    dirs = []
    for s in range(3):
        dirs.append(_run(tmp_path, f"ce25_{s}", s, "none", 25, 0, 60.0 + s))
        dirs.append(_run(tmp_path, f"cb25_{s}", s, "effective_num", 25, 0, 55.0 + s))
        dirs.append(_run(tmp_path, f"ce100_{s}", s, "none", 100, 0, 65.0 + s))
        dirs.append(_run(tmp_path, f"cb100_{s}", s, "effective_num", 100, 0, 66.0 + 1.5 * s))
        dirs.append(_run(tmp_path, f"ce25d1_{s}", s, "none", 25, 1, 61.0 + s))
    report = build_report(dirs, metrics=["balanced_accuracy"], group_by=["epochs", "data.data_seed"])
    assert report.settings == ["epochs=25 data_seed=0", "epochs=100 data_seed=0", "epochs=25 data_seed=1"]

    # The first setting's table names methods without the setting's keys.
    methods = methods_table(report)
    assert "| alpha=effective_num |" in methods and "epochs=" not in methods

    lines = settings_table(report).splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["method", *report.settings]
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")[1:]] for r in lines[2:]}
    assert set(rows) == {"alpha=none", "alpha=effective_num"}
    # Class weights lose 5 points at 25 epochs and gain 1.5 [CI above 0] at 100: each against its own CE.
    assert rows["alpha=effective_num"][0] == "56.00 ± 1.00, n = 3; Δ -5.00 [-5.00, -5.00]"
    assert rows["alpha=effective_num"][1].startswith("67.50 ± 1.50, n = 3; Δ +1.50 [+0.26, +2.74]")
    assert rows["alpha=effective_num"][2] == "—"
    assert rows["alpha=none"] == ["61.00 ± 1.00, n = 3", "66.00 ± 1.00, n = 3", "62.00 ± 1.00, n = 3"]
    assert across_settings(report).startswith("#### Across settings")
    # In words: the longer budget moved class weights from below CE to above it; the second subset has no
    # method but the baseline, so it has no line.
    assert setting_changes(report) == [
        "- `epochs=100`: alpha=effective_num: lower (-5.00 [-5.00, -5.00]) → higher (+1.50 [+0.26, +2.74]), "
        "changed."
    ]
    assert setting_changes(report)[0] in across_settings(report)

    # One setting: no such table.
    one = build_report(dirs[:2], metrics=["balanced_accuracy"])
    assert settings_table(one) == "" and across_settings(one) == "" and setting_changes(one) == []


def test_mechanism_text_gives_how_hard_the_rare_classes_are_and_their_share_of_the_loss(tmp_path):
    # 5 classes, 100..20 training examples: the rarest fifth is class 4, the most frequent class 0.
    counts = [100, 80, 60, 40, 20]
    dirs = []
    for loss, gamma, tail_share in (("ce", 0.0, 0.10), ("focal", 2.0, 0.14)):
        for seed in (0, 1):
            rdir = tmp_path / f"{loss}{seed}"
            rdir.mkdir()
            cfg = {"data": {"name": "synthetic"}, "loss": {"name": loss}, "gamma": gamma, "alpha": "none"}
            (rdir / "config.yaml").write_text(yaml.safe_dump(cfg | {"seed": seed}))
            metrics = {
                "status": "ok",
                "seed": seed,
                "loss": {"alpha": "none"},
                "data": {"train_counts": counts},
            }
            (rdir / "metrics.json").write_text(json.dumps(metrics | {"test": {"balanced_accuracy": 50.0}}))
            rows = ["epoch,class,seen,mean_p_t,loss_share"]
            for epoch in (1, 2):  # class 4 (rarest): p_t 0.2 and 0.4 -> mean 0.3; class 0: 0.9
                shares = [0.4, 0.2, 0.2, 0.1 + 0.1 - tail_share, tail_share]
                p_t = [0.9, 0.7, 0.6, 0.5, 0.2 * epoch]
                rows += [f"{epoch},{c},{counts[c]},{p_t[c]},{shares[c]}" for c in range(5)]
            (rdir / "train_classes.csv").write_text("\n".join(rows) + "\n")
            dirs.append(rdir)
    report = build_report(dirs, metrics=["balanced_accuracy"])
    text = mechanism_text(report)
    assert "(4: 6.7 % of the training examples) are the hard ones" in text
    assert "mean p_t is 0.30, against 0.90 for the most frequent fifth (0)" in text
    assert "10.0 % under `loss=ce`" in text and "`loss=focal gamma=2`: 14.0 %." in text
    # Without the per-class statistics there is nothing to say.
    for rdir in dirs:
        (rdir / "train_classes.csv").unlink()
    assert mechanism_text(build_report(dirs, metrics=["balanced_accuracy"])) == ""


@pytest.mark.skipif(
    not (PRECISION_SWEEP / "sweep.json").is_file(),
    reason="the article study's precision test is not committed",
)
def test_precision_text_lists_the_precision_claims_and_the_caveat_of_each_loss_that_fails():
    from focalbench.reports.claims import NOT_RUN, PASS
    from focalbench.reports.headline import precision_text

    report = suite_report(suite_of_sweep(SWEEP), SWEEP)
    precision = suite_report(suite_of_sweep(PRECISION_SWEEP), PRECISION_SWEEP)
    text = precision_text(report, precision)
    assert text.startswith("**Precision.** This study's runs are bf16 ")
    assert "bf16 on " in text and "fp32 on " in text  # the machines each precision ran on
    for verdict in precision.claims.claims:
        assert f"- {verdict.claim.text}: " in text
    failed = {v.claim.text.split(":")[0] for v in precision.claims.claims if v.verdict not in (PASS, NOT_RUN)}
    if failed:
        caveat = text.split("Where a claim does not hold (", 1)[1].split("), that loss's results", 1)[0]
        assert set(caveat.split("; ")) == failed and "**bf16, equivalence to fp32 not shown**" in text
    else:
        assert "not shown" not in text
    assert precision_text(report, None) == ""
