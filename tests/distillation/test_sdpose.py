import numpy as np
import pytest
import torch

from slimpose.codecs.msra_heatmap import MSRAHeatmap
from slimpose.configs.sdpose_recipes import (
    RECIPES,
    SDPoseParams,
    apply_sdpose_overrides,
    sdpose_config_from_dict,
)
from slimpose.distillation.sdpose import (
    SDPoseLoss,
    SDPoseLossConfig,
    SDPoseRegTask,
    SDPoseTask,
    build_sdpose_task,
    cycle_token_distillation,
)
from slimpose.losses.heatmap import KeypointMSELoss
from slimpose.models.sdpose import sdpose_reg, sdpose_s_v1
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


def test_sdpose_loss_hand_made():
    crit = KeypointMSELoss()
    target = torch.zeros(1, 2, 4, 4)
    weight = torch.ones(1, 2)
    hm = [torch.full((1, 2, 4, 4), v) for v in (1.0, 2.0)]
    kt = [torch.zeros(1, 2, 3), torch.ones(1, 2, 3)]
    vt = [torch.zeros(1, 4, 3), torch.full((1, 4, 3), 2.0)]
    loss_fn = SDPoseLoss(crit, SDPoseLossConfig(kt=0.5, vt=0.25))
    loss, logs = loss_fn(list(zip(hm, kt, vt)), target, weight)
    task = 0.5 * 1.0 + 0.5 * 4.0  # JointsMSE: 0.5 * mean squared error, summed over cycles
    assert logs["loss_task"].item() == pytest.approx(task)
    assert logs["loss_kt"].item() == pytest.approx(1.0) and logs["loss_vt"].item() == pytest.approx(4.0)
    assert loss.item() == pytest.approx(task + 0.5 * 1.0 + 0.25 * 4.0)
    # consecutive cycles that agree: only the task loss remains
    same = [(hm[0], kt[0], vt[0]), (hm[0], kt[0].clone(), vt[0].clone())]
    loss2, logs2 = loss_fn(same, target, weight)
    assert logs2["loss_kt"].item() == 0 and logs2["loss_vt"].item() == 0
    assert loss2.item() == pytest.approx(2 * 0.5)


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
        kt = cycle_token_distillation([c[1] for c in cycles], detach)
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


def test_sdpose_task_trains_and_predicts():
    codec, batch = _batch()
    torch.manual_seed(0)
    task = SDPoseTask(sdpose_s_v1(num_cycles=2, **SMALL), codec)
    loss, logs = task(batch)
    assert torch.isfinite(loss) and set(logs) == {"loss_task", "loss_kt", "loss_vt"}
    loss.backward()
    task.eval()
    kp, sc = task.predict(batch["image"], flip_pairs=[(1, 2), (3, 4)])
    assert kp.shape == (4, 17, 2) and sc.shape == (4, 17)
    with pytest.raises(SlimposeInputError):
        SDPoseTask(torch.nn.Linear(2, 2), codec)


def test_sdpose_reg_task_rle():
    _, batch = _batch()
    torch.manual_seed(0)
    task = SDPoseRegTask(sdpose_reg(**SMALL))
    opt = torch.optim.Adam(task.parameters(), lr=1e-3)
    first = None
    for _ in range(5):
        loss, logs = task(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    assert loss.item() < first
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.criterion.parameters())
    task.eval()
    kp, sc = task.predict(batch["image"], flip_pairs=[(1, 2)])
    assert kp.shape == (4, 17, 2) and np.all((sc > 0) & (sc < 1))


def test_configs_and_task_builder(tmp_path):
    for name, factory in RECIPES.items():
        cfg = factory()
        assert cfg.optim.lr == 1e-3 and tuple(cfg.schedule.milestones) == (200, 260)
        assert cfg.schedule.epochs == 300
        assert cfg.sdpose.kt == 5e-6 and cfg.sdpose.vt == 5e-6 and not cfg.sdpose.detach_teacher
    assert RECIPES["sdpose_s_v1_coco"]().data.batch_size == 64
    cfg = sdpose_config_from_dict({
        "data": {"dataset": "synthetic", "input_size": [48, 64], "heatmap_size": [12, 16]},
        "model": {"name": "sdpose_t", "overrides": {"dim": 32, "depth": 1, "num_heads": 4, "stem_blocks": 1}},
        "sdpose": {"detach_teacher": True, "kt": 1e-5},
    })
    assert cfg.sdpose.detach_teacher and cfg.sdpose.kt == 1e-5
    task = build_sdpose_task(cfg, 17)
    assert isinstance(task, SDPoseTask) and task.model.num_cycles == 3
    assert task.sd_loss.cfg.detach_teacher
    cfg2 = apply_sdpose_overrides(cfg, ["model.name=sdpose_reg", "sdpose.vt=0"])
    assert isinstance(build_sdpose_task(cfg2, 17), SDPoseRegTask)
    with pytest.raises(SlimposeInputError):
        sdpose_config_from_dict({"sdpose": {"alpha": 1}}, where="x.json")
    with pytest.raises(SlimposeInputError):
        apply_sdpose_overrides(cfg, ["sdpose.kt=-1"])
    assert SDPoseParams().loss_config().kt == 5e-6
