"""A ``Distiller`` from a training config: the method section (``distill`` for DistilPose, ``sdpose`` for
SDPose) says which terms, their weights and schedule, and (DistilPose) which frozen teacher."""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from slimpose.config.schema import TrainConfig
from slimpose.distillation.distilpose import distilpose_terms
from slimpose.distillation.multikd import multikd_terms
from slimpose.distillation.distiller import Distiller
from slimpose.distillation.sdpose import sdpose_terms
from slimpose.distillation.teacher import check_teacher_compatibility, load_teacher
from slimpose.engine.builders import build_model
from slimpose.heads import build_head
from slimpose.utils.io import SlimposeInputError

_TEACHER_FIELDS = ("teacher_model", "teacher_overrides", "teacher_checkpoint", "check_teacher")


def build_distiller(cfg: TrainConfig, teacher: nn.Module | None = None) -> Distiller:
    """The student of ``cfg.model`` with its head, the method's terms and (DistilPose) the teacher of
    ``cfg.distill.teacher_checkpoint`` (``teacher``: a model of its architecture built by the caller)."""
    if cfg.knowledge_token is not None:  # ViTPose knowledge tokens: the model is built with its token
        from slimpose.distillation.knowledge_token import knowledge_token_distiller

        return knowledge_token_distiller(cfg, teacher)
    model = build_model(cfg)
    head = build_head(cfg, model)
    if cfg.distill is not None:
        section = cfg.distill
        if not head.heatmap_gaussians:
            raise SlimposeInputError(f"model.name: {cfg.model.name!r} is not a DistilPose regression student "
                                     "(distilpose_*, deeppose_*): DistilPose distils heatmaps into coordinates "
                                     "with Gaussians in heatmap pixels")
        terms = distilpose_terms(section)
        loaded, record = None, None
        if section.uses_teacher:
            loaded, record = load_teacher(section.teacher_checkpoint, section.teacher_model,
                                          section.teacher_overrides, model.num_keypoints,
                                          tuple(cfg.data.input_size), teacher)
            if not getattr(getattr(loaded, "head_class", None), "outputs_heatmaps", False):
                raise SlimposeInputError(f"{section.teacher_checkpoint}: the teacher {record['model']!r} must be "
                                         "a heatmap model")
            if section.check_teacher:
                need_tokens = any(t.needs_teacher_features for t in terms)
                record["extra"].update(check_teacher_compatibility(model, loaded, need_tokens))
        weights = {k: v for k, v in dataclasses.asdict(section).items() if k not in _TEACHER_FIELDS}
        info: dict[str, Any] = {"method": "distilpose", "teacher": record, "score_source": head.score_source,
                                "loss_weights": weights}
        return Distiller(model, head, terms, loaded, task_weight=section.reg, schedule=section.schedule,
                         record=info)
    if cfg.sdpose is not None:
        section = cfg.sdpose
        info = {"method": "sdpose", "teacher": None, "loss_weights": dataclasses.asdict(section)}
        return Distiller(model, head, sdpose_terms(section, head), None, task_weight=section.task,
                         schedule=section.schedule, record=info)
    if cfg.multikd is not None:
        return _multikd_distiller(cfg, model, head, teacher)
    raise SlimposeInputError("build_distiller: the config has no distillation section (distill, sdpose, multikd "
                             "or knowledge_token)")


def _multikd_distiller(cfg: TrainConfig, model: nn.Module, head: nn.Module, teacher: nn.Module | None) -> Distiller:
    """Multi-KD / DWPose: a SimCC student, a SimCC teacher with the same bins, the ``multikd`` terms."""
    section = cfg.multikd
    if not head.outputs_bins:
        raise SlimposeInputError(f"model.name: {cfg.model.name!r} is not a SimCC / SimDR model (*_simcc, "
                                 "*_simdr, simcc_*): Multi-KD distils x / y bin distributions")
    loaded, record = None, None
    if section.uses_teacher:
        loaded, record = load_teacher(section.teacher_checkpoint, section.teacher_model, section.teacher_overrides,
                                      model.num_keypoints, tuple(cfg.data.input_size), teacher,
                                      missing_hint="for a task-only baseline set multikd.vkd=multikd.fkd=0")
        if not getattr(getattr(loaded, "head_class", None), "outputs_bins", False):
            raise SlimposeInputError(f"{section.teacher_checkpoint}: the teacher {record['model']!r} must be a "
                                     "SimCC / SimDR model")
        if section.check_teacher:
            record["extra"].update(_check_bins(model, loaded))
    if section.reinit_head:
        fresh = build_model(cfg, load_pretrained=False)
        model.head.load_state_dict(fresh.head.state_dict())
    frozen = [model.backbone] if section.freeze_backbone else []
    terms = multikd_terms(section, model, loaded, tuple(cfg.data.input_size)) if loaded is not None else []
    weights = {k: v for k, v in dataclasses.asdict(section).items() if k not in _TEACHER_FIELDS}
    info: dict[str, Any] = {"method": "multikd", "teacher": record, "loss_weights": weights}
    return Distiller(model, head, terms, loaded, task_weight=section.task, schedule=section.schedule,
                     record=info, frozen=frozen)


def _check_bins(student: nn.Module, teacher: nn.Module) -> dict[str, Any]:
    """Teacher and student must classify into the same bins: keypoints, input size and split ratio."""
    def bins(m: nn.Module) -> tuple[int, int, int]:
        w, h = m.input_size
        return int(m.num_keypoints), int(round(w * m.split_ratio)), int(round(h * m.split_ratio))

    s, t = bins(student), bins(teacher)
    if s != t:
        raise SlimposeInputError(f"distillation: student bins (K, Wk, Hk) = {s} vs teacher bins {t}: teacher and "
                                 "student need the same keypoints, input size and split ratio")
    return {"teacher_bins": list(t)}
