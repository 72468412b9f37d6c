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
