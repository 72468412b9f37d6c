"""Per-dataset keypoint metadata, written out once as data.

Keypoint order, flip partners, skeleton links and their colours, joint weights and OKS sigmas
follow the MMPose 1.x ``configs/_base_/datasets/<name>.py`` files (which copy the official
COCO / CrowdPose / AI Challenger evaluation constants). Colours are RGB.
"""

from __future__ import annotations

from dataclasses import dataclass

RGB = tuple[int, int, int]

_BLUE: RGB = (51, 153, 255)
_GREEN: RGB = (0, 255, 0)
_ORANGE: RGB = (255, 128, 0)


@dataclass(frozen=True)
class DatasetInfo:
    """Keypoint semantics of one dataset (all index fields refer to ``keypoint_names``)."""

    name: str
    keypoint_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    sigmas: tuple[float, ...]
    joint_weights: tuple[float, ...]
    skeleton: tuple[tuple[int, int], ...]
    skeleton_colors: tuple[RGB, ...]
    keypoint_colors: tuple[RGB, ...]
    upper_body_ids: tuple[int, ...]
    lower_body_ids: tuple[int, ...]

    def __post_init__(self) -> None:
        k = len(self.keypoint_names)
        for field_name in ("sigmas", "joint_weights", "keypoint_colors"):
            if len(getattr(self, field_name)) != k:
                n = len(getattr(self, field_name))
                raise ValueError(f"DatasetInfo {self.name}: {field_name} has {n} entries, expected {k}")
        if len(self.skeleton) != len(self.skeleton_colors):
            raise ValueError(f"DatasetInfo {self.name}: one colour per skeleton link is required")
        used = [i for pair in self.flip_pairs + self.skeleton for i in pair]
        used += list(self.upper_body_ids) + list(self.lower_body_ids)
        if any(not 0 <= i < k for i in used):
            raise ValueError(f"DatasetInfo {self.name}: keypoint index out of range [0, {k})")
        if sorted(self.upper_body_ids + self.lower_body_ids) != list(range(k)):
            raise ValueError(f"DatasetInfo {self.name}: upper and lower body ids must partition "
                             "the keypoints")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def flip_index(self) -> tuple[int, ...]:
        """Permutation ``p`` with ``flipped[k] = original[p[k]]`` (left/right partners swapped)."""
        from slimpose.codecs.flip import flip_permutation

        return tuple(int(i) for i in flip_permutation(self.flip_pairs, self.num_keypoints))


def _make_info(
    name: str,
    keypoints: list[tuple[str, str, str, RGB]],
    links: list[tuple[str, str, RGB]],
    sigmas: list[float],
    joint_weights: list[float],
) -> DatasetInfo:
    """Build a DatasetInfo from (name, 'upper'|'lower', swap partner, colour) rows and named links."""
    names = tuple(row[0] for row in keypoints)
    idx = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, (_, _, swap, _) in enumerate(keypoints):
        if swap and idx[swap] > i:
            pairs.append((i, idx[swap]))
    return DatasetInfo(
        name=name,
        keypoint_names=names,
        flip_pairs=tuple(pairs),
        sigmas=tuple(float(s) for s in sigmas),
        joint_weights=tuple(float(w) for w in joint_weights),
        skeleton=tuple((idx[a], idx[b]) for a, b, _ in links),
        skeleton_colors=tuple(c for _, _, c in links),
        keypoint_colors=tuple(row[3] for row in keypoints),
        upper_body_ids=tuple(i for i, row in enumerate(keypoints) if row[1] == "upper"),
        lower_body_ids=tuple(i for i, row in enumerate(keypoints) if row[1] == "lower"),
    )


# COCO-17 body layout, shared by COCO and OCHuman.
_COCO_KEYPOINTS = [
    ("nose", "upper", "", _BLUE),
    ("left_eye", "upper", "right_eye", _BLUE),
    ("right_eye", "upper", "left_eye", _BLUE),
    ("left_ear", "upper", "right_ear", _BLUE),
    ("right_ear", "upper", "left_ear", _BLUE),
    ("left_shoulder", "upper", "right_shoulder", _GREEN),
    ("right_shoulder", "upper", "left_shoulder", _ORANGE),
    ("left_elbow", "upper", "right_elbow", _GREEN),
    ("right_elbow", "upper", "left_elbow", _ORANGE),
    ("left_wrist", "upper", "right_wrist", _GREEN),
    ("right_wrist", "upper", "left_wrist", _ORANGE),
    ("left_hip", "lower", "right_hip", _GREEN),
    ("right_hip", "lower", "left_hip", _ORANGE),
    ("left_knee", "lower", "right_knee", _GREEN),
    ("right_knee", "lower", "left_knee", _ORANGE),
    ("left_ankle", "lower", "right_ankle", _GREEN),
    ("right_ankle", "lower", "left_ankle", _ORANGE),
]
_COCO_LIMBS = [
    ("left_ankle", "left_knee", _GREEN),
    ("left_knee", "left_hip", _GREEN),
    ("right_ankle", "right_knee", _ORANGE),
    ("right_knee", "right_hip", _ORANGE),
    ("left_hip", "right_hip", _BLUE),
    ("left_shoulder", "left_hip", _BLUE),
    ("right_shoulder", "right_hip", _BLUE),
    ("left_shoulder", "right_shoulder", _BLUE),
    ("left_shoulder", "left_elbow", _GREEN),
    ("right_shoulder", "right_elbow", _ORANGE),
    ("left_elbow", "left_wrist", _GREEN),
    ("right_elbow", "right_wrist", _ORANGE),
    ("left_eye", "right_eye", _BLUE),
    ("nose", "left_eye", _BLUE),
    ("nose", "right_eye", _BLUE),
    ("left_eye", "left_ear", _BLUE),
    ("right_eye", "right_ear", _BLUE),
    ("left_ear", "left_shoulder", _BLUE),
    ("right_ear", "right_shoulder", _BLUE),
]
# Official COCO keypoint OKS sigmas (cocoapi ``kpt_oks_sigmas``).
_COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
                0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
_COCO_WEIGHTS = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0, 1.2, 1.2, 1.5, 1.5]

COCO = _make_info("coco", _COCO_KEYPOINTS, _COCO_LIMBS, _COCO_SIGMAS, _COCO_WEIGHTS)

OCHUMAN = _make_info("ochuman", _COCO_KEYPOINTS, _COCO_LIMBS, _COCO_SIGMAS, _COCO_WEIGHTS)

# CrowdPose: sigmas of the official crowdposetools (COCO values for the limbs, 0.079 for head/neck).
CROWDPOSE = _make_info(
    "crowdpose",
    [
        ("left_shoulder", "upper", "right_shoulder", _BLUE),
        ("right_shoulder", "upper", "left_shoulder", _BLUE),
        ("left_elbow", "upper", "right_elbow", _BLUE),
        ("right_elbow", "upper", "left_elbow", _BLUE),
        ("left_wrist", "upper", "right_wrist", _BLUE),
        ("right_wrist", "upper", "left_wrist", _GREEN),
        ("left_hip", "lower", "right_hip", _ORANGE),
        ("right_hip", "lower", "left_hip", _GREEN),
        ("left_knee", "lower", "right_knee", _ORANGE),
        ("right_knee", "lower", "left_knee", _GREEN),
        ("left_ankle", "lower", "right_ankle", _ORANGE),
        ("right_ankle", "lower", "left_ankle", _GREEN),
        ("top_head", "upper", "", _ORANGE),
        ("neck", "upper", "", _GREEN),
    ],
    [
        ("left_ankle", "left_knee", _GREEN),
        ("left_knee", "left_hip", _GREEN),
        ("right_ankle", "right_knee", _ORANGE),
        ("right_knee", "right_hip", _ORANGE),
        ("left_hip", "right_hip", _BLUE),
        ("left_shoulder", "left_hip", _BLUE),
        ("right_shoulder", "right_hip", _BLUE),
        ("left_shoulder", "right_shoulder", _BLUE),
        ("left_shoulder", "left_elbow", _GREEN),
        ("right_shoulder", "right_elbow", _ORANGE),
        ("left_elbow", "left_wrist", _GREEN),
        ("right_elbow", "right_wrist", _ORANGE),
        ("top_head", "neck", _BLUE),
        ("right_shoulder", "neck", _BLUE),
        ("left_shoulder", "neck", _BLUE),
    ],
    [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089, 0.079, 0.079],
    [0.2, 0.2, 0.2, 1.3, 1.5, 0.2, 1.3, 1.5, 0.2, 0.2, 0.5, 0.2, 0.2, 0.5],
)

# AI Challenger: sigmas from the official keypoint_eval.py (delta = 2 x sigma, stored as sigma).
AIC = _make_info(
    "aic",
    [
        ("right_shoulder", "upper", "left_shoulder", _ORANGE),
        ("right_elbow", "upper", "left_elbow", _ORANGE),
        ("right_wrist", "upper", "left_wrist", _ORANGE),
        ("left_shoulder", "upper", "right_shoulder", _GREEN),
        ("left_elbow", "upper", "right_elbow", _GREEN),
        ("left_wrist", "upper", "right_wrist", _GREEN),
        ("right_hip", "lower", "left_hip", _ORANGE),
        ("right_knee", "lower", "left_knee", _ORANGE),
        ("right_ankle", "lower", "left_ankle", _ORANGE),
        ("left_hip", "lower", "right_hip", _GREEN),
        ("left_knee", "lower", "right_knee", _GREEN),
        ("left_ankle", "lower", "right_ankle", _GREEN),
        ("head_top", "upper", "", _BLUE),
        ("neck", "upper", "", _BLUE),
    ],
    [
        ("right_wrist", "right_elbow", _ORANGE),
        ("right_elbow", "right_shoulder", _ORANGE),
        ("right_shoulder", "neck", _BLUE),
        ("neck", "left_shoulder", _BLUE),
        ("left_shoulder", "left_elbow", _GREEN),
        ("left_elbow", "left_wrist", _GREEN),
        ("right_ankle", "right_knee", _ORANGE),
        ("right_knee", "right_hip", _ORANGE),
        ("right_hip", "left_hip", _BLUE),
        ("left_hip", "left_knee", _GREEN),
        ("left_knee", "left_ankle", _GREEN),
        ("head_top", "neck", _BLUE),
        ("right_shoulder", "right_hip", _BLUE),
        ("left_shoulder", "left_hip", _BLUE),
    ],
    [0.01388152, 0.01515228, 0.01057665, 0.01417709, 0.01497891, 0.01402144, 0.03909642,
     0.03686941, 0.01981803, 0.03843971, 0.03412318, 0.02415081, 0.01291456, 0.01236173],
    [1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.2, 1.5, 1.0, 1.0],
)

# MPII: MMPose's sigmas are "adapted from COCO" (MPII itself is scored with PCKh, not OKS).
MPII = _make_info(
    "mpii",
    [
        ("right_ankle", "lower", "left_ankle", _ORANGE),
        ("right_knee", "lower", "left_knee", _ORANGE),
        ("right_hip", "lower", "left_hip", _ORANGE),
        ("left_hip", "lower", "right_hip", _GREEN),
        ("left_knee", "lower", "right_knee", _GREEN),
        ("left_ankle", "lower", "right_ankle", _GREEN),
        ("pelvis", "lower", "", _BLUE),
        ("thorax", "upper", "", _BLUE),
        ("upper_neck", "upper", "", _BLUE),
        ("head_top", "upper", "", _BLUE),
        ("right_wrist", "upper", "left_wrist", _ORANGE),
        ("right_elbow", "upper", "left_elbow", _ORANGE),
        ("right_shoulder", "upper", "left_shoulder", _ORANGE),
        ("left_shoulder", "upper", "right_shoulder", _GREEN),
        ("left_elbow", "upper", "right_elbow", _GREEN),
        ("left_wrist", "upper", "right_wrist", _GREEN),
    ],
    [
        ("right_ankle", "right_knee", _ORANGE),
        ("right_knee", "right_hip", _ORANGE),
        ("right_hip", "pelvis", _ORANGE),
        ("pelvis", "left_hip", _GREEN),
        ("left_hip", "left_knee", _GREEN),
        ("left_knee", "left_ankle", _GREEN),
        ("pelvis", "thorax", _BLUE),
        ("thorax", "upper_neck", _BLUE),
        ("upper_neck", "head_top", _BLUE),
        ("upper_neck", "right_shoulder", _ORANGE),
        ("right_shoulder", "right_elbow", _ORANGE),
        ("right_elbow", "right_wrist", _ORANGE),
        ("upper_neck", "left_shoulder", _GREEN),
        ("left_shoulder", "left_elbow", _GREEN),
        ("left_elbow", "left_wrist", _GREEN),
    ],
    [0.089, 0.083, 0.107, 0.107, 0.083, 0.089, 0.026, 0.026, 0.026, 0.026,
     0.062, 0.072, 0.179, 0.179, 0.072, 0.062],
    [1.5, 1.2, 1.0, 1.0, 1.2, 1.5, 1.0, 1.0, 1.0, 1.0, 1.5, 1.2, 1.0, 1.0, 1.2, 1.5],
)

# PoseTrack18: COCO order with head_bottom / head_top in place of the eyes; COCO sigmas as in MMPose.
POSETRACK18 = _make_info(
    "posetrack18",
    [
        ("nose", "upper", "", _BLUE),
        ("head_bottom", "upper", "", _BLUE),
        ("head_top", "upper", "", _BLUE),
        *_COCO_KEYPOINTS[3:],
    ],
    [
        *_COCO_LIMBS[:12],
        ("nose", "head_bottom", _BLUE),
        ("nose", "head_top", _BLUE),
        ("head_bottom", "left_shoulder", _BLUE),
        ("head_bottom", "right_shoulder", _BLUE),
    ],
    _COCO_SIGMAS,
    _COCO_WEIGHTS,
)

# sub-JHMDB: MMPose's sigmas are "adapted from COCO" (JHMDB is scored with PCK, not OKS).
JHMDB = _make_info(
    "jhmdb",
    [
        ("neck", "upper", "", _ORANGE),
        ("belly", "upper", "", _ORANGE),
        ("head", "upper", "", _ORANGE),
        ("right_shoulder", "upper", "left_shoulder", _GREEN),
        ("left_shoulder", "upper", "right_shoulder", _GREEN),
        ("right_hip", "lower", "left_hip", _GREEN),
        ("left_hip", "lower", "right_hip", _BLUE),
        ("right_elbow", "upper", "left_elbow", _BLUE),
        ("left_elbow", "upper", "right_elbow", _BLUE),
        ("right_knee", "lower", "left_knee", _BLUE),
        ("left_knee", "lower", "right_knee", _ORANGE),
        ("right_wrist", "upper", "left_wrist", _ORANGE),
        ("left_wrist", "upper", "right_wrist", _ORANGE),
        ("right_ankle", "lower", "left_ankle", _GREEN),
        ("left_ankle", "lower", "right_ankle", _GREEN),
    ],
    [
        ("right_ankle", "right_knee", _ORANGE),
        ("right_knee", "right_hip", _ORANGE),
        ("right_hip", "belly", _ORANGE),
        ("belly", "left_hip", _GREEN),
        ("left_hip", "left_knee", _GREEN),
        ("left_knee", "left_ankle", _GREEN),
        ("belly", "neck", _BLUE),
        ("neck", "head", _BLUE),
        ("neck", "right_shoulder", _ORANGE),
        ("right_shoulder", "right_elbow", _ORANGE),
        ("right_elbow", "right_wrist", _ORANGE),
        ("neck", "left_shoulder", _GREEN),
        ("left_shoulder", "left_elbow", _GREEN),
        ("left_elbow", "left_wrist", _GREEN),
    ],
    [0.025, 0.107, 0.025, 0.079, 0.079, 0.107, 0.107, 0.072, 0.072, 0.087,
     0.087, 0.062, 0.062, 0.089, 0.089],
    [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.2, 1.2, 1.2, 1.2, 1.5, 1.5, 1.5, 1.5],
)

DATASETS: dict[str, DatasetInfo] = {
    "coco": COCO,
    "crowdpose": CROWDPOSE,
    "aic": AIC,
    "mpii": MPII,
    "ochuman": OCHUMAN,
    "posetrack18": POSETRACK18,
    "jhmdb": JHMDB,
}
