"""Evaluation: COCO keypoint AP (official COCOeval), top-down rescoring + OKS-NMS, PCKh / PCK."""

from slimpose.evaluation.coco import (
    COCO_SIGMAS,
    COCO_STAT_NAMES,
    NonFinitePredictionError,
    TopDownPrediction,
    evaluate_coco_keypoints,
    resolve_sigmas,
    topdown_postprocess,
    topdown_rescore,
)
from slimpose.evaluation.nms import oks_iou, oks_nms
from slimpose.evaluation.pck import PCKResult, mpii_summary, pck_bbox, pckh
from slimpose.evaluation.results import make_coco_record, read_coco_results, write_coco_results

__all__ = [
    "COCO_SIGMAS", "COCO_STAT_NAMES", "NonFinitePredictionError", "TopDownPrediction", "evaluate_coco_keypoints", "resolve_sigmas",
    "topdown_postprocess", "topdown_rescore", "oks_iou", "oks_nms", "PCKResult", "mpii_summary",
    "pck_bbox", "pckh", "make_coco_record", "read_coco_results", "write_coco_results",
]
