"""SimCC (Li et al., ECCV 2022): a CNN whose keypoints are two 1-D classifications, one per axis.

``SimCCLayers`` are the output layers of MMPose 1.x ``SimCCHead`` (keys ``head.deconv_head.*`` or
``head.final_layer``, ``head.mlp_head_x``, ``head.mlp_head_y``): optional deconvolutions (SimpleBaseline
style), a 1x1 conv to K maps, each map flattened and mapped by two linear layers to ``W k`` x-bins and
``H k`` y-bins (``k = split_ratio``). ``simcc_res50`` is MMPose's ``simcc_res50_8xb64-210e_coco-256x192``
(ResNet-50, three 256-channel deconvolutions, 8x6 -> 64x48 maps, 72.1 AP on COCO val).
``hrnet_w32_simcc`` / ``hrnet_w48_simcc`` are the official SimDR HRNets (leeyegy/SimCC ``pose_hrnet.py``:
``final_layer`` 1x1 conv on the stride-4 map, ``HEAD_INPUT`` 3072 = 64 x 48, 384 x-bins and 512 y-bins at
256x192). The same layers sit on Lite-HRNet in ``slimpose.models.litehrnet``.
"""

from __future__ import annotations

import torch
from torch import nn

from slimpose.heads.simcc import SimCCHead
from slimpose.models._factory import backbone_feature_size, pop_backbone
from slimpose.models.base import PoseNet
from slimpose.models.layers import DeconvHead


class SimCCLayers(nn.Module):
    """(B, C, h, w) features -> ``(x_logits (B, K, W k), y_logits (B, K, H k))``.

    Args:
        in_channels: feature channels ``C``; feature_size: ``(w, h)`` of the feature map.
        input_size: ``(w, h)`` of the input crop; split_ratio: bins per input pixel ``k``.
        num_deconv_layers: x2 deconvolutions before the 1x1 conv (MMPose default 3; 0 = 1x1 conv only).
    Init (MMPose ``SimCCHead.default_init_cfg``): conv / deconv N(0, 0.001), BN (1, 0), Linear N(0, 0.01)
    with zero bias.
    """

    def __init__(self, in_channels: int, num_keypoints: int, input_size: tuple[int, int],
                 feature_size: tuple[int, int], split_ratio: float = 2.0, num_deconv_layers: int = 3,
                 deconv_channels: int = 256, deconv_kernel: int = 4) -> None:
        super().__init__()
        if num_deconv_layers > 0:
            self.deconv_head = DeconvHead(in_channels, num_keypoints, num_deconv_layers, deconv_channels,
                                          deconv_kernel)
        else:
            self.final_layer = nn.Conv2d(in_channels, num_keypoints, kernel_size=1)
        up = 2**num_deconv_layers
        self.map_size = (feature_size[0] * up, feature_size[1] * up)
        flat = self.map_size[0] * self.map_size[1]
        self.mlp_head_x = nn.Linear(flat, int(input_size[0] * split_ratio))
        self.mlp_head_y = nn.Linear(flat, int(input_size[1] * split_ratio))
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.01)
                nn.init.zeros_(m.bias)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        maps = self.deconv_head(features) if hasattr(self, "deconv_head") else self.final_layer(features)
        flat = maps.flatten(2)
        return self.mlp_head_x(flat), self.mlp_head_y(flat)


class SimCCPose(PoseNet):
    """Backbone + ``SimCCLayers``; ``forward(images) -> (x_logits (B,K,Wk), y_logits (B,K,Hk))``."""

    head_class = SimCCHead

    def __init__(self, backbone: nn.Module, num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256),
                 split_ratio: float = 2.0, num_deconv_layers: int = 3, deconv_channels: int = 256,
                 deconv_kernel: int = 4) -> None:
        super().__init__()
        feature_size = backbone_feature_size(backbone, input_size, "SimCCPose")
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.split_ratio = float(split_ratio)
        self.head = SimCCLayers(backbone.out_channels, num_keypoints, self.input_size, feature_size, split_ratio,
                                num_deconv_layers, deconv_channels, deconv_kernel)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        return self.backbone(images)

    def forward_head(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(features)


def simcc_res50(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SimCCPose:
    """SimCC-ResNet-50 (MMPose ``simcc_res50_8xb64-210e_coco-256x192``, 72.1 AP COCO val): ResNet-50,
    three 256-channel deconvolutions, split ratio 2 (384 x-bins, 512 y-bins at 256x192).

    ``overrides``: ``depth`` (the ResNet depth, for scaled-down runs), ``backbone=`` (any stride-``s``
    module with ``out_channels``), and ``SimCCPose`` keywords (``split_ratio``, ``num_deconv_layers``, ...).
    """
    from slimpose.models.resnet import ResNet

    overrides = dict(overrides)
    depth = int(overrides.pop("depth", 50))
    backbone = pop_backbone(overrides, lambda: ResNet(depth=depth))
    return SimCCPose(backbone, num_keypoints, tuple(input_size), **overrides)


def _hrnet_simcc(width: int, num_keypoints: int, input_size: tuple[int, int], overrides: dict) -> SimCCPose:
    from slimpose.models.hrnet import HRNet

    overrides = dict(overrides)
    width = int(overrides.pop("width", width))  # a narrower HRNet for scaled-down (CPU) runs
    backbone = pop_backbone(overrides, lambda: HRNet(width=width, num_stages=4))
    overrides.setdefault("num_deconv_layers", 0)
    return SimCCPose(backbone, num_keypoints, tuple(input_size), **overrides)


def hrnet_w32_simcc(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SimCCPose:
    """SimDR HRNet-W32 (official ``w32_256x192_adam_lr1e-3_split2_sigma4``): HRNet-W32, 1x1 conv to K maps,
    ``Linear(3072, 384)`` and ``Linear(3072, 512)`` at 256x192 (split ratio 2). 256x256 (MPII): 4096 -> 512, 512.
    ``overrides``: ``width`` (a narrower HRNet, for scaled-down runs), ``backbone=`` and ``SimCCPose`` keywords."""
    return _hrnet_simcc(32, num_keypoints, input_size, overrides)


def hrnet_w48_simcc(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SimCCPose:
    """SimDR HRNet-W48 (official ``w48_256x192_adam_lr1e-3_split2_sigma6``, 75.4 AP COCO test-dev as SA-SimDR):
    HRNet-W48, 1x1 conv, ``HEAD_INPUT`` 3072 -> 384 x-bins and 512 y-bins at 256x192."""
    return _hrnet_simcc(48, num_keypoints, input_size, overrides)
