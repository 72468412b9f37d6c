"""Top-down evaluation: predict every crop through the task's head (flip test, decoding), map back to image
pixels, gather across ranks, rescore + OKS-NMS, write the COCO results file atomically, score with the data
set's metric (``slimpose.evaluation.metrics``).

Follows HRNet ``validate`` / MMPose ``TopdownPoseEstimator.predict`` + ``CocoMetric``: keypoints decoded in
the input crop are mapped back with the inverse crop transform (``transforms.crop_to_image``); instance
score = bbox score x mean keypoint score above ``score_thr``; per-image OKS-NMS at ``nms_thr`` with the
data set's sigmas and area = scale_w * scale_h. The model input is taken from the batch under the key
the model's input spec names.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch

from slimpose.engine.distributed import all_gather_object, broadcast_object, is_main_process
from slimpose.utils.io import unwrapped_batches, write_json_atomic


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def collect_predictions(
    task: torch.nn.Module,
    loader: Iterable[dict[str, Any]],
    flip_pairs: list[tuple[int, int]] | None,
    udp: bool = False,
    device: torch.device | str = "cpu",
    autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
    progress: bool = False,
    select: list[int] | tuple[int, ...] | None = None,
) -> list[dict[str, Any]]:
    """Predictions of this process, one dict per crop: ``index``, ``image_id``, ``keypoints`` (K,2) and
    ``keypoint_scores`` (K,) in image pixels, ``bbox_score``, ``area``. ``select``: keep only these of the
    model's keypoints, in this order (a unified model scored in one data set's skeleton)."""
    from slimpose.data.transforms import crop_to_image

    spec = task.model.input_spec
    task.eval()
    out: list[dict[str, Any]] = []
    ctx = autocast or contextlib.nullcontext
    batches = loader
    if progress:
        from tqdm import tqdm

        batches = tqdm(loader, desc="eval", leave=False, dynamic_ncols=True)
    with torch.no_grad():
        for batch in unwrapped_batches(batches):
            inputs = batch[spec.batch_key].to(device, non_blocking=True)
            with ctx():
                kpts, scores = task.predict(inputs, flip_pairs)
            if select is not None:
                kpts, scores = kpts[:, list(select)], scores[:, list(select)]
            center = _to_numpy(batch["center"]).astype(np.float64)
            scale = _to_numpy(batch["scale"]).astype(np.float64)
            rotation = _to_numpy(batch.get("rotation", np.zeros(len(inputs)))).astype(np.float64)
            image_id = _to_numpy(batch["image_id"])
            bbox_score = _to_numpy(batch["bbox_score"]).astype(np.float64)
            index = _to_numpy(batch["index"])
            for i in range(len(inputs)):
                pts = crop_to_image(kpts[i], center[i], scale[i], spec.size, rotation=float(rotation[i]), udp=udp)
                out.append({
                    "index": int(index[i]),
                    "image_id": int(image_id[i]),
                    "keypoints": np.asarray(pts, dtype=np.float64).reshape(-1, 2),
                    "keypoint_scores": np.asarray(scores[i], dtype=np.float64).reshape(-1),
                    "bbox_score": float(bbox_score[i]),
                    "area": float(scale[i][0] * scale[i][1]),
                })
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
        loader: validation DataLoader (with DDP a ``DistributedSampler(shuffle=False)``).
        info: the data set's ``DatasetInfo`` (OKS sigmas for NMS).
        metric: a ``slimpose.evaluation.metrics`` metric (COCO AP, PCKh, ...); its ``primary`` / ``mode``
            say which number is "best".
        out_dir: where ``results_{tag}.json`` and ``metrics_{tag}.json`` go.
        model_info: the keypoints the model predicts (its flip pairs; default ``info``).
        select: which of them give the data set's keypoints, in its order (default: all, unchanged).
    """

    def __init__(
        self,
        loader: Iterable[dict[str, Any]],
        info: Any,
        metric: Any,
        out_dir: str | Path,
        udp: bool = False,
        flip_test: bool = True,
        score_thr: float = 0.2,
        nms_thr: float | None = 0.9,
        device: torch.device | str = "cpu",
        model_info: Any = None,
        select: list[int] | tuple[int, ...] | None = None,
    ) -> None:
        self.loader = loader
        self.model_info = model_info if model_info is not None else info
        self.select = select
        self.info = info
        self.metric = metric
        self.out_dir = Path(out_dir)
        self.udp = udp
        self.flip_test = flip_test
        self.score_thr = score_thr
        self.nms_thr = nms_thr
        self.device = device

    def run(
        self,
        task: torch.nn.Module,
        tag: str = "val",
        autocast: Callable[[], contextlib.AbstractContextManager] | None = None,
        progress: bool = False,
    ) -> dict[str, float]:
        flip_pairs = [tuple(p) for p in self.model_info.flip_pairs] if self.flip_test else None
        local = collect_predictions(task, self.loader, flip_pairs, self.udp, self.device, autocast, progress,
                                    self.select)
        preds = gather_predictions(local)
        metrics: dict[str, float] | None = None
        if is_main_process():
            metrics = self._score(preds, tag)
        return broadcast_object(metrics)

    def _score(self, preds: list[dict[str, Any]], tag: str) -> dict[str, float]:
        from slimpose.evaluation.coco import topdown_postprocess
        from slimpose.evaluation.results import write_coco_results

        sigmas = np.asarray(self.info.sigmas, dtype=np.float64)
        records = topdown_postprocess(preds, sigmas, kpt_score_thr=self.score_thr, nms_thr=self.nms_thr)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        write_coco_results(self.out_dir / f"results_{tag}.json", records)
        metrics = {k: float(v) for k, v in self.metric(preds, records).items()}
        metrics["num_predictions"] = float(len(preds))
        write_json_atomic(self.out_dir / f"metrics_{tag}.json", metrics, indent=2)
        return metrics
