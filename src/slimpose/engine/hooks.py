"""Hooks of the training loop: the ``Hook`` base class, evaluation, checkpoints (last and best by a named
metric), logging, the distillation schedule. Each is small and independent; ``build_trainer`` lists them in
the order they run (evaluation, then checkpointing, then logging)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from slimpose.engine.checkpoint import capture_rng_state, save_checkpoint
from slimpose.engine.distributed import all_gather_object, broadcast_buffers
from slimpose.evaluation.coco import NonFinitePredictionError
from slimpose.evaluation.metrics import MODES, is_better
from slimpose.utils.io import SlimposeInputError, write_text_atomic

if TYPE_CHECKING:
    from slimpose.engine.loop import TrainLoop


class Hook:
    """Called by ``TrainLoop`` at fixed points; ``state_dict`` is saved in checkpoints under ``key``."""

    key: str = ""

    def before_train(self, loop: "TrainLoop") -> None: ...

    def before_epoch(self, loop: "TrainLoop") -> None: ...

    def after_step(self, loop: "TrainLoop", values: dict[str, float]) -> None: ...

    def after_epoch(self, loop: "TrainLoop") -> None: ...

    def after_train(self, loop: "TrainLoop") -> None: ...

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def load_from_checkpoint(self, ckpt: dict[str, Any]) -> None:
        """Restore this hook's state from a training checkpoint (its entry under ``key``)."""
        if self.key and isinstance(ckpt.get(self.key), dict):
            self.load_state_dict(ckpt[self.key])


class EvalHook(Hook):
    """Evaluate every ``interval`` epochs and after the last one; metrics go to ``loop.epoch_metrics`` and
    the epoch summary as ``val_<name>``. Every rank evaluates rank 0's weights (buffers broadcast). NaN / inf
    predictions are a ``TrainingDivergedError`` naming the last good checkpoint."""

    def __init__(self, evaluator: Any, interval: int, autocast: Callable | None = None, progress: bool = False):
        self.evaluator = evaluator
        self.interval = int(interval)
        self.autocast = autocast
        self.progress = progress

    def due(self, loop: TrainLoop) -> bool:
        return loop.epoch % self.interval == 0 or loop.epoch == loop.max_epochs

    def after_epoch(self, loop: TrainLoop) -> None:
        if not self.due(loop):
            return
        broadcast_buffers(loop.task)
        try:
            metrics = self.evaluator.run(loop.task, tag="val", autocast=self.autocast, progress=self.progress)
        except NonFinitePredictionError as e:  # finite weights whose predictions overflow: the run diverged
            from slimpose.engine.loop import TrainingDivergedError

            raise TrainingDivergedError(f"training diverged: the model predicts NaN or infinite values after epoch "
                                        f"{loop.epoch} ({e}); this epoch is not saved, {loop.last_good_text()}"
                                        ) from None
        loop.epoch_metrics = metrics
        loop.summary.update({f"val_{k}": v for k, v in metrics.items()})


class CheckpointHook(Hook):
    """Write ``last.pth`` after every epoch and ``best.pth`` when ``metric`` improves in direction ``mode``
    ('max' or 'min'). Runs on every rank (the RNG states of all ranks are gathered, so a resume with the
    same number of processes restores each rank's stream); files are written by rank 0, atomically, and
    only with finite weights (else a ``TrainingDivergedError``: a good checkpoint is never replaced by a bad
    one). The loop's ``last_good`` names the file written."""

    key = "best"

    def __init__(self, work_dir: str | Path, metric: str, mode: str = "max") -> None:
        if mode not in MODES:
            raise SlimposeInputError(f"best checkpoint: mode must be 'max' or 'min', got {mode!r}")
        self.work_dir = Path(work_dir)
        self.metric = metric
        self.mode = mode
        self.value: float | None = None

    def after_epoch(self, loop: TrainLoop) -> None:
        metrics = loop.epoch_metrics
        improved = False
        missing = metrics is not None and self.metric not in metrics
        if metrics is not None and not missing:
            value = float(metrics[self.metric])
            improved = is_better(value, self.value, self.mode)
            if improved:
                self.value = value
        rng_all = all_gather_object(capture_rng_state())
        loop.summary[f"best_{self.metric}"] = self.value
        if loop.is_main:
            state = loop.state_dict()  # finite: TrainLoop.fit checks the weights on every rank before the hooks
            state["rng_per_rank"] = rng_all
            save_checkpoint(state, self.work_dir / "last.pth")
            if improved:
                save_checkpoint(state, self.work_dir / "best.pth")
        loop.last_good = (self.work_dir / "last.pth", loop.epoch)
        if missing:  # after last.pth is written: the epoch's training is not lost
            raise SlimposeInputError(f"best_metric {self.metric!r} is not a validation metric of this run "
                                     f"({', '.join(sorted(metrics))}); last.pth of epoch {loop.epoch} is saved")

    def state_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "mode": self.mode, "value": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("metric") == self.metric and state.get("mode") == self.mode:
            self.value = None if state.get("value") is None else float(state["value"])

    def load_from_checkpoint(self, ckpt: dict[str, Any]) -> None:
        """Also reads the ``best_ap`` of checkpoints of older versions (their best AP or PCKh)."""
        if "best" not in ckpt and ckpt.get("best_ap") is not None and self.mode == "max" \
                and self.metric in ("AP", "PCKh") and float(ckpt["best_ap"]) > float("-inf"):
            self.value = float(ckpt["best_ap"])
        super().load_from_checkpoint(ckpt)


class LoggerHook(Hook):
    """JSON-lines log ``log.jsonl`` (rank 0) every ``interval`` steps and per epoch, TensorBoard if it
    imports and is enabled, and one console line per epoch with the loss and ``shown`` metrics. On resume
    the records past the checkpoint's step (and a line cut short by a kill) are dropped: the replayed steps
    are logged once; a fresh run (``global_step`` 0 when training starts) starts a new ``log.jsonl``."""

    def __init__(self, work_dir: str | Path, interval: int = 50, tensorboard: bool = False,
                 shown: tuple[str, ...] = ("train_loss",), enabled: bool = True) -> None:
        self.path = Path(work_dir) / "log.jsonl"
        self.interval = int(interval)
        self.shown = shown
        self.enabled = enabled
        self.tensorboard = bool(tensorboard)
        self.tb_dir = Path(work_dir) / "tb"
        self.tb = None  # the writer is opened in before_train: building a run writes nothing into tb/

    def before_train(self, loop: TrainLoop) -> None:
        if not self.enabled:
            return
        if loop.global_step == 0 and self.path.is_file():
            # a fresh run (a resume has global_step > 0): a log a killed earlier run left (one that wrote
            # no checkpoint, so nothing refused the folder) would otherwise get this run's steps appended
            self.path.unlink()
        if self.tensorboard and self.tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(log_dir=str(self.tb_dir))
            except Exception:  # noqa: BLE001 - tensorboard missing or broken: JSON log only
                self.tb = None

    def _write(self, record: dict[str, Any], step: int, prefix: str) -> None:
        if not self.enabled:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **record}) + "\n")
        if self.tb is not None:
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("epoch", "step"):
                    self.tb.add_scalar(f"{prefix}/{k}", v, step)

    def load_from_checkpoint(self, ckpt: dict[str, Any]) -> None:
        if not self.enabled or not self.path.is_file() or "global_step" not in ckpt:
            return
        step = int(ckpt["global_step"])
        lines = self.path.read_text(encoding="utf-8").splitlines()
        kept = []
        for line in lines:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int) and record["step"] <= step:
                kept.append(line)
        if kept != lines:
            write_text_atomic(self.path, "".join(f"{line}\n" for line in kept))

    def after_step(self, loop: TrainLoop, values: dict[str, float]) -> None:
        if loop.global_step % self.interval == 0:
            lr = loop.optimizer.param_groups[0]["lr"]
            self._write({"epoch": loop.epoch + 1, "lr": lr, **values}, loop.global_step, "train")

    def after_epoch(self, loop: TrainLoop) -> None:
        self._write(loop.summary, loop.global_step, "epoch")
        if self.enabled:
            shown = ", ".join(f"{k}={v:.4g}" for k, v in loop.summary.items()
                              if k in self.shown and isinstance(v, (int, float)))
            print(f"[slimpose] epoch {loop.epoch}/{loop.max_epochs}: {shown}", file=sys.stderr)

    def after_train(self, loop: TrainLoop) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None


class EpochHook(Hook):
    """Calls ``target.set_epoch(epoch, max_epochs)`` before every epoch (the distillation schedule)."""

    def __init__(self, target: Any) -> None:
        self.target = target

    def before_epoch(self, loop: TrainLoop) -> None:
        self.target.set_epoch(loop.epoch, loop.max_epochs)
