"""``LiftingTask``: a lifter trained through its loss; ``task(batch) -> (loss, logs)`` as the training loop
expects of every task (``slimpose.engine.loop.TrainLoop``), ``task.model`` the deployable lifter."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimpose.lifting.losses import LiftingLoss
from slimpose.lifting.models.pruning import gather_frames


class LiftingTask(nn.Module):
    """``model`` (B, F, J, 2) -> (B, F, J, 3), scored by ``loss`` against ``batch["poses_3d"]`` (metres,
    root-relative). A seq2frame model with ``forward_kept`` (TPC-MixSTE) is trained on the poses of the frames
    it keeps, against the targets of those frames (HoT ``tpc_mixste``: ``out_target[batch_ind, index]``). A
    diffusion lifter (StarPose) gives its own training prediction from the whole batch
    (``training_prediction(batch) -> (pred, target)``: the clean poses predicted from one noisy step) and may
    add a regulariser (``training_regulariser(pred, batch) -> (loss, logs)``)."""

    def __init__(self, model: nn.Module, loss: LiftingLoss | None = None) -> None:
        super().__init__()
        self.model = model
        self.loss = loss if loss is not None else LiftingLoss()

    def predict_train(self, keypoints_2d: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prediction, matching target) of a training batch."""
        if hasattr(self.model, "forward_kept"):
            pred, index = self.model.forward_kept(keypoints_2d)
            return pred, gather_frames(target, index)
        return self.model(keypoints_2d), target

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if hasattr(self.model, "training_prediction"):
            pred, target = self.model.training_prediction(batch)
        else:
            pred, target = self.predict_train(batch["keypoints_2d"], batch["poses_3d"])
        loss, logs = self.loss(pred, target)
        if hasattr(self.model, "training_regulariser"):
            extra, extra_logs = self.model.training_regulariser(pred, batch)
            loss = loss + extra
            logs.update(extra_logs)
        with torch.no_grad():
            logs["mpjpe_mm"] = (pred - target).norm(dim=-1).mean() * 1000.0
        return loss, logs

    def checkpoint_extras(self) -> dict[str, Any]:
        return {}


__all__ = ["LiftingTask"]
