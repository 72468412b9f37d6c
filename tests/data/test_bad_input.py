"""Bad files and records give a SlimposeInputError naming the file (and record), or a counted warning. The rows of
issue 16 (runs, checkpoints, the CLI: nothing lost, nothing silently wrong) are in tests/cli/test_bad_input_matrix.py."""

import json

import cv2
import numpy as np
import pytest

from slimpose.data.coco import load_coco_instances
from slimpose.data.dataset import TopDownDataset, read_image
from slimpose.data.instances import PoseInstance
from slimpose.data.metainfo import COCO, MPII
from slimpose.data.mpii import load_mpii_instances
from slimpose.utils.io import SlimposeInputError


class _Codec:
    def encode(self, keypoints, weights):
        return {"target": np.zeros((len(weights), 4, 3), np.float32), "target_weight": weights}


def _ann(ann_id, bbox, k=17, image_id=1, **extra):
    kp = []
    for j in range(k):
        kp += [20.0 + j, 30.0 + j, 2]
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "bbox": bbox, "keypoints": kp,
            "num_keypoints": k, "iscrowd": 0, "area": 100.0, **extra}


def _coco(tmp_path, anns, name="ann.json"):
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48}],
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.keypoint_names)}],
            "annotations": anns}
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [1, 2,')
    with pytest.raises(SlimposeInputError, match="broken.json"):
        load_coco_instances(path)
    with pytest.raises(SlimposeInputError, match="broken.json"):
        load_mpii_instances(path)
    with pytest.raises(SlimposeInputError, match="not found"):
        load_coco_instances(tmp_path / "missing.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(SlimposeInputError, match="list.json.*COCO"):
        load_coco_instances(tmp_path / "list.json")


def test_wrong_keypoint_length_names_file_and_annotation(tmp_path):
    bad = _ann(4242, [1, 1, 20, 20], k=16)
    path = _coco(tmp_path, [_ann(1, [1, 1, 20, 20]), bad])
    with pytest.raises(SlimposeInputError, match=r"ann\.json.*annotation id 4242.*48 values, expected 51"):
        load_coco_instances(path)


def test_non_numeric_fields_and_unknown_image(tmp_path):
    path = _coco(tmp_path, [_ann(7, ["x", 1, 20, 20])])
    with pytest.raises(SlimposeInputError, match=r"annotation id 7: 'bbox' must be a list of numbers"):
        load_coco_instances(path)
    path = _coco(tmp_path, [_ann(8, [1, 1, 20, float("nan")])], name="nan.json")
    with pytest.raises(SlimposeInputError, match=r"nan\.json.*annotation id 8.*NaN"):
        load_coco_instances(path)
    path = _coco(tmp_path, [_ann(9, [1, 1, 20, 20], image_id=99)], name="img.json")
    with pytest.raises(SlimposeInputError, match=r"annotation id 9: image id 99 is not in 'images'"):
        load_coco_instances(path)


def test_zero_area_gt_box_is_skipped_with_a_counted_warning(tmp_path):
    anns = [_ann(1, [1, 1, 20, 20]), _ann(2, [5, 5, 0, 10]), _ann(3, [70, 5, 10, 10]),  # x beyond W - 1
            _ann(4, [1, 1, 20, 20], iscrowd=1)]
    path = _coco(tmp_path, anns)
    with pytest.warns(UserWarning, match=r"ann\.json: skipped 2 annotations with a zero-area box"):
        insts = load_coco_instances(path)
    assert [i.ann_id for i in insts] == [1]
    assert insts.skipped == {"zero_area": 2, "crowd": 1} and insts.num_skipped == 3


def test_detection_file_errors_and_zero_area(tmp_path):
    ann = _coco(tmp_path, [_ann(1, [1, 1, 20, 20])])
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 20, 20], "score": 0.9},
        {"image_id": 1, "category_id": 1, "bbox": [1, 1, 0, 20], "score": 0.9},
        {"image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5], "score": 0.9},
    ]))
    with pytest.warns(UserWarning, match=r"dets\.json: skipped 1 detections with a zero-area box"):
        insts = load_coco_instances(ann, bbox_file=dets)
    assert len(insts) == 1 and insts.skipped == {"zero_area": 1, "not_person": 1}
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([{"image_id": i, "category_id": 1, "bbox": [1, 1, 5, 5], "score": 1.0}
                                   for i in (1, 555, 777, 555)]))
    with pytest.raises(SlimposeInputError,
                       match=r"unknown\.json: 3 detections .*not in .*ann\.json: 555, 777"):
        load_coco_instances(ann, bbox_file=unknown)
    notlist = tmp_path / "notlist.json"
    notlist.write_text(json.dumps({"image_id": 1}))
    with pytest.raises(SlimposeInputError, match=r"notlist\.json"):
        load_coco_instances(ann, bbox_file=notlist)


def test_bad_mpii_records(tmp_path):
    rec = {"image": "000001.jpg", "center": [50, 50], "scale": 1.0, "joints": [[1, 1]] * 16,
           "joints_vis": [1] * 16}
    path = tmp_path / "mpii.json"
    path.write_text(json.dumps([rec, {**rec, "joints": [[1, 1]] * 15}]))
    with pytest.raises(SlimposeInputError,
                       match=r"mpii\.json: record \[1\] \(000001\.jpg\).*30 values, expected 32"):
        load_mpii_instances(path)
    path.write_text(json.dumps([{k: v for k, v in rec.items() if k != "center"}]))
    with pytest.raises(SlimposeInputError, match=r"record \[0\]: missing field\(s\) center"):
        load_mpii_instances(path)
    path.write_text(json.dumps({"image": "x"}))
    with pytest.raises(SlimposeInputError, match="json list"):
        load_mpii_instances(path)
    path.write_text(json.dumps([rec]))
    assert load_mpii_instances(path, info=MPII)[0].num_keypoints == 16


def test_missing_and_corrupt_images_name_the_file(tmp_path):
    kp, vis = np.full((17, 2), 10.0), np.full(17, 2.0)
    missing = PoseInstance(str(tmp_path / "nope.jpg"), 3, [1, 1, 20, 20], kp, vis, ann_id=11)
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 10)
    corrupt = PoseInstance(str(garbage), 4, [1, 1, 20, 20], kp, vis, ann_id=12)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    blank = PoseInstance(str(empty), 5, [1, 1, 20, 20], kp, vis)
    ds = TopDownDataset([missing, corrupt, blank], COCO, _Codec())
    with pytest.raises(SlimposeInputError, match=r"image not found: .*nope\.jpg \(image id 3, ann 11\)"):
        ds[0]
    with pytest.raises(SlimposeInputError,
                       match=r"garbage\.jpg: unreadable or corrupt image \(image id 4, ann 12\)"):
        ds[1]
    with pytest.raises(SlimposeInputError, match=r"empty\.png: unreadable or corrupt"):
        ds[2]
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.zeros((8, 8), np.uint8))  # grey-scale file -> 3 channels
    assert read_image(good).shape == (8, 8, 3)


def test_dataset_rejects_instances_of_another_skeleton(tmp_path):
    inst = PoseInstance(str(tmp_path / "a.jpg"), 1, [1, 1, 20, 20], np.zeros((16, 2)), np.zeros(16), ann_id=5)
    with pytest.raises(SlimposeInputError,
                       match=r"a\.jpg: instance 0 \(ann 5\) has 16 keypoints.*'coco' expects 17"):
        TopDownDataset([inst], COCO, _Codec())
