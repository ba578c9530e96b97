r"""Multi-class sigmoid (one-vs-all) focal loss: Lin et al. 2017 ("Focal Loss for Dense Object Detection",
ICCV), as RetinaNet applies it to C classes, and the class-balanced focal loss of Cui et al. 2019
("Class-Balanced Loss Based on Effective Number of Samples", CVPR).

With one-hot labels y_ic (1 for c = y_i), p_ic = sigmoid(z_ic) and p_t,ic = p_ic where y_ic = 1, else 1 - p_ic:

    l_i = alpha_{y_i} * sum_c (1 - p_t,ic)^gamma * BCE(z_ic, y_ic),    BCE(z, y) = -log p_t

Each class is its own binary problem (no softmax couples them). The example's class weight alpha_{y_i} multiplies
all of its C terms, as Cui et al.'s code tiles it. Cui et al. average over the batch (``mean="batch"``: the
weighted sum over N), which is what ``configs/loss/sigmoid_focal.yaml`` sets; gamma = 0 is one-vs-all BCE.

Numerics: with the signed logit s = z where y = 1, else -z, BCE = -logsigmoid(s) and log(1 - p_t) =
logsigmoid(-s), so (1 - p_t)^gamma = exp(gamma * logsigmoid(-s)). No probability is rounded to 0 or 1 on the
way, so value and gradient are finite for any finite logits and every gamma >= 0, including 0 < gamma < 1
(where the derivative of the naive (1 - p_t)^gamma at p_t = 1 is infinite). float32 inside (float64 for
float64 logits), autocast off.

Training (``loss=sigmoid_focal``): the classifier's bias starts at b = -log((1 - pi)/pi) for every class, pi =
``loss.prior`` (0.01), so that every class starts at p = pi (Lin et al.'s prior initialisation): with b = 0, the
C - 1 negatives of every example would dominate the loss of the first steps. The registry fact
``head_bias_prior`` gives pi; ``focalbench.training.runner.prepare_run`` sets the bias. The binary / multi-label
``focalbench.losses.sigmoid_focal_loss`` (torchvision's semantics, float targets) is a separate function.
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
    _safe_target,
    loss_mean,
)
from focalbench.registry import LOSSES, MODELS


def _one_vs_all_focal(x: torch.Tensor, target: torch.Tensor, gamma: float | torch.Tensor) -> torch.Tensor:
    """Unweighted l_i = sum_c (1 - p_t,ic)^gamma BCE(z_ic, y_ic) over the class dim 1 of ``x`` ([N, C] or
    [K, C, N]), for class indices ``target`` (``x``'s shape without dim 1, every entry a valid class). ``gamma``
    is a float or a tensor that broadcasts against ``x`` (one gamma per fused member)."""
    positive = torch.zeros(x.shape, dtype=torch.bool, device=x.device).scatter_(1, target.unsqueeze(1), True)
    signed = torch.where(positive, x, -x)  # s: the logit of the true answer of each binary problem
    bce = -F.logsigmoid(signed)
    if not isinstance(gamma, torch.Tensor) and gamma == 0.0:
        return bce.sum(dim=1)  # plain one-vs-all BCE, exactly
    return (torch.exp(gamma * F.logsigmoid(-signed)) * bce).sum(dim=1)


def _multiclass_sigmoid_focal_core(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float,
    alpha: float | torch.Tensor | None,
    reduction: str,
    ignore_index: int,
    mean: str,
) -> torch.Tensor:
    """The computation behind ``multiclass_sigmoid_focal_loss``, on arguments that are already checked."""
    dtype = _compute_dtype(logits.dtype)
    # Autocast would run logsigmoid in half precision; the loss must be float32.
    with torch.autocast(device_type=logits.device.type, enabled=False):
        x = logits.to(dtype)
        valid = target != ignore_index
        safe_target = _safe_target(target, ignore_index)  # ignored rows: class 0, then weight 0
        per_example = _one_vs_all_focal(x, safe_target, gamma)
        class_w = _alpha_for_classes(alpha, x.shape[1], dtype, x.device)
        valid_w = valid.to(dtype)
        weight = valid_w if class_w is None else class_w[safe_target] * valid_w
        return _reduce(per_example * weight, weight, reduction, mean, valid_w)


def multiclass_sigmoid_focal_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    gamma: float = 2.0,
    alpha: AlphaSpec = None,
    reduction: str = "mean",
    ignore_index: int = -100,
    *,
    mean: str = "weights",
) -> torch.Tensor:
    r"""One-vs-all sigmoid focal loss of C classes, l_i = alpha_{y_i} sum_c (1 - p_t,ic)^gamma BCE(z_ic, y_ic)
    (see the module docstring).

    Args:
        logits: float [N, C] (C >= 2), any float dtype.
        target: integer [N] class indices in [0, C), or ``ignore_index``.
        gamma: focusing parameter, finite and >= 0; 0 gives one-vs-all BCE summed over the classes.
        alpha: the alpha contract of ``focalbench.losses`` (None, a float for C == 2, or C weights); the
            weight of the example's true class, applied to all its C terms.
        reduction: "none" (per-example loss [N], 0 where ignored), "sum", or "mean" as ``mean`` says.
        ignore_index: target value whose examples contribute nothing, not even to the mean's denominator.
        mean: "weights" divides the weighted sum by sum_i alpha_{y_i}; "batch" by N, the number of non-ignored
            examples (Cui et al. 2019). Identical when alpha is None.

    Returns:
        float32 tensor (float64 if ``logits`` is float64), computed with autocast disabled.

    Raises:
        ConfigError (a ValueError): bad gamma, alpha, reduction or mean.
        ValueError: logits/target dtype or shape mismatch, target values outside [0, C).
    """
    gamma = _check_gamma(gamma)
    reduction = _check_reduction(reduction)
    mean = _check_mean(mean)
    checked_alpha = _normalize_alpha(alpha)
    _check_logits_target(logits, target, ignore_index)
    if logits.dim() != 2:
        raise ConfigError(
            f"multiclass_sigmoid_focal_loss takes logits [N, C], got shape {tuple(logits.shape)}"
        )
    _check_alpha_fits(checked_alpha, logits.shape[1])
    return _multiclass_sigmoid_focal_core(logits, target, gamma, checked_alpha, reduction, ignore_index, mean)


def _missing_classifier_bias(cfg) -> str | None:
    """Why the model of ``cfg`` has no classifier bias for the prior to set (None when it has one)."""
    if cfg.model.get("norm_classifier"):
        return "model.norm_classifier=true (a cosine classifier has no bias)"
    if cfg.model.get("bias") is False:
        return "model.bias=false"
    has_bias = MODELS.get(str(cfg.model.name)).meta.get("classifier_bias", True)
    if not (has_bias(cfg.model) if callable(has_bias) else has_bias):
        hint = " unless model.head_bias=true" if cfg.model.get("head_bias") is not None else ""
        return f"model={cfg.model.name} (its classifier has no bias{hint})"
    return None


def check_keys(loss_cfg, cfg) -> None:
    """Plan-time check of ``loss.prior`` and of what the prior initialisation needs: a gamma and a classifier
    bias."""
    prior = loss_cfg.get("prior")
    if not _is_real(prior) or not 0.0 < float(prior) < 1.0:
        raise ConfigError(
            f"loss.prior must be a probability in (0, 1) (0.01 in Lin et al. 2017), got {prior!r}"
        )
    if cfg.gamma is None:
        raise ConfigError("loss=sigmoid_focal needs gamma (2 in Lin et al. 2017), e.g. gamma=2")
    missing = _missing_classifier_bias(cfg)
    if missing is not None:
        raise ConfigError(
            f"loss=sigmoid_focal starts the classifier's bias at -log((1 - prior)/prior), but {missing}; "
            "use a classifier with a bias (model.norm_classifier=false, model.bias=true, model=mlp|linear|resnet32)"
        )


def head_bias_prior(cfg) -> float:
    """pi of the prior initialisation b = -log((1 - pi)/pi): ``loss.prior`` of the run's config."""
    return float(cfg.loss.prior)


def batched_sigmoid_focal_criterion(cfgs, class_counts, device):
    """Fused groups: K sigmoid focal criteria (each with its own gamma and ``loss.mean``) at once, ``(logits
    [K, C, N], target [K, N], weights [K, C] | None, reduction="mean") -> [K]`` ([K, N] for "none")."""
    gammas = torch.tensor([float(cfg.gamma) for cfg in cfgs], dtype=torch.float32, device=device)
    gammas = gammas[:, None, None]  # [K, 1, 1]: broadcasts over the classes and the batch
    batch_mean = _batch_mean_members(cfgs, device)

    def criterion(logits, target, weights, reduction="mean"):
        reduction = _check_reduction(reduction)
        with torch.autocast(device_type=logits.device.type, enabled=False):
            per = _one_vs_all_focal(logits.float(), target, gammas)
            return _member_reduce(per, target, weights, reduction, batch_mean)

    return criterion


@LOSSES.register(
    "sigmoid_focal",
    summary="one-vs-all sigmoid focal loss with prior-initialised bias (Lin et al. 2017; class-balanced: Cui et "
    "al. 2019)",
    title="sigmoid focal loss",
    validate=check_keys,
    uses_gamma=True,
    head_bias_prior=head_bias_prior,
    batched=batched_sigmoid_focal_criterion,
)
def sigmoid_focal_criterion(cfg, class_counts, device):
    """Training criterion ``(logits, target, alpha, reduction="mean") -> loss``: ``multiclass_sigmoid_focal_loss``
    with ``gamma = cfg.gamma`` and ``loss.mean``; "none" gives the alpha-weighted per-example loss [N]."""
    gamma = float(cfg.gamma)
    mean = loss_mean(cfg)

    def criterion(logits, target, alpha, reduction="mean"):
        return _multiclass_sigmoid_focal_core(
            logits, target, gamma, alpha, _check_reduction(reduction), -100, mean
        )

    return criterion
