import math

import pytest
import torch

from slimpose.losses.rle import RealNVP, RLELoss


def _identity_flow(loss: RLELoss) -> None:
    for nets in (loss.flow.s, loss.flow.t):
        for net in nets:
            nn_last = net[4]
            torch.nn.init.zeros_(nn_last.weight)
            torch.nn.init.zeros_(nn_last.bias)


def test_flow_at_identity_is_standard_normal():
    flow = RealNVP()
    loss = RLELoss()
    loss.flow = flow
    _identity_flow(loss)
    x = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    expected = torch.tensor([-math.log(2 * math.pi), -0.5 * 5.0 - math.log(2 * math.pi)])
    assert torch.allclose(flow.log_prob(x), expected, atol=1e-6)


def test_rle_value_hand_computed():
    loss_fn = RLELoss(residual=True, q_distribution="laplace", size_average=True)
    _identity_flow(loss_fn)
    pred = torch.tensor([[[0.5, 0.4], [0.2, 0.2]]])
    target = torch.tensor([[[0.45, 0.5], [0.0, 0.0]]])
    sigma = torch.tensor([[[0.1, 0.2], [0.3, 0.05]]])
    weight = torch.tensor([[1.0, 0.0]])  # second keypoint ignored
    # keypoint 0: e = (0.5, -0.5); log phi = -0.5*(0.25+0.25) - log(2 pi)
    log_phi = -0.25 - math.log(2 * math.pi)
    expected = 0.0
    for s, e in ((0.1, 0.5), (0.2, -0.5)):
        expected += math.log(s) - log_phi + math.log(2 * s) + abs(e)
    value = loss_fn(pred, sigma, target, weight)
    assert value.item() == pytest.approx(expected, rel=1e-5)
    # size_average divides by the batch size
    batch2 = loss_fn(pred.repeat(2, 1, 1), sigma.repeat(2, 1, 1), target.repeat(2, 1, 1), weight.repeat(2, 1))
    assert batch2.item() == pytest.approx(expected, rel=1e-5)
    # without the residual term only the flow term remains
    no_res = RLELoss(residual=False)
    no_res.flow = loss_fn.flow
    flow_only = sum(math.log(s) - log_phi for s in (0.1, 0.2))
    assert no_res(pred, sigma, target, weight).item() == pytest.approx(flow_only, rel=1e-5)
    gauss = RLELoss(q_distribution="gaussian")
    gauss.flow = loss_fn.flow
    exp_g = sum(math.log(s) - log_phi + math.log(s * math.sqrt(2 * math.pi)) + 0.5 * e * e
                for s, e in ((0.1, 0.5), (0.2, -0.5)))
    assert gauss(pred, sigma, target, weight).item() == pytest.approx(exp_g, rel=1e-5)


def test_rle_gradients():
    torch.manual_seed(0)
    loss_fn = RLELoss()
    pred = torch.rand(2, 3, 2, requires_grad=True)
    raw_sigma = torch.zeros(2, 3, 2, requires_grad=True)
    target = torch.rand(2, 3, 2)
    loss = loss_fn(pred, raw_sigma.sigmoid(), target, torch.ones(2, 3))
    loss.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    # the gradient pushes the prediction towards the target
    assert (pred.grad * (pred - target)).sum() > 0
    assert raw_sigma.grad.abs().sum() > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in loss_fn.flow.parameters())
    # a perfect prediction gains by shrinking sigma: d loss / d sigma > 0 at error 0
    sig = torch.full((1, 1, 2), 0.5, requires_grad=True)
    p0 = torch.full((1, 1, 2), 0.3)
    loss_fn(p0, sig, p0.clone()).backward()
    assert (sig.grad > 0).all()


def test_rle_rejects_bad_shapes():
    loss_fn = RLELoss()
    with pytest.raises(ValueError):
        loss_fn(torch.rand(2, 3, 2), torch.rand(2, 3, 1), torch.rand(2, 3, 2))
    with pytest.raises(ValueError):
        loss_fn(torch.rand(2, 3, 2), torch.rand(2, 3, 2), torch.rand(2, 3, 2), torch.ones(2, 3, 1))
    with pytest.raises(ValueError):
        RLELoss(q_distribution="cauchy")
