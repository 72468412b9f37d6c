"""Every real sample annotation file loads unchanged, with the README's K and counts."""

import json
import os

import numpy as np
import pytest

from slimpose.data.coco import load_coco_instances, resolve_image_root
from slimpose.data.dataset import read_image
from slimpose.data.metainfo import AIC, COCO, CROWDPOSE, JHMDB, OCHUMAN, POSETRACK18
from slimpose.data.mpii import load_mpii_instances
from _shared import SHARED_REAL

REAL = SHARED_REAL
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason=f"{SHARED_REAL} is missing")

# file, info, K, instances, with keypoints, labelled keypoints (README table)
COCO_STYLE = [
    ("coco/test_coco.json", COCO, 17, 14, 12, 181),
    ("crowdpose/test_crowdpose.json", CROWDPOSE, 14, 5, 4, 47),
    ("aic/test_aic.json", AIC, 14, 9, 9, 101),
    ("ochuman/test_ochuman.json", OCHUMAN, 17, 5, 5, 73),
    ("posetrack18/annotations/test_posetrack18_val.json", POSETRACK18, 17, 14, 14, 182),
    ("posetrack18/annotations/val/003418_mpii_test.json", POSETRACK18, 17, 1, 1, None),
    ("posetrack18/annotations/val/009473_mpii_test.json", POSETRACK18, 17, 2, 2, None),
    ("posetrack18/annotations/val/012834_mpii_test.json", POSETRACK18, 17, 11, 11, None),
    ("jhmdb/test_jhmdb_sub1.json", JHMDB, 15, 3, 3, 45),
    ("coco/test_halpe.json", None, 136, 14, 12, 856),  # empty category keypoint list: K from the data
]


@needs_real
@pytest.mark.parametrize("rel,info,k,n_all,n_kpts,n_labelled", COCO_STYLE, ids=[c[0] for c in COCO_STYLE])
def test_coco_style_counts(rel, info, k, n_all, n_kpts, n_labelled):
    labelled = load_coco_instances(REAL / rel, info=info)
    everything = load_coco_instances(REAL / rel, info=info, skip_unlabelled=False)
    assert len(everything) == n_all and len(labelled) == n_kpts
    assert labelled.skipped.get("unlabelled", 0) == n_all - n_kpts and everything.num_skipped == 0
    assert {inst.num_keypoints for inst in everything} == {k}
    if n_labelled is not None:
        assert sum(inst.num_labelled for inst in everything) == n_labelled
    for inst in everything:
        assert os.path.isabs(inst.image_path) and os.path.isfile(inst.image_path), inst.image_path
        assert inst.bbox.dtype == np.float32 and inst.bbox[2] > 0 and inst.bbox[3] > 0
        assert inst.ann_id >= 0 and inst.bbox_score == 1.0


@needs_real
def test_coco_values_are_read_unchanged():
    raw = json.loads((REAL / "coco/test_coco.json").read_text())
    insts = {i.ann_id: i for i in load_coco_instances(REAL / "coco/test_coco.json", info=COCO)}
    for ann in raw["annotations"]:
        if ann["id"] not in insts:
            assert max(ann["keypoints"][2::3]) == 0
            continue
        inst = insts[ann["id"]]
        kp = np.array(ann["keypoints"], dtype=np.float32).reshape(-1, 3)
        np.testing.assert_array_equal(inst.keypoints, kp[:, :2])
        np.testing.assert_array_equal(inst.visible, kp[:, 2])
        assert inst.image_id == ann["image_id"] and inst.area == pytest.approx(ann["area"])
        assert inst.image_path.endswith(f"{ann['image_id']:012d}.jpg")


@needs_real
def test_posetrack_boxes_are_clipped_and_head_boxes_kept():
    raw = json.loads((REAL / "posetrack18/annotations/test_posetrack18_val.json").read_text())
    path = REAL / "posetrack18/annotations/test_posetrack18_val.json"
    insts = {i.ann_id: i for i in load_coco_instances(path)}
    box = insts[1012834000010].bbox  # raw y = -54.6: clipped to 0 like MMPose
    assert box[1] == 0.0 and box[3] == pytest.approx(-54.62930288750002 + 257.32008152500003, abs=1e-3)
    box = insts[1003418000000].bbox  # raw y + h = 1107 > 1080: clipped to H - 1
    assert box[1] + box[3] == pytest.approx(1079.0)
    ann = next(a for a in raw["annotations"] if a["id"] == 1012834000000)
    hx, hy, hw, hh = ann["bbox_head"]
    np.testing.assert_allclose(insts[1012834000000].head_box, [hx, hy, hx + hw, hy + hh])


@needs_real
def test_jhmdb_palette_png_reads_as_three_channels():
    inst = load_coco_instances(REAL / "jhmdb/test_jhmdb_sub1.json", info=JHMDB)[0]
    image = read_image(inst.image_path)
    assert image.shape == (240, 320, 3) and image.dtype == np.uint8
    assert image.std() > 5  # not a blank/label image


@needs_real
def test_detection_results():
    ann = REAL / "coco/test_coco.json"
    dets = load_coco_instances(ann, bbox_file=REAL / "coco/test_coco_det_AP_H_56.json")
    raw = json.loads((REAL / "coco/test_coco_det_AP_H_56.json").read_text())
    assert len(dets) == len(raw) == 118
    assert all(d.ann_id == -1 and d.num_keypoints == 17 and d.num_labelled == 0 for d in dets)
    np.testing.assert_allclose(dets[0].bbox, raw[0]["bbox"], rtol=1e-6)
    assert dets[0].bbox_score == pytest.approx(raw[0]["score"])
    thr = 0.5
    kept = load_coco_instances(ann, bbox_file=REAL / "coco/test_coco_det_AP_H_56.json", det_score_thr=thr)
    assert len(kept) == sum(d["score"] >= thr for d in raw) and kept.skipped["low_score"] == 118 - len(kept)
    assert min(d.bbox_score for d in kept) >= thr
    crowd = load_coco_instances(REAL / "crowdpose/test_crowdpose.json",
                                bbox_file=REAL / "crowdpose/test_crowdpose_det_AP_40.json", info=CROWDPOSE)
    assert len(crowd) == 6 and crowd[0].num_keypoints == 14


@needs_real
def test_mpii_conversion_follows_mmpose():
    raw = json.loads((REAL / "mpii/test_mpii.json").read_text())
    insts = load_mpii_instances(REAL / "mpii/test_mpii.json")
    assert len(insts) == 5 and sum(i.num_labelled for i in insts) == 76
    for i, (rec, inst) in enumerate(zip(raw, insts)):
        s = rec["scale"]
        expected_center = [rec["center"][0] - 1, rec["center"][1] + 15 * s - 1]
        np.testing.assert_allclose(inst.center, expected_center, rtol=1e-6)
        np.testing.assert_allclose(inst.scale, [s * 200 * 1.25] * 2, rtol=1e-6)
        np.testing.assert_allclose(inst.keypoints, np.array(rec["joints"]) - 1, rtol=1e-6)
        np.testing.assert_array_equal(inst.visible, rec["joints_vis"])
        # image_id = the record's index in the json list: what a PCKh results file refers to
        assert inst.image_id == i and inst.ann_id == i and os.path.isfile(inst.image_path)
        assert inst.num_keypoints == 16


@pytest.mark.parametrize("ann_rel,file_name,image_rel", [
    ("annotations/person_keypoints_train.json", "train/000000001.jpg", "images/train/000000001.jpg"),  # synth
    ("annotations/person_keypoints_val2017.json", "000000000785.jpg", "val2017/000000000785.jpg"),  # COCO
    ("annotations/val/000001_mpii_test.json", "images/val/000001/000000.jpg", "images/val/000001/000000.jpg"),
    ("test.json", "a.jpg", "images/a.jpg"),
])
def test_default_image_root(tmp_path, ann_rel, file_name, image_rel):
    ann = tmp_path / ann_rel
    ann.parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / image_rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / image_rel).write_bytes(b"x")
    root = resolve_image_root(ann, [file_name], None)
    assert (root / file_name).resolve() == (tmp_path / image_rel).resolve()
    assert resolve_image_root(ann, [file_name], tmp_path / "explicit") == tmp_path / "explicit"


def test_instance_list_keeps_its_skip_counts_through_pickle():
    import pickle

    from slimpose.data.instances import InstanceList, PoseInstance

    inst = PoseInstance("/x.jpg", 3, [1, 2, 3, 4], np.zeros((17, 2)), np.zeros(17), ann_id=9)
    items = InstanceList([inst], source="f.json", skipped={"crowd": 2, "zero_area": 1})
    again = pickle.loads(pickle.dumps(items))
    assert isinstance(again, InstanceList) and again.skipped == {"crowd": 2, "zero_area": 1}
    assert again.num_skipped == 3 and again.source == "f.json" and again[0].ann_id == 9
    assert again[0].bbox.dtype == np.float32 and again[0].keypoints.shape == (17, 2)
