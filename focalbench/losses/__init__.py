r"""The loss library: focal loss, class weights, and the long-tail baselines, each with the same contract.

    FL(p_t) = -alpha_t (1 - p_t)^gamma log p_t                    focal_loss             (Lin et al. 2017)
    CE(z + tau log pi)                                             logit_adjusted_loss    (Menon et al. 2021)
    CE(s (z - m_y e_y)),  m_c ~ n_c^(-1/4)                         ldam_loss              (Cao et al. 2019)
    focal loss with gamma 5 where p_t < 0.2, else 3                flsd_loss              (Mukhoti et al. 2020)

alpha contract (every loss; ``resolve_alpha`` turns a config value into one of these):
  - ``None``: no class weights (alpha_t = 1).
  - a float in [0, 1]: binary tasks only (C == 2). It is the weight of class 1 (the positive, rare class) and
    class 0 gets 1 - alpha, as in RetinaNet and ``torchvision.ops.sigmoid_focal_loss``. A float on a
    multi-class task is an error: pass C weights, or a mode.
  - a length-C sequence or 1-D tensor of non-negative per-class weights.
  - modes computed from the training class counts n_c by ``class_weights`` (``ALPHA_MODES``).

reduction contract: ``"none"`` gives the alpha-weighted per-element loss, ``"sum"`` its sum, ``"mean"``
follows ``MEAN_CONVENTION`` (PyTorch's weighted cross_entropy: divide by sum_i alpha_{y_i}), so only the ratios
between class weights matter. ``sigmoid_focal_loss`` keeps torchvision's own contract instead.

Every loss computes in float32 (float64 for float64 logits) with autocast disabled, from log_softmax, and
raises ``ConfigError`` (a ValueError) with one line for a bad argument.

Training criteria: each module registers a factory in ``focalbench.registry.LOSSES`` under the name its
``configs/loss/*.yaml`` gives in ``loss.name``; the training loop builds the criterion from there. Adding a loss
is one module in this package plus one YAML file (see the README's "Add your own loss").
"""

from focalbench.losses._checks import ALPHA_MODES, MEAN_CONVENTION, REDUCTIONS
from focalbench.losses.flsd import flsd_loss
from focalbench.losses.focal import FocalLoss, focal_loss, sigmoid_focal_loss
from focalbench.losses.ldam import ldam_loss, ldam_margins
from focalbench.losses.logit_adjusted import logit_adjusted_loss
from focalbench.losses.weights import NORMALIZE_MODES, class_weights, resolve_alpha
from focalbench.registry import import_submodules

import_submodules(__name__)  # every module registers its criterion; a new module needs no line here

__all__ = [
    "ALPHA_MODES",
    "MEAN_CONVENTION",
    "NORMALIZE_MODES",
    "REDUCTIONS",
    "FocalLoss",
    "class_weights",
    "flsd_loss",
    "focal_loss",
    "ldam_loss",
    "ldam_margins",
    "logit_adjusted_loss",
    "resolve_alpha",
    "sigmoid_focal_loss",
]
