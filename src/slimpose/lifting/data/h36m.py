"""Human3.6M in VideoPose3D's layout (and MMPose's ``*_body3d.npz``) -> ``list[Sequence3D]``.

VideoPose3D layout (``DATASETS.md``, ``data/prepare_data_h36m.py``, ``data/prepare_data_2d_h36m_generic.py``):

* ``data_3d_h36m.npz``: key ``positions_3d`` = a pickled dict ``subject -> action -> float32 [T, 32, 3]``,
  world coordinates in metres;
* ``data_2d_h36m_<source>.npz`` (``gt``, ``cpn_ft_h36m_dbb``, ...): ``positions_2d`` = ``subject -> action ->
  [4 x float32 [T, 17, 2]]`` (one array per camera, in :data:`~slimpose.lifting.cameras.H36M_CAMERA_IDS`
  order), pixels, and ``metadata`` = ``{'layout_name': 'h36m', 'num_joints': 17, 'keypoints_symmetry':
  [left, right]}`` (the ``gt`` file has no ``layout_name``).

Loading follows ``common/h36m_dataset.py`` (``remove_joints`` 32 -> 17, shoulders re-parented to the thorax)
and ``run.py`` (world -> camera per camera, root-relative, the 2-D trimmed to the mocap length, 2-D
normalised by the image width, ``fetch`` over the split's subjects). Pickled members are read by the
restricted unpickler of :mod:`slimpose.lifting.data.safe_load`, never by ``np.load(allow_pickle=True)``.
"""

from __future__ import annotations

import os
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from slimpose.lifting.cameras import (H36M_CAMERA_INDEX, H36M_IMAGE_SIZES, Camera,
                                      normalize_screen_coordinates)
from slimpose.lifting.data.safe_load import load_npz
from slimpose.lifting.data.sequence import Sequence3D
from slimpose.utils.io import SlimposeInputError, atomic_path

__all__ = [
    "H36M_PARENTS_32", "H36M_JOINTS_LEFT_32", "H36M_JOINTS_RIGHT_32", "H36M_REMOVED_JOINTS", "H36M_KEPT_JOINTS",
    "H36M_PARENTS", "H36M_JOINTS_LEFT", "H36M_JOINTS_RIGHT", "H36M_JOINT_NAMES", "H36M_TRAIN_SUBJECTS",
    "H36M_TEST_SUBJECTS", "H36M_FPS", "H36M_METADATA", "SkeletonReduction", "Keypoints2DMetadata",
    "remove_joints", "reduce_h36m_joints", "h36m_subjects", "read_videopose3d_3d", "read_videopose3d_2d",
    "load_videopose3d", "load_h36m", "write_videopose3d_npz", "parse_h36m_imgname", "load_mmpose_body3d",
]

# --------------------------------------------------------------------------------------------------
# skeleton (VideoPose3D common/h36m_dataset.py, common/skeleton.py)

H36M_PARENTS_32: tuple[int, ...] = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12,
                                    16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26, 27, 28, 27, 30)
H36M_JOINTS_LEFT_32: tuple[int, ...] = (6, 7, 8, 9, 10, 16, 17, 18, 19, 20, 21, 22, 23)
H36M_JOINTS_RIGHT_32: tuple[int, ...] = (1, 2, 3, 4, 5, 24, 25, 26, 27, 28, 29, 30, 31)
#: ``Human36mDataset(remove_static_joints=True)`` removes these of the 32 mocap joints.
H36M_REMOVED_JOINTS: tuple[int, ...] = (4, 5, 9, 10, 11, 16, 20, 21, 22, 23, 24, 28, 29, 30, 31)
#: The 32-joint indices kept, in the 17-joint order.
H36M_KEPT_JOINTS: tuple[int, ...] = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)
#: 17-joint parents after ``remove_joints`` and ``parents[11] = parents[14] = 8`` (shoulders -> thorax).
H36M_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_JOINTS_LEFT: tuple[int, ...] = (4, 5, 6, 11, 12, 13)
H36M_JOINTS_RIGHT: tuple[int, ...] = (1, 2, 3, 14, 15, 16)
#: Names of the 17 joints (MMPose ``configs/_base_/datasets/h36m.py``).
H36M_JOINT_NAMES: tuple[str, ...] = (
    "root", "right_hip", "right_knee", "right_foot", "left_hip", "left_knee", "left_foot", "spine", "thorax",
    "neck_base", "head", "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
    "right_wrist")
H36M_TRAIN_SUBJECTS: tuple[str, ...] = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS: tuple[str, ...] = ("S9", "S11")
H36M_FPS = 50.0


@dataclass(frozen=True)
class SkeletonReduction:
    """The result of VideoPose3D's ``Skeleton.remove_joints``: kept old indices and the new skeleton."""

    kept: tuple[int, ...]
    parents: tuple[int, ...]
    joints_left: tuple[int, ...]
    joints_right: tuple[int, ...]


def remove_joints(parents: Sequence[int], joints_left: Sequence[int], joints_right: Sequence[int],
                  joints_to_remove: Iterable[int]) -> SkeletonReduction:
    """VideoPose3D ``Skeleton.remove_joints``: a kept joint whose parent is removed takes its nearest kept
    ancestor; indices are renumbered in order; left / right lists keep their kept members. (The H36M
    loader then re-parents the shoulders, new joints 11 and 14, to the thorax, 8: :data:`H36M_PARENTS`.)"""
    remove = set(int(j) for j in joints_to_remove)
    n = len(parents)
    kept = tuple(j for j in range(n) if j not in remove)
    new_index = {old: new for new, old in enumerate(kept)}
    out = []
    for j in kept:
        p = parents[j]
        while p in remove:
            p = parents[p]
        out.append(-1 if p < 0 else new_index[p])
    return SkeletonReduction(kept, tuple(out), tuple(new_index[j] for j in joints_left if j in new_index),
                             tuple(new_index[j] for j in joints_right if j in new_index))


def reduce_h36m_joints(positions: np.ndarray) -> np.ndarray:
    """``[..., 32, C]`` mocap joints -> ``[..., 17, C]`` (:data:`H36M_KEPT_JOINTS`, VideoPose3D's
    ``remove_joints`` on ``positions``)."""
    positions = np.asarray(positions)
    if positions.ndim < 2 or positions.shape[-2] != 32:
        raise ValueError(f"reduce_h36m_joints: expected [..., 32, C], got {positions.shape}")
    return positions[..., list(H36M_KEPT_JOINTS), :]


def h36m_subjects(split: str) -> tuple[str, ...]:
    """``'train'`` -> S1, S5, S6, S7, S8; ``'test'`` -> S9, S11 (VideoPose3D / MixSTE / HoT / KTPFormer)."""
    if split == "train":
        return H36M_TRAIN_SUBJECTS
    if split == "test":
        return H36M_TEST_SUBJECTS
    raise ValueError(f"unknown Human3.6M split {split!r}: expected 'train' or 'test'")


# --------------------------------------------------------------------------------------------------
# metadata of a 2-D file

@dataclass(frozen=True)
class Keypoints2DMetadata:
    """The ``metadata`` member of a VideoPose3D 2-D file."""

    num_joints: int = 17
    keypoints_symmetry: tuple[tuple[int, ...], tuple[int, ...]] = (H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT)
    layout_name: str | None = "h36m"

    def to_dict(self) -> dict[str, Any]:
        """The dict VideoPose3D writes (``layout_name`` first, omitted when ``None`` as in the gt file)."""
        out: dict[str, Any] = {} if self.layout_name is None else {"layout_name": self.layout_name}
        out["num_joints"] = int(self.num_joints)
        out["keypoints_symmetry"] = [list(self.keypoints_symmetry[0]), list(self.keypoints_symmetry[1])]
        return out

    @classmethod
    def from_dict(cls, d: Any, source: str) -> "Keypoints2DMetadata":
        if not isinstance(d, dict) or "num_joints" not in d or "keypoints_symmetry" not in d:
            raise SlimposeInputError(f"{source}: 'metadata' must be a dict with 'num_joints' and "
                                     f"'keypoints_symmetry', got {type(d).__name__}")
        try:
            left, right = d["keypoints_symmetry"]
            return cls(int(d["num_joints"]), (tuple(int(j) for j in left), tuple(int(j) for j in right)),
                       None if d.get("layout_name") is None else str(d["layout_name"]))
        except (TypeError, ValueError) as e:
            raise SlimposeInputError(f"{source}: malformed 'metadata' ({e})") from None


#: ``prepare_data_2d_h36m_generic.py``'s ``h36m_metadata``.
H36M_METADATA = Keypoints2DMetadata()


# --------------------------------------------------------------------------------------------------
# reading the VideoPose3D files

def _check_array(a: Any, source: str, where: str, last: int, joints: Sequence[int] | None = None) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != 3 or a.shape[-1] < last or not np.issubdtype(a.dtype, np.number):
        got = f"shape {a.shape} dtype {a.dtype}" if isinstance(a, np.ndarray) else type(a).__name__
        raise SlimposeInputError(f"{source}: {where} must be a numeric array [T, J, {last}], got {got}")
    if joints is not None and a.shape[1] not in joints:
        raise SlimposeInputError(f"{source}: {where} has {a.shape[1]} joints, expected one of {list(joints)}")
    if not np.isfinite(a[..., :last]).all():
        raise SlimposeInputError(f"{source}: {where} holds NaN or inf")
    return a


def _nested(obj: Any, source: str, key: str) -> dict[str, dict[str, Any]]:
    if not isinstance(obj, dict) or not all(isinstance(v, dict) for v in obj.values()):
        raise SlimposeInputError(f"{source}: '{key}' must be a dict subject -> action -> data, "
                                 f"got {type(obj).__name__}")
    return obj


def read_videopose3d_3d(path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """``positions_3d`` of ``data_3d_h36m.npz``: ``subject -> action -> [T, J, 3]`` (J = 32 as released; 17
    accepted: already reduced), world coordinates, metres, as stored."""
    data = load_npz(path, keys=("positions_3d",), object_keys=("positions_3d",), required=("positions_3d",),
                    what="VideoPose3D 3-D file")
    pos = _nested(data["positions_3d"], str(path), "positions_3d")
    for s, actions in pos.items():
        for a, arr in actions.items():
            _check_array(arr, str(path), f"positions_3d[{s!r}][{a!r}]", 3, (32, 17))
    return pos


def read_videopose3d_2d(path: str | os.PathLike) -> tuple[dict[str, dict[str, list[np.ndarray]]], Keypoints2DMetadata]:
    """``positions_2d`` (``subject -> action -> [array [T, J, >=2] per camera]``, pixels) and ``metadata``
    of a ``data_2d_h36m_<source>.npz``."""
    data = load_npz(path, keys=("positions_2d", "metadata"), object_keys=("positions_2d", "metadata"),
                    required=("positions_2d", "metadata"), what="VideoPose3D 2-D file")
    source = str(path)
    meta = Keypoints2DMetadata.from_dict(data["metadata"], source)
    pos = _nested(data["positions_2d"], source, "positions_2d")
    for s, actions in pos.items():
        for a, cams in actions.items():
            if not isinstance(cams, (list, tuple)):
                raise SlimposeInputError(f"{source}: positions_2d[{s!r}][{a!r}] must be a list of per-camera "
                                         f"arrays, got {type(cams).__name__}")
            for i, arr in enumerate(cams):
                _check_array(arr, source, f"positions_2d[{s!r}][{a!r}][{i}]", 2, (meta.num_joints,))
    return pos, meta


def _wanted(action: str, actions: Sequence[str] | None) -> bool:
    return actions is None or any(action.startswith(a) for a in actions)


def load_videopose3d(path_3d: str | os.PathLike, path_2d: str | os.PathLike,
                     cameras: Mapping[str, Sequence[Camera]], subjects: Sequence[str] | None = None,
                     split: str | None = None, actions: Sequence[str] | None = None,
                     strict_lengths: bool = True) -> list[Sequence3D]:
    """Sequences of ``subjects`` (each must be in both files) or of ``split`` (``'train'`` / ``'test'``: those
    of its subjects the 3-D file has, at least one), default all 3-D subjects, from a VideoPose3D 3-D file
    and 2-D file, one :class:`Sequence3D` per ``(subject, action, camera)``.

    As VideoPose3D ``run.py``: the 32 joints are reduced to 17; each camera's poses are
    ``world_to_camera(positions, orientation, translation)``; the root (joint 0) trajectory is taken out
    (``root_trajectory``) and the poses are made root-relative (joint 0 = 0); a 2-D sequence longer than the
    mocap is cut to the mocap length; a shorter one is an error (the official ``>=`` assert) unless
    ``strict_lengths=False``, which cuts the 3-D to the 2-D length instead (a slimpose option); the 2-D is
    ``normalize_screen_coordinates(kps[..., :2], res_w, res_h)``. ``actions``: keep the actions whose name
    starts with one of these (``--actions`` of ``run.py``). ``cameras``: ``subject -> 4 Camera`` with
    extrinsics (:func:`slimpose.lifting.cameras.load_h36m_cameras`). Order: subjects as given, actions in
    file order, cameras 0-3."""
    if subjects is not None and split is not None:
        raise ValueError("give subjects or split, not both")
    pos3d = read_videopose3d_3d(path_3d)
    pos2d, _ = read_videopose3d_2d(path_2d)
    s3, s2 = str(path_3d), str(path_2d)
    if split is not None:   # the split's subjects that the file has (a subset file, e.g. synthetic, is fine)
        subjects = [s for s in h36m_subjects(split) if s in pos3d]
        if not subjects:
            raise SlimposeInputError(f"{s3}: none of the {split} subjects {list(h36m_subjects(split))} is in the "
                                     f"3-D file (has {sorted(pos3d)})")
    subjects = list(subjects if subjects is not None else pos3d)
    out: list[Sequence3D] = []
    for subject in subjects:
        if subject not in pos3d:
            raise SlimposeInputError(f"{s3}: subject {subject} is missing from the 3-D file (has {sorted(pos3d)})")
        if subject not in pos2d:
            raise SlimposeInputError(f"{s2}: subject {subject} is missing from the 2-D detections")
        extra = [a for a in pos2d[subject] if a not in pos3d[subject] and _wanted(a, actions)]
        if extra:
            raise SlimposeInputError(f"{s2}: actions {extra} of {subject} have no 3-D poses in {s3}")
        cams = list(cameras.get(subject, ()))
        for action, positions in pos3d[subject].items():
            if not _wanted(action, actions):
                continue
            if action not in pos2d[subject]:
                raise SlimposeInputError(f"{s2}: action {action!r} of {subject} is missing from the 2-D detections")
            kps_cams = pos2d[subject][action]
            if len(kps_cams) != len(cams):
                raise SlimposeInputError(f"{s2}: {subject} {action!r} has {len(kps_cams)} camera(s); the camera "
                                         f"table gives {subject} {len(cams)}")
            world = positions if positions.shape[1] == 17 else reduce_h36m_joints(positions)
            world = world.astype(np.float32)
            for cam_idx, (cam, kps) in enumerate(zip(cams, kps_cams)):
                if not cam.has_extrinsics:
                    raise SlimposeInputError(f"camera {cam_idx} ({cam.id}) of {subject} has no extrinsics: "
                                             f"cannot bring {s3} into its frame")
                pos_cam = np.asarray(cam.world_to_camera(world), np.float32)
                t3, t2 = len(pos_cam), len(kps)
                if t2 > t3:      # "some videos in H3.6M contain extra frames": shorten the 2-D
                    kps = kps[:t3]
                elif t2 < t3:
                    if strict_lengths:
                        raise SlimposeInputError(
                            f"{s2}: {subject} {action!r} camera {cam_idx} has {t2} 2-D frames, fewer than the "
                            f"{t3} mocap frames of {s3} (VideoPose3D requires >=; strict_lengths=False trims the 3-D)")
                    pos_cam = pos_cam[:t2]
                w, h = cam.image_size
                out.append(Sequence3D(
                    subject=subject, action=action, camera_index=cam_idx,
                    keypoints_2d=np.asarray(normalize_screen_coordinates(
                        np.asarray(kps[..., :2], np.float32), w, h), np.float32),
                    poses_3d=pos_cam - pos_cam[:, :1], root_trajectory=pos_cam[:, 0].copy(),
                    image_size=(w, h), camera=cam, root_joint=0, fps=H36M_FPS))
    return out


def load_h36m(data_dir: str | os.PathLike, cameras: Mapping[str, Sequence[Camera]], split: str = "train",
              keypoints: str = "cpn_ft_h36m_dbb", **kwargs: Any) -> list[Sequence3D]:
    """:func:`load_videopose3d` on ``data_dir/data_3d_h36m.npz`` and ``data_dir/data_2d_h36m_<keypoints>.npz``
    (``run.py``'s ``-k``)."""
    root = Path(data_dir)
    return load_videopose3d(root / "data_3d_h36m.npz", root / f"data_2d_h36m_{keypoints}.npz", cameras,
                            split=split, **kwargs)


# --------------------------------------------------------------------------------------------------
# writing (tests, synthetic data)

def _plain_3d(positions_3d: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for s, actions in positions_3d.items():
        out[str(s)] = {}
        for a, arr in actions.items():
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            if arr.ndim != 3 or arr.shape[-1] != 3:
                raise ValueError(f"positions_3d[{s!r}][{a!r}] must be [T, J, 3], got {arr.shape}")
            out[str(s)][str(a)] = arr
    return out


def _plain_2d(positions_2d: Mapping[str, Mapping[str, Sequence[Any]]], num_joints: int
              ) -> dict[str, dict[str, list[np.ndarray]]]:
    out: dict[str, dict[str, list[np.ndarray]]] = {}
    for s, actions in positions_2d.items():
        out[str(s)] = {}
        for a, cams in actions.items():
            arrs = [np.ascontiguousarray(c, dtype=np.float32) for c in cams]
            for i, arr in enumerate(arrs):
                if arr.ndim != 3 or arr.shape[1] != num_joints or arr.shape[-1] < 2:
                    raise ValueError(f"positions_2d[{s!r}][{a!r}][{i}] must be [T, {num_joints}, 2], got {arr.shape}")
            out[str(s)][str(a)] = arrs
    return out


def write_videopose3d_npz(path_3d: str | os.PathLike | None, path_2d: str | os.PathLike | None,
                          positions_3d: Mapping[str, Mapping[str, Any]] | None = None,
                          positions_2d: Mapping[str, Mapping[str, Sequence[Any]]] | None = None,
                          metadata: Keypoints2DMetadata = H36M_METADATA) -> None:
    """Write VideoPose3D's files, atomically: ``path_3d`` gets ``positions_3d`` (``subject -> action ->
    [T, 32, 3]`` world metres; any J is written as given), ``path_2d`` gets ``positions_2d`` (``subject ->
    action -> [per-camera [T, J, 2]]`` pixels) and ``metadata`` (``Keypoints2DMetadata.to_dict()``), all as
    plain dicts / lists of float32 arrays in ``np.savez_compressed`` as ``prepare_data_h36m.py`` and
    ``prepare_data_2d_h36m_generic.py`` do; either path may be ``None`` to skip that file."""
    jobs = []
    if path_3d is not None:
        if positions_3d is None:
            raise ValueError("path_3d given without positions_3d")
        jobs.append((path_3d, {"positions_3d": _plain_3d(positions_3d)}))
    if path_2d is not None:
        if positions_2d is None:
            raise ValueError("path_2d given without positions_2d")
        jobs.append((path_2d, {"positions_2d": _plain_2d(positions_2d, metadata.num_joints),
                               "metadata": metadata.to_dict()}))
    for path, members in jobs:
        write_npz(path, members)


def write_npz(path: str | os.PathLike, members: Mapping[str, Any]) -> None:
    """``np.savez_compressed``'s layout (deflated ``<key>.npy`` members, zip64), atomically and byte-identical
    for identical content (fixed member timestamps; ``np.savez`` stamps the write time)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            with zipfile.ZipFile(f, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                for key, value in members.items():
                    info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED
                    with zf.open(info, "w", force_zip64=True) as fid:
                        np.lib.format.write_array(fid, np.asanyarray(value), allow_pickle=True)
            f.flush()
            os.fsync(f.fileno())


# --------------------------------------------------------------------------------------------------
# MMPose 1.x body3d npz

def parse_h36m_imgname(imgname: str) -> tuple[str, str, str]:
    """``'S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg'`` -> ``('S1', 'Directions_1',
    '54138969')`` (MMPose ``Human36mDataset._parse_h36m_imgname`` on the base name)."""
    base = os.path.basename(str(imgname))
    subject, rest = base.split("_", 1)
    action, rest = rest.split(".", 1)
    camera, _ = rest.split("_", 1)
    return subject, action, camera


def load_mmpose_body3d(path: str | os.PathLike, subjects: Sequence[str] | None = None,
                       image_sizes: Mapping[str, tuple[int, int]] | None = None,
                       cameras: Mapping[str, Sequence[Camera]] | None = None,
                       fps: float | None = None) -> list[Sequence3D]:
    """MMPose 1.x's ``annotation_body3d/fps*/h36m_{train,test}.npz`` (``tools/dataset_converters/
    preprocess_h36m.py``) -> one :class:`Sequence3D` per ``(subject, action, camera)``.

    Keys read: ``imgname`` ``(N,)`` (``S1/S1_Directions_1.54138969/S1_Directions_1.54138969_000001.jpg``),
    ``part`` ``(N, 17, 3)`` (pixels + visibility) and ``S`` ``(N, 17, 4)`` (camera frame, metres +
    visibility); ``center`` / ``scale`` (the person box) are not needed and not read. Frames are grouped by
    the parsed ``(subject, action, camera)`` in sorted key order, in file order within a group (MMPose
    ``Human36mDataset.get_sequence_indices``). The 2-D is normalised with the camera's image size
    (``image_sizes``, default :data:`~slimpose.lifting.cameras.H36M_IMAGE_SIZES`), the 3-D made relative
    to joint 0. ``cameras`` (optional, ``subject -> 4 Camera``) is attached to the records; MMPose's own
    ``cameras.pkl`` is not read."""
    source = str(path)
    data = load_npz(path, keys=("imgname", "part", "S"), object_keys=("imgname",),
                    required=("imgname", "part", "S"), what="MMPose body3d file")
    names = np.asarray(data["imgname"]).reshape(-1)
    part = _check_array(data["part"], source, "part", 2)
    s3d = _check_array(data["S"], source, "S", 3)
    if not (len(names) == len(part) == len(s3d)) or part.shape[1] != s3d.shape[1]:
        raise SlimposeInputError(f"{source}: imgname {names.shape}, part {part.shape} and S {s3d.shape} "
                                 "must have the same frames and joints")
    sizes = dict(H36M_IMAGE_SIZES if image_sizes is None else image_sizes)
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)
    for i, name in enumerate(names):
        if not isinstance(name, str):
            raise SlimposeInputError(f"{source}: imgname[{i}] is {type(name).__name__}, not a string")
        try:
            key = parse_h36m_imgname(name)
        except ValueError:
            raise SlimposeInputError(f"{source}: imgname[{i}] {name!r} is not of the form "
                                     "S<i>_<action>.<camera>_<frame>.jpg") from None
        groups[key].append(i)
    out: list[Sequence3D] = []
    for (subject, action, camera), idx in sorted(groups.items()):
        if subjects is not None and subject not in subjects:
            continue
        if camera not in sizes:
            raise SlimposeInputError(f"{source}: camera {camera} (of {subject} {action}) has no image size; "
                                     "pass image_sizes")
        w, h = sizes[camera]
        cam_idx = H36M_CAMERA_INDEX.get(camera)
        cam = None
        if cameras is not None and cam_idx is not None and subject in cameras:
            cam = cameras[subject][cam_idx]
        pos = s3d[idx, :, :3].astype(np.float32)
        kps = part[idx, :, :2].astype(np.float32)
        out.append(Sequence3D(
            subject=subject, action=action, camera_index=cam_idx,
            keypoints_2d=np.asarray(normalize_screen_coordinates(kps, w, h), np.float32),
            poses_3d=pos - pos[:, :1], root_trajectory=pos[:, 0].copy(), image_size=(int(w), int(h)),
            camera=cam, root_joint=0, fps=fps))
    return out
