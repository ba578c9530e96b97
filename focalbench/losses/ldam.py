r"""LDAM, the label-distribution-aware margin loss (Cao et al., "Learning Imbalanced Datasets with
Label-Distribution-Aware Margin Loss", NeurIPS 2019).

    m_c = K / n_c^(1/4),   K chosen so that max_c m_c = max_margin
    LDAM(z, y) = CE(s * (z - m_y e_y), y)

The true-class logit is lowered by its class's margin (rare classes get larger margins), the logits are
multiplied by the scale s, then cross-entropy is taken (with optional per-class weights alpha, which is how
LDAM-DRW re-weights). The paper uses it with a normalised linear classifier, whose logits are cosines in
[-1, 1]: ``model.norm_classifier=true``, set by the presets ``loss=ldam`` and ``loss=ldam_drw``. Predictions at
test time use the plain logits z.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from focalbench.errors import ConfigError
from focalbench.losses._checks import (
    AlphaSpec,
    _alpha_for_classes,
    _check_logits_target,
    _check_mean,
    _check_positive,
    _check_reduction,
    _compute_dtype,
    _cross_entropy_loss,
    _normalize_alpha,
    _positive_counts,
    _safe_target,
    _weighted_cross_entropy,
    loss_mean,
)
from focalbench.registry import LOSSES


def ldam_margins(
    class_counts: Sequence[float] | torch.Tensor, max_margin: float = 0.5, num_classes: int | None = None
) -> torch.Tensor:
    """m_c proportional to n_c^(-1/4), scaled so that the largest (the rarest class's) is ``max_margin``."""
    max_margin = _check_positive(max_margin, "max_margin")
    n = _positive_counts(class_counts, num_classes or len(class_counts), "ldam_loss")
    raw = n.pow(-0.25)
    return raw * (max_margin / raw.max())


def ldam_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    class_counts: Sequence[float] | torch.Tensor,
    max_margin: float = 0.5,
    scale: float = 30.0,
    alpha: AlphaSpec = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    *,
    mean: str = "weights",
) -> torch.Tensor:
    """CE of ``scale * (logits - m_y e_y)`` (see the module docstring).

    Args:
        logits: float [N, C] (cosine logits from a normalised classifier, as in the paper);
            target: int64 [N] class indices in [0, C), or ``ignore_index``.
        class_counts: C training counts n_c > 0.
        max_margin: the largest margin, finite and > 0 (0.5 in the paper).
        scale: s, finite and > 0 (30 in the paper).
        alpha, reduction, ignore_index, mean: as in ``focal_loss`` (``mean="weights"``: "mean" divides by
            sum_i alpha_{y_i}, as F.cross_entropy does; "batch": by N).

    Returns:
        float32 (float64 for float64 logits), computed with autocast disabled.
    """
    scale = _check_positive(scale, "scale")
    reduction = _check_reduction(reduction)
    mean = _check_mean(mean)
    _check_logits_target(logits, target, ignore_index)
    if logits.dim() != 2:
        raise ConfigError(f"ldam_loss takes logits [N, C], got shape {tuple(logits.shape)}")
    dtype = _compute_dtype(logits.dtype)
    margins = ldam_margins(class_counts, max_margin, logits.shape[1]).to(logits.device, dtype)
    weight = _alpha_for_classes(_normalize_alpha(alpha), logits.shape[1], dtype, logits.device)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        z = _ldam_logits(logits.to(dtype), target, margins, scale, ignore_index)
        return _cross_entropy_loss(z, target, weight, reduction, mean, ignore_index)


def _ldam_logits(x, target, margins, scale, ignore_index=-100):
    """s (z - m_y e_y): subtract m_y from the true-class logit only, then scale. An ignored row has its class 0
    logit moved instead; cross-entropy skips that row."""
    index = _safe_target(target, ignore_index)
    return scale * x.scatter_add(1, index.unsqueeze(1), -margins[index].unsqueeze(1))


def check_keys(loss_cfg, cfg) -> None:
    """Plan-time check of ``loss.max_margin`` and ``loss.scale``."""
    _check_positive(loss_cfg.get("max_margin"), "loss.max_margin", " (0.5 in the paper)")
    _check_positive(loss_cfg.get("scale"), "loss.scale", " (30 in the paper)")


@LOSSES.register(
    "ldam",
    summary="LDAM: CE(s (z - m_y e_y)), m_c ~ n_c^(-1/4) (Cao et al. 2019); use with DRW: loss=ldam_drw",
    validate=check_keys,
)
def ldam_criterion(cfg, class_counts, device):
    """Training criterion ``(logits, target, alpha, reduction="mean") -> loss`` with the config's margin, scale
    and ``loss.mean``; "none" gives the alpha-weighted per-example loss [N]."""
    margins = ldam_margins(class_counts, float(cfg.loss.max_margin)).to(device, torch.float32)
    scale = float(cfg.loss.scale)
    mean = loss_mean(cfg)

    def criterion(logits, target, alpha, reduction="mean"):
        z = _ldam_logits(logits.float(), target, margins, scale)
        return _weighted_cross_entropy(z, target, alpha, _check_reduction(reduction), mean)

    return criterion
