"""Cross-entropy, computed by ``torch.nn.functional.cross_entropy`` itself.

``loss=ce`` trains with PyTorch's own function, a separate code path from ``focal_loss``, so that the claim
"focal loss with gamma = 0 equals CE" is a real check and not a tautology. ``loss=balanced_ce`` is this loss
with per-class weights alpha (``alpha=inverse_freq`` by default); the mean divides by sum_i alpha_{y_i}, or by N
with ``loss.mean=batch``.
"""

from __future__ import annotations

import torch.nn.functional as F

from focalbench.losses._checks import (
    _batch_mean_members,
    _check_reduction,
    _member_reduce,
    _weighted_cross_entropy,
    loss_mean,
)
from focalbench.registry import LOSSES


def batched_ce_criterion(cfgs, class_counts, device):
    """Fused groups: the criteria of K ``ce`` models at once, ``(logits [K, C, N], target [K, N], weights
    [K, C] | None, reduction="mean") -> [K]`` ([K, N] for "none"; see ``focalbench.registry``)."""
    batch_mean = _batch_mean_members(cfgs, device)

    def criterion(logits, target, weights, reduction="mean"):
        per = F.cross_entropy(logits.float(), target, reduction="none")  # [K, N]: class dim 1
        return _member_reduce(per, target, weights, _check_reduction(reduction), batch_mean)

    return criterion


@LOSSES.register(
    "ce",
    summary="cross-entropy, torch's F.cross_entropy (per-class alpha: class-balanced CE)",
    title="cross-entropy",
    curve=lambda p_t: -p_t.log(),
    batched=batched_ce_criterion,
)
def ce_criterion(cfg, class_counts, device):
    """Training criterion ``(logits, target, alpha, reduction="mean") -> loss``: F.cross_entropy in float32 with
    weight=alpha; "mean" by ``loss.mean`` (default: F.cross_entropy's own mean), "none" the alpha-weighted [N]."""
    mean = loss_mean(cfg)

    def criterion(logits, target, alpha, reduction="mean"):
        return _weighted_cross_entropy(logits.float(), target, alpha, _check_reduction(reduction), mean)

    return criterion
