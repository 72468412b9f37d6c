"""PCKh (MPII) and PCK of the box on hand-made cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from slimpose.evaluation.pck import mpii_head_sizes, mpii_summary, pck_bbox, pckh


def _mpii_case():
    gt = np.zeros((1, 16, 2))
    gt[0, :, 0] = np.arange(16) * 10.0
    gt[0, 8] = [0.0, 0.0]    # upper neck
    gt[0, 9] = [0.0, -30.0]  # head top: segment length 30
    pred = gt.copy()
    pred[0, 0, 0] += 10.0    # correct (10 <= 15)
    pred[0, 1, 1] += 15.0    # exactly on the threshold: correct with <=
    pred[0, 2, 0] += 20.0    # wrong
    pred[0, 6, 0] += 100.0   # pelvis wrong, excluded from the official mean
    pred[0, 15, 0] += 100.0  # unlabelled
    vis = np.ones((1, 16))
    vis[0, 15] = 0
    return pred, gt, vis


def test_pckh_with_head_box():
    pred, gt, vis = _mpii_case()
    head_box = np.array([[0.0, 0.0, 30.0, 40.0]])  # diagonal 50 -> head size 0.6 * 50 = 30
    np.testing.assert_allclose(mpii_head_sizes(gt, vis, head_box), [30.0])
    res = pckh(pred, gt, vis, head_box)
    assert res.mean == pytest.approx(12 / 13)     # 16 - pelvis - thorax - unlabelled = 13; r_hip wrong
    assert res.mean_joint == pytest.approx(13 / 15)
    assert np.isnan(res.per_joint[15]) and res.counts[15] == 0
    assert res.per_joint[1] == 1.0 and res.per_joint[2] == 0.0
    assert pckh(pred, gt, vis, head_box, exclude=()).mean == pytest.approx(13 / 15)
    assert pckh(pred, gt, vis, head_box, inclusive=False).mean == pytest.approx(11 / 13)
    summary = mpii_summary(res)
    assert summary["Ankle"] == pytest.approx(100.0)  # r_ankle (0) and l_ankle (5) right
    assert summary["Hip"] == pytest.approx(50.0)     # r_hip (2) wrong, l_hip (3) right
    assert summary["Mean"] == pytest.approx(100 * 12 / 13)


def test_pckh_without_head_box_uses_head_segment_and_skips_unusable():
    pred, gt, vis = _mpii_case()
    res = pckh(pred, gt, vis)  # head segment length 30 -> same answer as the box case
    assert res.mean == pytest.approx(12 / 13)
    # a second instance with no head joints labelled and no box is left out entirely
    pred2 = np.concatenate([pred, pred + 1000.0])
    gt2 = np.concatenate([gt, gt])
    vis2 = np.concatenate([vis, vis])
    vis2[1, 8] = 0
    res2 = pckh(pred2, gt2, vis2)
    assert res2.num_skipped == 1 and res2.mean == pytest.approx(12 / 13)
    # with a box for the second instance it counts (and all its joints are wrong)
    boxes = np.array([[np.nan] * 4, [0.0, 0.0, 30.0, 40.0]])
    res3 = pckh(pred2, gt2, vis2, boxes)
    assert res3.num_skipped == 0 and res3.mean == pytest.approx(12 / (13 + 12))  # 2nd: no upper neck


def test_pck_bbox_uses_max_side_and_strict_threshold():
    gt = np.zeros((2, 3, 2))
    pred = gt.copy()
    pred[0, :, 0] = [19.0, 20.0, 25.0]   # box 100 x 50 -> norm 100 -> 20 px
    pred[1, :, 1] = [5.0, 9.0, 11.0]     # box 20 x 50 -> norm 50 -> 10 px
    vis = np.array([[1, 1, 1], [1, 1, 0]])
    boxes = np.array([[0, 0, 100, 50], [0, 0, 20, 50]], dtype=np.float64)
    res = pck_bbox(pred, gt, vis, boxes, thr=0.2)
    np.testing.assert_allclose(res.per_joint, [1.0, 0.5, 0.0])
    assert res.mean == pytest.approx(0.5)
    assert list(res.counts) == [2, 2, 1]


def test_mpii_report_in_percent_with_none_for_never_labelled():
    from slimpose.evaluation.pck import MPII_JOINT_NAMES, mpii_report

    pred, gt, vis = _mpii_case()
    report = mpii_report(pckh(pred, gt, vis, np.array([[0.0, 0.0, 30.0, 40.0]])))
    assert report["PCKh"] == report["Mean"] == pytest.approx(100 * 12 / 13)
    assert report["per_joint"]["l_wrist"] is None and report["per_joint_count"]["l_wrist"] == 0
    assert report["Wrist"] is None  # l_wrist never labelled: the pair has no value
    assert report["per_joint"]["r_hip"] == 0.0 and report["Hip"] == pytest.approx(50.0)
    assert list(report["per_joint"]) == list(MPII_JOINT_NAMES) and report["thr"] == 0.5


def test_match_results_to_records_keeps_the_best_and_marks_missing():
    from slimpose.evaluation.results import match_results_to_records
    from slimpose.utils.io import SlimposeInputError

    def rec(i, x, score):
        return {"image_id": i, "category_id": 1, "keypoints": [x, 0.0, 1.0] * 2, "score": score}

    m = match_results_to_records([rec(2, 1.0, 0.5), rec(0, 2.0, 0.3), rec(2, 3.0, 0.9), rec(2, 4.0, 0.9)],
                                 3, "r.json", 2)
    assert list(m.found) == [True, False, True] and m.num_missing == 1 and m.num_duplicates == 2
    assert m.keypoints[2, 0, 0] == 3.0 and m.scores[2] == 0.9  # highest score, the first of equals
    assert np.all(np.isnan(m.keypoints[1]))
    with pytest.raises(SlimposeInputError, match=r"r\.json: record 1: image_id 3 is not a record index"):
        match_results_to_records([rec(0, 1.0, 1.0), rec(3, 1.0, 1.0)], 3, "r.json", 2)
    with pytest.raises(SlimposeInputError, match=r"r\.json: record 0: 2 keypoints, expected 3"):
        match_results_to_records([rec(0, 1.0, 1.0)], 3, "r.json", 3)
