"""Learning-rate schedule stepped once per iteration: linear warm-up then multi-step decay.

Implements the mmcv ``LrUpdaterHook(policy='step', warmup='linear', warmup_iters=500, warmup_ratio=1e-3)``
used by the official TokenPose / DistilPose / SDPose / HRNet configs: the regular rate is
``base_lr * gamma ** (number of milestones <= epoch)``; during the first ``warmup_iters`` iterations it is
multiplied by ``1 - (1 - i / warmup_iters) * (1 - warmup_ratio)``. ``epoch_decay`` < 1 also multiplies it by
``epoch_decay ** epoch`` (the lifters' per-epoch decay: MixSTE / HoT ``lr *= 0.99`` after every epoch).
"""

from __future__ import annotations

from typing import Any

import torch


class WarmupMultiStepLR:
    """Per-iteration scheduler: call ``step()`` after each optimizer step; resumable via ``state_dict``."""

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        iters_per_epoch: int,
        milestones: tuple[int, ...] | list[int] = (200, 260),
        gamma: float = 0.1,
        warmup_iters: int = 500,
        warmup_ratio: float = 1e-3,
        epoch_decay: float = 1.0,
    ) -> None:
        if iters_per_epoch <= 0:
            raise ValueError(f"WarmupMultiStepLR: iters_per_epoch must be positive, got {iters_per_epoch}")
        if not 0.0 < warmup_ratio <= 1.0:
            raise ValueError(f"WarmupMultiStepLR: warmup_ratio must be in (0, 1], got {warmup_ratio}")
        self.optimizer = optimizer
        self.iters_per_epoch = int(iters_per_epoch)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.warmup_iters = int(warmup_iters)
        self.warmup_ratio = float(warmup_ratio)
        if not 0.0 < epoch_decay <= 1.0:
            raise ValueError(f"WarmupMultiStepLR: epoch_decay must be in (0, 1], got {epoch_decay}")
        self.epoch_decay = float(epoch_decay)
        self.base_lrs = [float(g.get("initial_lr", g["lr"])) for g in optimizer.param_groups]
        for g, lr in zip(optimizer.param_groups, self.base_lrs):
            g["initial_lr"] = lr
        self.last_iter = 0
        self._apply()

    def factor(self, iteration: int) -> float:
        """Multiplier of the base rate at global iteration ``iteration`` (0-based)."""
        epoch = iteration // self.iters_per_epoch
        decay = self.gamma ** sum(1 for m in self.milestones if epoch >= m) * self.epoch_decay ** epoch
        if self.warmup_iters > 0 and iteration < self.warmup_iters:
            k = (1.0 - iteration / self.warmup_iters) * (1.0 - self.warmup_ratio)
            return decay * (1.0 - k)
        return decay

    def _apply(self) -> None:
        f = self.factor(self.last_iter)
        for g, lr in zip(self.optimizer.param_groups, self.base_lrs):
            g["lr"] = lr * f

    def step(self) -> None:
        self.last_iter += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        return [float(g["lr"]) for g in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        return {
            "last_iter": self.last_iter,
            "base_lrs": list(self.base_lrs),
            "iters_per_epoch": self.iters_per_epoch,
            "milestones": list(self.milestones),
            "gamma": self.gamma,
            "warmup_iters": self.warmup_iters,
            "warmup_ratio": self.warmup_ratio,
            "epoch_decay": self.epoch_decay,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if int(state["iters_per_epoch"]) != self.iters_per_epoch:
            raise ValueError(
                f"scheduler state was saved with {state['iters_per_epoch']} iterations per epoch, "
                f"this run has {self.iters_per_epoch} (batch size, world size or data set changed?)"
            )
        self.last_iter = int(state["last_iter"])
        self.base_lrs = [float(x) for x in state["base_lrs"]]
        self._apply()
