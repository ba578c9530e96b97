r"""Sample-dependent focal loss FLSD-53 (Mukhoti et al., "Calibrating Deep Neural Networks using Focal Loss",
NeurIPS 2020).

    gamma_i = gamma_high (5)  where p_t < threshold (0.2),   else gamma_low (3)
    FLSD(z, y) = -alpha_t (1 - p_t)^gamma_i log p_t

gamma is chosen per example from p_t taken without gradient, as in the paper; the loss is then ``focal_loss``
with that gamma, so it is exact to the same precision (closed-form backward, finite as p_t -> 1). The paper's
point is calibration: it lowers ECE before temperature scaling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench.errors import ConfigError
from focalbench.losses._checks import (
    AlphaSpec,
    _check_alpha_fits,
    _check_gamma,
    _check_logits_target,
    _check_mean,
    _check_reduction,
    _normalize_alpha,
    _safe_target,
    loss_mean,
)
from focalbench.losses.focal import _focal_loss_core
from focalbench.registry import LOSSES


def sample_gammas(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma_low: float,
    gamma_high: float,
    threshold: float,
    ignore_index: int = -100,
) -> torch.Tensor:
    """Per-example gamma: ``gamma_high`` where p_t < ``threshold``, else ``gamma_low`` (no gradient). An ignored
    example gets the gamma of class 0; it does not matter, as its weight is 0."""
    with torch.no_grad(), torch.autocast(device_type=logits.device.type, enabled=False):
        index = _safe_target(target, ignore_index).unsqueeze(1)
        p_t = F.softmax(logits.float(), dim=1).gather(1, index).squeeze(1)
        high = torch.full_like(p_t, float(gamma_high))
        return torch.where(p_t < threshold, high, torch.full_like(p_t, float(gamma_low)))


def flsd_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma_low: float = 3.0,
    gamma_high: float = 5.0,
    threshold: float = 0.2,
    alpha: AlphaSpec = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    *,
    mean: str = "weights",
) -> torch.Tensor:
    """FLSD (see the module docstring); the defaults are FLSD-53.

    Args:
        logits: float [N, C]; target: int64 [N] class indices in [0, C), or ``ignore_index``.
        gamma_low, gamma_high: finite, >= 0. threshold: in (0, 1).
        alpha, reduction, ignore_index, mean: as in ``focal_loss`` (an ignored target contributes nothing,
            not even to the mean's denominator; "none" gives 0 there).
    """
    gamma_low, gamma_high = _check_gamma(gamma_low), _check_gamma(gamma_high)
    _check_threshold(threshold, "threshold")
    reduction = _check_reduction(reduction)
    mean = _check_mean(mean)
    _check_logits_target(logits, target, ignore_index)
    if logits.dim() != 2:
        raise ConfigError(f"flsd_loss takes logits [N, C], got shape {tuple(logits.shape)}")
    checked_alpha = _normalize_alpha(alpha)
    _check_alpha_fits(checked_alpha, logits.shape[1])
    gammas = sample_gammas(logits, target, gamma_low, gamma_high, threshold, ignore_index)
    return _focal_loss_core(logits, target, gammas, checked_alpha, reduction, ignore_index, mean)


def _check_threshold(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ConfigError(f"{name} must be a probability in (0, 1) (0.2 in FLSD-53), got {value!r}")
    return float(value)


def check_keys(loss_cfg, cfg) -> None:
    """Plan-time check of ``loss.gamma_low``, ``loss.gamma_high`` and ``loss.threshold``."""
    for key in ("gamma_low", "gamma_high"):
        value = loss_cfg.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
            raise ConfigError(f"loss.{key} must be a finite number >= 0, got {value!r}")
    _check_threshold(loss_cfg.get("threshold"), "loss.threshold")


def _flsd_curve(p_t, gamma_low=3.0, gamma_high=5.0, threshold=0.2):
    gamma = torch.where(p_t < threshold, torch.full_like(p_t, gamma_high), torch.full_like(p_t, gamma_low))
    return -((1.0 - p_t) ** gamma) * torch.log(p_t)


@LOSSES.register(
    "flsd53",
    summary="sample-dependent focal loss FLSD-53: gamma 5 where p_t < 0.2, else 3 (Mukhoti et al. 2020)",
    validate=check_keys,
    curve=_flsd_curve,
)
def flsd_criterion(cfg, class_counts, device):
    """Training criterion ``(logits, target, alpha, reduction="mean") -> loss`` with the config's gammas,
    threshold and ``loss.mean``; "none" gives the alpha-weighted per-example loss [N]."""
    low, high, threshold = float(cfg.loss.gamma_low), float(cfg.loss.gamma_high), float(cfg.loss.threshold)
    mean = loss_mean(cfg)

    def criterion(logits, target, alpha, reduction="mean"):
        gammas = sample_gammas(logits, target, low, high, threshold)
        return _focal_loss_core(logits, target, gammas, alpha, _check_reduction(reduction), -100, mean)

    return criterion
