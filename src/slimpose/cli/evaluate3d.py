"""``slimpose evaluate3d``: score 3-D pose predictions against their ground truth.

Both files are ``.npz`` archives (read with ``allow_pickle=False``) holding ``poses_3d`` (N, J, 3) in
millimetres and optionally ``sequence`` (N,) (integer ids or a unicode array) and ``action`` (N,) (a
unicode array of Human3.6M action names); the ground truth may also hold ``valid`` (N,) (MPI-INF-3DHP's
valid-frame mask, used by ``--metric 3dhp``). Where both files hold ``sequence`` or ``action`` they must
agree. Poses are made root-relative (joint 0; joint 14 for ``--metric 3dhp``) before scoring.

``--metric h36m`` (default): MPJPE, P-MPJPE, N-MPJPE, MPJVE (VideoPose3D ``common/loss.py``), the acceleration error and, with
actions, the action-wise protocol. ``--metric 3dhp``: PCK@150 mm and AUC (0:5:150 mm) on the 14
MPI-INF-3DHP joints and MPJPE, over the valid frames. Definitions: ``docs/lifting.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
import numpy as np

from slimpose.lifting.metrics import MPI_INF_3DHP_ROOT, evaluate_3dhp, evaluate_poses_3d, root_relative
from slimpose.utils.io import SlimposeInputError

KEYS = ("poses_3d", "sequence", "action", "valid")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="GT.npz",
                        help="ground truth: poses_3d (N, J, 3) in mm, optional sequence (N,), action (N,), "
                             "valid (N,)")
    parser.add_argument("--pred", required=True, metavar="PRED.npz",
                        help="predictions: poses_3d (N, J, 3) in mm, frames in the order of --gt")
    parser.add_argument("--metric", choices=("h36m", "3dhp"), default="h36m",
                        help="h36m: MPJPE / P-MPJPE / N-MPJPE / MPJVE and the action-wise protocol (default); "
                             "3dhp: MPI-INF-3DHP PCK@150 mm, AUC and MPJPE (17 joints, test order)")
    parser.add_argument("--root", type=int, default=None,
                        help="root joint subtracted before scoring (default 0; 14 for --metric 3dhp)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def _warn(message: str) -> None:
    print(f"slimpose evaluate3d: warning: {message}", file=sys.stderr)


def load_poses_npz(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a poses ``.npz`` (``poses_3d`` and the optional per-frame keys), checked; every
    problem is a SlimposeInputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"npz file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        raise SlimposeInputError(f"{path}: holds a single array (.npy); expected an .npz archive with 'poses_3d'")
    if not magic.startswith(b"PK"):
        raise SlimposeInputError(f"{path}: not an .npz archive (np.savez writes a zip of .npy arrays)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise SlimposeInputError(f"{path}: not a readable .npz archive ({e})") from None
    out: dict[str, np.ndarray] = {}
    with archive:
        if "poses_3d" not in archive.files:
            raise SlimposeInputError(f"{path}: no 'poses_3d' array (keys: {', '.join(archive.files) or 'none'})")
        for key in KEYS:
            if key not in archive.files:
                continue
            try:
                out[key] = archive[key]
            except ValueError as e:
                if "pickle" in str(e):
                    raise SlimposeInputError(
                        f"{path}: '{key}' is an object array, which is not loaded (allow_pickle=False); store "
                        f"strings as a numpy unicode array, e.g. np.asarray(names, dtype=str)") from None
                raise SlimposeInputError(f"{path}: '{key}' cannot be read ({e})") from None
            except (OSError, EOFError, zipfile.BadZipFile) as e:
                raise SlimposeInputError(f"{path}: '{key}' cannot be read ({e})") from None
    _check_arrays(out, path)
    return out


def _check_arrays(arrays: dict[str, np.ndarray], path: Path) -> None:
    poses = arrays["poses_3d"]
    if not (np.issubdtype(poses.dtype, np.floating) or np.issubdtype(poses.dtype, np.integer)):
        raise SlimposeInputError(f"{path}: poses_3d must be numeric, got dtype {poses.dtype}")
    if poses.ndim != 3 or poses.shape[-1] != 3 or poses.shape[0] == 0 or poses.shape[1] == 0:
        raise SlimposeInputError(f"{path}: poses_3d must have shape (N, J, 3) with N, J >= 1, got {poses.shape}")
    bad = ~np.isfinite(poses)
    if bad.any():
        frame, joint = (int(i) for i in np.argwhere(bad)[0][:2])
        raise SlimposeInputError(f"{path}: poses_3d has {int(bad.sum())} NaN / inf values (first at frame "
                                 f"{frame}, joint {joint})")
    n = poses.shape[0]
    for key in ("sequence", "action", "valid"):
        if key not in arrays:
            continue
        arr = arrays[key]
        if arr.ndim != 1 or arr.shape[0] != n:
            raise SlimposeInputError(f"{path}: '{key}' must have shape ({n},) (one entry per frame of poses_3d), "
                                     f"got {arr.shape}")
        if arr.dtype.kind == "S":
            try:
                arrays[key] = arr = arr.astype(str)
            except UnicodeDecodeError:
                raise SlimposeInputError(f"{path}: '{key}' holds bytes that are not text") from None
        kinds = {"sequence": "iuU", "action": "U", "valid": "biuf"}[key]
        if arr.dtype.kind not in kinds:
            what = {"sequence": "integer ids or a unicode array", "action": "a unicode array of action names",
                    "valid": "booleans or 0 / 1"}[key]
            raise SlimposeInputError(f"{path}: '{key}' must be {what}, got dtype {arr.dtype}")
        if key == "valid" and not (arr.dtype == bool or np.isin(arr, (0, 1)).all()):
            raise SlimposeInputError(f"{path}: 'valid' must hold booleans or 0 / 1")


def _merge(key: str, gt: dict[str, np.ndarray], pred: dict[str, np.ndarray], gt_path: str,
           pred_path: str) -> np.ndarray | None:
    """The per-frame ``key`` of either file; where both have it, they must agree."""
    a, b = gt.get(key), pred.get(key)
    if a is None or b is None:
        return a if b is None else b
    if a.dtype.kind != b.dtype.kind or not np.array_equal(a, b):
        diff = np.flatnonzero(a.astype(str) != b.astype(str))
        where = f" (first at frame {int(diff[0])}: {b[diff[0]]!r} vs {a[diff[0]]!r})" if diff.size else ""
        raise SlimposeInputError(f"{pred_path}: '{key}' differs from the one of {gt_path}{where}")
    return a


def _fmt(value: float | None, width: int = 9) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"


def run(args: argparse.Namespace) -> int:
    gt = load_poses_npz(args.gt)
    pred = load_poses_npz(args.pred)
    g, p = gt["poses_3d"], pred["poses_3d"]
    if p.shape != g.shape:
        raise SlimposeInputError(f"{args.pred}: poses_3d has shape {p.shape} (N frames, J joints), but "
                                 f"{args.gt} has {g.shape}")
    num_joints = g.shape[1]
    if args.metric == "3dhp" and num_joints != 17:
        raise SlimposeInputError(f"{args.gt}: --metric 3dhp needs the 17 MPI-INF-3DHP joints in test order, "
                                 f"got {num_joints}")
    root = (MPI_INF_3DHP_ROOT if args.metric == "3dhp" else 0) if args.root is None else args.root
    if not 0 <= root < num_joints:
        raise SlimposeInputError(f"--root {root} is not a joint of {args.gt} ({num_joints} joints)")
    sequence = _merge("sequence", gt, pred, args.gt, args.pred)
    action = _merge("action", gt, pred, args.gt, args.pred)
    if "valid" in pred:
        _warn(f"{args.pred}: 'valid' is read from the ground truth only; ignored")
    if "valid" in gt and args.metric != "3dhp":
        _warn(f"{args.gt}: 'valid' is used by --metric 3dhp only; every frame is scored")
    g_rel, p_rel = root_relative(g, root), root_relative(p, root)
    extent = float(np.abs(g_rel).max())
    if extent < 10.0:
        _warn(f"{args.gt}: root-relative coordinates span at most {extent:.3g}: evaluate3d expects millimetres "
              "(metres x 1000)")

    if args.metric == "3dhp":
        valid = gt.get("valid")
        if valid is None:
            _warn(f"{args.gt}: no 'valid' mask: every frame is scored")
        elif not valid.astype(bool).any():
            raise SlimposeInputError(f"{args.gt}: 'valid' marks no frame as valid")
        report = evaluate_3dhp(p_rel, g_rel, valid)
        report["root"] = root
        if args.json:
            print(json.dumps(report))
            return 0
        print(f"MPI-INF-3DHP evaluation: {args.pred} vs {args.gt} ({report['num_frames']} valid frames of "
              f"{g.shape[0]}, root joint {root}, mm)")
        print(f"PCK@150mm (14 joints):         {_fmt(report['PCK'], 0)} %")
        print(f"AUC 0:5:150mm (14 joints):     {_fmt(report['AUC'], 0)} %")
        print(f"MPJPE (all 17 joints):         {_fmt(report['MPJPE'], 0)} mm")
        return 0

    try:
        report = evaluate_poses_3d(p_rel, g_rel, sequence=sequence, action=action)
    except ValueError as e:  # sequence / action consistency
        raise SlimposeInputError(f"{args.gt}: {e}") from None
    report["root"] = root
    if args.json:
        print(json.dumps(report))
        return 0
    seqs = f", {report['num_sequences']} sequences" if "num_sequences" in report else ""
    print(f"3-D pose evaluation: {args.pred} vs {args.gt} ({report['num_frames']} frames, {num_joints} joints"
          f"{seqs}, root joint {root}, mm)")
    print(f"MPJPE   (P1): {_fmt(report['MPJPE'])} mm")
    print(f"P-MPJPE (P2): {_fmt(report['P-MPJPE'])} mm")
    print(f"N-MPJPE (P3): {_fmt(report['N-MPJPE'])} mm")
    print(f"MPJVE       : {_fmt(report['MPJVE'])} mm")
    print(f"ACCEL       : {_fmt(report['ACCEL'])} mm/frame^2")
    actions = report.get("actions")
    if actions:
        cols = ("MPJPE", "P-MPJPE", "N-MPJPE", "MPJVE")
        print(f"action-wise ({actions['num_groups']} groups: mean per group, then mean over groups):")
        print(f"  {'action':<14}{'frames':>8}" + "".join(f"{c:>10}" for c in cols))
        for name, row in actions["groups"].items():
            print(f"  {name:<14}{row['frames']:>8}" + "".join(" " + _fmt(row.get(c)) for c in cols))
        print(f"  {'Average':<14}{'':>8}" + "".join(" " + _fmt(actions.get(c)) for c in cols))
    return 0
