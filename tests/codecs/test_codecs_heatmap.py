"""Round-trip and fidelity tests of the MSRA/DARK and UDP heatmap codecs."""

import numpy as np
import pytest
import torch

from slimpose.codecs import MSRAHeatmap, UDPHeatmap
from slimpose.codecs._gaussian import dark_blur

K = 17


def _encode_batch(codec, kpts, weights=None):
    weights = np.ones(kpts.shape[:2], np.float32) if weights is None else weights
    enc = [codec.encode(k, w) for k, w in zip(kpts, weights)]
    return np.stack([e["target"] for e in enc]), np.stack([e["target_weight"] for e in enc])


def _border_distance(codec, kpts):
    """Distance (heatmap px) of each keypoint to the nearest heatmap border."""
    hm = kpts / codec.scale
    return np.minimum(hm, np.array(codec.heatmap_size) - 1 - hm).min(axis=-1)


def test_msra_encode_window_peak_and_weights():
    codec = MSRAHeatmap()
    kpts = np.array([[50.3, 70.9], [-24.0, 100.0], [-28.0, 100.0], [100.0, 100.0]], np.float32)
    out = codec.encode(kpts, np.array([1, 1, 1, 0], np.float32))
    t, w = out["target"], out["target_weight"]
    assert t.shape == (4, 64, 48) and t.dtype == np.float32
    # integer-rounded centre: (50.3 / 4 + 0.5, 70.9 / 4 + 0.5) floored -> (13, 18)
    assert t[0, 18, 13] == pytest.approx(1.0)
    assert np.unravel_index(t[0].argmax(), t[0].shape) == (18, 13)
    # 3-sigma window: exactly 13x13 non-zero pixels
    assert (t[0] > 0).sum() == 13 * 13 and t[0, 18, 13 + 7] == 0 and t[0, 18, 13 + 6] > 0
    # centre at x = -6: its window [-12, 0] touches column 0 -> kept; centre -7 -> dropped
    assert w[1] == 1 and t[1].max() > 0
    assert w[2] == 0 and t[2].max() == 0
    # zero input weight -> zero weight and empty heatmap
    assert w[3] == 0 and t[3].max() == 0


def test_msra_plain_round_trip_is_rounding():
    """Integer-centred targets are symmetric, so the quarter shift is 0 and the decode returns
    round(x / s) * s exactly: per-axis error <= 0.5 heatmap px = 0.5 * s = 2 input px."""
    rng = np.random.default_rng(0)
    codec = MSRAHeatmap()
    kpts = rng.uniform(0, [188, 252], size=(40, K, 2)).astype(np.float32)
    hm, _ = _encode_batch(codec, kpts)
    dec, scores = codec.decode(hm)
    np.testing.assert_allclose(dec, np.floor(kpts / 4 + 0.5) * 4, atol=1e-4)
    assert np.abs(dec - kpts).max() <= 2.0 + 1e-4
    np.testing.assert_allclose(scores, 1.0)


def test_quarter_shift_bound_on_subpixel_gaussians():
    """On a sub-pixel Gaussian the argmax is off by d in [-0.5, 0.5] and the shift moves 0.25 towards
    the true peak, so |error| <= 0.25 heatmap px = 1 input px per axis (argmax not on the border)."""
    rng = np.random.default_rng(1)
    kpts = rng.uniform(4, [184, 248], size=(40, K, 2)).astype(np.float32)
    hm, _ = _encode_batch(MSRAHeatmap(unbiased=True), kpts)
    dec, _ = MSRAHeatmap(unbiased=False).decode(hm)
    err = np.abs(dec - kpts)
    assert err.max() <= 1.0 + 1e-4
    plain_err = np.abs(np.floor(kpts / 4 + 0.5) * 4 - kpts)
    assert err.mean() < 0.6 * plain_err.mean()


def test_dark_round_trip():
    rng = np.random.default_rng(2)
    codec = MSRAHeatmap(unbiased=True)
    kpts = rng.uniform(0, [188, 252], size=(60, K, 2)).astype(np.float32)
    kpts[0, :4] = [[0, 0], [188, 252], [0, 120], [95.5, 252]]
    hm, w = _encode_batch(codec, kpts)
    assert (w == 1).all()
    dec, scores = codec.decode(hm)
    err = np.linalg.norm(dec - kpts, axis=-1)
    interior = _border_distance(codec, kpts) >= 4
    assert interior.sum() > 500
    assert err[interior].max() < 0.05
    # near the border the official method keeps the argmax or is biased by the zero-padded blur;
    # it never does worse than the rounding bound of half a heatmap pixel per axis
    assert np.abs(dec - kpts).max() <= 2.0 + 1e-3
    assert (scores > 0.9).all()


def test_udp_round_trip():
    rng = np.random.default_rng(3)
    codec = UDPHeatmap()
    np.testing.assert_allclose(codec.scale, [191 / 47, 255 / 63])
    kpts = rng.uniform(0, [191, 255], size=(60, K, 2)).astype(np.float32)
    hm, w = _encode_batch(codec, kpts)
    assert (w == 1).all()
    dec, _ = codec.decode(hm)
    err = np.linalg.norm(dec - kpts, axis=-1)
    interior = _border_distance(codec, kpts) >= 4
    assert err[interior].max() < 0.05
    # whole crop: below one heatmap pixel per axis
    assert (np.abs(dec - kpts) < codec.scale).all()
    # the crop corners and edge midpoints come back exactly (border rule of the Taylor step)
    corners = np.array([[[0, 0], [191, 255], [0, 255], [191, 0], [0, 127.5], [95.5, 0]]], np.float32)
    hm_c, _ = _encode_batch(codec, corners)
    dec_c, _ = codec.decode(hm_c)
    assert np.abs(dec_c - corners).max() < 0.05


def test_udp_weights_outside():
    codec = UDPHeatmap()
    s = codec.scale[0]
    # centre -6 (window touches column 0) kept, centre -7 dropped, NaN dropped
    kpts = np.array([[-6 * s, 50], [-7 * s, 50], [np.nan, 3.0], [50, 50]], np.float32)
    out = codec.encode(kpts, np.ones(4, np.float32))
    np.testing.assert_array_equal(out["target_weight"], [1, 0, 0, 1])
    assert out["target"][1].max() == 0 and out["target"][2].max() == 0


def _reference_dark(heatmaps, ks):
    """Per-keypoint transcription of the official DARK post-processing (loops, np.linalg.inv)."""
    n, k, h, w = heatmaps.shape
    blurred = np.log(np.maximum(dark_blur(heatmaps, ks), 1e-10))
    coords = np.zeros((n, k, 2))
    for i in range(n):
        for j in range(k):
            py, px = np.unravel_index(heatmaps[i, j].argmax(), (h, w))
            hmap = blurred[i, j].astype(np.float64)
            coord = np.array([px, py], np.float64)
            if 1 < px < w - 2 and 1 < py < h - 2:
                dx = 0.5 * (hmap[py, px + 1] - hmap[py, px - 1])
                dy = 0.5 * (hmap[py + 1, px] - hmap[py - 1, px])
                dxx = 0.25 * (hmap[py, px + 2] - 2 * hmap[py, px] + hmap[py, px - 2])
                dxy = 0.25 * (hmap[py + 1, px + 1] - hmap[py - 1, px + 1]
                              - hmap[py + 1, px - 1] + hmap[py - 1, px - 1])
                dyy = 0.25 * (hmap[py + 2, px] - 2 * hmap[py, px] + hmap[py - 2, px])
                hess = np.array([[dxx, dxy], [dxy, dyy]])
                if dxx * dyy - dxy ** 2 != 0:
                    coord -= np.linalg.inv(hess) @ np.array([dx, dy])
            coords[i, j] = coord
    return coords


def test_dark_matches_official_loop_on_noisy_maps():
    rng = np.random.default_rng(4)
    codec = MSRAHeatmap(unbiased=True)
    kpts = rng.uniform(0, [188, 252], size=(4, K, 2)).astype(np.float32)
    hm, _ = _encode_batch(codec, kpts)
    noisy = hm + rng.normal(0, 0.05, hm.shape).astype(np.float32)
    locs, _ = codec.decode_heatmaps(noisy)
    np.testing.assert_allclose(locs, _reference_dark(noisy, 11), atol=1e-4)


def test_decode_batch_equals_single_and_accepts_torch():
    rng = np.random.default_rng(5)
    for codec in (MSRAHeatmap(unbiased=True), UDPHeatmap(), MSRAHeatmap()):
        kpts = rng.uniform(0, [188, 252], size=(3, K, 2)).astype(np.float32)
        hm, _ = _encode_batch(codec, kpts)
        hm = hm + rng.normal(0, 0.02, hm.shape).astype(np.float32)
        batch, sc = codec.decode(torch.from_numpy(hm))
        assert batch.shape == (3, K, 2) and sc.shape == (3, K)
        for i in range(3):
            single, _ = codec.decode(hm[i:i + 1])
            np.testing.assert_allclose(batch[i], single[0], atol=1e-5)
        np.testing.assert_allclose(sc, hm.reshape(3, K, -1).max(-1))


def test_bad_shapes_raise():
    codec = MSRAHeatmap()
    with pytest.raises(ValueError, match="N, K, H, W"):
        codec.decode(np.zeros((K, 64, 48), np.float32))
    with pytest.raises(ValueError, match=r"\(K, 2\)"):
        codec.encode(np.zeros((K, 3)), np.ones(K))
    with pytest.raises(ValueError, match="weights"):
        codec.encode(np.zeros((K, 2)), np.ones(K - 1))
    with pytest.raises(ValueError, match="odd"):
        MSRAHeatmap(blur_kernel_size=10)


def test_dark_blur_matches_official_per_map_blur():
    """Official ``gaussian_blur``: zero pad by (ks - 1) / 2, cv2.GaussianBlur(ks, 0), keep the max."""
    import cv2

    rng = np.random.default_rng(6)
    hm = rng.random((2, 3, 20, 16)).astype(np.float32)
    ks, border = 11, 5
    out = dark_blur(hm, ks)
    for i in range(2):
        for j in range(3):
            padded = np.zeros((30, 26), np.float32)
            padded[border:-border, border:-border] = hm[i, j]
            ref = cv2.GaussianBlur(padded, (ks, ks), 0)[border:-border, border:-border]
            ref = ref * hm[i, j].max() / ref.max()
            np.testing.assert_allclose(out[i, j], ref, rtol=1e-5, atol=1e-6)
