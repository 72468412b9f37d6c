"""Coordinate-regression losses.

`SmoothL1Loss` is the L_reg term of DistilPose (Eq. 7): Smooth L1 on normalised coordinates with
per-keypoint target weights, as mmpose 0.x ``SmoothL1Loss(use_target_weight=True)`` computes it
(both prediction and target multiplied by the weight, then the mean over all N*K*2 values).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def smooth_l1_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    target_weight: torch.Tensor | None = None,
    beta: float = 1.0,
) -> torch.Tensor:
    """Smooth L1 between ``pred`` and ``target`` (both (N,K,C)), keypoints weighted by (N,K).

    Zero-weighted keypoints (not labelled, or outside the crop) contribute nothing but still count
    in the mean, as in the official implementation.
    """
    if pred.shape != target.shape:
        raise ValueError(f"smooth_l1_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    if target_weight is not None:
        if target_weight.shape != pred.shape[:2]:
            raise ValueError(
                f"smooth_l1_loss: target_weight {tuple(target_weight.shape)} must be {tuple(pred.shape[:2])}"
            )
        w = target_weight.to(pred.dtype).unsqueeze(-1)
        pred = pred * w
        target = target * w
    return F.smooth_l1_loss(pred, target, reduction="mean", beta=beta)


class SmoothL1Loss(nn.Module):
    """Smooth L1 on normalised keypoint coordinates with target weights (DistilPose L_reg)."""

    def __init__(self, use_target_weight: bool = True, beta: float = 1.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight
        self.beta = beta
        self.loss_weight = loss_weight

    def forward(
        self, pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        w = target_weight if self.use_target_weight else None
        return self.loss_weight * smooth_l1_loss(pred, target, w, self.beta)
