"""Model zoo: build a classifier by name from a config, count its parameters and FLOPs.

``build_model(cfg, input_shape, n_classes)`` looks ``cfg.name`` up in ``focalbench.registry.MODELS``, where
each model module of this package registers its builder and its plan-time check:

- ``mlp`` (mlp.py): any input, flattened.
- ``linear`` (linear.py): a linear probe, vector input (embeddings).
- ``cnn`` (cnn.py): image input ``(channels, H, W)`` with H and W divisible by 8.
- ``resnet32`` (resnet32.py): image input with H and W divisible by 4.

Each model's fields and their defaults live in ``configs/model/<name>.yaml``; fields ``cfg`` leaves out are
taken from there. ``cfg`` may be an OmegaConf ``DictConfig``, a plain ``dict`` or anything with attributes
(e.g. ``types.SimpleNamespace``). Bad names or values raise ``ConfigError``. Every model takes
``norm_classifier`` (a cosine-logit head, for LDAM).

Registration facts: ``inputs`` (the input kinds a model takes) and ``classifier_bias`` (whether the classifier has a bias: a bool, or a function of the model's config, the cnn's
``head_bias``; a loss that initialises that bias, ``loss=sigmoid_focal``, refuses a model without one at plan
time; default True).

``init_classifier_bias(model, value)`` fills the final classifier layer's bias (the prior initialisation of
sigmoid focal loss), or raises ConfigError when it has none.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from focalbench.config import with_preset_defaults
from focalbench.errors import ConfigError
from focalbench.models.heads import init_classifier_bias
from focalbench.registry import MODELS, import_submodules

import_submodules(__name__)  # each model module registers itself; a new module needs no line here

__all__ = [
    "build_model",
    "count_parameters",
    "flops_per_example",
    "init_classifier_bias",
    "init_norm_classifier_ldam",
]


def build_model(cfg: Any, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Build the model ``cfg.name`` for examples of shape ``input_shape`` and ``n_classes`` classes.

    Returns an ``nn.Module`` in training mode, on the CPU, in float32, whose forward maps
    ``[N, *input_shape]`` to logits ``[N, n_classes]``. Raises ``ConfigError`` for an unknown name,
    a bad field value, or an input shape the model cannot take.
    """
    cfg = with_preset_defaults("model", cfg)
    entry = MODELS.get(str(cfg.name))
    if n_classes < 2:
        raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
    return entry.build(cfg, tuple(int(d) for d in input_shape), int(n_classes))


@torch.no_grad()
def init_norm_classifier_ldam(model: nn.Module) -> None:
    """Re-initialise every ``NormedLinear`` head as LDAM-DRW's code does (``model.norm_classifier_init=ldam``):
    a weight ``[d_in, C]`` drawn uniform in [-1, 1], each class column renormalised to norm 1
    (``uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)``), stored transposed as ``[C, d_in]``. The default
    (``linear``) keeps nn.Linear's initialisation, whose class vectors start near norm 0.58 for 64 features:
    the cosine logits do not depend on the norm, but the head's effective learning rate scales as 1/norm^2,
    about 3x LDAM-DRW's at the start. Draws from torch's global generator, like the rest of the model."""
    from focalbench.models.heads import NormedLinear

    heads = [m for m in model.modules() if isinstance(m, NormedLinear)]
    if not heads:
        raise ConfigError("model.norm_classifier_init=ldam needs model.norm_classifier=true")
    for head in heads:
        n_classes, d_in = head.weight.shape
        w = torch.empty(d_in, n_classes).uniform_(-1, 1).renorm_(2, 1, 1e-5).mul_(1e5)
        head.weight.copy_(w.t())


def count_parameters(model: nn.Module) -> int:
    """Number of trainable (``requires_grad``) parameter elements."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _layer_flops(module: nn.Module, output: torch.Tensor) -> int:
    """2 * multiply-adds of one Conv2d or Linear call that produced ``output`` (bias adds not counted)."""
    if isinstance(module, nn.Conv2d):
        macs_per_output = (module.in_channels // module.groups) * math.prod(module.kernel_size)
    else:
        macs_per_output = module.in_features
    return 2 * output.numel() * macs_per_output


@torch.no_grad()
def flops_per_example(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs of one example: 2 * MACs of every Conv2d and Linear call, counted as direct products.

    Runs one zero input of shape ``[1, *input_shape]`` through ``model`` in eval mode (its training
    mode is restored afterwards) with forward hooks on the Conv2d and Linear layers. Normalisation,
    activations, pooling and bias additions are not counted, as is usual for model FLOP utilisation.
    """
    total = 0

    def hook(module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _layer_flops(module, output)

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
    ]
    was_training = model.training
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    try:
        model.eval()
        model(torch.zeros((1, *input_shape), device=device, dtype=dtype))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total
