"""DistilPose losses on hand-made tensors whose values are known, and the distiller that sums them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from slimpose.config import DistilPoseConfig
from slimpose.distillation.distilpose import (
    confidence_loss,
    distilpose_terms,
    render_simulated_heatmaps,
    simulated_heatmap_loss,
    token_distillation_loss,
)
from slimpose.distillation.distiller import Distiller
from slimpose.heads import HeatmapHead, RegressionHead
from slimpose.losses.regression import SmoothL1Loss, smooth_l1_loss
from slimpose.models.base import PoseNet, TokenFeatures
from slimpose.utils.io import SlimposeInputError


def test_smooth_l1_hand_computed_and_target_weight():
    pred = torch.tensor([[[0.5, 2.0], [9.0, 9.0]]])
    target = torch.zeros(1, 2, 2)
    weight = torch.tensor([[1.0, 0.0]])
    # kp0: 0.5*0.5^2 = 0.125 and |2|-0.5 = 1.5; kp1 masked -> 0; mean over 4 values.
    assert smooth_l1_loss(pred, target, weight).item() == pytest.approx((0.125 + 1.5) / 4)
    assert SmoothL1Loss(use_target_weight=False)(pred, target, weight).item() == pytest.approx(
        (0.125 + 1.5 + 8.5 + 8.5) / 4
    )
    with pytest.raises(ValueError):
        smooth_l1_loss(pred, target, torch.ones(2))


def test_simulated_heatmap_peak_position_and_shape():
    coords = torch.tensor([[[1 / 3, 2 / 4]]])  # mu = (x*W, y*H) = (1, 2) on a 3x4 (w x h) grid
    sigmas = torch.tensor([[[1.0, 2.0]]])
    hm, valid = render_simulated_heatmaps(coords, sigmas, (3, 4))
    assert hm.shape == (1, 1, 4, 3)
    assert valid.tolist() == [[1.0]]
    assert hm[0, 0, 2, 1].item() == pytest.approx(1.0)
    assert hm[0, 0, 2, 2].item() == pytest.approx(math.exp(-0.5))  # dx = 1, sx = 1
    assert hm[0, 0, 0, 1].item() == pytest.approx(math.exp(-0.5))  # dy = 2, sy = 2
    assert hm[0, 0, 0, 0].item() == pytest.approx(math.exp(-1.0))


def test_sh_loss_zero_when_teacher_equals_simulation_and_hand_computed_case():
    torch.manual_seed(0)
    coords = torch.rand(2, 3, 2)
    sigmas = torch.rand(2, 3, 2) + 1.0
    teacher, _ = render_simulated_heatmaps(coords, sigmas, (6, 8))
    assert simulated_heatmap_loss(coords, sigmas, teacher).item() == pytest.approx(0.0, abs=1e-12)
    # A near-delta Gaussian on an integer grid point vs an all-zero teacher: 0.5 * 1 / (H*W).
    c = torch.tensor([[[1 / 3, 2 / 4]]])
    s = torch.full((1, 1, 2), 1e-3)
    loss = simulated_heatmap_loss(c, s, torch.zeros(1, 1, 4, 3))
    assert loss.item() == pytest.approx(0.5 / 12, rel=1e-6)
    # target weight 0 switches the keypoint off
    assert simulated_heatmap_loss(c, s, torch.zeros(1, 1, 4, 3), torch.zeros(1, 1)).item() == 0.0


def test_sh_skips_keypoints_whose_three_sigma_box_is_off_grid():
    coords = torch.tensor([[[0.5, 0.5], [-2.0, 0.5]]])  # second centre at x = -2W
    sigmas = torch.ones(1, 2, 2)
    _, valid = render_simulated_heatmaps(coords, sigmas, (8, 8))
    assert valid.tolist() == [[1.0, 0.0]]
    teacher = torch.ones(1, 2, 8, 8)
    loss = simulated_heatmap_loss(coords, sigmas, teacher)
    sim, _ = render_simulated_heatmaps(coords[:, :1], sigmas[:, :1], (8, 8))
    expected = 0.5 * ((sim - 1) ** 2).sum() / (2 * 64)  # only keypoint 0 counts, mean over both
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def test_sh_is_differentiable_wrt_coords_and_sigmas():
    coords = torch.tensor([[[0.4, 0.55]]], dtype=torch.float64, requires_grad=True)
    sigmas = torch.tensor([[[1.5, 2.5]]], dtype=torch.float64, requires_grad=True)
    teacher = torch.rand(1, 1, 8, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda c, s: simulated_heatmap_loss(c, s, teacher), (coords, sigmas))
    simulated_heatmap_loss(coords, sigmas, teacher).backward()
    assert coords.grad.abs().sum() > 0 and sigmas.grad.abs().sum() > 0


def test_confidence_loss_values():
    teacher = torch.zeros(1, 2, 4, 3)
    teacher[0, 0, 1, 2] = 0.7  # x index round(0.9*2)=2, y index round(0.3*3)=1
    teacher[0, 1, 3, 0] = 0.4
    coords = torch.tensor([[[0.9, 0.3], [0.0, 1.0]]])
    assert confidence_loss(coords, torch.tensor([[0.7, 0.4]]), teacher).item() == pytest.approx(0.0, abs=1e-7)
    assert confidence_loss(coords, torch.tensor([[0.2, 0.4]]), teacher).item() == pytest.approx(0.25)
    # a prediction outside [0, 1] contributes nothing
    outside = torch.tensor([[[1.2, 0.3], [0.0, 1.0]]])
    loss_out = confidence_loss(outside, torch.tensor([[5.0, 0.4]]), teacher)
    assert loss_out.item() == pytest.approx(0.0, abs=1e-7)
    scores = torch.tensor([[0.2, 0.4]], requires_grad=True)
    confidence_loss(coords, scores, teacher).backward()
    assert scores.grad[0, 0].item() == pytest.approx(-0.5)


def test_token_losses():
    a = torch.randn(2, 5, 8)
    assert token_distillation_loss(a, a.clone(), "kt").item() == 0.0
    ones, zeros = torch.ones(2, 5, 8), torch.zeros(2, 5, 8)
    assert token_distillation_loss(ones, zeros, "vt").item() == pytest.approx(1.0)
    with pytest.raises(SlimposeInputError, match="token dim"):
        token_distillation_loss(torch.ones(2, 5, 8), torch.zeros(2, 5, 16), "vt")


class _TinyTokenModel(PoseNet):
    """A stand-in token model: (B,3,H,W) -> tokens (B,K,D), (B,N,D) -> output (regression or heatmaps)."""

    def __init__(self, k=3, d=4, heatmap=False):
        super().__init__()
        self.k, self.d, self.heatmap = k, d, heatmap
        self.num_keypoints, self.input_size = k, (24, 32)
        self.head_class = HeatmapHead if heatmap else RegressionHead
        self.conv = nn.Conv2d(3, d, 4, 4)
        self.kpt = nn.Parameter(torch.randn(1, k, d))
        self.head = nn.Linear(d, 48 if heatmap else 5)
        self.drop = nn.Dropout(0.5)

    def forward_features(self, x):
        vis = self.drop(self.conv(x).flatten(2).transpose(1, 2))
        kpt = self.kpt.expand(x.shape[0], -1, -1) + vis.mean(1, keepdim=True)
        return TokenFeatures(kpt, vis, kpt)

    def forward_head(self, features):
        y = self.head(features.head_input)
        if self.heatmap:
            return y.view(y.shape[0], self.k, 8, 6).sigmoid()
        return torch.cat([y[..., :2].sigmoid(), y[..., 2:3], nn.functional.softplus(y[..., 3:5])], -1)


def test_total_loss_is_weighted_sum_and_terms_switch_off():
    torch.manual_seed(1)
    student, teacher = _TinyTokenModel().eval(), _TinyTokenModel(heatmap=True)
    head = RegressionHead((24, 32))
    batch = {"image": torch.randn(2, 3, 32, 24), "target": torch.rand(2, 3, 2), "target_weight": torch.ones(2, 3)}
    section = DistilPoseConfig(reg=1.0, kt=0.1, vt=0.2, sh=1.0, cs=0.5)
    task = Distiller(student, head, distilpose_terms(section), teacher, task_weight=section.reg)
    task.eval()  # no dropout: the forward below sees the same tokens
    total, logs = task(batch)
    with torch.no_grad():
        fs, ft = student.forward_features(batch["image"]), teacher.forward_features(batch["image"])
        out, hm = student.forward_head(fs), teacher.forward_head(ft)
    coords, scores, sigmas = out[..., :2], out[..., 2], out[..., 3:5]
    tc, tw = batch["target"], batch["target_weight"]
    parts = {
        "loss_reg": smooth_l1_loss(coords, tc, tw),
        "loss_kt": 0.1 * token_distillation_loss(fs.keypoint_tokens, ft.keypoint_tokens, "kt"),
        "loss_vt": 0.2 * token_distillation_loss(fs.visual_tokens, ft.visual_tokens, "vt"),
        "loss_sh": simulated_heatmap_loss(coords, sigmas, hm, tw),
        "loss_cs": 0.5 * confidence_loss(coords, scores, hm),
    }
    assert set(logs) == set(parts)
    for k, v in parts.items():
        assert logs[k].item() == pytest.approx(v.item(), rel=1e-6), k
    assert total.item() == pytest.approx(sum(v.item() for v in parts.values()), rel=1e-6)
    # all distillation weights 0: only L_reg, no teacher needed, constant scores
    off = DistilPoseConfig(kt=0, vt=0, sh=0, cs=0)
    assert not off.uses_teacher and off.score_source == "constant" and distilpose_terms(off) == []
    total_off, logs_off = Distiller(student, head, [], None)(batch)
    assert set(logs_off) == {"loss_reg"} and total_off.item() == pytest.approx(parts["loss_reg"].item())
    assert DistilPoseConfig().score_source == "confidence"
    # the schedule scales the distillation terms, not the task loss (DWPose: 1 - epoch / epochs)
    fading = Distiller(student, head, distilpose_terms(section), teacher, schedule="linear_decay").eval()
    fading.set_epoch(3, 4)
    _, logs_fade = fading(batch)
    assert logs_fade["loss_reg"].item() == pytest.approx(parts["loss_reg"].item(), rel=1e-6)
    assert logs_fade["loss_sh"].item() == pytest.approx(0.25 * parts["loss_sh"].item(), rel=1e-6)


def test_no_gradient_reaches_the_teacher_and_teacher_stays_in_eval():
    torch.manual_seed(0)
    student, teacher = _TinyTokenModel(), _TinyTokenModel(heatmap=True)
    section = DistilPoseConfig(kt=1.0, vt=1.0, sh=1.0, cs=1.0)
    dist = Distiller(student, RegressionHead((24, 32)), distilpose_terms(section), teacher)
    dist.train()
    assert student.training and not teacher.training
    assert not any(k.startswith("teacher") for k in dist.state_dict())
    assert all(p.requires_grad is False for p in teacher.parameters())
    assert len(list(dist.parameters())) == len(list(student.parameters()))
    batch = {"image": torch.randn(2, 3, 32, 24), "target": torch.rand(2, 3, 2),
             "target_weight": torch.ones(2, 3)}
    loss, logs = dist(batch)
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in student.parameters())
    assert logs["loss_kt"] > 0 and logs["loss_vt"] > 0
    dist.to(torch.float64)
    assert next(teacher.parameters()).dtype == torch.float64
    assert dist.checkpoint_extras() == {"distill": {}}


def test_distiller_needs_a_teacher_for_distillation_terms():
    with pytest.raises(SlimposeInputError, match="need a teacher"):
        Distiller(_TinyTokenModel(), RegressionHead((24, 32)), distilpose_terms(DistilPoseConfig()), None)
    Distiller(_TinyTokenModel(), RegressionHead((24, 32)), [], None)
    with pytest.raises(SlimposeInputError, match="schedule"):
        Distiller(_TinyTokenModel(), RegressionHead((24, 32)), [], None, schedule="cosine")
