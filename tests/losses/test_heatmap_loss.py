"""Heatmap MSE (HRNet JointsMSELoss) and its OHKM variant."""

from __future__ import annotations

import pytest
import torch

from slimpose.losses.heatmap import KeypointMSELoss, KeypointOHKMMSELoss


def _reference_joints_mse(pred, gt, w):
    """HRNet lib/core/loss.py JointsMSELoss, written out joint by joint."""
    b, k = pred.shape[:2]
    p = pred.reshape(b, k, -1)
    g = gt.reshape(b, k, -1)
    loss = 0.0
    for j in range(k):
        wj = w[:, j : j + 1]
        loss = loss + 0.5 * torch.nn.functional.mse_loss(p[:, j] * wj, g[:, j] * wj)
    return loss / k


def test_mse_matches_hrnet_joint_loop():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(3, 5, 8, 6, generator=g)
    gt = torch.rand(3, 5, 8, 6, generator=g)
    w = (torch.rand(3, 5, generator=g) > 0.3).float()
    got = KeypointMSELoss()(pred, gt, w)
    torch.testing.assert_close(got, _reference_joints_mse(pred, gt, w))
    # without target weights all joints count
    torch.testing.assert_close(KeypointMSELoss(use_target_weight=False)(pred, gt, w),
                               _reference_joints_mse(pred, gt, torch.ones_like(w)))


def test_mse_ignores_zero_weight_joints_and_has_gradient():
    pred = torch.zeros(1, 2, 4, 4, requires_grad=True)
    gt = torch.zeros(1, 2, 4, 4)
    gt[0, 1] = 5.0  # error only in a joint with weight 0
    w = torch.tensor([[1.0, 0.0]])
    loss = KeypointMSELoss()(pred, gt, w)
    assert loss.item() == 0.0
    gt[0, 0, 0, 0] = 1.0
    loss = KeypointMSELoss(loss_weight=2.0)(pred, gt, w)
    assert loss.item() == pytest.approx(2.0 * 0.5 * (1.0 / 16) / 2)
    loss.backward()
    assert pred.grad[0, 0, 0, 0] < 0 and pred.grad[0, 1].abs().sum() == 0


def test_ohkm_keeps_topk_hardest_joints():
    pred = torch.zeros(2, 10, 2, 2)
    gt = torch.zeros(2, 10, 2, 2)
    for j in range(10):
        gt[:, j] = float(j)  # per-joint loss 0.5 * j^2
    w = torch.ones(2, 10)
    loss = KeypointOHKMMSELoss(topk=3)(pred, gt, w)
    expected = 0.5 * (9**2 + 8**2 + 7**2) / 3
    assert loss.item() == pytest.approx(expected)
    # topk >= K equals the plain MSE loss
    full = KeypointOHKMMSELoss(topk=10)(pred, gt, w)
    torch.testing.assert_close(full, KeypointMSELoss()(pred, gt, w))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="output shape"):
        KeypointMSELoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 3), torch.ones(1, 2))
    with pytest.raises(ValueError, match="topk"):
        KeypointOHKMMSELoss(topk=0)
