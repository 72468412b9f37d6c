"""Multi-KD (``papers/simdr_multi_kd.md``) and DWPose (MMPose) distillation recipes for SimCC students.

* ``litehrnet_{18,30}_simcc_mpii_multikd``: the Lite-HRNet SA-SimDR student of ``litehrnet_*_simcc_mpii``
  distilled from an SA-SimDR HRNet-W32 (``hrnet_w32_simcc_mpii``) with all four switches of the seed's
  Table 3 on (Cross-stage, MFT, WA, VKD). The seed gives no loss weights: ``fkd = 5e-4`` with ``D`` the mean
  squared difference and ``vkd = 1.2e-4`` (= 1 / (K bins) at 256x256), each about the size of the task loss
  at the start; the teacher's three multi-branch stages against the student's three stages.
  Run: ``slimpose distill litehrnet_18_simcc_mpii_multikd --teacher TEACHER.pth``.
* ``*_dwpose_s1`` / ``*_dwpose_s2``: MMPose's DWPose recipe on the same student and teacher: stage 1 =
  ``FeaLoss`` on the last backbone feature (1x1 align conv, ``MSE(sum) / N``, alpha 7e-5) + ``KDLoss`` on
  the bins (weight 0.1, beta of the student loss, ``/ N K``), both faded by ``1 - epoch / epochs``; stage 2
  = head self-distillation: the stage-1 student is the teacher and the initial weights
  (``--teacher S1.pth --set model.pretrained=S1.pth``), its backbone frozen, a fresh head trained with
  the task loss + ``KDLoss`` weight 1 (no fade), 60 epochs (the DWPose configs).
* ``litehrnet_18_simcc_synth_mpii_multikd``: the CPU-sized synthetic run of ``benchmarks/multikd_ablation.py``.
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.recipes.litehrnet import (
    litehrnet_18_simcc_mpii,
    litehrnet_18_simcc_synth_mpii,
    litehrnet_30_simcc_mpii,
)
from slimpose.config.schema import MultiKDConfig, ScheduleConfig, TrainConfig


def _multikd(base: TrainConfig, name: str, **section) -> TrainConfig:
    base.name, base.work_dir = name, f"work_dirs/{name}"
    section.setdefault("teacher_model", "hrnet_w32_simcc")
    base.multikd = MultiKDConfig(**section)
    return base


def litehrnet_18_simcc_mpii_multikd() -> TrainConfig:
    """Lite-HRNet-18 SA-SimDR <- HRNet-W32 SA-SimDR, Multi-KD with every switch on (87.7 PCKh published)."""
    return _multikd(litehrnet_18_simcc_mpii(), "litehrnet_18_simcc_mpii_multikd", vkd=1.2e-4)


def litehrnet_30_simcc_mpii_multikd() -> TrainConfig:
    """Lite-HRNet-30 SA-SimDR <- HRNet-W32 SA-SimDR, Multi-KD with every switch on (88.9 PCKh published)."""
    return _multikd(litehrnet_30_simcc_mpii(), "litehrnet_30_simcc_mpii_multikd", vkd=1.2e-4)


def _last_stages() -> dict:
    return dict(student_stages=["backbone"], teacher_stages=["backbone"])


def litehrnet_18_simcc_mpii_dwpose_s1() -> TrainConfig:
    """DWPose stage 1 on MPII: feature (last backbone map) + logit distillation, faded linearly."""
    return _multikd(litehrnet_18_simcc_mpii(), "litehrnet_18_simcc_mpii_dwpose_s1", fkd=7e-5, distance="sum",
                    cross_stage=False, mft=False, wa=False, vkd=0.1, vkd_normalizer="batch_keypoints",
                    schedule="linear_decay", **_last_stages())


def litehrnet_18_simcc_mpii_dwpose_s2() -> TrainConfig:
    """DWPose stage 2: head self-distillation from the stage-1 checkpoint (60 epochs, KD weight 1)."""
    cfg = _multikd(litehrnet_18_simcc_mpii(), "litehrnet_18_simcc_mpii_dwpose_s2",
                   teacher_model="litehrnet_18_simcc", fkd=0.0, vkd=1.0, vkd_normalizer="batch_keypoints", freeze_backbone=True, reinit_head=True)
    cfg.schedule = ScheduleConfig(epochs=60, warmup_iters=500, warmup_ratio=1e-3, milestones=(50,))
    return cfg


def litehrnet_18_simcc_synth_mpii_multikd() -> TrainConfig:
    """The synthetic CPU version of ``litehrnet_18_simcc_mpii_multikd`` (Table 3 shape)."""
    return _multikd(litehrnet_18_simcc_synth_mpii(), "litehrnet_18_simcc_synth_mpii_multikd")


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "litehrnet_18_simcc_mpii_multikd": litehrnet_18_simcc_mpii_multikd,
    "litehrnet_30_simcc_mpii_multikd": litehrnet_30_simcc_mpii_multikd,
    "litehrnet_18_simcc_mpii_dwpose_s1": litehrnet_18_simcc_mpii_dwpose_s1,
    "litehrnet_18_simcc_mpii_dwpose_s2": litehrnet_18_simcc_mpii_dwpose_s2,
    "litehrnet_18_simcc_synth_mpii_multikd": litehrnet_18_simcc_synth_mpii_multikd,
}
