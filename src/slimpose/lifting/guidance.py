"""STPG: StarPose's training-free spatial-temporal physical guidance for diffusion lifters.

StarPose (arXiv 2508.02056; reference ``official_implementations_2.md`` §4b, third-party summaries only, the
official code is not reachable) guides each sampling step of its diffusion lifter with an energy of the
predicted clean sample: ``h_{k-1} -= rho_k grad E(h_{0|k})``, where

``E = lambda_p reprojection + lambda_s symmetry + lambda_b bone constancy + lambda_d smoothness``,
``lambda_p = lambda_s = 1``, ``lambda_b = lambda_d = 0.01``.

Poses are (B, T, J, 3) tensors in metres, root-relative in the camera frame (what slimpose's lifters
predict). Every term returns the per-sample energy ``(B,)`` by default (``reduction="none"``; ``"mean"`` and
``"sum"`` reduce over the batch). The terms (the norms, the bone pairing, the weights and the root handling
are choices where the summary is silent; ``docs/lifting.md`` lists them):

* ``symmetry_energy``: mean over frames and mirrored bone pairs (:func:`symmetric_bone_pairs`) of
  ``(l_left - l_right)^2``;
* ``bone_constancy_energy``: the variance over the T frames (population, ``1/T``) of each bone's length,
  averaged over bones;
* ``smoothness_energy``: mean over T - 1 frame pairs and J joints of ``w_j ||x_{t+1} - x_t||^2``, plus
  optionally ``second_order`` x the same of second differences;
* ``reprojection_energy``: mean over T and J of ``c_tj ||proj(x_tj + root_t) - u_tj||^2`` in normalised screen
  coordinates (``slimpose.lifting.cameras.project_to_2d``), with the root trajectory given or solved per
  frame in closed form (:func:`solve_root_trajectory`).

Guidance only needs tensors, so it works with any diffusion lifter: :func:`stpg_guide` takes gradient steps
on a predicted clean sample, :func:`guided_update` applies ``h_prev - rho grad_{x0} E(x0_hat)`` inside a
DDIM loop; both run their own ``torch.enable_grad()`` on a detached copy (usable under ``torch.no_grad()``).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from slimpose.lifting.cameras import Camera, project_to_2d, project_to_2d_linear
from slimpose.lifting.data.h36m import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_PARENTS

__all__ = [
    "bones", "symmetric_bone_pairs", "bone_lengths", "symmetry_energy", "bone_constancy_energy",
    "smoothness_energy", "solve_root_trajectory", "reprojection_energy", "STPGEnergy", "energy_gradient",
    "stpg_guide", "guided_update", "rho_schedule", "STPG_DEFAULT_WEIGHTS",
]

#: StarPose's reported weights ``(lambda_p, lambda_s, lambda_b, lambda_d)``.
STPG_DEFAULT_WEIGHTS: tuple[float, float, float, float] = (1.0, 1.0, 0.01, 0.01)

_REDUCTIONS = ("none", "mean", "sum")


# ---------------------------------------------------------------------------------------------------
# skeleton helpers

def bones(parents: Sequence[int]) -> list[tuple[int, int]]:
    """``(child, parent)`` of every joint with a parent (``parents[j] >= 0``), in joint order.

    For :data:`H36M_PARENTS` bone ``i`` is the bone ending at joint ``i + 1`` (16 bones)."""
    return [(c, int(p)) for c, p in enumerate(parents) if int(p) >= 0]


def symmetric_bone_pairs(parents: Sequence[int] = H36M_PARENTS, left: Sequence[int] = H36M_JOINTS_LEFT,
                         right: Sequence[int] = H36M_JOINTS_RIGHT) -> list[tuple[int, int]]:
    """Pairs ``(i, i')`` of indices into :func:`bones` that mirror each other, left bone first.

    ``left[k]`` mirrors ``right[k]`` (the order VideoPose3D's flip swaps them in); a centre joint mirrors
    itself. Bone ``(c, p)`` with a left child mirrors ``(c', p')``, ``c'`` the mirror of ``c`` and ``p'`` the
    mirror of ``p`` (``p`` itself when ``p`` is a centre joint). On H36M-17: the six limb pairs
    root-hip, hip-knee, knee-foot, thorax-shoulder, shoulder-elbow, elbow-wrist."""
    left, right = [int(j) for j in left], [int(j) for j in right]
    if len(left) != len(right):
        raise ValueError(f"left ({len(left)}) and right ({len(right)}) joint lists differ in length")
    if set(left) & set(right) or len(set(left)) != len(left) or len(set(right)) != len(right):
        raise ValueError("left and right joint lists must be disjoint and without repeats")
    n = len(parents)
    if any(not 0 <= j < n for j in left + right):
        raise ValueError(f"left / right joints must be in [0, {n})")
    mirror = list(range(n))
    for a, b in zip(left, right):
        mirror[a], mirror[b] = b, a
    index = {bone: i for i, bone in enumerate(bones(parents))}
    pairs = []
    for i, (c, p) in enumerate(bones(parents)):
        if c not in left:
            continue
        twin = (mirror[c], mirror[p])
        if twin not in index:
            raise ValueError(f"bone {(c, p)} has no mirror bone {twin} in the skeleton")
        pairs.append((i, index[twin]))
    return pairs


def bone_lengths(poses: torch.Tensor, parents: Sequence[int] = H36M_PARENTS) -> torch.Tensor:
    """``(..., T, J, 3)`` poses -> ``(..., T, num_bones)`` Euclidean bone lengths, bones as :func:`bones`."""
    if poses.dim() < 2 or poses.shape[-1] != 3 or poses.shape[-2] != len(parents):
        raise ValueError(f"poses must be (..., J={len(parents)}, 3), got {tuple(poses.shape)}")
    pairs = bones(parents)
    child = torch.tensor([c for c, _ in pairs], device=poses.device)
    parent = torch.tensor([p for _, p in pairs], device=poses.device)
    return torch.linalg.vector_norm(poses[..., child, :] - poses[..., parent, :], dim=-1)


# ---------------------------------------------------------------------------------------------------
# energy terms

def _check(x: torch.Tensor, parents: Sequence[int] | None = None) -> None:
    if x.dim() != 4 or x.shape[-1] != 3:
        raise ValueError(f"poses must be (B, T, J, 3), got {tuple(x.shape)}")
    if parents is not None and x.shape[2] != len(parents):
        raise ValueError(f"poses have {x.shape[2]} joints, the skeleton {len(parents)}")


def _reduce(e: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return e
    if reduction == "mean":
        return e.mean()
    if reduction == "sum":
        return e.sum()
    raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")


def symmetry_energy(x: torch.Tensor, parents: Sequence[int] = H36M_PARENTS,
                    left: Sequence[int] = H36M_JOINTS_LEFT, right: Sequence[int] = H36M_JOINTS_RIGHT,
                    reduction: str = "none") -> torch.Tensor:
    """Mean over frames and mirrored bone pairs of ``(l_left - l_right)^2`` (StarPose's left/right bone-length
    symmetry, squared difference chosen)."""
    _check(x, parents)
    pairs = symmetric_bone_pairs(parents, left, right)
    if not pairs:
        return _reduce(x.new_zeros(x.shape[0]), reduction)
    lengths = bone_lengths(x, parents)
    a = lengths[..., [i for i, _ in pairs]]
    b = lengths[..., [j for _, j in pairs]]
    return _reduce((a - b).square().mean(dim=(1, 2)), reduction)


def bone_constancy_energy(x: torch.Tensor, parents: Sequence[int] = H36M_PARENTS,
                          reduction: str = "none") -> torch.Tensor:
    """Variance over the T frames (``1/T``) of each bone's length, averaged over bones (StarPose's bone-length
    variance over the window). Zero for T = 1."""
    _check(x, parents)
    lengths = bone_lengths(x, parents)                                   # (B, T, nb)
    var = (lengths - lengths.mean(dim=1, keepdim=True)).square().mean(dim=1)
    return _reduce(var.mean(dim=-1), reduction)


def smoothness_energy(x: torch.Tensor, joint_weights: torch.Tensor | Sequence[float] | None = None,
                      second_order: float = 0.0, reduction: str = "none") -> torch.Tensor:
    """Weighted frame differences (StarPose's temporal term): mean over the T - 1 pairs and J joints of
    ``w_j ||x_{t+1} - x_t||^2`` plus ``second_order`` x the mean over T - 2 and J of
    ``w_j ||x_{t+1} - 2 x_t + x_{t-1}||^2``. ``joint_weights`` default uniform (1). Zero for T = 1."""
    _check(x)
    B, T, J, _ = x.shape
    w = (x.new_ones(J) if joint_weights is None
         else torch.as_tensor(joint_weights, dtype=x.dtype, device=x.device))
    if w.shape != (J,):
        raise ValueError(f"joint weights must be ({J},), got {tuple(w.shape)}")
    e = x.new_zeros(B)
    if T > 1:
        d1 = x[:, 1:] - x[:, :-1]
        e = e + (w * d1.square().sum(-1)).mean(dim=(1, 2))
        if second_order and T > 2:
            d2 = d1[:, 1:] - d1[:, :-1]
            e = e + float(second_order) * (w * d2.square().sum(-1)).mean(dim=(1, 2))
    return _reduce(e, reduction)


def _intrinsics(intrinsics: Any, x: torch.Tensor) -> torch.Tensor:
    """Intrinsics -> ``(B or 1, T or 1, 1, 9)`` in ``x``'s dtype and device: a :class:`Camera` (its normalised
    9-vector), or ``(9,)`` / ``(4,)`` ``[fx, fy, cx, cy]`` (no distortion), ``(B, 9 | 4)``, ``(B, T, 9 | 4)``."""
    if isinstance(intrinsics, Camera):
        intrinsics = intrinsics.intrinsic
    p = (intrinsics.to(x) if torch.is_tensor(intrinsics)
         else torch.as_tensor(np.asarray(intrinsics, dtype=np.float64), dtype=x.dtype, device=x.device))
    if p.shape[-1] == 4:
        p = torch.cat([p, p.new_zeros(p.shape[:-1] + (5,))], dim=-1)
    if p.shape[-1] != 9 or p.dim() > 3:
        raise ValueError("intrinsics must be a Camera or (..., 9) [fx, fy, cx, cy, k1, k2, k3, p1, p2] / (..., 4) "
                         f"[fx, fy, cx, cy] with at most (B, T) in front, got shape {tuple(p.shape)}")
    if p.dim() == 1:
        p = p[None, None]
    elif p.dim() == 2:
        p = p[:, None]
    return p[:, :, None]                                                 # (B|1, T|1, 1, 9)


def solve_root_trajectory(x: torch.Tensor, keypoints_2d: torch.Tensor, intrinsics: Any,
                          confidence: torch.Tensor | None = None, damping: float = 1e-8,
                          prior_depth: float = 5.0) -> torch.Tensor:
    """The per-frame root translation ``(B, T, 3)`` that best places root-relative ``x`` on the 2-D keypoints.

    Closed form: with the pinhole part of the intrinsics, ``a = (u - c) / f`` and ``t = (tx, ty, tz)``, each
    joint gives ``tx - a_x tz = a_x Z - X`` and ``ty - a_y tz = a_y Z - Y``; the (confidence-weighted) linear
    least squares over the J joints is solved by its 3x3 normal equations. Exact for noise-free pinhole
    keypoints; distortion is ignored in the solve. Differentiable in ``x``. ``damping`` adds a tiny ridge pulling
    the root towards ``(0, 0, prior_depth)`` (metres), so that a frame whose joints all have zero confidence (or
    only one has any) gets that prior instead of a singular system; it moves a well-posed solve by ~1e-8."""
    _check(x)
    if keypoints_2d.shape != x.shape[:-1] + (2,):
        raise ValueError(f"keypoints_2d must be {tuple(x.shape[:-1]) + (2,)}, got {tuple(keypoints_2d.shape)}")
    p = _intrinsics(intrinsics, x)
    f, c = p[..., 0:2], p[..., 2:4]
    a = (keypoints_2d.to(x) - c) / f                                     # (B, T, J, 2)
    w = x.new_ones(x.shape[:-1]) if confidence is None else confidence.to(x).expand(x.shape[:-1])
    one, zero = torch.ones_like(a[..., 0]), torch.zeros_like(a[..., 0])
    rows = torch.stack([torch.stack([one, zero, -a[..., 0]], -1),
                        torch.stack([zero, one, -a[..., 1]], -1)], dim=-2)    # (B, T, J, 2, 3)
    rhs = a * x[..., 2:3] - x[..., :2]                                   # (B, T, J, 2)
    wr = rows * w[..., None, None]
    ata = torch.einsum("btjki,btjkl->btil", wr, rows)
    atb = torch.einsum("btjki,btjk->bti", wr, rhs)
    if damping > 0:
        ata = ata + damping * torch.eye(3, dtype=x.dtype, device=x.device)
        atb = atb + damping * x.new_tensor([0.0, 0.0, float(prior_depth)])
    return torch.linalg.solve(ata, atb)


def reprojection_energy(x: torch.Tensor, keypoints_2d: torch.Tensor, intrinsics: Any,
                        root_trajectory: torch.Tensor | None = None, confidence: torch.Tensor | None = None,
                        distort: bool = True, reduction: str = "none") -> torch.Tensor:
    """Mean over T and J of ``c_tj ||proj(x_tj + root_t) - u_tj||^2`` (StarPose's reprojection term).

    ``keypoints_2d`` (B, T, J, 2) in normalised screen coordinates (``normalize_screen_coordinates``), the
    units ``project_to_2d`` returns with normalised intrinsics; ``intrinsics``: a :class:`Camera`, ``(9,)``,
    ``(4,)`` ``[fx, fy, cx, cy]``, ``(B, 9 | 4)`` or ``(B, T, 9 | 4)``;
    ``distort`` chooses ``project_to_2d`` (Human3.6M distortion) or ``project_to_2d_linear``.
    ``root_trajectory`` (B, T, 3) or (B, T, 1, 3): the root in the camera frame, metres; ``None`` solves it
    per frame with :func:`solve_root_trajectory` (the gradient then flows through the solve as well).
    ``confidence`` (B, T, J) weights the joints (default 1)."""
    _check(x)
    if keypoints_2d.shape != x.shape[:-1] + (2,):
        raise ValueError(f"keypoints_2d must be {tuple(x.shape[:-1]) + (2,)}, got {tuple(keypoints_2d.shape)}")
    if root_trajectory is None:
        root = solve_root_trajectory(x, keypoints_2d, intrinsics, confidence)[:, :, None]
    else:
        root = root_trajectory.to(x)
        root = root[:, :, None] if root.dim() == 3 else root
        if root.shape != (x.shape[0], x.shape[1], 1, 3):
            raise ValueError(f"root_trajectory must be (B, T, 3) or (B, T, 1, 3), got {tuple(root_trajectory.shape)}")
    p = _intrinsics(intrinsics, x)
    proj = (project_to_2d if distort else project_to_2d_linear)(x + root, p)
    err = (proj - keypoints_2d.to(x)).square().sum(-1)                 # (B, T, J)
    if confidence is not None:
        err = err * confidence.to(x).expand(err.shape)
    return _reduce(err.mean(dim=(1, 2)), reduction)


class STPGEnergy(nn.Module):
    """``E = lambda_p reprojection + lambda_s symmetry + lambda_b bone constancy + lambda_d smoothness``
    (StarPose STPG; defaults 1, 1, 0.01, 0.01). A weight of 0 or ``None`` switches its term off; the
    reprojection term is also skipped when ``intrinsics`` or ``keypoints_2d`` is not given.

    ``forward(x, keypoints_2d=None, intrinsics=None, root_trajectory=None, confidence=None)`` -> ``(B,)``
    (``reduction="none"``) or a scalar; :meth:`terms` returns the unweighted terms that are on."""

    def __init__(self, lambda_p: float | None = 1.0, lambda_s: float | None = 1.0,
                 lambda_b: float | None = 0.01, lambda_d: float | None = 0.01,
                 parents: Sequence[int] = H36M_PARENTS, left: Sequence[int] = H36M_JOINTS_LEFT,
                 right: Sequence[int] = H36M_JOINTS_RIGHT, joint_weights: Sequence[float] | None = None,
                 second_order: float = 0.0, distort: bool = True, reduction: str = "none") -> None:
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.weights = {"reprojection": float(lambda_p or 0.0), "symmetry": float(lambda_s or 0.0),
                        "bone_constancy": float(lambda_b or 0.0), "smoothness": float(lambda_d or 0.0)}
        self.parents, self.left, self.right = tuple(parents), tuple(left), tuple(right)
        symmetric_bone_pairs(self.parents, self.left, self.right)         # validate the skeleton now
        self.joint_weights = None if joint_weights is None else tuple(float(w) for w in joint_weights)
        self.second_order = float(second_order)
        self.distort = bool(distort)
        self.reduction = reduction

    def terms(self, x: torch.Tensor, keypoints_2d: torch.Tensor | None = None, intrinsics: Any = None,
              root_trajectory: torch.Tensor | None = None,
              confidence: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """The unweighted ``(B,)`` terms whose weight is non-zero (and reprojection only with 2-D and intrinsics)."""
        _check(x, self.parents)
        out: dict[str, torch.Tensor] = {}
        w = self.weights
        if w["reprojection"] and intrinsics is not None and keypoints_2d is not None:
            out["reprojection"] = reprojection_energy(x, keypoints_2d, intrinsics, root_trajectory, confidence,
                                                      distort=self.distort)
        if w["symmetry"]:
            out["symmetry"] = symmetry_energy(x, self.parents, self.left, self.right)
        if w["bone_constancy"]:
            out["bone_constancy"] = bone_constancy_energy(x, self.parents)
        if w["smoothness"]:
            out["smoothness"] = smoothness_energy(x, self.joint_weights, self.second_order)
        return out

    def forward(self, x: torch.Tensor, keypoints_2d: torch.Tensor | None = None, intrinsics: Any = None,
                root_trajectory: torch.Tensor | None = None,
                confidence: torch.Tensor | None = None) -> torch.Tensor:
        e = x.new_zeros(x.shape[0])
        for name, value in self.terms(x, keypoints_2d, intrinsics, root_trajectory, confidence).items():
            e = e + self.weights[name] * value
        return _reduce(e, self.reduction)


# ---------------------------------------------------------------------------------------------------
# guidance

EnergyFn = Callable[..., torch.Tensor]


def energy_gradient(x: torch.Tensor, energy: EnergyFn, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """``(E(x), grad_x sum_b E(x)_b)``, both detached, computed under ``torch.enable_grad()`` on a detached copy
    of ``x`` (so inside ``torch.no_grad()`` too); ``kwargs`` go to ``energy``. Per-sample energies
    (``reduction="none"``, the default) are summed, so each sample's gradient is its own energy's, independent of
    the batch size (a ``"mean"`` energy gives 1 / B of it). An energy that does not depend on ``x`` (every term
    off, one frame for the temporal terms, reprojection without intrinsics) gives a zero gradient. Under
    ``torch.inference_mode()`` the gradient is taken on copies made outside it (inference tensors take no part
    in autograd)."""
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        kwargs = {k: v.clone() if torch.is_tensor(v) and v.is_inference() else v for k, v in kwargs.items()}
        e = energy(xg, **kwargs)
        if not (torch.is_tensor(e) and e.requires_grad):
            e = torch.as_tensor(e, dtype=x.dtype, device=x.device)
            return e.detach(), torch.zeros_like(xg)
        (grad,) = torch.autograd.grad(e.sum(), xg, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(xg)
    return e.detach(), grad.detach()


def _step(step_size: float | torch.Tensor, like: torch.Tensor) -> float | torch.Tensor:
    if not torch.is_tensor(step_size):
        return float(step_size)
    if step_size.dim() == 1 and step_size.numel() == like.shape[0]:
        return step_size.to(like).view(-1, *([1] * (like.dim() - 1)))    # one step size per sample
    return step_size.to(like)


def stpg_guide(x0_hat: torch.Tensor, energy: EnergyFn, step_size: float | torch.Tensor, steps: int = 1,
               **kwargs: Any) -> torch.Tensor:
    """``steps`` gradient steps ``x <- x - step_size grad_x E(x)`` from the predicted clean poses ``x0_hat``;
    returns the guided poses, detached (``x0_hat`` is not modified). ``step_size``: a number or ``(B,)``."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x = x0_hat.detach().clone()
    step = _step(step_size, x)
    for _ in range(int(steps)):
        _, grad = energy_gradient(x, energy, **kwargs)
        x = x - step * grad
    return x


def guided_update(h_prev: torch.Tensor, x0_hat: torch.Tensor, energy: EnergyFn, rho: float | torch.Tensor,
                  **kwargs: Any) -> torch.Tensor:
    """StarPose's ``h_{k-1} - rho_k grad E(h_{0|k})``: the gradient is taken at the predicted clean sample
    ``x0_hat`` and applied to the next latent ``h_prev`` (same shape, same units as the poses). Detached."""
    if h_prev.shape != x0_hat.shape:
        raise ValueError(f"h_prev {tuple(h_prev.shape)} and x0_hat {tuple(x0_hat.shape)} differ")
    _, grad = energy_gradient(x0_hat, energy, **kwargs)
    return h_prev.detach() - _step(rho, grad) * grad


def rho_schedule(rho: float, num_steps: int, kind: str = "constant") -> list[float]:
    """Step sizes ``rho_k`` for ``num_steps`` sampling steps, in sampling order (noisiest first; the summary
    leaves the schedule open): ``"constant"`` (``rho``), ``"increasing"`` (``rho (i + 1) / n``, strongest at
    the last, cleanest step) or ``"decreasing"`` (``rho (n - i) / n``)."""
    if num_steps < 1:
        raise ValueError(f"num_steps must be >= 1, got {num_steps}")
    n = int(num_steps)
    if kind == "constant":
        return [float(rho)] * n
    if kind == "increasing":
        return [float(rho) * (i + 1) / n for i in range(n)]
    if kind == "decreasing":
        return [float(rho) * (n - i) / n for i in range(n)]
    raise ValueError(f"kind must be 'constant', 'increasing' or 'decreasing', got {kind!r}")
