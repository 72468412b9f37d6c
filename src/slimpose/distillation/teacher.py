"""The frozen teacher of a distillation run: rebuilt from its checkpoint, frozen, recorded, checked.

The teacher is never part of the student's state dict; a student checkpoint records only what teacher it
learned from (path, sha256, model name, the teacher's overrides and best metric).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from slimpose.utils.io import SlimposeInputError


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Put the teacher in eval mode and turn off its gradients."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class TeacherRecord:
    """What a student checkpoint records about its teacher (never the teacher's weights)."""

    path: str
    sha256: str
    model: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_teacher(checkpoint: str | None, model_name: str, overrides: dict[str, Any], num_keypoints: int,
                 input_size: tuple[int, int], teacher: nn.Module | None = None,
                 missing_hint: str = "for an L_reg-only baseline set distill.kt=distill.vt=distill.sh=distill.cs=0"
                 ) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild and load the teacher of ``checkpoint``; returns (model, record dict).

    The architecture is the checkpoint's ``model_name`` and ``config.model.overrides`` (``overrides`` on top),
    else ``model_name`` / ``overrides``. ``teacher``: an already built model of the checkpoint's
    architecture (one the config cannot describe, e.g. a custom backbone); its weights are still loaded.
    """
    from slimpose import models
    from slimpose.engine.checkpoint import load_checkpoint, load_model_weights

    if not checkpoint:
        raise SlimposeInputError(
            f"the distillation terms need a teacher checkpoint (--teacher CKPT); {missing_hint}")
    ckpt = load_checkpoint(checkpoint)
    name = str(ckpt.get("model_name") or model_name)
    if teacher is not None:
        load_model_weights(teacher, ckpt, where=checkpoint, expected=f"the teacher {type(teacher).__name__}")
        record = TeacherRecord(str(checkpoint), file_sha256(checkpoint), name,
                               {"built_by_caller": type(teacher).__name__})
        return teacher, record.to_dict()
    merged: dict[str, Any] = dict(overrides)
    saved = ckpt.get("config")
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        merged = {**dict(saved["model"].get("overrides") or {}), **merged}
    if name not in models.MODELS:
        raise SlimposeInputError(f"{checkpoint}: teacher model {name!r} is not a slimpose model "
                                 f"({', '.join(sorted(models.MODELS))})")
    merged.setdefault("num_keypoints", num_keypoints)
    merged.setdefault("input_size", tuple(input_size))
    teacher = models.create_model(name, **merged)
    load_model_weights(teacher, ckpt, where=checkpoint, expected=f"the teacher {name!r} with {merged}")
    extra: dict[str, Any] = {"overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in merged.items()}}
    best = ckpt.get("best")
    if isinstance(best, dict) and best.get("value") is not None:
        extra["best"] = dict(best)
    elif ckpt.get("best_ap") is not None:  # a checkpoint of an older version
        extra["best"] = {"metric": "AP", "mode": "max", "value": float(ckpt["best_ap"])}
    return teacher, TeacherRecord(str(checkpoint), file_sha256(checkpoint), name, extra).to_dict()


@torch.no_grad()
def check_teacher_compatibility(student: nn.Module, teacher: nn.Module, need_tokens: bool = True) -> dict[str, Any]:
    """Run one blank input through both models and check they can be distilled.

    Fails with a SlimposeInputError naming both shapes when the keypoint count, the token dim or the token
    grid differ. Returns the teacher's output shape (without the batch) and the token shapes.
    """
    from slimpose.models.base import TokenFeatures
    from slimpose.models.transformer.pruning import visual_at

    dev = next(iter(p for p in student.parameters()), torch.zeros(())).device
    x = torch.zeros(student.input_spec.shape(1), device=dev)
    was_training = student.training
    student.eval()
    try:
        s_feat = student.forward_features(x)
        s_out = student.forward_head(s_feat)
    finally:
        student.train(was_training)
    teacher.eval()
    t_feat = teacher.forward_features(x)
    t_out = teacher.forward_head(t_feat)
    if t_out.shape[1] != s_out.shape[1]:
        raise SlimposeInputError(f"distillation: the teacher predicts {t_out.shape[1]} keypoints, the student "
                                 f"{s_out.shape[1]}")
    info: dict[str, Any] = {"teacher_output_shape": [int(s) for s in t_out.shape[1:]]}
    if not need_tokens:
        return info
    for who, model, feats in (("student", student, s_feat), ("teacher", teacher, t_feat)):
        if not isinstance(feats, TokenFeatures):
            raise SlimposeInputError(f"distillation: the {who} {type(model).__name__} has no tokens; L_KT/L_VT "
                                     "need two token models (switch them off: kt=0, vt=0)")
    if t_feat.index is not None:
        raise SlimposeInputError(f"distillation: the teacher {type(teacher).__name__} prunes its tokens; token "
                                 "terms need an unpruned teacher (build it without pruning)")
    t_visual = t_feat.visual_tokens
    if s_feat.index is not None:  # a pruned student: compared with the teacher's tokens at the positions it kept
        grid = getattr(getattr(student, "transformer", None), "num_patches", None)
        if grid is None or t_visual.shape[1] != grid:
            raise SlimposeInputError(
                f"distillation: the teacher has {t_visual.shape[1]} visual tokens, the (pruned) student's grid "
                f"{grid}: the teacher must share the token grid (feature map size / patch size) with the student")
        if t_visual.shape[-1] == s_feat.visual_tokens.shape[-1]:
            t_visual = visual_at(t_visual, None, s_feat.index)
    for name, s, t in (("keypoint tokens", s_feat.keypoint_tokens, t_feat.keypoint_tokens),
                       ("visual tokens", s_feat.visual_tokens, t_visual)):
        if s.shape != t.shape:
            raise SlimposeInputError(
                f"distillation: student {name} {tuple(s.shape)} vs teacher {tuple(t.shape)}: the teacher must "
                "share the token dim and the token grid (feature map size / patch size) with the student")
    info["token_dim"] = int(s_feat.visual_tokens.shape[-1])
    info["num_visual_tokens"] = int(s_feat.visual_tokens.shape[1])
    return info
