"""Classifier heads shared by the models: a plain linear layer, or the normalised linear layer of LDAM.

``NormedLinear`` (Cao et al. 2019) gives cosine logits: z_c = <x / |x|, w_c / |w_c|> in [-1, 1]. LDAM then
multiplies them by its scale s (30), so the loss, not the features' norm, sets the logit range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class NormedLinear(nn.Module):
    """``[N, d_in] -> [N, C]`` cosine similarities between the input and each class's weight vector."""

    def __init__(self, in_features: int, n_classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_classes, in_features))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)  # nn.Linear's initialisation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))


def classifier_head(in_features: int, n_classes: int, normalized: bool, bias: bool = True) -> nn.Module:
    """The last layer: ``NormedLinear`` when ``normalized`` (model.norm_classifier=true), else nn.Linear."""
    return (
        NormedLinear(in_features, n_classes) if normalized else nn.Linear(in_features, n_classes, bias=bias)
    )
