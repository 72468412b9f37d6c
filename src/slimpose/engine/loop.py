"""The training loop: handed its task, data, optimizer and schedule, extended by hooks (Detectron2 style).

``TrainLoop.fit`` runs epochs of ``task(batch) -> (loss, logs)`` over the train loader: AMP autocast
(CUDA), a divergence guard (all ranks stop together: a NaN / inf loss, a loss spike of more than
``loss_spike`` times the running scale above the running median, NaN / inf weights after an epoch, which
are then neither evaluated nor saved), gradient scaling and clipping, one scheduler step per iteration.
Everything else is a hook (``slimpose.engine.hooks``): evaluation, checkpoints and the best checkpoint
by a named metric with a direction, logging, the distillation schedule. ``state_dict`` holds everything a
resumed run needs to reproduce the uninterrupted one bit for bit: task (model and head),
optimizer, scheduler, scaler, counters, hook states and the RNG states (gathered from every rank by the
checkpoint hook).
"""

from __future__ import annotations

import collections
import contextlib
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import nn

from slimpose.engine.checkpoint import (
    capture_rng_state,
    describe_checkpoint,
    load_checkpoint,
    load_fitting_state,
    non_finite_tensors,
    restore_rng_state,
)
from slimpose.engine.distributed import DistInfo, all_reduce_tensor, barrier
from slimpose.engine.hooks import Hook
from slimpose.utils.io import SlimposeInputError, unwrapped_batches

# the loss-spike guard: stop when a loss exceeds the median of the last SPIKE_WINDOW losses by more than
# ``loss_spike`` times a scale (checked once SPIKE_MIN_STEPS losses are known). The scale is the median of the
# window's absolute values, floored at SPIKE_SCALE_FLOOR times the median absolute value of the run's first
# SPIKE_MIN_STEPS losses: a loss that settles near or crosses zero (an RLE negative log-likelihood goes
# negative) keeps the run's starting magnitude as its yardstick instead of a scale that collapses to ~0
DEFAULT_LOSS_SPIKE = 100.0
SPIKE_WINDOW = 50
SPIKE_MIN_STEPS = 20
SPIKE_SCALE_FLOOR = 0.01


class TrainingDivergedError(RuntimeError):
    """Training diverged (a NaN / inf loss, a loss spike, NaN / inf weights); the message names the step and
    the last good checkpoint this run wrote (or says that there is none)."""


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
        loss_spike: stop when a loss is more than this many times the running scale (median of the last
            ``SPIKE_WINDOW`` absolute losses, at least ``SPIKE_SCALE_FLOOR`` times the median absolute value
            of the first ``SPIKE_MIN_STEPS`` losses) above their median (0: off; ``optim.loss_spike`` of a
            config).
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
        loss_spike: float = DEFAULT_LOSS_SPIKE,
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
        self.loss_spike = float(loss_spike)
        self.recent_losses: collections.deque[float] = collections.deque(maxlen=SPIKE_WINDOW)
        self.first_losses: list[float] = []  # the first SPIKE_MIN_STEPS finite losses this loop saw
        self.last_good: tuple[Path, int] | None = None  # (file, epoch) of the last checkpoint written or resumed

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
        held = describe_checkpoint(ckpt)
        expected = describe_checkpoint(self.metadata) if self.metadata else f"a {type(self.task).__name__}"
        load_fitting_state(self.task, ckpt["task"], str(path), held, expected)
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
        self.last_good = (Path(path), self.epoch)
        if self.is_main:
            print(f"[slimpose] resumed from {path} at epoch {self.epoch} (step {self.global_step})", file=sys.stderr)

    def last_good_text(self) -> str:
        """Where the last good weights are, for a divergence message."""
        if self.last_good is not None:
            return f"the last good checkpoint is {self.last_good[0]} (epoch {self.last_good[1]})"
        return "no checkpoint was written before (this run diverged in its first epoch)"

    def is_spike(self, value: float) -> bool:
        """Whether ``value`` is a loss spike against the recent losses (see ``loss_spike``)."""
        if self.loss_spike <= 0 or len(self.recent_losses) < SPIKE_MIN_STEPS or not math.isfinite(value):
            return False
        median = statistics.median(self.recent_losses)
        start = statistics.median(abs(v) for v in self.first_losses) if self.first_losses else 0.0
        scale = max(statistics.median(abs(v) for v in self.recent_losses), SPIKE_SCALE_FLOOR * start, 1e-12)
        return value - median > self.loss_spike * scale

    def check_weights(self) -> None:
        """A TrainingDivergedError if the task's weights hold NaN / inf (after an epoch, before anything is
        evaluated or saved): a bad checkpoint never replaces a good one."""
        bad = non_finite_tensors(self.task.state_dict())
        if bad:
            raise TrainingDivergedError(
                f"training diverged: {len(bad)} weight tensors hold NaN or infinite values after epoch "
                f"{self.epoch} (e.g. {bad[0]}); they are not saved, {self.last_good_text()}")

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
        value = float(loss.detach())
        finite, calm = math.isfinite(value), not self.is_spike(value)
        if self.dist.distributed:  # every rank stops together: one all-reduce, one read
            flags = torch.tensor([float(finite), float(calm)], device=loss.device)
            all_reduce_tensor(flags, "min")
            finite, calm = (v >= 1 for v in flags.tolist())
        at = f"at epoch {epoch + 1}, iteration {iteration + 1}, global step {self.global_step + 1}"
        if not finite:
            raise TrainingDivergedError(
                f"training diverged: non-finite loss ({value}) {at}; training stopped, {self.last_good_text()}")
        if not calm:
            median = statistics.median(self.recent_losses) if self.recent_losses else float("nan")
            raise TrainingDivergedError(
                f"training diverged: loss spike ({value:.4g}, the median of the last {len(self.recent_losses)} "
                f"steps is {median:.4g}; optim.loss_spike={self.loss_spike:g}, 0 turns the check off) {at}; "
                f"training stopped before this step, {self.last_good_text()}")
        self.recent_losses.append(value)
        if len(self.first_losses) < SPIKE_MIN_STEPS:
            self.first_losses.append(value)
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
        values = {"loss": value}
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
        for it, batch in enumerate(unwrapped_batches(loader)):
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
                self.check_weights()
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
