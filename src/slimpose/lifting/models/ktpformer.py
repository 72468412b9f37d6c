"""KTPFormer (Peng et al., CVPR 2024, "KTPFormer: Kinematics and Trajectory Prior Knowledge-Enhanced
Transformer for 3D Human Pose Estimation"): MixSTE whose first block pair is replaced by two prior-attention
blocks.

Re-implemented from the official code (JihuaPeng/KTPFormer ``common/model_ktpformer.py``, built by
``run_ktpformer.py`` with ``-f 243 -cs 512 -dep 7``):

* **KPA block** (``kpattention``), on each frame's J joints: the graph layer (``attn.kpa``: a learnable graph
  convolution over the kinematic graph on the raw 2-D joints, 2 -> C, BatchNorm, ReLU) replaces MixSTE's
  linear joint embedding; then ``+ Spatial_pos_embed`` (1, J, C); then multi-head self-attention whose Q, K, V
  are linear maps of the graph features (``norm1``, ``qkv``, ``proj``) with a residual from the graph features;
  then the block's MLP (``norm2``, ``mlp``) with a residual; then MixSTE's ``Spatial_norm``.
* **TPA block** (``tpattention``), on each joint's F frames: two graph layers over the frame chain (C -> C,
  with a residual around both: ``attn.tpa.gconv1/2``), ``+ Temporal_pos_embed`` (1, F, C), the same attention
  and MLP, then ``Temporal_norm``.
* then ``depth`` (7) MixSTE block pairs (``STEblocks`` / ``TTEblocks``, each followed by its norm) and the head.

8 spatial and 8 temporal attention layers in all, as MixSTE's. The trajectory graph has ``num_frames`` nodes,
so the weights are tied to the clip length. Drop path: ``linspace(0, rate, depth + 1)``, 0 for the two prior
blocks, entry ``i + 1`` for block pair i (the official rule; 0.1 in training). State-dict keys are the
official ones (the checkpoints hold them under ``model_pos`` with DataParallel's ``module.`` prefix).

``prior_attention=False`` gives the ablation without them: the two prior blocks become a MixSTE block pair
with MixSTE's linear embedding (that is MixSTE with ``depth + 1`` pairs).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from slimpose.lifting.data.h36m import H36M_PARENTS
from slimpose.lifting.models.graph import GraphConvBNReLU, StackedGraphLayers, chain_parents, graph_adjacency
from slimpose.lifting.models.hot import HoTMixSTE, build_hot
from slimpose.lifting.models.mixste import MixSTE, drop_path_rates, released_cfg
from slimpose.lifting.models.pruning import TokenPruner, TokenRecovery
from slimpose.models.transformer.blocks import Attention, DropPath, Mlp


class PriorAttention(Attention):
    """Self-attention on graph features: ``x = graph(x) + pos``; ``x + drop_path(attention(norm1(x)))``. The
    official ``KPAttention`` (``graph`` = ``kpa``) and ``TPAttention`` (``tpa``); ``qkv`` / ``proj`` as
    ``Attention``'s."""

    def __init__(self, graph_name: str, graph: nn.Module, pos_name: str, num_tokens: int, dim: int,
                 num_heads: int = 8, qkv_bias: bool = True, drop: float = 0.0, drop_path: float = 0.0) -> None:
        super().__init__(dim, num_heads, scale_with_head=True, proj_drop=drop, qkv_bias=qkv_bias)
        self.graph_name, self.pos_name = graph_name, pos_name
        self.add_module(graph_name, graph)
        self.register_parameter(pos_name, nn.Parameter(torch.zeros(1, num_tokens, dim)))
        self.pos_drop = nn.Dropout(drop)
        self.norm1 = nn.LayerNorm(dim)  # eps 1e-5: the official blocks pass a plain nn.LayerNorm to the attention
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = getattr(self, self.graph_name)(x)
        x = self.pos_drop(x + getattr(self, self.pos_name))
        return x + self.drop_path(super().forward(self.norm1(x), attn_mask))


class PriorBlock(nn.Module):
    """``attn`` (a ``PriorAttention``, its residual inside) then ``x + drop_path(mlp(norm2(x)))``: the official
    ``KPA_Block`` / ``TPA_Block``."""

    def __init__(self, attn: PriorAttention, dim: int, mlp_ratio: float = 2.0, drop: float = 0.0,
                 drop_path: float = 0.0) -> None:
        super().__init__()
        self.attn = attn
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.attn(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


def kpa_block(dim: int, num_joints: int = 17, parents: Sequence[int] = H36M_PARENTS, in_chans: int = 2,
              num_heads: int = 8, mlp_ratio: float = 2.0, qkv_bias: bool = True, drop: float = 0.0) -> PriorBlock:
    """Kinematics prior attention: the graph layer over the skeleton ``parents`` on the raw joints."""
    if len(parents) != num_joints:
        raise ValueError(f"{len(parents)} parents for {num_joints} joints")
    graph = GraphConvBNReLU(in_chans, dim, graph_adjacency(parents))
    attn = PriorAttention("kpa", graph, "Spatial_pos_embed", num_joints, dim, num_heads, qkv_bias, drop)
    return PriorBlock(attn, dim, mlp_ratio, drop)


def tpa_block(dim: int, num_frames: int, num_heads: int = 8, mlp_ratio: float = 2.0, qkv_bias: bool = True,
              drop: float = 0.0) -> PriorBlock:
    """Trajectory prior attention: two graph layers over the chain of ``num_frames`` frames, with a residual."""
    graph = StackedGraphLayers(dim, graph_adjacency(chain_parents(num_frames)))
    attn = PriorAttention("tpa", graph, "Temporal_pos_embed", num_frames, dim, num_heads, qkv_bias, drop)
    return PriorBlock(attn, dim, mlp_ratio, drop)


class KTPFormer(MixSTE):
    """KTPFormer: (B, T, J, 2) -> (B, T, J, 3). ``depth`` MixSTE pairs after the KPA and TPA blocks; ``parents``:
    the kinematic graph (H36M-17 by default); ``prior_attention=False``: the ablation (module docstring).
    ``forward_stem`` is the two prior blocks, so every MixSTE pair follows it (``first_pair = 0``)."""

    first_pair = 0

    def __init__(self, num_frames: int = 243, num_joints: int = 17, in_chans: int = 2, dim: int = 512,
                 depth: int = 7, num_heads: int = 8, mlp_ratio: float = 2.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.1, out_chans: int = 3,
                 parents: Sequence[int] = H36M_PARENTS, prior_attention: bool = True) -> None:
        rates = drop_path_rates(drop_path_rate, depth + 1)
        super().__init__(num_frames=num_frames, num_joints=num_joints, in_chans=in_chans, dim=dim, depth=depth,
                         num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                         out_chans=out_chans, block_drop_path=rates[1:], embed=not prior_attention)
        self.prior_attention = bool(prior_attention)
        if self.prior_attention:
            self.kpattention = kpa_block(dim, num_joints, parents, in_chans, num_heads, mlp_ratio, qkv_bias,
                                         drop_rate)
            self.tpattention = tpa_block(dim, num_frames, num_heads, mlp_ratio, qkv_bias, drop_rate)
        else:  # the ablation: a plain MixSTE pair (its own blocks) in their place
            self.kpattention = MixSTE.block(dim, num_heads, mlp_ratio, rates[0], qkv_bias, drop_rate)
            self.tpattention = MixSTE.block(dim, num_heads, mlp_ratio, rates[0], qkv_bias, drop_rate)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The two prior blocks, each followed by MixSTE's norm: (B, T, J, 2) -> (B, T, J, C)."""
        self.check_input(x)
        b, f, j, c = x.shape
        x = x.reshape(b * f, j, c)
        if not self.prior_attention:
            x = self.pos_drop(self.Spatial_patch_to_embedding(x) + self.Spatial_pos_embed)
        x = self.Spatial_norm(self.kpattention(x))
        x = x.reshape(b, f, j, self.dim).permute(0, 2, 1, 3).reshape(b * j, f, self.dim)
        if not self.prior_attention:
            x = self.pos_drop(x + self.Temporal_pos_embed)
        x = self.Temporal_norm(self.tpattention(x))
        return x.reshape(b, j, f, self.dim).permute(0, 2, 1, 3)



def ktpformer(num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 7,
              **overrides) -> KTPFormer:
    """KTPFormer as trained on Human3.6M (``run_ktpformer.py -f 243 -cs 512 -dep 7``, drop path 0.1). Overrides
    (``num_heads``, ``parents``, ``prior_attention``, ...) go to ``KTPFormer``."""
    return KTPFormer(num_frames=num_frames, num_joints=num_joints, dim=dim, depth=depth, **released_cfg(**overrides))




class HoTKTPFormer(HoTMixSTE, KTPFormer):
    """HoT on KTPFormer (the paper's plug-and-play claim): the KPA and TPA blocks in front, then KTPFormer's
    MixSTE pairs with HoT's pruner before pair ``layer_index`` and its recovery after the last pair. The
    arguments are ``HoTMixSTE``'s and ``KTPFormer``'s (``parents``, ``prior_attention``)."""


def hot_ktpformer(num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 7,
                  num_tokens: int = 81, layer_index: int = 2, pruner: str | TokenPruner = "tpc",
                  recovery: str | TokenRecovery = "tra", **overrides) -> HoTKTPFormer:
    """HoT-KTPFormer: TPC keeps ``num_tokens`` (81 of 243) frames before KTPFormer pair ``layer_index`` (2: the
    prior pair and pairs 0, 1 run on every frame, 3 of the 8 pairs, as in HoT-MixSTE), TRA restores them.
    A slimpose composition (no official HoT-KTPFormer exists); the choice of 2 is documented there."""
    return build_hot(HoTKTPFormer, num_frames, num_joints, dim, depth, num_tokens, layer_index, pruner, recovery,
                     **overrides)


__all__ = ["HoTKTPFormer", "KTPFormer", "PriorAttention", "PriorBlock", "hot_ktpformer", "kpa_block", "ktpformer",
           "tpa_block"]
