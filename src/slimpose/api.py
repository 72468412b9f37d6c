"""Python inference API: ``model = slimpose.load(checkpoint); result = model.predict(image, boxes)``.

Top-down inference as in HRNet / mmpose ``inference_topdown``: every person box (COCO ``xywh``) is
padded 1.25x at the model aspect ratio, warped to the input size, normalised (ImageNet mean/std, RGB),
run in batches through the model's head (flip test, decoding: DARK / UDP for heatmaps, coordinates for
regression students, argmax for SimCC), and mapped back to image pixels with the inverse crop transform.
Instance score: ``box score x mean keypoint score above score_thr`` (HRNet ``in_vis_thre``).

Images are numpy arrays in **BGR** channel order (as ``cv2.imread`` returns them; (H, W) grayscale is
accepted too) or file paths. A checkpoint is rebuilt from its saved config with the same builders as
training (``build_model``, ``build_head``), so what was trained is what predicts.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from slimpose.utils.io import SlimposeInputError

__all__ = ["PoseResult", "PoseModel", "load", "read_weights", "read_metadata", "checkpoint_config"]

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

    def nms(self, sigmas: np.ndarray, thr: float | None) -> "PoseResult":
        """The poses kept by OKS-NMS at ``thr`` (``None``: all of them)."""
        if thr is None or len(self) < 2:
            return self
        from slimpose.evaluation.nms import oks_nms

        return self.select(oks_nms(self.keypoints, self.scores, self.areas, sigmas, thr=thr))

    def to_coco(self, image_id: int, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results records ``{image_id, category_id, keypoints: [x, y, s]*K, score}``."""
        from slimpose.evaluation.results import make_coco_record

        return [make_coco_record(image_id, k, s, float(sc), category_id)
                for k, s, sc in zip(self.keypoints, self.keypoint_scores, self.scores)]


def read_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and metadata (``model_name``, ``config``, ``score_source``) of a ``.pth`` slimpose
    checkpoint or a ``.safetensors`` file written by ``export_safetensors`` / ``slimpose export``."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        meta, sd = _read_safetensors(path, tensors=True)
        return sd, _safetensors_info(path, meta)
    from slimpose.engine.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    sd = ckpt["model"]
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, _pth_info(ckpt)


def _pth_info(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a loaded ``.pth`` checkpoint (``load_checkpoint``'s dict)."""
    return {"model_name": ckpt.get("model_name", ""), "config": ckpt.get("config") or {},
            "score_source": ckpt.get("score_source")}


def _read_safetensors(path: Path, tensors: bool) -> tuple[dict[str, str], dict[str, torch.Tensor]]:
    """The header metadata of a ``.safetensors`` file and, with ``tensors``, its tensors; a file that does not
    parse is a SlimposeInputError naming it."""
    try:
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            meta = dict(f.metadata() or {})
        return meta, (load_file(str(path)) if tensors else {})
    except Exception as e:  # noqa: BLE001 - any parse failure is a bad input file
        raise SlimposeInputError(f"{path}: cannot be read as safetensors ({type(e).__name__}: {e})") from None


def _safetensors_info(path: Path, meta: dict[str, str]) -> dict[str, Any]:
    try:
        config = json.loads(meta.get("config") or "{}")
    except json.JSONDecodeError:
        raise SlimposeInputError(f"{path}: the 'config' metadata is not valid JSON") from None
    return {"model_name": meta.get("model_name", ""), "config": config,
            "score_source": meta.get("score_source") or None}


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata of ``read_weights`` (``model_name``, ``config``, ``score_source``) without reading the
    weights where the file allows it: a ``.safetensors`` header, a ``.pth`` memory-mapped (zip format; older
    files are read whole)."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        return _safetensors_info(path, _read_safetensors(path, tensors=False)[0])
    from slimpose.engine.checkpoint import load_checkpoint

    try:
        return _pth_info(load_checkpoint(path, mmap=True))  # tensors stay on disk
    except SlimposeInputError:  # not a zip-format file, or not a checkpoint: the full reader decides
        return read_weights(path)[1]


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


# test settings of a checkpoint's config that ``load(..., **kwargs)`` may override: keyword -> config key
CONFIG_KWARGS = {"dark": "dark", "flip_test": "flip_test", "score_thr": "score_thr",
                 "shift_heatmap": "shift_heatmap", "udp": "data.udp", "sigma": "data.sigma"}
MODEL_KWARGS = ("info", "padding", "batch_size", "skeleton", "backend", "quantize", "threads", "precision")


def checkpoint_config(meta: dict[str, Any], where: str, overrides: dict[str, Any] | None = None) -> Any:
    """The ``TrainConfig`` a checkpoint was trained with (its ``config``, which may be partial; the model
    name from ``model_name`` when the config lacks it), with ``overrides`` (``CONFIG_KWARGS``) applied; ``udp``
    also sets an explicit ``conventions.geometry`` (a converted checkpoint's) to ``'udp'`` or ``'standard'``.

    The weights come from the checkpoint, so ``model.pretrained`` is dropped. Checkpoints of older versions:
    a top-level ``score_source`` becomes ``model.overrides.score_source``; a data set the catalog does not
    know (older conversions of 14- or 16-keypoint models wrote ``""``) becomes the first one with the
    model's keypoint count.
    """
    from slimpose.config.parse import apply_override, config_from_dict
    from slimpose.data.catalog import CATALOG, dataset_for_num_keypoints

    data = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    model = data.setdefault("model", {})
    if meta.get("model_name"):
        model["name"] = str(meta["model_name"])
    if not model.get("name"):
        raise SlimposeInputError(f"{where}: no model name (neither 'model_name' nor config.model.name)")
    model.pop("pretrained", None)
    model_overrides = dict(model.get("overrides") or {})
    if meta.get("score_source") and "score_source" not in model_overrides:
        model["overrides"] = {**model_overrides, "score_source": meta["score_source"]}
    d = data.setdefault("data", {})
    if d.get("dataset", "synthetic") not in CATALOG:
        d["dataset"] = dataset_for_num_keypoints(int(model_overrides.get("num_keypoints", 17)))
    cfg = config_from_dict(data, where=f"{where} (config)")
    for key, value in (overrides or {}).items():
        apply_override(cfg, f"{CONFIG_KWARGS[key]}={str(value).lower() if isinstance(value, bool) else value}")
    if "udp" in (overrides or {}) and cfg.conventions.geometry != "auto":
        # a converted checkpoint's explicit geometry decides the warp (crop_warp): ``udp`` must set it too
        cfg.conventions.geometry = "udp" if cfg.data.udp else "standard"
    return cfg


def adopt_test_conventions(cfg: Any, meta: dict[str, Any]) -> list[str]:
    """Give ``cfg`` the official test conventions of a converted checkpoint (its config's ``conventions``,
    ``shift_heatmap``, ``dark`` and ``data.udp``) unless ``cfg`` names conventions of its own (a ``source``
    other than ``'slimpose'``); returns the settings taken (empty for slimpose's own checkpoints)."""
    from slimpose.config.parse import config_from_dict

    saved = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    conv = saved.get("conventions")
    if not isinstance(conv, dict) or conv.get("source", "slimpose") == "slimpose":
        return []
    if cfg.conventions.source != "slimpose":
        return []
    ref = config_from_dict({"conventions": conv, **{k: saved[k] for k in ("shift_heatmap", "dark") if k in saved},
                            "data": {"udp": bool((saved.get("data") or {}).get("udp", False))}})
    cfg.conventions = ref.conventions
    cfg.shift_heatmap, cfg.dark, cfg.data.udp = ref.shift_heatmap, ref.dark, ref.data.udp
    return [f"conventions of {ref.conventions.source}", f"shift_heatmap={ref.shift_heatmap}", f"dark={ref.dark}",
            f"data.udp={ref.data.udp}"]


class PoseModel:
    """A loaded pose model ready for top-down inference (see the module doc).

    Args:
        model: a slimpose pose network (``slimpose.models``).
        head: its head (``slimpose.heads``): decoding and flip test.
        info: ``DatasetInfo`` of the keypoints the model predicts (flip pairs); default: by keypoint count.
        skeleton: the keypoints of the results (``unified.skeleton_map``): ``None`` the model's own; a model
            trained on the unified skeleton also gives 'coco', 'mpii', 'aic', 'crowdpose' or 'unified'.
        udp: crops are warped with the UDP matrix (models trained with UDP); ``'dark'``: the TokenPose / PPT warp
            of a converted checkpoint (``conventions.geometry``).
        flip_test: average with the flipped crop (per-call override in ``predict``).
        score_thr: keypoint score threshold of the instance rescoring.
        batch_size: crops per forward pass.
        backend: how the network runs (``slimpose.inference``): ``'torch'`` (default: the inference rewrite,
            eager), ``'compile'``, ``'onnxruntime'``, or ``'train'`` (the network exactly as trained, no rewrite).
            The fp32 torch and onnxruntime backends are checked against the trained network when built (a
            failure warns and predicts with the trained network); ``compile`` is checked in eager form only,
            bf16 / int8 differences are reported (``network.inference_info``), not bounded.
        quantize: ``'int8'``: ONNX Runtime with dynamically quantised linear layers (``backend='onnxruntime'``).
        threads: ONNX Runtime threads (default: torch's).
        precision: ``'fp32'`` (default), ``'bf16'`` or ``'fp16'`` (GPU): autocast of the torch backends.

    ``model`` is the network as trained (export, weights); ``network`` what predicts: a copy made here, so an
    edit of ``model``'s weights reaches the predictions only through ``PoseModel(model, head, ...)`` again
    (or ``backend='train'``, which predicts with ``model`` itself).
    """

    def __init__(
        self,
        model: nn.Module,
        head: nn.Module,
        info: Any = None,
        udp: bool | str = False,
        flip_test: bool = True,
        score_thr: float = 0.2,
        padding: float = BOX_PADDING,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
        skeleton: str | None = None,
        backend: str = "torch",
        quantize: str | None = None,
        threads: int | None = None,
        precision: str = "fp32",
    ) -> None:
        from slimpose.data.catalog import info_for
        from slimpose.data.unified import skeleton_map
        from slimpose.engine.tasks import TopDownTask

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.head = head.to(self.device).eval()
        self.backend = backend
        self.network = self._network(backend, quantize, threads, precision)
        self.task = TopDownTask(self.network, self.head)
        self.input_size = tuple(int(v) for v in model.input_spec.size)
        self.udp = udp
        self.flip_test = flip_test
        self.score_thr = score_thr
        self.padding = padding
        self.batch_size = max(1, int(batch_size))
        self.model_info = info if info is not None else info_for("coco", int(model.num_keypoints))
        try:
            self.info, self.select = skeleton_map(self.model_info, skeleton)  # the results' keypoints
        except ValueError as e:
            raise SlimposeInputError(f"skeleton: {e}") from None
        self.num_keypoints = self.info.num_keypoints

    def _network(self, backend: str, quantize: str | None, threads: int | None, precision: str) -> nn.Module:
        """The network that predicts: ``model`` itself (``'train'``) or its inference form."""
        from slimpose.inference import inference_model

        if backend == "train":
            if quantize is not None or precision != "fp32":
                raise SlimposeInputError("backend='train' runs the network as trained: no quantize / precision")
            return self.model
        if self.device.type != "cpu" and backend == "onnxruntime":
            raise SlimposeInputError("backend 'onnxruntime' runs on the CPU: use device='cpu'")
        try:
            return inference_model(self.model, backend, quantize=quantize, threads=threads, precision=precision)
        except SlimposeInputError:
            raise  # a bad option or a missing package: say so
        except Exception as e:  # noqa: BLE001 - a rewrite or export the network does not take: never wrong
            warnings.warn(f"the {backend} inference path of {type(self.model).__name__} failed "
                          f"({type(e).__name__}: {str(e)[:300]}); predicting with the network as trained",
                          stacklevel=3)
            return self.model

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, device: str | torch.device = "cpu",
                        **kwargs: Any) -> "PoseModel":
        """Rebuild the model and head of a ``.pth`` / ``.safetensors`` checkpoint, load its weights strictly.

        ``kwargs``: ``CONFIG_KWARGS`` override the checkpoint's test settings (``udp`` and ``sigma`` the data
        settings the head is built with), ``MODEL_KWARGS`` go to ``PoseModel``.
        """
        from slimpose.data.catalog import info_for
        from slimpose.training import build_config_model
        from slimpose.engine.checkpoint import load_model_weights
        from slimpose.heads import build_head

        where = str(checkpoint)
        unknown = sorted(set(kwargs) - set(CONFIG_KWARGS) - set(MODEL_KWARGS))
        if unknown:
            raise SlimposeInputError(f"load: unknown keyword(s) {', '.join(unknown)} (test settings: "
                                     f"{', '.join(CONFIG_KWARGS)}; {', '.join(MODEL_KWARGS)}, device)")
        sd, meta = read_weights(checkpoint)
        cfg = checkpoint_config(meta, where, {k: kwargs.pop(k) for k in list(kwargs) if k in CONFIG_KWARGS})
        kt = cfg.knowledge_token
        if kt is not None and kt.token_dim <= 0 and "knowledge_token.token" in sd:  # the width is in the weights
            kt.token_dim = int(sd["knowledge_token.token"].shape[-1])
        model = build_config_model(cfg, load_pretrained=False)
        try:
            load_model_weights(model, {"model": sd}, strict=True)
        except RuntimeError as e:  # shape mismatches
            raise SlimposeInputError(f"{where}: weights do not fit {cfg.model.name!r}: {e}") from None
        except SlimposeInputError as e:
            raise SlimposeInputError(f"{where}: {e}") from None
        from slimpose.engine.builders import model_info

        info = model_info(cfg) if cfg.data.skeleton else info_for(cfg.data.dataset, int(model.num_keypoints))
        from slimpose.config.schema import crop_warp

        params: dict[str, Any] = dict(udp=crop_warp(cfg), flip_test=cfg.flip_test, score_thr=cfg.score_thr, info=info)
        params.update(kwargs)
        pm = cls(model, build_head(cfg, model), device=device, **params)
        pm.config = cfg
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

    @torch.inference_mode()
    def predict_crops(self, crops: np.ndarray | torch.Tensor, flip: bool | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Normalised crops (B,3,H,W) -> keypoints (B,K,2) in crop pixels and scores (B,K), in batches (K: the
        results' skeleton)."""
        flip = self.flip_test if flip is None else flip
        pairs = [tuple(p) for p in self.model_info.flip_pairs] if flip else None
        x = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
        kps, scs = [], []
        for i in range(0, x.shape[0], self.batch_size):
            k, s = self.task.predict(x[i:i + self.batch_size].to(self.device, torch.float32), pairs)
            if self.select is not None:
                k, s = k[:, list(self.select)], s[:, list(self.select)]
            kps.append(np.asarray(k, dtype=np.float32))
            scs.append(np.asarray(s, dtype=np.float32))
        if not kps:
            k = self.num_keypoints
            return np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)
        return np.concatenate(kps), np.concatenate(scs)

    def instance_scores(self, keypoint_scores: np.ndarray, bbox_scores: np.ndarray) -> np.ndarray:
        """Box score x mean of the keypoint scores above ``score_thr`` (the evaluator's rescoring)."""
        from slimpose.evaluation.coco import topdown_rescore

        ks = np.asarray(keypoint_scores, dtype=np.float64)
        if ks.shape[0] == 0:
            return np.zeros(0)
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
