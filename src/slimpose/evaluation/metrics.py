"""Validation metrics as objects: what a data set is scored with, and which number decides "best".

A metric is called with the top-down predictions of a whole split (image pixels, one dict per crop:
``index``, ``image_id``, ``keypoints`` (K, 2), ``keypoint_scores`` (K,), ``bbox_score``, ``area``) and
the rescored, OKS-NMS'ed COCO result records made from them; it returns a dict of floats. ``primary``
names the number that decides the best checkpoint and ``mode`` whether higher (``"max"``) or lower
(``"min"``, e.g. MPJPE) is better.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from slimpose.utils.io import load_json

MODES = ("max", "min")


class Metric(Protocol):
    primary: str
    mode: str

    def __call__(self, predictions: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]
                 ) -> dict[str, float]: ...


class CocoKeypointMetric:
    """COCO keypoint AP / AR (pycocotools ``COCOeval``) of the result records against ``gt``.

    ``use_area=False`` scores OKS with 0.53 x box area (CrowdPose, AIC: MMPose ``use_area=False``); with
    ``use_area=True`` a ground truth whose annotations lack ``area`` falls back to the same.
    """

    primary = "AP"
    mode = "max"

    def __init__(self, gt: str | Path | dict, sigmas: Sequence[float], use_area: bool = True) -> None:
        self.gt = gt
        self.sigmas = np.asarray(sigmas, dtype=np.float64)
        self.use_area = use_area

    @classmethod
    def for_split(cls, spec: Any, ann: Path, instances: Sequence[Any]) -> "CocoKeypointMetric":
        from slimpose.evaluation.coco import check_coco_gt

        check_coco_gt(ann, spec.use_area)  # a bad record fails before training, not at the first evaluation
        return cls(str(ann), spec.info.sigmas, use_area=spec.use_area)

    def _areas_known(self) -> bool:
        if isinstance(self.gt, (str, Path)):
            self.gt = load_json(self.gt, "ground-truth annotation file")
        anns = self.gt.get("annotations", []) if isinstance(self.gt, dict) else []
        return all("area" in a for a in anns)

    def __call__(self, predictions: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]
                 ) -> dict[str, float]:
        from slimpose.evaluation.coco import evaluate_coco_keypoints

        use_area = self.use_area and self._areas_known()
        stats = evaluate_coco_keypoints(self.gt, list(records), sigmas=self.sigmas, use_area=use_area)
        return {k: float(v) for k, v in stats.items()}


class PCKhMetric:
    """MPII PCKh@0.5 of the raw predictions (no NMS) against the split's instances and head boxes."""

    primary = "PCKh"
    mode = "max"

    def __init__(self, instances: Sequence[Any]) -> None:
        self.instances = list(instances)

    @classmethod
    def for_split(cls, spec: Any, ann: Path, instances: Sequence[Any]) -> "PCKhMetric":
        return cls(instances)

    def __call__(self, predictions: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]
                 ) -> dict[str, float]:
        from slimpose.evaluation import pck

        by_index = {p["index"]: p for p in predictions}
        order = sorted(by_index)
        inst = self.instances
        pred_k = np.stack([by_index[i]["keypoints"] for i in order])
        gt_k = np.stack([np.asarray(inst[i].keypoints, dtype=np.float64) for i in order])
        vis = np.stack([np.asarray(inst[i].visible, dtype=np.float64) > 0 for i in order])
        heads = np.stack([np.asarray(inst[i].head_box, dtype=np.float64) if inst[i].head_box is not None
                          else np.full(4, np.nan) for i in order])
        result = pck.pckh(pred_k, gt_k, vis, heads)
        summary = pck.mpii_summary(result)
        return {"PCKh": float(result.mean), "PCKh_joint_mean": float(result.mean_joint),
                **{f"PCKh_{k}": float(v) for k, v in summary.items() if k != "Mean"}}


def is_better(value: float, best: float | None, mode: str) -> bool:
    """Whether ``value`` improves on ``best`` (None: nothing yet) under ``mode`` ('max' or 'min')."""
    if mode not in MODES:
        raise ValueError(f"metric mode must be 'max' or 'min', got {mode!r}")
    if best is None:
        return True
    return value > best if mode == "max" else value < best
