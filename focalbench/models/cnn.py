"""A small, fast CIFAR conv net in the style of airbench (Keller Jordan, 2024), shrunk for CPUs.

Layout (input ``[N, 3, 32, 32]``, default ``widths = (32, 64, 128)``, ``stem = 24``):

    conv3x3(3 -> stem) -> BN -> GELU                          32x32
    3 conv groups, group k with width w_k:
        conv3x3 -> maxpool2 -> BN -> GELU -> conv3x3 -> BN -> GELU   (halves H and W)
    global max pool -> Linear(w_3, C, no bias unless head_bias) -> multiply by logit_scale

This is airbench's architecture (which reaches 94% on CIFAR-10) with its fixed whitening stem replaced
by a learned 3x3 conv and its widths (64, 256, 256) cut to (32, 64, 128): about 0.30 M parameters and
24 M multiply-adds per 32x32 image, against 0.46 M and 69 M for ResNet-32. Pooling right after the first
conv of each group runs the second conv at the lower resolution, which is where much of the saving comes
from.

``logit_scale`` multiplies the logits by a fixed constant. airbench uses 1/9, tuned for its own optimiser
and label smoothing. The default here is 1.0: in a quick check (plain SGD, lr 0.1 one-cycle, weight decay
5e-4, bf16, 3 epochs of balanced CIFAR-10) 1/9 gave the same test accuracy (78.6% vs 78.7%) but a worse
ECE (3.1% vs 0.8%), and calibration is one of the things this benchmark measures.

Config (``configs/model/cnn.yaml`` holds the defaults): ``widths`` (3 positive ints), ``stem`` (positive int),
``logit_scale`` (> 0), ``norm_classifier`` (bool: a cosine-logit ``NormedLinear`` head, for LDAM),
``head_bias`` (bool, default false: airbench's head has no bias; ``loss=sigmoid_focal`` needs one for its prior
initialisation, which then sets the bias to b / logit_scale so that the initial logit is b).

Every op is supported in channels_last memory format and under ``torch.autocast(dtype=torch.bfloat16)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from focalbench.models._checks import flag, image_channels, positive_ints, positive_number
from focalbench.models.heads import classifier_head
from focalbench.registry import MODELS


def _conv_bn(in_channels: int, out_channels: int) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    # The conv needs no bias: the BatchNorm right after it subtracts the mean anyway.
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False), nn.BatchNorm2d(out_channels)


class ConvGroup(nn.Module):
    """conv -> maxpool(2) -> BN -> GELU -> conv -> BN -> GELU: ``[N, c_in, H, W] -> [N, c_out, H/2, W/2]``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv_bn(in_channels, out_channels)
        self.conv2, self.bn2 = _conv_bn(out_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.bn1(F.max_pool2d(self.conv1(x), 2)))
        return F.gelu(self.bn2(self.conv2(x)))


class FastCNN(nn.Module):
    """Airbench-style CNN. ``forward``: ``[N, in_channels, H, W]`` (H, W divisible by 8) -> logits ``[N, C]``.

    Args:
        n_classes: number of output logits C.
        widths: channel widths of the three conv groups.
        stem: channels of the first 3x3 conv.
        logit_scale: fixed multiplier on the logits.
        in_channels: channels of the input image.
        norm_classifier: a cosine-logit ``NormedLinear`` head instead of ``nn.Linear``.
        head_bias: give the linear head a bias (airbench's has none).
    """

    def __init__(
        self,
        n_classes: int,
        widths: Sequence[int],
        stem: int,
        logit_scale: float = 1.0,
        in_channels: int = 3,
        norm_classifier: bool = False,
        head_bias: bool = False,
    ) -> None:
        super().__init__()
        self.stem_conv, self.stem_bn = _conv_bn(in_channels, stem)
        chans = [stem, *widths]
        self.groups = nn.Sequential(*(ConvGroup(chans[i], chans[i + 1]) for i in range(len(widths))))
        self.head = classifier_head(chans[-1], n_classes, norm_classifier, bias=head_bias)
        self.logit_scale = float(logit_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.gelu(self.stem_bn(self.stem_conv(x)))
        x = self.groups(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.logit_scale


def check_cnn(cfg, full_cfg=None) -> None:
    """Plan-time check of the cnn's config fields."""
    positive_ints(cfg.widths, "widths", length=3)
    positive_ints([cfg.stem], "stem")
    positive_number(cfg.logit_scale, "logit_scale")
    flag(cfg.norm_classifier, "norm_classifier")
    flag(cfg.get("head_bias", False), "head_bias")


@MODELS.register(
    "cnn",
    validate=check_cnn,
    summary="small airbench-style conv net (0.30 M parameters)",
    inputs=("image",),
    # its head is a Linear without bias unless model.head_bias=true
    classifier_bias=lambda model_cfg: bool(model_cfg.get("head_bias", False)),
)
def build_cnn(cfg, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    check_cnn(cfg)
    return FastCNN(
        n_classes,
        widths=[int(w) for w in cfg.widths],
        stem=int(cfg.stem),
        logit_scale=float(cfg.logit_scale),
        in_channels=image_channels(input_shape, "cnn", 8),
        norm_classifier=bool(cfg.norm_classifier),
        head_bias=bool(cfg.get("head_bias", False)),
    )
