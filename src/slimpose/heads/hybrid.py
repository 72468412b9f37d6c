"""The hybrid head: heatmaps and keypoint regression from one encoder, trained together (UniTransPose).

The model outputs ``(heatmaps (B, K, h, w), regression (B, K, 5))``. Training adds the heatmap loss
(``HeatmapHead``, MSE) and ``reg_weight`` x the Smooth-L1 regression loss (``RegressionHead``); the targets of
both come from one ``HybridCodec.encode`` (the regression's under ``reg_target`` / ``reg_target_weight``).
``decode_from`` picks the prediction: ``'heatmap'`` (default; keypoints and scores from the heatmaps),
``'regression'`` (the regressed coordinates; scores from the heatmap maxima, since the regression's score
channel is not trained) or ``'mean'`` (the average of both coordinates, heatmap scores). The flip test flips each output with its own head's rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from slimpose.heads.base import FlipPairs, Head
from slimpose.heads.heatmap import HeatmapHead
from slimpose.heads.regression import RegressionHead

DECODE_FROM = ("heatmap", "regression", "mean")


class HybridCodec:
    """The heatmap codec's targets plus the regression label's, prefixed ``reg_``."""

    def __init__(self, heatmap: Any, regression: Any) -> None:
        self.heatmap = heatmap
        self.regression = regression
        self.input_size = heatmap.input_size

    def __repr__(self) -> str:
        return f"HybridCodec({self.heatmap!r}, {self.regression!r})"

    def encode(self, keypoints: Any, weights: Any) -> dict[str, np.ndarray]:
        out = dict(self.heatmap.encode(keypoints, weights))
        for key, value in self.regression.encode(keypoints, weights).items():
            out[f"reg_{key}"] = value
        return out


class HybridDecode(nn.Module):
    """(heatmaps, regression) -> (keypoints, scores) inside an exported graph, as ``HybridHead.decode``."""

    def __init__(self, heatmap: nn.Module, regression: nn.Module, decode_from: str) -> None:
        super().__init__()
        self.heatmap = heatmap
        self.regression = regression
        self.decode_from = decode_from

    def forward(self, output: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, regression = output
        keypoints, scores = self.heatmap(heatmaps)
        if self.decode_from == "heatmap":
            return keypoints, scores
        reg_keypoints, _ = self.regression(regression)
        if self.decode_from == "regression":
            return reg_keypoints, scores
        return (keypoints + reg_keypoints) * 0.5, scores


class HybridHead(Head):
    """Heatmap + regression outputs of one model (UniTransPose's hybrid decoder); see the module docstring."""

    output_names = ("heatmaps", "regression")

    def __init__(self, heatmap: HeatmapHead, regression: RegressionHead, reg_weight: float = 1.0,
                 decode_from: str = "heatmap") -> None:
        if decode_from not in DECODE_FROM:
            raise ValueError(f"decode_from must be one of {DECODE_FROM}, got {decode_from!r}")
        super().__init__(HybridCodec(heatmap.codec, regression.codec))
        self.heatmap = heatmap
        self.regression = regression
        self.reg_weight = float(reg_weight)
        self.decode_from = decode_from

    @classmethod
    def from_config(cls, cfg: Any, model: nn.Module) -> "HybridHead":
        """The heatmap head of ``cfg`` (codec, sigma, UDP, loss) and a constant-score regression head; the
        model's ``reg_weight`` (default 1) and ``decode_from`` (default 'heatmap'), set through
        ``model.overrides`` like any model argument."""
        regression = RegressionHead(tuple(model.input_size), "constant", cfg.smooth_l1_beta)
        return cls(HeatmapHead.from_config(cfg, model), regression, float(getattr(model, "reg_weight", 1.0)),
                   str(getattr(model, "decode_from", "heatmap")))

    def loss(self, output: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        heatmaps, regression = output
        hm_loss, logs = self.heatmap.loss(heatmaps, batch)
        reg_loss = self.regression.regression_loss(regression, batch["reg_target"], batch["reg_target_weight"])
        logs = {**logs, "loss_reg": reg_loss.detach()}
        return hm_loss + self.reg_weight * reg_loss, logs

    def flip_back(self, output: tuple[torch.Tensor, torch.Tensor], flip_pairs: FlipPairs
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        heatmaps, regression = output
        return self.heatmap.flip_back(heatmaps, flip_pairs), self.regression.flip_back(regression, flip_pairs)

    def decode(self, output: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        heatmaps, regression = output
        keypoints, scores = self.heatmap.decode(heatmaps)
        if self.decode_from == "heatmap":
            return keypoints, scores
        reg_keypoints, _ = self.regression.decode(regression)
        if self.decode_from == "regression":
            return reg_keypoints, scores
        return ((keypoints + reg_keypoints) * 0.5).astype(np.float32), scores

    def export_decoder(self) -> nn.Module:
        return HybridDecode(self.heatmap.export_decoder(), self.regression.export_decoder(), self.decode_from)
