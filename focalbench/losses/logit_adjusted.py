r"""Logit-adjusted cross-entropy (Menon et al., "Long-tail learning via logit adjustment", ICLR 2021).

    LA(z, y) = CE(z + tau * log pi, y) = -log( pi_y^tau e^{z_y} / sum_j pi_j^tau e^{z_j} )

where pi holds the training class priors pi_c = n_c / sum_j n_j. The loss adds a larger offset to the logits
of frequent classes during training, so the raw logits must win by a larger margin on rare classes; at test time
predictions use the plain logits z (the argmax of z is the Bayes-optimal balanced-error classifier when tau = 1).
tau = 0 is cross-entropy exactly. tau = 1 is Balanced Softmax (Ren et al., NeurIPS 2020), the preset
``loss=balanced_softmax``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from focalbench.errors import ConfigError
from focalbench.losses._checks import (
    AlphaSpec,
    _alpha_for_classes,
    _batch_mean_members,
    _check_logits_target,
    _check_mean,
    _check_nonnegative,
    _check_reduction,
    _compute_dtype,
    _cross_entropy_loss,
    _member_reduce,
    _normalize_alpha,
    _positive_counts,
    _weighted_cross_entropy,
    loss_mean,
)
from focalbench.registry import LOSSES


def log_priors(class_counts: Sequence[float] | torch.Tensor, num_classes: int) -> torch.Tensor:
    """log pi_c = log(n_c / sum_j n_j), float64 on the CPU; every count must be > 0."""
    n = _positive_counts(class_counts, num_classes, "logit_adjusted_loss")
    return (n / n.sum()).log()


def logit_adjusted_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Sequence[float] | torch.Tensor,
    tau: float = 1.0,
    alpha: AlphaSpec = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    *,
    mean: str = "weights",
) -> torch.Tensor:
    """Cross-entropy on ``logits + tau * log(pi)`` (see the module docstring).

    Args:
        logits: float [N, C]; target: int64 [N] class indices in [0, C), or ``ignore_index``.
        class_counts: C training counts n_c > 0 (the priors pi are n_c / sum n).
        tau: finite, >= 0; 0 gives cross-entropy, 1 gives Balanced Softmax.
        alpha, reduction, ignore_index, mean: as in ``focal_loss`` (``mean="weights"``: "mean" divides by
            sum_i alpha_{y_i}, as F.cross_entropy does; "batch": by N).

    Returns:
        float32 (float64 for float64 logits), computed with autocast disabled.
    """
    tau = _check_nonnegative(tau, "tau", " (0 gives cross-entropy, 1 Balanced Softmax)")
    reduction = _check_reduction(reduction)
    mean = _check_mean(mean)
    _check_logits_target(logits, target, ignore_index)
    if logits.dim() != 2:
        raise ConfigError(f"logit_adjusted_loss takes logits [N, C], got shape {tuple(logits.shape)}")
    dtype = _compute_dtype(logits.dtype)
    offset = (tau * log_priors(class_counts, logits.shape[1])).to(logits.device, dtype)
    weight = _alpha_for_classes(_normalize_alpha(alpha), logits.shape[1], dtype, logits.device)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        return _cross_entropy_loss(logits.to(dtype) + offset, target, weight, reduction, mean, ignore_index)


def check_keys(loss_cfg, cfg) -> None:
    """Plan-time check of ``loss.tau``."""
    _check_nonnegative(loss_cfg.get("tau"), "loss.tau", " (0 gives cross-entropy, 1 Balanced Softmax)")


def batched_logit_adjusted_criterion(cfgs, class_counts, device):
    """Fused groups: K logit-adjusted criteria (each with its own tau and ``loss.mean``) at once, ``(logits
    [K, C, N], target [K, N], weights [K, C] | None, reduction="mean") -> [K]`` ([K, N] for "none"); see
    ``focalbench.registry``."""
    offsets = torch.stack(
        [float(cfg.loss.tau) * log_priors(class_counts, len(class_counts)) for cfg in cfgs]
    ).to(device, torch.float32)[:, :, None]  # [K, C, 1]
    batch_mean = _batch_mean_members(cfgs, device)

    def criterion(logits, target, weights, reduction="mean"):
        per = F.cross_entropy(logits.float() + offsets, target, reduction="none")  # [K, N]: class dim 1
        return _member_reduce(per, target, weights, _check_reduction(reduction), batch_mean)

    return criterion


@LOSSES.register(
    "logit_adjusted",
    summary="logit-adjusted CE, CE(z + tau log pi) (Menon et al. 2021); tau = 1 is Balanced Softmax",
    validate=check_keys,
    batched=batched_logit_adjusted_criterion,
)
def logit_adjusted_criterion(cfg, class_counts, device):
    """Training criterion ``(logits, target, alpha, reduction="mean") -> loss`` with ``tau = cfg.loss.tau`` and
    ``loss.mean``; "none" gives the alpha-weighted per-example loss [N]."""
    tau = float(cfg.loss.tau)
    offset = (tau * log_priors(class_counts, len(class_counts))).to(device, torch.float32)
    mean = loss_mean(cfg)

    def criterion(logits, target, alpha, reduction="mean"):
        return _weighted_cross_entropy(
            logits.float() + offset, target, alpha, _check_reduction(reduction), mean
        )

    return criterion
