"""UDP Gaussian heatmap codec (Huang et al., CVPR 2020, "unbiased data processing").

UDP measures sizes in pixel intervals, so the crop-to-heatmap scale is
``(input_size - 1) / (heatmap_size - 1)`` (paper Sec. 3, ``s = (w_i - 1) / (w_o - 1)``). Encoding
(official ``generate_udp_gaussian_heatmaps``): a Gaussian centred at the sub-pixel keypoint
``x / scale``, truncated to the ``2 * int(3 sigma) + 1`` window around its rounded position.
Decoding (official ``refine_keypoints_dark_udp``): argmax, DARK blur, ``log(clip(., 1e-3, 50))``,
one Taylor step with a 3x3 stencil, then ``* scale``. MMPose 1.x ``UDPHeatmap.decode`` returns
``keypoints / (heatmap_size - 1) * input_size`` (``mmpose/codecs/udp_heatmap.py``), i.e. input-space keypoints
scaled by ``input / (input - 1)`` against this codec's, but ``TopdownPoseEstimator.add_pred_to_datasample``
then divides by ``input_size`` (``kp / input_size * box + center - box / 2``): in image pixels that is
``hm / (heatmap_size - 1) * box + center - box / 2``, exactly ``hm * (input - 1) / (heatmap - 1)`` mapped
through the inverse UDP warp (``(output - 1) / box``), which is what slimpose does. The official pipeline
is consistent end to end; only its intermediate crop-space keypoints differ from slimpose's (by
``input / (input - 1)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._gaussian import (NONPOSITIVE, check_choice, check_heatmaps, check_keypoints, check_sigma_blur, check_size,
                        dark_blur, heatmap_argmax, heatmap_to_crop, mask_nonpositive, masked_targets, pixel_grid,
                        plain_blur, udp_taylor_refine, udp_taylor_refine_padded, UDP_BORDERS, window_overlaps)

BLURS = ("keep_max", "plain")  # UDPHeatmap(blur=...): the DARK-UDP blur (conventions.udp_blur)


class UDPHeatmap:
    """UDP Gaussian heatmap targets and DARK-UDP decoding; see the module docstring.

    A keypoint whose 3-sigma window does not touch the heatmap (or whose weight is 0 or coordinate
    is NaN) gets ``target_weight = 0`` and an all-zero heatmap.
    """

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        sigma: float = 2.0,
        blur_kernel_size: int = 11,
        blur: str = "keep_max",
        nonpositive: str = "keep",
        border: str = "skip",
    ) -> None:
        self.input_size = check_size(input_size, "input_size")
        self.heatmap_size = check_size(heatmap_size, "heatmap_size")
        if min(self.heatmap_size) < 2:
            raise ValueError(f"UDP needs a heatmap of at least 2x2 pixels, got {heatmap_size}")
        self.sigma, self.blur_kernel_size = check_sigma_blur(sigma, blur_kernel_size)
        # 'keep_max' (MMPose 1.x) | 'plain' (mmpose 0.x post_dark_udp, the ViTPose repository)
        self.blur = check_choice(blur, BLURS, "UDPHeatmap blur")
        # maps whose maximum is <= 0: 'keep' | 'minus_one' | 'zero' (after the refinement)
        self.nonpositive = check_choice(nonpositive, NONPOSITIVE, "UDPHeatmap nonpositive")
        # the DARK-UDP step at the map border: 'skip' (a border axis keeps its argmax) | 'pad' / 'pad_instance'
        # (the official edge-padded full step everywhere, non-positive maps masked before it: udp_taylor_refine_padded)
        self.border = check_choice(border, UDP_BORDERS, "UDPHeatmap border")
        self.scale = ((np.array(self.input_size, np.float32) - 1)
                      / (np.array(self.heatmap_size, np.float32) - 1))

    def __repr__(self) -> str:
        return (f"UDPHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
                f"sigma={self.sigma}, blur_kernel_size={self.blur_kernel_size})")

    def encode(self, keypoints: Any, weights: Any) -> dict[str, np.ndarray]:
        """(K, 2) crop-pixel keypoints + (K,) weights -> ``target`` (K, h, w), ``target_weight`` (K,)."""
        kpts, w = check_keypoints(keypoints, weights)
        mu = kpts / self.scale
        radius = int(3.0 * self.sigma)
        centre = np.floor(mu + 0.5)
        valid = window_overlaps(centre, radius, self.heatmap_size) & (w > 0)
        xs, ys = pixel_grid(self.heatmap_size)
        in_window = ((np.abs(xs - centre[:, 0, None, None]) <= radius)
                     & (np.abs(ys - centre[:, 1, None, None]) <= radius))
        dx = xs - mu[:, 0, None, None]
        dy = ys - mu[:, 1, None, None]
        target = np.exp(-(dx * dx + dy * dy) / (2.0 * self.sigma ** 2)) * in_window
        return masked_targets(target, valid, w)

    def decode_heatmaps(self, heatmaps: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) heatmaps -> keypoints (N, K, 2) in heatmap pixels, scores (N, K) (maxima)."""
        hm = check_heatmaps(heatmaps)
        locs, scores = heatmap_argmax(hm)
        blur = plain_blur if self.blur == "plain" else dark_blur
        if self.border != "skip":  # official: -1 (or 0) first, then the step from there
            locs = mask_nonpositive(locs, scores, self.nonpositive)
            return udp_taylor_refine_padded(locs, blur(hm, self.blur_kernel_size), lo=1e-3, hi=50.0,
                                            per_instance=self.border == "pad_instance"), scores
        locs = udp_taylor_refine(locs, blur(hm, self.blur_kernel_size), lo=1e-3, hi=50.0)
        return mask_nonpositive(locs, scores, self.nonpositive), scores

    def decode(self, output: Any) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, h, w) heatmaps -> keypoints (N, K, 2) in input-crop pixels, scores (N, K)."""
        locs, scores = self.decode_heatmaps(output)
        scale, offset = heatmap_to_crop(self.input_size, self.heatmap_size, "udp")
        return (locs * scale + offset).astype(np.float32), scores
