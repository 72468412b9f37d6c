"""Transformer blocks shared by every token model: attention, MLP, the pre-norm block, sine positions.

The official TokenPose / DistilPose / SDPose layers (``tokenpose_base.py`` / ``tokenbase.py``): pre-norm
blocks without qkv bias, MLP ratio 3, GELU. A stack calls ``block.forward_tokens(tokens)`` on every block,
so a block class that drops tokens (token pruning) only overrides that method; plain blocks map
``tokens.x`` and keep the token set (see ``slimpose.models.transformer.encoder.Tokens``).

State-dict names vs the official ones (for converters): ``norm1`` = ``layers.{i}.0.fn.norm``,
``attn.qkv`` = ``….0.fn.fn.to_qkv``, ``attn.proj`` = ``….0.fn.fn.to_out.0``, ``norm2`` = ``….1.fn.norm``,
``mlp.fc1`` = ``….1.fn.fn.net.0``, ``mlp.fc2`` = ``….1.fn.fn.net.3``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from slimpose.models.transformer.encoder import Tokens


def sine_position_embedding(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Fixed 2-D sine embedding ``[1, height*width, dim]`` (DETR style, official TokenPose).

    Positions are the normalised cumulative sums ``cumsum(1) / (last + eps) * scale`` per axis;
    each axis gets ``dim // 2`` features ``pos / temperature**(2*(i//2)/(dim//2))`` with sin on even
    and cos on odd indices, stacked interleaved; channels are ``cat(pos_y, pos_x)``; the grid is
    flattened row-major.
    """
    if dim % 4 != 0:
        raise ValueError(f"sine position embedding needs dim divisible by 4, got {dim}")
    area = torch.ones(1, height, width)
    y_embed = area.cumsum(1, dtype=torch.float32)
    x_embed = area.cumsum(2, dtype=torch.float32)
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    feats = dim // 2
    dim_t = torch.arange(feats, dtype=torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / feats)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    pos = torch.cat((pos_y, pos_x), dim=3)  # [1, h, w, dim]
    return pos.reshape(1, height * width, dim)


def attention_explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Reference ``softmax(q k^T * scale) v`` (the official einsum implementation)."""
    attn = torch.matmul(q, k.transpose(-2, -1)) * scale
    return torch.matmul(attn.softmax(dim=-1), v)


class Attention(nn.Module):
    """Multi-head self-attention: ``qkv`` Linear (no bias unless ``qkv_bias``), ``proj`` Linear with bias.

    ``scale_with_head=True`` uses ``head_dim**-0.5``; ``False`` uses ``dim**-0.5`` (official
    TokenPose-S). Runs ``F.scaled_dot_product_attention`` with the explicit scale.
    """

    def __init__(self, dim: int, num_heads: int = 8, scale_with_head: bool = True, proj_drop: float = 0.0,
                 qkv_bias: bool = False):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale_with_head = scale_with_head
        self.scale = self.head_dim**-0.5 if scale_with_head else dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``attn_mask``: SDPA's mask (bool: True = may attend), broadcast over (B, heads, N, N)."""
        b, n, _ = x.shape
        q, k, v = self._qkv(x)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=self.scale)
        out = out.transpose(1, 2).reshape(b, n, self.dim)
        return self.proj_drop(self.proj(out))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Explicit path that also returns the attention maps ``(B, heads, N, N)`` (token pruning)."""
        b, n, _ = x.shape
        q, k, v = self._qkv(x)
        attn = (torch.matmul(q, k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, self.dim)
        return self.proj_drop(self.proj(out)), attn


    def forward_cross(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``x`` (B, M, C) attends to ``context`` (B, P, C) with this layer's weights: queries from the q rows
        of ``qkv``, keys and values from its k and v rows (EViTPose: leaving patches read the joint tokens)."""
        b, m, _ = x.shape
        w, bias = self.qkv.weight, self.qkv.bias
        q = F.linear(x, w[: self.dim], None if bias is None else bias[: self.dim])
        kv = F.linear(context, w[self.dim:], None if bias is None else bias[self.dim:])
        q = q.reshape(b, m, self.num_heads, self.head_dim).transpose(1, 2)
        kv = kv.reshape(b, context.shape[1], 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1], scale=self.scale)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, m, self.dim)))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero the residual branch of a whole sample with probability ``p``
    and scale the kept ones by ``1 / (1 - p)``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Mlp(nn.Module):
    """``fc1`` -> GELU -> ``fc2`` (official FeedForward)."""

    def __init__(self, dim: int, hidden_dim: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class TokenBlock(nn.Module):
    """Pre-norm block: ``x = x + attn(norm1(x)); x = x + mlp(norm2(x))``.

    The constructor signature ``(dim, num_heads, mlp_ratio, scale_with_head, drop)`` is the ``block_fn``
    contract of ``TokenStack``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 3.0,
        scale_with_head: bool = True,
        drop: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, scale_with_head=scale_with_head, proj_drop=drop)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))

    def forward_tokens(self, tokens: "Tokens") -> "Tokens":
        """The block on a token set: a plain block keeps every token (pruning blocks override this)."""
        return tokens.with_x(self(tokens.x))


def init_transformer_(module: nn.Module) -> None:
    """The official transformer init (TokenPose, ViT / ViTPose): trunc_normal(0.02) Linear weights, zero
    biases, LayerNorm (1, 0), for every submodule of ``module`` in order."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
