"""MPII in the HRNet/MMPose json-list format -> list[PoseInstance].

Each record is ``{image, center, scale, joints (16x2), joints_vis (16)}`` with Matlab 1-based pixel
coordinates and ``scale`` in units of 200 px. As in MMPose 1.x ``MpiiDataset`` (and HRNet's ``mpii.py``):
``center[1] += 15 * scale`` (when ``center[0] != -1``), then ``center -= 1`` and ``joints -= 1`` (0-based),
``scale *= 200`` (pixels); the person box is then enlarged by ``padding`` (1.25, MMPose's
``GetBBoxCenterScale``). ``PoseInstance.scale`` holds the padded size; the dataset fixes the aspect ratio.

``image_id`` and ``ann_id`` are the **index of the record in the json list** (not the image file's number):
MPII is scored per record (one person, one prediction), so a results file with record-index ``image_id``
can be matched to the json list (``slimpose evaluate --metric pckh``); several records of one image file
have different ids.

Head boxes (for PCKh): an optional per-record ``head_box: [x1, y1, x2, y2]`` (1-based like the joints; a
slimpose extension of the HRNet json list, written by ``synth_mpii``) becomes ``PoseInstance.head_box``
(0-based). The official boxes come from ``mpii_gt_val.mat`` (``headboxes_src``, shape (2, 2, N) for the
N val records in json order; ``headbox_file=``, read with scipy), which then win over ``head_box``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from slimpose.data.coco import number_array, resolve_image_root
from slimpose.data.instances import InstanceList, PoseInstance, SkipCounter
from slimpose.data.metainfo import MPII, DatasetInfo
from slimpose.utils.io import SlimposeInputError, load_json

__all__ = ["load_mpii_instances", "MPII_PIXEL_STD", "read_mpii_headboxes", "headboxes_from_src"]

MPII_PIXEL_STD = 200.0


def load_mpii_instances(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    skip_unlabelled: bool = False,
    padding: float = 1.25,
    info: DatasetInfo = MPII,
    headbox_file: str | os.PathLike | None = None,
) -> InstanceList:
    """Load MPII person records; ``image_root`` defaults to ``<json dir>/images`` if it exists, else
    ``<json dir>``. ``image_id`` = ``ann_id`` = the record's index in the list (also with
    ``skip_unlabelled``). ``headbox_file``: the official ``mpii_gt_val.mat`` (one head box per record)."""
    data = load_json(json_file, "MPII annotation file")
    if not isinstance(data, list):
        raise SlimposeInputError(f"{json_file}: MPII annotations must be a json list of "
                                 "{image, center, scale, joints, joints_vis} records")
    official = None
    if headbox_file is not None:
        official = read_mpii_headboxes(headbox_file, num_records=len(data), what=f"head boxes for {json_file}")
    names = [r.get("image", "") if isinstance(r, dict) else "" for r in data]
    root: Path = resolve_image_root(json_file, [n for n in names if isinstance(n, str)], image_root)
    k = info.num_keypoints
    counter = SkipCounter()
    out: list[PoseInstance] = []
    for i, rec in enumerate(data):
        record = f"record [{i}]"
        if not isinstance(rec, dict):
            raise SlimposeInputError(f"{json_file}: {record} is not an object")
        missing = [f for f in ("image", "center", "scale", "joints", "joints_vis") if f not in rec]
        if missing:
            raise SlimposeInputError(f"{json_file}: {record}: missing field(s) {', '.join(missing)}")
        if not isinstance(rec["image"], str) or not rec["image"]:
            raise SlimposeInputError(f"{json_file}: {record}: 'image' must be a file name")
        record = f"record [{i}] ({rec['image']})"
        center = number_array(rec["center"], 2, json_file, record, "center")
        s200 = number_array(rec["scale"], 1, json_file, record, "scale")[0]
        if s200 <= 0:
            raise SlimposeInputError(f"{json_file}: {record}: 'scale' must be > 0, got {s200}")
        joints = number_array(rec["joints"], 2 * k, json_file, record, "joints").reshape(k, 2)
        vis = number_array(rec["joints_vis"], k, json_file, record, "joints_vis")
        if skip_unlabelled and not np.any(vis > 0):
            counter.add("unlabelled")
            continue
        if center[0] != -1:
            center[1] += 15.0 * s200
        center = center - 1.0
        joints = joints - 1.0
        size = s200 * MPII_PIXEL_STD
        head_box = None
        if official is not None:
            head_box = official[i]
        elif rec.get("head_box") is not None:
            head_box = number_array(rec["head_box"], 4, json_file, record, "head_box") - 1.0
        out.append(PoseInstance(
            image_path=os.path.abspath(root / rec["image"]),
            image_id=i,
            bbox=np.array([center[0] - 0.5 * size, center[1] - 0.5 * size, size, size]),
            keypoints=joints,
            visible=vis,
            bbox_score=1.0,
            ann_id=i,
            area=size * size,
            center=center,
            scale=np.array([size, size]) * padding,
            head_box=head_box,
        ))
    return InstanceList(out, source=str(json_file), skipped=counter.counts)


def headboxes_from_src(headboxes_src: np.ndarray, source: str = "headboxes_src") -> np.ndarray:
    """``headboxes_src`` of ``mpii_gt_val.mat`` (2, 2, N) -> (N, 4) ``x1y1x2y2`` as stored (1-based).

    As HRNet (``headboxes_src[1, :, :] - headboxes_src[0, :, :]``) and MMPose (``transpose([2, 0, 1])``,
    ``headbox[1] - headbox[0]``): axis 0 is the corner (top-left, bottom-right), axis 1 is x / y, axis 2
    the record.
    """
    arr = np.asarray(headboxes_src, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[:2] != (2, 2):
        raise SlimposeInputError(f"{source}: 'headboxes_src' must have shape (2, 2, N), got {arr.shape}")
    return np.transpose(arr, (2, 0, 1)).reshape(-1, 4)


def read_mpii_headboxes(path: str | os.PathLike, num_records: int | None = None,
                        what: str = "MPII head-box file") -> np.ndarray:
    """The official head boxes (``mpii_gt_val.mat``, key ``headboxes_src``) as (N, 4) ``x1y1x2y2``,
    0-based; ``num_records``: the json list they belong to (one box per record, json order)."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"{what} not found: {path}")
    try:
        from scipy.io import loadmat
    except ImportError:
        raise SlimposeInputError(f"{path}: reading a .mat head-box file needs scipy (pip install scipy)") from None
    try:
        mat = loadmat(str(path))
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad input file
        raise SlimposeInputError(f"{path}: cannot be read as a MATLAB .mat file ({type(e).__name__}: {e})") from None
    if "headboxes_src" not in mat:
        raise SlimposeInputError(f"{path}: no 'headboxes_src' (the official mpii_gt_val.mat has it)")
    boxes = headboxes_from_src(mat["headboxes_src"], str(path)) - 1.0
    if num_records is not None and boxes.shape[0] != num_records:
        raise SlimposeInputError(f"{path}: {boxes.shape[0]} head boxes for {num_records} MPII records "
                                 "(the boxes must be those of this json list, in its order)")
    if not np.all(np.isfinite(boxes)):
        raise SlimposeInputError(f"{path}: 'headboxes_src' contains NaN or infinite values")
    return boxes
