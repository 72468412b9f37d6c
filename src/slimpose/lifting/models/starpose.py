"""StarPose (arXiv 2508.02056, IEEE TCSVT 2025): an autoregressive diffusion lifter with historical pose
integration and spatial-temporal physical guidance.

Written from the facts in ``official_implementations_2.md`` §4b (one third-party explainer; the official code
is not reachable), every open detail a constructor argument and listed in docs/lifting_models.md:

* **context** ``f_2D``: a MixSTE trunk (``MixSTE.forward_features``) over the current 2-D window, run once per
  window (the paper pre-trains it; ``context_checkpoint`` loads a trained MixSTE lifter into it);
* **HPIM** ``f_his`` (:class:`HPIM`): the past ``history`` (L = 27) 2-D poses and the model's own past L 3-D
  predictions, linearly embedded, a 2-D and a 3-D spatial transformer block, a learnable temporal position
  embedding, then the skeleton integration graph (2J nodes per frame: spatial, 2-D <-> 3-D and temporal edges)
  with a GCN branch (local) and an attention branch (global) summed, an FC; pooled over the L frames to one
  feature per joint. A window without history (the first of a sequence) uses a learned null feature;
* **denoiser** ``D(h_k, f_2D, f_his, k)``: a GraFormer (graph attention + Chebyshev graph convolution over the
  joints of each frame) on ``h_k`` plus the projected context, history and diffusion-step embeddings; it
  predicts the clean poses ``h_{0|k}`` (the form STPG guides);
* **GMM prior** (:class:`GaussianMixturePrior`, M = 5 diagonal components over one frame's J x 3 pose, fitted by
  EM on the training poses): ``h_k = mu + sqrt(abar_k) (h_0 - mu) + sqrt(1 - abar_k) sigma eps``;
* **sampling**: ``hypotheses`` (N = 5) samples from the prior, ``sampling_steps`` (5) deterministic DDIM steps
  over the ``timesteps`` (K = 50) of training, each optionally guided by STPG
  (``slimpose.lifting.guidance``: ``h_{k-1} -= rho_k T grad E(h_{0|k})``: the energies are means over the T
  frames, so the step is scaled by T and one ``stpg_rho`` serves every clip length), and the N results averaged.

``forward(x, history_2d=None, history_3d=None, intrinsics=None)`` samples with the model's own seed (the same
input gives the same poses); ``slimpose.lifting.inference.lift_sequence`` runs it autoregressively over a whole
sequence, each window conditioned on the poses already predicted before it.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from slimpose.lifting.data.h36m import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_PARENTS
from slimpose.lifting.guidance import STPG_DEFAULT_WEIGHTS, STPGEnergy, bones, guided_update, rho_schedule
from slimpose.lifting.models.mixste import MixSTE, released_cfg
from slimpose.lifting.models.spec import SequenceInput
from slimpose.models.transformer.blocks import Attention, Mlp
from slimpose.models.vitpose import ViTBlock

BETA_SCHEDULES = ("cosine", "linear")


# ---------------------------------------------------------------------------------------------- diffusion

def alphas_cumprod(timesteps: int, kind: str = "cosine") -> torch.Tensor:
    """``abar_k`` (K,) float64 of a ``timesteps``-step noise schedule: ``"cosine"`` (Nichol & Dhariwal, s = 0.008,
    betas clipped at 0.999; D3DP's) or ``"linear"`` (betas 1e-4 .. 2e-2 over K)."""
    if timesteps < 1:
        raise ValueError(f"timesteps must be >= 1, got {timesteps}")
    k = torch.arange(timesteps + 1, dtype=torch.float64, device="cpu")
    if kind == "cosine":
        f = torch.cos((k / timesteps + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    elif kind == "linear":
        betas = torch.linspace(1e-4, 2e-2, timesteps, dtype=torch.float64, device="cpu")
    else:
        raise ValueError(f"beta schedule must be one of {BETA_SCHEDULES}, got {kind!r}")
    return torch.cumprod(1 - betas, dim=0)


def ddim_timesteps(timesteps: int, steps: int) -> list[tuple[int, int]]:
    """The ``(k, k_prev)`` pairs of a ``steps``-step DDIM pass over a ``timesteps``-step schedule, noisiest first,
    the last ``k_prev`` -1 (the clean sample): ``linspace(-1, K - 1, steps + 1)`` truncated, as D3DP spaces them
    (K = 50, 5 steps: 49 -> 39 -> 29 -> 19 -> 9 -> -1)."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"sampling steps must be in [1, {timesteps}], got {steps}")
    ts = torch.linspace(-1, timesteps - 1, steps + 1, dtype=torch.float64, device="cpu").long().tolist()[::-1]
    return list(zip(ts[:-1], ts[1:]))


class GaussianMixturePrior(nn.Module):
    """A diagonal Gaussian mixture over one frame's pose (J x 3 values): StarPose's GMM prior (M = 5).

    ``fit(poses)`` runs EM (k-means++ start from ``seed``, float64); the weights, means and standard deviations
    are buffers, saved with the model. Before ``fit`` it is one standard normal component at 0 (plain DDPM)."""

    def __init__(self, num_joints: int = 17, components: int = 5, min_std: float = 1e-3) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"the GMM needs >= 1 component, got {components}")
        d = num_joints * 3
        self.components, self.min_std = int(components), float(min_std)
        self.register_buffer("log_weights", torch.full((components,), -math.log(components)))
        self.register_buffer("means", torch.zeros(components, d))
        self.register_buffer("stds", torch.ones(components, d))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    def log_likelihoods(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N, M): ``log pi_m + log N(x | mu_m, sigma_m)``."""
        mu, sd = self.means.to(flat), self.stds.to(flat)
        z = (flat[:, None] - mu[None]) / sd[None]
        return (self.log_weights.to(flat)[None] - 0.5 * z.square().sum(-1) - sd.log().sum(-1)[None]
                - 0.5 * flat.shape[1] * math.log(2 * math.pi))

    @torch.no_grad()
    def fit(self, poses: torch.Tensor, iterations: int = 50, seed: int = 0, max_samples: int = 20000) -> None:
        """EM on (N, J, 3) poses (at most ``max_samples`` of them, taken evenly)."""
        x = poses.detach().reshape(poses.shape[0], -1).to("cpu", torch.float64)
        if x.shape[1] != self.means.shape[1]:
            raise ValueError(f"poses have {x.shape[1] // 3} joints, the prior {self.means.shape[1] // 3}")
        if x.shape[0] > max_samples:
            x = x[torch.linspace(0, x.shape[0] - 1, max_samples, device="cpu").long()]
        m = min(self.components, x.shape[0])
        g = torch.Generator(device="cpu").manual_seed(int(seed))
        centres = [x[int(torch.randint(x.shape[0], (1,), generator=g))]]
        for _ in range(1, m):  # k-means++: next centre with probability ~ squared distance
            d2 = torch.cdist(x, torch.stack(centres)).square().min(dim=1).values
            centres.append(x[int(torch.multinomial(d2 / d2.sum(), 1, generator=g))] if d2.sum() > 0 else x[0])
        mu = torch.stack(centres)
        var = x.var(dim=0, unbiased=False).clamp(min=self.min_std ** 2).expand(m, -1).clone()
        logw = torch.full((m,), -math.log(m), dtype=torch.float64)
        for _ in range(int(iterations)):
            z = (x[:, None] - mu[None]) / var.sqrt()[None]
            ll = logw[None] - 0.5 * z.square().sum(-1) - 0.5 * var.log().sum(-1)[None]
            r = torch.softmax(ll, dim=1)                                   # (N, M) responsibilities
            nk = r.sum(0).clamp(min=1e-8)
            mu = (r.T @ x) / nk[:, None]
            var = ((r.T @ x.square()) / nk[:, None] - mu.square()).clamp(min=self.min_std ** 2)
            logw = (nk / nk.sum()).log()
        pad = self.components - m  # fewer poses than components: the extra ones get no weight
        self.log_weights.copy_(torch.cat([logw, torch.full((pad,), -1e4, dtype=torch.float64)]).float())
        self.means.copy_(torch.cat([mu, mu[:1].expand(pad, -1)]).float())
        self.stds.copy_(torch.cat([var.sqrt(), var[:1].sqrt().expand(pad, -1)]).float())
        self.fitted.fill_(True)

    def components_of(self, flat: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """A component per row of (N, D) clean poses, drawn from its posterior responsibilities."""
        probs = torch.softmax(self.log_likelihoods(flat.detach()), dim=1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)

    def draw_components(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` components drawn with the mixture weights."""
        probs = self.log_weights.softmax(0).expand(n, -1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(1)


# ---------------------------------------------------------------------------------------------- graphs

def normalized_adjacency(edges: Sequence[tuple[int, int]], num_nodes: int) -> torch.Tensor:
    """``D^-1/2 (A + I) D^-1/2`` (N, N) float32 of undirected ``edges`` (the GCN propagation matrix)."""
    a = torch.eye(num_nodes, dtype=torch.float64, device="cpu")
    for i, j in edges:
        a[i, j] = a[j, i] = 1.0
    d = a.sum(1).rsqrt()
    return (d[:, None] * a * d[None]).float()


def integration_graph_edges(parents: Sequence[int], frames: int) -> list[tuple[int, int]]:
    """Edges of HPIM's skeleton integration graph over ``frames`` frames of 2J nodes each (node
    ``t * 2J + j`` is joint j's 2-D pose at frame t, ``t * 2J + J + j`` its 3-D pose): the skeleton's bones
    within the 2-D and within the 3-D nodes (spatial), 2-D joint j <-> 3-D joint j, and each node <-> itself at
    the next frame (temporal)."""
    J = len(parents)
    skeleton = bones(parents)
    edges = []
    for t in range(frames):
        o = t * 2 * J
        edges += [(o + c, o + p) for c, p in skeleton] + [(o + J + c, o + J + p) for c, p in skeleton]
        edges += [(o + j, o + J + j) for j in range(J)]
        if t + 1 < frames:
            edges += [(o + n, o + 2 * J + n) for n in range(2 * J)]
    return edges


class ChebGraphConv(nn.Module):
    """Chebyshev graph convolution of order ``order`` (GraFormer's ChebGConv): ``sum_k T_k(L~) X W_k + b`` with
    ``L~ = -D^-1/2 A D^-1/2`` (the scaled Laplacian with lambda_max = 2) over the nodes of (B, N, in)."""

    def __init__(self, in_features: int, out_features: int, parents: Sequence[int], order: int = 2) -> None:
        super().__init__()
        n = len(parents)
        a = torch.zeros(n, n, dtype=torch.float64, device="cpu")
        for c, p in bones(parents):
            a[c, p] = a[p, c] = 1.0
        d = a.sum(1).clamp(min=1).rsqrt()
        self.register_buffer("laplacian", (-(d[:, None] * a * d[None])).float(), persistent=False)
        self.order = int(order)
        self.weight = nn.Parameter(torch.empty(self.order, in_features, out_features))
        nn.init.xavier_uniform_(self.weight)
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lap = self.laplacian.to(x)
        t_prev, t = x, x
        out = x @ self.weight[0]
        for k in range(1, self.order):
            t_next = lap @ t if k == 1 else 2 * (lap @ t) - t_prev
            t_prev, t = t, t_next
            out = out + t @ self.weight[k]
        return out + self.bias


class GraFormerBlock(nn.Module):
    """GraFormer layer on (B, J, C): ``x + attn(norm1(x))``, then ``x + cheb2(relu(cheb1(norm2(x))))``."""

    def __init__(self, dim: int, num_heads: int, parents: Sequence[int], order: int = 2, drop: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, proj_drop=drop, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim)
        self.gconv1 = ChebGraphConv(dim, dim, parents, order)
        self.gconv2 = ChebGraphConv(dim, dim, parents, order)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.drop(self.gconv2(torch.relu(self.gconv1(self.norm2(x)))))


# ---------------------------------------------------------------------------------------------- HPIM

class HPIM(nn.Module):
    """Historical pose integration: (B, L, J, 2) past 2-D and (B, L, J, 3) past 3-D poses -> (B, J, C).

    Each modality: Linear embedding + spatial position embedding, one pre-norm transformer block over the J
    joints of each frame, + a learnable temporal position embedding (L, C). The 2J nodes of the L frames form
    the integration graph (:func:`integration_graph_edges`); ``y = x + GCN(x) + Attn(x)`` (a two-layer GCN
    with the normalised adjacency, and multi-head attention over all L x 2J nodes), then ``y + MLP(y)`` (the
    FC). Each joint's 2-D and 3-D node are fused by a Linear(2C, C) and averaged over the L frames."""

    def __init__(self, dim: int, num_joints: int, history: int, parents: Sequence[int], num_heads: int = 4,
                 mlp_ratio: float = 2.0) -> None:
        super().__init__()
        if len(parents) != num_joints:
            raise ValueError(f"{len(parents)} parents for {num_joints} joints")
        self.history, self.num_joints, self.dim = int(history), int(num_joints), int(dim)
        self.embed_2d, self.embed_3d = nn.Linear(2, dim), nn.Linear(3, dim)
        self.pos_2d = nn.Parameter(torch.zeros(1, num_joints, dim))
        self.pos_3d = nn.Parameter(torch.zeros(1, num_joints, dim))
        self.temporal_pos = nn.Parameter(torch.zeros(1, history, 1, dim))
        nn.init.trunc_normal_(self.pos_2d, std=0.02)
        nn.init.trunc_normal_(self.pos_3d, std=0.02)
        nn.init.trunc_normal_(self.temporal_pos, std=0.02)
        self.spatial_2d = ViTBlock(dim, num_heads, mlp_ratio)
        self.spatial_3d = ViTBlock(dim, num_heads, mlp_ratio)
        n = history * 2 * num_joints
        self.register_buffer("adj", normalized_adjacency(integration_graph_edges(parents, history), n),
                             persistent=False)
        self.gcn1, self.gcn2 = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, qkv_bias=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.fuse = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def _spatial(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        b, t, j, c = x.shape
        return block(x.reshape(b * t, j, c)).reshape(b, t, j, c)

    def forward(self, history_2d: torch.Tensor, history_3d: torch.Tensor) -> torch.Tensor:
        b, L, J = history_2d.shape[:3]
        if (L, J) != (self.history, self.num_joints) or history_3d.shape != (b, L, J, 3):
            raise ValueError(f"HPIM takes (B, {self.history}, {self.num_joints}, 2 / 3) histories, got "
                             f"{tuple(history_2d.shape)} and {tuple(history_3d.shape)}")
        x2 = self._spatial(self.spatial_2d, self.embed_2d(history_2d) + self.pos_2d)
        x3 = self._spatial(self.spatial_3d, self.embed_3d(history_3d) + self.pos_3d)
        x = torch.cat([x2, x3], dim=2) + self.temporal_pos                     # (B, L, 2J, C)
        x = x.reshape(b, L * 2 * J, self.dim)
        adj = self.adj.to(x)
        local = adj @ self.gcn2(torch.relu(adj @ self.gcn1(x)))
        y = x + local + self.attn(self.norm_attn(x))
        y = y + self.mlp(self.norm_mlp(y))
        y = y.reshape(b, L, 2, J, self.dim)
        fused = self.fuse(torch.cat([y[:, :, 0], y[:, :, 1]], dim=-1))       # (B, L, J, C)
        return self.norm(fused.mean(dim=1))


def timestep_embedding(k: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding (B, dim) of integer diffusion steps ``k`` (B,) (the transformer's frequencies)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=k.device) / max(half, 1))
    args = k.float()[:, None] * freqs[None]
    emb = torch.cat([args.sin(), args.cos()], dim=-1)
    return torch.nn.functional.pad(emb, (0, dim - 2 * half))


# ---------------------------------------------------------------------------------------------- StarPose

class StarPose(nn.Module):
    """StarPose: (B, T, J, 2) 2-D windows (+ optional L-frame histories) -> (B, T, J, 3) poses (module docstring).

    Training goes through :meth:`training_prediction` (one random diffusion step per window, the clean poses
    predicted, ``LiftingTask`` scores them with the MixSTE loss) and :meth:`training_regulariser` (the STPG
    terms on the prediction, weighted by ``stpg_train_weight``)."""

    autoregressive = True

    def __init__(self, num_frames: int = 243, num_joints: int = 17, context_dim: int = 512, context_depth: int = 8,
                 context_heads: int = 8, dim: int = 128, depth: int = 5, num_heads: int = 4, cheb_order: int = 2,
                 history: int = 27, hpim_heads: int = 4, timesteps: int = 50, sampling_steps: int = 5,
                 hypotheses: int = 5, beta_schedule: str = "cosine", gmm_components: int = 5,
                 history_noise: float = 0.02, null_history_prob: float = 0.1,
                 parents: Sequence[int] = H36M_PARENTS, left: Sequence[int] = H36M_JOINTS_LEFT,
                 right: Sequence[int] = H36M_JOINTS_RIGHT, stpg: bool = True,
                 stpg_weights: Sequence[float] = STPG_DEFAULT_WEIGHTS, stpg_rho: float = 0.5,
                 stpg_schedule: str = "constant", stpg_train_weight: float = 1.0, seed: int = 0,
                 context_checkpoint: str | None = None, freeze_context: bool = False,
                 drop_path_rate: float = 0.1) -> None:
        super().__init__()
        if len(parents) != num_joints:
            raise ValueError(f"{len(parents)} parents for {num_joints} joints")
        if hypotheses < 1 or history < 1:
            raise ValueError(f"need hypotheses >= 1 and history >= 1, got {hypotheses}, {history}")
        if not 0.0 <= null_history_prob <= 1.0 or history_noise < 0:
            raise ValueError("null_history_prob must be in [0, 1] and history_noise >= 0")
        self.num_frames, self.num_joints, self.dim = int(num_frames), int(num_joints), int(dim)
        self.history, self.timesteps, self.sampling_steps = int(history), int(timesteps), int(sampling_steps)
        self.hypotheses, self.seed = int(hypotheses), int(seed)
        self.history_noise, self.null_history_prob = float(history_noise), float(null_history_prob)
        self.parents, self.left, self.right = tuple(int(p) for p in parents), tuple(left), tuple(right)
        self.steps = ddim_timesteps(self.timesteps, self.sampling_steps)        # validates both
        self.register_buffer("abar", alphas_cumprod(self.timesteps, beta_schedule).float(), persistent=False)
        self.context = MixSTE(**released_cfg(num_frames=num_frames, num_joints=num_joints, dim=context_dim,
                                             depth=context_depth, num_heads=context_heads,
                                             drop_path_rate=drop_path_rate))
        del self.context.head  # only its features are used
        self.hpim = HPIM(dim, num_joints, history, self.parents, hpim_heads)
        self.null_history = nn.Parameter(torch.zeros(1, num_joints, dim))
        self.prior = GaussianMixturePrior(num_joints, gmm_components)
        self.pose_embed = nn.Linear(3, dim)
        self.context_proj = nn.Linear(context_dim, dim)
        self.history_proj = nn.Linear(dim, dim)
        self.time_mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.joint_pos = nn.Parameter(torch.zeros(1, 1, num_joints, dim))
        nn.init.trunc_normal_(self.joint_pos, std=0.02)
        self.blocks = nn.ModuleList(GraFormerBlock(dim, num_heads, self.parents, cheb_order) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 3))
        lp, ls, lb, ld = (float(w) for w in stpg_weights)
        self.energy = STPGEnergy(lp, ls, lb, ld, parents=self.parents, left=self.left, right=self.right,
                                 distort=False) if stpg else None
        self.guidance = bool(stpg)  # STPG at sampling time; switch off to sample the same weights unguided
        self.rhos = rho_schedule(stpg_rho, self.sampling_steps, stpg_schedule)
        self.stpg_train_weight = float(stpg_train_weight)
        self.freeze_context = bool(freeze_context)
        if context_checkpoint:
            self.load_context(context_checkpoint)
        if self.freeze_context:
            self.context.requires_grad_(False)

    # ------------------------------------------------------------------ parts

    @property
    def input_spec(self) -> SequenceInput:
        return SequenceInput(self.num_frames, self.num_joints, 2)

    @property
    def uses_intrinsics(self) -> bool:
        """Whether the STPG energy has a reprojection term (then validation passes the camera, and training clips
        carry intrinsics for the regulariser)."""
        return self.energy is not None and bool(self.energy.weights["reprojection"])

    @contextlib.contextmanager
    def counting(self):
        """Sampling without the STPG gradient steps (``slimpose.engine.complexity.count_flops``: the guidance is a
        few elementwise ops and a backward through them, not network MACs)."""
        self._no_guidance = True
        try:
            yield self
        finally:
            self._no_guidance = False

    def load_context(self, checkpoint: str | Path) -> None:
        """Load a trained MixSTE lifter checkpoint (slimpose's, same trunk size) into the context encoder."""
        from slimpose.lifting.checkpoint import load_lifter

        mixste, _ = load_lifter(checkpoint)
        state = {k: v for k, v in mixste.state_dict().items() if not k.startswith("head.")}
        try:
            self.context.load_state_dict(state, strict=True)
        except RuntimeError as e:
            raise ValueError(f"{checkpoint}: not a MixSTE trunk of this size: {str(e).splitlines()[0]}") from None

    def fit_prior(self, poses: torch.Tensor, seed: int = 0) -> None:
        """Fit the GMM prior on (N, J, 3) root-relative training poses (``build_lift_trainer`` does this)."""
        self.prior.fit(poses, seed=seed)

    def encode(self, x: torch.Tensor, history_2d: torch.Tensor | None = None,
               history_3d: torch.Tensor | None = None, has_history: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(f_2D (B, T, J, C_ctx), f_his (B, J, C))``; windows without history (``history_2d`` None, or
        ``has_history`` False) get the learned null feature."""
        b = x.shape[0]
        self.context.check_input(x)
        f2d = self.context.forward_features(x)
        null = self.null_history.expand(b, -1, -1)
        if history_2d is None or history_3d is None:
            return f2d, null
        fhis = self.hpim(history_2d, history_3d)
        if has_history is not None:
            fhis = torch.where(has_history.to(torch.bool).view(b, 1, 1), fhis, null)
        return f2d, fhis

    def denoise(self, h: torch.Tensor, k: torch.Tensor, f2d: torch.Tensor, fhis: torch.Tensor) -> torch.Tensor:
        """``h_{0|k}`` (B, T, J, 3) from noisy poses ``h`` (B, T, J, 3) at steps ``k`` (B,)."""
        b, t, j, _ = h.shape
        temb = self.time_mlp(timestep_embedding(k, self.dim))
        z = (self.pose_embed(h) + self.context_proj(f2d) + self.history_proj(fhis)[:, None]
             + temb[:, None, None] + self.joint_pos)
        z = z.reshape(b * t, j, self.dim)
        for blk in self.blocks:
            z = blk(z)
        return self.head(z).reshape(b, t, j, 3)

    # ------------------------------------------------------------------ forward process

    def _prior_of(self, comp: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = like.shape
        return (self.prior.means[comp].to(like).reshape(shape), self.prior.stds[comp].to(like).reshape(shape))

    def q_sample(self, h0: torch.Tensor, k: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``h_k = mu + sqrt(abar_k) (h_0 - mu) + sqrt(1 - abar_k) sigma eps``, a component per frame drawn from
        its posterior under the prior."""
        b, t = h0.shape[:2]
        comp = self.prior.components_of(h0.reshape(b * t, -1), generator)
        mu, sd = self._prior_of(comp, h0)
        eps = torch.randn(h0.shape, generator=generator, device=h0.device, dtype=h0.dtype)
        a = self.abar.to(h0)[k].view(b, 1, 1, 1)
        return mu + a.sqrt() * (h0 - mu) + (1 - a).sqrt() * sd * eps

    def _history_inputs(self, batch: dict[str, Any], generator: torch.Generator | None):
        h2, h3 = batch.get("history_2d"), batch.get("history_3d")
        if h2 is None or h3 is None:
            return None, None, None
        has = batch.get("has_history")
        b = h2.shape[0]
        has = torch.ones(b, dtype=torch.bool, device=h2.device) if has is None else has.to(torch.bool)
        if self.null_history_prob > 0:
            drop = torch.rand(b, generator=generator, device=h2.device) < self.null_history_prob
            has = has & ~drop
        if self.history_noise > 0:  # the model's own past predictions are not exact (exposure bias)
            h3 = h3 + self.history_noise * torch.randn(h3.shape, generator=generator, device=h3.device,
                                                       dtype=h3.dtype)
        return h2, h3, has

    def training_prediction(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(``h_{0|k}``, target) for a training batch: a random step k per window, ``h_k`` from the GMM forward
        process, the denoiser's clean prediction (what ``LiftingTask`` scores)."""
        x, h0 = batch["keypoints_2d"], batch["poses_3d"]
        h2, h3, has = self._history_inputs(batch, None)
        f2d, fhis = self.encode(x, h2, h3, has)
        k = torch.randint(self.timesteps, (x.shape[0],), device=x.device)
        return self.denoise(self.q_sample(h0, k), k, f2d, fhis), h0

    def training_regulariser(self, pred: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict]:
        """``stpg_train_weight x E(h_{0|k})`` (the STPG terms as a training regulariser; the reprojection term
        only when the batch has ``intrinsics``)."""
        if self.energy is None or not self.stpg_train_weight:
            return pred.new_zeros(()), {}
        e = self.energy(pred, batch.get("keypoints_2d"), batch.get("intrinsics")).mean()
        return self.stpg_train_weight * e, {"loss_stpg": e.detach()}

    # ------------------------------------------------------------------ sampling

    def sample(self, x: torch.Tensor, history_2d: torch.Tensor | None = None, history_3d: torch.Tensor | None = None,
               intrinsics: Any = None, generator: torch.Generator | None = None, guidance: bool | None = None,
               hypotheses: int | None = None, return_hypotheses: bool = False) -> torch.Tensor:
        """DDIM sampling of ``hypotheses`` (N) pose sequences per window, guided by STPG (``guidance``: None = on
        when ``self.guidance``, the model's setting), averaged (``return_hypotheses``: (B, N, T, J, 3) instead)."""
        n = self.hypotheses if hypotheses is None else int(hypotheses)
        guide = (self.guidance if guidance is None else bool(guidance)) and self.energy is not None
        guide = guide and not getattr(self, "_no_guidance", False)
        if guidance and self.energy is None:
            raise ValueError("this StarPose has no STPG energy (built with stpg=False)")
        b, t, j, _ = x.shape
        f2d, fhis = self.encode(x, history_2d, history_3d)
        f2d, fhis = f2d.repeat_interleave(n, 0), fhis.repeat_interleave(n, 0)
        x_rep = x.repeat_interleave(n, 0)
        if intrinsics is not None and torch.is_tensor(intrinsics) and intrinsics.dim() >= 2:
            intrinsics = intrinsics.repeat_interleave(n, 0)
        comp = self.prior.draw_components(b * n * t, generator).to(x.device)
        mu, sd = self._prior_of(comp, x.new_zeros(b * n, t, j, 3))
        h = mu + sd * torch.randn(mu.shape, generator=generator, device=x.device, dtype=x.dtype)
        abar = self.abar.to(x)
        for (k, k_prev), rho in zip(self.steps, self.rhos):
            kk = torch.full((b * n,), k, device=x.device, dtype=torch.long)
            x0 = self.denoise(h, kk, f2d, fhis)
            if k_prev < 0:
                h = x0
            else:
                a, a_prev = abar[k], abar[k_prev]
                eps = (h - mu - a.sqrt() * (x0 - mu)) / ((1 - a).sqrt() * sd)
                h = mu + a_prev.sqrt() * (x0 - mu) + (1 - a_prev).sqrt() * sd * eps
            if guide and rho:  # the energies are means over the T frames: a step of rho x T per frame
                h = guided_update(h, x0, self.energy, rho * t, keypoints_2d=x_rep, intrinsics=intrinsics)
        h = h.reshape(b, n, t, j, 3)
        return h if return_hypotheses else h.mean(dim=1)

    def forward(self, x: torch.Tensor, history_2d: torch.Tensor | None = None,
                history_3d: torch.Tensor | None = None, intrinsics: Any = None) -> torch.Tensor:
        """Poses (B, T, J, 3) sampled with the model's seed (deterministic for a given input)."""
        g = torch.Generator(device=x.device).manual_seed(self.seed)
        return self.sample(x, history_2d, history_3d, intrinsics, generator=g)


def _starpose(num_frames: int, num_joints: int, defaults: dict, overrides: dict) -> StarPose:
    return StarPose(num_frames=num_frames, num_joints=num_joints, **{**defaults, **overrides})


def starpose(num_frames: int = 243, num_joints: int = 17, **overrides) -> StarPose:
    """The paper-sized StarPose: a MixSTE context encoder as released (dim 512, 8 + 8 blocks), a 5-layer
    GraFormer denoiser of width 128, L = 27 frames of history, K = 50, 5 DDIM steps, 5 hypotheses, STPG on."""
    return _starpose(num_frames, num_joints, dict(context_dim=512, context_depth=8, dim=128, depth=5), overrides)


def starpose_s(num_frames: int = 27, num_joints: int = 17, **overrides) -> StarPose:
    """StarPose sized for CPU experiments (the synthetic recipes' trunk): 27 frames, a MixSTE context of dim 64
    with 4 + 4 blocks, a 3-layer GraFormer of width 64, L = 27, K = 50, 5 DDIM steps, 5 hypotheses."""
    return _starpose(num_frames, num_joints, dict(context_dim=64, context_depth=4, dim=64, depth=3), overrides)


__all__ = ["BETA_SCHEDULES", "ChebGraphConv", "GaussianMixturePrior", "GraFormerBlock", "HPIM", "StarPose",
           "alphas_cumprod", "ddim_timesteps", "integration_graph_edges", "normalized_adjacency", "starpose",
           "starpose_s", "timestep_embedding"]
