"""COCO keypoint results files: writing (atomic) and reading (validated).

The official COCO results format for keypoints is a JSON list of
``{"image_id": int, "category_id": int, "keypoints": [x1, y1, s1, ..., xK, yK, sK], "score": float}``
(cocodataset.org "Results Format"; what HRNet's ``_write_coco_keypoint_results`` and MMPose's
``CocoMetric.results2json`` write).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slimpose.utils.io import SlimposeInputError, load_json, write_json_atomic

COORD_DECIMALS = 3   # 0.001 px: far below any OKS-relevant distance
SCORE_DECIMALS = 6

__all__ = ["make_coco_record", "validate_coco_results", "write_coco_results", "read_coco_results",
           "RecordMatch", "match_results_to_records"]


def make_coco_record(
    image_id: int,
    keypoints: np.ndarray,
    keypoint_scores: np.ndarray,
    score: float,
    category_id: int = 1,
) -> dict[str, Any]:
    """One COCO results record from ``keypoints`` (K, 2) and ``keypoint_scores`` (K,)."""
    kpts = np.asarray(keypoints, dtype=np.float64).reshape(-1, 2)
    scores = np.asarray(keypoint_scores, dtype=np.float64).reshape(-1)
    if kpts.shape[0] != scores.shape[0]:
        raise ValueError(f"keypoints {kpts.shape} and keypoint_scores {scores.shape} disagree on K")
    flat = np.concatenate([kpts, scores[:, None]], axis=1).reshape(-1)
    return {"image_id": int(image_id), "category_id": int(category_id),
            "keypoints": flat.tolist(), "score": float(score)}


def _is_int_id(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def validate_coco_results(
    records: Any,
    source: str,
    num_keypoints: int | None = None,
) -> list[dict[str, Any]]:
    """Check results records and return clean copies (python ints/floats, flat keypoint lists).

    ``source`` names the file (or "results list") in every error message, together with the
    index of the offending record. Checks: a list of objects; integer ``image_id`` and
    ``category_id``; ``keypoints`` a flat list of 3*K finite numbers (K equal for all records and
    to ``num_keypoints`` when given); a finite ``score``; an integer ``track_id`` is kept (another type is ignored).
    """
    if not isinstance(records, (list, tuple)):
        raise SlimposeInputError(
            f"{source}: results must be a JSON list of objects, got {type(records).__name__}")
    clean: list[dict[str, Any]] = []
    expected_len = None if num_keypoints is None else 3 * int(num_keypoints)
    for i, rec in enumerate(records):
        where = f"{source}: record {i}"
        if not isinstance(rec, Mapping):
            raise SlimposeInputError(f"{where}: expected an object, got {type(rec).__name__}")
        for key in ("image_id", "category_id", "keypoints", "score"):
            if key not in rec:
                raise SlimposeInputError(f"{where}: missing key '{key}'")
        if not _is_int_id(rec["image_id"]):
            raise SlimposeInputError(f"{where}: image_id must be an integer, got {rec['image_id']!r}")
        if not _is_int_id(rec["category_id"]):
            raise SlimposeInputError(
                f"{where}: category_id must be an integer, got {rec['category_id']!r}")
        kp = rec["keypoints"]
        if isinstance(kp, np.ndarray):
            kp = kp.reshape(-1).tolist()
        if not isinstance(kp, (list, tuple)):
            raise SlimposeInputError(f"{where}: keypoints must be a flat list [x, y, score] * K")
        try:
            arr = np.asarray(kp, dtype=np.float64)
        except (TypeError, ValueError):
            raise SlimposeInputError(f"{where}: keypoints must be numbers") from None
        if arr.ndim != 1 or arr.size == 0 or arr.size % 3 != 0:
            raise SlimposeInputError(
                f"{where}: keypoints must be a flat list of 3*K numbers, got shape {arr.shape}")
        if expected_len is None:
            expected_len = arr.size
        elif arr.size != expected_len:
            raise SlimposeInputError(
                f"{where}: {arr.size} keypoint values, expected {expected_len} "
                f"({expected_len // 3} keypoints x 3)")
        if not np.all(np.isfinite(arr)):
            raise SlimposeInputError(f"{where}: keypoints contain NaN or infinite values")
        score = rec["score"]
        if isinstance(score, bool) or not isinstance(score, (int, float, np.number)):
            raise SlimposeInputError(f"{where}: score must be a number, got {score!r}")
        if not math.isfinite(float(score)):
            raise SlimposeInputError(f"{where}: score is NaN or infinite")
        out = {"image_id": int(rec["image_id"]), "category_id": int(rec["category_id"]),
               "keypoints": arr.tolist(), "score": float(score)}
        if "track_id" in rec and _is_int_id(rec["track_id"]):  # slimpose predict VIDEO (slimpose.tracking);
            out["track_id"] = int(rec["track_id"])  # another tool's non-integer track ids are ignored
        clean.append(out)
    return clean


def _round_record(rec: dict[str, Any]) -> dict[str, Any]:
    arr = np.asarray(rec["keypoints"], dtype=np.float64).reshape(-1, 3)
    arr[:, :2] = np.round(arr[:, :2], COORD_DECIMALS)
    arr[:, 2] = np.round(arr[:, 2], SCORE_DECIMALS)
    out = {"image_id": rec["image_id"], "category_id": rec["category_id"],
           "keypoints": arr.reshape(-1).tolist(), "score": round(rec["score"], SCORE_DECIMALS)}
    if "track_id" in rec:
        out["track_id"] = rec["track_id"]
    return out


def write_coco_results(path: str | os.PathLike, records: Sequence[Mapping[str, Any]]) -> Path:
    """Validate ``records`` and write them atomically as an official COCO keypoint results file.

    Coordinates are rounded to 1e-3 px and scores to 1e-6 (python floats, no numpy types).
    """
    clean = validate_coco_results(list(records), source=f"results to write to {path}")
    return write_json_atomic(path, [_round_record(r) for r in clean])


def read_coco_results(path: str | os.PathLike, num_keypoints: int | None = None) -> list[dict[str, Any]]:
    """Load and validate a COCO keypoint results file (errors name the file and the record)."""
    records = load_json(path, what="results file")
    return validate_coco_results(records, source=str(path), num_keypoints=num_keypoints)


@dataclass
class RecordMatch:
    """Results matched to the records of a per-person ground truth (MPII: ``image_id`` = record index).

    ``keypoints`` (N, K, 2) with NaN rows for records without a result, ``keypoint_scores`` (N, K),
    ``scores`` (N,), ``found`` (N,) bool, ``num_duplicates``: results dropped because another result for
    the same record scored higher.
    """

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    scores: np.ndarray
    found: np.ndarray
    num_duplicates: int

    @property
    def num_missing(self) -> int:
        return int(np.count_nonzero(~self.found))


def match_results_to_records(records: Sequence[Mapping[str, Any]], num_records: int, source: str,
                             num_keypoints: int) -> RecordMatch:
    """Match validated results (``validate_coco_results`` / ``read_coco_results``) to ``num_records``
    ground-truth records by ``image_id`` = record index.

    An ``image_id`` outside ``0 .. num_records - 1`` is a SlimposeInputError naming ``source`` and the
    result; a record with several results keeps the highest-scoring one (the first of equal scores), as a
    top-down evaluation with one person per record would; records without a result keep NaN keypoints.
    """
    k = int(num_keypoints)
    kpts = np.full((num_records, k, 2), np.nan)
    kscores = np.zeros((num_records, k))
    scores = np.full(num_records, -np.inf)
    found = np.zeros(num_records, dtype=bool)
    duplicates = 0
    for i, rec in enumerate(records):
        rid = int(rec["image_id"])
        if not 0 <= rid < num_records:
            raise SlimposeInputError(
                f"{source}: record {i}: image_id {rid} is not a record index of the ground truth "
                f"(0 .. {num_records - 1}; MPII results use the index of the person in the json list)")
        arr = np.asarray(rec["keypoints"], dtype=np.float64).reshape(-1, 3)
        if arr.shape[0] != k:
            raise SlimposeInputError(f"{source}: record {i}: {arr.shape[0]} keypoints, expected {k}")
        score = float(rec["score"])
        if found[rid]:
            duplicates += 1
            if score <= scores[rid]:
                continue
        kpts[rid], kscores[rid], scores[rid], found[rid] = arr[:, :2], arr[:, 2], score, True
    scores[~found] = 0.0
    return RecordMatch(kpts, kscores, scores, found, duplicates)
