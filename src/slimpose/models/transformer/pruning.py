"""Token pruning by keypoint-token attention (PPT, Ma et al., ECCV 2022; EViTPose's joint tokens).

PPT (HowieMa/PPT ``tokenpose_base.py``): at the pruning layers, after the attention residual and before
the MLP, every visual token is scored by the attention the keypoint (prefix) tokens pay to it, heads
averaged and summed over the keypoints,

    s_n = sum_j (1 / H) sum_h A[h, j, P + n]        (j < P keypoint tokens, n over visual tokens),

and only the ``ceil(r N)`` best of the N current visual tokens go on (``torch.topk`` order, as official),
with their grid positions, so a re-added position embedding follows them. Applied at several layers the
ratio compounds (``r^3`` after the third). The prefix tokens are never pruned. ``k`` is a Python integer
computed from the static token count, so an exported graph has a static top-k.

``PruningTokenBlock`` is a ``TokenBlock`` with the same parameters (so checkpoints of the unpruned model
load unchanged); with ``keep_ratio >= 1`` it is exactly a ``TokenBlock``. ``TokenPruning`` says where a
``TokenTransformer`` builds them; ``set_keep_ratio`` changes the ratio of a built model (keep-ratio sweeps).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from slimpose.models.transformer.blocks import TokenBlock

if TYPE_CHECKING:
    from slimpose.models.transformer.encoder import Tokens


@dataclass(frozen=True)
class TokenPruning:
    """Where and how much to prune: ``layers`` are 0-based block indices over all stacks (PPT: 3, 6, 9),
    ``keep_ratio`` the fraction of the current visual tokens each of them keeps (PPT: 0.7)."""

    layers: tuple[int, ...] = (3, 6, 9)
    keep_ratio: float = 0.7

    def __post_init__(self) -> None:
        check_keep_ratio(self.keep_ratio)
        if any(int(i) < 0 for i in self.layers):
            raise ValueError(f"pruning layers must be >= 0, got {self.layers}")
        object.__setattr__(self, "layers", tuple(sorted({int(i) for i in self.layers})))


def as_pruning(value: "TokenPruning | dict | None") -> "TokenPruning | None":
    """A ``TokenPruning`` from itself, a dict ``{'layers': [...], 'keep_ratio': r}`` (YAML overrides) or None."""
    if value is None or isinstance(value, TokenPruning):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"layers", "keep_ratio"}
        if unknown:
            raise ValueError(f"pruning: unknown keys {sorted(unknown)} (layers, keep_ratio)")
        return TokenPruning(tuple(value.get("layers", (3, 6, 9))), float(value.get("keep_ratio", 0.7)))
    raise ValueError(f"pruning must be a TokenPruning, a dict or None, got {type(value).__name__}")


def check_keep_ratio(ratio: float) -> float:
    if not 0.0 < float(ratio) <= 1.0:
        raise ValueError(f"keep_ratio must be in (0, 1], got {ratio}")
    return float(ratio)


def num_kept(n: int, keep_ratio: float) -> int:
    """``ceil(n * keep_ratio)`` (at least 1): the visual tokens a pruning layer keeps (official formula)."""
    return max(1, math.ceil(n * keep_ratio))


def prefix_attention_scores(attn: torch.Tensor, num_prefix: int, num_scoring: int | None = None) -> torch.Tensor:
    """Attention maps (B, H, T, T) -> the score (B, N) of each visual token: the prefix -> visual attention,
    heads averaged (``sum / H``, as official), summed over the last ``num_scoring`` prefix tokens (default:
    all of them: the keypoint / joint tokens; a knowledge token put before the joint tokens does not vote)."""
    heads = attn.shape[1]
    first = 0 if num_scoring is None else num_prefix - num_scoring
    return (attn[:, :, first:num_prefix, num_prefix:].sum(1) / heads).sum(1)


def select_visual(scores: torch.Tensor, keep_ratio: float) -> torch.Tensor:
    """Indices (B, ceil(r N)) of the best-scored visual tokens (``topk`` order: best first)."""
    return scores.topk(num_kept(scores.shape[1], keep_ratio), dim=1).indices


def split_visual(scores: torch.Tensor, keep_ratio: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(kept, dropped)`` indices of the visual tokens: one full ``topk`` (static sizes, ONNX-friendly),
    the best ``ceil(r N)`` first, the rest (best to worst) dropped."""
    order = scores.topk(scores.shape[1], dim=1).indices
    k = num_kept(scores.shape[1], keep_ratio)
    return order[:, :k], order[:, k:]


def visual_at(visual: torch.Tensor, index: torch.Tensor | None, positions: torch.Tensor | None) -> torch.Tensor:
    """Visual tokens ``visual`` (B, N, D) at grid positions ``index`` (B, N) (``None``: all, in grid order),
    taken at the grid positions ``positions`` (B, M) (each must be among ``index``); ``positions=None``
    returns ``visual`` unchanged. Distillation terms compare a pruned token set with a fuller one this way."""
    if positions is None:
        return visual
    if index is None:
        return visual.gather(1, positions.long().unsqueeze(-1).expand(-1, -1, visual.shape[-1]))
    grid = int(max(int(index.max()), int(positions.max()))) + 1
    where = torch.full((visual.shape[0], grid), -1, dtype=torch.long, device=visual.device)
    where.scatter_(1, index.long(), torch.arange(index.shape[1], device=visual.device).expand_as(index))
    slot = where.gather(1, positions.long())
    if bool((slot < 0).any()):
        raise ValueError("visual_at: a wanted grid position is not among the given tokens")
    return visual.gather(1, slot.unsqueeze(-1).expand(-1, -1, visual.shape[-1]))


class PruningBlock:
    """What every pruning block shares (``PruningTokenBlock``, EViTPose's ``JointPruningBlock``): its
    ``keep_ratio`` and the attention step that also returns the maps. Mixed into a block class with ``norm1``
    and ``attn`` (an ``Attention``)."""

    keep_ratio: float

    def extra_repr(self) -> str:
        return f"keep_ratio={self.keep_ratio}"

    def attend(self, tokens: "Tokens", drop_path: nn.Module | None = None) -> tuple["Tokens", torch.Tensor]:
        """``x + attn(norm1(x))`` on every token (the explicit path) and the attention maps (B, H, T, T)."""
        out, attn = self.attn.forward_with_attention(self.norm1(tokens.x))
        return tokens.with_x(tokens.x + (out if drop_path is None else drop_path(out))), attn


class PruningTokenBlock(PruningBlock, TokenBlock):
    """A ``TokenBlock`` that keeps the ``ceil(keep_ratio N)`` visual tokens the prefix tokens attend to most,
    between its attention and its MLP (PPT). Same parameters as ``TokenBlock``."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 3.0, scale_with_head: bool = True,
                 drop: float = 0.0, keep_ratio: float = 0.7):
        super().__init__(dim, num_heads, mlp_ratio, scale_with_head, drop)
        self.keep_ratio = check_keep_ratio(keep_ratio)

    def forward_tokens(self, tokens: "Tokens") -> "Tokens":
        if self.keep_ratio >= 1.0:
            return super().forward_tokens(tokens)
        tokens, attn = self.attend(tokens)
        tokens = tokens.keep(select_visual(prefix_attention_scores(attn, tokens.num_prefix), self.keep_ratio))
        return tokens.with_x(tokens.x + self.mlp(self.norm2(tokens.x)))


def set_keep_ratio(model: nn.Module, keep_ratio: float) -> int:
    """Set the ratio of every pruning block of ``model``; returns how many there are (0: it does not prune).
    (``TokenTransformer.pruning`` keeps the schedule the model was built with.)"""
    r = check_keep_ratio(keep_ratio)
    blocks = [m for m in model.modules() if isinstance(m, PruningBlock)]
    for m in blocks:
        m.keep_ratio = r
    return len(blocks)


def pruning_layers(model: nn.Module) -> list[tuple[str, float]]:
    """``(module name, keep_ratio)`` of every pruning block of ``model``, in order."""
    return [(name, m.keep_ratio) for name, m in model.named_modules() if isinstance(m, PruningBlock)]
