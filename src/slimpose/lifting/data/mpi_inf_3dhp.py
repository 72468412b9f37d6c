"""MPI-INF-3DHP as P-STMO prepares it (``data_train_3dhp.npz`` / ``data_test_3dhp.npz``) -> ``list[Sequence3D]``.

Layout (P-STMO ``common/data_to_npz_3dhp.py``, ``data_to_npz_3dhp_test.py``; read back by
``common/load_data_3dhp_mae.py``), one pickled member ``data``:

* train: ``"S<i> Seq<j>" -> [ {camera: {'data_2d': [T, 17, 2], 'data_3d': [T, 17, 3]}}, fps ]`` with the
  camera keys ``'0', '1', '2', '4', '5', '6', '7', '8'`` (strings), the 17 joints picked from the 28-joint
  annotation by :data:`MPI_INF_3DHP_JOINT_SET`, 3-D from ``univ_annot3`` (the universal, height-normalised
  skeleton, camera frame, millimetres);
* test: ``"TS1".."TS6" -> {'data_2d', 'data_3d', 'valid'}`` (``valid``: the valid-frame mask).

As P-STMO: the root is the pelvis, joint 14 (poses made relative to it, its trajectory kept aside), the 2-D
is ``normalize_screen_coordinates`` with ``w = h = 2048`` for training and TS1-TS4 and ``1920 x 1080`` for
TS5 / TS6. slimpose converts the 3-D to metres (``scale_3d=0.001``) like its Human3.6M records; pass
``scale_3d=1.0`` to keep P-STMO's millimetres.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np

from slimpose.lifting.cameras import normalize_screen_coordinates
from slimpose.lifting.data.safe_load import load_npz
from slimpose.lifting.data.sequence import Sequence3D
from slimpose.utils.io import SlimposeInputError

__all__ = ["MPI_INF_3DHP_JOINT_SET", "MPI_INF_3DHP_JOINT_NAMES", "MPI_INF_3DHP_ROOT", "MPI_INF_3DHP_JOINTS_LEFT",
           "MPI_INF_3DHP_JOINTS_RIGHT", "MPI_INF_3DHP_TRAIN_CAMERAS", "MPI_INF_3DHP_TRAIN_IMAGE_SIZE",
           "MPI_INF_3DHP_TEST_IMAGE_SIZES", "load_3dhp_npz"]

#: The 28-joint annotation indices of the 17 joints (P-STMO's and MMPose's ``joint_set``).
MPI_INF_3DHP_JOINT_SET: tuple[int, ...] = (7, 5, 14, 15, 16, 9, 10, 11, 23, 24, 25, 18, 19, 20, 4, 3, 6)
MPI_INF_3DHP_JOINT_NAMES: tuple[str, ...] = (
    "head_top", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle", "pelvis",
    "spine", "head")
MPI_INF_3DHP_ROOT = 14
MPI_INF_3DHP_JOINTS_LEFT: tuple[int, ...] = (5, 6, 7, 11, 12, 13)
MPI_INF_3DHP_JOINTS_RIGHT: tuple[int, ...] = (2, 3, 4, 8, 9, 10)
MPI_INF_3DHP_TRAIN_CAMERAS: tuple[int, ...] = (0, 1, 2, 4, 5, 6, 7, 8)
MPI_INF_3DHP_TRAIN_IMAGE_SIZE: tuple[int, int] = (2048, 2048)
MPI_INF_3DHP_TEST_IMAGE_SIZES: dict[str, tuple[int, int]] = {
    "TS1": (2048, 2048), "TS2": (2048, 2048), "TS3": (2048, 2048), "TS4": (2048, 2048),
    "TS5": (1920, 1080), "TS6": (1920, 1080),
}


def _array(a: Any, source: str, where: str, last: int, frames: int | None = None) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != 3 or a.shape[1] != 17 or a.shape[2] < last \
            or not np.issubdtype(a.dtype, np.number):
        got = f"shape {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__
        raise SlimposeInputError(f"{source}: {where} must be a numeric array [T, 17, {last}], got {got}")
    if frames is not None and len(a) != frames:
        raise SlimposeInputError(f"{source}: {where} has {len(a)} frames, data_2d has {frames}")
    if not np.isfinite(a[..., :last]).all():
        raise SlimposeInputError(f"{source}: {where} holds NaN or inf")
    return a


def _record(subject: str, action: str, cam: int | None, item: Any, size: tuple[int, int], scale_3d: float,
            source: str, where: str, fps: float | None, valid: np.ndarray | None = None) -> Sequence3D:
    if not isinstance(item, dict) or "data_2d" not in item or "data_3d" not in item:
        raise SlimposeInputError(f"{source}: {where} must be a dict with 'data_2d' and 'data_3d'")
    kps = _array(item["data_2d"], source, f"{where}['data_2d']", 2)
    pos = _array(item["data_3d"], source, f"{where}['data_3d']", 3, len(kps))[..., :3].astype(np.float64) * scale_3d
    pos = pos.astype(np.float32)
    root = pos[:, MPI_INF_3DHP_ROOT]
    w, h = size
    return Sequence3D(
        subject=subject, action=action, camera_index=cam,
        keypoints_2d=np.asarray(normalize_screen_coordinates(kps[..., :2].astype(np.float32), w, h), np.float32),
        poses_3d=pos - root[:, None], root_trajectory=root.copy(), image_size=(int(w), int(h)),
        camera=None, root_joint=MPI_INF_3DHP_ROOT, fps=fps, valid=valid)


def load_3dhp_npz(path: str | os.PathLike, split: str | None = None, scale_3d: float = 0.001,
                  train_image_size: tuple[int, int] = MPI_INF_3DHP_TRAIN_IMAGE_SIZE,
                  test_image_sizes: Mapping[str, tuple[int, int]] | None = None) -> list[Sequence3D]:
    """P-STMO's ``data_train_3dhp.npz`` or ``data_test_3dhp.npz`` -> :class:`Sequence3D` records.

    ``split``: ``'train'`` / ``'test'``, or ``None`` to tell from the content (a ``[cameras, fps]`` list per
    sequence = train). Train: one record per ``(subject, sequence, camera)`` (``"S1 Seq1"`` -> subject
    ``S1``, action ``Seq1``, ``camera_index`` = the camera key as int, ``fps`` from the file), in file order.
    Test: one record per sequence (subject = action = ``"TS<i>"``, ``camera_index=None``), ``valid`` =
    ``valid != 0``. 3-D: ``data_3d * scale_3d`` (mm -> m by default), relative to the pelvis (joint 14, set
    to 0), its trajectory in ``root_trajectory``; 2-D normalised by the sequence's image size."""
    source = str(path)
    data = load_npz(path, keys=("data",), object_keys=("data",), required=("data",), what="MPI-INF-3DHP npz")["data"]
    if not isinstance(data, dict) or not data:
        raise SlimposeInputError(f"{source}: 'data' must be a non-empty dict sequence -> data, "
                                 f"got {type(data).__name__}")
    if split is None:
        first = next(iter(data.values()))
        split = "train" if isinstance(first, (list, tuple)) else "test"
    if split not in ("train", "test"):
        raise ValueError(f"unknown MPI-INF-3DHP split {split!r}: expected 'train' or 'test'")
    sizes = dict(MPI_INF_3DHP_TEST_IMAGE_SIZES if test_image_sizes is None else test_image_sizes)
    out: list[Sequence3D] = []
    for seq, value in data.items():
        seq = str(seq)
        if split == "train":
            if not isinstance(value, (list, tuple)) or len(value) != 2 or not isinstance(value[0], dict):
                raise SlimposeInputError(f"{source}: data[{seq!r}] must be [ {{camera: {{data_2d, data_3d}}}}, fps ] "
                                         "(a training file)")
            parts = seq.split(" ")
            if len(parts) != 2:
                raise SlimposeInputError(f"{source}: training sequence key {seq!r} is not '<subject> <sequence>'")
            try:
                fps = float(value[1])
            except (TypeError, ValueError):
                raise SlimposeInputError(f"{source}: data[{seq!r}][1] (fps) is not a number") from None
            for cam, item in value[0].items():
                try:
                    cam_idx = int(cam)
                except (TypeError, ValueError):
                    raise SlimposeInputError(f"{source}: camera key {cam!r} of {seq!r} is not a number") from None
                out.append(_record(parts[0], parts[1], cam_idx, item, tuple(train_image_size), scale_3d, source,
                                   f"data[{seq!r}][0][{cam!r}]", fps))
        else:
            if not isinstance(value, dict) or "valid" not in value:
                raise SlimposeInputError(f"{source}: data[{seq!r}] must be a dict with 'data_2d', 'data_3d' and "
                                         "'valid' (a test file)")
            if seq not in sizes:
                raise SlimposeInputError(f"{source}: no image size for test sequence {seq!r}; pass test_image_sizes")
            valid = np.asarray(value["valid"]).reshape(-1)
            if not np.issubdtype(valid.dtype, np.number) and valid.dtype != bool:
                raise SlimposeInputError(f"{source}: data[{seq!r}]['valid'] must be numeric")
            n = len(value.get("data_2d", ())) if isinstance(value.get("data_2d"), np.ndarray) else None
            if n is not None and len(valid) != n:
                raise SlimposeInputError(f"{source}: data[{seq!r}]['valid'] has {len(valid)} frames, "
                                         f"data_2d has {n}")
            out.append(_record(seq, seq, None, value, sizes[seq], scale_3d, source, f"data[{seq!r}]", None,
                               valid != 0))
    return out
