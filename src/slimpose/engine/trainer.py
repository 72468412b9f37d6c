"""The training loop (torchvision-references style): builders from a TrainConfig, then ``Trainer.fit``.

One code path for 1 and N processes (``torchrun``): DistributedSampler (also with one process, so that the
shuffling is a function of (seed, epoch) only), DDP around the task, SyncBN option, logging and checkpoints
on rank 0. Per iteration: AMP autocast (CUDA, bf16 / fp16 + GradScaler), optional gradient clipping,
linear warm-up + multi-step decay (``WarmupMultiStepLR``). Every epoch writes ``last.pth`` atomically (and
``best.pth`` when the validation AP improves); ``resume`` restores model, optimizer, scheduler, scaler,
counters and RNG states so that a resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from slimpose.engine.checkpoint import (
    capture_rng_state,
    load_checkpoint,
    load_model_weights,
    restore_rng_state,
    save_checkpoint,
)
from slimpose.engine.config import TrainConfig, config_to_dict, resolve_data_paths, validate_config
from slimpose.engine.distributed import (
    DistInfo,
    all_gather_object,
    all_reduce_tensor,
    barrier,
    broadcast_buffers,
    cleanup_distributed,
    init_distributed,
)
from slimpose.engine.evaluator import Evaluator
from slimpose.engine.schedule import WarmupMultiStepLR
from slimpose.engine.tasks import HeatmapTask
from slimpose.utils.io import SlimposeInputError, write_json_atomic


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


# ----------------------------------------------------------------------------------------------- builders


def dataset_info(cfg: TrainConfig) -> Any:
    """The ``DatasetInfo`` of the configured data set (synthetic people use the COCO keypoints)."""
    from slimpose.data import metainfo

    return {"synthetic": metainfo.COCO, "coco": metainfo.COCO, "crowdpose": metainfo.CROWDPOSE,
            "mpii": metainfo.MPII}[cfg.data.dataset]


def build_codec(cfg: TrainConfig, for_decoding: bool = False) -> Any:
    """Heatmap codec: UDP if ``data.udp`` else MSRA. Training targets use ``data.unbiased_encoding``; the
    decoding codec uses ``cfg.dark`` (DARK post-processing)."""
    d = cfg.data
    if d.udp:
        from slimpose.codecs.udp_heatmap import UDPHeatmap

        return UDPHeatmap(tuple(d.input_size), tuple(d.heatmap_size), sigma=d.sigma)
    from slimpose.codecs.msra_heatmap import MSRAHeatmap

    unbiased = cfg.dark if for_decoding else d.unbiased_encoding
    return MSRAHeatmap(tuple(d.input_size), tuple(d.heatmap_size), sigma=d.sigma, unbiased=unbiased)


def build_model(
    cfg: TrainConfig, num_keypoints: int, factory: Callable[..., nn.Module] | None = None
) -> nn.Module:
    """``models.create_model(name, num_keypoints=..., input_size=..., **overrides)`` (or ``factory(...)``
    for a model outside ``models.MODELS``, e.g. an SDPose factory); checks sizes, loads ``pretrained``."""
    from slimpose import models

    name = cfg.model.name
    if factory is None and name not in models.MODELS:
        raise SlimposeInputError(
            f"model.name: unknown model {name!r} (available: {', '.join(sorted(models.MODELS))})"
        )
    kwargs = dict(cfg.model.overrides)
    kwargs.setdefault("num_keypoints", num_keypoints)
    kwargs.setdefault("input_size", tuple(cfg.data.input_size))
    model = models.create_model(name, **kwargs) if factory is None else factory(**kwargs)
    hm = getattr(model, "heatmap_size", None)
    if hm is not None and tuple(hm) != tuple(cfg.data.heatmap_size):
        raise SlimposeInputError(
            f"data.heatmap_size {tuple(cfg.data.heatmap_size)} does not match the heatmap size {tuple(hm)} "
            f"of model {name!r} at input size {tuple(cfg.data.input_size)}"
        )
    if cfg.model.pretrained:
        load_model_weights(model, cfg.model.pretrained)
    return model


def build_task(cfg: TrainConfig, model: nn.Module) -> nn.Module:
    """The evaluation/training task of ``model``: a ``HeatmapTask`` (MSE or OHKM-MSE loss and the
    decoding codec) for heatmap models, the teacher-less DistilPose task for regression students."""
    from slimpose.losses.heatmap import KeypointMSELoss, KeypointOHKMMSELoss

    if getattr(model, "output_kind", "heatmap") == "regression":
        from slimpose.distillation.distilpose import regression_eval_task

        return regression_eval_task(model)

    criterion: nn.Module = KeypointOHKMMSELoss(topk=cfg.ohkm_topk) if cfg.ohkm else KeypointMSELoss()
    shift = cfg.shift_heatmap and not cfg.data.udp
    return HeatmapTask(model, build_codec(cfg, for_decoding=True), criterion, shift_heatmap=shift)


def prepare_synthetic(cfg: TrainConfig) -> None:
    """Generate the synthetic train/val sets into ``data.data_root`` if they are missing."""
    from slimpose.data.synth import generate_synthetic_dataset, synth_preset

    paths = resolve_data_paths(cfg.data)
    d = cfg.data
    for split, ann, n, seed in (
        ("train", paths.train_ann, d.synthetic_train_images, d.synthetic_seed),
        ("val", paths.val_ann, d.synthetic_val_images, d.synthetic_seed + 1),
    ):
        if not ann.is_file():
            generate_synthetic_dataset(Path(d.data_root), num_images=n, seed=seed, split=split,
                                       image_size=tuple(d.synthetic_image_size), progress=sys.stderr.isatty(),
                                       config=synth_preset(d.synthetic_preset))


def build_instances(cfg: TrainConfig, split: str) -> list[Any]:
    """``PoseInstance`` list of the train or val split (val: detection boxes if ``use_gt_bbox`` is False)."""
    paths = resolve_data_paths(cfg.data)
    d = cfg.data
    if split == "train":
        ann, images = paths.train_ann, paths.train_images
    else:
        ann, images = paths.val_ann, paths.val_images
    if not ann.is_file():
        raise SlimposeInputError(
            f"{split} annotation file not found: {ann} "
            f"(data.dataset={d.dataset!r}, data.data_root={d.data_root!r})"
        )
    if d.dataset == "mpii":
        from slimpose.data.mpii import load_mpii_instances

        instances = load_mpii_instances(str(ann), image_root=str(images))
    else:
        from slimpose.data.coco import load_coco_instances

        bbox_file = None
        if split == "val" and not d.use_gt_bbox:
            if paths.det_file is None or not paths.det_file.is_file():
                raise SlimposeInputError(
                    f"data.use_gt_bbox is false but the detection file is missing: {paths.det_file}"
                )
            bbox_file = str(paths.det_file)
        instances = load_coco_instances(
            str(ann), image_root=str(images), bbox_file=bbox_file, det_score_thr=d.det_score_thr
        )
    subset = d.train_subset if split == "train" else d.val_subset
    if subset > 0:
        instances = instances[:subset]
    if len(instances) == 0:
        raise SlimposeInputError(f"{ann}: no usable {split} instances")
    return instances


def build_augment(cfg: TrainConfig) -> Any:
    """The data module's augmentation config from ``cfg.data.aug`` (fields matched by name)."""
    import dataclasses

    from slimpose.data import transforms

    aug_cls = getattr(transforms, "AugmentConfig", None)
    if aug_cls is None:
        return cfg.data.aug
    names = {f.name for f in dataclasses.fields(aug_cls)}
    values = {k: v for k, v in dataclasses.asdict(cfg.data.aug).items() if k in names}
    return aug_cls(**values)


def build_dataset(
    cfg: TrainConfig, split: str, info: Any | None = None, instances: list[Any] | None = None
) -> Any:
    """``TopDownDataset`` for ``split`` ('train' with augmentation, 'val' without)."""
    from slimpose.data.dataset import TopDownDataset

    info = info if info is not None else dataset_info(cfg)
    instances = instances if instances is not None else build_instances(cfg, split)
    return TopDownDataset(
        instances,
        info,
        build_codec(cfg, for_decoding=False),
        tuple(cfg.data.input_size),
        train=(split == "train"),
        udp=cfg.data.udp,
        aug=build_augment(cfg),
        seed=cfg.seed,
    )


def build_val_loader(cfg: TrainConfig, dataset: Any, dist: DistInfo) -> DataLoader:
    """Validation loader: DistributedSampler without shuffling (padding is removed by the evaluator)."""
    sampler = DistributedSampler(dataset, num_replicas=dist.world_size, rank=dist.rank, shuffle=False)
    return DataLoader(
        dataset,
        batch_size=cfg.data.val_batch_size,
        sampler=sampler,
        num_workers=cfg.data.val_workers,
        pin_memory=dist.device.type == "cuda",
        persistent_workers=False,
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def build_evaluator(cfg: TrainConfig, dist: DistInfo, out_dir: str | Path) -> Evaluator:
    info = dataset_info(cfg)
    instances = build_instances(cfg, "val")
    dataset = build_dataset(cfg, "val", info, instances)
    loader = build_val_loader(cfg, dataset, dist)
    metric = "pckh" if cfg.data.dataset == "mpii" else "coco"
    gt = None if metric == "pckh" else str(resolve_data_paths(cfg.data).val_ann)
    return Evaluator(
        loader, info, tuple(cfg.data.input_size), out_dir, gt=gt, metric=metric, udp=cfg.data.udp,
        flip_test=cfg.flip_test, score_thr=cfg.score_thr, nms_thr=cfg.nms_thr, device=dist.device,
        instances=instances,
    )


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


# ----------------------------------------------------------------------------------------------- logging


class RunLogger:
    """JSON-lines log (always, rank 0) + TensorBoard (if importable and enabled)."""

    def __init__(self, work_dir: Path, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = work_dir / "log.jsonl"
        self.tb = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(work_dir / "tb"))
            except Exception:  # noqa: BLE001 - tensorboard missing or broken: JSON log only
                self.tb = None

    def log(self, record: dict[str, Any], step: int, prefix: str = "train") -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **record}) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


# ----------------------------------------------------------------------------------------------- trainer


class Trainer:
    """Train ``task`` (default: ``build_task(cfg, build_model(cfg))``) as configured by ``cfg``.

    ``resume``: ``True`` / ``'auto'`` continues from ``work_dir/last.pth``, a path from that checkpoint;
    ``False`` starts fresh. ``fit(stop_after_epoch=k)`` stops after epoch ``k`` (as if interrupted there).
    """

    def __init__(
        self,
        cfg: TrainConfig,
        task: nn.Module | None = None,
        resume: bool | str = False,
        dist: DistInfo | None = None,
    ) -> None:
        self.cfg = validate_config(cfg)
        self.dist = dist if dist is not None else init_distributed(cfg.device)
        self._own_dist = dist is None
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.device = self.dist.device
        self.work_dir = Path(cfg.work_dir)
        self.is_main = self.dist.is_main
        if self.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.work_dir / "config.json", config_to_dict(cfg), indent=2)

        # data
        if cfg.data.dataset == "synthetic":
            if self.is_main:
                prepare_synthetic(cfg)
            barrier()
        self.info = dataset_info(cfg)
        self.train_set = build_dataset(cfg, "train", self.info)
        self.train_sampler = DistributedSampler(
            self.train_set, num_replicas=self.dist.world_size, rank=self.dist.rank, shuffle=True,
            seed=cfg.seed, drop_last=True,
        )
        if len(self.train_sampler) < cfg.data.batch_size:
            raise SlimposeInputError(
                f"only {len(self.train_sampler)} training instances per process, fewer than data.batch_size="
                f"{cfg.data.batch_size}"
            )
        self.train_loader = DataLoader(
            self.train_set,
            batch_size=cfg.data.batch_size,
            sampler=self.train_sampler,
            num_workers=cfg.data.workers,
            pin_memory=self.device.type == "cuda",
            drop_last=True,
            persistent_workers=False,  # fresh workers each epoch see train_set.set_epoch(epoch)
        )
        self.evaluator = build_evaluator(cfg, self.dist, self.work_dir)

        # model / task (same initial weights on every rank: seeded before building)
        seed_everything(cfg.seed)
        if task is None:
            task = build_task(cfg, build_model(cfg, self.info.num_keypoints))
        self.task = task.to(self.device)
        if cfg.sync_bn and self.dist.distributed:
            if self.device.type != "cuda":
                raise SlimposeInputError("sync_bn needs CUDA (SyncBatchNorm has no CPU implementation)")
            self.task = nn.SyncBatchNorm.convert_sync_batchnorm(self.task)
        self.train_task: nn.Module = self.task
        if self.dist.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.train_task = nn.parallel.DistributedDataParallel(
                self.task, device_ids=ids, find_unused_parameters=cfg.find_unused_parameters
            )

        params = [p for p in self.task.parameters() if p.requires_grad]
        o = cfg.optim
        opt_cls = torch.optim.AdamW if o.name == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
        s = cfg.schedule
        self.scheduler = WarmupMultiStepLR(
            self.optimizer, len(self.train_loader), s.milestones, s.gamma, s.warmup_iters, s.warmup_ratio
        )
        use_scaler = cfg.amp == "fp16" and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
        self.autocast = autocast_factory(cfg.amp, self.device)
        if cfg.amp != "none" and self.device.type != "cuda" and self.is_main:
            print(f"[slimpose] amp={cfg.amp!r} ignored: training on {self.device}", file=sys.stderr)

        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.best_ap = -math.inf
        self.history: list[dict[str, Any]] = []
        # per-rank RNG stream for dropout etc. (the model init above is identical on every rank)
        seed_everything(cfg.seed + 1000 * self.dist.rank + 1)
        if resume:
            path = self.work_dir / "last.pth" if resume in (True, "auto") else Path(str(resume))
            self.resume_from(path)
        self.logger = RunLogger(self.work_dir, self.is_main, cfg.tensorboard)

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.task.model.state_dict(),
            "task": self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_ap": self.best_ap,
            "rng": capture_rng_state(),
            "config": config_to_dict(self.cfg),
            "model_name": self.cfg.model.name,
            "world_size": self.dist.world_size,
        }

    def resume_from(self, path: Path) -> None:
        ckpt = load_checkpoint(path, map_location=self.device)
        if "task" not in ckpt or "optimizer" not in ckpt:
            raise SlimposeInputError(f"{path}: not a slimpose training checkpoint (no task/optimizer state)")
        self.task.load_state_dict(ckpt["task"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt["global_step"])
        self.best_ap = float(ckpt["best_ap"])
        per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
        if len(per_rank) == self.dist.world_size:
            restore_rng_state(per_rank[self.dist.rank])
        else:
            # another number of processes: a deterministic stream derived from (seed, rank, step)
            seed_everything(self.cfg.seed + 1000 * self.dist.rank + 1 + self.global_step)
        if self.is_main:
            print(f"[slimpose] resumed from {path} at epoch {self.epoch} (step {self.global_step})",
                  file=sys.stderr)

    def save(self, metrics: dict[str, float] | None) -> None:
        """Update ``best_ap``; write ``last.pth`` (and ``best.pth`` on improvement) from rank 0.

        Called on every rank: the RNG states of all ranks are gathered so that a resume with the same
        number of processes restores each rank's stream.
        """
        ap = None if metrics is None else metrics.get("AP", metrics.get("PCKh"))
        improved = ap is not None and ap > self.best_ap
        if improved:
            self.best_ap = float(ap)
        rng_all = all_gather_object(capture_rng_state())
        if not self.is_main:
            return
        state = self.state_dict()
        state["rng_per_rank"] = rng_all
        save_checkpoint(state, self.work_dir / "last.pth")
        if improved:
            save_checkpoint(state, self.work_dir / "best.pth")

    # ------------------------------------------------------------------ loop

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return {
            k: v.to(self.device, non_blocking=True) if isinstance(v, torch.Tensor) else v
            for k, v in batch.items()
        }

    def train_one_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.cfg
        self.task.train()
        self.train_sampler.set_epoch(epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        loader: Any = self.train_loader
        bar = None
        if self.is_main and sys.stderr.isatty():
            from tqdm import tqdm

            desc = f"epoch {epoch + 1}/{cfg.schedule.epochs}"
            bar = tqdm(loader, desc=desc, dynamic_ncols=True, leave=False)
            loader = bar
        sums: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()
        for it, batch in enumerate(loader):
            batch = self._to_device(batch)
            with self.autocast():
                loss, logs = self.train_task(batch)
            finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
            if self.dist.distributed:
                all_reduce_tensor(finite, "min")
            if finite.item() < 1:
                raise TrainingDivergedError(
                    f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, iteration {it + 1}, global step "
                    f"{self.global_step + 1}; training stopped, the last good checkpoint is "
                    f"{self.work_dir / 'last.pth'} (epoch {self.epoch})"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.task.parameters(), cfg.optim.grad_clip)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()
            self.global_step += 1
            values = {"loss": float(loss.detach())}
            values.update({k: float(v) for k, v in logs.items()})
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if bar is not None:
                bar.set_postfix(loss=f"{values['loss']:.3e}", lr=f"{self.scheduler.get_last_lr()[0]:.2e}")
            if self.global_step % cfg.log_interval == 0:
                self.logger.log(
                    {"epoch": epoch + 1, "lr": self.scheduler.get_last_lr()[0], **values}, self.global_step
                )
        if bar is not None:
            bar.close()
        avg = {k: v / max(count, 1) for k, v in sums.items()}
        avg["epoch_time_s"] = time.perf_counter() - t0
        return avg

    def evaluate(self, tag: str = "val") -> dict[str, float]:
        broadcast_buffers(self.task)  # every rank evaluates rank 0's weights (BN statistics included)
        progress = self.is_main and sys.stderr.isatty()
        return self.evaluator.run(self.task, tag=tag, autocast=self.autocast, progress=progress)

    def fit(self, stop_after_epoch: int | None = None) -> dict[str, Any]:
        """Train until ``schedule.epochs`` (or ``stop_after_epoch``); returns the last epoch's summary."""
        cfg = self.cfg
        summary: dict[str, Any] = {}
        try:
            while self.epoch < cfg.schedule.epochs:
                epoch = self.epoch
                train_stats = self.train_one_epoch(epoch)
                self.epoch = epoch + 1
                metrics = None
                if self.epoch % cfg.eval_interval == 0 or self.epoch == cfg.schedule.epochs:
                    metrics = self.evaluate(tag="val")
                summary = {"epoch": self.epoch, **{f"train_{k}": v for k, v in train_stats.items()}}
                if metrics is not None:
                    summary.update({f"val_{k}": v for k, v in metrics.items()})
                self.save(metrics)
                summary["best_ap"] = self.best_ap
                self.history.append(summary)
                self.logger.log(summary, self.global_step, prefix="epoch")
                if self.is_main:
                    shown = ", ".join(
                        f"{k}={v:.4g}" for k, v in summary.items()
                        if k in ("train_loss", "val_AP", "val_PCKh")
                    )
                    print(f"[slimpose] epoch {self.epoch}/{cfg.schedule.epochs}: {shown}", file=sys.stderr)
                barrier()
                if stop_after_epoch is not None and self.epoch >= stop_after_epoch:
                    break
        finally:
            self.logger.close()
        return summary

    def close(self) -> None:
        if self._own_dist:
            cleanup_distributed(self.dist)


def evaluate_checkpoint(
    cfg: TrainConfig, checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
    dist: DistInfo | None = None, tag: str = "eval",
) -> dict[str, float]:
    """Build the model of ``cfg``, load ``checkpoint`` and evaluate it on the validation split."""
    cfg = validate_config(cfg)
    own = dist is None
    dist = dist if dist is not None else init_distributed(cfg.device)
    try:
        if cfg.num_threads > 0:
            torch.set_num_threads(cfg.num_threads)
        if cfg.data.dataset == "synthetic":
            if dist.is_main:
                prepare_synthetic(cfg)
            barrier()
        info = dataset_info(cfg)
        model = build_model(cfg, info.num_keypoints)
        load_model_weights(model, checkpoint)
        task = build_task(cfg, model).to(dist.device)
        evaluator = build_evaluator(cfg, dist, out_dir if out_dir is not None else cfg.work_dir)
        return evaluator.run(task, tag=tag, autocast=autocast_factory(cfg.amp, dist.device))
    finally:
        if own:
            cleanup_distributed(dist)
