"""The training loop: handed its task, data, optimizer and schedule, extended by hooks (Detectron2 style).

``TrainLoop.fit`` runs epochs of ``task(batch) -> (loss, logs)`` over the train loader: AMP autocast
(CUDA), a NaN / inf guard (all ranks stop together), gradient scaling and clipping, one scheduler step per
iteration. Everything else is a hook (``slimpose.engine.hooks``): evaluation, checkpoints and the best
checkpoint by a named metric with a direction, logging, the distillation schedule. ``state_dict`` holds
everything a resumed run needs to reproduce the uninterrupted one bit for bit: task (model and head),
optimizer, scheduler, scaler, counters, hook states and the RNG states (gathered from every rank by the
checkpoint hook).
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from slimpose.engine.checkpoint import capture_rng_state, load_checkpoint, restore_rng_state
from slimpose.engine.distributed import DistInfo, all_reduce_tensor, barrier
from slimpose.engine.hooks import Hook
from slimpose.utils.io import SlimposeInputError


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the message names the step and the last good checkpoint."""


def _to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


class TrainLoop:
    """Train ``task`` for ``max_epochs`` epochs of ``train_loader``.

    Args:
        task: the module that computes ``(loss, logs)`` and owns the deployable ``task.model``.
        train_loader: batches of the training set; its sampler and data set get ``set_epoch(epoch)``.
        optimizer / scheduler: the scheduler is stepped after every iteration (``WarmupMultiStepLR``).
        hooks: run in order at every call point (evaluation before checkpointing before logging).
        train_task: what the forward goes through (``task`` itself or its DistributedDataParallel wrapper).
        metadata: entries copied into every checkpoint (``config``, ``model_name``).
        on_close: called once by ``close()`` (e.g. to end the process group the builder started).
    """

    def __init__(
        self,
        task: nn.Module,
        train_loader: Iterable[dict[str, Any]],
        optimizer: torch.optim.Optimizer,
        max_epochs: int,
        scheduler: Any = None,
        hooks: Sequence[Hook] = (),
        *,
        train_task: nn.Module | None = None,
        dist: DistInfo | None = None,
        autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
        scaler: torch.amp.GradScaler | None = None,
        grad_clip: float = 0.0,
        work_dir: str | Path | None = None,
        metadata: dict[str, Any] | None = None,
        progress: bool = False,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.task = task
        self.train_task = train_task if train_task is not None else task
        self.train_loader = train_loader
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.max_epochs = int(max_epochs)
        self.hooks = list(hooks)
        self.dist = dist if dist is not None else DistInfo()
        self.device = self.dist.device
        self.autocast = autocast
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cuda", enabled=False)
        self.grad_clip = grad_clip
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.metadata = dict(metadata or {})
        self.progress = progress
        self.on_close = on_close
        self.epoch = 0  # epochs completed
        self.global_step = 0
        self.epoch_metrics: dict[str, float] | None = None  # validation metrics of the last epoch, if any
        self.summary: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []

    @property
    def is_main(self) -> bool:
        return self.dist.is_main

    def close(self) -> None:
        """Release what the builder set up for this loop (a process group it initialised)."""
        if self.on_close is not None:
            self.on_close()
            self.on_close = None

    def hook(self, cls: type) -> Any:
        """The first hook of class ``cls`` (None if there is none)."""
        return next((h for h in self.hooks if isinstance(h, cls)), None)

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        state = {
            "model": self.task.model.state_dict(),
            "task": self.task.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "rng": capture_rng_state(),
            "world_size": self.dist.world_size,
            **self.metadata,
            **self.task.checkpoint_extras(),
        }
        for h in self.hooks:
            if h.key:
                state[h.key] = h.state_dict()
        return state

    def resume_from(self, path: str | Path, reseed: Callable[[int], None] | None = None) -> None:
        """Restore a training checkpoint; a different number of processes gets ``reseed(global_step)``
        (a deterministic per-rank stream) instead of the saved RNG states."""
        ckpt = load_checkpoint(path, map_location=self.device)
        if "task" not in ckpt or "optimizer" not in ckpt:
            raise SlimposeInputError(f"{path}: not a slimpose training checkpoint (no task/optimizer state)")
        self.task.load_state_dict(ckpt["task"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if self.scheduler is not None and ckpt.get("scheduler") is not None:
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if ckpt.get("scaler"):
            self.scaler.load_state_dict(ckpt["scaler"])
        self.epoch = int(ckpt["epoch"])
        self.global_step = int(ckpt["global_step"])
        for h in self.hooks:
            h.load_from_checkpoint(ckpt)
        per_rank = ckpt.get("rng_per_rank") or [ckpt["rng"]]
        if len(per_rank) == self.dist.world_size:
            restore_rng_state(per_rank[self.dist.rank])
        elif reseed is not None:
            reseed(self.global_step)
        if self.is_main:
            print(f"[slimpose] resumed from {path} at epoch {self.epoch} (step {self.global_step})", file=sys.stderr)

    # ------------------------------------------------------------------ loop

    def _set_epoch(self, epoch: int) -> None:
        for obj in (getattr(self.train_loader, "sampler", None), getattr(self.train_loader, "dataset", None)):
            if hasattr(obj, "set_epoch"):
                obj.set_epoch(epoch)

    def run_step(self, batch: dict[str, Any], epoch: int, iteration: int) -> dict[str, float]:
        """One optimisation step; returns the detached loss and logs as floats."""
        batch = _to_device(batch, self.device)
        with self.autocast():
            loss, logs = self.train_task(batch)
        finite = torch.isfinite(loss.detach()).to(torch.float32).reshape(1)
        if self.dist.distributed:
            all_reduce_tensor(finite, "min")
        if finite.item() < 1:
            where = f"{self.work_dir / 'last.pth'}" if self.work_dir is not None else "the last checkpoint"
            raise TrainingDivergedError(
                f"non-finite loss ({loss.item()}) at epoch {epoch + 1}, iteration {iteration + 1}, global step "
                f"{self.global_step + 1}; training stopped, the last good checkpoint is {where} "
                f"(epoch {self.epoch})")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.task.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        self.global_step += 1
        values = {"loss": float(loss.detach())}
        values.update({k: float(v) for k, v in logs.items()})
        return values

    def run_epoch(self) -> dict[str, float]:
        """One epoch over the train loader; returns the mean of every logged value and the epoch time."""
        epoch = self.epoch
        self.task.train()
        self._set_epoch(epoch)
        loader: Any = self.train_loader
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = loader = tqdm(loader, desc=f"epoch {epoch + 1}/{self.max_epochs}", dynamic_ncols=True,
                                leave=False)
        sums: dict[str, float] = {}
        count = 0
        t0 = time.perf_counter()
        for it, batch in enumerate(loader):
            values = self.run_step(batch, epoch, it)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
            if bar is not None:
                lr = self.optimizer.param_groups[0]["lr"]
                bar.set_postfix(loss=f"{values['loss']:.3e}", lr=f"{lr:.2e}")
            for h in self.hooks:
                h.after_step(self, values)
        if bar is not None:
            bar.close()
        avg = {k: v / max(count, 1) for k, v in sums.items()}
        avg["epoch_time_s"] = time.perf_counter() - t0
        return avg

    def fit(self, stop_after_epoch: int | None = None) -> dict[str, Any]:
        """Train until ``max_epochs`` (or ``stop_after_epoch``); returns the last epoch's summary."""
        try:
            for h in self.hooks:
                h.before_train(self)
            while self.epoch < self.max_epochs:
                for h in self.hooks:
                    h.before_epoch(self)
                stats = self.run_epoch()
                self.epoch += 1
                self.epoch_metrics = None
                self.summary = {"epoch": self.epoch, **{f"train_{k}": v for k, v in stats.items()}}
                for h in self.hooks:
                    h.after_epoch(self)
                self.history.append(self.summary)
                barrier()
                if stop_after_epoch is not None and self.epoch >= stop_after_epoch:
                    break
        finally:
            for h in self.hooks:
                h.after_train(self)
        return self.summary
