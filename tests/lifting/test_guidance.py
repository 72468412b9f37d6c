"""STPG guidance (``slimpose.lifting.guidance``): skeleton helpers, energy terms, guidance steps."""

from __future__ import annotations

import math

import pytest
import torch

from slimpose.lifting.cameras import H36M_REFERENCE_INTRINSICS, Camera, project_to_2d
from slimpose.lifting.data.h36m import H36M_JOINT_NAMES, H36M_PARENTS
from slimpose.lifting.guidance import (
    STPGEnergy, bone_constancy_energy, bone_lengths, bones, guided_update, reprojection_energy, rho_schedule,
    smoothness_energy, solve_root_trajectory, stpg_guide, symmetric_bone_pairs, symmetry_energy,
)

B, T = 2, 5


def _camera() -> Camera:
    ref = H36M_REFERENCE_INTRINSICS["54138969"]
    return Camera("54138969", (1000, 1002), ref["focal_length"], ref["center"], ref["radial_distortion"],
                  ref["tangential_distortion"])


def _symmetric_pose() -> torch.Tensor:
    """An H36M-17 pose (metres) whose right joints mirror the left ones, rigidly moved into the camera frame."""
    centre = {0: (0.0, 0.0, 0.0), 7: (0.0, 0.23, 0.01), 8: (0.0, 0.48, 0.0), 9: (0.0, 0.58, 0.02),
              10: (0.0, 0.69, 0.0)}
    left = {4: (0.13, 0.0, 0.0), 5: (0.14, -0.45, 0.03), 6: (0.15, -0.88, -0.04),
            11: (0.17, 0.45, 0.0), 12: (0.21, 0.18, 0.06), 13: (0.22, -0.05, 0.15)}
    mirror = {4: 1, 5: 2, 6: 3, 11: 14, 12: 15, 13: 16}
    pose = torch.zeros(17, 3, dtype=torch.float64)
    for j, p in {**centre, **left}.items():
        pose[j] = torch.tensor(p)
    for j, r in mirror.items():
        pose[r] = pose[j] * torch.tensor([-1.0, 1.0, 1.0])
    a = 0.4                                                  # yaw, then y down (camera frame)
    rot = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, -1.0, 0], [math.sin(a), 0, -math.cos(a)]],
                       dtype=torch.float64)
    return pose @ rot.T


def _clip(intrinsics: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Constant root-relative poses (B, T, 17, 3), a moving root (B, T, 3) and their exact 2-D keypoints."""
    x = _symmetric_pose().expand(B, T, 17, 3).clone()
    t = torch.arange(T, dtype=torch.float64)
    root = torch.stack([0.2 + 0.05 * t, -0.1 + 0.01 * t, 4.0 + 0.1 * t], -1).expand(B, T, 3).clone()
    root[1] += torch.tensor([-0.3, 0.05, 1.0], dtype=torch.float64)
    return x, root, project_to_2d(x + root[:, :, None], intrinsics)


def test_skeleton_helpers_on_h36m() -> None:
    b = bones(H36M_PARENTS)
    assert len(b) == 16 and b[0] == (1, 0) and b[-1] == (16, 15)
    pairs = symmetric_bone_pairs()
    assert pairs == [(3, 0), (4, 1), (5, 2), (10, 13), (11, 14), (12, 15)]
    named = [tuple(H36M_JOINT_NAMES[j] for j in b[i]) for i, _ in pairs]
    assert named == [("left_hip", "root"), ("left_knee", "left_hip"), ("left_foot", "left_knee"),
                     ("left_shoulder", "thorax"), ("left_elbow", "left_shoulder"), ("left_wrist", "left_elbow")]
    x = _symmetric_pose()
    lengths = bone_lengths(x.expand(B, T, 17, 3), H36M_PARENTS)
    assert lengths.shape == (B, T, 16)
    assert torch.allclose(lengths[0, 0, 1], torch.linalg.vector_norm(x[2] - x[1]))
    with pytest.raises(ValueError):
        symmetric_bone_pairs(H36M_PARENTS, (4, 5), (1,))


def test_energy_is_zero_for_constant_symmetric_exact_clip_and_a_guidance_step_lowers_it() -> None:
    cam = torch.as_tensor(_camera().intrinsic, dtype=torch.float64)
    x, root, kp = _clip(cam)
    energy = STPGEnergy()
    kw = dict(keypoints_2d=kp, intrinsics=cam, root_trajectory=root)
    terms = energy.terms(x, **kw)
    assert set(terms) == {"reprojection", "symmetry", "bone_constancy", "smoothness"}
    for name, value in terms.items():
        assert value.shape == (B,) and value.abs().max() < 1e-10, name
    assert energy(x, **kw).abs().max() < 1e-10

    g = torch.Generator().manual_seed(0)
    noisy = x + 0.02 * torch.randn(x.shape, generator=g, dtype=torch.float64)
    before = energy(noisy, **kw)
    assert (before > 0).all()
    for name, value in energy.terms(noisy, **kw).items():
        assert (value > 0).all(), name
    after = energy(stpg_guide(noisy, energy, step_size=1.0, **kw), **kw)
    assert (after < before).all()
    many = energy(stpg_guide(noisy, energy, step_size=1.0, steps=10, **kw), **kw)
    assert (many < after).all()


def test_reprojection_with_the_solved_root_is_exact_for_a_pinhole_camera() -> None:
    cam = torch.as_tensor(_camera().intrinsic[:4], dtype=torch.float64)   # [fx, fy, cx, cy]: no distortion
    x, root, kp = _clip(torch.cat([cam, cam.new_zeros(5)]))
    assert torch.allclose(solve_root_trajectory(x, kp, cam), root, atol=1e-10)
    assert reprojection_energy(x, kp, cam, distort=False).abs().max() < 1e-10
    assert reprojection_energy(x, kp, cam).abs().max() < 1e-10           # zero distortion: the same
    noisy = x.clone()
    noisy[..., 13, :] += 0.05
    conf = torch.ones(B, T, 17, dtype=torch.float64)
    assert (reprojection_energy(noisy, kp, cam) > 0).all()
    conf[..., 13] = 0.0                                                  # a zero-confidence joint is ignored
    assert reprojection_energy(noisy, kp, cam, root_trajectory=root, confidence=conf).abs().max() < 1e-10


def test_terms_on_hand_values() -> None:
    x = torch.zeros(1, 3, 17, 3, dtype=torch.float64)
    x[0, :, 1:, 0] = torch.arange(1, 17, dtype=torch.float64)          # joints spread along x
    x[0, 1, 3, 0] += 1.0                                                # joint 3 moves in frame 1 only
    # smoothness: joint 3 moves +1 then -1: mean over 2 pairs x 17 joints of ||d||^2 = 2 / 34
    assert smoothness_energy(x).item() == pytest.approx(2 / 34)
    w = [0.0] * 17
    w[3] = 2.0
    assert smoothness_energy(x, joint_weights=w, second_order=1.0).item() == pytest.approx(4 / 34 + 2 * 4 / 17)
    lengths = bone_lengths(x, H36M_PARENTS)[0]                         # (3, 16)
    assert bone_constancy_energy(x).item() == pytest.approx(lengths.var(dim=0, unbiased=False).mean().item())
    pairs = symmetric_bone_pairs()
    expected = torch.stack([(lengths[:, i] - lengths[:, j]).square() for i, j in pairs], -1).mean()
    assert symmetry_energy(x).item() == pytest.approx(expected.item())
    assert symmetry_energy(x.expand(4, 3, 17, 3), reduction="mean").shape == ()
    assert symmetry_energy(x.expand(4, 3, 17, 3), reduction="sum").item() == pytest.approx(4 * expected.item())
    assert bone_constancy_energy(x[:, :1]).item() == 0.0 and smoothness_energy(x[:, :1]).item() == 0.0


def test_a_zero_weight_switches_a_term_off() -> None:
    cam = torch.as_tensor(_camera().intrinsic, dtype=torch.float64)
    x, root, kp = _clip(cam)
    x = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw = dict(keypoints_2d=kp, intrinsics=cam, root_trajectory=root)
    full = STPGEnergy()
    t = full.terms(x, **kw)
    expected = t["reprojection"] + t["symmetry"] + 0.01 * t["bone_constancy"] + 0.01 * t["smoothness"]
    assert torch.allclose(full(x, **kw), expected)
    no_sym = STPGEnergy(lambda_s=0.0, lambda_d=None)
    assert set(no_sym.terms(x, **kw)) == {"reprojection", "bone_constancy"}
    assert torch.allclose(no_sym(x, **kw), t["reprojection"] + 0.01 * t["bone_constancy"])
    assert "reprojection" not in full.terms(x)                          # no intrinsics: skipped
    assert torch.allclose(full(x), expected - t["reprojection"])
    assert STPGEnergy(reduction="mean")(x, **kw).shape == ()


def test_gradient_flows_only_to_x_and_works_under_no_grad() -> None:
    cam = torch.as_tensor(_camera().intrinsic, dtype=torch.float64)
    x, root, kp = _clip(cam)
    x0 = x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x0_copy, kp = x0.clone(), kp.clone().requires_grad_(True)
    energy = STPGEnergy()
    h_prev = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    with torch.no_grad():
        guided = stpg_guide(x0, energy, 0.5, keypoints_2d=kp, intrinsics=cam)
        step = guided_update(h_prev, x0, energy, torch.full((B,), 0.5, dtype=torch.float64),
                             keypoints_2d=kp, intrinsics=cam)
    assert torch.equal(x0, x0_copy) and kp.grad is None
    assert not guided.requires_grad and not step.requires_grad
    xg = x0.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(energy(xg, keypoints_2d=kp.detach(), intrinsics=cam).sum(), xg)
    assert torch.allclose(guided, x0 - 0.5 * grad)
    assert torch.allclose(step, h_prev - 0.5 * grad)


def test_rho_schedule() -> None:
    assert rho_schedule(0.1, 3) == [0.1] * 3
    assert rho_schedule(1.0, 4, "increasing") == [0.25, 0.5, 0.75, 1.0]
    assert rho_schedule(1.0, 4, "decreasing") == [1.0, 0.75, 0.5, 0.25]
    with pytest.raises(ValueError):
        rho_schedule(1.0, 2, "cosine")


def test_review_edge_cases_zero_gradient_and_degenerate_frames():
    """An energy that does not depend on the poses gives a zero step (it used to raise); a frame whose joints
    all have zero confidence gets the prior root instead of a singular solve."""
    import torch

    from slimpose.lifting.guidance import STPGEnergy, solve_root_trajectory, stpg_guide

    x = torch.randn(2, 1, 17, 3, dtype=torch.float64) * 0.2
    for energy in (STPGEnergy(0, 0, 0, 0), STPGEnergy(0, 0, 0, 0.01), STPGEnergy(1, 0, 0, 0)):
        torch.testing.assert_close(stpg_guide(x, energy, 0.1), x)  # T = 1 / no intrinsics: nothing to follow
    kps = torch.rand(2, 1, 17, 2, dtype=torch.float64) * 0.2
    conf = torch.ones(2, 1, 17, dtype=torch.float64)
    conf[0] = 0.0
    root = solve_root_trajectory(x, kps, torch.tensor([1.1, 1.1, 0.0, 0.0], dtype=torch.float64), conf)
    torch.testing.assert_close(root[0, 0], torch.tensor([0.0, 0.0, 5.0], dtype=torch.float64))
    assert torch.isfinite(root).all()
