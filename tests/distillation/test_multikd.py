"""Multi-KD (vanilla KD on SimCC bins, cross-stage feature KD with adaptive weights, MFT) and DWPose stage 2."""

from __future__ import annotations

import pytest
import torch

from slimpose.config import TrainConfig, apply_overrides
from slimpose.config.schema import DataConfig, ModelConfig, MultiKDConfig, SimCCParams, validate_config
from slimpose.distillation.build import build_distiller
from slimpose.distillation.distiller import StudentOutputs, TeacherOutputs, capture_outputs
from slimpose.distillation.multikd import CrossStageFeatureTerm, probe_stage_shapes, simcc_kd_loss
from slimpose.engine.checkpoint import save_checkpoint
from slimpose.models import create_model
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)

SIZE = (64, 64)
STUDENT = {"depth": 18, "num_deconv_layers": 0, "input_size": list(SIZE)}
TEACHER = {"input_size": list(SIZE)}


def test_kd_is_zero_for_equal_logits_and_matches_a_hand_computation():
    torch.manual_seed(0)
    s = (torch.randn(2, 3, 5), torch.randn(2, 3, 4))
    assert simcc_kd_loss(s, tuple(t.clone() for t in s)).abs().item() < 1e-6
    t = (torch.randn(2, 3, 5), torch.randn(2, 3, 4))
    expected = 0.0
    for sx, tx in zip(s, t):
        for n in range(2):
            for k in range(3):
                p = torch.softmax(tx[n, k].double() * 2.0, 0)
                q = torch.softmax(sx[n, k].double() * 2.0, 0)
                expected += float((p * (p.log() - q.log())).sum())
    assert simcc_kd_loss(s, t, beta=2.0) == pytest.approx(expected / 2, rel=1e-5)  # the seed: 1 / N
    assert simcc_kd_loss(s, t, beta=2.0, normalizer="batch_keypoints") == pytest.approx(expected / 6, rel=1e-5)
    with pytest.raises(SlimposeInputError, match="bins"):
        simcc_kd_loss(s, (t[0][..., :4], t[1]))


def _shapes():
    student = [(8, 16, 16), (16, 8, 8), (32, 4, 4)]
    teacher = [(6, 16, 16), (12, 8, 8), (24, 4, 4)]
    return student, teacher


def _term(**kw):
    s, t = _shapes()
    return CrossStageFeatureTerm(1.0, ["s0", "s1", "s2"], ["t0", "t1", "t2"], s, t, **kw)


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    s_shapes, t_shapes = _shapes()
    s = [torch.randn(2, *sh, generator=g) for sh in s_shapes]
    t = [torch.randn(2, *sh, generator=g) for sh in t_shapes]
    return s, t


def test_pairs_and_align_shapes_for_every_stage_pair():
    term = _term()
    assert term.pairs == [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]  # (l, m >= l)
    assert _term(cross_stage=False).pairs == [(0, 0), (1, 1), (2, 2)]
    s, t = _features()
    for l, m in term.pairs:
        assert term.aligned(l, m, s).shape == t[l].shape
    assert set(term.align) == {f"t{l}_s{m}" for l, m in term.pairs}
    assert not term.fuse  # no fusion without MFT


def test_gamma_sums_to_one_and_is_uniform_without_wa():
    s, t = _features()
    wa = _term(adaptive=True)
    gamma = wa.pair_weights(s, t)
    assert gamma.shape == (2, 6)
    assert torch.allclose(gamma.sum(1), torch.ones(2))
    assert (gamma > 0).all() and not torch.allclose(gamma, torch.full_like(gamma, 1 / 6))
    flat = _term().pair_weights(s, t)
    assert torch.allclose(flat, torch.full((2, 6), 1 / 6))


def test_loss_is_the_gamma_weighted_mean_squared_distance():
    s, t = _features()
    term = _term(adaptive=True)
    loss = term(StudentOutputs(None, stages=dict(zip(["s0", "s1", "s2"], s))),
                TeacherOutputs(None, stages=dict(zip(["t0", "t1", "t2"], t))), {})
    gamma = term.pair_weights(s, t)
    expected = sum(gamma[:, i] * ((term.aligned(l, m, s) - t[l]) ** 2).flatten(1).mean(1)
                   for i, (l, m) in enumerate(term.pairs)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_mft_fuses_deeper_student_stages_into_shallower_pairs():
    s, t = _features()
    term = _term(mft=True)
    assert set(term.fuse) == {"t0_s0", "t0_s1", "t1_s1"}  # every aligned pair but the deepest student stage
    side = term.student_side(s)
    assert torch.allclose(side[(0, 2)], term.aligned(0, 2, s))  # the deepest stage has nothing to fuse
    changed = [x.clone() for x in s]
    changed[2] = changed[2] + 1.0
    side2 = term.student_side(changed)
    assert not torch.allclose(side[(0, 0)], side2[(0, 0)])  # stage 2 reaches the (0, 0) pair through fusion
    plain = _term()
    assert torch.allclose(plain.student_side(s)[(0, 0)], plain.student_side(changed)[(0, 0)])
    # without cross-stage pairs MFT still fuses the deeper stages into the same-stage pair
    same = _term(cross_stage=False, mft=True)
    assert same.pairs == [(0, 0), (1, 1), (2, 2)] and "t0_s2" in same.align


def test_capture_outputs_takes_the_first_branch_and_names_unknown_modules():
    model = create_model("hrnet_w32_simcc", input_size=SIZE, num_keypoints=4)
    assert model.feature_stages == ("backbone.stage2", "backbone.stage3", "backbone.stage4")
    shapes = probe_stage_shapes(model, model.feature_stages, SIZE)
    assert shapes == [(32, 16, 16)] * 3
    with pytest.raises(SlimposeInputError, match="backbone.nope"):
        with capture_outputs(model, ["backbone.nope"]):
            pass
    assert not any(m._forward_hooks for m in model.modules())


def _teacher_ckpt(path):
    torch.manual_seed(1)
    teacher = create_model("hrnet_w32_simcc", num_keypoints=17, **TEACHER)
    save_checkpoint({"model": teacher.state_dict(), "model_name": "hrnet_w32_simcc",
                     "config": {"model": {"name": "hrnet_w32_simcc", "overrides": dict(TEACHER)}}}, path)
    return str(path)


def _cfg(tmp_path, **section):
    cfg = TrainConfig(data=DataConfig(input_size=SIZE), model=ModelConfig("simcc_res50", dict(STUDENT)),
                      simcc=SimCCParams(), multikd=MultiKDConfig(**section))
    cfg.multikd.teacher_checkpoint = _teacher_ckpt(tmp_path / "teacher.pth")
    cfg.multikd.student_stages = ["backbone.layer1", "backbone.layer2"]
    return validate_config(cfg)


def _batch(task):
    torch.manual_seed(0)
    codec = task.head.codec
    targets = [codec.encode(torch.rand(17, 2).numpy() * 60, torch.ones(17).numpy()) for _ in range(2)]
    return {"image": torch.randn(2, 3, SIZE[1], SIZE[0]),
            "target": torch.stack([torch.from_numpy(t["target"]) for t in targets]),
            "target_weight": torch.stack([torch.from_numpy(t["target_weight"]) for t in targets])}


def test_multikd_distiller_trains_the_student_and_never_the_teacher(tmp_path):
    task = build_distiller(_cfg(tmp_path))
    names = [t.name for t in task.terms]
    assert names == ["fkd", "vkd"] and task.record["method"] == "multikd"
    fkd = task.terms[0]
    assert fkd.teacher_taps == ("backbone.stage2", "backbone.stage3", "backbone.stage4")
    assert fkd.pairs == [(0, 0), (0, 1), (1, 1)]  # 3 teacher stages, 2 student stages
    teacher_before = {k: v.clone() for k, v in task.teacher.state_dict().items()}
    task.train()
    loss, logs = task(_batch(task))
    assert set(logs) >= {"loss_kl", "loss_fkd", "loss_vkd"} and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is None for p in task.teacher.parameters())
    assert task.model.backbone.conv1.weight.grad is not None
    assert fkd.align["t0_s0"].weight.grad is not None and fkd.embed_teacher[0].proj.weight.grad is not None
    assert all(torch.equal(v, teacher_before[k]) for k, v in task.teacher.state_dict().items())
    assert not any(k.startswith("teacher.") for k in task.state_dict())  # the teacher is never saved


def test_table3_switches_and_the_task_only_row(tmp_path):
    off = build_distiller(_cfg(tmp_path, vkd=0.0, fkd=0.0))
    assert off.teacher is None and not off.terms  # "no KD": the task loss alone, no teacher loaded
    fkd_only = build_distiller(_cfg(tmp_path, vkd=0.0, mft=False, wa=False))
    assert [t.name for t in fkd_only.terms] == ["fkd"] and not fkd_only.terms[0].adaptive
    with pytest.raises(SlimposeInputError, match="multikd.distance"):
        apply_overrides(_cfg(tmp_path), ["multikd.distance=l1"])


def test_dwpose_stage2_freezes_the_backbone_and_reinitialises_the_head(tmp_path):
    cfg = _cfg(tmp_path, fkd=0.0, freeze_backbone=True, reinit_head=True)
    task = build_distiller(cfg)
    task.train()
    assert not task.model.backbone.training and task.model.head.training
    bn = task.model.backbone.bn1
    stats = bn.running_mean.clone()
    loss, _ = task(_batch(task))
    loss.backward()
    assert torch.equal(bn.running_mean, stats)  # frozen BN statistics
    assert all(p.grad is None for p in task.model.backbone.parameters())
    assert task.model.head.mlp_head_x.weight.grad is not None


def test_teacher_with_other_bins_is_refused(tmp_path):
    cfg = _cfg(tmp_path)
    cfg.data.input_size = (64, 96)
    cfg.model.overrides["input_size"] = [64, 96]
    with pytest.raises(SlimposeInputError, match="bins"):
        build_distiller(cfg)


def test_distill_cli_takes_the_multikd_teacher(tmp_path, capsys):
    import json

    from slimpose.cli.main import main

    ckpt = tmp_path / "t.pth"
    ckpt.write_bytes(b"")
    assert main(["distill", "litehrnet_18_simcc_mpii_multikd", "--teacher", str(ckpt), "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["multikd"]["teacher_checkpoint"] == str(ckpt.resolve())
    assert cfg["model"]["name"] == "litehrnet_18_simcc" and cfg["data"]["dataset"] == "mpii"
    assert cfg["multikd"]["cross_stage"] and cfg["multikd"]["mft"] and cfg["multikd"]["wa"]
    assert main(["distill", "litehrnet_18_simcc_mpii", "--teacher", str(ckpt)]) == 2
    assert "no distill or multikd section" in capsys.readouterr().err


def test_dwpose_stage1_recipe_distils_the_last_features_and_fades(tmp_path):
    from slimpose.config import get_config

    cfg = apply_overrides(get_config("litehrnet_18_simcc_mpii_dwpose_s1"), ["data.input_size=64,64"])
    mk = cfg.multikd
    assert (mk.fkd, mk.distance, mk.vkd, mk.vkd_normalizer, mk.schedule) == \
        (7e-5, "sum", 0.1, "batch_keypoints", "linear_decay")
    torch.manual_seed(1)
    teacher = create_model("hrnet_w32_simcc", num_keypoints=16, input_size=SIZE)
    path = tmp_path / "t.pth"
    save_checkpoint({"model": teacher.state_dict(), "model_name": "hrnet_w32_simcc",
                     "config": {"model": {"name": "hrnet_w32_simcc", "overrides": dict(TEACHER)}}}, path)
    mk.teacher_checkpoint = str(path)
    task = build_distiller(cfg)
    fkd, vkd = task.terms
    assert fkd.pairs == [(0, 0)] and fkd.student_taps == ("backbone",) and fkd.teacher_taps == ("backbone",)
    assert tuple(fkd.align["t0_s0"].weight.shape) == (32, 40, 1, 1)  # FeaLoss: 1x1 align conv, student -> teacher
    task.set_epoch(3, 4)
    assert task.factor == pytest.approx(0.25)  # 1 - epoch / epochs
