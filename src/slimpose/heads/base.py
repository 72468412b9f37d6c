"""The head contract: what a pose model's raw output means.

A head owns everything that depends on the kind of output, so that the training task, the evaluator,
``slimpose.load(...).predict``, ``slimpose predict``, ``slimpose export`` and ``slimpose benchmark`` never
inspect output shapes or kinds:

* ``codec``: ``encode(keypoints (K, 2), weights (K,)) -> dict`` of training targets (the data set calls
  it) and ``decode(output) -> (keypoints (B, K, 2) crop pixels, scores (B, K))``;
* ``loss(output, batch) -> (loss, logs)``: the training loss on a batch of codec targets;
* ``flip_back(output, flip_pairs)`` and ``merge_flip(output, flipped_back)``: the flip test;
* ``predict(model, images, flip_pairs)``: forward, flip test, decoding (numpy, crop pixels);
* ``export_decoder()``: a module that decodes raw outputs inside an exported graph, and
  ``output_names`` for the raw outputs.

The layers that produce the output belong to the model (their state-dict keys follow the official
checkpoints); a model names the head it needs in its ``head_class`` and ``build_head`` makes one from a
training config with ``head_class.from_config(cfg, model)``. A head is an ``nn.Module`` so that a loss
with parameters (the RLE flow) is trained and checkpointed with the task; it is never part of the
deployable model. Adding a kind of output = one head file here plus its codec.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

FlipPairs = Sequence[tuple[int, int]]


def to_float(output: Any) -> Any:
    """A model output (a tensor or a tuple of tensors) in float32 (AMP outputs may be half)."""
    if isinstance(output, (tuple, list)):
        return type(output)(o.float() for o in output)
    return output.float()


class Head(nn.Module):
    """Base class of the heads; subclasses implement ``from_config``, ``loss``, ``flip_back``, ``decode``
    and ``export_decoder``."""

    output_names: tuple[str, ...] = ("output",)
    # what a head's output is, for methods that need a kind of output (declared, never probed):
    outputs_heatmaps = False  # (B, K, h, w) heatmaps: a DistilPose teacher
    heatmap_gaussians = False  # (B, K, 5) coordinates, score and sigmas in heatmap pixels: a DistilPose student
    outputs_bins = False  # (x (B, K, W k), y (B, K, H k)) classification logits: SimCC / SimDR (Multi-KD, DWPose)

    def __init__(self, codec: Any) -> None:
        super().__init__()
        self.codec = codec

    @classmethod
    def from_config(cls, cfg: Any, model: nn.Module) -> "Head":
        """The head of ``model`` with the target / loss / decoding settings of training config ``cfg``."""
        raise NotImplementedError

    def loss(self, output: Any, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def flip_back(self, output: Any, flip_pairs: FlipPairs) -> Any:
        """The output of the mirrored crop, mapped back onto the original crop."""
        raise NotImplementedError

    def merge_flip(self, output: Any, flipped_back: Any) -> Any:
        """Flip test: the mean of the plain and the flipped-back outputs (HRNet / MMPose)."""
        if isinstance(output, (tuple, list)):
            return type(output)((a + b) * 0.5 for a, b in zip(output, flipped_back))
        return (output + flipped_back) * 0.5

    def decode(self, output: Any) -> tuple[np.ndarray, np.ndarray]:
        """Raw outputs -> keypoints (B, K, 2) in input-crop pixels and scores (B, K), float32 numpy."""
        raise NotImplementedError

    def export_decoder(self) -> nn.Module:
        """``decoder(output) -> (keypoints (B, K, 2) crop pixels, scores (B, K))`` for an exported graph."""
        raise NotImplementedError

    @torch.no_grad()
    def predict(self, model: nn.Module, images: torch.Tensor, flip_pairs: FlipPairs | None = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Keypoints (B, K, 2) in crop pixels and scores (B, K); ``flip_pairs=None`` disables the flip test."""
        output = to_float(model(images))
        if flip_pairs is not None:
            flipped = to_float(model(images.flip(-1)))
            output = self.merge_flip(output, self.flip_back(flipped, [tuple(p) for p in flip_pairs]))
        keypoints, scores = self.decode(output)
        return np.asarray(keypoints, dtype=np.float32), np.asarray(scores, dtype=np.float32)


def build_head(cfg: Any, model: nn.Module) -> Head:
    """The head ``model`` names in ``head_class``, configured from training config ``cfg``."""
    from slimpose.utils.io import SlimposeInputError

    head_class = getattr(model, "head_class", None)
    if head_class is None:
        raise SlimposeInputError(f"{type(model).__name__} names no head_class: build its head explicitly "
                                 "(slimpose.heads) and pass it")
    return head_class.from_config(cfg, model)


def default_head(model: nn.Module) -> Head:
    """The head of ``model`` with the default training config's settings (for export and benchmarks of a
    bare factory model; a trained checkpoint carries its own settings)."""
    from slimpose.config.schema import TrainConfig

    return build_head(TrainConfig(), model)
