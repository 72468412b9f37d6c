"""Patch embeddings: tokens from a CNN feature map (TokenPose family) or from image patches (ViT).

Both map ``(B, C, H, W)`` to ``(B, N, D)`` tokens over a row-major ``grid_size = (w, h)`` of patches, so a
token stack does not care which one made its tokens.
"""

from __future__ import annotations

import torch
from torch import nn


def patchify(features: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """``b c (h p1) (w p2) -> b (h w) (p1 p2 c)`` (the official einops pattern, c fastest)."""
    ph, pw = patch_size
    b, c, fh, fw = features.shape
    if fh % ph or fw % pw:
        raise ValueError(f"feature map {fh}x{fw} (h x w) is not divisible by patch {ph}x{pw} (h x w)")
    h, w = fh // ph, fw // pw
    x = features.reshape(b, c, h, ph, w, pw).permute(0, 2, 4, 3, 5, 1)  # b h w p1 p2 c
    return x.reshape(b, h * w, ph * pw * c)


class FeaturePatchEmbed(nn.Linear):
    """Patches of a CNN feature map, flattened ``(p1, p2, c)`` and linearly embedded (TokenPose).

    A ``Linear(C * ph * pw, dim)`` (official ``patch_to_embedding``; its state-dict keys are
    ``weight`` / ``bias`` as the official ones). ``feature_size`` is ``(w, h)``, ``patch_size`` ``(ph, pw)``
    (height first, as the official code).
    """

    def __init__(self, in_channels: int, feature_size: tuple[int, int], patch_size: tuple[int, int], dim: int):
        fw, fh = feature_size
        ph, pw = patch_size
        if fh % ph or fw % pw:
            raise ValueError(f"feature map (w={fw}, h={fh}) is not divisible by patch_size (ph={ph}, pw={pw})")
        super().__init__(in_channels * ph * pw, dim)
        self.in_channels = in_channels
        self.feature_size = (fw, fh)
        self.patch_size = (ph, pw)
        self.grid_size = (fw // pw, fh // ph)  # (w, h) in patches
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.dim() != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"expected features (B,{self.in_channels},H,W), got {tuple(features.shape)}")
        fw, fh = self.feature_size
        if features.shape[2:] != (fh, fw):
            raise ValueError(f"expected a {fh}x{fw} (h x w) feature map, got {features.shape[2]}x{features.shape[3]}")
        return super().forward(patchify(features, self.patch_size))

    def to_conv(self) -> "ConvFeaturePatchEmbed":
        """The same embedding as a strided convolution (``ConvFeaturePatchEmbed``)."""
        return ConvFeaturePatchEmbed(self)


class PatchEmbed(nn.Module):
    """Image patches embedded by a strided convolution (ViT; ViTPose pads the conv by ``padding``).

    ``proj`` = ``Conv2d(in_channels, dim, kernel=patch, stride=patch, padding)``; ``image_size`` ``(w, h)``;
    ``patch_size`` ``(ph, pw)``. Output ``(B, gh * gw, dim)`` with ``grid_size = (gw, gh)``.
    """

    def __init__(self, image_size: tuple[int, int], patch_size: tuple[int, int] = (16, 16), in_channels: int = 3,
                 dim: int = 768, padding: int = 0):
        super().__init__()
        w, h = image_size
        ph, pw = patch_size
        self.image_size = (w, h)
        self.patch_size = (ph, pw)
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=(ph, pw), stride=(ph, pw), padding=padding)
        gh = (h + 2 * padding - ph) // ph + 1
        gw = (w + 2 * padding - pw) // pw + 1
        self.grid_size = (gw, gh)
        self.num_patches = gw * gh

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)


class ConvFeaturePatchEmbed(nn.Conv2d):
    """``FeaturePatchEmbed`` computed as a convolution with kernel = stride = patch (the inference path,
    ``slimpose.inference``): the same tokens, and on a channels-last feature map no permuted copy."""

    def __init__(self, embed: FeaturePatchEmbed):
        ph, pw = embed.patch_size
        dim = embed.out_features
        super().__init__(embed.in_channels, dim, kernel_size=(ph, pw), stride=(ph, pw),
                         device=embed.weight.device, dtype=embed.weight.dtype)
        with torch.no_grad():  # Linear input order (p1, p2, c) -> conv weight (dim, c, p1, p2)
            self.weight.copy_(embed.weight.reshape(dim, ph, pw, embed.in_channels).permute(0, 3, 1, 2))
            self.bias.copy_(embed.bias)
        self.feature_size = embed.feature_size
        self.patch_size = embed.patch_size
        self.grid_size = embed.grid_size
        self.num_patches = embed.num_patches

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return super().forward(features).flatten(2).transpose(1, 2)
