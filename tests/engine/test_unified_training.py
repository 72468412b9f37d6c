"""Training and scoring one model on several skeletons (``data.skeleton='unified'``): the sources are moved into
the unified set with zero weight on the joints they do not label, validation is scored in the data set's own
skeleton, inference gives any data set's skeleton, ``slimpose eval --per-source`` scores each source."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slimpose.config.parse import config_from_dict
from slimpose.config.schema import validate_config
from slimpose.data.unified import MAPPINGS, UNIFIED
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)
TINY = dict(dims=[16, 32, 32, 64], depths=[1, 1, 1, 1], heads=[1, 2, 2, 4], decoder_channels=[16, 16, 16],
            drop_path_rate=0.0)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    from slimpose.data.synth import SynthConfig, generate_synthetic_dataset

    base = tmp_path_factory.mktemp("unified")
    easy = SynthConfig.easy()
    for skeleton, root in (("coco", "coco"), ("mpii", "mpii")):
        for split, seed in (("train", 3), ("val", 4)):
            generate_synthetic_dataset(base / root, num_images=4, seed=seed, split=split, image_size=(96, 96),
                                       progress=False, config=easy, skeleton=skeleton)
    return base


def _cfg(roots, **data):
    d = {"dataset": "synthetic", "data_root": str(roots / "coco"), "input_size": [64, 64], "skeleton": "unified",
         "extra_train": [{"dataset": "synthetic_mpii", "data_root": str(roots / "mpii")}], "batch_size": 2,
         "val_batch_size": 4, "workers": 0, "val_workers": 0, **data}
    return config_from_dict({"model": {"name": "unitranspose_t", "overrides": TINY}, "data": d, "flip_test": True,
                             "work_dir": str(roots / "work")})


def test_sources_are_moved_into_the_unified_set_with_unlabelled_joints_unweighted(roots):
    from slimpose.engine.builders import build_model, build_train_dataset, model_info
    from slimpose.heads import default_head

    cfg = _cfg(roots)
    assert model_info(cfg) is UNIFIED
    model = build_model(cfg)
    assert model.num_keypoints == 22
    data = build_train_dataset(cfg, default_head(model).codec)
    coco, mpii = data.datasets
    assert coco.info is UNIFIED and mpii.info is UNIFIED
    for part, name in ((coco, "coco"), (mpii, "mpii")):
        unlabelled = ~np.isin(np.arange(22), MAPPINGS[name])
        for i in range(len(part)):
            item = part[i]
            assert item["target"].shape[0] == 22 and item["reg_target"].shape == (22, 2)
            assert (item["target_weight"].numpy()[unlabelled] == 0).all()
            assert (item["reg_target_weight"].numpy()[unlabelled] == 0).all()
            assert (item["target"].numpy()[unlabelled] == 0).all()
    # a COCO person has face joints, an MPII one the thorax: each source labels its own
    assert any(coco[i]["target_weight"][0] > 0 for i in range(len(coco)))
    assert any(mpii[i]["target_weight"][UNIFIED.keypoint_names.index("thorax")] > 0 for i in range(len(mpii)))
    # the masked joints give zero loss and zero gradient through the hybrid head
    head = default_head(model)
    item = mpii[0]
    batch = {k: v[None] for k, v in item.items() if isinstance(v, torch.Tensor)}
    out = model(item["image"][None])
    loss, _ = head.loss(out, batch)
    grads = torch.autograd.grad(loss, out)
    face = [0, 1, 2, 3, 4]  # MPII labels no face joint
    assert all(float(g[0, face].abs().max()) == 0.0 for g in grads)


def test_config_checks(roots):
    with pytest.raises(SlimposeInputError, match="data.skeleton"):
        _cfg(roots, skeleton="joint23")
    with pytest.raises(SlimposeInputError, match="each synthetic data set needs its own folder"):
        _cfg(roots, extra_train=[{"dataset": "synthetic_mpii", "data_root": str(roots / "coco")}])
    validate_config(_cfg(roots))


def test_validation_is_scored_in_the_data_sets_own_skeleton(roots):
    from slimpose.engine.builders import build_evaluator, build_topdown_task, source_configs
    from slimpose.engine.distributed import DistInfo
    from slimpose.engine.evaluator import collect_predictions

    torch.manual_seed(0)
    cfg = _cfg(roots)
    task = build_topdown_task(cfg)
    labels = [label for label, _ in source_configs(cfg)]
    assert labels == ["synthetic", "synthetic_mpii"]
    for (label, c), name in zip(source_configs(cfg), ("coco", "mpii")):
        ev = build_evaluator(c, DistInfo(), roots / "work", task.head.codec)
        assert ev.model_info is UNIFIED and tuple(ev.select) == MAPPINGS[name]
        assert ev.info.num_keypoints == len(MAPPINGS[name])
        pairs = [tuple(p) for p in UNIFIED.flip_pairs]
        full = collect_predictions(task, ev.loader, pairs)
        mapped = collect_predictions(task, ev.loader, pairs, select=ev.select)
        for f, m in zip(full, mapped):
            assert np.allclose(m["keypoints"], f["keypoints"][list(MAPPINGS[name])])
            assert np.allclose(m["keypoint_scores"], f["keypoint_scores"][list(MAPPINGS[name])])
        metrics = ev.run(task, tag=f"t_{label}")
        assert ("PCKh" in metrics) == (name == "mpii") and ("AP" in metrics) == (name == "coco")


def test_inference_in_any_skeleton_and_per_source_eval(roots, tmp_path, capsys):
    from slimpose.api import load
    from slimpose.cli.main import main
    from slimpose.engine.builders import build_model
    from slimpose.engine.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = _cfg(roots)
    model = build_model(cfg)
    config = json.loads(json.dumps(cfg, default=lambda o: o.__dict__))
    save_checkpoint({"model": model.state_dict(), "model_name": "unitranspose_t", "config": config},
                    tmp_path / "utp.pth")
    image = str(roots / "coco" / "images" / "val" / "000000001.jpg")
    box = np.array([[10.0, 10.0, 60.0, 70.0]])
    full = load(tmp_path / "utp.pth", flip_test=False)
    assert full.info is UNIFIED
    ref = full.predict(image, box)
    assert ref.keypoints.shape == (1, 22, 2)
    for name in ("coco", "mpii", "aic", "crowdpose"):
        pm = load(tmp_path / "utp.pth", flip_test=False, skeleton=name)
        res = pm.predict(image, box)
        assert pm.info.name == name and res.keypoints.shape == (1, len(MAPPINGS[name]), 2)
        assert np.allclose(res.keypoints, ref.keypoints[:, list(MAPPINGS[name])])
    # a 17-joint model cannot give MPII's joints
    tiny = {"model": {"name": "unitranspose_t", "overrides": TINY}, "data": {"input_size": [64, 64], "dataset": "coco"}}
    coco_model = build_model(config_from_dict(tiny))
    save_checkpoint({"model": coco_model.state_dict(), "model_name": "unitranspose_t", "config": tiny},
                    tmp_path / "coco.pth")
    assert load(tmp_path / "coco.pth", skeleton="coco").num_keypoints == 17
    with pytest.raises(SlimposeInputError, match="only a model trained on the unified skeleton"):
        load(tmp_path / "coco.pth", skeleton="mpii")
    # slimpose predict --skeleton: results in that skeleton
    assert main(["predict", image, "--checkpoint", str(tmp_path / "utp.pth"), "--skeleton", "aic", "--no-vis",
                 "--out", str(tmp_path / "pred")]) == 0
    results = json.loads((tmp_path / "pred" / "results.json").read_text())
    assert results and all(len(r["keypoints"]) == 3 * 14 for r in results)
    capsys.readouterr()
    # slimpose eval --per-source: one table per source, each in its own metric
    (tmp_path / "cfg.json").write_text(json.dumps(config))
    assert main(["eval", str(tmp_path / "cfg.json"), "--checkpoint", str(tmp_path / "utp.pth"), "--per-source",
                 "--json", "--out-dir", str(tmp_path / "ev")]) == 0
    per = json.loads(capsys.readouterr().out)
    assert set(per) == {"synthetic", "synthetic_mpii"} and "AP" in per["synthetic"] and "PCKh" in per["synthetic_mpii"]
    assert (tmp_path / "ev" / "metrics_eval_synthetic_mpii.json").is_file()


def test_sources_get_fresh_and_distinct_augmentation_each_epoch(roots):
    """The loop's ``set_epoch`` reaches every source, and item i of two sources is not augmented alike."""
    from slimpose.data.dataset import SourcesDataset
    from slimpose.engine.builders import build_model, build_train_dataset
    from slimpose.heads import default_head

    import shutil

    copy = roots / "coco_copy"  # the same people in a second folder (each synthetic source has its own)
    if not copy.exists():
        shutil.copytree(roots / "coco", copy)
    cfg = _cfg(roots, extra_train=[{"dataset": "synthetic", "data_root": str(copy)}], skeleton=None)
    data = build_train_dataset(cfg, default_head(build_model(cfg)).codec)
    assert isinstance(data, SourcesDataset) and [p.stream for p in data.datasets] == [0, 1]
    first = data[0]["keypoints"]
    assert not torch.equal(first, data[len(data.datasets[0])]["keypoints"])  # the same person, another draw
    data.set_epoch(3)
    assert [p.epoch for p in data.datasets] == [3, 3]
    assert not torch.equal(first, data[0]["keypoints"])


def test_hybrid_head_settings_and_per_source_boxes(roots):
    from slimpose.config.recipes import get_config
    from slimpose.engine.builders import build_model, source_configs
    from slimpose.heads import build_head

    cfg = _cfg(roots)
    cfg.model.overrides = {**TINY, "reg_weight": 0.5, "decode_from": "mean"}
    head = build_head(cfg, build_model(cfg))
    assert (head.reg_weight, head.decode_from) == (0.5, "mean")
    multi = get_config("unitranspose_t_multi")
    assert not multi.data.use_gt_bbox  # COCO is validated on detections ...
    per = dict(source_configs(multi))
    assert set(per) == {"coco", "mpii", "aic", "crowdpose"} and not per["coco"].data.use_gt_bbox
    assert all(per[n].data.use_gt_bbox for n in ("mpii", "aic", "crowdpose"))  # ... the others on their boxes
