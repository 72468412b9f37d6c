"""Tests of the flip-test helpers against the codecs' pixel conventions."""

import numpy as np
import pytest
import torch

from slimpose.codecs import (MSRAHeatmap, RegressionLabel, SimCCLabel, UDPHeatmap, flip_coordinates_back,
                             flip_heatmaps_back, flip_keypoints, flip_permutation, flip_simcc_back)

K = 5
PAIRS = [(1, 2), (3, 4)]


def _interior_keypoints(rng, n=1, lo=24.0):
    return rng.uniform(lo, [192 - lo, 256 - lo], size=(n, K, 2)).astype(np.float32)


def test_flip_permutation_formats():
    np.testing.assert_array_equal(flip_permutation(PAIRS, K), [0, 2, 1, 4, 3])
    np.testing.assert_array_equal(flip_permutation([0, 2, 1, 4, 3], K), [0, 2, 1, 4, 3])
    with pytest.raises(ValueError, match="out of range"):
        flip_permutation([(1, 7)], K)
    with pytest.raises(ValueError, match="permutation"):
        flip_permutation([0, 1, 1, 3, 4], K)


@pytest.mark.parametrize("to_torch", [False, True])
def test_flip_heatmaps_twice_is_identity_and_swaps(to_torch):
    rng = np.random.default_rng(0)
    hm = rng.random((2, K, 8, 6)).astype(np.float32)
    x = torch.from_numpy(hm) if to_torch else hm
    once = flip_heatmaps_back(x, PAIRS, shift=False)
    twice = flip_heatmaps_back(once, PAIRS, shift=False)
    assert type(once) is type(x)
    np.testing.assert_array_equal(np.asarray(twice), hm)
    once = np.asarray(once)
    np.testing.assert_array_equal(once[:, 1], hm[:, 2, :, ::-1])
    np.testing.assert_array_equal(once[:, 4], hm[:, 3, :, ::-1])
    np.testing.assert_array_equal(once[:, 0], hm[:, 0, :, ::-1])
    shifted = np.asarray(flip_heatmaps_back(x, PAIRS, shift=True))
    np.testing.assert_array_equal(shifted[..., 1:], once[..., :-1])
    np.testing.assert_array_equal(shifted[..., 0], once[..., 0])
    np.testing.assert_array_equal(np.asarray(x), hm)  # input untouched


def test_flip_keypoints_involution_and_visibility():
    rng = np.random.default_rng(1)
    kp = rng.uniform(0, 100, (K, 2)).astype(np.float32)
    vis = np.array([2, 1, 0, 2, 1], np.float32)
    fk, fv = flip_keypoints(kp, vis, PAIRS, width=192)
    np.testing.assert_allclose(fk[1], [191 - kp[2, 0], kp[2, 1]])
    np.testing.assert_array_equal(fv, [2, 0, 1, 1, 2])
    back, bv = flip_keypoints(fk, fv, PAIRS, width=192)
    np.testing.assert_allclose(back, kp, atol=1e-5)
    np.testing.assert_array_equal(bv, vis)
    tk, tv = flip_keypoints(torch.from_numpy(kp)[None], torch.from_numpy(vis)[None], PAIRS, width=192)
    assert isinstance(tk, torch.Tensor)
    np.testing.assert_allclose(tk[0].numpy(), fk, atol=1e-5)


@pytest.mark.parametrize("to_torch", [False, True])
def test_flip_coordinates_back_pixels_and_normalized(to_torch):
    rng = np.random.default_rng(2)
    kp = _interior_keypoints(rng, n=3, lo=0.0)
    flipped = np.stack([flip_keypoints(k, np.ones(K), PAIRS, 192)[0] for k in kp])
    x = torch.from_numpy(flipped) if to_torch else flipped
    back = flip_coordinates_back(x, PAIRS, width=192)
    np.testing.assert_allclose(np.asarray(back), kp, atol=1e-4)
    # normalised regression targets of the flipped crop map back to the original targets
    codec = RegressionLabel((192, 256))
    norm = np.stack([codec.encode(k, np.ones(K))["target"] for k in flipped])
    norm = torch.from_numpy(norm) if to_torch else norm
    back_n = flip_coordinates_back(norm, PAIRS, width=192, normalized=True)
    np.testing.assert_allclose(codec.decode(back_n)[0], kp, atol=1e-4)


def test_udp_heatmap_flip_is_exact_without_shift():
    rng = np.random.default_rng(3)
    codec = UDPHeatmap()
    kp = _interior_keypoints(rng)[0]
    fk, _ = flip_keypoints(kp, np.ones(K), PAIRS, width=192)
    target = codec.encode(kp, np.ones(K))["target"]
    flipped_target = codec.encode(fk, np.ones(K))["target"]
    back = flip_heatmaps_back(flipped_target[None], PAIRS, shift=False)[0]
    np.testing.assert_allclose(back, target, atol=1e-5)


def test_msra_heatmap_flip_offset_and_shift():
    """MSRA stride 4: the mirrored map sits 0.75 heatmap px (3 input px) left; the HRNet shift
    moves it to 0.25 px right (+1 input px)."""
    rng = np.random.default_rng(4)
    codec = MSRAHeatmap(unbiased=True)
    kp = _interior_keypoints(rng, n=4)
    fk = np.stack([flip_keypoints(k, np.ones(K), PAIRS, 192)[0] for k in kp])
    flipped_hm = np.stack([codec.encode(k, np.ones(K))["target"] for k in fk])
    no_shift, _ = codec.decode(flip_heatmaps_back(flipped_hm, PAIRS, shift=False))
    shifted, _ = codec.decode(flip_heatmaps_back(torch.from_numpy(flipped_hm), PAIRS, shift=True))
    np.testing.assert_allclose(no_shift[..., 0] - kp[..., 0], -3.0, atol=0.05)
    np.testing.assert_allclose(shifted[..., 0] - kp[..., 0], 1.0, atol=0.05)
    np.testing.assert_allclose(shifted[..., 1], kp[..., 1], atol=0.05)


def test_simcc_flip_back():
    rng = np.random.default_rng(5)
    codec = SimCCLabel()
    kp = _interior_keypoints(rng)[0]
    fk, _ = flip_keypoints(kp, np.ones(K), PAIRS, width=192)
    lab = codec.encode(fk, np.ones(K))
    x_f, y_f = lab["target_x"][None], lab["target_y"][None]
    ref = codec.encode(kp, np.ones(K))
    bx, by = flip_simcc_back(x_f, y_f, PAIRS, shift_bins=1)
    np.testing.assert_allclose(bx[..., :-1], ref["target_x"][None, :, :-1], atol=1e-6)
    np.testing.assert_array_equal(by, ref["target_y"][None])
    dec, _ = codec.decode((bx, by), from_logits=False)
    assert np.abs(dec[0] - kp).max() < 0.05
    # the official unshifted flip is (k - 1) / k = 0.5 px to the right
    tx, ty = flip_simcc_back(torch.from_numpy(x_f), torch.from_numpy(y_f), PAIRS)
    dec0, _ = codec.decode((tx, ty), from_logits=False)
    np.testing.assert_allclose(dec0[0, :, 0] - kp[:, 0], 0.5, atol=0.05)
