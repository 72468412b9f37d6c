"""COCO results files: atomic writing, rounding, validated reading."""

from __future__ import annotations

import json

import numpy as np
import pytest

from slimpose.evaluation.results import make_coco_record, read_coco_results, write_coco_results
from slimpose.utils.io import SlimposeInputError


def test_write_read_roundtrip(tmp_path):
    rec = make_coco_record(np.int64(5), np.array([[1.23456789, 2.0], [3.0, 4.98765]], dtype=np.float32),
                           np.array([0.12345678, 1.0]), np.float32(0.5), category_id=1)
    path = write_coco_results(tmp_path / "out" / "res.json", [rec])
    raw = json.loads(path.read_text())
    assert raw == [{"image_id": 5, "category_id": 1, "keypoints": [1.235, 2.0, 0.123457, 3.0, 4.988, 1.0],
                    "score": 0.5}]
    assert [p.name for p in path.parent.iterdir()] == ["res.json"]  # no temp file left behind
    assert read_coco_results(path, num_keypoints=2) == raw


@pytest.mark.parametrize(
    "records, pattern",
    [
        ({"a": 1}, "JSON list"),
        ([{"image_id": 1, "category_id": 1, "keypoints": [0, 0, 1]}], "record 0: missing key 'score'"),
        ([{"image_id": "x", "category_id": 1, "keypoints": [0, 0, 1], "score": 1}], "record 0: image_id"),
        ([{"image_id": 1, "category_id": 1, "keypoints": [0, 0], "score": 1}], "record 0: keypoints"),
        ([{"image_id": 1, "category_id": 1, "keypoints": [0, 0, 1], "score": 1},
          {"image_id": 1, "category_id": 1, "keypoints": [0, 0, 1, 0, 0, 1], "score": 1}], "record 1: 6"),
        ([{"image_id": 1, "category_id": 1, "keypoints": [0, "a", 1], "score": 1}], "record 0: keypoints"),
        ([{"image_id": 1, "category_id": 1, "keypoints": [0, float("inf"), 1], "score": 1}], "record 0.*NaN"),
    ],
)
def test_read_rejects_bad_records(tmp_path, records, pattern):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(SlimposeInputError, match=f"bad.json.*{pattern}"):
        read_coco_results(path)


def test_read_missing_and_malformed_files(tmp_path):
    with pytest.raises(SlimposeInputError, match="nope.json"):
        read_coco_results(tmp_path / "nope.json")
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    with pytest.raises(SlimposeInputError, match="broken.json.*malformed"):
        read_coco_results(broken)


def test_write_refuses_nan(tmp_path):
    rec = make_coco_record(1, np.zeros((2, 2)), np.array([np.nan, 1.0]), 1.0)
    with pytest.raises(SlimposeInputError, match="record 0"):
        write_coco_results(tmp_path / "r.json", [rec])
    assert not (tmp_path / "r.json").exists()
