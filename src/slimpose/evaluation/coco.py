"""COCO keypoint AP/AR with the official COCOeval, plus top-down rescoring and OKS-NMS.

* ``evaluate_coco_keypoints`` runs pycocotools' ``COCOeval(gt, dt, "keypoints")`` unchanged, with
  ``params.kpt_oks_sigmas`` set to the data set's sigmas (OKS is never re-implemented here).
  xtcocotools (what MMPose uses) does not import with numpy 2; for COCO keypoints it computes
  the same numbers. ``use_area=False`` reproduces xtcocotools' ``use_area=False`` (CrowdPose, AIC
  configs of MMPose): the gt area becomes ``0.53 * bbox_w * bbox_h`` both in OKS and for the
  medium/large split. One xtcocotools difference is not reproduced: it drops detections whose
  keypoint scores are all <= 0 before matching.
* ``topdown_rescore`` / ``topdown_postprocess``: HRNet / MMPose ``CocoMetric`` (score_mode
  ``bbox_keypoint``, ``keypoint_score_thr=0.2``, ``nms_mode='oks_nms'``, ``nms_thr=0.9``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from slimpose.evaluation.nms import oks_nms
from slimpose.evaluation.results import make_coco_record, read_coco_results, validate_coco_results
from slimpose.utils.io import SlimposeInputError, load_json

# COCO person keypoint OKS sigmas (cocoapi ``Params.setKpParams``: [.26, .25, ...] / 10).
COCO_SIGMAS = np.array([0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                        0.107, 0.107, 0.087, 0.087, 0.089, 0.089], dtype=np.float64)
# Order of ``COCOeval.stats`` for iouType "keypoints" (``_summarizeKps``).
COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
# Used by the CLI when K != 17 and no sigmas are named: the mean COCO sigma (~0.067) for every keypoint.
UNIFORM_SIGMA = float(COCO_SIGMAS.mean())


class NonFinitePredictionError(ValueError):
    """A prediction holds NaN or infinite keypoints / scores (``topdown_rescore``): the model diverged. Its own
    type so that the training loop's evaluation recognises a diverged run by type, not by message text."""

__all__ = [
    "COCO_SIGMAS", "COCO_STAT_NAMES", "UNIFORM_SIGMA", "TopDownPrediction", "load_coco_gt",
    "infer_num_keypoints", "resolve_sigmas", "evaluate_coco_keypoints", "topdown_rescore",
    "topdown_postprocess", "stats_table", "dataset_sigma_names", "check_coco_gt",
]


# --------------------------------------------------------------------------- ground truth


def load_coco_gt(gt: str | os.PathLike | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Return ``(dataset_dict, source_name)`` for a COCO gt path or an already loaded dict."""
    if isinstance(gt, Mapping):
        return dict(gt), "ground-truth dict"
    data = load_json(gt, what="ground-truth file")
    if not isinstance(data, dict):
        raise SlimposeInputError(f"{gt}: a COCO ground-truth file must be a JSON object")
    return data, str(gt)


def _ann_id(ann: Mapping[str, Any]) -> str:
    """`` (id N)`` for an annotation with an id, else nothing."""
    return f" (id {ann['id']!r})" if isinstance(ann, Mapping) and "id" in ann else ""


def _numbers(value: Any, where: str, what: str) -> np.ndarray:
    """``value`` as a float array, or a SlimposeInputError naming ``where`` and the field."""
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise SlimposeInputError(f"{where}: {what} must be numbers, got {value!r}"[:300]) from None


def infer_num_keypoints(dataset: Mapping[str, Any], source: str = "ground truth") -> int:
    """K from the annotations' keypoint arrays, else from the categories' ``keypoints`` names."""
    by_length: dict[int, list[int]] = defaultdict(list)  # keypoint-array length -> annotation indices
    for i, a in enumerate(dataset.get("annotations", [])):
        if isinstance(a, Mapping):
            kp = a.get("keypoints", [])
            if isinstance(kp, np.ndarray) and kp.ndim != 1:
                raise SlimposeInputError(f"{source}: annotations[{i}]{_ann_id(a)}: keypoints must be a flat "
                                         f"[x, y, v] * K, got an array of shape {kp.shape}")
            if not isinstance(kp, (list, tuple, np.ndarray)):
                raise SlimposeInputError(f"{source}: annotations[{i}]{_ann_id(a)}: keypoints must be a list "
                                         f"[x, y, v] * K, got {type(kp).__name__}")
            by_length[len(kp)].append(i)
    by_length.pop(0, None)
    lengths = set(by_length)
    if len(lengths) > 1:
        common = max(by_length, key=lambda n: len(by_length[n]))
        odd = min((n for n in by_length if n != common), key=lambda n: by_length[n][0])
        i = by_length[odd][0]
        ann = dataset["annotations"][i]
        raise SlimposeInputError(f"{source}: annotations[{i}]{_ann_id(ann)}: {odd} keypoint values, while "
                                 f"{len(by_length[common])} annotations have {common} (lengths "
                                 f"{sorted(lengths)})")
    if lengths:
        (n,) = lengths
        if n % 3 != 0:
            raise SlimposeInputError(f"{source}: keypoint arrays of length {n} are not [x, y, v] * K")
        return n // 3
    names = [len(c.get("keypoints", [])) for c in dataset.get("categories", []) if isinstance(c, Mapping)]
    names = [n for n in names if n > 0]
    if not names:
        raise SlimposeInputError(f"{source}: cannot infer the number of keypoints (no annotations with "
                                 f"keypoints, no category with a 'keypoints' list)")
    return names[0]


def _prepare_gt(
    dataset: Mapping[str, Any], source: str, num_keypoints: int, use_area: bool
) -> dict[str, Any]:
    """Validated copy of the gt with the defaults COCOeval needs (iscrowd, num_keypoints, id)."""
    for key in ("images", "annotations", "categories"):
        if not isinstance(dataset.get(key), list):
            raise SlimposeInputError(f"{source}: missing or invalid '{key}' list")
    image_ids = set()
    for i, img in enumerate(dataset["images"]):
        if not isinstance(img, Mapping) or "id" not in img:
            raise SlimposeInputError(f"{source}: images[{i}] has no 'id'")
        image_ids.add(img["id"])
    anns = []
    seen_ids: set = set()
    for i, ann in enumerate(dataset["annotations"]):
        where = f"{source}: annotations[{i}]{_ann_id(ann)}"
        if not isinstance(ann, Mapping):
            raise SlimposeInputError(f"{where}: expected an object")
        ann = dict(ann)
        for key in ("image_id", "category_id", "keypoints", "bbox"):
            if key not in ann:
                raise SlimposeInputError(f"{where}: missing key '{key}'")
        if ann["image_id"] not in image_ids:
            raise SlimposeInputError(f"{where}: image_id {ann['image_id']!r} is not in 'images'")
        kp = _numbers(ann["keypoints"], where, "keypoints")
        if kp.shape != (3 * num_keypoints,):
            raise SlimposeInputError(f"{where}: keypoints must have {3 * num_keypoints} values, "
                                     f"got {kp.size}")
        if not np.all(np.isfinite(kp)):
            raise SlimposeInputError(f"{where}: keypoints contain NaN or infinite values")
        bbox = _numbers(ann["bbox"], where, "bbox").reshape(-1)
        if bbox.shape != (4,) or not np.all(np.isfinite(bbox)):
            raise SlimposeInputError(f"{where}: bbox must be 4 finite numbers [x, y, w, h]")
        if use_area:
            if "area" not in ann:
                raise SlimposeInputError(f"{where}: no 'area' (this data set has no segmentation areas: "
                                         f"evaluate with use_area=False / --no-area)")
            area = ann["area"]
            if isinstance(area, bool) or not isinstance(area, (int, float, np.number)):
                raise SlimposeInputError(f"{where}: area must be a number, got {area!r}")
            if not math.isfinite(float(area)):
                raise SlimposeInputError(f"{where}: area is NaN or infinite")
        ann.setdefault("iscrowd", 0)
        ann.setdefault("num_keypoints", int(np.count_nonzero(kp[2::3] > 0)))
        if isinstance(ann["num_keypoints"], bool) or not isinstance(ann["num_keypoints"], (int, float, np.number)):
            raise SlimposeInputError(f"{where}: num_keypoints must be a number, got {ann['num_keypoints']!r}"[:300])
        if not use_area:
            # only an annotation COCOeval scores (not crowd, some labelled keypoint) changes AP through its area
            counts = not ann["iscrowd"] and ann["num_keypoints"] > 0
            if counts and not (bbox[2] > 0 and bbox[3] > 0):
                raise SlimposeInputError(f"{where}: bbox width x height {bbox[2]:g} x {bbox[3]:g} is not positive; "
                                         "the areas are derived from the boxes (--no-area / use_area=False), so "
                                         "this annotation would have a zero or negative area: fix or drop it")
            ann["area"] = float(bbox[2] * bbox[3] * 0.53)  # xtcocotools use_area=False
        ann.setdefault("id", i + 1)
        if ann["id"] in seen_ids:
            raise SlimposeInputError(f"{where}: duplicate annotation id {ann['id']!r}")
        seen_ids.add(ann["id"])
        anns.append(ann)
    return {"images": [dict(im) for im in dataset["images"]], "annotations": anns,
            "categories": [dict(c) for c in dataset["categories"]]}


def check_coco_gt(gt: str | os.PathLike | Mapping[str, Any], use_area: bool = True) -> None:
    """Validate a COCO keypoint ground truth as ``evaluate_coco_keypoints`` will use it (``use_area`` as there,
    False also when an annotation has no ``area``): a SlimposeInputError naming the file and the annotation,
    raised before a training run starts rather than at its first evaluation."""
    dataset, source = load_coco_gt(gt)
    anns = dataset.get("annotations") or []
    use_area = use_area and all(isinstance(a, Mapping) and "area" in a for a in anns)
    _prepare_gt(dataset, source, infer_num_keypoints(dataset, source), use_area)


# --------------------------------------------------------------------------- sigmas


def _metainfo_datasets() -> dict[str, Any]:
    """``slimpose.data.metainfo.DATASETS``: the keypoint metadata (and OKS sigmas) of every data set."""
    from slimpose.data import metainfo

    return dict(metainfo.DATASETS)


def dataset_sigma_names(num_keypoints: int | None = None) -> list[str]:
    """Names accepted by ``resolve_sigmas`` (optionally only those with K sigmas)."""
    names = {"coco": len(COCO_SIGMAS)}
    for name, info in _metainfo_datasets().items():
        sig = getattr(info, "sigmas", None)
        if sig is not None and len(sig) > 0:
            names[str(name).lower()] = len(sig)
    return sorted(n for n, k in names.items() if num_keypoints is None or k == num_keypoints)


def resolve_sigmas(spec: str | Sequence[float] | np.ndarray | None, num_keypoints: int) -> np.ndarray:
    """OKS sigmas for K keypoints from a data-set name, comma-separated numbers or an array.

    ``None`` means COCO for K = 17 and is an error for any other K (sigmas are per data set).
    Names other than "coco" come from ``slimpose.data.metainfo.DATASETS[name].sigmas``.
    """
    if spec is None:
        if num_keypoints == len(COCO_SIGMAS):
            return COCO_SIGMAS.copy()
        hint = ", ".join(dataset_sigma_names(num_keypoints)) or "none known"
        raise SlimposeInputError(f"no OKS sigmas given for {num_keypoints} keypoints (the COCO sigmas are "
                                 f"for 17); pass the data set's sigmas (data sets with {num_keypoints}: "
                                 f"{hint})")
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "coco":
            sig = COCO_SIGMAS.copy()
        elif text[:1].isdigit() or text.startswith("."):
            try:
                sig = np.array([float(v) for v in text.split(",") if v.strip()], dtype=np.float64)
            except ValueError:
                raise SlimposeInputError(f"sigmas {spec!r}: not a comma-separated list of numbers") from None
        else:
            table = {str(k).lower(): v for k, v in _metainfo_datasets().items()}
            info = table.get(text.lower())
            sig_attr = getattr(info, "sigmas", None) if info is not None else None
            if sig_attr is None or len(sig_attr) == 0:
                known = ", ".join(dataset_sigma_names())
                raise SlimposeInputError(f"unknown sigmas {spec!r}; known data sets: {known} "
                                         f"(or give comma-separated numbers)")
            sig = np.asarray(sig_attr, dtype=np.float64).reshape(-1)
    else:
        sig = np.asarray(spec, dtype=np.float64).reshape(-1)
    if sig.shape[0] != num_keypoints:
        raise SlimposeInputError(f"{sig.shape[0]} OKS sigmas given for {num_keypoints} keypoints")
    if not np.all(np.isfinite(sig)) or np.any(sig <= 0):
        raise SlimposeInputError("OKS sigmas must be finite and > 0")
    return sig


# --------------------------------------------------------------------------- evaluation


def _empty_results_coco(coco_gt: Any) -> Any:
    from pycocotools.coco import COCO

    res = COCO()
    res.dataset = {"images": list(coco_gt.dataset["images"]), "annotations": [],
                   "categories": copy.deepcopy(coco_gt.dataset["categories"])}
    res.createIndex()
    return res


def evaluate_coco_keypoints(
    gt: str | os.PathLike | Mapping[str, Any],
    results: str | os.PathLike | Sequence[Mapping[str, Any]],
    sigmas: str | Sequence[float] | np.ndarray | None = None,
    use_area: bool = True,
    verbose: bool = False,
) -> dict[str, float]:
    """COCO keypoint AP/AR of ``results`` against ``gt`` with pycocotools' COCOeval.

    ``gt``: COCO-format path or dict; ``results``: results-file path or list of records.
    Returns ``{AP, AP50, AP75, APM, APL, AR, AR50, AR75, ARM, ARL}`` (``COCOeval.stats``; -1 where
    COCOeval has no ground truth for an area range). Empty results give 0 AP/AR.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dataset, gt_source = load_coco_gt(gt)
    num_keypoints = infer_num_keypoints(dataset, gt_source)
    sig = resolve_sigmas(sigmas, num_keypoints)
    gt_clean = _prepare_gt(dataset, gt_source, num_keypoints, use_area)

    if isinstance(results, (str, os.PathLike)):
        res_source = str(results)
        records = read_coco_results(results, num_keypoints=num_keypoints)
    else:
        res_source = "results list"
        records = validate_coco_results(results, res_source, num_keypoints=num_keypoints)
    gt_image_ids = {img["id"] for img in gt_clean["images"]}
    missing = sorted({r["image_id"] for r in records} - gt_image_ids)
    if missing:
        shown = ", ".join(str(m) for m in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise SlimposeInputError(f"{res_source}: {len(missing)} image id(s) absent from the ground truth "
                                 f"{gt_source}: {shown}")
    cat_ids = {c.get("id") for c in gt_clean["categories"]}
    for i, r in enumerate(records):
        if r["category_id"] not in cat_ids:
            raise SlimposeInputError(f"{res_source}: record {i}: category_id {r['category_id']} is not a "
                                     f"category of {gt_source} ({sorted(cat_ids)})")

    sink = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with sink:
        coco_gt = COCO()
        coco_gt.dataset = gt_clean
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(records) if records else _empty_results_coco(coco_gt)
        coco_eval = COCOeval(coco_gt, coco_dt, "keypoints")
        coco_eval.params.kpt_oks_sigmas = sig
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, coco_eval.stats)}


# --------------------------------------------------------------------------- top-down post-processing


@dataclass
class TopDownPrediction:
    """One top-down prediction in image pixels.

    ``area`` is the instance area used by OKS-NMS: the area of the model's input box in px^2,
    i.e. ``scale_w * scale_h`` of the padded, aspect-fixed box (MMPose 1.x
    ``np.prod(bbox_scales)``; HRNet ``s[0] * s[1] * 200**2``), not the raw detection box.
    """

    image_id: int
    keypoints: np.ndarray        # (K, 2)
    keypoint_scores: np.ndarray  # (K,)
    bbox_score: float = 1.0
    area: float = 0.0
    category_id: int = 1


def topdown_rescore(keypoint_scores: np.ndarray, bbox_scores: np.ndarray | float,
                    kpt_score_thr: float = 0.2) -> np.ndarray:
    """Instance score = box score x mean of the keypoint scores > thr (0 if none).

    MMPose ``CocoMetric`` score_mode ``bbox_keypoint`` / HRNet ``evaluate`` (``in_vis_thre=0.2``).
    ``keypoint_scores`` (N, K) or (K,); returns (N,) or a 0-d array.
    """
    ks = np.asarray(keypoint_scores, dtype=np.float64)
    valid = ks > kpt_score_thr
    count = valid.sum(axis=-1)
    mean = np.where(count > 0, (ks * valid).sum(axis=-1) / np.maximum(count, 1), 0.0)
    return mean * np.asarray(bbox_scores, dtype=np.float64)


def _as_prediction(p: TopDownPrediction | Mapping[str, Any], index: int) -> TopDownPrediction:
    if isinstance(p, TopDownPrediction):
        return p
    if not isinstance(p, Mapping):
        raise TypeError(f"prediction {index}: expected TopDownPrediction or a mapping, "
                        f"got {type(p).__name__}")
    try:
        return TopDownPrediction(image_id=p["image_id"], keypoints=p["keypoints"],
                                 keypoint_scores=p["keypoint_scores"], bbox_score=p.get("bbox_score", 1.0),
                                 area=p.get("area", 0.0), category_id=p.get("category_id", 1))
    except KeyError as e:
        raise KeyError(f"prediction {index}: missing key {e}") from None


def topdown_postprocess(
    predictions: Sequence[TopDownPrediction | Mapping[str, Any]],
    sigmas: np.ndarray | Sequence[float],
    kpt_score_thr: float = 0.2,
    nms_thr: float | None = 0.9,
) -> list[dict[str, Any]]:
    """Rescore each instance and apply OKS-NMS per image; return COCO results records.

    As MMPose ``CocoMetric`` (score_mode ``bbox_keypoint``, nms_mode ``oks_nms``) and HRNet
    ``COCODataset.evaluate``: ``score = bbox_score * mean(kpt scores > kpt_score_thr)``, then
    per image greedy OKS-NMS at ``nms_thr`` with the data set's sigmas and each instance's
    ``area`` (see ``TopDownPrediction``). ``nms_thr=None`` skips NMS. Records keep the input
    order of images, kept instances best first.
    """
    sig = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    preds = [_as_prediction(p, i) for i, p in enumerate(predictions)]
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    kpts, kscores = [], []
    for i, p in enumerate(preds):
        k = np.asarray(p.keypoints, dtype=np.float64).reshape(-1, 2)
        s = np.asarray(p.keypoint_scores, dtype=np.float64).reshape(-1)
        if k.shape[0] != sig.shape[0] or s.shape[0] != sig.shape[0]:
            raise ValueError(f"prediction {i}: keypoints {k.shape} / scores {s.shape} do not match "
                             f"{sig.shape[0]} sigmas")
        if not (np.all(np.isfinite(k)) and np.all(np.isfinite(s))):
            raise NonFinitePredictionError(f"prediction {i} (image {p.image_id}): NaN or infinite "
                                           "keypoints/scores")
        kpts.append(k)
        kscores.append(s)
        groups[(int(p.image_id), int(p.category_id))].append(i)
    if not preds:
        return []
    all_k = np.stack(kpts)
    all_s = np.stack(kscores)
    scores = topdown_rescore(all_s, np.array([float(p.bbox_score) for p in preds]), kpt_score_thr)
    areas = np.array([float(p.area) for p in preds])
    records: list[dict[str, Any]] = []
    for (image_id, category_id), idx in groups.items():
        idx_arr = np.asarray(idx)
        if nms_thr is None:
            keep = idx_arr[np.argsort(-scores[idx_arr], kind="stable")]
        else:
            keep = idx_arr[oks_nms(all_k[idx_arr], scores[idx_arr], areas[idx_arr], sig, thr=nms_thr)]
        for j in keep:
            records.append(make_coco_record(image_id, all_k[j], all_s[j], scores[j], category_id))
    return records


def stats_table(stats: Mapping[str, float]) -> str:
    """Readable two-row table of the COCO keypoint stats."""
    names = [n for n in COCO_STAT_NAMES if n in stats]
    head = " | ".join(f"{n:>6}" for n in names)
    row = " | ".join(f"{stats[n]:6.3f}" for n in names)
    return f"{head}\n{'-' * len(head)}\n{row}"
