"""Top-down geometry: box <-> center/scale, crop warp matrices (standard and UDP), augmentations.

Conventions (docs/architecture.md): pixels, ``center``/``scale`` in pixels, sizes ``(w, h)``.

* Standard (MSRA/HRNet ``get_affine_transform``): the box centre goes to ``output_size / 2`` and the
  box width ``scale[0]`` to ``output_size[0]`` (one zoom factor for both axes).
* UDP (Huang et al., CVPR 2020, "unbiased data processing"): the box centre goes to
  ``(output_size - 1) / 2`` and the zoom is ``(output_size - 1) / scale`` per axis, so that the crop's
  first and last pixel centres span exactly the box. MMPose 1.x ``get_udp_warp_matrix`` rotates the
  other way round than its ``get_warp_matrix``; here both use the same rotation sense (that of HRNet and
  the original UDP code), which is immaterial for the symmetric random rotation.
* ``udp='dark'`` (TokenPose / PPT, whose ``get_affine_transform`` is the DARK authors'): the box centre goes
  to ``(output_size - 1) / 2`` and the zoom is ``(output_size[0] - 1) / (scale[0] - 1)`` for both axes
  (``conventions.geometry='dark'``, docs/conversion.md).

A positive ``rotation`` turns the image content counter-clockwise in the crop (HRNet convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from slimpose.codecs.flip import flip_keypoints
from slimpose.data.metainfo import DatasetInfo

__all__ = [
    "AugmentConfig", "AugmentResult", "fix_aspect_ratio", "bbox_xywh_to_center_scale",
    "center_scale_to_bbox_xywh", "get_affine_matrix", "get_udp_warp_matrix", "get_warp_matrix",
    "invert_affine", "compose_affine", "hflip_matrix", "warp_image", "transform_points", "crop_to_image",
    "half_body_center_scale", "truncated_normal", "sample_augmentation", "color_jitter",
]


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation (HRNet / MMPose 1.x top-down recipe).

    ``scale_factor``: box size multiplied by ``1 + t * scale_factor``; ``rotation_factor``: angle
    ``t * rotation_factor`` degrees with probability ``rotation_prob``; ``t`` ~ N(0, 1) truncated to
    [-1, 1] (MMPose 1.x ``RandomBBoxTransform``). Half-body (HRNet): with probability ``half_body_prob``
    when more than ``half_body_min_kpts`` keypoints are labelled, the box becomes the upper or lower body
    (1.5x padded; upper body first with probability 0.7, HRNet's ``randn() < 0.5``). Shift (MMPose
    1.x, off by default): centre moved by ``U(-1, 1) * shift_factor * scale``
    with probability ``shift_prob``. Colour jitter: brightness/contrast/saturation factors in ``1 +- x``.
    """

    flip_prob: float = 0.5
    half_body_prob: float = 0.3
    half_body_min_kpts: int = 8
    half_body_padding: float = 1.5
    half_body_upper_prob: float = 0.7
    scale_factor: float = 0.35
    rotation_factor: float = 45.0
    rotation_prob: float = 0.6
    shift_factor: float = 0.0
    shift_prob: float = 0.3
    color_jitter: bool = True
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2


@dataclass
class AugmentResult:
    """Outcome of ``sample_augmentation``: the (maybe flipped) keypoints and the crop parameters."""

    keypoints: np.ndarray
    visible: np.ndarray
    center: np.ndarray
    scale: np.ndarray
    rotation: float
    flipped: bool


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side of ``scale = (w, h)`` so that ``w / h == aspect_ratio``."""
    w, h = float(scale[0]), float(scale[1])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    else:
        w = h * aspect_ratio
    return np.array([w, h], dtype=np.float64)


def bbox_xywh_to_center_scale(bbox: Sequence[float], aspect_ratio: float,
                              padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """COCO ``xywh`` box -> (center, scale) in pixels at the model aspect ratio, ``padding`` times larger."""
    x, y, w, h = (float(v) for v in bbox[:4])
    center = np.array([x + 0.5 * w, y + 0.5 * h], dtype=np.float64)
    return center, fix_aspect_ratio(np.array([w, h]), aspect_ratio) * padding


def center_scale_to_bbox_xywh(center: Sequence[float], scale: Sequence[float],
                              padding: float = 1.0) -> np.ndarray:
    """Inverse of the box -> (center, scale) step (without undoing the aspect-ratio fix)."""
    w, h = float(scale[0]) / padding, float(scale[1]) / padding
    return np.array([center[0] - 0.5 * w, center[1] - 0.5 * h, w, h], dtype=np.float64)


def _similarity(center, scale, rotation_deg: float, output_size, udp: bool, inv: bool) -> np.ndarray:
    """dst = diag(k) R(-rot) (src - center) + dst_center, or its inverse; float64 (2, 3)."""
    cx, cy = float(center[0]), float(center[1])
    if udp == "dark":  # TokenPose / PPT (DARK authors' get_affine_transform): one zoom from the widths - 1
        if not float(scale[0]) > 1.0:
            raise ValueError(f"the 'dark' crop warp (TokenPose / PPT) zooms by (output_w - 1) / (box_w - 1): it needs "
                             f"a box wider than 1 px, got a width of {float(scale[0])}")
        kx = ky = (output_size[0] - 1.0) / (float(scale[0]) - 1.0)
        dx, dy = 0.5 * (output_size[0] - 1.0), 0.5 * (output_size[1] - 1.0)
    elif udp:
        kx = (output_size[0] - 1.0) / float(scale[0])
        ky = (output_size[1] - 1.0) / float(scale[1])
        dx, dy = 0.5 * (output_size[0] - 1.0), 0.5 * (output_size[1] - 1.0)
    else:
        kx = ky = float(output_size[0]) / float(scale[0])
        dx, dy = 0.5 * output_size[0], 0.5 * output_size[1]
    t = math.radians(rotation_deg)
    cs, sn = math.cos(t), math.sin(t)
    if not inv:
        a = np.array([[kx * cs, kx * sn], [-ky * sn, ky * cs]])
        b = np.array([dx, dy]) - a @ np.array([cx, cy])
    else:  # src = R(rot) diag(1/k) (dst - dst_center) + center
        a = np.array([[cs / kx, -sn / ky], [sn / kx, cs / ky]])
        b = np.array([cx, cy]) - a @ np.array([dx, dy])
    return np.concatenate([a, b[:, None]], axis=1)


def get_affine_matrix(center, scale, rotation_deg: float, output_size, inv: bool = False) -> np.ndarray:
    """Standard MSRA/HRNet crop matrix (image -> crop, or crop -> image with ``inv=True``)."""
    return _similarity(center, scale, rotation_deg, output_size, udp=False, inv=inv)


def get_udp_warp_matrix(center, scale, rotation_deg: float, output_size, inv: bool = False) -> np.ndarray:
    """UDP crop matrix: zoom ``(output_size - 1) / scale`` per axis, centre to ``(output_size - 1) / 2``."""
    return _similarity(center, scale, rotation_deg, output_size, udp=True, inv=inv)


def get_warp_matrix(center, scale, rotation_deg: float, output_size, udp: bool | str = False,
                    inv: bool = False) -> np.ndarray:
    """``get_udp_warp_matrix`` if ``udp`` else ``get_affine_matrix``; ``udp='dark'``: the TokenPose / PPT warp."""
    return _similarity(center, scale, rotation_deg, output_size, udp=udp, inv=inv)


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a (2, 3) affine matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Matrix of ``p -> outer(inner(p))``."""
    o = np.vstack([outer, [0.0, 0.0, 1.0]])
    i = np.vstack([inner, [0.0, 0.0, 1.0]])
    return (o @ i)[:2]


def hflip_matrix(image_width: int) -> np.ndarray:
    """Horizontal image flip ``x -> W - 1 - x`` as an affine matrix (HRNet/MMPose flip convention)."""
    return np.array([[-1.0, 0.0, image_width - 1.0], [0.0, 1.0, 0.0]])


def warp_image(image: np.ndarray, matrix: np.ndarray, output_size, interpolation: int = cv2.INTER_LINEAR,
               border_value: float = 0.0) -> np.ndarray:
    """``cv2.warpAffine`` to ``output_size = (w, h)`` with a constant border."""
    size = (int(output_size[0]), int(output_size[1]))
    return cv2.warpAffine(image, np.asarray(matrix, dtype=np.float64), size, flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(border_value,) * 3)


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to points of shape (..., 2)."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def crop_to_image(points: np.ndarray, center, scale, input_size, rotation=0.0,
                  udp: bool = False) -> np.ndarray:
    """Map crop-pixel points back to image pixels (inverse of the crop warp).

    ``points`` (K, 2) with ``center``/``scale`` (2,), or a batch (N, K, 2) with (N, 2) and ``rotation``
    a scalar or (N,). Returns float32 of the same shape.
    """
    pts = np.asarray(points, dtype=np.float64)
    c = np.asarray(center, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)
    if c.ndim == 1:
        m = get_warp_matrix(c, s, float(np.asarray(rotation).reshape(-1)[0]), input_size, udp=udp, inv=True)
        return transform_points(pts, m).astype(np.float32)
    rot = np.broadcast_to(np.asarray(rotation, dtype=np.float64).reshape(-1), (c.shape[0],))
    out = np.empty_like(pts)
    for n in range(c.shape[0]):
        m = get_warp_matrix(c[n], s[n], float(rot[n]), input_size, udp=udp, inv=True)
        out[n] = transform_points(pts[n], m)
    return out.astype(np.float32)


def half_body_center_scale(keypoints: np.ndarray, visible: np.ndarray, info: DatasetInfo, aspect_ratio: float,
                           prefer_upper: bool, padding: float = 1.5):
    """HRNet ``half_body_transform``: box around the upper or the lower body's labelled keypoints.

    Returns ``(center, scale)`` or None when too few keypoints are labelled in the chosen half.
    """
    labelled = np.asarray(visible) > 0
    upper = [i for i in info.upper_body_ids if labelled[i]]
    lower = [i for i in info.lower_body_ids if labelled[i]]
    if prefer_upper and len(upper) > 2:
        chosen = upper
    else:
        chosen = lower if len(lower) > 2 else upper
    if len(chosen) < 2:
        return None
    pts = np.asarray(keypoints, dtype=np.float64)[chosen]
    center = pts.mean(axis=0)
    wh = pts.max(axis=0) - pts.min(axis=0)
    return center, fix_aspect_ratio(wh, aspect_ratio) * padding


def truncated_normal(rng: np.random.Generator, limit: float = 1.0, tries: int = 16) -> float:
    """A draw of N(0, 1) restricted to [-limit, limit] (rejection; a fixed number of draws per call)."""
    draws = rng.standard_normal(tries)
    ok = draws[np.abs(draws) <= limit]
    return float(ok[0]) if ok.size else 0.0


def sample_augmentation(rng: np.random.Generator, cfg: AugmentConfig, keypoints: np.ndarray,
                        visible: np.ndarray, center: np.ndarray, scale: np.ndarray, image_width: int,
                        info: DatasetInfo, aspect_ratio: float) -> AugmentResult:
    """Draw flip -> half-body -> shift/scale/rotation, in the MMPose 1.x pipeline order.

    The random draws happen in a fixed order whatever the outcome, so a given generator state always
    gives the same result.
    """
    kpts = np.asarray(keypoints, dtype=np.float64)
    vis = np.asarray(visible, dtype=np.float32)
    center = np.asarray(center, dtype=np.float64).copy()
    scale = np.asarray(scale, dtype=np.float64).copy()
    u_flip, u_half, u_upper, u_shift, u_rot = rng.random(5)
    shift = rng.uniform(-1.0, 1.0, size=2)
    t_scale = truncated_normal(rng)
    t_rot = truncated_normal(rng)

    flipped = bool(u_flip < cfg.flip_prob)
    if flipped:
        kpts, vis = flip_keypoints(kpts, vis, info.flip_pairs, image_width)
        center[0] = image_width - 1.0 - center[0]
    if u_half < cfg.half_body_prob and np.count_nonzero(vis > 0) > cfg.half_body_min_kpts:
        half = half_body_center_scale(kpts, vis, info, aspect_ratio, bool(u_upper < cfg.half_body_upper_prob),
                                      cfg.half_body_padding)
        if half is not None:
            center, scale = half
    if cfg.shift_factor > 0 and u_shift < cfg.shift_prob:
        center = center + shift * cfg.shift_factor * scale
    scale = scale * (1.0 + t_scale * cfg.scale_factor)
    rotation = t_rot * cfg.rotation_factor if u_rot < cfg.rotation_prob else 0.0
    return AugmentResult(kpts, vis, center, scale, float(rotation), flipped)


def color_jitter(image: np.ndarray, rng: np.random.Generator, brightness: float = 0.2, contrast: float = 0.2,
                 saturation: float = 0.2) -> np.ndarray:
    """Random brightness, contrast and saturation (factors ``1 +- x``) of a BGR uint8 image.

    Brightness ``b*I``, then contrast about the mean grey ``m``, then saturation against the grey image;
    the three linear steps are folded into one ``cv2.addWeighted`` (saturating uint8 result).
    """
    b, c, s = rng.uniform(-1.0, 1.0, size=3) * np.array([brightness, contrast, saturation]) + 1.0
    image = np.ascontiguousarray(image, dtype=np.uint8)
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    mean = b * float(gray.mean())
    gray3 = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(image, s * b * c, gray3, (1.0 - s) * b * c, (1.0 - c) * mean)
