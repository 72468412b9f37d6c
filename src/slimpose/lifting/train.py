"""Training and evaluating a lifter from a ``LiftConfig``: the lifting parts (model, ``LiftingTask``, clips,
``LiftEvaluator``) handed to the one training loop of every family (``slimpose.engine.trainer``: setup, DDP
wrapper, optimizer, schedule, hooks, resume)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimpose.engine import builders
from slimpose.engine.distributed import DistInfo, cleanup_distributed
from slimpose.engine.loop import TrainLoop
from slimpose.engine.trainer import assemble_loop, setup_run, start_run, wrap_task
from slimpose.lifting.config import LiftConfig, validate_lift_config
from slimpose.lifting.data.clips import ClipDataset, joint_layout, load_sequences, prepare_synth3d
from slimpose.lifting.evaluator import LiftEvaluator
from slimpose.lifting.losses import LiftingLoss
from slimpose.lifting.task import LiftingTask
from slimpose.utils.io import SlimposeInputError


def build_lifter(cfg: LiftConfig, load_pretrained: bool = True) -> nn.Module:
    """``create_lifter(cfg.model.name, **cfg.model.overrides)``, with ``cfg.model.pretrained`` loaded strictly."""
    from slimpose.lifting.models import create_lifter

    try:
        model = create_lifter(cfg.model.name, **dict(cfg.model.overrides))
    except (TypeError, ValueError) as e:
        raise SlimposeInputError(f"model.overrides: cannot build {cfg.model.name!r} with "
                                 f"{dict(cfg.model.overrides)}: {e}") from None
    if load_pretrained and cfg.model.pretrained:
        from slimpose.engine.checkpoint import load_model_weights

        load_model_weights(model, cfg.model.pretrained)
    return model


def build_lifting_task(cfg: LiftConfig, model: nn.Module | None = None) -> LiftingTask:
    model = model if model is not None else build_lifter(cfg)
    num_joints = model.input_spec.num_joints
    if len(cfg.loss.joint_weights) != num_joints:
        raise SlimposeInputError(f"loss.joint_weights has {len(cfg.loss.joint_weights)} weights, the lifter "
                                 f"{num_joints} joints")
    return LiftingTask(model, LiftingLoss(cfg.loss.joint_weights, cfg.loss.tc, cfg.loss.velocity))


def build_lift_evaluator(cfg: LiftConfig, dist: DistInfo, out_dir: str | Path) -> LiftEvaluator:
    return LiftEvaluator(load_sequences(cfg, "test"), out_dir, flip_test=cfg.flip_test,
                         batch_size=cfg.data.val_batch_size, device=dist.device, layout=joint_layout(cfg),
                         pck=cfg.data.dataset == "3dhp")


def _check_joints(model: nn.Module, sequences: Any, where: str) -> None:
    j = model.input_spec.num_joints
    bad = next((s for s in sequences if s.num_joints != j), None)
    if bad is not None:
        raise SlimposeInputError(f"{where}: {bad.subject}/{bad.action} has {bad.num_joints} joints, the lifter {j}")


def fit_prior(model: nn.Module, sequences: Any, cfg: LiftConfig) -> None:
    """Fit a diffusion lifter's pose prior (StarPose's GMM) on the training poses, mirrored ones included when
    the clips are mirrored, unless it is fitted already (loaded weights; a resumed run restores it anyway)."""
    if not hasattr(model, "fit_prior") or bool(model.prior.fitted):
        return
    import numpy as np

    from slimpose.lifting.data.clips import mirror

    poses = np.concatenate([s.poses_3d for s in sequences])
    if cfg.data.flip_aug:
        layout = joint_layout(cfg)
        poses = np.concatenate([poses, mirror(poses, layout.left, layout.right)])
    model.fit_prior(torch.from_numpy(np.ascontiguousarray(poses, np.float32)), seed=cfg.seed)


def build_lift_trainer(cfg: LiftConfig, resume: bool | str = False, dist: DistInfo | None = None,
                       overwrite: bool = False) -> TrainLoop:
    """The training loop of a lifting config (``slimpose train mixste_synth3d``); ``resume`` and ``overwrite`` as
    ``build_trainer``'s."""
    cfg = validate_lift_config(cfg)
    with torch.device("meta"):  # a bad model / loss setting fails here, before anything is written
        build_lifting_task(cfg)
    dist, own_dist = setup_run(cfg, dist, prepare=prepare_synth3d)
    work_dir = start_run(cfg, dist)
    task = build_lifting_task(cfg)
    train_seqs = load_sequences(cfg, "train")
    _check_joints(task.model, train_seqs, cfg.data.data_root)
    fit_prior(task.model, train_seqs, cfg)
    task, train_task = wrap_task(cfg, task, dist)
    model = task.model
    centre = getattr(model, "center", None) if hasattr(model, "forward_kept") else None  # seq2frame
    history = int(getattr(model, "history", 0)) if getattr(model, "autoregressive", False) else 0
    intrinsics = bool(getattr(model, "uses_intrinsics", False) and all(s.camera is not None for s in train_seqs))
    clips = ClipDataset(train_seqs, model.input_spec.num_frames, cfg.data.stride, cfg.data.flip_aug,
                        seed=cfg.seed, subset=cfg.data.train_subset, layout=joint_layout(cfg), centre=centre,
                        history=history, intrinsics=intrinsics)
    train_loader = builders.build_train_loader(cfg, clips, dist)
    evaluator = build_lift_evaluator(cfg, dist, work_dir)
    return assemble_loop(cfg, task, train_task, train_loader, evaluator, dist, own_dist, resume, overwrite=overwrite)


def evaluate_lift_checkpoint(cfg: LiftConfig, checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                             dist: DistInfo | None = None, tag: str = "eval") -> dict[str, float]:
    """Build the lifter of ``cfg``, load ``checkpoint`` strictly and score it on the test sequences."""
    from slimpose.engine.checkpoint import load_model_weights

    cfg = validate_lift_config(cfg)
    dist, own = setup_run(cfg, dist, prepare=prepare_synth3d)
    try:
        model = build_lifter(cfg, load_pretrained=False)
        load_model_weights(model, checkpoint)
        task = build_lifting_task(cfg, model).to(dist.device)
        evaluator = build_lift_evaluator(cfg, dist, out_dir if out_dir is not None else cfg.work_dir)
        return evaluator.run(task, tag=tag, autocast=builders.autocast_factory(cfg.amp, dist.device))
    finally:
        if own:
            cleanup_distributed(dist)


__all__ = ["build_lift_evaluator", "fit_prior", "build_lift_trainer", "build_lifter", "build_lifting_task",
           "evaluate_lift_checkpoint"]
