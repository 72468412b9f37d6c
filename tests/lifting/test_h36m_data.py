"""Human3.6M / MPI-INF-3DHP loaders on small files in the official layouts, and the restricted unpickler."""

import builtins
import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from slimpose.lifting.cameras import H36M_CAMERA_IDS, H36M_IMAGE_SIZES, Camera
from slimpose.lifting.data import (H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_KEPT_JOINTS, H36M_METADATA,
                                   H36M_PARENTS, load_3dhp_npz, load_mmpose_body3d, load_npz, load_videopose3d,
                                   read_videopose3d_2d, read_videopose3d_3d, reduce_h36m_joints, remove_joints,
                                   restricted_loads, write_videopose3d_npz)
from slimpose.lifting.data.h36m import H36M_JOINTS_LEFT_32, H36M_JOINTS_RIGHT_32, H36M_PARENTS_32, H36M_REMOVED_JOINTS
from slimpose.utils.io import SlimposeInputError


# --------------------------------------------------------------------------------------------------
# joints

def test_32_to_17_keeps_the_videopose3d_joints():
    arr = np.zeros((2, 32, 3))
    arr[:, :, 0] = np.arange(32)                      # each joint carries its 32-index
    out = reduce_h36m_joints(arr)
    assert out.shape == (2, 17, 3)
    assert out[0, :, 0].tolist() == [0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27]
    # spine, head, left shoulder, right wrist
    assert (out[0, 7, 0], out[0, 10, 0], out[0, 11, 0], out[0, 16, 0]) == (12, 15, 17, 27)
    with pytest.raises(ValueError):
        reduce_h36m_joints(np.zeros((2, 17, 3)))


def test_remove_joints_gives_the_17_joint_skeleton():
    red = remove_joints(H36M_PARENTS_32, H36M_JOINTS_LEFT_32, H36M_JOINTS_RIGHT_32, H36M_REMOVED_JOINTS)
    assert red.kept == H36M_KEPT_JOINTS
    parents = list(red.parents)
    assert parents[11] == 7 and parents[14] == 7      # nearest kept ancestor of the shoulders: the spine
    parents[11] = parents[14] = 8                     # VideoPose3D re-parents them to the thorax
    assert tuple(parents) == H36M_PARENTS == (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
    assert red.joints_left == H36M_JOINTS_LEFT == (4, 5, 6, 11, 12, 13)
    assert red.joints_right == H36M_JOINTS_RIGHT == (1, 2, 3, 14, 15, 16)


# --------------------------------------------------------------------------------------------------
# VideoPose3D files

def _quat(rng):
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def _matrix(q):
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def _cameras(rng, subjects):
    base = [Camera(id=cid, image_size=H36M_IMAGE_SIZES[cid], focal_length=(1145.0, 1144.0),
                   center=(512.0 + i, 510.0 - i)) for i, cid in enumerate(H36M_CAMERA_IDS)]
    return {s: [c.with_extrinsics(_quat(rng), rng.uniform(-5, 5, 3)) for c in base] for s in subjects}


ACTIONS = {"S1": {"Walking": 5, "Eating 2": 4}, "S9": {"Walking": 3, "Photo 1": 6}}


def _h36m_files(tmp_path, extra_2d=0, short_2d=0):
    rng = np.random.default_rng(0)
    pos3d = {s: {a: rng.normal(size=(t, 32, 3)).astype(np.float32) for a, t in acts.items()}
             for s, acts in ACTIONS.items()}
    pos2d = {s: {a: [rng.uniform(0, 1000, (t + (extra_2d if c == 1 else 0) - (short_2d if c == 2 else 0), 17, 2))
                     for c in range(4)] for a, t in acts.items()} for s, acts in ACTIONS.items()}
    p3, p2 = tmp_path / "data_3d_h36m.npz", tmp_path / "data_2d_h36m_gt.npz"
    write_videopose3d_npz(p3, p2, pos3d, pos2d)
    return p3, p2, pos3d, pos2d, _cameras(rng, ACTIONS)


def test_writer_produces_the_official_pickled_layout(tmp_path):
    p3, p2, pos3d, pos2d, _ = _h36m_files(tmp_path)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]   # atomic: no leftovers
    # read the way VideoPose3D's run.py does
    official3 = np.load(p3, allow_pickle=True)["positions_3d"].item()
    assert type(official3) is dict and type(official3["S1"]) is dict
    assert official3["S1"]["Eating 2"].dtype == np.float32 and official3["S1"]["Eating 2"].shape == (4, 32, 3)
    f2 = np.load(p2, allow_pickle=True)
    assert sorted(f2.files) == ["metadata", "positions_2d"]
    assert f2["metadata"].item() == {"layout_name": "h36m", "num_joints": 17,
                                     "keypoints_symmetry": [[4, 5, 6, 11, 12, 13], [1, 2, 3, 14, 15, 16]]}
    cams = f2["positions_2d"].item()["S9"]["Photo 1"]
    assert type(cams) is list and len(cams) == 4 and cams[3].dtype == np.float32
    np.testing.assert_array_equal(cams[3], pos2d["S9"]["Photo 1"][3].astype(np.float32))
    # and the restricted reader gives the same
    back3 = read_videopose3d_3d(p3)
    np.testing.assert_array_equal(back3["S9"]["Walking"], pos3d["S9"]["Walking"])
    back2, meta = read_videopose3d_2d(p2)
    assert meta == H36M_METADATA and len(back2["S1"]["Walking"]) == 4


def test_loader_splits_shapes_root_relative_targets_and_normalised_2d(tmp_path):
    p3, p2, pos3d, pos2d, cams = _h36m_files(tmp_path)
    train = load_videopose3d(p3, p2, cams, split="train")
    test = load_videopose3d(p3, p2, cams, split="test")
    assert [(r.subject, r.action, r.camera_index) for r in train] == \
        [("S1", a, c) for a in ("Walking", "Eating 2") for c in range(4)]
    assert {r.subject for r in test} == {"S9"} and len(test) == 8
    for r in train + test:
        t = ACTIONS[r.subject][r.action]
        assert r.keypoints_2d.shape == (t, 17, 2) and r.poses_3d.shape == (t, 17, 3)
        assert r.keypoints_2d.dtype == np.float32 and r.poses_3d.dtype == np.float32
        cam = cams[r.subject][r.camera_index]
        assert r.camera is cam and r.image_size == cam.image_size and r.fps == 50
        # 3-D: R^T (X - t) of the 17 kept joints, then root-relative with the trajectory kept aside
        world = pos3d[r.subject][r.action].astype(np.float64)[:, list(H36M_KEPT_JOINTS)]
        expected = (world - np.asarray(cam.translation)) @ _matrix(np.asarray(cam.orientation))
        np.testing.assert_allclose(r.root_trajectory, expected[:, 0], atol=1e-5)
        np.testing.assert_array_equal(r.poses_3d[:, 0], 0)
        np.testing.assert_allclose(r.poses_3d, expected - expected[:, :1], atol=1e-5)
        np.testing.assert_allclose(r.absolute_poses_3d(), expected, atol=1e-5)
        # 2-D: x / w * 2 - 1, y / w * 2 - h / w
        w, h = cam.image_size
        px = pos2d[r.subject][r.action][r.camera_index]
        np.testing.assert_allclose(r.keypoints_2d[..., 0], px[..., 0] / w * 2 - 1, atol=1e-5)
        np.testing.assert_allclose(r.keypoints_2d[..., 1], px[..., 1] / w * 2 - h / w, atol=1e-5)
    assert test[0].image_size == (1000, 1002) and test[1].image_size == (1000, 1000)
    walking = load_videopose3d(p3, p2, cams, subjects=["S9", "S1"], actions=["Walk"])
    assert [(r.subject, r.action) for r in walking][::4] == [("S9", "Walking"), ("S1", "Walking")]


def test_longer_2d_is_trimmed_to_the_mocap_and_shorter_2d_is_refused(tmp_path):
    p3, p2, pos3d, pos2d, cams = _h36m_files(tmp_path, extra_2d=3)
    recs = load_videopose3d(p3, p2, cams, subjects=["S1"])
    cam1 = [r for r in recs if r.camera_index == 1 and r.action == "Walking"][0]
    assert len(pos2d["S1"]["Walking"][1]) == 8 and cam1.keypoints_2d.shape == (5, 17, 2)
    np.testing.assert_allclose(cam1.keypoints_2d[..., 0], pos2d["S1"]["Walking"][1][:5, :, 0] / 1000 * 2 - 1, atol=1e-5)

    (tmp_path / "short").mkdir()
    p3, p2, pos3d, pos2d, cams = _h36m_files(tmp_path / "short", short_2d=2)
    with pytest.raises(SlimposeInputError, match=r"data_2d_h36m_gt.npz.*camera 2 has 3 2-D frames, fewer than the 5"):
        load_videopose3d(p3, p2, cams, subjects=["S1"])
    recs = load_videopose3d(p3, p2, cams, subjects=["S1"], strict_lengths=False)
    cam2 = [r for r in recs if r.camera_index == 2 and r.action == "Walking"][0]
    assert cam2.poses_3d.shape == (3, 17, 3) and cam2.root_trajectory.shape == (3, 3)


def test_subject_action_and_camera_mismatches_name_the_files(tmp_path):
    p3, p2, pos3d, pos2d, cams = _h36m_files(tmp_path)
    del pos2d["S9"]
    write_videopose3d_npz(None, tmp_path / "no_s9.npz", positions_2d=pos2d)
    with pytest.raises(SlimposeInputError, match="no_s9.npz.*S9 is missing"):
        load_videopose3d(p3, tmp_path / "no_s9.npz", cams, split="test")
    del pos2d["S1"]["Eating 2"]
    write_videopose3d_npz(None, tmp_path / "no_eat.npz", positions_2d=pos2d)
    with pytest.raises(SlimposeInputError, match="no_eat.npz.*'Eating 2' of S1 is missing"):
        load_videopose3d(p3, tmp_path / "no_eat.npz", cams, split="train")
    with pytest.raises(SlimposeInputError, match="4 camera.*gives S1 3"):
        load_videopose3d(p3, p2, {"S1": cams["S1"][:3]}, subjects=["S1"])
    with pytest.raises(SlimposeInputError, match="no extrinsics"):
        load_videopose3d(p3, p2, {"S1": [Camera("x", (1000, 1000), (1, 1), (0, 0))] * 4}, subjects=["S1"])


# --------------------------------------------------------------------------------------------------
# the restricted unpickler

class _Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return builtins.eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch()",)


def test_a_pickle_that_would_run_code_is_refused_and_does_not_run(tmp_path):
    for payload, refused in ((_Shell, r"'(posix|os|nt)\.system'"), (_Eval, r"'builtins\.eval'")):
        marker = tmp_path / f"pwned_{payload.__name__}"
        evil = tmp_path / f"evil{payload.__name__}.npz"
        np.savez(evil, positions_3d=np.array({"S1": {"Walking": [payload(marker)]}}, dtype=object))
        with pytest.raises(SlimposeInputError, match=rf"evil{payload.__name__}.npz.*positions_3d.*refused.*{refused}"):
            read_videopose3d_3d(evil)
        assert not marker.exists()
    # the eval payload is live: numpy's own loader runs it
    np.load(tmp_path / "evil_Eval.npz", allow_pickle=True)["positions_3d"]
    assert (tmp_path / "pwned__Eval").exists()
    # a refused metadata member of a 2-D file
    marker = tmp_path / "pwned_meta"
    evil2 = tmp_path / "evil_2d.npz"
    np.savez(evil2, positions_2d=np.array({}, dtype=object), metadata=np.array(_Eval(marker), dtype=object))
    with pytest.raises(SlimposeInputError, match=r"evil_2d.npz.*metadata.*builtins\.eval"):
        read_videopose3d_2d(evil2)
    assert not marker.exists()
    # other globals (harmless or not) are refused too; _codecs.encode only as latin-1
    import codecs
    import collections

    with pytest.raises(SlimposeInputError, match="collections.OrderedDict"):
        restricted_loads(pickle.dumps(collections.OrderedDict(a=1)), "od")

    class _Rot13:
        def __reduce__(self):
            return codecs.encode, ("abc", "rot13")

    with pytest.raises(SlimposeInputError, match="latin1"):
        restricted_loads(pickle.dumps(_Rot13(), protocol=2), "rot13")


def _npy_object(obj, protocol):
    """An object-dtype .npy written by hand: version 1.0 header + a pickle of the array."""
    arr = np.empty((), dtype=object)
    arr[()] = obj
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (), }"
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode("latin-1") + \
        pickle.dumps(arr, protocol=protocol)


def test_a_dtype_state_that_hides_object_pointers_is_refused(tmp_path):
    """Only admitted globals, but a crafted dtype state (a structured dtype with an object field and flags 0)
    would make numpy read eight file bytes as an object pointer (a crash, or worse, on access)."""
    from slimpose.lifting.data.h36m import read_videopose3d_3d

    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    dt = np.dtype("V8")  # a fresh dtype object (never a builtin singleton)
    dt.__setstate__((3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))
    arr = _reconstruct(np.ndarray, (0,), b"b")
    arr.__setstate__((1, (), dt, False, b"\x41" * 8))  # never read in this process
    payload = pickle.dumps(arr, protocol=2)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": ()})
    buf.write(payload)
    path = tmp_path / "evil_dtype.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("positions_3d.npy", buf.getvalue())
    with pytest.raises(SlimposeInputError, match=r"evil_dtype.npz.*structured or sub-array dtype"):
        read_videopose3d_3d(path)


def test_legit_pickles_of_every_protocol_load(tmp_path):
    obj = {"S1": {"Walking": np.arange(12, dtype=np.float32).reshape(2, 2, 3), "n": np.float64(2.5),
                  "t": (1, None, True, "x", b"\x00\xff", 3 + 4j)}, "L": [np.array(["a"], dtype=object)]}
    for protocol in (2, 3, 4, 5):
        path = tmp_path / f"p{protocol}.npz"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("positions_3d.npy", _npy_object(obj, protocol))
            zf.writestr("plain.npy", _npy_bytes(np.arange(6, dtype=">i4").reshape(2, 3)))
        got = load_npz(path, object_keys=("positions_3d",))
        np.testing.assert_array_equal(got["positions_3d"]["S1"]["Walking"], obj["S1"]["Walking"])
        assert got["positions_3d"]["S1"]["n"] == 2.5 and got["positions_3d"]["S1"]["t"] == obj["S1"]["t"]
        assert got["positions_3d"]["L"][0].tolist() == ["a"]
        np.testing.assert_array_equal(got["plain"], np.arange(6).reshape(2, 3))


def _npy_bytes(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_corrupt_truncated_and_incomplete_files_name_the_file(tmp_path):
    p3, p2, *_ = _h36m_files(tmp_path)
    data = p3.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlimposeInputError, match="cut.npz"):
        read_videopose3d_3d(cut)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"definitely not a zip file" * 10)
    with pytest.raises(SlimposeInputError, match="junk.npz.*not a readable .npz"):
        read_videopose3d_3d(junk)
    # a member whose pickle stops half-way, and a plain array shorter than its header says
    good = _npy_object({"S1": {"Walking": np.zeros((4, 32, 3), np.float32)}}, 3)
    half = tmp_path / "half_pickle.npz"
    with zipfile.ZipFile(half, "w") as zf:
        zf.writestr("positions_3d.npy", good[: len(good) - 40])
    with pytest.raises(SlimposeInputError, match="half_pickle.npz.*positions_3d.*unreadable pickle"):
        read_videopose3d_3d(half)
    short = tmp_path / "short_array.npz"
    with zipfile.ZipFile(short, "w") as zf:
        zf.writestr("part.npy", _npy_bytes(np.zeros((10, 17, 3), np.float32))[:-100])
    with pytest.raises(SlimposeInputError, match="short_array.npz.*'part'.*corrupt or truncated"):
        load_npz(short)
    # missing keys, wrong structure, missing file, an unexpected object member
    np.savez(tmp_path / "nokey.npz", positions_2d=np.zeros(3))
    with pytest.raises(SlimposeInputError, match=r"nokey.npz.*lacks the key\(s\) \['positions_3d'\]"):
        read_videopose3d_3d(tmp_path / "nokey.npz")
    with pytest.raises(SlimposeInputError, match=r"nokey.npz.*lacks.*'metadata'"):
        read_videopose3d_2d(tmp_path / "nokey.npz")
    np.savez(tmp_path / "list.npz", positions_3d=np.array([{"a": 1}, {"b": 2}], dtype=object))
    with pytest.raises(SlimposeInputError, match="list.npz.*'positions_3d' must be a dict"):
        read_videopose3d_3d(tmp_path / "list.npz")
    np.savez(tmp_path / "badshape.npz", positions_3d=np.array({"S1": {"W": np.zeros((3, 20, 3))}}, dtype=object))
    with pytest.raises(SlimposeInputError, match=r"badshape.npz.*positions_3d\['S1'\]\['W'\] has 20 joints"):
        read_videopose3d_3d(tmp_path / "badshape.npz")
    with pytest.raises(SlimposeInputError, match="not found"):
        read_videopose3d_3d(tmp_path / "absent.npz")
    np.savez(tmp_path / "objpart.npz", imgname=np.array(["S1_A.54138969_000001.jpg"]),
             part=np.array([None], dtype=object), S=np.zeros((1, 17, 4)))
    with pytest.raises(SlimposeInputError, match="objpart.npz.*'part'.*pickled Python objects"):
        load_mmpose_body3d(tmp_path / "objpart.npz")


# --------------------------------------------------------------------------------------------------
# MMPose body3d and MPI-INF-3DHP

def test_mmpose_body3d_groups_frames_into_sequences(tmp_path):
    rng = np.random.default_rng(5)
    keys = [("S5", "Walking_1", "54138969", 1), ("S1", "Directions_1", "55011271", 1),
            ("S1", "Directions_1", "54138969", 1), ("S1", "Directions_1", "55011271", 6),
            ("S5", "Walking_1", "54138969", 6), ("S1", "Directions_1", "55011271", 11)]
    names = [f"{s}/{s}_{a}.{c}/{s}_{a}.{c}_{f:06d}.jpg" for s, a, c, f in keys]
    n = len(names)
    part = np.concatenate([rng.uniform(0, 1000, (n, 17, 2)), np.ones((n, 17, 1))], -1)
    S = np.concatenate([rng.normal(size=(n, 17, 3)), np.ones((n, 17, 1))], -1)
    path = tmp_path / "h36m_test.npz"
    np.savez(path, imgname=np.array(names), center=rng.uniform(0, 1000, (n, 2)), scale=rng.uniform(1, 3, n),
             part=part, S=S)
    recs = load_mmpose_body3d(path)
    assert [(r.subject, r.action, r.camera_index, r.num_frames) for r in recs] == \
        [("S1", "Directions_1", 0, 1), ("S1", "Directions_1", 1, 3), ("S5", "Walking_1", 0, 2)]
    d1 = recs[1]
    idx = [1, 3, 5]                                       # file order within the sequence
    np.testing.assert_allclose(d1.keypoints_2d[..., 0], part[idx, :, 0] / 1000 * 2 - 1, atol=1e-5)
    np.testing.assert_allclose(recs[2].keypoints_2d[..., 1], part[[0, 4], :, 1] / 1000 * 2 - 1.002, atol=1e-5)
    np.testing.assert_allclose(d1.poses_3d, S[idx, :, :3] - S[idx, :1, :3], atol=1e-6)
    np.testing.assert_allclose(d1.root_trajectory, S[idx, 0, :3], atol=1e-6)
    assert [r.subject for r in load_mmpose_body3d(path, subjects=["S5"])] == ["S5"]
    np.savez(tmp_path / "badname.npz", imgname=np.array(["frame_0001.png"]), part=part[:1], S=S[:1])
    with pytest.raises(SlimposeInputError, match=r"badname.npz.*imgname\[0\]"):
        load_mmpose_body3d(tmp_path / "badname.npz")
    np.savez(tmp_path / "noS.npz", imgname=np.array(names), part=part)
    with pytest.raises(SlimposeInputError, match=r"noS.npz.*\['S'\]"):
        load_mmpose_body3d(tmp_path / "noS.npz")


def _hp(rng, t):
    return {"data_2d": rng.uniform(0, 2048, (t, 17, 2)), "data_3d": rng.normal(size=(t, 17, 3)) * 500}


def test_3dhp_train_and_test_files(tmp_path):
    rng = np.random.default_rng(6)
    train = {"S1 Seq1": [{"0": _hp(rng, 4), "4": _hp(rng, 4)}, 25], "S2 Seq2": [{"8": _hp(rng, 3)}, 50]}
    np.savez_compressed(tmp_path / "data_train_3dhp.npz", data=train)
    recs = load_3dhp_npz(tmp_path / "data_train_3dhp.npz")
    assert [(r.subject, r.action, r.camera_index, r.fps, r.num_frames) for r in recs] == \
        [("S1", "Seq1", 0, 25, 4), ("S1", "Seq1", 4, 25, 4), ("S2", "Seq2", 8, 50, 3)]
    item = train["S1 Seq1"][0]["4"]
    r = recs[1]
    assert r.root_joint == 14 and r.image_size == (2048, 2048) and r.valid is None
    np.testing.assert_allclose(r.keypoints_2d, item["data_2d"] / 2048 * 2 - 1, atol=1e-5)
    mm = item["data_3d"]
    np.testing.assert_allclose(r.poses_3d, (mm - mm[:, 14:15]) / 1000, atol=1e-6)   # mm -> m, pelvis-relative
    np.testing.assert_array_equal(r.poses_3d[:, 14], 0)
    np.testing.assert_allclose(r.root_trajectory, mm[:, 14] / 1000, atol=1e-6)
    assert np.allclose(load_3dhp_npz(tmp_path / "data_train_3dhp.npz", scale_3d=1.0)[1].poses_3d, mm - mm[:, 14:15],
                       atol=1e-3)

    test = {"TS1": {**_hp(rng, 5), "valid": np.array([1.0, 1, 0, 1, 0])},
            "TS5": {**_hp(rng, 3), "valid": np.array([0.0, 1, 1])}}
    np.savez_compressed(tmp_path / "data_test_3dhp.npz", data=test)
    recs = load_3dhp_npz(tmp_path / "data_test_3dhp.npz")
    assert [(r.subject, r.camera_index, r.image_size) for r in recs] == [("TS1", None, (2048, 2048)),
                                                                         ("TS5", None, (1920, 1080))]
    assert recs[0].valid.tolist() == [True, True, False, True, False] and recs[1].valid.dtype == bool
    px = test["TS5"]["data_2d"]
    np.testing.assert_allclose(recs[1].keypoints_2d[..., 1], px[..., 1] / 1920 * 2 - 1080 / 1920, atol=1e-5)
    with pytest.raises(SlimposeInputError, match="data_test_3dhp.npz.*a training file"):
        load_3dhp_npz(tmp_path / "data_test_3dhp.npz", split="train")
    test["TS1"]["valid"] = np.ones(4)
    np.savez_compressed(tmp_path / "bad_valid.npz", data=test)
    with pytest.raises(SlimposeInputError, match=r"bad_valid.npz.*'valid'\] has 4 frames"):
        load_3dhp_npz(tmp_path / "bad_valid.npz")
