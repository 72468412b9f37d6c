"""The evaluator scores CrowdPose/AIC (and gt without areas) with 0.53 x box area, like MMPose."""

from slimpose.data.metainfo import AIC, COCO, CROWDPOSE
from slimpose.engine.evaluator import Evaluator
from slimpose.utils.io import write_json_atomic


def _gt(with_area: bool) -> dict:
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 10, 20], "keypoints": [0] * 51,
           "num_keypoints": 0, "iscrowd": 0}
    if with_area:
        ann["area"] = 150.0
    return {"images": [{"id": 1, "file_name": "a.jpg", "width": 32, "height": 32}], "annotations": [ann],
            "categories": [{"id": 1, "name": "person"}]}


def test_use_area_rules(tmp_path):
    path = write_json_atomic(tmp_path / "gt.json", _gt(True))
    assert Evaluator([], COCO, (48, 64), tmp_path, gt=path)._use_area() is True
    assert Evaluator([], COCO, (48, 64), tmp_path, gt=_gt(False))._use_area() is False
    assert Evaluator([], CROWDPOSE, (48, 64), tmp_path, gt=_gt(True))._use_area() is False
    assert Evaluator([], AIC, (48, 64), tmp_path, gt=_gt(True))._use_area() is False
