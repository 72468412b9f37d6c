"""3-D lifting recipes (``docs/lifting.md``, "Training").

* ``<model>_h36m``: the released models at full size (243 frames, dim 512, 8 + 8 blocks) on Human3.6M in
  the VideoPose3D layout (``--data-root`` holding ``data_3d_h36m.npz``, ``data_2d_h36m_cpn_ft_h36m_dbb.npz``
  and ``h36m_cameras.json``, the user's copy of VideoPose3D's camera tables: docs/datasets.md), with MixSTE's official training: AdamW 4e-5, weight decay
  0.1, x0.99 per epoch, 120 epochs, 4 clips of 243 frames (``-b 1024``), clips every 243 frames (``-s 243``;
  TPC-MixSTE, seq2frame: every frame, its README's stride 1), flip augmentation and flip test. HoT's own
  epochs and batch are not in the reference: its recipe uses MixSTE's (the code it forks); so does H2OT's
  (``h2ot_mixste``: TPC, 121 / 61 / 31 of 243 frames before block pairs 2 / 3 / 4, TRA; unverified schedule).
* ``ktpformer_h36m`` / ``hot_ktpformer_h36m``: KTPFormer's official training (AdamW 8e-5, 200 epochs, 8 clips
  of 243 frames per batch: ``-b 1024 -s 128``, its generator's ``batch_size // stride``; the rest as MixSTE's);
  HoT on KTPFormer is a slimpose composition trained the same way.
* ``starpose_h36m``: StarPose (a full-size MixSTE context, K = 50, 5 DDIM steps, 5 hypotheses) with its reported
  optimiser (Adam 1e-4, 50 epochs); MixSTE's batch and loss on the predicted clean poses (docs/lifting_models.md).
* ``mixste_3dhp``: MixSTE (dim 512, 8 + 8 blocks) on 27-frame clips of MPI-INF-3DHP (``--data-root`` holding
  P-STMO's ``data_train_3dhp.npz`` / ``data_test_3dhp.npz``), uniform joint weights, scored with MPJPE and the
  3DHP PCK / AUC on the valid test frames.
* ``<model>_synth3d``: CPU-sized versions (27 frames, dim 64, 4 + 4 blocks, 8 heads; HoT keeps 9 of 27
  frames before block pair 2, TPC-MixSTE 7 of 27 before pair 3, H2OT 13, 7 and 3 of 27 before pairs 1, 2
  and 3: its default schedule scaled) on slimpose's synthetic motion (written to
  ``data/synth3d`` on first use: 35 sequences of 243 frames, every subject performing every motion kind once,
  four cameras, detector-like 2-D noise), AdamW 1e-3, weight decay 0.1, x0.95 per epoch, 16 clips per batch,
  non-overlapping 27-frame clips, 12 epochs: the budget of ``benchmarks/lifting.py``. ``starpose_s_synth3d``:
  StarPose's CPU size (``starpose_s``) on the same budget.
"""

from __future__ import annotations

from typing import Callable

from slimpose.config.schema import ModelConfig, OptimConfig, ScheduleConfig
from slimpose.lifting.config import LiftConfig, LiftDataConfig

#: CPU-sized lifters of the synthetic recipes (model name -> factory overrides).
SYNTH_MODELS: dict[str, dict] = {
    "mixste": dict(num_frames=27, dim=64, depth=4),
    "hot_mixste": dict(num_frames=27, dim=64, depth=4, num_tokens=9, layer_index=2),
    "tpc_mixste": dict(num_frames=27, dim=64, depth=4, num_tokens=7, layer_index=3),
    "h2ot_mixste": dict(num_frames=27, dim=64, depth=4),  # the default schedule scaled: 13 / 7 / 3 of 27 frames
    # KTPFormer: the prior pair + 3 MixSTE pairs = 4 pairs, as the others; HoT on it prunes after 2 of the 4
    "ktpformer": dict(num_frames=27, dim=64, depth=3),
    "hot_ktpformer": dict(num_frames=27, dim=64, depth=3, num_tokens=9, layer_index=1),
    # StarPose: its CPU factory as it is (a MixSTE context of dim 64, 4 + 4 blocks; a 3-layer GraFormer of width 64)
    "starpose_s": {},
}


def _h36m(model: str) -> LiftConfig:
    name = f"{model}_h36m"
    seq2frame = model == "tpc_mixste"
    data = LiftDataConfig(dataset="h36m", data_root="data/h36m", keypoints="cpn_ft_h36m_dbb",
                          stride=1 if seq2frame else 243, batch_size=4, val_batch_size=4, workers=4)
    return LiftConfig(name=name, work_dir=f"work_dirs/{name}", data=data, model=ModelConfig(name=model),
                      eval_interval=1)


def _ktpformer_h36m(model: str) -> LiftConfig:
    """KTPFormer's official training (``run_ktpformer.py``): AdamW 8e-5, weight decay 0.1, x0.99 per epoch,
    200 epochs, drop path 0.1, non-overlapping 243-frame clips and ``-b 1024 -s 128``: its generator takes
    ``batch_size // stride`` = 8 clips per batch (``-s`` divides the batch there; it is not a clip step)."""
    cfg = _h36m(model)
    cfg.optim.lr = 8e-5
    cfg.schedule.epochs = 200
    cfg.data.batch_size = 8
    return cfg


def _starpose_h36m() -> LiftConfig:
    """StarPose's reported training: Adam 1e-4, 50 epochs (its batch is not in the reference: MixSTE's 4 clips of
    243 frames), no weight decay, no per-epoch decay (unreported); K = 50, 5 DDIM steps, 5 hypotheses."""
    cfg = _h36m("starpose")
    cfg.optim = OptimConfig(name="adam", lr=1e-4, weight_decay=0.0)
    cfg.schedule = ScheduleConfig(epochs=50, warmup_iters=0, milestones=(), gamma=1.0, epoch_decay=1.0)
    return cfg


def _3dhp(model: str) -> LiftConfig:
    """MPI-INF-3DHP (P-STMO's files, ground-truth 2-D), 27 frames (the MixSTE 3DHP row of the reference's
    table), MixSTE's optimiser, clips every 27 frames, uniform joint weights (MixSTE's weights are in the
    Human3.6M order; its 3DHP weights are not in the reference)."""
    cfg = _h36m(model)
    cfg.name = f"{model}_3dhp"
    cfg.work_dir = f"work_dirs/{cfg.name}"
    cfg.data = LiftDataConfig(dataset="3dhp", data_root="data/3dhp", stride=27, batch_size=32, val_batch_size=32,
                              workers=4)
    cfg.model.overrides = {"num_frames": 27}
    cfg.loss.joint_weights = (1.0,) * 17
    return cfg


def _synth(model: str) -> LiftConfig:
    name = f"{model}_synth3d"
    data = LiftDataConfig(dataset="synth3d", data_root="data/synth3d", keypoints="synth_noisy", stride=27,
                          batch_size=16, val_batch_size=32, synthetic_sequences=35, synthetic_frames=243)
    return LiftConfig(
        name=name, work_dir=f"work_dirs/{name}", data=data,
        model=ModelConfig(name=model, overrides=dict(SYNTH_MODELS[model])),
        optim=OptimConfig(name="adamw", lr=1e-3, weight_decay=0.1),
        schedule=ScheduleConfig(epochs=12, warmup_iters=0, milestones=(), gamma=1.0, epoch_decay=0.95),
        eval_interval=4, log_interval=20)


RECIPES: dict[str, Callable[[], LiftConfig]] = {
    "mixste_h36m": lambda: _h36m("mixste"),
    "hot_mixste_h36m": lambda: _h36m("hot_mixste"),
    "tpc_mixste_h36m": lambda: _h36m("tpc_mixste"),
    "h2ot_mixste_h36m": lambda: _h36m("h2ot_mixste"),
    "mixste_3dhp": lambda: _3dhp("mixste"),
    "ktpformer_h36m": lambda: _ktpformer_h36m("ktpformer"),
    "hot_ktpformer_h36m": lambda: _ktpformer_h36m("hot_ktpformer"),
    "starpose_h36m": _starpose_h36m,
    "mixste_synth3d": lambda: _synth("mixste"),
    "hot_mixste_synth3d": lambda: _synth("hot_mixste"),
    "tpc_mixste_synth3d": lambda: _synth("tpc_mixste"),
    "h2ot_mixste_synth3d": lambda: _synth("h2ot_mixste"),
    "ktpformer_synth3d": lambda: _synth("ktpformer"),
    "hot_ktpformer_synth3d": lambda: _synth("hot_ktpformer"),
    "starpose_s_synth3d": lambda: _synth("starpose_s"),
}
