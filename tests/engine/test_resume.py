"""Exact resume (bitwise-equal weights), atomic checkpoints, and the NaN guard."""

from __future__ import annotations

import pytest
import torch

TINY = [  # after conftest.SYNTH_DATA
    "data.train_subset=64",
    "data.val_subset=8",
    "data.batch_size=16",
    "data.val_batch_size=8",
    "data.val_workers=0",
    "model.name=tokenpose_s_v1",
    # dropout makes the result depend on the restored torch RNG state
    "model.overrides={\"dim\": 32, \"depth\": 2, \"num_heads\": 2, \"patch_size\": [2, 2], \"dropout\": 0.1}",
    "schedule.epochs=3",
    "schedule.warmup_iters=6",
    "schedule.milestones=2",
    "eval_interval=1",
    "flip_test=false",
    "num_threads=1",
    "tensorboard=false",
]


def _assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_reproduces_uninterrupted_run(synth_root, tiny_config, tmp_path, workers):
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.engine.trainer import build_trainer

    torch.set_num_threads(1)
    extra = [f"data.workers={workers}"]
    full = build_trainer(tiny_config(TINY, synth_root, tmp_path / "full", extra))
    full.fit()

    part = build_trainer(tiny_config(TINY, synth_root, tmp_path / "part", extra))
    part.fit(stop_after_epoch=1)  # "interrupted" after epoch 1 of 3
    assert load_checkpoint(tmp_path / "part" / "last.pth")["epoch"] == 1
    resumed = build_trainer(tiny_config(TINY, synth_root, tmp_path / "part", extra), resume=True)
    assert resumed.epoch == 1 and resumed.global_step == len(resumed.train_loader)
    resumed.fit()

    a = load_checkpoint(tmp_path / "full" / "last.pth")
    b = load_checkpoint(tmp_path / "part" / "last.pth")
    assert a["epoch"] == b["epoch"] == 3 and a["global_step"] == b["global_step"]
    _assert_same_state(a["model"], b["model"])
    assert a["scheduler"] == b["scheduler"] and a["best"] == b["best"] and a["best"]["value"] is not None
    for pa, pb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        _assert_same_state(pa, pb)
    # a run that does not restore the RNG state diverges (dropout): the test above can fail
    other = build_trainer(tiny_config(TINY, synth_root, tmp_path / "other", extra + ["seed=1"]))
    other.fit()
    c = load_checkpoint(tmp_path / "other" / "last.pth")
    assert any(not torch.equal(a["model"][k], c["model"][k]) for k in a["model"])


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    from slimpose.engine import checkpoint as ck

    path = tmp_path / "last.pth"
    ck.save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1}, path)
    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)  # a partial / complete temp file exists...
        raise OSError("disk full")  # ...but the save fails before the rename

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    kept = ck.load_checkpoint(path)
    assert kept["epoch"] == 1 and torch.equal(kept["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pth"]  # no temp file left


def test_rng_state_round_trip():
    import random

    import numpy as np

    from slimpose.engine.checkpoint import capture_rng_state, restore_rng_state

    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(synth_root, tiny_config, tmp_path):
    from slimpose.engine.builders import build_topdown_task
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.engine.loop import TrainingDivergedError
    from slimpose.engine.trainer import build_trainer

    torch.set_num_threads(1)
    cfg = tiny_config(TINY, synth_root, tmp_path / "nan", ["data.workers=0", "schedule.epochs=2"])

    class NaNAfter(torch.nn.Module):
        """Wraps a TopDownTask; the loss becomes NaN from the 6th call (epoch 2, iteration 2)."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.model, self.head, self.calls = inner, inner.model, inner.head, 0

        def forward(self, batch):
            self.calls += 1
            loss, logs = self.inner(batch)
            return (loss * float("nan") if self.calls >= 6 else loss), logs

        def predict(self, images, flip_pairs=None):
            return self.inner.predict(images, flip_pairs)

        def checkpoint_extras(self):
            return {}

    task = NaNAfter(build_topdown_task(cfg))
    trainer = build_trainer(cfg, task=task)
    assert len(trainer.train_loader) == 4
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, iteration 2, global step 6"):
        trainer.fit()
    assert load_checkpoint(tmp_path / "nan" / "last.pth")["epoch"] == 1


def test_distiller_resume_restores_the_head_and_the_schedule(synth_root, tiny_config, tmp_path):
    """SDPose-Reg self-distillation with a fading schedule: the RLE flow (a trained part of the head, not of
    the model) and every other piece of state resume exactly."""
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.training import make_trainer

    torch.set_num_threads(1)
    sets = TINY + ["data.workers=0", "model.name=sdpose_reg",
                   "model.overrides={\"dim\": 32, \"depth\": 1, \"num_heads\": 2, \"patch_size\": [2, 2], "
                   "\"stem_blocks\": 1}", "sdpose.kt=1e-3", "sdpose.schedule=linear_decay",
                   "dark=false", "score_thr=0"]
    full = make_trainer(tiny_config([], synth_root, tmp_path / "full", sets))
    assert [t.name for t in full.task.terms] == ["cycles", "kt", "vt"]
    full.fit()
    assert full.task.factor == pytest.approx(1 - 2 / 3)  # the last epoch's schedule factor
    make_trainer(tiny_config([], synth_root, tmp_path / "part", sets)).fit(stop_after_epoch=1)
    make_trainer(tiny_config([], synth_root, tmp_path / "part", sets), resume=True).fit()
    a = load_checkpoint(tmp_path / "full" / "last.pth")
    b = load_checkpoint(tmp_path / "part" / "last.pth")
    assert any(k.startswith("head.rle.") for k in a["task"])
    _assert_same_state(a["task"], b["task"])
    assert a["best"] == b["best"] and a["distill"] == b["distill"] and a["distill"]["method"] == "sdpose"
