"""The token encoder of TokenPose, DistilPose and SDPose: patch embedding, keypoint tokens, positions,
stacks of blocks (TokenPose, ICCV 2021, Sec. 3; official ``tokenpose_base.py`` / ``tokenbase.py``).

A CNN feature map is cut into patches and embedded into visual tokens (``FeaturePatchEmbed``); ``K``
learnable keypoint tokens are placed before them; stacks of pre-norm blocks run over all tokens. With
``pos_embedding='sine-full'`` the frozen 2-D sine embedding is added to the visual tokens at the input
and re-added before every later layer of a stack (official ``all_attn``).

The tokens travel as :class:`Tokens`: the sequence, the number of leading keypoint tokens and the grid
position of every visual token. A block that drops visual tokens returns fewer of them with their
positions, and the re-added position embedding follows the tokens that are kept (gathered with the
index), so token pruning can happen inside the stack.

State-dict names vs the official ones (for converters): ``patch_embed`` = ``patch_to_embedding``,
``keypoint_token``, ``pos_embed`` = ``pos_embedding``, ``stacks.{s}.layers.{i}.*`` = the blocks (see
``blocks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
from torch import nn

from slimpose.models.transformer.blocks import TokenBlock, init_transformer_, sine_position_embedding
from slimpose.models.transformer.patch_embed import FeaturePatchEmbed
from slimpose.models.transformer.pruning import PruningTokenBlock, TokenPruning, as_pruning

PosEmbedding = Literal["sine-full", "sine", "learnable", "none"]
POS_EMBEDDINGS = ("sine-full", "sine", "learnable", "none")


@dataclass
class Tokens:
    """A token sequence ``x`` (B, P + N, D): ``num_prefix`` leading (keypoint) tokens, then N visual tokens
    whose grid positions are ``index`` (B, N) (``None``: all grid positions, in row-major order)."""

    x: torch.Tensor
    num_prefix: int
    index: torch.Tensor | None = None

    @property
    def prefix(self) -> torch.Tensor:
        return self.x[:, : self.num_prefix]

    @property
    def visual(self) -> torch.Tensor:
        return self.x[:, self.num_prefix :]

    def with_x(self, x: torch.Tensor) -> "Tokens":
        return Tokens(x, self.num_prefix, self.index)  # called once per block: no dataclasses.replace

    def positions(self) -> torch.Tensor:
        """Grid positions (B, N) of the visual tokens."""
        if self.index is not None:
            return self.index
        b, n = self.x.shape[0], self.x.shape[1] - self.num_prefix
        return torch.arange(n, device=self.x.device).expand(b, n)

    def keep(self, which: torch.Tensor) -> "Tokens":
        """Only the visual tokens ``which`` (B, M) (indices into the current visual tokens), with their
        grid positions; the prefix tokens are always kept."""
        idx = which.long()
        vis = self.visual.gather(1, idx.unsqueeze(-1).expand(-1, -1, self.x.shape[-1]))
        return Tokens(torch.cat((self.prefix, vis), dim=1), self.num_prefix, self.positions().gather(1, idx))

    def add_positions(self, pos: torch.Tensor) -> "Tokens":
        """Visual tokens plus the position embedding ``pos`` (1, grid, D) at their own grid positions."""
        p = pos if self.index is None else pos[0][self.index]
        return self.with_x(torch.cat((self.prefix, self.visual + p), dim=1))


class TokenStack(nn.Module):
    """Blocks run one after another; with ``pos`` the visual tokens get it again before every block
    ``idx > 0`` (official ``all_attn``). ``block_fn(dim, num_heads, mlp_ratio, scale_with_head, drop)``
    builds a block (``TokenBlock``); ``prune`` ``{layer: keep_ratio}`` puts a ``PruningTokenBlock`` there."""

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 3.0,
        scale_with_head: bool = True,
        drop: float = 0.0,
        block_fn: Callable[..., nn.Module] = TokenBlock,
        prune: dict[int, float] | None = None,
    ):
        super().__init__()
        prune = prune or {}
        self.layers = nn.ModuleList(
            [PruningTokenBlock(dim, num_heads, mlp_ratio, scale_with_head, drop, keep_ratio=prune[i]) if i in prune
             else block_fn(dim, num_heads, mlp_ratio, scale_with_head, drop) for i in range(depth)]
        )

    def forward(self, tokens: Tokens, pos: torch.Tensor | None = None,
                collect: list[torch.Tensor] | None = None) -> Tokens:
        """Run every block; ``collect`` (a list) receives each block's output sequence."""
        for idx, layer in enumerate(self.layers):
            if idx > 0 and pos is not None:
                tokens = tokens.add_positions(pos)
            tokens = layer.forward_tokens(tokens)
            if collect is not None:
                collect.append(tokens.x)
        return tokens


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
        block_fn: the block class of every stack (``TokenBlock``).
        pruning: PPT token pruning (``TokenPruning``: layers, 0-based over all stacks, and keep ratio);
            ``None`` prunes nothing. A model built with pruning loads the unpruned model's weights.

    ``embed(features) -> Tokens``, ``run(tokens) -> Tokens`` (all stacks), ``run_stacks`` (the tokens after
    each stack), ``forward_intermediates`` (chosen block outputs); ``forward(features)`` = ``run(embed(...))``.
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
        block_fn: Callable[..., nn.Module] = TokenBlock,
        pruning: TokenPruning | None = None,
    ):
        super().__init__()
        if pos_embedding not in POS_EMBEDDINGS:
            raise ValueError(f"pos_embedding must be one of {POS_EMBEDDINGS}, got {pos_embedding!r}")
        self.patch_embed = FeaturePatchEmbed(in_channels, feature_size, patch_size, dim)
        self.in_channels = in_channels
        self.feature_size = self.patch_embed.feature_size
        self.patch_size = self.patch_embed.patch_size
        self.grid_size = self.patch_embed.grid_size  # (w, h) in patches
        self.num_patches = self.patch_embed.num_patches
        self.num_keypoints = num_keypoints
        self.dim = dim
        self.depth = depth
        self.num_stacks = num_stacks
        self.pos_embedding_type = pos_embedding

        self.keypoint_token = nn.Parameter(torch.zeros(1, num_keypoints, dim))
        if pos_embedding in ("sine", "sine-full"):
            pe = sine_position_embedding(self.grid_size[1], self.grid_size[0], dim)
            self.pos_embed: nn.Parameter | None = nn.Parameter(pe, requires_grad=False)
        elif pos_embedding == "learnable":
            self.pos_embed = nn.Parameter(torch.zeros(1, self.num_patches + num_keypoints, dim))
        else:
            self.pos_embed = None
        self.emb_drop = nn.Dropout(emb_dropout)
        self.pruning = pruning = as_pruning(pruning)
        if pruning is not None and pruning.layers and max(pruning.layers) >= depth * num_stacks:
            raise ValueError(f"pruning layer {max(pruning.layers)} is past the last of {depth * num_stacks} blocks")
        prune = {} if pruning is None else {i: pruning.keep_ratio for i in pruning.layers}
        self.stacks = nn.ModuleList(
            [TokenStack(dim, depth, num_heads, mlp_ratio, scale_with_head, dropout, block_fn,
                        {i - s * depth: r for i, r in prune.items() if s * depth <= i < (s + 1) * depth})
             for s in range(num_stacks)]
        )
        self.init_weights()

    def init_weights(self) -> None:
        """Official init: trunc_normal(0.02) Linear weights and tokens, zero biases, LayerNorm (1, 0)."""
        init_transformer_(self)
        nn.init.trunc_normal_(self.keypoint_token, std=0.02)
        if self.pos_embedding_type == "learnable":
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    @property
    def readd_pos(self) -> torch.Tensor | None:
        """The embedding re-added before every layer idx > 0 (only for ``'sine-full'``)."""
        return self.pos_embed if self.pos_embedding_type == "sine-full" else None

    def embed(self, features: torch.Tensor) -> Tokens:
        """Feature map ``(B,C,H,W)`` -> input tokens (keypoint tokens first, positions on visual tokens)."""
        x = self.patch_embed(features)
        kpt = self.keypoint_token.expand(x.shape[0], -1, -1)
        if self.pos_embedding_type in ("sine", "sine-full"):
            x = torch.cat((kpt, x + self.pos_embed), dim=1)
        else:
            x = torch.cat((kpt, x), dim=1)
            if self.pos_embed is not None:
                x = x + self.pos_embed
        return Tokens(self.emb_drop(x), self.num_keypoints)

    def run(self, tokens: Tokens, collect: list[torch.Tensor] | None = None) -> Tokens:
        """Run all stacks in order; ``collect`` receives every block's output."""
        for stack in self.stacks:
            tokens = stack(tokens, self.readd_pos, collect)
        return tokens

    def run_stacks(self, tokens: Tokens) -> list[Tokens]:
        """The tokens after each stack (TokenPose-L keypoint-token fusion)."""
        outs = []
        for stack in self.stacks:
            tokens = stack(tokens, self.readd_pos)
            outs.append(tokens)
        return outs

    def forward_intermediates(self, features: torch.Tensor, indices: Sequence[int] | None = None
                              ) -> tuple[Tokens, list[torch.Tensor]]:
        """Final tokens and the outputs of blocks ``indices`` (0-based over all stacks, negative from the
        end; ``None``: every block), timm style."""
        collect: list[torch.Tensor] = []
        final = self.run(self.embed(features), collect)
        if indices is None:
            return final, collect
        n = len(collect)
        for i in indices:
            if not -n <= i < n:
                raise IndexError(f"block index {i} out of range for {n} blocks")
        return final, [collect[i] for i in indices]

    def forward(self, features: torch.Tensor) -> Tokens:
        return self.run(self.embed(features))
