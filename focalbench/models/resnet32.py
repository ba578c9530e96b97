"""The CIFAR ResNet-32 of He et al. (2016), Section 4.2, as used by the long-tailed CIFAR literature.

Layout (input ``[N, 3, 32, 32]``):

    conv3x3(3 -> 16) -> BN -> ReLU                      32x32
    stage 1: 5 basic blocks, 16 channels                 32x32
    stage 2: 5 basic blocks, 32 channels, first stride 2 16x16
    stage 3: 5 basic blocks, 64 channels, first stride 2  8x8
    global average pool -> Linear(64, C)

1 + 3*5*2 convolutions + 1 linear = 32 weighted layers. A basic block is
``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``.

Shortcuts are "option A": identity, and where the shape changes the input is subsampled with stride 2
and its channels are zero-padded, so shortcuts hold no parameters. Weights use Kaiming-normal
initialisation. With C = 10 the model has 464,154 trainable parameters (the paper's "0.46M").

Config (``configs/model/resnet32.yaml``): ``norm_classifier`` (bool: a cosine-logit ``NormedLinear`` head, as
LDAM-DRW's ResNet-32 uses).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from focalbench.models._checks import flag, image_channels
from focalbench.models.heads import classifier_head
from focalbench.registry import MODELS

STAGE_WIDTHS = (16, 32, 64)
BLOCKS_PER_STAGE = 5


class PadShortcut(nn.Module):
    """Option-A shortcut: ``x[:, :, ::2, ::2]`` with ``pad`` zero channels added on each side.

    Maps ``[N, c, H, W]`` to ``[N, c + 2*pad, H/2, W/2]``; no parameters.
    """

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity (or option-A) shortcut; ``stride`` applies to the first."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            # Option A assumes the width doubles exactly when the resolution halves.
            assert stride == 2 and planes == 2 * in_planes, (in_planes, planes, stride)
            self.shortcut: nn.Module = PadShortcut((planes - in_planes) // 2)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet32(nn.Module):
    """CIFAR ResNet-32, option-A shortcuts. ``forward``: ``[N, in_channels, H, W]`` -> logits ``[N, C]``."""

    def __init__(self, n_classes: int, in_channels: int = 3, norm_classifier: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, STAGE_WIDTHS[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STAGE_WIDTHS[0])
        stages = []
        in_planes = STAGE_WIDTHS[0]
        for i, planes in enumerate(STAGE_WIDTHS):
            blocks = []
            for j in range(BLOCKS_PER_STAGE):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.linear = classifier_head(STAGE_WIDTHS[-1], n_classes, norm_classifier)
        self._init_weights()

    def _init_weights(self) -> None:
        # He et al. initialise conv and linear weights with Kaiming-normal (fan_in, ReLU gain).
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


def check_resnet32(cfg, full_cfg=None) -> None:
    flag(cfg.norm_classifier, "norm_classifier")


@MODELS.register(
    "resnet32",
    validate=check_resnet32,
    summary="CIFAR ResNet-32, option-A shortcuts (0.46 M parameters)",
    inputs=("image",),
)
def build_resnet32(cfg, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
    check_resnet32(cfg)
    in_channels = image_channels(input_shape, "resnet32", 4)
    return ResNet32(n_classes, in_channels=in_channels, norm_classifier=bool(cfg.norm_classifier))
