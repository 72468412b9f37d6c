"""PCKh (MPII) and PCK of the box, vectorised in numpy with masks for unlabelled joints.

PCKh@0.5 follows the official MPII evaluation as ported by HRNet/MMPose (``MPIIDataset.evaluate``):
head size = 0.6 x the norm of the head-box diagonal (``SC_BIAS = 0.6``), a joint is correct when
``dist / head_size <= 0.5``, per-joint PCKh over labelled joints, and the official "Mean" is the
count-weighted mean over all joints except pelvis (6) and thorax (7) (``PCKh.mask[6:8] = True``).
PCK@0.2 uses MMPose's ``PCKAccuracy(norm_item='bbox')``: norm = max(box w, box h), correct when
``dist / norm < thr``, mean = unweighted mean over joints that have labelled gt (``avg_acc``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MPII_JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
MPII_UPPER_NECK = 8
MPII_HEAD_TOP = 9
MPII_SC_BIAS = 0.6
MPII_MEAN_EXCLUDE = (6, 7)  # pelvis, thorax: excluded from the official "Mean"
# Official summary groups (HRNet/MMPose name_value): joint pairs averaged with equal weight.
MPII_GROUPS = (
    ("Head", (9,)), ("Shoulder", (13, 12)), ("Elbow", (14, 11)), ("Wrist", (15, 10)),
    ("Hip", (3, 2)), ("Knee", (4, 1)), ("Ankle", (5, 0)),
)

__all__ = [
    "MPII_JOINT_NAMES", "MPII_SC_BIAS", "MPII_MEAN_EXCLUDE", "PCKResult", "pck_counts", "mpii_head_sizes",
    "pckh", "mpii_summary", "mpii_report", "pck_bbox",
]


@dataclass
class PCKResult:
    """Per-joint PCK (fractions in [0, 1]; NaN for a joint never labelled) and its means."""

    per_joint: np.ndarray  # (K,)
    counts: np.ndarray     # (K,) labelled joints with a usable normaliser
    mean: float            # the headline mean (see pckh / pck_bbox)
    mean_joint: float      # MMPose style: unweighted mean over joints with labelled gt
    threshold: float
    num_skipped: int = 0   # instances without a usable normaliser (left out)


def _as_arrays(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray) -> tuple[np.ndarray, ...]:
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.ndim == 2:
        pred, gt = pred[None], gt[None]
    vis = np.asarray(visible, dtype=np.float64).reshape(gt.shape[:2])
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred {pred.shape} and gt {gt.shape} must both be (N, K, 2)")
    return pred, gt, vis > 0


def pck_counts(
    pred: np.ndarray, gt: np.ndarray, mask: np.ndarray, norm: np.ndarray, thr: float, inclusive: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Correct and valid counts per joint: ``|pred - gt| / norm`` vs ``thr``; (K,), (K,).

    ``mask`` (N, K) marks labelled joints; instances with ``norm <= 0`` or non-finite are left out.
    """
    norm = np.asarray(norm, dtype=np.float64).reshape(-1)
    usable = np.isfinite(norm) & (norm > 0)
    valid = mask & usable[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.linalg.norm(pred - gt, axis=-1) / np.where(usable, norm, 1.0)[:, None]
    hit = (dist <= thr) if inclusive else (dist < thr)
    correct = (hit & valid).sum(axis=0)
    return correct.astype(np.int64), valid.sum(axis=0).astype(np.int64)


def _per_joint(correct: np.ndarray, counts: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(counts > 0, correct / np.maximum(counts, 1), np.nan)


def mpii_head_sizes(
    gt: np.ndarray, visible: np.ndarray, head_boxes: np.ndarray | None = None, sc_bias: float = MPII_SC_BIAS
) -> np.ndarray:
    """Head size per instance (N,): ``sc_bias * ||head box diagonal||`` when a box is given.

    ``head_boxes`` (N, 4) x1y1x2y2 (rows may be NaN). Without a box the head segment is used,
    ``||head_top - upper_neck||`` (no 0.6 factor: the 0.6 maps the box diagonal to about that
    length), and 0 (instance left out) when either joint is unlabelled.
    """
    _, gt, vis = _as_arrays(gt, gt, visible)
    seg = np.linalg.norm(gt[:, MPII_HEAD_TOP] - gt[:, MPII_UPPER_NECK], axis=-1)
    seg = np.where(vis[:, MPII_HEAD_TOP] & vis[:, MPII_UPPER_NECK], seg, 0.0)
    if head_boxes is None:
        return seg
    boxes = np.asarray(head_boxes, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] != gt.shape[0]:
        raise ValueError(f"{boxes.shape[0]} head boxes for {gt.shape[0]} instances")
    diag = sc_bias * np.linalg.norm(boxes[:, 2:] - boxes[:, :2], axis=-1)
    return np.where(np.isfinite(diag), diag, seg)


def pckh(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    head_boxes: np.ndarray | None = None,
    thr: float = 0.5,
    exclude: tuple[int, ...] = MPII_MEAN_EXCLUDE,
    inclusive: bool = True,
) -> PCKResult:
    """PCKh@thr for MPII-ordered joints; ``pred``/``gt`` (N, 16, 2), ``visible`` (N, 16).

    ``mean`` is the official MPII/HRNet "Mean": sum(correct) / sum(labelled) over the joints not
    in ``exclude`` (pelvis and thorax by default; ``exclude=()`` uses all 16 joints).
    """
    pred, gt, vis = _as_arrays(pred, gt, visible)
    sizes = mpii_head_sizes(gt, vis, head_boxes)
    correct, counts = pck_counts(pred, gt, vis, sizes, thr, inclusive)
    keep = np.ones(gt.shape[1], dtype=bool)
    keep[list(exclude)] = False
    total = counts[keep].sum()
    per_joint = _per_joint(correct, counts)
    mean = float(correct[keep].sum() / total) if total > 0 else float("nan")
    labelled = counts > 0
    mean_joint = float(per_joint[labelled].mean()) if labelled.any() else float("nan")
    skipped = int(np.sum(~(np.isfinite(sizes) & (sizes > 0))))
    return PCKResult(per_joint, counts, mean, mean_joint, float(thr), skipped)


def mpii_summary(result: PCKResult) -> dict[str, float]:
    """The official MPII table (Head, Shoulder, ..., Ankle, Mean) from a ``pckh`` result, in %."""
    out = {name: float(100.0 * np.mean(result.per_joint[list(idx)])) for name, idx in MPII_GROUPS}
    out["Mean"] = 100.0 * result.mean
    return out


def mpii_report(result: PCKResult) -> dict[str, object]:
    """Everything ``slimpose evaluate --metric pckh`` reports, in % (None where a joint is never labelled):
    ``PCKh`` (the official Mean), the MPII table (``Head`` ... ``Ankle``, ``Mean``), ``per_joint`` (name ->
    PCKh), ``per_joint_count`` (labelled joints scored), ``PCKh_joint_mean`` (unweighted over labelled joints),
    ``thr``, ``num_skipped`` (instances without a usable head size, left out)."""
    def pct(v: float) -> float | None:
        return None if not np.isfinite(v) else float(v)

    table = {k: pct(v) for k, v in mpii_summary(result).items()}
    return {
        "PCKh": table["Mean"],
        **table,
        "per_joint": {n: pct(100.0 * v) for n, v in zip(MPII_JOINT_NAMES, result.per_joint)},
        "per_joint_count": {n: int(c) for n, c in zip(MPII_JOINT_NAMES, result.counts)},
        "PCKh_joint_mean": pct(100.0 * result.mean_joint),
        "thr": float(result.threshold),
        "num_skipped": int(result.num_skipped),
    }


def pck_bbox(
    pred: np.ndarray,
    gt: np.ndarray,
    visible: np.ndarray,
    bboxes: np.ndarray,
    thr: float = 0.2,
    inclusive: bool = False,
) -> PCKResult:
    """PCK@thr of the box: norm = max(w, h) of each instance's xywh box (MMPose convention).

    ``mean`` is MMPose's ``avg_acc``: unweighted mean of per-joint PCK over joints with labelled gt.
    """
    pred, gt, vis = _as_arrays(pred, gt, visible)
    boxes = np.asarray(bboxes, dtype=np.float64).reshape(-1, 4)
    if boxes.shape[0] != gt.shape[0]:
        raise ValueError(f"{boxes.shape[0]} boxes for {gt.shape[0]} instances")
    norm = np.max(boxes[:, 2:], axis=1)
    correct, counts = pck_counts(pred, gt, vis, norm, thr, inclusive)
    per_joint = _per_joint(correct, counts)
    labelled = counts > 0
    mean = float(per_joint[labelled].mean()) if labelled.any() else float("nan")
    skipped = int(np.sum(~(np.isfinite(norm) & (norm > 0))))
    return PCKResult(per_joint, counts, mean, mean, float(thr), skipped)
