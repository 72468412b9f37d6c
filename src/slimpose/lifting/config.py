"""The training configuration of a 3-D lifter: ``LiftConfig``, plain dataclasses like ``TrainConfig``.

It shares ``ModelConfig`` (a ``LIFTERS`` name + overrides), ``OptimConfig`` and ``ScheduleConfig`` with the
2-D runs, so the one config parser (``--set key.sub=value``, ``config.json``) and the optimizer / schedule
builders serve both. ``family = "lifting"`` marks it in every ``config.json`` and checkpoint (what
``slimpose.config.parse`` and ``slimpose.lifting.checkpoint.load_lifter`` read). Defaults are MixSTE's /
HoT's official training (AdamW 4e-5, weight decay 0.1, x0.99 per epoch, 243-frame clips at stride 243,
1024 frames = 4 clips per batch, flip augmentation and flip test, loss weights 0.5 / 2.0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from slimpose.config.schema import AMP_MODES, OPTIMIZERS, ModelConfig, OptimConfig, ScheduleConfig
from slimpose.lifting.losses import MIXSTE_JOINT_WEIGHTS
from slimpose.utils.io import SlimposeInputError

LIFT_DATASETS = ("synth3d", "h36m", "3dhp")


@dataclass
class LiftDataConfig:
    """Sequences to train and validate on, and how clips are cut from them.

    ``dataset``: ``"synth3d"`` (slimpose's synthetic motion in ``data_root``, written there on first use with
    ``synthetic_*``), ``"h36m"`` (Human3.6M in the VideoPose3D layout: ``data_root/data_3d_h36m.npz`` and
    ``data_root/data_2d_h36m_<keypoints>.npz``) or ``"3dhp"`` (MPI-INF-3DHP as P-STMO prepares it:
    ``data_root/data_train_3dhp.npz`` / ``data_test_3dhp.npz``, ground-truth 2-D; ``keypoints`` and ``cameras``
    unused; validated with PCK / AUC on the valid frames as well). ``cameras``: a camera JSON (``load_h36m_cameras``); default
    ``data_root/h36m_cameras.json`` (synth3d writes its own; for Human3.6M it is the user's copy of VideoPose3D's
    camera tables, docs/datasets.md: slimpose ships no Human3.6M calibration).
    ``train_subjects`` / ``test_subjects``: empty = the official split (S1, S5-S8 / S9, S11).
    ``stride``: frames between the starts of training clips (0: the clip length, MixSTE's ``-s 243``).
    """

    dataset: str = "synth3d"
    data_root: str = "data/synth3d"
    keypoints: str = "synth_noisy"  # 2-D source: data_2d_h36m_<keypoints>.npz ("gt", "cpn_ft_h36m_dbb", ...)
    cameras: str | None = None
    train_subjects: tuple[str, ...] = ()
    test_subjects: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()  # keep actions whose name starts with one of these (empty: all)
    stride: int = 0
    flip_aug: bool = True  # mirror a clip with probability 0.5 (VideoPose3D ChunkedGenerator(augment=True))
    batch_size: int = 4  # clips per process (MixSTE: -b 1024 frames // 243)
    val_batch_size: int = 16  # windows per forward at validation
    workers: int = 0
    train_subset: int = 0  # > 0: only the first N training clips (smoke runs)
    val_subset: int = 0  # > 0: only the first N validation sequences
    synthetic_sequences: int = 60
    synthetic_frames: int = 243
    synthetic_seed: int = 0


@dataclass
class LiftLossConfig:
    """MixSTE / HoT: ``weighted_mpjpe(joint_weights) + tc x TC + velocity x MPJVE``."""

    joint_weights: tuple[float, ...] = tuple(MIXSTE_JOINT_WEIGHTS)
    tc: float = 0.5
    velocity: float = 2.0


def _lift_optim() -> OptimConfig:
    return OptimConfig(name="adamw", lr=4e-5, weight_decay=0.1)


def _lift_schedule() -> ScheduleConfig:
    return ScheduleConfig(epochs=120, warmup_iters=0, milestones=(), gamma=1.0, epoch_decay=0.99)


@dataclass
class LiftConfig:
    """Everything a lifting run needs (``slimpose train mixste_synth3d``)."""

    family: str = "lifting"
    data: LiftDataConfig = field(default_factory=LiftDataConfig)
    model: ModelConfig = field(default_factory=lambda: ModelConfig(name="mixste"))
    optim: OptimConfig = field(default_factory=_lift_optim)
    schedule: ScheduleConfig = field(default_factory=_lift_schedule)
    loss: LiftLossConfig = field(default_factory=LiftLossConfig)
    name: str = "lift"
    seed: int = 0
    work_dir: str = "work_dirs/lift"
    device: str = "auto"
    amp: str = "none"
    eval_interval: int = 5
    best_metric: str = ""  # '' = MPJPE (lower is better)
    best_mode: str = ""
    flip_test: bool = True
    log_interval: int = 50
    tensorboard: bool = True
    deterministic: bool = False
    num_threads: int = 0
    sync_bn: bool = False
    find_unused_parameters: bool = False


def validate_lift_config(cfg: LiftConfig, where: str = "config") -> LiftConfig:
    """Raise a SlimposeInputError naming ``where`` and the field for values that cannot work."""
    from slimpose.lifting.models import LIFTERS

    def bad(key: str, msg: str) -> SlimposeInputError:
        return SlimposeInputError(f"{where}: {key}: {msg}")

    d = cfg.data
    if cfg.family != "lifting":
        raise bad("family", f"a lifting config has family 'lifting', got {cfg.family!r}")
    if d.dataset not in LIFT_DATASETS:
        raise bad("data.dataset", f"{d.dataset!r} is not one of {', '.join(LIFT_DATASETS)}")
    if cfg.model.name not in LIFTERS:
        raise bad("model.name", f"{cfg.model.name!r} is not a lifting model ({', '.join(sorted(LIFTERS))})")
    if cfg.amp not in AMP_MODES:
        raise bad("amp", f"{cfg.amp!r} is not one of {', '.join(AMP_MODES)}")
    if cfg.optim.name not in OPTIMIZERS:
        raise bad("optim.name", f"{cfg.optim.name!r} is not 'adam' or 'adamw'")
    if cfg.optim.layer_decay:
        raise bad("optim.layer_decay", "layer-wise decay is for ViT backbones, not lifters; set 0")
    if cfg.best_mode not in ("", "max", "min"):
        raise bad("best_mode", f"{cfg.best_mode!r} is not 'max' or 'min' (or '' for the metric's own)")
    positive = {"data.batch_size": d.batch_size, "data.val_batch_size": d.val_batch_size,
                "data.synthetic_sequences": d.synthetic_sequences, "data.synthetic_frames": d.synthetic_frames,
                "schedule.epochs": cfg.schedule.epochs, "eval_interval": cfg.eval_interval,
                "log_interval": cfg.log_interval}
    for key, value in positive.items():
        if value <= 0:
            raise bad(key, f"must be positive, got {value}")
    for key, value in (("data.stride", d.stride), ("data.workers", d.workers), ("data.train_subset", d.train_subset),
                       ("data.val_subset", d.val_subset), ("loss.tc", cfg.loss.tc),
                       ("loss.velocity", cfg.loss.velocity)):
        if value < 0:
            raise bad(key, f"must be >= 0, got {value}")
    weights = cfg.loss.joint_weights
    if len(weights) == 0 or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise bad("loss.joint_weights", "must be finite non-negative numbers, one per joint")
    if d.dataset == "3dhp" and tuple(weights) == tuple(MIXSTE_JOINT_WEIGHTS):
        raise bad("loss.joint_weights", "these are MixSTE's weights in the Human3.6M joint order; MPI-INF-3DHP's "
                  "joints are in another order (the mixste_3dhp recipe uses uniform weights: 1,1,...,1)")
    graph_models = ("ktpformer", "hot_ktpformer", "starpose", "starpose_s")
    if d.dataset == "3dhp" and cfg.model.name in graph_models and "parents" not in cfg.model.overrides:
        raise bad("model.overrides.parents", f"{cfg.model.name}'s skeleton graph defaults to the Human3.6M one; "
                  "MPI-INF-3DHP's joints are in another order: give its 17 parents (model.overrides.parents=[...])")
    if d.dataset == "3dhp" and cfg.model.name.startswith("starpose") and not {"left", "right"} <= set(cfg.model.overrides):
        raise bad("model.overrides.left", "StarPose's STPG symmetry pairs default to the Human3.6M left / right joints; "
                  "give MPI-INF-3DHP's (model.overrides.left=[...], model.overrides.right=[...])")
    if d.dataset == "3dhp" and d.actions:
        raise bad("data.actions", "MPI-INF-3DHP sequences have no action names; select with data.train_subjects")
    for key, value, low in (("optim.lr", cfg.optim.lr, "> 0"), ("schedule.gamma", cfg.schedule.gamma, "> 0"),
                            ("optim.weight_decay", cfg.optim.weight_decay, ">= 0"),
                            ("optim.grad_clip", cfg.optim.grad_clip, ">= 0"),
                            ("optim.loss_spike", cfg.optim.loss_spike, ">= 0"),
                            ("schedule.warmup_iters", cfg.schedule.warmup_iters, ">= 0")):
        if not math.isfinite(value) or (value <= 0 if low == "> 0" else value < 0):
            raise bad(key, f"must be {low}, got {value}")
    if not 0.0 < cfg.schedule.warmup_ratio <= 1.0:
        raise bad("schedule.warmup_ratio", f"must be in (0, 1], got {cfg.schedule.warmup_ratio}")
    if not 0.0 < cfg.schedule.epoch_decay <= 1.0:
        raise bad("schedule.epoch_decay", f"must be in (0, 1] (1: off), got {cfg.schedule.epoch_decay}")
    for key, value in (("seed", cfg.seed), ("data.synthetic_seed", d.synthetic_seed)):
        if value < 0:
            raise bad(key, f"must be >= 0, got {value}")
    return cfg


__all__ = ["LIFT_DATASETS", "LiftConfig", "LiftDataConfig", "LiftLossConfig", "validate_lift_config"]
