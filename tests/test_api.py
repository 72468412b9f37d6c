"""slimpose.load / PoseModel: checkpoints (.pth, .safetensors), crops back to image pixels, real photos."""

import json

import numpy as np
import pytest
import torch

import slimpose
from slimpose.api import PoseModel, load
from slimpose.codecs.msra_heatmap import MSRAHeatmap
from slimpose.engine.checkpoint import export_safetensors, save_checkpoint
from slimpose.heads import HeatmapHead, RegressionHead
from slimpose.models import create_model
from slimpose.models.base import PoseNet
from slimpose.utils.io import SlimposeInputError
from _shared import SHARED_REAL

REAL = SHARED_REAL / "coco"
INPUT = (48, 64)
TINY = {"depth": 1, "dim": 32, "num_heads": 2}


def _gt():
    data = json.loads((REAL / "test_coco.json").read_text())
    by_id = {}
    for a in data["annotations"]:
        if not a.get("iscrowd", 0):
            by_id.setdefault(a["image_id"], []).append(a["bbox"] + [0.8])
    return {img["file_name"]: np.array(by_id.get(img["id"], np.zeros((0, 5)))) for img in data["images"]}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("api")
    tp = create_model("tokenpose_s_v1", input_size=INPUT, **TINY)
    cfg = {"model": {"name": "tokenpose_s_v1", "overrides": TINY},
           "data": {"input_size": list(INPUT), "heatmap_size": [12, 16], "dataset": "coco"},
           "dark": True, "flip_test": False, "score_thr": 0.2}
    state = {"model": tp.state_dict(), "model_name": "tokenpose_s_v1", "config": cfg}
    save_checkpoint(state, root / "tp.pth")
    export_safetensors(root / "tp.pth", root / "tp.safetensors")
    ov = {**TINY, "stem_blocks": 1, "score_source": "confidence"}
    ds = create_model("distilpose_s", input_size=INPUT, **ov)
    cfg2 = {"model": {"name": "distilpose_s", "overrides": ov}, "data": {"input_size": list(INPUT)},
            "flip_test": False}
    save_checkpoint({"model": ds.state_dict(), "model_name": "distilpose_s", "config": cfg2}, root / "ds.pth")
    return root


def test_load_pth_and_safetensors_agree(ckpts):
    a, b = load(ckpts / "tp.pth"), slimpose.load(ckpts / "tp.safetensors")
    assert isinstance(a.head, HeatmapHead) and a.head.heatmap_size == (12, 16) and a.input_size == INPUT
    img = REAL / "images" / "000000000785.jpg"
    ra, rb = a.predict(img), b.predict(img)
    np.testing.assert_array_equal(ra.keypoints, rb.keypoints)
    assert ra.keypoints.shape == (1, 17, 2) and ra.bboxes.tolist() == [[0, 0, 640, 425]]


@pytest.mark.parametrize("name", ["tp.pth", "ds.pth"])
def test_real_photos_with_gt_boxes(ckpts, name):
    import cv2

    model = load(ckpts / name, dark=False)  # DARK's Newton step may leave the crop on random heatmaps
    boxes = _gt()
    files = sorted(boxes)
    images = [cv2.imread(str(REAL / "images" / f)) for f in files]
    results = model.predict_batch(images, [boxes[f] for f in files])
    for f, img, res in zip(files, images, results):
        n = len(boxes[f])
        assert res.keypoints.shape == (n, 17, 2) and res.keypoint_scores.shape == (n, 17)
        assert res.scores.shape == (n,)
        for box, kp in zip(boxes[f], res.keypoints):
            x, y, w, h = box[:4]
            # inside the padded box (1.25 x, aspect fixed to 3:4, so at most 1.25 * max(w, 3h/4...) around it)
            side_w = max(w, h * 0.75) * 1.25
            side_h = max(h, w / 0.75) * 1.25
            cx, cy = x + w / 2, y + h / 2
            assert np.all(np.abs(kp[:, 0] - cx) <= side_w / 2 + 1e-3)
            assert np.all(np.abs(kp[:, 1] - cy) <= side_h / 2 + 1e-3)
        # every head: box score x mean of the keypoint scores above score_thr (0.2 by default)
        ks = res.keypoint_scores.astype(np.float64)
        assert model.score_thr == 0.2
        valid = ks > 0.2
        mean = np.where(valid.sum(1) > 0, (ks * valid).sum(1) / np.maximum(valid.sum(1), 1), 0)
        np.testing.assert_allclose(res.scores, 0.8 * mean, rtol=1e-5, atol=1e-7)
    # one image at a time gives the same as the batch; path input == BGR array input
    single = model.predict(REAL / "images" / files[0], boxes[files[0]])
    np.testing.assert_allclose(single.keypoints, results[0].keypoints, atol=1e-4)


class _PeakModel(PoseNet):
    """Heatmaps (B,K,16,12) with one peak at heatmap pixel (x=3, y=8) for every keypoint."""

    input_size, num_keypoints = INPUT, 17

    def forward(self, x):
        hm = torch.zeros(x.shape[0], 17, 16, 12)
        hm[:, :, 8, 3] = 1.0
        hm[:, :, 8, 4] = 0.5  # right neighbour higher: +0.25 px
        return hm + 0 * x.mean()


class _CenterRegression(PoseNet):
    input_size, num_keypoints = INPUT, 17

    def forward(self, x):
        out = torch.zeros(x.shape[0], 17, 5)
        out[..., :2] = 0.5
        out[..., 2] = 0.7
        return out + 0 * x.mean()


def test_crop_to_image_mapping():
    m = PoseModel(_PeakModel(), HeatmapHead(MSRAHeatmap(INPUT, (12, 16), dark=False)), flip_test=False)
    img = np.zeros((300, 400, 3), np.uint8)
    box = [100.0, 50.0, 90.0, 120.0]  # 3:4 already: scale = 1.25 * (90, 120)
    res = m.predict(img, [box])
    crop_x, crop_y = (3.25) * 4, 8 * 4  # heatmap -> crop pixels (stride 4)
    k = 1.25 * 90 / 48  # crop pixel -> image pixel
    exp = [145 + (crop_x - 24) * k, 110 + (crop_y - 32) * k]
    np.testing.assert_allclose(res.keypoints[0, 0], exp, atol=1e-3)
    r = PoseModel(_CenterRegression(), RegressionHead(INPUT, "confidence"), flip_test=False)
    out = r.predict(img, np.array([box + [0.5]]))
    np.testing.assert_allclose(out.keypoints[0], np.tile([145.0, 110.0], (17, 1)), atol=1e-3)
    np.testing.assert_allclose(out.scores, [0.5 * 0.7], atol=1e-6)
    assert r.predict(img, np.zeros((0, 4))).keypoints.shape == (0, 17, 2)


def test_bad_inputs(ckpts, tmp_path):
    model = load(ckpts / "tp.pth")
    with pytest.raises(SlimposeInputError, match="boxes"):
        model.predict(np.zeros((32, 32, 3), np.uint8), np.zeros((2, 3)))
    with pytest.raises(SlimposeInputError, match="no area"):
        model.predict(np.zeros((32, 32, 3), np.uint8), [[0, 0, 0, 5]])
    with pytest.raises(SlimposeInputError, match="not found"):
        load(tmp_path / "missing.pth")
    bad = tmp_path / "bad.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "model_name": "tokenpose_s_v1", "config": {}}, bad)
    with pytest.raises(SlimposeInputError, match="bad.pth"):
        load(bad)
    with pytest.raises(SlimposeInputError, match="missing.jpg"):
        model.predict(tmp_path / "missing.jpg")


@pytest.mark.parametrize("recipe", ["tokenpose_tiny_synthetic", "distilpose_tiny_synthetic"])
def test_engine_recipe_checkpoints(tmp_path, recipe):
    """Checkpoints shaped like the trainer's (full config dict, model_name) load; an older student
    checkpoint's top-level ``score_source`` still decides its keypoint scores."""
    from slimpose.config import RECIPES, config_to_dict
    from slimpose.engine.builders import build_model

    cfg = RECIPES[recipe]()
    torch.manual_seed(0)
    model = build_model(cfg)
    state = {"model": model.state_dict(), "config": config_to_dict(cfg), "model_name": cfg.model.name,
             "epoch": 1, "best": {"metric": "AP", "mode": "max", "value": 0.1}}
    if recipe.startswith("distil"):
        state["score_source"] = "constant"
    save_checkpoint(state, tmp_path / "last.pth")
    pm = load(tmp_path / "last.pth")
    assert pm.input_size == (64, 96)
    res = pm.predict(np.full((100, 80, 3), 128, np.uint8), [[10, 10, 50, 80, 0.9]])
    assert res.keypoints.shape == (1, 17, 2)
    if recipe.startswith("distil"):
        assert isinstance(pm.head, RegressionHead) and pm.head.score_source == "constant"
        # constant keypoint scores: Eq. 3 gives the box score
        np.testing.assert_allclose(res.scores, [0.9], atol=1e-6)
    else:
        assert isinstance(pm.head, HeatmapHead) and pm.head.heatmap_size == (16, 24)


def test_checkpoints_of_other_machines_and_older_versions_load(ckpts, tmp_path):
    """A config naming its ImageNet init (``model.pretrained``, absent here), an older 16-keypoint conversion
    (``data.dataset=""``), test-setting keywords, and a clear error for an unknown keyword."""
    state = torch.load(ckpts / "tp.pth", weights_only=True)
    state["config"]["model"]["pretrained"] = "/train/machine/imagenet.pth"
    save_checkpoint(state, tmp_path / "pre.pth")
    assert load(tmp_path / "pre.pth").config.model.pretrained is None
    torch.manual_seed(0)
    m16 = create_model("tokenpose_s_v1", num_keypoints=16, input_size=INPUT, **TINY)
    save_checkpoint({"model": m16.state_dict(), "model_name": "tokenpose_s_v1",
                     "config": {"model": {"overrides": {**TINY, "num_keypoints": 16}},
                                "data": {"dataset": "", "input_size": list(INPUT)}}}, tmp_path / "mpii.pth")
    pm = load(tmp_path / "mpii.pth")
    assert pm.config.data.dataset == "mpii" and pm.info.name == "mpii" and pm.num_keypoints == 16
    tuned = load(ckpts / "tp.pth", udp=True, sigma=3.0, dark=False, batch_size=4)
    assert tuned.udp and tuned.head.udp and tuned.head.codec.sigma == 3.0 and tuned.batch_size == 4
    with pytest.raises(SlimposeInputError, match="unknown keyword.*codec"):
        load(ckpts / "tp.pth", codec=None)
