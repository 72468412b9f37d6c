"""Heatmap regression losses of the top-down heatmap models (HRNet / SimpleBaseline / TokenPose).

``KeypointMSELoss`` is HRNet's ``JointsMSELoss`` (deep-high-resolution-net ``lib/core/loss.py``, also
TokenPose's): for every joint the MSE between weighted predicted and target heatmaps, times 0.5,
averaged over joints. ``KeypointOHKMMSELoss`` is its online hard keypoint mining variant
(``JointsOHKMMSELoss``): per sample, only the ``topk`` joints with the largest loss are averaged.
"""

from __future__ import annotations

import torch
from torch import nn


def _check_shapes(output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None) -> None:
    if output.shape != target.shape:
        raise ValueError(
            f"heatmap loss: output shape {tuple(output.shape)} != target shape {tuple(target.shape)}"
        )
    if output.dim() != 4:
        raise ValueError(f"heatmap loss: expected (B,K,H,W) heatmaps, got shape {tuple(output.shape)}")
    if target_weight is not None and target_weight.shape[:2] != output.shape[:2]:
        raise ValueError(
            f"heatmap loss: target_weight shape {tuple(target_weight.shape)} "
            f"does not match (B,K)={tuple(output.shape[:2])}"
        )


def per_joint_mse(
    output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None
) -> torch.Tensor:
    """``0.5 * mean_pixels((w * (pred - gt))**2)`` per sample and joint, shape (B, K), computed in at least
    float32 (half-precision outputs of AMP are upcast)."""
    _check_shapes(output, target, target_weight)
    dtype = torch.promote_types(output.dtype, torch.float32)
    diff = output.to(dtype) - target.to(dtype)
    if target_weight is not None:
        diff = diff * target_weight.to(dtype).reshape(*output.shape[:2], 1, 1)
    return 0.5 * diff.pow(2).flatten(2).mean(dim=2)


class KeypointMSELoss(nn.Module):
    """HRNet ``JointsMSELoss``: ``0.5 * mean over joints of MSE(pred * w, gt * w)`` times ``loss_weight``."""

    def __init__(self, use_target_weight: bool = True, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.loss_weight = loss_weight

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        weight = target_weight if self.use_target_weight else None
        return per_joint_mse(output, target, weight).mean() * self.loss_weight


class KeypointOHKMMSELoss(nn.Module):
    """HRNet ``JointsOHKMMSELoss``: per sample, mean of the ``topk`` largest per-joint losses; batch mean."""

    def __init__(self, use_target_weight: bool = True, topk: int = 8, loss_weight: float = 1.0) -> None:
        super().__init__()
        if topk <= 0:
            raise ValueError(f"KeypointOHKMMSELoss: topk must be positive, got {topk}")
        self.use_target_weight = use_target_weight
        self.topk = topk
        self.loss_weight = loss_weight

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        weight = target_weight if self.use_target_weight else None
        losses = per_joint_mse(output, target, weight)  # (B, K)
        k = min(self.topk, losses.shape[1])
        hard, _ = torch.topk(losses, k=k, dim=1, sorted=False)
        return hard.mean(dim=1).mean() * self.loss_weight
