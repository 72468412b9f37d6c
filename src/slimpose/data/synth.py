"""Synthetic people: slimpose's built-in COCO-format keypoint data set.

Each image holds 1-4 articulated 3-D bodies (synth_body) with random proportions, poses and
clothing, seen by a random pinhole camera (full-circle yaw, pitch, distance) and z-buffer rendered
(synth_render) over cluttered backgrounds with limb-like distractors and occluders in front.
Annotations follow COCO: v=2 visible, v=1 inside the image but hidden (by another person, an
occluder or the body itself, decided from the rendered depth and owner maps), v=0 outside the
image with x=y=0; bbox/area from the person's visible mask (also stored as RLE). Each annotation
also keeps ``keypoints_3d`` (camera frame, metres) and each image its ``camera`` intrinsics.
The same seed gives byte-identical files (one random stream per image: SeedSequence(seed, split, index)).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from slimpose.data import synth_body as sb
from slimpose.data import synth_render as sr
from slimpose.utils.io import SlimposeInputError, atomic_path, remove_stale_tmp, write_json_atomic

COCO_PERSON_CATEGORY: dict[str, Any] = {
    "supercategory": "person",
    "id": 1,
    "name": "person",
    "keypoints": list(sb.COCO_KEYPOINT_NAMES),
    "skeleton": [list(pair) for pair in sb.COCO_SKELETON],
}


@dataclass
class SynthConfig:
    """Knobs of the generator (the defaults define the built-in data set)."""

    image_size: tuple[int, int] = (320, 256)       # (w, h)
    people_probs: tuple[float, ...] = (0.35, 0.3, 0.2, 0.15)  # P(1), P(2), P(3), P(4 people)
    min_height_frac: float = 0.18                  # nominal standing height / image height (log-uniform)
    max_height_frac: float = 1.05
    min_labelled_area: float = 144.0               # visible pixels below this -> keypoints not labelled
    max_occluders: int = 3
    max_distractors: int = 6
    max_yaw: float = 180.0                         # people face the camera within +-max_yaw degrees
    jpeg_quality: int = 90

    @classmethod
    def easy(cls, image_size: tuple[int, int] = (192, 192)) -> "SynthConfig":
        """An easier preset for CPU-minute demos: one large person, mostly facing the camera, no
        occluders, few distractors. The default (hard) set stays the benchmark."""
        return cls(image_size=image_size, people_probs=(1.0,), min_height_frac=0.6, max_height_frac=0.95,
                   max_occluders=0, max_distractors=2, max_yaw=75.0)


# The named generator presets: "default" is the benchmark set, "easy" the CPU-demo set.
SYNTH_PRESETS = {"default": SynthConfig, "easy": SynthConfig.easy}


def synth_preset(name: str) -> SynthConfig:
    """The ``SynthConfig`` of a preset named in ``SYNTH_PRESETS``."""
    if name not in SYNTH_PRESETS:
        raise SlimposeInputError(f"unknown synthetic preset {name!r} (choose from {', '.join(SYNTH_PRESETS)})")
    return SYNTH_PRESETS[name]()


@dataclass
class Camera:
    fx: float
    fy: float
    cx: float
    cy: float
    pitch: float  # degrees, positive looks down

    def project(self, points: np.ndarray) -> np.ndarray:
        """Pinhole projection of camera-frame points (N, 3) -> pixels (N, 2)."""
        z = points[:, 2]
        return np.stack([self.fx * points[:, 0] / z + self.cx, self.fy * points[:, 1] / z + self.cy], axis=1)

    def to_json(self) -> dict[str, float]:
        return {"fx": round(self.fx, 4), "fy": round(self.fy, 4), "cx": round(self.cx, 4),
                "cy": round(self.cy, 4), "pitch": round(self.pitch, 3)}


@dataclass
class Look:
    """Per-person colours and clothing."""

    skin: np.ndarray
    shirt: sr.Paint
    pants: sr.Paint
    shoes: np.ndarray
    hair: np.ndarray
    sleeves: int        # 0 none, 1 short, 2 long
    long_pants: bool
    hair_front: float
    hair_top: float

    @classmethod
    def sample(cls, rng: np.random.Generator) -> "Look":
        bald = rng.random() < 0.05
        return cls(
            skin=sr.skin_colour(rng),
            shirt=sr.random_paint(rng),
            pants=sr.random_paint(rng, sr.random_colour(rng, value=(0.1, 0.7))),
            shoes=sr.random_colour(rng, value=(0.05, 0.6)),
            hair=np.clip(sr.HAIR_COLOURS[int(rng.integers(len(sr.HAIR_COLOURS)))] * rng.uniform(0.8, 1.2),
                         0, 255).astype(np.float32),
            sleeves=int(rng.choice(3, p=[0.15, 0.45, 0.4])),
            long_pants=bool(rng.random() < 0.7),
            hair_front=-2.0 if bald else float(rng.uniform(-0.35, 0.05)),
            hair_top=2.0 if bald else float(rng.uniform(0.25, 0.6)),
        )


@dataclass
class Person:
    body: sb.Body         # camera frame
    look: Look
    view_yaw: float
    height_px: float      # nominal standing height in pixels
    uv: np.ndarray = field(default_factory=lambda: np.zeros((sb.NUM_POINTS, 2)))


@dataclass
class SynthImage:
    image: np.ndarray                 # (H, W, 3) uint8 BGR
    camera: Camera
    annotations: list[dict[str, Any]]  # COCO annotation dicts without "id"/"image_id"


def _sample_camera(rng: np.random.Generator, width: int, height: int) -> Camera:
    fov = np.deg2rad(rng.uniform(45.0, 75.0))
    f = (width / 2.0) / np.tan(fov / 2.0)
    return Camera(fx=float(f), fy=float(f),
                  cx=float((width - 1) / 2.0 + rng.uniform(-0.03, 0.03) * width),
                  cy=float((height - 1) / 2.0 + rng.uniform(-0.03, 0.03) * height),
                  pitch=float(rng.uniform(-10.0, 30.0)))


def _place_people(rng: np.random.Generator, cam: Camera, cfg: SynthConfig, count: int) -> list[Person]:
    width, height = cfg.image_size
    people: list[Person] = []
    placed: list[tuple[float, float, float]] = []  # (u, z, height_px)
    for _ in range(count):
        shape = sb.BodyShape.sample(rng)
        pose = sb.sample_pose(rng)
        if cfg.max_yaw >= 180.0:
            yaw = float(rng.uniform(0.0, 360.0))
        else:
            yaw = float(rng.uniform(-cfg.max_yaw, cfg.max_yaw)) % 360.0
        log_lo, log_hi = np.log(cfg.min_height_frac * height), np.log(cfg.max_height_frac * height)
        h_px = float(np.exp(rng.uniform(log_lo, log_hi)))
        z = cam.fy * 1.7 * shape.height_scale / h_px
        if placed and rng.random() < 0.6:
            u_ref, _, h_ref = placed[int(rng.integers(len(placed)))]
            u = u_ref + float(rng.choice([-1.0, 1.0])) * rng.uniform(0.1, 0.6) * h_ref
        elif placed:
            u = rng.uniform(-0.05, 1.05) * width
        else:
            u = rng.uniform(0.2, 0.8) * width
        v = height * (rng.uniform(0.4, 0.68) + rng.normal(0.0, 0.06))
        for u_j, z_j, h_j in placed:  # no two overlapping people at nearly the same depth
            if abs(u - u_j) < 0.35 * (h_px + h_j) and abs(z - z_j) < 0.6:
                z = z_j + (0.7 if z >= z_j else -0.7)
        z = max(z, 1.0)
        h_px = cam.fy * 1.7 * shape.height_scale / z
        rotation = sb.body_to_camera_rotation(yaw, cam.pitch)
        translation = z * np.array([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, 1.0])
        body = sb.pose_body(shape, pose).transformed(rotation, translation)
        nearest = float(body.points[:, 2].min())
        if nearest < 0.4:  # push back along the viewing ray so the whole body is in front of the camera
            translation = translation * (translation[2] + 0.4 - nearest) / translation[2]
            body = sb.pose_body(shape, pose).transformed(rotation, translation)
        person = Person(body=body, look=Look.sample(rng), view_yaw=yaw, height_px=h_px)
        person.uv = cam.project(body.points)
        people.append(person)
        placed.append((u, float(translation[2]), h_px))
    return people


def _torso_extent(cam: Camera, center: np.ndarray, left: np.ndarray, fwd: np.ndarray, a: float, b: float,
                  normal2d: np.ndarray) -> tuple[float, float]:
    """Projected half-width (px, across the 2-D axis) and front bulge (m) of an elliptical torso section."""
    theta = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    pts = (center[None, :] + a * np.cos(theta)[:, None] * left[None, :]
           + b * np.sin(theta)[:, None] * fwd[None, :])
    uv = cam.project(pts) - cam.project(center[None, :])
    half_width = float(np.abs(uv @ normal2d).max())
    bulge = float(max(center[2] - pts[:, 2].min(), 0.02))
    return half_width, bulge


def _draw_person(canvas: sr.Canvas, cam: Camera, person: Person, pid: int) -> None:
    body, look, shape = person.body, person.look, person.body.shape
    pts, uv, dirs = body.points, person.uv, body.dirs
    f = cam.fy

    def limb(a: int, b: int, rho0: float, rho1: float, paint: sr.Paint, part: int) -> None:
        za, zb = pts[a, 2], pts[b, 2]
        sr.draw_capsule(canvas, uv[a], uv[b], f * rho0 / za, f * rho1 / zb, za, zb, rho0, rho1, paint, pid,
                        part=part)

    skin = sr.Paint(look.skin)
    shoes = sr.Paint(look.shoes)
    # torso: crotch -> waist (pants), waist -> neck base (shirt), elliptical cross-sections
    axis = uv[sb.NECK_BASE] - uv[sb.CROTCH]
    norm = float(np.linalg.norm(axis))
    normal2d = np.array([-axis[1], axis[0]]) / norm if norm > 1e-6 else np.array([1.0, 0.0])
    waist_left = dirs[sb.PELVIS_LEFT] + dirs[sb.CHEST_LEFT]
    waist_left /= np.linalg.norm(waist_left)
    waist_fwd = dirs[sb.PELVIS_FWD] + dirs[sb.CHEST_FWD]
    waist_fwd /= np.linalg.norm(waist_fwd)
    ratio = shape.torso_depth_ratio
    a_hip = shape.hip_half_width + 0.9 * shape.thigh_radius[0]
    a_waist = 0.8 * shape.shoulder_half_width * (0.85 + 0.15 * shape.girth)
    a_neck = shape.shoulder_half_width + 0.2 * shape.upper_arm_radius[0]
    sections = [
        (sb.CROTCH, dirs[sb.PELVIS_LEFT], dirs[sb.PELVIS_FWD], a_hip),
        (sb.WAIST, waist_left, waist_fwd, a_waist),
        (sb.NECK_BASE, dirs[sb.CHEST_LEFT], dirs[sb.CHEST_FWD], a_neck),
    ]
    ext = [_torso_extent(cam, pts[i], left, fwd, a, a * ratio, normal2d) for i, left, fwd, a in sections]
    short_axis = norm < 0.5 * max(e[0] for e in ext)
    for (i0, _, _, _), (i1, _, _, _), e0, e1, paint, caps, part in (
        (sections[0], sections[1], ext[0], ext[1], look.pants, (False, True), sb.PART_PELVIS),
        (sections[1], sections[2], ext[1], ext[2], look.shirt, (True, False), sb.PART_CHEST),
    ):
        sr.draw_capsule(canvas, uv[i0], uv[i1], e0[0], e1[0], pts[i0, 2], pts[i1, 2], e0[1], e1[1], paint,
                        pid, caps=(True, True) if short_axis else caps, part=part)
    # neck and head (hair where the surface faces away from the face or up)
    neck_top = pts[sb.HEAD_CENTER] - 0.5 * shape.head_radius * dirs[sb.HEAD_UP]
    neck_uv = cam.project(neck_top[None, :])[0]
    rho = 0.048 * shape.girth
    sr.draw_capsule(canvas, uv[sb.NECK_BASE], neck_uv, f * rho / pts[sb.NECK_BASE, 2], f * rho / neck_top[2],
                    pts[sb.NECK_BASE, 2], neck_top[2], rho, rho, skin, pid, part=sb.PART_NECK)
    hr = shape.head_radius
    ends = pts[sb.HEAD_CENTER][None, :] + np.array([[-0.3], [0.3]]) * hr * dirs[sb.HEAD_UP][None, :]
    ends_uv = cam.project(ends)
    hair = sr.HairStyle(colour=look.hair, front=look.hair_front, top=look.hair_top,
                        forward=dirs[sb.HEAD_FWD].astype(np.float32), up=dirs[sb.HEAD_UP].astype(np.float32))
    sr.draw_capsule(canvas, ends_uv[0], ends_uv[1], f * hr / ends[0, 2], f * hr / ends[1, 2], ends[0, 2],
                    ends[1, 2], hr, hr, skin, pid, hair=hair, part=sb.PART_HEAD)
    # arms and legs (left = 0, right = 1)
    for side in range(2):
        upper = look.shirt if look.sleeves >= 1 else skin
        lower = look.shirt if look.sleeves == 2 else skin
        limb(5 + side, 7 + side, *shape.upper_arm_radius, upper, sb.PART_UPPER_ARM[side])
        limb(7 + side, 9 + side, *shape.forearm_radius, lower, sb.PART_FOREARM[side])
        limb(9 + side, sb.HAND_END[side], 0.032 * shape.girth, 0.028 * shape.girth, skin, sb.PART_HAND[side])
        limb(11 + side, 13 + side, *shape.thigh_radius, look.pants, sb.PART_THIGH[side])
        limb(13 + side, 15 + side, *shape.shin_radius, look.pants if look.long_pants else skin,
             sb.PART_SHIN[side])
        limb(15 + side, sb.TOE[side], 0.042 * shape.girth, 0.036 * shape.girth, shoes, sb.PART_FOOT[side])


def _draw_face_marks(canvas: sr.Canvas, cam: Camera, person: Person, pid: int) -> None:
    """Eyes, nose, mouth and ears, drawn only where the head surface there faces the camera and is on top."""
    body, look = person.body, person.look
    hr = body.shape.head_radius
    center = body.points[sb.HEAD_CENTER]
    hr_px = cam.fy * hr / center[2]
    if hr_px < 3.0:
        return
    height, width = canvas.height, canvas.width

    def shown(idx: int, min_facing: float) -> tuple[int, int] | None:
        p = body.points[idx]
        normal = (p - center) / np.linalg.norm(p - center)
        if float(normal @ (-p / np.linalg.norm(p))) < min_facing:
            return None
        u, v = person.uv[idx]
        ix, iy = int(np.floor(u + 0.5)), int(np.floor(v + 0.5))
        if not (0 <= ix < width and 0 <= iy < height):
            return None
        if canvas.owner[iy, ix] != pid or abs(float(canvas.zbuf[iy, ix]) - p[2]) > 0.35 * hr:
            return None
        return int(round(u * 4)), int(round(v * 4))

    skin = look.skin
    for idx in (3, 4):
        c = shown(idx, 0.1)
        if c is not None:
            axes = (max(1, int(0.16 * hr_px * 4)), max(1, int(0.24 * hr_px * 4)))
            cv2.ellipse(canvas.image, c, axes, 0.0, 0, 360, (skin * 0.8).tolist(), -1, cv2.LINE_8, 2)
    c = shown(0, 0.25)
    if c is not None:
        cv2.circle(canvas.image, c, max(2, int(0.13 * hr_px * 4)), (skin * 0.72).tolist(), -1, cv2.LINE_8, 2)
    for idx in (1, 2):
        c = shown(idx, 0.25)
        if c is not None:
            if hr_px >= 10:
                cv2.circle(canvas.image, c, int(0.14 * hr_px * 4), (235.0, 235.0, 235.0), -1, cv2.LINE_8, 2)
            cv2.circle(canvas.image, c, max(2, int(0.08 * hr_px * 4)), (25.0, 20.0, 20.0), -1, cv2.LINE_8, 2)
    if shown(sb.MOUTH, 0.25) is not None:
        left = body.dirs[sb.HEAD_LEFT]
        ends = body.points[sb.MOUTH][None, :] + np.array([[-0.28], [0.28]]) * hr * left[None, :]
        e = np.round(cam.project(ends) * 4).astype(int)
        cv2.line(canvas.image, tuple(e[0].tolist()), tuple(e[1].tolist()), (50.0, 40.0, 150.0),
                 max(1, int(round(0.08 * hr_px))), cv2.LINE_8, 2)


def _draw_occluders(rng: np.random.Generator, canvas: sr.Canvas, people: list[Person],
                    cfg: SynthConfig) -> None:
    """Flat rectangles/blobs/polygons and limb-like bars placed in front of random people."""
    count = int(rng.integers(0, cfg.max_occluders + 1))
    for _ in range(count):
        target = people[int(rng.integers(len(people)))]
        z_t = float(target.body.points[sb.PELVIS, 2])
        depth = max(z_t - rng.uniform(0.4, 2.0), 0.3)
        h = target.height_px
        cx, cy = target.uv[sb.PELVIS] + rng.normal(0.0, 0.3 * h, size=2)
        size = h * rng.uniform(0.1, 0.45)
        paint = sr.Paint(sr.random_colour(rng), pattern=sr.NOISE, amount=float(rng.uniform(0.0, 0.5)))
        kind = int(rng.integers(4))
        if kind == 0:  # rotated rectangle: pole, board, box
            w, l = size * rng.uniform(0.1, 0.6), size * rng.uniform(0.8, 2.5)
            ang = rng.uniform(0, np.pi)
            d, n = np.array([np.cos(ang), np.sin(ang)]), np.array([-np.sin(ang), np.cos(ang)])
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])
            poly = np.array([cx, cy]) + corners @ np.stack([l / 2 * d, w / 2 * n])
            sr.draw_flat_polygon(canvas, poly, depth, paint, sr.OCCLUDER)
        elif kind == 1:  # blob
            axes = (int(size * 8), int(size * rng.uniform(3, 8)))
            pts = cv2.ellipse2Poly((int(cx * 16), int(cy * 16)), axes, int(rng.uniform(0, 180)), 0, 360, 20)
            sr.draw_flat_polygon(canvas, pts.astype(np.float64) / 16.0, depth, paint, sr.OCCLUDER)
        elif kind == 2:  # star-convex polygon
            ang = np.sort(rng.uniform(0, 2 * np.pi, size=int(rng.integers(5, 9))))
            rad = size * rng.uniform(0.3, 0.7, size=ang.size)
            poly = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], 1)
            sr.draw_flat_polygon(canvas, poly, depth, paint, sr.OCCLUDER)
        else:  # limb-like bar of skin or cloth colour
            colour = sr.skin_colour(rng) if rng.random() < 0.5 else sr.random_colour(rng)
            ang = rng.uniform(0, 2 * np.pi)
            p0 = np.array([cx, cy])
            p1 = p0 + size * rng.uniform(0.8, 1.6) * np.array([np.cos(ang), np.sin(ang)])
            r0 = size * rng.uniform(0.08, 0.2)
            sr.draw_capsule(canvas, p0, p1, r0, r0 * rng.uniform(0.6, 1.0), depth, depth, 0.05, 0.04,
                            sr.random_paint(rng, colour), sr.OCCLUDER)


def _draw_distractors(rng: np.random.Generator, canvas: sr.Canvas, cfg: SynthConfig) -> None:
    """Background limb-like bars and head-like discs of skin/cloth colours (behind every person)."""
    width, height = canvas.width, canvas.height
    depth = float(sr.FAR) * 0.5
    for _ in range(int(rng.integers(0, cfg.max_distractors + 1))):
        colour = sr.skin_colour(rng) if rng.random() < 0.5 else sr.random_colour(rng)
        p0 = np.array([rng.uniform(0, width), rng.uniform(0, height)])
        length = rng.uniform(0.08, 0.4) * height
        ang = rng.uniform(0, 2 * np.pi)
        r0 = length * rng.uniform(0.08, 0.22)
        if rng.random() < 0.2:  # head-like disc
            p1 = p0.copy()
        else:
            p1 = p0 + length * np.array([np.cos(ang), np.sin(ang)])
        sr.draw_capsule(canvas, p0, p1, r0, r0 * rng.uniform(0.55, 1.0), depth, depth, 1.0, 1.0,
                        sr.random_paint(rng, colour), sr.BACKGROUND)


def inside_image(uv: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which pixel positions (N, 2) lie inside the image (centre-of-pixel coordinates, 0 .. size - 1)."""
    return (uv[:, 0] >= 0) & (uv[:, 0] <= width - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= height - 1)


def pixel_index(uv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The (clipped) pixel (ix, iy) that each position (N, 2) falls in."""
    ix = np.clip(np.floor(uv[:, 0] + 0.5).astype(int), 0, width - 1)
    iy = np.clip(np.floor(uv[:, 1] + 0.5).astype(int), 0, height - 1)
    return ix, iy


def coco_keypoints_seen(canvas: sr.Canvas, person: Person, pid: int) -> tuple[np.ndarray, np.ndarray]:
    """(inside, seen) of the 17 COCO keypoints of a rendered person, both (17,) bool.

    Seen: this person is on top at the keypoint's pixel and its surface there is not much nearer than
    the joint (a wider margin when seen through the joint's own torso part).
    """
    width, height = canvas.width, canvas.height
    kp3d = person.body.keypoints
    uv = person.uv[: sb.NUM_KEYPOINTS]
    inside = inside_image(uv, width, height)
    ix, iy = pixel_index(uv, width, height)
    tol = sb.keypoint_tolerance(person.body.shape)
    torso_part = np.array([sb.TORSO_PART_OF_KEYPOINT.get(k, -1) for k in range(sb.NUM_KEYPOINTS)])
    tol = tol + np.where(canvas.part[iy, ix] == torso_part, sb.torso_tolerance(person.body.shape), 0.0)
    seen = (canvas.owner[iy, ix] == pid) & (canvas.zbuf[iy, ix] >= kp3d[:, 2] - tol)
    return inside, seen


def _annotate(canvas: sr.Canvas, person: Person, pid: int, cfg: SynthConfig) -> dict[str, Any] | None:
    """COCO annotation of one rendered person (None when no pixel of it is visible)."""
    from pycocotools import mask as mask_utils

    mask = canvas.owner == pid
    area = int(mask.sum())
    if area == 0:
        return None
    width, height = canvas.width, canvas.height
    kp3d = person.body.keypoints
    uv = person.uv[: sb.NUM_KEYPOINTS]
    inside, seen = coco_keypoints_seen(canvas, person, pid)
    v = np.where(inside, np.where(seen, 2, 1), 0)
    if area < cfg.min_labelled_area:
        v[:] = 0
    keypoints = []
    for k in range(sb.NUM_KEYPOINTS):
        if v[k] > 0:
            keypoints += [round(float(uv[k, 0]), 2), round(float(uv[k, 1]), 2), int(v[k])]
        else:
            keypoints += [0, 0, 0]
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(x) for x in mask_utils.toBbox(rle)]
    return {
        "category_id": 1,
        "iscrowd": 0,
        "keypoints": keypoints,
        "num_keypoints": int((v > 0).sum()),
        "bbox": bbox,
        "area": float(area),
        "segmentation": {"size": [height, width], "counts": rle["counts"].decode("ascii")},
        "keypoints_3d": [[round(float(c), 5) for c in p] for p in kp3d],
        "view_yaw": round(person.view_yaw, 3),
        "pose": person.body.pose.pose_class,
    }


# annotate(canvas, camera, person, pid, config) -> one annotation (any dict) or None (person left out)
Annotator = Callable[[sr.Canvas, Camera, Person, int, SynthConfig], "dict[str, Any] | None"]


def annotate_coco(canvas: sr.Canvas, cam: Camera, person: Person, pid: int,
                  cfg: SynthConfig) -> dict[str, Any] | None:
    """The COCO writer's ``Annotator``: one person's COCO annotation (without ids), None when unseen."""
    return _annotate(canvas, person, pid, cfg)


def render_synthetic_image(rng: np.random.Generator, config: SynthConfig | None = None,
                           annotate: Annotator | None = None) -> SynthImage:
    """Draw one synthetic image with its COCO annotations (without ids).

    ``annotate`` replaces the COCO annotation of each person (``synth_mpii`` passes its MPII one); it is
    called after all drawing and uses no randomness, so the image does not depend on it.
    """
    annotate = annotate or annotate_coco
    cfg = config or SynthConfig()
    width, height = cfg.image_size
    cam = _sample_camera(rng, width, height)
    count = 1 + int(rng.choice(len(cfg.people_probs), p=np.asarray(cfg.people_probs) / sum(cfg.people_probs)))
    people = _place_people(rng, cam, cfg, count)
    canvas = sr.Canvas.create(sr.render_background(rng, width, height), rng)
    _draw_distractors(rng, canvas, cfg)
    for pid, person in enumerate(people):
        _draw_person(canvas, cam, person, pid)
    _draw_occluders(rng, canvas, people, cfg)
    for pid, person in enumerate(people):
        _draw_face_marks(canvas, cam, person, pid)
    annotations = []
    for pid, person in enumerate(people):
        ann = annotate(canvas, cam, person, pid, cfg)
        if ann is not None:
            annotations.append(ann)
    image = sr.finish_image(rng, canvas.image)
    return SynthImage(image=image, camera=cam, annotations=annotations)


def image_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The random stream of image ``index``: independent of worker count and of other images."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), zlib.crc32(split.encode()), int(index)]))


def _make_one(job: tuple[int, int, str, str, SynthConfig, Annotator]
              ) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    index, seed, split, image_root, cfg, annotate = job
    result = render_synthetic_image(image_rng(seed, split, index), cfg, annotate=annotate)
    image_id = index + 1
    file_name = f"{split}/{image_id:09d}.jpg"
    ok, buf = cv2.imencode(".jpg", result.image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {file_name}")
    with atomic_path(Path(image_root) / file_name) as tmp:
        Path(tmp).write_bytes(buf.tobytes())
    width, height = cfg.image_size
    record = {"id": image_id, "file_name": file_name, "width": width, "height": height,
              "camera": result.camera.to_json()}
    return index, record, result.annotations


def _worker_init() -> None:
    cv2.setNumThreads(1)


# a low estimate of one synthetic JPEG's size (bytes per pixel; they take 0.15 - 0.3 at quality 90)
JPEG_BYTES_PER_PIXEL = 0.1


# image ids are written as ``{id:09d}`` file names (id = index + 1)
MAX_SYNTH_IMAGES = 999_999_999
# a low estimate of the memory one image takes while the split is written: its job tuple and its image record
# with the annotations (3-D joints, camera) are all held until the label json is written
RECORD_BYTES_PER_IMAGE = 2_000


def available_memory() -> int:
    """Bytes of physical memory (what the job and result lists of a split can at most take)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # not on this platform: no memory bound
        return 2 ** 62


def check_memory(out_dir: str | os.PathLike, num_images: int) -> None:
    """A SlimposeInputError naming ``out_dir`` when the records of ``num_images`` images cannot be held in
    memory (they are, until the label json is written)."""
    need = int(num_images) * RECORD_BYTES_PER_IMAGE
    total = available_memory()
    if need > total:
        raise SlimposeInputError(f"synthetic data set {out_dir}: {num_images} images need at least "
                                 f"{need / 1e9:,.1f} GB of memory for their records, this machine has "
                                 f"{total / 1e9:,.1f} GB; write fewer images per split")


def check_disk_space(out_dir: str | os.PathLike, num_images: int, width: int, height: int) -> None:
    """A SlimposeInputError naming ``out_dir`` when ``num_images`` images cannot fit on its disk (before
    anything is written or any per-image job is built)."""
    import shutil

    need = num_images * width * height * JPEG_BYTES_PER_PIXEL
    probe = Path(out_dir).absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    free = shutil.disk_usage(probe).free
    if need > free:
        raise SlimposeInputError(f"synthetic data set {out_dir}: {num_images} images of {width}x{height} need at "
                                 f"least {need / 1e9:,.1f} GB, {free / 1e9:,.1f} GB are free there")


def annotation_path(out_dir: str | os.PathLike, split: str, skeleton: str = "coco") -> Path:
    """The label file ``generate_synthetic_dataset`` writes for ``split`` and ``skeleton``."""
    name = {"coco": "person_keypoints", "mpii": "mpii"}.get(skeleton, skeleton)
    return Path(out_dir) / "annotations" / f"{name}_{split}.json"


# the label files over ``images/{split}/``: the COCO, AI Challenger and CrowdPose writers label the same
# images under the same names, so each of them is a label file of the split's images (MPII has its own names)
SHARED_IMAGE_SKELETONS = ("coco", "aic", "crowdpose")


def split_label_paths(out_dir: str | os.PathLike, split: str, skeleton: str = "coco") -> list[Path]:
    """Every label file over the images ``skeleton`` writes for ``split`` (its own first)."""
    own = annotation_path(out_dir, split, skeleton)
    if skeleton not in SHARED_IMAGE_SKELETONS:
        return [own]
    return [own] + [annotation_path(out_dir, split, other) for other in SHARED_IMAGE_SKELETONS
                    if other != skeleton]


def label_mismatch(path: Path, num_images: int, seed: int, image_size: tuple[int, int]) -> str | None:
    """How the existing label file ``path`` disagrees with a request for ``num_images`` images of ``seed`` and
    ``image_size`` (seed, image size and image count, what the file records); None when it agrees."""
    try:
        with open(path) as f:
            data = json.load(f)
        info = data.get("info") or {}
        recorded = {"seed": info.get("seed"), "image size": list(info.get("image_size") or []),
                    "images": len(data.get("images") or [])}
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return f"unreadable ({exc})"
    wanted = {"seed": int(seed), "image size": [int(image_size[0]), int(image_size[1])],
              "images": int(num_images)}
    diffs = [f"{key} {recorded[key]} (requested {wanted[key]})" for key in wanted if recorded[key] != wanted[key]]
    return ", ".join(diffs) or None


def conflicting_labels(out_dir: str | os.PathLike, split: str, skeleton: str, num_images: int, seed: int,
                       image_size: tuple[int, int]) -> list[tuple[Path, str]]:
    """The existing label files of ``split`` that new images would leave wrong: ``skeleton``'s own file, and
    any other label file over the same images whose recorded seed / image size / count differ."""
    own, *others = split_label_paths(out_dir, split, skeleton)
    found = [(own, "would be replaced")] if own.exists() else []
    for path in others:
        if path.exists():
            why = label_mismatch(path, num_images, seed, image_size)
            if why is not None:
                found.append((path, f"labels other images: {why}"))
    return found


def checked_config(out_dir: str | os.PathLike, num_images: int, seed: int, split: str,
                   image_size: tuple[int, int], config: SynthConfig | None) -> SynthConfig:
    """Validate the generator's arguments (SlimposeInputError naming ``out_dir``); the config to use."""
    if int(num_images) < 1:
        raise SlimposeInputError(f"synthetic data set {out_dir}: --images must be >= 1, got {num_images}")
    if int(seed) < 0:
        raise SlimposeInputError(f"synthetic data set {out_dir}: --seed must be >= 0, got {seed}")
    if not split or any(c in split for c in "/\\ ") or split.startswith("."):
        raise SlimposeInputError(f"synthetic data set {out_dir}: bad split name {split!r}")
    width, height = int(image_size[0]), int(image_size[1])
    if width < 32 or height < 32:
        raise SlimposeInputError(f"synthetic data set {out_dir}: image size {width}x{height} is below 32x32")
    if int(num_images) > MAX_SYNTH_IMAGES:
        raise SlimposeInputError(f"synthetic data set {out_dir}: at most {MAX_SYNTH_IMAGES:,} images per split "
                                 f"(the ids are 9-digit file names), got {int(num_images):,}")
    check_memory(out_dir, int(num_images))
    check_disk_space(out_dir, int(num_images), width, height)
    cfg = config or SynthConfig()
    return SynthConfig(**{**cfg.__dict__, "image_size": (width, height)})


def run_jobs(worker: Callable[[Any], Any], jobs: list[Any], workers: int, progress: bool, desc: str
             ) -> list[Any]:
    """``worker(job)`` for every job, in job order, in this process or in ``workers`` spawned processes."""
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), desc=desc, unit="img", disable=not progress or not sys.stderr.isatty())
    results: list[Any] = []
    if workers <= 1:
        for job in jobs:
            results.append(worker(job))
            bar.update(1)
    else:
        # "spawn", never "fork": a forked child inherits OpenCV's/torch's thread pools in whatever state
        # the parent left them and can deadlock on their locks (seen after a test had trained a model).
        with mp.get_context("spawn").Pool(int(workers), initializer=_worker_init) as pool:
            for res in pool.imap(worker, jobs, chunksize=8):
                results.append(res)
                bar.update(1)
    bar.close()
    return results


def render_coco_images(out_dir: str | os.PathLike, num_images: int, seed: int, split: str, cfg: SynthConfig,
                       annotate: Annotator | None = None, workers: int = 1, progress: bool = True,
                       desc: str | None = None) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Render images ``0 .. num_images - 1`` of ``split`` into ``out_dir/images/{split}/{id:09d}.jpg``
    (id = index + 1; ``cfg`` already checked); returns ``(image record, annotate's annotations)`` per image,
    in index order (``annotate`` defaults to ``annotate_coco``; it does not change the pixels)."""
    image_root = Path(out_dir) / "images"
    (image_root / split).mkdir(parents=True, exist_ok=True)
    annotate = annotate or annotate_coco
    jobs = [(i, int(seed), split, str(image_root), cfg, annotate) for i in range(int(num_images))]
    results: list[tuple[int, dict[str, Any], list[dict[str, Any]]]] = run_jobs(
        _make_one, jobs, workers, progress, desc or f"synth {split}")
    results.sort(key=lambda r: r[0])
    return [(record, anns) for _, record, anns in results]


def coco_keypoint_json(rendered: list[tuple[dict[str, Any], list[dict[str, Any]]]], info: dict[str, Any],
                       category: dict[str, Any]) -> dict[str, Any]:
    """The COCO keypoint json of ``render_coco_images`` output: annotation ids 1, 2, ... in image order."""
    images, annotations = [], []
    for record, anns in rendered:
        images.append(record)
        for ann in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": record["id"], **ann})
    return {"info": info, "licenses": [], "images": images, "annotations": annotations,
            "categories": [category]}


SKELETONS = ("coco", "mpii", "aic", "crowdpose")


def generate_synthetic_dataset(
    out_dir: str | os.PathLike,
    num_images: int,
    seed: int,
    split: str = "train",
    image_size: tuple[int, int] = (320, 256),
    workers: int = 1,
    progress: bool = True,
    config: SynthConfig | None = None,
    skeleton: str = "coco",
) -> Path:
    """Write ``out_dir/images/{split}/*.jpg`` and ``out_dir/annotations/person_keypoints_{split}.json``.

    Returns the annotation json path. ``file_name`` entries are relative to ``out_dir/images``.
    ``workers > 1`` renders in "spawn" worker processes (the output does not depend on the count); from a
    script, call it under ``if __name__ == "__main__":`` as Python requires for spawned workers.
    ``config`` picks the generator's knobs (``SynthConfig()`` is the built-in benchmark set,
    ``SynthConfig.easy()`` a one-person preset for CPU-minute demos); its ``image_size`` is replaced by
    ``image_size``. ``skeleton="mpii"`` writes the same images as an MPII json list instead
    (``synth_mpii.write_synthetic_mpii``: ``out_dir/annotations/mpii_{split}.json`` + ``out_dir/images``);
    ``"aic"`` / ``"crowdpose"`` the same images and file names with 14-joint COCO-format labels
    (``synth_coco14.write_synthetic_coco14``: ``out_dir/annotations/{aic,crowdpose}_{split}.json``).
    The split's existing label file, and any other skeleton's label file over the same ``images/{split}/``
    that records another seed, image size or count, is deleted before the first image is written
    (``slimpose data synth`` refuses such files without ``--overwrite``, and with it deletes every label
    file over those images); a count that cannot fit on the disk is refused up front.
    """
    if skeleton not in SKELETONS:
        raise SlimposeInputError(f"synthetic data set {out_dir}: unknown skeleton {skeleton!r} "
                                 f"(choose from {', '.join(SKELETONS)})")
    cfg = checked_config(out_dir, num_images, seed, split, image_size, config)
    # the old labels of these images go first: a run killed while writing images leaves no labels (the split
    # is then evidently incomplete), never old labels over new images. That is the skeleton's own file and
    # every other skeleton's file over the same images/{split}/ that records another seed / size / count
    # (``slimpose data synth --overwrite`` deletes them all before calling this).
    for path, _ in conflicting_labels(out_dir, split, skeleton, num_images, seed, cfg.image_size):
        path.unlink(missing_ok=True)
    for folder in (Path(out_dir) / "images", Path(out_dir) / "images" / split):
        remove_stale_tmp(folder)  # what a killed earlier run left
    if skeleton == "mpii":
        from slimpose.data.synth_mpii import write_synthetic_mpii

        return write_synthetic_mpii(out_dir, num_images, seed, split, cfg, workers=workers, progress=progress)
    if skeleton in ("aic", "crowdpose"):
        from slimpose.data.synth_coco14 import write_synthetic_coco14

        return write_synthetic_coco14(out_dir, num_images, seed, split, cfg, skeleton, workers=workers,
                                      progress=progress)
    width, height = cfg.image_size
    out = Path(out_dir)
    rendered = render_coco_images(out, num_images, seed, split, cfg, workers=workers, progress=progress)
    info = {"description": "slimpose synthetic people", "version": "1.0", "seed": int(seed), "split": split,
            "image_size": [width, height], "generator": "slimpose.data.synth",
            "keypoints_3d": "camera frame (x right, y down, z forward), metres",
            "view_yaw": "degrees; 0 = the person faces the camera, 180 = seen from the back"}
    path = out / "annotations" / f"person_keypoints_{split}.json"
    write_json_atomic(path, coco_keypoint_json(rendered, info, COCO_PERSON_CATEGORY))
    return path
