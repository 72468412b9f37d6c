"""ResNet backbone (He et al., CVPR 2016), torchvision key names, stride on the 3x3 conv (v1.5).

This is what mmpose ``ResNet(style='pytorch')`` builds, so torchvision ImageNet weights and mmpose
SimpleBaseline backbones (``backbone.*``) load without renaming (``fc.*`` is not built).
"""

from __future__ import annotations

import torch
from torch import nn

from slimpose.models.layers import BasicBlock, Bottleneck, ResBlock, batch_norm, init_kaiming_, make_res_layer

RESNET_ARCHS: dict[int, tuple[ResBlock, tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet-{depth} returning C5 (B, 512*expansion, H/32, W/32), or [C2, C3, C4, C5] with ``return_all``."""

    stride = 32

    def __init__(self, depth: int = 50, in_channels: int = 3, return_all: bool = False):
        super().__init__()
        if depth not in RESNET_ARCHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_ARCHS)}, got {depth}")
        block, layers = RESNET_ARCHS[depth]
        self.depth = depth
        self.return_all = return_all
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = make_res_layer(block, 64, 64, layers[0], stride=1)
        self.layer2 = make_res_layer(block, 64 * block.expansion, 128, layers[1], stride=2)
        self.layer3 = make_res_layer(block, 128 * block.expansion, 256, layers[2], stride=2)
        self.layer4 = make_res_layer(block, 256 * block.expansion, 512, layers[3], stride=2)
        self.stage_names = ("layer1", "layer2", "layer3", "layer4")
        self.stage_channels = tuple(c * block.expansion for c in (64, 128, 256, 512))
        self.out_channels = self.stage_channels[-1]
        init_kaiming_(self)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """[C2, C3, C4, C5] at strides 4, 8, 16, 32."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        c2 = self.layer1(x)
        c3 = self.layer2(c2)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c2, c3, c4, c5]

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        feats = self.forward_features(x)
        return feats if self.return_all else feats[-1]


def resnet18(**kwargs) -> ResNet:
    return ResNet(depth=18, **kwargs)


def resnet34(**kwargs) -> ResNet:
    return ResNet(depth=34, **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (2048-channel C5, stride 32)."""
    return ResNet(depth=50, **kwargs)


def resnet101(**kwargs) -> ResNet:
    return ResNet(depth=101, **kwargs)


def resnet152(**kwargs) -> ResNet:
    return ResNet(depth=152, **kwargs)
