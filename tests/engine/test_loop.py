"""The training loop with hooks, on a toy task (no pose code): it takes its parts, calls the hooks in
order, and the checkpoint hook keeps the best checkpoint by a named metric in either direction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimpose.engine.checkpoint import load_checkpoint
from slimpose.engine.hooks import CheckpointHook, EpochHook, Hook
from slimpose.engine.loop import TrainingDivergedError, TrainLoop


class _ToyTask(nn.Module):
    """Fits y = 2x with one weight; logs the squared error."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Linear(1, 1, bias=False)
        self.epochs_seen: list[tuple[int, int]] = []

    def forward(self, batch):
        loss = ((self.model(batch["x"]) - 2 * batch["x"]) ** 2).mean()
        return loss, {"loss_mse": loss.detach()}

    def checkpoint_extras(self):
        return {"toy": True}

    def set_epoch(self, epoch, epochs):
        self.epochs_seen.append((epoch, epochs))


class _FakeEval(Hook):
    """Reports a scripted metric after every epoch (what EvalHook does with a real evaluator)."""

    def __init__(self, name, values):
        self.name, self.values, self.calls = name, list(values), []

    def after_epoch(self, loop):
        loop.epoch_metrics = {self.name: self.values[loop.epoch - 1]}
        self.calls.append(("eval", loop.epoch))


class _Recorder(Hook):
    def __init__(self, log):
        self.log = log

    def before_train(self, loop):
        self.log.append("before_train")

    def before_epoch(self, loop):
        self.log.append(f"before_epoch {loop.epoch}")

    def after_step(self, loop, values):
        self.log.append("step")

    def after_epoch(self, loop):
        self.log.append(f"after_epoch {loop.epoch}")

    def after_train(self, loop):
        self.log.append("after_train")


def _loop(tmp_path, hooks, epochs=3):
    torch.manual_seed(0)
    task = _ToyTask()
    data = [{"x": torch.randn(4, 1)} for _ in range(2)]
    opt = torch.optim.SGD(task.parameters(), lr=0.1)
    return TrainLoop(task, data, opt, epochs, hooks=hooks, work_dir=tmp_path, metadata={"config": {"toy": 1}})


@pytest.mark.parametrize("mode, values, best_epoch", [("min", [3.0, 1.0, 2.0], 2), ("max", [0.1, 0.3, 0.2], 2),
                                                      ("min", [1.0, 2.0, 3.0], 1)])
def test_best_checkpoint_follows_the_metric_direction(tmp_path, mode, values, best_epoch):
    log: list[str] = []
    ckpt = CheckpointHook(tmp_path, "MPJPE", mode)
    loop = _loop(tmp_path, [_FakeEval("MPJPE", values), ckpt, _Recorder(log)])
    summary = loop.fit()
    assert loop.epoch == 3 and loop.global_step == 6 and summary["train_loss_mse"] == summary["train_loss"]
    best = load_checkpoint(tmp_path / "best.pth")
    last = load_checkpoint(tmp_path / "last.pth")
    assert best["epoch"] == best_epoch and last["epoch"] == 3
    expected = min(values) if mode == "min" else max(values)
    assert last["best"] == {"metric": "MPJPE", "mode": mode, "value": expected} and summary["best_MPJPE"] == expected
    assert last["toy"] is True and last["config"] == {"toy": 1} and "optimizer" in last
    assert log[:3] == ["before_train", "before_epoch 0", "step"] and log[-1] == "after_train"
    assert log.count("step") == 6 and log.index("after_epoch 1") < log.index("before_epoch 1")


def test_resume_restores_counters_and_the_best_value(tmp_path):
    ckpt = CheckpointHook(tmp_path, "MPJPE", "min")
    _loop(tmp_path, [_FakeEval("MPJPE", [3.0, 1.0, 2.0]), ckpt]).fit(stop_after_epoch=2)
    again = CheckpointHook(tmp_path, "MPJPE", "min")
    loop = _loop(tmp_path, [_FakeEval("MPJPE", [3.0, 1.0, 2.0]), again])
    loop.resume_from(tmp_path / "last.pth")
    assert loop.epoch == 2 and loop.global_step == 4 and again.value == 1.0
    loop.fit()
    assert load_checkpoint(tmp_path / "best.pth")["epoch"] == 2  # epoch 3 (2.0) did not beat 1.0
    with pytest.raises(Exception, match="not a slimpose training checkpoint"):
        torch.save({"model": {}}, tmp_path / "bare.pth")
        loop.resume_from(tmp_path / "bare.pth")


def test_epoch_hook_drives_a_schedule_and_a_missing_metric_is_a_clear_error(tmp_path):
    loop = _loop(tmp_path, [], epochs=2)
    loop.hooks = [EpochHook(loop.task)]
    loop.fit()
    assert loop.task.epochs_seen == [(0, 2), (1, 2)]
    bad = _loop(tmp_path / "bad", [_FakeEval("AP", [0.1]), CheckpointHook(tmp_path / "bad", "MPJPE")], epochs=1)
    with pytest.raises(Exception, match="best_metric 'MPJPE' is not a validation metric"):
        bad.fit()
    assert load_checkpoint(tmp_path / "bad" / "last.pth")["epoch"] == 1  # the epoch's training is kept


def test_an_older_checkpoints_best_ap_is_kept_on_resume(tmp_path):
    _loop(tmp_path, [_FakeEval("AP", [0.5, 0.1])], epochs=2).fit(stop_after_epoch=1)
    loop = _loop(tmp_path, [])
    state = loop.state_dict()
    state.pop("best", None)
    state["best_ap"] = 0.5  # the format before the best-metric hook
    torch.save(state, tmp_path / "old.pth")
    hook = CheckpointHook(tmp_path, "AP", "max")
    loop.hooks = [hook]
    loop.resume_from(tmp_path / "old.pth")
    assert hook.value == 0.5


def test_non_finite_loss_stops_the_loop(tmp_path):
    loop = _loop(tmp_path, [])
    loop.train_loader = [{"x": torch.full((4, 1), float("nan"))}]
    with pytest.raises(TrainingDivergedError, match="epoch 1, iteration 1, global step 1"):
        loop.fit()
