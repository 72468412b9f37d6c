"""Synthetic people in the AI Challenger and CrowdPose skeletons: the COCO writer's images, ids and limb
joints, the MPII writer's head top, the neck base, catalog round trip, determinism, CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from slimpose.cli.main import main
from slimpose.data import metainfo
from slimpose.data import synth as S
from slimpose.data import synth_body as sb
from slimpose.data import synth_coco14 as C
from slimpose.data import synth_mpii as M
from slimpose.data.catalog import CATALOG, resolve_split
from slimpose.utils.io import SlimposeInputError

SIZE = (96, 96)
SEED = 12
N = 8
SKELETONS = {"aic": metainfo.AIC, "crowdpose": metainfo.CROWDPOSE}
HEAD_TOP_NAME = {"aic": "head_top", "crowdpose": "top_head"}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _images(root: Path) -> dict[str, bytes]:
    return {k: v for k, v in _files(root).items() if k.startswith("images/")}


@pytest.fixture(scope="module")
def sets(tmp_path_factory) -> dict[str, object]:
    """The COCO writer's set, the AIC and CrowdPose labels written side by side into another root (with the
    images after each writer), and the MPII writer's set, all for the same seed."""
    base = tmp_path_factory.mktemp("synth_skeletons")
    kw = dict(split="val", image_size=SIZE, progress=False)
    coco = S.generate_synthetic_dataset(base / "coco", N, SEED, **kw)
    out: dict[str, object] = {"coco": json.loads(coco.read_text()), "coco_images": _images(base / "coco"),
                              "root": base / "both"}
    for skeleton in SKELETONS:
        path = S.generate_synthetic_dataset(base / "both", N, SEED, skeleton=skeleton, **kw)
        assert path == base / "both" / "annotations" / f"{skeleton}_val.json"
        out[skeleton] = json.loads(path.read_text())
        out[f"{skeleton}_images"] = _images(base / "both")
    out["mpii"] = json.loads(M.generate_synthetic_mpii(base / "mpii", N, SEED, **kw).read_text())
    return out


@pytest.mark.parametrize("skeleton", list(SKELETONS))
def test_catalog_loads_14_keypoints_from_the_shared_images(sets, skeleton):
    from pycocotools.coco import COCO

    spec = CATALOG[f"synthetic_{skeleton}"]
    assert spec.info is SKELETONS[skeleton] and spec.synthetic and not spec.use_area
    root = sets["root"]
    files = resolve_split(spec, root, "val")
    assert files.ann == root / "annotations" / f"{skeleton}_val.json" and files.images == root / "images"
    data = sets[skeleton]
    cat = data["categories"][0]
    assert cat["id"] == 1 and cat["name"] == "person"
    assert tuple(cat["keypoints"]) == spec.info.keypoint_names
    assert cat["keypoints"][12] == HEAD_TOP_NAME[skeleton] and cat["keypoints"][13] == "neck"
    assert cat["skeleton"] == [[a + 1, b + 1] for a, b in spec.info.skeleton]
    assert len(COCO(str(files.ann)).getImgIds()) == N
    insts = spec.load(files.ann, files.images, None, 0.0, spec.info)
    labelled = [a for a in data["annotations"] if a["num_keypoints"] > 0]
    assert len(insts) == len(labelled) > N
    assert [i.ann_id for i in insts] == [a["id"] for a in labelled]
    for inst, ann in zip(insts, labelled):
        assert inst.keypoints.shape == (14, 2) and inst.visible.shape == (14,)
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(14, 3)
        np.testing.assert_array_equal(inst.visible, kp[:, 2])
        assert Path(inst.image_path).is_file()
        assert Path(inst.image_path).relative_to(root / "images").as_posix().startswith("val/")
    # the ground truth as predictions scores AP 1 with the data set's sigmas and the box area
    metric = spec.metric.for_split(spec, files.ann, insts)
    records = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
               for a in labelled]
    assert metric([], records)["AP"] == pytest.approx(1.0)


def test_images_are_the_coco_writers(sets):
    coco = sets["coco_images"]
    assert len(coco) == N and all(k.startswith("images/val/") for k in coco)
    assert sets["aic_images"] == coco and sets["crowdpose_images"] == coco
    for skeleton in SKELETONS:
        assert sets[skeleton]["images"] == sets["coco"]["images"]


@pytest.mark.parametrize("skeleton", list(SKELETONS))
def test_limb_joints_ids_and_boxes_are_the_coco_writers(sets, skeleton):
    info = SKELETONS[skeleton]
    coco = {a["id"]: a for a in sets["coco"]["annotations"]}
    anns = sets[skeleton]["annotations"]
    assert [a["id"] for a in anns] == list(coco)
    shared = [(j, sb.COCO_KEYPOINT_NAMES.index(n)) for j, n in enumerate(info.keypoint_names)
              if n in sb.COCO_KEYPOINT_NAMES]
    assert len(shared) == 12
    counts = np.zeros(3, dtype=int)
    for ann in anns:
        ref = coco[ann["id"]]
        assert "keypoints_3d" not in ann
        assert {k: v for k, v in ann.items() if k not in ("keypoints", "num_keypoints")} == \
            {k: v for k, v in ref.items() if k not in ("keypoints", "num_keypoints", "keypoints_3d")}
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(14, 3)
        kp17 = np.asarray(ref["keypoints"], dtype=np.float64).reshape(17, 3)
        for j, k in shared:
            np.testing.assert_array_equal(kp[j], kp17[k])
        v = kp[:, 2]
        counts += np.bincount(v.astype(int), minlength=3)
        assert ann["num_keypoints"] == int((v > 0).sum())
        assert np.all(kp[v == 0] == 0)
        lab = kp[v > 0]
        assert np.all((lab[:, :2] >= 0) & (lab[:, :2] <= np.array(SIZE) - 1))
        if ann["area"] < S.SynthConfig().min_labelled_area:
            assert ann["num_keypoints"] == 0
    assert np.all(counts > 0), counts  # seen, hidden and unlabelled joints all occur


@pytest.mark.parametrize("skeleton", list(SKELETONS))
def test_head_top_is_the_mpii_writers(sets, skeleton):
    """Every MPII record has its person in the 14-joint file, with the same shared joints (MPII labels every
    joint inside the image) and the same head top (1-based there), labelled and seen alike."""
    info = SKELETONS[skeleton]
    j_top = info.keypoint_names.index(HEAD_TOP_NAME[skeleton])
    by_image: dict[int, list[np.ndarray]] = {}
    for ann in sets[skeleton]["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(np.asarray(ann["keypoints"], float).reshape(14, 3))
    pairs = [(j, info.keypoint_names.index(sb.COCO_KEYPOINT_NAMES[k])) for j, k in M.MPII_FROM_COCO.items()]
    pairs.append((M.HEAD_TOP_J, j_top))
    names = {M.mpii_image_name("val", i): i + 1 for i in range(N)}
    tops = hidden = 0
    for rec in sets["mpii"]:
        assert any(_same_person(kp, rec, pairs) for kp in by_image[names[rec["image"]]]), rec
        tops += rec["joints_vis"][M.HEAD_TOP_J]
        hidden += rec["joints_vis"][M.HEAD_TOP_J] - rec["joints_seen"][M.HEAD_TOP_J]
    assert tops >= 10 and hidden >= 1  # seen and hidden head tops both compared


def _same_person(kp: np.ndarray, rec: dict, pairs: list[tuple[int, int]]) -> bool:
    """Whether 14-joint keypoints (14, 3) agree with an MPII record on the (MPII, 14-joint) joint pairs:
    labelled alike, the same position (0-based vs 1-based, rounding) and seen alike."""
    joints = np.asarray(rec["joints"]) - 1.0
    for jm, j in pairs:
        if (kp[j, 2] > 0) != bool(rec["joints_vis"][jm]):
            return False
        if kp[j, 2] > 0 and not (np.abs(kp[j, :2] - joints[jm]).max() <= 0.0051
                                 and (kp[j, 2] == 2) == bool(rec["joints_seen"][jm])):
            return False
    return True


def test_joint_definitions_and_visibility_of_head_top_and_neck():
    """Head top = the MPII head top, neck = the neck base (3.5 cm above the shoulders' midpoint); both are
    seen when this person's head / neck-or-chest is on top there, hidden (still labelled) when not."""
    cfg = S.SynthConfig.easy(image_size=(128, 128))
    checks = []

    def probe(canvas, cam, person, pid, c):
        body = person.body
        ann = C.annotate_coco14(canvas, cam, person, pid, c, skeleton="aic")
        for skeleton, info in SKELETONS.items():
            j3d = C.coco14_joints_3d(body, skeleton)
            top, neck = info.keypoint_names.index(HEAD_TOP_NAME[skeleton]), info.keypoint_names.index("neck")
            np.testing.assert_array_equal(j3d[top], M.head_top_point(body))
            np.testing.assert_array_equal(j3d[neck], body.points[sb.NECK_BASE])
            mid = 0.5 * (j3d[info.keypoint_names.index("left_shoulder")]
                         + j3d[info.keypoint_names.index("right_shoulder")])
            assert np.linalg.norm(j3d[neck] - mid) == pytest.approx(0.035, rel=1e-9)
            kp = np.asarray(C.annotate_coco14(canvas, cam, person, pid, c, skeleton)["keypoints"])
            kp = kp.reshape(14, 3)
            uv = cam.project(j3d)
            for j in (top, neck):
                if kp[j, 2] > 0:
                    np.testing.assert_allclose(kp[j, :2], uv[j], atol=0.005)
        kp = np.asarray(ann["keypoints"]).reshape(14, 3)
        r = body.shape.head_radius
        top_probe = cam.project((body.points[sb.HEAD_CENTER] + r * body.dirs[sb.HEAD_UP])[None])[0]
        for j, uv, parts in ((12, top_probe, (sb.PART_HEAD,)),
                             (13, person.uv[sb.NECK_BASE], (sb.PART_NECK, sb.PART_CHEST))):
            if kp[j, 2] != 2:
                continue
            ix, iy = S.pixel_index(uv[None], canvas.width, canvas.height)
            changes = [("owner", -2, 1), ("part", sb.PART_UPPER_ARM[0], 1)] + [("part", p, 2) for p in parts]
            for field, value, expected in changes:
                arr = getattr(canvas, field).copy()
                arr[iy[0], ix[0]] = value
                changed = C.annotate_coco14(dataclasses.replace(canvas, **{field: arr}), cam, person, pid, c)
                checks.append((j, changed["keypoints"][3 * j + 2], expected))
        return ann

    for i in range(4):
        S.render_synthetic_image(S.image_rng(1, "extra", i), cfg, annotate=probe)
    assert {j for j, _, _ in checks} == {12, 13}
    assert all(v == expected for _, v, expected in checks)


def test_same_seed_same_bytes_workers_do_not_matter(tmp_path, sets):
    kw = dict(split="val", image_size=SIZE, progress=False)
    C.generate_synthetic_coco14(tmp_path / "a", N, SEED, skeleton="crowdpose", workers=2, **kw)
    C.generate_synthetic_coco14(tmp_path / "a", N, SEED, skeleton="aic", **kw)
    S.generate_synthetic_dataset(tmp_path / "b", 2, SEED + 1, skeleton="aic", **kw)
    fa = _files(tmp_path / "a")
    assert len(fa) == N + 2
    for skeleton in SKELETONS:
        path = sets["root"] / "annotations" / f"{skeleton}_val.json"
        assert fa[f"annotations/{skeleton}_val.json"] == path.read_bytes()
    assert {k: v for k, v in fa.items() if k.startswith("images/")} == sets["coco_images"]
    other = (tmp_path / "b" / "annotations" / "aic_val.json").read_bytes()
    assert other != fa["annotations/aic_val.json"]


def test_unknown_skeleton_is_refused(tmp_path):
    with pytest.raises(SlimposeInputError, match=r"unknown skeleton 'bogus'.*aic, crowdpose"):
        S.generate_synthetic_dataset(tmp_path / "x", 1, 0, image_size=SIZE, progress=False, skeleton="bogus")
    with pytest.raises(SlimposeInputError, match=r"synthetic data set .*x: unknown 14-joint skeleton 'mpii'"):
        C.generate_synthetic_coco14(tmp_path / "x", 1, 0, skeleton="mpii", image_size=SIZE, progress=False)
    assert not (tmp_path / "x").exists()


def test_cli_writes_the_aic_file(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["data", "synth", "--skeleton", "aic", "--out", str(out), "--images", "2", "--split", "train",
                 "--width", "96", "--height", "96", "--no-progress"]) == 0
    assert "aic_train.json" in capsys.readouterr().out
    spec = CATALOG["synthetic_aic"]
    files = resolve_split(spec, out, "train")
    assert files.ann.is_file() and sorted(p.name for p in (out / "images" / "train").iterdir()) == \
        ["000000001.jpg", "000000002.jpg"]
    cat = json.loads(files.ann.read_text())["categories"][0]
    assert cat["keypoints"] == list(metainfo.AIC.keypoint_names)
    assert all(Path(i.image_path).is_file() for i in spec.load(files.ann, files.images, None, 0.0, spec.info))
