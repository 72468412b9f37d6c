"""Graph parts of KTPFormer's prior attention (Peng et al., CVPR 2024): adjacency from a skeleton or a frame
chain, and the learnable graph convolution.

As the official code (JihuaPeng/KTPFormer ``common/graph_utils.py``, ``common/model_ktpformer.py``):

* ``graph_adjacency(parents)``: the undirected edges (node, parent) with weight 1, each row divided by its
  degree (``D^-1 A``, no self-loops), then the diagonal set to 1. The kinematic graph takes the 17 H36M
  parents; the trajectory graph a chain over the frames, ``chain_parents(F) = [-1, 0, 1, ..., F - 2]``.
* ``LearnableGraphConv`` (SemGCN-style): ``W`` (2, in, out) (xavier-uniform, gain 1.414; ``W[0]`` for the
  node itself, ``W[1]`` for its neighbours), a modulation ``M`` (N, out) (ones), a learnable global topology
  ``adj2`` (N, N) (1e-6 everywhere) added to the fixed adjacency and symmetrised, ``A = (A' + A'^T) / 2`` with
  ``A' = adj + adj2``; ``out = (A * I) (M * x W0) + (A * (1 - I)) (M * x W1) + bias``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def chain_parents(num_nodes: int) -> list[int]:
    """``[-1, 0, 1, ..., n - 2]``: each frame's parent is the frame before it (the trajectory graph)."""
    return [-1] + list(range(num_nodes - 1))


def graph_adjacency(parents: Sequence[int]) -> torch.Tensor:
    """(N, N) float32: symmetric 0/1 edges (node, parent), rows normalised by the degree, diagonal 1."""
    n = len(parents)
    a = torch.zeros(n, n, dtype=torch.float64, device="cpu")
    for j, p in enumerate(parents):
        if p >= 0:
            if not 0 <= p < n:
                raise ValueError(f"parent {p} of node {j} is not a node of {n}")
            a[j, p] = a[p, j] = 1.0
    degree = a.sum(dim=1, keepdim=True)
    a = torch.where(degree > 0, a / degree.clamp(min=1.0), a)
    eye = torch.eye(n, dtype=torch.float64, device="cpu")
    return (a * (1 - eye) + eye).to(torch.float32)


class LearnableGraphConv(nn.Module):
    """Graph convolution over the N nodes of x (B, N, in) -> (B, N, out) with a learnable symmetric topology on
    top of ``adj`` (module docstring). ``adj`` is a non-persistent buffer (the official code keeps it as a
    plain attribute: it is not in the checkpoints)."""

    def __init__(self, in_features: int, out_features: int, adj: torch.Tensor, bias: bool = True) -> None:
        super().__init__()
        n = adj.shape[0]
        if adj.shape != (n, n):
            raise ValueError(f"adjacency must be square, got {tuple(adj.shape)}")
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.W = nn.Parameter(torch.empty(2, in_features, out_features))
        nn.init.xavier_uniform_(self.W, gain=1.414)
        self.M = nn.Parameter(torch.ones(n, out_features))
        # on the parameters' device (a model built under torch.device("meta") for counting has a meta adjacency)
        self.register_buffer("adj", adj.detach().to(device=self.M.device, dtype=torch.float32).clone(),
                             persistent=False)
        self.adj2 = nn.Parameter(torch.full((n, n), 1e-6))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features))
            bound = 1.0 / math.sqrt(out_features)
            nn.init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def topology(self) -> torch.Tensor:
        """The symmetrised ``(adj + adj2 + (adj + adj2)^T) / 2`` the convolution uses."""
        a = self.adj + self.adj2
        return (a + a.transpose(0, 1)) * 0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.topology()
        eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
        out = torch.matmul(a * eye, self.M * torch.matmul(x, self.W[0])) \
            + torch.matmul(a * (1 - eye), self.M * torch.matmul(x, self.W[1]))
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_features} -> {self.out_features}, nodes={self.adj.shape[0]}"


class GraphConvBNReLU(nn.Module):
    """``LearnableGraphConv`` + BatchNorm over the channels (nodes as the batch's length axis) + ReLU: the
    official ``KPA`` / ``TPA`` graph layer (keys ``gconv``, ``bn``)."""

    def __init__(self, in_features: int, out_features: int, adj: torch.Tensor) -> None:
        super().__init__()
        self.gconv = LearnableGraphConv(in_features, out_features, adj)
        self.bn = nn.BatchNorm1d(out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.gconv(x).transpose(1, 2)).transpose(1, 2)
        return torch.relu(x)


class StackedGraphLayers(nn.Module):
    """Two ``GraphConvBNReLU`` with a residual around both (the official ``StackedTPA``: ``gconv1``, ``gconv2``)."""

    def __init__(self, dim: int, adj: torch.Tensor) -> None:
        super().__init__()
        self.gconv1 = GraphConvBNReLU(dim, dim, adj)
        self.gconv2 = GraphConvBNReLU(dim, dim, adj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.gconv2(self.gconv1(x))


__all__ = ["GraphConvBNReLU", "LearnableGraphConv", "StackedGraphLayers", "chain_parents", "graph_adjacency"]
