"""DistilPose students (Ye et al., CVPR 2023) and the DeepPose CNN student of its Table 6.

``DistilPose`` = CNN backbone (stride 4) + Token-distilling Encoder (the shared token transformer:
patch 4x3 on the 64x48 feature map, 12 layers, dim 192, 8 heads, MLP ratio 3, ``sine-full``,
attention scale ``head_dim**-0.5``) + a per-keypoint-token head ``LN(D) + Linear(D, 5)`` (official
``DistilPose_base`` with ``out_mode='all'``).

Output convention of every model here: ``forward(images) -> (B, K, 5)`` holding, already activated,
``[x, y, score, sigma_x, sigma_y]``:

* ``x, y`` = sigmoid of the first two channels: coordinates normalised to [0, 1] of the input crop
  (pixel = value * input size, the ``RegressionLabel`` convention);
* ``score`` = the raw third channel: the keypoint confidence trained by L_CS towards the teacher
  heatmap value (no activation, as official);
* ``sigma_x, sigma_y`` = softplus of the last two channels, in heatmap pixels (for L_SH).

``score_source`` says what inference uses as keypoint score: ``"confidence"`` (the channel above;
only meaningful when the model was trained with L_CS) or ``"constant"`` (1.0 for every keypoint: the
no-distillation / no-L_CS students, whose confidence channel is untrained; using it anyway is what
made the official no-distillation run score AP < 0.1, yshMars/DistilPose#2).
"""

from __future__ import annotations

import torch
from torch import nn

from slimpose.heads.regression import RegressionHead, check_score_source
from slimpose.models._factory import backbone_feature_size, pop_backbone, pop_stem_backbone
from slimpose.models.base import PoseNet, TokenFeatures
from slimpose.models.head_layers import REGRESSION_OUT_DIM, RegressionTokenHead, activate_regression_output
from slimpose.models.transformer import TokenPruning, TokenTransformer


class DistilPose(PoseNet):
    """Backbone (stride 4) + TDE token transformer + regression token head.

    Args:
        backbone: CNN with ``out_channels`` and ``stride`` returning one (B,C,H/s,W/s) feature map.
        input_size: ``(w, h)`` of the input crop.
        patch_size: ``(ph, pw)`` on the feature map, height first (official ``[4, 3]``).
        score_source: ``"confidence"`` or ``"constant"`` (see the module doc).
        pruning: PPT token pruning of the TDE (``TokenPruning`` or a dict, see ``TokenTransformer``).
    """

    head_class = RegressionHead

    def __init__(
        self,
        backbone: nn.Module,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (192, 256),
        patch_size: tuple[int, int] = (4, 3),
        dim: int = 192,
        depth: int = 12,
        num_heads: int = 8,
        mlp_ratio: float = 3.0,
        pos_embedding: str = "sine-full",
        scale_with_head: bool = True,
        score_source: str = "confidence",
        pruning: TokenPruning | dict | None = None,
    ):
        super().__init__()
        feature_size = backbone_feature_size(backbone, input_size, "DistilPose")
        check_score_source(score_source)
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.score_source = score_source
        self.transformer = TokenTransformer(
            in_channels=backbone.out_channels,
            feature_size=feature_size,
            patch_size=patch_size,
            num_keypoints=num_keypoints,
            dim=dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            pos_embedding=pos_embedding,
            scale_with_head=scale_with_head,
            pruning=pruning,
        )
        self.head = RegressionTokenHead(dim)

    def forward_features(self, images: torch.Tensor) -> TokenFeatures:
        """Keypoint and visual tokens of the last TDE layer."""
        tokens = self.transformer(self.backbone(images))
        return TokenFeatures(tokens.prefix, tokens.visual, tokens.prefix, tokens.index)

    def forward_head(self, features: TokenFeatures) -> torch.Tensor:
        return self.head(features.head_input)


class DeepPose(PoseNet):
    """DeepPose-style CNN regressor (Toshev & Szegedy 2014; DistilPose Table 6 student).

    Backbone -> global average pooling -> Linear(C, K*5) -> the same activated (B,K,5) output as
    ``DistilPose``. Has no tokens: it can only be distilled with Simulated Heatmaps (+ L_CS).
    """

    head_class = RegressionHead

    def __init__(
        self,
        backbone: nn.Module,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (192, 256),
        score_source: str = "confidence",
    ):
        super().__init__()
        check_score_source(score_source)
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.score_source = score_source
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(backbone.out_channels, num_keypoints * REGRESSION_OUT_DIM)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        x = self.pool(features).flatten(1)
        raw = self.fc(x).reshape(x.shape[0], self.num_keypoints, REGRESSION_OUT_DIM)
        return activate_regression_output(raw)


def _tde_kwargs(overrides: dict) -> dict:
    kw = dict(patch_size=(4, 3), dim=192, depth=12, num_heads=8, mlp_ratio=3.0, pos_embedding="sine-full")
    kw.update(overrides)
    return kw


def distilpose_s(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> DistilPose:
    """DistilPose-S: StemNet + 12-layer TDE. Published 5.36M params / 2.38 GFLOPs at 256x192.

    ``stem_blocks`` (default 4, official) shrinks the StemNet's Bottleneck stack for CPU-sized runs.
    """
    backbone = pop_stem_backbone(overrides)
    return DistilPose(backbone, num_keypoints, input_size, **_tde_kwargs(overrides))


def distilpose_l(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> DistilPose:
    """DistilPose-L: HRNet-W48 (3 stages, highest-resolution branch) + TDE. Published 21.27M / 10.33 G."""
    from slimpose.models.hrnet import hrnet_w48_backbone

    if input_size[0] % 16 or input_size[1] % 16:
        raise ValueError(f"distilpose_l: input_size (w, h) = {tuple(input_size)} must be divisible by 16")
    backbone = pop_backbone(overrides, lambda: hrnet_w48_backbone(num_stages=3))
    return DistilPose(backbone, num_keypoints, input_size, **_tde_kwargs(overrides))


def deeppose_res50(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> DeepPose:
    """DeepPose, ResNet-50 backbone (DistilPose Table 6: 52.6 AP alone, 59.7 AP with Simulated Heatmaps)."""
    from slimpose.models.resnet import resnet50

    backbone = pop_backbone(overrides, resnet50)
    return DeepPose(backbone, num_keypoints, input_size, **overrides)
