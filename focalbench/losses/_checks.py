"""Argument checks and small helpers shared by every loss in the library (one place, one wording).

Each check raises ``ConfigError`` (a ValueError) with one line that names the argument and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch

from focalbench.errors import ConfigError

ALPHA_MODES: tuple[str, ...] = ("none", "inverse_freq", "inverse_sqrt_freq", "effective_num")
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")

AlphaSpec = float | Sequence[float] | torch.Tensor | None

MEAN_CONVENTION: str = (
    'reduction "mean" divides the sum of alpha-weighted losses by sum_i alpha_{y_i} over non-ignored '
    "elements (by their count N when alpha is None), as PyTorch's weighted cross_entropy does"
)


def _is_real(value: object) -> bool:
    """True for int/float-like numbers; bool is excluded because True/False as a weight is a typo."""
    return isinstance(value, Real) and not isinstance(value, bool)


def _check_gamma(gamma: float) -> float:
    if not _is_real(gamma) or not math.isfinite(float(gamma)) or gamma < 0:
        raise ConfigError(f"gamma must be a finite number >= 0 (0 gives cross-entropy), got {gamma!r}")
    return float(gamma)


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ConfigError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    return reduction


def _check_binary_alpha(alpha: float) -> float:
    if not 0.0 <= float(alpha) <= 1.0:  # also rejects NaN
        raise ConfigError(
            f"alpha as a float must lie in [0, 1] (the weight of class 1; class 0 gets 1 - alpha), got {alpha!r}"
        )
    return float(alpha)


def _float_alpha_on_multiclass(alpha: float, num_classes: int) -> ConfigError:
    return ConfigError(
        f"alpha={alpha!r} is a float, which is defined for binary tasks only (C == 2) but there are "
        f"C={num_classes} classes; pass alpha as a list of {num_classes} per-class weights, or a mode "
        f"({', '.join(ALPHA_MODES)}) via class_weights/resolve_alpha"
    )


def _weights_to_tensor(alpha: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Turn a per-class weight list into a 1-D float tensor, checking that entries are finite and >= 0."""
    if isinstance(alpha, torch.Tensor):
        weights = alpha.detach()
        if not weights.is_floating_point():
            weights = weights.float()
    else:
        if isinstance(alpha, str) or not all(_is_real(a) for a in alpha):
            raise ConfigError(
                f"alpha must be None, a float in [0, 1] (binary only) or a list of non-negative "
                f"per-class weights; got {alpha!r}"
            )
        weights = torch.tensor([float(a) for a in alpha], dtype=torch.float32)
    if weights.dim() != 1 or weights.numel() == 0:
        raise ConfigError(
            f"alpha as per-class weights must be a non-empty 1-D list, got shape {tuple(weights.shape)}"
        )
    bad = ~(torch.isfinite(weights) & (weights >= 0))
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ConfigError(
            f"alpha must hold finite weights >= 0; class {first} has weight {weights[first].item()!r}"
        )
    return weights


def _normalize_alpha(alpha: AlphaSpec) -> float | torch.Tensor | None:
    """Check an alpha value that does not depend on C: None, a float in [0, 1], or a weight tensor."""
    if alpha is None:
        return None
    if _is_real(alpha):
        return _check_binary_alpha(alpha)
    if isinstance(alpha, torch.Tensor) and alpha.dim() == 0:
        return _check_binary_alpha(alpha.item())
    if isinstance(alpha, torch.Tensor | Sequence):
        return _weights_to_tensor(alpha)
    raise ConfigError(
        f"alpha must be None, a float in [0, 1] (binary only) or a list of per-class weights; got {alpha!r}"
    )


def _check_alpha_fits(alpha: float | torch.Tensor | None, num_classes: int) -> None:
    """A float alpha needs C == 2; per-class weights need exactly C entries."""
    if isinstance(alpha, float) and num_classes != 2:
        raise _float_alpha_on_multiclass(alpha, num_classes)
    if isinstance(alpha, torch.Tensor) and alpha.numel() != num_classes:
        raise ConfigError(
            f"alpha must hold one weight per class (C={num_classes}), got {alpha.numel()} weights"
        )


def _alpha_for_classes(
    alpha: float | torch.Tensor | None, num_classes: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor | None:
    """Expand a checked alpha to a length-C tensor of ``dtype`` on ``device`` (None stays None)."""
    _check_alpha_fits(alpha, num_classes)
    if alpha is None:
        return None
    if isinstance(alpha, float):
        return torch.tensor([1.0 - alpha, alpha], dtype=dtype, device=device)
    return alpha.to(device=device, dtype=dtype)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32, or float64 when the input is float64 (so gradcheck can run at full precision)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _check_logits_target(logits: torch.Tensor, target: torch.Tensor, ignore_index: int) -> None:
    """Shapes, dtypes and the range of class indices (read back on the CPU, asserted on the device elsewhere)."""
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() < 2:
        raise ValueError(f"logits must have shape [N, C] or [N, C, d1, ...], got {tuple(logits.shape)}")
    num_classes = logits.shape[1]
    if num_classes < 2:
        raise ValueError(
            f"logits must have at least C=2 classes along dim 1, got shape {tuple(logits.shape)}"
        )
    if target.is_floating_point() or target.is_complex() or target.dtype == torch.bool:
        raise ValueError(f"target must hold integer class indices (int64), got dtype {target.dtype}")
    expected = (logits.shape[0], *logits.shape[2:])
    if tuple(target.shape) != expected:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}; "
            f"expected {expected} (logits with the class dim 1 removed)"
        )
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if target.device.type != "cpu":
        # Reading the check back would stall the GPU every step; assert on the device instead.
        torch._assert_async(~bad.any(), f"target values must be class indices in [0, {num_classes})")
        return
    if bool(bad.any()):
        value = int(target[bad][0])
        raise ValueError(
            f"target values must be class indices in [0, {num_classes}) or ignore_index={ignore_index}; "
            f"found {value}"
        )


def _check_positive(value: float, name: str, rule: str = "") -> float:
    """A finite number > 0 (margins, scales, temperatures)."""
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) <= 0:
        raise ConfigError(f"{name} must be a finite number > 0{rule}, got {value!r}")
    return float(value)


def _check_nonnegative(value: float, name: str, rule: str = "") -> float:
    if not _is_real(value) or not math.isfinite(float(value)) or float(value) < 0:
        raise ConfigError(f"{name} must be a finite number >= 0{rule}, got {value!r}")
    return float(value)


def _reduce(loss: torch.Tensor, weight: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduce per-element ``loss`` (already multiplied by ``weight``) as ``MEAN_CONVENTION`` says."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    denominator = weight.sum()
    # With nothing to average (all ignored or zero-weighted) the total is 0; return 0, not 0/0.
    safe_denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return total / safe_denominator


def _counts_to_tensor(counts: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Per-class sample counts as a float64 CPU vector (at least one entry)."""
    if isinstance(counts, torch.Tensor):
        values = counts.detach().to("cpu", torch.float64).reshape(-1)
    else:
        if isinstance(counts, str) or not all(_is_real(c) for c in counts):
            raise ConfigError(f"counts must be a list of per-class sample counts, got {counts!r}")
        values = torch.tensor([float(c) for c in counts], dtype=torch.float64)
    if values.numel() == 0:
        raise ConfigError("counts must hold one sample count per class; got an empty list")
    return values


def _positive_counts(counts: Sequence[float] | torch.Tensor, num_classes: int, who: str) -> torch.Tensor:
    """Counts that a prior or a margin divides by: C finite entries > 0."""
    n = _counts_to_tensor(counts)
    if n.numel() != num_classes:
        raise ConfigError(f"{who}: class_counts has {n.numel()} entries but the logits have C={num_classes}")
    bad = ~(torch.isfinite(n) & (n > 0))
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        raise ConfigError(
            f"{who}: class_counts must be finite and > 0; class {first} has {n[first].item():g}"
        )
    return n


def _member_means(
    per_element: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Batched criteria of fused groups: per-element losses ``[K, N]`` of K models -> their K "mean" losses, each
    as ``MEAN_CONVENTION`` says: divided by sum_i alpha_{y_i} of its own class weights (row k of ``weights``,
    ``[K, C]``), or by N when ``weights`` is None."""
    if weights is None:
        return per_element.mean(dim=1)
    w = weights.to(per_element.dtype).gather(1, target)
    denominator = w.sum(dim=1)
    return (per_element * w).sum(dim=1) / torch.where(
        denominator > 0, denominator, torch.ones_like(denominator)
    )
