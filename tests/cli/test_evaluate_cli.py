"""``slimpose evaluate``: JSON output, table output, exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimpose.cli.main import main
from slimpose.evaluation.coco import evaluate_coco_keypoints
from _shared import SHARED_REAL

COCO_GT = SHARED_REAL / "coco/test_coco.json"
CROWDPOSE_GT = SHARED_REAL / "crowdpose/test_crowdpose.json"
pytestmark = pytest.mark.skipif(not COCO_GT.is_file(), reason="real sample data not available")


def _results(gt_path: Path, tmp_path: Path, noise: float = 2.0) -> Path:
    rng = np.random.default_rng(0)
    data = json.loads(gt_path.read_text())
    recs = []
    for a in data["annotations"]:
        kp = np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3)
        kp[:, :2] += rng.normal(0, noise, size=(kp.shape[0], 2))
        kp[:, 2] = 0.9
        recs.append({"image_id": a["image_id"], "category_id": 1, "keypoints": kp.reshape(-1).tolist(),
                     "score": float(rng.uniform(0.5, 1.0))})
    path = tmp_path / f"{gt_path.stem}_results.json"
    path.write_text(json.dumps(recs))
    return path


def test_json_output_matches_function(tmp_path, capsys):
    res = _results(COCO_GT, tmp_path)
    assert main(["evaluate", "--gt", str(COCO_GT), "--results", str(res), "--json"]) == 0
    out = capsys.readouterr().out
    stats = json.loads(out)  # exactly one JSON object on stdout
    for key in ("AP", "AP50", "AP75", "APM", "APL", "AR"):
        assert key in stats
    assert stats == evaluate_coco_keypoints(COCO_GT, res)
    assert 0.0 < stats["AP"] <= 1.0


def test_table_output(tmp_path, capsys):
    res = _results(COCO_GT, tmp_path)
    assert main(["evaluate", "--gt", str(COCO_GT), "--results", str(res)]) == 0
    out = capsys.readouterr().out
    assert "AP50" in out and "ARL" in out


def test_bad_results_file_exit_code_2_names_file(tmp_path, capsys):
    bad = tmp_path / "broken_results.json"
    bad.write_text('[{"image_id": 785, "category_id": 1, "keypoints": [1, 2, 3], "score": 1.0}]')
    assert main(["evaluate", "--gt", str(COCO_GT), "--results", str(bad), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "broken_results.json" in captured.err and "record 0" in captured.err
    assert main(["evaluate", "--gt", str(COCO_GT), "--results", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err


@pytest.mark.skipif(not CROWDPOSE_GT.is_file(), reason="crowdpose sample not available")
def test_other_k_warns_without_sigmas_and_uses_named_sigmas(tmp_path, capsys):
    res = _results(CROWDPOSE_GT, tmp_path, noise=4.0)
    assert main(["evaluate", "--gt", str(CROWDPOSE_GT), "--results", str(res), "--json"]) == 0
    captured = capsys.readouterr()
    uniform = json.loads(captured.out)
    assert "uniform sigma" in captured.err and "area" in captured.err
    assert main(["evaluate", "--gt", str(CROWDPOSE_GT), "--results", str(res), "--json",
                 "--sigmas", "crowdpose"]) == 0
    named = json.loads(capsys.readouterr().out)
    assert named != uniform
