r"""The loss library: softmax and sigmoid focal loss, and class weights from class counts.

Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection", ICCV) down-weights examples
the model already gets right:

    FL(p_t) = -alpha_t * (1 - p_t)^gamma * log(p_t)

where p_t is the model's probability for the true class, gamma >= 0 is the focusing parameter
(gamma = 0 gives cross-entropy, exactly) and alpha_t is the weight of the true class.

alpha contract (``focal_loss``; ``resolve_alpha`` turns a config value into one of these):
  - ``None``: no class weights (alpha_t = 1).
  - a float in [0, 1]: binary tasks only (C == 2). It is the weight of class 1 (the positive,
    rare class) and class 0 gets 1 - alpha, as in RetinaNet and ``torchvision.ops.sigmoid_focal_loss``.
    A float on a multi-class task is an error: pass C weights, or a mode.
  - a length-C sequence or 1-D tensor of non-negative per-class weights.
  - modes computed from the training class counts n_c by ``class_weights`` (``ALPHA_MODES``):
    ``inverse_freq`` (1/n_c), ``inverse_sqrt_freq`` (1/sqrt(n_c)) and ``effective_num``
    ((1 - beta)/(1 - beta^n_c), Cui et al. 2019, "Class-Balanced Loss Based on Effective Number
    of Samples", CVPR), normalised so that the weights sum to C unless asked otherwise.

reduction contract (``focal_loss``):
  - ``"none"``: the per-element loss, shaped like ``target``, 0 at ignored positions.
  - ``"sum"``: the sum of the alpha-weighted per-element losses.
  - ``"mean"``: see ``MEAN_CONVENTION``. It is PyTorch's convention, so gamma = 0 with per-class
    alpha equals ``F.cross_entropy(weight=alpha)``. The scale of alpha therefore cancels out of
    "mean": only the ratios between the class weights matter.
``sigmoid_focal_loss`` keeps torchvision's own contract instead ("mean" divides by the element count).

Numerics: log-probabilities come from ``log_softmax`` / ``logsigmoid``, never from log(softmax).
The loss is computed in float32 (float64 if the logits are float64) with autocast switched off,
whatever the input dtype. log(1 - p_t) is computed in log space and the modulating factor as
exp(gamma * log(1 - p_t)): the naive (1 - p_t)^gamma has an unbounded derivative as p_t -> 1 when
0 < gamma < 1 and gives NaN gradients, while this form keeps value and gradient finite for any
finite logits. Gradients flow through the factor (p_t is not detached), as in the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Real

import torch
import torch.nn.functional as F

from focalbench.errors import ConfigError

__all__ = [
    "ALPHA_MODES",
    "MEAN_CONVENTION",
    "REDUCTIONS",
    "FocalLoss",
    "class_weights",
    "focal_loss",
    "resolve_alpha",
    "sigmoid_focal_loss",
]

MEAN_CONVENTION: str = (
    'reduction "mean" divides the sum of alpha-weighted losses by sum_i alpha_{y_i} over non-ignored '
    "elements (by their count N when alpha is None), as PyTorch's weighted cross_entropy does"
)

ALPHA_MODES: tuple[str, ...] = ("none", "inverse_freq", "inverse_sqrt_freq", "effective_num")
REDUCTIONS: tuple[str, ...] = ("none", "mean", "sum")
NORMALIZE_MODES: tuple[str, ...] = ("sum_to_C", "none")

AlphaSpec = float | Sequence[float] | torch.Tensor | None


# --------------------------------------------------------------------------------------------
# Argument checks (shared by the functions and the module wrapper)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Softmax focal loss
# --------------------------------------------------------------------------------------------


class _FocalTerm(torch.autograd.Function):
    r"""The unweighted focal term l_i = -(1 - p_t)^gamma log p_t for gamma > 0, with a closed-form backward.

    Forward, along the class dim 1 (any trailing dims):
        p       = exp(log_softmax(z))
        q       = sum_{j != t} p_j                           q = 1 - p_t, summed from the other classes
        log p_t = log1p(-q) where q < 1/2, else log_softmax(z) at t
        l       = -q^gamma log p_t
    Summing the other classes keeps q exact to float32 precision as p_t -> 1, where 1 - p_t would round to
    0; log1p(-q) then gives log p_t to full precision, where log_softmax's difference of two large numbers
    does not. So value and gradient are exact for well-classified examples too.

    Backward: dl/dz_j = c (delta_{jt} - p_j) with c = q^gamma (gamma p_t log(p_t)/q - 1). log(p_t)/q -> -1 as
    q -> 0 and is set to -1 at q = 0, so the gradient is finite for every gamma > 0, including 0 < gamma < 1
    where the derivative of (1 - p_t)^gamma alone is unbounded. Only p ([N, C], as cross-entropy keeps its
    log-probabilities) and four per-example vectors are saved: autograd through the forward would keep
    several [N, C] tensors and make several more passes over them (bench/bench_loss.py measures both).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, gamma: float) -> torch.Tensor:
        # One [N, C] buffer, reused in place: large fresh allocations are what makes this slow on a CPU
        # (each one page-faults anew under glibc's default malloc), so this allocates what CE allocates.
        p = F.log_softmax(x, dim=1)
        log_pt_softmax = p.gather(1, index).squeeze(1)
        p.exp_()
        p_t = p.gather(1, index)
        q = p.scatter_(1, index, 0.0).sum(dim=1)  # zero the target class, sum the others ...
        p.scatter_(1, index, p_t)  # ... and put it back
        log_pt = torch.where(q < 0.5, torch.log1p(-q), log_pt_softmax)
        modulator = q.pow(gamma)
        ctx.gamma = gamma
        ctx.save_for_backward(p, index, q, log_pt, modulator)
        return -modulator * log_pt

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        p, index, q, log_pt, modulator = ctx.saved_tensors
        ratio = torch.where(
            q > 0, log_pt / torch.where(q > 0, q, torch.ones_like(q)), torch.full_like(q, -1.0)
        )
        coef = (grad_out * modulator * (ctx.gamma * log_pt.exp() * ratio - 1.0)).unsqueeze(1)
        grad = p.mul(-coef)
        grad.scatter_add_(1, index, coef)
        return grad, None, None


def _focal_loss_core(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float,
    alpha: float | torch.Tensor | None,
    reduction: str,
    ignore_index: int,
) -> torch.Tensor:
    """The computation behind ``focal_loss``, on arguments that are already checked."""
    dtype = _compute_dtype(logits.dtype)
    # Autocast would run log_softmax/logsumexp in half precision; the loss must be float32.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        valid = target != ignore_index
        # Ignored positions gather class 0 and are then zeroed by their weight of 0.
        safe_target = torch.where(valid, target, torch.zeros_like(target)).long().unsqueeze(1)
        if gamma == 0.0:
            log_p = F.log_softmax(x, dim=1)
            per_element = -log_p.gather(1, safe_target).squeeze(1)
        else:
            per_element = _FocalTerm.apply(x, safe_target, gamma)
        class_w = _alpha_for_classes(alpha, x.shape[1], dtype, x.device)
        weight = valid.to(dtype) if class_w is None else class_w[safe_target.squeeze(1)] * valid.to(dtype)
        loss = per_element * weight
        if reduction == "none":
            return loss
        total = loss.sum()
        if reduction == "sum":
            return total
        denominator = weight.sum()
        # With nothing to average (all ignored or zero-weighted) the total is 0; return 0, not 0/0.
        safe_denominator = torch.where(denominator > 0, denominator, torch.ones_like(denominator))
        return total / safe_denominator


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: AlphaSpec = None,
    reduction: str = "mean",
    ignore_index: int = -100,
) -> torch.Tensor:
    r"""Multi-class softmax focal loss, FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017).

    Args:
        logits: float tensor [N, C] or [N, C, d1, ...] of unnormalised scores, any float dtype.
        target: integer tensor [N] or [N, d1, ...] of class indices in [0, C), or ``ignore_index``.
        gamma: focusing parameter, finite and >= 0. gamma = 0 gives cross-entropy exactly.
        alpha: None; a float in [0, 1] when C == 2 (weight of class 1, class 0 gets 1 - alpha);
            or a length-C sequence / 1-D tensor of non-negative per-class weights.
        reduction: "none" (per-element loss shaped like ``target``, 0 where ignored), "sum", or
            "mean" (``MEAN_CONVENTION``: divides by sum_i alpha_{y_i} over non-ignored elements,
            N when alpha is None; 0 if that sum is 0, where PyTorch would return NaN).
        ignore_index: target value whose elements contribute nothing, not even to the mean's denominator.

    Returns:
        float32 tensor (float64 if ``logits`` is float64), computed with autocast disabled.
        With gamma = 0 it equals ``F.cross_entropy(logits, target, weight=alpha, reduction=...,
        ignore_index=...)`` in value and gradient.

    Raises:
        ConfigError (a ValueError): bad gamma, alpha (float off [0, 1], a float on a multi-class task,
            wrong length, negative or non-finite weights) or reduction.
        ValueError: logits/target dtype or shape mismatch, target values outside [0, C).
    """
    gamma = _check_gamma(gamma)
    reduction = _check_reduction(reduction)
    checked_alpha = _normalize_alpha(alpha)
    _check_logits_target(logits, target, ignore_index)
    _check_alpha_fits(checked_alpha, logits.shape[1])
    return _focal_loss_core(logits, target, gamma, checked_alpha, reduction, ignore_index)


class FocalLoss(torch.nn.Module):
    """``focal_loss`` as a module. Arguments are checked once, here; ``forward`` checks logits/target.

    ``alpha`` is a buffer (so ``.to(device)`` moves it): None, or the per-class weights. A binary
    float alpha is stored as [1 - alpha, alpha] and remembered in ``binary_alpha``, so that a
    multi-class input still gets the error that explains the float.
    """

    alpha: torch.Tensor | None

    def __init__(
        self,
        gamma: float = 2.0,
        alpha: AlphaSpec = None,
        reduction: str = "mean",
        ignore_index: int = -100,
    ) -> None:
        super().__init__()
        self.gamma = _check_gamma(gamma)
        self.reduction = _check_reduction(reduction)
        self.ignore_index = int(ignore_index)
        checked = _normalize_alpha(alpha)
        self.binary_alpha: float | None = checked if isinstance(checked, float) else None
        if isinstance(checked, float):
            checked = torch.tensor([1.0 - checked, checked], dtype=torch.float32)
        self.register_buffer("alpha", None if checked is None else checked.clone())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of ``logits`` [N, C, ...] against class indices ``target`` [N, ...]; see ``focal_loss``."""
        _check_logits_target(logits, target, self.ignore_index)
        alpha = self.binary_alpha if self.binary_alpha is not None else self.alpha
        _check_alpha_fits(alpha, logits.shape[1])
        return _focal_loss_core(logits, target, self.gamma, self.alpha, self.reduction, self.ignore_index)

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma:g}, alpha={_describe_alpha(self.binary_alpha, self.alpha)}, "
            f"reduction={self.reduction!r}, ignore_index={self.ignore_index}"
        )


def _describe_alpha(binary_alpha: float | None, weights: torch.Tensor | None) -> str:
    if binary_alpha is not None:
        return f"{binary_alpha:g} (class 1; class 0 gets {1 - binary_alpha:g})"
    if weights is None:
        return "None"
    values = weights.tolist()
    if len(values) <= 10:
        return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
    return f"<{len(values)} class weights in [{min(values):.4g}, {max(values):.4g}]>"


# --------------------------------------------------------------------------------------------
# Sigmoid (binary / multi-label) focal loss
# --------------------------------------------------------------------------------------------


def sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | None = 0.25,
    reduction: str = "none",
) -> torch.Tensor:
    r"""Binary / multi-label focal loss with the semantics of ``torchvision.ops.sigmoid_focal_loss``.

    Per element: loss = alpha_t * (1 - p_t)^gamma * BCE(logits, target), with p = sigmoid(logits),
    p_t = p * t + (1 - p) * (1 - t) and alpha_t = alpha * t + (1 - alpha) * (1 - t).
    (1 - p_t) = t (1 - p) + (1 - t) p is computed in log space from logsigmoid, so the value and the
    gradient stay finite where torchvision's gives NaN/inf (saturated logits, 0 < gamma < 1).

    Args:
        logits: float tensor of any shape.
        target: float tensor of the same shape, values in [0, 1] (soft labels allowed).
        gamma: focusing parameter, finite and >= 0.
        alpha: weight of positives in [0, 1] (negatives get 1 - alpha); None or a negative value
            means no weighting, as in torchvision (which uses alpha=-1 for that).
        reduction: "none" (same shape as ``logits``), "mean" (over all elements, torchvision's
            convention, not ``MEAN_CONVENTION``) or "sum".

    Returns:
        float32 tensor (float64 if ``logits`` is float64), computed with autocast disabled.

    Raises:
        ConfigError (a ValueError): bad gamma, alpha above 1 or reduction.
        ValueError: logits/target shape mismatch or target values outside [0, 1].
    """
    gamma = _check_gamma(gamma)
    reduction = _check_reduction(reduction)
    if alpha is not None and (not _is_real(alpha) or not float(alpha) <= 1.0):
        raise ConfigError(
            f"alpha must be in [0, 1], or None / a negative value for no weighting; got {alpha!r}"
        )
    if not logits.is_floating_point():
        raise ValueError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if target.shape != logits.shape:
        raise ValueError(f"target shape {tuple(target.shape)} must equal logits shape {tuple(logits.shape)}")
    if bool(((target < 0) | (target > 1)).any()):
        raise ValueError("target values must lie in [0, 1] (probabilities of the positive label)")

    dtype = _compute_dtype(logits.dtype)
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        t = target.to(dtype)
        loss = F.binary_cross_entropy_with_logits(x, t, reduction="none")
        if gamma != 0.0:
            log_p = F.logsigmoid(x)
            log_1m_p = F.logsigmoid(-x)
            # log(1 - p_t) = log(t (1 - p) + (1 - t) p). For hard labels one term is log(0) = -inf,
            # which logaddexp drops exactly (and with zero gradient).
            log_1m_pt = torch.logaddexp(torch.log(t) + log_1m_p, torch.log1p(-t) + log_p)
            loss = torch.exp(gamma * log_1m_pt) * loss
        if alpha is not None and alpha >= 0:
            loss = (alpha * t + (1.0 - alpha) * (1.0 - t)) * loss
        if reduction == "mean":
            return loss.mean()
        if reduction == "sum":
            return loss.sum()
        return loss


# --------------------------------------------------------------------------------------------
# Class weights from class counts
# --------------------------------------------------------------------------------------------


def _counts_to_tensor(counts: Sequence[float] | torch.Tensor) -> torch.Tensor:
    if isinstance(counts, torch.Tensor):
        values = counts.detach().to("cpu", torch.float64).reshape(-1)
    else:
        if isinstance(counts, str) or not all(_is_real(c) for c in counts):
            raise ConfigError(f"counts must be a list of per-class sample counts, got {counts!r}")
        values = torch.tensor([float(c) for c in counts], dtype=torch.float64)
    if values.numel() == 0:
        raise ConfigError("counts must hold one sample count per class; got an empty list")
    return values


def _one_minus_power(beta: float, n: torch.Tensor) -> torch.Tensor:
    """1 - beta^n as -expm1(n log beta): no cancellation for beta near 1; beta = 0 gives 1 (n > 0)."""
    log_beta = math.log(beta) if beta > 0 else float("-inf")
    return -torch.expm1(n * log_beta)


def class_weights(
    counts: Sequence[float] | torch.Tensor,
    mode: str,
    beta: float = 0.9999,
    normalize: str = "sum_to_C",
) -> torch.Tensor:
    r"""Per-class weights from the training-set class counts n_c.

    Modes (``ALPHA_MODES``):
        "none": w_c = 1.
        "inverse_freq": w_c = 1 / n_c.
        "inverse_sqrt_freq": w_c = 1 / sqrt(n_c).
        "effective_num": w_c = (1 - beta) / (1 - beta^{n_c}), the inverse effective number of
            samples (Cui et al. 2019). beta -> 1 approaches inverse_freq, beta = 0 gives uniform.

    Args:
        counts: length-C sequence or tensor of sample counts (> 0 for every mode but "none").
        mode: one of ``ALPHA_MODES``.
        beta: in [0, 1); only "effective_num" uses it.
        normalize: "sum_to_C" scales the weights so that they sum to C; "none" returns them raw.

    Returns:
        float32 tensor of length C (on the CPU).

    Raises:
        ConfigError (a ValueError) for an unknown mode or normalize, beta outside [0, 1), empty
        counts, or a count that is negative, non-finite, or zero where the mode divides by it.
    """
    if mode not in ALPHA_MODES:
        raise ConfigError(f"mode must be one of {', '.join(ALPHA_MODES)}; got {mode!r}")
    if normalize not in NORMALIZE_MODES:
        raise ConfigError(f"normalize must be one of {', '.join(NORMALIZE_MODES)}; got {normalize!r}")
    if not _is_real(beta) or not 0.0 <= float(beta) < 1.0:
        raise ConfigError(f"beta must be in [0, 1) (0.9999 is Cui et al.'s default); got {beta!r}")
    n = _counts_to_tensor(counts)
    allowed = n >= 0 if mode == "none" else n > 0
    bad = ~(torch.isfinite(n) & allowed)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        need = ">= 0" if mode == "none" else f"> 0 (mode {mode!r} divides by it)"
        raise ConfigError(f"counts must be finite and {need}; class {first} has count {n[first].item():g}")

    if mode == "none":
        weights = torch.ones_like(n)
    elif mode == "inverse_freq":
        weights = 1.0 / n
    elif mode == "inverse_sqrt_freq":
        weights = 1.0 / n.sqrt()
    else:
        weights = (1.0 - beta) / _one_minus_power(beta, n)
    if normalize == "sum_to_C":
        weights = weights * (n.numel() / weights.sum())
    return weights.to(torch.float32)


def resolve_alpha(
    alpha: str | float | Sequence[float] | torch.Tensor | None,
    counts: Sequence[float] | torch.Tensor | None,
    beta: float = 0.9999,
    normalize: str = "sum_to_C",
) -> torch.Tensor | None:
    """Turn a config-level alpha into what ``focal_loss`` takes, using the training split's class counts.

    - None or "none" -> None (no class weights).
    - a mode string from ``ALPHA_MODES`` -> ``class_weights(counts, mode, beta, normalize)``.
    - a float in [0, 1] -> tensor [1 - alpha, alpha]; only when there are 2 classes.
    - a list / 1-D tensor of C non-negative weights -> float32 tensor, used as given (not normalised).

    ``counts`` (length C) fixes C; it may be None only when alpha is None or "none".
    Raises ConfigError (a ValueError) that names alpha and the alternatives.
    """
    if alpha is None or (isinstance(alpha, str) and alpha == "none"):
        return None
    if isinstance(alpha, str) and alpha not in ALPHA_MODES:
        raise ConfigError(
            f"alpha must be None, a float in [0, 1] (binary only), a list of per-class weights or one of "
            f"{', '.join(ALPHA_MODES)}; got {alpha!r}"
        )
    if counts is None:
        raise ConfigError(f"alpha={alpha!r} needs the training class counts to know C; counts is None")
    n = _counts_to_tensor(counts)
    if isinstance(alpha, str):
        return class_weights(n, alpha, beta=beta, normalize=normalize)
    checked = _normalize_alpha(alpha)
    return _alpha_for_classes(checked, n.numel(), torch.float32, torch.device("cpu"))
