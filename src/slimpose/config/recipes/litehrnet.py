"""Lite-HRNet (Yu et al., CVPR 2021) and SimCC / SimDR on MPII at 256x256, and the CPU-sized synthetic runs.

* ``litehrnet_{18,30}_mpii``: the official ``configs/top_down/lite_hrnet/mpii/litehrnet_{18,30}_mpii_256x256.py``
  (HRNet/Lite-HRNet): 32 images per GPU, Adam 2e-3, linear warm-up 500 iterations (ratio 1e-3), 210 epochs,
  x0.1 at 170 and 200; flip 0.5, rotation 30 (p 0.6), scale 0.25, no half body; MSRA heatmaps sigma 2;
  flip test with the shifted flipped heatmap, standard (quarter-offset) decoding. Published PCKh@0.5:
  85.4 (18) and 87.0 (30) (README; MMPose 1.x re-run 0.859 / 0.869).
* ``litehrnet_{18,30}_simcc_mpii``: the same data and schedule with the SimCC head of
  ``litehrnet_*_simcc`` (no official config exists: MMPose's MPII SimCC recipe
  ``simcc_res50_wo-deconv-8xb64-210e_mpii-256x256`` gives sigma 6 bins and split ratio 2) in the official
  **SA-SimDR** style (Gaussian labels, ``recipes.simcc.SA_SIMDR``).
* ``hrnet_w32_simcc_mpii``: the SA-SimDR HRNet-W32 teacher of the Multi-KD recipes, same data and schedule
  with the official SimCC / HRNet rate 1e-3.
* ``*_synth_mpii``: CPU-sized runs on synthetic people in the MPII skeleton (``data.dataset
  'synthetic_mpii'``), 64x64 crops, written down in ``docs/multikd.md``.
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.recipes.simcc import SA_SIMDR
from slimpose.config.schema import (
    AugmentParams,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    SimCCParams,
    TrainConfig,
)


def _mpii_data(sigma: float | None, heatmap: bool) -> DataConfig:
    aug = AugmentParams(half_body_prob=0.0, rotation_factor=30.0, rotation_prob=0.6, scale_factor=0.25)
    return DataConfig(dataset="mpii", data_root="data/mpii", input_size=(256, 256),
                      heatmap_size=(64, 64) if heatmap else None, sigma=sigma, batch_size=32, val_batch_size=32,
                      workers=4, val_workers=4, aug=aug)


def _mpii(name: str, model: str, lr: float, simcc: bool) -> TrainConfig:
    return TrainConfig(
        name=name, work_dir=f"work_dirs/{name}", data=_mpii_data(None if simcc else 2.0, heatmap=not simcc),
        model=ModelConfig(name=model), optim=OptimConfig(lr=lr),
        schedule=ScheduleConfig(epochs=210, warmup_iters=500, warmup_ratio=1e-3, milestones=(170, 200)),
        flip_test=True, shift_heatmap=True, dark=False, simcc=SimCCParams(**SA_SIMDR) if simcc else None,
    )


def litehrnet_18_mpii() -> TrainConfig:
    """Lite-HRNet-18, heatmaps, MPII 256x256 (85.4 PCKh@0.5 published)."""
    return _mpii("litehrnet_18_mpii", "litehrnet_18", 2e-3, simcc=False)


def litehrnet_30_mpii() -> TrainConfig:
    """Lite-HRNet-30, heatmaps, MPII 256x256 (87.0 PCKh@0.5 published)."""
    return _mpii("litehrnet_30_mpii", "litehrnet_30", 2e-3, simcc=False)


def litehrnet_18_simcc_mpii() -> TrainConfig:
    """Lite-HRNet-18 with the SA-SimDR head on MPII 256x256 (the Multi-KD paper's "no KD" student)."""
    return _mpii("litehrnet_18_simcc_mpii", "litehrnet_18_simcc", 2e-3, simcc=True)


def litehrnet_30_simcc_mpii() -> TrainConfig:
    """Lite-HRNet-30 with the SA-SimDR head on MPII 256x256."""
    return _mpii("litehrnet_30_simcc_mpii", "litehrnet_30_simcc", 2e-3, simcc=True)


def hrnet_w32_simcc_mpii() -> TrainConfig:
    """SA-SimDR HRNet-W32 on MPII 256x256: the Multi-KD teacher (set ``model.pretrained`` to an ImageNet
    HRNet-W32 as the official code does)."""
    return _mpii("hrnet_w32_simcc_mpii", "hrnet_w32_simcc", 1e-3, simcc=True)


def _synth_mpii(name: str, model: str, overrides: dict, epochs: int, lr: float = 2e-3) -> TrainConfig:
    """64x64 crops of synthetic people in the MPII skeleton: 16x16 stride-4 maps, 128 bins per axis."""
    aug = AugmentParams(half_body_prob=0.0, rotation_factor=30.0, rotation_prob=0.6, scale_factor=0.25)
    data = DataConfig(dataset="synthetic_mpii", data_root="data/synthetic_mpii", input_size=(64, 64),
                      batch_size=32, val_batch_size=64, workers=1, val_workers=1, synthetic_train_images=600,
                      synthetic_val_images=150, synthetic_seed=0, synthetic_preset="easy",
                      synthetic_image_size=(192, 192), aug=aug)
    return TrainConfig(
        name=name, work_dir=f"work_dirs/{name}", data=data, model=ModelConfig(name=model, overrides=overrides),
        optim=OptimConfig(lr=lr), schedule=ScheduleConfig(epochs=epochs, warmup_iters=50, warmup_ratio=1e-3,
                                                          milestones=(int(epochs * 0.8),)),
        flip_test=True, dark=False, eval_interval=max(epochs // 4, 1), log_interval=10, num_threads=2,
        simcc=SimCCParams(**SA_SIMDR),
    )


def litehrnet_18_simcc_synth_mpii() -> TrainConfig:
    """Lite-HRNet-18 SA-SimDR student on the synthetic MPII-skeleton people (CPU minutes)."""
    return _synth_mpii("litehrnet_18_simcc_synth_mpii", "litehrnet_18_simcc", {}, epochs=20)


def hrnet_w32_simcc_synth_mpii() -> TrainConfig:
    """The teacher of the synthetic Table 3: the SA-SimDR HRNet at 64x64, narrowed to width 16 for the CPU
    budget (its stages still have 16 / 32 / 64 / 128 channels, against the student's 40 / 80 / 160 / 320),
    a longer schedule and rate 1e-3."""
    return _synth_mpii("hrnet_w32_simcc_synth_mpii", "hrnet_w32_simcc", {"width": 16}, epochs=30, lr=1e-3)


RECIPES: dict[str, Callable[[], TrainConfig]] = {
    "litehrnet_18_mpii": litehrnet_18_mpii,
    "litehrnet_30_mpii": litehrnet_30_mpii,
    "litehrnet_18_simcc_mpii": litehrnet_18_simcc_mpii,
    "litehrnet_30_simcc_mpii": litehrnet_30_simcc_mpii,
    "hrnet_w32_simcc_mpii": hrnet_w32_simcc_mpii,
    "litehrnet_18_simcc_synth_mpii": litehrnet_18_simcc_synth_mpii,
    "hrnet_w32_simcc_synth_mpii": hrnet_w32_simcc_synth_mpii,
}
