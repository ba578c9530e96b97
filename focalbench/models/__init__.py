"""Model zoo: build a classifier by name from a config, count its parameters and FLOPs.

``build_model(cfg, input_shape, n_classes)`` reads ``cfg.name`` (one of ``MODEL_NAMES``) and the
model-specific fields below; any field left out takes its default.

- ``mlp``: ``hidden`` (list of int, default [128, 128]), ``dropout`` (float in [0, 1), default 0.0),
  ``norm`` ("batch" | "layer" | "none", default "batch"). Flattens any input shape.
- ``cnn``: ``widths`` (3 ints, default [32, 64, 128]), ``stem`` (int, default 24), ``logit_scale``
  (float > 0, default 1.0). Needs image input ``(channels, H, W)`` with H and W divisible by 8.
- ``resnet32``: no fields. Needs image input ``(channels, H, W)`` with H and W divisible by 4.

``cfg`` may be an OmegaConf ``DictConfig``, a plain ``dict`` or anything with attributes
(e.g. ``types.SimpleNamespace``). Bad names or values raise ``ConfigError``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from focalbench.config import REQUIRED, config_field
from focalbench.errors import ConfigError
from focalbench.models.cnn import DEFAULT_LOGIT_SCALE, DEFAULT_STEM, DEFAULT_WIDTHS, FastCNN
from focalbench.models.mlp import MLP, NORMS
from focalbench.models.resnet32 import ResNet32

MODEL_NAMES = ("mlp", "cnn", "resnet32")

__all__ = ["MODEL_NAMES", "build_model", "count_parameters", "flops_per_example"]


def _field(cfg: Any, key: str, default: Any = REQUIRED) -> Any:
    return config_field(
        cfg, key, default, missing=f"model.{key} is required (one of {', '.join(MODEL_NAMES)})"
    )


def _positive_ints(value: Any, key: str, length: int | None = None) -> list[int]:
    """Validate a list of positive ints (e.g. layer widths); ``length`` fixes how many are expected."""
    try:
        ints = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"model.{key} must be a list of positive ints, got {value!r}") from None
    if any(v <= 0 for v in ints) or (length is not None and len(ints) != length):
        what = f"{length} positive ints" if length is not None else "a list of positive ints"
        raise ConfigError(f"model.{key} must be {what}, got {ints}")
    return ints


def _image_shape(input_shape: tuple[int, ...], name: str, divisor: int) -> int:
    """Check that ``input_shape`` is ``(channels, H, W)`` with H, W divisible by ``divisor``; return channels."""
    if len(input_shape) != 3 or input_shape[1] % divisor or input_shape[2] % divisor:
        raise ConfigError(
            f"model.name={name} needs image input (channels, H, W) with H and W divisible by {divisor}, "
            f"got input shape {tuple(input_shape)}; use model.name=mlp for vector data"
        )
    return int(input_shape[0])


def _build_mlp(cfg: Any, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    hidden = _positive_ints(_field(cfg, "hidden", [128, 128]), "hidden")
    dropout = float(_field(cfg, "dropout", 0.0))
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {dropout}")
    norm = str(_field(cfg, "norm", "batch"))
    if norm not in NORMS:
        raise ConfigError(f"model.norm must be one of {', '.join(NORMS)}, got {norm!r}")
    return MLP(input_shape, n_classes, hidden=hidden, dropout=dropout, norm=norm)


def _build_cnn(cfg: Any, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    in_channels = _image_shape(input_shape, "cnn", 8)
    widths = _positive_ints(_field(cfg, "widths", list(DEFAULT_WIDTHS)), "widths", length=3)
    (stem,) = _positive_ints([_field(cfg, "stem", DEFAULT_STEM)], "stem")
    logit_scale = float(_field(cfg, "logit_scale", DEFAULT_LOGIT_SCALE))
    if not logit_scale > 0:
        raise ConfigError(f"model.logit_scale must be > 0, got {logit_scale}")
    return FastCNN(n_classes, widths=widths, stem=stem, logit_scale=logit_scale, in_channels=in_channels)


def _build_resnet32(cfg: Any, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    return ResNet32(n_classes, in_channels=_image_shape(input_shape, "resnet32", 4))


_BUILDERS = {"mlp": _build_mlp, "cnn": _build_cnn, "resnet32": _build_resnet32}


def build_model(cfg: Any, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    """Build the model ``cfg.name`` for examples of shape ``input_shape`` and ``n_classes`` classes.

    Returns an ``nn.Module`` in training mode, on the CPU, in float32, whose forward maps
    ``[N, *input_shape]`` to logits ``[N, n_classes]``. Raises ``ConfigError`` for an unknown name,
    a bad field value, or an input shape the model cannot take.
    """
    name = str(_field(cfg, "name"))
    if name not in _BUILDERS:
        raise ConfigError(f"model.name must be one of {', '.join(MODEL_NAMES)}, got {name!r}")
    if n_classes < 2:
        raise ConfigError(f"n_classes must be >= 2, got {n_classes}")
    return _BUILDERS[name](cfg, tuple(int(d) for d in input_shape), int(n_classes))


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
