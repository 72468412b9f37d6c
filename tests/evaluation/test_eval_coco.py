"""COCO keypoint evaluation: official COCOeval parity, real samples, bad input."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest

from slimpose.evaluation.coco import COCO_SIGMAS, COCO_STAT_NAMES, evaluate_coco_keypoints, resolve_sigmas
from slimpose.utils.io import SlimposeInputError
from _shared import SHARED_REAL

REAL = SHARED_REAL
COCO_GT = REAL / "coco" / "test_coco.json"
OCHUMAN_GT = REAL / "ochuman" / "test_ochuman.json"
needs_real = pytest.mark.skipif(not COCO_GT.is_file(), reason="real sample data not available")


def _gt_as_results(gt_path: Path) -> list[dict]:
    data = json.loads(gt_path.read_text())
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "keypoints": list(a["keypoints"]),
             "score": 1.0} for a in data["annotations"] if a["num_keypoints"] > 0]


def _perturbed(gt_path: Path, seed: int = 0) -> list[dict]:
    """Seeded noise on coordinates, random scores, one dropped instance and a duplicate."""
    rng = np.random.default_rng(seed)
    data = json.loads(gt_path.read_text())
    out = []
    for i, a in enumerate(data["annotations"]):
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        scale = np.sqrt(max(a["area"], 1.0))
        kp[:, :2] += rng.normal(0.0, 0.04 * scale, size=(kp.shape[0], 2))
        kp[:, 2] = rng.uniform(0.0, 1.0, size=kp.shape[0])
        if i == 3:
            continue
        rec = {"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
               "score": float(rng.uniform(0.2, 1.0))}
        out.append(rec)
        if i == 5:
            dup = copy.deepcopy(rec)
            dup["keypoints"] = (np.asarray(dup["keypoints"]) + 7.0).tolist()
            dup["score"] = 0.95
            out.append(dup)
    return out


def _direct_cocoeval(gt_path: Path, records: list[dict], sigmas: np.ndarray | None = None) -> np.ndarray:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO(str(gt_path))
        coco_dt = coco_gt.loadRes(copy.deepcopy(records))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats


@needs_real
@pytest.mark.parametrize("gt_path", [COCO_GT, OCHUMAN_GT], ids=["coco", "ochuman"])
def test_ground_truth_as_predictions_gives_ap_one(gt_path):
    stats = evaluate_coco_keypoints(gt_path, _gt_as_results(gt_path))
    assert set(stats) == set(COCO_STAT_NAMES)
    for name in ("AP", "AP50", "AP75", "APL", "AR", "AR50", "AR75", "ARL"):
        assert stats[name] == pytest.approx(1.0), name


@needs_real
def test_perturbed_results_match_direct_cocoeval_exactly():
    records = _perturbed(COCO_GT)
    ours = evaluate_coco_keypoints(COCO_GT, records)
    ref = _direct_cocoeval(COCO_GT, records)
    np.testing.assert_array_equal(np.array([ours[n] for n in COCO_STAT_NAMES]), ref)
    assert 0.05 < ours["AP"] < 0.99  # the perturbation really changes the score


@needs_real
def test_custom_sigmas_reach_cocoeval(tmp_path):
    records = _perturbed(COCO_GT, seed=1)
    wide = COCO_SIGMAS * 3.0
    ours = evaluate_coco_keypoints(COCO_GT, records, sigmas=wide)
    ref = _direct_cocoeval(COCO_GT, records, sigmas=wide)
    np.testing.assert_array_equal(np.array([ours[n] for n in COCO_STAT_NAMES]), ref)
    assert ours["AP"] > evaluate_coco_keypoints(COCO_GT, records)["AP"]


@needs_real
def test_results_file_and_input_dict_give_same_numbers(tmp_path):
    records = _perturbed(COCO_GT, seed=2)
    path = tmp_path / "res.json"
    path.write_text(json.dumps(records))
    gt_dict = json.loads(COCO_GT.read_text())
    assert evaluate_coco_keypoints(gt_dict, path) == evaluate_coco_keypoints(COCO_GT, records)


@needs_real
def test_use_area_false_uses_053_box_area():
    """xtcocotools use_area=False == COCOeval on a gt whose area is 0.53 * w * h."""
    records = _perturbed(COCO_GT, seed=3)
    data = json.loads(COCO_GT.read_text())
    for a in data["annotations"]:
        a["area"] = a["bbox"][2] * a["bbox"][3] * 0.53
    ours = evaluate_coco_keypoints(COCO_GT, records, use_area=False)
    assert ours == evaluate_coco_keypoints(data, records, use_area=True)
    assert ours != evaluate_coco_keypoints(COCO_GT, records, use_area=True)


@needs_real
def test_empty_results_give_zero_ap():
    stats = evaluate_coco_keypoints(COCO_GT, [])
    assert stats["AP"] == 0.0 and stats["AR"] == 0.0


@needs_real
def test_absent_image_ids_are_named(tmp_path):
    records = _gt_as_results(COCO_GT)
    records.append(dict(records[0], image_id=123456789))
    path = tmp_path / "bad_ids.json"
    path.write_text(json.dumps(records))
    with pytest.raises(SlimposeInputError, match=r"bad_ids\.json.*123456789"):
        evaluate_coco_keypoints(COCO_GT, path)


@needs_real
def test_wrong_keypoint_length_names_file_and_record(tmp_path):
    records = _gt_as_results(COCO_GT)
    records[2]["keypoints"] = records[2]["keypoints"][:-3]
    path = tmp_path / "short.json"
    path.write_text(json.dumps(records))
    with pytest.raises(SlimposeInputError, match=r"short\.json: record 2"):
        evaluate_coco_keypoints(COCO_GT, path)


@needs_real
def test_nan_values_are_rejected():
    records = _gt_as_results(COCO_GT)
    records[1]["keypoints"][4] = float("nan")
    with pytest.raises(SlimposeInputError, match="record 1.*NaN"):
        evaluate_coco_keypoints(COCO_GT, records)
    records = _gt_as_results(COCO_GT)
    records[0]["score"] = float("nan")
    with pytest.raises(SlimposeInputError, match="record 0"):
        evaluate_coco_keypoints(COCO_GT, records)


def _tiny_gt(num_keypoints: int = 17, area: bool = True) -> dict:
    kp = []
    for k in range(num_keypoints):
        kp += [10.0 + 3 * k, 20.0 + 2 * k, 2]
    ann = {"id": 1, "image_id": 1, "category_id": 1, "keypoints": kp, "bbox": [5, 5, 80, 60],
           "num_keypoints": num_keypoints, "iscrowd": 0}
    if area:
        ann["area"] = 4000.0
    return {"images": [{"id": 1, "width": 100, "height": 100}], "annotations": [ann],
            "categories": [{"id": 1, "name": "person"}]}


def test_other_k_requires_sigmas_and_accepts_them():
    gt = _tiny_gt(14)
    res = [{"image_id": 1, "category_id": 1, "keypoints": gt["annotations"][0]["keypoints"], "score": 0.9}]
    with pytest.raises(SlimposeInputError, match="14 keypoints"):
        evaluate_coco_keypoints(gt, res)
    stats = evaluate_coco_keypoints(gt, res, sigmas=[0.07] * 14)
    assert stats["AP"] == pytest.approx(1.0)


def test_gt_without_area_needs_use_area_false():
    gt = _tiny_gt(area=False)
    res = [{"image_id": 1, "category_id": 1, "keypoints": gt["annotations"][0]["keypoints"], "score": 0.9}]
    with pytest.raises(SlimposeInputError, match=r"annotations\[0\].*area"):
        evaluate_coco_keypoints(gt, res)
    assert evaluate_coco_keypoints(gt, res, use_area=False)["AP"] == pytest.approx(1.0)


def test_unknown_category_and_bad_type_are_rejected():
    gt = _tiny_gt()
    kp = gt["annotations"][0]["keypoints"]
    with pytest.raises(SlimposeInputError, match="category_id 7"):
        evaluate_coco_keypoints(gt, [{"image_id": 1, "category_id": 7, "keypoints": kp, "score": 1.0}])
    with pytest.raises(SlimposeInputError, match="JSON list"):
        evaluate_coco_keypoints(gt, {"image_id": 1})


def test_resolve_sigmas_forms():
    np.testing.assert_array_equal(resolve_sigmas(None, 17), COCO_SIGMAS)
    np.testing.assert_allclose(resolve_sigmas("0.1,0.2", 2), [0.1, 0.2])
    with pytest.raises(SlimposeInputError, match="3 OKS sigmas given for 2"):
        resolve_sigmas([0.1, 0.1, 0.1], 2)
    with pytest.raises(SlimposeInputError, match="unknown sigmas"):
        resolve_sigmas("no_such_dataset", 17)
