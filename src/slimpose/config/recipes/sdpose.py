"""SDPose recipes: ``TrainConfig``s with an ``sdpose`` section (``SDPoseConfig``: Eq. 3 weights,
``detach_teacher``).

Official facts (MartyrPenink/SDPose ``configs/body/2d_kpt_sview_rgb_img/sdpose/coco/*.py`` and the paper):
Adam lr 1e-3, linear warm-up 500 iterations (ratio 1e-3), x0.1 at epochs 200 and 260, 300 epochs;
8 GPUs x 64 samples (SDPose-B's config: 32 per GPU); unbiased (DARK) target encoding and decoding,
flip test with the 1-pixel shift; augmentation flip 0.5, half body 0.3 (> 8 joints), rotation 45,
scale 0.35, box-centre shift 0.16 with p=0.3; token weights 5e-6; detector boxes at test time
(``COCO_val2017_detections_AP_H_56_person.json``). SDPose-Reg's config is not released: its recipe uses
the same schedule with the RLE loss (paper Sec. 4.3).
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.schema import (
    AugmentParams,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    SDPoseConfig,
    TrainConfig,
)


# ----------------------------------------------------------------------------------------------- recipes


def _official(name: str, model: str, batch_size: int = 64) -> TrainConfig:
    data = DataConfig(
        dataset="coco", data_root="data/coco", input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0,
        unbiased_encoding=True, use_gt_bbox=False, batch_size=batch_size, val_batch_size=32,
        aug=AugmentParams(flip_prob=0.5, half_body_prob=0.3, half_body_min_kpts=8, scale_factor=0.35,
                          rotation_factor=45.0, shift_factor=0.16, shift_prob=0.3),
    )
    return TrainConfig(
        name=name, work_dir=f"work_dirs/{name}", data=data, model=ModelConfig(name=model),
        optim=OptimConfig(name="adam", lr=1e-3),
        schedule=ScheduleConfig(epochs=300, warmup_iters=500, warmup_ratio=1e-3, milestones=(200, 260),
                                gamma=0.1),
        flip_test=True, shift_heatmap=True, dark=True, sdpose=SDPoseConfig(),
    )


def sdpose_t_coco() -> TrainConfig:
    """SDPose-T (6 layers x 3 cycles), 64/GPU x 8 GPUs: 69.7 AP COCO val published."""
    return _official("sdpose_t_coco", "sdpose_t")


def sdpose_s_v1_coco() -> TrainConfig:
    """SDPose-S-V1 (12 layers x 2 cycles), 64/GPU x 8 GPUs: 72.3 AP published."""
    return _official("sdpose_s_v1_coco", "sdpose_s_v1")


def sdpose_s_v2_coco() -> TrainConfig:
    """SDPose-S-V2 (patch 2x2, 12 layers x 2 cycles), 64/GPU x 8 GPUs: 73.5 AP published."""
    return _official("sdpose_s_v2_coco", "sdpose_s_v2")


def sdpose_b_coco() -> TrainConfig:
    """SDPose-B (HRNet-W32 3-stage, 12 layers x 2 cycles): the official config uses 32/GPU x 8 GPUs and
    ImageNet HRNet-W32 weights (``hrnet_w32-36af842e.pth``; set ``model.pretrained``); 73.7 AP published."""
    return _official("sdpose_b_coco", "sdpose_b", batch_size=32)


def sdpose_reg_coco() -> TrainConfig:
    """SDPose-Reg (DistilPose token-regression head + RLE, 12 layers x 2 cycles), 64/GPU x 8 GPUs:
    72.1 AP COCO test-dev published. Regression: no heatmap post-processing; score = 1 - mean(sigma)."""
    cfg = _official("sdpose_reg_coco", "sdpose_reg")
    cfg.dark = False
    cfg.score_thr = 0.0
    return cfg


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "sdpose_t_coco": sdpose_t_coco,
    "sdpose_s_v1_coco": sdpose_s_v1_coco,
    "sdpose_s_v2_coco": sdpose_s_v2_coco,
    "sdpose_b_coco": sdpose_b_coco,
    "sdpose_reg_coco": sdpose_reg_coco,
}
