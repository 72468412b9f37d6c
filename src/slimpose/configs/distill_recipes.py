"""DistilPose distillation configs and the named recipes of ``slimpose distill``.

``DistillConfig`` is a ``TrainConfig`` (data, model = the student, optim, schedule, ...) plus a
``distill`` section: the teacher and the Eq. 7 weights. ``--set distill.cs=0`` etc. use the engine's
override machinery. Official recipe facts (yshMars/DistilPose configs): Adam lr 1e-3, linear warm-up
500 iterations (ratio 1e-3), x0.1 at epochs 200 and 260, 300 epochs, flip / half-body / rotation 45 /
scale 0.35 augmentation, input 256x192, teacher heatmaps 64x48 (MSRA, sigma 2), a = 5e-4, 5e-4, 1, 1e-2.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from slimpose.engine.config import (
    ModelConfig,
    TrainConfig,
    apply_overrides,
    config_to_dict,
    config_with_section_from_dict,
    validate_config,
)
from slimpose.utils.io import SlimposeInputError, load_json


@dataclass
class DistillParams:
    """The teacher and the loss weights of Eq. 7 (0 switches a term off; Table 4)."""

    teacher_model: str = "distilpose_teacher"
    teacher_overrides: dict[str, Any] = field(default_factory=dict)
    teacher_checkpoint: str | None = None  # usually given by ``--teacher``
    reg: float = 1.0
    kt: float = 5e-4
    vt: float = 5e-4
    sh: float = 1.0
    cs: float = 1e-2
    check_teacher: bool = True  # dry-run both models once and compare token shapes before training

    def loss_config(self):
        from slimpose.distillation.distilpose import DistilPoseLossConfig

        return DistilPoseLossConfig(reg=self.reg, kt=self.kt, vt=self.vt, sh=self.sh, cs=self.cs)


@dataclass
class DistillConfig(TrainConfig):
    """A training config whose ``model`` is the regression student, plus the ``distill`` section."""

    distill: DistillParams = field(default_factory=DistillParams)


def validate_distill_config(cfg: DistillConfig, where: str = "config") -> DistillConfig:
    validate_config(cfg, where)
    d = cfg.distill
    for key in ("reg", "kt", "vt", "sh", "cs"):
        if getattr(d, key) < 0:
            raise SlimposeInputError(f"{where}: distill.{key}: must be >= 0, got {getattr(d, key)}")
    if d.reg == 0 and not d.loss_config().uses_teacher:
        raise SlimposeInputError(f"{where}: every loss weight of the distill section is 0")
    return cfg


def distill_config_from_dict(data: dict[str, Any], where: str = "config") -> DistillConfig:
    """A DistillConfig from a (partial) dict; unknown keys raise a SlimposeInputError naming ``where``."""
    cfg = config_with_section_from_dict(
        DistillConfig, data, "distill", where, raw_keys=("teacher_overrides", "teacher_checkpoint")
    )
    return validate_distill_config(cfg, where)


def distill_config_to_dict(cfg: DistillConfig) -> dict[str, Any]:
    return config_to_dict(cfg)


def apply_distill_overrides(cfg: DistillConfig, assignments: list[str] | tuple[str, ...]) -> DistillConfig:
    """A copy of ``cfg`` with every ``key=value`` (``--set``) applied, then validated."""
    return apply_overrides(cfg, assignments, validate=validate_distill_config)


# ----------------------------------------------------------------------------------------------- recipes


def _official(cfg: DistillConfig) -> DistillConfig:
    """Schedule / optimiser / test settings shared by the official DistilPose COCO configs."""
    cfg.data.dataset = "coco"
    cfg.data.data_root = "data/coco"
    cfg.data.input_size = (192, 256)
    cfg.data.heatmap_size = (48, 64)
    cfg.data.batch_size = 32
    cfg.optim.lr = 1e-3
    cfg.schedule.epochs = 300
    cfg.schedule.milestones = (200, 260)
    cfg.schedule.warmup_iters = 500
    cfg.flip_test = True
    cfg.dark = False  # the student regresses coordinates: no heatmap post-processing
    cfg.score_thr = 0.0  # instance score = box score x mean keypoint confidence (Eq. 3)
    return cfg


def distilpose_s_coco() -> DistillConfig:
    """DistilPose-S (71.6 AP COCO val) from the HRNet-W48 + TokenPose teacher (all four terms)."""
    cfg = _official(DistillConfig(name="distilpose_s_coco", work_dir="work_dirs/distilpose_s_coco"))
    cfg.model = ModelConfig(name="distilpose_s")
    return cfg


def distilpose_l_coco() -> DistillConfig:
    """DistilPose-L (74.4 AP COCO val); the official config initialises the backbone from the teacher."""
    cfg = _official(DistillConfig(name="distilpose_l_coco", work_dir="work_dirs/distilpose_l_coco"))
    cfg.model = ModelConfig(name="distilpose_l")
    return cfg


def distilpose_s_coco_nodistill() -> DistillConfig:
    """The same student trained with L_reg only (paper Table 4 first row, 56.0 AP); constant scores."""
    cfg = distilpose_s_coco()
    cfg.name, cfg.work_dir = "distilpose_s_coco_nodistill", "work_dirs/distilpose_s_coco_nodistill"
    cfg.distill = DistillParams(kt=0.0, vt=0.0, sh=0.0, cs=0.0)
    return cfg


def distilpose_l_coco_nodistill() -> DistillConfig:
    cfg = distilpose_l_coco()
    cfg.name, cfg.work_dir = "distilpose_l_coco_nodistill", "work_dirs/distilpose_l_coco_nodistill"
    cfg.distill = DistillParams(kt=0.0, vt=0.0, sh=0.0, cs=0.0)
    return cfg


def deeppose_res50_coco() -> DistillConfig:
    """Table 6: DeepPose-ResNet-50 from SimpleBaseline-ResNet-50 with Simulated Heatmaps (L_SH + L_CS)."""
    cfg = _official(DistillConfig(name="deeppose_res50_coco", work_dir="work_dirs/deeppose_res50_coco"))
    cfg.model = ModelConfig(name="deeppose_res50")
    cfg.distill = DistillParams(teacher_model="simplebaseline_res50", kt=0.0, vt=0.0, sh=1.0, cs=1e-2)
    return cfg


def deeppose_res50_coco_nodistill() -> DistillConfig:
    """Table 6 baseline (52.6 AP): DeepPose-ResNet-50 with L_reg only."""
    cfg = deeppose_res50_coco()
    cfg.name, cfg.work_dir = "deeppose_res50_coco_nodistill", "work_dirs/deeppose_res50_coco_nodistill"
    cfg.distill = DistillParams(teacher_model="simplebaseline_res50", kt=0.0, vt=0.0, sh=0.0, cs=0.0)
    return cfg


def distilpose_tiny_synthetic() -> DistillConfig:
    """A CPU-sized run on the synthetic people, shaped like the ``tokenpose_tiny_synthetic`` teacher recipe.

    Data, optimiser and schedule are that recipe's (64x96 input, 16x24 heatmaps); the student has the
    teacher's TDE shape and token grid (dim 64, 4 layers, 4 heads, 2x2 patches -> 96 visual tokens) on a
    StemNet with one Bottleneck. Pass the teacher's checkpoint with ``--teacher``.
    """
    from slimpose.configs.recipes import tokenpose_tiny_synthetic

    base = tokenpose_tiny_synthetic()
    cfg = DistillConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)})
    cfg.name, cfg.work_dir = "distilpose_tiny_synthetic", "work_dirs/distilpose_tiny_synthetic"
    teacher_overrides = dict(base.model.overrides)
    keys = ("dim", "depth", "num_heads", "patch_size")
    student = {k: teacher_overrides[k] for k in keys if k in teacher_overrides}
    cfg.model = ModelConfig(name="distilpose_s", overrides={**student, "stem_blocks": 1})
    cfg.distill = DistillParams(teacher_model=base.model.name, teacher_overrides={})
    cfg.dark = False
    cfg.score_thr = 0.0
    return cfg


RECIPES: dict[str, Callable[[], DistillConfig]] = {
    "distilpose_s_coco": distilpose_s_coco,
    "distilpose_l_coco": distilpose_l_coco,
    "distilpose_s_coco_nodistill": distilpose_s_coco_nodistill,
    "distilpose_l_coco_nodistill": distilpose_l_coco_nodistill,
    "deeppose_res50_coco": deeppose_res50_coco,
    "deeppose_res50_coco_nodistill": deeppose_res50_coco_nodistill,
    "distilpose_tiny_synthetic": distilpose_tiny_synthetic,
}


def load_distill_config(name_or_path: str | os.PathLike) -> DistillConfig:
    """A recipe name of ``RECIPES`` or a JSON file (a full ``config.json`` of a run, or a partial one)."""
    key = str(name_or_path)
    if key in RECIPES:
        return RECIPES[key]()
    if key.endswith(".json") or os.path.exists(key):
        return distill_config_from_dict(load_json(key, "distill config file"), where=key)
    raise SlimposeInputError(
        f"unknown distill recipe {key!r} (not a file either); recipes: {', '.join(sorted(RECIPES))}"
    )
