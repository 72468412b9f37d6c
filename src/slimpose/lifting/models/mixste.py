"""MixSTE (Zhang et al., CVPR 2022): seq2seq 2-D -> 3-D lifting with alternating spatial and temporal
transformer blocks.

Re-implemented from the official code (JinluZhang1126/MixSTE ``common/model_cross.py: MixSTE2``, built by
``run.py`` with ``-cs 512 -dep 8``; the same trunk is NationalGAILab/HoT ``model/mixste/mixste.py``):

* ``Spatial_patch_to_embedding`` Linear(2, C) on every joint of every frame, ``Spatial_pos_embed`` (1, J, C)
  added once, before the first spatial block;
* ``STEblocks.{i}`` (attention over the J joints of one frame) and ``TTEblocks.{i}`` (attention over the T
  frames of one joint) alternate S0, T0, S1, T1, ...; every block is pre-norm (LayerNorm eps 1e-6), 8 heads,
  ``qkv`` with bias, MLP ratio 2, drop path rising linearly from 0 to 0.1 (the same rate for S_i and T_i);
* ``Spatial_norm`` after every spatial block, ``Temporal_norm`` after every temporal block (one shared
  LayerNorm each, eps 1e-6); ``Temporal_pos_embed`` (1, T, C) added once, before the first temporal block;
* ``head`` = LayerNorm (eps 1e-5, the torch default the official code keeps) + Linear(C, 3) per joint per frame.

Input (B, T, J, 2), output (B, T, J, 3). State-dict keys are the official ones (MixSTE's checkpoint holds
them under ``model_pos`` with DataParallel's ``module.`` prefix; HoT's ``mixste`` checkpoint is the raw
state dict). Initialisation is the official one: torch's defaults, position embeddings zero.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from slimpose.lifting.models.spec import SequenceInput
from slimpose.models.transformer.blocks import DropPath
from slimpose.models.vitpose import ViTBlock


# MixSTE's ``Block`` is ViTPose's pre-norm block (norm1, attn.qkv/proj, norm2, mlp.fc1/fc2; the same keys)
MixBlock = ViTBlock


def drop_path_rates(rate: float, depth: int) -> list[float]:
    """The official ``torch.linspace(0, rate, depth)`` values (computed on the CPU, so that a model can be
    built under ``torch.device("meta")``)."""
    return torch.linspace(0, rate, depth, device="cpu").tolist()


class MixSTE(nn.Module):
    """MixSTE (``MixSTE2`` of the official code): (B, T, J, 2) -> (B, T, J, 3).

    ``forward_features`` gives the (B, T, J, C) features after the last temporal block and its norm,
    ``forward_head`` the 3-D poses from them. ``T`` must equal ``num_frames`` (the temporal position
    embedding has that length) and ``J`` ``num_joints``. ``forward_stem`` runs the embedding and block pair 0;
    ``first_pair`` (1) is the first pair after it (KTPFormer's stem is its own two blocks: 0).
    """

    first_pair = 1

    def __init__(self, num_frames: int = 243, num_joints: int = 17, in_chans: int = 2, dim: int = 512,
                 depth: int = 8, num_heads: int = 8, mlp_ratio: float = 2.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, drop_path_rate: float = 0.1, out_chans: int = 3,
                 block_drop_path: Sequence[float] | None = None, embed: bool = True) -> None:
        """``block_drop_path``: the drop-path rate of each block pair (default ``linspace(0, drop_path_rate,
        depth)``); ``embed=False`` leaves out the joint embedding and the two position embeddings (for a
        subclass with its own stem: KTPFormer)."""
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.num_frames = int(num_frames)
        self.num_joints = int(num_joints)
        self.in_chans = int(in_chans)
        self.dim = int(dim)
        self.depth = int(depth)
        if embed:
            self.Spatial_patch_to_embedding = nn.Linear(in_chans, dim)
            self.Spatial_pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim))
            self.Temporal_pos_embed = nn.Parameter(torch.zeros(1, num_frames, dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = list(block_drop_path) if block_drop_path is not None else drop_path_rates(drop_path_rate, depth)
        if len(dpr) != depth:
            raise ValueError(f"block_drop_path has {len(dpr)} rates for {depth} block pairs")
        self.STEblocks = nn.ModuleList(
            self.block(dim, num_heads, mlp_ratio, dpr[i], qkv_bias, drop_rate) for i in range(depth))
        self.TTEblocks = nn.ModuleList(
            self.block(dim, num_heads, mlp_ratio, dpr[i], qkv_bias, drop_rate) for i in range(depth))
        self.Spatial_norm = nn.LayerNorm(dim, eps=1e-6)
        self.Temporal_norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out_chans))

    @staticmethod
    def block(dim: int, num_heads: int, mlp_ratio: float, drop_path: float, qkv_bias: bool = True,
              drop: float = 0.0) -> nn.Module:
        """One spatial or temporal block (pre-norm, LayerNorm eps 1e-6)."""
        return MixBlock(dim, num_heads, mlp_ratio, drop_path, qkv_bias=qkv_bias, drop=drop)

    @property
    def input_spec(self) -> SequenceInput:
        return SequenceInput(self.num_frames, self.num_joints, self.in_chans)

    def check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 4 or tuple(x.shape[1:]) != (self.num_frames, self.num_joints, self.in_chans):
            raise ValueError(f"{type(self).__name__} takes (B, {self.num_frames}, {self.num_joints}, "
                             f"{self.in_chans}) keypoint sequences, got {tuple(x.shape)}")

    def spatial(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """``STEblocks[i]`` + ``Spatial_norm`` on (B, F, J, C): attention over the joints of each frame."""
        b, f, j, c = x.shape
        x = self.Spatial_norm(self.STEblocks[i](x.reshape(b * f, j, c)))
        return x.reshape(b, f, j, c)

    def temporal(self, x: torch.Tensor, i: int, pos: torch.Tensor | None = None) -> torch.Tensor:
        """(``pos`` added, then) ``TTEblocks[i]`` + ``Temporal_norm`` on (B, F, J, C): attention over the
        frames of each joint."""
        b, f, j, c = x.shape
        x = x.permute(0, 2, 1, 3).reshape(b * j, f, c)
        if pos is not None:
            x = self.pos_drop(x + pos)
        x = self.Temporal_norm(self.TTEblocks[i](x))
        return x.reshape(b, j, f, c).permute(0, 2, 1, 3)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The embeddings and the first block pair: (B, T, J, 2) -> (B, T, J, C)."""
        self.check_input(x)
        b, f, j, _ = x.shape
        x = self.Spatial_patch_to_embedding(x.reshape(b * f, j, self.in_chans))
        x = self.pos_drop(x + self.Spatial_pos_embed)
        x = self.Spatial_norm(self.STEblocks[0](x)).reshape(b, f, j, self.dim)
        return self.temporal(x, 0, pos=self.Temporal_pos_embed)

    def forward_block(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Block pair ``i`` (spatial then temporal, each with its norm) on (B, F, J, C)."""
        return self.temporal(self.spatial(x, i), i)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        for i in range(self.first_pair, self.depth):
            x = self.forward_block(x, i)
        return x

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def released_cfg(**overrides) -> dict:
    """The trunk settings of the released MixSTE-family models (8 heads, MLP ratio 2, qkv bias, drop path 0.1),
    with ``overrides`` applied: what every lifting factory starts from."""
    return {"num_heads": 8, "mlp_ratio": 2.0, "qkv_bias": True, "drop_path_rate": 0.1, **overrides}


def mixste(num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 8, **overrides) -> MixSTE:
    """MixSTE as trained on Human3.6M (``run.py -f 243 -cs 512 -dep 8``): 33,783,811 parameters, 138.6 G
    linear-layer MACs per 243-frame clip. Overrides (``num_heads``, ``mlp_ratio``, ``drop_path_rate``, ...)
    go to ``MixSTE``."""
    return MixSTE(num_frames=num_frames, num_joints=num_joints, dim=dim, depth=depth, **released_cfg(**overrides))


__all__ = ["DropPath", "MixBlock", "MixSTE", "drop_path_rates", "mixste", "released_cfg"]
