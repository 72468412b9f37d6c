"""OKS-based non-maximum suppression of pose instances (top-down post-processing).

Implements HRNet's ``oks_iou``/``oks_nms`` (lib/nms/nms.py) and MMPose 1.x
``evaluation/functional/nms.py``, vectorised over candidates:

    OKS(g, d) = mean_k exp(-|p_g,k - p_d,k|^2 / (2 * ((a_g + a_d) / 2 + eps) * (2 sigma_k)^2))

(the mean runs over the keypoints whose scores exceed ``vis_thr`` in both instances when
``vis_thr`` is given, else over all K). This is suppression, not evaluation: the COCO metric
itself comes from pycocotools' COCOeval.
"""

from __future__ import annotations

import numpy as np

__all__ = ["oks_iou", "oks_nms"]


def oks_iou(
    g: np.ndarray,
    d: np.ndarray,
    area_g: float,
    areas_d: np.ndarray,
    sigmas: np.ndarray,
    vis_thr: float | None = None,
    scores_g: np.ndarray | None = None,
    scores_d: np.ndarray | None = None,
) -> np.ndarray:
    """OKS between one instance ``g`` (K, 2) and candidates ``d`` (N, K, 2); returns (N,).

    ``area_g``/``areas_d`` are instance areas in px^2 (HRNet/MMPose pass the input-box area).
    With ``vis_thr`` the keypoint scores select the keypoints counted (both > vis_thr; MMPose 1.x
    semantics), an instance pair with none counted gets OKS 0.
    """
    g = np.asarray(g, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(d, dtype=np.float64).reshape(-1, g.shape[0], 2)
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if sigmas.shape[0] != g.shape[0]:
        raise ValueError(f"{sigmas.shape[0]} sigmas for {g.shape[0]} keypoints")
    areas_d = np.asarray(areas_d, dtype=np.float64).reshape(-1)
    variances = (sigmas * 2) ** 2
    dist2 = ((d - g[None]) ** 2).sum(-1)  # (N, K)
    denom = ((area_g + areas_d) / 2 + np.spacing(1))[:, None]
    e = dist2 / variances[None] / denom / 2
    terms = np.exp(-e)
    if vis_thr is None:
        return terms.mean(axis=1)
    if scores_g is None or scores_d is None:
        raise ValueError("vis_thr needs scores_g and scores_d")
    sg = np.asarray(scores_g, dtype=np.float64).reshape(1, -1)
    sd = np.asarray(scores_d, dtype=np.float64).reshape(d.shape[:2])
    mask = (sg > vis_thr) & (sd > vis_thr)
    count = mask.sum(axis=1)
    total = (terms * mask).sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray,
    thr: float = 0.9,
    keypoint_scores: np.ndarray | None = None,
    vis_thr: float | None = None,
) -> np.ndarray:
    """Greedy OKS-NMS over the instances of ONE image; returns the kept indices, best first.

    ``keypoints`` (N, K, 2), ``scores`` (N,) instance scores, ``areas`` (N,) px^2. As in HRNet and
    MMPose: visit instances by decreasing score, keep the current one and drop the remaining ones
    whose OKS with it is > ``thr``. Ties are visited later-index-first, like the official
    ``scores.argsort()[::-1]`` (made deterministic with a stable sort).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    n = keypoints.shape[0]
    if n == 0:
        return np.zeros((0,), dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64).reshape(n)
    areas = np.asarray(areas, dtype=np.float64).reshape(n)
    kscores = None
    if keypoint_scores is not None:
        kscores = np.asarray(keypoint_scores, dtype=np.float64).reshape(n, -1)
    order = np.argsort(scores, kind="stable")[::-1]
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        if rest.size == 0:
            break
        ovr = oks_iou(keypoints[i], keypoints[rest], areas[i], areas[rest], sigmas, vis_thr,
                      None if kscores is None else kscores[i], None if kscores is None else kscores[rest])
        order = rest[ovr <= thr]
    return np.asarray(keep, dtype=np.int64)
