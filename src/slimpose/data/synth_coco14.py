"""Synthetic people in the AI Challenger and CrowdPose skeletons: 14-joint COCO-format labels of the images.

The images are exactly those of ``synth``, under the same names (``DIR/images/{split}/{id:09d}.jpg``, same
pixels for the same seed, split, preset and size), so one data root holds the COCO, AIC and CrowdPose labels
of the same people side by side; image ids and annotation ids are the COCO writer's too (the same person has
the same ann id in every skeleton). The labels go to ``DIR/annotations/aic_{split}.json`` or
``DIR/annotations/crowdpose_{split}.json`` in the COCO keypoint format that MMPose's aic / crowdpose jsons use
(``images``, ``annotations`` with ``keypoints`` ``[x, y, v] * 14`` in the ``metainfo.AIC`` /
``metainfo.CROWDPOSE`` order, ``num_keypoints``, ``bbox``, ``area``, ``iscrowd``, ``category_id`` = 1,
``categories`` with the 14 names and the 1-based skeleton links). The joints come from the same 3-D body:

* shoulders, elbows, wrists, hips, knees, ankles: the COCO writer's keypoints, copied (coordinates and
  visibility);
* head top (AIC ``head_top``, CrowdPose ``top_head``): ``synth_mpii.head_top_point``, the MPII writer's head
  top (the top of the rendered head along its up direction), with its seen test;
* neck: the body's ``NECK_BASE``, the base of the neck between the shoulders (3.5 cm above their midpoint),
  seen when this person's neck or chest is on top at its pixel.

Visibility is the COCO writer's: ``v=2`` seen, ``v=1`` inside the image but hidden, ``0`` outside the image or
for a person whose visible area is below ``min_labelled_area``, written ``[0, 0, 0]``. ``bbox``, ``area`` and
the RLE ``segmentation`` (the person's visible mask), ``pose`` and ``view_yaw`` are the COCO annotation's;
``keypoints_3d`` is left out.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

import numpy as np

from slimpose.data import metainfo
from slimpose.data import synth as S
from slimpose.data import synth_body as sb
from slimpose.data import synth_mpii as M
from slimpose.data import synth_render as sr
from slimpose.data.metainfo import DatasetInfo
from slimpose.utils.io import SlimposeInputError, write_json_atomic

__all__ = ["SKELETON_INFO", "HEAD_TOP", "NECK", "joint_sources", "coco14_category", "coco14_joints_3d",
           "annotate_coco14", "generate_synthetic_coco14", "write_synthetic_coco14"]

# The 14-joint skeletons written here and their keypoint metadata (joint order).
SKELETON_INFO: dict[str, DatasetInfo] = {"aic": metainfo.AIC, "crowdpose": metainfo.CROWDPOSE}
_TITLES = {"aic": "AI Challenger", "crowdpose": "CrowdPose"}
# Sources of the joints that are not COCO keypoints.
HEAD_TOP, NECK = "head_top", "neck"
_EXTRA_NAMES = {"head_top": HEAD_TOP, "top_head": HEAD_TOP, "neck": NECK}
# Body parts on which the neck base counts as seen (it joins the chest and the neck capsules).
NECK_PARTS = (sb.PART_NECK, sb.PART_CHEST)


def _skeleton_info(skeleton: str, where: str) -> DatasetInfo:
    if skeleton not in SKELETON_INFO:
        raise SlimposeInputError(f"{where}: unknown 14-joint skeleton {skeleton!r} "
                                 f"(choose from {', '.join(SKELETON_INFO)})")
    return SKELETON_INFO[skeleton]


def joint_sources(info: DatasetInfo) -> tuple[int | str, ...]:
    """Where each joint of ``info`` comes from: a COCO keypoint index of the synthetic body, ``HEAD_TOP`` or
    ``NECK`` (ValueError for a joint the synthetic body does not define)."""
    out: list[int | str] = []
    for name in info.keypoint_names:
        if name in sb.COCO_KEYPOINT_NAMES:
            out.append(sb.COCO_KEYPOINT_NAMES.index(name))
        elif name in _EXTRA_NAMES:
            out.append(_EXTRA_NAMES[name])
        else:
            raise ValueError(f"{info.name}: joint {name!r} has no synthetic definition")
    return tuple(out)


_SOURCES = {name: joint_sources(info) for name, info in SKELETON_INFO.items()}


def coco14_category(skeleton: str) -> dict[str, Any]:
    """The person category of ``skeleton``'s json: the 14 keypoint names and the 1-based skeleton links."""
    info = _skeleton_info(skeleton, "synthetic people")
    return {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(info.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in info.skeleton]}


def coco14_joints_3d(body: sb.Body, skeleton: str) -> np.ndarray:
    """The 14 joints (``SKELETON_INFO[skeleton]`` order) of a posed body, in the body's frame (14, 3)."""
    extra = {HEAD_TOP: M.head_top_point(body), NECK: body.points[sb.NECK_BASE]}
    _skeleton_info(skeleton, "synthetic people")
    return np.stack([body.points[s] if isinstance(s, int) else extra[s] for s in _SOURCES[skeleton]])


def annotate_coco14(canvas: sr.Canvas, cam: S.Camera, person: S.Person, pid: int, cfg: S.SynthConfig,
                    skeleton: str = "aic") -> dict[str, Any] | None:
    """The COCO annotation (``synth.annotate_coco``, without ``keypoints_3d``) of one rendered person with
    its keypoints in ``skeleton`` (14 ``[x, y, v]``); None where the COCO writer leaves the person out."""
    _skeleton_info(skeleton, "synthetic people")
    coco = S.annotate_coco(canvas, cam, person, pid, cfg)
    if coco is None:
        return None
    body = person.body
    labelled = coco["area"] >= cfg.min_labelled_area  # the COCO writer's rule: below it nothing is labelled
    head_top = cam.project(M.head_top_point(body)[None, :])[0]
    neck = person.uv[sb.NECK_BASE]
    extra = {HEAD_TOP: (head_top, M.head_top_seen(canvas, cam, body, pid)),
             NECK: (neck, M.seen_on_parts(canvas, neck, pid, NECK_PARTS))}
    keypoints: list[float | int] = []
    for source in _SOURCES[skeleton]:
        if isinstance(source, int):
            keypoints += coco["keypoints"][3 * source: 3 * source + 3]
            continue
        uv, seen = extra[source]
        v = 0
        if labelled and S.inside_image(uv[None, :], canvas.width, canvas.height)[0]:
            v = 2 if seen else 1
        keypoints += [round(float(uv[0]), 2), round(float(uv[1]), 2), v] if v else [0, 0, 0]
    ann = {k: value for k, value in coco.items() if k != "keypoints_3d"}
    ann["keypoints"] = keypoints
    ann["num_keypoints"] = int(sum(1 for v in keypoints[2::3] if v > 0))
    return ann


def generate_synthetic_coco14(out_dir: str | os.PathLike, num_images: int, seed: int, skeleton: str = "aic",
                              **kwargs: Any) -> Path:
    """``synth.generate_synthetic_dataset(..., skeleton=skeleton)`` for ``"aic"`` / ``"crowdpose"``:
    ``out_dir/images/{split}/*.jpg`` and ``out_dir/annotations/{skeleton}_{split}.json``; returns the json
    path."""
    _skeleton_info(skeleton, f"synthetic data set {out_dir}")
    return S.generate_synthetic_dataset(out_dir, num_images, seed, skeleton=skeleton, **kwargs)


def write_synthetic_coco14(out_dir: str | os.PathLike, num_images: int, seed: int, split: str,
                           cfg: S.SynthConfig, skeleton: str, workers: int = 1,
                           progress: bool = True) -> Path:
    """The writer behind ``generate_synthetic_coco14`` (``cfg`` already checked); the output does not depend
    on ``workers`` and the same seed gives byte-identical files."""
    _skeleton_info(skeleton, f"synthetic data set {out_dir}")
    out = Path(out_dir)
    annotate = functools.partial(annotate_coco14, skeleton=skeleton)  # picklable for spawned workers
    rendered = S.render_coco_images(out, num_images, seed, split, cfg, annotate=annotate, workers=workers,
                                    progress=progress, desc=f"synth {skeleton} {split}")
    width, height = cfg.image_size
    info = {"description": f"slimpose synthetic people, {_TITLES[skeleton]} skeleton",
            "version": "1.0", "seed": int(seed), "split": split, "image_size": [width, height],
            "generator": "slimpose.data.synth_coco14", "skeleton": skeleton,
            "view_yaw": "degrees; 0 = the person faces the camera, 180 = seen from the back"}
    path = out / "annotations" / f"{skeleton}_{split}.json"
    write_json_atomic(path, S.coco_keypoint_json(rendered, info, coco14_category(skeleton)))
    return path
