"""SDPose self-distillation as distiller terms: hand-made values, detach semantics, the trained task."""

import numpy as np
import pytest
import torch

from slimpose.codecs.msra_heatmap import MSRAHeatmap
from slimpose.config import SDPoseConfig, apply_overrides, config_from_dict
from slimpose.config.recipes.sdpose import RECIPES
from slimpose.distillation.build import build_distiller
from slimpose.distillation.distiller import Distiller, StudentOutputs
from slimpose.distillation.sdpose import CycleTaskTerm, CycleTokenTerm, cycle_token_distillation, sdpose_terms
from slimpose.heads import HeatmapHead, RLEHead
from slimpose.losses.heatmap import KeypointMSELoss
from slimpose.models.sdpose import sdpose_reg, sdpose_s_v1
from slimpose.models.tokenpose import tokenpose_s_v1
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)
SMALL = dict(input_size=(48, 64), dim=32, depth=2, num_heads=4, stem_blocks=1)


def test_token_terms_zero_when_cycles_agree():
    t = torch.randn(2, 5, 8)
    assert cycle_token_distillation([t, t.clone(), t.clone()]).item() == 0.0
    assert cycle_token_distillation([t]).item() == 0.0
    a, b, c = torch.zeros(1, 2, 2), torch.ones(1, 2, 2), 3 * torch.ones(1, 2, 2)
    # MSE(a, b) + MSE(b, c) = 1 + 4
    assert cycle_token_distillation([a, b, c]).item() == pytest.approx(5.0)


def test_sdpose_terms_hand_made():
    head = HeatmapHead(MSRAHeatmap((16, 16), (4, 4)), KeypointMSELoss())
    batch = {"target": torch.zeros(1, 2, 4, 4), "target_weight": torch.ones(1, 2)}
    hm = [torch.full((1, 2, 4, 4), v) for v in (1.0, 2.0)]
    kt = [torch.zeros(1, 2, 3), torch.ones(1, 2, 3)]
    vt = [torch.zeros(1, 4, 3), torch.full((1, 4, 3), 2.0)]
    student = StudentOutputs(hm[0], None, list(zip(hm, kt, vt)), read_cycle=0)
    terms = sdpose_terms(SDPoseConfig(kt=0.5, vt=0.25), head)
    assert [t.name for t in terms] == ["cycles", "kt", "vt"]
    # a fading schedule scales the token terms, never the task loss of the other cycles
    assert [t.scheduled for t in terms] == [False, True, True]
    values = {t.name: t.weight * t(student, None, batch).item() for t in terms}
    # JointsMSE = 0.5 * mean squared error: the read cycle's 0.5 * 1 is the head's own loss, the other
    # cycle's 0.5 * 4 is the ``cycles`` term
    assert head.loss(hm[0], batch)[0].item() == pytest.approx(0.5)
    assert values == pytest.approx({"cycles": 2.0, "kt": 0.5 * 1.0, "vt": 0.25 * 4.0})
    # reading the second cycle moves the first cycle's loss into the ``cycles`` term
    student.read_cycle = 1
    assert terms[0](student, None, batch).item() == pytest.approx(0.5)
    # consecutive cycles that agree: the token terms vanish
    same = StudentOutputs(hm[0], None, [(hm[0], kt[0], vt[0]), (hm[0], kt[0].clone(), vt[0].clone())])
    assert terms[1](same, None, batch).item() == 0 and terms[2](same, None, batch).item() == 0
    assert sdpose_terms(SDPoseConfig(kt=0, vt=0), head)[0].name == "cycles"


@pytest.mark.parametrize("detach", [False, True])
def test_detach_blocks_gradient_into_teacher(detach):
    student = torch.zeros(1, 2, 3, requires_grad=True)
    teacher = torch.ones(1, 2, 3, requires_grad=True)
    cycle_token_distillation([student, teacher], detach_teacher=detach).backward()
    assert student.grad.abs().sum() > 0
    if detach:
        assert teacher.grad is None
    else:
        assert teacher.grad.abs().sum() > 0


def test_detach_changes_model_gradients():
    x = torch.randn(2, 3, 64, 48)
    grads = {}
    for detach in (False, True):
        torch.manual_seed(0)
        model = sdpose_s_v1(num_cycles=2, **SMALL).train()
        cycles = model.forward_cycles(x)
        kt = CycleTokenTerm(1.0, "keypoint", detach)(StudentOutputs(cycles[0][0], None, cycles), None, {})
        kt.backward()
        grads[detach] = model.transformer.patch_embed.weight.grad.clone()
        # the detached term still trains the student cycle (and the shared weights)
        assert grads[detach].abs().sum() > 0
    assert not torch.allclose(grads[False], grads[True])


def _batch(b=4):
    g = torch.Generator().manual_seed(1)
    codec = MSRAHeatmap((48, 64), (12, 16), sigma=1.0)
    kps = torch.rand(b, 17, 2, generator=g) * torch.tensor([40.0, 56.0]) + 4
    targets = [codec.encode(k.numpy(), np.ones(17, np.float32)) for k in kps]
    return codec, {
        "image": torch.randn(b, 3, 64, 48, generator=g),
        "target": torch.as_tensor(np.stack([t["target"] for t in targets])).float(),
        "target_weight": torch.as_tensor(np.stack([t["target_weight"] for t in targets])).float(),
        "keypoints": kps,
    }


def _sdpose_task(model, head, **section):
    cfg = SDPoseConfig(**section)
    return Distiller(model, head, sdpose_terms(cfg, head), task_weight=cfg.task)


def test_sdpose_distiller_loss_training_and_single_pass_prediction():
    codec, batch = _batch()
    torch.manual_seed(0)
    model = sdpose_s_v1(num_cycles=2, **SMALL)
    head = HeatmapHead(codec)
    task = _sdpose_task(model, head, kt=1e-3, vt=1e-3)
    task.train()
    loss, logs = task(batch)
    assert set(logs) == {"loss_heatmap", "loss_cycles", "loss_kt", "loss_vt"}
    # Eq. 3 by hand from the same forward (no dropout: the same cycles)
    cycles = model.forward_cycles(batch["image"])
    mse = KeypointMSELoss()
    expected = (sum(mse(c[0], batch["target"], batch["target_weight"]) for c in cycles)
                + 1e-3 * cycle_token_distillation([c[1] for c in cycles])
                + 1e-3 * cycle_token_distillation([c[2] for c in cycles]))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    assert loss.item() == pytest.approx(sum(v.item() for v in logs.values()), rel=1e-6)
    opt = torch.optim.Adam(task.parameters(), lr=1e-3)
    first = loss.item()
    for _ in range(5):
        loss, _ = task(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first
    # prediction: the single-pass (first) cycle decoded by the head, flip test included
    task.eval()
    pairs = [(1, 2), (3, 4)]
    kp, sc = task.predict(batch["image"], flip_pairs=pairs)
    with torch.no_grad():
        c0 = model.forward_cycles(batch["image"])[0][0]
        c0_flip = model.forward_cycles(batch["image"].flip(-1))[0][0]
    ref_kp, ref_sc = head.decode(head.merge_flip(c0, head.flip_back(c0_flip, pairs)))
    np.testing.assert_allclose(kp, ref_kp, atol=1e-5)
    np.testing.assert_allclose(sc, ref_sc, atol=1e-6)
    with pytest.raises(SlimposeInputError, match="multi-cycled"):
        _sdpose_task(tokenpose_s_v1(**SMALL), head)


def test_sdpose_reg_rle_trains_the_flow_with_the_model():
    _, batch = _batch()
    reg_batch = {"image": batch["image"], "target": batch["keypoints"] / torch.tensor([48.0, 64.0]),
                 "target_weight": batch["target_weight"]}
    torch.manual_seed(0)
    head = RLEHead((48, 64))
    task = _sdpose_task(sdpose_reg(**SMALL), head)
    opt = torch.optim.Adam(task.parameters(), lr=1e-3)
    first = None
    for _ in range(5):
        loss, logs = task(reg_batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first and set(logs) == {"loss_rle", "loss_cycles", "loss_kt", "loss_vt"}
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.rle.parameters())
    assert any(k.startswith("head.rle.") for k in task.state_dict())  # checkpointed with the task
    # a training checkpoint of the old SDPose-Reg task (flow under criterion.rle.*) still resumes
    old = {("criterion." + k[len("head."):] if k.startswith("head.rle.") else k): v
           for k, v in task.state_dict().items()}
    old.update({"sd_loss." + k: v for k, v in old.items() if k.startswith("criterion.rle.")})
    again = _sdpose_task(sdpose_reg(**SMALL), RLEHead((48, 64)))
    again.load_state_dict(old)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in task.state_dict().items())
    assert not any("rle" in k for k in task.model.state_dict())  # never part of the shipped model
    task.eval()
    kp, sc = task.predict(batch["image"], flip_pairs=[(1, 2)])
    assert kp.shape == (4, 17, 2) and np.all((sc > 0) & (sc < 1))  # scores are 1 - mean(sigma)


def test_configs_and_distiller_builder():
    for name, factory in RECIPES.items():
        cfg = factory()
        assert cfg.optim.lr == 1e-3 and tuple(cfg.schedule.milestones) == (200, 260)
        assert cfg.schedule.epochs == 300
        assert cfg.sdpose.kt == 5e-6 and cfg.sdpose.vt == 5e-6 and not cfg.sdpose.detach_teacher
    assert RECIPES["sdpose_s_v1_coco"]().data.batch_size == 64
    cfg = config_from_dict({
        "data": {"dataset": "synthetic", "input_size": [48, 64], "heatmap_size": [12, 16]},
        "model": {"name": "sdpose_t", "overrides": {"dim": 32, "depth": 1, "num_heads": 4, "stem_blocks": 1}},
        "sdpose": {"detach_teacher": True, "kt": 1e-5},
    })
    assert cfg.sdpose.detach_teacher and cfg.sdpose.kt == 1e-5
    task = build_distiller(cfg)
    assert isinstance(task.head, HeatmapHead) and task.model.num_cycles == 3 and task.teacher is None
    assert [t.name for t in task.terms] == ["cycles", "kt", "vt"] and task.terms[1].detach_teacher
    assert task.record == {"method": "sdpose", "teacher": None,
                           "loss_weights": {"task": 1.0, "kt": 1e-5, "vt": 5e-6, "detach_teacher": True,
                                            "schedule": "constant"}}
    cfg2 = apply_overrides(cfg, ["model.name=sdpose_reg", "sdpose.vt=0"])
    reg = build_distiller(cfg2)
    assert isinstance(reg.head, RLEHead) and [t.name for t in reg.terms] == ["cycles", "kt"]
    assert isinstance(reg.terms[0], CycleTaskTerm)
    with pytest.raises(SlimposeInputError):
        config_from_dict({"sdpose": {"alpha": 1}}, where="x.json")
    with pytest.raises(SlimposeInputError):
        apply_overrides(cfg, ["sdpose.kt=-1"])
