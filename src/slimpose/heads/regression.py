"""Regression heads: normalised coordinates per keypoint (DeepPose, DistilPose students, SDPose-Reg).

The model outputs ``(B, K, 5)`` = ``[x, y, score, sigma_x, sigma_y]``, already activated, with ``x, y`` in
[0, 1] of the input crop (``RegressionLabel``: pixel = value x input size). ``RegressionHead`` trains
``x, y`` with Smooth L1 (DistilPose's L_reg, mmpose 0.x ``SmoothL1Loss``) and scores keypoints by
``score_source``: ``"confidence"`` (the score channel, trained by L_CS) or ``"constant"`` (1: a student
trained without L_CS, whose score channel is untrained; yshMars/DistilPose#2). ``RLEHead`` trains
``x, y, sigma`` with RLE (SDPose-Reg; score channel ``1 - mean(sigma)``). Flip test (official
``fliplr_regression``): the mirrored crop's keypoints are mirrored back (``x -> 1 - x - 1/w``, the pixel
flip ``x -> w - 1 - x``), left/right swapped, and averaged with the plain ones, scores too. A converted
official DistilPose checkpoint flips as its code does (``conventions``: ``x -> 1 - x``, scores not swapped).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from slimpose.codecs.flip import flip_coordinates_back
from slimpose.codecs.regression import RegressionLabel
from slimpose.heads.base import FlipPairs, Head
from slimpose.losses.regression import smooth_l1_loss
from slimpose.losses.rle import RLELoss

SCORE_SOURCES = ("confidence", "constant")


def split_regression_output(output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, K, 5) -> coordinates (B, K, 2), scores (B, K), sigmas (B, K, 2)."""
    if output.dim() != 3 or output.shape[-1] != 5:
        raise ValueError(f"a regression output must be (B, K, 5), got {tuple(output.shape)}")
    return output[..., 0:2], output[..., 2], output[..., 3:5]


def check_score_source(score_source: str) -> str:
    if score_source not in SCORE_SOURCES:
        raise ValueError(f"score_source must be one of {SCORE_SOURCES}, got {score_source!r}")
    return score_source


def keypoint_scores(output: torch.Tensor, score_source: str) -> torch.Tensor:
    """Per-keypoint scores (B, K) of a (B, K, 5) output under ``score_source``."""
    if check_score_source(score_source) == "confidence":
        return output[..., 2]
    return torch.ones_like(output[..., 2])


class RegressionDecode(nn.Module):
    """(B, K, 5) -> (keypoints (B, K, 2) crop pixels, scores (B, K)) inside an exported graph."""

    def __init__(self, input_size: tuple[int, int], score_source: str = "confidence") -> None:
        super().__init__()
        self.score_source = check_score_source(score_source)
        self.register_buffer("size", torch.tensor([float(input_size[0]), float(input_size[1])]), persistent=False)

    def forward(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return output[..., :2] * self.size.to(output.dtype), keypoint_scores(output, self.score_source)


class RegressionHead(Head):
    """Smooth L1 on normalised coordinates (L_reg); scores by ``score_source``."""

    loss_name = "reg"
    heatmap_gaussians = True  # sigma = softplus, in heatmap pixels (DistilPose's L_SH renders them)

    def __init__(self, input_size: tuple[int, int], score_source: str = "confidence",
                 smooth_l1_beta: float = 1.0, flip_coords: str = "pixel", flip_swap_scores: bool = True) -> None:
        super().__init__(RegressionLabel(input_size))
        self.score_source = check_score_source(score_source)
        self.smooth_l1_beta = smooth_l1_beta
        self.flip_coords = flip_coords  # 'pixel' (x -> w - 1 - x) | 'unit' (x -> 1 - x: official DistilPose)
        self.flip_swap_scores = flip_swap_scores  # False: official DistilPose averages unswapped scores

    @classmethod
    def from_config(cls, cfg: Any, model: nn.Module) -> "RegressionHead":
        """Scores: ``model.overrides.score_source`` if set; else, for a DistilPose student (a config with a
        ``distill`` section), the confidence channel only when L_CS trains it; else the model's own."""
        source = cfg.model.overrides.get("score_source")
        if source is None:
            source = cfg.distill.score_source if cfg.distill is not None else getattr(model, "score_source",
                                                                                        "confidence")
        conv = cfg.conventions
        return cls(tuple(model.input_size), source, cfg.smooth_l1_beta, conv.flip_coords, conv.flip_swap_scores)

    @property
    def input_size(self) -> tuple[int, int]:
        return tuple(self.codec.input_size)

    def regression_loss(self, output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        coords, _, _ = split_regression_output(output)
        return smooth_l1_loss(coords, target.to(coords.dtype), weight.to(coords.dtype), self.smooth_l1_beta)

    def loss(self, output: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        loss = self.regression_loss(output, batch["target"], batch["target_weight"])
        return loss, {f"loss_{self.loss_name}": loss.detach()}

    def flip_back(self, output: torch.Tensor, flip_pairs: FlipPairs) -> torch.Tensor:
        return flip_coordinates_back(output, flip_pairs, self.input_size[0], normalized=True,
                                     unit=self.flip_coords == "unit", unswapped=() if self.flip_swap_scores else (2,))

    def decode(self, output: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        keypoints, scores = self.export_decoder().to(output.device)(output)
        return keypoints.detach().float().cpu().numpy(), scores.detach().float().cpu().numpy()

    def export_decoder(self) -> nn.Module:
        return RegressionDecode(self.input_size, self.score_source)


class RLEHead(RegressionHead):
    """Residual log-likelihood estimation (RLE, ICCV 2021) on ``x, y, sigma``; score ``1 - mean(sigma)``.

    The RealNVP flow is a parameter of the head: trained and checkpointed with the task, not shipped.
    """

    loss_name = "rle"
    heatmap_gaussians = False  # RLE's sigmas are in normalised units

    def __init__(self, input_size: tuple[int, int], rle: RLELoss | None = None) -> None:
        super().__init__(input_size, score_source="confidence")
        self.rle = rle if rle is not None else RLELoss()

    @classmethod
    def from_config(cls, cfg: Any, model: nn.Module) -> "RLEHead":
        return cls(tuple(model.input_size))

    def regression_loss(self, output: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        coords, _, sigmas = split_regression_output(output)
        return self.rle(coords, sigmas, target.to(coords.dtype), weight.to(coords.dtype))
