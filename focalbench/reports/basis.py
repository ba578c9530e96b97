"""What each metric rests on: how many classes and test examples, computed from a run record alone.

A metric's CI comes from the spread between seeds, but a metric averaged over a handful of test examples moves
by whole points when one example flips: few-shot accuracy over two rare classes with six test examples each
moves by 8.3 points per example. :func:`metric_basis` says, per metric, how many classes and test examples
it averages over, from what every record holds (the test confusion matrix's row sums, the training counts and
the shot thresholds), so records made before this module get it too. A metric resting on fewer than
:data:`FEW_TEST_EXAMPLES` test examples is flagged in the tables (``‡``), the notes and the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

FEW_TEST_EXAMPLES = (
    30  # below this many test examples a metric's CI is wide: one example moves it by > 3.3 points
)
WHOLE_TEST_SET = ("accuracy", "top1_error", "balanced_accuracy", "macro_f1", "nll", "ece", "nll_ts", "ece_ts")
GROUP_METRICS = {"many_shot_acc": "many", "medium_shot_acc": "medium", "few_shot_acc": "few"}


@dataclass(frozen=True)
class Basis:
    """The test classes and examples a metric averages over."""

    classes: int
    examples: int

    @property
    def few(self) -> bool:
        return self.examples < FEW_TEST_EXAMPLES

    def text(self) -> str:
        return f"{self.classes} class{'es' if self.classes != 1 else ''}, {self.examples} test examples"


def tail_classes(train_counts: Sequence[int]) -> list[int]:
    """The ceil(C / 5) rarest training classes (ties by index): the classes of ``tail_acc``
    (:func:`focalbench.training.metrics.tail_classes`, repeated here so that reports need no torch)."""
    k = max(1, math.ceil(len(train_counts) / 5))
    return sorted(sorted(range(len(train_counts)), key=lambda c: (train_counts[c], c))[:k])


def shot_group(count: int, many: int, few: int) -> str:
    return "many" if count > many else "few" if count < few else "medium"


def metric_basis(metrics: dict, many_threshold: int, few_threshold: int) -> dict[str, Basis]:
    """Per test metric of a run's ``metrics.json``, the classes and test examples it averages over.

    The per-class test counts are the row sums of ``test.confusion_matrix``; the groups come from the training
    counts (``data.train_counts``) and the thresholds, as the run computed them. A group with no class is left
    out (its metric is undefined). Empty when the record holds no confusion matrix."""
    confusion = (metrics.get("test") or {}).get("confusion_matrix")
    train_counts = (metrics.get("data") or {}).get("train_counts")
    if not confusion or not train_counts or len(confusion) != len(train_counts):
        return {}
    tested = [int(sum(row)) for row in confusion]
    out = {m: Basis(len(tested), sum(tested)) for m in WHOLE_TEST_SET}
    groups = [shot_group(n, many_threshold, few_threshold) for n in train_counts]
    for metric, group in GROUP_METRICS.items():
        members = [c for c, g in enumerate(groups) if g == group]
        if members:
            out[metric] = Basis(len(members), sum(tested[c] for c in members))
    tail = tail_classes(train_counts)
    out["tail_acc"] = Basis(len(tail), sum(tested[c] for c in tail))
    return out


def cell_basis(cell) -> dict[str, Basis]:
    """:func:`metric_basis` of a report cell's first run (every seed of a cell tests as many examples per
    class: the split is stratified, or the same)."""
    many = cell.full_config.get("eval.many_threshold", 100)
    few = cell.full_config.get("eval.few_threshold", 20)
    run = next((r for r in cell.runs if r.metrics), None)
    return metric_basis(run.metrics, int(many), int(few)) if run else {}


def flagged_metrics(report) -> list[str]:
    """The report's shown metrics that rest on fewer than :data:`FEW_TEST_EXAMPLES` test examples in some
    cell."""
    bases = [cell_basis(c) for c in report.cells]
    return [m for m in report.shown_metrics if any(b.get(m) and b[m].few for b in bases)]


def basis_lines(report) -> list[str]:
    """The notes' lines: per shown metric, what it rests on (per cell where cells differ), flagged ones said
    to have a wide CI."""
    lines = []
    bases = [(c.label, cell_basis(c)) for c in report.cells]
    for metric in report.shown_metrics:
        found: dict[Basis, list[str]] = {}
        for label, basis in bases:
            if metric in basis:
                found.setdefault(basis[metric], []).append(label)
        if not found:
            continue
        label = report.metrics[metric]
        parts = [
            b.text() if len(found) == 1 else f"{b.text()} ('{', '.join(cells)}')"
            for b, cells in found.items()
        ]
        line = f"{label}: {'; '.join(parts)}"
        if any(b.few for b in found):
            worst = min(b.examples for b in found)
            line += (
                f" ‡ fewer than {FEW_TEST_EXAMPLES} test examples: one example moves it by "
                f"{100 / max(worst, 1):.1f} points, so its CI is wide"
                if metric not in ("nll", "nll_ts")
                else f" ‡ fewer than {FEW_TEST_EXAMPLES} test examples, so its CI is wide"
            )
        lines.append(line)
    return lines


def answer_sentence(report) -> str | None:
    """The answer's sentence on the metrics that rest on few test examples; None when none does."""
    flagged = flagged_metrics(report)
    if not flagged:
        return None
    bases = [cell_basis(c) for c in report.cells]
    parts = []
    for metric in flagged:
        smallest = min((b[metric] for b in bases if metric in b), key=lambda b: b.examples)
        parts.append(f"{report.metrics[metric]} on {smallest.text()}")
    read = "" if "balanced_accuracy" in flagged else "; balanced accuracy over all classes rests on more"
    return (
        f"Few test examples behind {', '.join(parts)} (fewer than {FEW_TEST_EXAMPLES}): one example moves such "
        f"a metric by several points, so its CIs are wide and its differences are hints, not findings{read}."
    )
