"""StarPose: the diffusion parts (schedule, DDIM, GMM prior), HPIM's graph, the model's sampling and training,
the autoregressive lifting of a sequence, and the acceleration error."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimpose.lifting.data.clips import ClipDataset, history_window
from slimpose.lifting.data.h36m import H36M_PARENTS
from slimpose.lifting.data.sequence import Sequence3D
from slimpose.lifting.inference import lift_sequence
from slimpose.lifting.metrics import acceleration_error, evaluate_poses_3d, mpjve
from slimpose.lifting.models import create_lifter
from slimpose.lifting.models.spec import SequenceInput
from slimpose.lifting.models.starpose import (ChebGraphConv, GaussianMixturePrior, StarPose, alphas_cumprod,
                                              ddim_timesteps, integration_graph_edges, normalized_adjacency)

TINY = dict(num_frames=9, dim=16, depth=1, num_heads=2, context_dim=16, context_depth=1, context_heads=2,
            history=3, hpim_heads=2, hypotheses=2, sampling_steps=2, timesteps=10)


def _tiny(**extra) -> StarPose:
    torch.manual_seed(0)
    return create_lifter("starpose_s", **{**TINY, **extra}).eval()


def test_schedule_and_ddim_steps():
    assert ddim_timesteps(50, 5) == [(49, 39), (39, 29), (29, 19), (19, 9), (9, -1)]
    assert ddim_timesteps(10, 1) == [(9, -1)]
    with pytest.raises(ValueError):
        ddim_timesteps(10, 11)
    for kind in ("cosine", "linear"):
        a = alphas_cumprod(50, kind)
        assert a.shape == (50,) and torch.all(a[1:] < a[:-1]) and 0 < a[-1] < a[0] <= 1
    assert alphas_cumprod(50, "cosine")[-1] < 1e-3  # the last step is (almost) pure noise


def test_gmm_prior_finds_separated_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-1.0] * 6, [2.0] * 6])
    x = torch.cat([centres[0] + 0.05 * torch.randn(300, 6, generator=g),
                   centres[1] + 0.1 * torch.randn(100, 6, generator=g)]).reshape(400, 2, 3)
    prior = GaussianMixturePrior(num_joints=2, components=2)
    assert not bool(prior.fitted)
    prior.fit(x, seed=0)
    order = prior.means[:, 0].argsort()
    torch.testing.assert_close(prior.means[order], centres, atol=0.03, rtol=0)
    torch.testing.assert_close(prior.stds[order].mean(1), torch.tensor([0.05, 0.1]), atol=0.02, rtol=0)
    torch.testing.assert_close(prior.log_weights.exp()[order], torch.tensor([0.75, 0.25]), atol=0.01, rtol=0)
    comp = prior.components_of(centres + 0.01)
    assert comp.tolist() == order.argsort().tolist()  # each centre's own component


def test_integration_graph_and_chebyshev_conv():
    J, L = 17, 3
    edges = integration_graph_edges(H36M_PARENTS, L)
    assert len(edges) == L * (2 * 16 + J) + (L - 1) * 2 * J  # bones twice, 2-D <-> 3-D, temporal
    adj = normalized_adjacency(edges, L * 2 * J)
    torch.testing.assert_close(adj, adj.T)
    assert adj[0, J] > 0 and adj[0, 2 * J] > 0 and adj[0, 2 * J + J] == 0  # 2-D<->3-D and temporal, no diagonal jump
    conv = ChebGraphConv(4, 5, H36M_PARENTS, order=1)  # order 1: a per-joint linear map
    x = torch.randn(2, J, 4)
    torch.testing.assert_close(conv(x), x @ conv.weight[0] + conv.bias)


def test_ddim_with_an_exact_denoiser_returns_the_clean_poses():
    """If the denoiser predicts the clean poses exactly, every DDIM step with the GMM prior lands on them."""
    model = _tiny(stpg=False, sampling_steps=3)
    model.prior.fit(torch.randn(200, 17, 3) * 0.1)
    target = torch.randn(2, 9, 17, 3) * 0.1
    model.denoise = lambda h, k, f2d, fhis: target.repeat_interleave(model.hypotheses, 0)
    torch.testing.assert_close(model(torch.rand(2, 9, 17, 2)), target)


def test_sampling_is_deterministic_for_a_seed_and_uses_the_history():
    model = _tiny()
    x = torch.rand(2, 9, 17, 2) * 2 - 1
    h2, h3 = torch.rand(2, 3, 17, 2), torch.rand(2, 3, 17, 3) * 0.2
    a, b = model(x), model(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    g = torch.Generator().manual_seed(5)
    other = model.sample(x, generator=g)
    assert not torch.allclose(a, other)
    with_history = model(x, h2, h3)
    assert with_history.shape == (2, 9, 17, 3) and not torch.allclose(with_history, a)
    hyps = model.sample(x, generator=torch.Generator().manual_seed(0), return_hypotheses=True)
    assert hyps.shape == (2, model.hypotheses, 9, 17, 3)
    # without a history the model reads its learned null feature; has_history=False means the same
    f_none = model.encode(x)[1]
    f_off = model.encode(x, h2, h3, has_history=torch.tensor([False, True]))[1]
    torch.testing.assert_close(f_off[0], f_none[0])
    assert not torch.allclose(f_off[1], f_none[1])


def test_guidance_lowers_the_energy_of_the_samples():
    model = _tiny(stpg_weights=(0.0, 1.0, 1.0, 1.0), stpg_rho=2.0)
    x = torch.rand(2, 9, 17, 2) * 2 - 1
    guided = model(x)
    model.guidance = False
    plain = model(x)
    assert model.energy(guided).sum() < model.energy(plain).sum()


def test_training_prediction_and_regulariser_train_the_denoiser():
    from slimpose.lifting.task import LiftingTask

    model = _tiny(history_noise=0.0, null_history_prob=0.0).train()
    task = LiftingTask(model)
    g = torch.Generator().manual_seed(0)
    batch = {"keypoints_2d": torch.rand(4, 9, 17, 2, generator=g), "poses_3d": torch.rand(4, 9, 17, 3, generator=g) * 0.2,
             "history_2d": torch.rand(4, 3, 17, 2, generator=g), "history_3d": torch.rand(4, 3, 17, 3, generator=g),
             "has_history": torch.tensor([True, True, False, True])}
    loss, logs = task(batch)
    assert loss.requires_grad and "loss_stpg" in logs and float(logs["loss_stpg"]) > 0
    loss.backward()
    for part in ("context.STEblocks.0", "hpim.gcn1", "blocks.0.gconv1", "head.1", "null_history"):
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(part)]
        assert grads and all(gr is not None and torch.isfinite(gr).all() for gr in grads), part
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(40):
        opt.zero_grad()
        torch.manual_seed(1)  # the same diffusion steps and noise each time: a fixed objective
        loss, _ = task(batch)
        loss.backward()
        opt.step()
        first = float(loss.detach()) if first is None else first
    assert float(loss.detach()) < 0.5 * first


def test_clip_history_and_autoregressive_lifting():
    t = 20
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(t, 17, 3)).astype(np.float32)
    kps = rng.normal(size=(t, 17, 2)).astype(np.float32)
    h2, h3 = history_window(kps, pose, 2, 4)
    np.testing.assert_array_equal(h3, pose[[0, 0, 0, 1]])  # the first frame repeated before the start
    np.testing.assert_array_equal(history_window(kps, pose, 9, 4)[0], kps[5:9])
    seq = Sequence3D("S1", "Walking", 0, kps, pose, np.zeros((t, 3), np.float32), (1000, 1000))
    ds = ClipDataset([seq], 9, stride=9, flip_aug=False, history=4)
    items = [ds[i] for i in range(len(ds))]
    assert [bool(it["has_history"]) for it in items] == [False, True, True]
    torch.testing.assert_close(items[1]["history_3d"], torch.from_numpy(pose[5:9]))

    class Echo(torch.nn.Module):
        """Frame i of a window: (number of history frames given, the last history pose's x + 1)."""
        autoregressive, history = True, 4
        input_spec = SequenceInput(9)

        def forward(self, x, h2=None, h3=None, intrinsics=None):
            out = torch.zeros(x.shape[0], 9, 17, 3)
            if h3 is not None:
                out[..., 0] = h3[:, -1:, :, 0] + 1
            return out

    out = lift_sequence(Echo(), kps)
    # windows start at 0, 9 and 11 (the last 9 frames): each sees the poses predicted before it
    assert (out[:9, :, 0] == 0).all() and (out[9:11, :, 0] == 1).all() and (out[11:, :, 0] == 2).all()
    # flip test: the mirrored pass of this model gives the same x (0 or a count), un-mirrored to -x, so the mean is 0
    assert np.allclose(lift_sequence(Echo(), kps, flip_test=True)[..., 0], 0)


def test_starpose_lifts_a_sequence_and_counts():
    from slimpose.engine.complexity import count_flops

    model = _tiny()
    model.prior.fit(torch.randn(100, 17, 3) * 0.1)
    kps = np.random.default_rng(1).uniform(-1, 1, (20, 17, 2)).astype(np.float32)
    a = lift_sequence(model, kps, flip_test=True)
    assert a.shape == (20, 17, 3) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, lift_sequence(model, kps, flip_test=True))
    flops = count_flops(model)
    assert flops["linear"] > 0


def test_paper_sized_starpose_size():
    with torch.device("meta"):
        model = create_lifter("starpose")
    total = sum(p.numel() for p in model.parameters())
    context = sum(p.numel() for p in model.context.parameters())
    assert context == 33_783_811 - (512 * 2 + 512 * 3 + 3)  # MixSTE without its head (LayerNorm + Linear(512, 3))
    assert (model.num_frames, model.history, model.hypotheses, model.timesteps, model.sampling_steps) == \
        (243, 27, 5, 50, 5)
    assert total - context == 1_254_787


def test_acceleration_error():
    t = np.arange(6, dtype=np.float64)
    gt = np.zeros((6, 2, 3))
    pred = np.zeros((6, 2, 3))
    pred[:, :, 0] = 0.5 * t[:, None] ** 2  # constant acceleration 1 along x
    assert acceleration_error(pred, gt) == pytest.approx(1.0)
    assert mpjve(pred + 3.0, gt + 3.0) == pytest.approx(mpjve(pred, gt))
    # two sequences: no second difference across their boundary
    seq = np.array([0, 0, 0, 1, 1, 1])
    jump = pred.copy()
    jump[3:] += 100.0
    assert acceleration_error(jump, gt, seq) == pytest.approx(1.0)
    assert evaluate_poses_3d(jump, gt, sequence=seq)["ACCEL"] == pytest.approx(1.0)
    assert evaluate_poses_3d(pred[:2], gt[:2])["ACCEL"] is None


def test_checkpoint_round_trip_and_export(tmp_path, capsys):
    """A StarPose checkpoint keeps its fitted prior: loaded back (pth and safetensors) it samples the same poses;
    ONNX export is refused with exit 2 (sampling has no graph)."""
    from slimpose.cli.main import main
    from slimpose.lifting.checkpoint import load_lifter

    model = _tiny()
    model.prior.fit(torch.randn(100, 17, 3) * 0.1)
    overrides = dict(TINY)
    ckpt = tmp_path / "starpose.pth"
    torch.save({"model": model.state_dict(), "model_name": "starpose_s",
                "config": {"family": "lifting", "model": {"name": "starpose_s", "overrides": overrides}}}, ckpt)
    kps = np.random.default_rng(2).uniform(-1, 1, (12, 17, 2)).astype(np.float32)
    want = lift_sequence(model, kps)
    st = tmp_path / "starpose.safetensors"
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(st)]) == 0
    for path in (ckpt, st):
        back, info = load_lifter(path)
        assert info.model_name == "starpose_s" and bool(back.prior.fitted)
        np.testing.assert_array_equal(lift_sequence(back, kps), want)
    capsys.readouterr()
    onnx_path = tmp_path / "starpose.onnx"
    assert main(["export", str(ckpt), "--format", "onnx", "--out", str(onnx_path)]) == 2
    assert "safetensors" in capsys.readouterr().err and not onnx_path.exists()
