"""``slimpose.tracking.IouTracker`` on scripted boxes; ``slimpose predict VIDEO`` writing ``track_id`` and
``slimpose lift`` choosing a track (the longest by default, ``--track ID``)."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from slimpose.cli.main import main
from slimpose.tracking import IouTracker, greedy_match
from slimpose.visualization import draw_track_ids, track_color


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_greedy_matching_takes_the_highest_iou_first():
    iou = np.array([[0.5, 0.6], [0.0, 0.55], [0.2, 0.0]])
    assert greedy_match(iou, 0.3) == [(0, 1)]  # 0.55 of row 1 is in the column row 0 took
    assert greedy_match(iou, 0.1) == [(0, 1), (2, 0)]
    assert greedy_match(np.zeros((0, 2)), 0.3) == []


def test_two_people_moving_keep_their_ids():
    tracker = IouTracker()
    for t in range(10):
        a, b = [10 + 5 * t, 10, 40, 80], [200 - 3 * t, 30, 50, 90]
        boxes = [b, a] if t % 2 else [a, b]  # the order of the boxes does not matter
        ids = tracker.update(np.array(boxes, dtype=float))
        assert (ids[::-1] if t % 2 else ids).tolist() == [1, 2]


def test_a_crossing_pair_keeps_its_ids():
    """A walks right, B walks left past it (different sizes and heights): at each frame a box overlaps its
    own last box more than the other's, so greedy matching keeps the ids through the crossing."""
    tracker = IouTracker()
    for t in range(15):
        a, b = [20 + 6 * t, 10, 40, 80, 0.9], [110 - 6 * t, 20, 60, 100, 0.8]
        assert tracker.update(np.array([a, b])).tolist() == [1, 2]


def test_a_track_survives_max_age_missed_frames_then_ends():
    tracker = IouTracker(max_age=3)
    box = np.array([[10.0, 10, 40, 80]])
    assert tracker.update(box).tolist() == [1]
    for _ in range(3):  # three missed frames: still alive
        assert tracker.update(np.zeros((0, 4))).tolist() == []
    assert tracker.update(box).tolist() == [1]
    for _ in range(4):  # four: gone
        tracker.update(np.zeros((0, 4)))
    assert tracker.update(box).tolist() == [2]
    far = np.array([[10.0, 10, 40, 80], [300, 10, 40, 80]])
    assert tracker.update(far).tolist() == [2, 3]  # a new person: a new id
    assert tracker.update(np.array([[12.0, 10, 40, 80], [20, 150, 40, 40]])).tolist() == [2, 4]


def test_track_ids_are_drawn_in_their_colour():
    out = draw_track_ids(np.zeros((112, 160, 3), np.uint8), np.array([[10, 30, 40, 60, 0.9]]), [3])
    assert out[30, 20].tolist() == list(track_color(3))  # the box's top edge
    assert out[:29, 10:40].any()  # "#3" above it (anti-aliased)


# ------------------------------------------------------------------------------------------------ commands


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A tiny pose checkpoint and lifter, an 8-frame video and boxes: A in every frame, B in frames 0-3."""
    from slimpose.engine.checkpoint import save_checkpoint
    from slimpose.lifting.models import create_lifter
    from slimpose.models import create_model

    root = tmp_path_factory.mktemp("track")
    tiny = {"depth": 1, "dim": 32, "num_heads": 2}
    torch.manual_seed(1)
    model = create_model("tokenpose_s_v1", input_size=(48, 64), **tiny)
    cfg = {"model": {"name": "tokenpose_s_v1", "overrides": tiny},
           "data": {"input_size": [48, 64], "heatmap_size": [12, 16]}}
    pose = root / "pose.pth"
    save_checkpoint({"model": model.state_dict(), "model_name": "tokenpose_s_v1", "config": cfg}, pose)
    lift_tiny = dict(num_frames=9, dim=16, depth=1)
    lifter = root / "lifter.pth"
    torch.save({"model": create_lifter("mixste", **lift_tiny).state_dict(), "model_name": "mixste",
                "config": {"family": "lifting", "model": {"name": "mixste", "overrides": lift_tiny}}}, lifter)
    video = root / "walk.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 112))
    rng = np.random.default_rng(0)
    dets = []
    for t in range(8):
        frame = rng.integers(0, 255, (112, 160, 3), dtype=np.uint8)
        writer.write(frame)
        dets.append({"image_id": t, "category_id": 1, "bbox": [10 + 4 * t, 10, 40, 80], "score": 0.9})
        if t < 4:
            dets.append({"image_id": t, "category_id": 1, "bbox": [110, 20, 40, 80], "score": 0.8})
    writer.release()
    boxes = root / "boxes.json"
    boxes.write_text(json.dumps(dets))
    return pose, lifter, video, boxes


def test_predict_video_writes_track_ids_and_lift_takes_the_longest_track(inputs, tmp_path, capsys):
    pose, lifter, video, boxes = inputs
    out = tmp_path / "pred"
    assert main(["predict", str(video), "--checkpoint", str(pose), "--boxes", str(boxes), "--out", str(out)]) == 0
    records = json.loads((out / "results.json").read_text())
    per_frame = {t: [r["track_id"] for r in records if r["image_id"] == t] for t in range(8)}
    assert per_frame == {t: [1, 2] if t < 4 else [1] for t in range(8)}
    cap = cv2.VideoCapture(str(out / "walk_pose.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    cap.release()

    results = out / "results.json"
    base = ["lift", str(results), "--checkpoint", str(lifter), "--image-size", "160,112", "--png", "0",
            "--no-video-out"]
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "l1")]) == 0
    assert "track 1 (the longest of 2 tracks), in 8 frames" in capsys.readouterr().err
    with np.load(tmp_path / "l1" / "poses_3d.npz") as f:
        np.testing.assert_array_equal(f["frame_index"], np.arange(8))
    assert main(base + ["--out", str(tmp_path / "l2"), "--track", "2"]) == 0
    assert "track 2 (--track), in 4 frames" in capsys.readouterr().err
    with np.load(tmp_path / "l2" / "poses_3d.npz") as f:
        np.testing.assert_array_equal(f["frame_index"], np.arange(4))
    assert main(base + ["--out", str(tmp_path / "l3"), "--track", "9"]) == 2
    err = capsys.readouterr().err
    assert f"{results}: no track 9; the tracks present are 1 (8 frames), 2 (4 frames)" in err
    assert not (tmp_path / "l3").exists()


def test_lift_track_on_records_without_track_ids(inputs, tmp_path, capsys):
    """Image results carry no track_id: ``--track`` is refused (exit 2), naming the file."""
    _, lifter, _, _ = inputs
    kp = [float(v) for j in range(17) for v in (10 + j, 20 + j, 0.9)]
    results = tmp_path / "r.json"
    results.write_text(json.dumps([{"image_id": t, "category_id": 1, "keypoints": kp, "score": 0.9}
                                   for t in range(3)]))
    assert main(["lift", str(results), "--checkpoint", str(lifter), "--image-size", "160,112", "--track", "1",
                 "--out", str(tmp_path / "o")]) == 2
    assert f"{results}: --track 1, but no record has a track_id" in capsys.readouterr().err
