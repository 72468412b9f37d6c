"""3-D pose metrics of the lifting family (numpy, millimetres in, millimetres out).

The definitions are those of the official code every lifting paper evaluates with:

* ``mpjpe`` (Protocol #1), ``p_mpjpe`` (Protocol #2), ``n_mpjpe`` (Protocol #3) and ``mpjve`` follow
  VideoPose3D ``common/loss.py`` (``mpjpe``, ``p_mpjpe``, ``n_mpjpe``, ``mean_velocity_error``); the way
  ``mpjve`` pools several sequences and the action-wise protocol follow VideoPose3D ``run.py``
  (``evaluate``, ``run_evaluation``) and HoT ``common/utils.py`` (``mpjpe_by_action_p1``,
  ``print_error_action``).
* ``pck3d`` / ``auc3d`` follow the MPI-INF-3DHP test release (``mpii_compute_3d_pck.m``) as its Python
  ports compute it: PCK at 150 mm, AUC = mean PCK over the 31 thresholds 0, 5, ..., 150 mm, on the 14
  joints without pelvis, spine and head, a joint correct when its error is ``< threshold``.

Poses are ``(N, J, 3)`` arrays (N frames, J joints); errors are in the input's unit (millimetres for
slimpose). Bad shapes and NaN / inf raise ``ValueError``. See ``docs/lifting.md`` (Metrics).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = [
    "H36M_ACTIONS", "H36M_ACTION_RENAMES", "MPI_INF_3DHP_ROOT", "MPI_INF_3DHP_PCK_JOINTS",
    "MPI_INF_3DHP_PCK_THRESHOLD", "MPI_INF_3DHP_AUC_THRESHOLDS",
    "root_relative", "joint_errors", "mpjpe", "procrustes_align", "p_mpjpe", "n_mpjpe", "mpjve", "acceleration_error",
    "pck3d", "auc3d", "action_group", "action_groups", "actionwise", "evaluate_poses_3d", "evaluate_3dhp",
]

# The 15 Human3.6M action groups, in the order of HoT ``define_actions``.
H36M_ACTIONS = (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
    "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether",
)
# Raw .cdf action names renamed by VideoPose3D ``data/prepare_data_h36m.py``.
H36M_ACTION_RENAMES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}

# MPI-INF-3DHP, 17-joint test order: 0 head_top, 1 neck, 2-4 right shoulder/elbow/wrist, 5-7 left
# shoulder/elbow/wrist, 8-10 right hip/knee/ankle, 11-13 left hip/knee/ankle, 14 pelvis, 15 spine, 16 head.
MPI_INF_3DHP_ROOT = 14
MPI_INF_3DHP_PCK_JOINTS = tuple(range(14))  # pelvis, spine and head excluded
MPI_INF_3DHP_PCK_THRESHOLD = 150.0
MPI_INF_3DHP_AUC_THRESHOLDS = tuple(float(t) for t in np.arange(0, 151, 5))  # 0:5:150 mm, 31 values


# ----------------------------------------------------------------------------------------- validation
def _poses(poses: Any, name: str = "poses") -> np.ndarray:
    """``poses`` as a finite float64 ``(N, J, 3)`` array with N, J >= 1, else ValueError."""
    arr = np.asarray(poses)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (N, J, 3), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {arr.shape}")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        frame = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{name} has {int(bad.sum())} NaN / inf values (first in frame {frame})")
    return arr


def _pair(pred: Any, gt: Any) -> tuple[np.ndarray, np.ndarray]:
    p, g = _poses(pred, "pred"), _poses(gt, "gt")
    if p.shape != g.shape:
        raise ValueError(f"pred {p.shape} and gt {g.shape} must have the same shape (N, J, 3)")
    return p, g


def _labels(values: Any, n: int, name: str) -> np.ndarray:
    """A 1-D array of ``n`` labels (sequence ids or action names)."""
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of one entry per frame ({n}), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise ValueError(f"{name} has NaN / inf entries")
    return arr


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x))


# ------------------------------------------------------------------------------------------ metrics
def root_relative(poses: Any, root: int = 0) -> np.ndarray:
    """Poses minus their root joint (the root becomes 0), as VideoPose3D's ``inputs_3d[:, :, 0] = 0``
    after ``pos_3d[:, 1:] -= pos_3d[:, :1]``."""
    arr = _poses(poses)
    j = arr.shape[1]
    if isinstance(root, bool) or not isinstance(root, (int, np.integer)) or not 0 <= int(root) < j:
        raise ValueError(f"root joint {root!r} must be an index in [0, {j})")
    r = int(root)
    return arr - arr[:, r: r + 1]


def joint_errors(pred: Any, gt: Any) -> np.ndarray:
    """``(N, J)`` Euclidean distances ``||pred - gt||``."""
    p, g = _pair(pred, gt)
    return np.linalg.norm(p - g, axis=-1)


def mpjpe(pred: Any, gt: Any, *, per_frame: bool = False) -> float | np.ndarray:
    """MPJPE (Protocol #1): mean over frames and joints of ``||pred - gt||`` (VideoPose3D ``mpjpe``).
    ``per_frame=True`` gives the ``(N,)`` per-frame means instead."""
    e = joint_errors(pred, gt).mean(axis=1)
    return e if per_frame else _mean(e)


def procrustes_align(pred: Any, gt: Any) -> np.ndarray:
    """``pred`` aligned per frame onto ``gt`` by the least-squares similarity transform (translation,
    uniform scale, proper rotation), exactly as VideoPose3D ``p_mpjpe``: SVD of ``X0^T Y0`` of the centred,
    Frobenius-normalised point sets, ``R = V U^T``, reflections removed by flipping the last column of V
    (and the last singular value) where ``det(R) < 0``, scale ``trace * |X0| / |Y0|``.

    A frame whose points all coincide (zero norm) gets scale 0 (the aligned pose is the gt centroid)
    instead of the official code's division by zero.
    """
    p, g = _pair(pred, gt)
    mu_x = g.mean(axis=1, keepdims=True)
    mu_y = p.mean(axis=1, keepdims=True)
    x0, y0 = g - mu_x, p - mu_y
    norm_x = np.sqrt(np.sum(x0 ** 2, axis=(1, 2), keepdims=True))
    norm_y = np.sqrt(np.sum(y0 ** 2, axis=(1, 2), keepdims=True))
    safe_x = np.where(norm_x > 0, norm_x, 1.0)
    safe_y = np.where(norm_y > 0, norm_y, 1.0)
    x0, y0 = x0 / safe_x, y0 / safe_y
    h = np.matmul(x0.transpose(0, 2, 1), y0)
    u, s, vt = np.linalg.svd(h)
    v = vt.transpose(0, 2, 1)
    r = np.matmul(v, u.transpose(0, 2, 1))
    sign = np.sign(np.linalg.det(r))  # +-1: R is orthogonal
    v[:, :, -1] *= sign[:, None]
    s[:, -1] *= sign
    r = np.matmul(v, u.transpose(0, 2, 1))
    trace = s.sum(axis=1)[:, None, None]
    a = trace * norm_x / safe_y
    t = mu_x - a * np.matmul(mu_y, r)
    return a * np.matmul(p, r) + t


def p_mpjpe(pred: Any, gt: Any, *, per_frame: bool = False) -> float | np.ndarray:
    """P-MPJPE (Protocol #2): MPJPE after per-frame similarity Procrustes alignment of pred onto gt
    (VideoPose3D ``p_mpjpe``; see ``procrustes_align``)."""
    g = _poses(gt, "gt")
    e = np.linalg.norm(procrustes_align(pred, g) - g, axis=-1).mean(axis=1)
    return e if per_frame else _mean(e)


def n_mpjpe(pred: Any, gt: Any, *, per_frame: bool = False) -> float | np.ndarray:
    """N-MPJPE (Protocol #3): MPJPE of ``s * pred`` with the per-frame least-squares scale
    ``s = sum_j <gt_j, pred_j> / sum_j ||pred_j||^2`` (VideoPose3D ``n_mpjpe``; no rotation, no
    translation). A frame with ``pred`` all zero gets ``s = 0``."""
    p, g = _pair(pred, gt)
    num = np.sum(g * p, axis=(1, 2))
    den = np.sum(p * p, axis=(1, 2))
    s = np.where(den > 0, num / np.where(den > 0, den, 1.0), 0.0)
    e = np.linalg.norm(s[:, None, None] * p - g, axis=-1).mean(axis=1)
    return e if per_frame else _mean(e)


def _sequence_velocity_errors(pred: np.ndarray, gt: np.ndarray, sequence: Any,
                              order: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per sequence (with > ``order`` frames): the mean over its ``order``-th time differences and joints of
    ``||d pred - d gt||`` (order 1: VideoPose3D's ``mean_velocity_error``; 2: the acceleration error) and the
    frame count."""
    n = pred.shape[0]
    if sequence is None:
        inverse = np.zeros(n, dtype=np.int64)
    else:
        _, inverse = np.unique(_labels(sequence, n, "sequence"), return_inverse=True)
        inverse = inverse.reshape(-1)
    order_idx = np.argsort(inverse, kind="stable")  # frames of one id together, in their array order
    ids = inverse[order_idx]
    same = ids[order:] == ids[:-order] if n > order else np.zeros(0, bool)  # windows inside one sequence
    dv = np.diff(pred[order_idx], n=order, axis=0) - np.diff(gt[order_idx], n=order, axis=0)
    pair_err = np.linalg.norm(dv, axis=-1).mean(axis=1)[same]
    pair_seq = ids[order:][same]
    num_seq = int(ids.max()) + 1
    pairs = np.bincount(pair_seq, minlength=num_seq)
    sums = np.bincount(pair_seq, weights=pair_err, minlength=num_seq)
    frames = np.bincount(ids, minlength=num_seq)
    keep = pairs > 0
    return sums[keep] / pairs[keep], frames[keep]


def mpjve(pred: Any, gt: Any, sequence: Any = None) -> float:
    """MPJVE: mean per-joint velocity error ``mean ||diff(pred) - diff(gt)||`` with first differences
    over time inside each sequence (VideoPose3D ``mean_velocity_error``).

    ``sequence`` (N,) holds a sequence id per frame; the frames of one id, in their array order, are that
    sequence, and no difference is taken across ids. ``None``: the N frames are one sequence. Several
    sequences are pooled as VideoPose3D ``run.py: evaluate`` does: each sequence's error weighted by its
    number of frames. Sequences of one frame have no velocity and are left out; ValueError when no
    sequence has two frames.
    """
    p, g = _pair(pred, gt)
    errs, frames = _sequence_velocity_errors(p, g, sequence)
    if errs.size == 0:
        raise ValueError("MPJVE needs a sequence of at least 2 frames")
    return float(np.sum(errs * frames) / np.sum(frames))


def acceleration_error(pred: Any, gt: Any, sequence: Any = None) -> float:
    """Acceleration error: mean per-joint ``||(p_{t+1} - 2 p_t + p_{t-1}) - (g_{t+1} - 2 g_t + g_{t-1})||`` inside
    each sequence (the second-difference error of HMMR / VIBE, the "ACC-ERR" StarPose reports), in the poses'
    unit per frame^2; sequences pooled and ``sequence`` as :func:`mpjve`. ValueError when no sequence has 3
    frames."""
    p, g = _pair(pred, gt)
    errs, frames = _sequence_velocity_errors(p, g, sequence, order=2)
    if errs.size == 0:
        raise ValueError("the acceleration error needs a sequence of at least 3 frames")
    return float(np.sum(errs * frames) / np.sum(frames))


def _thresholds(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0 or not np.isfinite(arr).all() or (arr < 0).any():
        raise ValueError(f"{name} must be finite non-negative numbers, got {values!r}")
    return arr


def _selected_errors(pred: Any, gt: Any, joints: Sequence[int] | None) -> np.ndarray:
    e = joint_errors(pred, gt)
    if joints is None:
        return e
    idx = np.asarray(joints).reshape(-1)
    if idx.size == 0 or not np.issubdtype(idx.dtype, np.integer) or idx.min() < 0 or idx.max() >= e.shape[1]:
        raise ValueError(f"joints {list(np.asarray(joints).reshape(-1))} must be indices in [0, {e.shape[1]})")
    return e[:, idx]


def pck3d(pred: Any, gt: Any, threshold: float = MPI_INF_3DHP_PCK_THRESHOLD,
          joints: Sequence[int] | None = None) -> float:
    """3-D PCK in percent: share of (frame, joint) pairs with ``||pred - gt|| < threshold``
    (``mpii_compute_3d_pck.m``, strict ``<`` as its Python ports). ``joints=None``: all joints; the
    official MPI-INF-3DHP joints are ``MPI_INF_3DHP_PCK_JOINTS``."""
    t = _thresholds(threshold, "threshold")
    if t.size != 1:
        raise ValueError(f"threshold must be one number, got {threshold!r}")
    return float(np.mean(_selected_errors(pred, gt, joints) < t[0]) * 100.0)


def auc3d(pred: Any, gt: Any, thresholds: Sequence[float] = MPI_INF_3DHP_AUC_THRESHOLDS,
          joints: Sequence[int] | None = None) -> float:
    """3-D AUC in percent: the mean of ``pck3d`` over ``thresholds`` (default 0, 5, ..., 150 mm, the 31
    values of ``mpii_compute_3d_pck.m``)."""
    t = _thresholds(thresholds, "thresholds")
    e = _selected_errors(pred, gt, joints)
    return float(np.mean([np.mean(e < v) for v in t]) * 100.0)


# ------------------------------------------------------------------------------- action-wise protocol
def action_group(name: str) -> str:
    """The Human3.6M action group of an action name: the text before the first space, as VideoPose3D
    ``run.py`` (``action.split(' ')[0]``) and HoT ``mpjpe_by_action_p1``, with the raw names
    ``TakingPhoto`` / ``WalkingDog`` renamed ``Photo`` / ``WalkDog`` as VideoPose3D's data preparation does.
    ``"Walking 1" -> "Walking"``, ``"WalkingDog 1" -> "WalkDog"``."""
    if not isinstance(name, (str, np.str_)):
        raise ValueError(f"an action name must be a string, got {name!r}")
    group = str(name).split(" ")[0]
    if not group:
        raise ValueError(f"action name {name!r} has no group (empty before the first space)")
    return H36M_ACTION_RENAMES.get(group, group)


def action_groups(actions: Any) -> np.ndarray:
    """``action_group`` of every entry of a 1-D array of action names (a unicode array)."""
    arr = np.asarray(actions)
    if arr.ndim != 1:
        raise ValueError(f"actions must be a 1-D array of names, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(str)
    names, inverse = np.unique(arr, return_inverse=True)
    return np.asarray([action_group(n) for n in names])[inverse.reshape(-1)]


def _group_order(groups: np.ndarray) -> list[str]:
    """The 15 Human3.6M groups in their official order first, then any other group by first appearance."""
    present = set(groups.tolist())
    known = [g for g in H36M_ACTIONS if g in present]
    _, first = np.unique(groups, return_index=True)
    others = [str(groups[i]) for i in sorted(first) if str(groups[i]) not in H36M_ACTIONS]
    return known + others


def actionwise(errors: Any, actions: Any) -> tuple[dict[str, float], float]:
    """The action-wise protocol: per-frame ``errors`` (N,) averaged per action group (frame-weighted,
    VideoPose3D ``evaluate`` per action / HoT ``AccumLoss``), then the unweighted mean over the groups
    (``np.mean(errors_p1)`` of ``run_evaluation``, HoT ``print_error_action``). Returns
    ``({group: mean}, mean over groups)``."""
    e = np.asarray(errors, dtype=np.float64)
    if e.ndim != 1 or e.size == 0:
        raise ValueError(f"errors must be a non-empty 1-D array of per-frame errors, got shape {e.shape}")
    if not np.isfinite(e).all():
        raise ValueError("errors has NaN / inf entries")
    groups = action_groups(_labels(actions, e.size, "actions"))
    per_group = {g: _mean(e[groups == g]) for g in _group_order(groups)}
    return per_group, float(np.mean(list(per_group.values())))


# ----------------------------------------------------------------------------------------- summaries
def _mpjve_or_none(pred: np.ndarray, gt: np.ndarray, sequence: Any, order: int = 1) -> float | None:
    errs, frames = _sequence_velocity_errors(pred, gt, sequence, order)
    return float(np.sum(errs * frames) / np.sum(frames)) if errs.size else None


def evaluate_poses_3d(pred: Any, gt: Any, sequence: Any = None, action: Any = None) -> dict[str, Any]:
    """Every Human3.6M metric of ``pred`` against ``gt`` (both ``(N, J, 3)``, already root-relative).

    Returns ``MPJPE``, ``P-MPJPE``, ``N-MPJPE``, ``MPJVE`` (``None`` when no sequence has 2 frames; without
    ``sequence`` the N frames are one sequence), ``ACCEL`` (:func:`acceleration_error`, ``None`` without a
    3-frame sequence), ``num_frames``, ``num_joints`` (and ``num_sequences``).
    With ``action`` (N,) also ``actions``: ``groups`` (per action group: ``frames``, ``MPJPE``,
    ``P-MPJPE``, ``N-MPJPE``, ``MPJVE`` when ``sequence`` is given), ``num_groups`` and the action-wise
    means of each metric (``MPJVE`` only when every group has one), as VideoPose3D ``run_evaluation``.
    """
    p, g = _pair(pred, gt)
    n = p.shape[0]
    seq = None if sequence is None else _labels(sequence, n, "sequence")
    e1, e2, e3 = mpjpe(p, g, per_frame=True), p_mpjpe(p, g, per_frame=True), n_mpjpe(p, g, per_frame=True)
    out: dict[str, Any] = {"MPJPE": _mean(e1), "P-MPJPE": _mean(e2), "N-MPJPE": _mean(e3),
                           "MPJVE": _mpjve_or_none(p, g, seq), "ACCEL": _mpjve_or_none(p, g, seq, order=2),
                           "num_frames": n, "num_joints": p.shape[1]}
    if seq is not None:
        out["num_sequences"] = int(np.unique(seq).size)
    if action is None:
        return out
    groups = action_groups(_labels(action, n, "action"))
    if seq is not None:
        seq_names, seq_ids = np.unique(seq, return_inverse=True)
        group_names, group_ids = np.unique(groups, return_inverse=True)
        codes = np.unique(seq_ids.reshape(-1) * len(group_names) + group_ids.reshape(-1))
        counts = np.bincount(codes // len(group_names), minlength=len(seq_names))
        if (counts > 1).any():
            raise ValueError(f"sequence {seq_names[np.argmax(counts > 1)]!r} spans several action groups")
    per_group: dict[str, dict[str, Any]] = {}
    for name in _group_order(groups):
        m = groups == name
        row: dict[str, Any] = {"frames": int(m.sum()), "MPJPE": _mean(e1[m]), "P-MPJPE": _mean(e2[m]),
                               "N-MPJPE": _mean(e3[m])}
        if seq is not None:
            row["MPJVE"] = _mpjve_or_none(p[m], g[m], seq[m])
        per_group[name] = row
    summary: dict[str, Any] = {"groups": per_group, "num_groups": len(per_group)}
    for key in ("MPJPE", "P-MPJPE", "N-MPJPE"):
        summary[key] = float(np.mean([row[key] for row in per_group.values()]))
    vel = [row.get("MPJVE") for row in per_group.values()]
    summary["MPJVE"] = float(np.mean(vel)) if all(v is not None for v in vel) else None
    out["actions"] = summary
    return out


def evaluate_3dhp(pred: Any, gt: Any, valid: Any = None) -> dict[str, Any]:
    """MPI-INF-3DHP test metrics of root-relative (joint 14) 17-joint poses: ``PCK`` (@150 mm) and ``AUC``
    (0:5:150 mm) on ``MPI_INF_3DHP_PCK_JOINTS`` and ``MPJPE`` on all joints, over the frames where
    ``valid`` (N,) is true (all frames when ``None``), pooled over every frame and joint."""
    p, g = _pair(pred, gt)
    if p.shape[1] != 17:
        raise ValueError(f"MPI-INF-3DHP poses have 17 joints (test order), got {p.shape[1]}")
    n = p.shape[0]
    if valid is not None:
        v = _labels(valid, n, "valid")
        if not (v.dtype == bool or (np.issubdtype(v.dtype, np.number) and np.isin(v, (0, 1)).all())):
            raise ValueError("valid must hold booleans or 0 / 1")
        keep = v.astype(bool)
        if not keep.any():
            raise ValueError("valid marks no frame as valid")
        p, g = p[keep], g[keep]
    return {"PCK": pck3d(p, g, MPI_INF_3DHP_PCK_THRESHOLD, MPI_INF_3DHP_PCK_JOINTS),
            "AUC": auc3d(p, g, MPI_INF_3DHP_AUC_THRESHOLDS, MPI_INF_3DHP_PCK_JOINTS),
            "MPJPE": mpjpe(p, g), "num_frames": int(p.shape[0]), "num_joints": 17}
