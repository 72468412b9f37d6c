"""Box/center-scale conversion, MSRA and UDP warp matrices, flip folding, augmentation draws."""

import math

import cv2
import numpy as np
import pytest

from slimpose.codecs.flip import flip_keypoints
from slimpose.data.metainfo import COCO
from slimpose.data.transforms import (
    AugmentConfig, bbox_xywh_to_center_scale, color_jitter, compose_affine, crop_to_image, fix_aspect_ratio,
    get_affine_matrix, get_udp_warp_matrix, get_warp_matrix, half_body_center_scale,
    hflip_matrix, invert_affine, sample_augmentation, transform_points, warp_image,
)


def _msra_reference(center, scale, rot, out):
    """HRNet get_affine_transform built from three point correspondences with cv2."""
    rad = math.radians(rot)
    src_dir = np.array([0.5 * scale[0] * math.sin(rad), -0.5 * scale[0] * math.cos(rad)])
    dst_dir = np.array([0.0, -0.5 * out[0]])

    def third(a, b):
        d = a - b
        return b + np.array([-d[1], d[0]])

    src = np.array([center, center + src_dir, third(center, center + src_dir)], dtype=np.float32)
    dc = np.array([0.5 * out[0], 0.5 * out[1]])
    dst = np.array([dc, dc + dst_dir, third(dc, dc + dst_dir)], dtype=np.float32)
    return cv2.getAffineTransform(src, dst)


def test_bbox_to_center_scale():
    c, s = bbox_xywh_to_center_scale([10, 20, 30, 100], aspect_ratio=0.75, padding=1.25)
    np.testing.assert_allclose(c, [25, 70])
    np.testing.assert_allclose(s, [75 * 1.25, 100 * 1.25])  # too narrow: width grown
    c, s = bbox_xywh_to_center_scale([0, 0, 90, 40], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(s, [90, 120])  # too wide: height grown
    np.testing.assert_allclose(fix_aspect_ratio(np.array([3.0, 4.0]), 0.75), [3, 4])


@pytest.mark.parametrize("rot", [0.0, 30.0, -72.5])
def test_affine_matrix_matches_msra_construction(rot):
    center, scale, out = np.array([320.3, 211.7]), np.array([150.0, 200.0]), (192, 256)
    m = get_affine_matrix(center, scale, rot, out)
    np.testing.assert_allclose(m, _msra_reference(center, scale, rot, out), rtol=1e-4, atol=1e-3)
    inv = get_affine_matrix(center, scale, rot, out, inv=True)
    np.testing.assert_allclose(compose_affine(inv, m), [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_allclose(inv, invert_affine(m), atol=1e-9)
    np.testing.assert_allclose(transform_points(center, m), [96, 128], atol=1e-9)


def test_udp_matrix_maps_box_edges_to_first_and_last_pixel():
    center, scale, out = np.array([100.0, 50.0]), np.array([60.0, 80.0]), (48, 64)
    m = get_udp_warp_matrix(center, scale, 0.0, out)
    corners = np.array([[70.0, 10.0], [130.0, 90.0]])
    np.testing.assert_allclose(transform_points(corners, m), [[0, 0], [47, 63]], atol=1e-9)
    # MMPose 1.x get_udp_warp_matrix (same formula; its rotation sense is the opposite one)
    rot = 20.0
    r = math.radians(-rot)
    sx, sy = (out[0] - 1) / scale[0], (out[1] - 1) / scale[1]
    ref = np.array([
        [math.cos(r) * sx, -math.sin(r) * sx,
         sx * (-center[0] * math.cos(r) + center[1] * math.sin(r) + 0.5 * scale[0])],
        [math.sin(r) * sy, math.cos(r) * sy,
         sy * (-center[0] * math.sin(r) - center[1] * math.cos(r) + 0.5 * scale[1])],
    ])
    np.testing.assert_allclose(get_udp_warp_matrix(center, scale, rot, out), ref, atol=1e-9)


@pytest.mark.parametrize("udp", [False, True])
def test_crop_to_image_inverts_the_crop(udp):
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 500, size=(3, 17, 2))
    centers, scales = rng.uniform(100, 400, size=(3, 2)), rng.uniform(50, 300, size=(3, 2))
    rots = np.array([0.0, 33.0, -80.0])
    crop = np.stack([transform_points(pts[n], get_warp_matrix(centers[n], scales[n], rots[n], (192, 256),
                                                              udp=udp)) for n in range(3)])
    back = crop_to_image(crop, centers, scales, (192, 256), rotation=rots, udp=udp)
    assert back.shape == pts.shape and back.dtype == np.float32
    np.testing.assert_allclose(back, pts, atol=1e-3)
    single = crop_to_image(crop[1], centers[1], scales[1], (192, 256), rotation=33.0, udp=udp)
    np.testing.assert_allclose(single, pts[1], atol=1e-3)
    wrong = crop_to_image(crop[1], centers[1], scales[1], (192, 256), rotation=33.0, udp=not udp)
    assert np.abs(wrong - pts[1]).max() > 0.1


def test_flip_folded_into_the_warp_equals_flipping_the_image():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, size=(60, 80, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(image, (7, 7), 2)
    m = get_affine_matrix([35.0, 28.0], [40.0, 53.0], 17.0, (48, 64))
    a = warp_image(cv2.flip(image, 1), m, (48, 64))
    b = warp_image(image, compose_affine(m, hflip_matrix(80)), (48, 64))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1
    kpts = rng.uniform(0, 79, size=(17, 2))
    vis = rng.integers(0, 3, size=17).astype(np.float32)
    fk, fv = flip_keypoints(kpts, vis, COCO.flip_index, 80)
    np.testing.assert_allclose(fk[6], [79 - kpts[5, 0], kpts[5, 1]])  # right shoulder <- left shoulder
    assert fv[6] == vis[5]
    kk, vv = flip_keypoints(fk, fv, COCO.flip_index, 80)
    np.testing.assert_allclose(kk, kpts)
    np.testing.assert_array_equal(vv, vis)


def test_half_body_box():
    kpts = np.array([[x, y] for x, y in zip(np.linspace(100, 200, 17), np.linspace(0, 400, 17))])
    vis = np.full(17, 2.0)
    center, scale = half_body_center_scale(kpts, vis, COCO, 0.75, prefer_upper=True)
    upper = kpts[list(COCO.upper_body_ids)]
    np.testing.assert_allclose(center, upper.mean(0))
    np.testing.assert_allclose(scale, fix_aspect_ratio(upper.max(0) - upper.min(0), 0.75) * 1.5)
    c2, _ = half_body_center_scale(kpts, vis, COCO, 0.75, prefer_upper=False)
    np.testing.assert_allclose(c2, kpts[list(COCO.lower_body_ids)].mean(0))
    vis[:] = 0
    vis[:1] = 2  # fewer than two labelled keypoints: no half-body box (HRNet)
    assert half_body_center_scale(kpts, vis, COCO, 0.75, prefer_upper=True) is None


def test_augmentation_draws_are_bounded_and_reproducible():
    cfg = AugmentConfig()
    kpts = np.random.default_rng(2).uniform(50, 150, size=(17, 2))
    vis = np.full(17, 2.0)
    c, s = np.array([100.0, 100.0]), np.array([150.0, 200.0])
    results = [sample_augmentation(np.random.default_rng([5, 0, i]), cfg, kpts, vis, c, s, 640, COCO, 0.75)
               for i in range(600)]
    again = sample_augmentation(np.random.default_rng([5, 0, 7]), cfg, kpts, vis, c, s, 640, COCO, 0.75)
    assert again.rotation == results[7].rotation and np.array_equal(again.scale, results[7].scale)
    rots = np.array([r.rotation for r in results])
    assert np.abs(rots).max() <= 45.0 and 0.5 < np.mean(rots != 0) < 0.7
    flips = np.array([r.flipped for r in results])
    assert 0.4 < flips.mean() < 0.6
    full = np.array([not np.allclose(r.center, c if not r.flipped else [639 - c[0], c[1]]) for r in results])
    assert 0.2 < full.mean() < 0.4  # half-body rate
    ratio = np.array([r.scale[0] / s[0] for r, h in zip(results, full) if not h])
    assert ratio.min() >= 0.65 - 1e-9 and ratio.max() <= 1.35 + 1e-9 and ratio.std() > 0.1
    flipped = next(r for r in results if r.flipped)
    np.testing.assert_allclose(flipped.keypoints[5], [639 - kpts[6, 0], kpts[6, 1]])


def test_color_jitter():
    image = np.random.default_rng(3).integers(0, 255, size=(32, 24, 3), dtype=np.uint8)
    a = color_jitter(image, np.random.default_rng(9))
    b = color_jitter(image, np.random.default_rng(9))
    assert a.shape == image.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    assert np.abs(a.astype(int) - image).mean() > 2
    np.testing.assert_array_equal(color_jitter(image, np.random.default_rng(9), 0.0, 0.0, 0.0), image)
    # reference: the three steps one after the other, in float
    bf, cf, sf = np.random.default_rng(9).uniform(-1, 1, size=3) * 0.2 + 1.0
    img = image.astype(np.float64) * bf
    luma = np.array([0.114, 0.587, 0.299])
    img = (img - (img @ luma).mean()) * cf + (img @ luma).mean()
    g = (img @ luma)[..., None]
    ref = np.clip(g + (img - g) * sf, 0, 255)
    assert np.abs(a - ref).max() <= 2.0
