"""Config dataclasses: --set overrides with type conversion, JSON round trip, recipes, LR schedule."""

from __future__ import annotations

import argparse
import json

import pytest
import torch

from slimpose.config import (
    RECIPES,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    get_config,
    load_config_file,
)
from slimpose.data.catalog import dataset_spec, resolve_split
from slimpose.engine.schedule import WarmupMultiStepLR
from slimpose.utils.io import SlimposeInputError


def test_overrides_convert_by_field_type():
    cfg = apply_overrides(TrainConfig(), [
        "optim.lr=0.01",
        "flip_test=false",
        "data.use_gt_bbox=0",
        "data.batch_size=8",
        "data.input_size=96,128",
        "data.heatmap_size=(24, 32)",
        "schedule.milestones=[3,5,7]",
        "optim.betas=0.8,0.99",
        "data.det_file=none",
        "data.aug.rotation_factor=10",
        "model.overrides.depth=2",
        "model.overrides.patch_size=[2,2]",
        "model.overrides.pos_embedding=sine-full",
        "work_dir=/tmp/x=y",
    ])
    assert cfg.optim.lr == 0.01 and isinstance(cfg.optim.lr, float)
    assert cfg.flip_test is False and cfg.data.use_gt_bbox is False
    assert cfg.data.batch_size == 8 and isinstance(cfg.data.batch_size, int)
    assert cfg.data.input_size == (96, 128) and cfg.data.heatmap_size == (24, 32)
    assert cfg.schedule.milestones == (3, 5, 7)
    assert cfg.optim.betas == (0.8, 0.99)
    assert cfg.data.det_file is None
    assert cfg.data.aug.rotation_factor == 10.0
    assert cfg.model.overrides == {"depth": 2, "patch_size": [2, 2], "pos_embedding": "sine-full"}
    assert cfg.work_dir == "/tmp/x=y"
    # the default is not mutated
    assert TrainConfig().optim.lr == 1e-3 and TrainConfig().model.overrides == {}


@pytest.mark.parametrize(
    "assignment, match",
    [
        ("optim.lrr=1", "unknown config key 'optim.lrr'"),
        ("nosuch=1", "unknown config key 'nosuch'"),
        ("data.batch_size=abc", "cannot convert to int"),
        ("flip_test=maybe", "true/false"),
        ("data.input_size=1,2,3", "expected 2"),
        ("optim=3", "is a section"),
        ("optim.lr", "KEY=VALUE"),
        ("data.dataset=imagenet", "unknown data set"),
        ("amp=fp8", "amp"),
        ("data.batch_size=0", "must be positive"),
    ],
)
def test_bad_overrides_give_clear_errors(assignment, match):
    with pytest.raises(SlimposeInputError, match=match):
        apply_overrides(TrainConfig(), [assignment])


def test_json_round_trip_and_unknown_keys(tmp_path):
    cfg = apply_overrides(RECIPES["tokenpose_tiny_synthetic"](), ["schedule.milestones=4,6", "seed=3"])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_to_dict(cfg)))
    back = load_config_file(path)
    assert back == cfg
    assert get_config(str(path)) == cfg
    bad = config_to_dict(cfg)
    bad["optim"]["momentum"] = 0.9
    with pytest.raises(SlimposeInputError, match="optim.momentum"):
        config_from_dict(bad, where="x.json")
    bad = config_to_dict(cfg)
    bad["data"]["input_size"] = "big"
    with pytest.raises(SlimposeInputError, match="x.json: data.input_size"):
        config_from_dict(bad, where="x.json")
    # partial dicts fill in defaults
    assert config_from_dict({"optim": {"lr": 0.5}}).optim.lr == 0.5
    with pytest.raises(SlimposeInputError, match="not a recipe"):
        get_config("no_such_recipe")


def test_recipes_as_published():
    for name, factory in RECIPES.items():
        cfg = factory()
        if getattr(cfg, "family", None) == "lifting":  # 3-D lifters: tests/lifting/test_lifting_train.py
            continue
        assert isinstance(cfg, TrainConfig), name
        if name.startswith("vitpose_"):  # ViTPose: AdamW 5e-4, weight decay 0.1, layer decay, clipping 1.0
            assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.grad_clip) == \
                ("adamw", 5e-4, 0.1, 1.0), name
        elif name.startswith("unitranspose_"):  # no official config: ViTPose's optimiser without layer decay
            lr, wd = (1e-3, 0.05) if "synth" in name else (5e-4, 0.1)
            assert (cfg.optim.name, cfg.optim.lr, cfg.optim.weight_decay, cfg.optim.layer_decay) == \
                ("adamw", lr, wd, 0.0), name
            assert cfg.model.name in ("unitranspose_t", "unitranspose_s", "unitranspose_b"), name
            assert (cfg.data.skeleton == "unified") == ("multi" in name or "unified" in name), name
        else:
            lr = 2e-3 if name.startswith("litehrnet_") else 1e-3  # the official Lite-HRNet configs: Adam 2e-3
            assert cfg.optim.name == "adam" and cfg.optim.lr == lr, name
        assert config_from_dict(config_to_dict(cfg)) == cfg, name
    s = RECIPES["tokenpose_s_v1_coco"]()
    assert (s.schedule.epochs, s.schedule.milestones, s.data.batch_size) == (300, (200, 260), 32)
    assert RECIPES["tokenpose_s_v2_coco"]().data.batch_size == 12
    assert RECIPES["tokenpose_l_d24_coco"]().data.batch_size == 16
    t = RECIPES["distilpose_teacher_coco"]()
    assert t.schedule.warmup_iters == 500 and t.data.unbiased_encoding and t.dark
    h = RECIPES["hrnet_w32_coco"]()
    assert (h.schedule.epochs, h.schedule.milestones, h.dark) == (210, (170, 200), False)
    vit = RECIPES["vitpose_b_coco"]()
    assert (vit.optim.layer_decay, vit.data.udp, vit.shift_heatmap, vit.data.aug.rotation_factor) == \
        (0.75, True, False, 40.0)
    assert [RECIPES[f"vitpose_{s}_coco"]().optim.layer_decay for s in "slh"] == [0.8, 0.8, 0.85]
    lite = RECIPES["litehrnet_18_mpii"]()  # HRNet/Lite-HRNet configs/top_down/lite_hrnet/mpii/
    assert (lite.data.input_size, lite.data.heatmap_size, lite.data.sigma, lite.data.batch_size) == \
        ((256, 256), (64, 64), 2.0, 32)
    assert (lite.data.aug.rotation_factor, lite.data.aug.scale_factor, lite.data.aug.half_body_prob) == (30, 0.25, 0)
    assert (lite.schedule.epochs, lite.schedule.milestones, lite.schedule.warmup_iters) == (210, (170, 200), 500)
    assert lite.flip_test and lite.shift_heatmap and not lite.dark
    sa = RECIPES["litehrnet_18_simcc_mpii"]().simcc
    assert (sa.smoothing_type, sa.loss_normalizer, sa.flip_average, sa.score_mode) == \
        ("gaussian", "batch_keypoints", "logits", "min_xy")


def test_data_root_sets_official_layouts(tmp_path):
    from slimpose.engine.builders import split_files

    cfg = apply_overrides(TrainConfig(), ["data.dataset=coco", f"data.data_root={tmp_path}"])
    assert split_files(cfg, "train").ann == tmp_path / "annotations/person_keypoints_train2017.json"
    assert split_files(cfg, "val").images == tmp_path / "val2017"
    assert dataset_spec("coco").det_file == "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    cfg = apply_overrides(cfg, ["data.dataset=crowdpose"])
    assert split_files(cfg, "val").ann == tmp_path / "json/crowdpose_test.json"
    cfg = apply_overrides(cfg, ["data.dataset=mpii", "data.val_ann=/x/v.json"])
    assert split_files(cfg, "train").ann == tmp_path / "annotations/mpii_train.json"
    assert str(split_files(cfg, "val").ann) == "/x/v.json"
    # OCHuman is an evaluation set: no official train split
    with pytest.raises(SlimposeInputError, match="no official train split"):
        resolve_split(dataset_spec("ochuman"), tmp_path, "train")
    assert resolve_split(dataset_spec("ochuman"), tmp_path, "train", "a.json", "im").ann.name == "a.json"


def test_method_sections_are_parsed_created_and_validated(tmp_path):
    cfg = apply_overrides(TrainConfig(), ["distill.cs=0", "distill.teacher_overrides={\"dim\": 32}"])
    assert cfg.distill is not None and cfg.distill.cs == 0.0 and cfg.distill.teacher_overrides == {"dim": 32}
    assert cfg.distill.score_source == "constant" and cfg.sdpose is None
    assert config_from_dict(config_to_dict(cfg)) == cfg
    with pytest.raises(SlimposeInputError, match="one distillation method per run"):
        apply_overrides(cfg, ["sdpose.kt=1e-5"])
    with pytest.raises(SlimposeInputError, match="sdpose.kt: must be >= 0"):
        apply_overrides(TrainConfig(), ["sdpose.kt=-1"])
    with pytest.raises(SlimposeInputError, match="every loss weight"):
        apply_overrides(TrainConfig(), ["distill.reg=0", "distill.kt=0", "distill.vt=0", "distill.sh=0",
                                        "distill.cs=0"])
    with pytest.raises(SlimposeInputError, match="distill.schedule"):
        apply_overrides(TrainConfig(), ["distill.schedule=cosine"])
    with pytest.raises(SlimposeInputError, match="distill.bogus"):
        apply_overrides(TrainConfig(), ["distill.bogus=1"])
    # a section written as null in a file is no section; a JSON list of extra data sets is parsed
    cfg = config_from_dict({"distill": None, "data": {"extra_train": [{"dataset": "coco", "weight": 2}]}})
    assert cfg.distill is None and cfg.data.extra_train[0].dataset == "coco"
    assert cfg.data.extra_train[0].weight == 2.0 and cfg.data.extra_train[0].data_root == "data/synthetic"
    with pytest.raises(SlimposeInputError, match=r"data.extra_train\[0\].dataset: unknown data set 'imagenet'"):
        config_from_dict({"data": {"extra_train": [{"dataset": "imagenet"}]}})
    by_text = apply_overrides(TrainConfig(), ['data.extra_train=[{"dataset": "coco", "data_root": "/c"}]'])
    assert by_text.data.extra_train[0].data_root == "/c" and by_text.data.extra_train[0].weight == 1.0
    with pytest.raises(SlimposeInputError, match=r"data.extra_train\[0\].weight: must be positive"):
        config_from_dict({"data": {"extra_train": [{"dataset": "coco", "weight": 0}]}})
    # heatmap size: None means the model's; a value is checked
    assert TrainConfig().data.heatmap_size is None
    assert apply_overrides(TrainConfig(), ["data.heatmap_size=none"]).data.heatmap_size is None


def test_cli_build_config_shortcuts():
    from slimpose.cli.train import add_arguments, build_config

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["tokenpose_tiny_synthetic", "--data-root", "/d", "--work-dir", "/w",
                              "--set", "optim.lr=0.01", "--set", "data.input_size=48,64", "--resume"])
    cfg = build_config(args)
    assert cfg.data.data_root == "/d" and cfg.work_dir == "/w" and cfg.optim.lr == 0.01
    assert cfg.data.input_size == (48, 64) and args.resume == "auto"


def test_warmup_multistep_schedule():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p], lr=1e-3)
    sched = WarmupMultiStepLR(opt, iters_per_epoch=10, milestones=(2, 3), gamma=0.1, warmup_iters=5,
                              warmup_ratio=1e-3)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(40):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    assert lrs[0] == pytest.approx(1e-6)  # base * ratio
    assert lrs[1] == pytest.approx(1e-3 * (1 - (1 - 1 / 5) * (1 - 1e-3)))
    assert lrs[5] == pytest.approx(1e-3) and lrs[19] == pytest.approx(1e-3)
    assert lrs[20] == pytest.approx(1e-4) and lrs[30] == pytest.approx(1e-5)
    # state dict restores the position exactly
    opt2 = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    s2 = WarmupMultiStepLR(opt2, 10, (2, 3), 0.1, 5, 1e-3)
    s2.load_state_dict(sched.state_dict())
    assert s2.get_last_lr() == sched.get_last_lr()
    with pytest.raises(ValueError, match="iterations per epoch"):
        WarmupMultiStepLR(opt2, 11, (2, 3)).load_state_dict(sched.state_dict())


def test_extra_training_sources_share_the_skeleton(tmp_path):
    """``data.extra_train`` adds training sets of the same skeleton (a plain union at equal weights); other
    skeletons are refused unless ``data.skeleton=unified`` (tests/engine/test_unified_training.py); unequal
    weights mix through the ``MixedSampler``."""
    from slimpose.data.synth import generate_synthetic_dataset
    from slimpose.engine.builders import build_train_dataset
    from slimpose.heads import default_head
    from slimpose.models import create_model

    for root, n in (("a", 3), ("b", 2)):
        generate_synthetic_dataset(tmp_path / root, num_images=n, seed=n, split="train", image_size=(96, 96))
    cfg = config_from_dict({"data": {"dataset": "synthetic", "data_root": str(tmp_path / "a"),
                                     "input_size": [48, 64],
                                     "extra_train": [{"dataset": "synthetic", "data_root": str(tmp_path / "b")}]}})
    codec = default_head(create_model("tokenpose_s_v1", input_size=(48, 64), depth=1)).codec
    main_only = build_train_dataset(config_from_dict({"data": {"data_root": str(tmp_path / "a"),
                                                               "input_size": [48, 64]}}), codec)
    both = build_train_dataset(cfg, codec)
    extra = build_train_dataset(config_from_dict({"data": {"data_root": str(tmp_path / "b"),
                                                           "input_size": [48, 64]}}), codec)
    assert len(both) == len(main_only) + len(extra) and len(extra) > 0
    assert both[len(main_only)]["target"].shape == main_only[0]["target"].shape
    mpii = config_from_dict({"data": {"data_root": str(tmp_path / "a"), "input_size": [48, 64],
                                      "extra_train": [{"dataset": "mpii"}]}})
    with pytest.raises(SlimposeInputError, match="set data.skeleton=unified to train on both"):
        build_train_dataset(mpii, codec)
    # unequal weights: the same union, mixed in those proportions by the train loader's MixedSampler
    from slimpose.data.sampler import MixedSampler
    from slimpose.engine.builders import build_train_loader
    from slimpose.engine.distributed import DistInfo

    cfg.data.extra_train[0].weight = 3.0
    cfg.data.batch_size = 2
    loader = build_train_loader(cfg, build_train_dataset(cfg, codec), DistInfo())
    assert isinstance(loader.sampler, MixedSampler) and loader.sampler.weights == [1.0, 3.0]
    cfg.data.extra_train[0].weight = -1.0
    with pytest.raises(SlimposeInputError, match="weight must be >= 0"):
        build_train_dataset(cfg, codec)
