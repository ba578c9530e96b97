"""Metrics against hand-computed values and against plain-loop reimplementations."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from focalbench.errors import ConfigError
from focalbench.training.metrics import (
    calibration_metrics,
    classification_metrics,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
    shot_groups,
)


def one_hot_logits(predictions: list[int], n_classes: int, scale: float = 5.0) -> torch.Tensor:
    """Logits whose argmax is the given prediction."""
    return F.one_hot(torch.tensor(predictions), n_classes).float() * scale


# True class 0 (4 examples) -> predicted 0,0,0,1; class 1 (2) -> 1,0; class 2 (4) -> 2,2,2,1.
LABELS = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2]
PREDS = [0, 0, 0, 1, 1, 0, 2, 2, 2, 1]


def test_hand_computed_confusion_matrix_metrics():
    m = classification_metrics(one_hot_logits(PREDS, 3), torch.tensor(LABELS), train_counts=[500, 50, 5])
    assert m["n"] == 10
    assert m["confusion_matrix"] == [[3, 1, 0], [1, 1, 0], [0, 1, 3]]
    assert m["accuracy"] == pytest.approx(70.0)
    assert m["per_class_recall"] == pytest.approx([75.0, 50.0, 75.0])
    assert m["per_class_precision"] == pytest.approx([75.0, 100.0 / 3, 100.0])
    # F1_c = 2 TP / (support + predicted): 6/8, 2/5, 6/7.
    assert m["per_class_f1"] == pytest.approx([75.0, 40.0, 600.0 / 7])
    assert m["balanced_accuracy"] == pytest.approx(200.0 / 3)
    assert m["macro_f1"] == pytest.approx((75.0 + 40.0 + 600.0 / 7) / 3)
    assert (m["many_shot_acc"], m["medium_shot_acc"], m["few_shot_acc"]) == pytest.approx((75.0, 50.0, 75.0))


def test_shot_group_means_and_empty_group_is_none():
    # Classes 0 and 2 are "many", class 1 "medium", no class is "few".
    m = classification_metrics(one_hot_logits(PREDS, 3), torch.tensor(LABELS), train_counts=[500, 50, 200])
    assert m["many_shot_acc"] == pytest.approx(75.0)
    assert m["medium_shot_acc"] == pytest.approx(50.0)
    assert m["few_shot_acc"] is None


def test_shot_groups_at_threshold_edges():
    assert shot_groups([101, 100, 50, 20, 19, 0]) == ["many", "medium", "medium", "medium", "few", "few"]
    assert shot_groups([10, 5, 4], many_threshold=5, few_threshold=5) == ["many", "medium", "few"]
    with pytest.raises(ConfigError, match="few_threshold"):
        shot_groups([1, 2], many_threshold=10, few_threshold=20)


def test_absent_class_conventions():
    # Class 2 is neither present nor predicted: recall undefined, precision and F1 are 0.
    m = classification_metrics(one_hot_logits([0, 1, 1, 1], 3), torch.tensor([0, 0, 1, 1]), [10, 10, 10])
    assert m["per_class_recall"] == pytest.approx([50.0, 100.0, None])
    assert m["per_class_precision"] == pytest.approx([100.0, 200.0 / 3, 0.0])
    assert m["per_class_f1"] == pytest.approx([200.0 / 3, 80.0, 0.0])
    assert m["balanced_accuracy"] == pytest.approx(75.0)
    assert m["macro_f1"] == pytest.approx((200.0 / 3 + 80.0) / 3)
    json.dumps(m)


def loop_reference(logits: torch.Tensor, labels: torch.Tensor, n_bins: int) -> dict:
    """Per-class scores and ECE (Guo et al.'s lo < conf <= hi binning) computed with plain loops."""
    probs = torch.softmax(logits.double(), dim=1)
    n, c = probs.shape
    preds = [int(probs[i].argmax()) for i in range(n)]
    ys = labels.tolist()
    recall, precision, f1 = [], [], []
    for k in range(c):
        tp = sum(p == k and y == k for p, y in zip(preds, ys, strict=True))
        fp = sum(p == k and y != k for p, y in zip(preds, ys, strict=True))
        fn = sum(p != k and y == k for p, y in zip(preds, ys, strict=True))
        r = tp / (tp + fn) if tp + fn else None
        p = tp / (tp + fp) if tp + fp else 0.0
        recall.append(None if r is None else 100 * r)
        precision.append(100 * p)
        f1.append(100 * 2 * p * r / (p + r) if r is not None and p + r > 0 else 0.0)
    ece = 0.0
    conf = [float(probs[i].max()) for i in range(n)]
    for b in range(n_bins):
        lo, hi = b / n_bins, (b + 1) / n_bins
        members = [i for i in range(n) if lo < conf[i] <= hi]
        if members:
            acc_b = sum(preds[i] == ys[i] for i in members) / len(members)
            conf_b = sum(conf[i] for i in members) / len(members)
            ece += len(members) / n * abs(acc_b - conf_b)
    return {"recall": recall, "precision": precision, "f1": f1, "ece": 100 * ece}


def test_agrees_with_loop_reimplementation_and_cross_entropy():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(300, 6, generator=gen) * 2
    labels = torch.randint(0, 6, (300,), generator=gen)
    m = classification_metrics(logits, labels, train_counts=[1000, 300, 100, 60, 20, 5])
    ref = loop_reference(logits, labels, n_bins=15)
    assert m["per_class_recall"] == pytest.approx(ref["recall"])
    assert m["per_class_precision"] == pytest.approx(ref["precision"])
    assert m["per_class_f1"] == pytest.approx(ref["f1"])
    assert m["ece"] == pytest.approx(ref["ece"])
    assert m["accuracy"] == pytest.approx(100 * float((logits.argmax(1) == labels).double().mean()))
    assert m["nll"] == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)
    json.dumps(m)


def test_accepts_low_precision_logits():
    logits = torch.randn(50, 4, generator=torch.Generator().manual_seed(1)).to(torch.bfloat16)
    labels = torch.arange(50) % 4
    m = classification_metrics(logits, labels, [10, 10, 10, 10])
    assert m["nll"] == pytest.approx(float(F.cross_entropy(logits.double(), labels)))


def test_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="train_counts"):
        classification_metrics(torch.zeros(2, 3), torch.tensor([0, 1]), [5, 5])
    with pytest.raises(ValueError, match="labels"):
        classification_metrics(torch.zeros(2, 3), torch.tensor([0, 3]), [5, 5, 5])
    with pytest.raises(ValueError, match="at least one"):
        classification_metrics(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), [5, 5, 5])


def constant_confidence_logits(confidence: float, n: int) -> torch.Tensor:
    """Two-class logits whose softmax gives class 0 probability ``confidence``."""
    return torch.tensor([[math.log(confidence / (1 - confidence)), 0.0]] * n, dtype=torch.float64)


def test_ece_hand_built_cases():
    # Confidence 0.8 everywhere with 80% correct: perfectly calibrated.
    labels = torch.tensor([0] * 8 + [1] * 2)
    assert expected_calibration_error(constant_confidence_logits(0.8, 10), labels) == pytest.approx(
        0, abs=1e-9
    )
    # Confidence 1.0 with half correct: ECE = 50 percent.
    sure = torch.tensor([[100.0, 0.0]] * 10)
    assert expected_calibration_error(sure, torch.tensor([0, 1] * 5)) == pytest.approx(50.0)
    # Half at 0.9 (all correct), half at 0.6 (half correct): 0.5*|1-0.9| + 0.5*|0.5-0.6| = 10 percent.
    logits = torch.cat([constant_confidence_logits(0.9, 4), constant_confidence_logits(0.6, 4)])
    labels = torch.tensor([0, 0, 0, 0, 0, 1, 0, 1])
    assert expected_calibration_error(logits, labels) == pytest.approx(10.0)


def test_reliability_bins_edges_and_consistency_with_ece():
    # Confidence exactly 0.5 sits on an edge: with 4 bins it goes to (0.25, 0.5], with 2 bins to (0, 0.5].
    tie = torch.zeros(3, 2)
    labels = torch.tensor([0, 1, 0])
    assert reliability_bins(tie, labels, n_bins=4)["count"] == [0, 3, 0, 0]
    assert reliability_bins(tie, labels, n_bins=2)["count"] == [3, 0]
    assert reliability_bins(torch.tensor([[100.0, 0.0]]), torch.tensor([0]), n_bins=4)["count"] == [
        0,
        0,
        0,
        1,
    ]

    gen = torch.Generator().manual_seed(2)
    logits = torch.randn(400, 5, generator=gen) * 3
    labels = torch.randint(0, 5, (400,), generator=gen)
    bins = reliability_bins(logits, labels, n_bins=10)
    assert bins["bin_lower"][0] == 0.0 and bins["bin_upper"][-1] == 1.0 and sum(bins["count"]) == 400
    # Confidence >= 1/C = 0.2, so the two lowest bins are empty.
    assert bins["count"][:2] == [0, 0] and bins["accuracy"][:2] == [None, None]
    weighted_gap = sum(
        c / 400 * abs(a - f)
        for c, a, f in zip(bins["count"], bins["accuracy"], bins["confidence"], strict=True)
        if c
    )
    assert weighted_gap == pytest.approx(expected_calibration_error(logits, labels, n_bins=10))
    json.dumps(bins)


def sample_labels(logits: torch.Tensor, seed: int) -> torch.Tensor:
    """Labels drawn from softmax(logits), so that these logits are perfectly calibrated."""
    return torch.multinomial(torch.softmax(logits, dim=1), 1, generator=torch.Generator().manual_seed(seed))[
        :, 0
    ]


def test_fit_temperature_recovers_known_temperature_and_lowers_nll():
    z = torch.randn(4000, 5, generator=torch.Generator().manual_seed(3)) * 2
    labels = sample_labels(z, seed=4)
    overconfident = z * 3
    t = fit_temperature(overconfident, labels)
    assert t == pytest.approx(3.0, rel=0.1)
    assert t == fit_temperature(overconfident, labels)  # deterministic
    assert F.cross_entropy(overconfident / t, labels) < F.cross_entropy(overconfident, labels)
    # Logits that are already calibrated give T near 1.
    assert fit_temperature(z, labels) == pytest.approx(1.0, rel=0.1)


def test_fit_temperature_empty_set():
    assert fit_temperature(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long)) == 1.0


def test_calibration_metrics_after_temperature_scaling():
    gen_z = torch.Generator().manual_seed(5)
    z_val, z_test = torch.randn(3000, 4, generator=gen_z) * 2, torch.randn(3000, 4, generator=gen_z) * 2
    y_val, y_test = sample_labels(z_val, 6), sample_labels(z_test, 7)
    t = fit_temperature(z_val * 3, y_val)
    out = calibration_metrics(z_test * 3, y_test, t)
    assert set(out) == {"temperature", "temperature_at_bound", "nll_ts", "ece_ts"} and out["temperature"] == t
    assert out["temperature_at_bound"] is False
    assert out["nll_ts"] == pytest.approx(float(F.cross_entropy(z_test.double() * 3 / t, y_test)))
    assert out["ece_ts"] == pytest.approx(expected_calibration_error(z_test * 3 / t, y_test))
    assert out["ece_ts"] < expected_calibration_error(z_test * 3, y_test) / 2
    with pytest.raises(ValueError, match="temperature"):
        calibration_metrics(z_test, y_test, 0.0)


def test_fit_temperature_is_the_grid_minimum_and_says_when_it_hits_a_bound():
    torch.manual_seed(0)
    z = torch.randn(400, 5) * 4
    labels = sample_labels(z / 2.5, 11)  # labels drawn at temperature 2.5
    t = fit_temperature(z, labels)
    grid = torch.exp(torch.linspace(math.log(0.05), math.log(20.0), 4001))
    nll = torch.stack([F.cross_entropy(z.double() / g, labels) for g in grid])
    assert t == pytest.approx(float(grid[nll.argmin()]), rel=2e-3)
    assert calibration_metrics(z, labels, t)["temperature_at_bound"] is False
    # Perfectly separated with a huge margin: NLL keeps falling as T -> 0, so the fit stops at T_MIN.
    separated = torch.nn.functional.one_hot(labels, 5).float() * 50
    t_min = fit_temperature(separated, labels)
    assert (
        t_min == pytest.approx(0.05) and calibration_metrics(separated, labels, t_min)["temperature_at_bound"]
    )
