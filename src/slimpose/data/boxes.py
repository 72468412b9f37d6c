"""Person boxes for inference: the ground-truth boxes of a COCO annotation file (with its file-name -> id
index) or a COCO detection-results file, per image id as ``(N, 5)`` arrays ``[x, y, w, h, score]``."""

from __future__ import annotations

import os

import numpy as np

from slimpose.data.coco import read_detections
from slimpose.utils.io import SlimposeInputError, load_json


def load_gt_index(path: str | os.PathLike) -> tuple[dict[str, int], dict[int, np.ndarray]]:
    """``file_name -> image id`` (basename) and ``image id -> (N,5) boxes`` (non-crowd person annotations)."""
    data = load_json(path, "annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise SlimposeInputError(f"{path}: not a COCO annotation file (no 'images' list)")
    names: dict[str, int] = {}
    for i, img in enumerate(data["images"]):
        if not isinstance(img, dict) or "file_name" not in img or "id" not in img:
            raise SlimposeInputError(f"{path}: images[{i}] needs 'file_name' and 'id'")
        names[os.path.basename(str(img["file_name"]))] = int(img["id"])
    boxes: dict[int, list[list[float]]] = {}
    for i, ann in enumerate(data.get("annotations") or []):
        if not isinstance(ann, dict) or ann.get("iscrowd", 0) or ann.get("category_id", 1) != 1:
            continue
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise SlimposeInputError(
                f"{path}: annotations[{i}] (id {ann.get('id')}): bbox must be [x, y, w, h]")
        if bbox[2] > 0 and bbox[3] > 0:
            boxes.setdefault(int(ann["image_id"]), []).append([float(v) for v in bbox] + [1.0])
    return names, {k: np.asarray(v, dtype=np.float64) for k, v in boxes.items()}


def load_detections(path: str | os.PathLike, det_thr: float = 0.0) -> dict[int, np.ndarray]:
    """COCO detection results -> ``image id -> (N,5) xywh+score`` (person category, score >= det_thr,
    positive area)."""
    out: dict[int, list[list[float]]] = {}
    for image_id, category_id, bbox, score in read_detections(path):
        if category_id != 1 or bbox[2] <= 0 or bbox[3] <= 0 or score < det_thr:
            continue
        out.setdefault(image_id, []).append([*map(float, bbox), score])
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
