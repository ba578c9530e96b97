"""What a run measures, beyond the metrics' definitions: temperature scaling fitted for the test split's class
prior, the probabilities of a normalised classifier, the stored logits and their re-scoring, the per-class
training statistics, the tail metric, and the published conventions (DRW start, warm-up, head init)."""

from __future__ import annotations

import csv
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from focalbench.config import compose
from focalbench.errors import ConfigError
from focalbench.training import record
from focalbench.training.metrics import (
    classification_metrics,
    fit_temperature,
    prior_shift_weights,
    tail_classes,
)
from focalbench.training.runner import execute_run
from focalbench.training.schedule import learning_rate
from tests.conftest import TINY


def run(results, *overrides):
    return execute_run(compose([*TINY, f"results_dir={results}", *overrides]), quiet=True)


# ----------------------------------------------------------------------------------------------------------
# Temperature scaling for the test split's class prior
# ----------------------------------------------------------------------------------------------------------


def test_prior_shift_weights_make_a_long_tailed_split_count_like_a_balanced_one():
    val = torch.tensor([0] * 90 + [1] * 10)
    balanced_test = torch.tensor([0] * 50 + [1] * 50)
    w = prior_shift_weights(val, balanced_test, 2)
    # each class's validation examples carry the same total weight: 90 w_0 == 10 w_1
    assert w is not None and math.isclose(90 * float(w[0]), 10 * float(w[1]))
    # the same prior (a carved test split): no weights, the fit is plain NLL
    assert prior_shift_weights(val, torch.tensor([0] * 9 + [1]), 2) is None
    # a class absent from validation gets no weight
    assert float(prior_shift_weights(val, torch.tensor([0, 1, 2]), 3)[2]) == 0.0


def test_the_class_weighted_fit_is_the_class_balanced_nll_minimum():
    """On a long-tailed set where the head class is over-confident and the tail under-confident, the plain
    fit follows the head; the weighted fit minimises the mean over classes of each class's mean NLL."""
    g = torch.Generator().manual_seed(0)
    labels = torch.tensor([0] * 400 + [1] * 20)
    logits = torch.randn(420, 2, generator=g)
    logits[torch.arange(420), labels] += torch.where(labels == 0, 6.0, 0.5)
    w = prior_shift_weights(labels, torch.tensor([0, 1]), 2)
    t_plain, t_balanced = fit_temperature(logits, labels), fit_temperature(logits, labels, w)

    def balanced_nll(t):
        nll = F.cross_entropy(logits / t, labels, reduction="none")
        return float((nll[labels == 0].mean() + nll[labels == 1].mean()) / 2)

    grid = np.exp(np.linspace(math.log(0.05), math.log(20), 4001))
    best = grid[int(np.argmin([balanced_nll(t) for t in grid]))]
    assert math.isclose(t_balanced, best, rel_tol=2e-3)
    assert abs(t_plain - t_balanced) / t_balanced > 0.05  # the two fits really differ here


def test_a_run_records_how_its_temperature_was_fitted(results):
    m = json.loads((run(results).run_dir / "metrics.json").read_text())
    assert m["calibration"]["fitted_on"].startswith("validation split, NLL weighted per class by pi_test(c)")


# ----------------------------------------------------------------------------------------------------------
# The probabilities of a normalised classifier
# ----------------------------------------------------------------------------------------------------------


def test_ldam_probabilities_are_softmax_of_scale_times_cosine(results):
    """LDAM trains softmax(s cos); its probabilities, NLL and ECE are those of s * cos (s = 30), and the
    stored logits are the scaled ones: cosines would all lie in [-1, 1]."""
    outcome = run(results, "loss=ldam", "loss.scale=30")
    m = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert m["probability_scale"] == 30.0
    logits = record.read_logits(outcome.run_dir / record.LOGITS_FILE)
    test_logits, test_labels = logits["test"]
    assert float(test_logits.abs().max()) > 1.5 and float(test_logits.abs().max()) <= 30.0 + 1e-4
    again = classification_metrics(test_logits, test_labels, m["data"]["train_counts"])
    assert math.isclose(again["nll"], m["test"]["nll"], rel_tol=1e-9)
    assert math.isclose(again["ece"], m["test"]["ece"], rel_tol=1e-9)
    plain = json.loads((run(results).run_dir / "metrics.json").read_text())
    assert plain["probability_scale"] == 1.0


# ----------------------------------------------------------------------------------------------------------
# Stored logits and per-class training statistics
# ----------------------------------------------------------------------------------------------------------


def test_the_record_stores_final_logits_that_reproduce_its_metrics(results):
    outcome = run(results)
    rdir = outcome.run_dir
    with np.load(rdir / record.LOGITS_FILE, allow_pickle=False) as npz:  # no pickle needed to read it
        assert sorted(npz.files) == ["test_labels", "test_logits", "val_labels", "val_logits"]
        assert npz["test_logits"].dtype == np.float32 and npz["test_labels"].dtype == np.int64
    m = json.loads((rdir / "metrics.json").read_text())
    logits = record.read_logits(rdir / record.LOGITS_FILE)
    test = classification_metrics(*logits["test"], m["data"]["train_counts"])
    val = classification_metrics(*logits["val"], m["data"]["train_counts"])
    for key in ("balanced_accuracy", "accuracy", "macro_f1", "nll", "ece"):
        assert test[key] == pytest.approx(m["test"][key], rel=1e-12, abs=1e-12), key
        assert val[key] == pytest.approx(m["val"][key], rel=1e-12, abs=1e-12), key


def test_class_history_counts_every_training_example_and_its_loss_shares_sum_to_one(results):
    outcome = run(results, "loss=focal", "gamma=2", "alpha=none")
    m = json.loads((outcome.run_dir / "metrics.json").read_text())
    with (outcome.run_dir / record.CLASS_HISTORY_FILE).open() as f:
        rows = list(csv.DictReader(f))
    counts = m["data"]["train_counts"]
    assert len(rows) == 3 * len(counts)  # 3 epochs x C classes
    for epoch in (1, 2, 3):
        mine = [r for r in rows if int(r["epoch"]) == epoch]
        assert [int(r["seen"]) for r in mine] == counts  # every training example once per epoch
        assert sum(float(r["loss_share"]) for r in mine) == pytest.approx(1.0, abs=1e-5)
        assert all(0.0 < float(r["mean_p_t"]) < 1.0 for r in mine)
    # the mechanism the article names: minority examples are the hard ones (low p_t), so they carry more
    # of the focal loss than their share of the examples
    last = [r for r in rows if int(r["epoch"]) == 3]
    rare = [c for c in range(len(counts)) if counts[c] < counts[0] / 10]
    assert max(float(last[c]["mean_p_t"]) for c in rare) < float(last[0]["mean_p_t"])
    rare_loss = sum(float(last[c]["loss_share"]) for c in rare)
    assert rare_loss > sum(counts[c] for c in rare) / sum(counts)


def test_class_stats_match_a_direct_computation():
    from focalbench.training.class_stats import TrainClassStats, true_class_probability

    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(64, 4, generator=g), torch.randint(0, 4, (64,), generator=g)
    loss = F.cross_entropy(logits, target, reduction="none")
    stats = TrainClassStats(1, 4, torch.device("cpu"))
    p_t = true_class_probability(logits, target, 1.0)
    stats.add(p_t[:40], target[:40], loss[:40])
    stats.add(p_t[40:], target[40:], loss[40:])
    stats.end_epoch(1)
    for row in stats.rows():
        c = row["class"]
        mask = target == c
        assert row["seen"] == int(mask.sum())
        assert row["mean_p_t"] == pytest.approx(float(torch.softmax(logits, 1)[mask, c].mean()), abs=1e-6)
        assert row["loss_share"] == pytest.approx(float(loss[mask].sum() / loss.sum()), abs=1e-6)


# ----------------------------------------------------------------------------------------------------------
# The tail metric
# ----------------------------------------------------------------------------------------------------------


def test_tail_is_the_rarest_fifth_of_the_classes():
    assert tail_classes([5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]) == [8, 9]
    assert tail_classes([3, 1, 1]) == [1]  # ties: the lower index
    logits = torch.eye(3)[[0, 1, 2, 0, 0, 2]] * 5
    labels = torch.tensor([0, 1, 2, 1, 2, 2])  # recall: class 0 100, class 1 50, class 2 66.7
    m = classification_metrics(logits, labels, [10, 1, 5])
    assert m["tail_classes"] == [1] and m["tail_acc"] == pytest.approx(50.0)


# ----------------------------------------------------------------------------------------------------------
# Published conventions: a DRW start that never applies, the warm-up, the cosine head's initialisation
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        ["loss=ldam_drw", "epochs=2"],
        ["loss=ldam_drw", "epochs=1"],
        ["loss=ce", "alpha=inverse_freq", "epochs=30", "alpha_start_epoch=0.99"],
        ["loss=ce", "alpha=inverse_freq", "epochs=30", "alpha_start_epoch=30"],
    ],
)
def test_a_drw_start_at_or_past_the_last_epoch_is_refused_at_plan_time(overrides):
    with pytest.raises(ConfigError, match="alpha_start_epoch"):
        compose(overrides)


def test_a_drw_start_that_leaves_an_epoch_with_weights_is_accepted():
    assert compose(["loss=ldam_drw", "epochs=3"]).alpha_start_epoch == 0.8  # round(2.4) = 2 < 3


def test_epoch_warmup_is_ldam_drws_staircase():
    staircase = SimpleNamespace(lr=0.1, warmup_epochs=5, warmup_mode="epoch", schedule="constant")
    assert [learning_rate(staircase, e + 0.5, 200) for e in range(6)] == pytest.approx(
        [0.02, 0.04, 0.06, 0.08, 0.1, 0.1]
    )
    assert learning_rate(staircase, 0.0, 200) == learning_rate(staircase, 0.99, 200)  # constant in an epoch
    ramp = SimpleNamespace(lr=0.1, warmup_epochs=5, warmup_mode="step", schedule="constant")
    assert learning_rate(ramp, 0.0, 200) < 1e-4 < learning_rate(ramp, 0.5, 200) < 0.02
    assert compose(["experiment=ldam_recipe"]).optim.warmup_mode == "epoch"
    with pytest.raises(ConfigError, match="optim.warmup_mode"):
        compose(["optim.warmup_mode=linear"])


def test_ldam_head_starts_with_unit_norm_class_vectors():
    from focalbench.models import build_model, init_norm_classifier_ldam
    from focalbench.models.heads import NormedLinear

    cfg = compose(["loss=ldam"])
    assert cfg.model.norm_classifier_init == "ldam"  # the preset follows the authors
    model = build_model(cfg.model, (20,), 10)
    head = next(m for m in model.modules() if isinstance(m, NormedLinear))
    assert not torch.allclose(head.weight.norm(dim=1), torch.ones(10), atol=0.05)  # nn.Linear's init
    init_norm_classifier_ldam(model)
    assert torch.allclose(head.weight.norm(dim=1), torch.ones(10), atol=1e-6)
    with pytest.raises(ConfigError, match="norm_classifier=true"):
        compose(["loss=ce", "model.norm_classifier_init=ldam"])


def test_rescore_recomputes_metrics_from_the_stored_logits(results):
    """A changed metric is recomputed without training: tamper with a recorded metric, rescore, and the
    value computed from the logits comes back; the run id and the training fields stay."""
    from focalbench.reports.rescore import rescore_paths

    outcome = run(results)
    path = outcome.run_dir / "metrics.json"
    original = json.loads(path.read_text())
    tampered = original | {"test": original["test"] | {"ece": -1.0}, "calibration": None}
    path.write_text(json.dumps(tampered))
    done = rescore_paths([outcome.run_dir])
    assert done.rescored == [outcome.run_dir]
    again = json.loads(path.read_text())
    assert again["test"]["ece"] == pytest.approx(original["test"]["ece"], rel=1e-12)
    assert again["calibration"]["temperature"] == pytest.approx(original["calibration"]["temperature"])
    assert again["run_id"] == original["run_id"] and again["timing"] == original["timing"]
    assert again["best_val"] == original["best_val"] and "rescored" in again
    (outcome.run_dir / record.LOGITS_FILE).unlink()
    assert rescore_paths([outcome.run_dir]).without_logits == [outcome.run_dir]


def test_per_class_table_says_how_many_examples_each_score_rests_on(results):
    import pandas as pd

    outcome = run(results)
    table = pd.read_csv(outcome.run_dir / "per_class.csv")
    m = json.loads((outcome.run_dir / "metrics.json").read_text())
    assert table["test_count"].sum() == m["test"]["n"] and (table["test_count"] == 50).all()
    assert table["val_count"].sum() == m["val"]["n"]
