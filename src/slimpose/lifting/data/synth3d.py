"""Synthetic motion for 3-D lifting: slimpose's synthetic 3-D body moved through smooth action trajectories,
seen by four Human3.6M-like cameras and written in VideoPose3D's layout.

**Joints.** The 17 Human3.6M joints (order of :data:`~slimpose.lifting.data.h36m.H36M_JOINT_NAMES`) are
points of the kinematic tree of :mod:`slimpose.data.synth_body` (the same forward kinematics as
:func:`~slimpose.data.synth_body.pose_body`, vectorised over frames):

* 0 root: the body's pelvis point (the midpoint of the two hip joints);
* 1-3 right hip / knee / foot, 4-6 left hip / knee / foot: the body's hip, knee and ankle joints (Human3.6M's
  "foot" joint sits at the ankle);
* 7 spine: the body's waist point, where the spine bends (0.32 of the pelvis -> neck-base length);
* 8 thorax: the body's neck base (the shoulders hang from it);
* 9 neck_base ("Neck/Nose"): a point fixed in the head frame, ``neck_length + 0.35 r`` above the neck base
  and ``0.55 r`` in front of it (r = head radius), in front of the neck at chin height;
* 10 head: a point fixed in the head frame, ``0.75 r`` above the head-sphere centre and ``0.1 r`` in front;
* 11-13 left shoulder / elbow / wrist, 14-16 right: the body's arm joints.

Every joint is rigid on its segment, so all 16 bone lengths are constant over a sequence.

**World frame** (Human3.6M): metres, z up, ground at z = 0. The body frame (x = the person's left, y = up,
z = forward) maps to world ``forward -> (cos yaw, sin yaw, 0)``, ``left -> (-sin yaw, cos yaw, 0)``,
``up -> z``. The pelvis height follows from ground contact: the lower ankle (a soft minimum, 1 cm
temperature) stays ``0.08 * height_scale`` above the ground.

**Motions** (50 fps, every trajectory C2-smooth): ``walking`` (a gait cycle of hip / knee / ankle curves,
arm swing, pelvis rotation and roll; the path turns back smoothly between 0.7 and 1.5 m from the capture
centre), ``turning`` (walking along an arc of 0.7-1.2 m radius, or stepping while turning in place by
90-180 degree turns), ``reaching`` (arm raises to random targets with torso lean and twist, knee bend for
low targets), ``sitting`` (sit down / stand up by hip and knee flexion with a forward lean; the pelvis
descends by ground contact and moves back over the planted feet) and ``random`` (random joint-angle
keyframes inside the joint limits). Keyframes are joined by minimum-jerk segments
(``10 s^3 - 15 s^4 + 6 s^5``), periodic curves are sums of sinusoids and von Mises bumps; a slow sway (two
sinusoids, 0.08-0.5 Hz, up to about 2 degrees) is added to every angle. The body moves over the floor as its
legs push it: the pelvis translation keeps the contact-weighted feet (the same soft minimum) still, plus,
when walking, a heel-to-toe roll of ``0.12 * height_scale`` m per stance, so walking speed (about
0.7-1.3 m/s) follows from cadence and step length and a planted foot does not slide.

**2-D.** World joints -> each camera (:func:`~slimpose.lifting.cameras.world_to_camera`) ->
:func:`~slimpose.lifting.cameras.project_to_2d` (with the cameras' distortion) -> pixels: the noise-free
``gt`` file. The ``synth_noisy`` file adds detector-like noise: per joint, per axis Gaussian jitter of
:data:`SYNTH3D_NOISE_PX` pixels (x ``noise_scale``), temporally correlated by an AR(1) process
(coefficient :data:`SYNTH3D_NOISE_CORRELATION`, the marginal standard deviation stays the same), and dropped
joints: spans of 1-8 frames (a joint-dependent rate, wrists and ankles most often, about ``drop_rate`` of
all joint-frames) in which the detector loses the joint and reports its **last reported position**
(forward fill; a span at the start of a sequence takes the first reported position after it). The files
hold no NaN; the dropped spans are listed in ``synth3d_meta.json``.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from slimpose.data.synth_body import JOINT_LIMITS, BodyShape, PoseAngles
from slimpose.lifting.cameras import H36M_CAMERA_IDS, H36M_IMAGE_SIZES, Camera, h36m_cameras
from slimpose.lifting.data.h36m import (H36M_FPS, H36M_JOINT_NAMES, H36M_METADATA, H36M_PARENTS,
                                        H36M_TEST_SUBJECTS, H36M_TRAIN_SUBJECTS, Keypoints2DMetadata,
                                        write_videopose3d_npz)
from slimpose.utils.io import SlimposeInputError, load_json, write_json_atomic

__all__ = [
    "MOTION_KINDS", "SYNTH3D_ACTIONS", "SYNTH3D_SUBJECT_ORDER", "SYNTH3D_NOISE_PX", "SYNTH3D_NOISE_CORRELATION",
    "SYNTH3D_FILES", "SYNTH3D_KEYPOINTS", "SynthMotion", "SynthSequence", "synth_motion", "h36m_joints_body",
    "pose_at", "synth3d_camera_tables", "synth3d_cameras", "project_sequence", "detector_noise",
    "synth3d_sequence", "generate_synth3d", "load_synth3d_masks",
]

#: The motion kinds, in the order sequences cycle through them.
MOTION_KINDS: tuple[str, ...] = ("walking", "turning", "reaching", "sitting", "random")
#: Motion kind -> the Human3.6M action group its sequences are named after (takes: "Walking", "Walking 1", ...).
SYNTH3D_ACTIONS: dict[str, str] = {
    "walking": "Walking", "turning": "WalkTogether", "reaching": "Directions", "sitting": "SittingDown",
    "random": "Posing",
}
#: Sequence i belongs to subject ``SYNTH3D_SUBJECT_ORDER[i % 7]``: train and test subjects interleaved, so
#: two sequences already give both splits.
SYNTH3D_SUBJECT_ORDER: tuple[str, ...] = ("S1", "S9", "S5", "S6", "S11", "S7", "S8")
#: Per-joint, per-axis standard deviation of the 2-D noise in pixels (``noise_scale=1``), H36M 17-joint order.
SYNTH3D_NOISE_PX: tuple[float, ...] = (2.5, 3.0, 3.0, 4.0, 3.0, 3.0, 4.0, 3.0, 2.5, 2.5, 3.0,
                                       2.5, 3.5, 4.5, 2.5, 3.5, 4.5)
#: AR(1) coefficient of the 2-D noise from one frame to the next.
SYNTH3D_NOISE_CORRELATION = 0.6
#: Relative drop rate of each joint (mean 1): wrists and ankles are lost most often.
_DROP_WEIGHTS = np.array([0.5, 0.7, 1.0, 1.5, 0.7, 1.0, 1.5, 0.5, 0.5, 0.7, 0.9,
                          0.7, 1.2, 2.0, 0.7, 1.2, 2.0])
_DROP_WEIGHTS = _DROP_WEIGHTS / _DROP_WEIGHTS.mean()
_DROP_MAX_LEN = 8
#: The 2-D file name suffix of the noisy detections: ``load_h36m(dir, cams, keypoints=SYNTH3D_KEYPOINTS)``.
SYNTH3D_KEYPOINTS = "synth_noisy"
#: The files :func:`generate_synth3d` writes (role -> file name).
SYNTH3D_FILES: dict[str, str] = {
    "data_3d": "data_3d_h36m.npz", "data_2d_gt": "data_2d_h36m_gt.npz",
    "data_2d_noisy": f"data_2d_h36m_{SYNTH3D_KEYPOINTS}.npz", "cameras": "h36m_cameras.json",
    "meta": "synth3d_meta.json",
}
_FORMAT = "slimpose synth3d"
_VERSION = 1

# Camera placement (world, metres): azimuth of the camera seen from the capture centre (degrees), distance
# from it, height; as the Human3.6M rig (cameras near the corners of the room, about 1.5 m high).
_CAM_AZIMUTH = (70.0, -70.0, 110.0, -112.0)
_CAM_DISTANCE = (5.2, 5.4, 5.5, 5.0)
_CAM_HEIGHT = (1.56, 1.6, 1.49, 1.57)
# Rounded Human3.6M-like intrinsics (pixels): focal length, principal point, radial distortion.
_CAM_FOCAL = ((1145.0, 1144.0), (1150.0, 1148.0), (1149.0, 1149.0), (1146.0, 1145.0))
_CAM_CENTER = ((513.0, 515.0), (509.0, 508.0), (520.0, 501.0), (515.0, 502.0))
_CAM_RADIAL = ((-0.21, 0.25, 0.0), (-0.19, 0.24, 0.0), (-0.21, 0.26, 0.0), (-0.2, 0.22, 0.0))

# Angle channels of a motion (degrees): the scalar angles of PoseAngles, then its (left, right) pairs, then
# the world yaw offset of the whole body.
_SCALARS = ("root_pitch", "root_roll", "spine_flex", "spine_side", "spine_twist", "head_flex", "head_yaw",
            "head_roll")
_PAIRS = ("shoulder_flex", "shoulder_abd", "shoulder_twist", "elbow", "hip_flex", "hip_abd", "hip_twist", "knee",
          "ankle")
_CH = {name: i for i, name in enumerate(_SCALARS)}
for _k, _name in enumerate(_PAIRS):
    _CH[_name] = len(_SCALARS) + 2 * _k          # left; right = +1
_YAW = len(_SCALARS) + 2 * len(_PAIRS)
_NCH = _YAW + 1
_AREA_INNER, _AREA_OUTER = 0.7, 1.5             # the walking path turns back between these radii (m)
_STEER_DEG_S = 100.0                            # the strongest steering rate
_ROLL = 0.12                                    # heel-to-toe roll per stance, x height_scale (m)


# --------------------------------------------------------------------------------------------------
# records

@dataclass
class SynthMotion:
    """One motion of one body: joint-angle trajectories and the 17 H36M joints in world coordinates."""

    kind: str
    shape: BodyShape
    angles: PoseAngles            # fields as time series: scalars (T,), pairs (T, 2), degrees
    yaw: np.ndarray               # (T,) world heading of the body, radians
    root: np.ndarray              # (T, 3) pelvis, world, metres
    positions_3d: np.ndarray      # (T, 17, 3) world, metres, float64


@dataclass
class SynthSequence:
    """A generated sequence: its motion, its name in the files and its four cameras' 2-D."""

    index: int
    subject: str
    action: str
    motion: SynthMotion
    keypoints_2d_gt: list[np.ndarray]   # 4 x (T, 17, 2) pixels, noise-free
    keypoints_2d: list[np.ndarray]      # 4 x (T, 17, 2) pixels, detector-like
    dropped: np.ndarray                 # (4, T, 17) bool


# --------------------------------------------------------------------------------------------------
# smooth curves

def _min_jerk(times: np.ndarray, values: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Keyframes ``values (K, C)`` at increasing ``times (K,)`` joined by minimum-jerk segments, at ``t``; held
    before the first and after the last keyframe. C2-smooth, never outside the keyframes' range."""
    k = np.clip(np.searchsorted(times, t, side="right") - 1, 0, len(times) - 1)
    k1 = np.minimum(k + 1, len(times) - 1)
    span = np.where(k1 > k, times[k1] - times[k], 1.0)
    s = np.clip((t - times[k]) / span, 0.0, 1.0)
    w = s ** 3 * (10.0 - 15.0 * s + 6.0 * s * s)
    return values[k] + w[:, None] * (values[k1] - values[k])


def _sway(rng: np.random.Generator, t: np.ndarray, amplitude: float, shape: tuple[int, ...]) -> np.ndarray:
    """Slow sums of two sinusoids (0.08-0.5 Hz) of ``amplitude`` (each), one per entry of ``shape``."""
    f = rng.uniform(0.08, 0.5, size=(2,) + shape)
    a = rng.uniform(0.3, 1.0, size=(2,) + shape) * amplitude
    p = rng.uniform(0.0, 2 * np.pi, size=(2,) + shape)
    tt = t.reshape((-1,) + (1,) * len(shape))
    return sum(a[i] * np.sin(2 * np.pi * f[i] * tt + p[i]) for i in range(2))


def _vm(x: np.ndarray, kappa: float) -> np.ndarray:
    """A von Mises bump on the circle: 1 at ``x = 0``, smooth and periodic."""
    return np.exp(kappa * (np.cos(x) - 1.0))


# --------------------------------------------------------------------------------------------------
# postures and motions (channels (T, _NCH), degrees)

def _base_posture(rng: np.random.Generator) -> np.ndarray:
    """A relaxed standing posture with per-sequence style."""
    c = np.zeros(_NCH)
    u = rng.uniform

    def pair(name: str, lo: float, hi: float) -> None:
        c[_CH[name]: _CH[name] + 2] = u(lo, hi, size=2)

    c[_CH["root_pitch"]], c[_CH["root_roll"]] = u(-3, 3), u(-2, 2)
    c[_CH["spine_flex"]], c[_CH["spine_side"]], c[_CH["spine_twist"]] = u(0, 8), u(-3, 3), u(-4, 4)
    c[_CH["head_flex"]], c[_CH["head_yaw"]], c[_CH["head_roll"]] = u(-5, 12), u(-10, 10), u(-4, 4)
    pair("shoulder_flex", -5, 10)
    pair("shoulder_abd", 4, 14)
    pair("shoulder_twist", 0, 20)
    pair("elbow", 8, 25)
    pair("hip_flex", 0, 6)
    pair("hip_abd", 2, 7)
    pair("hip_twist", 0, 6)
    pair("knee", 2, 8)
    pair("ankle", -3, 3)
    return c


def _gait(phase: np.ndarray, amp: np.ndarray, arm: float) -> np.ndarray:
    """Joint-angle increments of walking at gait phase ``phase (T,)`` (0 = left heel strike), ``amp (T,)``
    scales the leg curves (1 = a normal walk, ~0.3 = stepping in place), ``arm`` the arm swing (degrees)."""
    d = np.zeros((len(phase), _NCH))
    for side, ph in ((0, phase), (1, phase + np.pi)):
        d[:, _CH["hip_flex"] + side] = amp * (9.0 + 21.0 * np.cos(ph + 0.15 * np.pi))   # max at 92 %
        d[:, _CH["knee"] + side] = amp * (14.0 * _vm(ph - 0.3 * np.pi, 10.0) + 50.0 * _vm(ph - 1.44 * np.pi, 3.5))
        d[:, _CH["ankle"] + side] = amp * (8.0 * _vm(ph - 0.7 * np.pi, 3.0) - 14.0 * _vm(ph - 1.24 * np.pi, 6.0))
        d[:, _CH["shoulder_flex"] + side] = -arm * np.cos(ph)
        d[:, _CH["elbow"] + side] = 0.4 * arm * (1.0 - np.cos(ph))
    d[:, _CH["root_roll"]] = 3.0 * amp * np.sin(phase)
    d[:, _YAW] = 5.0 * amp * np.cos(phase)                 # pelvis rotation with the forward leg
    d[:, _CH["spine_twist"]] = -4.0 * amp * np.cos(phase)  # the chest turns back against it
    return d


def _integrate_path(disp: np.ndarray, omega: np.ndarray, start: np.ndarray, psi0: float, turn_sign: float,
                    fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Walk the per-frame displacements ``disp (T-1, 2)`` (forward, left; metres, heading frame) from ``start``
    (2,) at heading ``psi0`` turning at ``omega (T,)`` (rad/s); beyond :data:`_AREA_INNER` of the capture
    centre a smooth steering term (up to :data:`_STEER_DEG_S`, full at :data:`_AREA_OUTER`) turns the walker
    back (preferring the ``turn_sign`` side). Returns positions (T, 2) and headings (T,)."""
    n = len(omega)
    pos = np.empty((n, 2))
    psi = np.empty(n)
    x, y, ps = float(start[0]), float(start[1]), float(psi0)
    k = math.radians(_STEER_DEG_S)
    for i in range(n):
        pos[i] = x, y
        psi[i] = ps
        if i == n - 1:
            break
        r = math.hypot(x, y)
        s = min(max((r - _AREA_INNER) / (_AREA_OUTER - _AREA_INNER), 0.0), 1.0)
        g = s * s * (3.0 - 2.0 * s)
        err = math.atan2(-y, -x) - ps
        steer = math.sin(err) + 0.5 * (1.0 - math.cos(err)) * turn_sign
        c, sn = math.cos(ps), math.sin(ps)
        f, lft = float(disp[i, 0]), float(disp[i, 1])
        x += f * c - lft * sn
        y += f * sn + lft * c
        ps += (float(omega[i]) + k * g * steer) / fps
    return pos, psi


def _gait_channels(rng: np.random.Generator, t: np.ndarray, amp: float) -> tuple[np.ndarray, float]:
    """Gait channels and cadence of a walk (0.9-1.05 gait cycles per second, two steps each); the speed
    follows from the legs (see :func:`synth_motion`)."""
    f = rng.uniform(0.9, 1.05)
    phase = 2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)
    ch = _gait(phase, np.full(len(t), amp), arm=rng.uniform(12, 25) * amp)
    ch[:, _CH["head_flex"]] += rng.uniform(0, 10)
    return ch, f


def _arc_start(centre: np.ndarray, radius: float, psi0: float, sign: float) -> np.ndarray:
    """The start point of a circle of ``radius`` around ``centre`` walked from heading ``psi0`` turning to the
    left (``sign`` +1) or right (-1)."""
    return centre - sign * radius * np.array([-math.sin(psi0), math.cos(psi0)])


def _reach_keyframes(rng: np.random.Generator, rest: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Rest -> reach -> hold -> (another target | rest) ... until ``duration`` seconds."""
    u = rng.uniform
    times, poses = [0.0], [rest.copy()]
    now = u(0.0, 0.6)
    first = True
    while now < duration + 2.0:
        p = rest.copy()
        sides = [int(rng.integers(2))] if rng.random() < 0.7 else [0, 1]
        low = not first and rng.random() < 0.3              # a low target: lean and bend the knees
        flex = u(20, 60) if low else u(80, 165)
        first = False
        for s in sides:
            p[_CH["shoulder_flex"] + s] = flex + u(-10, 10)
            p[_CH["shoulder_abd"] + s] = u(0, 80)
            p[_CH["shoulder_twist"] + s] = u(-20, 40)
            p[_CH["elbow"] + s] = u(5, 50)
        p[_CH["spine_flex"]] = rest[_CH["spine_flex"]] + (u(20, 40) if low else u(8, 20))
        p[_CH["spine_twist"]] = u(5, 25) * (1 if sides == [0] else -1 if sides == [1] else 0)
        p[_CH["spine_side"]] = u(-10, 10)
        p[_CH["head_flex"]] = u(10, 35) if low else u(-25, 5)
        if low:
            bend = u(10, 40)
            p[_CH["hip_flex"]: _CH["hip_flex"] + 2] = bend + u(-5, 5, size=2)
            p[_CH["knee"]: _CH["knee"] + 2] = bend * 1.3 + u(-5, 5, size=2)
        now += u(0.6, 1.2)
        times.append(now)
        poses.append(p)
        now += u(0.2, 0.8)                                  # hold
        times.append(now)
        poses.append(p)
        if rng.random() < 0.6:                              # back to rest
            now += u(0.6, 1.1)
            times.append(now)
            poses.append(rest.copy())
            now += u(0.1, 0.6)
    return np.asarray(times), np.stack(poses)


def _sit_keyframes(rng: np.random.Generator, stand: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Stand -> (lean, half down) -> seated -> hold -> (lean, half up) -> stand -> hold, repeated."""
    u = rng.uniform
    seat = stand.copy()
    # both legs flex alike (each keeps its standing offset), so the planted feet keep their places
    hip, knee, spread = u(82, 98), u(-6, 6), u(0, 3)
    for s in range(2):
        seat[_CH["hip_flex"] + s] = stand[_CH["hip_flex"] + s] + hip
        seat[_CH["knee"] + s] = stand[_CH["knee"] + s] + hip + knee          # shins about vertical
        seat[_CH["hip_abd"] + s] = stand[_CH["hip_abd"] + s] + spread
        seat[_CH["shoulder_flex"] + s] = u(5, 35)
        seat[_CH["elbow"] + s] = u(40, 90)
    seat[_CH["spine_flex"]] = u(0, 15)

    def halfway() -> np.ndarray:
        m = 0.5 * (stand + seat)
        m[_CH["spine_flex"]] = u(30, 45)
        m[_CH["head_flex"]] = u(-15, 0)
        m[_CH["shoulder_flex"]: _CH["shoulder_flex"] + 2] = u(15, 45, size=2)
        return m

    times, poses = [], []
    now = 0.0
    seated = rng.random() < 0.3
    now -= u(0.0, 0.8)                                      # start inside the first hold
    while now < duration + 2.0:
        first, last = (seat, stand) if seated else (stand, seat)
        times += [now, now + u(0.5, 2.0)]                   # hold
        poses += [first, first]
        now = times[-1] + u(0.6, 0.9)
        times.append(now)
        poses.append(halfway())
        now += u(0.5, 0.8)
        times.append(now)
        poses.append(last)
        now += 1e-3
        seated = not seated
    return np.asarray(times), np.stack(poses)


def _random_keyframes(rng: np.random.Generator, base: np.ndarray, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Random postures inside the joint limits (middle 60 % of each range; legs moderate), each reached in
    0.8-1.6 s or slower, so that no angle turns faster than about 190 deg/s (minimum-jerk peak)."""
    times, poses = [0.0], [base.copy()]
    now = 0.0
    while now < duration + 2.0:
        p = base.copy()
        for name in _SCALARS[2:] + _PAIRS:
            lo, hi = JOINT_LIMITS[name]
            mid, half = 0.5 * (lo + hi), 0.3 * (hi - lo)
            n = 2 if name in _PAIRS else 1
            idx = slice(_CH[name], _CH[name] + n)
            p[idx] = rng.uniform(mid - half, mid + half, size=n)
        p[_CH["root_pitch"]], p[_CH["root_roll"]] = rng.uniform(-10, 10, size=2)
        p[_CH["hip_flex"]: _CH["hip_flex"] + 2] = rng.uniform(-15, 60, size=2)
        for s in range(2):                                   # knee flexion follows the hip
            p[_CH["knee"] + s] = rng.uniform(3, min(70.0, max(p[_CH["hip_flex"] + s], 0.0) + 25.0))
        p[_CH["hip_twist"]: _CH["hip_twist"] + 2] = rng.uniform(-15, 25, size=2)
        p[_CH["hip_abd"]: _CH["hip_abd"] + 2] = rng.uniform(0, 30, size=2)
        p[_YAW] = poses[-1][_YAW] + rng.uniform(-45, 45)
        now += max(rng.uniform(0.8, 1.6), np.abs(p - poses[-1]).max() / 100.0)
        times.append(now)
        poses.append(p)
    return np.asarray(times), np.stack(poses)


def _channels_to_angles(kind: str, ch: np.ndarray) -> PoseAngles:
    kw: dict[str, Any] = {name: ch[:, _CH[name]].copy() for name in _SCALARS}
    kw.update({name: ch[:, _CH[name]: _CH[name] + 2].copy() for name in _PAIRS})
    return PoseAngles(pose_class=kind, **kw)


def pose_at(angles: PoseAngles, frame: int) -> PoseAngles:
    """Frame ``frame`` of a time-series :class:`PoseAngles` as the per-frame one ``pose_body`` takes."""
    kw: dict[str, Any] = {name: float(getattr(angles, name)[frame]) for name in _SCALARS}
    kw.update({name: np.asarray(getattr(angles, name)[frame], float) for name in _PAIRS})
    return PoseAngles(pose_class=angles.pose_class, **kw)


# --------------------------------------------------------------------------------------------------
# vectorised forward kinematics (slimpose.data.synth_body.pose_body over frames)

def _rot(axis: int, deg: np.ndarray) -> np.ndarray:
    a = np.deg2rad(np.asarray(deg, float))
    c, s = np.cos(a), np.sin(a)
    r = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (0, 2), (0, 1)][axis]
    r[..., axis, axis] = 1.0
    r[..., i, i], r[..., j, j] = c, c
    if axis == 1:                                           # rot_y: [[c, 0, s], [0, 1, 0], [-s, 0, c]]
        r[..., i, j], r[..., j, i] = s, -s
    else:                                                   # rot_x / rot_z: [[c, -s], [s, c]] on (i, j)
        r[..., i, j], r[..., j, i] = -s, s
    return r


def _apply(r: np.ndarray, v: Any) -> np.ndarray:
    return np.einsum("...ij,...j->...i", r, np.asarray(v, float))


def h36m_joints_body(shape: BodyShape, angles: PoseAngles) -> np.ndarray:
    """The 17 H36M joints ``(T, 17, 3)`` in the body frame (pelvis at the origin; x left, y up, z forward) of
    time-series ``angles``: the kinematics of :func:`slimpose.data.synth_body.pose_body` for every frame
    at once, with the joint placement of this module's docstring."""
    pitch = np.asarray(angles.root_pitch, float)
    n = pitch.shape[0]
    r_pelvis = _rot(0, pitch) @ _rot(2, angles.root_roll)
    half = _rot(1, np.asarray(angles.spine_twist) / 2) @ _rot(2, np.asarray(angles.spine_side) / 2) \
        @ _rot(0, np.asarray(angles.spine_flex) / 2)
    r_abdomen = r_pelvis @ half
    r_chest = r_abdomen @ half
    waist = _apply(r_abdomen, [0.0, 0.32 * shape.torso_length, 0.0])
    neck_base = waist + _apply(r_chest, [0.0, 0.68 * shape.torso_length, 0.0])
    r_head = r_chest @ _rot(1, angles.head_yaw) @ _rot(0, angles.head_flex) @ _rot(2, angles.head_roll)
    hr = shape.head_radius
    center = neck_base + _apply(r_head, [0.0, shape.neck_length + 0.9 * hr, 0.12 * hr])
    out = np.zeros((n, 17, 3))
    out[:, 7], out[:, 8] = waist, neck_base
    out[:, 9] = neck_base + _apply(r_head, [0.0, shape.neck_length + 0.35 * hr, 0.55 * hr])
    out[:, 10] = center + _apply(r_head, [0.0, 0.75 * hr, 0.1 * hr])
    down = np.array([0.0, -1.0, 0.0])
    sf, sa, st = (np.asarray(getattr(angles, k), float) for k in ("shoulder_flex", "shoulder_abd", "shoulder_twist"))
    el = np.asarray(angles.elbow, float)
    hf, ha, ht = (np.asarray(getattr(angles, k), float) for k in ("hip_flex", "hip_abd", "hip_twist"))
    kn = np.asarray(angles.knee, float)
    for side, sign, (j_hip, j_knee, j_foot, j_sh, j_el, j_wr) in (
            (0, 1.0, (4, 5, 6, 11, 12, 13)), (1, -1.0, (1, 2, 3, 14, 15, 16))):
        shoulder = neck_base + _apply(r_chest, [sign * shape.shoulder_half_width, -0.035, 0.0])
        r_ua = r_chest @ _rot(2, sign * sa[:, side]) @ _rot(0, -sf[:, side]) @ _rot(1, sign * st[:, side])
        elbow = shoulder + _apply(r_ua, down * shape.upper_arm)
        r_fa = r_ua @ _rot(0, -el[:, side])
        wrist = elbow + _apply(r_fa, down * shape.forearm)
        hip = _apply(r_pelvis, [sign * shape.hip_half_width, 0.0, 0.0])
        r_th = r_pelvis @ _rot(2, sign * ha[:, side]) @ _rot(0, -hf[:, side]) @ _rot(1, sign * ht[:, side])
        knee = hip + _apply(r_th, down * shape.thigh)
        r_sh = r_th @ _rot(0, kn[:, side])
        ankle = knee + _apply(r_sh, down * shape.shin)
        out[:, j_hip], out[:, j_knee], out[:, j_foot] = hip, knee, ankle
        out[:, j_sh], out[:, j_el], out[:, j_wr] = shoulder, elbow, wrist
    return out


def _to_world(body: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Body-frame vectors (T, J, 3) -> world orientation (z up) at heading ``yaw (T,)`` (radians)."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    left, up, fwd = body[..., 0], body[..., 1], body[..., 2]
    return np.stack([c * fwd - s * left, s * fwd + c * left, up], axis=-1)


# --------------------------------------------------------------------------------------------------
# a motion

def synth_motion(kind: str, frames: int, rng: np.random.Generator, fps: float = H36M_FPS,
                 shape: BodyShape | None = None) -> SynthMotion:
    """One motion of ``kind`` (:data:`MOTION_KINDS`) over ``frames`` frames at ``fps``; the body shape is
    sampled from ``rng`` unless given. Deterministic for a given generator state."""
    if kind not in MOTION_KINDS:
        raise ValueError(f"unknown motion kind {kind!r}: expected one of {list(MOTION_KINDS)}")
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    shape = shape if shape is not None else BodyShape.sample(rng)
    t = np.arange(frames) / fps
    duration = frames / fps
    base = _base_posture(rng)
    ch = np.tile(base, (frames, 1))
    psi = np.full(frames, rng.uniform(-np.pi, np.pi))
    start = rng.uniform(-0.4, 0.4, size=2)
    walk: dict[str, Any] | None = None                          # a walked path (walking, turning on an arc)
    if kind == "walking":
        gait, cadence = _gait_channels(rng, t, rng.uniform(0.95, 1.2))
        ch += gait
        psi0 = rng.uniform(-np.pi, np.pi)                       # start behind the centre: cross the area first
        behind = -rng.uniform(0.3, 0.9) * np.array([math.cos(psi0), math.sin(psi0)]) + rng.uniform(-0.3, 0.3, 2)
        walk = {"cadence": cadence, "omega": np.deg2rad(_sway(rng, t, 6.0, ())), "start": behind, "psi0": psi0,
                "sign": float(rng.choice([-1.0, 1.0]))}
    elif kind == "turning" and rng.random() < 0.6:            # along an arc of 0.7-1.2 m radius
        gait, cadence = _gait_channels(rng, t, rng.uniform(0.7, 0.9))
        ch += gait
        sign = float(rng.choice([-1.0, 1.0]))
        ch[:, _CH["spine_side"]] += -3.0 * sign                 # lean into the turn
        walk = {"cadence": cadence, "radius": rng.uniform(0.7, 1.2), "psi0": rng.uniform(-np.pi, np.pi), "sign": sign,
                "modulation": 1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.1, 0.3) * t + rng.uniform(0, 2 * np.pi)),
                "centre": rng.uniform(-0.15, 0.15, size=2)}
    elif kind == "turning":                                     # in place
        times, turns = [0.0], [0.0]
        now = rng.uniform(-0.5, 0.0)
        while now < duration + 2.0:
            now += rng.uniform(0.2, 0.8)
            times.append(max(now, times[-1] + 1e-3))
            turns.append(turns[-1])
            now += rng.uniform(1.0, 2.0)
            times.append(now)
            turns.append(turns[-1] + rng.uniform(90, 180) * rng.choice([-1.0, 1.0]))
        times_a = np.asarray(times)
        yaw_deg = _min_jerk(times_a, np.asarray(turns)[:, None], t)[:, 0]
        rate = np.abs(np.gradient(yaw_deg, t)) if frames > 1 else np.zeros(1)
        amp = 0.35 * np.clip(rate / 90.0, 0.0, 1.0)
        phase = 2 * np.pi * rng.uniform(0.9, 1.2) * t + rng.uniform(0, 2 * np.pi)
        ch += _gait(phase, amp, arm=0.0)
        ch[:, _YAW] += yaw_deg
        ch[:, _CH["head_yaw"]] += np.clip(np.gradient(yaw_deg, t) * 0.15, -20, 20) if frames > 1 else 0.0
    elif kind == "reaching":
        times, poses = _reach_keyframes(rng, base, duration)
        ch = _min_jerk(times, poses, t)
    elif kind == "sitting":
        times, poses = _sit_keyframes(rng, base, duration)
        ch = _min_jerk(times, poses, t)
    else:
        times, poses = _random_keyframes(rng, base, duration)
        ch = _min_jerk(times, poses, t)
    sway = _sway(rng, t, 1.2, (_NCH,))
    sway[:, _YAW] *= 0.5
    sway[:, _CH["knee"]: _CH["knee"] + 2] *= 0.3             # keep knee flexion off its 0 limit
    if walk is None:                                        # standing: the legs barely sway (planted feet)
        sway[:, _CH["hip_flex"]: _CH["ankle"] + 2] *= 0.25
    ch = ch + sway
    for name, (lo, hi) in JOINT_LIMITS.items():              # a guard: the curves stay inside already
        n = 2 if name in _PAIRS else 1
        ch[:, _CH[name]: _CH[name] + n] = np.clip(ch[:, _CH[name]: _CH[name] + n], lo, hi)
    angles = _channels_to_angles(kind, ch)
    body = h36m_joints_body(shape, angles)
    # ground contact: the lower ankle (soft minimum) 0.08 m * height_scale above the floor
    tau = 0.01
    heights = body[:, [3, 6], 1]
    low = heights.min(axis=1, keepdims=True)
    wts = np.exp(-(heights - low) / tau)
    soft_min = low[:, 0] - tau * np.log(wts.sum(axis=1))
    wts = wts / wts.sum(axis=1, keepdims=True)
    w_mid = 0.5 * (wts[1:] + wts[:-1])[:, :, None]
    root = np.zeros((frames, 3))
    root[:, 2] = 0.08 * shape.height_scale - soft_min
    if walk is not None:
        # the legs push the body: per-frame displacement that keeps the contact-weighted feet in place,
        # in the heading frame (forward, left) including the pelvis rotation of the yaw channel
        rel_h = _to_world(body, np.deg2rad(ch[:, _YAW]))[:, [3, 6], :2]
        disp = -(w_mid * np.diff(rel_h, axis=0)).sum(axis=1)
        # heel-to-toe roll: in each stance the contact moves _ROLL x height_scale along the planted foot,
        # so the stance ankle travels forward over it (two stances per gait cycle)
        disp[:, 0] += _ROLL * shape.height_scale * 2.0 * walk["cadence"] / fps
        if "radius" in walk:
            speed = float(np.linalg.norm(disp, axis=1).mean() * fps) if frames > 1 else 1.0
            walk["omega"] = walk["sign"] * speed / walk["radius"] * walk["modulation"]
            walk["start"] = _arc_start(walk["centre"], walk["radius"], walk["psi0"], walk["sign"])
        path, psi = _integrate_path(disp, walk["omega"], walk["start"], walk["psi0"], walk["sign"], fps)
        root[:, :2] = path
    yaw = psi + np.deg2rad(ch[:, _YAW])
    rel = _to_world(body, yaw)                               # world orientation, pelvis at the origin
    if walk is None:
        # standing motions: the pelvis moves so that the contact-weighted feet do not slide (velocity level)
        feet = rel[:, [3, 6], :2]
        step = (w_mid * np.diff(feet, axis=0)).sum(axis=1)
        root[0, :2] = start - (wts[0, :, None] * feet[0]).sum(axis=0)
        root[1:, :2] = root[0, :2] - np.cumsum(step, axis=0)
    return SynthMotion(kind=kind, shape=shape, angles=angles, yaw=yaw, root=root,
                       positions_3d=rel + root[:, None, :])


# --------------------------------------------------------------------------------------------------
# cameras

def _look_at_quaternion(centre: np.ndarray, target: np.ndarray) -> tuple[float, float, float, float]:
    """Camera -> world rotation quaternion ``(w, x, y, z)`` of a camera at ``centre`` looking at ``target``
    with no roll (camera x right, y down, z forward; world z up)."""
    z = target - centre
    z = z / np.linalg.norm(z)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.stack([x, y, z], axis=1)                         # columns: camera axes in world coordinates
    w = math.sqrt(max(0.0, 1.0 + m[0, 0] + m[1, 1] + m[2, 2])) / 2.0
    if w > 1e-6:
        q = np.array([w, (m[2, 1] - m[1, 2]) / (4 * w), (m[0, 2] - m[2, 0]) / (4 * w), (m[1, 0] - m[0, 1]) / (4 * w)])
    else:                                                   # a half turn: not reached by this rig
        raise ValueError("camera orientation is a half turn; move the camera")
    q = q / np.linalg.norm(q)
    return tuple(float(v) for v in q)  # type: ignore[return-value]


def synth3d_camera_tables(seed: int) -> dict[str, Any]:
    """The camera JSON of :func:`generate_synth3d` for ``seed``: ``{"intrinsic": [4 VideoPose3D intrinsic
    dicts], "extrinsic": {subject: [4 {"orientation": (w, x, y, z), "translation": mm}]}}`` for all seven
    Human3.6M mocap subjects. Each subject's rig is the base rig jittered (azimuth +-2 deg, distance +-0.1 m,
    height +-0.05 m, look-at point +-0.15 m around (0, 0, 0.9))."""
    intrinsic = []
    for i, cam_id in enumerate(H36M_CAMERA_IDS):
        w, h = H36M_IMAGE_SIZES[cam_id]
        intrinsic.append({"id": cam_id, "center": list(_CAM_CENTER[i]), "focal_length": list(_CAM_FOCAL[i]),
                          "radial_distortion": list(_CAM_RADIAL[i]), "tangential_distortion": [0.0, 0.0],
                          "res_w": w, "res_h": h, "azimuth": _CAM_AZIMUTH[i]})
    extrinsic: dict[str, list[dict[str, list[float]]]] = {}
    for k, subject in enumerate(H36M_TRAIN_SUBJECTS + H36M_TEST_SUBJECTS):
        rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(0, k)))
        row = []
        for i in range(len(H36M_CAMERA_IDS)):
            az = math.radians(_CAM_AZIMUTH[i] + rng.uniform(-2, 2))
            dist = _CAM_DISTANCE[i] + rng.uniform(-0.1, 0.1)
            centre = np.array([dist * math.cos(az), dist * math.sin(az), _CAM_HEIGHT[i] + rng.uniform(-0.05, 0.05)])
            target = np.array([rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15), 0.9 + rng.uniform(-0.1, 0.1)])
            row.append({"orientation": list(_look_at_quaternion(centre, target)),
                        "translation": [float(v) for v in centre * 1000.0]})
        extrinsic[subject] = row
    return {"intrinsic": intrinsic, "extrinsic": extrinsic}


def synth3d_cameras(seed: int) -> dict[str, list[Camera]]:
    """``subject -> 4 Camera`` of :func:`synth3d_camera_tables`, read as ``load_h36m_cameras`` reads the file."""
    tables = synth3d_camera_tables(seed)
    return h36m_cameras(tables["intrinsic"], tables["extrinsic"], source=f"synth3d cameras (seed {seed})")


# --------------------------------------------------------------------------------------------------
# 2-D

def project_sequence(positions_3d: np.ndarray, cameras: Sequence[Camera]) -> list[np.ndarray]:
    """World joints ``(T, J, 3)`` (metres) -> one float64 ``(T, J, 2)`` pixel array per camera, with each
    camera's distortion (as the official ``gt`` 2-D)."""
    return [np.asarray(cam.project(cam.world_to_camera(np.asarray(positions_3d, float)), pixels=True), float)
            for cam in cameras]


def detector_noise(keypoints_2d: Sequence[np.ndarray], rng: np.random.Generator, noise_scale: float = 1.0,
                   drop_rate: float = 0.02) -> tuple[list[np.ndarray], np.ndarray]:
    """Detector-like 2-D from noise-free ``keypoints_2d`` (C x (T, 17, 2) pixels): AR(1) Gaussian jitter of
    :data:`SYNTH3D_NOISE_PX` x ``noise_scale`` pixels per axis (coefficient :data:`SYNTH3D_NOISE_CORRELATION`)
    and dropped spans (1-8 frames, about ``drop_rate`` of the joint-frames, joint-dependent) filled with the
    last reported position (the first one after, at the start). Returns the noisy arrays and the (C, T, 17)
    dropped mask. A joint lost for a whole sequence is kept instead (never happens beyond a few frames)."""
    clean = np.stack([np.asarray(k, float) for k in keypoints_2d])          # (C, T, J, 2)
    c, n, j, _ = clean.shape
    if j != len(SYNTH3D_NOISE_PX):
        raise ValueError(f"detector_noise: expected {len(SYNTH3D_NOISE_PX)} joints, got {j}")
    sigma = np.asarray(SYNTH3D_NOISE_PX)[None, :, None] * float(noise_scale)
    rho = SYNTH3D_NOISE_CORRELATION
    white = rng.standard_normal((n, c, j, 2))
    noise = np.empty((n, c, j, 2))
    noise[0] = white[0]
    inno = math.sqrt(1.0 - rho * rho)
    for i in range(1, n):
        noise[i] = rho * noise[i - 1] + inno * white[i]
    noisy = clean + np.moveaxis(noise, 0, 1) * sigma
    mean_len = (1 + _DROP_MAX_LEN) / 2.0
    p_start = np.clip(float(drop_rate) * _DROP_WEIGHTS / mean_len, 0.0, 1.0)
    starts = rng.random((c, n, j)) < p_start
    lengths = rng.integers(1, _DROP_MAX_LEN + 1, size=(c, n, j))
    dropped = np.zeros((c, n, j), bool)
    for k in range(min(_DROP_MAX_LEN, n)):
        hit = starts[:, : n - k] & (lengths[:, : n - k] > k)
        dropped[:, k:] |= hit
    dropped &= ~dropped.all(axis=1, keepdims=True)
    frame = np.arange(n)[None, :, None]
    last = np.maximum.accumulate(np.where(dropped, -1, frame), axis=1)          # last reported frame
    first_after = np.minimum.accumulate(np.where(dropped, n, frame)[:, ::-1], axis=1)[:, ::-1]
    src = np.where(last >= 0, last, first_after)
    src = np.broadcast_to(src[..., None], noisy.shape)
    filled = np.take_along_axis(noisy, src, axis=1)
    return [filled[i] for i in range(c)], dropped


def _runs(dropped: np.ndarray) -> list[list[int]]:
    """The dropped spans of a (C, T, J) mask as ``[camera, joint, first_frame, num_frames]``, sorted."""
    out = []
    c, n, j = dropped.shape
    pad = np.zeros((c, 1, j), bool)
    d = np.diff(np.concatenate([pad, dropped, pad], axis=1).astype(np.int8), axis=1)
    for cam, t0, jj in zip(*np.nonzero(d == 1)):
        t1 = int(np.argmax(d[cam, t0:, jj] == -1)) + t0
        out.append([int(cam), int(jj), int(t0), int(t1 - t0)])
    return sorted(out)


# --------------------------------------------------------------------------------------------------
# sequences and files

def _action_name(index: int, kinds: Sequence[str]) -> str:
    """The action name of sequence ``index``: its kind's group, numbered by the earlier takes of that group
    by the same subject ("Walking", "Walking 1", ...)."""
    n = len(SYNTH3D_SUBJECT_ORDER)
    group = SYNTH3D_ACTIONS[kinds[index % len(kinds)]]
    take = sum(1 for j in range(index % n, index, n) if SYNTH3D_ACTIONS[kinds[j % len(kinds)]] == group)
    return group if take == 0 else f"{group} {take}"


def synth3d_sequence(index: int, seed: int, frames: int, cameras: Mapping[str, Sequence[Camera]],
                     kinds: Sequence[str] = MOTION_KINDS, noise_scale: float = 1.0,
                     drop_rate: float = 0.02) -> SynthSequence:
    """Sequence ``index`` of ``seed``: subject ``SYNTH3D_SUBJECT_ORDER[index % 7]``, kind
    ``kinds[index % len(kinds)]``, its motion, noise-free and noisy 2-D in the subject's ``cameras`` and the
    dropped mask. It depends on ``index``, ``seed`` and the arguments only, not on how many sequences are made."""
    subject = SYNTH3D_SUBJECT_ORDER[index % len(SYNTH3D_SUBJECT_ORDER)]
    kind = kinds[index % len(kinds)]
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(1, int(index))))
    motion = synth_motion(kind, frames, rng)
    gt = project_sequence(motion.positions_3d, cameras[subject])
    noisy, dropped = detector_noise(gt, rng, noise_scale, drop_rate)
    return SynthSequence(index=int(index), subject=subject, action=_action_name(int(index), kinds), motion=motion,
                         keypoints_2d_gt=gt, keypoints_2d=noisy, dropped=dropped)


def _check_args(out: Path, sequences: int, frames: int, seed: int, kinds: Sequence[str], noise_scale: float,
                drop_rate: float) -> None:
    if int(sequences) < 1:
        raise SlimposeInputError(f"synth3d {out}: --sequences must be >= 1, got {sequences}")
    if int(frames) < 1:
        raise SlimposeInputError(f"synth3d {out}: --frames must be >= 1, got {frames}")
    if int(seed) < 0:
        raise SlimposeInputError(f"synth3d {out}: --seed must be >= 0, got {seed}")
    bad = [k for k in kinds if k not in MOTION_KINDS]
    if not kinds or bad:
        raise SlimposeInputError(f"synth3d {out}: unknown motion kinds {bad or list(kinds)}; expected some of "
                                 f"{list(MOTION_KINDS)}")
    if not (noise_scale >= 0 and math.isfinite(noise_scale)):
        raise SlimposeInputError(f"synth3d {out}: noise_scale must be a finite number >= 0, got {noise_scale}")
    if not 0 <= drop_rate < 0.5:
        raise SlimposeInputError(f"synth3d {out}: drop_rate must be in [0, 0.5), got {drop_rate}")


def generate_synth3d(out_dir: str | os.PathLike, sequences: int, frames: int = 243, seed: int = 0, *,
                     kinds: Sequence[str] = MOTION_KINDS, noise_scale: float = 1.0, drop_rate: float = 0.02,
                     overwrite: bool = False, progress: bool = False,
                     on_sequence: Callable[[int, str, str], None] | None = None) -> dict[str, Path]:
    """Write ``sequences`` synthetic sequences of ``frames`` frames into ``out_dir`` in VideoPose3D's layout
    (:data:`SYNTH3D_FILES`): ``data_3d_h36m.npz`` (``positions_3d``: subject -> action -> float32 [T, 17, 3],
    world, metres), ``data_2d_h36m_gt.npz`` (noise-free projections) and ``data_2d_h36m_synth_noisy.npz``
    (detector-like), 4 float32 [T, 17, 2] pixel arrays per action, ``h36m_cameras.json``
    (:func:`~slimpose.lifting.cameras.load_h36m_cameras`) and ``synth3d_meta.json`` (kinds, body shapes,
    dropped spans). Byte-identical for the same arguments; each file is written atomically. Refuses existing
    output files unless ``overwrite``. Returns role -> path."""
    out = Path(out_dir)
    kinds = tuple(kinds)
    _check_args(out, sequences, frames, seed, kinds, noise_scale, drop_rate)
    paths = {role: out / name for role, name in SYNTH3D_FILES.items()}
    existing = [str(p) for p in paths.values() if p.exists()]
    if existing and not overwrite:
        raise SlimposeInputError(f"{existing[0]} already exists (synth3d output in {out}); pass "
                                 "overwrite=True / --overwrite to replace it")
    if out.exists() and not out.is_dir():
        raise SlimposeInputError(f"{out}: exists and is not a folder")
    tables = synth3d_camera_tables(seed)
    cameras = h36m_cameras(tables["intrinsic"], tables["extrinsic"], source=str(paths["cameras"]))
    from tqdm import tqdm

    pos3d: dict[str, dict[str, np.ndarray]] = {}
    pos2d_gt: dict[str, dict[str, list[np.ndarray]]] = {}
    pos2d: dict[str, dict[str, list[np.ndarray]]] = {}
    records = []
    bar = tqdm(total=int(sequences), desc="synth3d", unit="seq", disable=not progress or not sys.stderr.isatty())
    for i in range(int(sequences)):
        seq = synth3d_sequence(i, seed, int(frames), cameras, kinds, noise_scale, drop_rate)
        subject, action = seq.subject, seq.action
        pos3d.setdefault(subject, {})[action] = np.ascontiguousarray(seq.motion.positions_3d, np.float32)
        pos2d_gt.setdefault(subject, {})[action] = [np.ascontiguousarray(k, np.float32) for k in seq.keypoints_2d_gt]
        pos2d.setdefault(subject, {})[action] = [np.ascontiguousarray(k, np.float32) for k in seq.keypoints_2d]
        records.append({"index": i, "subject": subject, "action": action, "kind": seq.motion.kind,
                        "frames": int(frames), "body_shape": {k: float(v) for k, v in asdict(seq.motion.shape).items()},
                        "dropped": _runs(seq.dropped)})
        bar.update(1)
        if on_sequence is not None:
            on_sequence(i, subject, action)
    bar.close()
    gt_meta = Keypoints2DMetadata(layout_name=None)          # the official gt file has no layout_name
    meta = {
        "format": _FORMAT, "version": _VERSION, "seed": int(seed), "sequences": int(sequences),
        "frames": int(frames), "fps": H36M_FPS, "kinds": list(kinds), "actions": dict(SYNTH3D_ACTIONS),
        "noise": {"px": dict(zip(H36M_JOINT_NAMES, SYNTH3D_NOISE_PX)), "scale": float(noise_scale),
                  "correlation": SYNTH3D_NOISE_CORRELATION, "drop_rate": float(drop_rate),
                  "dropped_fill": "last reported position (first after, at the start)",
                  "dropped_format": "[camera, joint, first_frame, num_frames]"},
        "joints": list(H36M_JOINT_NAMES), "parents": list(H36M_PARENTS),
        "files": dict(SYNTH3D_FILES), "records": records,
    }
    write_json_atomic(paths["cameras"], tables, indent=1)
    write_videopose3d_npz(paths["data_3d"], paths["data_2d_gt"], pos3d, pos2d_gt, gt_meta)
    write_videopose3d_npz(None, paths["data_2d_noisy"], None, pos2d, H36M_METADATA)
    write_json_atomic(paths["meta"], meta, indent=1)
    return paths


def load_synth3d_masks(meta_path: str | os.PathLike) -> dict[str, dict[str, np.ndarray]]:
    """``subject -> action -> (4, T, 17)`` bool dropped-joint masks from a ``synth3d_meta.json``."""
    meta = load_json(meta_path, "synth3d meta file")
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT or not isinstance(meta.get("records"), list):
        raise SlimposeInputError(f"{meta_path}: not a synth3d meta file (format {_FORMAT!r} with 'records')")
    out: dict[str, dict[str, np.ndarray]] = {}
    try:
        for r in meta["records"]:
            mask = np.zeros((len(H36M_CAMERA_IDS), int(r["frames"]), len(H36M_JOINT_NAMES)), bool)
            for cam, joint, t0, length in r["dropped"]:
                mask[int(cam), int(t0): int(t0) + int(length), int(joint)] = True
            out.setdefault(str(r["subject"]), {})[str(r["action"])] = mask
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise SlimposeInputError(f"{meta_path}: malformed synth3d record ({e})") from None
    return out
