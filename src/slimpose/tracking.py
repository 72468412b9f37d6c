"""People across video frames: greedy box-IoU tracking (``IouTracker``), as ``slimpose predict VIDEO`` uses it.

Each frame's boxes are matched to the live tracks by IoU with the track's last box, highest IoU first, a pair
only when its IoU is at least ``iou_thr``; an unmatched box starts a new track (ids 1, 2, ...), an unmatched
track survives ``max_age`` missed frames and ends at the next miss. No motion model: it suits the small moves
between consecutive frames; people who cross with little overlap can swap ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slimpose.detection import box_iou

__all__ = ["IouTracker", "greedy_match", "xywh_to_xyxy"]


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    """(N, 4+) xywh -> (N, 4) x1y1x2y2."""
    b = np.asarray(boxes, dtype=np.float64)
    b = b.reshape(-1, b.shape[-1] if b.size else 4)[:, :4]
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:4]], axis=1)


def greedy_match(iou: np.ndarray, thr: float) -> list[tuple[int, int]]:
    """``(row, column)`` pairs of ``iou`` (tracks x boxes), highest IoU first, each row / column once, IoU >= thr."""
    iou = np.array(iou, dtype=np.float64)
    pairs: list[tuple[int, int]] = []
    while iou.size:
        r, c = np.unravel_index(int(np.argmax(iou)), iou.shape)
        if iou[r, c] < thr or iou[r, c] <= 0:
            break
        pairs.append((int(r), int(c)))
        iou[r, :] = -1.0
        iou[:, c] = -1.0
    return pairs


@dataclass
class _Track:
    track_id: int
    box: np.ndarray  # x1y1x2y2 of its last match
    missed: int = 0


class IouTracker:
    """``update(boxes)`` once per frame (xywh, (N, 4) or (N, 5)) -> the (N,) int track ids of those boxes."""

    def __init__(self, iou_thr: float = 0.3, max_age: int = 10) -> None:
        self.iou_thr, self.max_age = iou_thr, max_age
        self.tracks: list[_Track] = []
        self.next_id = 1

    def update(self, boxes: np.ndarray) -> np.ndarray:
        xyxy = xywh_to_xyxy(boxes)
        ids = np.zeros(len(xyxy), dtype=np.int64)
        iou = box_iou(np.array([t.box for t in self.tracks]).reshape(-1, 4), xyxy)
        matched_tracks = set()
        for r, c in greedy_match(iou, self.iou_thr):
            track = self.tracks[r]
            track.box, track.missed = xyxy[c], 0
            ids[c] = track.track_id
            matched_tracks.add(r)
        for r, track in enumerate(self.tracks):
            if r not in matched_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_age]
        for c in np.flatnonzero(ids == 0):
            self.tracks.append(_Track(self.next_id, xyxy[c]))
            ids[c] = self.next_id
            self.next_id += 1
        return ids
