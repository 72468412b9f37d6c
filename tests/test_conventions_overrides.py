"""Test conventions of converted checkpoints against explicit user settings (issue 17 review): ``load(udp=...)``,
``slimpose eval --set``, non-bool ``data.udp``, codec option checks, the dark warp's box guard, unknown entries."""

import argparse

import numpy as np
import pytest
import torch

from slimpose.api import checkpoint_config, load, read_metadata, read_weights
from slimpose.cli import eval as eval_cli
from slimpose.cli.train import build_config
from slimpose.codecs import _gaussian
from slimpose.codecs.msra_heatmap import GEOMETRIES as MSRA_GEOMETRIES
from slimpose.codecs.msra_heatmap import MSRAHeatmap
from slimpose.codecs.udp_heatmap import BLURS, UDPHeatmap
from slimpose.config.schema import TestConventions, TrainConfig, crop_warp
from slimpose.convert import KNOWN_ENTRIES, convert_checkpoint
from slimpose.data.transforms import get_warp_matrix
from slimpose.engine.checkpoint import export_safetensors, save_checkpoint
from slimpose.heads import HeatmapHead
from slimpose.heads.base import build_head
from slimpose.heads.heatmap import HeatmapArgmaxDecode, argmax_quarter_decode
from slimpose.models import create_model
from slimpose.utils.io import SlimposeInputError

INPUT = (48, 64)
TINY = {"depth": 1, "dim": 32, "num_heads": 2}
VIT = {"depth": 1, "dim": 32, "num_heads": 2}
TOKENPOSE_TEST = {"conventions": {"source": "tokenpose", "geometry": "dark", "nonpositive": "zero"},
                  "shift_heatmap": False, "dark": True}


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("conventions")
    vit = create_model("vitpose_s", **VIT)
    torch.save({"meta": {}, "state_dict": vit.state_dict()}, root / "vit_official.pth")
    convert_checkpoint(root / "vit_official.pth", root / "vit.pth", "vitpose", "vitpose_s", overrides=VIT)
    tp = create_model("tokenpose_s_v1", input_size=INPUT, **TINY)
    base = {"model": {"name": "tokenpose_s_v1", "overrides": TINY},
            "data": {"input_size": list(INPUT), "dataset": "coco"}, "flip_test": False}
    save_checkpoint({"model": tp.state_dict(), "model_name": "tokenpose_s_v1", "config": {**base, **TOKENPOSE_TEST}},
                    root / "tp_official.pth")
    export_safetensors(root / "tp_official.pth", root / "tp_official.safetensors")
    save_checkpoint({"model": tp.state_dict(), "model_name": "tokenpose_s_v1", "config": base}, root / "tp_own.pth")
    return root


# ------------------------------------------------------------------ 3: load(udp=...) on converted checkpoints


def test_load_udp_sets_the_geometry_of_converted_checkpoints(ckpts):
    vit = load(ckpts / "vit.pth")
    assert vit.udp is True and isinstance(vit.head.codec, UDPHeatmap) and not vit.head.shift_heatmap
    off = load(ckpts / "vit.pth", udp=False)  # was ignored: the converter's geometry='udp' decided
    assert off.udp is False and off.config.conventions.geometry == "standard"
    assert isinstance(off.head.codec, MSRAHeatmap) and off.head.codec.geometry == "standard"
    assert off.config.conventions.source == "vitpose" and off.config.conventions.nonpositive == "minus_one"
    tp = load(ckpts / "tp_official.pth")
    assert tp.udp == "dark" and tp.head.codec.geometry == "dark"
    on = load(ckpts / "tp_official.pth", udp=True)
    assert on.udp is True and isinstance(on.head.codec, UDPHeatmap) and on.config.conventions.geometry == "udp"
    std = load(ckpts / "tp_official.pth", udp=False)
    assert std.udp is False and std.head.codec.geometry == "standard"
    # the precedence of every keyword together: udp with dark and shift_heatmap
    mix = load(ckpts / "tp_official.pth", udp=False, dark=False, shift_heatmap=True)
    assert (mix.udp, mix.head.codec.dark, mix.head.shift_heatmap) == (False, False, True)
    # slimpose's own checkpoints keep geometry='auto' (data.udp decides, as before)
    own = load(ckpts / "tp_own.pth", udp=True)
    assert own.config.conventions.geometry == "auto" and own.udp is True and isinstance(own.head.codec, UDPHeatmap)
    assert load(ckpts / "tp_own.pth").udp is False
    cfg = checkpoint_config({"model_name": "hrnet_w32", "config": {"conventions": {"geometry": "dark"}}}, "x.pth",
                            {"udp": "true"})
    assert cfg.conventions.geometry == "udp" and crop_warp(cfg) is True


# ------------------------------------------------------------------ 4: slimpose eval --set wins


def _eval_args(*argv):
    parser = argparse.ArgumentParser()
    eval_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_eval_set_wins_over_the_checkpoint_conventions(ckpts):
    ckpt = str(ckpts / "tp_official.pth")
    args = _eval_args("--checkpoint", ckpt)
    cfg, taken = eval_cli.adopt_checkpoint_conventions(build_config(args), args)
    assert taken and cfg.conventions.source == "tokenpose" and crop_warp(cfg) == "dark"
    assert cfg.dark is True and cfg.shift_heatmap is False
    sets = ["conventions.geometry=standard", "dark=false", "shift_heatmap=true", "data.udp=true"]
    args = _eval_args("--checkpoint", ckpt, *[a for s in sets for a in ("--set", s)])
    cfg, taken = eval_cli.adopt_checkpoint_conventions(build_config(args), args)
    assert cfg.conventions.geometry == "standard" and cfg.dark is False and cfg.shift_heatmap is True
    assert cfg.data.udp is True and crop_warp(cfg) is False
    assert cfg.conventions.source == "tokenpose" and cfg.conventions.nonpositive == "zero"  # the rest is taken
    assert "dark=False" in taken and "shift_heatmap=True" in taken
    # a conventions.source of the user's own: nothing is taken
    args = _eval_args("--checkpoint", ckpt, "--set", "conventions.source=mine")
    cfg, taken = eval_cli.adopt_checkpoint_conventions(build_config(args), args)
    assert not taken and cfg.conventions.geometry == "auto"
    # slimpose's own checkpoints: nothing is taken
    args = _eval_args("--checkpoint", str(ckpts / "tp_own.pth"), "--set", "dark=false")
    cfg, taken = eval_cli.adopt_checkpoint_conventions(build_config(args), args)
    assert not taken and cfg.conventions.source == "slimpose" and cfg.dark is False


def test_read_metadata_matches_read_weights(ckpts, tmp_path):
    for name in ("tp_official.pth", "tp_official.safetensors", "vit.pth"):
        assert read_metadata(ckpts / name) == read_weights(ckpts / name)[1], name
    torch.save(create_model("vitpose_s", **VIT).state_dict(), tmp_path / "bare.pth")  # no metadata
    assert read_metadata(tmp_path / "bare.pth")["config"] == {}
    with pytest.raises(SlimposeInputError, match="not found"):
        read_metadata(tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SlimposeInputError, match="junk.pth"):
        read_metadata(tmp_path / "junk.pth")


# ------------------------------------------------------------------ 7: data.udp by value


@pytest.mark.parametrize("value", [np.bool_(True), 1, np.bool_(False), 0])
def test_non_bool_data_udp_builds_the_same_head_as_the_bool(value):
    model = create_model("tokenpose_s_v1", input_size=INPUT, **TINY)
    cfg = TrainConfig()
    cfg.data.udp = value
    assert crop_warp(cfg) is bool(value)
    head = build_head(cfg, model)
    assert isinstance(head, HeatmapHead)
    assert isinstance(head.codec, UDPHeatmap) is bool(value)
    assert head.shift_heatmap is (not bool(value))


# ------------------------------------------------------------------ 8: codec options are checked


def test_codec_options_are_checked():
    for kwargs, word in (({"geometry": "udp"}, "geometry"), ({"geometry": "Dark"}, "geometry"),
                         ({"quarter_bounds": "HRNet"}, "quarter_bounds"),
                         ({"nonpositive": "minus-one"}, "nonpositive")):
        with pytest.raises(ValueError, match=f"{word} must be one of .*got"):
            MSRAHeatmap(**kwargs)
    with pytest.raises(ValueError, match="'standard', 'dark'"):
        MSRAHeatmap(geometry="udp")
    with pytest.raises(ValueError, match="'keep_max', 'plain'"):
        UDPHeatmap(blur="plain ")
    with pytest.raises(ValueError, match="nonpositive"):
        UDPHeatmap(nonpositive="zeros")
    locs, scores = np.zeros((1, 2, 2), np.float32), np.array([[1.0, -1.0]], np.float32)
    with pytest.raises(ValueError, match="'keep', 'minus_one', 'zero'"):
        _gaussian.mask_nonpositive(locs, scores, "minusone")
    np.testing.assert_array_equal(_gaussian.mask_nonpositive(locs, scores, "minus_one")[0, 1], [-1.0, -1.0])
    with pytest.raises(ValueError, match="quarter_bounds"):
        _gaussian.quarter_offset_refine(locs, np.zeros((1, 2, 4, 4), np.float32), "hrnet ")
    with pytest.raises(ValueError, match="quarter_bounds"):
        argmax_quarter_decode(torch.zeros(1, 2, 4, 4), "mmpose")
    with pytest.raises(ValueError, match="nonpositive"):
        HeatmapArgmaxDecode(INPUT, (12, 16), nonpositive="-1")
    with pytest.raises(ValueError, match="geometry"):
        _gaussian.heatmap_to_crop(INPUT, (12, 16), "UDP")
    for ok in (False, True, "standard", "udp", "dark"):
        _gaussian.heatmap_to_crop(INPUT, (12, 16), ok)
    # the config checks use the codecs' tuples (one list of allowed values)
    assert MSRA_GEOMETRIES == ("standard", "dark") and BLURS == ("keep_max", "plain")
    for key, allowed in (("udp_blur", BLURS), ("quarter_bounds", _gaussian.QUARTER_BOUNDS),
                         ("nonpositive", _gaussian.NONPOSITIVE)):
        with pytest.raises(SlimposeInputError, match=f"conventions.{key}.*{', '.join(allowed)}"):
            checkpoint_config({"model_name": "hrnet_w32", "config": {"conventions": {key: "typo"}}}, "bad.pth")


# ------------------------------------------------------------------ 10: minor


def test_test_conventions_is_not_a_pytest_class():
    assert TestConventions.__test__ is False and TestConventions().source == "slimpose"
    assert "__test__" not in {f.name for f in __import__("dataclasses").fields(TestConventions)}


def test_dark_warp_needs_a_box_wider_than_one_pixel():
    for width in (1.0, 0.5):
        with pytest.raises(ValueError, match="wider than 1 px"):
            get_warp_matrix((10.0, 10.0), (width, 1.3), 0.0, INPUT, udp="dark")
    m = get_warp_matrix((10.0, 10.0), (2.0, 2.6), 0.0, INPUT, udp="dark")
    assert np.isfinite(m).all()
    get_warp_matrix((10.0, 10.0), (1.0, 1.3), 0.0, INPUT, udp=False)  # the other warps are not affected


def test_unknown_top_level_entries_fail_like_unknown_keys(tmp_path):
    vit = create_model("vitpose_s", **VIT)
    torch.save({"meta": {}, "optimizer": {}, "state_dict": vit.state_dict(), "ema_weights": {}}, tmp_path / "v.pth")
    with pytest.raises(SlimposeInputError, match="ema_weights") as e:
        convert_checkpoint(tmp_path / "v.pth", tmp_path / "out.pth", "vitpose", "vitpose_s", overrides=VIT)
    report = e.value.report
    assert any("'ema_weights'" in u for u in report.unexpected) and not report.missing
    assert any("'meta'" in d for d in report.dropped) and any("'optimizer'" in d for d in report.dropped)
    assert not (tmp_path / "out.pth").exists() and "ema_weights" not in KNOWN_ENTRIES
    report = convert_checkpoint(tmp_path / "v.pth", tmp_path / "out.pth", "vitpose", "vitpose_s", overrides=VIT,
                                allow_partial=True)
    assert (tmp_path / "out.pth").is_file() and not report.ok


# ------------------------------------------------------------------ DARK-UDP at the map border (review item 1)


def _edge_maps(h=16, w=12):
    yy, xx = np.mgrid[0:h, 0:w]

    def g(cx, cy, s=1.5):
        return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s)).astype(np.float32)

    # edge peaks x=0, x=W-1, y=0, y=H-1, two corners, an all-negative map, an inner peak
    maps = [g(0, 7.3), g(w - 1, 5.6), g(4.4, 0), g(6.2, h - 1), g(0, 0), g(w - 1, h - 1), -1.0 - g(5, 5), g(5.3, 8.6)]
    return np.stack([np.stack(maps), np.stack(maps[::-1])]).astype(np.float32)


@pytest.mark.parametrize("blur,border", [("plain", "pad"), ("keep_max", "pad_instance")])
def test_udp_border_pad_matches_the_official_step_at_edges(blur, border):
    """``udp_border='pad'`` (mmpose 0.x ``post_dark_udp``) / ``'pad_instance'`` (MMPose 1.x
    ``refine_keypoints_dark_udp``) equal the reference of benchmarks/conversion_parity.py on edge peaks and on
    an all-negative map (the step runs from -1, reading the flat padded vector as officially); the default
    ('skip') keeps the border axis and differs by 0.5 heatmap px there."""
    from _shared import load_benchmark

    parity = load_benchmark("conversion_parity")
    hm = _edge_maps()
    h, w = hm.shape[2:]
    ref, _, _ = parity.decode_dark_udp(hm, 11, per_instance=border == "pad_instance", keep_max=blur == "keep_max")
    got, _ = UDPHeatmap(INPUT, (w, h), blur=blur, nonpositive="minus_one", border=border).decode_heatmaps(hm)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    old, _ = UDPHeatmap(INPUT, (w, h), blur=blur, nonpositive="minus_one").decode_heatmaps(hm)
    edge = np.abs(old[0, :6] - ref[0, :6]).max(-1)
    np.testing.assert_allclose(edge, 0.5, atol=1e-3)  # the skip rule: 0.5 px per edge peak
    np.testing.assert_array_equal(old[:, [7, 0]][[0, 1], [0, 1]], got[:, [7, 0]][[0, 1], [0, 1]])  # inner peaks
    with pytest.raises(ValueError, match="border"):
        UDPHeatmap(INPUT, (w, h), border="edge")


def test_converted_vitpose_gets_the_padded_step(ckpts, tmp_path):
    assert load(ckpts / "vit.pth").head.codec.border == "pad"
    assert TrainConfig().conventions.udp_border == "skip"
    cfg = TrainConfig()
    cfg.conventions.udp_border = "x"
    from slimpose.config.schema import validate_config

    with pytest.raises(Exception, match="udp_border"):
        validate_config(cfg)


def test_mmpose1_quarter_bounds_match_refine_keypoints():
    """``quarter_bounds='mmpose1'`` (MMPose 1.x ``refine_keypoints``, per axis) equals the reference on argmaxes
    on and next to every border, in the codec and in the exported decoder; HRNet's bounds ('hrnet') do not."""
    from _shared import load_benchmark

    parity = load_benchmark("conversion_parity")
    h, w = 8, 6
    hm = np.random.default_rng(0).random((1, h * w, h, w), dtype=np.float32)
    for i in range(h * w):  # one map per pixel, its argmax there
        hm[0, i, i // w, i % w] = 2.0
    hm = np.concatenate([hm, -hm[:, :3]], axis=1)  # and maps without a positive value
    ref, _ = parity.decode_quarter(hm, mmpose1=True)
    codec = MSRAHeatmap((4 * w, 4 * h), (w, h), quarter_bounds="mmpose1", nonpositive="minus_one")
    np.testing.assert_allclose(codec.decode_heatmaps(hm)[0], ref, atol=1e-6)
    locs, _ = argmax_quarter_decode(torch.from_numpy(hm), "mmpose1", -1.0)
    np.testing.assert_allclose(locs.numpy(), ref, atol=1e-6)
    hrnet = MSRAHeatmap((4 * w, 4 * h), (w, h), quarter_bounds="hrnet", nonpositive="minus_one")
    assert np.abs(hrnet.decode_heatmaps(hm)[0] - ref).max() == pytest.approx(0.25)


def test_converted_mmpose1_files_get_mmpose1_conventions(tmp_path):
    """An MMPose 1.x heatmap file (``head.final_layer``) gets ``quarter_bounds='mmpose1'``; a 0.x file keeps HRNet's."""
    torch.manual_seed(0)
    sd = create_model("hrnet_w32", input_size=(64, 64)).state_dict()
    one = {("head." + k[len("keypoint_head."):] if k.startswith("keypoint_head.") else k): v for k, v in sd.items()}
    torch.save({"meta": {}, "state_dict": one}, tmp_path / "one.pth")
    torch.save({"meta": {}, "state_dict": sd}, tmp_path / "zero.pth")
    for stem in ("one", "zero"):
        convert_checkpoint(tmp_path / f"{stem}.pth", tmp_path / f"{stem}_out.pth", "mmpose", "hrnet_w32", (64, 64))
    p1, p0 = load(tmp_path / "one_out.pth"), load(tmp_path / "zero_out.pth")
    c1, c0 = p1.config.conventions, p0.config.conventions
    assert p1.head.codec.quarter_bounds == "mmpose1" and p0.head.codec.quarter_bounds == "hrnet"
    assert (c1.source, c1.quarter_bounds, c1.simcc_nonpositive) == ("mmpose1", "mmpose1", "minus_one")
    assert (c0.source, c0.quarter_bounds, c0.simcc_nonpositive) == ("mmpose", "hrnet", "keep")


def test_simcc_minus_one_masks_nonpositive_scores_before_the_split():
    """MMPose 1.x ``get_simcc_maximum``: where min(max_x, max_y) <= 0 the bins become -1, then / split ratio."""
    from slimpose.codecs.simcc import SimCCLabel
    from slimpose.heads.simcc import SimCCDecode

    rng = np.random.default_rng(0)
    x = rng.random((1, 3, 96), dtype=np.float32)
    y = rng.random((1, 3, 128), dtype=np.float32)
    y[0, 1] -= 2.0  # keypoint 1: negative logits along y
    kw = {"split_ratio": 2.0, "refine": False, "score_mode": "min_xy", "from_logits": False}
    keep = SimCCLabel((48, 64), **kw)
    mask = SimCCLabel((48, 64), nonpositive="minus_one", **kw)
    k0, s0 = keep.decode((x, y))
    k1, s1 = mask.decode((x, y))
    assert s0[0, 1] <= 0 and (s0[0, [0, 2]] > 0).all()
    np.testing.assert_array_equal(k1[0, 1], [-0.5, -0.5])
    np.testing.assert_array_equal(k1[0, [0, 2]], k0[0, [0, 2]])
    np.testing.assert_array_equal(s1, s0)
    kt, _ = SimCCDecode(2.0, "min_xy", nonpositive="minus_one")((torch.from_numpy(x), torch.from_numpy(y)))
    np.testing.assert_allclose(kt.numpy(), k1, atol=1e-6)
    with pytest.raises(ValueError, match="nonpositive"):
        SimCCLabel((48, 64), nonpositive="zero")
