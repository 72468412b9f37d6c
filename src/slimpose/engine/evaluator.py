"""Top-down evaluation: predict every crop (flip test, DARK via the codec), map to image pixels, gather across
ranks, rescore + OKS-NMS, write the COCO results file atomically and score it (COCO AP, or PCKh for MPII).

Follows HRNet ``validate`` / mmpose ``TopdownPoseEstimator.predict`` + ``CocoMetric``: keypoints decoded in
the input crop are mapped back with the inverse crop transform (``transforms.crop_to_image``); instance
score = bbox score x mean keypoint score above ``score_thr``; per-image OKS-NMS at ``nms_thr`` with the
data set's sigmas and area = scale_w * scale_h.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from slimpose.engine.distributed import all_gather_object, broadcast_object, is_main_process
from slimpose.utils.io import write_json_atomic


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def collect_predictions(
    task: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    input_size: tuple[int, int],
    flip_pairs: list[tuple[int, int]] | None,
    udp: bool = False,
    device: torch.device | str = "cpu",
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Predictions of this process, one dict per crop: ``index``, ``image_id``, ``keypoints`` (K,2) and
    ``keypoint_scores`` (K,) in image pixels, ``bbox_score``, ``area``."""
    from slimpose.data.transforms import crop_to_image

    task.eval()
    out: list[dict[str, Any]] = []
    ctx = autocast or contextlib.nullcontext
    batches = loader
    if progress:
        from tqdm import tqdm

        batches = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True)
    with torch.no_grad():
        for batch in batches:
            images = batch["image"].to(device, non_blocking=True)
            with ctx():
                kpts, scores = task.predict(images, flip_pairs)
            center = _to_numpy(batch["center"]).astype(np.float64)
            scale = _to_numpy(batch["scale"]).astype(np.float64)
            rotation = _to_numpy(batch.get("rotation", np.zeros(len(images)))).astype(np.float64)
            image_id = _to_numpy(batch["image_id"])
            bbox_score = _to_numpy(batch["bbox_score"]).astype(np.float64)
            index = _to_numpy(batch["index"])
            for i in range(len(images)):
                pts = crop_to_image(
                    kpts[i], center[i], scale[i], input_size, rotation=float(rotation[i]), udp=udp
                )
                out.append(
                    {
                        "index": int(index[i]),
                        "image_id": int(image_id[i]),
                        "keypoints": np.asarray(pts, dtype=np.float64).reshape(-1, 2),
                        "keypoint_scores": np.asarray(scores[i], dtype=np.float64).reshape(-1),
                        "bbox_score": float(bbox_score[i]),
                        "area": float(scale[i][0] * scale[i][1]),
                    }
                )
    return out


def gather_predictions(local: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All ranks' predictions, de-duplicated by dataset ``index`` (DistributedSampler pads with repeats)
    and sorted by it, so that the result does not depend on the number of processes."""
    merged: dict[int, dict[str, Any]] = {}
    for part in all_gather_object(local):
        for p in part:
            merged.setdefault(p["index"], p)
    return [merged[i] for i in sorted(merged)]


class Evaluator:
    """Scores a task on a validation loader; ``run`` returns the metrics dict on every rank.

    Args:
        loader: validation DataLoader (any sampler; with DDP a ``DistributedSampler(shuffle=False)``).
        info: ``DatasetInfo`` (flip pairs, OKS sigmas).
        gt: COCO-format ground truth (path or dict) for COCO AP; ``None`` with ``metric='pckh'``.
        metric: ``'coco'`` (AP, AP50, ... via ``evaluate_coco_keypoints``) or ``'pckh'`` (MPII).
        instances: the validation ``PoseInstance`` list (needed for PCKh: ground-truth joints and head boxes).
    """

    def __init__(
        self,
        loader: Iterable[dict[str, Any]],
        info: Any,
        input_size: tuple[int, int],
        out_dir: str | Path,
        gt: Any = None,
        metric: str = "coco",
        udp: bool = False,
        flip_test: bool = True,
        score_thr: float = 0.2,
        nms_thr: float | None = 0.9,
        device: torch.device | str = "cpu",
        instances: list[Any] | None = None,
    ) -> None:
        if metric not in ("coco", "pckh"):
            raise ValueError(f"Evaluator: metric must be 'coco' or 'pckh', got {metric!r}")
        self.loader = loader
        self.info = info
        self.input_size = tuple(input_size)
        self.out_dir = Path(out_dir)
        self.gt = gt
        self.metric = metric
        self.udp = udp
        self.flip_test = flip_test
        self.score_thr = score_thr
        self.nms_thr = nms_thr
        self.device = device
        self.instances = instances

    def run(
        self,
        task: torch.nn.Module,
        tag: str = "val",
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        flip_pairs = [tuple(p) for p in self.info.flip_pairs] if self.flip_test else None
        local = collect_predictions(
            task, self.loader, self.input_size, flip_pairs, self.udp, self.device, autocast, progress
        )
        preds = gather_predictions(local)
        metrics: dict[str, float] | None = None
        if is_main_process():
            metrics = self._score(preds, tag)
        return broadcast_object(metrics)

    def _score(self, preds: list[dict[str, Any]], tag: str) -> dict[str, float]:
        from slimpose.evaluation.coco import evaluate_coco_keypoints, topdown_postprocess
        from slimpose.evaluation.results import write_coco_results

        sigmas = np.asarray(self.info.sigmas, dtype=np.float64)
        records = topdown_postprocess(preds, sigmas, kpt_score_thr=self.score_thr, nms_thr=self.nms_thr)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_coco_results(self.out_dir / f"results_{tag}.json", records)
        if self.metric == "pckh":
            metrics = self._pckh(preds)
        else:
            metrics = evaluate_coco_keypoints(self.gt, records, sigmas=sigmas, use_area=self._use_area())
        metrics = {k: float(v) for k, v in metrics.items()}
        metrics["num_predictions"] = float(len(preds))
        write_json_atomic(self.out_dir / f"metrics_{tag}.json", metrics, indent=2)
        return metrics

    # Data sets scored with 0.53 x box area instead of segmentation areas (MMPose's use_area=False).
    _NO_AREA_DATASETS = ("crowdpose", "aic")

    def _use_area(self) -> bool:
        """Segmentation areas for OKS unless the data set is scored without them or the gt lacks them."""
        if getattr(self.info, "name", "") in self._NO_AREA_DATASETS:
            return False
        gt = self.gt
        if isinstance(gt, (str, Path)):
            from slimpose.utils.io import load_json

            gt = self.gt = load_json(gt, "ground-truth annotation file")
        anns = gt.get("annotations", []) if isinstance(gt, dict) else []
        return all("area" in a for a in anns)

    def _pckh(self, preds: list[dict[str, Any]]) -> dict[str, float]:
        try:
            from slimpose.evaluation import pck
        except ImportError as e:
            raise RuntimeError("PCKh needs slimpose.evaluation.pck, which is not available") from e
        if self.instances is None:
            raise RuntimeError("PCKh evaluation needs the validation instances (Evaluator(instances=...))")
        by_index = {p["index"]: p for p in preds}
        order = sorted(by_index)
        pred_k = np.stack([by_index[i]["keypoints"] for i in order])
        gt_k = np.stack([np.asarray(self.instances[i].keypoints, dtype=np.float64) for i in order])
        vis = np.stack([np.asarray(self.instances[i].visible, dtype=np.float64) > 0 for i in order])
        heads = np.stack([
            np.asarray(self.instances[i].head_box, dtype=np.float64) if self.instances[i].head_box is not None
            else np.full(4, np.nan) for i in order
        ])
        result = pck.pckh(pred_k, gt_k, vis, heads)
        summary = pck.mpii_summary(result)
        return {"PCKh": float(result.mean), "PCKh_joint_mean": float(result.mean_joint),
                **{f"PCKh_{k}": float(v) for k, v in summary.items() if k != "Mean"}}
