"""A tiny DistilPose run: the loss goes down, the checkpoint records (but does not contain) the teacher."""

from __future__ import annotations

import copy
import hashlib

import pytest
import torch

from slimpose.config import apply_overrides, config_from_dict, config_to_dict, get_config
from slimpose.config.recipes.distilpose import RECIPES
from slimpose.distillation.build import build_distiller
from slimpose.engine.builders import build_model
from slimpose.heads import build_head
from slimpose.distillation.teacher import check_teacher_compatibility
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
    cfg = get_config("distilpose_tiny_synthetic")
    base = [
        f"data.data_root={tmp_path / 'synth'}", "data.synthetic_train_images=6",
        "data.synthetic_val_images=3",
        "data.batch_size=4", "data.val_batch_size=8", "data.workers=0", "data.val_workers=0",
        "schedule.epochs=1", "schedule.warmup_iters=1", "eval_interval=1", "tensorboard=false",
        "model.overrides.depth=1", f"work_dir={tmp_path / 'student'}", "device=cpu", "num_threads=1",
    ]
    cfg = apply_overrides(cfg, base + list(sets))
    cfg.distill.teacher_checkpoint = str(_teacher_ckpt(tmp_path / "teacher.pth"))
    return cfg


def test_recipes_resolve_and_round_trip():
    for name in RECIPES:
        cfg = get_config(name)
        assert cfg.distill is not None and config_from_dict(config_to_dict(cfg)) == cfg
    cfg = get_config("distilpose_s_coco")
    cfg = apply_overrides(cfg, ["distill.cs=0", "distill.kt=0.1"])
    assert cfg.distill.cs == 0 and cfg.distill.kt == 0.1
    assert cfg.distill.score_source == "constant"
    # without L_CS the student scores keypoints 1.0; an explicit override wins
    model = build_model(cfg)
    assert build_head(cfg, model).score_source == "constant" and cfg.model.overrides == {}
    assert build_head(apply_overrides(cfg, ["distill.cs=0.1"]), model).score_source == "confidence"
    explicit = apply_overrides(cfg, ["model.overrides.score_source=constant", "distill.cs=0.1"])
    assert build_head(explicit, model).score_source == "constant"
    with pytest.raises(SlimposeInputError, match="distill.bogus"):
        apply_overrides(cfg, ["distill.bogus=1"])
    with pytest.raises(SlimposeInputError, match="not a recipe"):
        get_config("no_such_recipe")


def test_tiny_distillation_lowers_the_loss(tmp_path):
    cfg = _tiny_cfg(tmp_path)
    task = build_distiller(cfg)
    record = task.record
    assert record["teacher"]["model"] == "tokenpose_s_v1" and record["score_source"] == "confidence"
    assert record["method"] == "distilpose" and record["loss_weights"]["kt"] == 5e-4
    assert record["teacher"]["extra"]["num_visual_tokens"] == 96
    torch.manual_seed(0)
    batch = {
        "image": torch.randn(4, 3, 96, 64),
        "target": torch.rand(4, 17, 2),  # normalised coordinates (the student head's RegressionLabel)
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
    assert set(logs) == {"loss_reg", "loss_kt", "loss_vt", "loss_sh", "loss_cs"}
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
    assert ckpt["distill"]["score_source"] == "constant" and ckpt["config"]["distill"]["cs"] == 0
    import slimpose

    model = slimpose.load(tmp_path / "run" / "last.pth")
    assert model.head.score_source == "constant" and model.input_size == (64, 96)
    _, scores = model.predict_crops(torch.randn(2, 3, 96, 64), flip=True)
    assert (scores == 1.0).all()


def test_mismatched_teacher_fails_clearly(tmp_path):
    student = create_model("distilpose_s", input_size=(64, 96), dim=64, depth=1, num_heads=4,
                           patch_size=(2, 2),
                           stem_blocks=1)
    wrong_dim = create_model("tokenpose_s_v1", **{**TEACHER, "dim": 32})
    with pytest.raises(SlimposeInputError, match="token dim"):
        check_teacher_compatibility(student, wrong_dim)
    wrong_grid = create_model("tokenpose_s_v1", **{**TEACHER, "patch_size": [4, 4]})
    with pytest.raises(SlimposeInputError, match="token grid"):
        check_teacher_compatibility(student, wrong_grid)
    # a CNN student has no tokens: L_KT / L_VT cannot apply, L_SH / L_CS can
    cnn = create_model("deeppose_res50", input_size=(64, 96))
    with pytest.raises(SlimposeInputError, match="has no tokens"):
        check_teacher_compatibility(cnn, create_model("tokenpose_s_v1", **TEACHER))
    assert "token_dim" not in check_teacher_compatibility(cnn, create_model("tokenpose_s_v1", **TEACHER), False)
    # through the CLI builder: a teacher checkpoint of another dim
    cfg = _tiny_cfg(tmp_path)
    _teacher_ckpt(tmp_path / "teacher.pth", dim=32)
    torch.manual_seed(0)
    t32 = create_model("tokenpose_s_v1", **{**TEACHER, "dim": 32})
    save_checkpoint({"model": t32.state_dict(), "model_name": "tokenpose_s_v1",
                     "config": {"model": {"overrides": {**TEACHER, "dim": 32}}}}, tmp_path / "teacher.pth")
    with pytest.raises(SlimposeInputError, match="share the token dim"):
        build_distiller(cfg)
    # a regression teacher is refused: DistilPose distils heatmaps
    save_checkpoint({"model": create_model("distilpose_s", input_size=(64, 96), dim=64, depth=1, num_heads=4,
                                           patch_size=(2, 2), stem_blocks=1).state_dict(),
                     "model_name": "distilpose_s",
                     "config": {"model": {"overrides": {"dim": 64, "depth": 1, "num_heads": 4, "patch_size": [2, 2],
                                                        "stem_blocks": 1}}}}, tmp_path / "teacher.pth")
    with pytest.raises(SlimposeInputError, match="must be a heatmap model"):
        build_distiller(cfg)


def test_confidence_scores_without_cs_are_refused(tmp_path):
    with pytest.raises(SlimposeInputError, match="untrained"):
        _tiny_cfg(tmp_path, "distill.cs=0", "model.overrides.score_source=confidence")
    # a heatmap student cannot be a DistilPose student
    with pytest.raises(SlimposeInputError, match="not a DistilPose regression student"):
        build_distiller(apply_overrides(_tiny_cfg(tmp_path), ["model.name=tokenpose_s_v1",
                                                              "model.overrides={\"depth\": 1, \"patch_size\": [2, 2]}"]))
    # nor can an RLE student: its sigmas are in normalised units, not the heatmap pixels L_SH renders
    with pytest.raises(SlimposeInputError, match="not a DistilPose regression student"):
        build_distiller(apply_overrides(_tiny_cfg(tmp_path), ["model.name=sdpose_reg",
                                                              "model.overrides.num_cycles=1"]))
