"""What each metric rests on, and sanity flags: computed from run records alone, shown in the reports."""

from __future__ import annotations

from focalbench.reports import render
from focalbench.reports.basis import Basis, metric_basis
from focalbench.reports.report import build_report
from tests.test_reports import write_record

# Three classes with 300, 50 and 5 training examples (write_record's train_counts): many, medium, few.
CONFUSION = [[190, 10, 0], [5, 35, 0], [3, 1, 2]]  # test examples per class: 200, 40, 6


def test_each_metric_rests_on_the_classes_and_test_examples_of_its_group():
    metrics = {"data": {"train_counts": [300, 50, 5]}, "test": {"confusion_matrix": CONFUSION}}
    basis = metric_basis(metrics, many_threshold=100, few_threshold=20)
    assert basis["balanced_accuracy"] == basis["nll"] == Basis(3, 246)
    assert basis["many_shot_acc"] == Basis(1, 200) and basis["medium_shot_acc"] == Basis(1, 40)
    assert basis["few_shot_acc"] == basis["tail_acc"] == Basis(1, 6)  # the rarest fifth: ceil(3/5) = 1 class
    assert basis["few_shot_acc"].few and not basis["medium_shot_acc"].few
    # A record without a confusion matrix has nothing to say, and says nothing.
    assert metric_basis({"data": {"train_counts": [3, 2]}, "test": {}}, 100, 20) == {}


def _report(tmp_path, confusion=CONFUSION):
    runs, dirs = tmp_path / "runs", []
    for alpha, base in (("none", 60.0), ("inverse_freq", 62.0)):
        for seed in range(3):
            extra = {"confusion_matrix": confusion} if confusion else {}
            dirs.append(
                write_record(
                    runs,
                    f"{alpha}{seed}",
                    seed,
                    alpha=alpha,
                    balanced_accuracy=base + seed,
                    few_shot_acc=30.0 + 10 * seed,
                    **extra,
                )
            )
    return build_report(dirs, metrics=["balanced_accuracy", "few_shot_acc"], baseline="alpha=none")


def test_a_metric_on_few_test_examples_is_flagged_in_the_tables_the_notes_and_the_answer(tmp_path):
    report = _report(tmp_path)
    assert report.notes["basis"] == [
        "bal. acc %: 3 classes, 246 test examples",
        "few-shot %: 1 class, 6 test examples ‡ fewer than 30 test examples: one example moves it by 16.7 "
        "points, so its CI is wide",
    ]
    table = render.markdown(report)
    assert "| few-shot % ‡ " in table and "| Δ few-shot % ‡ " in table and "| bal. acc % ‡" not in table
    assert "## What each metric rests on (classes and test examples per run)" in table
    assert "‡: rests on fewer than 30 test examples in some cell" in table
    assert (
        "Few test examples behind few-shot % on 1 class, 6 test examples (fewer than 30): one example moves such "
        "a metric by several points, so its CIs are wide and its differences are hints, not findings; balanced "
        "accuracy over all classes rests on more."
    ) in report.answer.lines
    from focalbench.reports.html import render_html

    html = render_html(report, tmp_path)
    assert "What each metric rests on" in html and "1 class, 6 test examples" in html


def test_metrics_on_enough_examples_are_described_but_not_flagged(tmp_path):
    report = _report(tmp_path, confusion=[[190, 10, 0], [5, 35, 0], [3, 1, 30]])
    assert report.notes["basis"][1] == "few-shot %: 1 class, 34 test examples"
    assert "‡" not in render.markdown(report)
    assert not any(line.startswith("Few test examples") for line in report.answer.lines)
    # Records without a confusion matrix (made before it was recorded) render as before.
    old = _report(tmp_path / "old", confusion=None)
    assert old.notes["basis"] == [] and "What each metric rests on" not in render.markdown(old)


# ----------------------------------------------------------------------------------------------------------
# Sanity flags
# ----------------------------------------------------------------------------------------------------------


def _history(run_dir, losses):
    rows = ["epoch,train_loss"] + [f"{e + 1},{v}" for e, v in enumerate(losses)]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")


def test_sanity_flags_find_degenerate_probabilities_a_flat_loss_and_one_step_per_epoch():
    from focalbench.reports.sanity import sanity_flags

    sane = {
        "calibration": {"temperature": 1.4, "temperature_at_bound": False},
        "test": {"nll": 0.9, "confusion_matrix": CONFUSION},
        "data": {"n_train": 1000, "train_counts": [300, 50, 5]},
    }
    assert sanity_flags(sane, [{"train_loss": "1.2"}, {"train_loss": "0.4"}], batch_size=128) == []
    absurd = {
        "calibration": {"temperature": 20.0, "temperature_at_bound": True},
        "test": {"nll": 270.0, "confusion_matrix": CONFUSION},
        "data": {"n_train": 109, "train_counts": [300, 50, 5]},
    }
    flags = sanity_flags(absurd, [{"train_loss": "0.58"}, {"train_loss": "15.07"}], batch_size=256)
    assert [(f.kind, f.degenerate) for f in flags] == [
        ("temperature_at_bound", True),
        ("nll_far_above_log_c", True),
        ("loss_not_decreasing", False),
        ("one_step_per_epoch", False),
    ]
    assert "T = 20" in flags[0].text and "270 is far above log C = 1.1" in flags[1].text
    # Deferred re-weighting changes the loss mid-training: a loss that ends higher is expected there.
    changes = sanity_flags(absurd, [{"train_loss": "0.58"}, {"train_loss": "15.07"}], 256, loss_changes=True)
    assert "loss_not_decreasing" not in [f.kind for f in changes]
    # NLL just above log C (a poor but not absurd model) is not flagged.
    assert sanity_flags({"test": {"nll": 1.5, "confusion_matrix": CONFUSION}}, [], None) == []


def test_a_validation_split_without_errors_leaves_the_temperature_unidentified_not_the_model_degenerate():
    """A small, separable validation split (46 rows of breast cancer, all right) drives the NLL fit to T's floor
    whatever the model: the flag blames the fit, not the probabilities. The same floor with errors on
    validation is a degenerate model."""
    from focalbench.reports.sanity import sanity_flags

    record = {
        "calibration": {"temperature": 0.05, "temperature_at_bound": True},
        "val": {"n": 46, "accuracy": 100.0},
        "test": {"nll": 0.1, "confusion_matrix": CONFUSION},
    }
    (flag,) = sanity_flags(record, [], None)
    assert (flag.kind, flag.degenerate) == ("temperature_unidentified", False)
    assert "validation split (46 examples) holds no error" in flag.text and "T = 0.05" in flag.text
    record["val"]["accuracy"] = 97.8
    assert [(f.kind, f.degenerate) for f in sanity_flags(record, [], None)] == [
        ("temperature_at_bound", True)
    ]


def test_sanity_flags_reach_the_notes_the_answer_and_both_documents(tmp_path):
    runs, dirs = tmp_path / "runs", []
    for alpha, base in (("none", 60.0), ("inverse_freq", 62.0)):
        for seed in range(2):
            d = write_record(runs, f"{alpha}{seed}", seed, alpha=alpha, balanced_accuracy=base + seed)
            _history(d, [1.0, 0.5] if alpha == "none" else [1.0, 1.3])
            dirs.append(d)
    report = build_report(dirs, metrics=["balanced_accuracy"], baseline="alpha=none")
    expected = (
        "'alpha=inverse_freq': the training loss did not decrease (1 at the first epoch, 1.3 at the last of 2) "
        "(seeds 0,1; the numbers of seed 0)"
    )
    assert report.notes["sanity"] == [expected]
    assert f"Sanity: {expected}." in report.answer.lines
    table = render.markdown(report)
    assert "## Sanity flags (runs recorded as ok whose results are absurd)" in table and expected in table
    from focalbench.reports.html import render_html

    assert "Sanity flags" in render_html(report, tmp_path)


def test_a_single_run_prints_its_sanity_flags(tmp_path, monkeypatch, capsys):
    import numpy as np
    import pandas as pd

    from focalbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    rng = np.random.default_rng(0)
    labels = np.array(["a"] * 60 + ["b"] * 40)
    pd.DataFrame({"f": rng.normal(size=100), "label": labels}).to_csv(tmp_path / "t.csv", index=False)
    argv = ["run", "data=table", f"data.path={tmp_path / 't.csv'}", "data.target=label", "epochs=2"]
    assert main([*argv, "threads=1", "batch_size=256"]) == 0
    out = capsys.readouterr().out
    assert (
        "warning: one optimiser step per epoch (72 training examples, batch_size=256)" in out
    )  # 100 - 20 - 8
