"""Helpers of the model factories: a backbone given or built, and the feature size it produces."""

from __future__ import annotations

from typing import Callable

from torch import nn


def create_from(table: dict[str, Callable[..., nn.Module]], name: str, kind: str, **overrides) -> nn.Module:
    """``table[name](**overrides)``; an unknown name raises SlimposeInputError listing the known ones."""
    from slimpose.utils.io import SlimposeInputError

    factory = table.get(name)
    if factory is None:
        raise SlimposeInputError(f"unknown {kind} {name!r}; known {kind}s: {', '.join(sorted(table))}")
    return factory(**overrides)


def pop_backbone(overrides: dict, build: Callable[[], nn.Module]) -> nn.Module:
    """Model factories: ``overrides['backbone']`` if given (popped), else ``build()``."""
    backbone = overrides.pop("backbone", None)
    return backbone if backbone is not None else build()


def pop_stem_backbone(overrides: dict) -> nn.Module:
    """StemNet-based factories: ``overrides['backbone']`` if given, else a StemNet with
    ``overrides['stem_blocks']`` Bottlenecks (default 4, the official stem; fewer for CPU-sized runs)."""
    from slimpose.models.stemnet import StemNet

    blocks = int(overrides.pop("stem_blocks", 4))
    return pop_backbone(overrides, lambda: StemNet(num_blocks=blocks))


def backbone_feature_size(
    backbone: nn.Module, input_size: tuple[int, int], model_name: str
) -> tuple[int, int]:
    """``(w, h)`` of the backbone's feature map for ``input_size`` crops (``input_size / backbone.stride``).

    Raises a ValueError naming ``model_name`` when ``input_size`` is not divisible by the stride.
    """
    stride = int(getattr(backbone, "stride", 4))
    w, h = input_size
    if w % stride or h % stride:
        raise ValueError(
            f"{model_name}: input_size (w, h) = {tuple(input_size)} "
            f"must be divisible by the stride {stride}"
        )
    return w // stride, h // stride
