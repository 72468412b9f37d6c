"""What a model takes as input: its input spec.

Every pose model has an ``input_spec`` property; complexity counting, ONNX export, benchmarks and the
evaluator build or pick their input through it instead of assuming images. Top-down 2-D models take
:class:`ImageInput` (``(B, 3, H, W)`` normalised RGB crops); the 3-D lifting family will add a sequence
spec (``(B, T, J, C)`` keypoint sequences) with the same three members.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ImageInput:
    """Images ``(B, channels, h, w)`` for ``size = (w, h)``; ``name`` is the ONNX input name and
    ``batch_key`` the key of the data-set batch that holds them."""

    size: tuple[int, int]
    channels: int = 3
    name: str = "images"
    batch_key: str = "image"

    def shape(self, batch: int = 1) -> tuple[int, ...]:
        w, h = self.size
        return (batch, self.channels, h, w)

    def example(self, batch: int = 1, device: str | torch.device = "cpu",
                generator: torch.Generator | None = None) -> torch.Tensor:
        """A random input of ``batch`` samples (standard normal, like normalised images)."""
        x = torch.randn(self.shape(batch), generator=generator)
        return x.to(device)


InputSpec = ImageInput


def input_spec_of(model: nn.Module, input_size: Any = None) -> InputSpec:
    """``ImageInput(input_size)`` when a size (w, h) is given, else the model's own ``input_spec``."""
    if input_size is not None:
        return ImageInput((int(input_size[0]), int(input_size[1])))
    spec = getattr(model, "input_spec", None)
    if spec is None:
        size = getattr(model, "input_size", None)
        if size is None:
            raise ValueError(f"{type(model).__name__} has no input_spec or input_size: pass input_size=(w, h)")
        return ImageInput((int(size[0]), int(size[1])))
    return spec
