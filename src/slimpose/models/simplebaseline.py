"""SimpleBaseline (Xiao et al., ECCV 2018): ResNet + 3 deconvolutions (256 ch, 4x4, s2) + conv1x1 head.

State-dict keys follow mmpose 0.x ``TopDown``: ``backbone.*`` (torchvision ResNet names),
``keypoint_head.deconv_layers.{0,1,3,4,6,7}.*`` and ``keypoint_head.final_layer.*``.
"""

from __future__ import annotations

import torch

from slimpose.heads.heatmap import HeatmapHead
from slimpose.models.base import PoseNet
from slimpose.models.layers import DeconvHead, check_input_divisible
from slimpose.models.resnet import ResNet


class SimpleBaselinePose(PoseNet):
    """ResNet C5 (stride 32) -> ``num_deconv_layers`` x2 deconvs -> K heatmaps (stride 4 with 3 deconvs)."""

    head_class = HeatmapHead

    def __init__(
        self,
        backbone: ResNet,
        num_keypoints: int = 17,
        num_deconv_layers: int = 3,
        deconv_channels: int = 256,
        deconv_kernel: int = 4,
        input_size: tuple[int, int] = (192, 256),
    ):
        super().__init__()
        if backbone.return_all:
            raise ValueError("SimpleBaselinePose needs a ResNet built with return_all=False")
        self.backbone = backbone
        self.keypoint_head = DeconvHead(
            backbone.out_channels, num_keypoints, num_deconv_layers, deconv_channels, deconv_kernel
        )
        self.num_keypoints = num_keypoints
        self.output_stride = backbone.stride // self.keypoint_head.upsample_factor
        self.input_size = tuple(input_size)
        self.heatmap_size = (input_size[0] // self.output_stride, input_size[1] // self.output_stride)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> ResNet C5 features (B, C, H/32, W/32)."""
        check_input_divisible(images, self.backbone.stride, f"SimpleBaseline-ResNet{self.backbone.depth}")
        return self.backbone(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """C5 features -> heatmaps (B, K, H/4, W/4) (with the default 3 deconvs)."""
        return self.keypoint_head(features)


def _simplebaseline(
    depth: int, num_keypoints: int, input_size: tuple[int, int] | None, **kwargs
) -> SimpleBaselinePose:
    if input_size is not None and (input_size[0] % 32 or input_size[1] % 32):
        raise ValueError(
            f"simplebaseline_res{depth}: input_size (w, h) = {tuple(input_size)} must be divisible by 32"
        )
    in_channels = kwargs.pop("in_channels", 3)
    return SimpleBaselinePose(
        ResNet(depth=depth, in_channels=in_channels), num_keypoints, input_size=input_size or (192, 256), **kwargs
    )


def simplebaseline_res50(
    num_keypoints: int = 17, input_size: tuple[int, int] | None = None, **kwargs
) -> SimpleBaselinePose:
    """SimpleBaseline ResNet-50 (34.0M params; paper: 8.9 GFLOPs at 256x192, conv MACs measured 5.43 G).

    ``kwargs`` go to ``SimpleBaselinePose`` (``num_deconv_layers``, ``deconv_channels``, ``deconv_kernel``)
    or ``in_channels`` of the ResNet; ``input_size`` (w, h) is validated and recorded.
    """
    return _simplebaseline(50, num_keypoints, input_size, **kwargs)


def simplebaseline_res101(
    num_keypoints: int = 17, input_size: tuple[int, int] | None = None, **kwargs
) -> SimpleBaselinePose:
    """SimpleBaseline ResNet-101 (53.0M params; conv MACs 9.06 G at 256x192)."""
    return _simplebaseline(101, num_keypoints, input_size, **kwargs)


def simplebaseline_res152(
    num_keypoints: int = 17, input_size: tuple[int, int] | None = None, **kwargs
) -> SimpleBaselinePose:
    """SimpleBaseline ResNet-152 (68.6M params; conv MACs 12.70 G at 256x192)."""
    return _simplebaseline(152, num_keypoints, input_size, **kwargs)
