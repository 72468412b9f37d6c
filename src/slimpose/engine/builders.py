"""Builders: the parts of a training run, each from a ``TrainConfig`` (model, head, task, data, evaluator,
optimizer, schedule). ``slimpose.engine.trainer.build_trainer`` puts them together; each can be used alone.

Data sets are looked up in ``slimpose.data.catalog`` (no switch on their names here); the targets are the
model head's codec, so a regression student gets regression targets and a SimCC model SimCC labels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import ConcatDataset, DataLoader, DistributedSampler

from slimpose.config.schema import DataSource, TrainConfig
from slimpose.data.catalog import DatasetSpec, SplitFiles, dataset_spec, resolve_split
from slimpose.engine.checkpoint import load_model_weights
from slimpose.engine.distributed import DistInfo
from slimpose.engine.evaluator import Evaluator
from slimpose.engine.schedule import WarmupMultiStepLR
from slimpose.engine.tasks import TopDownTask
from slimpose.heads import build_head
from slimpose.utils.io import SlimposeInputError


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def autocast_factory(amp: str, device: torch.device):
    """A zero-argument context factory for AMP (a null context on CPU or with ``amp='none'``)."""
    if amp == "none" or device.type != "cuda":
        return contextlib.nullcontext
    dtype = torch.bfloat16 if amp == "bf16" else torch.float16
    return lambda: torch.autocast(device_type="cuda", dtype=dtype)


# ----------------------------------------------------------------------------------------------- data


def main_spec(cfg: TrainConfig) -> DatasetSpec:
    return dataset_spec(cfg.data.dataset)


def split_files(cfg: TrainConfig, split: str) -> SplitFiles:
    d = cfg.data
    if split == "train":
        return resolve_split(main_spec(cfg), d.data_root, "train", d.train_ann, d.train_images)
    return resolve_split(main_spec(cfg), d.data_root, "val", d.val_ann, d.val_images)


def prepare_synthetic(cfg: TrainConfig) -> None:
    """Generate the synthetic data sets of a run where their files are missing: the main set's train / val
    splits into ``data.data_root`` (train seed ``synthetic_seed``, val ``synthetic_seed + 1``) and the train
    and val splits of every synthetic ``data.extra_train`` source into its ``data_root`` (seeds ``synthetic_seed
    + 10 (i + 1)`` and one more: other people than the main set's, drawn by the same generator and settings,
    so that ``slimpose eval --per-source`` can score each)."""
    from slimpose.data.synth import synth_preset

    d = cfg.data
    jobs = []
    spec = main_spec(cfg)
    if spec.synthetic:
        jobs += [(spec, d.data_root, "train", d.synthetic_train_images, d.synthetic_seed, split_files(cfg, "train")),
                 (spec, d.data_root, "val", d.synthetic_val_images, d.synthetic_seed + 1, split_files(cfg, "val"))]
    for i, src in enumerate(d.extra_train):
        s = dataset_spec(src.dataset, f"data.extra_train[{i}].dataset")
        if s.synthetic:
            seed = d.synthetic_seed + 10 * (i + 1)
            jobs += [(s, src.data_root, "train", d.synthetic_train_images, seed,
                      resolve_split(s, src.data_root, "train", src.train_ann, src.train_images)),
                     (s, src.data_root, "val", d.synthetic_val_images, seed + 1,
                      resolve_split(s, src.data_root, "val"))]
    for s, root, split, n, seed, files in jobs:
        if not files.ann.is_file():
            s.generate(Path(root), num_images=n, seed=seed, split=split, image_size=tuple(d.synthetic_image_size),
                       progress=sys.stderr.isatty(), config=synth_preset(d.synthetic_preset))


def _load(spec: DatasetSpec, files: SplitFiles, split: str, bbox_file: Path | None, det_score_thr: float,
          subset: int, what: str) -> list[Any]:
    if not files.ann.is_file():
        raise SlimposeInputError(f"{split} annotation file not found: {files.ann} ({what})")
    instances = spec.load(files.ann, files.images, bbox_file, det_score_thr, spec.info)
    if subset > 0:
        instances = instances[:subset]
    if len(instances) == 0:
        raise SlimposeInputError(f"{files.ann}: no usable {split} instances")
    return instances


def build_instances(cfg: TrainConfig, split: str) -> list[Any]:
    """``PoseInstance`` list of the main data set's train or val split (val: detection boxes if
    ``use_gt_bbox`` is False)."""
    d = cfg.data
    spec = main_spec(cfg)
    files = split_files(cfg, split)
    bbox_file = None
    if split == "val" and not d.use_gt_bbox:
        if not spec.supports_detections:
            raise SlimposeInputError(f"data.use_gt_bbox=false: data set {spec.name!r} is evaluated with its "
                                     "own person boxes (centres and scales), not detections")
        det = Path(d.det_file).expanduser() if d.det_file else (
            Path(d.data_root).expanduser() / spec.det_file if spec.det_file else None)
        if det is None or not det.is_file():
            raise SlimposeInputError(f"data.use_gt_bbox is false but the detection file is missing: {det}")
        bbox_file = det
    subset = d.train_subset if split == "train" else d.val_subset
    return _load(spec, files, split, bbox_file, d.det_score_thr, subset,
                 f"data.dataset={d.dataset!r}, data.data_root={d.data_root!r}")


def build_augment(cfg: TrainConfig) -> Any:
    """The data module's ``AugmentConfig`` from ``cfg.data.aug`` (the same fields)."""
    from slimpose.data.transforms import AugmentConfig

    return AugmentConfig(**dataclasses.asdict(cfg.data.aug))


def topdown_dataset(cfg: TrainConfig, instances: list[Any], info: Any, codec: Any, train: bool) -> Any:
    from slimpose.data.dataset import TopDownDataset

    from slimpose.config.schema import crop_warp

    return TopDownDataset(instances, info, codec, tuple(cfg.data.input_size), train=train, udp=crop_warp(cfg),
                          aug=build_augment(cfg), seed=cfg.seed)


def model_info(cfg: TrainConfig) -> Any:
    """The keypoints the model predicts and trains on: the unified set (``data.skeleton='unified'``) or the
    main data set's own."""
    if cfg.data.skeleton == "unified":
        from slimpose.data.unified import UNIFIED

        return UNIFIED
    return main_spec(cfg).info


def build_dataset(cfg: TrainConfig, split: str, codec: Any, instances: list[Any] | None = None) -> Any:
    """``TopDownDataset`` of the main data set's ``split`` ('train' with augmentation, 'val' without).

    Validation crops keep the data set's own skeleton (predictions are mapped to it, ``build_evaluator``);
    training crops are in the model's (``train_part``)."""
    instances = instances if instances is not None else build_instances(cfg, split)
    if split == "train":
        return train_part(cfg, main_spec(cfg), instances, codec)
    return topdown_dataset(cfg, instances, main_spec(cfg).info, codec, train=False)


def train_part(cfg: TrainConfig, spec: DatasetSpec, instances: list[Any], codec: Any) -> Any:
    """The training crops of one source in the model's keypoints: with ``data.skeleton='unified'`` its
    instances moved into the unified set (unlabelled joints get zero weight), else as they are."""
    if cfg.data.skeleton == "unified":
        from slimpose.data.unified import UNIFIED, remap_instances

        return topdown_dataset(cfg, remap_instances(instances, spec.info.name), UNIFIED, codec, train=True)
    return topdown_dataset(cfg, instances, spec.info, codec, train=True)


def build_train_dataset(cfg: TrainConfig, codec: Any) -> Any:
    """The training set: the main data set, concatenated with ``data.extra_train`` when given.

    Without ``data.skeleton`` every extra source must share the main set's keypoints (a clear error
    otherwise); with ``data.skeleton='unified'`` each source is moved into the unified set. Differing
    ``weight`` s are honoured by ``build_train_loader`` (``slimpose.data.sampler.MixedSampler``).
    """
    main = build_dataset(cfg, "train", codec)
    if not cfg.data.extra_train:
        return main
    parts = [main]
    info = main_spec(cfg).info
    for i, src in enumerate(cfg.data.extra_train):
        spec = dataset_spec(src.dataset, f"data.extra_train[{i}].dataset")
        if cfg.data.skeleton is None and spec.info.keypoint_names != info.keypoint_names:
            raise SlimposeInputError(
                f"data.extra_train[{i}]: {src.dataset!r} has another skeleton ({spec.info.num_keypoints} "
                f"keypoints) than {cfg.data.dataset!r}; set data.skeleton=unified to train on both")
        if src.weight < 0:
            raise SlimposeInputError(f"data.extra_train[{i}].weight must be >= 0, got {src.weight}")
        parts.append(train_part(cfg, spec, _source_instances(src, spec), codec))
    from slimpose.data.dataset import SourcesDataset

    return SourcesDataset(parts)


def source_configs(cfg: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """``(label, config)`` per training source (the main set, then every ``data.extra_train``): ``cfg`` with that
    source as the main data set, to score one model on each source's val split in its own skeleton and
    metric (``slimpose eval --per-source``). Labels are the data-set names (``name#i`` when repeated). The main
    set keeps its box settings; the extra sources are scored on their ground-truth boxes."""
    out: list[tuple[str, TrainConfig]] = []
    seen: set[str] = set()
    for i, src in enumerate([None] + list(cfg.data.extra_train)):
        c = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, extra_train=[]))
        if src is not None:  # scored on its ground-truth boxes: a source has no detection-file field
            c.data = dataclasses.replace(c.data, dataset=src.dataset, data_root=src.data_root, val_ann=None,
                                         val_images=None, det_file=None, use_gt_bbox=True)
        label = c.data.dataset if c.data.dataset not in seen else f"{c.data.dataset}#{i}"
        seen.add(c.data.dataset)
        out.append((label, c))
    return out


def _source_instances(src: DataSource, spec: DatasetSpec) -> list[Any]:
    files = resolve_split(spec, src.data_root, "train", src.train_ann, src.train_images)
    return _load(spec, files, "train", None, 0.0, 0, f"dataset={src.dataset!r}, data_root={src.data_root!r}")


def build_train_loader(cfg: TrainConfig, dataset: Any, dist: DistInfo) -> DataLoader:
    """Shuffled per (seed, epoch) by a ``DistributedSampler`` (also with one process), drop_last; several
    sources with different ``weight`` s are mixed in those proportions by a ``MixedSampler`` (as many draws
    per epoch as there are instances)."""
    weights = [getattr(cfg.data, "weight", 1.0)] + [s.weight for s in getattr(cfg.data, "extra_train", ())]
    if isinstance(dataset, ConcatDataset) and len(set(weights)) > 1:
        from slimpose.data.sampler import MixedSampler

        sampler: Any = MixedSampler([len(d) for d in dataset.datasets], weights, seed=cfg.seed,
                                    num_replicas=dist.world_size, rank=dist.rank)
    else:
        sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
    if len(sampler) < cfg.data.batch_size:
        raise SlimposeInputError(f"only {len(sampler)} training instances per process, fewer than "
                                 f"data.batch_size={cfg.data.batch_size}")
    return DataLoader(dataset, batch_size=cfg.data.batch_size, sampler=sampler, num_workers=cfg.data.workers,
                      pin_memory=dist.device.type == "cuda", drop_last=True,
                      persistent_workers=False)  # fresh workers each epoch see dataset.set_epoch(epoch)


def build_val_loader(cfg: TrainConfig, dataset: Any, dist: DistInfo) -> DataLoader:
    """Validation loader: DistributedSampler without shuffling (padding is removed by the evaluator)."""
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=False)
    return DataLoader(dataset, batch_size=cfg.data.val_batch_size, sampler=sampler,
                      num_workers=cfg.data.val_workers, pin_memory=dist.device.type == "cuda",
                      persistent_workers=False, generator=torch.Generator().manual_seed(cfg.seed))


def build_evaluator(cfg: TrainConfig, dist: DistInfo, out_dir: str | Path, codec: Any) -> Evaluator:
    """The main data set's validation split, loader and metric, scored in its own skeleton (a unified model's
    predictions are mapped to it, ``unified.skeleton_map``; the flip test swaps the model's pairs)."""
    from slimpose.data.unified import skeleton_map

    spec = main_spec(cfg)
    instances = build_instances(cfg, "val")
    loader = build_val_loader(cfg, build_dataset(cfg, "val", codec, instances), dist)
    metric = spec.metric.for_split(spec, split_files(cfg, "val").ann, instances)
    predicted = model_info(cfg)
    _, select = skeleton_map(predicted, None if predicted is spec.info else spec.info.name)
    from slimpose.config.schema import crop_warp

    return Evaluator(loader, spec.info, metric, out_dir, udp=crop_warp(cfg), flip_test=cfg.flip_test,
                     score_thr=cfg.score_thr, nms_thr=cfg.nms_thr, device=dist.device, model_info=predicted,
                     select=select)


# ----------------------------------------------------------------------------------------------- model


def build_model(cfg: TrainConfig, num_keypoints: int | None = None, load_pretrained: bool = True) -> nn.Module:
    """``models.create_model(cfg.model.name, num_keypoints, input_size, **overrides)``; loads ``pretrained``
    (``load_pretrained=False``: not, for a model whose trained weights are loaded next).

    ``num_keypoints`` defaults to the model skeleton's (``model_info``; ``model.overrides.num_keypoints`` wins).
    """
    from slimpose import models

    name = cfg.model.name
    if name not in models.MODELS:
        raise SlimposeInputError(f"model.name: unknown model {name!r} (available: {', '.join(sorted(models.MODELS))})")
    kwargs = dict(cfg.model.overrides)
    kwargs.setdefault("num_keypoints", num_keypoints or model_info(cfg).num_keypoints)
    kwargs.setdefault("input_size", tuple(cfg.data.input_size))
    try:
        model = models.create_model(name, **kwargs)
    except (TypeError, ValueError) as e:
        raise SlimposeInputError(f"model: cannot build {name!r} with {kwargs}: {e}") from None
    if cfg.model.pretrained and load_pretrained:
        load_model_weights(model, cfg.model.pretrained)
    return model


def build_topdown_task(cfg: TrainConfig, model: nn.Module | None = None) -> TopDownTask:
    """``TopDownTask(model, head)``: the model of ``cfg`` (or the one given) and its head."""
    model = model if model is not None else build_model(cfg)
    return TopDownTask(model, build_head(cfg, model))


def build_optimizer(cfg: TrainConfig, task: nn.Module) -> torch.optim.Optimizer:
    """Adam or AdamW over the task's trainable parameters (the model and a trainable head loss); with
    ``optim.layer_decay`` the parameter groups of ``layer_decay_groups``."""
    o = cfg.optim
    opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
    if o.layer_decay > 0:
        groups = layer_decay_groups(task, o.lr, o.weight_decay, o.layer_decay)
        return opt_cls(groups, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    params = [p for p in task.parameters() if p.requires_grad]
    return opt_cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)


def layer_decay_groups(task: nn.Module, lr: float, weight_decay: float, rate: float) -> list[dict[str, Any]]:
    """ViTPose's layer-wise rate decay (official ``LayerDecayOptimizerConstructor``) over the trainable
    parameters of ``task`` (names relative to its ``model``): layer 0 = ``backbone.pos_embed`` /
    ``backbone.patch_embed`` / EViTPose's ``backbone.joint_tokens`` (as the official constructor puts ViT's
    ``cls_token``), layer ``i + 1`` = ``backbone.blocks.{i}``, layer ``depth + 1`` = the rest; a group's rate
    is ``lr * rate ** (depth + 1 - layer)``; 1-D tensors, biases, ``pos_embed`` and the joint tokens get no
    weight decay."""
    from slimpose.utils.io import SlimposeInputError

    model = getattr(task, "model", task)
    blocks = getattr(getattr(model, "backbone", None), "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise SlimposeInputError(f"optim.layer_decay: {type(model).__name__} has no ViT backbone.blocks "
                                 "(layer-wise decay is for ViTPose-style backbones); set optim.layer_decay=0")
    depth = len(blocks)
    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in task.named_parameters():
        if not param.requires_grad:
            continue
        rel = name[len("model."):] if name.startswith("model.") else name
        token = rel in ("backbone.pos_embed", "backbone.joint_tokens")  # embeddings (like ViT's cls_token)
        if token or rel.startswith("backbone.patch_embed."):
            layer = 0
        elif rel.startswith("backbone.blocks."):
            layer = int(rel.split(".")[2]) + 1
        else:
            layer = depth + 1
        decay = not (param.dim() == 1 or rel.endswith(".bias") or token or "pos_embed" in rel)
        group = groups.setdefault((layer, decay), {
            "params": [], "lr": lr * rate ** (depth + 1 - layer), "weight_decay": weight_decay if decay else 0.0})
        group["params"].append(param)
    return [groups[k] for k in sorted(groups)]


def build_scheduler(cfg: TrainConfig, optimizer: torch.optim.Optimizer, iters_per_epoch: int) -> WarmupMultiStepLR:
    s = cfg.schedule
    return WarmupMultiStepLR(optimizer, iters_per_epoch, s.milestones, s.gamma, s.warmup_iters, s.warmup_ratio,
                             s.epoch_decay)
