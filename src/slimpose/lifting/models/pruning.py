"""Temporal token pruning and recovery for video lifters (HoT, CVPR 2024; H2OT, TPAMI 2025).

Features travel as (B, F, J, C): F frames of J joint tokens. A **pruner** (``TokenPruner``) chooses
``num_tokens`` frames and returns their features with their frame indices, always in temporal order; a
**recovery** (``TokenRecovery``) turns the features or poses of the kept frames back into a full-length
sequence. Both are plug-ins of ``slimpose.lifting.models.hot.HoTMixSTE`` and
``slimpose.lifting.models.h2ot.H2OTMixSTE``. A pruner may also read ``poses`` (B, F, J, 2), the model's 2-D
input at the F frames it chooses from (TPMo does; the others ignore it):

* ``TPC`` (token pruning cluster, HoT): DPC-kNN on the frame features averaged over the joints
  (``cluster_dpc_knn``, as NationalGAILab/HoT ``model/mixste/hot_mixste.py: cluster_dpc_knn``), the
  ``num_tokens`` best-scored frames kept; ``keep=`` forces one frame in (TPC-MixSTE's centre frame,
  ``tpc_mixste.py: cluster_dpc_knn_center``).
* ``TPA`` (token pruning attention, H2OT): parameter-free; the frames that receive the most attention in a
  softmax self-attention among the (joint-averaged, normalised) frame features are kept (``attention_scores``).
* ``TPMo`` (token pruning motion, H2OT): the frames of largest pose change are kept (``motion_scores``), on
  the 2-D input poses of the alive frames (``poses``) or on the features.
* ``TPS`` (token pruning sampler, H2OT): parameter-free uniform sampling.
* ``TRA`` (token recovering attention, HoT ``Cross_Attention``): learnable queries, one per output frame,
  cross-attend to the kept tokens of each joint; works on features, before the head.
* ``TRI`` (token recovering interpolation, H2OT): linear interpolation in time between the kept frames;
  parameter-free, works on the 3-D poses after the head.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def gather_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x[b, index[b]]`` for every sample: (B, F, ...) and (B, n) -> (B, n, ...)."""
    batch = torch.arange(x.shape[0], device=x.device).unsqueeze(-1)
    return x[batch, index]


def dpc_knn_scores(x: torch.Tensor, k: int = 2, noise: float = 1e-6) -> torch.Tensor:
    """DPC-kNN cluster-centre scores of the N points of x (B, N, C), as HoT computes them (no gradient):

    1. ``d = cdist(x, x) / sqrt(C)``;
    2. density ``rho_i = exp(-mean of the k smallest d_ij^2)`` (the k include the point itself, d_ii = 0),
       plus uniform noise in [0, ``noise``) that breaks ties (official: 1e-6 from the global RNG);
    3. distance indicator ``delta_i = min d_ij over the j of strictly higher density``; for the density peak
       (no such j) the largest entry of the sample's whole distance matrix;
    4. score ``rho_i * delta_i``. Returns (B, N).
    """
    with torch.no_grad():
        b, n, c = x.shape
        if not 1 <= k <= n:
            raise ValueError(f"DPC-kNN needs 1 <= k <= N, got k={k} for N={n}")
        dist = torch.cdist(x, x) / math.sqrt(c)
        nearest = torch.topk(dist, k=k, dim=-1, largest=False).values
        density = (-(nearest ** 2).mean(dim=-1)).exp()
        if noise:
            density = density + torch.rand(density.shape, device=density.device, dtype=density.dtype) * noise
        higher = (density[:, None, :] > density[:, :, None]).to(x.dtype)  # [b, i, j]: rho_j > rho_i
        dist_max = dist.flatten(1).max(dim=-1).values[:, None, None]
        delta = (dist * higher + dist_max * (1 - higher)).min(dim=-1).values
        return delta * density


def cluster_dpc_knn(x: torch.Tensor, num_centres: int, k: int = 2, noise: float = 1e-6,
                    keep: int | None = None) -> torch.Tensor:
    """The indices (B, num_centres) of the DPC-kNN cluster centres of x (B, N, C), **in temporal
    (ascending) order**. ``keep``: that point is always one of them (its score is set to -inf, the
    ``num_centres - 1`` best others are taken and it is added: TPC-MixSTE's centre frame)."""
    n = x.shape[1]
    if not 1 <= num_centres <= n:
        raise ValueError(f"cannot choose {num_centres} of {n} frames")
    return top_frames(dpc_knn_scores(x, k, noise), num_centres, keep)


def top_frames(score: torch.Tensor, num_tokens: int, keep: int | None = None) -> torch.Tensor:
    """The ``num_tokens`` best-scored frames of score (B, F), **ascending**. ``keep``: that frame is always one
    of them (its score is set to -inf, the ``num_tokens - 1`` best others are taken and it is added). ``score``
    is modified in place when ``keep`` is given."""
    n = score.shape[1]
    if not 1 <= num_tokens <= n:
        raise ValueError(f"cannot choose {num_tokens} of {n} frames")
    if keep is None:
        index = torch.topk(score, k=num_tokens, dim=-1).indices
    else:
        if not 0 <= keep < n:
            raise ValueError(f"keep={keep} is not a frame of {n}")
        score[:, keep] = -math.inf
        index = torch.topk(score, k=num_tokens - 1, dim=-1).indices
        index = torch.cat([index, index.new_full((score.shape[0], 1), keep)], dim=-1)
    return torch.sort(index, dim=-1).values


class TokenPruner(nn.Module):
    """Chooses ``num_tokens`` of the F frames of x (B, F, J, C).

    Subclasses implement ``select(x, poses=None) -> (B, num_tokens)`` long indices, ascending; ``poses``
    (B, F, J, D) is the model's input at the same F frames, for a criterion on the real pose change (TPMo).
    ``forward(x, index=None, poses=None)`` returns ``(x at those frames (B, n, J, C), index)``; a given
    ``index`` is used as is (e.g. the flipped pass of a test reusing the indices of the plain one, as
    TPC-MixSTE's test does). Without ``poses``, ``select(x)`` is called with ``x`` alone (a subclass written
    for the one-argument form keeps working there).
    """

    def __init__(self, num_tokens: int) -> None:
        super().__init__()
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        self.num_tokens = int(num_tokens)

    def select(self, x: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None, poses: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1] < self.num_tokens:
            raise ValueError(f"{type(self).__name__}: cannot keep {self.num_tokens} of {x.shape[1]} frames")
        if poses is not None and tuple(poses.shape[:2]) != tuple(x.shape[:2]):
            raise ValueError(f"{type(self).__name__}: poses {tuple(poses.shape)} do not match the "
                             f"{tuple(x.shape[:2])} (batch, frames) of the features")
        if index is None:
            index = self.select(x) if poses is None else self.select(x, poses)
        return gather_frames(x, index), index

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}"


class TPC(TokenPruner):
    """Token pruning cluster (HoT): DPC-kNN (``k`` nearest, 2 in HoT) on the per-frame features averaged over
    the joints; the ``num_tokens`` cluster centres are kept (their own features: no cluster averaging, the
    other frames are dropped). ``keep``: a frame always kept (TPC-MixSTE: the centre); ``noise``: the density
    tie-breaking noise (1e-6 officially, 0 for a deterministic choice)."""

    def __init__(self, num_tokens: int, k: int = 2, keep: int | None = None, noise: float = 1e-6) -> None:
        super().__init__(num_tokens)
        self.k = int(k)
        self.keep = keep
        self.noise = float(noise)

    def select(self, x: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        return cluster_dpc_knn(x.mean(dim=2), self.num_tokens, self.k, self.noise, self.keep)

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, k={self.k}, keep={self.keep}, noise={self.noise}"


def uniform_indices(num_frames: int, num_tokens: int, keep: int | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """``round(linspace(0, F - 1, n))``: n evenly spread frames, the first and the last included (distinct for
    n <= F). ``keep``: the sample nearest to that frame is moved onto it (the order stays ascending)."""
    if not 1 <= num_tokens <= num_frames:
        raise ValueError(f"cannot choose {num_tokens} of {num_frames} frames")
    index = torch.linspace(0, num_frames - 1, num_tokens, device="cpu").round().long()
    if keep is not None:
        if not 0 <= keep < num_frames:
            raise ValueError(f"keep={keep} is not a frame of {num_frames}")
        if not (index == keep).any():
            index[(index - keep).abs().argmin()] = keep
    return index.to(device)


class TPS(TokenPruner):
    """Token pruning sampler (H2OT): the same ``num_tokens`` evenly spread frames for every input
    (``uniform_indices``); no parameters, no data dependence."""

    def __init__(self, num_tokens: int, keep: int | None = None) -> None:
        super().__init__(num_tokens)
        self.keep = keep

    def select(self, x: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        index = uniform_indices(x.shape[1], self.num_tokens, self.keep, device=x.device)
        return index.unsqueeze(0).expand(x.shape[0], -1)

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, keep={self.keep}"


def attention_scores(x: torch.Tensor, norm: bool = True, scale: float | None = None, eps: float = 1e-6
                     ) -> torch.Tensor:
    """TPA's frame scores for x (B, N, C), no gradient: ``x`` layer-normalised without affine parameters
    (``norm``), ``A = softmax(x x^T * scale)`` over the keys (``scale`` defaults to ``C ** -0.5``), and the
    score of frame j is the attention it receives, the mean over the query frames ``mean_i A[i, j]``.
    Returns (B, N); every row sums to 1."""
    with torch.no_grad():
        c = x.shape[-1]
        if norm:
            x = F.layer_norm(x, (c,), eps=eps)
        logits = torch.matmul(x, x.transpose(1, 2)) * (c ** -0.5 if scale is None else scale)
        return torch.softmax(logits, dim=-1).mean(dim=1)


class TPA(TokenPruner):
    """Token pruning attention (H2OT; no official code, this reading is slimpose's): parameter-free
    self-attention among the frames, on the per-frame features averaged over the joints
    (``attention_scores``); the ``num_tokens`` frames that receive the most attention are kept, ascending.
    ``keep``: a frame always kept (as ``TPC``); ``norm`` / ``scale``: as ``attention_scores``."""

    def __init__(self, num_tokens: int, keep: int | None = None, norm: bool = True,
                 scale: float | None = None) -> None:
        super().__init__(num_tokens)
        self.keep = keep
        self.norm = bool(norm)
        self.scale = scale

    def select(self, x: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        return top_frames(attention_scores(x.mean(dim=2), self.norm, self.scale), self.num_tokens, self.keep)

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, keep={self.keep}, norm={self.norm}, scale={self.scale}"


MOTION_SOURCES = ("input", "features")
MOTION_FIRST = ("next", "keep")


def motion_scores(p: torch.Tensor, first: str = "next") -> torch.Tensor:
    """TPMo's frame scores for a sequence p (B, F, J, D) (poses, or features), no gradient: frame t >= 1
    scores ``mean_j ||p[t, j] - p[t - 1, j]||`` (its change since the previous frame of the sequence);
    frame 0 scores the change to frame 1 (``first="next"``) or +inf, so that it is always kept
    (``first="keep"``). A one-frame sequence scores 0 (or +inf). Returns (B, F)."""
    if first not in MOTION_FIRST:
        raise ValueError(f"first must be one of {MOTION_FIRST}, got {first!r}")
    with torch.no_grad():
        if p.shape[1] == 1:
            score = p.new_zeros(p.shape[:2])
        else:
            step = (p[:, 1:] - p[:, :-1]).norm(dim=-1).mean(dim=-1)
            score = torch.cat([step[:, :1], step], dim=1)
        if first == "keep":
            score[:, 0] = math.inf
        return score


class TPMo(TokenPruner):
    """Token pruning motion (H2OT; no official code, this reading is slimpose's): keeps the ``num_tokens``
    frames of largest pose change (``motion_scores``), ascending. ``source="input"`` (default) measures it on
    ``poses``, the model's 2-D input at the frames being chosen from (required then); ``"features"`` on the
    features x (B, F, J, C). ``first``: how frame 0 is scored (``motion_scores``); ``keep``: a frame always
    kept (as ``TPC``). At a later stage the alive frames are not consecutive: the change is the one between
    consecutive *alive* frames, not divided by their distance in time."""

    def __init__(self, num_tokens: int, source: str = "input", first: str = "next",
                 keep: int | None = None) -> None:
        super().__init__(num_tokens)
        if source not in MOTION_SOURCES:
            raise ValueError(f"source must be one of {MOTION_SOURCES}, got {source!r}")
        if first not in MOTION_FIRST:
            raise ValueError(f"first must be one of {MOTION_FIRST}, got {first!r}")
        self.source = source
        self.first = first
        self.keep = keep

    def select(self, x: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        if self.source == "input":
            if poses is None:
                raise ValueError("TPMo(source='input') needs the poses of the frames it chooses from "
                                 "(forward(x, poses=...)); use source='features' to score the features")
            p = poses
        else:
            p = x
        return top_frames(motion_scores(p, self.first), self.num_tokens, self.keep)

    def extra_repr(self) -> str:
        return f"num_tokens={self.num_tokens}, source={self.source!r}, first={self.first!r}, keep={self.keep}"


class TokenRecovery(nn.Module):
    """Turns the kept frames x (B, n, J, C) with their indices (B, n) back into ``num_frames`` frames.

    ``on_features = True``: applied to the features before the head (TRA); ``False``: to the head's
    output, the poses (TRI). ``forward(x, index, num_frames) -> (B, num_frames, J, C)``.
    """

    on_features: bool = True

    def forward(self, x: torch.Tensor, index: torch.Tensor, num_frames: int) -> torch.Tensor:
        raise NotImplementedError


class CrossAttention(nn.Module):
    """HoT ``Cross_Attention``: queries from ``linear_q(x_q)``, keys and values from ``linear_k`` /
    ``linear_v`` of the context, ``num_heads`` heads, scale ``head_dim ** -0.5``, softmax, ``proj``."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_drop: float = 0.0) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.linear_q = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_k = nn.Linear(dim, dim, bias=qkv_bias)
        self.linear_v = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.reshape(b, n, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, x_q: torch.Tensor, x_k: torch.Tensor, x_v: torch.Tensor) -> torch.Tensor:
        b, m, c = x_q.shape
        q, k, v = self._heads(self.linear_q(x_q)), self._heads(self.linear_k(x_k)), self._heads(self.linear_v(x_v))
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj_drop(self.proj(out.transpose(1, 2).reshape(b, m, c)))


class TRA(TokenRecovery):
    """Token recovering attention (HoT): ``x_token`` (1, num_frames, C), zero-initialised learnable queries;
    per joint ``x = x_token + cross_attention(x_token, kept, kept)`` (no norm before, no MLP after). The
    output length is ``num_frames`` whatever the number of kept tokens; the indices are not used."""

    on_features = True

    def __init__(self, num_frames: int, dim: int, num_heads: int = 8, qkv_bias: bool = True,
                 drop: float = 0.0) -> None:
        super().__init__()
        self.num_frames = int(num_frames)
        self.x_token = nn.Parameter(torch.zeros(1, num_frames, dim))
        self.cross_attention = CrossAttention(dim, num_heads, qkv_bias, drop)

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None,
                num_frames: int | None = None) -> torch.Tensor:
        if num_frames is not None and num_frames != self.num_frames:
            raise ValueError(f"TRA has {self.num_frames} queries, asked for {num_frames} frames")
        b, n, j, c = x.shape
        kept = x.permute(0, 2, 1, 3).reshape(b * j, n, c)
        queries = self.x_token.repeat(b * j, 1, 1)  # a copy per joint sequence, as the official ``repeat``
        out = queries + self.cross_attention(queries, kept, kept)
        return out.reshape(b, j, self.num_frames, c).permute(0, 2, 1, 3)


class TRI(TokenRecovery):
    """Token recovering interpolation (H2OT): frame t gets ``(1 - w) x[l] + w x[r]`` from the kept frames
    l, r around it (``w = (t - index_l) / (index_r - index_l)``); frames before the first or after the last
    kept one copy it (no extrapolation). Exact on features linear in time. Applied to the poses."""

    on_features = False

    def forward(self, x: torch.Tensor, index: torch.Tensor, num_frames: int) -> torch.Tensor:
        b, n = index.shape
        t = torch.arange(num_frames, device=x.device)
        if n == 1:
            return gather_frames(x, index.new_zeros(b, num_frames))
        # searchsorted(index, t, right=True) as a count (ONNX has no searchsorted): kept frames <= t
        right = (index.unsqueeze(1) <= t.view(1, -1, 1)).sum(dim=-1)
        right = right.clamp(1, n - 1)
        left = right - 1
        t_left, t_right = index.gather(1, left), index.gather(1, right)
        w = ((t - t_left).to(x.dtype) / (t_right - t_left).to(x.dtype)).clamp(0, 1)
        w = w.reshape(b, num_frames, *([1] * (x.dim() - 2)))
        return gather_frames(x, left) * (1 - w) + gather_frames(x, right) * w


__all__ = [
    "CrossAttention", "MOTION_FIRST", "MOTION_SOURCES", "TPA", "TPC", "TPMo", "TPS", "TRA", "TRI", "TokenPruner",
    "TokenRecovery", "attention_scores", "cluster_dpc_knn", "dpc_knn_scores", "gather_frames", "motion_scores",
    "top_frames", "uniform_indices",
]
