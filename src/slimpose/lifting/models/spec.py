"""The input spec of the lifting models: a 2-D keypoint sequence ``(B, T, J, C)``.

It has the members of ``slimpose.models.spec.ImageInput`` (``shape(batch)``, ``example(batch, device,
generator)``, ``name``, ``batch_key``, ``size``), so ``slimpose.engine.complexity.count_flops`` and the other
tools that build an input through ``model.input_spec`` work on the lifters unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class SequenceInput:
    """``num_frames`` frames of ``num_joints`` joints with ``channels`` values each (2: x, y in normalised
    screen coordinates, ``slimpose.lifting.cameras.normalize_screen_coordinates``); ``name`` is the ONNX
    input name and ``batch_key`` the key of the batch that holds it (the ``Sequence3D`` field name)."""

    num_frames: int
    num_joints: int = 17
    channels: int = 2
    name: str = "keypoints_2d"
    batch_key: str = "keypoints_2d"

    @property
    def size(self) -> tuple[int, int]:
        """``(T, J)``: what ``benchmark_model`` reports as ``input_size`` for a lifter."""
        return (self.num_frames, self.num_joints)

    def shape(self, batch: int = 1) -> tuple[int, ...]:
        return (batch, self.num_frames, self.num_joints, self.channels)

    def example(self, batch: int = 1, device: str | torch.device = "cpu",
                generator: torch.Generator | None = None) -> torch.Tensor:
        """A random sequence, uniform in [-1, 1) like normalised screen coordinates."""
        x = torch.rand(self.shape(batch), generator=generator) * 2 - 1
        return x.to(device)


__all__ = ["SequenceInput"]
