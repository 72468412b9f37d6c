"""MPII in the HRNet/MMPose json-list format -> list[PoseInstance].

Each record is ``{image, center, scale, joints (16x2), joints_vis (16)}`` with Matlab 1-based pixel
coordinates and ``scale`` in units of 200 px. As in MMPose 1.x ``MpiiDataset`` (and HRNet's ``mpii.py``):
``center[1] += 15 * scale`` (when ``center[0] != -1``), then ``center -= 1`` and ``joints -= 1`` (0-based),
``scale *= 200`` (pixels); the person box is then enlarged by ``padding`` (1.25, MMPose's
``GetBBoxCenterScale``). ``PoseInstance.scale`` holds the padded size; the dataset fixes the aspect ratio.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from slimpose.data.coco import number_array, resolve_image_root
from slimpose.data.instances import InstanceList, PoseInstance, SkipCounter
from slimpose.data.metainfo import MPII, DatasetInfo
from slimpose.utils.io import SlimposeInputError, load_json

__all__ = ["load_mpii_instances", "MPII_PIXEL_STD"]

MPII_PIXEL_STD = 200.0


def load_mpii_instances(
    json_file: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    skip_unlabelled: bool = False,
    padding: float = 1.25,
    info: DatasetInfo = MPII,
) -> InstanceList:
    """Load MPII person records; ``image_root`` defaults to ``<json dir>/images`` if it exists, else
    ``<json dir>``."""
    data = load_json(json_file, "MPII annotation file")
    if not isinstance(data, list):
        raise SlimposeInputError(f"{json_file}: MPII annotations must be a json list of "
                                 "{image, center, scale, joints, joints_vis} records")
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
        stem = Path(rec["image"]).stem
        image_id = int(stem) if stem.isdigit() else i
        out.append(PoseInstance(
            image_path=os.path.abspath(root / rec["image"]),
            image_id=image_id,
            bbox=np.array([center[0] - 0.5 * size, center[1] - 0.5 * size, size, size]),
            keypoints=joints,
            visible=vis,
            bbox_score=1.0,
            ann_id=i,
            area=size * size,
            center=center,
            scale=np.array([size, size]) * padding,
        ))
    return InstanceList(out, source=str(json_file), skipped=counter.counts)
