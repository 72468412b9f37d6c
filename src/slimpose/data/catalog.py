"""The data sets slimpose reads, as data: keypoint metadata, official file layout, loader and metric.

Nothing else in slimpose switches on a data-set name: code looks the name up in ``CATALOG`` and uses
what the entry says. Layouts are the official ones (as MMPose's ``docs/en/dataset_zoo`` documents them),
relative to a data-set root folder:

* COCO: ``annotations/person_keypoints_{train,val}2017.json``, ``{train,val}2017/``, detection boxes
  ``person_detection_results/COCO_val2017_detections_AP_H_56_person.json``;
* CrowdPose: ``json/crowdpose_{trainval,test}.json`` + ``images/`` (OKS area = 0.53 x box area);
* AI Challenger: ``annotations/aic_{train,val}.json`` + the 2017 image folders (area as CrowdPose);
* OCHuman (evaluation only): ``annotations/ochuman_coco_format_{val,test}_range_0.00_1.00.json`` +
  ``images/``;
* MPII: ``annotations/mpii_{train,val}.json`` (the HRNet / MMPose json list) + ``images/``, scored
  with PCKh@0.5;
* synthetic people: ``annotations/person_keypoints_{train,val}.json`` + ``images/``, generated on first
  use (``slimpose.data.synth``), COCO keypoints; the same people in the MPII skeleton
  (``synthetic_mpii``: ``annotations/mpii_{train,val}.json``, ``slimpose.data.synth_mpii``) and in the AI
  Challenger / CrowdPose skeletons (``synthetic_aic`` / ``synthetic_crowdpose``:
  ``annotations/{aic,crowdpose}_{train,val}.json`` over the same ``images/{split}/`` files, area as the real
  ones; ``slimpose.data.synth_coco14``).

Adding a data set means one entry here (and its ``DatasetInfo`` in ``metainfo``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from slimpose.data import metainfo
from slimpose.data.coco import load_coco_instances
from slimpose.data.instances import PoseInstance
from slimpose.data.metainfo import DatasetInfo
from slimpose.data.mpii import load_mpii_instances
from slimpose.evaluation.metrics import CocoKeypointMetric, PCKhMetric
from slimpose.utils.io import SlimposeInputError

Loader = Callable[..., list[PoseInstance]]


@dataclass(frozen=True)
class SplitLayout:
    """Annotation file and image folder of one split, relative to the data-set root."""

    ann: str
    images: str


@dataclass(frozen=True)
class DatasetSpec:
    """Everything slimpose needs to know about one data set.

    ``load(ann_file, image_root, bbox_file, det_score_thr, info)`` returns ``PoseInstance`` records;
    ``metric`` is the validation metric class (``slimpose.evaluation.metrics``: COCO keypoint AP with the
    data set's OKS sigmas, or MPII PCKh@0.5), built per split by ``metric.for_split(spec, ann, instances)``.
    ``use_area``: OKS uses the annotation's segmentation area (False: 0.53 x the box area, xtcocotools
    ``use_area=False``). ``generate``: for the synthetic sets, the writer of a split
    (``generate(root, num_images, seed, split=, image_size=, progress=, config=)``), run on first use.
    """

    name: str
    info: DatasetInfo
    load: Loader
    val: SplitLayout
    train: SplitLayout | None = None
    det_file: str | None = None
    metric: Any = CocoKeypointMetric
    use_area: bool = True
    generate: Callable[..., Any] | None = None
    supports_detections: bool = True

    @property
    def synthetic(self) -> bool:
        return self.generate is not None


def _load_coco(ann: Any, images: Any, bbox_file: Any = None, det_score_thr: float = 0.0,
               info: DatasetInfo | None = None) -> list[PoseInstance]:
    return load_coco_instances(str(ann), image_root=str(images), bbox_file=None if bbox_file is None else
                               str(bbox_file), det_score_thr=det_score_thr, info=info)


def _load_mpii(ann: Any, images: Any, bbox_file: Any = None, det_score_thr: float = 0.0,
               info: DatasetInfo | None = None) -> list[PoseInstance]:
    if bbox_file is not None:
        raise SlimposeInputError(f"{ann}: MPII is evaluated with its own person centres and scales "
                                 "(data.use_gt_bbox=true); detection boxes are not supported")
    return load_mpii_instances(str(ann), image_root=str(images), info=info or metainfo.MPII)


def _synthetic_people(skeleton: str) -> Callable[..., Any]:
    """The writer of the synthetic people in ``skeleton`` (``synth.generate_synthetic_dataset``)."""
    def generate(*args: Any, **kwargs: Any) -> Any:
        from slimpose.data.synth import generate_synthetic_dataset

        return generate_synthetic_dataset(*args, skeleton=skeleton, **kwargs)

    return generate


CATALOG: dict[str, DatasetSpec] = {
    "coco": DatasetSpec(
        "coco", metainfo.COCO, _load_coco,
        train=SplitLayout("annotations/person_keypoints_train2017.json", "train2017"),
        val=SplitLayout("annotations/person_keypoints_val2017.json", "val2017"),
        det_file="person_detection_results/COCO_val2017_detections_AP_H_56_person.json",
    ),
    "crowdpose": DatasetSpec(
        "crowdpose", metainfo.CROWDPOSE, _load_coco,
        train=SplitLayout("json/crowdpose_trainval.json", "images"),
        val=SplitLayout("json/crowdpose_test.json", "images"),
        use_area=False,
    ),
    "aic": DatasetSpec(
        "aic", metainfo.AIC, _load_coco,
        train=SplitLayout("annotations/aic_train.json",
                          "ai_challenger_keypoint_train_20170902/keypoint_train_images_20170902"),
        val=SplitLayout("annotations/aic_val.json",
                        "ai_challenger_keypoint_validation_20170911/keypoint_validation_images_20170911"),
        use_area=False,
    ),
    "ochuman": DatasetSpec(
        "ochuman", metainfo.OCHUMAN, _load_coco,
        val=SplitLayout("annotations/ochuman_coco_format_val_range_0.00_1.00.json", "images"),
    ),
    "mpii": DatasetSpec(
        "mpii", metainfo.MPII, _load_mpii,
        train=SplitLayout("annotations/mpii_train.json", "images"),
        val=SplitLayout("annotations/mpii_val.json", "images"),
        metric=PCKhMetric, supports_detections=False,
    ),
    "synthetic": DatasetSpec(
        "synthetic", metainfo.COCO, _load_coco,
        train=SplitLayout("annotations/person_keypoints_train.json", "images"),
        val=SplitLayout("annotations/person_keypoints_val.json", "images"),
        generate=_synthetic_people("coco"),
    ),
    # the same people in the MPII skeleton and json-list format, scored by PCKh (``data.synth_mpii``)
    "synthetic_mpii": DatasetSpec(
        "synthetic_mpii", metainfo.MPII, _load_mpii,
        train=SplitLayout("annotations/mpii_train.json", "images"),
        val=SplitLayout("annotations/mpii_val.json", "images"),
        metric=PCKhMetric, supports_detections=False, generate=_synthetic_people("mpii"),
    ),
    # the same people and images in the AI Challenger / CrowdPose skeletons, COCO json (``data.synth_coco14``)
    "synthetic_aic": DatasetSpec(
        "synthetic_aic", metainfo.AIC, _load_coco,
        train=SplitLayout("annotations/aic_train.json", "images"),
        val=SplitLayout("annotations/aic_val.json", "images"),
        use_area=False, generate=_synthetic_people("aic"),
    ),
    "synthetic_crowdpose": DatasetSpec(
        "synthetic_crowdpose", metainfo.CROWDPOSE, _load_coco,
        train=SplitLayout("annotations/crowdpose_train.json", "images"),
        val=SplitLayout("annotations/crowdpose_val.json", "images"),
        use_area=False, generate=_synthetic_people("crowdpose"),
    ),
}

def dataset_spec(name: str, where: str = "data.dataset") -> DatasetSpec:
    """The catalog entry of ``name``; an unknown name is a SlimposeInputError listing the known ones."""
    spec = CATALOG.get(name)
    if spec is None:
        raise SlimposeInputError(f"{where}: unknown data set {name!r} (choose from {', '.join(CATALOG)})")
    return spec


@dataclass(frozen=True)
class SplitFiles:
    """Resolved files of one split of one data set."""

    ann: Path
    images: Path


def resolve_split(spec: DatasetSpec, root: str | os.PathLike, split: str, ann: str | None = None,
                  images: str | None = None) -> SplitFiles:
    """Files of ``split`` ('train' or 'val') under ``root`` in the official layout; ``ann`` / ``images``
    (explicit paths) win over the layout."""
    layout = spec.train if split == "train" else spec.val
    base = Path(root).expanduser()
    if layout is None and not (ann and images):
        raise SlimposeInputError(f"data set {spec.name!r} has no official {split} split "
                                 f"(give its annotation file and image folder explicitly)")
    ann_path = Path(ann).expanduser() if ann else base / layout.ann
    image_path = Path(images).expanduser() if images else base / layout.images
    return SplitFiles(ann_path, image_path)


def info_for(name: str, num_keypoints: int) -> DatasetInfo:
    """The keypoint metadata of data set ``name`` if it has ``num_keypoints`` keypoints, else the first
    catalog data set that has, else a generic one (no flip pairs, uniform sigmas) for drawing and OKS."""
    spec = CATALOG.get(name)
    if spec is not None and spec.info.num_keypoints == num_keypoints:
        return spec.info
    for candidate in CATALOG.values():
        if candidate.info.num_keypoints == num_keypoints:
            return candidate.info
    names = tuple(f"kpt_{i}" for i in range(num_keypoints))
    return DatasetInfo(
        name=f"generic{num_keypoints}", keypoint_names=names, flip_pairs=(), sigmas=(0.05,) * num_keypoints,
        joint_weights=(1.0,) * num_keypoints, skeleton=(), skeleton_colors=(),
        keypoint_colors=((255, 128, 0),) * num_keypoints, upper_body_ids=tuple(range(num_keypoints)),
        lower_body_ids=(),
    )


def dataset_for_num_keypoints(num_keypoints: int) -> str:
    """Name of the first catalog data set with ``num_keypoints`` keypoints ('coco' if none has)."""
    for name, spec in CATALOG.items():
        if spec.info.num_keypoints == num_keypoints:
            return name
    return "coco"
