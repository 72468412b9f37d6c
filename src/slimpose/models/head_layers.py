"""Output layers on keypoint tokens: heatmaps (TokenPose ``mlp_head``) and DistilPose's regression layer.

These are the layers of the models (official state-dict keys ``head.mlp.*``); what their outputs mean
(targets, loss, decoding) is the business of ``slimpose.heads``.

Heatmaps: each keypoint token ``(D,)`` is mapped to a flattened heatmap ``H*W`` and reshaped row-major to
``(H, W)``. Official rule: with ``hid = H*W // 8`` the head is ``LN(D), Linear(D, hid), LN(hid),
Linear(hid, H*W)`` when ``D <= hid * 0.5`` (and ``apply_multi``), else ``LN(D), Linear(D, H*W)``.
The ``mlp`` Sequential indices match the official ``mlp_head.{0,1,2,3}`` keys.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
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


class TokenSimCCHead(nn.Module):
    """Keypoint tokens ``(B,K,D)`` -> SimCC logits ``(B,K,W k)``, ``(B,K,H k)``: ``LN(D)`` then
    ``mlp_head_x = Linear(D, W k)`` and ``mlp_head_y = Linear(D, H k)``.

    The TokenPose-S SimDR head of the SimCC paper (its code was never released, leeyegy/SimCC#14). This
    reading is the one that gives the published size: TokenPose-S-v1 without its heatmap MLP (1.26M) plus
    this head (0.17M) is 5.58M parameters, 5.53M trainable (published 5.5M; the heatmap model 6.6M).
    """

    def __init__(self, dim: int, input_size: tuple[int, int], split_ratio: float = 2.0):
        super().__init__()
        w, h = input_size
        self.norm = nn.LayerNorm(dim)
        self.mlp_head_x = nn.Linear(dim, int(round(w * split_ratio)))
        self.mlp_head_y = nn.Linear(dim, int(round(h * split_ratio)))
        for m in (self.mlp_head_x, self.mlp_head_y):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)

    def forward(self, keypoint_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t = self.norm(keypoint_tokens)
        return self.mlp_head_x(t), self.mlp_head_y(t)


REGRESSION_OUT_DIM = 5


def activate_regression_output(raw: torch.Tensor) -> torch.Tensor:
    """Raw (..., 5) -> [sigmoid(x), sigmoid(y), score, softplus(sx), softplus(sy)] (official 'all' mode)."""
    return torch.cat((raw[..., 0:2].sigmoid(), raw[..., 2:3], F.softplus(raw[..., 3:5])), dim=-1)


def rle_activation(raw: torch.Tensor) -> torch.Tensor:
    """Raw ``(...,5)`` -> ``[sigmoid(x), sigmoid(y), 1 - mean(sigma), sigma_x, sigma_y]``, sigma = sigmoid.

    RLE's sigma is the sigmoid of the raw output, in normalised-coordinate units (official RLE /
    ``RLESDPoseHead.inference_model``); the keypoint score is the official RLE decode ``1 - mean(sigma)``
    (the raw third channel is not trained).
    """
    xy = raw[..., 0:2].sigmoid()
    sigma = raw[..., 3:5].sigmoid()
    score = 1.0 - sigma.mean(dim=-1, keepdim=True)
    return torch.cat((xy, score, sigma), dim=-1)


class RegressionTokenHead(nn.Module):
    """Keypoint tokens (B,K,D) -> activated (B,K,5) (official ``mlp_head`` = LN + Linear(D, 5)).

    ``activation`` is ``activate_regression_output`` (DistilPose) or ``rle_activation`` (SDPose-Reg).
    """

    def __init__(self, dim: int, out_dim: int = REGRESSION_OUT_DIM,
                 activation: Callable[[torch.Tensor], torch.Tensor] = activate_regression_output):
        super().__init__()
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out_dim))
        self.activation = activation
        nn.init.trunc_normal_(self.mlp[1].weight, std=0.02)
        nn.init.zeros_(self.mlp[1].bias)

    def forward(self, keypoint_tokens: torch.Tensor) -> torch.Tensor:
        return self.activation(self.mlp(keypoint_tokens))
