"""Python inference API: ``model = slimpose.load(checkpoint); result = model.predict(image, boxes)``.

Top-down inference as in HRNet / mmpose ``inference_topdown``: every person box (COCO ``xywh``) is
padded 1.25x at the model aspect ratio, warped to the input size, normalised (ImageNet mean/std, RGB),
run in batches through the engine's task ``predict`` (flip test, DARK / UDP decoding for heatmap
models, the sigmoid coordinates of regression students), and mapped back to image pixels with the
inverse crop transform. Instance score: ``box score x mean keypoint score above score_thr`` for heatmap
models (HRNet ``in_vis_thre``), ``box score x mean keypoint score`` for regression students (DistilPose
Eq. 3).

Images are numpy arrays in **BGR** channel order (as ``cv2.imread`` returns them; (H, W) grayscale is
accepted too) or file paths.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from slimpose.utils.io import SlimposeInputError

__all__ = ["PoseResult", "ModelSpec", "PoseModel", "load", "read_weights", "spec_from_config"]

BOX_PADDING = 1.25


@dataclass
class PoseResult:
    """Poses of one image, in image pixels: ``keypoints`` (N,K,2), ``keypoint_scores`` (N,K), ``scores`` (N,),
    the boxes used (``bboxes`` (N,4) xywh) and their ``bbox_scores`` (N,)."""

    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    scores: np.ndarray
    bboxes: np.ndarray
    bbox_scores: np.ndarray
    areas: np.ndarray = field(default_factory=lambda: np.zeros(0))  # padded crop area (OKS-NMS)

    def __len__(self) -> int:
        return int(self.keypoints.shape[0])

    def select(self, index: np.ndarray | Sequence[int]) -> "PoseResult":
        idx = np.asarray(index, dtype=np.int64)
        areas = self.areas[idx] if self.areas.size == len(self) else self.areas
        return PoseResult(self.keypoints[idx], self.keypoint_scores[idx], self.scores[idx], self.bboxes[idx],
                          self.bbox_scores[idx], areas)

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results records ``{image_id, category_id, keypoints: [x, y, s]*K, score}``."""
        from slimpose.evaluation.results import make_coco_record

        return [make_coco_record(image_id, k, s, float(sc), category_id)
                for k, s, sc in zip(self.keypoints, self.keypoint_scores, self.scores)]


@dataclass
class ModelSpec:
    """What is needed to rebuild and run a model, read from a checkpoint's ``model_name`` and ``config``."""

    model_name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    input_size: tuple[int, int] = (192, 256)  # (w, h)
    heatmap_size: tuple[int, int] | None = None
    sigma: float = 2.0
    udp: bool = False
    dark: bool = True
    flip_test: bool = True
    shift_heatmap: bool = True
    score_thr: float = 0.2
    dataset: str = "coco"
    score_source: str | None = None


def _get(d: Any, key: str, default: Any) -> Any:
    return d.get(key, default) if isinstance(d, dict) and d.get(key) is not None else default


def spec_from_config(model_name: str, config: dict[str, Any] | None, where: str = "checkpoint",
                     score_source: str | None = None) -> ModelSpec:
    """Read a ``ModelSpec`` from a saved TrainConfig / DistillConfig dict (missing fields: defaults)."""
    cfg = config if isinstance(config, dict) else {}
    model_cfg = _get(cfg, "model", {})
    data = _get(cfg, "data", {})
    name = model_name or _get(model_cfg, "name", "")
    if not name:
        raise SlimposeInputError(f"{where}: no model name (neither 'model_name' nor config.model.name)")
    overrides = dict(_get(model_cfg, "overrides", {}))
    if not isinstance(overrides, dict):
        raise SlimposeInputError(f"{where}: config.model.overrides must be an object")

    def size(value: Any, key: str) -> tuple[int, int] | None:
        if value is None:
            return None
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            raise SlimposeInputError(f"{where}: config.{key} must be [w, h], got {value!r}")
        return int(value[0]), int(value[1])

    input_size = size(overrides.pop("input_size", None), "model.overrides.input_size") or size(
        _get(data, "input_size", [192, 256]), "data.input_size")
    source = score_source or overrides.get("score_source")
    distill = _get(cfg, "distill", None)
    if source is None and isinstance(distill, dict) and "cs" in distill:
        source = "confidence" if float(distill["cs"]) > 0 else "constant"
    return ModelSpec(
        model_name=str(name),
        overrides=overrides,
        input_size=input_size,
        heatmap_size=size(data.get("heatmap_size") if isinstance(data, dict) else None, "data.heatmap_size"),
        sigma=float(_get(data, "sigma", 2.0)),
        udp=bool(_get(data, "udp", False)),
        dark=bool(_get(cfg, "dark", True)),
        flip_test=bool(_get(cfg, "flip_test", True)),
        shift_heatmap=bool(_get(cfg, "shift_heatmap", True)),
        score_thr=float(_get(cfg, "score_thr", 0.2)),
        dataset=str(_get(data, "dataset", "coco")),
        score_source=source,
    )


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata (``model_name``, ``config``, ``score_source``) of a ``.pth`` slimpose
    checkpoint or a ``.safetensors`` file written by ``export_safetensors`` / ``slimpose export``."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors import safe_open
            from safetensors.torch import load_file

            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
            sd = load_file(str(path))
        except Exception as e:  # noqa: BLE001 - any parse failure is a bad input file
            raise SlimposeInputError(
                f"{path}: cannot be read as safetensors ({type(e).__name__}: {e})") from None
        try:
            config = json.loads(meta.get("config") or "{}")
        except json.JSONDecodeError:
            raise SlimposeInputError(f"{path}: the 'config' metadata is not valid JSON") from None
        info = {"model_name": meta.get("model_name", ""), "config": config,
                "score_source": meta.get("score_source") or None}
        return sd, info
    from slimpose.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    sd = ckpt["model"]
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    info = {"model_name": ckpt.get("model_name", ""), "config": ckpt.get("config") or {},
            "score_source": ckpt.get("score_source")}
    return sd, info


def _dataset_info(name: str, num_keypoints: int) -> Any:
    """The ``DatasetInfo`` of ``name`` (synthetic people use COCO), else one matching ``num_keypoints``."""
    from slimpose.data import metainfo

    datasets = dict(metainfo.DATASETS)
    datasets["synthetic"] = metainfo.COCO
    info = datasets.get(name)
    if info is not None and info.num_keypoints == num_keypoints:
        return info
    for candidate in (metainfo.COCO, metainfo.MPII, metainfo.CROWDPOSE, *datasets.values()):
        if candidate.num_keypoints == num_keypoints:
            return candidate
    names = tuple(f"kpt_{i}" for i in range(num_keypoints))
    return metainfo.DatasetInfo(
        name=f"generic{num_keypoints}", keypoint_names=names, flip_pairs=(), sigmas=(0.05,) * num_keypoints,
        joint_weights=(1.0,) * num_keypoints, skeleton=(), skeleton_colors=(),
        keypoint_colors=((255, 128, 0),) * num_keypoints, upper_body_ids=tuple(range(num_keypoints)),
        lower_body_ids=(),
    )


def to_bgr_image(image: Any, what: str = "image") -> np.ndarray:
    """A BGR uint8 (H, W, 3) array from a path or an array (BGR (H,W,3), BGRA (H,W,4) or gray (H,W))."""
    import cv2

    if isinstance(image, (str, os.PathLike)):
        from slimpose.data.dataset import read_image

        return read_image(image)
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr.astype(np.uint8), cv2.COLOR_GRAY2BGR)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = cv2.cvtColor(arr.astype(np.uint8), cv2.COLOR_BGRA2BGR)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise SlimposeInputError(f"{what}: expected a BGR image (H, W, 3), got an array of shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def _as_boxes(boxes: Any, image_shape: tuple[int, ...], what: str) -> tuple[np.ndarray, np.ndarray]:
    """(N,4) xywh or (N,5) xywh+score -> (boxes (N,4), scores (N,)); ``None``: the whole image, score 1."""
    if boxes is None:
        h, w = image_shape[:2]
        return np.array([[0.0, 0.0, float(w), float(h)]]), np.ones(1)
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4)), np.zeros(0)
    if arr.ndim == 1:
        arr = arr[None]
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise SlimposeInputError(f"{what}: boxes must be (N, 4) xywh or (N, 5) xywh+score, got {arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 2:4] <= 0):
        bad = int(np.flatnonzero(~np.all(np.isfinite(arr), axis=1) | np.any(arr[:, 2:4] <= 0, axis=1))[0])
        raise SlimposeInputError(f"{what}: box {bad} {arr[bad].tolist()} is not finite or has no area")
    scores = arr[:, 4] if arr.shape[1] == 5 else np.ones(arr.shape[0])
    return arr[:, :4].copy(), scores.copy()


class PoseModel:
    """A loaded pose model ready for top-down inference (see the module doc).

    Args:
        model: a slimpose pose network (heatmaps (B,K,h,w) or a regression student's (B,K,5)).
        input_size: ``(w, h)`` of its input crops.
        info: ``DatasetInfo`` (flip pairs, skeleton for drawing); default: by keypoint count.
        codec: heatmap decoding codec (default MSRA with DARK, or UDP when ``udp``).
        flip_test: average with the flipped crop (per-call override in ``predict``).
        score_thr: keypoint score threshold of the heatmap instance rescoring.
        batch_size: crops per forward pass.
    """

    def __init__(
        self,
        model: nn.Module,
        input_size: tuple[int, int],
        info: Any = None,
        codec: Any = None,
        udp: bool = False,
        flip_test: bool = True,
        shift_heatmap: bool = True,
        score_thr: float = 0.2,
        score_source: str | None = None,
        dark: bool = True,
        sigma: float = 2.0,
        padding: float = BOX_PADDING,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.udp = udp
        self.flip_test = flip_test
        self.score_thr = score_thr
        self.padding = padding
        self.batch_size = max(1, int(batch_size))
        w, h = self.input_size
        with torch.no_grad():
            probe = self.model(torch.zeros(1, 3, h, w, device=self.device))
        if probe.dim() == 4:
            self.output_kind = "heatmap"
            self.heatmap_size = (int(probe.shape[-1]), int(probe.shape[-2]))
        elif probe.dim() == 3 and probe.shape[-1] == 5:
            self.output_kind = "regression"
            self.heatmap_size = None
        else:
            raise SlimposeInputError(
                f"{type(model).__name__}: unsupported model output {tuple(probe.shape)} (expected heatmaps "
                "(B,K,h,w) or a regression student's (B,K,5))")
        self.num_keypoints = int(probe.shape[1])
        self.info = info if info is not None else _dataset_info("coco", self.num_keypoints)
        if self.output_kind == "heatmap":
            from slimpose.engine.tasks import HeatmapTask

            if codec is None:
                if udp:
                    from slimpose.codecs.udp_heatmap import UDPHeatmap

                    codec = UDPHeatmap(self.input_size, self.heatmap_size, sigma=sigma)
                else:
                    from slimpose.codecs.msra_heatmap import MSRAHeatmap

                    codec = MSRAHeatmap(self.input_size, self.heatmap_size, sigma=sigma, unbiased=dark)
            self.task = HeatmapTask(self.model, codec, nn.Identity(), shift_heatmap=shift_heatmap and not udp)
        else:
            from slimpose.distillation.distilpose import regression_eval_task

            if score_source is not None and hasattr(self.model, "score_source"):
                self.model.score_source = score_source
            self.task = regression_eval_task(self.model)
            if score_source is not None:
                self.task.score_source = score_source
        self.task.eval()

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device: str | torch.device = "cpu",
                        **kwargs: Any) -> "PoseModel":
        """Rebuild the model of a ``.pth`` / ``.safetensors`` checkpoint and load its weights strictly."""
        from slimpose import models

        where = str(checkpoint)
        sd, meta = read_weights(checkpoint)
        spec = spec_from_config(str(meta.get("model_name") or ""), meta.get("config"), where,
                                score_source=meta.get("score_source"))
        if spec.model_name not in models.MODELS:
            raise SlimposeInputError(
                f"{where}: model {spec.model_name!r} is not a slimpose model "
                f"({', '.join(sorted(models.MODELS))})")
        overrides = dict(spec.overrides)  # score_source is set on the built model by PoseModel
        num_kpts = overrides.pop("num_keypoints", None)
        if num_kpts is None:
            from slimpose.data import metainfo

            info0 = {"crowdpose": metainfo.CROWDPOSE, "mpii": metainfo.MPII}.get(spec.dataset, metainfo.COCO)
            num_kpts = info0.num_keypoints
        try:
            model = models.create_model(
                spec.model_name, num_keypoints=int(num_kpts), input_size=spec.input_size, **overrides)
        except (TypeError, ValueError) as e:
            raise SlimposeInputError(
                f"{where}: cannot build {spec.model_name!r} with {overrides}: {e}") from None
        from slimpose.engine.checkpoint import load_model_weights

        try:
            load_model_weights(model, {"model": sd}, strict=True)
        except RuntimeError as e:  # shape mismatches
            raise SlimposeInputError(f"{where}: weights do not fit {spec.model_name!r}: {e}") from None
        except SlimposeInputError as e:
            raise SlimposeInputError(f"{where}: {e}") from None
        params: dict[str, Any] = dict(
            udp=spec.udp, flip_test=spec.flip_test, shift_heatmap=spec.shift_heatmap,
            score_thr=spec.score_thr, score_source=spec.score_source, dark=spec.dark, sigma=spec.sigma,
            info=_dataset_info(spec.dataset, int(num_kpts)),
        )
        params.update(kwargs)
        pm = cls(model, spec.input_size, device=device, **params)
        pm.spec = spec
        pm.checkpoint = where
        return pm

    # ------------------------------------------------------------------ crops

    @property
    def aspect_ratio(self) -> float:
        return self.input_size[0] / self.input_size[1]

    def crop(self, image_bgr: np.ndarray, box_xywh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One normalised crop (3,H,W) float32 and its ``center``, ``scale`` (pixels of the padded box)."""
        from slimpose.data.dataset import normalize_image
        from slimpose.data.transforms import bbox_xywh_to_center_scale, get_warp_matrix, warp_image

        center, scale = bbox_xywh_to_center_scale(box_xywh, self.aspect_ratio, self.padding)
        matrix = get_warp_matrix(center, scale, 0.0, self.input_size, udp=self.udp)
        return normalize_image(warp_image(image_bgr, matrix, self.input_size)), center, scale

    @torch.no_grad()
    def predict_crops(self, crops: np.ndarray | torch.Tensor, flip: bool | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised crops (B,3,H,W) -> keypoints (B,K,2) in crop pixels and scores (B,K), in batches."""
        flip = self.flip_test if flip is None else flip
        pairs = [tuple(p) for p in self.info.flip_pairs] if flip else None
        x = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
        kps, scs = [], []
        for i in range(0, x.shape[0], self.batch_size):
            k, s = self.task.predict(x[i:i + self.batch_size].to(self.device, torch.float32), pairs)
            kps.append(np.asarray(k, dtype=np.float32))
            scs.append(np.asarray(s, dtype=np.float32))
        if not kps:
            k = self.num_keypoints
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        return np.concatenate(kps), np.concatenate(scs)

    def instance_scores(self, keypoint_scores: np.ndarray, bbox_scores: np.ndarray) -> np.ndarray:
        """Heatmap models: box x mean(kpt scores > score_thr); regression: box x mean (DistilPose Eq. 3)."""
        ks = np.asarray(keypoint_scores, dtype=np.float64)
        if ks.shape[0] == 0:
            return np.zeros(0)
        if self.output_kind == "regression":
            return ks.mean(axis=-1) * np.asarray(bbox_scores, dtype=np.float64)
        from slimpose.evaluation.coco import topdown_rescore

        return np.asarray(topdown_rescore(ks, bbox_scores, self.score_thr), dtype=np.float64)

    # ------------------------------------------------------------------ prediction

    def predict(self, image: Any, boxes: Any = None, flip: bool | None = None) -> PoseResult:
        """Poses of one image (BGR array or path); ``boxes`` (N,4) xywh or (N,5) with scores, ``None``: whole
        image. Returns a ``PoseResult`` in image pixels."""
        return self.predict_batch([image], None if boxes is None else [boxes], flip=flip)[0]

    def predict_batch(self, images: Sequence[Any], boxes: Sequence[Any] | None = None,
                      flip: bool | None = None) -> list[PoseResult]:
        """``predict`` over several images; all their crops go through the network in shared batches."""
        from slimpose.data.transforms import crop_to_image

        if boxes is not None and len(boxes) != len(images):
            raise SlimposeInputError(f"predict_batch: {len(images)} images but {len(boxes)} box lists")
        crops, centers, scales, owners = [], [], [], []
        per_image: list[tuple[np.ndarray, np.ndarray]] = []
        for i, image in enumerate(images):
            what = str(image) if isinstance(image, (str, os.PathLike)) else f"image {i}"
            img = to_bgr_image(image, what)
            b, s = _as_boxes(None if boxes is None else boxes[i], img.shape, what)
            per_image.append((b, s))
            for box in b:
                c, ctr, scl = self.crop(img, box)
                crops.append(c)
                centers.append(ctr)
                scales.append(scl)
                owners.append(i)
        k = self.num_keypoints
        if crops:
            kp_crop, kp_scores = self.predict_crops(np.stack(crops), flip=flip)
            kp_img = crop_to_image(kp_crop, np.stack(centers), np.stack(scales), self.input_size,
                                   udp=self.udp)
        else:
            kp_img, kp_scores = np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        owners_arr = np.asarray(owners, dtype=np.int64)
        scales_arr = np.asarray(scales, dtype=np.float64).reshape(-1, 2)
        results = []
        for i, (b, s) in enumerate(per_image):
            sel = np.flatnonzero(owners_arr == i)
            ks = kp_scores[sel].astype(np.float32)
            results.append(PoseResult(
                keypoints=kp_img[sel].astype(np.float32).reshape(-1, k, 2),
                keypoint_scores=ks.reshape(-1, k),
                scores=self.instance_scores(ks, s).astype(np.float32),
                bboxes=b.astype(np.float32),
                bbox_scores=s.astype(np.float32),
                areas=(scales_arr[sel, 0] * scales_arr[sel, 1]).astype(np.float32),
            ))
        return results

    def draw(self, image: Any, result: PoseResult, kpt_thr: float = 0.3) -> np.ndarray:
        """The image (BGR) with the poses of ``result`` drawn (``visualization.draw_poses``)."""
        from slimpose.visualization import draw_poses

        return draw_poses(to_bgr_image(image), result.keypoints, result.keypoint_scores, self.info, kpt_thr)


def load(checkpoint: str | os.PathLike, device: str | torch.device = "cpu", **kwargs: Any) -> PoseModel:
    """Load a ``.pth`` training checkpoint or a ``.safetensors`` export (with metadata) as a ``PoseModel``.

    ``kwargs`` override the checkpoint's test settings (``flip_test``, ``batch_size``, ``score_thr``, ...).
    """
    return PoseModel.from_checkpoint(checkpoint, device=device, **kwargs)
