"""Synthetic people in the MPII skeleton: determinism, layout, loader round trip, joint geometry, head boxes,
visibility semantics; the MPII loader's record-index image ids, head boxes and official .mat head boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimpose.cli.main import main
from slimpose.data import synth as S
from slimpose.data import synth_body as sb
from slimpose.data import synth_mpii as M
from slimpose.data.catalog import CATALOG, resolve_split
from slimpose.data.mpii import headboxes_from_src, load_mpii_instances, read_mpii_headboxes
from slimpose.utils.io import SlimposeInputError

SIZE = (96, 96)
SEED = 5


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def val_set(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("synth_mpii")
    path = M.generate_synthetic_mpii(root, 12, seed=SEED, split="val", image_size=SIZE, progress=False)
    return path, json.loads(path.read_text())


def test_same_seed_same_bytes_workers_do_not_matter_and_images_are_the_coco_ones(tmp_path):
    a = M.generate_synthetic_mpii(tmp_path / "a", 4, seed=7, split="train", image_size=SIZE, progress=False)
    M.generate_synthetic_mpii(tmp_path / "b", 4, seed=7, split="train", image_size=SIZE, progress=False,
                              workers=2)
    M.generate_synthetic_mpii(tmp_path / "c", 4, seed=8, split="train", image_size=SIZE, progress=False)
    fa, fb, fc = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert a == tmp_path / "a" / "annotations" / "mpii_train.json"
    assert len(fa) == 5 and fa == fb
    assert fa.keys() == fc.keys() and all(fa[k] != fc[k] for k in fa)
    # the pixels are those of the COCO writer for the same seed / split / size (annotation is not random)
    S.generate_synthetic_dataset(tmp_path / "coco", 4, seed=7, split="train", image_size=SIZE, progress=False)
    for i in range(4):
        coco_jpg = (tmp_path / "coco" / "images" / "train" / f"{i + 1:09d}.jpg").read_bytes()
        assert fa[f"images/{M.mpii_image_name('train', i)}"] == coco_jpg


def test_cli_writes_the_catalog_layout(tmp_path, capsys):
    out = tmp_path / "mpii"
    for split in ("train", "val"):
        assert main(["data", "synth", "--skeleton", "mpii", "--out", str(out), "--images", "2", "--split", split,
                     "--width", "96", "--height", "96", "--no-progress"]) == 0
    spec = CATALOG["mpii"]
    for split in ("train", "val"):
        files = resolve_split(spec, out, split)
        assert files.ann == out / "annotations" / f"mpii_{split}.json" and files.images == out / "images"
        data = json.loads(files.ann.read_text())
        assert isinstance(data, list) and data
        insts = spec.load(files.ann, files.images)
        assert len(insts) == len(data) and all(Path(i.image_path).is_file() for i in insts)
    names = {p.name for p in (out / "images").iterdir()}
    assert len(names) == 4  # train and val share images/ without clashing
    assert all(n[:-4].isdigit() and len(n) == 13 for n in names)  # MMPose: int(image.split('.')[0])


def test_records_are_mpii_format(val_set):
    path, data = val_set
    assert len(data) >= 12
    for rec in data:
        assert set(rec) == {"image", "center", "scale", "joints", "joints_vis", "head_box", "joints_seen"}
        assert len(rec["joints"]) == 16 and all(len(j) == 2 for j in rec["joints"])
        assert set(rec["joints_vis"]) <= {0, 1} and set(rec["joints_seen"]) <= {0, 1}
        assert all(s <= v for s, v in zip(rec["joints_seen"], rec["joints_vis"]))  # seen implies labelled
        for j, v in zip(rec["joints"], rec["joints_vis"]):
            if v:  # 1-based pixels inside the image
                assert 1.0 <= j[0] <= SIZE[0] and 1.0 <= j[1] <= SIZE[1]
            else:
                assert j == [-1.0, -1.0]
        assert rec["scale"] > 0 and len(rec["head_box"]) == 4
        x1, y1, x2, y2 = rec["head_box"]
        assert x2 > x1 and y2 > y1
    vis = np.array([r["joints_vis"] for r in data])
    seen = np.array([r["joints_seen"] for r in data])
    assert np.any((vis == 1) & (seen == 0)), "occluded joints are labelled (MPII labels them)"
    assert np.any(vis == 0), "joints outside the image are not labelled"


def test_loader_round_trip_equals_the_generator(val_set):
    path, data = val_set
    insts = load_mpii_instances(path)
    cfg = S.checked_config(path, 12, SEED, "val", SIZE, None)
    expected = []
    for i in range(12):
        expected += M.render_mpii_image(S.image_rng(SEED, "val", i), cfg).annotations
    assert len(insts) == len(expected) == len(data)
    for idx, (inst, ann, rec) in enumerate(zip(insts, expected, data)):
        assert inst.image_id == idx and inst.ann_id == idx  # record index
        lab = ann["joints_vis"] > 0
        np.testing.assert_array_equal(inst.visible, ann["joints_vis"])
        np.testing.assert_allclose(inst.keypoints[lab], ann["joints"][lab], atol=1e-3)
        np.testing.assert_allclose(inst.head_box, ann["head_box"], atol=1e-3)
        x1, y1, x2, y2 = ann["box"]
        size = max(x2 - x1, y2 - y1)
        np.testing.assert_allclose(inst.center, [(x1 + x2) / 2, (y1 + y2) / 2], atol=2e-3)
        np.testing.assert_allclose(inst.scale, [1.25 * size] * 2, rtol=1e-5)
        assert Path(inst.image_path).name == rec["image"] and Path(inst.image_path).is_file()
        # the person box (before the 1.25 padding) holds the whole projected body and the head box
        bx, by, bw, bh = inst.bbox
        pts = np.concatenate([ann["joints"], ann["head_box"].reshape(2, 2)])
        assert np.all(pts >= [bx - 1e-2, by - 1e-2]) and np.all(pts <= [bx + bw + 1e-2, by + bh + 1e-2])
        # the projected head top lies in the head box
        hx1, hy1, hx2, hy2 = ann["head_box"]
        top = ann["joints"][M.HEAD_TOP_J]
        assert hx1 - 1e-6 <= top[0] <= hx2 + 1e-6 and hy1 - 1e-6 <= top[1] <= hy2 + 1e-6


def _upright(rng: np.random.Generator, yaw: float) -> tuple[S.Camera, sb.Body]:
    shape = sb.BodyShape.sample(rng)
    pose = sb.sample_pose(rng, "standing")
    rotation = sb.body_to_camera_rotation(yaw, 0.0)
    body = sb.pose_body(shape, pose).transformed(rotation, np.array([0.0, 0.0, 4.0]))
    return S.Camera(fx=300.0, fy=300.0, cx=150.0, cy=150.0, pitch=0.0), body


@pytest.mark.parametrize("yaw", [0.0, 40.0, 90.0, 180.0, 300.0])
def test_joint_definitions_for_an_upright_person(yaw):
    rng = np.random.default_rng(int(yaw) + 1)
    for _ in range(5):
        cam, body = _upright(rng, yaw)
        j3d = M.mpii_joints_3d(body)
        uv = cam.project(j3d)
        head_top, neck, thorax, pelvis = uv[9, 1], uv[8, 1], uv[7, 1], uv[6, 1]
        assert head_top < neck < thorax < pelvis  # image y grows downwards
        # shared joints are the COCO ones; pelvis between the hips, thorax between the shoulders
        for j, k in M.MPII_FROM_COCO.items():
            np.testing.assert_array_equal(j3d[j], body.points[k])
        np.testing.assert_allclose(j3d[6], 0.5 * (body.points[11] + body.points[12]), atol=1e-12)
        np.testing.assert_allclose(j3d[7], 0.5 * (body.points[5] + body.points[6]), atol=1e-12)
        # head top: 1.3 r above the head centre along the head's up; upper neck: on the head's lower end
        # sphere and on the neck's axis
        r, up, c = body.shape.head_radius, body.dirs[sb.HEAD_UP], body.points[sb.HEAD_CENTER]
        np.testing.assert_allclose(j3d[9], c + 1.3 * r * up, atol=1e-12)
        assert np.linalg.norm(j3d[8] - (c - 0.3 * r * up)) == pytest.approx(r, rel=1e-9)
        a, b = body.points[sb.NECK_BASE], c - 0.5 * r * up
        t = float((j3d[8] - a) @ (b - a) / ((b - a) @ (b - a)))
        assert 0.0 < t < 1.0
        np.testing.assert_allclose(j3d[8], a + t * (b - a), atol=1e-9)
        # the head box holds the head top and the upper neck; 0.6 x its diagonal is about the head segment
        hb = M.head_box(cam, body)
        for p in (uv[9], uv[8]):
            assert hb[0] <= p[0] <= hb[2] and hb[1] <= p[1] <= hb[3]
        ratio = 0.6 * np.linalg.norm(hb[2:] - hb[:2]) / np.linalg.norm(uv[9] - uv[8])
        assert 0.6 < ratio < 1.1, ratio


def test_sphere_bbox_is_exact():
    rng = np.random.default_rng(0)
    cam = S.Camera(fx=250.0, fy=230.0, cx=90.0, cy=70.0, pitch=0.0)
    for _ in range(10):
        center = np.array([rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(1.0, 3.0)])
        r = rng.uniform(0.05, 0.3)
        d = rng.normal(size=(20000, 3))
        d /= np.linalg.norm(d, axis=1, keepdims=True)
        uv = cam.project(center + r * d)
        box = M.sphere_bbox(cam, center, r)
        assert np.all(uv.min(axis=0) >= box[:2] - 1e-9) and np.all(uv.max(axis=0) <= box[2:] + 1e-9)
        np.testing.assert_allclose(np.concatenate([uv.min(axis=0), uv.max(axis=0)]), box, atol=0.05)


def test_visibility_matches_the_coco_depth_test():
    cfg = S.SynthConfig(image_size=(128, 128))

    def both(canvas, cam, person, pid, c):
        return {"coco": S._annotate(canvas, person, pid, c), "mpii": M.annotate_mpii(canvas, cam, person, pid, c)}

    checked = 0
    for i in range(8):
        for ann in S.render_synthetic_image(S.image_rng(3, "vis", i), cfg, annotate=both).annotations:
            if ann["mpii"] is None:
                continue
            v = np.asarray(ann["coco"]["keypoints"]).reshape(17, 3)[:, 2]
            for j, k in M.MPII_FROM_COCO.items():
                assert ann["mpii"]["joints_seen"][j] == (v[k] == 2)
                assert ann["mpii"]["joints_vis"][j] == (v[k] > 0)
            checked += 1
    assert checked >= 5


def test_visibility_of_the_extra_joints_follows_the_rendered_surface():
    """Pelvis, thorax, upper neck and head top are seen when this person's own torso / neck / head part is
    on top at their pixel; an occluder or the person's arm there hides them (still labelled)."""
    import dataclasses

    cfg = S.SynthConfig.easy(image_size=(128, 128))
    checks = []

    def probe(canvas, cam, person, pid, c):
        ann = M.annotate_mpii(canvas, cam, person, pid, c)
        if ann is None:
            return None
        r = person.body.shape.head_radius
        top_probe = cam.project((person.body.points[sb.HEAD_CENTER] + r * person.body.dirs[sb.HEAD_UP])[None])[0]
        for j, uv in ((6, ann["joints"][6]), (7, ann["joints"][7]), (8, ann["joints"][8]), (9, top_probe)):
            if not ann["joints_seen"][j]:
                continue
            ix, iy = S.pixel_index(uv[None], canvas.width, canvas.height)
            for field, value in (("owner", -2), ("part", sb.PART_UPPER_ARM[0])):
                arr = getattr(canvas, field).copy()
                arr[iy[0], ix[0]] = value
                hidden = M.annotate_mpii(dataclasses.replace(canvas, **{field: arr}), cam, person, pid, c)
                checks.append((j, hidden["joints_seen"][j], hidden["joints_vis"][j]))
        return ann

    for i in range(6):
        S.render_synthetic_image(S.image_rng(1, "extra", i), cfg, annotate=probe)
    assert {j for j, _, _ in checks} == {6, 7, 8, 9}
    assert all(seen == 0 and vis == 1 for _, seen, vis in checks)


def test_loader_image_id_is_the_record_index_and_reads_head_box(tmp_path):
    rec = {"image": "015601864.jpg", "center": [50.0, 40.0], "scale": 0.5,
           "joints": [[10.0 + j, 20.0] for j in range(16)], "joints_vis": [1] * 16}
    path = tmp_path / "mpii_val.json"
    path.write_text(json.dumps([rec, {**rec, "head_box": [11.0, 21.0, 31.0, 41.0]}, rec]))
    insts = load_mpii_instances(path)
    assert [i.image_id for i in insts] == [0, 1, 2] and [i.ann_id for i in insts] == [0, 1, 2]
    assert insts[0].head_box is None
    np.testing.assert_allclose(insts[1].head_box, [10.0, 20.0, 30.0, 40.0])  # 1-based -> 0-based
    vis0 = {**rec, "joints_vis": [0] * 16}
    path.write_text(json.dumps([vis0, rec]))
    assert [i.image_id for i in load_mpii_instances(path, skip_unlabelled=True)] == [1]
    path.write_text(json.dumps([{**rec, "head_box": [1, 2, 3]}]))
    with pytest.raises(SlimposeInputError, match=r"mpii_val\.json: record \[0\].*'head_box' has 3 values"):
        load_mpii_instances(path)


def test_official_headboxes_src_indexing():
    # two records: (x1, y1, x2, y2) = (1, 2, 11, 22) and (5, 6, 7, 9); shape (2 corners, 2 coords, N)
    src = np.zeros((2, 2, 2))
    src[0, :, 0], src[1, :, 0] = [1, 2], [11, 22]
    src[0, :, 1], src[1, :, 1] = [5, 6], [7, 9]
    np.testing.assert_array_equal(headboxes_from_src(src), [[1, 2, 11, 22], [5, 6, 7, 9]])
    # the MMPose / HRNet head size of record 0: ||headbox[1] - headbox[0]|| = ||(10, 20)||
    boxes = headboxes_from_src(src)
    assert np.linalg.norm(boxes[0, 2:] - boxes[0, :2]) == pytest.approx(np.hypot(10, 20))
    with pytest.raises(SlimposeInputError, match=r"\(2, 2, N\)"):
        headboxes_from_src(np.zeros((4, 2)))


def test_headbox_file_errors(tmp_path, monkeypatch):
    import sys

    with pytest.raises(SlimposeInputError, match="not found"):
        read_mpii_headboxes(tmp_path / "mpii_gt_val.mat")
    (tmp_path / "mpii_gt_val.mat").write_bytes(b"not a mat file")
    monkeypatch.setitem(sys.modules, "scipy", None)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(SlimposeInputError, match=r"mpii_gt_val\.mat: .*needs scipy"):
        read_mpii_headboxes(tmp_path / "mpii_gt_val.mat")


def test_headbox_mat_file_read_by_the_loader(tmp_path):
    sio = pytest.importorskip("scipy.io")
    rec = {"image": "a.jpg", "center": [50.0, 40.0], "scale": 0.5,
           "joints": [[10.0 + j, 20.0] for j in range(16)], "joints_vis": [1] * 16,
           "head_box": [0.0, 0.0, 1.0, 1.0]}
    path = tmp_path / "mpii_val.json"
    path.write_text(json.dumps([rec, rec]))
    src = np.zeros((2, 2, 2))
    src[0, :, 0], src[1, :, 0] = [1, 2], [11, 22]
    src[0, :, 1], src[1, :, 1] = [5, 6], [7, 9]
    sio.savemat(tmp_path / "mpii_gt_val.mat", {"headboxes_src": src})
    insts = load_mpii_instances(path, headbox_file=tmp_path / "mpii_gt_val.mat")  # wins over head_box
    np.testing.assert_allclose(insts[0].head_box, [0, 1, 10, 21])
    np.testing.assert_allclose(insts[1].head_box, [4, 5, 6, 8])
    path.write_text(json.dumps([rec]))
    with pytest.raises(SlimposeInputError, match="2 head boxes for 1 MPII records"):
        load_mpii_instances(path, headbox_file=tmp_path / "mpii_gt_val.mat")
