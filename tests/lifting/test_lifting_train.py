"""Training a lifter: clips, the task, the config family, the loop end to end (tiny models, tiny synthetic motion)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from slimpose.config import RECIPES, apply_overrides, get_config
from slimpose.config.parse import config_to_dict, load_config_file
from slimpose.lifting.config import LiftConfig
from slimpose.lifting.data.clips import ClipDataset, clip_starts, mirror, take_clip
from slimpose.lifting.data.sequence import Sequence3D
from slimpose.lifting.losses import flip_keypoints
from slimpose.utils.io import SlimposeInputError

TINY = {"num_frames": 9, "dim": 16, "depth": 2, "num_heads": 2}


def _seq(t: int, j: int = 17, seed: int = 0) -> Sequence3D:
    rng = np.random.default_rng(seed)
    pose = rng.normal(size=(t, j, 3)).astype(np.float32)
    pose -= pose[:, :1]
    return Sequence3D("S1", "Walking", 0, rng.normal(size=(t, j, 2)).astype(np.float32), pose,
                      np.zeros((t, 3), np.float32), (1000, 1000))


def test_clip_starts_cover_every_frame():
    assert clip_starts(27, 9, 9) == [0, 9, 18]
    assert clip_starts(30, 9, 9) == [0, 9, 18, 21]  # the last clip ends at the last frame
    assert clip_starts(5, 9, 9) == [0]
    for t, clip, stride in [(30, 9, 4), (100, 27, 13), (9, 9, 1)]:
        covered = set()
        for s in clip_starts(t, clip, stride):
            assert 0 <= s and s + clip <= max(t, clip)
            covered.update(range(s, min(s + clip, t)))
        assert covered == set(range(t))


def test_take_clip_edge_pads_short_sequences():
    a = np.arange(5)[:, None].astype(np.float32)
    np.testing.assert_array_equal(take_clip(a, 0, 8)[:, 0], [0, 1, 2, 3, 4, 4, 4, 4])


def test_mirror_is_the_torch_flip():
    x = np.random.default_rng(1).normal(size=(4, 17, 3)).astype(np.float32)
    np.testing.assert_allclose(mirror(x), flip_keypoints(torch.from_numpy(x)).numpy())
    np.testing.assert_allclose(mirror(mirror(x)), x)


def test_clip_dataset_flips_are_per_epoch_and_consistent():
    seq = _seq(40)
    ds = ClipDataset([seq], num_frames=9, stride=9, flip_aug=True, seed=3)
    assert len(ds) == len(clip_starts(40, 9, 9))
    flips0 = [ds.flipped(i) for i in range(len(ds))]
    ds.set_epoch(1)
    flips1 = [ds.flipped(i) for i in range(len(ds))]
    assert flips0 != flips1 or len(ds) < 3
    ds.set_epoch(0)
    assert [ds.flipped(i) for i in range(len(ds))] == flips0  # a function of (seed, epoch, index) only
    for i in range(len(ds)):
        item = ds[i]
        start = ds.index[i][1]
        kps, pose = seq.keypoints_2d[start:start + 9], seq.poses_3d[start:start + 9]
        if bool(item["flipped"]):
            kps, pose = mirror(kps), mirror(pose)
        np.testing.assert_allclose(item["keypoints_2d"].numpy(), kps)
        np.testing.assert_allclose(item["poses_3d"].numpy(), pose)
    assert not ClipDataset([seq], 9, flip_aug=False).flipped(0)


def test_lifting_recipes_are_lift_configs():
    for name in ("mixste_synth3d", "hot_mixste_synth3d", "tpc_mixste_synth3d", "h2ot_mixste_synth3d", "mixste_h36m",
                 "hot_mixste_h36m", "tpc_mixste_h36m", "h2ot_mixste_h36m", "ktpformer_h36m", "ktpformer_synth3d",
                 "hot_ktpformer_synth3d"):
        cfg = RECIPES[name]()
        assert isinstance(cfg, LiftConfig) and cfg.family == "lifting"
    h36m = RECIPES["mixste_h36m"]()
    assert (h36m.optim.name, h36m.optim.lr, h36m.optim.weight_decay, h36m.schedule.epoch_decay) == \
        ("adamw", 4e-5, 0.1, 0.99)
    assert h36m.data.stride == 243 and h36m.data.batch_size == 4 and h36m.model.overrides == {}
    ktp = RECIPES["ktpformer_h36m"]()
    assert (ktp.optim.lr, ktp.schedule.epochs, ktp.data.stride, ktp.data.batch_size, ktp.model.name) == \
        (8e-5, 200, 243, 8, "ktpformer")  # -b 1024 -s 128: 1024 // 128 clips of 243 frames


def test_lift_config_round_trip_and_errors(tmp_path):
    cfg = apply_overrides(get_config("mixste_synth3d"), ["data.stride=3", "model.overrides.dim=32"])
    assert cfg.data.stride == 3 and cfg.model.overrides["dim"] == 32
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config_to_dict(cfg)))
    back = load_config_file(path)
    assert isinstance(back, LiftConfig) and config_to_dict(back) == config_to_dict(cfg)
    with pytest.raises(SlimposeInputError, match="data.heatmap_size"):
        apply_overrides(cfg, ["data.heatmap_size=4,4"])
    with pytest.raises(SlimposeInputError, match="model.name"):
        apply_overrides(cfg, ["model.name=tokenpose_s_v1"])
    with pytest.raises(SlimposeInputError, match="data.dataset"):
        apply_overrides(cfg, ["data.dataset=coco"])
    with pytest.raises(SlimposeInputError, match="optim.loss_spike"):
        apply_overrides(cfg, ["optim.loss_spike=-1"])


def _tiny_cfg(tmp_path, model: str = "mixste", **extra) -> LiftConfig:
    overrides = dict(TINY, **extra)
    sets = [f"data.data_root={tmp_path / 'data'}", f"work_dir={tmp_path / 'work'}", "data.synthetic_sequences=3",
            "data.synthetic_frames=30", "data.batch_size=4", "data.stride=9", "schedule.epochs=2",
            "eval_interval=1", "device=cpu", "tensorboard=false", f"model.name={model}",
            f"model.overrides={overrides!r}"]
    return apply_overrides(get_config("mixste_synth3d"), sets)


def _weights(loop) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in loop.task.model.state_dict().items()}


def test_train_resume_and_evaluate_a_tiny_lifter(tmp_path):
    from slimpose.lifting.checkpoint import load_lifter
    from slimpose.lifting.train import build_lift_trainer, evaluate_lift_checkpoint

    cfg = _tiny_cfg(tmp_path)
    loop = build_lift_trainer(cfg)
    summary = loop.fit()
    loop.close()
    full = _weights(loop)
    work = tmp_path / "work"
    assert {"last.pth", "best.pth", "config.json", "metrics_val.json", "predictions_val.npz"} <= \
        {p.name for p in work.iterdir()}
    assert np.isfinite(summary["val_MPJPE"]) and summary["val_MPJPE"] > 0
    assert summary["best_MPJPE"] == min(h["val_MPJPE"] for h in loop.history)  # lower is better
    model, info = load_lifter(work / "last.pth")
    assert (info.model_name, info.num_frames) == ("mixste", 9)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, full[k])
    metrics = evaluate_lift_checkpoint(cfg, work / "last.pth", out_dir=tmp_path / "eval")
    assert metrics["MPJPE"] == pytest.approx(summary["val_MPJPE"], rel=1e-6)
    pred = np.load(tmp_path / "eval" / "predictions_eval.npz")
    assert pred["poses_3d"].shape == (int(metrics["num_frames"]), 17, 3)

    # one epoch, then a resumed second one: the same weights as the uninterrupted run
    cfg2 = _tiny_cfg(tmp_path)
    cfg2.work_dir = str(tmp_path / "work2")
    first = build_lift_trainer(cfg2)
    first.fit(stop_after_epoch=1)
    first.close()
    resumed = build_lift_trainer(cfg2, resume=True)
    resumed.fit()
    resumed.close()
    for k, v in _weights(resumed).items():
        torch.testing.assert_close(v, full[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("model,extra", [("hot_mixste", {"num_tokens": 3, "layer_index": 1}),
                                         ("tpc_mixste", {"num_tokens": 3, "layer_index": 1}),
                                         ("h2ot_mixste", {"depth": 3, "schedule": [[1, 5], [2, 3]],
                                                          "pruner": "tpmo"}),
                                         ("ktpformer", {}), ("hot_ktpformer", {"num_tokens": 3, "layer_index": 1}),
                                         ("starpose_s", {"context_dim": 16, "context_depth": 1, "context_heads": 2,
                                                         "history": 3, "hpim_heads": 2, "hypotheses": 2,
                                                         "sampling_steps": 2, "timesteps": 10})])
def test_pruned_lifters_train(tmp_path, model, extra):
    from slimpose.lifting.train import build_lift_trainer

    cfg = _tiny_cfg(tmp_path, model, **extra)
    cfg.schedule.epochs = 1
    loop = build_lift_trainer(cfg)
    before = _weights(loop)
    summary = loop.fit()
    loop.close()
    assert np.isfinite(summary["train_loss"]) and np.isfinite(summary["val_MPJPE"])
    changed = [k for k, v in _weights(loop).items() if not torch.equal(v, before[k])]
    assert any(k.startswith("blocks.") or "STE" in k or "TTE" in k for k in changed) and len(changed) > 10


def test_seq2frame_task_scores_the_kept_frames():
    from slimpose.lifting.models import create_lifter
    from slimpose.lifting.task import LiftingTask

    model = create_lifter("tpc_mixste", **TINY, num_tokens=3, layer_index=1, noise=0.0).eval()  # no tie noise
    task = LiftingTask(model)
    x, y = torch.randn(2, 9, 17, 2), torch.randn(2, 9, 17, 3)
    pred, target = task.predict_train(x, y)
    kept, index = model.forward_kept(x)
    assert pred.shape == (2, 3, 17, 3) and (index == model.center).any(dim=1).all()
    torch.testing.assert_close(target, y[torch.arange(2)[:, None], index])


def test_an_h36m_config_reads_the_videopose3d_layout(tmp_path):
    """An ``h36m`` config reads files in the VideoPose3D layout (32 joints, world metres; 2-D pixels per camera)
    with the user's camera file in ``data_root``, root-relative in each camera's frame; no camera file is a clear
    error (slimpose ships no Human3.6M calibration)."""
    from slimpose.lifting.cameras import load_h36m_cameras
    from slimpose.lifting.data.clips import load_sequences
    from slimpose.lifting.data.h36m import reduce_h36m_joints, write_videopose3d_npz
    from slimpose.lifting.data.synth3d import synth3d_camera_tables

    cfg = apply_overrides(get_config("mixste_h36m"), [f"data.data_root={tmp_path}"])
    tables = tmp_path / "tables.json"
    tables.write_text(json.dumps(synth3d_camera_tables(3)))  # VideoPose3D's layout
    cams = load_h36m_cameras(tables)
    rng = np.random.default_rng(0)
    pos3d, pos2d = {}, {}
    for subject in ("S1", "S9"):
        world = (rng.normal(scale=0.2, size=(12, 32, 3)) + [0.0, 0.0, 1.0]).astype(np.float32)
        pos3d[subject] = {"Walking 1": world}
        pos2d[subject] = {"Walking 1": [np.asarray(c.project(reduce_h36m_joints(world), pixels=True), np.float32)
                                        for c in cams[subject]]}
    write_videopose3d_npz(tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_cpn_ft_h36m_dbb.npz", pos3d, pos2d)
    with pytest.raises(SlimposeInputError, match="h36m_cameras.json: no camera file"):
        load_sequences(cfg, "train")
    tables.rename(tmp_path / "h36m_cameras.json")
    train, test = load_sequences(cfg, "train"), load_sequences(cfg, "test")
    assert [(s.subject, s.camera_index) for s in train] == [("S1", i) for i in range(4)]
    assert [(s.subject, s.camera_index) for s in test] == [("S9", i) for i in range(4)]
    seq = test[2]
    expected = np.asarray(cams["S9"][2].world_to_camera(reduce_h36m_joints(pos3d["S9"]["Walking 1"])))
    np.testing.assert_allclose(seq.poses_3d, expected - expected[:, :1], atol=1e-5)
    assert np.abs(seq.keypoints_2d[..., 0]).max() <= 1.5  # normalised by the image width


def test_train_on_mpi_inf_3dhp_files(tmp_path):
    """``dataset='3dhp'``: P-STMO's files, pelvis (joint 14) as the root, 3DHP's left / right in the flips, the
    valid test frames only, PCK and AUC."""
    from slimpose.lifting.data.clips import MPI_INF_3DHP_LAYOUT, joint_layout, load_sequences
    from slimpose.lifting.train import build_lift_trainer

    rng = np.random.default_rng(2)

    def item(t):
        return {"data_2d": rng.uniform(0, 2048, (t, 17, 2)), "data_3d": rng.normal(size=(t, 17, 3)) * 300}

    np.savez_compressed(tmp_path / "data_train_3dhp.npz",
                        data={"S1 Seq1": [{"0": item(20), "4": item(20)}, 25], "S2 Seq1": [{"8": item(12)}, 50]})
    valid = np.array([1.0] * 10 + [0.0] * 4 + [1.0] * 6)
    np.savez_compressed(tmp_path / "data_test_3dhp.npz", data={"TS1": {**item(20), "valid": valid}})
    cfg = apply_overrides(get_config("mixste_3dhp"), [
        f"data.data_root={tmp_path}", f"work_dir={tmp_path / 'work'}", "data.batch_size=2", "data.stride=9",
        "data.workers=0", "schedule.epochs=1", "device=cpu", "tensorboard=false", f"model.overrides={TINY!r}"])
    assert joint_layout(cfg) == MPI_INF_3DHP_LAYOUT and cfg.loss.joint_weights == (1.0,) * 17
    assert [s.subject for s in load_sequences(cfg, "train")] == ["S1", "S1", "S2"]
    loop = build_lift_trainer(cfg)
    summary = loop.fit()
    loop.close()
    assert summary["val_num_frames"] == 16 and 0 <= summary["val_PCK"] <= 100 and 0 <= summary["val_AUC"] <= 100
    assert loop.train_loader.dataset.layout == MPI_INF_3DHP_LAYOUT
    pred = np.load(tmp_path / "work" / "predictions_val.npz")
    assert pred["poses_3d"].shape == (16, 17, 3) and np.all(pred["poses_3d"][:, 14] == 0)  # pelvis-relative


def test_review_fixes_best_direction_and_refusals(tmp_path):
    from slimpose.engine.trainer import best_metric
    from slimpose.lifting.evaluator import LiftMetric
    from slimpose.lifting.train import build_lift_trainer

    base = get_config("mixste_h36m")
    for name, mode in (("", "min"), ("P-MPJPE", "min"), ("MPJPE_actionwise", "min"), ("MPJVE", "min"),
                       ("PCK", "max"), ("AUC", "max")):
        cfg = apply_overrides(base, [f"best_metric={name}"]) if name else base
        assert best_metric(cfg, LiftMetric())[1] == mode, name
    for sets, needle in ((["seed=-1"], "seed"), (["optim.lr=nan"], "optim.lr"), (["family=topdown"], "family"),
                         (["data.dataset=3dhp"], "Human3.6M joint order")):
        with pytest.raises(SlimposeInputError, match=needle):
            apply_overrides(base, sets)
    cfg = _tiny_cfg(tmp_path)
    cfg.model.overrides["no_such_option"] = 1
    with pytest.raises(SlimposeInputError, match="model.overrides"):
        build_lift_trainer(cfg)
    assert not (tmp_path / "work").exists()  # refused before anything is written


def test_seq2frame_clips_centre_every_frame():
    seq = _seq(12)
    ds = ClipDataset([seq], num_frames=9, stride=1, flip_aug=False, centre=4)
    assert len(ds) == 12
    first = ds[0]["keypoints_2d"].numpy()
    np.testing.assert_array_equal(first[:5], np.repeat(seq.keypoints_2d[:1], 5, axis=0))  # edge-padded before
    np.testing.assert_array_equal(first[4:], seq.keypoints_2d[:5])
    np.testing.assert_array_equal(ds[11]["poses_3d"].numpy()[4], seq.poses_3d[11])


def test_tpc_flip_test_reuses_the_plain_choice():
    from slimpose.lifting.losses import flip_keypoints, flip_test
    from slimpose.lifting.models import create_lifter
    from slimpose.lifting.models.pruning import gather_frames

    model = create_lifter("tpc_mixste", **TINY, num_tokens=3, layer_index=1, noise=0.0).eval()
    x = torch.randn(2, 9, 17, 2)
    with torch.no_grad():
        kept, index = model.forward_kept(x)
        plain = gather_frames(kept, model.center_position(index).unsqueeze(1))
        expected = (plain + flip_keypoints(model(flip_keypoints(x), index))) * 0.5
        torch.testing.assert_close(flip_test(model, x), expected)


def test_mpjve_never_spans_an_invalid_frame(tmp_path):
    from slimpose.lifting.evaluator import LiftEvaluator

    seq = _seq(10)
    seq.valid = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1], bool)
    pred = seq.poses_3d.copy()
    pred[6:] += 0.5 * (np.arange(17) > 0)[None, :, None]  # another constant offset after the gap
    metrics = LiftEvaluator([seq], tmp_path, flip_test=False).score([pred])
    assert metrics["num_frames"] == 8 and metrics["MPJPE"] > 0
    assert metrics["MPJVE"] == pytest.approx(0.0, abs=1e-3)  # each run is a constant offset: no velocity error


def test_ktpformer_on_3dhp_needs_its_skeleton():
    base = get_config("mixste_3dhp")
    with pytest.raises(SlimposeInputError, match="parents"):
        apply_overrides(base, ["model.name=ktpformer"])
    parents = [16, 15, 1, 2, 3, 1, 5, 6, 14, 8, 9, 14, 11, 12, -1, 14, 1]  # any 3DHP-ordered tree passes
    cfg = apply_overrides(base, ["model.name=ktpformer", f"model.overrides.parents={parents}"])
    assert cfg.model.overrides["parents"] == parents
