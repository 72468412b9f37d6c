"""The lifters' training loss (weighted MPJPE + 0.5 TC + 2.0 velocity) and flips, on hand-computed values."""

from __future__ import annotations

import pytest
import torch

from slimpose.lifting.losses import (
    MIXSTE_JOINT_WEIGHTS, LiftingLoss, flip_keypoints, flip_test, mean_velocity, temporal_consistency,
    weighted_mpjpe,
)


def test_weighted_mpjpe_by_hand():
    pred = torch.zeros(1, 1, 2, 3)
    target = torch.zeros(1, 1, 2, 3)
    target[0, 0, 0] = torch.tensor([3.0, 4.0, 0.0])  # error 5 at joint 0, 0 at joint 1
    assert float(weighted_mpjpe(pred, target, [2.0, 1.0])) == pytest.approx((2.0 * 5.0 + 0.0) / 2)
    with pytest.raises(ValueError, match="joint weights"):
        weighted_mpjpe(pred, target, [1.0])


def test_temporal_consistency_and_velocity_by_hand():
    # one joint moving 1 along x per frame, the other still: TC = mean(w * d^2) over (T-1) x J x 3 entries
    pred = torch.zeros(1, 3, 2, 3)
    pred[0, :, 0, 0] = torch.tensor([0.0, 1.0, 2.0])
    w = torch.tensor([4.0, 1.0])
    assert float(temporal_consistency(pred, w)) == pytest.approx(4.0 * 1.0 * 2 / (2 * 2 * 3))
    # the same motion in the target: no velocity error, whatever the offset
    target = pred + 7.0
    assert float(mean_velocity(pred, target)) == 0.0
    still = torch.zeros_like(pred)
    assert float(mean_velocity(pred, still)) == pytest.approx(1.0 * 2 / (2 * 2))


def test_lifting_loss_combines_the_terms_with_the_official_weights():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 5, 17, 3, requires_grad=True), torch.randn(2, 5, 17, 3)
    loss, logs = LiftingLoss()(pred, target)
    w = torch.tensor(MIXSTE_JOINT_WEIGHTS)
    ref = weighted_mpjpe(pred, target, w) + 0.5 * temporal_consistency(pred, w) + 2.0 * mean_velocity(pred, target)
    assert torch.allclose(loss, ref) and set(logs) == {"loss_wmpjpe", "loss_tc", "loss_velocity"}
    loss.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()
    one, _ = LiftingLoss()(pred[:, :1].detach(), target[:, :1])  # a single frame: no temporal terms
    assert torch.allclose(one, weighted_mpjpe(pred[:, :1].detach(), target[:, :1], w))


def test_flip_is_an_involution_and_the_flip_test_of_an_equivariant_model_is_exact():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 17, 2)
    f = flip_keypoints(x)
    assert torch.equal(flip_keypoints(f), x)
    assert torch.equal(f[..., 4, 0], -x[..., 1, 0]) and torch.equal(f[..., 1, 1], x[..., 4, 1])  # L hip <-> R hip
    assert torch.equal(f[..., 0, :], x[..., 0, :] * torch.tensor([-1.0, 1.0]))  # the root stays, mirrored

    def lift(k):  # a flip-equivariant "model": z = 0, x and y copied
        return torch.cat((k, torch.zeros_like(k[..., :1])), dim=-1)

    assert torch.allclose(flip_test(lift, x), lift(x))
