"""COCO AP scores CrowdPose/AIC (and gt without areas) with 0.53 x box area, like MMPose; the catalog says
which data set is scored how."""

from slimpose.data.catalog import CATALOG
from slimpose.evaluation.metrics import CocoKeypointMetric, PCKhMetric
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

    def metric(name, gt):
        spec = CATALOG[name]
        m = spec.metric.for_split(spec, gt, [])
        return m.use_area and m._areas_known()

    assert metric("coco", path) is True
    assert metric("coco", write_json_atomic(tmp_path / "gt2.json", _gt(False))) is False
    assert metric("crowdpose", path) is False and metric("aic", path) is False
    assert CATALOG["mpii"].metric is PCKhMetric and CATALOG["ochuman"].metric is CocoKeypointMetric
    assert all(spec.metric.mode == "max" for spec in CATALOG.values())
