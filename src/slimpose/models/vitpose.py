"""ViTPose (Xu et al., NeurIPS 2022): a plain ViT on the image and a light heatmap decoder.

Re-implemented from the official code (ViTAE-Transformer/ViTPose ``mmpose/models/backbones/vit.py`` and
``TopdownHeatmapSimpleHead``). The backbone:

* ``patch_embed.proj``: a 16x16 stride-16 conv with padding 2, a 16x12 grid at 256x192.
* ``pos_embed`` (1, 1 + N, C): the official checkpoints keep a class slot but the forward has no class
  token; it adds ``pos[:, 1:] + pos[:, :1]`` to the patches, and slimpose does the same.
* ``blocks.{i}``: pre-norm blocks with LayerNorm eps 1e-6, ``qkv`` with bias, MLP ratio 4 and drop path
  (stochastic depth rising linearly to ``drop_path_rate``).
* ``last_norm``, then the tokens are reshaped to a (B, C, 16, 12) map.

Decoders (``keypoint_head``, keys as mmpose 0.x):

* classic: two 4x4 deconvolutions of 256 channels with BN and ReLU, then a 1x1 conv;
* simple: ReLU, bilinear x4 up-sampling, then a 3x3 conv (``final_layer`` [K, C, 3, 3]).

Both give 64x48 heatmaps at 256x192; the recipes train them with UDP. State-dict keys equal the
official mmcv checkpoint's (``backbone.*``, ``keypoint_head.*``); ``slimpose.convert`` maps the MMPose 1.x
layout onto them.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.heads.heatmap import HeatmapHead
from slimpose.models.base import PoseNet
from slimpose.models.layers import DeconvHead
from slimpose.models.transformer.blocks import Attention, DropPath, Mlp, init_transformer_
from slimpose.models.transformer.patch_embed import PatchEmbed

# name -> (embed dim, depth, heads, drop_path_rate) of the official configs
VITPOSE_SIZES = {"s": (384, 12, 12, 0.1), "b": (768, 12, 12, 0.3), "l": (1024, 24, 16, 0.5), "h": (1280, 32, 16, 0.55)}


class ViTBlock(nn.Module):
    """Official ViTPose ``Block``: ``x + drop_path(attn(norm1(x)))``, ``x + drop_path(mlp(norm2(x)))``; also
    MixSTE's spatial and temporal blocks (``qkv_bias`` and dropout ``drop`` after the projections)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 eps: float = 1e-6, qkv_bias: bool = True, drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, scale_with_head=True, proj_drop=drop, qkv_bias=qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class ViTPoseBackbone(nn.Module):
    """The ViTPose encoder: images (B, 3, H, W) -> feature map (B, C, H / 16, W / 16) (padding 2)."""

    stride = 16

    def __init__(self, image_size: tuple[int, int] = (192, 256), dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0, patch_size: int = 16,
                 padding: int = 2, block_fn: Callable[[int, float], nn.Module] | None = None) -> None:
        """``block_fn(i, drop_path)`` builds block ``i`` (default a ``ViTBlock``; EViTPose and ViTPose++ plug in
        their pruning / expert blocks here)."""
        super().__init__()
        self.patch_embed = PatchEmbed(image_size, (patch_size, patch_size), 3, dim, padding=padding)
        self.out_channels = dim
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.patch_embed.num_patches, dim))
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # linear in depth, as timm
        make = block_fn or (lambda i, rate: ViTBlock(dim, num_heads, mlp_ratio, rate))
        self.blocks = nn.ModuleList(make(i, rates[i]) for i in range(depth))
        self.last_norm = nn.LayerNorm(dim, eps=1e-6)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        init_transformer_(self)

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Images -> patch tokens (B, N, C) with their position embedding (the class slot folded in)."""
        return self.patch_embed(images) + self.pos_embed[:, 1:] + self.pos_embed[:, :1]

    def to_map(self, patches: torch.Tensor) -> torch.Tensor:
        """Final patch tokens (B, N, C) in grid order -> ``last_norm`` -> the (B, C, gh, gw) feature map."""
        gw, gh = self.patch_embed.grid_size
        x = self.last_norm(patches)
        return x.transpose(1, 2).reshape(x.shape[0], -1, gh, gw)

    def forward(self, images: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Feature map of ``images``; ``prefix`` (B or 1, P, C) tokens (e.g. a knowledge token, ViTPose Sec. 3.4)
        are put before the patch tokens, take part in every block (no position embedding) and are dropped at
        the end."""
        x = prepend(prefix, self.embed(images))
        p = 0 if prefix is None else prefix.shape[1]
        for block in self.blocks:
            x = block(x)
        return self.to_map(x[:, p:])


def prepend(prefix: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor:
    """``prefix`` tokens (B or 1, P, C) put before the tokens ``x`` (B, N, C); ``x`` itself without a prefix."""
    if prefix is None:
        return x
    return torch.cat((prefix.expand(x.shape[0], -1, -1).to(x.dtype), x), dim=1)


class SimpleDecoder(nn.Module):
    """ViTPose's simple decoder: ReLU, bilinear up-sampling x``scale``, 3x3 conv to K heatmaps."""

    def __init__(self, in_channels: int, num_keypoints: int, scale: int = 4) -> None:
        super().__init__()
        self.scale = int(scale)
        self.final_layer = nn.Conv2d(in_channels, num_keypoints, kernel_size=3, padding=1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)
        self.upsample_factor = self.scale

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(F.relu(features), scale_factor=self.scale, mode="bilinear", align_corners=False)
        return self.final_layer(x)


class ViTPose(PoseNet):
    """ViTPose backbone + classic (``decoder='classic'``) or simple (``'simple'``) heatmap decoder."""

    head_class = HeatmapHead

    def __init__(self, backbone: ViTPoseBackbone, num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256),
                 decoder: str = "classic") -> None:
        super().__init__()
        if decoder not in ("classic", "simple"):
            raise ValueError(f"ViTPose decoder must be 'classic' or 'simple', got {decoder!r}")
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.decoder = decoder
        if decoder == "classic":
            self.keypoint_head = DeconvHead(backbone.out_channels, num_keypoints, num_deconv_layers=2)
        else:
            self.keypoint_head = SimpleDecoder(backbone.out_channels, num_keypoints)
        self.output_stride = backbone.stride // self.keypoint_head.upsample_factor
        gw, gh = backbone.patch_embed.grid_size
        up = self.keypoint_head.upsample_factor
        self.heatmap_size = (gw * up, gh * up)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        return self.backbone(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.keypoint_head(features)


def _vitpose(size: str, num_keypoints: int, input_size: tuple[int, int], overrides: dict) -> ViTPose:
    dim, depth, heads, dpr = VITPOSE_SIZES[size]
    o = dict(overrides)
    decoder = o.pop("decoder", "classic")
    cfg = dict(dim=dim, depth=depth, num_heads=heads, drop_path_rate=dpr)
    cfg.update(o)
    return ViTPose(ViTPoseBackbone(tuple(input_size), **cfg), num_keypoints, tuple(input_size), decoder)


def vitpose_s(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> ViTPose:
    """ViTPose-S: embed 384, depth 12, 12 heads, drop path 0.1 (73.8 AP classic / 73.5 simple, COCO val).
    ``overrides``: ``decoder='simple'`` and ``ViTPoseBackbone`` keywords (``depth``, ``dim``, ...)."""
    return _vitpose("s", num_keypoints, input_size, overrides)


def vitpose_b(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> ViTPose:
    """ViTPose-B: embed 768, depth 12, 12 heads, drop path 0.3 (86M backbone, 17.1 GFLOPs; 75.8 / 75.5 AP)."""
    return _vitpose("b", num_keypoints, input_size, overrides)


def vitpose_l(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> ViTPose:
    """ViTPose-L: embed 1024, depth 24, 16 heads, drop path 0.5 (307M; 78.3 / 78.2 AP)."""
    return _vitpose("l", num_keypoints, input_size, overrides)


def vitpose_h(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> ViTPose:
    """ViTPose-H: embed 1280, depth 32, 16 heads, drop path 0.55 (632M; 79.1 / 78.9 AP)."""
    return _vitpose("h", num_keypoints, input_size, overrides)
