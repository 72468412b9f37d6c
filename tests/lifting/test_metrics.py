"""3-D lifting metrics (VideoPose3D / HoT / MPI-INF-3DHP definitions) on hand-made poses, and the
``slimpose evaluate3d`` command end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from slimpose.cli.evaluate3d import load_poses_npz
from slimpose.cli.main import main
from slimpose.lifting.metrics import (
    H36M_ACTIONS,
    MPI_INF_3DHP_AUC_THRESHOLDS,
    MPI_INF_3DHP_PCK_JOINTS,
    action_group,
    actionwise,
    auc3d,
    evaluate_3dhp,
    evaluate_poses_3d,
    mpjpe,
    mpjve,
    n_mpjpe,
    p_mpjpe,
    pck3d,
    procrustes_align,
    root_relative,
)
from slimpose.utils.io import SlimposeInputError


def _rotation(axis, angle: float) -> np.ndarray:
    """Rodrigues: the proper rotation by ``angle`` about ``axis``."""
    k = np.asarray(axis, dtype=np.float64)
    k = k / np.linalg.norm(k)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx


def _body(frames: int = 4, joints: int = 17, seed: int = 0) -> np.ndarray:
    """Non-planar (chiral) point sets of human size, in mm."""
    return np.random.default_rng(seed).normal(0.0, 300.0, size=(frames, joints, 3))


# ------------------------------------------------------------------------------------------- MPJPE
def test_mpjpe_of_a_hand_made_two_joint_example():
    gt = np.array([[[0.0, 0, 0], [1, 0, 0]], [[0, 0, 0], [0, 0, 0]]])
    pred = np.array([[[3.0, 4, 0], [1, 0, 0]], [[0, 0, 12], [0, 0, 0]]])  # errors 5, 0 | 12, 0
    assert mpjpe(pred, gt) == pytest.approx(17 / 4)
    np.testing.assert_allclose(mpjpe(pred, gt, per_frame=True), [2.5, 6.0])


def test_root_relative_zeroes_the_root():
    poses = _body(3)
    rel = root_relative(poses + np.array([1000.0, -50, 4000]), root=0)
    np.testing.assert_allclose(rel[:, 0], 0.0)
    np.testing.assert_allclose(rel, poses - poses[:, :1])
    np.testing.assert_allclose(root_relative(poses, root=14)[:, 14], 0.0)
    with pytest.raises(ValueError, match="root"):
        root_relative(poses, root=17)


def test_bad_shapes_and_non_finite_values_raise():
    gt = _body(2)
    with pytest.raises(ValueError, match=r"\(N, J, 3\)"):
        mpjpe(gt[..., :2], gt[..., :2])
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(gt[:, :16], gt)
    bad = gt.copy()
    bad[1, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        p_mpjpe(bad, gt)
    bad[1, 3, 0] = np.inf
    with pytest.raises(ValueError, match="frame 1"):
        n_mpjpe(gt, bad)


# ----------------------------------------------------------------------------------------- P-MPJPE
def test_similarity_transform_of_gt_gives_p_mpjpe_zero_but_not_n_mpjpe():
    gt = _body(5)
    r = _rotation([0.3, -1.0, 0.5], 0.9)
    pred = 1.7 * gt @ r.T + np.array([120.0, -40.0, 3000.0])
    assert p_mpjpe(pred, gt) < 1e-9
    np.testing.assert_allclose(procrustes_align(pred, gt), gt, atol=1e-8)
    assert mpjpe(pred, gt) > 100.0
    # scale only cannot undo a rotation: well above zero even without the translation
    assert n_mpjpe(1.7 * gt @ r.T, gt) > 50.0


def test_a_mirror_image_is_not_aligned_to_zero():
    """The reflection fix: a proper rotation cannot map a chiral pose onto its mirror image."""
    gt = np.array([[[0.0, 0, 0], [100, 0, 0], [0, 200, 0], [0, 0, 300]]])  # affinely independent
    mirror = gt * np.array([-1.0, 1.0, 1.0])
    r = _rotation([1.0, 1.0, 0.0], 0.4)
    pred = 0.5 * mirror @ r.T + 10.0
    err = p_mpjpe(pred, gt)
    assert err > 20.0  # an alignment that allowed reflections would give 0
    aligned = procrustes_align(pred, gt)[0]
    # the aligned pose is gt's points by a proper similarity of pred: det of the fitted linear map > 0
    a = np.linalg.lstsq(np.c_[pred[0], np.ones(4)], aligned, rcond=None)[0][:3]
    assert np.linalg.det(a) > 0


def test_procrustes_is_the_least_squares_optimum():
    gt = _body(1, seed=1)
    pred = gt @ _rotation([0, 0, 1], 0.3).T * 1.2 + np.random.default_rng(2).normal(0, 40, gt.shape)
    aligned = procrustes_align(pred, gt)
    best = np.sum((aligned - gt) ** 2)
    c = aligned[0].mean(axis=0)
    for axis in ([1, 0, 0], [0, 1, 0], [0, 0, 1]):
        for angle in (-0.02, 0.02):
            moved = (aligned[0] - c) @ _rotation(axis, angle).T + c
            assert np.sum((moved - gt[0]) ** 2) > best
    for scale in (0.98, 1.02):
        assert np.sum(((aligned[0] - c) * scale + c - gt[0]) ** 2) > best
    # invariant to any similarity applied to the prediction
    moved = 0.3 * pred @ _rotation([1, 2, 3], 2.0).T - 500.0
    assert p_mpjpe(moved, gt) == pytest.approx(p_mpjpe(pred, gt), rel=1e-9)
    assert p_mpjpe(pred, gt) < mpjpe(pred, gt)


# ----------------------------------------------------------------------------------------- N-MPJPE
def test_pure_scale_gives_n_mpjpe_zero():
    gt = np.array([[[0.0, 0, 0], [3, 4, 0]]])
    pred = 0.5 * gt
    assert n_mpjpe(pred, gt) == pytest.approx(0.0, abs=1e-12)
    assert mpjpe(pred, gt) == pytest.approx(1.25)  # (0 + 2.5) / 2


def test_n_mpjpe_scale_is_the_least_squares_one():
    # s = <gt, pred> / |pred|^2 = 2 / 2 = 1 (not |gt| / |pred| = sqrt 2): errors sqrt(2), 0
    gt = np.array([[[2.0, 0, 0], [0, 0, 0]]])
    pred = np.array([[[1.0, 1, 0], [0, 0, 0]]])
    assert n_mpjpe(pred, gt) == pytest.approx(math.sqrt(2) / 2)
    # orthogonal prediction: s = 0, the error is |gt|
    assert n_mpjpe(np.array([[[0.0, 1, 0]]]), np.array([[[1.0, 0, 0]]])) == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------- MPJVE
def test_constant_offset_over_time_has_zero_velocity_error():
    gt = _body(6)
    pred = gt + np.array([3.0, 4.0, 12.0])
    assert mpjve(pred, gt) == pytest.approx(0.0, abs=1e-9)
    assert mpjpe(pred, gt) == pytest.approx(13.0)


def test_mpjve_does_not_difference_across_sequences():
    gt = np.zeros((4, 2, 3))
    pred = gt.copy()
    pred[2:] += np.array([0.0, 3.0, 4.0])  # sequence B sits 5 mm away from sequence A
    seq = np.array(["A", "A", "B", "B"])
    assert mpjve(pred, gt, seq) == pytest.approx(0.0)
    assert mpjve(pred, gt) == pytest.approx(5.0 / 3.0)  # one sequence: one jump among 3 differences
    # interleaved ids: each id's frames in array order are its sequence
    assert mpjve(pred[[0, 2, 1, 3]], gt, seq[[0, 2, 1, 3]]) == pytest.approx(0.0)


def test_mpjve_weights_each_sequence_by_its_frames_as_videopose3d():
    gt = np.zeros((5, 1, 3))
    pred = np.array([[0.0], [6.0], [0.0], [3.0], [6.0]])[:, :, None] * np.array([1.0, 0, 0])
    seq = np.array([0, 0, 1, 1, 1])  # A: one difference of 6; B: two differences of 3
    assert mpjve(pred, gt, seq) == pytest.approx((2 * 6 + 3 * 3) / 5)  # 4.2, pooled pairs would give 4.0
    with pytest.raises(ValueError, match="2 frames"):
        mpjve(pred, gt, np.arange(5))  # every sequence has a single frame
    with pytest.raises(ValueError, match="sequence"):
        mpjve(pred, gt, seq[:4])


# -------------------------------------------------------------------------------- action-wise protocol
def test_action_groups_merge_takes_and_renamed_actions():
    assert action_group("Walking 1") == "Walking"
    assert action_group("Walking") == "Walking"
    assert action_group("WalkingDog 1") == "WalkDog"
    assert action_group("WalkDog") == "WalkDog"
    assert action_group("WalkTogether 2") == "WalkTogether"
    assert action_group("TakingPhoto") == "Photo" and action_group("Photo 1") == "Photo"
    assert action_group("SittingDown 2") == "SittingDown" and action_group("Sitting 1") == "Sitting"
    assert len(H36M_ACTIONS) == 15 and len(set(H36M_ACTIONS)) == 15
    with pytest.raises(ValueError):
        action_group("")


def test_actionwise_mean_is_the_mean_of_group_means():
    errors = np.array([1.0, 2.0, 3.0, 10.0, 7.0])
    actions = np.array(["Walking 1", "Walking 2", "Walking 1", "Eating", "WalkingDog 1"])
    groups, mean = actionwise(errors, actions)
    assert groups == {"Eating": 10.0, "WalkDog": 7.0, "Walking": 2.0}  # frame-weighted inside a group
    assert list(groups) == ["Eating", "WalkDog", "Walking"]  # the official order of the 15 groups
    assert mean == pytest.approx(19.0 / 3.0)  # not the frame mean 23 / 5
    with pytest.raises(ValueError):
        actionwise(errors, actions[:4])


def test_evaluate_poses_3d_reports_every_metric_and_the_action_table():
    gt = _body(6)
    pred = gt.copy()
    pred[:2] += np.array([0.0, 0.0, 10.0])   # Walking: 10 mm
    pred[2:] += np.array([0.0, 40.0, 0.0])   # Eating: 40 mm
    seq = np.array([0, 0, 1, 1, 1, 1])
    action = np.array(["Walking 1"] * 2 + ["Eating 2"] * 4)
    out = evaluate_poses_3d(pred, gt, sequence=seq, action=action)
    assert out["MPJPE"] == pytest.approx((2 * 10 + 4 * 40) / 6)
    assert out["P-MPJPE"] == pytest.approx(0.0, abs=1e-9)
    assert out["MPJVE"] == pytest.approx(0.0, abs=1e-9)
    assert out["num_frames"] == 6 and out["num_joints"] == 17 and out["num_sequences"] == 2
    table = out["actions"]
    assert table["num_groups"] == 2 and set(table["groups"]) == {"Walking", "Eating"}
    assert table["groups"]["Walking"]["MPJPE"] == pytest.approx(10.0)
    assert table["groups"]["Eating"]["frames"] == 4
    assert table["MPJPE"] == pytest.approx(25.0)  # (10 + 40) / 2
    assert table["P-MPJPE"] == pytest.approx(0.0, abs=1e-9)
    assert evaluate_poses_3d(pred[:1], gt[:1])["MPJVE"] is None
    with pytest.raises(ValueError, match="spans several action groups"):
        evaluate_poses_3d(pred, gt, sequence=np.zeros(6, int), action=action)


# ------------------------------------------------------------------------------ MPI-INF-3DHP PCK / AUC
def test_pck_and_auc_of_a_hand_made_example():
    gt = np.zeros((1, 4, 3))
    pred = np.array([[[0.0, 0, 0], [10, 0, 0], [150, 0, 0], [0, 200, 0]]])
    assert pck3d(pred, gt) == pytest.approx(50.0)  # 150 mm is not < 150
    assert pck3d(pred, gt, threshold=150.1) == pytest.approx(75.0)
    assert pck3d(pred, gt, joints=[0, 1]) == pytest.approx(100.0)
    # thresholds 0, 5, ..., 150: error 0 passes 30 of 31, error 10 passes 28 (15 ... 150), the others none
    assert len(MPI_INF_3DHP_AUC_THRESHOLDS) == 31 and MPI_INF_3DHP_AUC_THRESHOLDS[-1] == 150.0
    assert auc3d(pred, gt) == pytest.approx(100.0 * (30 + 28) / (4 * 31))
    assert auc3d(pred, gt, joints=[0, 1]) == pytest.approx(100.0 * (30 + 28) / (2 * 31))
    with pytest.raises(ValueError, match="joints"):
        pck3d(pred, gt, joints=[4])


def test_evaluate_3dhp_uses_the_14_joints_and_the_valid_frames():
    assert MPI_INF_3DHP_PCK_JOINTS == tuple(range(14))
    gt = np.zeros((2, 17, 3))
    pred = np.zeros((2, 17, 3))
    pred[:, 14:] = [500.0, 0, 0]   # pelvis, spine, head: not in PCK / AUC, but in MPJPE
    pred[1, :14] = [200.0, 0, 0]   # frame 1: every PCK joint wrong
    both = evaluate_3dhp(pred, gt)
    assert both["PCK"] == pytest.approx(50.0)
    first = evaluate_3dhp(pred, gt, valid=np.array([True, False]))
    assert first["PCK"] == pytest.approx(100.0) and first["AUC"] == pytest.approx(100.0 * 30 / 31)
    assert first["MPJPE"] == pytest.approx(3 * 500.0 / 17) and first["num_frames"] == 1
    with pytest.raises(ValueError, match="17 joints"):
        evaluate_3dhp(pred[:, :16], gt[:, :16])


# ------------------------------------------------------------------------------------- evaluate3d CLI
def _write(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _h36m_files(tmp_path):
    gt = _body(6, seed=3) + 5000.0
    pred = gt + np.random.default_rng(4).normal(0, 20.0, gt.shape)
    pred = pred + np.array([700.0, -300.0, 50.0])  # a global offset: removed by the root-relative step
    seq = np.array(["S9 Walking 1.cam0"] * 3 + ["S9 Eating.cam0"] * 3)
    action = np.array(["Walking 1"] * 3 + ["Eating"] * 3)
    return gt, pred, seq, action, (_write(tmp_path / "gt.npz", poses_3d=gt, sequence=seq, action=action),
                                   _write(tmp_path / "pred.npz", poses_3d=pred))


def test_cli_json_matches_the_functions_on_root_relative_poses(tmp_path, capsys):
    gt, pred, seq, action, (gt_path, pred_path) = _h36m_files(tmp_path)
    assert main(["evaluate3d", "--gt", gt_path, "--pred", pred_path, "--json"]) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # exactly one JSON object
    expected = evaluate_poses_3d(root_relative(pred), root_relative(gt), sequence=seq, action=action)
    for key in ("MPJPE", "P-MPJPE", "N-MPJPE", "MPJVE"):
        assert report[key] == pytest.approx(expected[key])
    assert report["MPJPE"] < 100.0  # the 700 mm offset is gone
    assert set(report["actions"]["groups"]) == {"Walking", "Eating"}
    assert report["actions"]["MPJPE"] == pytest.approx(expected["actions"]["MPJPE"])
    assert main(["evaluate3d", "--gt", gt_path, "--pred", pred_path]) == 0
    table = capsys.readouterr().out
    assert "P-MPJPE" in table and "Walking" in table and "Average" in table


def test_cli_3dhp_metric(tmp_path, capsys):
    gt = _body(3, seed=5)
    pred = gt.copy()
    pred[:, :14] += np.array([0.0, 102.0, 0.0])  # root-relative at 14: 102 mm on the 14 PCK joints
    pred += np.array([300.0, 0.0, -800.0])          # a global offset, removed (at joint 0 PCK joints would be 0)
    gt_path = _write(tmp_path / "gt3dhp.npz", poses_3d=gt, valid=np.array([1, 1, 0]))
    pred_path = _write(tmp_path / "pred3dhp.npz", poses_3d=pred)
    assert main(["evaluate3d", "--metric", "3dhp", "--gt", gt_path, "--pred", pred_path, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["PCK"] == pytest.approx(100.0) and report["num_frames"] == 2 and report["root"] == 14
    assert report["AUC"] == pytest.approx(100.0 * 10 / 31)  # 102 mm passes only 105 ... 150 (root 0: 30 / 31)
    # a 16-joint file is refused for 3dhp
    bad = _write(tmp_path / "gt16.npz", poses_3d=gt[:, :16])
    assert main(["evaluate3d", "--metric", "3dhp", "--gt", bad, "--pred", bad]) == 2
    assert "gt16.npz" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["object", "missing_key", "joints", "nan", "missing_file", "sequence", "text",
                                     "npy"])
def test_cli_bad_files_exit_code_2_naming_the_file(tmp_path, capsys, problem):
    gt, pred, seq, action, (gt_path, _) = _h36m_files(tmp_path)
    bad = tmp_path / f"bad_{problem}.npz"
    if problem == "object":
        np.savez(bad, poses_3d=pred, action=np.array(list(action), dtype=object))
    elif problem == "missing_key":
        np.savez(bad, keypoints_3d=pred)
    elif problem == "joints":
        np.savez(bad, poses_3d=pred[:, :16])
    elif problem == "nan":
        nan = pred.copy()
        nan[2, 5, 1] = np.nan
        np.savez(bad, poses_3d=nan)
    elif problem == "sequence":
        np.savez(bad, poses_3d=pred, sequence=seq[::-1])
    elif problem == "text":
        bad.write_text("not an archive")
    elif problem == "npy":
        with open(bad, "wb") as f:
            np.save(f, pred)
    code = main(["evaluate3d", "--gt", gt_path, "--pred", str(bad), "--json"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert bad.name in captured.err
    if problem == "object":
        assert "object array" in captured.err and "unicode" in captured.err
        with pytest.raises(SlimposeInputError, match="object array"):
            load_poses_npz(bad)
    if problem == "nan":
        assert "frame 2" in captured.err
    if problem in ("text", "npy"):
        assert ".npz archive" in captured.err
