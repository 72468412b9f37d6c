"""TopDownDataset: one PoseInstance -> normalised crop tensor + codec targets (docs/architecture.md).

Per item (MMPose 1.x ``GetBBoxCenterScale -> RandomFlip -> RandomHalfBody -> RandomBBoxTransform ->
TopdownAffine -> GenerateTarget``): read the image (OpenCV, BGR, 3 channels; palette PNGs included),
take the instance's center/scale (MPII) or the box padded 1.25x at the model aspect ratio, augment when
training, warp (standard or UDP matrix; a flip is folded into the same warp), move the keypoints into
the crop, zero the visibility of keypoints outside the crop, call ``codec.encode(keypoints, weights)``.

Augmentation randomness comes only from ``np.random.default_rng([seed, epoch, index])`` (plus the source
number for the second and later sources of a ``SourcesDataset``): the same (seed, epoch, index) gives the same
sample in any worker and after a resume.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from slimpose.data.instances import PoseInstance
from slimpose.data.metainfo import DatasetInfo
from slimpose.data.transforms import (
    AugmentConfig, bbox_xywh_to_center_scale, color_jitter, compose_affine, fix_aspect_ratio, get_warp_matrix,
    hflip_matrix, sample_augmentation, transform_points, warp_image,
)
from slimpose.utils.io import SlimposeInputError

# OpenCV's own thread pool does not survive fork() (DataLoader workers can hang on its locks); crops
# are small, so slimpose parallelises over samples with workers instead (as mmengine does).
cv2.setNumThreads(0)

__all__ = ["TopDownDataset", "SourcesDataset", "read_image", "normalize_image", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)

_MEAN_255 = np.array(IMAGENET_MEAN, dtype=np.float32) * 255.0
_INV_STD_255 = 1.0 / (np.array(IMAGENET_STD, dtype=np.float32) * 255.0)


def read_image(path: str | os.PathLike, record: str = "") -> np.ndarray:
    """Read an image as BGR uint8 (H, W, 3); a SlimposeInputError names the file if it cannot be used."""
    where = f" ({record})" if record else ""
    if not os.path.isfile(path):
        raise SlimposeInputError(f"image not found: {path}{where}")
    try:
        buf = np.fromfile(path, dtype=np.uint8)
    except OSError as e:
        raise SlimposeInputError(f"{path}: cannot read image file{where}: {e.strerror or e}") from None
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    if image is None or image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise SlimposeInputError(f"{path}: unreadable or corrupt image{where}")
    return image


def normalize_image(image_bgr: np.ndarray) -> np.ndarray:
    """BGR uint8/float (H, W, 3) in [0, 255] -> RGB float32 (3, H, W) normalised with ImageNet mean/std."""
    chw = np.ascontiguousarray(np.asarray(image_bgr).transpose(2, 0, 1)[::-1]).astype(np.float32)  # RGB
    chw -= _MEAN_255[:, None, None]
    chw *= _INV_STD_255[:, None, None]
    return chw


def _to_tensor(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (tuple, list)):
        return type(value)(_to_tensor(v) for v in value)
    return value


class TopDownDataset(Dataset):
    """Top-down crops with codec targets for training (``train=True``) or evaluation.

    Args:
        instances: PoseInstance records (from ``load_coco_instances`` / ``load_mpii_instances``).
        info: the dataset's keypoint metadata (flip pairs, half-body ids).
        codec: object with ``encode(keypoints (K, 2), weights (K,)) -> dict`` in input-crop pixels.
        input_size: model input ``(w, h)``.
        train: apply ``aug`` (default ``AugmentConfig()``).
        udp: use the UDP warp matrix (pair with a UDP codec).
        seed: augmentation seed (None -> 0).
        padding: box enlargement for instances without their own center/scale.
        stream: which of several concatenated sources this is (``SourcesDataset``); source ``s > 0`` draws
            from ``[seed, epoch, index, s]``, so item ``i`` of two sources is not augmented alike.

    Items: ``image`` (3, H, W), the codec's outputs (``target``, ``target_weight``, ...), ``keypoints``
    (K, 2 crop pixels), ``visible`` (K,; 0 outside the crop), ``center``, ``scale``, ``rotation``,
    ``flipped`` (center/scale/rotation then refer to the mirrored image), ``image_id``, ``bbox_score``,
    ``index``.
    """

    def __init__(self, instances: Sequence[PoseInstance], info: DatasetInfo, codec: Any,
                 input_size: tuple[int, int] = (192, 256), train: bool = False, udp: bool = False,
                 aug: AugmentConfig | None = None, seed: int | None = None, padding: float = 1.25,
                 stream: int = 0) -> None:
        self.instances = list(instances)
        self.info = info
        self.codec = codec
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.aspect_ratio = self.input_size[0] / self.input_size[1]
        self.train = bool(train)
        self.udp = udp if udp == "dark" else bool(udp)  # 'dark': the TokenPose / PPT warp
        self.aug = (aug if aug is not None else AugmentConfig()) if self.train else None
        self.seed = 0 if seed is None else int(seed)
        self.padding = float(padding)
        self.stream = int(stream)
        self.epoch = 0
        for i, inst in enumerate(self.instances):
            if inst.num_keypoints != info.num_keypoints:
                raise SlimposeInputError(
                    f"{inst.image_path}: instance {i} (ann {inst.ann_id}) has {inst.num_keypoints} "
                    f"keypoints, dataset '{info.name}' expects {info.num_keypoints}")

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch`` (call before each training epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.instances)

    def center_scale(self, inst: PoseInstance) -> tuple[np.ndarray, np.ndarray]:
        """The un-augmented crop box of an instance, at the model aspect ratio."""
        if inst.center is not None and inst.scale is not None:
            return inst.center.astype(np.float64), fix_aspect_ratio(inst.scale, self.aspect_ratio)
        return bbox_xywh_to_center_scale(inst.bbox, self.aspect_ratio, self.padding)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < len(self.instances):
            raise IndexError(f"index {index} out of range for {len(self.instances)} instances")
        inst = self.instances[index]
        image = read_image(inst.image_path, f"image id {inst.image_id}, ann {inst.ann_id}")
        center, scale = self.center_scale(inst)
        kpts = inst.keypoints.astype(np.float64)
        vis = inst.visible.astype(np.float32)
        rotation, flipped = 0.0, False
        rng = None
        if self.train:
            key = [self.seed, self.epoch, index] + ([self.stream] if self.stream else [])
            rng = np.random.default_rng(key)
            res = sample_augmentation(rng, self.aug, kpts, vis, center, scale, image.shape[1], self.info,
                                      self.aspect_ratio)
            kpts, vis, center, scale = res.keypoints, res.visible, res.center, res.scale
            rotation, flipped = res.rotation, res.flipped

        matrix = get_warp_matrix(center, scale, rotation, self.input_size, udp=self.udp)
        image_matrix = compose_affine(matrix, hflip_matrix(image.shape[1])) if flipped else matrix
        crop = warp_image(image, image_matrix, self.input_size)
        if self.train and self.aug.color_jitter:
            crop = color_jitter(crop, rng, self.aug.brightness, self.aug.contrast, self.aug.saturation)

        crop_kpts = transform_points(kpts, matrix).astype(np.float32)
        w, h = self.input_size
        x, y = crop_kpts[:, 0], crop_kpts[:, 1]
        inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
        vis = np.where(inside, vis, 0.0).astype(np.float32)
        weights = (vis > 0).astype(np.float32)
        encoded = self.codec.encode(crop_kpts, weights)

        sample: dict[str, Any] = {"image": torch.from_numpy(normalize_image(crop))}
        for key, value in encoded.items():
            sample[key] = _to_tensor(value)
        sample.update({
            "keypoints": torch.from_numpy(crop_kpts),
            "visible": torch.from_numpy(vis),
            "center": torch.from_numpy(np.asarray(center, dtype=np.float32)),
            "scale": torch.from_numpy(np.asarray(scale, dtype=np.float32)),
            "rotation": float(rotation),
            "flipped": bool(flipped),
            "image_id": int(inst.image_id),
            "bbox_score": float(inst.bbox_score),
            "index": int(index),
        })
        return sample


class SourcesDataset(ConcatDataset):
    """Several training sources in one data set (``data.extra_train``): ``set_epoch`` reaches every source
    (the training loop calls it on its loader's data set), and each source is its own augmentation stream."""

    def __init__(self, parts: Sequence[TopDownDataset]) -> None:
        super().__init__(parts)
        for i, part in enumerate(parts):
            part.stream = i

    def set_epoch(self, epoch: int) -> None:
        for part in self.datasets:
            part.set_epoch(epoch)
