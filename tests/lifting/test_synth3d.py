"""Synthetic motion for 3-D lifting: the body's kinematics, smooth plausible motions, the cameras, the
detector-like 2-D, the VideoPose3D files and ``slimpose data synth3d``."""

import json
import zipfile

import numpy as np
import pytest

from slimpose.cli.main import main
from slimpose.data import synth_body as B
from slimpose.lifting.cameras import (H36M_CAMERA_IDS, H36M_IMAGE_SIZES, image_coordinates, load_h36m_cameras,
                                      normalize_screen_coordinates, project_to_2d, world_to_camera)
from slimpose.lifting.data import (H36M_PARENTS, H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, load_videopose3d,
                                   read_videopose3d_2d, read_videopose3d_3d)
from slimpose.lifting.data.synth3d import (MOTION_KINDS, SYNTH3D_ACTIONS, SYNTH3D_FILES, SYNTH3D_NOISE_PX,
                                           detector_noise, generate_synth3d, h36m_joints_body, load_synth3d_masks,
                                           pose_at, synth3d_cameras, synth3d_sequence, synth_motion)
from slimpose.utils.io import SlimposeInputError

FPS = 50.0
BONES = [(j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0]


@pytest.fixture(scope="module")
def motions():
    """One 243-frame motion per kind (seeded)."""
    return {kind: synth_motion(kind, 243, np.random.default_rng(100 + i)) for i, kind in enumerate(MOTION_KINDS)}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Seven sequences (every subject, every kind) of 120 frames, seed 3."""
    out = tmp_path_factory.mktemp("synth3d")
    return out, generate_synth3d(out, 7, 120, 3)


# --------------------------------------------------------------------------------------------------
# the body

def test_vectorised_kinematics_is_pose_body_and_places_the_h36m_joints():
    rng = np.random.default_rng(0)
    shape = B.BodyShape.sample(rng)
    poses = [B.sample_pose(rng) for _ in range(12)]
    fields = [f for f in B.PoseAngles.__dataclass_fields__ if f != "pose_class"]
    series = B.PoseAngles("mixed", **{f: np.array([getattr(p, f) for p in poses]) for f in fields})
    joints = h36m_joints_body(shape, series)
    # H36M joint -> the body point it is (the head points 9 and 10 are fixed in the head frame instead)
    same = {0: B.PELVIS, 1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 7: B.WAIST, 8: B.NECK_BASE,
            11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10}
    for i, pose in enumerate(poses):
        body = B.pose_body(shape, pose_at(series, i))
        assert pose_at(series, i).elbow.tolist() == pose.elbow.tolist()
        for j, point in same.items():
            np.testing.assert_allclose(joints[i, j], body.points[point], atol=1e-12)
        # the root is the midpoint of the hips; neck/nose and head sit on the head, above the thorax
        np.testing.assert_allclose(joints[i, 0], (joints[i, 1] + joints[i, 4]) / 2, atol=1e-12)
        head_up = body.dirs[B.HEAD_UP]
        assert (joints[i, 10] - body.points[B.HEAD_CENTER]) @ head_up > 0.5 * shape.head_radius
        assert 0 < (joints[i, 9] - joints[i, 8]) @ head_up < (joints[i, 10] - joints[i, 8]) @ head_up
    bones = np.linalg.norm(joints[:, [j for j, _ in BONES]] - joints[:, [p for _, p in BONES]], axis=-1)
    assert bones.std(axis=0).max() < 1e-12                 # rigid over 12 unrelated poses
    assert 0.08 < bones[0, 8] < 0.16 and 0.08 < bones[0, 9] < 0.16   # thorax-neck, neck-head (H36M ~0.12)


# --------------------------------------------------------------------------------------------------
# motions

def test_one_243_frame_sequence_has_the_h36m_shapes():
    cams = synth3d_cameras(0)
    seq = synth3d_sequence(0, 0, 243, cams)
    assert (seq.subject, seq.action, seq.motion.kind) == ("S1", "Walking", "walking")
    assert seq.motion.positions_3d.shape == (243, 17, 3)
    assert len(seq.keypoints_2d) == len(seq.keypoints_2d_gt) == 4 and seq.dropped.shape == (4, 243, 17)
    for cam_id, gt, noisy in zip(H36M_CAMERA_IDS, seq.keypoints_2d_gt, seq.keypoints_2d):
        assert gt.shape == noisy.shape == (243, 17, 2) and np.isfinite(noisy).all()
        w, h = H36M_IMAGE_SIZES[cam_id]
        inside = (gt[..., 0] >= 0) & (gt[..., 0] < w) & (gt[..., 1] >= 0) & (gt[..., 1] < h)
        assert inside.mean() > 0.97                        # the subject stays in view
        height = gt[..., 1].max(axis=1) - gt[..., 1].min(axis=1)
        assert 150 < np.median(height) < 800               # a person of a few hundred pixels


def test_very_short_sequences_work():
    cams = synth3d_cameras(0)
    for frames in (1, 2, 9):
        for index in range(len(MOTION_KINDS)):
            seq = synth3d_sequence(index, 0, frames, cams)
            assert seq.motion.positions_3d.shape == (frames, 17, 3) and np.isfinite(seq.motion.positions_3d).all()
            assert all(np.isfinite(k).all() and k.shape == (frames, 17, 2) for k in seq.keypoints_2d)
            assert not seq.dropped.all(axis=1).any()       # never a joint lost for the whole sequence


def test_motions_are_smooth_rigid_and_stand_on_the_floor(motions):
    for kind, m in motions.items():
        x = m.positions_3d
        assert np.isfinite(x).all()
        vel, acc = np.diff(x, axis=0), np.diff(x, 2, axis=0)
        assert np.linalg.norm(vel, axis=-1).max() < 0.16, kind              # < 8 m/s for any joint
        ratio = np.sqrt((acc ** 2).sum(-1).mean() / (vel ** 2).sum(-1).mean())
        assert ratio < 0.5, (kind, ratio)
        # 1 cm of white noise on the same joints fails the bound: it tells smooth from jittery
        rough = x + np.random.default_rng(0).normal(0, 0.01, x.shape)
        assert np.sqrt((np.diff(rough, 2, axis=0) ** 2).sum(-1).mean()
                       / (np.diff(rough, axis=0) ** 2).sum(-1).mean()) > 0.5
        bones = np.linalg.norm(x[:, [j for j, _ in BONES]] - x[:, [p for _, p in BONES]], axis=-1)
        assert bones.std(axis=0).max() < 1e-9, kind
        feet = x[:, [3, 6], 2].min(axis=1)                 # the lower ankle: on the floor, never below it
        foot_height = 0.08 * m.shape.height_scale          # (a soft minimum of 1 cm: up to 7 mm above it)
        assert np.all(feet >= foot_height - 1e-9) and np.all(feet < foot_height + 0.0075), kind
        assert np.all(x[..., 2] > 0.0), kind
        assert 0.3 < x[:, 0, 2].min() and x[:, 0, 2].max() < 1.3, kind      # pelvis height, metres


def test_each_kind_does_what_it_says(motions):
    walk = motions["walking"].positions_3d
    step = np.linalg.norm(np.diff(walk[:, 0, :2], axis=0), axis=-1) * FPS
    assert 0.6 < step.mean() < 1.6                         # walking speed, m/s
    assert np.hypot(walk[:, 0, 0], walk[:, 0, 1]).max() < 2.2   # the path turns back inside the capture area
    knee = motions["walking"].angles.knee
    assert knee.max() - knee.min() > 40                    # swing-phase knee flexion
    corr = np.corrcoef(motions["walking"].angles.hip_flex[:, 0], motions["walking"].angles.shoulder_flex[:, 0])[0, 1]
    assert corr < -0.5                                     # the arm swings against the leg of its side

    turn = motions["turning"]
    assert np.ptp(np.unwrap(turn.yaw)) > np.deg2rad(90)

    reach = motions["reaching"].positions_3d
    assert np.ptp(reach[:, [13, 16], 2], axis=0).max() > 0.3          # a wrist raised by > 30 cm
    assert np.ptp(motions["reaching"].angles.shoulder_flex, axis=0).max() > 45
    assert np.ptp(motions["reaching"].angles.spine_flex) > 4                # the torso leans with the arm

    sit = motions["sitting"]
    pelvis = sit.positions_3d[:, 0, 2]
    assert pelvis.max() - pelvis.min() > 0.25                           # sits down: the pelvis descends
    assert sit.angles.hip_flex.max() > 75 and sit.angles.knee.max() > 75
    feet = sit.positions_3d[:, [3, 6], :2]
    assert np.ptp(feet, axis=0).max() < 0.15                            # ... over feet that stay put,
    assert np.linalg.norm(np.ptp(sit.positions_3d[:, 0, :2], axis=0)) > 0.3   # moving back over the seat

    rnd = motions["random"].angles
    for name, (lo, hi) in B.JOINT_LIMITS.items():
        vals = np.asarray(getattr(rnd, name))
        assert vals.min() >= lo and vals.max() <= hi
    assert np.ptp(rnd.shoulder_abd) > 30 and np.ptp(rnd.spine_twist) > 10


def test_sequences_are_deterministic_per_seed_and_index():
    cams = synth3d_cameras(5)
    a, b = synth3d_sequence(3, 5, 60, cams), synth3d_sequence(3, 5, 60, cams)
    np.testing.assert_array_equal(a.motion.positions_3d, b.motion.positions_3d)
    for x, y in zip(a.keypoints_2d, b.keypoints_2d):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.dropped, b.dropped)
    other = synth3d_sequence(3, 6, 60, synth3d_cameras(6))
    assert not np.allclose(a.motion.positions_3d, other.motion.positions_3d)
    assert synth3d_cameras(5)["S1"] == cams["S1"] and synth3d_cameras(6)["S1"] != cams["S1"]
    # a subject's later takes of a kind are numbered as in Human3.6M
    assert synth3d_sequence(35, 5, 2, cams).action == "Walking 1"
    assert synth3d_sequence(70, 5, 2, cams).action == "Walking 2"


def test_detector_noise_level_and_dropped_joints_hold_the_last_report():
    rng = np.random.default_rng(1)
    clean = [np.cumsum(rng.normal(0, 1, (400, 17, 2)), axis=0) + 500 for _ in range(4)]
    noisy, dropped = detector_noise(clean, np.random.default_rng(2), noise_scale=2.0, drop_rate=0.03)
    assert 0.015 < dropped.mean() < 0.045
    assert dropped[..., 13].mean() > dropped[..., 0].mean()            # wrists are lost more often than the root
    err = np.stack(noisy) - np.stack(clean)
    for j in range(17):
        std = err[..., j, :][~dropped[..., j]].std()
        assert abs(std / (2.0 * SYNTH3D_NOISE_PX[j]) - 1) < 0.15, j
    kept = err[~dropped]                                               # (N, 2) the reported frames
    lag1 = np.corrcoef(err[:, 1:][~dropped[:, 1:] & ~dropped[:, :-1]][:, 0],
                       err[:, :-1][~dropped[:, 1:] & ~dropped[:, :-1]][:, 0])[0, 1]
    assert 0.4 < lag1 < 0.8 and kept.shape[0] > 0                     # temporally correlated a little
    c, t, j = np.nonzero(dropped)
    arr = np.stack(noisy)
    later = t > 0
    np.testing.assert_array_equal(arr[c[later], t[later], j[later]], arr[c[later], t[later] - 1, j[later]])
    quiet, none = detector_noise(clean, np.random.default_rng(2), noise_scale=0.0, drop_rate=0.0)
    assert not none.any() and np.allclose(np.stack(quiet), np.stack(clean))


# --------------------------------------------------------------------------------------------------
# files

def test_files_are_byte_identical_per_seed_and_refused_when_present(written, tmp_path):
    out, paths = written
    assert {p.name for p in paths.values()} == set(SYNTH3D_FILES.values())
    again = generate_synth3d(tmp_path / "again", 7, 120, 3)
    for role in paths:
        assert paths[role].read_bytes() == again[role].read_bytes(), role
    with zipfile.ZipFile(paths["data_3d"]) as zf:                     # no write-time stamps in the archive
        assert [i.date_time for i in zf.infolist()] == [(1980, 1, 1, 0, 0, 0)]
    other = generate_synth3d(tmp_path / "other", 7, 120, 4)
    assert other["data_3d"].read_bytes() != paths["data_3d"].read_bytes()
    with pytest.raises(SlimposeInputError, match="already exists"):
        generate_synth3d(tmp_path / "again", 7, 120, 3)
    generate_synth3d(tmp_path / "again", 2, 30, 3, overwrite=True)
    assert len(read_videopose3d_3d(tmp_path / "again" / "data_3d_h36m.npz")) == 2
    with pytest.raises(SlimposeInputError, match="sequences"):
        generate_synth3d(tmp_path / "bad", 0, 30, 3)


def test_2d_files_project_the_3d_with_the_written_cameras(written):
    out, paths = written
    cams = load_h36m_cameras(paths["cameras"])
    pos3d = read_videopose3d_3d(paths["data_3d"])
    gt, gt_meta = read_videopose3d_2d(paths["data_2d_gt"])
    det, det_meta = read_videopose3d_2d(paths["data_2d_noisy"])
    masks = load_synth3d_masks(paths["meta"])
    assert gt_meta.layout_name is None and det_meta.layout_name == "h36m" and det_meta.num_joints == 17
    errs, drops = [], []
    for subject, actions in pos3d.items():
        for action, world in actions.items():
            assert world.shape == (120, 17, 3) and world.dtype == np.float32
            for c, cam in enumerate(cams[subject]):
                proj = image_coordinates(project_to_2d(world_to_camera(world, cam.orientation, cam.translation),
                                                       cam.intrinsic), *cam.image_size)
                assert np.abs(gt[subject][action][c] - proj).max() < 0.01           # noise-free projection
                mask = masks[subject][action][c]
                noisy = det[subject][action][c]
                errs.append((noisy - proj)[~mask])
                drops.append(mask.mean())
                t, j = np.nonzero(mask[1:])
                np.testing.assert_array_equal(noisy[1:][t, j], noisy[t, j])         # held from the frame before
    err = np.concatenate(errs)
    expected = np.sqrt(np.mean(np.square(SYNTH3D_NOISE_PX)))
    assert abs(err.std() / expected - 1) < 0.15                                     # the configured noise
    assert 0.005 < np.mean(drops) < 0.04                                            # about drop_rate = 0.02


def test_files_load_as_sequence3d_with_the_official_split(written):
    out, paths = written
    cams = load_h36m_cameras(paths["cameras"])
    meta = json.loads(paths["meta"].read_text())
    assert [r["kind"] for r in meta["records"]][:5] == list(MOTION_KINDS)
    train = load_videopose3d(paths["data_3d"], paths["data_2d_noisy"], cams, split="train")
    test = load_videopose3d(paths["data_3d"], paths["data_2d_gt"], cams, split="test")
    assert {s.subject for s in train} == set(H36M_TRAIN_SUBJECTS)
    assert {s.subject for s in test} == set(H36M_TEST_SUBJECTS)
    assert len(train) == 5 * 4 and len(test) == 2 * 4
    names = {(r["subject"], r["action"]) for r in meta["records"]}
    assert {(s.subject, s.action) for s in train + test} == names
    assert {r["action"] for r in meta["records"]} == set(SYNTH3D_ACTIONS.values())
    gt2d, _ = read_videopose3d_2d(paths["data_2d_gt"])
    for s in test:
        assert s.keypoints_2d.shape == (120, 17, 2) and s.poses_3d.shape == (120, 17, 3) and s.fps == 50.0
        assert np.abs(s.poses_3d[:, 0]).max() == 0 and s.camera is cams[s.subject][s.camera_index]
        assert s.root_trajectory[:, 2].min() > 3.0                   # metres in front of the camera
        np.testing.assert_allclose(s.keypoints_2d, normalize_screen_coordinates(
            gt2d[s.subject][s.action][s.camera_index], *s.image_size), atol=1e-6)
    walking = load_videopose3d(paths["data_3d"], paths["data_2d_gt"], cams, actions=["Walking"])
    assert {s.action for s in walking} == {"Walking"}


def test_cli_writes_the_files_and_refuses_existing_output(tmp_path, capsys):
    out = tmp_path / "cli"
    argv = ["data", "synth3d", "--out", str(out), "--sequences", "2", "--frames", "30", "--seed", "1",
            "--no-progress"]
    assert main(argv) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("wrote 2 sequences") and "data_3d_h36m.npz" in last
    first = (out / "data_2d_h36m_synth_noisy.npz").read_bytes()
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(argv + ["--overwrite"]) == 0
    assert (out / "data_2d_h36m_synth_noisy.npz").read_bytes() == first
    pos = read_videopose3d_3d(out / "data_3d_h36m.npz")
    assert sorted(pos) == ["S1", "S9"] and pos["S9"]["WalkTogether"].shape == (30, 17, 3)
    assert main(["data", "synth3d", "--out", str(tmp_path / "neg"), "--sequences", "1", "--seed", "-1"]) == 2
