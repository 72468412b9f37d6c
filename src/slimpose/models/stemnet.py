"""StemNet: the stride-4, 256-channel CNN stem of TokenPose-S, DistilPose-S and SDPose-S/T.

Official layout (DistilPose ``distilpose/models/backbones/stemnet.py``, TokenPose-S ``features.*``):
conv3x3 s2 (3->64) + BN + ReLU, conv3x3 s2 (64->64) + BN + ReLU, ``layer1`` = 4 Bottlenecks (64 planes).
"""

from __future__ import annotations

import torch
from torch import nn

from slimpose.models.layers import Bottleneck, batch_norm, conv3x3, init_normal_, make_res_layer


class StemNet(nn.Module):
    """Two strided 3x3 convs and four Bottlenecks; returns a (B, 256, H/4, W/4) feature map."""

    stride = 4

    def __init__(self, in_channels: int = 3, stem_channels: int = 64, num_blocks: int = 4):
        super().__init__()
        self.conv1 = conv3x3(in_channels, stem_channels, stride=2)
        self.bn1 = batch_norm(stem_channels)
        self.conv2 = conv3x3(stem_channels, stem_channels, stride=2)
        self.bn2 = batch_norm(stem_channels)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(Bottleneck, stem_channels, 64, num_blocks)
        self.out_channels = 64 * Bottleneck.expansion
        init_normal_(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.layer1(x)


def stemnet(in_channels: int = 3) -> StemNet:
    """The official StemNet (256 output channels, stride 4)."""
    return StemNet(in_channels=in_channels)
