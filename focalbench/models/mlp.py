"""A multi-layer perceptron for the synthetic vector tasks.

Input of any shape ``[N, *input_shape]`` is flattened to ``[N, F]`` with ``F = prod(input_shape)``, so the
same model also runs (as a weak baseline) on images. Each hidden layer is one block

    Linear(d_in, d_out) -> norm -> ReLU -> Dropout(p)

where norm is BatchNorm1d (``"batch"``), LayerNorm (``"layer"``) or nothing (``"none"``). A final
``Linear(d_last, n_classes)`` (or ``NormedLinear`` with ``norm_classifier``) gives the logits ``[N, C]``.

Config (``configs/model/mlp.yaml`` holds the defaults): ``hidden`` (list of positive ints, may be empty),
``dropout`` (in [0, 1)), ``norm`` (one of ``NORMS``), ``norm_classifier`` (bool).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from focalbench.errors import ConfigError
from focalbench.models._checks import flag, positive_ints
from focalbench.models.heads import classifier_head
from focalbench.registry import MODELS

NORMS = ("batch", "layer", "none")


def _norm_layer(kind: str, width: int) -> nn.Module:
    """The normalisation layer of one hidden block; ``kind`` is one of ``NORMS``."""
    if kind == "batch":
        return nn.BatchNorm1d(width)
    if kind == "layer":
        return nn.LayerNorm(width)
    return nn.Identity()


class MLP(nn.Module):
    """Flatten, then ``len(hidden)`` Linear-norm-ReLU(-Dropout) blocks, then a linear head.

    Args:
        input_shape: shape of one example (e.g. ``(F,)`` or ``(3, 32, 32)``).
        n_classes: number of output logits C.
        hidden: widths of the hidden layers (may be empty: then the model is logistic regression).
        dropout: dropout probability after each hidden block, in [0, 1).
        norm: one of ``NORMS``.
        norm_classifier: a cosine-logit ``NormedLinear`` head instead of ``nn.Linear`` (for LDAM).
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_classes: int,
        hidden: Sequence[int] = (128, 128),
        dropout: float = 0.0,
        norm: str = "batch",
        norm_classifier: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d_in = math.prod(input_shape)
        for width in hidden:
            # A bias before BatchNorm is cancelled by its mean subtraction, so drop it there.
            layers += [nn.Linear(d_in, width, bias=norm != "batch"), _norm_layer(norm, width), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d_in = width
        layers.append(classifier_head(d_in, n_classes, norm_classifier))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``[N, *input_shape]`` float -> logits ``[N, C]``."""
        return self.net(x)


def check_mlp(cfg, full_cfg=None) -> None:
    """Plan-time check of the mlp's config fields."""
    positive_ints(cfg.hidden, "hidden")
    dropout = cfg.dropout
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {dropout!r}")
    if cfg.norm not in NORMS:
        raise ConfigError(f"model.norm must be one of {', '.join(NORMS)}, got {cfg.norm!r}")
    flag(cfg.norm_classifier, "norm_classifier")


@MODELS.register(
    "mlp",
    validate=check_mlp,
    summary="multi-layer perceptron (any input, flattened)",
    inputs=("vector", "image"),
)
def build_mlp(cfg, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    check_mlp(cfg)
    return MLP(
        input_shape,
        n_classes,
        hidden=positive_ints(cfg.hidden, "hidden"),
        dropout=float(cfg.dropout),
        norm=str(cfg.norm),
        norm_classifier=bool(cfg.norm_classifier),
    )
