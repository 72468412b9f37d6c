"""``slimpose lift``: clip tiling of ``lift_sequence`` (exact, on stand-in models that copy their input),
COCO-17 -> H36M-17, gap filling, reading results files, drawing, and the command end to end on a tiny lifter."""

from __future__ import annotations

import json
import os

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from slimpose.cli.main import main
from slimpose.lifting.checkpoint import load_lifter
from slimpose.lifting.draw import render_frame, snapshot_positions, to_display
from slimpose.lifting.inference import lift_sequence, seq2seq_window_starts
from slimpose.lifting.keypoints import (coco_to_h36m, interpolate_gaps, prepare_keypoints,
                                        read_video_keypoints)
from slimpose.lifting.models import SequenceInput, create_lifter
from slimpose.utils.io import SlimposeInputError

J = 17
TINY = dict(num_frames=9, dim=16, depth=1)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


class CopyLifter(nn.Module):
    """A stand-in lifter: returns (x, y) of its input and, as z, each frame's position in its clip (seq2seq);
    seq2frame: one frame, the clip's frame ``pick`` (its centre by default). Records the clips it sees."""

    def __init__(self, num_frames: int, seq2frame: bool = False, pick: int | None = None) -> None:
        super().__init__()
        self.input_spec = SequenceInput(num_frames, J)
        self.center = (num_frames - 1) // 2
        self.seq2frame = seq2frame
        self.pick = self.center if pick is None else pick
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (self.input_spec.num_frames, J, 2)
        self.seen.append(x.clone())
        pos = torch.arange(x.shape[1], dtype=x.dtype).view(1, -1, 1, 1).expand(x.shape[0], -1, J, 1)
        out = torch.cat([x, pos], dim=-1)
        return out[:, self.pick:self.pick + 1] if self.seq2frame else out


def _sequence(t: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (t, J, 2)).astype(np.float32)


# ------------------------------------------------------------------------------------------------ tiling


@pytest.mark.parametrize("t", [1, 4, 9, 18, 23])  # F = 9: T < F, T == F, T = 2F, T = 2F + 5
@pytest.mark.parametrize("flip", [False, True])
def test_seq2seq_tiling_is_exact(t, flip):
    f = 9
    model = CopyLifter(f)
    x = _sequence(t)
    out = lift_sequence(model, x, flip_test=flip, batch_size=2)
    assert out.shape == (t, J, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(out[..., :2], x)
    # the position within the clip that gave each frame: later clips overwrite
    starts = seq2seq_window_starts(t, f)
    expected = np.empty(t)
    for s in starts:
        expected[s:s + f] = np.arange(min(f, t - s))
    np.testing.assert_array_equal(out[..., 2], np.broadcast_to(expected[:, None], (t, J)))
    if t < f:  # one clip, right-padded by repeating the last frame
        clip = model.seen[1][0].numpy()  # seen[0]: the probe for the output length
        np.testing.assert_array_equal(clip[:t], x)
        np.testing.assert_array_equal(clip[t:], np.repeat(x[-1:], f - t, axis=0))


def test_window_starts():
    assert seq2seq_window_starts(4, 9) == [0]
    assert seq2seq_window_starts(9, 9) == [0]
    assert seq2seq_window_starts(18, 9) == [0, 9]
    assert seq2seq_window_starts(23, 9) == [0, 9, 14]
    # frames 9..13 come from the clip at 9, 14..22 from the final clip at 14
    out = lift_sequence(CopyLifter(9), _sequence(23))
    assert out[13, 0, 2] == 4 and out[14, 0, 2] == 0 and out[22, 0, 2] == 8


@pytest.mark.parametrize("t", [1, 4, 9, 23])
@pytest.mark.parametrize("pick", [None, 0, 8])
def test_seq2frame_one_centred_clip_per_frame(t, pick):
    f = 9
    model = CopyLifter(f, seq2frame=True, pick=pick)
    x = _sequence(t, seed=1)
    out = lift_sequence(model, x, batch_size=4)
    assert len(model.seen) == 1 + -(-t // 4)  # the probe for the output length, then the batches
    c = model.center
    p = c if pick is None else pick
    src = np.clip(np.arange(t) - c + p, 0, t - 1)  # edge padding on both sides
    np.testing.assert_array_equal(out[..., :2], x[src])
    np.testing.assert_array_equal(out[..., 2], np.full((t, J), p, dtype=np.float32))
    np.testing.assert_array_equal(lift_sequence(model, x, flip_test=True, seq2frame=True), out)


def test_real_lifters_and_modes():
    torch.manual_seed(0)
    model = create_lifter("mixste", **TINY).train()
    x = _sequence(23, seed=2)
    out = lift_sequence(model, x)
    assert model.training  # restored
    model.eval()
    with torch.no_grad():
        first = model(torch.from_numpy(x[None, :9]))[0].numpy()
        last = model(torch.from_numpy(x[None, -9:]))[0].numpy()
    np.testing.assert_allclose(out[:9], first, atol=1e-6)
    np.testing.assert_allclose(out[-9:], last, atol=1e-6)
    tpc = create_lifter("tpc_mixste", num_frames=9, dim=16, depth=2, num_tokens=3, layer_index=1)
    assert lift_sequence(tpc, x[:5], flip_test=True).shape == (5, J, 3)
    with pytest.raises(ValueError, match="NaN"):
        bad = x.copy()
        bad[3, 2, 0] = np.nan
        lift_sequence(model, bad)
    with pytest.raises(ValueError, match=r"\(T >= 1, 17, 2\)"):
        lift_sequence(model, x[:0])


# ------------------------------------------------------------------------------------------------ keypoints


def _coco_pose() -> tuple[np.ndarray, np.ndarray]:
    kp = np.stack([np.arange(17) * 10.0, 100.0 + np.arange(17) ** 2], axis=1)[None]  # distinct joints
    sc = (0.5 + np.arange(17) / 100.0)[None]
    return kp, sc


def test_coco_to_h36m_on_a_hand_made_pose():
    kp, sc = _coco_pose()
    h, hs = coco_to_h36m(kp, sc)
    k = kp[0]
    pelvis, thorax = (k[11] + k[12]) / 2, (k[5] + k[6]) / 2
    expected = [pelvis, k[12], k[14], k[16], k[11], k[13], k[15], (pelvis + thorax) / 2, thorax, k[0],
                (k[1] + k[2]) / 2, k[5], k[7], k[9], k[6], k[8], k[10]]
    np.testing.assert_allclose(h[0], np.asarray(expected), rtol=0, atol=1e-12)
    s = sc[0]
    np.testing.assert_allclose(hs[0, [0, 7, 8, 10]], [s[11], s[5], s[5], s[1]])  # derived: the smallest source
    np.testing.assert_allclose(hs[0, [1, 9, 13, 16]], [s[12], s[0], s[9], s[10]])


def test_interpolate_gaps_linear_with_held_edges():
    v = np.zeros((6, 2, 1))
    v[:, 0, 0] = [0, 1, 2, 3, 4, 5]
    v[:, 1, 0] = [7, 7, 10, 20, 30, 40]
    ok = np.ones((6, 2), bool)
    ok[[2, 3], 0] = False            # interior gap of joint 0
    ok[[0, 1], 1] = ok[5, 1] = False  # leading and trailing gaps of joint 1
    v[2:4, 0, 0] = -99
    out, filled = interpolate_gaps(v, ok)
    np.testing.assert_allclose(out[:, 0, 0], [0, 1, 2, 3, 4, 5])
    np.testing.assert_allclose(out[:, 1, 0], [10, 10, 10, 20, 30, 30])
    np.testing.assert_array_equal(filled, ~ok)
    with pytest.raises(ValueError, match="no valid frame"):
        interpolate_gaps(v, np.zeros((6, 2), bool))


def _record(image_id: int, kpts: np.ndarray, scores: np.ndarray, score: float = 0.9) -> dict:
    flat = np.concatenate([kpts, scores[:, None]], axis=1).reshape(-1)
    return {"image_id": image_id, "category_id": 1, "keypoints": flat.tolist(), "score": score}


def _walk(t: int) -> np.ndarray:
    """(T, 17, 2) COCO pixel keypoints moving linearly in time (inside a 64 x 48 image)."""
    base = np.stack([8 + np.arange(17) * 2.0, 6 + np.arange(17) * 2.0], axis=1)
    return base[None] + np.arange(t)[:, None, None] * np.array([0.5, 0.25])


def test_missing_frame_and_low_score_joint_are_interpolated(tmp_path):
    kp = _walk(8)
    sc = np.full((8, 17), 0.9)
    sc[5, 11] = 0.1  # a low-score left hip
    records = [_record(t + 10, kp[t], sc[t]) for t in range(8) if t != 3]  # frame 13 absent
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    video = read_video_keypoints(path)
    np.testing.assert_array_equal(video.frame_index, np.arange(10, 18))
    np.testing.assert_array_equal(video.found, np.arange(8) != 3)
    lk = prepare_keypoints(video, kpt_thr=0.3)
    exact, _ = coco_to_h36m(kp, sc)  # the motion is linear: interpolation recovers it
    np.testing.assert_allclose(lk.keypoints, exact, atol=1e-9)
    assert lk.interpolated[3].all() and lk.interpolated.sum() == 17 + 3
    assert set(np.flatnonzero(lk.interpolated[5])) == {0, 4, 7}  # root, left hip, spine (all use the left hip)
    assert lk.scores[3].max() == 0 and lk.scores[5, 4] == pytest.approx(0.1)


def test_the_best_person_of_each_frame(tmp_path):
    kp = _walk(3)
    sc = np.full(17, 0.9)
    records = []
    for t in range(3):
        records.append(_record(t, kp[t] + 30, sc, score=0.4))
        records.append(_record(t, kp[t], sc, score=0.8 + t * 0.01))
        records.append(_record(t, kp[t] - 30, sc, score=0.2))
    path = tmp_path / "r.json"
    path.write_text(json.dumps(records))
    video = read_video_keypoints(path)
    np.testing.assert_allclose(video.keypoints, kp)
    np.testing.assert_array_equal(video.num_people, [3, 3, 3])


def test_keypoint_file_errors(tmp_path):
    path = tmp_path / "r.json"
    for text, match in [("[]", "no detections"), ("{", "malformed JSON"), ('{"a": 1}', "JSON list"),
                        (json.dumps([{"image_id": 0, "category_id": 1, "keypoints": [1.0] * 78, "score": 1.0}]),
                         "COCO-17"),
                        ('[{"image_id": 0, "category_id": 1, "keypoints": [NaN' + ", 1" * 50 + '], "score": 1}]',
                         "NaN")]:
        path.write_text(text)
        with pytest.raises(SlimposeInputError, match=match) as e:
            read_video_keypoints(path)
        assert str(path) in str(e.value)
    path.write_text(json.dumps([_record(0, _walk(1)[0], np.full(17, 0.1))]))
    with pytest.raises(SlimposeInputError, match="kpt-thr"):
        prepare_keypoints(read_video_keypoints(path))


# ------------------------------------------------------------------------------------------------ drawing


def test_drawing_conventions():
    pose = np.zeros((J, 3))
    pose[:, 1] = -np.arange(J)  # y down in the camera: negative y is up
    pose[:, 2] = 5.0
    d = to_display(pose + 100)  # root-relative, z up, depth on y
    assert np.all(d[:, 2] == np.arange(J)) and np.all(d[:, 1] == 0) and np.all(d[0] == 0)
    img = render_frame(None, np.full((J, 2), 10.0), pose * 100, image_size=(64, 48))
    assert img.dtype == np.uint8 and img.shape == (360, 480 + 360, 3)
    assert snapshot_positions(20, 4) == [0, 6, 13, 19] and snapshot_positions(2, 4) == [0, 1]


# ------------------------------------------------------------------------------------------------ command


@pytest.fixture
def lift_inputs(tmp_path):
    torch.manual_seed(0)
    model = create_lifter("mixste", **TINY)
    ckpt = tmp_path / "lifter.pth"
    torch.save({"model": model.state_dict(), "model_name": "mixste",
                "config": {"family": "lifting", "model": {"name": "mixste", "overrides": TINY}}}, ckpt)
    t = 20
    kp = _walk(t)
    sc = np.full((t, 17), 0.9)
    sc[7, 9] = 0.05
    records = [_record(i, kp[i], sc[i]) for i in range(t) if i != 4]
    results = tmp_path / "results.json"
    results.write_text(json.dumps(records))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (64, 48))
    assert writer.isOpened()
    for i in range(t):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    writer.release()
    return ckpt, results, video


def test_lift_command_end_to_end(tmp_path, lift_inputs, capsys):
    ckpt, results, video = lift_inputs
    out = tmp_path / "out"
    args = ["lift", str(results), "--checkpoint", str(ckpt), "--out", str(out), "--video", str(video)]
    assert main(args) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("lift: 20 frames")
    with np.load(out / "poses_3d.npz") as f:
        data = {k: f[k] for k in f.files}
    assert data["poses_3d"].shape == (20, J, 3) and data["poses_3d"].dtype == np.float32
    assert data["keypoints_2d"].shape == (20, J, 2) and data["interpolated"].shape == (20, J)
    np.testing.assert_array_equal(data["frame_index"], np.arange(20))
    assert data["interpolated"][4].all() and data["interpolated"][7, 13] and data["interpolated"].sum() == 18
    np.testing.assert_allclose(data["keypoints_2d"], coco_to_h36m(_walk(20), np.ones((20, 17)))[0], atol=1e-4)
    # millimetres, root-relative: the lifter's metres x 1000 with the root subtracted
    from slimpose.lifting.cameras import normalize_screen_coordinates

    model, _ = load_lifter(ckpt)
    raw = lift_sequence(model, normalize_screen_coordinates(data["keypoints_2d"], 64, 48), flip_test=True)
    np.testing.assert_allclose(data["poses_3d"], (raw - raw[:, :1]) * 1000, atol=1e-3)
    assert np.all(data["poses_3d"][:, 0] == 0)
    cap = cv2.VideoCapture(str(out / "lift.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 20
    cap.release()
    pngs = sorted(p.name for p in out.glob("lift_*.png"))
    assert pngs == ["lift_0000.png", "lift_0006.png", "lift_0013.png", "lift_0019.png"]
    assert not [p for p in os.listdir(out) if p.startswith(".")]  # no temporary files left

    # a second run without --overwrite is refused and touches nothing
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()} == before
    # --overwrite with other snapshots: the old ones go
    assert main(args + ["--overwrite", "--png", "2", "--no-video-out", "--no-flip-test"]) == 0
    assert sorted(p.name for p in out.glob("lift_*.png")) == ["lift_0000.png", "lift_0019.png"]


def test_lift_without_video_and_errors(tmp_path, lift_inputs, capsys):
    ckpt, results, video = lift_inputs
    out = tmp_path / "blank"
    base = ["lift", str(results), "--checkpoint", str(ckpt), "--out", str(out)]
    assert main(base + ["--image-size", "64,48", "--png", "1", "--no-video-out"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["lift_0000.png", "poses_3d.npz"]
    capsys.readouterr()

    def fails(args, *needles):
        assert main(args) == 2
        err = capsys.readouterr().err
        for needle in needles:
            assert needle in err, err

    fails(base[:-1] + [str(tmp_path / "o2")], "--image-size", str(results))          # no image size
    fails(base[:-1] + [str(tmp_path / "o2"), "--video", str(video), "--image-size", "640,480"], "64x48")
    two_d = tmp_path / "pose2d.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "model_name": "simcc_mobilenetv2",
                "config": {"model": {"name": "simcc_mobilenetv2"}}}, two_d)
    fails(["lift", str(results), "--checkpoint", str(two_d), "--out", str(tmp_path / "o3"),
           "--image-size", "64,48"], "not a lifting checkpoint", str(two_d))
    bad = tmp_path / "nan.json"
    bad.write_text('[{"image_id": 0, "category_id": 1, "keypoints": [NaN' + ", 1" * 50 + '], "score": 1}]')
    fails(["lift", str(bad), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o4"), "--image-size", "64,48"],
          "NaN", str(bad))
    assert not (tmp_path / "o3").exists() and not (tmp_path / "o4").exists()


def test_lift_refuses_a_3dhp_lifter_and_negative_frames(tmp_path, lift_inputs, capsys):
    ckpt, results, _ = lift_inputs
    sd = torch.load(ckpt, weights_only=True)
    sd["config"]["data"] = {"dataset": "3dhp"}
    hp = tmp_path / "hp.pth"
    torch.save(sd, hp)
    assert main(["lift", str(results), "--checkpoint", str(hp), "--out", str(tmp_path / "o5"),
                 "--image-size", "64,48"]) == 2
    assert "MPI-INF-3DHP" in capsys.readouterr().err and not (tmp_path / "o5").exists()
    neg = tmp_path / "neg.json"
    neg.write_text(json.dumps([_record(-3, _walk(1)[0], np.full(17, 0.9)), _record(2, _walk(1)[0], np.full(17, 0.9))]))
    assert main(["lift", str(neg), "--checkpoint", str(ckpt), "--out", str(tmp_path / "o6"),
                 "--image-size", "64,48"]) == 2
    assert "image_id -3" in capsys.readouterr().err and not (tmp_path / "o6").exists()


def test_export_lifting_checkpoints(tmp_path, capsys):
    """``slimpose export`` on a lifter: ONNX (checked with onnxruntime) and safetensors (read back by
    load_lifter); the uniform TPS pruner with TRI exports; a lifter that chooses its frames from the input
    (TPC) is refused for ONNX with exit 2."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    for name, kw in (("mixste", TINY), ("ktpformer", dict(num_frames=9, dim=16, depth=1, num_heads=2)),
                     ("h2ot_mixste", dict(TINY, depth=3, schedule=[[1, 5], [2, 3]], pruner="tps", recovery="tri")),
                     ("hot_mixste", dict(TINY, depth=2, num_tokens=3, layer_index=1))):
        model = create_lifter(name, **kw)
        ckpt = tmp_path / f"{name}.pth"
        torch.save({"model": model.state_dict(), "model_name": name,
                    "config": {"family": "lifting", "model": {"name": name, "overrides": kw}}}, ckpt)
        onnx_path = tmp_path / f"{name}.onnx"
        rc = main(["export", str(ckpt), "--format", "onnx", "--out", str(onnx_path), "--json"])
        out = capsys.readouterr()
        if name == "hot_mixste":
            assert rc == 2 and "TPC" in out.err and not onnx_path.exists()
        else:
            assert rc == 0, out.err
            report = json.loads(out.out)
            assert report["max_abs_diff"]["output"] < 1e-4 and report["input_size"] == [9, 17]
        st = tmp_path / f"{name}.safetensors"
        assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(st)]) == 0
        back, info = load_lifter(st)
        assert info.model_name == name
        for k, v in model.state_dict().items():
            torch.testing.assert_close(back.state_dict()[k], v)
    capsys.readouterr()
    assert main(["export", str(tmp_path / "mixste.pth"), "--format", "onnx", "--decode-in-graph"]) == 2
