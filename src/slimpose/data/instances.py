"""The per-person record shared by the loaders, the dataset and evaluation (docs/architecture.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class PoseInstance:
    """One person crop to process: an image, a box and (for ground truth) its keypoints.

    Coordinates are 0-based image pixels; ``bbox`` is COCO ``xywh``; ``visible`` holds COCO ``v``
    values (all zeros for detection boxes); ``center``/``scale`` (pixels) are set only when the
    dataset gives them (MPII); ``head_box`` is ``x1y1x2y2`` where known (PCKh).
    """

    image_path: str
    image_id: int
    bbox: np.ndarray
    keypoints: np.ndarray
    visible: np.ndarray
    bbox_score: float = 1.0
    ann_id: int = -1
    area: float = 0.0
    center: np.ndarray | None = None
    scale: np.ndarray | None = None
    head_box: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.image_path = str(self.image_path)
        self.image_id = int(self.image_id)
        self.bbox = np.asarray(self.bbox, dtype=np.float32).reshape(4)
        self.keypoints = np.asarray(self.keypoints, dtype=np.float32).reshape(-1, 2)
        self.visible = np.asarray(self.visible, dtype=np.float32).reshape(-1)
        if self.visible.shape[0] != self.keypoints.shape[0]:
            raise ValueError(f"PoseInstance {self.image_path} (ann {self.ann_id}): {self.keypoints.shape[0]} "
                             f"keypoints but {self.visible.shape[0]} visibility values")
        self.bbox_score = float(self.bbox_score)
        self.ann_id = int(self.ann_id)
        self.area = float(self.area)
        if self.center is not None:
            self.center = np.asarray(self.center, dtype=np.float32).reshape(2)
        if self.scale is not None:
            self.scale = np.asarray(self.scale, dtype=np.float32).reshape(2)
        if self.head_box is not None:
            self.head_box = np.asarray(self.head_box, dtype=np.float32).reshape(4)

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[0])

    @property
    def num_labelled(self) -> int:
        """Number of keypoints with ``v > 0``."""
        return int(np.count_nonzero(self.visible > 0))


class InstanceList(list):
    """A plain ``list[PoseInstance]`` that also says what the loader skipped and why.

    ``skipped`` maps a reason (``"crowd"``, ``"unlabelled"``, ``"zero_area"``, ``"no_bbox"``,
    ``"low_score"``, ``"not_person"``) to a count; ``source`` is the file it came from.
    """

    def __init__(self, items=(), source: str = "", skipped: dict[str, int] | None = None) -> None:
        super().__init__(items)
        self.source = source
        self.skipped: dict[str, int] = dict(skipped or {})

    @property
    def num_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def __reduce_ex__(self, protocol):  # keep attributes across pickling (DataLoader workers)
        return (InstanceList, (list(self), self.source, self.skipped))


@dataclass
class SkipCounter:
    """Counts of skipped records per reason, used by the loaders to build ``InstanceList.skipped``."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + n
