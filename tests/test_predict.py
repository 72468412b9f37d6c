"""``slimpose predict`` on the real COCO sample photos (gt and detection boxes), on a video; then evaluate."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import slimpose
from slimpose.cli.main import main
from slimpose.data.boxes import load_detections
from slimpose.engine.checkpoint import save_checkpoint
from slimpose.evaluation.coco import evaluate_coco_keypoints
from slimpose.models import create_model
from slimpose.utils.io import SlimposeInputError, write_json_atomic
from _shared import SHARED_REAL

REAL = SHARED_REAL / "coco"
TINY = {"depth": 1, "dim": 32, "num_heads": 2}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(1)
    root = tmp_path_factory.mktemp("predict")
    model = create_model("tokenpose_s_v1", input_size=(48, 64), **TINY)
    cfg = {"model": {"name": "tokenpose_s_v1", "overrides": TINY},
           "data": {"input_size": [48, 64], "heatmap_size": [12, 16]}}
    state = {"model": model.state_dict(), "model_name": "tokenpose_s_v1", "config": cfg}
    save_checkpoint(state, root / "m.pth")
    return root / "m.pth"


def test_predict_folder_gt_boxes_then_evaluate(ckpt, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["predict", str(REAL / "images"), "--checkpoint", str(ckpt),
               "--gt", str(REAL / "test_coco.json"), "--gt-boxes", "--out", str(out), "--batch", "5"])
    assert rc == 0
    assert "ONE person box" not in capsys.readouterr().err  # boxes given: no whole-image warning
    gt = json.loads((REAL / "test_coco.json").read_text())
    n_gt = sum(1 for a in gt["annotations"] if not a.get("iscrowd", 0))
    records = json.loads((out / "results.json").read_text())
    assert len(records) == n_gt
    assert {r["image_id"] for r in records} <= {img["id"] for img in gt["images"]}
    assert all(len(r["keypoints"]) == 51 for r in records)
    pngs = sorted(p.name for p in (out / "vis").iterdir())
    assert pngs == sorted(Path(i["file_name"]).stem + ".png" for i in gt["images"])
    first = gt["images"][0]
    assert cv2.imread(str(out / "vis" / pngs[0])).shape[:2] == (first["height"], first["width"])
    # the command predicts what the Python API predicts for the same images and boxes (no flip test: the
    # command's default)
    model = slimpose.load(ckpt, flip_test=False)
    names = {img["id"]: img["file_name"] for img in gt["images"]}
    api_records = []
    for image_id in sorted({r["image_id"] for r in records}):
        boxes = [a["bbox"] for a in gt["annotations"] if a["image_id"] == image_id and not a.get("iscrowd", 0)]
        api_records += model.predict(REAL / "images" / names[image_id], np.c_[boxes, np.ones(len(boxes))]
                                     ).to_coco(image_id)
    ordered = sorted(records, key=lambda r: r["image_id"])  # per image: the boxes in annotation order
    assert len(ordered) == len(api_records)
    for r, ref in zip(ordered, api_records):
        assert r["image_id"] == ref["image_id"]
        np.testing.assert_allclose(r["keypoints"], ref["keypoints"], atol=1e-3)
        assert r["score"] == pytest.approx(ref["score"], abs=1e-6)
    # ``slimpose evaluate`` reports COCOeval's AP of the file: the random model's, and 1.0 for the truth
    capsys.readouterr()
    assert main(["evaluate", "--gt", str(REAL / "test_coco.json"), "--results", str(out / "results.json"),
                 "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["AP"] == pytest.approx(evaluate_coco_keypoints(str(REAL / "test_coco.json"), records)["AP"])
    assert stats["AP"] < 0.5
    truth = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
             for a in gt["annotations"] if not a.get("iscrowd", 0) and a.get("num_keypoints", 0) > 0]
    write_json_atomic(tmp_path / "truth.json", truth)
    assert main(["evaluate", "--gt", str(REAL / "test_coco.json"), "--results", str(tmp_path / "truth.json"),
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["AP"] == pytest.approx(1.0)


def test_predict_detections_by_file_stem(ckpt, tmp_path):
    out = tmp_path / "det"
    rc = main(["predict", str(REAL / "images"), "--checkpoint", str(ckpt), "--boxes",
               str(REAL / "test_coco_det_AP_H_56.json"), "--det-thr", "0.5", "--out", str(out), "--no-vis",
               "--nms-thr", "0.9", "--flip"])
    assert rc == 0
    dets = json.loads((REAL / "test_coco_det_AP_H_56.json").read_text())
    kept = [d for d in dets if d["score"] >= 0.5]
    records = json.loads((out / "results.json").read_text())
    assert 0 < len(records) <= len(kept)
    assert {r["image_id"] for r in records} <= {d["image_id"] for d in kept}
    assert not (out / "vis").exists()


def test_predict_single_image_whole_frame_and_video(ckpt, tmp_path, capsys):
    img = tmp_path / "photo.jpg"
    shutil.copy(REAL / "images" / "000000000785.jpg", img)
    assert main(["predict", str(img), "--checkpoint", str(ckpt), "--out", str(tmp_path / "one")]) == 0
    assert "used whole as ONE person box" in capsys.readouterr().err  # said, not silent
    records = json.loads((tmp_path / "one" / "results.json").read_text())
    assert len(records) == 1 and records[0]["image_id"] == 0
    # a 6-frame video
    video = tmp_path / "clip.mp4"
    frame = cv2.resize(cv2.imread(str(img)), (160, 112))
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 112))
    for _ in range(6):
        writer.write(frame)
    writer.release()
    out = tmp_path / "vid"
    args = ["predict", str(video), "--checkpoint", str(ckpt), "--out", str(out), "--max-frames", "5"]
    assert main(args) == 0
    records = json.loads((out / "results.json").read_text())
    assert sorted(r["image_id"] for r in records) == [0, 1, 2, 3, 4]
    cap = cv2.VideoCapture(str(out / "clip_pose.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    cap.release()


def test_bad_inputs(ckpt, tmp_path):
    bad = tmp_path / "det.json"
    recs = [{"image_id": 1, "bbox": [0, 0, 10, 10], "score": 1}, {"image_id": 2, "bbox": [1, 2]}]
    bad.write_text(json.dumps(recs))
    with pytest.raises(SlimposeInputError, match=r"det\.json: detection \[1\]"):
        load_detections(bad)
    assert main(["predict", str(tmp_path / "nothing"), "--checkpoint", str(ckpt)]) == 2
    assert main(["predict", str(REAL / "images"), "--checkpoint", str(ckpt), "--gt-boxes"]) == 2


def test_atomic_writes_keep_the_umask_mode(tmp_path):
    """Files written atomically get the mode a plain ``open`` would (not ``mkstemp``'s 0600)."""
    import os

    write_json_atomic(tmp_path / "a.json", {"x": 1})
    (tmp_path / "b.json").write_text("{}")
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == (tmp_path / "b.json").stat().st_mode & 0o777
    assert os.access(tmp_path / "a.json", os.R_OK)
