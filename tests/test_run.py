"""One run end to end: determinism, gamma=0 focal == CE, divergence, the record's 'done' contract."""

from __future__ import annotations

import json

import pytest

from focalbench.config import compose
from focalbench.training import record
from focalbench.training.runner import execute_run
from tests.conftest import TINY

RECORD_FILES = (
    "config.yaml",
    "metrics.json",
    "history.csv",
    "per_class.csv",
    "train_classes.csv",
    "logits.npz",
)


def run(results, *overrides, **kw):
    return execute_run(compose([*TINY, f"results_dir={results}", *overrides]), quiet=True, **kw)


def comparable(metrics: dict) -> dict:
    """metrics.json minus what legitimately differs between two executions (time, id, label)."""
    return {k: v for k, v in metrics.items() if k not in ("timing", "run_id", "cell", "loss", "environment")}


def test_run_writes_a_complete_record(results):
    outcome = run(results)
    assert outcome.status == "ok"
    for name in RECORD_FILES:
        assert (outcome.run_dir / name).is_file(), name
    m = json.loads((outcome.run_dir / "metrics.json").read_text())
    for key in (
        "accuracy",
        "balanced_accuracy",
        "macro_f1",
        "few_shot_acc",
        "nll",
        "ece",
        "confusion_matrix",
    ):
        assert key in m["test"] and key in m["val"]
    assert m["best_val"]["epoch"] in (1, 2, 3)
    assert m["calibration"]["temperature"] > 0 and m["calibration"]["fitted_on"].startswith(
        "validation split, NLL weighted per class"
    )
    assert m["environment"]["device"] == "cpu" and m["environment"]["torch"]
    assert "sum_i alpha_{y_i}" in m["loss"]["mean_convention"]
    history = (outcome.run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 1 + 3 and history[0].startswith("epoch,train_loss,lr")


def test_same_config_and_seed_give_identical_metrics(results, tmp_path):
    first = run(results)
    second = run(tmp_path / "other_results")
    assert first.run_id == second.run_id
    assert comparable(first.metrics) == comparable(second.metrics)


def test_another_seed_gives_other_numbers(results):
    assert run(results, "seed=0").metrics["test"] != run(results, "seed=1").metrics["test"]


def test_focal_gamma_zero_equals_ce_metric_for_metric(results):
    focal = run(results, "loss=focal", "gamma=0")
    ce = run(results, "loss=ce")
    assert focal.run_id != ce.run_id  # two code paths: focal_loss and F.cross_entropy
    assert comparable(focal.metrics) == comparable(ce.metrics)


def test_balanced_ce_records_resolved_alpha(results):
    m = run(results, "loss=balanced_ce").metrics
    alpha = m["loss"]["alpha_resolved"]
    counts = m["data"]["train_counts"]
    assert len(alpha) == 10 and sum(alpha) == pytest.approx(10, rel=1e-5)
    assert alpha[-1] > alpha[0] and alpha[0] * counts[0] == pytest.approx(alpha[-1] * counts[-1], rel=1e-4)


def test_divergence_is_recorded_not_raised(results):
    outcome = run(results, "loss=ce", "optim.lr=1e20")
    assert outcome.status == "diverged"
    div = outcome.metrics["divergence"]
    assert div["epoch"] >= 1 and div["step"] >= 1
    assert (
        div["last_finite_loss"] is not None and div["last_finite_loss"] == div["last_finite_loss"]
    )  # not NaN
    assert record.is_done(outcome.run_dir)


def test_a_record_without_metrics_json_is_not_done_and_is_rerun(results):
    cfg = compose([*TINY, f"results_dir={results}"])
    first = execute_run(cfg, quiet=True)
    (first.run_dir / "metrics.json").unlink()  # as if the run had been killed before its last write
    assert not record.is_done(first.run_dir)
    again = execute_run(cfg, quiet=True)
    assert again.status == "ok" and record.is_done(first.run_dir)
    assert execute_run(cfg, quiet=True).status == "skipped"


def test_an_error_is_written_and_does_not_raise(results, tmp_path):
    bad_root = tmp_path / "cifar"
    (bad_root / "cifar-10-batches-py").mkdir(parents=True)
    for name in (
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
        "batches.meta",
    ):
        (bad_root / "cifar-10-batches-py" / name).write_bytes(b"\x80\x02}q\x00(")  # truncated pickle
    # (no TINY: data.n_max is a synthetic-task key, which CIFAR configs rightly do not have)
    cfg = compose(
        [f"results_dir={results}", "data=cifar10_lt", "model=cnn", f"data.root={bad_root}", "epochs=1"]
    )
    outcome = execute_run(cfg, quiet=True)
    assert outcome.status == "error" and "DataError" in outcome.error
    assert not record.is_done(outcome.run_dir)
    assert json.loads((outcome.run_dir / "error.json").read_text())["status"] == "error"


def test_metrics_json_is_written_atomically(tmp_path, monkeypatch):
    """A write that fails midway leaves the old file whole (never half of the new one) and no temporary file."""
    target = tmp_path / "m.json"
    record.write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # an ordinary file, not mkstemp's private one

    def crash(fd):  # the new content is written to the temporary file, then the process "dies"
        raise OSError("disk full")

    monkeypatch.setattr(record.os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        record.write_json(target, {"a": 2, "padding": "x" * 100_000})
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]  # no temporary file left behind


def test_deterministic_mode_is_restored_after_the_run(results):
    """deterministic=true must not leak into later runs of the same process (a sweep runs them in-process)."""
    import torch

    assert not torch.are_deterministic_algorithms_enabled()
    assert run(results, "deterministic=true").status == "ok"
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_runs_train_and_record_their_precision(results, precision):
    outcome = run(results, f"precision={precision}")
    assert outcome.status == "ok"
    assert outcome.metrics["environment"]["precision"] == precision
    assert outcome.metrics["test"]["balanced_accuracy"] > 20  # 10 classes: clearly above chance


def test_without_a_validation_split_only_final_epoch_metrics_are_reported(results):
    """Like the published recipe (data.val_fraction=0): nothing to select on, nothing to fit T on."""
    outcome = run(results, "data.val_fraction=0")
    assert outcome.status == "ok"
    m = outcome.metrics
    assert m["val"] is None and m["best_val"] is None and m["calibration"] is None
    assert m["data"]["n_val"] == 0 and m["test"]["balanced_accuracy"] > 0
    assert "val_balanced_accuracy" not in (outcome.run_dir / "history.csv").read_text()


def test_explicit_bf16_on_a_cpu_without_native_bf16_is_recorded_and_said(results, monkeypatch):
    """precision=auto never picks bf16 on a CPU; asking for it explicitly works, records which CPU and how its
    convolutions were computed, and says so."""
    from rich.console import Console

    from focalbench import hardware
    from focalbench.console import print_run_summary
    from focalbench.training import runner

    monkeypatch.setattr(runner, "cpu_model", lambda: "Old CPU (no native bf16)")
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    outcome = run(results, "precision=bf16")
    assert outcome.status == "ok"
    env = outcome.metrics["environment"]
    assert env["cpu"] == "Old CPU (no native bf16)"
    assert env["bf16_convolutions"].startswith("bf16 operands, fp32 products, rounded to bf16")
    console = Console(record=True, width=200)
    print_run_summary(outcome, console)
    assert "note: this CPU has no native bf16" in console.export_text()

    fp32 = run(results, "precision=fp32")  # an fp32 run on the same CPU: nothing to say
    assert "bf16_convolutions" not in fp32.metrics["environment"]
    console = Console(record=True, width=200)
    print_run_summary(fp32, console)
    assert "no native bf16" not in console.export_text()


def test_a_run_decides_its_autocast_once_not_at_every_step(results, monkeypatch):
    """Which autocast a run gets (and whether its bf16 convolutions are rounded) is decided once for the
    training loop and once per evaluation pass, never per step."""
    from focalbench import hardware
    from focalbench.training import loop

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    calls = {"decide": 0, "evaluate": 0}
    decide, predict = loop.rounds_bf16_convolutions, loop.predict_logits

    def counted_decide(*args):
        calls["decide"] += 1
        return decide(*args)

    def counted_predict(*args, **kwargs):
        calls["evaluate"] += 1
        return predict(*args, **kwargs)

    monkeypatch.setattr(loop, "rounds_bf16_convolutions", counted_decide)
    monkeypatch.setattr(loop, "predict_logits", counted_predict)
    outcome = run(results, "precision=bf16", "epochs=2")
    assert outcome.status == "ok"
    # once for the training loop, once for the record's environment, once per evaluation pass; with one
    # decision a step there would be at least one more for each of the two epochs' steps
    assert calls["evaluate"] >= 2
    assert calls["decide"] == 2 + calls["evaluate"], calls
