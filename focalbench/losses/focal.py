r"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection", ICCV), softmax and sigmoid.

    FL(p_t) = -alpha_t * (1 - p_t)^gamma * log(p_t)

where p_t is the model's probability for the true class, gamma >= 0 is the focusing parameter (gamma = 0 gives
cross-entropy, exactly) and alpha_t is the weight of the true class (alpha contract: ``focalbench.losses``).
At p_t = 0.9 and gamma = 2 the loss is 100x smaller than cross-entropy; at p_t = 0.6, 6.25x.

Numerics: log-probabilities come from ``log_softmax`` / ``logsigmoid``, never from log(softmax). The loss is
computed in float32 (float64 if the logits are float64) with autocast switched off, whatever the input dtype.
log(1 - p_t) is computed in log space: the naive (1 - p_t)^gamma has an unbounded derivative as p_t -> 1 when
0 < gamma < 1 and gives NaN gradients, while this form keeps value and gradient finite for any finite logits.
Gradients flow through the factor (p_t is not detached), as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from focalbench.errors import ConfigError
from focalbench.losses._checks import (
    AlphaSpec,
    _alpha_for_classes,
    _batch_mean_members,
    _check_alpha_fits,
    _check_gamma,
    _check_logits_target,
    _check_mean,
    _check_reduction,
    _compute_dtype,
    _is_real,
    _member_reduce,
    _normalize_alpha,
    _reduce,
    loss_mean,
)
from focalbench.registry import LOSSES


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

    gamma is a float, or a tensor of per-example values shaped like the target (FLSD-53 picks gamma per
    example); it gets no gradient.

    Backward: dl/dz_j = c (delta_{jt} - p_j) with c = q^gamma (gamma p_t log(p_t)/q - 1). log(p_t)/q -> -1 as
    q -> 0 and is set to -1 at q = 0, so the gradient is finite for every gamma > 0, including 0 < gamma < 1
    where the derivative of (1 - p_t)^gamma alone is unbounded. Only p ([N, C], as cross-entropy keeps its
    log-probabilities) and four per-example vectors are saved: autograd through the forward would keep
    several [N, C] tensors and make several more passes over them (bench/bench_loss.py measures both).
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, index: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
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
        ctx.gamma = gamma if not isinstance(gamma, torch.Tensor) else None
        ctx.save_for_backward(p, index, q, log_pt, modulator, *(() if ctx.gamma is not None else (gamma,)))
        return -modulator * log_pt

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: torch.Tensor):
        p, index, q, log_pt, modulator, *per_example_gamma = ctx.saved_tensors
        gamma = ctx.gamma if ctx.gamma is not None else per_example_gamma[0]
        ratio = torch.where(
            q > 0, log_pt / torch.where(q > 0, q, torch.ones_like(q)), torch.full_like(q, -1.0)
        )
        coef = (grad_out * modulator * (gamma * log_pt.exp() * ratio - 1.0)).unsqueeze(1)
        grad = p.mul(-coef)
        grad.scatter_add_(1, index, coef)
        return grad, None, None


def _focal_loss_core(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float | torch.Tensor,
    alpha: float | torch.Tensor | None,
    reduction: str,
    ignore_index: int,
    mean: str = "weights",
) -> torch.Tensor:
    """The computation behind ``focal_loss``, on arguments that are already checked."""
    dtype = _compute_dtype(logits.dtype)
    # Autocast would run log_softmax/logsumexp in half precision; the loss must be float32.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        valid = target != ignore_index
        # Ignored positions gather class 0 and are then zeroed by their weight of 0.
        safe_target = torch.where(valid, target, torch.zeros_like(target)).long().unsqueeze(1)
        if not isinstance(gamma, torch.Tensor) and gamma == 0.0:
            log_p = F.log_softmax(x, dim=1)
            per_element = -log_p.gather(1, safe_target).squeeze(1)
        else:
            per_element = _FocalTerm.apply(x, safe_target, gamma)
        class_w = _alpha_for_classes(alpha, x.shape[1], dtype, x.device)
        valid_w = valid.to(dtype)
        weight = valid_w if class_w is None else class_w[safe_target.squeeze(1)] * valid_w
        return _reduce(per_element * weight, weight, reduction, mean, valid_w)


def focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: AlphaSpec = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    *,
    mean: str = "weights",
) -> torch.Tensor:
    r"""Multi-class softmax focal loss, FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017).

    Args:
        logits: float tensor [N, C] or [N, C, d1, ...] of unnormalised scores, any float dtype.
        target: integer tensor [N] or [N, d1, ...] of class indices in [0, C), or ``ignore_index``.
        gamma: focusing parameter, finite and >= 0. gamma = 0 gives cross-entropy exactly.
        alpha: None; a float in [0, 1] when C == 2 (weight of class 1, class 0 gets 1 - alpha);
            or a length-C sequence / 1-D tensor of non-negative per-class weights.
        reduction: "none" (per-element loss shaped like ``target``, 0 where ignored), "sum", or
            "mean" (divided as ``mean`` says; 0 if there is nothing to average, where PyTorch would
            return NaN).
        ignore_index: target value whose elements contribute nothing, not even to the mean's denominator.
        mean: what "mean" divides the alpha-weighted sum by: "weights" (``MEAN_CONVENTION``, PyTorch's
            weighted mean) sum_i alpha_{y_i} over non-ignored elements; "batch" their count N (Cui et al.
            2019). Identical when alpha is None.

    Returns:
        float32 tensor (float64 if ``logits`` is float64), computed with autocast disabled.
        With gamma = 0 it equals ``F.cross_entropy(logits, target, weight=alpha, reduction=...,
        ignore_index=...)`` in value and gradient.

    Raises:
        ConfigError (a ValueError): bad gamma, alpha (float off [0, 1], a float on a multi-class task,
            wrong length, negative or non-finite weights), reduction or mean.
        ValueError: logits/target dtype or shape mismatch, target values outside [0, C).
    """
    gamma = _check_gamma(gamma)
    reduction = _check_reduction(reduction)
    mean = _check_mean(mean)
    checked_alpha = _normalize_alpha(alpha)
    _check_logits_target(logits, target, ignore_index)
    _check_alpha_fits(checked_alpha, logits.shape[1])
    return _focal_loss_core(logits, target, gamma, checked_alpha, reduction, ignore_index, mean)


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
        *,
        mean: str = "weights",
    ) -> None:
        super().__init__()
        self.gamma = _check_gamma(gamma)
        self.reduction = _check_reduction(reduction)
        self.ignore_index = int(ignore_index)
        self.mean = _check_mean(mean)
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
        return _focal_loss_core(
            logits, target, self.gamma, self.alpha, self.reduction, self.ignore_index, self.mean
        )

    def extra_repr(self) -> str:
        return (
            f"gamma={self.gamma:g}, alpha={_describe_alpha(self.binary_alpha, self.alpha)}, "
            f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, mean={self.mean!r}"
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


def batched_focal_criterion(cfgs, class_counts, device):
    """Fused groups: K focal criteria (each with its own gamma and ``loss.mean``) at once, ``(logits [K, C, N],
    target [K, N], weights [K, C] | None, reduction="mean") -> [K]`` ([K, N] alpha-weighted per-example losses
    for ``reduction="none"``; see ``focalbench.registry``). Members with gamma > 0 share one ``_FocalTerm``
    with a per-example gamma; members with gamma = 0 take the log-softmax path, as ``focal_loss`` does for
    them."""
    gammas = [float(cfg.gamma) for cfg in cfgs]
    batch_mean = _batch_mean_members(cfgs, device)
    zero = [i for i, g in enumerate(gammas) if g == 0.0]
    positive = [i for i, g in enumerate(gammas) if g != 0.0]
    zero_idx = torch.tensor(zero, dtype=torch.long, device=device)
    positive_idx = torch.tensor(positive, dtype=torch.long, device=device)
    positive_gammas = torch.tensor([gammas[i] for i in positive], dtype=torch.float32, device=device)
    per_example: dict[int, torch.Tensor] = {}  # batch size -> gamma of every example, [K, N]

    def focal_part(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n = x.shape[2]
        if n not in per_example:
            per_example[n] = positive_gammas[:, None].expand(-1, n).contiguous()
        return _FocalTerm.apply(x, target.unsqueeze(1), per_example[n])

    def ce_part(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return -F.log_softmax(x, dim=1).gather(1, target.unsqueeze(1)).squeeze(1)

    def criterion(logits, target, weights, reduction="mean"):
        reduction = _check_reduction(reduction)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            x = logits.float()
            if not zero:
                per = focal_part(x, target)
            elif not positive:
                per = ce_part(x, target)
            elif zero == list(range(len(zero))):  # gamma = 0 first (a sweep's grid order): slices, no gathers
                z = len(zero)
                per = torch.cat([ce_part(x[:z], target[:z]), focal_part(x[z:], target[z:])])
            else:
                per = torch.zeros(target.shape, dtype=x.dtype, device=x.device)
                per = per.index_copy(0, zero_idx, ce_part(x[zero_idx], target[zero_idx]))
                per = per.index_copy(0, positive_idx, focal_part(x[positive_idx], target[positive_idx]))
            return _member_reduce(per, target, weights, reduction, batch_mean)

    return criterion


@LOSSES.register(
    "focal",
    summary="focal loss -alpha_t (1 - p_t)^gamma log p_t (Lin et al. 2017); gamma = 0 is cross-entropy",
    uses_gamma=True,
    curve=lambda p_t, gamma: -((1.0 - p_t) ** gamma) * torch.log(p_t),
    batched=batched_focal_criterion,
)
def focal_criterion(cfg, class_counts, device):
    """Training criterion ``(logits, target, alpha, reduction="mean") -> loss`` for ``loss=focal`` with
    ``gamma = cfg.gamma`` and ``loss.mean``: ``focal_loss``, whose "none" is the alpha-weighted loss [N]."""
    gamma = float(cfg.gamma)
    mean = loss_mean(cfg)

    def criterion(logits, target, alpha, reduction="mean"):
        return focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction, mean=mean)

    return criterion
