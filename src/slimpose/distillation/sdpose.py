"""SDPose circulation-guided self-distillation (Chen et al., CVPR 2024, Eq. 1-3) and its training tasks.

    L = sum_{i=1..N} L_task(P_i, GT)
      + a1 * sum_{i=1..N-1} MSE(KT_i, KT_{i+1}) + a2 * sum_{i=1..N-1} MSE(VT_i, VT_{i+1}),   a1 = a2 = 5e-6

``P_i``, ``KT_i``, ``VT_i``: output, keypoint tokens and visual tokens of MCT cycle ``i``. The later cycle
teaches the earlier one. ``L_task`` is the heatmap ``JointsMSELoss`` (SDPose) or RLE (SDPose-Reg). MSE is
``nn.MSELoss(reduction='mean')`` (official ``TokenDistilLoss``). The official code does **not** detach
the teacher (later) cycle, so the token terms also pull cycle ``i+1`` towards cycle ``i``;
``detach_teacher=True`` is the textbook form (gradient only into the student cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from slimpose.distillation.distilpose import DistilPoseTask
from slimpose.engine.tasks import HeatmapTask
from slimpose.losses.heatmap import KeypointMSELoss
from slimpose.losses.rle import RLELoss
from slimpose.utils.io import SlimposeInputError


@dataclass
class SDPoseLossConfig:
    """Weights of Eq. 3 (0 switches a term off) and whether the later (teacher) cycle is detached."""

    task: float = 1.0
    kt: float = 5e-6
    vt: float = 5e-6
    detach_teacher: bool = False  # official: False

    def __post_init__(self) -> None:
        for key in ("task", "kt", "vt"):
            if getattr(self, key) < 0:
                raise SlimposeInputError(f"SDPose loss: {key} must be >= 0, got {getattr(self, key)}")


def cycle_token_distillation(tokens: Sequence[torch.Tensor], detach_teacher: bool = False) -> torch.Tensor:
    """``sum_{i=1}^{N-1} MSE(T_i, T_{i+1})`` over consecutive cycles; 0 for one cycle."""
    if len(tokens) == 0:
        raise ValueError("cycle_token_distillation: no cycles given")
    total = tokens[0].new_zeros(())
    for student, teacher in zip(tokens[:-1], tokens[1:]):
        if student.shape != teacher.shape:
            raise ValueError(
                f"cycle_token_distillation: token shapes differ between cycles: {tuple(student.shape)} vs "
                f"{tuple(teacher.shape)}"
            )
        total = total + F.mse_loss(student, teacher.detach() if detach_teacher else teacher)
    return total


class SDPoseLoss(nn.Module):
    """Eq. 3 on a list of ``(output, keypoint_tokens, visual_tokens)`` cycles.

    ``criterion(output, target, target_weight) -> scalar`` is the per-cycle task loss.
    Returns ``(loss, logs)`` with detached ``loss_task``, ``loss_kt``, ``loss_vt`` (unweighted token terms).
    """

    def __init__(self, criterion: nn.Module, cfg: SDPoseLossConfig | None = None):
        super().__init__()
        self.criterion = criterion
        self.cfg = cfg or SDPoseLossConfig()

    def forward(
        self,
        cycles: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
        target: torch.Tensor,
        target_weight: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if len(cycles) == 0:
            raise ValueError("SDPoseLoss: no cycle outputs")
        cfg = self.cfg
        task = sum(self.criterion(out, target, target_weight) for out, _, _ in cycles)
        kt = cycle_token_distillation([c[1] for c in cycles], cfg.detach_teacher)
        vt = cycle_token_distillation([c[2] for c in cycles], cfg.detach_teacher)
        loss = cfg.task * task + cfg.kt * kt + cfg.vt * vt
        logs = {"loss_task": task.detach(), "loss_kt": kt.detach(), "loss_vt": vt.detach()}
        return loss, logs


class RLECriterion(nn.Module):
    """Per-cycle RLE task loss on ``SDPoseReg`` outputs ``(B,K,5)`` = ``[x, y, score, sigma_x, sigma_y]``."""

    def __init__(self, rle: RLELoss | None = None):
        super().__init__()
        self.rle = rle or RLELoss()

    def forward(
        self, output: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor
    ) -> torch.Tensor:
        if output.dim() != 3 or output.shape[-1] != 5:
            raise ValueError(f"RLECriterion: expected (B,K,5) outputs, got {tuple(output.shape)}")
        return self.rle(output[..., 0:2], output[..., 3:5], target, target_weight)


class SDPoseTask(HeatmapTask):
    """Engine task for heatmap SDPose: Eq. 3 over all MCT cycles in training, ``model(images)`` (the
    single-pass read cycle) for prediction, flip test and codec decoding as ``HeatmapTask``."""

    def __init__(
        self,
        model: nn.Module,
        codec: Any,
        loss_cfg: SDPoseLossConfig | None = None,
        shift_heatmap: bool = True,
        criterion: nn.Module | None = None,
    ):
        if not hasattr(model, "forward_cycles"):
            raise SlimposeInputError(
                f"SDPoseTask needs a multi-cycle model (forward_cycles), got {type(model).__name__}"
            )
        super().__init__(model, codec, criterion or KeypointMSELoss(), shift_heatmap=shift_heatmap)
        self.sd_loss = SDPoseLoss(self.criterion, loss_cfg)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        cycles = self.model.forward_cycles(batch["image"])
        target = batch["target"]
        if cycles[0][0].shape != target.shape:
            raise ValueError(
                f"model output {tuple(cycles[0][0].shape)} does not match the codec target "
                f"{tuple(target.shape)}"
            )
        return self.sd_loss(cycles, target, batch["target_weight"])


class SDPoseRegTask(nn.Module):
    """Engine task for SDPose-Reg: RLE per cycle + the token terms; regression prediction with flip test.

    Targets are the crop keypoints normalised to the input size (``batch['keypoints'] / (w, h)``, or a
    (B,K,2) ``target``). The RLE flow is part of the task (trained with it, not part of ``task.model``).
    """

    def __init__(
        self, model: nn.Module, loss_cfg: SDPoseLossConfig | None = None, rle: RLELoss | None = None
    ):
        super().__init__()
        if not hasattr(model, "forward_cycles"):
            raise SlimposeInputError(
                f"SDPoseRegTask needs a multi-cycle model (forward_cycles), got {type(model).__name__}"
            )
        self.model = model
        self.criterion = RLECriterion(rle)
        self.sd_loss = SDPoseLoss(self.criterion, loss_cfg)

    target_coords = staticmethod(DistilPoseTask.target_coords)

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = batch["image"]
        cycles = self.model.forward_cycles(images)
        return self.sd_loss(cycles, self.target_coords(batch), batch["target_weight"].to(images.dtype))

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self(batch)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, flip_pairs=None) -> tuple[np.ndarray, np.ndarray]:
        """Crop-pixel keypoints and scores ``1 - mean(sigma)`` (numpy); flip test if ``flip_pairs`` given."""
        from slimpose.models.distilpose import predict_regression

        kp, sc = predict_regression(
            self.model, images, flip_pairs, flip_test=flip_pairs is not None, score_source="confidence"
        )
        return kp.float().cpu().numpy(), sc.float().cpu().numpy()


def build_sdpose_model(cfg: Any, num_keypoints: int) -> nn.Module:
    """The engine's ``build_model`` when ``cfg.model.name`` is in ``slimpose.models.MODELS``; else the
    SDPose factories of ``slimpose.models.sdpose.SDPOSE_MODELS`` with the same checks."""
    from slimpose import models
    from slimpose.engine.trainer import build_model
    from slimpose.models.sdpose import SDPOSE_MODELS

    name = cfg.model.name
    if name in models.MODELS or name not in SDPOSE_MODELS:
        return build_model(cfg, num_keypoints)
    return build_model(cfg, num_keypoints, factory=SDPOSE_MODELS[name])


def build_sdpose_task(cfg: Any, num_keypoints: int) -> nn.Module:
    """The task of an ``SDPoseConfig`` (``slimpose.configs.sdpose_recipes``): model from ``cfg.model`` with
    the engine's ``build_model``, loss weights from ``cfg.sdpose``; heatmap or RLE task by model kind."""
    from slimpose.engine.trainer import build_codec

    model = build_sdpose_model(cfg, num_keypoints)
    loss_cfg = cfg.sdpose.loss_config()
    if getattr(model, "output_kind", "heatmap") == "regression":
        return SDPoseRegTask(model, loss_cfg)
    shift = cfg.shift_heatmap and not cfg.data.udp
    return SDPoseTask(model, build_codec(cfg, for_decoding=True), loss_cfg, shift_heatmap=shift)


def sdpose_trainer(cfg: Any, resume: bool | str = False):
    """An engine ``Trainer`` running ``build_sdpose_task(cfg)`` (for a ``slimpose train``-like command)."""
    from slimpose.engine.trainer import Trainer, dataset_info, seed_everything

    info = dataset_info(cfg)
    seed_everything(cfg.seed)  # same initial weights as the Trainer's own build
    return Trainer(cfg, task=build_sdpose_task(cfg, info.num_keypoints), resume=resume)


__all__ = [
    "SDPoseLossConfig",
    "SDPoseLoss",
    "RLECriterion",
    "SDPoseTask",
    "SDPoseRegTask",
    "cycle_token_distillation",
    "build_sdpose_model",
    "build_sdpose_task",
    "sdpose_trainer",
]
