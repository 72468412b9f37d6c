"""TokenPose (Li et al., ICCV 2021) and the DistilPose heatmap teacher.

A CNN backbone (StemNet or a truncated HRNet) gives a stride-4 feature map; a ``TokenTransformer``
turns it into keypoint + visual tokens; a ``TokenHeatmapHead`` maps every keypoint token to a
heatmap (official ``TokenPose_S_base`` / ``TokenPose_TB_base`` / ``TokenPose_L_base``). TokenPose-L
("keypoint token fusion") concatenates the keypoint tokens after each of its three 8-layer stacks
(3 x 192 = 576) before the head. TokenPose-T has no CNN (``ImageBackbone``): the normalised crop itself is
cut into 16x12 patches and the head gives heatmaps of an explicit size (64x48, a quarter of the input).
"""

from __future__ import annotations

import torch
from torch import nn

from slimpose.heads.heatmap import HeatmapHead
from slimpose.models._factory import backbone_feature_size, pop_backbone, pop_stem_backbone
from slimpose.models.base import PoseNet, TokenFeatures
from slimpose.heads.simcc import SimCCHead
from slimpose.models.head_layers import TokenHeatmapHead, TokenSimCCHead
from slimpose.models.hrnet import hrnet_w32_backbone, hrnet_w48_backbone
from slimpose.models.transformer import PosEmbedding, TokenPruning, TokenTransformer


class ImageBackbone(nn.Module):
    """No backbone: the normalised RGB crop is the feature map (``out_channels`` 3, ``stride`` 1, no weights).

    TokenPose-T (leeyegy/TokenPose ``pose_tokenpose_t.py`` has none; SDPose's copy uses ``IdentityNet``, an
    ``nn.Identity`` without tensors)."""

    stride = 1

    def __init__(self, channels: int = 3):
        super().__init__()
        self.out_channels = int(channels)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images


class TokenPose(PoseNet):
    """Backbone + token transformer + heatmap layer; ``forward(images) -> heatmaps (B,K,h,w)``.

    Args:
        backbone: module with ``out_channels`` and ``stride`` returning one feature map.
        num_keypoints: ``K``.
        input_size: ``(w, h)`` of the input crops; features are ``input_size / stride``.
        patch_size: ``(ph, pw)`` patch of the feature map, height first.
        heatmap_size: ``(w, h)`` of the output heatmaps; ``None`` (every CNN-backbone variant): the feature size.
            TokenPose-T (stride-1 ``ImageBackbone``) gives ``input_size / 4``.
        fuse_stacks: TokenPose-L keypoint-token fusion (head input ``dim * num_stacks``).
        pruning: PPT token pruning (``TokenPruning`` or ``{'layers': [3, 6, 9], 'keep_ratio': 0.7}``).
        Remaining arguments go to ``TokenTransformer`` / ``TokenHeatmapHead``.
    """

    head_class = HeatmapHead

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
        num_stacks: int = 1,
        fuse_stacks: bool = False,
        scale_with_head: bool = True,
        pos_embedding: PosEmbedding = "sine-full",
        hidden_heatmap_dim: int | None = None,
        apply_multi: bool = True,
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
        pruning: TokenPruning | dict | None = None,
        heatmap_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        feature_size = backbone_feature_size(backbone, input_size, type(self).__name__)
        self.heatmap_size = feature_size if heatmap_size is None else (int(heatmap_size[0]), int(heatmap_size[1]))
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.fuse_stacks = fuse_stacks
        self.backbone = backbone
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
            num_stacks=num_stacks,
            dropout=dropout,
            emb_dropout=emb_dropout,
            pruning=pruning,
        )
        head_dim = dim * num_stacks if fuse_stacks else dim
        self.head = TokenHeatmapHead(head_dim, self.heatmap_size, hidden_heatmap_dim, apply_multi)

    def forward_features(self, images: torch.Tensor) -> TokenFeatures:
        """Final keypoint / visual tokens and the head input (TokenPose-L: the three stacks' keypoint
        tokens concatenated)."""
        self.check_images(images)
        tokens = self.transformer.embed(self.backbone(images))
        if self.fuse_stacks:
            outs = self.transformer.run_stacks(tokens)
            last = outs[-1]
            return TokenFeatures(last.prefix, last.visual, torch.cat([o.prefix for o in outs], dim=2), last.index)
        last = self.transformer.run(tokens)
        return TokenFeatures(last.prefix, last.visual, last.prefix, last.index)

    def forward_head(self, features: TokenFeatures) -> torch.Tensor:
        return self.head(features.head_input)

    def forward_intermediates(self, images: torch.Tensor, indices=None) -> list[torch.Tensor]:
        """Token sequences (B, K + N, D) after the chosen blocks (0-based over all stacks; ``None``: all)."""
        self.check_images(images)
        return self.transformer.forward_intermediates(self.backbone(images), indices)[1]


class TokenPoseSimDR(TokenPose):
    """TokenPose with SimCC coordinate classification instead of heatmaps (SimCC paper, Table: TokenPose-S
    SimDR 5.5M / 2.2 GFLOPs, 73.6 AP): ``forward(images) -> (x_logits (B,K,W k), y_logits (B,K,H k))``."""

    head_class = SimCCHead

    def __init__(self, backbone: nn.Module, num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256),
                 split_ratio: float = 2.0, **kwargs):
        super().__init__(backbone, num_keypoints, input_size, **kwargs)
        self.split_ratio = float(split_ratio)
        dim = self.head.dim
        self.head = TokenSimCCHead(dim, self.input_size, self.split_ratio)


def tokenpose_s_v1(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> TokenPose:
    """TokenPose-S-v1: StemNet, patch 4x3 (256 tokens), 12 layers, 8 heads, dim 192, scale ``dim**-0.5``.

    Published 6.6M params / 2.2 GFLOPs (TokenPose Table 7), 72.5 AP COCO val.
    ``overrides`` go to ``TokenPose`` (e.g. ``depth=2``); ``backbone=`` replaces the StemNet, ``stem_blocks=``
    shrinks its Bottleneck stack.
    """
    backbone = pop_stem_backbone(overrides)
    cfg = dict(patch_size=(4, 3), dim=192, depth=12, num_heads=8, scale_with_head=False)
    cfg.update(overrides)
    return TokenPose(backbone, num_keypoints, input_size, **cfg)


def tokenpose_s_v1_simdr(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> TokenPoseSimDR:
    """TokenPose-S-v1 with a SimDR head (``TokenSimCCHead``): 5.58M params (5.53M trainable; published 5.5M),
    2.2 GFLOPs, 73.6 AP COCO val (SimCC paper). ``overrides`` as ``tokenpose_s_v1`` plus ``split_ratio``."""
    backbone = pop_stem_backbone(overrides)
    cfg = dict(patch_size=(4, 3), dim=192, depth=12, num_heads=8, scale_with_head=False)
    cfg.update(overrides)
    return TokenPoseSimDR(backbone, num_keypoints, input_size, **cfg)


def tokenpose_s_v2(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> TokenPose:
    """TokenPose-S-v2: StemNet, patch 2x2 (768 tokens), 12 layers, 8 heads, scale ``dim**-0.5``.

    Published 6.2M params, 73.5 AP (TokenPose Table 6); GFLOPs 4.7 (SDPose) or 11.6 (third party).
    """
    backbone = pop_stem_backbone(overrides)
    cfg = dict(patch_size=(2, 2), dim=192, depth=12, num_heads=8, scale_with_head=False)
    cfg.update(overrides)
    return TokenPose(backbone, num_keypoints, input_size, **cfg)


def tokenpose_t(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> TokenPose:
    """TokenPose-T: no CNN, the normalised crop cut into 16x12 (h x w) patches (256 tokens of 16*12*3 = 576
    values, channel fastest), 12 layers, 16 heads, dim 192, MLP ratio 3, ``head_dim**-0.5`` (12**-0.5),
    sine-full; head ``LN(192), Linear(192, 384), LN(384), Linear(384, 3072)`` -> heatmaps ``input_size / 4``
    (64x48). leeyegy/TokenPose ``pose_tokenpose_t.py`` (``tokenpose_t_256_192_patch1612_dim192_depth12_heads16``);
    SDPose's ``tokenpose_t_coco_256x192.py`` (``IdentityNet`` backbone). 5,865,600 params (5,816,448 trainable;
    the yaml says 5.803M, the paper 5.8M). ``heatmap_size=`` overrides the quarter-size heatmaps.
    """
    backbone = pop_backbone(overrides, ImageBackbone)
    w, h = input_size
    if w % 4 or h % 4:
        raise ValueError(f"tokenpose_t: input_size (w, h) = {tuple(input_size)} must be divisible by 4 "
                         "(heatmaps of a quarter of the input)")
    cfg = dict(patch_size=(16, 12), dim=192, depth=12, num_heads=16, mlp_ratio=3.0, scale_with_head=True,
               heatmap_size=(w // 4, h // 4))
    cfg.update(overrides)
    return TokenPose(backbone, num_keypoints, input_size, **cfg)


def tokenpose_b(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> TokenPose:
    """TokenPose-B: HRNet-W32 stages 1-3, patch 4x3 on the 32-ch map, 12 layers, 8 heads, ``head_dim**-0.5``.

    Published 13.5M / 5.7 GFLOPs (SDPose: 13.2M / 5.2), 74.7 AP.
    """
    backbone = pop_backbone(overrides, lambda: hrnet_w32_backbone(num_stages=3))
    cfg = dict(patch_size=(4, 3), dim=192, depth=12, num_heads=8, scale_with_head=True)
    cfg.update(overrides)
    return TokenPose(backbone, num_keypoints, input_size, **cfg)


def tokenpose_l_d24(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> TokenPose:
    """TokenPose-L/D24: HRNet-W48 stages 1-3, three 8-layer stacks, 12 heads, keypoint-token fusion.

    Head ``LN(576) + Linear(576, 3072)``. Published 27.5M / 11.0 GFLOPs (TokenPose), 75.8 AP.
    """
    backbone = pop_backbone(overrides, lambda: hrnet_w48_backbone(num_stages=3))
    cfg = dict(
        patch_size=(4, 3), dim=192, depth=8, num_heads=12, num_stacks=3, fuse_stacks=True,
        scale_with_head=True,
    )
    cfg.update(overrides)
    return TokenPose(backbone, num_keypoints, input_size, **cfg)


def distilpose_teacher(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> TokenPose:
    """DistilPose's teacher: full 4-stage HRNet-W48 + 12-layer TokenPose head (8 heads, patch 4x3 on 48 ch).

    Published 69.4M / 17.03 GFLOPs, 75.2 AP (yshMars/DistilPose README, ``teacher_hr48_coco_256x192.py``).
    """
    backbone = pop_backbone(overrides, lambda: hrnet_w48_backbone(num_stages=4))
    cfg = dict(patch_size=(4, 3), dim=192, depth=12, num_heads=8, scale_with_head=True)
    cfg.update(overrides)
    return TokenPose(backbone, num_keypoints, input_size, **cfg)


# PPT (Ma et al., ECCV 2022; HowieMa/PPT): TokenPose with keypoint-attention token pruning at blocks 3, 6, 9
PPT_PRUNING = {"layers": (3, 6, 9), "keep_ratio": 0.7}


def ppt_s_v1(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> TokenPose:
    """PPT-S: TokenPose-S-v1 keeping ``ceil(0.7 N)`` visual tokens at blocks 3, 6 and 9 (256 -> 180 -> 126 -> 89).

    Published 6.6M / 2.0 GFLOPs, 72.2 AP COCO val (``ppt_s_256x192_ratio07.pth``). Same weights as
    ``tokenpose_s_v1``; ``pruning={'layers': [...], 'keep_ratio': r}`` changes the schedule.
    """
    overrides.setdefault("pruning", dict(PPT_PRUNING))
    return tokenpose_s_v1(num_keypoints, input_size, **overrides)


def ppt_b(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> TokenPose:
    """PPT-B: TokenPose-B (HRNet-W32 stages 1-3) with the PPT schedule. Published 13.5M / 5.6 GFLOPs, 74.4 AP."""
    overrides.setdefault("pruning", dict(PPT_PRUNING))
    return tokenpose_b(num_keypoints, input_size, **overrides)
