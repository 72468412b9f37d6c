"""Knowledge-token distillation recipes (ViTPose, Xu et al., NeurIPS 2022, Sec. 3.4, Table 8).

Two stages, each a ``slimpose distill`` run (``docs/knowledge_token.md``):

* ``kt_token_vitpose_l_coco``: stage 1, the knowledge token (1, 1, 1024) of a frozen ViTPose-L
  (``--teacher L.pth``) with the ViTPose-L COCO data settings; only the token trains (Adam 1e-3 without
  weight decay, so that the token is not pulled to 0; gradient clipping 1.0). The paper gives no stage-1
  schedule: slimpose takes 10 epochs (the token has 1024 numbers). Its ``best.pth`` is the token file of stage 2.
* ``vitpose_l_to_b_kt_student``: stage 2, ViTPose-B (the ``vitpose_b_coco`` recipe) with the frozen token of
  ``work_dirs/kt_token_vitpose_l_coco/best.pth`` through a trained linear projection 1024 -> 768, plus output
  distillation from the plain ViTPose-L (weight 1: the task loss and ``MSE(S, K_T)`` are both JointsMSE on
  heatmaps of one scale). Table 8 rows: ``--set knowledge_token.output_kd=0`` (token only, 76.0 AP),
  ``--set knowledge_token.use_token=false`` (output KD only, 76.3), as given (both, 76.6); ViTPose-B alone
  (``vitpose_b_coco``) 75.8.
* ``kt_synth_teacher`` / ``kt_synth_student_base`` / ``kt_synth_token`` / ``kt_synth_student``: the CPU-sized
  versions on the synthetic people: a dim-128, 6-block ViTPose teacher and a dim-96, 3-block student
  (different widths, so the projection is exercised), 8x8 patches at 48x64 (w, h), the simple decoder (24x32
  heatmaps), Adam 1e-3 (the CPU recipes' rate). ``benchmarks/knowledge_token.py`` runs them with its measured
  setting instead: AdamW 2e-3, weight decay 0.01 (the token: 0), batch 8.
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.recipes.vitpose import vitpose_b_coco, vitpose_l_coco
from slimpose.config.schema import (
    AugmentParams,
    DataConfig,
    KnowledgeTokenConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
)

# the CPU-sized ViTPose shapes of the synthetic recipes (vitpose_s keywords)
SYNTH_PATCH = {"patch_size": 8, "padding": 0, "decoder": "simple", "drop_path_rate": 0.0}
SYNTH_TEACHER = {"dim": 128, "depth": 6, "num_heads": 4, **SYNTH_PATCH}
SYNTH_STUDENT = {"dim": 96, "depth": 3, "num_heads": 4, **SYNTH_PATCH}


def _named(cfg: TrainConfig, name: str) -> TrainConfig:
    cfg.name, cfg.work_dir = name, f"work_dirs/{name}"
    return cfg


def kt_token_vitpose_l_coco() -> TrainConfig:
    """Stage 1: the knowledge token of a frozen ViTPose-L (``--teacher``), COCO, ViTPose-L data settings."""
    cfg = _named(vitpose_l_coco(), "kt_token_vitpose_l_coco")
    cfg.optim = OptimConfig(name="adam", lr=1e-3, weight_decay=0.0, grad_clip=1.0)
    cfg.schedule = ScheduleConfig(epochs=10, warmup_iters=500, warmup_ratio=1e-3, milestones=(8,))
    cfg.eval_interval = 5
    cfg.knowledge_token = KnowledgeTokenConfig(stage="token", teacher_model="vitpose_l")
    return cfg


def vitpose_l_to_b_kt_student() -> TrainConfig:
    """Stage 2: ViTPose-B with the frozen ViTPose-L token (linear 1024 -> 768) + output KD (76.6 AP published)."""
    cfg = _named(vitpose_b_coco(), "vitpose_l_to_b_kt_student")
    cfg.knowledge_token = KnowledgeTokenConfig(
        stage="student", teacher_model="vitpose_l", token_path="work_dirs/kt_token_vitpose_l_coco/best.pth",
        token_dim=1024, projection="auto", output_kd=1.0)
    return cfg


def _synth_data() -> DataConfig:
    return DataConfig(dataset="synthetic", data_root="data/synthetic_kt", input_size=(48, 64), heatmap_size=(24, 32),
                      sigma=2.0, batch_size=8, val_batch_size=64, workers=0, val_workers=0,
                      synthetic_train_images=1500, synthetic_val_images=150, synthetic_preset="easy",
                      synthetic_image_size=(160, 160),
                      aug=AugmentParams(rotation_factor=20.0, scale_factor=0.2, half_body_prob=0.0))


def _synth(name: str, overrides: dict, epochs: int) -> TrainConfig:
    return TrainConfig(
        name=name, work_dir=f"work_dirs/{name}", data=_synth_data(),
        model=ModelConfig(name="vitpose_s", overrides=dict(overrides)),
        optim=OptimConfig(name="adam", lr=1e-3),
        schedule=ScheduleConfig(epochs=epochs, warmup_iters=50, warmup_ratio=1e-3, milestones=(int(epochs * 0.8),)),
        eval_interval=epochs, log_interval=50, tensorboard=False, num_threads=1, dark=True,
    )


def kt_synth_teacher() -> TrainConfig:
    """The CPU-sized teacher: a plain ViTPose (dim 128, 6 blocks) on the synthetic people."""
    return _synth("kt_synth_teacher", SYNTH_TEACHER, 15)


def kt_synth_student_base() -> TrainConfig:
    """The CPU-sized student alone (dim 96, 3 blocks): the Table 8 baseline row."""
    return _synth("kt_synth_student_base", SYNTH_STUDENT, 14)


def kt_synth_token() -> TrainConfig:
    """Stage 1 on the synthetic teacher (``--teacher work_dirs/kt_synth_teacher/last.pth``)."""
    cfg = _synth("kt_synth_token", SYNTH_TEACHER, 2)
    cfg.optim = OptimConfig(name="adam", lr=1e-3, weight_decay=0.0)
    cfg.knowledge_token = KnowledgeTokenConfig(stage="token", teacher_model="vitpose_s")
    return cfg


def kt_synth_student() -> TrainConfig:
    """Stage 2 on the synthetic student: the frozen 128-d token through a linear 128 -> 96, + output KD."""
    cfg = _synth("kt_synth_student", SYNTH_STUDENT, 14)
    cfg.knowledge_token = KnowledgeTokenConfig(
        stage="student", teacher_model="vitpose_s", token_path="work_dirs/kt_synth_token/last.pth",
        token_dim=SYNTH_TEACHER["dim"], output_kd=1.0)
    return cfg


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "kt_token_vitpose_l_coco": kt_token_vitpose_l_coco,
    "vitpose_l_to_b_kt_student": vitpose_l_to_b_kt_student,
    "kt_synth_teacher": kt_synth_teacher,
    "kt_synth_student_base": kt_synth_student_base,
    "kt_synth_token": kt_synth_token,
    "kt_synth_student": kt_synth_student,
}
