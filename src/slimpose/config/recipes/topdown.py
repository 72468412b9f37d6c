"""One function per published training configuration, returning a ``TrainConfig``.

Sources (hyper-parameters as published):
* TokenPose ``experiments/coco/tokenpose/*.yaml`` (leeyegy/TokenPose): 4 GPUs, Adam 1e-3, 300 epochs,
  x0.1 at 200/260, flip 0.5 / half body 0.3 (> 8 joints) / rotation 45 / scale 0.35, sigma 2, flip test,
  DARK post-processing (blur 11), GT boxes; batch per GPU 32 (S-v1, B), 12 (S-v2), 16 (L/D24). The
  HRNet-style code base steps the rate per epoch without warm-up (``warmup_iters=0``). Its yaml says
  WD 1e-4, but HRNet's ``get_optimizer`` builds Adam without weight decay, so 0 here.
* DistilPose teacher ``configs/.../tokenpose/coco/teacher_hr48_coco_256x192.py`` (yshMars/DistilPose, mmpose
  0.x): 32 x 8 GPUs, Adam 1e-3, linear warm-up 500 iters (ratio 1e-3), 300 epochs, 200/260, unbiased
  (DARK) encoding and decoding.
* HRNet-W32 ``w32_256x192_adam_lr1e-3.yaml`` (deep-high-resolution-net.pytorch): 32 x 4 GPUs, Adam 1e-3,
  210 epochs, 170/200, standard (quarter-offset) decoding.
* SimpleBaseline-Res50 ``res50_256x192_d256x3_adam_lr1e-3.yaml`` (same repository): 32 x 4 GPUs, Adam 1e-3,
  140 epochs, 90/120, rotation 40, scale 0.3, no half body.

The batch size of a recipe is per process (GPU); ``gpus`` in each docstring is the published count.
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.schema import (
    AugmentParams,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    TrainConfig,
)


def _coco_data(batch_size: int, **kwargs) -> DataConfig:
    return DataConfig(dataset="coco", data_root="data/coco", input_size=(192, 256), heatmap_size=(48, 64),
                      sigma=2.0, batch_size=batch_size, val_batch_size=batch_size, workers=8, val_workers=4,
                      **kwargs)


def _token_schedule(warmup_iters: int = 0) -> ScheduleConfig:
    return ScheduleConfig(epochs=300, warmup_iters=warmup_iters, warmup_ratio=1e-3, milestones=(200, 260),
                          gamma=0.1)


def tokenpose_s_v1_coco() -> TrainConfig:
    """TokenPose-S-v1 256x192 on COCO: 32/GPU x 4 GPUs (72.5 AP published)."""
    return TrainConfig(
        name="tokenpose_s_v1_coco", work_dir="work_dirs/tokenpose_s_v1_coco",
        data=_coco_data(32), model=ModelConfig(name="tokenpose_s_v1"),
        optim=OptimConfig(lr=1e-3), schedule=_token_schedule(), dark=True,
    )


def tokenpose_s_v2_coco() -> TrainConfig:
    """TokenPose-S-v2 256x192 on COCO: 12/GPU x 4 GPUs (73.5 AP published)."""
    return TrainConfig(
        name="tokenpose_s_v2_coco", work_dir="work_dirs/tokenpose_s_v2_coco",
        data=_coco_data(12), model=ModelConfig(name="tokenpose_s_v2"),
        optim=OptimConfig(lr=1e-3), schedule=_token_schedule(), dark=True,
    )


def tokenpose_b_coco() -> TrainConfig:
    """TokenPose-B 256x192 on COCO: 32/GPU x 4 GPUs, HRNet-W32 ImageNet init (74.7 AP published)."""
    return TrainConfig(
        name="tokenpose_b_coco", work_dir="work_dirs/tokenpose_b_coco",
        data=_coco_data(32), model=ModelConfig(name="tokenpose_b"),
        optim=OptimConfig(lr=1e-3), schedule=_token_schedule(), dark=True,
    )


def tokenpose_l_d24_coco() -> TrainConfig:
    """TokenPose-L/D24 256x192 on COCO: 16/GPU x 4 GPUs, HRNet-W48 ImageNet init (75.8 AP published)."""
    return TrainConfig(
        name="tokenpose_l_d24_coco", work_dir="work_dirs/tokenpose_l_d24_coco",
        data=_coco_data(16), model=ModelConfig(name="tokenpose_l_d24"),
        optim=OptimConfig(lr=1e-3), schedule=_token_schedule(), dark=True,
    )


def distilpose_teacher_coco() -> TrainConfig:
    """DistilPose's teacher (HRNet-W48 4-stage + 12-layer TokenPose head): 32/GPU x 8 GPUs (75.2 AP)."""
    return TrainConfig(
        name="distilpose_teacher_coco", work_dir="work_dirs/distilpose_teacher_coco",
        data=_coco_data(32, unbiased_encoding=True), model=ModelConfig(name="distilpose_teacher"),
        optim=OptimConfig(lr=1e-3), schedule=_token_schedule(warmup_iters=500), dark=True,
    )


def hrnet_w32_coco() -> TrainConfig:
    """HRNet-W32 256x192 on COCO: 32/GPU x 4 GPUs, 210 epochs (74.4 AP published)."""
    return TrainConfig(
        name="hrnet_w32_coco", work_dir="work_dirs/hrnet_w32_coco",
        data=_coco_data(32), model=ModelConfig(name="hrnet_w32"),
        optim=OptimConfig(lr=1e-3),
        schedule=ScheduleConfig(epochs=210, warmup_iters=0, milestones=(170, 200), gamma=0.1),
        dark=False,
    )


def simplebaseline_res50_coco() -> TrainConfig:
    """SimpleBaseline-ResNet-50 256x192 on COCO: 32/GPU x 4 GPUs, 140 epochs (70.4 AP published)."""
    aug = AugmentParams(half_body_prob=0.0, rotation_factor=40.0, scale_factor=0.3)
    return TrainConfig(
        name="simplebaseline_res50_coco", work_dir="work_dirs/simplebaseline_res50_coco",
        data=_coco_data(32, aug=aug), model=ModelConfig(name="simplebaseline_res50"),
        optim=OptimConfig(lr=1e-3),
        schedule=ScheduleConfig(epochs=140, warmup_iters=0, milestones=(90, 120), gamma=0.1),
        dark=False,
    )


def tokenpose_tiny_synthetic() -> TrainConfig:
    """A 4-layer, dim-64 TokenPose-S at 64x96 (w, h) on the synthetic people: the quick CPU default.

    StemNet (stride 4) -> 16x24 feature map, 2x2 patches -> 96 visual tokens; 40 epochs of 400 images
    (~800 instances, ~21 s per epoch on one shared CPU thread), Adam 1e-3 with 100 warm-up iterations,
    decay at epochs 30/36. A smoke-scale run: at this budget the loss is still on its plateau (val AP ~ 0).
    """
    return TrainConfig(
        name="tokenpose_tiny_synthetic", work_dir="work_dirs/tokenpose_tiny_synthetic",
        data=DataConfig(
            dataset="synthetic", data_root="data/synthetic", input_size=(64, 96), heatmap_size=(16, 24),
            sigma=1.5, batch_size=32, val_batch_size=64, workers=1, val_workers=1,
            synthetic_train_images=400, synthetic_val_images=100, synthetic_seed=0,
            aug=AugmentParams(rotation_factor=30.0, scale_factor=0.25),
        ),
        model=ModelConfig(name="tokenpose_s_v1", overrides={"dim": 64, "depth": 4, "num_heads": 4,
                                                            "patch_size": [2, 2]}),
        optim=OptimConfig(lr=1e-3),
        schedule=ScheduleConfig(epochs=40, warmup_iters=100, warmup_ratio=1e-3, milestones=(30, 36)),
        eval_interval=5, log_interval=10, dark=True, num_threads=1,
    )


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "tokenpose_s_v1_coco": tokenpose_s_v1_coco,
    "tokenpose_s_v2_coco": tokenpose_s_v2_coco,
    "tokenpose_b_coco": tokenpose_b_coco,
    "tokenpose_l_d24_coco": tokenpose_l_d24_coco,
    "distilpose_teacher_coco": distilpose_teacher_coco,
    "hrnet_w32_coco": hrnet_w32_coco,
    "simplebaseline_res50_coco": simplebaseline_res50_coco,
    "tokenpose_tiny_synthetic": tokenpose_tiny_synthetic,
}
