"""Human3.6M cameras: quaternion frames, VideoPose3D's projection, screen normalisation, camera tables."""

import json

import numpy as np
import pytest
import torch

from slimpose.lifting.cameras import (H36M_CAMERA_IDS, H36M_IMAGE_SIZES, H36M_REFERENCE_INTRINSICS, Camera,
                                      camera_to_world, image_coordinates, load_h36m_cameras,
                                      normalize_screen_coordinates, project_to_2d, project_to_2d_linear, qinverse,
                                      qrot, unnormalize_screen_coordinates, world_to_camera)
from slimpose.utils.io import SlimposeInputError


def _unit_quaternions(rng, n):
    q = rng.normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def _matrix(q):
    """Rotation matrix of a unit quaternion (w, x, y, z), written out independently of qrot."""
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def test_qrot_matches_the_rotation_matrix_and_a_quarter_turn():
    rng = np.random.default_rng(0)
    for q in _unit_quaternions(rng, 5):
        v = rng.normal(size=(7, 3))
        np.testing.assert_allclose(qrot(q, v), v @ _matrix(q).T, atol=1e-12)
        np.testing.assert_allclose(qrot(qinverse(q), qrot(q, v)), v, atol=1e-12)
    quarter_z = np.array([np.cos(np.pi / 4), 0, 0, np.sin(np.pi / 4)])
    np.testing.assert_allclose(qrot(quarter_z, [1.0, 0, 0]), [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(qinverse([0.5, 0.1, -0.2, 0.3]), [0.5, -0.1, 0.2, -0.3])


def test_world_camera_round_trip_is_exact_and_is_r_transpose_of_x_minus_t():
    rng = np.random.default_rng(1)
    q = _unit_quaternions(rng, 1)[0]
    t = np.array([1.8, 4.9, 1.5])
    X = rng.normal(size=(6, 17, 3))
    cam = world_to_camera(X, q, t)
    np.testing.assert_allclose(cam, (X - t) @ _matrix(q), atol=1e-12)      # R^T (X - t), row vectors
    np.testing.assert_allclose(camera_to_world(cam, q, t), X, atol=1e-12)
    np.testing.assert_allclose(world_to_camera(camera_to_world(X, q, t), q, t), X, atol=1e-12)
    # float32 input stays float32 (VideoPose3D works in float32)
    assert world_to_camera(X.astype(np.float32), q, t).dtype == np.float32


def test_zero_distortion_projection_equals_the_linear_one_and_distortion_follows_videopose3d():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3, 5, 17, 3)) * 0.3 + np.array([0, 0, 5.0])
    params = np.concatenate([rng.uniform(1.5, 2.5, (3, 2)), rng.uniform(-0.1, 0.1, (3, 2)), np.zeros((3, 5))], -1)
    np.testing.assert_allclose(project_to_2d(X, params), project_to_2d_linear(X, params), atol=1e-12)
    # the distortion terms, by hand: XX (radial + p.XX) + p r2
    f, c, k, p = np.array([2.0, 2.1]), np.array([0.02, -0.03]), np.array([0.1, 0.01, 0.001]), np.array([0.01, 0.03])
    point = np.array([[0.4, -0.2, 2.0]])
    xx = np.array([0.2, -0.1])
    r2 = 0.05
    radial = 1 + k[0] * r2 + k[1] * r2 ** 2 + k[2] * r2 ** 3
    tan = p[0] * xx[0] + p[1] * xx[1]
    expected = f * (xx * (radial + tan) + p * r2) + c
    out = project_to_2d(point[None], np.concatenate([f, c, k, p])[None])
    np.testing.assert_allclose(out[0, 0], expected, atol=1e-12)
    assert not np.allclose(out, project_to_2d_linear(point[None], np.concatenate([f, c, k, p])[None]))
    # the official clamp of x/z, y/z to [-1, 1] (both projections)
    far = np.array([[[3.0, -0.5, 1.0]]])
    np.testing.assert_allclose(project_to_2d_linear(far, np.concatenate([f, c, k, p])[None]),
                               [[[2.0 + 0.02, -1.05 - 0.03]]])


def test_projection_runs_on_torch_tensors_like_numpy():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2, 4, 17, 3)) * 0.3 + np.array([0, 0, 4.0])
    params = np.concatenate([rng.uniform(1.5, 2.5, (2, 2)), rng.uniform(-0.1, 0.1, (2, 2)),
                             rng.uniform(-0.2, 0.2, (2, 5))], -1)
    out = project_to_2d(torch.tensor(X), torch.tensor(params))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), project_to_2d(X, params), atol=1e-12)
    q = _unit_quaternions(rng, 1)[0]
    np.testing.assert_allclose(world_to_camera(torch.tensor(X), q, [1.0, 2.0, 3.0]).numpy(),
                               world_to_camera(X, q, [1.0, 2.0, 3.0]), atol=1e-12)


def test_screen_normalisation_round_trip_and_values():
    w, h = 1000, 1002
    px = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0], [123.4, 876.5]])
    n = normalize_screen_coordinates(px, w, h)
    np.testing.assert_allclose(n[:3], [[-1, -1.002], [1, 1.002], [0, 0]], atol=1e-12)   # both axes / w
    np.testing.assert_allclose(image_coordinates(n, w, h), px, atol=1e-9)
    assert unnormalize_screen_coordinates is image_coordinates
    t = normalize_screen_coordinates(torch.tensor(px), w, h)
    np.testing.assert_allclose(t.numpy(), n)
    with pytest.raises(ValueError):
        normalize_screen_coordinates(np.zeros((3, 3)), w, h)


def _cam0(**kw):
    ref = H36M_REFERENCE_INTRINSICS["54138969"]
    return Camera(id="54138969", image_size=H36M_IMAGE_SIZES["54138969"], focal_length=ref["focal_length"],
                  center=ref["center"], radial_distortion=ref["radial_distortion"],
                  tangential_distortion=ref["tangential_distortion"], **kw)


def test_camera_intrinsics_are_normalised_as_videopose3d_loads_them():
    cam = _cam0()
    np.testing.assert_allclose(cam.intrinsic, [1145.05 / 500, 1143.78 / 500, 512.54 / 500 - 1, 515.45 / 500 - 1.002,
                                               -0.2071, 0.2478, -0.0031, -0.00098, -0.00142], rtol=1e-6, atol=1e-7)
    assert cam.intrinsic.dtype == np.float32 and H36M_CAMERA_IDS[0] == "54138969"
    assert [H36M_IMAGE_SIZES[c] for c in H36M_CAMERA_IDS] == [(1000, 1002), (1000, 1000), (1000, 1000), (1000, 1002)]
    # a point on the optical axis lands on the principal point, in pixels, distorted or not
    for distort in (True, False):
        np.testing.assert_allclose(cam.project(np.array([0.0, 0.0, 3.0]), distort=distort, pixels=True),
                                   [512.54, 515.45], atol=1e-3)
    # pixels = f * x / z + c without distortion
    np.testing.assert_allclose(cam.project(np.array([0.3, -0.6, 3.0]), distort=False, pixels=True),
                               [1145.05 * 0.1 + 512.54, -1143.78 * 0.2 + 515.45], atol=1e-3)
    with pytest.raises(ValueError, match="no extrinsics"):
        cam.world_to_camera(np.zeros((1, 3)))
    q = np.array([0.9, 0.1, -0.3, 0.3]) / np.linalg.norm([0.9, 0.1, -0.3, 0.3])
    posed = cam.with_extrinsics(q, [1.0, 2.0, 3.0])
    X = np.random.default_rng(4).normal(size=(4, 3))
    np.testing.assert_allclose(posed.camera_to_world(posed.world_to_camera(X)), X, atol=1e-12)


def _tables():
    ref = H36M_REFERENCE_INTRINSICS["54138969"]
    intrinsic = [dict(id=cid, center=list(ref["center"]), focal_length=list(ref["focal_length"]),
                      radial_distortion=list(ref["radial_distortion"]),
                      tangential_distortion=list(ref["tangential_distortion"]),
                      res_w=H36M_IMAGE_SIZES[cid][0], res_h=H36M_IMAGE_SIZES[cid][1], azimuth=70)
                 for cid in H36M_CAMERA_IDS]
    extrinsic = {"S1": [{"orientation": [1.0, 0, 0, 0], "translation": [1841.1, 4955.3, 1563.4 + i]} for i in range(4)],
                 "S2": [{}, {}, {}, {}]}
    return intrinsic, extrinsic


def test_camera_file_in_videopose3d_tables_converts_mm_to_metres(tmp_path):
    intrinsic, extrinsic = _tables()
    path = tmp_path / "h36m_cameras.json"
    path.write_text(json.dumps({"intrinsic": intrinsic, "extrinsic": extrinsic}))
    cams = load_h36m_cameras(path)
    assert sorted(cams) == ["S1", "S2"] and len(cams["S1"]) == 4
    np.testing.assert_allclose(cams["S1"][2].translation, [1.8411, 4.9553, 1.5654])
    assert cams["S1"][3].id == "60457274" and cams["S1"][3].image_size == (1000, 1002)
    assert cams["S1"][0].has_extrinsics and not cams["S2"][0].has_extrinsics


def test_bad_camera_files_name_the_file(tmp_path):
    intrinsic, extrinsic = _tables()
    bad = tmp_path / "cams_missing.json"
    bad.write_text(json.dumps({"intrinsic": intrinsic}))
    with pytest.raises(SlimposeInputError, match="cams_missing.json.*'extrinsic'"):
        load_h36m_cameras(bad)
    del intrinsic[1]["focal_length"]
    bad2 = tmp_path / "cams_nofocal.json"
    bad2.write_text(json.dumps({"intrinsic": intrinsic, "extrinsic": extrinsic}))
    with pytest.raises(SlimposeInputError, match=r"cams_nofocal.json.*intrinsic\[1\].*focal_length"):
        load_h36m_cameras(bad2)
    intrinsic, extrinsic = _tables()
    extrinsic["S1"][0]["translation"] = [1.0, 2.0]
    bad3 = tmp_path / "cams_short.json"
    bad3.write_text(json.dumps({"intrinsic": intrinsic, "extrinsic": extrinsic}))
    with pytest.raises(SlimposeInputError, match="cams_short.json.*translation"):
        load_h36m_cameras(bad3)
    with pytest.raises(SlimposeInputError, match="not found"):
        load_h36m_cameras(tmp_path / "nope.json")
