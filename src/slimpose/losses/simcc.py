"""SimCC / SimDR classification loss: ``KLDiscretLoss`` (Li et al., ECCV 2022; MMPose 1.x).

Per keypoint and axis, the KL divergence between the label distribution and ``softmax(beta * logits)``
over the bins, averaged over bins (``KLDivLoss(reduction='none')`` then a mean), weighted by the target
weight, summed over the batch, keypoints and both axes, divided by K (MMPose's reduction: the batch size
is not divided out). ``label_softmax`` turns the labels into ``softmax(label_beta * labels)`` first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KLDiscretLoss(nn.Module):
    """``sum_{axis, n, k} w_nk * mean_bins KL(label || softmax(beta * pred)) / K``."""

    def __init__(self, beta: float = 1.0, label_softmax: bool = False, label_beta: float = 10.0,
                 use_target_weight: bool = True) -> None:
        super().__init__()
        self.beta = beta
        self.label_softmax = label_softmax
        self.label_beta = label_beta
        self.use_target_weight = use_target_weight

    def _per_keypoint(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(pred * self.beta, dim=-1)
        if self.label_softmax:
            label = F.softmax(label * self.label_beta, dim=-1)
        return F.kl_div(log_p, label, reduction="none").mean(dim=-1)

    def forward(self, pred: tuple[torch.Tensor, torch.Tensor], target: tuple[torch.Tensor, torch.Tensor],
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        k = pred[0].shape[1]
        loss = pred[0].new_zeros(())
        for p, t in zip(pred, target):
            if p.shape != t.shape:
                raise ValueError(f"SimCC loss: prediction {tuple(p.shape)} and label {tuple(t.shape)} differ")
            per = self._per_keypoint(p.float(), t.float())
            if self.use_target_weight and target_weight is not None:
                per = per * target_weight.float()
            loss = loss + per.sum()
        return loss / k
