"""COCO-style keypoint json -> list[PoseInstance], from ground-truth boxes or a detection-results file.

Reads COCO, CrowdPose, AI Challenger, OCHuman, PoseTrack18 and sub-JHMDB annotation files unchanged.
Ground truth follows MMPose 1.x ``BaseCocoStyleDataset``: crowd annotations and (optionally) annotations
without a labelled keypoint are dropped, boxes are clipped to ``[0, W-1] x [0, H-1]`` and kept only
when the clipped width and height are > 0. Detection results (``[{image_id, category_id, bbox, score}]``)
are filtered by category and score like MMPose's ``_load_detection_results`` + ``bbox_score_thr``.

Skipped records are counted in ``InstanceList.skipped``; zero-area boxes (in ground truth or in a
detection file) are skipped with one summary ``UserWarning`` per file, never silently.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from slimpose.data.instances import InstanceList, PoseInstance, SkipCounter
from slimpose.data.metainfo import DatasetInfo
from slimpose.utils.io import SlimposeInputError, load_json

__all__ = ["load_coco_instances", "resolve_image_root", "number_array", "read_detections"]


def number_array(value: Any, size: int | None, path: str | os.PathLike, record: str,
                 field: str) -> np.ndarray:
    """Turn a json list of numbers into a float64 array; raise a SlimposeInputError naming file + record."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise SlimposeInputError(f"{path}: {record}: '{field}' must be a list of numbers, "
                                 f"got {str(value)[:80]}") from None
    if size is not None and arr.size != size:
        raise SlimposeInputError(f"{path}: {record}: '{field}' has {arr.size} values, expected {size}")
    if not np.all(np.isfinite(arr)):
        raise SlimposeInputError(f"{path}: {record}: '{field}' contains NaN or infinite values")
    return arr


def resolve_image_root(ann_file: str | os.PathLike, file_names: Sequence[str],
                       image_root: str | os.PathLike | None) -> Path:
    """Folder that ``file_name`` entries are relative to.

    An explicit ``image_root`` wins. Otherwise the first of ``<ann dir>/images``, ``<ann dir>``,
    ``<parent>/images``, ``<parent>`` (the slimpose synthetic layout), ``<parent>/{split}`` and
    ``<parent>/images/{split}`` for ``*_{split}.json`` names (COCO's
    ``annotations/person_keypoints_val2017.json`` + ``val2017/``) and the grandparent (PoseTrack18
    names files relative to the ``posetrack18/`` root, two levels above ``annotations/val/``) in which
    one of the first images exists; failing that ``<ann dir>/images`` if it exists, else ``<ann dir>``.
    """
    if image_root is not None:
        return Path(image_root)
    ann_path = Path(ann_file).resolve()
    ann_dir, parent = ann_path.parent, ann_path.parent.parent
    candidates = [ann_dir / "images", ann_dir, parent / "images", parent]
    if "_" in ann_path.stem:
        split = ann_path.stem.rsplit("_", 1)[1]
        candidates += [parent / split, parent / "images" / split]
    candidates.append(parent.parent)
    probes = [f for f in file_names[:5] if f]
    for root in candidates:
        if any((root / f).is_file() for f in probes):
            return root
    return candidates[0] if candidates[0].is_dir() else ann_dir


def _image_id(value: Any, path: str | os.PathLike, record: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise SlimposeInputError(f"{path}: {record}: image id must be an integer, got {value!r}")
    try:
        as_int = int(value)
    except ValueError:
        raise SlimposeInputError(f"{path}: {record}: image id must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != as_int:
        raise SlimposeInputError(f"{path}: {record}: image id must be an integer, got {value!r}")
    return as_int


def read_detections(path: str | os.PathLike) -> list[tuple[int, int, np.ndarray, float]]:
    """A COCO detection-results json (``[{image_id, category_id, bbox: xywh, score}, ...]``) as
    ``(image_id, category_id, bbox (4,), score)`` records, every field checked (errors name file and record)."""
    dets = load_json(path, "detection results file")
    if not isinstance(dets, list):
        raise SlimposeInputError(f"{path}: detection results must be a json list of "
                                 "{image_id, category_id, bbox, score} objects")
    out = []
    for i, det in enumerate(dets):
        record = f"detection [{i}]"
        if not isinstance(det, dict) or "image_id" not in det or "bbox" not in det:
            raise SlimposeInputError(f"{path}: {record} needs 'image_id' and 'bbox'")
        bbox = number_array(det["bbox"], None, path, record, "bbox")
        if bbox.size < 4:
            raise SlimposeInputError(f"{path}: {record}: 'bbox' has {bbox.size} values, expected 4")
        score = number_array(det.get("score", 1.0), 1, path, record, "score")[0]
        out.append((_image_id(det["image_id"], path, record), det.get("category_id", 1), bbox[:4], float(score)))
    return out


def _index_images(data: dict, path: str | os.PathLike) -> dict[int, dict]:
    images = data.get("images")
    if not isinstance(images, list):
        raise SlimposeInputError(f"{path}: not a COCO-style keypoint file (no 'images' list)")
    index: dict[int, dict] = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict) or "id" not in img or not isinstance(img.get("file_name"), str):
            raise SlimposeInputError(f"{path}: images[{i}] needs an 'id' and a 'file_name'")
        img_id = _image_id(img["id"], path, f"images[{i}]")
        if img_id in index:
            raise SlimposeInputError(f"{path}: images[{i}]: duplicate image id {img_id}")
        index[img_id] = img
    return index


def _num_keypoints(data: dict, path: str | os.PathLike, info: DatasetInfo | None,
                   category_id: int) -> int | None:
    """K from the category's keypoint names, checked against ``info``; None when neither says."""
    k_cat = None
    for cat in data.get("categories") or []:
        if isinstance(cat, dict) and cat.get("id") == category_id and cat.get("keypoints"):
            k_cat = len(cat["keypoints"])
    if info is not None:
        if k_cat is not None and k_cat != info.num_keypoints:
            raise SlimposeInputError(f"{path}: category {category_id} has {k_cat} keypoints but dataset "
                                     f"'{info.name}' has {info.num_keypoints}")
        return info.num_keypoints
    return k_cat


def _clip_box(bbox: np.ndarray, img: dict) -> np.ndarray:
    """MMPose 1.x clipping: x1, x2 to [0, W-1], y1, y2 to [0, H-1]; returns xywh."""
    x, y, w, h = bbox
    x1, y1, x2, y2 = x, y, x + w, y + h
    width, height = img.get("width"), img.get("height")
    x1, y1 = max(x1, 0.0), max(y1, 0.0)
    if isinstance(width, (int, float)) and width > 0:
        x1, x2 = min(x1, width - 1.0), min(max(x2, 0.0), width - 1.0)
    if isinstance(height, (int, float)) and height > 0:
        y1, y2 = min(y1, height - 1.0), min(max(y2, 0.0), height - 1.0)
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def _warn_zero_area(path: str | os.PathLike, counter: SkipCounter, kind: str) -> None:
    n = counter.counts.get("zero_area", 0)
    if n:
        warnings.warn(f"{path}: skipped {n} {kind} with a zero-area box", UserWarning, stacklevel=3)


def load_coco_instances(
    ann_file: str | os.PathLike,
    image_root: str | os.PathLike | None = None,
    bbox_file: str | os.PathLike | None = None,
    det_score_thr: float = 0.0,
    skip_unlabelled: bool = True,
    skip_crowd: bool = True,
    info: DatasetInfo | None = None,
    category_id: int = 1,
) -> InstanceList:
    """Load person instances from a COCO-style keypoint json.

    Without ``bbox_file``: one instance per ground-truth person annotation. With ``bbox_file``: one
    instance per detected person box (score >= ``det_score_thr``), keypoints zero, ``ann_file`` used only
    for the image list. ``info`` (optional) fixes K; otherwise K comes from the category's keypoint
    names or, failing that, from the first annotation.
    """
    data = load_json(ann_file, "COCO annotation file")
    if not isinstance(data, dict):
        raise SlimposeInputError(f"{ann_file}: not a COCO-style keypoint file (top level is not an object)")
    images = _index_images(data, ann_file)
    root = resolve_image_root(ann_file, [img["file_name"] for img in images.values()], image_root)
    num_kpts = _num_keypoints(data, ann_file, info, category_id)
    if bbox_file is not None:
        return _load_detections(ann_file, bbox_file, images, root, num_kpts, det_score_thr, category_id)

    anns = data.get("annotations")
    if not isinstance(anns, list):
        raise SlimposeInputError(f"{ann_file}: no 'annotations' list")
    counter = SkipCounter()
    out: list[PoseInstance] = []
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise SlimposeInputError(f"{ann_file}: annotations[{i}] is not an object")
        record = f"annotation id {ann['id']}" if "id" in ann else f"annotations[{i}]"
        if ann.get("category_id", category_id) != category_id:
            counter.add("not_person")
            continue
        if "image_id" not in ann:
            raise SlimposeInputError(f"{ann_file}: {record}: no 'image_id'")
        img_id = _image_id(ann["image_id"], ann_file, record)
        if img_id not in images:
            raise SlimposeInputError(f"{ann_file}: {record}: image id {img_id} is not in 'images'")
        if skip_crowd and ann.get("iscrowd", 0):
            counter.add("crowd")
            continue
        if "keypoints" in ann:
            if num_kpts is None:
                n = len(ann["keypoints"]) if isinstance(ann["keypoints"], list) else -1
                if n <= 0 or n % 3:
                    raise SlimposeInputError(f"{ann_file}: {record}: 'keypoints' must be a list of "
                                             "3*K numbers")
                num_kpts = n // 3
            kpts = number_array(ann["keypoints"], 3 * num_kpts, ann_file, record, "keypoints").reshape(-1, 3)
        elif num_kpts is not None:
            kpts = np.zeros((num_kpts, 3))
        else:
            raise SlimposeInputError(f"{ann_file}: {record}: no 'keypoints' and the number of keypoints "
                                     "is unknown (the category has no 'keypoints' names); "
                                     "pass info=<DatasetInfo>")
        labelled = bool(np.any(kpts[:, 2] > 0))
        if skip_unlabelled and not labelled:
            counter.add("unlabelled")
            continue
        if "bbox" not in ann:
            counter.add("no_bbox")
            continue
        bbox = _clip_box(number_array(ann["bbox"], 4, ann_file, record, "bbox"), images[img_id])
        area = ann.get("area")
        if bbox[2] <= 0 or bbox[3] <= 0 or (isinstance(area, (int, float)) and area <= 0):
            counter.add("zero_area")
            continue
        head_box = None
        if "bbox_head" in ann:
            hx, hy, hw, hh = number_array(ann["bbox_head"], 4, ann_file, record, "bbox_head")
            head_box = np.array([hx, hy, hx + hw, hy + hh])
        ann_id = ann.get("id", i)
        out.append(PoseInstance(
            image_path=os.path.abspath(root / images[img_id]["file_name"]),
            image_id=img_id,
            bbox=bbox,
            keypoints=kpts[:, :2],
            visible=kpts[:, 2],
            bbox_score=1.0,
            ann_id=int(ann_id) if isinstance(ann_id, (int, float)) else i,
            area=float(area) if isinstance(area, (int, float)) else float(bbox[2] * bbox[3]),
            head_box=head_box,
        ))
    _warn_zero_area(ann_file, counter, "annotations")
    return InstanceList(out, source=str(ann_file), skipped=counter.counts)


def _load_detections(ann_file, bbox_file, images: dict[int, dict], root: Path, num_kpts: int | None,
                     det_score_thr: float, category_id: int) -> InstanceList:
    if num_kpts is None:
        raise SlimposeInputError(f"{ann_file}: cannot tell the number of keypoints for detection boxes "
                                 "(the category has no 'keypoints' names); pass info=<DatasetInfo>")
    counter = SkipCounter()
    out: list[PoseInstance] = []
    unknown: list[int] = []
    for img_id, det_category, bbox, score in read_detections(bbox_file):
        if img_id not in images:
            unknown.append(img_id)
            continue
        if det_category != category_id:
            counter.add("not_person")
            continue
        if score < det_score_thr:
            counter.add("low_score")
            continue
        if not (bbox[2] > 0 and bbox[3] > 0):
            counter.add("zero_area")
            continue
        out.append(PoseInstance(
            image_path=os.path.abspath(root / images[img_id]["file_name"]),
            image_id=img_id,
            bbox=bbox,
            keypoints=np.zeros((num_kpts, 2)),
            visible=np.zeros(num_kpts),
            bbox_score=float(score),
            ann_id=-1,
            area=float(bbox[2] * bbox[3]),
        ))
    if unknown:
        ids = sorted(set(unknown))
        shown = ", ".join(str(x) for x in ids[:10]) + (f", ... ({len(ids)} in all)" if len(ids) > 10 else "")
        raise SlimposeInputError(f"{bbox_file}: {len(unknown)} detections name image ids that are not in "
                                 f"{ann_file}: {shown}")
    _warn_zero_area(bbox_file, counter, "detections")
    return InstanceList(out, source=str(bbox_file), skipped=counter.counts)
