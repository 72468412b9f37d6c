"""Coordinate regression labels (DeepPose / RLE / DistilPose students).

Targets are the crop-pixel keypoints divided by the input size ``(w, h)``, i.e. in [0, 1] for
keypoints inside the crop (mmpose 0.x ``TopDownGenerateTargetRegression``: ``joints / image_size``,
weight 0 for keypoints outside ``[0, w - 1] x [0, h - 1]``). Decoding multiplies back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._gaussian import check_keypoints, check_size, to_numpy


class RegressionLabel:
    """Normalised keypoint coordinates ``keypoints / (w, h)``; see the module docstring."""

    def __init__(self, input_size: tuple[int, int] = (192, 256)) -> None:
        self.input_size = check_size(input_size, "input_size")
        self.scale = np.array(self.input_size, np.float32)

    def __repr__(self) -> str:
        return f"RegressionLabel(input_size={self.input_size})"

    def encode(self, keypoints: Any, weights: Any) -> dict[str, np.ndarray]:
        """(K, 2) crop-pixel keypoints + (K,) weights -> ``target`` (K, 2) in [0, 1], ``target_weight``."""
        kpts, w = check_keypoints(keypoints, weights)
        inside = ((kpts >= 0) & (kpts <= self.scale - 1)).all(axis=1)
        return {
            "target": (kpts / self.scale).astype(np.float32),
            "target_weight": np.where(inside & (w > 0), w, 0.0).astype(np.float32),
        }

    def decode(self, output: Any, scores: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, K, D >= 2) normalised predictions -> keypoints (N, K, 2) in crop pixels, scores (N, K).

        Only the first two channels are coordinates; ``scores`` come from the caller (e.g. a
        DistilPose score head) or are ones.
        """
        out = to_numpy(output)
        if out.ndim != 3 or out.shape[-1] < 2:
            raise ValueError(f"regression decode expects (N, K, D >= 2), got {out.shape}")
        keypoints = (out[..., :2] * self.scale).astype(np.float32)
        if scores is None:
            sc = np.ones(out.shape[:2], np.float32)
        else:
            sc = to_numpy(scores)
            if sc.shape != out.shape[:2]:
                raise ValueError(f"scores must have shape {out.shape[:2]}, got {sc.shape}")
        return keypoints, sc
