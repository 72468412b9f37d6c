"""Horizontal-flip helpers for flip testing and augmentation (numpy arrays or torch tensors).

Convention (HRNet, also UDP): flipping an image of width ``W`` maps a pixel-centre coordinate
``x -> W - 1 - x`` and swaps left/right keypoints. ``flip_pairs`` is either a sequence of
``(left, right)`` index pairs or a full permutation of length K (MMPose ``flip_indices``).

* Heatmaps of the flipped image are mirrored along W and their channels swapped; MSRA heatmaps
  (stride ``s = in / hm``) then sit ``1 - 1/s`` heatmap px to the left of the unflipped ones, which
  HRNet compensates with a 1-pixel shift to the right (``shift_heatmap``; 0.75 px is exact for
  s = 4). UDP heatmaps (``(in - 1) / (hm - 1)``) line up exactly: use ``shift=False``.
* SimCC x vectors: bin ``i`` is ``x = i / k``, so a reversed vector sits ``k - 1`` bins to the
  right; an exact flip shifts it back left by ``k - 1`` bins. The official SimCC flip test does
  not shift (default 0), leaving a bias of ``(k - 1) / k`` crop px (+0.5 px for k = 2).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch


def flip_permutation(flip_pairs: Sequence[Any], num_keypoints: int) -> np.ndarray:
    """Index array ``perm`` such that ``flipped[..., k, :] = original[..., perm[k], :]``."""
    items = list(flip_pairs)
    if items and all(np.ndim(p) == 0 for p in items):
        perm = np.asarray(items, dtype=np.int64)
        if perm.shape != (num_keypoints,) or sorted(perm.tolist()) != list(range(num_keypoints)):
            raise ValueError(f"flip indices must be a permutation of range({num_keypoints}), got {items}")
        return perm
    perm = np.arange(num_keypoints, dtype=np.int64)
    for pair in items:
        if len(pair) != 2:
            raise ValueError(f"flip pair must have two indices, got {pair!r}")
        a, b = int(pair[0]), int(pair[1])
        if not (0 <= a < num_keypoints and 0 <= b < num_keypoints):
            raise ValueError(f"flip pair {pair!r} out of range for {num_keypoints} keypoints")
        perm[a], perm[b] = b, a
    return perm


def _take(x: Any, perm: np.ndarray, axis: int) -> Any:
    if isinstance(x, torch.Tensor):
        return x.index_select(axis, torch.as_tensor(perm, device=x.device))
    return np.take(np.asarray(x), perm, axis=axis)


def _reverse_last(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        return x.flip(-1)
    return np.ascontiguousarray(np.asarray(x)[..., ::-1])


def _shift(x: Any, bins: int) -> Any:
    """Move values ``bins`` places along the last axis (> 0: to larger indices), repeating the
    value at the edge they leave."""
    if bins == 0:
        return x
    out = x.clone() if isinstance(x, torch.Tensor) else x.copy()
    if bins > 0:
        out[..., bins:] = x[..., :-bins]
    else:
        out[..., :bins] = x[..., -bins:]
    return out


def flip_heatmaps_back(heatmaps: Any, flip_pairs: Sequence[Any], shift: bool = True) -> Any:
    """Map heatmaps (N, K, H, W) predicted on the flipped image back to the original image.

    Mirrors along W, swaps the paired channels and, with ``shift`` (HRNet ``shift_heatmap``), moves
    the result one pixel right (``out[..., 1:] = out[..., :-1]``). Returns the input's type.
    """
    if heatmaps.ndim != 4:
        raise ValueError(f"flip_heatmaps_back expects (N, K, H, W), got shape {tuple(heatmaps.shape)}")
    out = _take(_reverse_last(heatmaps), flip_permutation(flip_pairs, heatmaps.shape[1]), axis=1)
    return _shift(out, 1) if shift else out


def flip_coordinates_back(coords: Any, flip_pairs: Sequence[Any], width: float,
                          normalized: bool = False, unit: bool = False, unswapped: Sequence[int] = ()) -> Any:
    """Map coordinates (N, K, D >= 2) predicted on the flipped image back to the original image.

    Pixels: ``x -> width - 1 - x``; normalised (``x / width``, as :class:`RegressionLabel`):
    ``x -> 1 - x - 1 / width``, the same flip, or with ``unit`` ``x -> 1 - x`` (mmpose 0.x
    ``fliplr_regression``, the official DistilPose flip test: 0.5 px to the right of the pixel flip).
    Keypoints are swapped; channels after x are only permuted (for a DistilPose ``'dist'`` output the
    correlation sign is not flipped), except the channels in ``unswapped``, which keep the flipped crop's
    keypoint order (official DistilPose scores).
    """
    if coords.ndim != 3 or coords.shape[-1] < 2:
        raise ValueError(f"flip_coordinates_back expects (N, K, D >= 2), got shape {tuple(coords.shape)}")
    out = _take(coords, flip_permutation(flip_pairs, coords.shape[1]), axis=1)
    out = out.clone() if isinstance(out, torch.Tensor) else np.array(out, copy=True)
    for c in unswapped:
        out[..., c] = coords[..., c]
    if normalized and unit:
        out[..., 0] = 1.0 - out[..., 0]
    elif normalized:
        out[..., 0] = 1.0 - out[..., 0] - 1.0 / width
    else:
        out[..., 0] = (width - 1) - out[..., 0]
    return out


def flip_simcc_back(x_logits: Any, y_logits: Any, flip_pairs: Sequence[Any],
                    shift_bins: int = 0) -> tuple[Any, Any]:
    """Map SimCC vectors (N, K, Wx), (N, K, Hy) of the flipped image back (official ``flip_back_simdr``).

    x is reversed along the bins, both are keypoint-swapped; then x is moved ``shift_bins`` bins to
    the left (lower indices): ``shift_bins = round(split_ratio) - 1`` makes the flip exact.
    """
    if x_logits.ndim != 3 or y_logits.ndim != 3:
        raise ValueError("flip_simcc_back expects (N, K, Wx) and (N, K, Hy) arrays")
    perm = flip_permutation(flip_pairs, x_logits.shape[1])
    x = _shift(_take(_reverse_last(x_logits), perm, axis=1), -int(shift_bins))
    return x, _take(y_logits, perm, axis=1)


def flip_keypoints(keypoints: Any, visible: Any, flip_pairs: Sequence[Any], width: float) -> tuple[Any, Any]:
    """Flip keypoints (K, 2) or (N, K, 2) and visibility (K,) / (N, K) for an image of ``width``.

    ``x -> width - 1 - x`` and left/right swapped, matching ``flip_coordinates_back`` (an involution).
    """
    if keypoints.ndim not in (2, 3) or keypoints.shape[-1] < 2:
        raise ValueError(f"flip_keypoints expects (K, 2) or (N, K, 2), got shape {tuple(keypoints.shape)}")
    axis = keypoints.ndim - 2
    perm = flip_permutation(flip_pairs, keypoints.shape[axis])
    out = _take(keypoints, perm, axis=axis)
    out = out.clone() if isinstance(out, torch.Tensor) else np.array(out, copy=True)
    out[..., 0] = (width - 1) - out[..., 0]
    vis = _take(visible, perm, axis=visible.ndim - 1)
    return out, vis
