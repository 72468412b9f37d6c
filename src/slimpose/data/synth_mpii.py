"""Synthetic people in the MPII skeleton: the HRNet / MMPose MPII json list over slimpose's synthetic images.

The images are exactly those of ``synth`` (same seed, split, preset and size give the same pixels); each
rendered person becomes one MPII record ``{image, center, scale, joints (16x2), joints_vis (16), head_box,
joints_seen}`` in 1-based Matlab pixels, written to ``DIR/annotations/mpii_{split}.json`` with the images in
``DIR/images/`` (the catalog's "mpii" layout). The 16 joints come from the same 3-D body (``synth_body``):

* ankles, knees, hips, wrists, elbows, shoulders: the COCO joints;
* pelvis: the body's ``PELVIS`` point, which is exactly the midpoint of the hip joints (MPII's pelvis is
  annotated between the hips);
* thorax: the top of the sternum, the midpoint of the shoulder joints (3.5 cm below ``NECK_BASE``);
* upper neck: where the neck meets the head: the point where the rendered neck's axis enters the rendered
  head (the lower end sphere of the head capsule), about 1.3 head radii below the head centre;
* head top: the top of the rendered head along the head's up direction (the head is a capsule with end
  spheres at +-0.3 r around ``HEAD_CENTER``, so 1.3 r above the centre).

``joints_vis`` is MPII's "labelled" flag: MPII labels occluded joints too, so every joint whose projection
lies inside the image is labelled (1); joints outside are 0 with ``[-1, -1]`` as MPII writes them. The
rendered depth test (as the COCO writer's ``v=2``) goes into ``joints_seen`` (1 seen, 0 occluded or not
labelled; MPII's ``is_visible``), a slimpose extension that the loader does not use. ``head_box``
(``[x1, y1, x2, y2]``, 1-based, also a slimpose extension of the json list) is the exact bounding box of the
projected head capsule, not clipped to the image. The person box is the bounding box of the projected body
(16 joints, hand ends, toes, head box), not clipped; ``scale`` = max(box w, box h) / 200 (the loader makes a
square of that side, so a lying person is not cut) and ``center`` = the box centre written with MPII's
offsets undone (``- 15 * scale`` in y, +1 for 1-based), so that ``load_mpii_instances`` gives back exactly
this box. People whose visible area is below ``min_labelled_area`` or with no joint inside the image are
left out. Image files are named ``{code}{index:06d}.jpg`` with a 3-digit code of the split (numbers like
MPII's, so MMPose's ``int(image.split('.')[0])`` works, and splits share ``images/``).
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from slimpose.data import synth as S
from slimpose.data import synth_body as sb
from slimpose.data import synth_render as sr
from slimpose.utils.io import SlimposeInputError, atomic_path, write_json_atomic

__all__ = ["MPII_FROM_COCO", "mpii_joints_3d", "upper_neck_point", "head_top_point", "head_box",
           "sphere_bbox", "seen_on_parts", "head_top_seen", "annotate_mpii", "mpii_record",
           "render_mpii_image", "mpii_image_name", "generate_synthetic_mpii", "write_synthetic_mpii"]

# MPII joint -> COCO keypoint of the synthetic body (the joints both skeletons share).
MPII_FROM_COCO = {0: 16, 1: 14, 2: 12, 3: 11, 4: 13, 5: 15, 10: 10, 11: 8, 12: 6, 13: 5, 14: 7, 15: 9}
PELVIS_J, THORAX_J, UPPER_NECK_J, HEAD_TOP_J = 6, 7, 8, 9
# The rendered head and neck (synth._draw_person): head capsule end spheres at +-0.3 r along HEAD_UP,
# neck capsule from NECK_BASE to HEAD_CENTER - 0.5 r HEAD_UP.
HEAD_END = 0.3
NECK_TOP = 0.5
MAX_IMAGES = 1_000_000  # per split (6-digit index in the file name)


def head_top_point(body: sb.Body) -> np.ndarray:
    """Top of the rendered head capsule along the head's up direction (3,)."""
    r = body.shape.head_radius
    return body.points[sb.HEAD_CENTER] + (HEAD_END + 1.0) * r * body.dirs[sb.HEAD_UP]


def upper_neck_point(body: sb.Body) -> np.ndarray:
    """Where the rendered neck's axis enters the rendered head (its lower end sphere) (3,)."""
    r = body.shape.head_radius
    up = body.dirs[sb.HEAD_UP]
    center = body.points[sb.HEAD_CENTER]
    p0 = body.points[sb.NECK_BASE]
    d = (center - NECK_TOP * r * up) - p0
    c0 = center - HEAD_END * r * up
    # |p0 + t d - c0| = r, smallest t in [0, 1]
    w = p0 - c0
    a, b, c = float(d @ d), float(2.0 * d @ w), float(w @ w - r * r)
    disc = b * b - 4.0 * a * c
    if a <= 0.0 or c <= 0.0 or disc < 0.0:  # neck base inside the head (never with the sampled shapes)
        return p0.copy()
    t = (-b - np.sqrt(disc)) / (2.0 * a)
    return p0 + float(np.clip(t, 0.0, 1.0)) * d


def mpii_joints_3d(body: sb.Body) -> np.ndarray:
    """The 16 MPII joints (metainfo.MPII order) of a posed body, in the body's frame (16, 3)."""
    out = np.zeros((16, 3))
    for j, k in MPII_FROM_COCO.items():
        out[j] = body.points[k]
    out[PELVIS_J] = body.points[sb.PELVIS]
    out[THORAX_J] = 0.5 * (body.points[5] + body.points[6])
    out[UPPER_NECK_J] = upper_neck_point(body)
    out[HEAD_TOP_J] = head_top_point(body)
    return out


def sphere_bbox(cam: S.Camera, center: np.ndarray, radius: float) -> np.ndarray:
    """Exact image bounding box ``x1y1x2y2`` of a sphere in front of the pinhole camera.

    The extremes of X/Z over the sphere are where the planes X = k Z through the camera centre touch it:
    ``(X0 - k Z0)^2 = r^2 (1 + k^2)``; the same for Y.
    """
    x0, y0, z0 = (float(v) for v in center)
    r = float(radius)
    den = max(z0 * z0 - r * r, 1e-12)
    out = []
    for a0, f, c in ((x0, cam.fx, cam.cx), (y0, cam.fy, cam.cy)):
        root = r * np.sqrt(max(a0 * a0 + z0 * z0 - r * r, 0.0))
        out.append((f * (a0 * z0 - root) / den + c, f * (a0 * z0 + root) / den + c))
    (xa, xb), (ya, yb) = out
    return np.array([xa, ya, xb, yb])


def head_box(cam: S.Camera, body: sb.Body) -> np.ndarray:
    """Bounding box ``x1y1x2y2`` (0-based pixels) of the projected head capsule (its two end spheres)."""
    r = body.shape.head_radius
    up, center = body.dirs[sb.HEAD_UP], body.points[sb.HEAD_CENTER]
    boxes = np.stack([sphere_bbox(cam, center + s * HEAD_END * r * up, r) for s in (-1.0, 1.0)])
    return np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])


def seen_on_parts(canvas: sr.Canvas, uv: np.ndarray, pid: int, parts: tuple[int, ...]) -> bool:
    """Whether person ``pid`` is on top at pixel position ``uv`` (2,) with one of its ``parts``."""
    ix, iy = S.pixel_index(uv[None, :], canvas.width, canvas.height)
    return bool(canvas.owner[iy[0], ix[0]] == pid and int(canvas.part[iy[0], ix[0]]) in parts)


def head_top_seen(canvas: sr.Canvas, cam: S.Camera, body: sb.Body, pid: int) -> bool:
    """The head top's seen test: the top is on the head's outline, so a point 0.3 r inside it must show
    this person's head."""
    r = body.shape.head_radius
    probe = cam.project((body.points[sb.HEAD_CENTER] + r * body.dirs[sb.HEAD_UP])[None, :])[0]
    return seen_on_parts(canvas, probe, pid, (sb.PART_HEAD,))


def annotate_mpii(canvas: sr.Canvas, cam: S.Camera, person: S.Person, pid: int,
                  cfg: S.SynthConfig) -> dict[str, Any] | None:
    """MPII annotation of one rendered person in 0-based pixels (None: left out), as numpy arrays:
    ``joints`` (16, 2) (the projections, also where unlabelled), ``joints_vis`` (16,) 0/1,
    ``joints_seen`` (16,) 0/1, ``head_box`` (4,) and ``box`` (4,) x1y1x2y2, ``joints_3d`` (16, 3) camera
    frame."""
    area = int(np.count_nonzero(canvas.owner == pid))
    if area < max(cfg.min_labelled_area, 1):
        return None
    body = person.body
    j3d = mpii_joints_3d(body)
    uv = cam.project(j3d)
    inside = S.inside_image(uv, canvas.width, canvas.height)
    if not inside.any():
        return None
    coco_inside, coco_seen = S.coco_keypoints_seen(canvas, person, pid)
    seen = np.zeros(16, dtype=bool)
    for j, k in MPII_FROM_COCO.items():
        seen[j] = coco_seen[k]
    seen[PELVIS_J] = seen_on_parts(canvas, uv[PELVIS_J], pid, (sb.PART_PELVIS,))
    seen[THORAX_J] = seen_on_parts(canvas, uv[THORAX_J], pid, (sb.PART_CHEST, sb.PART_NECK))
    seen[UPPER_NECK_J] = seen_on_parts(canvas, uv[UPPER_NECK_J], pid, (sb.PART_NECK, sb.PART_HEAD))
    seen[HEAD_TOP_J] = head_top_seen(canvas, cam, body, pid)
    seen &= inside
    hbox = head_box(cam, body)
    extent = np.concatenate([uv, person.uv[list(sb.HAND_END) + list(sb.TOE)], hbox.reshape(2, 2)])
    box = np.concatenate([extent.min(axis=0), extent.max(axis=0)])
    return {"joints": uv, "joints_vis": inside.astype(np.int64), "joints_seen": seen.astype(np.int64),
            "head_box": hbox, "box": box, "joints_3d": j3d}


def mpii_record(ann: dict[str, Any], image: str) -> dict[str, Any]:
    """The json record (1-based Matlab pixels, MPII's centre offset) of an ``annotate_mpii`` annotation."""
    x1, y1, x2, y2 = (float(v) for v in ann["box"])
    s200 = round(max(x2 - x1, y2 - y1, 1.0) / 200.0, 6)
    cx, cy = round(0.5 * (x1 + x2) + 1.0, 4), round(0.5 * (y1 + y2) + 1.0 - 15.0 * s200, 4)
    if cx == -1.0:  # the loader reads center[0] == -1 as "no centre" and skips the offset
        cx = -1.0001
    vis = [int(v) for v in ann["joints_vis"]]
    joints = [[round(float(x) + 1.0, 4), round(float(y) + 1.0, 4)] if v else [-1.0, -1.0]
              for (x, y), v in zip(ann["joints"], vis)]
    return {
        "image": image,
        "center": [cx, cy],
        "scale": s200,
        "joints": joints,
        "joints_vis": vis,
        "head_box": [round(float(v) + 1.0, 4) for v in ann["head_box"]],
        "joints_seen": [int(v) for v in ann["joints_seen"]],
    }


def render_mpii_image(rng: np.random.Generator, config: S.SynthConfig | None = None) -> S.SynthImage:
    """One synthetic image (the same pixels as ``synth.render_synthetic_image``) with ``annotate_mpii``
    annotations."""
    return S.render_synthetic_image(rng, config, annotate=annotate_mpii)


def mpii_image_name(split: str, index: int) -> str:
    """File name of image ``index`` (0-based) of ``split``: a 3-digit split code + the 6-digit index + 1."""
    return f"{zlib.crc32(split.encode()) % 900 + 100:03d}{int(index) + 1:06d}.jpg"


def _make_one_mpii(job: tuple[int, int, str, str, S.SynthConfig]) -> tuple[int, list[dict[str, Any]]]:
    index, seed, split, image_root, cfg = job
    result = render_mpii_image(S.image_rng(seed, split, index), cfg)
    name = mpii_image_name(split, index)
    ok, buf = cv2.imencode(".jpg", result.image, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise RuntimeError(f"JPEG encoding failed for {name}")
    with atomic_path(Path(image_root) / name) as tmp:
        Path(tmp).write_bytes(buf.tobytes())
    return index, [mpii_record(ann, name) for ann in result.annotations]


def generate_synthetic_mpii(out_dir: str | os.PathLike, num_images: int, seed: int, **kwargs: Any) -> Path:
    """``synth.generate_synthetic_dataset(..., skeleton="mpii")``: ``out_dir/images/*.jpg`` and
    ``out_dir/annotations/mpii_{split}.json`` (an MPII json list); returns the json path."""
    return S.generate_synthetic_dataset(out_dir, num_images, seed, skeleton="mpii", **kwargs)


def write_synthetic_mpii(out_dir: str | os.PathLike, num_images: int, seed: int, split: str, cfg: S.SynthConfig,
                         workers: int = 1, progress: bool = True) -> Path:
    """The MPII writer behind ``generate_synthetic_mpii`` (``cfg`` already checked); the output does not
    depend on ``workers`` and the same seed gives byte-identical files."""
    if int(num_images) >= MAX_IMAGES:
        raise SlimposeInputError(f"synthetic data set {out_dir}: at most {MAX_IMAGES - 1} MPII images "
                                   f"per split, got {num_images}")
    out = Path(out_dir)
    image_root = out / "images"
    image_root.mkdir(parents=True, exist_ok=True)
    jobs = [(i, int(seed), split, str(image_root), cfg) for i in range(int(num_images))]
    results: list[tuple[int, list[dict[str, Any]]]] = S.run_jobs(
        _make_one_mpii, jobs, workers, progress, f"synth mpii {split}")
    results.sort(key=lambda r: r[0])
    records = [rec for _, recs in results for rec in recs]
    path = out / "annotations" / f"mpii_{split}.json"
    write_json_atomic(path, records)
    return path
