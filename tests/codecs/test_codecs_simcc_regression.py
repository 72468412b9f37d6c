"""Tests of the SimCC label and the normalised regression codec."""

import numpy as np
import pytest
import torch

from slimpose.codecs import RegressionLabel, SimCCLabel

K = 17


def _labels(codec, kpts):
    enc = [codec.encode(k, np.ones(len(k), np.float32)) for k in kpts]
    return (np.stack([e["target_x"] for e in enc]), np.stack([e["target_y"] for e in enc]),
            np.stack([e["target_weight"] for e in enc]), np.stack([e["target"] for e in enc]))


def test_simcc_gaussian_label_shape_and_mass():
    codec = SimCCLabel()
    assert codec.simcc_size == (384, 512)
    out = codec.encode(np.array([[96.3, 128.7]], np.float32), np.ones(1, np.float32))
    tx, ty = out["target_x"], out["target_y"]
    assert tx.shape == (1, 384) and ty.shape == (1, 512) and out["target"].shape == (1, 896)
    assert tx.argmax() == 193 and ty.argmax() == 257  # round(96.3 * 2), round(128.7 * 2)
    # normalised Gaussian of sigma 6 bins: unit mass, peak 1 / (6 sqrt(2 pi))
    assert tx.sum() == pytest.approx(1.0, abs=1e-4)
    assert tx.max() == pytest.approx(1 / (6 * np.sqrt(2 * np.pi)), rel=5e-3)
    x, y = codec.split(out["target"])
    np.testing.assert_array_equal(x, tx)
    np.testing.assert_array_equal(y, ty)


def test_simcc_gaussian_round_trip_probs_and_logits():
    rng = np.random.default_rng(0)
    codec = SimCCLabel()
    kpts = rng.uniform(0, [191.5, 255.5], size=(40, K, 2)).astype(np.float32)
    kpts[0, :4] = [[0, 0], [191.5, 255.5], [0.2, 255.3], [191.2, 0.1]]
    tx, ty, w, _ = _labels(codec, kpts)
    assert (w == 1).all()
    dec, _ = codec.decode((tx, ty), from_logits=False)
    assert np.abs(dec - kpts).max() < 0.05
    # logits = a * log(label) + b have the same softmax shape up to temperature: same vertex
    logits = (torch.from_numpy(2.0 * np.log(tx + 1e-30) + 3.0), torch.from_numpy(np.log(ty + 1e-30) - 1.0))
    dec_l, _ = codec.decode(logits)
    assert np.abs(dec_l - kpts).max() < 0.05
    # without the sub-bin step the error is the half-bin quantisation: 0.5 / split_ratio px
    dec_0, _ = SimCCLabel(refine=False).decode((tx, ty), from_logits=False)
    err0 = np.abs(dec_0 - kpts)
    assert err0.max() <= 0.25 + 1e-4 and err0.max() > 0.2


def test_simcc_standard_labels():
    codec = SimCCLabel(smoothing_type="standard", label_smooth_weight=0.1)
    kpts = np.array([[10.2, 20.8], [191.6, 3.0], [-0.2, 5.0], [50.0, 256.0]], np.float32)
    tx, ty, w, _ = _labels(codec, kpts[None])
    np.testing.assert_array_equal(w[0], [1, 1, 1, 0])  # round(256 * 2) = 512 is outside
    assert tx[0, 0].argmax() == 20 and ty[0, 0].argmax() == 42
    assert tx[0, 0, 20] == pytest.approx(0.9) and tx[0, 0, 0] == pytest.approx(0.1 / 383)
    np.testing.assert_allclose(tx[0, :3].sum(-1), 1.0, rtol=1e-5)
    assert tx[0, 3].max() == 0
    dec, _ = codec.decode((tx, ty), from_logits=False)
    np.testing.assert_allclose(dec[0, :3], np.floor(kpts[:3] * 2 + 0.5) / 2, atol=1e-5)


def test_simcc_out_of_range_weight():
    codec = SimCCLabel()
    # 3-sigma window = 18 bins = 9 px: x = -9.4 px -> right bin edge -18.8 + 19 >= 0 kept; -10 dropped
    out = codec.encode(np.array([[-9.4, 10], [-10.0, 10], [50, 300], [50, 50]], np.float32),
                       np.array([1, 1, 1, 0], np.float32))
    np.testing.assert_array_equal(out["target_weight"], [1, 0, 0, 0])
    assert out["target_x"][1:].max() == 0


def test_simcc_scores():
    x = np.full((1, 2, 384), -10.0, np.float32)
    y = np.full((1, 2, 512), -10.0, np.float32)
    x[0, 0, 100], y[0, 0, 200] = 5.0, 2.0
    x[0, 1, 10], y[0, 1, 20] = 1.0, 4.0
    px = np.exp(5.0) / (np.exp(5.0) + 383 * np.exp(-10.0))
    py = np.exp(2.0) / (np.exp(2.0) + 511 * np.exp(-10.0))
    s_max = SimCCLabel(score_mode="max").decode((x, y))[1]
    s_mean = SimCCLabel(score_mode="mean_xy").decode((x, y))[1]
    s_min = SimCCLabel(score_mode="min_xy").decode((x, y))[1]
    assert s_max[0, 0] == pytest.approx(px, rel=1e-5)
    assert s_mean[0, 0] == pytest.approx(0.5 * (px + py), rel=1e-5)
    assert s_min[0, 0] == pytest.approx(py, rel=1e-5)
    kp = SimCCLabel().decode((x, y))[0]
    np.testing.assert_allclose(kp[0], [[50, 100], [5, 10]])
    with pytest.raises(ValueError, match="score_mode"):
        SimCCLabel(score_mode="avg")
    with pytest.raises(ValueError, match="pair"):
        SimCCLabel().decode(x)


def test_regression_round_trip_and_weights():
    codec = RegressionLabel((192, 256))
    kpts = np.array([[0, 0], [191, 255], [96.5, 12.25], [192.0, 10], [-0.1, 10], [5, 5]], np.float32)
    out = codec.encode(kpts, np.array([1, 1, 1, 1, 1, 0], np.float32))
    np.testing.assert_allclose(out["target"][1], [191 / 192, 255 / 256])
    np.testing.assert_array_equal(out["target_weight"], [1, 1, 1, 0, 0, 0])
    dec, scores = codec.decode(out["target"][None])
    np.testing.assert_allclose(dec[0], kpts, atol=1e-4)
    np.testing.assert_array_equal(scores, np.ones((1, 6)))
    # DistilPose-like (N, K, 5) output: only the first two channels are coordinates
    five = torch.cat([torch.from_numpy(out["target"][None]), torch.rand(1, 6, 3)], dim=-1)
    given = np.linspace(0, 1, 6, dtype=np.float32)[None]
    dec5, sc5 = codec.decode(five, scores=given)
    np.testing.assert_allclose(dec5, dec, atol=1e-4)
    np.testing.assert_array_equal(sc5, given)
    with pytest.raises(ValueError, match="scores"):
        codec.decode(five, scores=np.ones((1, 5)))
