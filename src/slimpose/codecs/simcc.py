"""SimCC / SimDR 1-D classification labels (Li et al., ECCV 2022).

Each coordinate is classified into ``round(size * split_ratio)`` bins; bin ``i`` stands for the
crop coordinate ``i / split_ratio``. Labels (official SimCC / MMPose ``SimCCLabel``):
``gaussian``: ``exp(-(i - x k)^2 / (2 sigma^2))`` with ``sigma`` in bins, divided by
``sigma sqrt(2 pi)`` when ``normalize``; ``standard``: one-hot at ``round(x k)`` with label smoothing
``1 - eps`` / ``eps / (L - 1)``. Decoding: argmax / k (official), plus an optional sub-bin step
(``refine=True``): the vertex of the parabola through the log-probabilities at argmax - 1, argmax,
argmax + 1, exact for Gaussian labels (their log is a parabola); for logits the log-softmax equals
the logits up to a constant, so the step is taken on the logits directly.
Scores (of the x / y maxima): ``'min_xy'`` = their minimum (MMPose ``get_simcc_maximum``; the official
SA-SimDR ``validate_sa_simdr`` on softmax probabilities), ``'max_xy'`` = their maximum (official SimDR
``validate_simdr``), ``'mean_xy'``, ``'max'`` = the x maximum alone, and ``'calibrated'``: the minimum over
the axes of ``max probability / peak of the training label`` clipped to [0, 1]. The official scores are
probabilities over ``W k`` bins: a perfect model trained on Gaussian labels of sigma 6 bins reaches only
``1 / (6 sqrt(2 pi)) = 0.066`` (leeyegy/SimCC#16, #18: scores near 0.1-0.2 break the 0.2 keypoint threshold
of the COCO rescoring and any visibility threshold). Dividing by the label's own peak makes 1 mean "as
sure as the training target", which is what a heatmap maximum means (its target peaks at 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ._gaussian import check_choice, check_keypoints, check_size, parabola_refine_1d, to_numpy

SCORE_MODES = ("max", "mean_xy", "min_xy", "max_xy", "calibrated")
SMOOTHING_TYPES = ("gaussian", "standard")
SIMCC_NONPOSITIVE = ("keep", "minus_one")  # SimCCLabel(nonpositive=...) (conventions.simcc_nonpositive)


def simcc_scores(max_x: Any, max_y: Any, score_mode: str, peaks: tuple[float, float] = (1.0, 1.0)) -> Any:
    """Keypoint scores from the x / y maxima (numpy arrays or torch tensors) under ``score_mode``;
    ``peaks`` are the label peaks that ``'calibrated'`` divides by (:meth:`SimCCLabel.label_peaks`)."""
    tensor = isinstance(max_x, torch.Tensor)
    if score_mode == "max":
        return max_x
    if score_mode == "mean_xy":
        return 0.5 * (max_x + max_y)
    if score_mode == "max_xy":
        return torch.maximum(max_x, max_y) if tensor else np.maximum(max_x, max_y)
    if score_mode == "calibrated":
        max_x, max_y = max_x / peaks[0], max_y / peaks[1]
        low = torch.minimum(max_x, max_y) if tensor else np.minimum(max_x, max_y)
        return low.clamp(0.0, 1.0) if tensor else np.clip(low, 0.0, 1.0)
    return torch.minimum(max_x, max_y) if tensor else np.minimum(max_x, max_y)


def _softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class SimCCLabel:
    """SimCC x/y labels; ``encode`` returns ``target_x`` (K, Wx), ``target_y`` (K, Hy), their
    concatenation ``target`` (K, Wx + Hy) (one fixed-size tensor for the default collate; split it
    with :meth:`split`) and ``target_weight`` (K,). ``decode`` takes ``(x, y)`` of shapes
    (N, K, Wx), (N, K, Hy): logits by default (``from_logits=True``), or probabilities / labels.
    """

    def __init__(
        self,
        input_size: tuple[int, int] = (192, 256),
        smoothing_type: str = "gaussian",
        sigma: float | tuple[float, float] = 6.0,
        split_ratio: float = 2.0,
        label_smooth_weight: float = 0.0,
        normalize: bool = True,
        refine: bool = True,
        score_mode: str = "max",
        from_logits: bool = True,
        nonpositive: str = "keep",
    ) -> None:
        self.input_size = check_size(input_size, "input_size")
        if smoothing_type not in SMOOTHING_TYPES:
            raise ValueError(f"smoothing_type must be one of {SMOOTHING_TYPES}, got {smoothing_type!r}")
        if score_mode not in SCORE_MODES:
            raise ValueError(f"score_mode must be one of {SCORE_MODES}, got {score_mode!r}")
        if score_mode == "calibrated" and not from_logits:
            raise ValueError("score_mode='calibrated' divides softmax probabilities by the label peak: "
                             "it needs from_logits=True")
        sig = np.broadcast_to(np.asarray(sigma, np.float32), (2,)).copy()
        if not (sig > 0).all():
            raise ValueError(f"sigma must be positive, got {sigma}")
        if not split_ratio > 0:
            raise ValueError(f"split_ratio must be positive, got {split_ratio}")
        if not 0.0 <= label_smooth_weight < 1.0:
            raise ValueError(f"label_smooth_weight must be in [0, 1), got {label_smooth_weight}")
        self.smoothing_type = smoothing_type
        self.sigma = sig
        self.split_ratio = float(split_ratio)
        self.label_smooth_weight = float(label_smooth_weight)
        self.normalize = bool(normalize)
        self.refine = bool(refine)
        self.score_mode = score_mode
        self.from_logits = bool(from_logits)
        # 'minus_one': bin -1 (crop px -1 / split_ratio) where the score is <= 0 (MMPose 1.x get_simcc_maximum)
        self.nonpositive = check_choice(nonpositive, SIMCC_NONPOSITIVE, "SimCCLabel nonpositive")
        w, h = self.input_size
        self.simcc_size = (int(np.around(w * self.split_ratio)), int(np.around(h * self.split_ratio)))

    def __repr__(self) -> str:
        return (f"SimCCLabel(input_size={self.input_size}, smoothing_type={self.smoothing_type!r}, "
                f"sigma={tuple(self.sigma.tolist())}, split_ratio={self.split_ratio}, "
                f"label_smooth_weight={self.label_smooth_weight}, normalize={self.normalize}, "
                f"refine={self.refine}, score_mode={self.score_mode!r}, from_logits={self.from_logits})")

    def label_peaks(self) -> tuple[float, float]:
        """The highest value of the x and y labels of a keypoint in the middle of the crop, each label
        divided by its sum (a probability): what a perfectly trained model's softmax reaches."""
        w, h = self.input_size
        enc = self.encode(np.array([[0.5 * (w - 1), 0.5 * (h - 1)]], np.float32), np.ones(1, np.float32))
        tx, ty = enc["target_x"][0], enc["target_y"][0]
        return float(tx.max() / tx.sum()), float(ty.max() / ty.sum())

    def split(self, target: Any) -> tuple[Any, Any]:
        """Split a concatenated ``target`` (..., Wx + Hy) into its x (..., Wx) and y (..., Hy) parts."""
        wx, hy = self.simcc_size
        if target.shape[-1] != wx + hy:
            raise ValueError(f"SimCC target has {target.shape[-1]} bins, expected {wx} + {hy}")
        return target[..., :wx], target[..., wx:]

    def encode(self, keypoints: Any, weights: Any) -> dict[str, np.ndarray]:
        """(K, 2) crop-pixel keypoints + (K,) weights -> SimCC labels (see the class docstring)."""
        kpts, w = check_keypoints(keypoints, weights)
        wx, hy = self.simcc_size
        mu = kpts * self.split_ratio
        bins_x = np.arange(wx, dtype=np.float32)[None, :]
        bins_y = np.arange(hy, dtype=np.float32)[None, :]
        if self.smoothing_type == "gaussian":
            # official bounds on the 3-sigma window: drop if left >= W, top >= H, right/bottom < 0
            radius = 3.0 * self.sigma
            inside = (mu - radius < [wx, hy]).all(axis=1) & (mu + radius + 1 >= 0).all(axis=1)
            tx = np.exp(-((bins_x - mu[:, :1]) ** 2) / (2.0 * self.sigma[0] ** 2))
            ty = np.exp(-((bins_y - mu[:, 1:]) ** 2) / (2.0 * self.sigma[1] ** 2))
            if self.normalize:
                tx = tx / (self.sigma[0] * np.sqrt(2.0 * np.pi))
                ty = ty / (self.sigma[1] * np.sqrt(2.0 * np.pi))
        else:
            idx = np.around(mu).astype(np.int64)  # numpy's half-to-even, as the official code and MMPose
            inside = ((idx >= 0) & (idx < [wx, hy])).all(axis=1)
            eps = self.label_smooth_weight
            tx = np.where(bins_x == idx[:, :1], 1.0 - eps, eps / max(wx - 1, 1))
            ty = np.where(bins_y == idx[:, 1:], 1.0 - eps, eps / max(hy - 1, 1))
        valid = inside & (w > 0)
        tx = np.where(valid[:, None], tx, 0.0).astype(np.float32)
        ty = np.where(valid[:, None], ty, 0.0).astype(np.float32)
        return {
            "target": np.concatenate([tx, ty], axis=1),
            "target_x": tx,
            "target_y": ty,
            "target_weight": np.where(valid, w, 0.0).astype(np.float32),
        }

    def decode(self, output: Any, from_logits: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(x (N, K, Wx), y (N, K, Hy))`` -> keypoints (N, K, 2) in crop pixels, scores (N, K).

        ``from_logits`` overrides the constructor's choice (False for probabilities or labels).
        """
        if not isinstance(output, (tuple, list)) or len(output) != 2:
            raise ValueError("SimCC decode expects a pair (x_logits (N, K, Wx), y_logits (N, K, Hy))")
        logits = self.from_logits if from_logits is None else bool(from_logits)
        x, y = to_numpy(output[0]), to_numpy(output[1])
        if x.ndim != 3 or y.ndim != 3 or x.shape[:2] != y.shape[:2]:
            raise ValueError(f"SimCC decode expects (N, K, Wx) and (N, K, Hy), got {x.shape} and {y.shape}")
        px = _softmax(x) if logits else x
        py = _softmax(y) if logits else y
        loc_x = px.argmax(axis=-1).astype(np.float32)
        loc_y = py.argmax(axis=-1).astype(np.float32)
        if self.refine:
            log_x = x if logits else np.log(np.maximum(x, 1e-10))
            log_y = y if logits else np.log(np.maximum(y, 1e-10))
            loc_x = parabola_refine_1d(loc_x, log_x)
            loc_y = parabola_refine_1d(loc_y, log_y)
        peaks = self.label_peaks() if self.score_mode == "calibrated" else (1.0, 1.0)
        scores = simcc_scores(px.max(axis=-1), py.max(axis=-1), self.score_mode, peaks)
        locs = np.stack([loc_x, loc_y], axis=-1)
        if self.nonpositive == "minus_one":  # before the division, as get_simcc_maximum: -1 / split crop px
            locs = np.where(scores[..., None] > 0, locs, np.float32(-1.0))
        keypoints = locs / self.split_ratio
        return keypoints.astype(np.float32), scores.astype(np.float32)
