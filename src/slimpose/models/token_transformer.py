"""The token transformer shared by TokenPose, DistilPose and SDPose.

Implements the official ``tokenpose_base.py`` / ``tokenbase.py`` design (TokenPose, ICCV 2021,
Sec. 3): a CNN feature map is cut into non-overlapping patches (flattened ``(p1, p2, c)``, c
fastest) and linearly embedded into visual tokens; ``K`` learnable keypoint tokens are placed
before them; a stack of pre-norm transformer blocks (no qkv bias, MLP ratio 3) runs over all
tokens. With ``pos_embedding='sine-full'`` the frozen 2-D sine embedding is added to the visual
tokens at the input and re-added before every later layer of a stack (official ``all_attn``).

State-dict names vs the official ones (for converters):
``patch_embed`` = ``patch_to_embedding``, ``keypoint_token``, ``pos_embed`` = ``pos_embedding``,
``stacks.{s}.layers.{i}.norm1`` = ``transformer.layers.{i}.0.fn.norm``,
``…attn.qkv`` = ``….0.fn.fn.to_qkv``, ``…attn.proj`` = ``….0.fn.fn.to_out.0``,
``…norm2`` = ``….1.fn.norm``, ``…mlp.fc1`` = ``….1.fn.fn.net.0``,
``…mlp.fc2`` = ``….1.fn.fn.net.3``.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

PosEmbedding = Literal["sine-full", "sine", "learnable", "none"]
POS_EMBEDDINGS = ("sine-full", "sine", "learnable", "none")


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


def patchify(features: torch.Tensor, patch_size: tuple[int, int]) -> torch.Tensor:
    """``b c (h p1) (w p2) -> b (h w) (p1 p2 c)`` (the official einops pattern, c fastest)."""
    ph, pw = patch_size
    b, c, fh, fw = features.shape
    if fh % ph or fw % pw:
        raise ValueError(f"feature map {fh}x{fw} (h x w) is not divisible by patch {ph}x{pw} (h x w)")
    h, w = fh // ph, fw // pw
    x = features.reshape(b, c, h, ph, w, pw).permute(0, 2, 4, 3, 5, 1)  # b h w p1 p2 c
    return x.reshape(b, h * w, ph * pw * c)


def attention_explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """Reference ``softmax(q k^T * scale) v`` (the official einsum implementation)."""
    attn = torch.matmul(q, k.transpose(-2, -1)) * scale
    return torch.matmul(attn.softmax(dim=-1), v)


class Attention(nn.Module):
    """Multi-head self-attention: ``qkv`` Linear without bias, ``proj`` Linear with bias.

    ``scale_with_head=True`` uses ``head_dim**-0.5``; ``False`` uses ``dim**-0.5`` (official
    TokenPose-S). Runs ``F.scaled_dot_product_attention`` with the explicit scale.
    """

    def __init__(self, dim: int, num_heads: int = 8, scale_with_head: bool = True, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale_with_head = scale_with_head
        self.scale = self.head_dim**-0.5 if scale_with_head else dim**-0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, n, _ = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return qkv[0], qkv[1], qkv[2]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q, k, v = self._qkv(x)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        out = out.transpose(1, 2).reshape(b, n, self.dim)
        return self.proj_drop(self.proj(out))

    def forward_with_attention(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Explicit path that also returns the attention maps ``(B, heads, N, N)`` (token pruning)."""
        b, n, _ = x.shape
        q, k, v = self._qkv(x)
        attn = (torch.matmul(q, k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = torch.matmul(attn, v).transpose(1, 2).reshape(b, n, self.dim)
        return self.proj_drop(self.proj(out)), attn


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
    """Pre-norm block: ``x = x + attn(norm1(x)); x = x + mlp(norm2(x))``."""

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


class TokenStack(nn.Module):
    """A stack of TokenBlocks; with ``readd_pos`` the visual tokens get ``pos`` again before layer idx > 0."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 3.0,
        scale_with_head: bool = True,
        drop: float = 0.0,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            [TokenBlock(dim, num_heads, mlp_ratio, scale_with_head, drop) for _ in range(depth)]
        )

    def forward(
        self,
        x: torch.Tensor,
        num_keypoints: int,
        pos: torch.Tensor | None = None,
        return_layers: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        outputs: list[torch.Tensor] = []
        for idx, layer in enumerate(self.layers):
            if idx > 0 and pos is not None:
                x = torch.cat((x[:, :num_keypoints], x[:, num_keypoints:] + pos), dim=1)
            x = layer(x)
            if return_layers:
                outputs.append(x)
        return outputs if return_layers else x


class TokenTransformer(nn.Module):
    """Patch embedding + keypoint tokens + position embedding + ``num_stacks`` block stacks.

    Args:
        in_channels: channels ``C`` of the feature map given to ``forward``.
        feature_size: ``(w, h)`` of that feature map (needed for the position embedding).
        patch_size: ``(ph, pw)``, **height first** as in the official mmpose-based code.
        num_keypoints: number ``K`` of keypoint tokens (placed before the visual tokens).
        pos_embedding: ``'sine-full'`` (official), ``'sine'``, ``'learnable'`` or ``'none'``.
        scale_with_head: attention scale ``head_dim**-0.5`` (True) or ``dim**-0.5`` (TokenPose-S).
        num_stacks: independent stacks run one after another (TokenPose-L uses 3 stacks of 8).

    Use ``embed`` + ``run`` (or ``run_cycles`` for SDPose) + ``split`` for custom heads;
    ``forward(features)`` returns ``(keypoint_tokens (B,K,D), visual_tokens (B,N,D))``.
    """

    def __init__(
        self,
        in_channels: int,
        feature_size: tuple[int, int],
        patch_size: tuple[int, int],
        num_keypoints: int = 17,
        dim: int = 192,
        depth: int = 12,
        num_heads: int = 8,
        mlp_ratio: float = 3.0,
        pos_embedding: PosEmbedding = "sine-full",
        scale_with_head: bool = True,
        num_stacks: int = 1,
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
    ):
        super().__init__()
        if pos_embedding not in POS_EMBEDDINGS:
            raise ValueError(f"pos_embedding must be one of {POS_EMBEDDINGS}, got {pos_embedding!r}")
        fw, fh = feature_size
        ph, pw = patch_size
        if fh % ph or fw % pw:
            raise ValueError(
                f"feature map (w={fw}, h={fh}) is not divisible by patch_size (ph={ph}, pw={pw})"
            )
        self.in_channels = in_channels
        self.feature_size = (fw, fh)
        self.patch_size = (ph, pw)
        self.grid_size = (fw // pw, fh // ph)  # (w, h) in patches
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.num_keypoints = num_keypoints
        self.dim = dim
        self.depth = depth
        self.num_stacks = num_stacks
        self.pos_embedding_type = pos_embedding

        self.patch_embed = nn.Linear(in_channels * ph * pw, dim)
        self.keypoint_token = nn.Parameter(torch.zeros(1, num_keypoints, dim))
        if pos_embedding in ("sine", "sine-full"):
            pe = sine_position_embedding(self.grid_size[1], self.grid_size[0], dim)
            self.pos_embed: nn.Parameter | None = nn.Parameter(pe, requires_grad=False)
        elif pos_embedding == "learnable":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + num_keypoints, dim))
        else:
            self.pos_embed = None
        self.emb_drop = nn.Dropout(emb_dropout)
        self.stacks = nn.ModuleList(
            [
                TokenStack(dim, depth, num_heads, mlp_ratio, scale_with_head, dropout)
                for _ in range(num_stacks)
            ]
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: trunc_normal(0.02) Linear weights and tokens, zero biases, LayerNorm (1, 0)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.keypoint_token, std=0.02)
        if self.pos_embedding_type == "learnable":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @property
    def readd_pos(self) -> torch.Tensor | None:
        """The embedding re-added before every layer idx > 0 (only for ``'sine-full'``)."""
        return self.pos_embed if self.pos_embedding_type == "sine-full" else None

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Feature map ``(B,C,H,W)`` -> input tokens ``(B, K+N, D)`` (keypoint tokens first)."""
        if features.dim() != 4 or features.shape[1] != self.in_channels:
            raise ValueError(f"expected features (B,{self.in_channels},H,W), got {tuple(features.shape)}")
        fw, fh = self.feature_size
        if features.shape[2:] != (fh, fw):
            raise ValueError(
                f"expected a {fh}x{fw} (h x w) feature map, got {features.shape[2]}x{features.shape[3]}"
            )
        x = self.patch_embed(patchify(features, self.patch_size))
        kpt = self.keypoint_token.expand(x.shape[0], -1, -1)
        if self.pos_embedding_type in ("sine", "sine-full"):
            x = torch.cat((kpt, x + self.pos_embed), dim=1)
        else:
            x = torch.cat((kpt, x), dim=1)
            if self.pos_embed is not None:
                x = x + self.pos_embed
        return self.emb_drop(x)

    def run_stack(self, x: torch.Tensor, stack: int = 0, return_layers: bool = False):
        """Run one stack on tokens ``x``; ``return_layers`` gives the list of per-layer outputs."""
        return self.stacks[stack](x, self.num_keypoints, self.readd_pos, return_layers=return_layers)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """Run all stacks in order on tokens ``x``."""
        for s in range(self.num_stacks):
            x = self.run_stack(x, s)
        return x

    def run_stacks(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Run all stacks, returning the token sequence after each stack."""
        outs = []
        for s in range(self.num_stacks):
            x = self.run_stack(x, s)
            outs.append(x)
        return outs

    def run_cycles(self, x: torch.Tensor, num_cycles: int) -> list[torch.Tensor]:
        """SDPose multi-cycled transformer: apply the (shared) stacks ``num_cycles`` times.

        Cycle ``i+1`` takes the full token sequence output by cycle ``i``; returns every cycle's output.
        """
        outs = []
        for _ in range(num_cycles):
            x = self.run(x)
            outs.append(x)
        return outs

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``(B, K+N, D)`` -> ``(keypoint_tokens (B,K,D), visual_tokens (B,N,D))``."""
        return x[:, : self.num_keypoints], x[:, self.num_keypoints :]

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.run(self.embed(features)))


# ------------------------------------------------------------------------------------------- model helpers


def pop_backbone(overrides: dict, build: Callable[[], nn.Module]) -> nn.Module:
    """Model factories: ``overrides['backbone']`` if given (popped), else ``build()``."""
    backbone = overrides.pop("backbone", None)
    return backbone if backbone is not None else build()


def pop_stem_backbone(overrides: dict) -> nn.Module:
    """StemNet-based factories: ``overrides['backbone']`` if given, else a StemNet with
    ``overrides['stem_blocks']`` Bottlenecks (default 4, the official stem; fewer for CPU-sized runs)."""
    from slimpose.models.stemnet import StemNet

    blocks = int(overrides.pop("stem_blocks", 4))
    return pop_backbone(overrides, lambda: StemNet(num_blocks=blocks))


def backbone_feature_size(
    backbone: nn.Module, input_size: tuple[int, int], model_name: str
) -> tuple[int, int]:
    """``(w, h)`` of the backbone's feature map for ``input_size`` crops (``input_size / backbone.stride``).

    Raises a ValueError naming ``model_name`` when ``input_size`` is not divisible by the stride.
    """
    stride = int(getattr(backbone, "stride", 4))
    w, h = input_size
    if w % stride or h % stride:
        raise ValueError(
            f"{model_name}: input_size (w, h) = {tuple(input_size)} "
            f"must be divisible by the stride {stride}"
        )
    return w // stride, h // stride
