"""What every slimpose pose network shares: an input spec, a head class and the timm-style forward split.

``forward(images) = forward_head(forward_features(images))``: ``forward_features`` is the backbone (and
transformer) part, ``forward_head`` the output layers. Token models return ``TokenFeatures`` from
``forward_features`` (keypoint and visual tokens: what distillation terms compare); CNN models return
their feature map. ``head_class`` names the head (``slimpose.heads``) that gives the output its meaning.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import nn

from slimpose.models.spec import ImageInput


class TokenFeatures(NamedTuple):
    """``forward_features`` of a token model: final keypoint tokens (B, K, D), visual tokens (B, N, D),
    the head's input (B, K, D') (the keypoint tokens, or TokenPose-L's fused ones) and the grid positions
    (B, N) of the visual tokens (``None``: every position, in grid order)."""

    keypoint_tokens: torch.Tensor
    visual_tokens: torch.Tensor
    head_input: torch.Tensor
    index: torch.Tensor | None = None


class PoseNet(nn.Module):
    """Base class of the top-down pose networks (images ``(B, 3, H, W)`` of ``input_size = (w, h)``)."""

    head_class: Any = None
    input_size: tuple[int, int]

    @property
    def feature_stages(self) -> tuple[str, ...]:
        """Names (``named_modules``) of the submodules whose outputs are the model's stage features, shallow
        to deep: what stage-wise feature distillation taps (a list output counts by its first, highest-
        resolution branch). A model's backbone declares them in ``stage_names``; none by default."""
        backbone = getattr(self, "backbone", None)
        return tuple(f"backbone.{n}" for n in getattr(backbone, "stage_names", ()))

    @property
    def input_spec(self) -> ImageInput:
        return ImageInput(tuple(self.input_size))

    def check_images(self, images: torch.Tensor) -> None:
        """Raise a ValueError naming the expected shape unless ``images`` is (B, 3, h, w) of ``input_size``
        (for models whose layers fix the input size: token grids, position embeddings, SimCC bins)."""
        w, h = self.input_size
        if images.dim() != 4 or images.shape[1] != 3 or images.shape[2:] != (h, w):
            raise ValueError(f"expected images (B, 3, {h}, {w}) for input_size (w, h) = {tuple(self.input_size)}, "
                             f"got {tuple(images.shape)}")

    def forward_features(self, images: torch.Tensor) -> Any:
        raise NotImplementedError

    def forward_head(self, features: Any) -> Any:
        raise NotImplementedError

    def forward(self, images: torch.Tensor) -> Any:
        return self.forward_head(self.forward_features(images))
