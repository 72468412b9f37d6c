"""2-D keypoints of one person over a video, ready for a lifter: reading, COCO-17 -> H36M-17, gap filling.

* :func:`read_video_keypoints` reads a COCO keypoint results file (``slimpose predict VIDEO`` writes
  ``OUT/results.json``: a list of ``{image_id, category_id, keypoints: [x, y, v] * 17, score}`` with
  ``image_id`` = the frame index; other tools write the same format). One person per frame: where a frame
  has several records, the one with the highest ``score`` (the first of equal scores). Every record counts
  as a person, whatever its ``category_id``. Records with a ``track_id`` (``slimpose predict VIDEO``
  tracks people, ``slimpose.tracking``): only one track's records are read (:func:`select_track`: the
  given one, else the track in the most frames). The frames run from the first to the last ``image_id``
  (of that track); a frame in between without a record is *missing* (coordinates NaN, scores 0).
* :func:`coco_to_h36m` maps COCO-17 to the Human3.6M 17 joints as MMPose's ``convert_keypoint_definition``
  (``mmpose/apis/inference_3d.py`` in 1.x, ``demo/body3d_two_stage_video_demo.py`` in 0.x) does:
  pelvis = mean of the hips, thorax = mean of the shoulders, spine = mean of pelvis and thorax,
  neck_base ("Neck/Nose") = the nose, head = mean of the eyes; the limbs map one to one (table
  :data:`COCO_TO_H36M`). A derived joint's score is the smallest of its sources' (a choice: MMPose
  averages the score channel with the coordinates).
* :func:`interpolate_gaps` fills the invalid samples of each joint linearly in time from its valid ones,
  holding the first / last valid value constant at the edges (``np.interp``).
* :func:`prepare_keypoints` chains them: a joint of a frame is *valid* when the frame has a record and its
  score is >= ``kpt_thr``; invalid COCO joints are interpolated (before the mapping, so that a pelvis with one
  good hip keeps that hip), then the mapping is applied; an H36M joint is marked interpolated when any of
  its sources was.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from slimpose.utils.io import SlimposeInputError

__all__ = ["COCO_TO_H36M", "MAX_FRAMES", "VideoKeypoints", "LiftKeypoints", "read_video_keypoints", "coco_to_h36m",
           "interpolate_gaps", "prepare_keypoints", "video_size", "parse_image_size"]

#: H36M joint -> the COCO-17 joints whose mean it is (MMPose ``convert_keypoint_definition``, coco -> h36m).
#: Spine = mean of pelvis and thorax = the mean of both hips and both shoulders.
COCO_TO_H36M: tuple[tuple[int, ...], ...] = (
    (11, 12),          # 0 root (pelvis)  = mean of left_hip, right_hip
    (12,),             # 1 right_hip
    (14,),             # 2 right_knee
    (16,),             # 3 right_foot     = right_ankle
    (11,),             # 4 left_hip
    (13,),             # 5 left_knee
    (15,),             # 6 left_foot      = left_ankle
    (11, 12, 5, 6),    # 7 spine          = mean of pelvis and thorax
    (5, 6),            # 8 thorax         = mean of left_shoulder, right_shoulder
    (0,),              # 9 neck_base      = nose
    (1, 2),            # 10 head          = mean of left_eye, right_eye
    (5,),              # 11 left_shoulder
    (7,),              # 12 left_elbow
    (9,),              # 13 left_wrist
    (6,),              # 14 right_shoulder
    (8,),              # 15 right_elbow
    (10,),             # 16 right_wrist
)


#: The longest frame range a results file may span (first to last ``image_id``): 10 hours at 50 fps.
MAX_FRAMES = 1_800_000


@dataclass
class VideoKeypoints:
    """One person's COCO-17 keypoints over frames ``frame_index`` (first to last ``image_id``, every frame):
    ``keypoints`` (T, 17, 2) pixels (NaN in missing frames), ``scores`` (T, 17) (0 in missing frames),
    ``found`` (T,) bool (the frame has a record), ``num_people`` (T,) records per frame (of the chosen track);
    ``track_id``: the track kept (``None``: records without ``track_id``), ``track_frames``: frames per track id."""

    keypoints: np.ndarray
    scores: np.ndarray
    found: np.ndarray
    frame_index: np.ndarray
    num_people: np.ndarray
    source: str = ""
    track_id: int | None = None
    track_frames: dict[int, int] = field(default_factory=dict)


@dataclass
class LiftKeypoints:
    """H36M-17 keypoints ready for lifting: ``keypoints`` (T, 17, 2) pixels after mapping and gap filling,
    ``scores`` (T, 17) (mapped, 0 where missing), ``interpolated`` (T, 17) bool, ``frame_index`` (T,),
    ``found`` (T,) bool; ``never_valid``: COCO joints with no valid sample, left at their raw positions."""

    keypoints: np.ndarray
    scores: np.ndarray
    interpolated: np.ndarray
    frame_index: np.ndarray
    found: np.ndarray
    never_valid: tuple[int, ...] = ()


def select_track(records: list[dict[str, Any]], track: int | None, where: str
                 ) -> tuple[list[dict[str, Any]], int | None, dict[int, int]]:
    """The records of one track: ``track``, else the track in the most frames (ties: the lower id); records
    without ``track_id`` are all kept (``None``). Returns ``(records, track id, frames per track id)``."""
    frames: dict[int, set[int]] = {}
    for rec in records:
        if "track_id" in rec:
            frames.setdefault(rec["track_id"], set()).add(rec["image_id"])
    counts = {tid: len(f) for tid, f in sorted(frames.items())}
    if not counts:
        if track is not None:
            raise SlimposeInputError(f"{where}: --track {track}, but no record has a track_id (slimpose predict "
                                     "writes them for videos)")
        return records, None, {}
    if track is None:
        track = max(counts, key=lambda tid: (counts[tid], -tid))
    elif track not in counts:
        shown = ", ".join(f"{tid} ({n} frames)" for tid, n in list(counts.items())[:20])
        raise SlimposeInputError(f"{where}: no track {track}; the tracks present are {shown}"
                                 f"{' ...' if len(counts) > 20 else ''}")
    untracked = sum("track_id" not in r for r in records)
    if untracked:
        import sys

        print(f"[slimpose] {where}: {untracked} records have no track_id and are left out (the file mixes "
              "tracked and untracked records)", file=sys.stderr)
    return [r for r in records if r.get("track_id") == track], track, counts


def read_video_keypoints(path: str | os.PathLike, track: int | None = None) -> VideoKeypoints:
    """One person per frame from a COCO keypoint results file: the records of one track (``select_track``)
    when they carry ``track_id``, the highest-scoring record of each frame (of that track)."""
    from slimpose.evaluation.results import validate_coco_results
    from slimpose.utils.io import load_json

    where = str(path)
    records = load_json(path, what="keypoints file")
    if isinstance(records, list) and records and isinstance(records[0], dict) \
            and isinstance(records[0].get("keypoints"), list) and len(records[0]["keypoints"]) != 51:
        n = len(records[0]["keypoints"])
        raise SlimposeInputError(f"{where}: record 0 has {n} keypoint values; lifting needs the COCO-17 "
                                 "skeleton (51 values: [x, y, score] x 17), as slimpose predict writes it "
                                 "without --skeleton")
    records = validate_coco_results(records, source=where, num_keypoints=17)
    if not records:
        raise SlimposeInputError(f"{where}: no detections (an empty results list): nothing to lift")
    records, track_id, track_frames = select_track(records, track, where)
    ids = np.asarray([r["image_id"] for r in records], dtype=np.int64)
    first, last = int(ids.min()), int(ids.max())
    if first < 0:
        raise SlimposeInputError(f"{where}: image_id {first} is not a frame index (slimpose predict VIDEO numbers "
                                 "the frames from 0)")
    num = last - first + 1
    if num > MAX_FRAMES:
        raise SlimposeInputError(f"{where}: image_id runs from {first} to {last}: {num} frames is not one video's "
                                 "frame indices (slimpose predict VIDEO numbers the frames from 0)")
    kpts = np.full((num, 17, 2), np.nan, dtype=np.float64)
    scores = np.zeros((num, 17), dtype=np.float64)
    best = np.full(num, -np.inf)
    people = np.zeros(num, dtype=np.int64)
    for rec, image_id in zip(records, ids):
        t = int(image_id) - first
        people[t] += 1
        if rec["score"] > best[t]:
            best[t] = rec["score"]
            arr = np.asarray(rec["keypoints"], dtype=np.float64).reshape(17, 3)
            kpts[t], scores[t] = arr[:, :2], arr[:, 2]
    missing = int((people == 0).sum())
    if missing * 2 > num:
        print(f"[slimpose] {where}: {missing} of the {num} frames {first}..{last} have no detection; they are "
              "interpolated", file=sys.stderr)
    return VideoKeypoints(keypoints=kpts, scores=scores, found=people > 0,
                          frame_index=np.arange(first, last + 1, dtype=np.int64), num_people=people,
                          source=where, track_id=track_id, track_frames=track_frames)


def _map(values: np.ndarray, reduce: Callable[..., np.ndarray]) -> np.ndarray:
    """(T, 17, ...) COCO values -> (T, 17, ...) H36M values: ``reduce(stack, axis=0)`` over each joint's
    sources."""
    return np.stack([reduce(np.stack([values[:, j] for j in src]), axis=0) for src in COCO_TO_H36M], axis=1)


def coco_to_h36m(keypoints: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """COCO-17 (T, 17, 2) keypoints and (T, 17) scores -> H36M-17 ones (:data:`COCO_TO_H36M`): coordinates
    averaged over each joint's sources, scores the minimum of the sources'."""
    kpts = np.asarray(keypoints, dtype=np.float64)
    sc = np.asarray(scores, dtype=np.float64)
    if kpts.ndim != 3 or kpts.shape[1:] != (17, 2) or sc.shape != kpts.shape[:2]:
        raise ValueError(f"coco_to_h36m: expected (T, 17, 2) keypoints and (T, 17) scores, got {kpts.shape} "
                         f"and {sc.shape}")
    return _map(kpts, np.mean), _map(sc, np.min)


def interpolate_gaps(values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, C) values with (T, J) ``valid`` -> (filled values, (T, J) bool filled): each joint's invalid
    samples linearly interpolated in time from its valid ones, the edges held at the nearest valid value. A
    joint with no valid sample raises ``ValueError``."""
    vals = np.asarray(values, dtype=np.float64)
    ok = np.asarray(valid, dtype=bool)
    if vals.ndim != 3 or ok.shape != vals.shape[:2]:
        raise ValueError(f"interpolate_gaps: expected (T, J, C) values and (T, J) valid, got {vals.shape}, "
                         f"{ok.shape}")
    empty = np.flatnonzero(~ok.any(axis=0))
    if empty.size:
        raise ValueError(f"interpolate_gaps: joints {empty.tolist()} have no valid frame")
    out = vals.copy()
    t = np.arange(vals.shape[0], dtype=np.float64)
    for j in range(vals.shape[1]):
        if ok[:, j].all():
            continue
        known = ok[:, j]
        for c in range(vals.shape[2]):
            out[~known, j, c] = np.interp(t[~known], t[known], vals[known, j, c])
    return out, ~ok


def prepare_keypoints(video: VideoKeypoints, kpt_thr: float = 0.3) -> LiftKeypoints:
    """COCO-17 :class:`VideoKeypoints` -> H36M-17 :class:`LiftKeypoints` (module docstring: validity,
    interpolation before the mapping). A COCO joint never valid over the whole video (e.g. the eyes of a
    person seen from behind) keeps its raw positions where it was detected and is interpolated between them,
    with a warning; no valid joint at all is an error naming the file."""
    found = np.asarray(video.found, dtype=bool)
    finite = np.all(np.isfinite(video.keypoints), axis=-1) & found[:, None]
    valid = finite & (video.scores >= kpt_thr)
    if not valid.any():
        raise SlimposeInputError(f"{video.source}: no keypoint scores >= --kpt-thr {kpt_thr} in any of the "
                                 f"{int(found.sum())} frames with a detection: nothing to lift")
    never = tuple(int(j) for j in np.flatnonzero(~valid.any(axis=0)))
    if never:
        from slimpose.data.metainfo import COCO

        names = ", ".join(COCO.keypoint_names[j] for j in never)
        print(f"[slimpose] {video.source}: {names} never reach --kpt-thr {kpt_thr}; their raw detections are "
              "used", file=sys.stderr)
        valid[:, list(never)] = finite[:, list(never)]
    filled, filled_mask = interpolate_gaps(video.keypoints, valid)
    kpts, scores = coco_to_h36m(filled, np.where(found[:, None], video.scores, 0.0))
    interpolated = _map(filled_mask, np.any)
    return LiftKeypoints(keypoints=kpts, scores=scores, interpolated=interpolated,
                         frame_index=np.asarray(video.frame_index, dtype=np.int64), found=found,
                         never_valid=never)


def parse_image_size(text: str) -> tuple[int, int]:
    """``"W,H"`` (or ``"WxH"``) -> ``(W, H)``, both positive integers."""
    parts = text.replace("x", ",").replace("X", ",").split(",")
    try:
        w, h = (int(p) for p in parts)
    except ValueError:
        raise SlimposeInputError(f"--image-size must be W,H (two integers), got {text!r}") from None
    if w < 1 or h < 1:
        raise SlimposeInputError(f"--image-size must be positive, got {text!r}")
    return w, h


def video_size(path: str | os.PathLike) -> tuple[int, int, float, int]:
    """``(width, height, fps, frame count)`` of a video file read with OpenCV (fps 0 and count 0 where the
    container does not say)."""
    import cv2

    if not Path(path).is_file():
        raise SlimposeInputError(f"video not found: {path}")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise SlimposeInputError(f"{path}: OpenCV cannot open this video")
        w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    finally:
        cap.release()
    if w < 1 or h < 1:
        raise SlimposeInputError(f"{path}: OpenCV reads no frame size from this video")
    return w, h, (fps if 0 < fps < 1000 else 0.0), max(count, 0)
