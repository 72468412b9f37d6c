"""Synthetic people: determinism, COCO validity, visibility semantics, 3-D consistency, left/right."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimpose.data import synth as S
from slimpose.data import synth_body as sb
from slimpose.data import synth_render as sr
from slimpose.utils.io import SlimposeInputError

SIZE = (192, 160)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synth")
    path = S.generate_synthetic_dataset(out, 30, seed=11, split="val", image_size=SIZE, progress=False)
    return path, json.loads(path.read_text())


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_identical_bytes_and_workers_do_not_matter(tmp_path):
    a = S.generate_synthetic_dataset(tmp_path / "a", 6, seed=7, image_size=SIZE, progress=False)
    S.generate_synthetic_dataset(tmp_path / "b", 6, seed=7, image_size=SIZE, progress=False, workers=2)
    S.generate_synthetic_dataset(tmp_path / "c", 6, seed=8, image_size=SIZE, progress=False)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == tmp_path / "a" / "annotations" / "person_keypoints_train.json"
    assert len(fa) == 7 and fa == fb
    assert fa.keys() == fc.keys()
    changed = [k for k in fa if fa[k] != fc[k]]
    assert len(changed) == 7  # every image and the json differ with another seed


def test_train_and_val_streams_differ():
    a = S.render_synthetic_image(S.image_rng(0, "train", 0), S.SynthConfig(image_size=SIZE))
    b = S.render_synthetic_image(S.image_rng(0, "val", 0), S.SynthConfig(image_size=SIZE))
    assert not np.array_equal(a.image, b.image)


def test_coco_loadable_and_layout(dataset):
    from pycocotools.coco import COCO

    path, data = dataset
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 30
    cat = coco.loadCats(coco.getCatIds())[0]
    assert cat["name"] == "person" and cat["keypoints"][0] == "nose" and cat["keypoints"][16] == "right_ankle"
    assert len(cat["skeleton"]) == 19 and [16, 14] in cat["skeleton"]
    root = path.parent.parent / "images"
    for img in data["images"]:
        assert img["file_name"].startswith("val/") and (root / img["file_name"]).is_file()
        assert (img["width"], img["height"]) == SIZE
        assert {"fx", "fy", "cx", "cy"} <= img["camera"].keys()
    assert len(data["annotations"]) >= 30
    assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"])


def test_keypoint_visibility_semantics_and_boxes(dataset):
    from pycocotools.coco import COCO

    path, data = dataset
    coco = COCO(str(path))
    w, h = SIZE
    counts = np.zeros(3, dtype=int)
    for ann in data["annotations"]:
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        v = kp[:, 2]
        assert set(np.unique(v)) <= {0, 1, 2}
        counts += np.bincount(v.astype(int), minlength=3)
        assert np.all(kp[v == 0, :2] == 0)
        lab = kp[v > 0]
        assert np.all((lab[:, 0] >= 0) & (lab[:, 0] <= w - 1) & (lab[:, 1] >= 0) & (lab[:, 1] <= h - 1))
        assert ann["num_keypoints"] == int((v > 0).sum())
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1
        x, y, bw, bh = ann["bbox"]
        assert 0 < ann["area"] <= bw * bh
        vis = kp[v == 2]
        assert np.all((vis[:, 0] >= x - 1) & (vis[:, 0] <= x + bw))
        assert np.all((vis[:, 1] >= y - 1) & (vis[:, 1] <= y + bh))
        mask = coco.annToMask(ann)
        assert int(mask.sum()) == int(ann["area"])
        ys, xs = np.nonzero(mask)
        assert [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1] == [x, y, bw, bh]
    assert counts[1] >= 10 and counts[2] >= 50  # occluded and visible points both occur


def test_keypoints_3d_project_to_2d(dataset):
    _, data = dataset
    cams = {img["id"]: img["camera"] for img in data["images"]}
    checked = 0
    for ann in data["annotations"]:
        c = cams[ann["image_id"]]
        p = np.asarray(ann["keypoints_3d"])
        assert p.shape == (17, 3) and np.all(p[:, 2] > 0.3)
        uv = np.stack([c["fx"] * p[:, 0] / p[:, 2] + c["cx"], c["fy"] * p[:, 1] / p[:, 2] + c["cy"]], 1)
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        lab = kp[:, 2] > 0
        assert np.all(np.abs(uv[lab] - kp[lab, :2]) < 0.5)
        checked += int(lab.sum())
    assert checked > 100


def _yaw_distance(yaw: float, target: float) -> float:
    return abs((yaw - target + 180.0) % 360.0 - 180.0)


def test_left_right_front_and_back_views_in_dataset(dataset):
    _, data = dataset
    front, back = [], []
    for ann in data["annotations"]:
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        if kp[5, 2] == 0 or kp[6, 2] == 0:
            continue
        left_on_image_right = kp[5, 0] > kp[6, 0]
        if _yaw_distance(ann["view_yaw"], 0.0) < 40:
            front.append(left_on_image_right)
        elif _yaw_distance(ann["view_yaw"], 180.0) < 40:
            back.append(not left_on_image_right)
    assert len(front) >= 4 and len(back) >= 4
    assert np.mean(front) >= 0.8 and np.mean(back) >= 0.8


def test_left_right_statistics_over_many_bodies():
    rng = np.random.default_rng(0)
    agree = {"front": [], "back": []}
    for _ in range(400):
        shape, pose = sb.BodyShape.sample(rng), sb.sample_pose(rng)
        yaw = rng.uniform(0, 360)
        view = "front" if _yaw_distance(yaw, 0) < 45 else "back" if _yaw_distance(yaw, 180) < 45 else None
        if view is None:
            continue
        body = sb.pose_body(shape, pose).transformed(sb.body_to_camera_rotation(yaw, rng.uniform(-10, 30)),
                                                     np.array([0.0, 0.0, 5.0]))
        x = body.keypoints[:, 0] / body.keypoints[:, 2]
        agree[view].append((x[5] > x[6]) == (view == "front"))
        agree[view].append((x[11] > x[12]) == (view == "front"))
    assert len(agree["front"]) > 50 and len(agree["back"]) > 50
    assert np.mean(agree["front"]) > 0.95 and np.mean(agree["back"]) > 0.95


def test_front_views_show_a_face_and_back_views_hair():
    """The nose is visible in front views and hidden in back views (what tells front from back)."""
    rng = np.random.default_rng(3)
    cfg = S.SynthConfig(image_size=(160, 200))
    nose = {0.0: [], 180.0: []}
    for _ in range(12):
        for yaw in nose:
            person, canvas = _render_alone(rng, cfg, yaw, pose_class="standing")
            ann = S._annotate(canvas, person, 0, cfg)
            nose[yaw].append(ann["keypoints"][2])
    assert nose[0.0].count(2) >= 10 and nose[180.0].count(2) == 0


def _render_alone(rng, cfg, yaw, pose_class, depth=4.0, offset=(0.0, 0.0)):
    w, h = cfg.image_size
    cam = S.Camera(fx=200.0, fy=200.0, cx=(w - 1) / 2, cy=(h - 1) / 2, pitch=5.0)
    shape, pose = sb.BodyShape.sample(rng), sb.sample_pose(rng, pose_class)
    pose.head_yaw = 0.0
    body = sb.pose_body(shape, pose).transformed(sb.body_to_camera_rotation(yaw, cam.pitch),
                                                 np.array([offset[0], offset[1], depth]))
    person = S.Person(body=body, look=S.Look.sample(rng), view_yaw=yaw, height_px=100.0)
    person.uv = cam.project(body.points)
    canvas = sr.Canvas.create(np.full((h, w, 3), 128.0, dtype=np.float32), rng)
    S._draw_person(canvas, cam, person, 0)
    return person, canvas


def test_visibility_from_depth_self_and_mutual_occlusion():
    rng = np.random.default_rng(5)
    cfg = S.SynthConfig(image_size=(160, 200))
    # frontal standing person alone: shoulders, hips, knees and ankles are visible
    person, canvas = _render_alone(rng, cfg, 0.0, "standing")
    v = np.asarray(S._annotate(canvas, person, 0, cfg)["keypoints"]).reshape(17, 3)[:, 2]
    assert np.all(v[[0, 5, 6, 11, 12, 13, 14, 15, 16]] == 2)
    # profiles: the far shoulder is hidden, the near one visible (yaw 90 shows the right side)
    for yaw, near, far in ((90.0, 6, 5), (-90.0, 5, 6)):
        person, canvas = _render_alone(rng, cfg, yaw, "standing")
        v = np.asarray(S._annotate(canvas, person, 0, cfg)["keypoints"]).reshape(17, 3)[:, 2]
        assert v[far] == 1 and v[near] == 2
    # a second person right in front hides the first one's torso joints
    w, h = cfg.image_size
    cam = S.Camera(fx=200.0, fy=200.0, cx=(w - 1) / 2, cy=(h - 1) / 2, pitch=5.0)
    people = []
    for depth in (6.0, 3.5):
        shape, pose = sb.BodyShape.sample(rng), sb.sample_pose(rng, "standing")
        body = sb.pose_body(shape, pose).transformed(sb.body_to_camera_rotation(0.0, 5.0),
                                                     np.array([0.0, 0.0, depth]))
        p = S.Person(body=body, look=S.Look.sample(rng), view_yaw=0.0, height_px=100.0)
        p.uv = cam.project(body.points)
        people.append(p)
    canvas = sr.Canvas.create(np.full((h, w, 3), 128.0, dtype=np.float32), rng)
    for pid in (1, 0):  # draw order must not matter: the z-buffer decides
        S._draw_person(canvas, cam, people[pid], pid)
    cfg = S.SynthConfig(image_size=(160, 200), min_labelled_area=1.0)
    far = np.asarray(S._annotate(canvas, people[0], 0, cfg)["keypoints"]).reshape(17, 3)[:, 2]
    near = np.asarray(S._annotate(canvas, people[1], 1, cfg)["keypoints"]).reshape(17, 3)[:, 2]
    assert np.all(far[[5, 6, 11, 12]] == 1) and np.all(near[[5, 6, 11, 12]] == 2)


def test_cli_writes_files_and_rejects_bad_input(tmp_path, capsys):
    from slimpose.cli.main import main

    rc = main(["data", "synth", "--out", str(tmp_path / "d"), "--images", "3", "--seed", "1",
               "--split", "val", "--width", "128", "--height", "96", "--no-progress"])
    assert rc == 0
    data = json.loads((tmp_path / "d" / "annotations" / "person_keypoints_val.json").read_text())
    assert [im["file_name"] for im in data["images"]] == [f"val/00000000{i}.jpg" for i in (1, 2, 3)]
    assert all((tmp_path / "d" / "images" / im["file_name"]).is_file() for im in data["images"])
    assert main(["data", "synth", "--out", str(tmp_path / "e"), "--images", "0"]) == 2
    assert "--images" in capsys.readouterr().err
    with pytest.raises(SlimposeInputError, match="split"):
        S.generate_synthetic_dataset(tmp_path / "f", 1, seed=0, split="../x")


def test_easy_preset_one_person_facing_the_camera(tmp_path):
    """The demo preset: exactly one person per image, yaw within +-75 degrees of facing the camera."""
    from slimpose.data.synth import SynthConfig, generate_synthetic_dataset

    path = generate_synthetic_dataset(tmp_path, 12, seed=5, split="val", image_size=(128, 128), progress=False,
                                      config=SynthConfig.easy())
    data = json.loads(path.read_text())
    per_image = {}
    for ann in data["annotations"]:
        per_image[ann["image_id"]] = per_image.get(ann["image_id"], 0) + 1
        yaw = ann["view_yaw"]
        assert min(yaw, 360.0 - yaw) <= 75.0 + 1e-6
    assert set(per_image.values()) == {1}
