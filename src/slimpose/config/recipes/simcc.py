"""SimCC recipes (Li et al., ECCV 2022): coordinate classification with ``SimCCHead``.

``SA_SIMDR`` and ``SIMDR`` are the two label styles of the official code (leeyegy/SimCC) as ``simcc``
section fields: SA-SimDR = Gaussian labels, ``KLDiscretLoss`` (bin mean, mean over the batch, / K), logits
averaged in the flip test, scores = min of the x / y max probabilities (``validate_sa_simdr``); SimDR =
one-hot labels smoothed by 0.1, ``NMTCritierion`` (KL summed over the bins, / N), softmaxes averaged in the
flip test, scores = max of the x / y max probabilities (``validate_simdr``).

``simcc_res50_coco`` is MMPose 1.x ``simcc_res50_8xb64-210e_coco-256x192`` (72.1 AP COCO val): 8 GPUs x 64,
Adam 1e-3, linear warm-up 500 iterations from 1e-3, x0.1 at epochs 170 and 200 of 210; ``SimCCLabel``
sigma 6 bins, split ratio 2; ``KLDiscretLoss``; augmentation flip 0.5, half body 0.3 (> 8 keypoints),
``RandomBBoxTransform`` defaults (shift 0.16 with p 0.3, scale 0.5..1.5, rotation 80 with p 0.6); flip
test; detection boxes (``COCO_val2017_detections_AP_H_56_person.json``) at test time. The backbone starts
from torchvision's ImageNet ResNet-50 (set ``model.pretrained``).
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.schema import (
    AugmentParams,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    SimCCParams,
    TrainConfig,
)


SA_SIMDR = dict(smoothing_type="gaussian", loss_bins="mean", loss_normalizer="batch_keypoints",
                flip_average="logits", from_logits=True, score_mode="min_xy")
SIMDR = dict(smoothing_type="standard", label_smooth_weight=0.1, loss_bins="sum", loss_normalizer="batch",
             flip_average="probs", from_logits=True, score_mode="max_xy")


def simcc_res50_coco() -> TrainConfig:
    """SimCC-ResNet-50 256x192 on COCO, 64/GPU x 8 GPUs (72.1 AP published)."""
    aug = AugmentParams(half_body_prob=0.3, half_body_min_kpts=8, scale_factor=0.5, rotation_factor=80.0,
                        rotation_prob=0.6, shift_factor=0.16, shift_prob=0.3)
    data = DataConfig(dataset="coco", data_root="data/coco", input_size=(192, 256), sigma=6.0, use_gt_bbox=False,
                      batch_size=64, val_batch_size=32, workers=8, val_workers=4, aug=aug)
    return TrainConfig(
        name="simcc_res50_coco", work_dir="work_dirs/simcc_res50_coco", data=data,
        model=ModelConfig(name="simcc_res50"), optim=OptimConfig(lr=1e-3),
        schedule=ScheduleConfig(epochs=210, warmup_iters=500, warmup_ratio=1e-3, milestones=(170, 200)),
        flip_test=True, simcc=SimCCParams(),
    )


def simcc_tiny_synthetic() -> TrainConfig:
    """A CPU-sized SimCC run on the synthetic people: ResNet-18 at 64x96 (w, h), one 64-channel
    deconvolution (2x3 -> 4x6 maps), 128 x-bins / 192 y-bins, the data and schedule of
    ``tokenpose_tiny_synthetic``. A smoke-scale run, not a published configuration."""
    from slimpose.config.recipes.topdown import tokenpose_tiny_synthetic

    cfg = tokenpose_tiny_synthetic()
    cfg.name, cfg.work_dir = "simcc_tiny_synthetic", "work_dirs/simcc_tiny_synthetic"
    cfg.model = ModelConfig(name="simcc_res50", overrides={"depth": 18, "num_deconv_layers": 1,
                                                           "deconv_channels": 64})
    cfg.data.heatmap_size = None
    cfg.data.sigma = None  # the SimCC head's 6 bins
    cfg.simcc = SimCCParams()
    return cfg


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "simcc_res50_coco": simcc_res50_coco,
    "simcc_tiny_synthetic": simcc_tiny_synthetic,
}
