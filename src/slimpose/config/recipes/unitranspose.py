"""UniTransPose recipes (``docs/unitranspose.md``). No official config has been released: the COCO recipes
follow the ViTPose ones (AdamW 5e-4, weight decay 0.1, gradient clipping 1.0, 210 epochs, x0.1 at 170 and
200, UDP, flip test) without layer-wise decay (the encoder is hierarchical), with the hybrid loss (heatmap MSE
+ Smooth L1 on the joint-token regression, weight 1).

* ``unitranspose_{t,s,b}_coco``: 256x192 on COCO alone (17 joints);
* ``unitranspose_{t,s,b}_multi``: one model on COCO + MPII + AI Challenger + CrowdPose through the unified
  22-joint skeleton (``data.skeleton='unified'``), weights 1 : 0.5 : 1 : 0.5 (COCO and AIC are the largest
  sets; the paper's mixing weights are not public), validated on COCO; ``slimpose eval --per-source``
  scores every source in its own skeleton and metric;
* ``unitranspose_synth`` / ``unitranspose_synth_unified``: CPU-sized runs at 96x128 on synthetic people in
  the COCO skeleton alone, or in the COCO, MPII and AIC skeletons at once (``benchmarks/unitranspose.py``).
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.schema import (
    AugmentParams, DataConfig, DataSource, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig,
)


def _coco(size: str) -> TrainConfig:
    name = f"unitranspose_{size}_coco"
    aug = AugmentParams(half_body_prob=0.3, half_body_min_kpts=8, scale_factor=0.5, rotation_factor=40.0)
    data = DataConfig(dataset="coco", data_root="data/coco", input_size=(192, 256), heatmap_size=(48, 64),
                      sigma=2.0, udp=True, use_gt_bbox=False, batch_size=64, val_batch_size=32, workers=8,
                      val_workers=4, aug=aug)
    return TrainConfig(
        name=name, work_dir=f"work_dirs/{name}", data=data, model=ModelConfig(name=f"unitranspose_{size}"),
        optim=OptimConfig(name="adamw", lr=5e-4, weight_decay=0.1, grad_clip=1.0),
        schedule=ScheduleConfig(epochs=210, warmup_iters=500, warmup_ratio=1e-3, milestones=(170, 200)),
        flip_test=True, shift_heatmap=False, dark=False,
    )


def _multi(size: str) -> TrainConfig:
    cfg = _coco(size)
    cfg.name = f"unitranspose_{size}_multi"
    cfg.work_dir = f"work_dirs/{cfg.name}"
    cfg.data.skeleton = "unified"
    cfg.data.extra_train = [DataSource("mpii", "data/mpii", weight=0.5), DataSource("aic", "data/aic", weight=1.0),
                            DataSource("crowdpose", "data/crowdpose", weight=0.5)]
    return cfg


def unitranspose_t_coco() -> TrainConfig:
    """UniTransPose-T 256x192 on COCO alone."""
    return _coco("t")


def unitranspose_s_coco() -> TrainConfig:
    """UniTransPose-S 256x192 on COCO alone."""
    return _coco("s")


def unitranspose_b_coco() -> TrainConfig:
    """UniTransPose-B 256x192 on COCO alone."""
    return _coco("b")


def unitranspose_t_multi() -> TrainConfig:
    """UniTransPose-T on COCO + MPII + AIC + CrowdPose, unified skeleton."""
    return _multi("t")


def unitranspose_s_multi() -> TrainConfig:
    """UniTransPose-S on COCO + MPII + AIC + CrowdPose, unified skeleton."""
    return _multi("s")


def unitranspose_b_multi() -> TrainConfig:
    """UniTransPose-B on COCO + MPII + AIC + CrowdPose, unified skeleton."""
    return _multi("b")


def _synth_data(root: str) -> DataConfig:
    return DataConfig(dataset="synthetic", data_root=root, input_size=(96, 128), heatmap_size=(24, 32),
                      sigma=2.0, batch_size=8, val_batch_size=64, workers=0, val_workers=0,
                      synthetic_train_images=400, synthetic_val_images=100, synthetic_preset="easy",
                      synthetic_image_size=(192, 192),
                      aug=AugmentParams(rotation_factor=20.0, scale_factor=0.2, half_body_prob=0.0))


def unitranspose_synth() -> TrainConfig:
    """UniTransPose-T on the synthetic people (COCO skeleton), 96x128, CPU minutes."""
    name = "unitranspose_synth"
    return TrainConfig(
        name=name, work_dir=f"work_dirs/{name}", data=_synth_data("data/synthetic_utp"),
        model=ModelConfig(name="unitranspose_t"), optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=0.05,
                                                                   grad_clip=1.0),
        schedule=ScheduleConfig(epochs=10, warmup_iters=50, warmup_ratio=1e-3, milestones=(8,)),
        eval_interval=10, log_interval=20, tensorboard=False, num_threads=1,
    )


def unitranspose_synth_unified() -> TrainConfig:
    """The same model and budget on synthetic people in three skeletons at once (COCO, MPII, AIC), unified."""
    cfg = unitranspose_synth()
    cfg.name = "unitranspose_synth_unified"
    cfg.work_dir = f"work_dirs/{cfg.name}"
    cfg.data.skeleton = "unified"
    cfg.data.extra_train = [DataSource("synthetic_mpii", "data/synthetic_utp_mpii"),
                            DataSource("synthetic_aic", "data/synthetic_utp_aic")]
    return cfg


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "unitranspose_t_coco": unitranspose_t_coco, "unitranspose_s_coco": unitranspose_s_coco,
    "unitranspose_b_coco": unitranspose_b_coco, "unitranspose_t_multi": unitranspose_t_multi,
    "unitranspose_s_multi": unitranspose_s_multi, "unitranspose_b_multi": unitranspose_b_multi,
    "unitranspose_synth": unitranspose_synth, "unitranspose_synth_unified": unitranspose_synth_unified,
}
