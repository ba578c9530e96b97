"""Argument checks and small helpers shared by every loss in the library (one place, one wording).

Each check raises ``ConfigError`` (a ValueError) with one line that names the argument and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch
import torch.nn.functional as F

from focalbench.errors import ConfigError

ALPHA_MODES: tuple[str, ...] = ("none", "inverse_freq", "inverse_sqrt_freq", "effective_num")
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")
# What reduction "mean" divides by (``loss.mean``; the same tuple as focalbench.config.MEAN_MODES, which is
# repeated there so that validating a config needs no torch).
MEAN_MODES: tuple[str, ...] = ("weights", "batch")

AlphaSpec = float | Sequence[float] | torch.Tensor | None

_MEAN_SENTENCES: dict[str, str] = {
    # Every run record states its sentence (metrics.json "mean_convention"); this one is byte-for-byte what
    # records made before loss.mean existed state, so reports pool old and new records of a cell.
    "weights": 'reduction "mean" divides the sum of alpha-weighted losses by sum_i alpha_{y_i} over non-ignored '
    "elements (by their count N when alpha is None), as PyTorch's weighted cross_entropy does",
    "batch": 'loss.mean=batch: reduction "mean" divides the sum of alpha-weighted losses by N, the number of '
    "non-ignored elements, whatever alpha is, as Cui et al. 2019's class-balanced loss code does",
}


def mean_convention(mode: str = "weights") -> str:
    """The sentence that states what reduction "mean" divides by under ``loss.mean=mode`` (``MEAN_MODES``)."""
    return _MEAN_SENTENCES[_check_mean(mode)]


def _check_mean(mean: str) -> str:
    if mean not in MEAN_MODES:
        raise ConfigError(
            f"mean must be one of {', '.join(MEAN_MODES)} (divide by sum_i alpha_{{y_i}}, or by N); got {mean!r}"
        )
    return mean


# The default rule (loss.mean=weights), as every record of a run with that default states it.
MEAN_CONVENTION: str = mean_convention("weights")


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


def _reduce(
    loss: torch.Tensor,
    weight: torch.Tensor,
    reduction: str,
    mean: str = "weights",
    valid: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reduce per-element ``loss`` (already multiplied by ``weight``, the example's alpha_{y_i} times 0/1 for
    ignored/not) by ``reduction``; "mean" divides by sum_i weight_i (``mean="weights"``) or by N = sum_i valid_i
    (``mean="batch"``, ``valid`` the 0/1 float mask of non-ignored elements), 0 when there is nothing to
    average."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    denominator = weight.sum() if mean == "weights" else valid.sum()
    # With nothing to average (all ignored or zero-weighted) the total is 0; return 0, not 0/0.
    safe_denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
    return total / safe_denominator


def _safe_target(target: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """``target`` with ignored positions set to class 0, so that indexing by it is safe; callers zero those
    positions' weight (or let F.cross_entropy's ignore_index skip them)."""
    return torch.where(target != ignore_index, target, torch.zeros_like(target))


def _weighted_cross_entropy(
    z: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: str = "mean",
    mean: str = "weights",
    ignore_index: int = -100,
) -> torch.Tensor:
    """``F.cross_entropy(z, target, weight=weight)`` reduced by the loss contract: "none" is the alpha-weighted
    per-example loss (0 where ignored), "sum" its sum; "mean" divides by sum_i alpha_{y_i} (``mean="weights"``:
    F.cross_entropy's own mean, unchanged) or by N, the non-ignored count (``mean="batch"``, 0 when N = 0).
    The training criteria of the CE-based losses call this every step: the default is one F.cross_entropy."""
    if reduction != "mean" or mean == "weights":
        return F.cross_entropy(z, target, weight=weight, reduction=reduction, ignore_index=ignore_index)
    total = F.cross_entropy(z, target, weight=weight, reduction="sum", ignore_index=ignore_index)
    count = (target != ignore_index).sum().to(total.dtype)
    return total / torch.where(count > 0, count, torch.ones_like(count))


def _cross_entropy_loss(
    z: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    reduction: str,
    mean: str,
    ignore_index: int,
) -> torch.Tensor:
    """``_weighted_cross_entropy`` for the public losses: as it, but a "mean" over sum_i alpha_{y_i} with
    nothing to average (every target ignored, or every one weighted 0) is 0 with a zero gradient, as in
    ``focal_loss``, where F.cross_entropy gives 0/0 = NaN. Otherwise the value is F.cross_entropy's, bit for bit."""
    if reduction != "mean" or mean != "weights":
        return _weighted_cross_entropy(z, target, weight, reduction, mean, ignore_index)
    valid = target != ignore_index
    if weight is None:
        denominator = valid.sum()
    else:
        denominator = (weight[_safe_target(target, ignore_index)] * valid.to(weight.dtype)).sum()
    has_any = denominator > 0
    # Where there is nothing to average, unit weights keep F.cross_entropy's backward finite (0/0 otherwise);
    # where there is, torch.where passes ``weight`` through unchanged.
    safe_weight = None if weight is None else torch.where(has_any, weight, torch.ones_like(weight))
    loss = F.cross_entropy(z, target, weight=safe_weight, ignore_index=ignore_index)
    return torch.where(has_any, loss, torch.zeros_like(loss))


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
    per_element: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None,
    batch_mean: torch.Tensor | None = None,
) -> torch.Tensor:
    """Batched criteria of fused groups: unweighted per-element losses ``[K, N]`` of K models -> their K "mean"
    losses, each by its own ``loss.mean``: the alpha-weighted sum divided by sum_i alpha_{y_i} of its own class
    weights (row k of ``weights``, ``[K, C]``), or by N for the members marked in ``batch_mean`` (bool ``[K]``,
    None when no member divides by N: ``_batch_mean_members``). With ``weights`` None both are the plain mean.
    Fused groups train on whole batches, so no target is ignored here."""
    if weights is None:
        return per_element.mean(dim=1)
    w = weights.to(per_element.dtype).gather(1, target)
    denominator = w.sum(dim=1)
    if batch_mean is not None:
        denominator = torch.where(batch_mean, torch.full_like(denominator, target.shape[1]), denominator)
    return (per_element * w).sum(dim=1) / torch.where(
        denominator > 0, denominator, torch.ones_like(denominator)
    )


def _member_weighted(
    per_element: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None
) -> torch.Tensor:
    """Unweighted per-element losses ``[K, N]`` -> alpha-weighted ones, alpha_{y_i} from row k of ``weights``."""
    if weights is None:
        return per_element
    return per_element * weights.to(per_element.dtype).gather(1, target)


def _member_reduce(
    per_element: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor | None,
    reduction: str,
    batch_mean: torch.Tensor | None,
) -> torch.Tensor:
    """What a batched criterion returns for ``reduction``: "mean" gives ``[K]`` (``_member_means``), "none"
    the alpha-weighted per-example losses ``[K, N]``, "sum" their sums ``[K]``."""
    if reduction == "mean":
        return _member_means(per_element, target, weights, batch_mean)
    weighted = _member_weighted(per_element, target, weights)
    return weighted if reduction == "none" else weighted.sum(dim=1)


def _batch_mean_members(cfgs, device) -> torch.Tensor | None:
    """The members (bool ``[K]``) of a fused group whose ``loss.mean`` is batch; None when there is none, so
    that the default's arithmetic stays as it was."""
    flags = [loss_mean(cfg) == "batch" for cfg in cfgs]
    return torch.tensor(flags, device=device) if any(flags) else None


def loss_mean(cfg) -> str:
    """``cfg.loss.mean`` of a run's config (``MEAN_MODES``): "weights" where the config predates the key."""
    return _check_mean(str(cfg.loss.get("mean", "weights")))
