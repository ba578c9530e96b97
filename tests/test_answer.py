"""The answer in words: hand-built records with known effects, and the exact sentences they must give."""

from __future__ import annotations

import json

import pytest
from scipy import stats as sps

from focalbench.reports.report import build_report
from tests.test_reports import write_record

BASE = {0: 60.0, 1: 61.0, 2: 62.0}  # loss=ce alpha=none, the baseline


def cells_of(tmp_path, spec: dict[tuple, dict[int, float]], **kw):
    """Write one record per (loss, gamma, alpha) and seed with the given balanced accuracy; build the report."""
    runs, dirs = tmp_path / "runs", []
    for (loss, gamma, alpha), values in spec.items():
        for seed, v in values.items():
            rid = f"{loss}{gamma}{alpha}{seed}".replace(".", "")
            dirs.append(
                write_record(runs, rid, seed, gamma=gamma, alpha=alpha, loss=loss, balanced_accuracy=v)
            )
    return build_report(dirs, metrics=["balanced_accuracy"], baseline="loss=ce alpha=none", **kw)


def ci(diffs: list[float]) -> tuple[float, float, float]:
    """Mean and 95% Student-t interval of paired differences, computed here independently."""
    m = sum(diffs) / len(diffs)
    half = sps.t.ppf(0.975, len(diffs) - 1) * sps.tstd(diffs) / len(diffs) ** 0.5
    return m, m - half, m + half


def fmt(x: float) -> str:
    return f"{x:+.2f}"


def test_a_clear_gain_a_clear_loss_and_the_recommendation(tmp_path):
    report = cells_of(
        tmp_path,
        {
            ("ce", 0.0, "none"): BASE,
            ("ce", 0.0, "inverse_freq"): {0: 70.0, 1: 71.5, 2: 72.0},  # +10, +10.5, +10
            ("focal", 2.0, "none"): {0: 55.0, 1: 55.0, 2: 56.5},  # -5, -6, -5.5
        },
    )
    gain, loss = ci([10.0, 10.5, 10.0]), ci([-5.0, -6.0, -5.5])
    lines = report.answer.lines
    assert lines[0] == (
        "2 cells compared with 'loss=ce alpha=none' on 1 metric: 2 comparisons, Holm-adjusted per metric."
    )
    assert lines[1] == (
        "'loss=ce alpha=inverse_freq' raises balanced accuracy against 'loss=ce alpha=none': "
        f"{fmt(gain[0])}, 95% CI [{fmt(gain[1])}, {fmt(gain[2])}], 3 seeds."
    )
    assert lines[2] == (
        "'loss=focal gamma=2 alpha=none' lowers balanced accuracy against 'loss=ce alpha=none': "
        f"{fmt(loss[0])}, 95% CI [{fmt(loss[1])}, {fmt(loss[2])}], 3 seeds."
    )
    assert lines[3] == (
        "On balanced accuracy, 'loss=ce alpha=inverse_freq' is the best supported choice: "
        f"{fmt(gain[0])}, 95% CI [{fmt(gain[1])}, {fmt(gain[2])}], 3 seeds against 'loss=ce alpha=none'."
    )
    summary = json.loads(json.dumps(report.answer, default=lambda o: o.__dict__))
    verdicts = {f["cell"]: f["verdict"] for f in summary["settings"][0]["findings"]}
    assert verdicts == {
        "loss=ce alpha=inverse_freq": "better",
        "loss=focal gamma=2 alpha=none": "worse",
    }


def test_where_lower_is_better_the_answer_says_which_way_is_better(tmp_path):
    """'raises ECE' reads as good news to many: the verb keeps its direction and says (worse) or (better)."""
    runs, dirs = tmp_path / "runs", []
    for (loss, gamma), values in {("ce", 0.0): [4.0, 4.5, 5.0], ("focal", 2.0): [9.0, 10.0, 10.5]}.items():
        for seed, v in enumerate(values):
            dirs.append(write_record(runs, f"{loss}{seed}", seed, gamma=gamma, loss=loss, ece=v))
    report = build_report(dirs, metrics=["ece"], baseline="loss=ce alpha=none")
    assert report.answer.lines[1].startswith(
        "'loss=focal gamma=2' raises ECE (worse) against 'loss=ce': +5.33"
    )
    flipped = build_report(dirs, metrics=["ece"], baseline="loss=focal")
    assert flipped.answer.lines[1].startswith("'loss=ce' lowers ECE (better) against 'loss=focal gamma=2'")


def test_a_null_says_how_large_an_effect_the_ci_allows_and_what_would_settle_it(tmp_path):
    report = cells_of(
        tmp_path, {("ce", 0.0, "none"): BASE, ("focal", 1.0, "none"): {0: 63.0, 1: 57.0, 2: 64.0}}
    )  # +3, -4, +2
    mean, low, high = ci([3.0, -4.0, 2.0])
    lines = report.answer.lines
    assert lines[1] == (
        "No cell differs from 'loss=ce' on balanced accuracy beyond the noise (the largest "
        f"gain: 'loss=focal gamma=1' {fmt(mean)}, 95% CI [{fmt(low)}, {fmt(high)}], 3 seeds); the CIs "
        f"still allow effects from {fmt(low)} to {fmt(high)} ('loss=focal gamma=1')."
    )
    assert lines[2] == "No setting beats 'loss=ce' on balanced accuracy on this data: keep it."
    # seeds for a ±1 CI at the observed std of the differences, found here independently
    std = sps.tstd([3.0, -4.0, 2.0])
    need = next(n for n in range(2, 1000) if sps.t.ppf(0.975, n - 1) * std / n**0.5 <= 1.0)
    assert lines[3].endswith(f"'loss=focal gamma=1' about {need} (paired std {std:.2f} over 3).")


def test_equivalence_only_with_a_margin(tmp_path):
    spec = {("ce", 0.0, "none"): BASE, ("focal", 1.0, "none"): {0: 60.2, 1: 60.9, 2: 62.1}}  # +.2, -.1, +.1
    without = cells_of(tmp_path / "a", spec)
    assert [f.verdict for f in without.answer.settings[0].findings] == ["no_difference"]
    with_margin = cells_of(tmp_path / "b", spec, margin=1.0)
    (finding,) = with_margin.answer.settings[0].findings
    assert finding.verdict == "equivalent" and finding.within_margin
    assert any(
        line.startswith("'loss=focal gamma=1' is equivalent to 'loss=ce' on balanced")
        for line in with_margin.answer.lines
    )
    assert with_margin.answer.lines[-1].startswith("Equivalence margin: ±1 points")


def test_one_seed_gives_no_interval_and_no_recommendation(tmp_path):
    report = cells_of(tmp_path, {("ce", 0.0, "none"): {0: 60.0}, ("focal", 2.0, "none"): {0: 75.0}})
    assert report.answer.lines[1] == (
        "'loss=focal gamma=2' on balanced accuracy: +15.00, no CI (1 seed): one paired seed gives no "
        "interval, so nothing can be told."
    )
    assert report.answer.lines[2] == (
        "Too few paired seeds to compare anything with 'loss=ce': run more seeds."
    )


def test_failed_and_diverged_runs_are_named_and_unpaired_seeds_are_said(tmp_path):
    runs = tmp_path / "runs"
    dirs = [write_record(runs, f"b{s}", s, balanced_accuracy=v) for s, v in BASE.items()]
    dirs += [write_record(runs, f"a{s}", s, alpha="inverse_freq", balanced_accuracy=v)
             for s, v in {0: 70.0, 1: 71.0, 3: 90.0}.items()]  # fmt: skip  # seed 3: no partner
    dirs.append(write_record(runs, "a2", 2, status="diverged", alpha="inverse_freq"))
    report = build_report(dirs, metrics=["balanced_accuracy"], baseline="alpha=none")
    lines = report.answer.lines
    assert "paired on seeds 0,1 of 0,1,2,3" in lines[1] and "2 seeds" in lines[1]
    assert "Not in the comparison: 'alpha=inverse_freq' seed 2 (diverged)." in lines


def test_holm_marks_gains_that_need_the_whole_family(tmp_path):
    """Two cells, each +2, +4, +3 (two-sided p = 0.035 alone): Holm over the two comparisons doubles the
    smaller p (0.07), so neither gain survives, and nothing is recommended on them."""
    report = cells_of(
        tmp_path,
        {
            ("ce", 0.0, "none"): BASE,
            ("focal", 1.0, "none"): {0: 62.0, 1: 65.0, 2: 65.0},
            ("focal", 2.0, "none"): {0: 62.0, 1: 65.0, 2: 65.0},
        },
    )
    findings = report.answer.settings[0].findings
    p = sps.ttest_1samp([2.0, 4.0, 3.0], 0.0).pvalue
    assert [f.p_value for f in findings] == pytest.approx([p, p]) and p < 0.05
    assert [f.p_holm for f in findings] == pytest.approx([2 * p, 2 * p])
    assert [f.survives_holm for f in findings] == [False, False]
    assert "(does not survive Holm's correction over 2 comparisons)" in report.answer.lines[1]
    assert report.answer.settings[0].recommendation == (
        "No setting beats 'loss=ce' on balanced accuracy on this data: keep it."
    )


def test_winners_inside_the_noise_of_each_other_are_not_ranked(tmp_path):
    report = cells_of(
        tmp_path,
        {
            ("ce", 0.0, "none"): BASE,
            ("ce", 0.0, "inverse_freq"): {0: 70.0, 1: 71.0, 2: 72.0},
            ("focal", 2.0, "inverse_freq"): {0: 70.5, 1: 70.5, 2: 72.5},
        },
    )
    assert report.answer.settings[0].recommendation.endswith(
        "each beat 'loss=ce alpha=none' on balanced accuracy beyond the noise, but cannot be told apart "
        "from each other with these seeds: none is preferred."
    )


def test_time_is_never_a_best_cell(tmp_path):
    runs = tmp_path / "runs"
    dirs = [write_record(runs, f"b{s}", s, balanced_accuracy=v) for s, v in BASE.items()]
    dirs += [
        write_record(runs, f"a{s}", s, alpha="inverse_freq", balanced_accuracy=v + 1) for s, v in BASE.items()
    ]
    report = build_report(dirs, metrics=["balanced_accuracy", "wall_time_s"], baseline="alpha=none")
    assert {b.metric for b in report.best} == {"balanced_accuracy"}


def _with_history(run_dir, values):
    rows = ["epoch,val_balanced_accuracy,val_nll"] + [f"{e + 1},{v},{1.0}" for e, v in enumerate(values)]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")


def test_a_cell_still_improving_at_its_last_epoch_is_called_under_trained(tmp_path):
    from focalbench.reports.convergence import cell_convergence

    runs = tmp_path / "runs"
    dirs = []
    for seed, v in BASE.items():
        d = write_record(runs, f"b{seed}", seed, balanced_accuracy=v)
        _with_history(d, [50, 55, 58, 59, 59.2, 59.1, 59.3, 59.2 + seed / 10, 59.1, 59.2])  # flat at the end
        dirs.append(d)
    for seed, v in {0: 61.0, 1: 62.0, 2: 63.0}.items():
        d = write_record(runs, f"a{seed}", seed, alpha="inverse_freq", balanced_accuracy=v)
        _with_history(d, [40 + 2 * e + seed * 0.1 for e in range(10)])  # +2 points an epoch to the end
        dirs.append(d)
    report = build_report(dirs, metrics=["balanced_accuracy"], baseline="alpha=none")
    flat, rising = (cell_convergence(c) for c in report.cells)
    assert flat.still_improving is False and rising.still_improving is True
    assert rising.slope == pytest.approx(2.0) and rising.window == 3 and rising.epochs == 10
    assert (
        "'alpha=inverse_freq' is still improving at its last epoch (validation balanced accuracy +2.00 points per "
        "epoch over the last 3 of 10 epochs, 95% CI [+2.00, +2.00]): under-trained, so the verdict may change with "
        "more epochs; try epochs=20."
    ) in report.answer.lines
    assert not any("'alpha=none' is still improving" in line for line in report.answer.lines)


def _tuning_records(tmp_path):
    """A baseline and a cell that is better on validation but worse on test, with 3 seeds each: a tuning
    sweep must be answered on the metric it selects on, so the two disagree on purpose."""
    runs, dirs = tmp_path / "runs", []
    cells = {
        "none": ({0: 50.0, 1: 51.0, 2: 52.0}, BASE),  # (validation, test) balanced accuracy
        "inverse_freq": ({0: 55.0, 1: 56.5, 2: 57.0}, {0: 58.0, 1: 58.5, 2: 60.5}),
    }
    for alpha, (val, test) in cells.items():
        for seed in BASE:
            d = write_record(runs, f"{alpha}{seed}", seed, alpha=alpha, balanced_accuracy=test[seed], ece=3.0)
            record = json.loads((d / "metrics.json").read_text())
            record["val"] = {"balanced_accuracy": val[seed]}
            (d / "metrics.json").write_text(json.dumps(record))
            dirs.append(d)
    return dirs


def test_the_metrics_the_user_names_are_what_the_answer_compares_on(tmp_path):
    """`focalbench report --metrics val.balanced_accuracy,balanced_accuracy`: the answer compares on those two,
    not on its three default families, and recommends on the first (validation), never on the test set."""
    from focalbench.reports.report import report_paths

    dirs = _tuning_records(tmp_path)
    report = report_paths(dirs, ["val.balanced_accuracy", "balanced_accuracy"], baseline="alpha=none")
    val, test = ci([5.0, 5.5, 5.0]), ci([-2.0, -2.5, -1.5])
    setting = report.answer.settings[0]
    assert setting.primary == "val.balanced_accuracy"
    assert [(f.family, f.metric) for f in setting.findings] == [
        ("primary", "val.balanced_accuracy"),
        ("chosen", "balanced_accuracy"),
    ]  # ECE is in the records but was not asked for
    lines = report.answer.lines
    assert lines[0] == (
        "1 cell compared with 'alpha=none' on 2 metrics (the metrics asked for; the first, validation balanced "
        "accuracy, carries the recommendation): 2 comparisons, Holm-adjusted per metric."
    )
    assert lines[1] == (
        "'alpha=inverse_freq' raises validation balanced accuracy against 'alpha=none': "
        f"{fmt(val[0])}, 95% CI [{fmt(val[1])}, {fmt(val[2])}], 3 seeds."
    )
    assert lines[2] == (
        "'alpha=inverse_freq' lowers balanced accuracy against 'alpha=none': "
        f"{fmt(test[0])}, 95% CI [{fmt(test[1])}, {fmt(test[2])}], 3 seeds."
    )
    assert lines[3] == (
        "On validation balanced accuracy, 'alpha=inverse_freq' is the best supported choice: "
        f"{fmt(val[0])}, 95% CI [{fmt(val[1])}, {fmt(val[2])}], 3 seeds against 'alpha=none'."
    )
    # the same records without named metrics: the three families, on the test set
    default = build_report(dirs, ["val.balanced_accuracy", "balanced_accuracy", "ece"], baseline="alpha=none")
    assert {f.metric for f in default.answer.settings[0].findings} == {"balanced_accuracy", "ece"}
    assert default.answer.lines[-1].startswith("The 95% CIs cover")
    assert any(
        line.startswith("No setting beats 'alpha=none' on balanced accuracy") for line in default.answer.lines
    )


def test_a_margin_is_in_points_of_the_first_named_metric(tmp_path):
    from focalbench.reports.report import report_paths

    report = report_paths(
        _tuning_records(tmp_path), ["val.balanced_accuracy"], baseline="alpha=none", margin=1.0
    )
    assert report.answer.lines[-1] == (
        "Equivalence margin: ±1 points of validation balanced accuracy (90% CI, two one-sided tests)."
    )


def test_named_metrics_that_cannot_be_compared_give_no_recommendation(tmp_path):
    """Time is never compared between cells (a fused member records a share of its group's time)."""
    from focalbench.reports.report import report_paths

    report = report_paths(_tuning_records(tmp_path), ["wall_time_s"], baseline="alpha=none")
    assert report.answer.settings[0].findings == []
    assert report.answer.lines[1] == (
        "None of the metrics asked for (wall_time_s) can be compared between cells here (time never is), so "
        "nothing is recommended."
    )
