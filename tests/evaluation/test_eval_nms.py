"""Top-down rescoring and OKS-NMS on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from slimpose.evaluation.coco import COCO_SIGMAS, TopDownPrediction, topdown_postprocess, topdown_rescore
from slimpose.evaluation.nms import oks_iou, oks_nms


def _pose(offset: float = 0.0) -> np.ndarray:
    k = np.arange(17, dtype=np.float64)
    return np.stack([100 + 4 * k + offset, 150 + 6 * k], axis=1)


def test_rescore_formula():
    ks = np.array([[0.9, 0.1, 0.5, 0.2], [0.1, 0.2, 0.0, 0.15], [0.3, 0.3, 0.3, 0.3]])
    out = topdown_rescore(ks, np.array([0.8, 1.0, 0.5]), kpt_score_thr=0.2)
    # 0.2 is not > 0.2: only 0.9 and 0.5 count; none count in row 2 -> 0
    np.testing.assert_allclose(out, [0.8 * 0.7, 0.0, 0.5 * 0.3])


def test_oks_iou_single_keypoint_by_hand():
    # sigma 0.1 -> var 0.04; areas 100 -> s^2 = 100; d^2 = 4 -> e = 4 / 0.04 / 100 / 2 = 0.5
    val = oks_iou(np.array([[0.0, 0.0]]), np.array([[[2.0, 0.0]]]), 100.0, np.array([100.0]), np.array([0.1]))
    np.testing.assert_allclose(val, [np.exp(-0.5)])


def test_oks_iou_vis_thr_counts_only_confident_keypoints():
    g = np.array([[0.0, 0.0], [0.0, 0.0]])
    d = np.array([[[0.0, 0.0], [1000.0, 0.0]]])
    sig = np.array([0.1, 0.1])
    assert oks_iou(g, d, 100.0, np.array([100.0]), sig)[0] == pytest.approx(0.5)
    val = oks_iou(g, d, 100.0, np.array([100.0]), sig, vis_thr=0.2,
                  scores_g=np.array([0.9, 0.9]), scores_d=np.array([[0.9, 0.1]]))
    assert val[0] == pytest.approx(1.0)


def test_identical_instances_keep_one_distant_keep_both():
    kpts = np.stack([_pose(), _pose(), _pose(500.0)])
    keep = oks_nms(kpts, np.array([0.5, 0.7, 0.6]), np.full(3, 100.0 * 150.0), COCO_SIGMAS, thr=0.9)
    assert keep.tolist() == [1, 2]  # best first; 0 is suppressed by its twin 1


def test_nms_threshold_is_oks_greater_than_thr():
    kpts = np.stack([_pose(), _pose(3.0)])
    areas = np.full(2, 100.0 * 150.0)
    oks = oks_iou(kpts[0], kpts[1:], areas[0], areas[1:], COCO_SIGMAS)[0]
    assert 0.5 < oks < 1.0
    assert oks_nms(kpts, np.array([0.9, 0.8]), areas, COCO_SIGMAS, thr=oks - 1e-9).tolist() == [0]
    assert oks_nms(kpts, np.array([0.9, 0.8]), areas, COCO_SIGMAS, thr=oks + 1e-9).tolist() == [0, 1]


def test_topdown_postprocess_records():
    ones = np.ones(17)
    preds = [
        TopDownPrediction(image_id=7, keypoints=_pose(), keypoint_scores=0.5 * ones, bbox_score=0.9,
                          area=15000.0),
        {"image_id": 7, "keypoints": _pose(), "keypoint_scores": 0.8 * ones, "bbox_score": 0.9,
         "area": 15000.0},
        TopDownPrediction(image_id=7, keypoints=_pose(400.0), keypoint_scores=0.1 * ones, bbox_score=1.0,
                          area=15000.0),
        TopDownPrediction(image_id=9, keypoints=_pose(), keypoint_scores=ones, bbox_score=0.3, area=15000.0),
    ]
    recs = topdown_postprocess(preds, COCO_SIGMAS, kpt_score_thr=0.2, nms_thr=0.9)
    assert [r["image_id"] for r in recs] == [7, 7, 9]
    assert [r["score"] for r in recs] == pytest.approx([0.9 * 0.8, 0.0, 0.3])
    assert len(recs[0]["keypoints"]) == 51 and recs[0]["keypoints"][2] == pytest.approx(0.8)
    assert recs[0]["category_id"] == 1
    no_nms = topdown_postprocess(preds, COCO_SIGMAS, nms_thr=None)
    assert len(no_nms) == 4


def test_topdown_postprocess_rejects_nan_and_wrong_k():
    bad = TopDownPrediction(image_id=1, keypoints=_pose(), keypoint_scores=np.full(17, np.nan), area=1.0)
    with pytest.raises(ValueError, match="prediction 0"):
        topdown_postprocess([bad], COCO_SIGMAS)
    short = TopDownPrediction(image_id=1, keypoints=_pose()[:5], keypoint_scores=np.ones(5), area=1.0)
    with pytest.raises(ValueError, match="17 sigmas"):
        topdown_postprocess([short], COCO_SIGMAS)
    assert topdown_postprocess([], COCO_SIGMAS) == []
