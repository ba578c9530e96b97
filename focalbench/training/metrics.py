"""Evaluation metrics for (long-tailed) classification: accuracy, per-class tables, calibration.

Every function takes logits ``[N, C]`` (any float dtype, any device) and integer labels ``[N]`` as
torch tensors, copies them to the CPU in float64, and returns plain Python numbers, lists and dicts
that ``json.dump`` accepts. Accuracy-type metrics and ECE are in percent (0-100); NLL is in nats.

Definitions (TP_c = correct predictions of class c, support_c = examples of true class c,
predicted_c = examples predicted as class c):

- accuracy = 100 * (number correct) / N  (top-1).
- recall_c = 100 * TP_c / support_c; ``None`` when support_c = 0 (the class is absent from the set).
- precision_c = 100 * TP_c / predicted_c; 0 when predicted_c = 0 (scikit-learn's ``zero_division=0``).
- F1_c = 100 * 2 TP_c / (support_c + predicted_c), the harmonic mean of precision and recall;
  0 when support_c + predicted_c = 0.
- balanced_accuracy = mean of recall_c over the classes with support_c > 0.
- macro_f1 = mean of F1_c over all C classes (so a class that is absent and never predicted counts as 0,
  as in scikit-learn's ``f1_score(average="macro", labels=range(C), zero_division=0)``).
- many/medium/few-shot accuracy = mean recall_c over the classes whose *training* count is
  > many_threshold / in [few_threshold, many_threshold] / < few_threshold (and whose recall is defined);
  ``None`` for a group with no such class.
- tail_acc = mean recall_c over the ceil(C / 5) classes with the fewest *training* examples (the rarest
  fifth; ties broken by class index): the two rarest classes of CIFAR-10-LT, the 20 rarest of CIFAR-100-LT.
  Unlike few-shot accuracy it is defined whatever the counts (at rho = 100 with a 10% validation split, no
  CIFAR-10 class has fewer than 20 training images). ``tail_classes`` lists them.
- nll = mean over examples of -log softmax(z_i)[y_i], computed with log_softmax in float64.
- ECE (Guo et al. 2017) = 100 * sum_b (|B_b| / N) * |acc_b - conf_b| over ``n_bins`` equal-width bins of
  the max-softmax confidence. Bin b covers (b/n_bins, (b+1)/n_bins]; a confidence of exactly 0 goes into
  the first bin. acc_b and conf_b are the mean correctness and mean confidence in bin b.
- Temperature scaling: T > 0 minimising the NLL of z / T on a held-out (validation) set, each example
  weighted by w_y = pi_test(y) / pi_val(y) (``prior_shift_weights``), so that T is fitted for the class mix
  of the set it is scored on. CIFAR-LT's validation split is long-tailed (500 down to 5 images a class)
  while its test set is balanced: a plain NLL fit there is dominated by the head classes and fitted for the
  wrong prior. With the weights, a balanced test set gives each class's validation examples the same total
  weight (w_c = 1/n_c up to a constant: the class-balanced NLL); a test split carved from the same data as
  the validation split has the same prior, and the fit is plain NLL.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from focalbench.data.longtail import shot_groups  # one definition of the groups, shared with data info
from focalbench.errors import ConfigError

# Search range for temperature scaling; a fitted T at either end means the logits are degenerate.
T_MIN, T_MAX = 0.05, 20.0

SHOT_GROUPS = ("many", "medium", "few")


def _as_cpu(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Detach, move to CPU, cast logits to float64 and labels to int64; check the shapes agree."""
    logits = logits.detach().to("cpu", torch.float64)
    labels = labels.detach().to("cpu", torch.int64)
    if logits.ndim != 2 or labels.ndim != 1 or logits.shape[0] != labels.shape[0]:
        raise ValueError(
            f"expected logits [N, C] and labels [N], got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"labels must lie in [0, {logits.shape[1] - 1}]")
    return logits, labels


def tail_classes(train_counts: Sequence[int]) -> list[int]:
    """The ceil(C / 5) classes with the fewest training examples (ties by class index), sorted."""
    k = max(1, math.ceil(len(train_counts) / 5))
    return sorted(sorted(range(len(train_counts)), key=lambda c: (train_counts[c], c))[:k])


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    """Mean of the non-None values; None when there are none."""
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """``[C, C]`` int64 counts; entry [t, p] = examples of true class t predicted as p."""
    flat = labels.to(torch.int64) * n_classes + predictions.to(torch.int64)
    return torch.bincount(flat, minlength=n_classes * n_classes).view(n_classes, n_classes)


def _per_class_scores(cm: torch.Tensor) -> tuple[list[float | None], list[float], list[float]]:
    """Per-class recall, precision and F1 in percent from a confusion matrix (conventions in the module doc)."""
    tp = cm.diag().tolist()
    support = cm.sum(dim=1).tolist()
    predicted = cm.sum(dim=0).tolist()
    recall = [100.0 * t / s if s else None for t, s in zip(tp, support, strict=True)]
    precision = [100.0 * t / p if p else 0.0 for t, p in zip(tp, predicted, strict=True)]
    f1 = [100.0 * 2 * t / (s + p) if s + p else 0.0 for t, s, p in zip(tp, support, predicted, strict=True)]
    return recall, precision, f1


def negative_log_likelihood(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean -log softmax(z_i)[y_i] in nats (float64 log_softmax); equals ``F.cross_entropy``."""
    logits, labels = _as_cpu(logits, labels)
    return float(F.cross_entropy(logits, labels))


def _bin_statistics(logits: torch.Tensor, labels: torch.Tensor, n_bins: int) -> dict[str, torch.Tensor]:
    """Per-bin example count, summed confidence and summed correctness (float64 tensors of length n_bins)."""
    if n_bins < 1:
        raise ConfigError(f"n_bins must be a positive int, got {n_bins}")
    # The prediction is the logits' argmax, as for accuracy, so ties resolve the same way in both.
    predictions = logits.argmax(dim=1)
    confidence = torch.softmax(logits, dim=1).gather(1, predictions[:, None]).squeeze(1)
    correct = (predictions == labels).to(torch.float64)
    # Inner edges b / n_bins; bucketize with right=False puts x in bin b when edge_b < x <= edge_{b+1}.
    inner_edges = torch.arange(1, n_bins, dtype=torch.float64) / n_bins
    bins = torch.bucketize(confidence, inner_edges, right=False)
    return {
        "count": torch.bincount(bins, minlength=n_bins).to(torch.float64),
        "confidence": torch.bincount(bins, weights=confidence, minlength=n_bins),
        "correct": torch.bincount(bins, weights=correct, minlength=n_bins),
    }


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """ECE in percent: 100 * sum_b (|B_b|/N) |acc_b - conf_b|, equal-width bins (lo, hi]; 0.0 for N = 0."""
    logits, labels = _as_cpu(logits, labels)
    n = labels.numel()
    if n == 0:
        return 0.0
    stats = _bin_statistics(logits, labels, n_bins)
    # |B_b|/N * |acc_b - conf_b| = |sum_correct_b - sum_conf_b| / N, which needs no division by |B_b|.
    return float(100.0 * (stats["correct"] - stats["confidence"]).abs().sum() / n)


def reliability_bins(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict[str, list]:
    """Data for a reliability diagram: per bin its edges, mean confidence and accuracy (percent), count.

    Returns ``{"bin_lower", "bin_upper", "confidence", "accuracy", "count"}``, each a list of length
    ``n_bins``; confidence and accuracy are ``None`` for empty bins. Bins as in ``expected_calibration_error``.
    """
    logits, labels = _as_cpu(logits, labels)
    stats = _bin_statistics(logits, labels, n_bins)
    counts = [int(c) for c in stats["count"].tolist()]
    mean_conf = [
        100.0 * s / c if c else None for s, c in zip(stats["confidence"].tolist(), counts, strict=True)
    ]
    mean_acc = [100.0 * s / c if c else None for s, c in zip(stats["correct"].tolist(), counts, strict=True)]
    return {
        "bin_lower": [b / n_bins for b in range(n_bins)],
        "bin_upper": [(b + 1) / n_bins for b in range(n_bins)],
        "confidence": mean_conf,
        "accuracy": mean_acc,
        "count": counts,
    }


def prior_shift_weights(
    fit_labels: torch.Tensor, target_labels: torch.Tensor, n_classes: int
) -> torch.Tensor | None:
    """Per-class weights w_c = pi_target(c) / pi_fit(c) that make a weighted mean over the fitting set (the
    validation split, labels ``fit_labels``) estimate a mean under the class prior of the target set (the
    test set, labels ``target_labels``: only their class frequencies are used, never predictions). Classes
    absent from the fitting set get 0 (nothing to weight). None when the two priors are equal (every
    weight 1 within 1e-9) or either set is empty, so the fit is then plain NLL."""
    if fit_labels.numel() == 0 or target_labels.numel() == 0:
        return None
    fit = torch.bincount(fit_labels.cpu(), minlength=n_classes).to(torch.float64)
    target = torch.bincount(target_labels.cpu(), minlength=n_classes).to(torch.float64)
    fit_prior, target_prior = fit / fit.sum(), target / target.sum()
    weights = torch.where(fit > 0, target_prior / fit_prior.clamp_min(1e-300), torch.zeros_like(fit))
    present = fit > 0
    if bool(((weights[present] - 1.0).abs() < 1e-9).all()):
        return None
    return weights


def fit_temperature(
    logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor | None = None
) -> float:
    """Temperature T in [T_MIN, T_MAX] = [0.05, 20] minimising the mean NLL of ``logits / T`` on the given
    (validation) set, weighted per example by ``class_weights[y]`` when given (``prior_shift_weights``:
    the weighted mean sum_i w_{y_i} nll_i / sum_i w_{y_i}). Returns 1.0 for an empty set.

    A golden-section search over log T, to 1e-6 in log T (deterministic, about 35 NLL evaluations; no scipy,
    whose import costs half a second). NLL as a function of 1/T is convex, hence unimodal in log T, so the
    search finds the global minimum within the bounds. When the minimum lies at a bound the fitted T is that
    bound, and ``calibration_metrics`` says so (``temperature_at_bound``).
    """
    logits, labels = _as_cpu(logits, labels)
    if labels.numel() == 0:
        return 1.0

    weight = None if class_weights is None else class_weights.to(logits.dtype)

    def nll_at(log_t: float) -> float:
        return float(F.cross_entropy(logits / math.exp(log_t), labels, weight=weight))

    return math.exp(golden_section_minimum(nll_at, math.log(T_MIN), math.log(T_MAX), tol=1e-6))


def golden_section_minimum(f, low: float, high: float, tol: float) -> float:
    """The argmin of a unimodal ``f`` on [low, high], to within ``tol`` (golden-section search)."""
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = low, high
    c, d = b - inv_phi * (b - a), a + inv_phi * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:  # the minimum lies in [a, d]
            b, d, fd = d, c, fc
            c = b - inv_phi * (b - a)
            fc = f(c)
        else:  # in [c, b]
            a, c, fc = c, d, fd
            d = a + inv_phi * (b - a)
            fd = f(d)
    # The bounds themselves are candidates: a minimum at the edge of the interval is reported exactly there.
    candidates = [(f(low), low), (f(high), high), (min(fc, fd), (a + b) / 2.0)]
    return min(candidates)[1]


def temperature_at_bound(temperature: float) -> bool:
    """True when a fitted temperature sits at T_MIN or T_MAX, i.e. the true optimum may lie beyond them."""
    return math.isclose(temperature, T_MIN, rel_tol=1e-4) or math.isclose(temperature, T_MAX, rel_tol=1e-4)


def calibration_metrics(
    test_logits: torch.Tensor, test_labels: torch.Tensor, temperature: float, n_bins: int = 15
) -> dict[str, float]:
    """NLL and ECE (percent) of ``test_logits / temperature``: ``{"temperature", "nll_ts", "ece_ts"}``.

    ``temperature`` should come from ``fit_temperature`` on the validation split, never the test set.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scaled = test_logits.detach().to("cpu", torch.float64) / temperature
    return {
        "temperature": float(temperature),
        "temperature_at_bound": temperature_at_bound(float(temperature)),
        "nll_ts": negative_log_likelihood(scaled, test_labels),
        "ece_ts": expected_calibration_error(scaled, test_labels, n_bins),
    }


def classification_metrics(
    logits: torch.Tensor,
    labels: torch.Tensor,
    train_counts: Sequence[int],
    many_threshold: int = 100,
    few_threshold: int = 20,
    n_bins: int = 15,
) -> dict:
    """All test-set metrics of one run (definitions in the module docstring).

    Args:
        logits: ``[N, C]`` float tensor, any device.
        labels: ``[N]`` integer tensor with values in [0, C).
        train_counts: the C training-set class counts, which decide the shot groups.

    Returns a JSON-serialisable dict with keys ``n``, ``accuracy``, ``balanced_accuracy``, ``macro_f1``,
    ``many_shot_acc``, ``medium_shot_acc``, ``few_shot_acc``, ``tail_acc``, ``tail_classes``, ``nll``,
    ``ece``, ``per_class_recall``,
    ``per_class_precision``, ``per_class_f1`` (percent lists of length C), ``confusion_matrix``
    (C x C ints, rows = true class). Raises ``ValueError`` on an empty set or mismatched shapes.
    """
    logits, labels = _as_cpu(logits, labels)
    n, n_classes = logits.shape
    if n == 0:
        raise ValueError("classification_metrics needs at least one example")
    if len(train_counts) != n_classes:
        raise ValueError(f"train_counts has {len(train_counts)} entries for {n_classes} classes")
    predictions = logits.argmax(dim=1)
    cm = confusion_matrix(predictions, labels, n_classes)
    recall, precision, f1 = _per_class_scores(cm)
    groups = shot_groups(train_counts, many_threshold, few_threshold)
    tail = tail_classes(train_counts)
    group_acc = {
        g: _mean_or_none([r for r, gc in zip(recall, groups, strict=True) if gc == g]) for g in SHOT_GROUPS
    }
    return {
        "n": int(n),
        "accuracy": 100.0 * int(cm.diag().sum()) / n,
        "balanced_accuracy": _mean_or_none(recall),
        "macro_f1": sum(f1) / n_classes,
        "many_shot_acc": group_acc["many"],
        "medium_shot_acc": group_acc["medium"],
        "few_shot_acc": group_acc["few"],
        "tail_acc": _mean_or_none([recall[c] for c in tail]),
        "tail_classes": tail,
        "nll": negative_log_likelihood(logits, labels),
        "ece": expected_calibration_error(logits, labels, n_bins),
        "per_class_recall": recall,
        "per_class_precision": precision,
        "per_class_f1": f1,
        "confusion_matrix": cm.tolist(),
    }
