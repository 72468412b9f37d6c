"""Training losses and flips of the video lifters (MixSTE / HoT ``common/loss.py``, VideoPose3D generators).

Poses are (B, T, J, 3) tensors: the camera frame, root-relative.

* ``weighted_mpjpe(pred, target, w)`` = mean over B, T, J of ``w_j ||pred - target||``;
* ``temporal_consistency(pred, w)`` = mean over B, T - 1, J and the 3 axes of ``w_j (pred_{t+1} - pred_t)^2``.
  This is the official TC term: it smooths the prediction alone, and the target is not used;
* ``mean_velocity(pred, target)`` = mean over B, T - 1, J of ``||(pred_{t+1} - pred_t) - (target_{t+1} -
  target_t)||`` (the official ``mean_velocity``, frames on axis 1);
* ``LiftingLoss``: ``weighted_mpjpe + 0.5 TC + 2.0 velocity`` with MixSTE's joint weights
  (``MIXSTE_JOINT_WEIGHTS``), the loss of MixSTE, HoT and KTPFormer.

Flips (VideoPose3D ``generators.py`` / ``run.py``): ``flip_keypoints`` negates x and swaps the left and right
joints, both for 2-D keypoints (normalised screen coordinates: a mirror about the image centre) and for 3-D
poses (camera x). ``flip_test(model, keypoints_2d, left, right)`` averages the prediction with the un-flipped
prediction of the flipped input.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from slimpose.lifting.data.h36m import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT

#: MixSTE / HoT ``w_mpjpe`` in the Human3.6M 17-joint order (hips, knees 2.5; ankles, wrists 4; ...).
MIXSTE_JOINT_WEIGHTS: tuple[float, ...] = (1, 1, 2.5, 2.5, 1, 2.5, 2.5, 1, 1, 1, 1.5, 1.5, 4, 4, 1.5, 4, 4)


def _check(pred: torch.Tensor, target: torch.Tensor | None = None) -> None:
    if pred.dim() != 4:
        raise ValueError(f"poses must be (B, T, J, C), got {tuple(pred.shape)}")
    if target is not None and target.shape != pred.shape:
        raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ")


def _joint_weights(w: torch.Tensor | Sequence[float], pred: torch.Tensor) -> torch.Tensor:
    w = torch.as_tensor(w, dtype=pred.dtype, device=pred.device)
    if w.shape != (pred.shape[2],):
        raise ValueError(f"joint weights must be ({pred.shape[2]},), got {tuple(w.shape)}")
    return w


def weighted_mpjpe(pred: torch.Tensor, target: torch.Tensor, w: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Mean of ``w_j`` x the per-joint Euclidean error (official ``weighted_mpjpe``)."""
    _check(pred, target)
    return (_joint_weights(w, pred) * torch.norm(pred - target, dim=-1)).mean()


def temporal_consistency(pred: torch.Tensor, w: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Mean of ``w_j`` x the squared frame-to-frame change of the prediction, over every axis (official TC)."""
    _check(pred)
    diff = pred[:, 1:] - pred[:, :-1]
    return (_joint_weights(w, pred)[:, None] * diff.square()).mean()


def mean_velocity(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-joint velocity error over consecutive frames (official ``mean_velocity``, training form)."""
    _check(pred, target)
    return torch.norm((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1]), dim=-1).mean()


class LiftingLoss(nn.Module):
    """``weighted_mpjpe(w) + tc x temporal_consistency(w) + velocity x mean_velocity`` (MixSTE / HoT: 0.5, 2.0).

    ``forward(pred, target) -> (loss, logs)``. For seq2frame models (TPC-MixSTE's single frame) the two
    temporal terms need at least two frames and are skipped (zero) otherwise.
    """

    def __init__(self, joint_weights: Sequence[float] = MIXSTE_JOINT_WEIGHTS, tc: float = 0.5,
                 velocity: float = 2.0) -> None:
        super().__init__()
        self.register_buffer("joint_weights", torch.tensor(joint_weights, dtype=torch.float32), persistent=False)
        self.tc = float(tc)
        self.velocity = float(velocity)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        w = self.joint_weights.to(pred.dtype)
        p1 = weighted_mpjpe(pred, target, w)
        zero = pred.new_zeros(())
        tc = temporal_consistency(pred, w) if pred.shape[1] > 1 else zero
        vel = mean_velocity(pred, target) if pred.shape[1] > 1 else zero
        loss = p1 + self.tc * tc + self.velocity * vel
        return loss, {"loss_wmpjpe": p1.detach(), "loss_tc": tc.detach(), "loss_velocity": vel.detach()}


def flip_keypoints(x: torch.Tensor, left: Sequence[int] = H36M_JOINTS_LEFT,
                   right: Sequence[int] = H36M_JOINTS_RIGHT) -> torch.Tensor:
    """(..., J, C) keypoints or poses mirrored: x negated, left and right joints swapped (VideoPose3D)."""
    out = x.clone()
    out[..., 0] = -out[..., 0]
    left, right = list(left), list(right)
    out[..., left + right, :] = out[..., right + left, :]
    return out


def flip_test(model: Callable[[torch.Tensor], torch.Tensor], keypoints_2d: torch.Tensor,
              left: Sequence[int] = H36M_JOINTS_LEFT, right: Sequence[int] = H36M_JOINTS_RIGHT) -> torch.Tensor:
    """The mean of ``model(x)`` and the un-flipped ``model(flip(x))`` (VideoPose3D / MixSTE test-time flip).

    A model that chooses its frames (``forward_kept``: TPC-MixSTE) keeps the plain pass's choice for the
    mirrored pass, as HoT's ``main_mixste_tpc.py`` test does."""
    mirrored = flip_keypoints(keypoints_2d, left, right)
    if hasattr(model, "forward_kept") and hasattr(model, "center_position"):
        from slimpose.lifting.models.pruning import gather_frames

        kept, index = model.forward_kept(keypoints_2d)
        plain = gather_frames(kept, model.center_position(index).unsqueeze(1))
        flipped = model(mirrored, index)
    else:
        plain, flipped = model(keypoints_2d), model(mirrored)
    return (plain + flip_keypoints(flipped, left, right)) * 0.5
