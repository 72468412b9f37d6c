"""MSRA Gaussian heatmap codec (SimpleBaseline/HRNet targets), optionally with DARK.

Encoding: HRNet ``generate_target``: a Gaussian of ``sigma`` heatmap pixels centred at the
integer-rounded keypoint ``floor(x / stride + 0.5)`` inside a ``2 * int(3 sigma) + 1`` window, or
(``unbiased=True``, DARK Eq. 10) at the sub-pixel keypoint ``x / stride`` over the whole map.
Decoding: argmax + a quarter-pixel shift towards the higher neighbour (HRNet ``get_final_preds``),
or DARK (Zhang et al. CVPR 2020): blur with ``blur_kernel_size``, log, one 2nd-order Taylor step.
Scores are the heatmap maxima. ``stride = input_size / heatmap_size`` (4 for 256x192 -> 64x48).
``unbiased`` sets both by default; ``dark`` sets the decoding alone (the official TokenPose recipes train
on plain targets and decode with DARK). ``geometry='dark'`` maps decoded heatmap pixels to the crop as
TokenPose / PPT do (``heatmap_to_crop``), ``quarter_bounds='hrnet'`` applies the quarter step where HRNet
does; both are test-time conventions of converted checkpoints (``TestConventions``), targets keep ``stride``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._gaussian import (NONPOSITIVE, QUARTER_BOUNDS, check_choice, check_heatmaps, check_keypoints,
                        check_sigma_blur, check_size, dark_blur, dark_taylor_refine, heatmap_argmax, heatmap_to_crop,
                        mask_nonpositive, masked_targets, pixel_grid, quarter_offset_refine, window_overlaps)

GEOMETRIES = ("standard", "dark")  # MSRAHeatmap(geometry=...): heatmap -> crop spacing


class MSRAHeatmap:
    """Gaussian heatmap targets with ``scale = input_size / heatmap_size``; see the module docstring.

    A keypoint whose 3-sigma window does not touch the heatmap (or whose weight is 0 or coordinate
    is NaN) gets ``target_weight = 0`` and an all-zero heatmap.
    """

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        sigma: float = 2.0,
        unbiased: bool = False,
        blur_kernel_size: int = 11,
        dark: bool | None = None,
        geometry: str = "standard",
        quarter_bounds: str = "axis",
        nonpositive: str = "keep",
    ) -> None:
        self.input_size = check_size(input_size, "input_size")
        self.heatmap_size = check_size(heatmap_size, "heatmap_size")
        self.sigma, self.blur_kernel_size = check_sigma_blur(sigma, blur_kernel_size)
        self.unbiased = bool(unbiased)
        self.dark = self.unbiased if dark is None else bool(dark)
        self.scale = np.array(self.input_size, np.float32) / np.array(self.heatmap_size, np.float32)
        self.geometry = check_choice(geometry, GEOMETRIES, "MSRAHeatmap geometry")
        self.quarter_bounds = check_choice(quarter_bounds, QUARTER_BOUNDS, "MSRAHeatmap quarter_bounds")
        # argmax of maps whose maximum is <= 0: 'keep' | 'minus_one' | 'zero' (before the refinement)
        self.nonpositive = check_choice(nonpositive, NONPOSITIVE, "MSRAHeatmap nonpositive")

    def __repr__(self) -> str:
        return (f"MSRAHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}, unbiased={self.unbiased}, dark={self.dark}, "
                f"blur_kernel_size={self.blur_kernel_size})")

    def encode(self, keypoints: Any, weights: Any) -> dict[str, np.ndarray]:
        """(K, 2) crop-pixel keypoints + (K,) weights -> ``target`` (K, h, w), ``target_weight`` (K,)."""
        kpts, w = check_keypoints(keypoints, weights)
        hm_w, hm_h = self.heatmap_size
        mu = kpts / self.scale
        xs, ys = pixel_grid(self.heatmap_size)
        if self.unbiased:
            # official DARK bounds: drop if left >= W, top >= H, right < 0 or bottom < 0
            radius = 3.0 * self.sigma
            inside = (mu - radius < [hm_w, hm_h]).all(axis=1) & (mu + radius + 1 >= 0).all(axis=1)
            centre = mu
            window = None
        else:
            radius = int(3.0 * self.sigma)
            centre = np.floor(mu + 0.5)
            inside = window_overlaps(centre, radius, self.heatmap_size)
            window = radius
        valid = inside & (w > 0)
        dx = xs - centre[:, 0, None, None]
        dy = ys - centre[:, 1, None, None]
        target = np.exp(-(dx * dx + dy * dy) / (2.0 * self.sigma ** 2))
        if window is not None:
            target = target * ((np.abs(dx) <= window) & (np.abs(dy) <= window))
        return masked_targets(target, valid, w)

    def decode_heatmaps(self, heatmaps: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) heatmaps -> keypoints (N, K, 2) in heatmap pixels, scores (N, K) (maxima)."""
        hm = check_heatmaps(heatmaps)
        locs, scores = heatmap_argmax(hm)
        locs = mask_nonpositive(locs, scores, self.nonpositive)
        if self.dark:
            locs = dark_taylor_refine(locs, dark_blur(hm, self.blur_kernel_size), floor=1e-10)
        else:
            locs = quarter_offset_refine(locs, hm, self.quarter_bounds)
        return locs, scores

    def decode(self, output: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) heatmaps -> keypoints (N, K, 2) in input-crop pixels, scores (N, K)."""
        locs, scores = self.decode_heatmaps(output)
        scale, offset = heatmap_to_crop(self.input_size, self.heatmap_size, self.geometry)
        return (locs * scale + offset).astype(np.float32), scores
