"""ViTPose recipes: ``configs/body/2d_kpt_sview_rgb_img/topdown_heatmap/coco/ViTPose_{small,base,large,huge}
_coco_256x192.py`` (ViTAE-Transformer/ViTPose), the classic decoder.

64 images per GPU on 8 GPUs; AdamW lr 5e-4, betas (0.9, 0.999), weight decay 0.1, layer-wise rate decay
0.8 / 0.75 / 0.8 / 0.85 (S / B / L / H, ``optim.layer_decay``), gradient clipping 1.0; linear warm-up 500
iterations (ratio 1e-3), x0.1 at epochs 170 and 200 of 210. UDP encoding and decoding (sigma 2), flip 0.5,
half body 0.3 (> 8 joints), rotation 40, scale 0.5; test with flip (no heatmap shift: UDP) on the
``COCO_val2017_detections_AP_H_56_person.json`` boxes. The backbone starts from MAE weights (set
``model.pretrained``). Published COCO val AP: 73.8 / 75.8 / 78.3 / 79.1.
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.schema import AugmentParams, DataConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig

# size -> layer-wise rate decay of the official config
_SIZES = {"s": 0.8, "b": 0.75, "l": 0.8, "h": 0.85}


def _vitpose_coco(size: str) -> TrainConfig:
    name = f"vitpose_{size}_coco"
    aug = AugmentParams(half_body_prob=0.3, half_body_min_kpts=8, scale_factor=0.5, rotation_factor=40.0)
    data = DataConfig(dataset="coco", data_root="data/coco", input_size=(192, 256), heatmap_size=(48, 64),
                      sigma=2.0, udp=True, use_gt_bbox=False, batch_size=64, val_batch_size=32, workers=8,
                      val_workers=4, aug=aug)
    return TrainConfig(
        name=name, work_dir=f"work_dirs/{name}", data=data, model=ModelConfig(name=f"vitpose_{size}"),
        optim=OptimConfig(name="adamw", lr=5e-4, weight_decay=0.1, grad_clip=1.0, layer_decay=_SIZES[size]),
        schedule=ScheduleConfig(epochs=210, warmup_iters=500, warmup_ratio=1e-3, milestones=(170, 200)),
        flip_test=True, shift_heatmap=False, dark=False,
    )


def vitpose_s_coco() -> TrainConfig:
    """ViTPose-S 256x192 on COCO (73.8 AP published)."""
    return _vitpose_coco("s")


def vitpose_b_coco() -> TrainConfig:
    """ViTPose-B 256x192 on COCO (75.8 AP published)."""
    return _vitpose_coco("b")


def vitpose_l_coco() -> TrainConfig:
    """ViTPose-L 256x192 on COCO (78.3 AP published)."""
    return _vitpose_coco("l")


def vitpose_h_coco() -> TrainConfig:
    """ViTPose-H 256x192 on COCO (79.1 AP published)."""
    return _vitpose_coco("h")


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "vitpose_s_coco": vitpose_s_coco,
    "vitpose_b_coco": vitpose_b_coco,
    "vitpose_l_coco": vitpose_l_coco,
    "vitpose_h_coco": vitpose_h_coco,
}
