"""EViTPose (Kinfu & Vidal, BMVC 2023): ViTPose whose learnable joint tokens choose the patches that go on.

One learnable token per keypoint (``joint_tokens`` (1, K, C), trunc-normal 0.02, no position embedding) is
put before the patch tokens of a ViTPose encoder. At the pruning layers, after the attention residual and
before the MLP (the PPT placement, so the MLP of that layer already runs on fewer tokens), every patch is
scored by the attention the joint tokens pay to it, heads averaged, summed over the joints (the PPT score,
``slimpose.models.transformer.pruning``), and only the ``ceil(r N)`` best go on. The patches that leave
are updated once by the joint tokens (``leave_update='joint'``: they attend to the joint tokens of the end
of that layer with the layer's own attention weights, no new parameters) and are then kept aside. The
heatmap decoder needs the full 16x12 grid, so before ``last_norm`` every grid position gets its token:
the kept ones their final value, a pruned one its value when it left (``fill='leaving'``) or zeros
(``fill='zero'``).

What the paper leaves open (no code was published; see docs/token_pruning.md) are parameters here: the
pruning layers, the keep ratio, the leaving update and the fill. The defaults, chosen and measured in
``benchmarks/token_pruning.py``: PPT's layers 3, 6, 9 with keep 0.5 (192 -> 96 -> 48 -> 24 patches: 31% /
37% fewer GFLOPs for S / B, inside the paper's 30-44%; keep 0.7 saves only 19% / 22%, as the 17 joint tokens
cost ~9% in every layer), leaving update by the joint tokens, fill with the leaving values. With ``keep_ratio=1`` the model
is exactly ViTPose with joint tokens (``ViTPoseBackbone.forward(images, prefix=joint_tokens)``). State-dict
keys are ViTPose's plus ``backbone.joint_tokens``, so ViTPose checkpoints load (the joint tokens are new).
"""

from __future__ import annotations

import torch
from torch import nn

from slimpose.models.transformer.encoder import Tokens
from slimpose.models.transformer.pruning import (
    PruningBlock, check_keep_ratio, prefix_attention_scores, split_visual,
)
from slimpose.models.vitpose import VITPOSE_SIZES, ViTBlock, ViTPose, ViTPoseBackbone, prepend

LEAVE_UPDATES = ("joint", "none")
FILLS = ("leaving", "zero")


class JointPruningBlock(PruningBlock, ViTBlock):
    """A ``ViTBlock`` keeping the ``ceil(keep_ratio N)`` patches the ``num_joints`` joint tokens (the last prefix
    tokens) attend to most; returns the kept tokens and the leaving patches with their grid positions. Same
    parameters as ``ViTBlock``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0,
                 keep_ratio: float = 0.5, leave_update: str = "joint", num_joints: int = 17) -> None:
        super().__init__(dim, num_heads, mlp_ratio, drop_path)
        if leave_update not in LEAVE_UPDATES:
            raise ValueError(f"leave_update must be one of {LEAVE_UPDATES}, got {leave_update!r}")
        self.keep_ratio = check_keep_ratio(keep_ratio)
        self.leave_update = leave_update
        self.num_joints = int(num_joints)

    def extra_repr(self) -> str:
        return f"keep_ratio={self.keep_ratio}, leave_update={self.leave_update!r}, num_joints={self.num_joints}"

    def forward_tokens(self, tokens: Tokens) -> tuple[Tokens, tuple[torch.Tensor, torch.Tensor] | None]:
        if self.keep_ratio >= 1.0:
            return tokens.with_x(self(tokens.x)), None
        tokens, attn = self.attend(tokens, self.drop_path)
        scores = prefix_attention_scores(attn, tokens.num_prefix, self.num_joints)
        kept, dropped = split_visual(scores, self.keep_ratio)
        leaving = tokens.keep(dropped)
        tokens = tokens.keep(kept)
        tokens = tokens.with_x(tokens.x + self.drop_path(self.mlp(self.norm2(tokens.x))))
        y = leaving.visual
        if self.leave_update == "joint":
            joints = tokens.prefix[:, tokens.num_prefix - self.num_joints:]
            y = y + self.drop_path(self.attn.forward_cross(self.norm1(y), self.norm1(joints)))
        return tokens, (y, leaving.positions())


class EViTPoseBackbone(ViTPoseBackbone):
    """ViTPose encoder with ``num_joints`` joint tokens and ``JointPruningBlock`` s at ``prune_layers``."""

    def __init__(self, image_size: tuple[int, int] = (192, 256), dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0, patch_size: int = 16,
                 padding: int = 2, num_joints: int = 17, prune_layers: tuple[int, ...] = (3, 6, 9),
                 keep_ratio: float = 0.5, leave_update: str = "joint", fill: str = "leaving") -> None:
        if fill not in FILLS:
            raise ValueError(f"fill must be one of {FILLS}, got {fill!r}")
        layers = sorted({int(i) for i in prune_layers})
        if layers and not 0 <= layers[0] <= layers[-1] < depth:
            raise ValueError(f"prune_layers {tuple(prune_layers)} must lie in [0, {depth})")

        def block(i: int, rate: float) -> nn.Module:  # same parameters as a ViTBlock (ViTPose checkpoints load)
            if i in layers:
                return JointPruningBlock(dim, num_heads, mlp_ratio, rate, keep_ratio, leave_update, num_joints)
            return ViTBlock(dim, num_heads, mlp_ratio, rate)

        super().__init__(image_size, dim, depth, num_heads, mlp_ratio, drop_path_rate, patch_size, padding, block)
        self.prune_layers = tuple(layers)
        self.fill = fill
        self.joint_tokens = nn.Parameter(torch.zeros(1, num_joints, dim))
        nn.init.trunc_normal_(self.joint_tokens, std=0.02)

    def forward(self, images: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        x = self.embed(images)
        # extra tokens (a knowledge token) go before the joint tokens, never pruned
        joints = prepend(prefix, self.joint_tokens.expand(x.shape[0], -1, -1))
        tokens = Tokens(torch.cat((joints, x), dim=1), joints.shape[1])
        left: list[tuple[torch.Tensor, torch.Tensor]] = []
        for block in self.blocks:
            if isinstance(block, JointPruningBlock):
                tokens, leaving = block.forward_tokens(tokens)
                if leaving is not None:
                    left.append(leaving)
            else:
                tokens = tokens.with_x(block(tokens.x))
        return self.to_map(self.full_grid(tokens, left))

    def full_grid(self, tokens: Tokens, left: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        """Patch tokens (B, N, C) in grid order: the kept ones at their positions, the pruned ones filled."""
        if not left:
            return tokens.visual
        values = [tokens.visual] + [y if self.fill == "leaving" else torch.zeros_like(y) for y, _ in left]
        where = torch.cat([tokens.positions()] + [p for _, p in left], dim=1)
        values = torch.cat(values, dim=1)
        out = torch.zeros_like(values)
        return out.scatter(1, where.unsqueeze(-1).expand(-1, -1, values.shape[-1]), values)


def _evitpose(size: str, num_keypoints: int, input_size: tuple[int, int], overrides: dict) -> ViTPose:
    dim, depth, heads, dpr = VITPOSE_SIZES[size]
    o = dict(overrides)
    decoder = o.pop("decoder", "classic")
    cfg = dict(dim=dim, depth=depth, num_heads=heads, drop_path_rate=dpr, num_joints=num_keypoints)
    cfg.update(o)
    return ViTPose(EViTPoseBackbone(tuple(input_size), **cfg), num_keypoints, tuple(input_size), decoder)


def evitpose_s(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> ViTPose:
    """EViTPose-S: ViTPose-S with 17 joint tokens, keeping ``ceil(0.5 N)`` patches at blocks 3, 6, 9
    (192 -> 96 -> 48 -> 24; 3.61 GFLOPs vs 5.25). ``overrides``: ``keep_ratio``, ``prune_layers``, ``leave_update``, ``fill``,
    ``decoder`` and ``ViTPoseBackbone`` keywords."""
    return _evitpose("s", num_keypoints, input_size, overrides)


def evitpose_b(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> ViTPose:
    """EViTPose-B: ViTPose-B with 17 joint tokens, keep 0.5 at blocks 3, 6, 9 (11.28 GFLOPs vs 17.84; overrides
    as ``evitpose_s``)."""
    return _evitpose("b", num_keypoints, input_size, overrides)
