"""``slimpose demo --quick`` end to end: report files, table, checkpoints, teacher record, data reuse."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import cv2
import numpy as np
import pytest
import torch

import slimpose.api
from slimpose.demo import MODEL_KEYS, demo_sizes, prepare_data, run_demo
from slimpose.engine.checkpoint import load_checkpoint
from slimpose.evaluation.coco import evaluate_coco_keypoints
from slimpose.heads import HeatmapHead, RegressionHead
from slimpose.utils.io import SlimposeInputError


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("demo")
    report = run_demo(out, quick=True, seed=0, threads=1)
    return out, report


def test_report_files_and_table(demo):
    out, report = demo
    assert report == out / "report.md"
    for name in ("report.md", "results.json", "ap_vs_gflops.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    overlays = sorted((out / "overlays").glob("*.jpg"))
    assert overlays
    img = cv2.imread(str(overlays[0]))
    assert img is not None and img.shape[1] > 2.5 * img.shape[0]  # three panels side by side
    text = report.read_text()
    assert "SMOKE RUN" in text and "distilpose_s_coco" in text and "distilpose_teacher" in text
    rows = [line for line in text.splitlines() if re.match(r"\| (teacher|student)", line)]
    assert len(rows) == 3
    result = json.loads((out / "results.json").read_text())
    models = result["models"]
    assert set(models) == set(MODEL_KEYS)
    val_gt = out / "data/synthetic/annotations/person_keypoints_val.json"
    for key, line in zip(MODEL_KEYS, rows):
        # the table shows the AP the evaluator measured on the last epoch, and that AP is what COCOeval
        # gives for the run's own results file against the synthetic val ground truth
        assert line.split("|")[2].strip() == f"{models[key]['AP']:.3f}"
        run_metrics = json.loads((out / "runs" / key / "metrics_val.json").read_text())
        assert models[key]["AP"] == run_metrics["AP"]
        records = json.loads((out / "runs" / key / "results_val.json").read_text())
        assert evaluate_coco_keypoints(str(val_gt), records)["AP"] == pytest.approx(models[key]["AP"], abs=1e-12)
        assert models[key]["latency_ms"] > 0
    assert models["student_distill"]["gflops"] < models["teacher"]["gflops"]
    assert models["student_distill"]["params"] < models["teacher"]["params"]
    assert models["student_nodistill"]["score_source"] == "constant"
    assert models["student_distill"]["score_source"] == "confidence"
    assert result["quick"] is True and result["data"]["reused"] is False


def test_checkpoints_load_and_predict(demo):
    out, _ = demo
    val = json.loads((out / "data/synthetic/annotations/person_keypoints_val.json").read_text())
    ann = next(a for a in val["annotations"] if a["num_keypoints"] > 0)
    image = next(im for im in val["images"] if im["id"] == ann["image_id"])
    path = out / "data/synthetic/images" / image["file_name"]
    for key in MODEL_KEYS:
        model = slimpose.api.load(out / "checkpoints" / f"{key}.pth")
        res = model.predict(str(path), np.asarray([ann["bbox"]]))
        assert res.keypoints.shape == (1, 17, 2) and np.isfinite(res.keypoints).all()
        assert isinstance(model.head, HeatmapHead if key == "teacher" else RegressionHead)


def test_student_records_teacher_without_its_weights(demo):
    out, _ = demo
    teacher_path = out / "checkpoints" / "teacher.pth"
    teacher = load_checkpoint(teacher_path)
    student = load_checkpoint(out / "checkpoints" / "student_distill.pth")
    rec = student["distill"]["teacher"]
    assert rec["path"] == str(teacher_path.resolve())
    assert rec["sha256"] == hashlib.sha256(teacher_path.read_bytes()).hexdigest()
    assert "optimizer" not in student and "task" not in student
    assert not any(k.startswith("teacher") for k in student["model"])
    # same key names (same TDE shape), but the heads differ: a 5-output regression head in the student,
    # the teacher's heatmap head (H*W outputs) is not in it
    hm_w, hm_h = teacher["config"]["data"]["heatmap_size"]
    assert teacher["model"]["head.mlp.1.weight"].shape[0] == hm_w * hm_h
    assert student["model"]["head.mlp.1.weight"].shape[0] == 5
    numel = sum(v.numel() for v in student["model"].values())
    assert numel < sum(v.numel() for v in teacher["model"].values())
    nodistill = load_checkpoint(out / "checkpoints" / "student_nodistill.pth")
    assert nodistill["distill"]["teacher"] is None and nodistill["distill"]["score_source"] == "constant"
    assert student["distill"]["score_source"] == "confidence" and student["distill"]["method"] == "distilpose"


def test_second_run_reuses_the_data_set(demo):
    out, _ = demo
    root = out / "data" / "synthetic"
    ann = root / "annotations" / "person_keypoints_train.json"
    before = ann.stat().st_mtime_ns
    sizes = demo_sizes(quick=True)
    assert prepare_data(root, sizes, seed=0)["reused"] is True
    assert ann.stat().st_mtime_ns == before
    # other parameters: regenerated (and the stale images removed)
    other = dataclasses.replace(sizes, val_images=3)
    assert prepare_data(root, other, seed=0)["reused"] is False
    assert len(list((root / "images" / "val").glob("*.jpg"))) == 3
    assert prepare_data(root, other, seed=0)["reused"] is True


def test_bad_arguments_are_clear_errors(tmp_path):
    with pytest.raises(SlimposeInputError, match="--seed"):
        run_demo(tmp_path, quick=True, seed=-1)
    with pytest.raises(SlimposeInputError, match="--threads"):
        run_demo(tmp_path, quick=True, threads=0)


def test_verdict_is_honest():
    from slimpose.demo import verdict

    def rows(t, nd, d):
        return {"teacher": {"AP": t}, "student_nodistill": {"AP": nd}, "student_distill": {"AP": d}}

    assert "smoke" in verdict(rows(0.5, 0.1, 0.3), smoke=True)
    assert "did not learn" in verdict(rows(0.0, 0.0, 0.0), smoke=False)
    assert "beats" in verdict(rows(0.5, 0.1, 0.3), smoke=False)
    assert "does not beat" in verdict(rows(0.5, 0.3, 0.3), smoke=False)
