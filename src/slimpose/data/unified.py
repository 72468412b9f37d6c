"""The unified keypoint set: one skeleton over COCO, OCHuman, MPII, AI Challenger and CrowdPose (UniTransPose).

UniTransPose trains one model on several data sets through the union of their joints (23 with JRDB-Pose,
whose list is not public and which slimpose does not load). slimpose's union of the five data sets it loads
has 22 joints: the 17 COCO joints, then

* ``head_top``: MPII ``head_top``, AIC ``head_top``, CrowdPose ``top_head``;
* ``neck``: AIC ``neck``, CrowdPose ``neck`` (both the base of the neck, between the shoulders);
* ``upper_neck``, ``thorax``, ``pelvis``: MPII only.

Only joints that the data sets define the same way are merged: MPII's ``upper_neck`` (the top of the neck)
and ``thorax`` are not AIC's ``neck`` and stay separate, so no label is moved. Every data set's joints map
into the set by name (``MAPPINGS``: source index -> unified index); the joints a data set does not label get
visibility 0 there, hence zero target weight and zero loss. Each unified joint keeps the OKS sigma of the
data set it comes from (COCO's for the 17, CrowdPose's for ``head_top`` / ``neck``, MMPose's MPII values for
the MPII-only joints) and COCO's joint weights (1.0 for the new ones). The extra joints lie on the body's
midline: they have no flip partner.
"""

from __future__ import annotations

import numpy as np

from slimpose.data.metainfo import AIC, COCO, CROWDPOSE, MPII, OCHUMAN, DatasetInfo

# source data set -> {its joint name: unified joint name} where the names differ
_RENAME = {"crowdpose": {"top_head": "head_top"}, "mpii": {}, "aic": {}, "coco": {}, "ochuman": {}}
_EXTRA = (("head_top", CROWDPOSE, "top_head"), ("neck", CROWDPOSE, "neck"), ("upper_neck", MPII, "upper_neck"),
          ("thorax", MPII, "thorax"), ("pelvis", MPII, "pelvis"))
SOURCES: dict[str, DatasetInfo] = {"coco": COCO, "ochuman": OCHUMAN, "mpii": MPII, "aic": AIC,
                                   "crowdpose": CROWDPOSE}


def _unified_info() -> DatasetInfo:
    names = COCO.keypoint_names + tuple(n for n, _, _ in _EXTRA)
    sigmas = COCO.sigmas + tuple(info.sigmas[info.keypoint_names.index(src)] for _, info, src in _EXTRA)
    weights = COCO.joint_weights + (1.0,) * len(_EXTRA)
    idx = {n: i for i, n in enumerate(names)}
    links = COCO.skeleton + ((idx["head_top"], idx["neck"]), (idx["neck"], idx["left_shoulder"]),
                             (idx["neck"], idx["right_shoulder"]), (idx["upper_neck"], idx["thorax"]),
                             (idx["thorax"], idx["pelvis"]))
    colors = COCO.skeleton_colors + (COCO.skeleton_colors[0],) * 5
    lower = {"pelvis"}
    return DatasetInfo(
        name="unified", keypoint_names=names, flip_pairs=COCO.flip_pairs, sigmas=sigmas, joint_weights=weights,
        skeleton=links, skeleton_colors=colors,
        keypoint_colors=COCO.keypoint_colors + (COCO.keypoint_colors[0],) * len(_EXTRA),
        upper_body_ids=COCO.upper_body_ids + tuple(idx[n] for n, _, _ in _EXTRA if n not in lower),
        lower_body_ids=COCO.lower_body_ids + tuple(idx[n] for n in lower),
    )


UNIFIED = _unified_info()


def _mapping(name: str) -> tuple[int, ...]:
    info, rename = SOURCES[name], _RENAME[name]
    unified = {n: i for i, n in enumerate(UNIFIED.keypoint_names)}
    return tuple(unified[rename.get(n, n)] for n in info.keypoint_names)


# data set -> unified index of each of its joints, in its own order
MAPPINGS: dict[str, tuple[int, ...]] = {name: _mapping(name) for name in SOURCES}


def _check(dataset: str, keypoints: np.ndarray, k: int, what: str) -> np.ndarray:
    if dataset not in MAPPINGS:
        raise ValueError(f"unified skeleton: unknown data set {dataset!r} (known: {', '.join(MAPPINGS)})")
    kp = np.asarray(keypoints)
    if kp.ndim < 2 or kp.shape[-2] != k:
        raise ValueError(f"unified skeleton: {what} keypoints of {dataset} must be (..., {k}, C), got {kp.shape}")
    return kp


def to_unified(keypoints: np.ndarray, dataset: str) -> np.ndarray:
    """``(..., K, C)`` keypoints of ``dataset`` (C = 2 or 3, the last column the visibility) -> ``(..., 22, C)``;
    the joints the data set does not label are all zeros (visibility 0: no target weight, no loss)."""
    m = MAPPINGS.get(dataset, ())
    kp = _check(dataset, keypoints, len(m), "source")
    out = np.zeros(kp.shape[:-2] + (UNIFIED.num_keypoints, kp.shape[-1]), dtype=kp.dtype)
    out[..., list(m), :] = kp
    return out


def from_unified(keypoints: np.ndarray, dataset: str) -> np.ndarray:
    """``(..., 22, C)`` unified keypoints -> ``dataset``'s own joints, in its order."""
    kp = _check(dataset, keypoints, UNIFIED.num_keypoints, "unified")
    return kp[..., list(MAPPINGS[dataset]), :]


def labelled_mask(dataset: str) -> np.ndarray:
    """(22,) bool: which unified joints ``dataset`` labels."""
    if dataset not in MAPPINGS:
        raise ValueError(f"unified skeleton: unknown data set {dataset!r} (known: {', '.join(MAPPINGS)})")
    mask = np.zeros(UNIFIED.num_keypoints, dtype=bool)
    mask[list(MAPPINGS[dataset])] = True
    return mask


SKELETON_CHOICES = ("unified",) + tuple(n for n in SOURCES if n != "ochuman")  # ochuman = coco's joints


def remap_instances(instances: list, dataset: str) -> list:
    """``PoseInstance`` s of ``dataset`` with their keypoints and visibilities moved into the unified set
    (unlabelled joints: zeros, visibility 0); boxes, centres, scales and head boxes are kept."""
    import dataclasses

    m = list(MAPPINGS.get(dataset, ()))
    if not m:
        raise ValueError(f"unified skeleton: unknown data set {dataset!r} (known: {', '.join(MAPPINGS)})")
    k = UNIFIED.num_keypoints
    out = []
    for inst in instances:
        kp = np.zeros((k, 2), np.float32)
        vis = np.zeros(k, np.float32)
        kp[m] = _check(dataset, inst.keypoints, len(m), "source")
        vis[m] = inst.visible
        out.append(dataclasses.replace(inst, keypoints=kp, visible=vis))
    if hasattr(instances, "skipped"):  # an InstanceList keeps its source and skip counts
        return type(instances)(out, instances.source, instances.skipped)
    return out


def skeleton_map(model_info: DatasetInfo, skeleton: str | None) -> tuple[DatasetInfo, tuple[int, ...] | None]:
    """The keypoint metadata of ``skeleton`` and which of the model's keypoints give it, in its order
    (``None``: all of them, unchanged), for a model that predicts ``model_info``'s keypoints.

    ``skeleton=None`` (or the model's own) keeps the model's output; a unified model gives any data set's
    skeleton (``from_unified``); any other change is a ValueError (its joints are not predicted).
    """
    if skeleton is None or skeleton == model_info.name:
        return model_info, None
    if skeleton not in SKELETON_CHOICES and skeleton != "ochuman":
        raise ValueError(f"unknown skeleton {skeleton!r} (choose from {', '.join(SKELETON_CHOICES)})")
    if model_info.keypoint_names != UNIFIED.keypoint_names:
        raise ValueError(f"the model predicts the {model_info.name} skeleton ({model_info.num_keypoints} keypoints); "
                         f"only a model trained on the unified skeleton can give {skeleton!r}")
    if skeleton == "unified":
        return UNIFIED, None
    return SOURCES[skeleton], MAPPINGS[skeleton]
