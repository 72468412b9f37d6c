"""Heatmap head on keypoint tokens (official TokenPose ``mlp_head``).

Each keypoint token ``(D,)`` is mapped to a flattened heatmap ``H*W`` and reshaped row-major to
``(H, W)``. Official rule: with ``hid = H*W // 8`` the head is ``LN(D), Linear(D, hid), LN(hid),
Linear(hid, H*W)`` when ``D <= hid * 0.5`` (and ``apply_multi``), else ``LN(D), Linear(D, H*W)``.
The ``mlp`` Sequential indices match the official ``mlp_head.{0,1,2,3}`` keys.
"""

from __future__ import annotations

import torch
from torch import nn


def uses_hidden_layer(dim: int, heatmap_size: tuple[int, int], hidden_dim: int | None = None) -> bool:
    """The official branch rule: two Linear layers iff ``dim <= hidden_dim * 0.5``."""
    w, h = heatmap_size
    hid = hidden_dim if hidden_dim is not None else (h * w) // 8
    return dim <= hid * 0.5


class TokenHeatmapHead(nn.Module):
    """Keypoint tokens ``(B,K,D)`` -> heatmaps ``(B,K,H,W)``.

    Args:
        dim: token width ``D`` (576 for TokenPose-L, which concatenates three stacks' tokens).
        heatmap_size: ``(w, h)`` of the output heatmaps.
        hidden_dim: hidden width of the two-layer variant (default ``H*W // 8``, official 384 for 64x48).
        apply_multi: allow the two-layer variant (official flag; TokenPose-L's head is always one layer
            because ``576 > 192``).
    """

    def __init__(
        self,
        dim: int,
        heatmap_size: tuple[int, int] = (48, 64),
        hidden_dim: int | None = None,
        apply_multi: bool = True,
    ):
        super().__init__()
        w, h = heatmap_size
        self.dim = dim
        self.heatmap_size = (w, h)
        self.hidden_dim = hidden_dim if hidden_dim is not None else (h * w) // 8
        self.two_layer = apply_multi and uses_hidden_layer(dim, heatmap_size, self.hidden_dim)
        if self.two_layer:
            self.mlp = nn.Sequential(
                nn.LayerNorm(dim),
                nn.Linear(dim, self.hidden_dim),
                nn.LayerNorm(self.hidden_dim),
                nn.Linear(self.hidden_dim, h * w),
            )
        else:
            self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, h * w))
        self.init_weights()

    def init_weights(self) -> None:
        """trunc_normal(0.02) Linear weights, zero biases, LayerNorm (1, 0)."""
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, keypoint_tokens: torch.Tensor) -> torch.Tensor:
        b, k, _ = keypoint_tokens.shape
        w, h = self.heatmap_size
        return self.mlp(keypoint_tokens).reshape(b, k, h, w)
