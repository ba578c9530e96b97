"""Classifier heads shared by the models: a plain linear layer, or the normalised linear layer of LDAM.

``NormedLinear`` (Cao et al. 2019) gives cosine logits: z_c = <x / |x|, w_c / |w_c|> in [-1, 1]. LDAM then
multiplies them by its scale s (30), so the loss, not the features' norm, sets the logit range.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from focalbench.errors import ConfigError


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


def classifier_layer(model: nn.Module) -> nn.Module | None:
    """The model's final classifier layer: the last ``nn.Linear`` or ``NormedLinear`` it registers (every
    focalbench model registers its head last, after the layers it runs before it); None when it has none."""
    head = None
    for module in model.modules():
        if isinstance(module, (nn.Linear, NormedLinear)):
            head = module
    return head


@torch.no_grad()
def init_classifier_bias(model: nn.Module, value: float) -> None:
    """Fill every entry of the final classifier layer's bias with ``value`` (e.g. the prior initialisation
    b = -log((1 - pi)/pi) of Lin et al. 2017). Draws nothing from any random generator, so the rest of the
    model's initialisation is what it would be without this. ConfigError (one line) when that layer has no bias.
    """
    head = classifier_layer(model)
    if head is None or getattr(head, "bias", None) is None:
        what = (
            "no linear classifier layer"
            if head is None
            else f"a {type(head).__name__} classifier without a bias"
        )
        raise ConfigError(
            f"cannot set the classifier bias of {type(model).__name__}: it has {what}; use a model whose "
            "classifier has one (model=mlp|linear|resnet32 with model.norm_classifier=false)"
        )
    head.bias.fill_(value)
