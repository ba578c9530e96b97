r"""The loss library: focal loss, class weights, and the long-tail baselines, each with the same contract.

    FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t                    focal_loss             (Lin et al. 2017)
    CE(z + tau log pi)                                             logit_adjusted_loss    (Menon et al. 2021)
    CE(s (z - m_y e_y)),  m_c ~ n_c^(-1/4)                         ldam_loss              (Cao et al. 2019)
    focal loss with gamma 5 where p_t < 0.2, else 3                flsd_loss              (Mukhoti et al. 2020)
    alpha_y sum_c (1 - p_t,c)^gamma BCE(z_c, y_c), one-vs-all     multiclass_sigmoid_focal_loss
                                                                   (Lin et al. 2017; Cui et al. 2019)

alpha contract (every loss; ``resolve_alpha`` turns a config value into one of these):
  - ``None``: no class weights (alpha_t = 1).
  - a float in [0, 1]: binary tasks only (C == 2). It is the weight of class 1 (the positive, rare class) and
    class 0 gets 1 - alpha, as in RetinaNet and ``torchvision.ops.sigmoid_focal_loss``. A float on a
    multi-class task is an error: pass C weights, or a mode.
  - a length-C sequence or 1-D tensor of non-negative per-class weights.
  - modes computed from the training class counts n_c by ``class_weights`` (``ALPHA_MODES``).

reduction contract: ``"none"`` gives the alpha-weighted per-element loss, ``"sum"`` its sum, ``"mean"``
divides that sum as the keyword ``mean`` (``loss.mean`` in a config, ``MEAN_MODES``) says:
  - ``"weights"``, the default (``MEAN_CONVENTION``): by sum_i alpha_{y_i}, as PyTorch's weighted
    cross_entropy (and LDAM-DRW's code) does, so only the ratios between class weights matter;
  - ``"batch"``: by N, the number of non-ignored elements, as Cui et al. 2019's class-balanced loss code does.
  Both are the plain mean when alpha is None; ``mean_convention(mode)`` gives each rule's sentence for reports.
ignore_index contract (every loss; -100 by default): an element whose target is ``ignore_index`` contributes
nothing, not even to the mean's denominator, "none" gives 0 there, and a "mean" with nothing to average is 0.
``sigmoid_focal_loss`` (binary and multi-label, float targets) keeps torchvision's own contract instead.

Every loss computes in float32 (float64 for float64 logits) with autocast disabled, from log_softmax, and
raises ``ConfigError`` (a ValueError) with one line for a bad argument.

Training criteria: each module registers a factory ``(cfg, class_counts, device) -> criterion`` in
``focalbench.registry.LOSSES`` under the name its ``configs/loss/*.yaml`` gives in ``loss.name``; the training
loop builds the criterion from there. ``criterion(logits [N, C], target [N], alpha [C] | None,
reduction="mean")`` returns the scalar loss under the config's ``loss.mean``; ``reduction="none"`` returns the
alpha-weighted per-example losses [N] (float32) that mean reduces. A loss may also register ``batched=``, a
factory ``(cfgs, class_counts, device)`` of the criterion of K fused models, ``(logits [K, C, N], target [K, N],
weights [K, C] | None, reduction="mean") -> [K]`` (``[K, N]`` for "none"). Adding a loss is one module in this
package plus one YAML file (see the README's "Add your own loss").
"""

from focalbench.losses._checks import ALPHA_MODES, MEAN_CONVENTION, MEAN_MODES, REDUCTIONS, mean_convention
from focalbench.losses.flsd import flsd_loss
from focalbench.losses.focal import FocalLoss, focal_loss, sigmoid_focal_loss
from focalbench.losses.ldam import ldam_loss, ldam_margins
from focalbench.losses.logit_adjusted import logit_adjusted_loss
from focalbench.losses.sigmoid_focal import multiclass_sigmoid_focal_loss
from focalbench.losses.weights import NORMALIZE_MODES, class_weights, resolve_alpha
from focalbench.registry import import_submodules

import_submodules(__name__)  # every module registers its criterion; a new module needs no line here

__all__ = [
    "ALPHA_MODES",
    "MEAN_CONVENTION",
    "MEAN_MODES",
    "NORMALIZE_MODES",
    "REDUCTIONS",
    "FocalLoss",
    "class_weights",
    "flsd_loss",
    "focal_loss",
    "ldam_loss",
    "ldam_margins",
    "logit_adjusted_loss",
    "mean_convention",
    "multiclass_sigmoid_focal_loss",
    "resolve_alpha",
    "sigmoid_focal_loss",
]
