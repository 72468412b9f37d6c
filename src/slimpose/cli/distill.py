"""``slimpose distill CONFIG --teacher CKPT [--set key=value ...]``: DistilPose heatmap-to-regression KD.

CONFIG is a recipe name of ``slimpose.configs.distill_recipes.RECIPES`` or a JSON config file. The
teacher is rebuilt from its checkpoint (``model_name`` and ``config.model.overrides`` when the file
has them, else ``distill.teacher_model`` / ``distill.teacher_overrides``), frozen, and never saved:
the student checkpoint records the teacher's path, sha256 and model name under ``distill``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from torch import nn

from slimpose.configs.distill_recipes import (
    RECIPES,
    DistillConfig,
    apply_distill_overrides,
    load_distill_config,
)
from slimpose.utils.io import SlimposeInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", help=f"recipe name ({', '.join(sorted(RECIPES))}) or a JSON config file")
    parser.add_argument("--teacher", default=None,
                        help="teacher checkpoint (.pth); not needed for L_reg-only runs")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set distill.cs=0 --set schedule.epochs=10")
    parser.add_argument("--work-dir", default=None, help="output folder (default: the config's work_dir)")
    parser.add_argument("--data-root", default=None, help="data set root folder (sets data.data_root)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (sets device)")
    parser.add_argument("--resume", nargs="?", const="auto", default=None,
                        help="resume from work_dir/last.pth (or the given checkpoint)")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def resolve_config(args: argparse.Namespace) -> DistillConfig:
    cfg = load_distill_config(args.config)
    overrides = []
    if args.work_dir:
        overrides.append(f"work_dir={args.work_dir}")
    if getattr(args, "data_root", None):
        overrides.append(f"data.data_root={args.data_root}")
    if getattr(args, "device", None):
        overrides.append(f"device={args.device}")
    overrides += list(args.overrides)
    cfg = apply_distill_overrides(cfg, overrides)
    if args.teacher:
        cfg.distill.teacher_checkpoint = str(Path(args.teacher).expanduser().resolve())
    return cfg


def build_teacher(
    cfg: DistillConfig, num_keypoints: int, teacher: nn.Module | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild and load the teacher of ``cfg.distill.teacher_checkpoint``; returns (model, record dict).

    ``teacher``: an already built model of the checkpoint's architecture (for architectures that the
    config cannot describe, e.g. a custom backbone); its weights are still loaded from the checkpoint.
    """
    from slimpose import models
    from slimpose.distillation.distilpose import TeacherRecord, file_sha256
    from slimpose.engine.checkpoint import load_checkpoint, load_model_weights

    path = cfg.distill.teacher_checkpoint
    if not path:
        raise SlimposeInputError(
            "distill: the distillation terms need a teacher checkpoint (--teacher CKPT); for an L_reg-only "
            "baseline set distill.kt=distill.vt=distill.sh=distill.cs=0"
        )
    ckpt = load_checkpoint(path)
    if teacher is not None:
        load_model_weights(teacher, ckpt)
        name = str(ckpt.get("model_name") or cfg.distill.teacher_model)
        record = TeacherRecord(path=str(path), sha256=file_sha256(path), model=name,
                               extra={"built_by_caller": type(teacher).__name__})
        return teacher, record.to_dict()
    name = str(ckpt.get("model_name") or cfg.distill.teacher_model)
    overrides: dict[str, Any] = dict(cfg.distill.teacher_overrides)
    saved_cfg = ckpt.get("config")
    if isinstance(saved_cfg, dict) and isinstance(saved_cfg.get("model"), dict):
        overrides = {**dict(saved_cfg["model"].get("overrides") or {}), **overrides}
    if name not in models.MODELS:
        known = ", ".join(sorted(models.MODELS))
        raise SlimposeInputError(f"{path}: teacher model {name!r} is not a slimpose model ({known})")
    overrides.setdefault("num_keypoints", num_keypoints)
    overrides.setdefault("input_size", tuple(cfg.data.input_size))
    teacher = models.create_model(name, **overrides)
    if getattr(teacher, "output_kind", "heatmap") != "heatmap":
        raise SlimposeInputError(f"{path}: the teacher {name!r} must be a heatmap model")
    load_model_weights(teacher, ckpt)
    extra = {"overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()}}
    if "best_ap" in ckpt:
        extra["best_ap"] = float(ckpt["best_ap"])
    record = TeacherRecord(path=str(path), sha256=file_sha256(path), model=name, extra=extra)
    return teacher, record.to_dict()


def build_distill_task(cfg: DistillConfig, num_keypoints: int, teacher: nn.Module | None = None):
    """Student (``cfg.model``), teacher and the Eq. 7 loss; returns (task, distill record for checkpoints)."""
    from slimpose.distillation.distilpose import DistilPoseTask, check_teacher_compatibility
    from slimpose.engine.trainer import build_model

    loss_cfg = cfg.distill.loss_config()
    explicit = cfg.model.overrides.get("score_source")
    source = explicit or loss_cfg.score_source
    cfg.model.overrides["score_source"] = source  # so that the saved config rebuilds the same student
    student = build_model(cfg, num_keypoints)
    if getattr(student, "output_kind", None) != "regression":
        raise SlimposeInputError(
            f"model.name: {cfg.model.name!r} is not a regression student (distilpose_*, deeppose_*)"
        )
    record = None
    if loss_cfg.uses_teacher:
        teacher, record = build_teacher(cfg, num_keypoints, teacher)
        if cfg.distill.check_teacher:
            size = tuple(cfg.data.input_size)
            info = check_teacher_compatibility(student, teacher, size, loss_cfg.uses_tokens)
            record["extra"].update(info)
    else:
        teacher = None
    task = DistilPoseTask(student, teacher, loss_cfg, score_source=explicit)
    distill_record = {
        "teacher": record,
        "score_source": task.score_source,
        "loss_weights": loss_cfg.to_dict(),
    }
    return task, distill_record


def make_trainer(cfg: DistillConfig, resume: bool | str = False, teacher: nn.Module | None = None):
    """A ``Trainer`` on the distillation task whose checkpoints carry the ``distill`` record."""
    from slimpose.engine.trainer import Trainer, dataset_info, seed_everything

    info = dataset_info(cfg)
    seed_everything(cfg.seed)
    task, distill_record = build_distill_task(cfg, info.num_keypoints, teacher)

    class DistillTrainer(Trainer):
        def state_dict(self) -> dict[str, Any]:
            state = super().state_dict()
            state["distill"] = distill_record
            state["score_source"] = distill_record["score_source"]
            return state

    return DistillTrainer(cfg, task=task, resume=resume)


def run(args: argparse.Namespace) -> int:
    import json

    from slimpose.engine.config import config_to_dict

    cfg = resolve_config(args)
    if args.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    resume: bool | str = False
    if args.resume:
        resume = "auto" if args.resume == "auto" else args.resume
    trainer = make_trainer(cfg, resume=resume)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    if trainer.is_main:
        ap = summary.get("val_AP", summary.get("val_PCKh"))
        print(f"[slimpose] distill done: {cfg.work_dir} (last AP {ap}, best {trainer.best_ap:.4f})",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="slimpose distill")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
