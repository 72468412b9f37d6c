"""Articulated 3-D body for the synthetic-people generator.

A kinematic tree (pelvis -> spine -> neck/head, shoulders -> elbows -> wrists, hips -> knees ->
ankles) with random proportions and joint angles sampled inside anatomical limits, posed in a
body frame (metres; X = the person's left, Y = up, Z = the direction the person faces) and moved
into a pinhole camera frame (x right, y down, z forward). The 17 COCO keypoints are joints of
the tree or points on the head sphere (nose, eyes, ears).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# COCO person category (keypoint order and the 1-based skeleton of person_keypoints_*.json).
COCO_KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8), (7, 9),
    (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)
NUM_KEYPOINTS = 17

# Extra (non-COCO) points kept in Body.points after the 17 keypoints.
PELVIS, CROTCH, WAIST, NECK_BASE, HEAD_CENTER, MOUTH = 17, 18, 19, 20, 21, 22
HAND_END = (23, 24)  # left, right
TOE = (25, 26)
NUM_POINTS = 27
# Directions kept in Body.dirs.
HEAD_FWD, HEAD_UP, HEAD_LEFT, CHEST_LEFT, CHEST_FWD, PELVIS_LEFT, PELVIS_FWD = range(7)

# Body-part ids of the rendered part map (0 = not a body part).
PART_PELVIS, PART_CHEST, PART_NECK, PART_HEAD = 1, 2, 3, 4
PART_UPPER_ARM, PART_FOREARM, PART_HAND = (5, 6), (7, 8), (9, 10)
PART_THIGH, PART_SHIN, PART_FOOT = (11, 12), (13, 14), (15, 16)
# The torso part that a shoulder/hip keypoint sits on: seen through that part, a joint counts as visible
# with a wider depth tolerance (the annotator sees the shoulder/hip region of the body).
TORSO_PART_OF_KEYPOINT = {5: PART_CHEST, 6: PART_CHEST, 11: PART_PELVIS, 12: PART_PELVIS}

POSE_CLASSES: tuple[str, ...] = (
    "standing", "walking", "arms_raised", "sitting", "crouching", "bending", "random", "lying",
)
_POSE_PROBS = np.array([0.17, 0.2, 0.15, 0.1, 0.1, 0.1, 0.12, 0.06])


def rot_x(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def rot_y(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rot_z(deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


@dataclass
class BodyShape:
    """Body proportions in metres (limb radii are the cross-section radii at both ends)."""

    height_scale: float
    hip_half_width: float
    torso_length: float        # pelvis to neck base
    shoulder_half_width: float
    neck_length: float
    head_radius: float
    upper_arm: float
    forearm: float
    thigh: float
    shin: float
    girth: float               # multiplies every limb radius
    torso_depth_ratio: float   # front-back / left-right half-extent of the torso

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "BodyShape":
        s = float(rng.uniform(0.82, 1.12))

        def var(base: float, spread: float = 0.08) -> float:
            return float(base * s * rng.uniform(1.0 - spread, 1.0 + spread))

        return cls(
            height_scale=s,
            hip_half_width=var(0.095, 0.15),
            torso_length=var(0.50),
            shoulder_half_width=var(0.185, 0.14),
            neck_length=var(0.08, 0.2),
            head_radius=var(0.088, 0.1),
            upper_arm=var(0.30),
            forearm=var(0.265),
            thigh=var(0.44),
            shin=var(0.42),
            girth=float(s * rng.uniform(0.8, 1.3)),
            torso_depth_ratio=float(rng.uniform(0.5, 0.75)),
        )

    @property
    def upper_arm_radius(self) -> tuple[float, float]:
        return 0.052 * self.girth, 0.040 * self.girth

    @property
    def forearm_radius(self) -> tuple[float, float]:
        return 0.038 * self.girth, 0.027 * self.girth

    @property
    def thigh_radius(self) -> tuple[float, float]:
        return 0.082 * self.girth, 0.055 * self.girth

    @property
    def shin_radius(self) -> tuple[float, float]:
        return 0.052 * self.girth, 0.036 * self.girth


@dataclass
class PoseAngles:
    """Joint angles in degrees; two-element arrays are (left, right)."""

    pose_class: str
    root_pitch: float      # whole-body forward tilt (about the body's left axis): lying ~ +-90
    root_roll: float       # whole-body sideways tilt
    spine_flex: float      # bending forward (+)
    spine_side: float
    spine_twist: float
    head_flex: float       # looking down (+)
    head_yaw: float
    head_roll: float
    shoulder_flex: np.ndarray   # arm raised forward (+), backward (-)
    shoulder_abd: np.ndarray    # arm raised sideways
    shoulder_twist: np.ndarray
    elbow: np.ndarray           # elbow flexion, 0 = straight
    hip_flex: np.ndarray        # thigh forward (+)
    hip_abd: np.ndarray
    hip_twist: np.ndarray
    knee: np.ndarray            # knee flexion, 0 = straight
    ankle: np.ndarray


# (low, high) limits in degrees, applied after sampling.
JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "spine_flex": (-30.0, 95.0), "spine_side": (-30.0, 30.0), "spine_twist": (-40.0, 40.0),
    "head_flex": (-45.0, 55.0), "head_yaw": (-75.0, 75.0), "head_roll": (-30.0, 30.0),
    "shoulder_flex": (-60.0, 180.0), "shoulder_abd": (-15.0, 180.0), "shoulder_twist": (-70.0, 90.0),
    "elbow": (0.0, 150.0), "hip_flex": (-35.0, 130.0), "hip_abd": (-20.0, 60.0),
    "hip_twist": (-40.0, 45.0), "knee": (0.0, 155.0), "ankle": (-30.0, 40.0),
}


def _pair(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, size=2)


def sample_pose(rng: np.random.Generator, pose_class: str | None = None) -> PoseAngles:
    """Sample joint angles for one of POSE_CLASSES (random class when None), clipped to JOINT_LIMITS."""
    if pose_class is None:
        pose_class = POSE_CLASSES[int(rng.choice(len(POSE_CLASSES), p=_POSE_PROBS))]
    u = rng.uniform
    p = PoseAngles(
        pose_class=pose_class, root_pitch=u(-8, 8), root_roll=u(-8, 8),
        spine_flex=u(-8, 15), spine_side=u(-8, 8), spine_twist=u(-15, 15),
        head_flex=u(-20, 30), head_yaw=u(-45, 45), head_roll=u(-12, 12),
        shoulder_flex=_pair(rng, -20, 30), shoulder_abd=_pair(rng, 0, 25),
        shoulder_twist=_pair(rng, -20, 40), elbow=_pair(rng, 0, 45),
        hip_flex=_pair(rng, -8, 15), hip_abd=_pair(rng, 0, 15), hip_twist=_pair(rng, -10, 20),
        knee=_pair(rng, 0, 15), ankle=_pair(rng, -10, 10),
    )
    if pose_class == "walking":
        amp, phase = u(15, 40), u(0, 2 * np.pi)
        swing = amp * np.sin(phase) * np.array([1.0, -1.0])
        p.hip_flex = swing + u(-3, 5, size=2)
        p.knee = np.clip(-swing, 0, None) * u(0.6, 1.8) + u(0, 20, size=2)
        p.shoulder_flex = -swing * u(0.4, 1.0) + u(-5, 5, size=2)
        p.elbow = u(10, 60, size=2)
        p.hip_abd = u(0, 8, size=2)
        if rng.random() < 0.3:  # running
            p.spine_flex, p.elbow, p.knee = u(5, 20), u(70, 110, size=2), p.knee + u(20, 60, size=2)
    elif pose_class == "arms_raised":
        for side in range(2):
            if side == 0 or rng.random() < 0.6:
                if rng.random() < 0.5:
                    p.shoulder_abd[side], p.shoulder_flex[side] = u(70, 180), u(-20, 30)
                else:
                    p.shoulder_flex[side], p.shoulder_abd[side] = u(70, 180), u(0, 40)
                p.elbow[side] = u(0, 130)
        if rng.random() < 0.5:
            p.shoulder_abd, p.shoulder_flex = p.shoulder_abd[::-1].copy(), p.shoulder_flex[::-1].copy()
    elif pose_class == "sitting":
        p.hip_flex = u(65, 105, size=2)
        p.knee = u(60, 115, size=2)
        p.hip_abd = u(0, 25, size=2)
        p.spine_flex = u(-10, 30)
        p.shoulder_flex = u(-10, 60, size=2)
        p.elbow = u(20, 110, size=2)
    elif pose_class == "crouching":
        p.hip_flex = u(95, 130, size=2)
        p.knee = u(105, 155, size=2)
        p.hip_abd = u(5, 35, size=2)
        p.spine_flex = u(10, 50)
        p.shoulder_flex = u(0, 80, size=2)
        p.elbow = u(20, 120, size=2)
        p.root_pitch = u(-10, 15)
    elif pose_class == "bending":
        p.spine_flex = u(35, 95)
        p.hip_flex = u(0, 35, size=2)
        p.knee = u(0, 35, size=2)
        p.shoulder_flex = p.spine_flex + u(-30, 30, size=2)
        p.head_flex = u(-40, 10)
    elif pose_class == "random":
        for name in ("spine_flex", "spine_side", "spine_twist", "head_flex", "head_yaw", "head_roll"):
            lo, hi = JOINT_LIMITS[name]
            setattr(p, name, u(lo, hi) * 0.7)
        for name in ("shoulder_flex", "shoulder_abd", "shoulder_twist", "elbow", "hip_flex", "hip_abd",
                     "hip_twist", "knee", "ankle"):
            lo, hi = JOINT_LIMITS[name]
            setattr(p, name, u(lo, hi, size=2))
        p.root_pitch, p.root_roll = u(-25, 25), u(-25, 25)
    elif pose_class == "lying":
        p.root_pitch = float(rng.choice([-1.0, 1.0])) * u(70, 100)
        p.root_roll = u(-25, 25)
        p.shoulder_flex = u(-30, 150, size=2)
        p.shoulder_abd = u(0, 120, size=2)
        p.elbow = u(0, 120, size=2)
        p.hip_flex = u(-10, 60, size=2)
        p.knee = u(0, 90, size=2)
    for name, (lo, hi) in JOINT_LIMITS.items():
        setattr(p, name, np.clip(getattr(p, name), lo, hi))
    return p


@dataclass
class Body:
    """A posed body: ``points`` (NUM_POINTS, 3) and unit ``dirs`` (7, 3) in one frame."""

    shape: BodyShape
    pose: PoseAngles
    points: np.ndarray
    dirs: np.ndarray

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "Body":
        """The same body in another frame: ``p' = R p + t``."""
        return Body(self.shape, self.pose, self.points @ rotation.T + translation, self.dirs @ rotation.T)

    @property
    def keypoints(self) -> np.ndarray:
        return self.points[:NUM_KEYPOINTS]


# Face points on the head sphere, as (left, up, forward) directions and radius factors.
_FACE_DIRS = {
    0: ((0.0, -0.12, 1.0), 1.08),    # nose (protrudes)
    1: ((0.36, 0.14, 0.92), 1.0),    # left eye
    2: ((-0.36, 0.14, 0.92), 1.0),   # right eye
    3: ((1.0, 0.0, -0.12), 0.96),    # left ear
    4: ((-1.0, 0.0, -0.12), 0.96),   # right ear
    MOUTH: ((0.0, -0.5, 0.86), 1.0),
}


def head_point(center: np.ndarray, axes_luf: np.ndarray, radius: float, direction,
               factor: float) -> np.ndarray:
    """A point on the head sphere; ``axes_luf`` rows are the head's left, up and forward unit vectors."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    return center + radius * factor * (d @ axes_luf)


def pose_body(shape: BodyShape, pose: PoseAngles) -> Body:
    """Forward kinematics in the body frame (pelvis at the origin)."""
    pts = np.zeros((NUM_POINTS, 3))
    dirs = np.zeros((7, 3))
    r_pelvis = rot_x(pose.root_pitch) @ rot_z(pose.root_roll)
    half = (rot_y(pose.spine_twist / 2) @ rot_z(pose.spine_side / 2) @ rot_x(pose.spine_flex / 2))
    r_abdomen = r_pelvis @ half
    r_chest = r_abdomen @ half
    pts[PELVIS] = 0.0
    pts[CROTCH] = r_pelvis @ np.array([0.0, -0.07 * shape.height_scale, 0.0])
    pts[WAIST] = r_abdomen @ np.array([0.0, 0.32 * shape.torso_length, 0.0])
    pts[NECK_BASE] = pts[WAIST] + r_chest @ np.array([0.0, 0.68 * shape.torso_length, 0.0])
    dirs[PELVIS_LEFT], dirs[PELVIS_FWD] = r_pelvis[:, 0], r_pelvis[:, 2]
    dirs[CHEST_LEFT], dirs[CHEST_FWD] = r_chest[:, 0], r_chest[:, 2]

    r_head = r_chest @ rot_y(pose.head_yaw) @ rot_x(pose.head_flex) @ rot_z(pose.head_roll)
    center = pts[NECK_BASE] + r_head @ np.array([0.0, shape.neck_length + 0.9 * shape.head_radius,
                                                 0.12 * shape.head_radius])
    pts[HEAD_CENTER] = center
    dirs[HEAD_LEFT], dirs[HEAD_UP], dirs[HEAD_FWD] = r_head[:, 0], r_head[:, 1], r_head[:, 2]
    axes_luf = r_head.T  # rows: left, up, forward
    for idx, (direction, factor) in _FACE_DIRS.items():
        pts[idx] = head_point(center, axes_luf, shape.head_radius, direction, factor)

    down = np.array([0.0, -1.0, 0.0])
    for side, sign in ((0, 1.0), (1, -1.0)):
        shoulder = pts[NECK_BASE] + r_chest @ np.array([sign * shape.shoulder_half_width, -0.035, 0.0])
        r_ua = (r_chest @ rot_z(sign * pose.shoulder_abd[side]) @ rot_x(-pose.shoulder_flex[side])
                @ rot_y(sign * pose.shoulder_twist[side]))
        elbow = shoulder + r_ua @ (down * shape.upper_arm)
        r_fa = r_ua @ rot_x(-pose.elbow[side])
        wrist = elbow + r_fa @ (down * shape.forearm)
        pts[5 + side], pts[7 + side], pts[9 + side] = shoulder, elbow, wrist
        pts[HAND_END[side]] = wrist + r_fa @ np.array([0.0, -0.085, 0.01]) * shape.height_scale

        hip = r_pelvis @ np.array([sign * shape.hip_half_width, 0.0, 0.0])
        r_th = (r_pelvis @ rot_z(sign * pose.hip_abd[side]) @ rot_x(-pose.hip_flex[side])
                @ rot_y(sign * pose.hip_twist[side]))
        knee = hip + r_th @ (down * shape.thigh)
        r_sh = r_th @ rot_x(pose.knee[side])
        ankle = knee + r_sh @ (down * shape.shin)
        r_ft = r_sh @ rot_x(-pose.ankle[side])
        pts[11 + side], pts[13 + side], pts[15 + side] = hip, knee, ankle
        pts[TOE[side]] = ankle + r_ft @ np.array([0.0, -0.05, 0.16]) * shape.height_scale
    return Body(shape, pose, pts, dirs)


def keypoint_tolerance(shape: BodyShape) -> np.ndarray:
    """How far (metres) the visible surface may lie in front of each keypoint for it to count as visible.

    A joint sits on its limb's axis, so the limb's own surface is one radius in front of it; the
    head points lie on the head surface.
    """
    tol = np.zeros(NUM_KEYPOINTS)
    tol[0:5] = 0.5 * shape.head_radius
    tol[5:7] = 1.3 * shape.upper_arm_radius[0] + 0.02
    tol[7:9] = 1.3 * shape.upper_arm_radius[1] + 0.02
    tol[9:11] = 1.3 * shape.forearm_radius[1] + 0.02
    tol[11:13] = 1.3 * shape.thigh_radius[0] + 0.02
    tol[13:15] = 1.3 * shape.thigh_radius[1] + 0.02
    tol[15:17] = 1.3 * shape.shin_radius[1] + 0.02
    return tol


def torso_tolerance(shape: BodyShape) -> np.ndarray:
    """Extra depth tolerance (metres) for shoulders/hips seen through their own torso part (0 elsewhere).

    About 0.8 x the torso half-width at that level: the far shoulder/hip stays visible up to roughly a
    55-65 degree turn and is hidden beyond, as in profile views.
    """
    extra = np.zeros(NUM_KEYPOINTS)
    extra[5:7] = 0.8 * (shape.shoulder_half_width + 0.2 * shape.upper_arm_radius[0])
    extra[11:13] = 0.8 * (shape.hip_half_width + 0.9 * shape.thigh_radius[0])
    return extra


def body_to_camera_rotation(view_yaw_deg: float, camera_pitch_deg: float) -> np.ndarray:
    """Rotation body frame -> camera frame.

    ``view_yaw = 0`` means the person faces the camera (their left appears on the image right);
    90: they face the image right, right side towards the camera; 180: seen from the back.
    Positive camera pitch looks down on the scene.
    """
    facing = np.diag([1.0, -1.0, -1.0])  # body (left, up, forward) -> camera (x, -y, -z)
    return rot_x(camera_pitch_deg) @ facing @ rot_y(view_yaw_deg)
