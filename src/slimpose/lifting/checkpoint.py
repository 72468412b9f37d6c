"""Reading a lifter back from a slimpose checkpoint: a training run's ``last.pth`` / ``best.pth``, or what
``slimpose convert --from hot|mixste`` writes (``.pth`` or ``.safetensors``).

Both carry ``config = {"family": "lifting", "model": {"name", "overrides"}, ...}``; the lifter is rebuilt with
``create_lifter(name, **overrides)`` and its weights are loaded strictly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from slimpose.utils.io import SlimposeInputError


@dataclass
class LifterInfo:
    """What a lifting checkpoint says of its model: factory name and overrides, the clip length it takes, and
    the whole ``config`` it was written with (a training run's ``LiftConfig`` as a dict)."""

    model_name: str
    overrides: dict[str, Any]
    num_frames: int
    num_joints: int
    config: dict[str, Any] = field(default_factory=dict)


def lifting_model_section(config: Any, where: str) -> tuple[str, dict[str, Any]]:
    """``(name, overrides)`` of a checkpoint's ``config``; a clear error when it is not a lifter's."""
    if not isinstance(config, dict) or config.get("family") != "lifting":
        raise SlimposeInputError(f"{where}: not a lifting checkpoint (its config has no family 'lifting'; a 2-D "
                                 "pose checkpoint goes to slimpose predict, an official MixSTE / HoT file to "
                                 "slimpose convert --from mixste|hot first)")
    model = config.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise SlimposeInputError(f"{where}: the lifting config has no model name")
    overrides = model.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise SlimposeInputError(f"{where}: model overrides must be a dict, got {type(overrides).__name__}")
    return model["name"], dict(overrides)


def load_lifter(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[nn.Module, LifterInfo]:
    """The lifter of a checkpoint, in eval mode on ``device``, and its :class:`LifterInfo`."""
    from slimpose.api import read_weights

    sd, meta = read_weights(path)
    return lifter_from_weights(sd, meta, str(path), device)


def lifter_from_weights(sd: dict[str, torch.Tensor], meta: dict[str, Any], where: str,
                        device: str | torch.device = "cpu") -> tuple[nn.Module, LifterInfo]:
    """``load_lifter`` on weights and metadata already read (``slimpose.api.read_weights``)."""
    from slimpose.lifting.models import create_lifter

    name, overrides = lifting_model_section(meta.get("config"), where)
    try:
        model = create_lifter(name, **overrides)
    except (TypeError, ValueError) as e:
        raise SlimposeInputError(f"{where}: cannot build lifter {name!r} with {overrides}: {e}") from None
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise SlimposeInputError(f"{where}: weights do not match {name} (missing: {result.missing_keys[:5]}, "
                                 f"unexpected: {result.unexpected_keys[:5]})")
    spec = model.input_spec
    info = LifterInfo(model_name=name, overrides=overrides, num_frames=int(spec.num_frames),
                      num_joints=int(spec.num_joints), config=dict(meta.get("config") or {}))
    return model.to(device).eval(), info


__all__ = ["LifterInfo", "lifter_from_weights", "lifting_model_section", "load_lifter"]
