"""A tiny DistilPose run: the loss goes down, the checkpoint records (but does not contain) the teacher."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch

from slimpose.cli.distill import build_distill_task
from slimpose.configs.distill_recipes import (
    RECIPES,
    apply_distill_overrides,
    distill_config_from_dict,
    distill_config_to_dict,
    load_distill_config,
)
from slimpose.distillation.distilpose import check_teacher_compatibility
from slimpose.engine.checkpoint import load_checkpoint, save_checkpoint
from slimpose.models import create_model
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)

TEACHER = {"dim": 64, "depth": 1, "num_heads": 4, "patch_size": [2, 2], "input_size": [64, 96]}


def _teacher_ckpt(path, **extra):
    torch.manual_seed(0)
    teacher = create_model("tokenpose_s_v1", **TEACHER)
    save_checkpoint(
        {"model": teacher.state_dict(), "model_name": "tokenpose_s_v1",
         "config": {"model": {"name": "tokenpose_s_v1", "overrides": dict(TEACHER, **extra)}}},
        path,
    )
    return path


def _tiny_cfg(tmp_path, *sets):
    cfg = load_distill_config("distilpose_tiny_synthetic")
    base = [
        f"data.data_root={tmp_path / 'synth'}", "data.synthetic_train_images=6",
        "data.synthetic_val_images=3",
        "data.batch_size=4", "data.val_batch_size=8", "data.workers=0", "data.val_workers=0",
        "schedule.epochs=1", "schedule.warmup_iters=1", "eval_interval=1", "tensorboard=false",
        "model.overrides.depth=1", f"work_dir={tmp_path / 'student'}", "device=cpu", "num_threads=1",
    ]
    cfg = apply_distill_overrides(cfg, base + list(sets))
    cfg.distill.teacher_checkpoint = str(_teacher_ckpt(tmp_path / "teacher.pth"))
    return cfg


def test_recipes_resolve_and_round_trip():
    for name in RECIPES:
        cfg = load_distill_config(name)
        assert distill_config_from_dict(distill_config_to_dict(cfg)) == cfg
    cfg = load_distill_config("distilpose_s_coco")
    cfg = apply_distill_overrides(cfg, ["distill.cs=0", "distill.kt=0.1"])
    assert cfg.distill.cs == 0 and cfg.distill.kt == 0.1
    assert cfg.distill.loss_config().score_source == "constant"
    with pytest.raises(SlimposeInputError, match="distill.bogus"):
        apply_distill_overrides(cfg, ["distill.bogus=1"])
    with pytest.raises(SlimposeInputError, match="unknown distill recipe"):
        load_distill_config("no_such_recipe")


def test_tiny_distillation_lowers_the_loss(tmp_path):
    cfg = _tiny_cfg(tmp_path)
    task, record = build_distill_task(cfg, 17)
    assert record["teacher"]["model"] == "tokenpose_s_v1" and record["score_source"] == "confidence"
    torch.manual_seed(0)
    batch = {
        "image": torch.randn(4, 3, 96, 64),
        "keypoints": torch.rand(4, 17, 2) * torch.tensor([64.0, 96.0]),
        "target_weight": (torch.rand(4, 17) > 0.2).float(),
    }
    opt = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=1e-3)
    task.train()
    teacher_before = copy.deepcopy(task.teacher.state_dict())
    losses = []
    for _ in range(25):
        loss, logs = task(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert set(logs) == {"loss", "loss_reg", "loss_kt", "loss_vt", "loss_sh", "loss_cs"}
    assert losses[-1] < 0.7 * losses[0], losses
    assert not task.teacher.training
    for k, v in task.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k


def test_cli_run_checkpoint_records_teacher_without_weights(tmp_path):
    from slimpose.cli.main import main

    cfg = _tiny_cfg(tmp_path)
    teacher_path = cfg.distill.teacher_checkpoint
    sets = [
        f"data.data_root={tmp_path / 'synth'}", "data.synthetic_train_images=6",
        "data.synthetic_val_images=3",
        "data.batch_size=4", "data.val_batch_size=8", "data.workers=0", "data.val_workers=0",
        "schedule.epochs=1", "schedule.warmup_iters=1", "tensorboard=false", "model.overrides.depth=1",
        "device=cpu", "num_threads=1", "distill.cs=0",
    ]
    argv = ["distill", "distilpose_tiny_synthetic", "--teacher", teacher_path,
            "--work-dir", str(tmp_path / "run")]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    ckpt = load_checkpoint(tmp_path / "run" / "last.pth")
    teacher_keys = set(torch.load(teacher_path, weights_only=True)["model"])
    assert not any(k.startswith("teacher") for k in ckpt["model"])
    assert not any(k.startswith("teacher") for k in ckpt["task"])
    assert len(ckpt["model"]) < len(teacher_keys) + 10 and "head.mlp.1.weight" in ckpt["model"]
    rec = ckpt["distill"]["teacher"]
    assert rec["path"] == teacher_path and rec["model"] == "tokenpose_s_v1"
    assert rec["sha256"] == hashlib.sha256(open(teacher_path, "rb").read()).hexdigest()
    # trained without L_CS: constant keypoint scores, recorded in the checkpoint and its config
    assert ckpt["score_source"] == "constant"
    assert ckpt["config"]["model"]["overrides"]["score_source"] == "constant"
    student = create_model(
        "distilpose_s", input_size=tuple(ckpt["config"]["data"]["input_size"]),
        **ckpt["config"]["model"]["overrides"],
    )
    student.load_state_dict(ckpt["model"])
    from slimpose.distillation.distilpose import regression_eval_task

    _, scores = regression_eval_task(student.eval()).predict(torch.randn(2, 3, 96, 64), [(1, 2)])
    assert (scores == 1.0).all()


def test_mismatched_teacher_fails_clearly(tmp_path):
    student = create_model("distilpose_s", input_size=(64, 96), dim=64, depth=1, num_heads=4,
                           patch_size=(2, 2),
                           stem_blocks=1)
    wrong_dim = create_model("tokenpose_s_v1", **{**TEACHER, "dim": 32})
    with pytest.raises(SlimposeInputError, match="token dim"):
        check_teacher_compatibility(student, wrong_dim, (64, 96))
    wrong_grid = create_model("tokenpose_s_v1", **{**TEACHER, "patch_size": [4, 4]})
    with pytest.raises(SlimposeInputError, match="token grid"):
        check_teacher_compatibility(student, wrong_grid, (64, 96))
    # through the CLI builder: a teacher checkpoint of another dim
    cfg = _tiny_cfg(tmp_path)
    _teacher_ckpt(tmp_path / "teacher.pth", dim=32)
    torch.manual_seed(0)
    t32 = create_model("tokenpose_s_v1", **{**TEACHER, "dim": 32})
    save_checkpoint({"model": t32.state_dict(), "model_name": "tokenpose_s_v1",
                     "config": {"model": {"overrides": {**TEACHER, "dim": 32}}}}, tmp_path / "teacher.pth")
    with pytest.raises(SlimposeInputError, match="share the token dim"):
        build_distill_task(cfg, 17)


def test_confidence_scores_without_cs_are_refused(tmp_path):
    cfg = _tiny_cfg(tmp_path, "distill.cs=0", "model.overrides.score_source=confidence")
    with pytest.raises(SlimposeInputError, match="untrained"):
        build_distill_task(cfg, 17)
