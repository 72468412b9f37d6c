"""The two official label styles (SimDR, SA-SimDR), their losses, flip tests and scores, and the factories."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from slimpose.codecs.simcc import SimCCLabel
from slimpose.config import SimCCParams, TrainConfig, apply_overrides, validate_config
from slimpose.config.recipes.simcc import SA_SIMDR, SIMDR
from slimpose.engine.complexity import param_breakdown
from slimpose.heads import SimCCHead, build_head
from slimpose.losses.simcc import KLDiscretLoss
from slimpose.models import create_model
from slimpose.models.stemnet import StemNet
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)
INPUT = (48, 64)


def _encode(codec, kpts):
    enc = [codec.encode(k, np.ones(len(k), np.float32)) for k in kpts]
    return np.stack([e["target_x"] for e in enc]), np.stack([e["target_y"] for e in enc])


def test_round_trip_within_a_thousandth_of_a_pixel():
    rng = np.random.default_rng(3)
    kpts = rng.uniform(1, [INPUT[0] - 2, INPUT[1] - 2], size=(8, 5, 2)).astype(np.float32)
    refine = SimCCLabel(INPUT, sigma=6.0, refine=True)
    tx, ty = _encode(refine, kpts)
    logits = (np.log(tx + 1e-30), np.log(ty + 1e-30))
    dec, _ = refine.decode(logits)  # the log of a Gaussian label is a parabola: the sub-bin vertex is exact
    assert np.abs(dec - kpts).max() < 1e-3
    on_grid = np.round(kpts * 2) / 2  # bins of 1 / k = 0.5 px
    plain = SimCCLabel(INPUT, sigma=6.0, refine=False)
    tx, ty = _encode(plain, on_grid)
    dec, _ = plain.decode((np.log(tx + 1e-30), np.log(ty + 1e-30)))
    assert np.abs(dec - on_grid).max() < 1e-3
    simdr = SimCCLabel(INPUT, smoothing_type="standard", label_smooth_weight=0.1, refine=False)
    tx, ty = _encode(simdr, on_grid)
    dec, _ = simdr.decode((tx, ty), from_logits=False)
    assert np.abs(dec - on_grid).max() < 1e-3


def test_simdr_bins_round_half_to_even_as_the_official_code():
    codec = SimCCLabel(INPUT, smoothing_type="standard", label_smooth_weight=0.1, split_ratio=2.0)
    enc = codec.encode(np.array([[1.25, 1.75]], np.float32), np.ones(1, np.float32))  # x k = 2.5, y k = 3.5
    assert enc["target_x"][0].argmax() == 2 and enc["target_y"][0].argmax() == 4  # np.around
    assert enc["target_x"][0].max() == pytest.approx(0.9)
    assert enc["target_x"][0].sum() == pytest.approx(1.0, abs=1e-5)


def test_the_three_loss_reductions():
    torch.manual_seed(0)
    pred = (torch.randn(2, 3, 6), torch.randn(2, 3, 4))
    label = (torch.softmax(torch.randn(2, 3, 6), -1), torch.softmax(torch.randn(2, 3, 4), -1))
    w = torch.tensor([[1.0, 0.0, 0.5], [1.0, 1.0, 1.0]])
    total_mean, total_sum = 0.0, 0.0
    for p, t in zip(pred, label):
        kl = t * (t.log() - torch.log_softmax(p, -1))
        total_mean += float((kl.mean(-1) * w).sum())
        total_sum += float((kl.sum(-1) * w).sum())
    assert KLDiscretLoss()(pred, label, w).item() == pytest.approx(total_mean / 3, rel=1e-5)  # MMPose: / K
    sa = KLDiscretLoss(normalizer="batch_keypoints")(pred, label, w)  # official SA-SimDR: mean over N, / K
    assert sa.item() == pytest.approx(total_mean / 6, rel=1e-5)
    nmt = KLDiscretLoss(bins="sum", normalizer="batch")(pred, label, w)  # official SimDR NMTCritierion
    assert nmt.item() == pytest.approx(total_sum / 2, rel=1e-5)
    with pytest.raises(ValueError, match="normalizer"):
        KLDiscretLoss(normalizer="pixels")


def _head(style: dict) -> SimCCHead:
    model = create_model("simcc_res50", input_size=INPUT, backbone=StemNet(num_blocks=1), num_deconv_layers=0)
    cfg = apply_overrides(TrainConfig(), ["data.input_size=48,64"])
    cfg.simcc = SimCCParams(**style)
    return build_head(validate_config(cfg), model)


def test_flip_averaging_of_the_two_styles():
    torch.manual_seed(0)
    a, b = (torch.randn(2, 3, 96), torch.randn(2, 3, 128)), (torch.randn(2, 3, 96), torch.randn(2, 3, 128))
    sa, sd = _head(SA_SIMDR), _head(SIMDR)
    merged = sa.merge_flip(a, b)
    assert torch.allclose(merged[0], 0.5 * (a[0] + b[0]))  # SA-SimDR: logits averaged, then softmax
    merged = sd.merge_flip(a, b)
    mean = 0.5 * (a[0].softmax(-1) + b[0].softmax(-1))  # SimDR: the two softmaxes averaged
    assert torch.allclose(merged[0].softmax(-1), mean, atol=1e-6)
    kp, sc = sd.decode(merged)
    assert np.allclose(sc, np.maximum(mean.max(-1).values.numpy(), (0.5 * (a[1].softmax(-1) + b[1].softmax(-1)))
                                      .max(-1).values.numpy()), atol=1e-6)  # official SimDR: max of x / y
    assert np.allclose(kp[..., 0], mean.argmax(-1).numpy() / 2.0)
    raw = _head({**SIMDR, "from_logits": False, "score_mode": "max_xy"}).merge_flip(a, b)
    assert torch.allclose(raw[0], mean)  # a head decoding raw outputs gets the probabilities themselves


def test_calibrated_scores_are_one_for_a_model_as_sure_as_its_labels():
    codec = SimCCLabel(INPUT, sigma=6.0, score_mode="calibrated", from_logits=True)
    official = SimCCLabel(INPUT, sigma=6.0, score_mode="min_xy", from_logits=True)
    kpts = np.array([[[20.0, 30.0], [10.0, 50.0]]], np.float32)
    tx, ty = _encode(codec, kpts)
    perfect = (np.log(tx + 1e-30), np.log(ty + 1e-30))
    _, raw = official.decode(perfect)
    assert np.allclose(raw, 1 / (6 * np.sqrt(2 * np.pi)), rtol=1e-3)  # 0.066: what leeyegy/SimCC#16 reports
    _, cal = codec.decode(perfect)
    assert np.allclose(cal, 1.0, atol=1e-3)
    _, flat = codec.decode((perfect[0] * 0.5, perfect[1] * 0.5))  # a less certain model: a wider softmax
    assert (flat < 0.9).all() and (flat > 0).all()
    head = SimCCHead(codec)
    got = head.export_decoder()(tuple(torch.from_numpy(p) for p in perfect))
    assert np.allclose(got[1].numpy(), cal, atol=1e-5)
    with pytest.raises(ValueError, match="from_logits"):
        SimCCLabel(INPUT, score_mode="calibrated", from_logits=False)
    with pytest.raises(SlimposeInputError, match="simcc.score_mode"):
        apply_overrides(TrainConfig(), ["simcc.score_mode=calibrated"])


def test_published_factories():
    tp = create_model("tokenpose_s_v1_simdr")
    counts = param_breakdown(tp)
    assert counts["params"] == 5_585_216 and counts["params_trainable"] == 5_536_064  # published 5.5M
    x, y = tp(torch.zeros(1, 3, 256, 192))
    assert x.shape == (1, 17, 384) and y.shape == (1, 17, 512)
    for name in ("hrnet_w32_simcc", "hrnet_w48_simcc"):
        m = create_model(name)
        assert tuple(m.head.mlp_head_x.weight.shape) == (384, 3072)  # HEAD_INPUT 3072
        assert tuple(m.head.mlp_head_y.weight.shape) == (512, 3072)
        assert "head.final_layer.weight" in m.state_dict()
    mpii = create_model("hrnet_w32_simcc", num_keypoints=16, input_size=(256, 256))
    assert tuple(mpii.head.mlp_head_x.weight.shape) == (512, 4096)
