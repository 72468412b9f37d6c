"""What the engine trains: a *task* couples a model with its head (targets, loss and decoding).

The training loop and the evaluator only use this interface (a ``torch.nn.Module``):

* ``task(batch) -> (loss, logs)``: ``batch`` is the collated dict of ``TopDownDataset`` (the model input
  under ``model.input_spec.batch_key``, the head's codec targets, ``target_weight``, ... on the device);
  ``loss`` is a scalar tensor to back-propagate and ``logs`` a dict of detached scalar tensors. Going
  through ``forward`` lets DistributedDataParallel wrap the whole task.
* ``task.predict(inputs, flip_pairs) -> (keypoints (B,K,2) in input-crop pixels, scores (B,K))`` as numpy
  arrays; ``flip_pairs=None`` disables the flip test.
* ``task.model`` is the deployable network (what is exported and benchmarked), ``task.head`` its head;
  ``task.checkpoint_extras()`` is merged into every checkpoint (a distiller records its teacher there).

``TopDownTask`` trains any model through its head; ``slimpose.distillation.Distiller`` is the same
interface with a teacher and distillation terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from slimpose.heads.base import FlipPairs


class TopDownTask(nn.Module):
    """A top-down pose model trained by its head's loss and decoded by its head."""

    def __init__(self, model: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.head = head

    @property
    def input_key(self) -> str:
        return self.model.input_spec.batch_key

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.head.loss(self.model(batch[self.input_key]), batch)

    @torch.no_grad()
    def predict(self, inputs: torch.Tensor, flip_pairs: FlipPairs | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.head.predict(self.model, inputs, flip_pairs)

    def checkpoint_extras(self) -> dict[str, Any]:
        return {}
