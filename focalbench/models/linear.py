"""A linear probe: one linear layer from the input vector to the logits, for embeddings (``model=linear``).

``Flatten -> Linear(F, C)`` (or a cosine-logit ``NormedLinear`` with ``norm_classifier``, for LDAM). Trained
on frozen embeddings (``data=features``) it is the usual linear-probe evaluation, so the loss is the only
thing that changes between the cells of a sweep. Config: ``configs/model/linear.yaml`` (``bias``) and the
shared ``norm_classifier``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from focalbench.models._checks import flag
from focalbench.models.heads import classifier_head
from focalbench.registry import MODELS


class LinearProbe(nn.Module):
    """``[N, *input_shape]`` flattened to ``[N, F]``, then one linear layer to ``[N, C]`` logits."""

    def __init__(
        self, input_shape: tuple[int, ...], n_classes: int, bias: bool = True, norm_classifier: bool = False
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.head = classifier_head(math.prod(input_shape), n_classes, norm_classifier, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.flatten(x))


def check_linear(cfg, full_cfg=None) -> None:
    """Plan-time check of the linear probe's config fields."""
    flag(cfg.bias, "bias")
    flag(cfg.norm_classifier, "norm_classifier")


@MODELS.register(
    "linear",
    validate=check_linear,
    summary="linear probe (one layer; vector input, e.g. embeddings)",
    inputs=("vector",),
)
def build_linear(cfg, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    check_linear(cfg)
    return LinearProbe(input_shape, n_classes, bias=bool(cfg.bias), norm_classifier=bool(cfg.norm_classifier))
