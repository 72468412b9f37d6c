"""Shared numpy helpers of the heatmap and SimCC codecs: argmax, DARK blur, Taylor refinement.

All functions are vectorised over instances and keypoints (no Python loop over keypoints).
"""

from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np
import torch


def to_numpy(x: Any) -> np.ndarray:
    """Return ``x`` (numpy array or torch tensor) as a float32 numpy array."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def check_size(size: Sequence[int], name: str) -> tuple[int, int]:
    """Validate a ``(w, h)`` pair of positive integers."""
    if len(size) != 2 or any(int(s) != s or s <= 0 for s in size):
        raise ValueError(f"{name} must be a (w, h) pair of positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def check_sigma_blur(sigma: float, blur_kernel_size: int) -> tuple[float, int]:
    """Validate a Gaussian ``sigma`` (> 0) and a DARK ``blur_kernel_size`` (positive, odd)."""
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    if blur_kernel_size < 1 or blur_kernel_size % 2 == 0:
        raise ValueError(f"blur_kernel_size must be a positive odd integer, got {blur_kernel_size}")
    return float(sigma), int(blur_kernel_size)


def check_keypoints(keypoints: Any, weights: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate encode inputs: keypoints (K, 2) and weights (K,); NaN keypoints get weight 0."""
    kpts = np.asarray(keypoints, dtype=np.float32)
    if kpts.ndim != 2 or kpts.shape[1] != 2:
        raise ValueError(f"encode expects keypoints of shape (K, 2), got {kpts.shape}")
    w = np.asarray(weights, dtype=np.float32)
    if w.shape != (kpts.shape[0],):
        raise ValueError(f"encode expects weights of shape ({kpts.shape[0]},), got {w.shape}")
    finite = np.isfinite(kpts).all(axis=1)
    w = np.where(finite, w, 0.0).astype(np.float32)
    kpts = np.where(finite[:, None], kpts, 0.0).astype(np.float32)
    return kpts, w


def pixel_grid(heatmap_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Heatmap pixel coordinates ``xs`` (1, 1, w) and ``ys`` (1, h, 1), float32, for (K, h, w) targets."""
    hm_w, hm_h = heatmap_size
    return (np.arange(hm_w, dtype=np.float32)[None, None, :],
            np.arange(hm_h, dtype=np.float32)[None, :, None])


def window_overlaps(centre: np.ndarray, radius: int, heatmap_size: tuple[int, int]) -> np.ndarray:
    """(K,) whether the integer window ``[c - radius, c + radius]`` around each centre overlaps the map."""
    hm_w, hm_h = heatmap_size
    return ((centre - radius <= [hm_w - 1, hm_h - 1]).all(axis=1)
            & (centre + radius >= 0).all(axis=1))


def masked_targets(target: np.ndarray, valid: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    """``target`` (K, h, w) / ``target_weight`` (K,) as float32, zero for keypoints not ``valid``."""
    return {
        "target": np.where(valid[:, None, None], target, 0.0).astype(np.float32),
        "target_weight": np.where(valid, weights, 0.0).astype(np.float32),
    }


def check_heatmaps(heatmaps: Any) -> np.ndarray:
    """Return a (N, K, H, W) float32 numpy batch of heatmaps or raise a clear error."""
    hm = to_numpy(heatmaps)
    if hm.ndim != 4:
        raise ValueError(f"decode expects a heatmap batch of shape (N, K, H, W), got {hm.shape}")
    return hm


def heatmap_argmax(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer argmax locations (N, K, 2) as float (x, y) and maxima (N, K) of (N, K, H, W) maps."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(axis=-1)
    vals = np.take_along_axis(flat, idx[..., None], axis=-1)[..., 0]
    locs = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    return locs, vals.astype(np.float32)


QUARTER_BOUNDS = ("axis", "hrnet", "mmpose1")  # quarter_offset_refine / argmax_quarter_decode bounds (conventions.quarter_bounds)
NONPOSITIVE = ("keep", "minus_one", "zero")  # mask_nonpositive rules (conventions.nonpositive)
CROP_GEOMETRIES = ("standard", "udp", "dark")
# udp_taylor_refine border rules (conventions.udp_border): 'skip' (slimpose: a border axis keeps its argmax),
# 'pad' (mmpose 0.x post_dark_udp: the batch's edge-padded maps flattened together, the full step everywhere),
# 'pad_instance' (MMPose 1.x refine_keypoints_dark_udp: the same per instance)
UDP_BORDERS = ("skip", "pad", "pad_instance")  # heatmap_to_crop (or False / True for standard / UDP)


def check_choice(value: Any, allowed: Sequence[str], name: str) -> str:
    """``value`` if it is one of the strings ``allowed``, else a ValueError naming ``name`` and the allowed values."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}")
    return value


def heatmap_to_crop(input_size: Sequence[int], heatmap_size: Sequence[int], geometry: bool | str = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``(scale, offset)`` (2,) each, float32, with ``crop = heatmap * scale + offset`` (x, y).

    ``geometry``: ``False`` / ``'standard'`` (MSRA: ``input / heatmap``), ``True`` / ``'udp'``
    (``(input - 1) / (heatmap - 1)`` per axis) or ``'dark'`` (TokenPose / PPT: the crop and the heatmap are
    both warped with the DARK authors' ``get_affine_transform``: pixel centres ``(size - 1) / 2`` coincide
    and one zoom ``(in_w - 1) / (hm_w - 1)`` holds for both axes, so y gets an offset).
    """
    if isinstance(geometry, str):
        check_choice(geometry, CROP_GEOMETRIES, "geometry")
    i = np.array(input_size[:2], np.float64)
    h = np.array(heatmap_size[:2], np.float64)
    if geometry == "dark":
        k = (i[0] - 1.0) / max(h[0] - 1.0, 1.0)
        scale = np.array([k, k])
        offset = 0.5 * (i - 1.0) - 0.5 * (h - 1.0) * k
    elif geometry in (True, "udp"):
        scale, offset = (i - 1.0) / np.maximum(h - 1.0, 1.0), np.zeros(2)
    else:
        scale, offset = i / h, np.zeros(2)
    return scale.astype(np.float32), offset.astype(np.float32)


NONPOSITIVE_FILL = {"minus_one": -1.0, "zero": 0.0}  # argmax replacement where the maximum is <= 0


def mask_nonpositive(locs: np.ndarray, scores: np.ndarray, rule: str = "keep") -> np.ndarray:
    """``locs`` (N, K, 2) with the places whose maximum ``scores`` (N, K) is <= 0 set to -1 (``'minus_one'``,
    mmpose) or 0 (``'zero'``, HRNet ``get_max_preds``); ``'keep'`` returns ``locs`` unchanged; any other rule is a
    ValueError."""
    check_choice(rule, NONPOSITIVE, "nonpositive")
    if rule not in NONPOSITIVE_FILL:
        return locs
    return np.where(scores[..., None] > 0, locs, np.float32(NONPOSITIVE_FILL[rule])).astype(np.float32)


def quarter_offset_refine(locs: np.ndarray, heatmaps: np.ndarray, bounds: str = "axis") -> np.ndarray:
    """HRNet/SimpleBaseline decode: move 0.25 px from the argmax towards the higher neighbour.

    ``bounds='axis'``: per axis wherever both neighbours exist; ``'hrnet'`` (HRNet ``get_final_preds``,
    mmpose 0.x ``keypoints_from_heatmaps``): both axes, only where ``1 < x < w - 1`` and ``1 < y < h - 1``;
    ``'mmpose1'`` (MMPose 1.x ``refine_keypoints``): x where ``1 < x < w - 1 and 0 < y < h``, y where
    ``1 < y < h - 1 and 0 < x < w``.
    """
    check_choice(bounds, QUARTER_BOUNDS, "quarter_bounds")
    n, k, h, w = heatmaps.shape
    out = locs.copy()
    xi = locs[..., 0].astype(np.int64)
    yi = locs[..., 1].astype(np.int64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")
    okx = (xi > 0) & (xi < w - 1)
    oky = (yi > 0) & (yi < h - 1)
    if bounds == "hrnet":
        okx = oky = (xi > 1) & (xi < w - 1) & (yi > 1) & (yi < h - 1)
    elif bounds == "mmpose1":
        okx = (xi > 1) & (xi < w - 1) & (yi > 0) & (yi < h)
        oky = (yi > 1) & (yi < h - 1) & (xi > 0) & (xi < w)
    xr, xl = np.clip(xi + 1, 0, w - 1), np.clip(xi - 1, 0, w - 1)
    yd, yu = np.clip(yi + 1, 0, h - 1), np.clip(yi - 1, 0, h - 1)
    dx = heatmaps[ni, ki, yi, xr] - heatmaps[ni, ki, yi, xl]
    dy = heatmaps[ni, ki, yd, xi] - heatmaps[ni, ki, yu, xi]
    out[..., 0] += np.where(okx, np.sign(dx), 0.0) * 0.25
    out[..., 1] += np.where(oky, np.sign(dy), 0.0) * 0.25
    return out


def gaussian_kernel_1d(kernel_size: int) -> np.ndarray:
    """OpenCV's Gaussian kernel for ``sigma=0``: sigma = 0.3 * ((ks - 1) * 0.5 - 1) + 0.8."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be a positive odd integer, got {kernel_size}")
    return cv2.getGaussianKernel(kernel_size, 0).astype(np.float32).ravel()


def _blur_maps(maps: np.ndarray, kernel_size: int) -> np.ndarray:
    """Zero-padded separable Gaussian blur of (M, H, W) maps in one cv2 call.

    Every map is zero padded by (ks - 1) / 2 and the padded maps are stacked into one tall image, so
    the kernel never mixes two maps (same result as blurring each zero-padded map alone).
    """
    m, h, w = maps.shape
    pad = (kernel_size - 1) // 2
    padded = np.zeros((m, h + 2 * pad, w + 2 * pad), np.float32)
    padded[:, pad:pad + h, pad:pad + w] = maps
    kern = gaussian_kernel_1d(kernel_size)
    out = cv2.sepFilter2D(padded.reshape(m * (h + 2 * pad), w + 2 * pad), cv2.CV_32F, kern, kern,
                          borderType=cv2.BORDER_CONSTANT)
    return out.reshape(m, h + 2 * pad, w + 2 * pad)[:, pad:pad + h, pad:pad + w]


def _keep_max(blurred: np.ndarray, original: np.ndarray) -> np.ndarray:
    """Rescale each blurred map (last axes already flattened into one) to its original maximum."""
    orig_max = original.max(axis=-1)
    new_max = blurred.max(axis=-1)
    nz = new_max != 0
    ratio = np.where(nz, orig_max / np.where(nz, new_max, 1.0), 1.0)
    return (blurred * ratio[..., None]).astype(np.float32)


def dark_blur(heatmaps: np.ndarray, kernel_size: int) -> np.ndarray:
    """DARK distribution modulation: Gaussian blur with zero padding, rescaled to keep each map's max.

    Zhang et al. CVPR 2020, Eq. 9 (official ``gaussian_blur``: zero pad by (ks - 1) / 2, cv2 blur,
    multiply by original max / blurred max). Input (N, K, H, W), output float32 of the same shape.
    """
    n, k, h, w = heatmaps.shape
    if n * k == 0:
        return heatmaps.astype(np.float32, copy=True)
    maps = np.asarray(heatmaps, np.float32).reshape(n * k, h, w)
    chunk = 512  # bounded temporary memory, cache friendly
    out = np.concatenate([_blur_maps(maps[i:i + chunk], kernel_size) for i in range(0, n * k, chunk)])
    return _keep_max(out.reshape(n, k, h * w), maps.reshape(n, k, h * w)).reshape(n, k, h, w)


def plain_blur(heatmaps: np.ndarray, kernel_size: int) -> np.ndarray:
    """cv2 Gaussian blur of every (H, W) map with cv2's default (reflected) border and no rescaling (mmpose 0.x
    ``post_dark_udp``, which the ViTPose repository uses). Input (N, K, H, W), output float32 of the same shape."""
    out = np.array(heatmaps, dtype=np.float32, order="C", copy=True)  # C order: the reshape below is a view
    for m in out.reshape(-1, *out.shape[2:]):
        cv2.GaussianBlur(m, (kernel_size, kernel_size), 0, m)
    return out


def _solve_newton(dx, dy, dxx, dxy, dyy, ok) -> tuple[np.ndarray, np.ndarray]:
    """Offset -H^-1 g of the 2nd-order Taylor expansion (closed-form 2x2 inverse); 0 where not ok."""
    det = dxx * dyy - dxy * dxy
    ok = ok & (det != 0) & np.isfinite(det)
    safe = np.where(ok, det, 1.0)
    ox = -(dyy * dx - dxy * dy) / safe
    oy = -(-dxy * dx + dxx * dy) / safe
    return np.where(ok, ox, 0.0), np.where(ok, oy, 0.0)


def _log_sampler(maps: np.ndarray, locs: np.ndarray, lo: float, hi: float):
    """``f(dx, dy)`` = log(clip(maps[.., y + dy, x + dx], lo, hi)) at every (N, K) location, float64.

    Indices are clamped to the map, which equals sampling an edge-padded map; the log is taken on
    the sampled values only (element-wise, so identical to taking it on the whole map first).
    """
    n, k, h, w = maps.shape
    xi = locs[..., 0].astype(np.int64)
    yi = locs[..., 1].astype(np.int64)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def f(ddx: int, ddy: int) -> np.ndarray:
        v = maps[ni, ki, np.clip(yi + ddy, 0, h - 1), np.clip(xi + ddx, 0, w - 1)]
        return np.log(np.clip(v.astype(np.float64), lo, hi))

    return f, xi, yi


def dark_taylor_refine(locs: np.ndarray, blurred: np.ndarray, floor: float = 1e-10) -> np.ndarray:
    """DARK sub-pixel step (Zhang et al. CVPR 2020, Eq. 2-5) on ``log(max(blurred, floor))``.

    mu = m - H(m)^-1 D'(m) with the official finite differences: first derivatives by central
    differences, second derivatives with step 2 (``0.25 * (f(x+2) - 2 f(x) + f(x-2))``), applied
    only where ``1 < x < W - 2`` and ``1 < y < H - 2`` (elsewhere the argmax is kept), as officially.
    """
    h, w = blurred.shape[2:]
    f, xi, yi = _log_sampler(blurred, locs, floor, np.inf)
    c = f(0, 0)
    dx = 0.5 * (f(1, 0) - f(-1, 0))
    dy = 0.5 * (f(0, 1) - f(0, -1))
    dxx = 0.25 * (f(2, 0) - 2 * c + f(-2, 0))
    dyy = 0.25 * (f(0, 2) - 2 * c + f(0, -2))
    dxy = 0.25 * (f(1, 1) - f(1, -1) - f(-1, 1) + f(-1, -1))
    inside = (xi > 1) & (xi < w - 2) & (yi > 1) & (yi < h - 2)
    ox, oy = _solve_newton(dx, dy, dxx, dxy, dyy, inside)
    out = locs.astype(np.float32).copy()
    out[..., 0] += ox.astype(np.float32)
    out[..., 1] += oy.astype(np.float32)
    return out


def udp_taylor_refine_padded(locs: np.ndarray, blurred: np.ndarray, lo: float = 1e-3, hi: float = 50.0,
                             per_instance: bool = False) -> np.ndarray:
    """The official DARK-UDP step as the official code computes it (mmpose 0.x ``post_dark_udp``, MMPose 1.x
    ``refine_keypoints_dark_udp``): float32 ``log(clip(blurred, lo, hi))``, edge padded by one pixel, the padded
    maps flattened into one vector and the 3x3 stencil read at flat indices, float32 derivatives, ``inv(H + eps
    I)`` in float64 and the full 2-D step at every keypoint, the map border included (there the edge padding
    gives a one-sided difference). A location of -1 (a map whose maximum is <= 0, masked before the step as
    officially) reads the padded corner and, below it, the previous map's last row (for the first map: the
    last map, as numpy's negative indices wrap): exactly what the official code reads. ``per_instance``:
    flatten each instance's K maps alone (MMPose 1.x decodes one instance at a time) instead of the batch's
    N x K maps (mmpose 0.x)."""
    n, k, h, w = blurred.shape
    if n * k == 0:
        return locs.astype(np.float32).copy()
    logs = np.log(np.clip(np.asarray(blurred, np.float32), np.float32(lo), np.float32(hi)))
    pad = np.pad(logs, ((0, 0), (0, 0), (1, 1), (1, 1)), mode="edge")
    groups = pad.reshape(n, -1) if per_instance else pad.reshape(1, -1)
    kk = k if per_instance else n * k
    loc = locs.astype(np.float32).reshape(groups.shape[0], kk, 2)
    idx = loc[..., 0] + 1 + (loc[..., 1] + 1) * (w + 2)
    idx = (idx + (w + 2) * (h + 2) * np.arange(kk)).astype(np.int64)
    size = groups.shape[1]

    def at(d: int) -> np.ndarray:
        j = idx + d
        j = np.where(j < 0, j + size, j)  # numpy's negative indexing (the official flat vector wraps)
        return np.take_along_axis(groups, j, axis=1)

    c = at(0)
    ix1, ix1_ = at(1), at(-1)
    iy1, iy1_ = at(w + 2), at(-2 - w)
    ix1y1, ix1_y1_ = at(w + 3), at(-w - 3)
    dx = 0.5 * (ix1 - ix1_)
    dy = 0.5 * (iy1 - iy1_)
    dxx = ix1 - 2 * c + ix1_
    dyy = iy1 - 2 * c + iy1_
    dxy = 0.5 * (ix1y1 - ix1 - iy1 + c + c - ix1_ - iy1_ + ix1_y1_)
    hess = np.stack([dxx, dxy, dxy, dyy], axis=-1).reshape(*dxx.shape, 2, 2)
    inv = np.linalg.inv(hess + np.finfo(np.float32).eps * np.eye(2))
    step = np.einsum("...mn,...n->...m", inv, np.stack([dx, dy], axis=-1))
    loc -= step  # in place: float32 coordinates minus the float64 step, as officially
    return loc.reshape(n, k, 2)


def udp_taylor_refine(locs: np.ndarray, blurred: np.ndarray, lo: float = 1e-3,
                      hi: float = 50.0) -> np.ndarray:
    """DARK-UDP step (official ``refine_keypoints_dark_udp``): 3x3 stencil on the edge-padded
    ``log(clip(blurred, lo, hi))``.

    First derivatives by central differences, second derivatives with step 1, the cross term
    ``0.5 * (f(1,1) - f(1,0) - f(0,1) + 2 f(0,0) - f(-1,0) - f(0,-1) + f(-1,-1))`` and the Hessian
    regularised by ``eps(float32) * I`` before inversion. Deviation: along an axis where the argmax
    lies on the map border the edge padding makes the official step a constant 0.5 px outwards,
    so there that axis is kept and only the other axis gets its 1-D step ``-f' / f''``.
    """
    h, w = blurred.shape[2:]
    f, x0, y0 = _log_sampler(blurred, locs, lo, hi)
    c = f(0, 0)
    dx = 0.5 * (f(1, 0) - f(-1, 0))
    dy = 0.5 * (f(0, 1) - f(0, -1))
    eps = float(np.finfo(np.float32).eps)
    dxx = f(1, 0) - 2 * c + f(-1, 0) + eps
    dyy = f(0, 1) - 2 * c + f(0, -1) + eps
    dxy = 0.5 * (f(1, 1) - f(1, 0) - f(0, 1) + 2 * c - f(-1, 0) - f(0, -1) + f(-1, -1))
    inner_x = (x0 > 0) & (x0 < w - 1)
    inner_y = (y0 > 0) & (y0 < h - 1)
    ox, oy = _solve_newton(dx, dy, dxx, dxy, dyy, inner_x & inner_y)
    only_x = inner_x & ~inner_y & (dxx != 0)
    only_y = inner_y & ~inner_x & (dyy != 0)
    ox = np.where(only_x, -dx / np.where(only_x, dxx, 1.0), ox)
    oy = np.where(only_y, -dy / np.where(only_y, dyy, 1.0), oy)
    out = locs.astype(np.float32).copy()
    out[..., 0] += ox.astype(np.float32)
    out[..., 1] += oy.astype(np.float32)
    return out


def parabola_refine_1d(locs: np.ndarray, log_values: np.ndarray) -> np.ndarray:
    """Sub-bin peak of 1-D log-distributions (N, K, L) by a 3-point parabola (a 1-D Taylor step).

    Fits ``f(s), f(s+1), f(s+2)`` with ``s = clip(argmax - 1, 0, L - 3)`` (one-sided at the ends) and
    returns the vertex, clipped to argmax +- 0.5 bin (the vertex of a concave parabola through an
    integer maximum lies there); no refinement where the fit is not concave. Exact for a Gaussian
    label, whose log is a parabola.
    """
    n, k, length = log_values.shape
    p = locs.astype(np.int64)
    if length < 3:
        return locs.astype(np.float32).copy()
    s = np.clip(p - 1, 0, length - 3)
    f0 = np.take_along_axis(log_values, s[..., None], axis=-1)[..., 0].astype(np.float64)
    f1 = np.take_along_axis(log_values, s[..., None] + 1, axis=-1)[..., 0].astype(np.float64)
    f2 = np.take_along_axis(log_values, s[..., None] + 2, axis=-1)[..., 0].astype(np.float64)
    curv = f2 - 2 * f1 + f0
    ok = (curv < 0) & np.isfinite(curv)
    vertex = s + 1 - 0.5 * (f2 - f0) / np.where(ok, curv, -1.0)
    vertex = np.clip(vertex, p - 0.5, p + 0.5)
    return np.where(ok, vertex, p).astype(np.float32)
