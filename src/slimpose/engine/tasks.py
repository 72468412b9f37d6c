"""What the engine trains: a *task* couples a model with its targets, loss and decoding.

The trainer and evaluator only use this interface (a ``torch.nn.Module``):

* ``task(batch) -> (loss, logs)``, also spelled ``task.loss(batch)``: ``batch`` is the collated dict of
  ``TopDownDataset`` (``image``, ``target``, ``target_weight``, ... already on the device); ``loss`` is a
  scalar tensor to back-propagate and ``logs`` a dict of detached scalar tensors (for the console /
  TensorBoard). Going through ``forward`` lets DistributedDataParallel wrap the whole task.
* ``task.predict(images, flip_pairs) -> (keypoints (B,K,2) in input-crop pixels, scores (B,K))`` as numpy
  arrays; ``flip_pairs=None`` disables the flip test.
* ``task.model``: the deployable network (what is exported / benchmarked); ``task.train()`` / ``eval()``
  behave as for any module (a task with a frozen teacher overrides ``train`` to keep it in eval mode).

Distillation tasks (DistilPose regression, SDPose) implement the same two methods.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

FlipPairs = Sequence[tuple[int, int]]


class HeatmapTask(nn.Module):
    """A heatmap model trained with (OHKM-)MSE on codec targets; flip test + codec decoding at test time.

    Flip test (HRNet / mmpose ``flip_test=True``): the horizontally flipped crop is run too, its heatmaps are
    flipped back with left/right channels swapped (and shifted one pixel right when ``shift_heatmap``, as the
    MSRA convention needs; not for UDP), and the two heatmaps are averaged before decoding.
    """

    def __init__(
        self, model: nn.Module, codec: Any, criterion: nn.Module, shift_heatmap: bool = True
    ) -> None:
        super().__init__()
        self.model = model
        self.codec = codec
        self.criterion = criterion
        self.shift_heatmap = shift_heatmap

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        heatmaps = self.model(batch["image"])
        target = batch["target"]
        if heatmaps.shape != target.shape:
            raise ValueError(
                f"model output {tuple(heatmaps.shape)} does not match the codec target {tuple(target.shape)} "
                "(check data.heatmap_size against the model's heatmap_size)"
            )
        loss = self.criterion(heatmaps, target, batch["target_weight"])
        return loss, {"loss_heatmap": loss.detach()}

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Same as calling the task (``forward``)."""
        return self(batch)

    @torch.no_grad()
    def predict_heatmaps(self, images: torch.Tensor, flip_pairs: FlipPairs | None = None) -> torch.Tensor:
        """Heatmaps (B,K,h,w); with ``flip_pairs`` averaged with those of the flipped images."""
        from slimpose.codecs.flip import flip_heatmaps_back

        heatmaps = self.model(images).float()
        if flip_pairs is not None:
            flipped = self.model(images.flip(-1)).float()
            back = flip_heatmaps_back(flipped, [tuple(p) for p in flip_pairs], shift=self.shift_heatmap)
            heatmaps = (heatmaps + back) * 0.5
        return heatmaps

    @torch.no_grad()
    def predict(
        self, images: torch.Tensor, flip_pairs: FlipPairs | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        heatmaps = self.predict_heatmaps(images, flip_pairs)
        keypoints, scores = self.codec.decode(heatmaps.cpu().numpy())
        return np.asarray(keypoints, dtype=np.float32), np.asarray(scores, dtype=np.float32)
