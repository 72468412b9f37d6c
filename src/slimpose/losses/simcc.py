"""SimCC / SimDR classification losses (Li et al., ECCV 2022; official leeyegy/SimCC and MMPose 1.x).

One criterion, three published reductions. Per keypoint and axis the KL divergence between the label
distribution and ``softmax(beta * logits)`` is reduced over the bins (``bins='mean'``: ``KLDiscretLoss``;
``'sum'``: the official SimDR ``NMTCritierion``), multiplied by the target weight, summed over the batch,
the keypoints and both axes, and divided by ``normalizer``:

* ``'keypoints'``: ``K`` (MMPose 1.x ``KLDiscretLoss``: the batch is not divided out);
* ``'batch_keypoints'``: ``N K`` (official SA-SimDR ``KLDiscretLoss``: a mean over the batch per joint);
* ``'batch'``: ``N`` (official SimDR ``NMTCritierion``: summed over joints, mean over the batch).

SimDR's labels are one-hot with label smoothing (``1 - eps`` at ``round(x k)``, ``eps / (L - 1)``
elsewhere, eps 0.1: ``SimCCLabel(smoothing_type='standard')``); SA-SimDR's are Gaussians. ``label_softmax``
turns the labels into ``softmax(label_beta * labels)`` first (MMPose).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

BIN_REDUCTIONS = ("mean", "sum")
NORMALIZERS = ("keypoints", "batch_keypoints", "batch")


class KLDiscretLoss(nn.Module):
    """``sum_{axis, n, k} w_nk * reduce_bins KL(label || softmax(beta * pred)) / normalizer``."""

    def __init__(self, beta: float = 1.0, label_softmax: bool = False, label_beta: float = 10.0,
                 use_target_weight: bool = True, bins: str = "mean", normalizer: str = "keypoints") -> None:
        super().__init__()
        if bins not in BIN_REDUCTIONS:
            raise ValueError(f"bins must be one of {BIN_REDUCTIONS}, got {bins!r}")
        if normalizer not in NORMALIZERS:
            raise ValueError(f"normalizer must be one of {NORMALIZERS}, got {normalizer!r}")
        self.beta = beta
        self.label_softmax = label_softmax
        self.label_beta = label_beta
        self.use_target_weight = use_target_weight
        self.bins = bins
        self.normalizer = normalizer

    def _per_keypoint(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(pred * self.beta, dim=-1)
        if self.label_softmax:
            label = F.softmax(label * self.label_beta, dim=-1)
        kl = F.kl_div(log_p, label, reduction="none")
        return kl.mean(dim=-1) if self.bins == "mean" else kl.sum(dim=-1)

    def forward(self, pred: tuple[torch.Tensor, torch.Tensor], target: tuple[torch.Tensor, torch.Tensor],
                target_weight: torch.Tensor | None = None) -> torch.Tensor:
        n, k = pred[0].shape[:2]
        loss = pred[0].new_zeros(())
        for p, t in zip(pred, target):
            if p.shape != t.shape:
                raise ValueError(f"SimCC loss: prediction {tuple(p.shape)} and label {tuple(t.shape)} differ")
            per = self._per_keypoint(p.float(), t.float())
            if self.use_target_weight and target_weight is not None:
                per = per * target_weight.float()
            loss = loss + per.sum()
        if self.normalizer == "keypoints":
            return loss / k
        if self.normalizer == "batch_keypoints":
            return loss / (n * k)
        return loss / n
