"""Converted official checkpoints predict what the official test code predicts (issue 17): every official 2-D
layout of ``slimpose convert``, end to end on a real COCO image, against the reference pipelines of
``benchmarks/conversion_parity.py`` (crop warp, flip test, decoding, scores, map back: docs/conversion.md)."""

import json

import numpy as np
import pytest
import torch

from _shared import SHARED_REAL, load_benchmark
from slimpose.api import adopt_test_conventions, checkpoint_config, load
from slimpose.cli.main import main
from slimpose.config import TrainConfig
from slimpose.config.schema import crop_warp
from slimpose.convert import convert_checkpoint
from slimpose.utils.io import SlimposeInputError

parity = load_benchmark("conversion_parity")
LAYOUTS = {layout.name: layout for layout in parity.layouts()}
pytestmark = pytest.mark.skipif(not (SHARED_REAL / "coco" / "test_coco.json").is_file(), reason="no real COCO data")


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def samples():
    return parity.coco_samples(1, 2)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_converted_checkpoint_predicts_the_official_pipeline(name, samples, tmp_path):
    layout = LAYOUTS[name]
    rows = parity.compare(layout, samples, layout.quick_size, tmp_path)
    # a random CNN heatmap under DARK / DARK-UDP: keypoints whose step stays under 1 px can still sit on a flat
    # log map, where the crop warp's rounding (one uint8 level at a few pixels) moves them by ~1e-3 px
    amplified = layout.source in ("mmpose", "vitpose") and layout.pipeline in ("mmpose_dark", *parity.UDP_PIPELINES)
    for row in rows:  # flip test off, on
        assert row["max_keypoint_px_stable"] < (1e-2 if amplified else 1e-3), row
        assert row["max_score"] < 1e-3, row
        # on the reference's own crops (slimpose's head and network as trained): the conventions alone
        assert row["max_keypoint_px_same_crops_stable"] < 1e-3, row
        assert row["max_score_same_crops"] < 1e-3, row
        # only DARK / DARK-UDP on a random CNN heatmap may jump: the same arithmetic as the official step (on the
        # same crops the jumps agree too, below), but a near-singular Hessian amplifies the tiny heatmap
        # differences of the two pipelines (crop warp rounding, the inference rewrite); never a token head
        assert row["unstable_keypoints"] == 0 or row["source"] in ("mmpose", "vitpose"), row
        # enough keypoints left to compare (a random 16x16 HRNet heatmap makes about half of them jump)
        assert row["unstable_keypoints"] <= (0.8 if amplified else 0.5) * 17 * row["instances"], row
        if row["pipeline"] in parity.UDP_PIPELINES:  # DARK-UDP: float32 as officially, jumps included
            assert row["max_keypoint_px_same_crops"] < 1e-3, row


def test_distilpose_whole_file_drops_the_teacher_by_name(tmp_path, capsys):
    layout = LAYOUTS["DistilPose-S + teacher_model.* (yshMars/DistilPose)"]
    model, pm, report = parity.build_layout(layout, layout.quick_size, tmp_path)
    assert report.ok and any(d.startswith("teacher_model.* (") for d in report.dropped)
    assert {"entry 'meta'", "entry 'optimizer'"} <= {d.split(" (")[0] for d in report.dropped}
    conv = pm.config.conventions
    assert (conv.source, conv.flip_coords, conv.flip_swap_scores) == ("distilpose", "unit", False)
    # any other extra key, or a missing one, still fails
    obj = torch.load(tmp_path / "distilpose_s_official.pth", weights_only=True)
    sd = obj["state_dict"]
    args = ["convert", str(tmp_path / "bad.pth"), str(tmp_path / "out.pth"), "--from", "distilpose", "--model",
            "distilpose_s", "--input-size", "48", "64", "--set", "stem_blocks=1", "--set", "depth=2",
            "--set", "dim=32", "--set", "num_heads=2", "--json"]
    torch.save({"meta": {}, "state_dict": {**sd, "student_extra.weight": torch.zeros(2)}}, tmp_path / "bad.pth")
    assert main(args) == 2
    out = json.loads(capsys.readouterr().out.splitlines()[0])
    assert out["unexpected"] == ["student_extra.weight"] and out["dropped"]
    del sd["keypoint_head.tokenhead.mlp_head.1.bias"]
    torch.save({"meta": {}, "state_dict": sd}, tmp_path / "bad.pth")
    assert main(args) == 2
    assert json.loads(capsys.readouterr().out.splitlines()[0])["missing"] == ["head.mlp.1.bias"]


def test_tokenpose_conventions_reach_the_exported_decoder(samples, tmp_path):
    """The in-graph decoder of a converted TokenPose (argmax + quarter step, no DARK) maps heatmap pixels with
    the official spacing and masks non-positive maps as the official ``get_max_preds`` does."""
    layout = LAYOUTS["TokenPose-S (leeyegy/TokenPose)"]
    _, pm, _ = parity.build_layout(layout, layout.quick_size, tmp_path)
    assert pm.udp == "dark" and not pm.head.shift_heatmap and pm.head.codec.dark
    decoder = pm.head.export_decoder()
    hm = torch.randn(2, 17, 16, 12, generator=torch.Generator().manual_seed(0))
    hm[0, 3] = -1.0 - hm[0, 3].abs()  # a map without a positive value
    kpts, scores = decoder(hm)
    locs, vals = parity.max_preds(hm.numpy(), 0.0)
    k = (48 - 1) / (12 - 1)  # one zoom from the widths, centres at (size - 1) / 2
    assert torch.allclose(decoder.scale, torch.tensor([k, k]))
    assert torch.allclose(decoder.offset, torch.tensor([0.0, (64 - 1) / 2 - (16 - 1) / 2 * k]))
    assert torch.allclose(kpts[0, 3], decoder.offset)  # location 0 (HRNet masks with zeros)
    np.testing.assert_allclose(scores.numpy(), vals, atol=1e-6)


def test_slimpose_models_keep_their_defaults_and_old_checkpoints_load():
    cfg = TrainConfig()
    assert cfg.conventions.source == "slimpose" and crop_warp(cfg) is False
    cfg.data.udp = True
    assert crop_warp(cfg) is True
    old = checkpoint_config({"model_name": "hrnet_w32", "config": {"data": {"udp": True}}}, "old.pth")
    assert old.conventions == TrainConfig().conventions and crop_warp(old) is True
    # slimpose eval: a converted checkpoint's conventions replace the config's defaults, not a config's own
    meta = {"config": {"conventions": {"source": "tokenpose", "geometry": "dark"}, "shift_heatmap": False}}
    mine = TrainConfig()
    assert adopt_test_conventions(mine, meta) and crop_warp(mine) == "dark" and not mine.shift_heatmap
    assert not adopt_test_conventions(TrainConfig(), {"config": {"model": {"name": "hrnet_w32"}}})
    with pytest.raises(SlimposeInputError, match="conventions.geometry"):
        checkpoint_config({"model_name": "hrnet_w32", "config": {"conventions": {"geometry": "x"}}}, "bad.pth")


def test_load_overrides_still_win(samples, tmp_path):
    layout = LAYOUTS["SDPose-S-V1 (MartyrPenink/SDPose)"]
    _, pm, _ = parity.build_layout(layout, layout.quick_size, tmp_path)
    assert pm.head.shift_heatmap and pm.head.codec.dark and pm.head.codec.nonpositive == "minus_one"
    assert not load(pm.checkpoint, dark=False, shift_heatmap=False).head.codec.dark
    with pytest.raises(SlimposeInputError):
        convert_checkpoint(tmp_path / "missing.pth", tmp_path / "x.pth", "sdpose", "sdpose_s_v1")


def test_plain_blur_any_memory_layout():
    """The ViTPose (mmpose 0.x) DARK-UDP blur works in place on a C-ordered copy, whatever the input's strides."""
    from slimpose.codecs._gaussian import plain_blur

    hm = np.random.default_rng(0).random((2, 3, 16, 12), dtype=np.float32)
    odd = np.asfortranarray(hm)
    np.testing.assert_array_equal(plain_blur(odd, 5), plain_blur(hm, 5))
    assert not np.allclose(plain_blur(hm, 5), hm)


def _inside_boxes(path):
    """The real COCO ground truth with every box clipped to its image (x1, x2 in [0, W - 1]), as slimpose's
    loader clips it: eval and ``predict`` then see the same boxes."""
    data = json.loads((parity.COCO / "test_coco.json").read_text())
    sizes = {img["id"]: (img["width"], img["height"]) for img in data["images"]}
    for a in data["annotations"]:
        w, h = sizes[a["image_id"]]
        x, y, bw, bh = a["bbox"]
        x1, y1 = min(max(x, 0.0), w - 1.0), min(max(y, 0.0), h - 1.0)
        x2, y2 = min(max(x + bw, 0.0), w - 1.0), min(max(y + bh, 0.0), h - 1.0)
        a["bbox"] = [x1, y1, x2 - x1, y2 - y1]
    path.write_text(json.dumps(data))
    return data


@pytest.mark.parametrize("name", ["TokenPose-S (leeyegy/TokenPose)",
                                  "DistilPose-S + teacher_model.* (yshMars/DistilPose)"])
def test_onnxruntime_in_graph_decoding_predicts_the_official_pipeline(name, samples, tmp_path, capsys):
    """``slimpose export CKPT --format onnx --decode-in-graph`` of a converted official checkpoint, run with
    onnxruntime on the official crops (flip test off): the keypoints, mapped back with the official inverse
    warp, equal the official pipeline's. The in-graph heatmap decoder has no DARK step, so a TokenPose graph is
    compared with the official geometry around HRNet's ``get_final_preds`` quarter step (what the official
    code runs without DARK); a DistilPose student decodes fully in the graph."""
    ort = pytest.importorskip("onnxruntime")
    layout = LAYOUTS[name]
    size = layout.quick_size
    model, pm, _ = parity.build_layout(layout, size, tmp_path)
    assert main(["export", str(pm.checkpoint), "--format", "onnx", "--decode-in-graph", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outputs"] == ["keypoints", "scores"]
    sess = ort.InferenceSession(str(tmp_path / f"{layout.model}.onnx"), providers=["CPUExecutionProvider"])
    image, boxes = samples[0]
    cs = [parity.box_center_scale(b, size[0] / size[1]) for b in boxes]
    tokenpose = layout.pipeline == "tokenpose"
    mats = [parity.hrnet_affine(c, s, size, minus_one=tokenpose) for c, s in cs]
    crops = np.stack([parity.crop_input(image, m, size) for m in mats])
    kp, sc = sess.run(None, {"images": crops})
    if tokenpose:
        hm = parity._forward(model, crops).astype(np.float32)
        locs, ref_s = parity.decode_quarter(hm)
        assert (ref_s > 0).all()  # peaked maps: the masking of non-positive maps does not enter
        hm_size = (hm.shape[3], hm.shape[2])
        ref_k = np.stack([parity.apply(parity.hrnet_affine(c, s, hm_size, inv=True, minus_one=True), locs[i])
                          for i, (c, s) in enumerate(cs)])
        got = np.stack([parity.apply(parity.hrnet_affine(c, s, size, inv=True, minus_one=True), kp[i])
                        for i, (c, s) in enumerate(cs)])
    else:
        ref_k, ref_s, _ = parity.official_predict(layout.pipeline, model, image, boxes, size, flip=False)
        got = np.stack([parity._mmpose_to_image(kp[i].astype(np.float64), c, s, size) for i, (c, s) in enumerate(cs)])
    assert np.abs(got - ref_k).max() < 1e-3
    assert np.abs(sc - ref_s).max() < 1e-4


@pytest.mark.parametrize("name", ["TokenPose-S (leeyegy/TokenPose)",
                                  "DistilPose-S + teacher_model.* (yshMars/DistilPose)"])
def test_eval_cli_follows_the_converted_checkpoint(name, tmp_path, capsys):
    """``slimpose eval`` on the real COCO samples (ground-truth boxes, flip test on) with a converted checkpoint
    whose CONFIG carries slimpose's defaults: eval takes the checkpoint's conventions, and every result it
    writes equals ``slimpose.load(ckpt).predict`` on the same box within 1e-3 px (the file's rounding)."""
    from slimpose.config import config_to_dict

    layout = LAYOUTS[name]
    _, pm, _ = parity.build_layout(layout, layout.quick_size, tmp_path)
    cfg = config_to_dict(pm.config)
    for key in ("conventions", "shift_heatmap", "dark"):  # the config keeps slimpose's defaults
        cfg.pop(key, None)
    gt = _inside_boxes(tmp_path / "gt.json")
    cfg["data"].update({"dataset": "coco", "data_root": str(parity.COCO), "val_ann": str(tmp_path / "gt.json"),
                        "val_images": str(parity.COCO / "images"), "use_gt_bbox": True, "val_workers": 0,
                        "udp": False})
    cfg.update({"work_dir": str(tmp_path / "run"), "flip_test": True})
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    rc = main(["eval", str(tmp_path / "cfg.json"), "--checkpoint", str(pm.checkpoint), "--json",
               "--out-dir", str(tmp_path / "ev")])
    out = capsys.readouterr()
    assert rc == 0 and f"conventions of {layout.source}" in out.err
    results = json.loads((tmp_path / "ev" / "results_eval.json").read_text())
    assert len(results) >= 4
    images = {img["id"]: img["file_name"] for img in gt["images"]}
    matched = set()
    for image_id in sorted({r["image_id"] for r in results}):
        boxes = np.array([a["bbox"] for a in gt["annotations"] if a["image_id"] == image_id])
        res = pm.predict(str(parity.COCO / "images" / images[image_id]), boxes, flip=True)
        for r in (r for r in results if r["image_id"] == image_id):
            k = np.asarray(r["keypoints"], np.float64).reshape(-1, 3)
            diff = np.abs(res.keypoints - k[None, :, :2]).max((1, 2))
            j = int(diff.argmin())
            assert diff[j] < 1e-3, (image_id, diff)
            assert np.abs(res.keypoint_scores[j] - k[:, 2]).max() < 1e-5
            assert (image_id, j) not in matched
            matched.add((image_id, j))


@pytest.mark.parametrize("name", [n for n in LAYOUTS if LAYOUTS[n].test_config])
def test_test_config_conventions_and_the_plain_conversion(name, samples, tmp_path):
    """``--test-config udp|dark``: an mmpose UDP / DARK config's checkpoint (the plain file's keys) gets that config's
    test conventions; converted without the option it predicts the plain config's (px away from the official)."""
    layout = LAYOUTS[name]
    model, pm, _ = parity.build_layout(layout, layout.quick_size, tmp_path)
    conv, cfg = pm.config.conventions, pm.config
    mmpose1 = "MMPose 1.x" in name
    if layout.test_config == "udp":
        assert (conv.geometry, cfg.shift_heatmap, cfg.dark, cfg.data.udp) == ("udp", False, False, True)
        assert (conv.udp_blur, conv.udp_border) == (("keep_max", "pad_instance") if mmpose1 else ("plain", "pad"))
        assert pm.udp is True and conv.source == ("mmpose1-udp" if mmpose1 else "mmpose-udp")
    else:
        assert (conv.geometry, cfg.shift_heatmap, cfg.dark) == ("standard", True, True)
        assert conv.source == ("mmpose1-dark" if mmpose1 else "mmpose-dark") and pm.head.codec.dark
    assert conv.nonpositive == "minus_one"
    plain = parity.plain_conversion(layout, layout.quick_size, tmp_path)
    image, boxes = samples[0]
    ref_k, _, stable = parity.official_predict(layout.pipeline, model, image, boxes, layout.quick_size, True)
    got = np.abs(parity.same_crops_predict(pm, layout.pipeline, image, boxes, layout.quick_size, True)[0]
                 - ref_k).max(-1)[stable]
    off = np.abs(parity.same_crops_predict(plain, layout.pipeline, image, boxes, layout.quick_size, True)[0]
                 - ref_k).max(-1)[stable]
    assert got.max() < 1e-3 and off.max() > 0.5, (got.max(), off.max())


def test_test_config_refused_where_it_means_nothing(tmp_path, capsys):
    from slimpose.convert import check_test_config

    layout = LAYOUTS["TokenPose-T (leeyegy/TokenPose)"]
    _, pm, _ = parity.build_layout(layout, layout.quick_size, tmp_path)
    src = tmp_path / "tokenpose_t_official.pth"
    base = ["convert", str(src), str(tmp_path / "x.pth"), "--from", "tokenpose", "--model", "tokenpose_t",
            "--input-size", "48", "64", "--set", "depth=2", "--set", "dim=32", "--set", "num_heads=2",
            "--set", "hidden_heatmap_dim=64"]
    assert main(base + ["--test-config", "udp"]) == 2
    err = capsys.readouterr().err
    assert "--test-config udp means nothing for --from tokenpose" in err and not (tmp_path / "x.pth").exists()
    assert main(base + ["--test-config", "default"]) == 0  # the layout's own test, as without the option
    assert check_test_config("mmpose", None) == "default" and check_test_config("vitpose", "default") == "default"
    with pytest.raises(SlimposeInputError, match="means nothing for --from vitpose"):
        check_test_config("vitpose", "dark")
    # an mmpose SimCC model has no heatmap decoding to switch
    simcc = LAYOUTS["HRNet-W32 SimCC (MMPose 1.x)"]
    _, spm, _ = parity.build_layout(simcc, simcc.quick_size, tmp_path)
    with pytest.raises(SlimposeInputError, match="for heatmap models"):
        convert_checkpoint(tmp_path / "hrnet_w32_simcc_official.pth", tmp_path / "y.pth", "mmpose",
                           "hrnet_w32_simcc", simcc.quick_size, test_config="dark")
    assert main(["convert", str(src), str(tmp_path / "z.pth"), "--from", "hot", "--model", "hot_mixste",
                 "--test-config", "udp"]) == 2
    assert "--test-config is for 2-D models" in capsys.readouterr().err
