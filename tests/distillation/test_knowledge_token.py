"""ViTPose knowledge-token distillation (Sec. 3.4, Table 8): the token, the wrapper, both stages, output KD."""

from __future__ import annotations

import json

import pytest
import torch

from slimpose.config import apply_overrides, config_from_dict, config_to_dict, get_config
from slimpose.config.recipes.knowledge_token import RECIPES
from slimpose.config.schema import DataConfig, KnowledgeTokenConfig, ModelConfig, TrainConfig
from slimpose.distillation.build import build_distiller
from slimpose.distillation.knowledge_token import (
    TOKEN_KEY,
    HeatmapKDTerm,
    KnowledgeToken,
    KnowledgeTokenModel,
    export_token,
    heatmap_kd_loss,
    make_projection,
)
from slimpose.distillation.distiller import StudentOutputs, TeacherOutputs
from slimpose.engine.builders import build_optimizer
from slimpose.engine.checkpoint import save_checkpoint
from slimpose.models import create_model
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)

SIZE = (48, 64)  # (w, h): 3 x 4 patches of 16 (padding 2), 12 x 16 heatmaps with the classic decoder
TEACHER = {"dim": 128, "depth": 2, "num_heads": 4, "drop_path_rate": 0.0}  # classic decoder: BN in the head
STUDENT = {"dim": 96, "depth": 2, "num_heads": 4, "drop_path_rate": 0.0}


def _vit(overrides, seed=0):
    torch.manual_seed(seed)
    return create_model("vitpose_s", num_keypoints=17, input_size=SIZE, **overrides)


def _teacher_ckpt(path, seed=0):
    if path.is_file():  # one teacher file per test: its sha256 is what a token records
        return str(path)
    teacher = _vit(TEACHER, seed)
    with torch.no_grad():  # BN statistics that are not the defaults, so that an update would show
        for m in teacher.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    save_checkpoint({"model": teacher.state_dict(), "model_name": "vitpose_s",
                     "config": {"model": {"name": "vitpose_s", "overrides": {**TEACHER, "input_size": list(SIZE)}}}},
                    path)
    return str(path)


def _cfg(tmp_path, stage, model=TEACHER, **section):
    section.setdefault("teacher_model", "vitpose_s")
    if "teacher_checkpoint" not in section:
        section["teacher_checkpoint"] = _teacher_ckpt(tmp_path / "teacher.pth")
    return TrainConfig(data=DataConfig(input_size=SIZE, heatmap_size=(12, 16), data_root=str(tmp_path / "synth")),
                       model=ModelConfig(name="vitpose_s", overrides=dict(model)), device="cpu",
                       knowledge_token=KnowledgeTokenConfig(stage=stage, **section))


def _batch(seed=0, n=2):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 3, SIZE[1], SIZE[0], generator=g),
            "target": torch.rand(n, 17, 16, 12, generator=g) * 0.5, "target_weight": torch.ones(n, 17, 1)}


def _step(task, batch):
    opt = build_optimizer(TrainConfig(), task)
    task.train()
    loss, logs = task(batch)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return logs


def _stage1_token(tmp_path, cfg=None):
    """A stage-1 'checkpoint' as the training loop writes it (model state dict + the distiller's record)."""
    task = build_distiller(cfg or _cfg(tmp_path, "token"))
    _step(task, _batch())
    path = tmp_path / "stage1.pth"
    save_checkpoint({"model": task.model.state_dict(), **task.checkpoint_extras()}, path)
    return str(path), task


# ----------------------------------------------------------------------------------------------- the wrapper


def test_the_wrapper_is_the_backbone_with_the_token_concatenated_before_the_patches():
    model = _vit(STUDENT).eval()
    token = KnowledgeToken(96)
    wrapped = KnowledgeTokenModel(model, token).eval()
    x = _batch()["image"]
    bb = model.backbone
    with torch.no_grad():
        patches = bb.embed(x)
        seq = torch.cat((token.token.expand(2, -1, -1), patches), dim=1)
        for block in bb.blocks:
            seq = block(seq)
        manual = bb.to_map(seq[:, 1:])
        # no position embedding on the token: the blocks are permutation equivariant, so after the patches
        # gives the same features as before them
        seq = torch.cat((patches, token.token.expand(2, -1, -1)), dim=1)
        for block in bb.blocks:
            seq = block(seq)
        after = bb.to_map(seq[:, :-1])
        features = wrapped.forward_features(x)
        out = wrapped(x)
        expected = model.keypoint_head(manual)
        plain = model.forward_features(x)
    assert torch.allclose(features, manual, atol=1e-5)
    assert torch.allclose(features, after, atol=1e-4)
    assert torch.allclose(out, expected, rtol=1e-4, atol=1e-9)
    assert (features - plain).abs().max() > 1e-2  # the token takes part in attention
    # the student's keys are the plain model's, plus the token
    assert set(wrapped.state_dict()) == set(model.state_dict()) | {TOKEN_KEY}
    assert wrapped.input_size == model.input_size and wrapped.heatmap_size == model.heatmap_size


def test_projection_modes_and_width_mismatch():
    assert make_projection("auto", 96, 96) is None
    assert make_projection("none", 96, 96) is None
    proj = make_projection("auto", 128, 96)
    assert tuple(proj.weight.shape) == (96, 128) and proj.bias.abs().sum() == 0
    assert isinstance(make_projection("linear", 96, 96), torch.nn.Linear)
    with pytest.raises(SlimposeInputError, match=r"tok\.pth.*128-d.*96-d.*'none'"):
        make_projection("none", 128, 96, "tok.pth")
    with pytest.raises(SlimposeInputError, match="needs a projection"):
        KnowledgeTokenModel(_vit(STUDENT), KnowledgeToken(128))
    wrapped = KnowledgeTokenModel(_vit(STUDENT), KnowledgeToken(128), make_projection("auto", 128, 96))
    assert wrapped(_batch()["image"]).shape == (2, 17, 16, 12)
    with pytest.raises(SlimposeInputError, match="not a ViTPose-family"):
        tokenpose = create_model("tokenpose_s_v1", dim=64, depth=1, num_heads=4, patch_size=[2, 2], input_size=(64, 96))
        KnowledgeTokenModel(tokenpose, KnowledgeToken(64))


# ----------------------------------------------------------------------------------------------- stage 1


def test_stage1_trains_only_the_token_of_the_frozen_teacher(tmp_path):
    task = build_distiller(_cfg(tmp_path, "token"))
    teacher = task.model.inner
    assert [n for n, p in task.named_parameters() if p.requires_grad] == [f"model.{TOKEN_KEY}"]
    assert list(task.model.state_dict()) == [TOKEN_KEY]  # the stage-1 model's weights: the token alone
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    token0 = task.model.knowledge_token.token.detach().clone()
    logs = _step(task, _batch())
    assert not teacher.training and all(not m.training for m in teacher.modules())  # BN in eval mode too
    after = teacher.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # bit-identical, BN statistics included
    assert not torch.equal(token0, task.model.knowledge_token.token)
    assert "loss_heatmap" in logs and task.record["method"] == "knowledge_token"
    assert task.record["token"]["dim"] == 128 and len(task.record["token"]["teacher"]["sha256"]) == 64


def test_stage1_needs_model_name_of_the_teacher(tmp_path):
    cfg = _cfg(tmp_path, "token")
    cfg.model.name = "vitpose_b"
    with pytest.raises(SlimposeInputError, match="model.name names the teacher"):
        build_distiller(cfg)


# ----------------------------------------------------------------------------------------------- token files


def test_token_file_round_trip_and_stage1_checkpoint_as_token_file(tmp_path):
    token = KnowledgeToken(32, teacher={"path": "t.pth", "sha256": "ab" * 32, "model": "vitpose_s"})
    path = token.save(tmp_path / "tok.pth")
    back = KnowledgeToken.load(path)
    assert torch.equal(back.token, token.token) and back.dim == 32 and back.teacher == token.teacher
    ckpt, task = _stage1_token(tmp_path)
    loaded = KnowledgeToken.load(ckpt)
    assert torch.equal(loaded.token, task.model.knowledge_token.token.detach())
    assert loaded.teacher == task.record["token"]["teacher"]
    small = KnowledgeToken.load(export_token(ckpt, tmp_path / "exported.pth"))
    assert torch.equal(small.token, loaded.token) and small.teacher == loaded.teacher


def test_token_file_errors_name_the_file(tmp_path):
    with pytest.raises(SlimposeInputError, match="missing.pth: knowledge token file not found"):
        KnowledgeToken.load(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(SlimposeInputError, match="junk.pth: cannot be read"):
        KnowledgeToken.load(junk)
    other = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    with pytest.raises(SlimposeInputError, match="other.pth: neither a knowledge token file"):
        KnowledgeToken.load(other)
    bad = tmp_path / "bad.pth"
    torch.save({"format": "slimpose-knowledge-token-v1", "token": torch.zeros(3, 4)}, bad)
    with pytest.raises(SlimposeInputError, match=r"bad.pth: .*\(1, 1, C\)"):
        KnowledgeToken.load(bad)


# ----------------------------------------------------------------------------------------------- stage 2


def test_stage2_freezes_the_token_and_trains_student_projection(tmp_path):
    ckpt, _ = _stage1_token(tmp_path)
    cfg = _cfg(tmp_path, "student", STUDENT, token_path=ckpt, output_kd=1.0,
               teacher_checkpoint=str(tmp_path / "teacher.pth"))
    task = build_distiller(cfg)
    model = task.model
    assert isinstance(model, KnowledgeTokenModel) and model.token_proj is not None  # 128 -> 96
    assert not model.knowledge_token.token.requires_grad
    assert torch.equal(model.knowledge_token.token, KnowledgeToken.load(ckpt).token)
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    state = {k: v.clone() for k, v in model.state_dict().items()}
    logs = _step(task, _batch(1))
    after = model.state_dict()
    assert torch.equal(after[TOKEN_KEY], state[TOKEN_KEY])
    assert not torch.equal(after["token_proj.weight"], state["token_proj.weight"])
    assert not torch.equal(after["backbone.blocks.0.attn.qkv.weight"], state["backbone.blocks.0.attn.qkv.weight"])
    assert all(torch.equal(teacher_before[k], v) for k, v in task.teacher.state_dict().items())
    assert logs["loss_output_kd"] > 0 and task.record["token"]["projection"]
    assert type(task.teacher).__name__ == "ViTPose"  # the paper's output distillation: the plain teacher
    with_token = build_distiller(apply_overrides(cfg, ["knowledge_token.teacher_with_token=true"]))
    assert isinstance(with_token.teacher, KnowledgeTokenModel)
    assert torch.equal(with_token.teacher.knowledge_token.token, model.knowledge_token.token)


def test_stage2_equal_widths_and_the_rows_of_table8(tmp_path):
    ckpt, _ = _stage1_token(tmp_path)
    same = _cfg(tmp_path, "student", TEACHER, token_path=ckpt, teacher_checkpoint=str(tmp_path / "teacher.pth"))
    task = build_distiller(same)  # token only: no teacher run, no projection for equal widths
    assert task.model.token_proj is None and task.teacher is None and not task.terms
    linear = build_distiller(apply_overrides(same, ["knowledge_token.projection=linear"]))
    assert linear.model.token_proj is not None
    kd_only = build_distiller(apply_overrides(same, ["knowledge_token.use_token=false", "knowledge_token.output_kd=1"]))
    assert type(kd_only.model).__name__ == "ViTPose" and [t.name for t in kd_only.terms] == ["output_kd"]
    narrow = _cfg(tmp_path, "student", STUDENT, token_path=ckpt, projection="none",
                  teacher_checkpoint=str(tmp_path / "teacher.pth"))
    with pytest.raises(SlimposeInputError, match=r"stage1.pth: the token is 128-d but the model is 96-d"):
        build_distiller(narrow)


def test_stage2_refuses_missing_tokens_tokens_of_another_teacher_and_wrong_widths(tmp_path):
    ckpt, _ = _stage1_token(tmp_path)
    other = _teacher_ckpt(tmp_path / "other_teacher.pth", seed=1)
    missing = _cfg(tmp_path, "student", STUDENT, token_path=str(tmp_path / "nope.pth"))
    with pytest.raises(SlimposeInputError, match="nope.pth: knowledge token file not found"):
        build_distiller(missing)
    with pytest.raises(SlimposeInputError, match="token_path: stage 'student' needs the stage-1 token"):
        build_distiller(_cfg(tmp_path, "student", STUDENT))
    for kd in (0.0, 1.0):  # with and without output distillation
        cfg = _cfg(tmp_path, "student", STUDENT, token_path=ckpt, teacher_checkpoint=other, output_kd=kd)
        with pytest.raises(SlimposeInputError, match=r"stage1.pth: the knowledge token was trained on teacher"):
            build_distiller(cfg)
        build_distiller(apply_overrides(cfg, ["knowledge_token.check_teacher=false"]))
    with pytest.raises(SlimposeInputError, match=r"stage1.pth: the knowledge token is 128-d, .*token_dim is 64"):
        build_distiller(_cfg(tmp_path, "student", STUDENT, token_path=ckpt, token_dim=64))
    small = KnowledgeToken(64, teacher={}).save(tmp_path / "small.pth")  # no recorded teacher: the width tells
    cfg = _cfg(tmp_path, "student", STUDENT, token_path=str(small), output_kd=1.0,
               teacher_checkpoint=str(tmp_path / "teacher.pth"))
    with pytest.raises(SlimposeInputError, match=r"small.pth: the knowledge token is 64-d but the teacher"):
        build_distiller(cfg)


# ----------------------------------------------------------------------------------------------- output KD


def test_output_kd_term_on_a_hand_made_pair():
    s = torch.zeros(1, 2, 2, 2)
    t = torch.full((1, 2, 2, 2), 2.0)
    assert heatmap_kd_loss(s, t).item() == pytest.approx(2.0)  # 0.5 * mean(2^2)
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 3, 4, 5, generator=g, requires_grad=True), torch.randn(2, 3, 4, 5, generator=g)
    term = HeatmapKDTerm(0.5)
    value = term(StudentOutputs(s), TeacherOutputs(t), {})
    assert value.item() == pytest.approx(0.5 * ((s - t) ** 2).mean().item(), rel=1e-6)
    value.backward()
    assert s.grad is not None and term.weight == 0.5 and term.name == "output_kd"
    with pytest.raises(SlimposeInputError, match="heatmap size"):
        heatmap_kd_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 8, 8))


# ----------------------------------------------------------------------------------------------- config


def test_recipes_round_trip_and_section_validation():
    for name in RECIPES:
        cfg = get_config(name)
        assert config_from_dict(config_to_dict(cfg)) == cfg
    student = get_config("vitpose_l_to_b_kt_student").knowledge_token
    assert student.stage == "student" and student.token_dim == 1024 and student.output_kd > 0
    assert not student.teacher_with_token and student.projection == "auto"
    assert get_config("kt_token_vitpose_l_coco").knowledge_token.stage == "token"
    base = get_config("kt_synth_token")
    for sets, key in ((["knowledge_token.stage=teacher"], "knowledge_token.stage"),
                      (["knowledge_token.projection=conv"], "knowledge_token.projection"),
                      (["knowledge_token.output_kd=1"], "stage 'token' trains only the token"),
                      (["knowledge_token.stage=student", "knowledge_token.output_kd=0",
                        "knowledge_token.use_token=false"], "distil nothing"),
                      (["knowledge_token.stage=student", "knowledge_token.teacher_with_token=true"], "output_kd > 0"),
                      (["multikd.vkd=0.1"], "one distillation method per run")):
        with pytest.raises(SlimposeInputError, match=key):
            apply_overrides(base, sets)


def test_distill_cli_runs_both_stages_and_names_a_missing_token_file(tmp_path, capsys):
    from slimpose.cli.main import main

    teacher = _teacher_ckpt(tmp_path / "teacher.pth")
    tiny = [f"data.data_root={tmp_path / 'synth'}", "data.synthetic_train_images=6", "data.synthetic_val_images=2",
            "data.batch_size=4", "data.val_batch_size=4", "schedule.epochs=1", "schedule.warmup_iters=1",
            "data.input_size=48,64", "data.heatmap_size=12,16", "device=cpu", "num_threads=1", "log_interval=1"]
    model = [f"model.overrides={json.dumps({**TEACHER, 'decoder': 'classic'})}"]
    s1 = tmp_path / "s1"
    assert main(["distill", "kt_synth_token", "--teacher", teacher, "--work-dir", str(s1),
                 *sum((["--set", a] for a in tiny + model), [])]) == 0
    assert KnowledgeToken.load(s1 / "last.pth").dim == 128
    s2 = tmp_path / "s2"
    student = [f"model.overrides={json.dumps(STUDENT)}", f"knowledge_token.token_path={s1 / 'last.pth'}",
               "knowledge_token.token_dim=0"]
    assert main(["distill", "kt_synth_student", "--teacher", teacher, "--work-dir", str(s2),
                 *sum((["--set", a] for a in tiny + student), [])]) == 0
    capsys.readouterr()
    assert main(["eval", str(s2 / "config.json"), "--checkpoint", str(s2 / "last.pth"), "--json"]) == 0
    assert "AP" in json.loads(capsys.readouterr().out)
    import slimpose

    loaded = slimpose.load(s2 / "last.pth")  # the student with its token and projection (predict, export)
    assert isinstance(loaded.model, KnowledgeTokenModel) and loaded.model.token_proj is not None
    keypoints, _ = loaded.predict_crops(torch.zeros(1, 3, SIZE[1], SIZE[0]))
    assert keypoints.shape == (1, 17, 2)
    gone = [a.replace(str(s1 / "last.pth"), str(tmp_path / "gone.pth")) for a in student]
    assert main(["distill", "kt_synth_student", "--teacher", teacher, "--work-dir", str(tmp_path / "s3"),
                 *sum((["--set", a] for a in tiny + gone), [])]) == 2
    assert "gone.pth: knowledge token file not found" in capsys.readouterr().err
