"""Person boxes from a user-supplied ONNX detector (onnxruntime, CPU): ``PersonDetector(path).detect(image)``.

slimpose ships no detector weights. ``PersonDetector`` runs an exported YOLO-family or mmdeploy detector and
returns ``(N, 5)`` ``[x, y, w, h, score]`` boxes in the original image pixels (the xywh of
``slimpose predict --boxes``), person class only, after a score threshold and class-agnostic NMS.

Output layouts (auto-detected from the outputs' count and shapes, or given with ``layout=``):

* ``mmdeploy``: ``dets (1, N, 5)`` x1, y1, x2, y2, score and ``labels (1, N)`` (mmdeploy end2end RTMDet /
  YOLOX, as rtmlib uses them);
* ``yolox``: ``(1, N, 5 + C)`` cx, cy, w, h, objectness, class scores (Megvii ``tools/export_onnx.py``);
  raw grid offsets by default (decoded here over strides 8 / 16 / 32), or already decoded
  (``--decode_in_inference``); see ``yolox_outputs_are_raw``;
* ``yolo``: ``(1, 4 + C, N)`` cx, cy, w, h, class scores (ultralytics YOLOv8 / YOLO11 ``export format=onnx``);
* ``yolov5``: ``(1, N, 5 + C)`` decoded cx, cy, w, h, objectness, class scores.

All boxes are in the network input's pixels; the input is the image letterboxed to the ONNX input size
(``DetectorPreprocess``) as each official inference code does it, by default per layout
(``LAYOUT_PREPROCESS``): ``mmdeploy`` RTMDet's BGR with mmdet's mean / std, padded bottom-right with 114
(an mmdeploy YOLOX wants ``preprocess="yolox"``); ``yolox`` BGR 0..255, padded bottom-right with 114;
``yolo`` / ``yolov5`` RGB / 255, padded centred with 114. Boxes are mapped back through the inverse
letterbox and clipped to the image. onnxruntime is the optional extra ``slimpose[export]``, imported lazily.
See docs/inference.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from slimpose.utils.io import SlimposeInputError

__all__ = ["DetectorPreprocess", "PREPROCESS", "LAYOUT_PREPROCESS", "LAYOUTS", "PersonDetector", "box_iou",
           "nms", "letterbox", "decode_yolox_grid", "yolox_outputs_are_raw"]

LAYOUTS = ("mmdeploy", "yolox", "yolo", "yolov5")
STRIDES = (8, 16, 32)  # the YOLOX / YOLOv5 output levels
RAW_YOLOX_LIMIT = 8.0  # see yolox_outputs_are_raw


@dataclass(frozen=True)
class DetectorPreprocess:
    """How the network input is made from a BGR uint8 image: resize keeping the aspect ratio into the input
    size, pad with ``pad_value`` (bottom-right, or centred with ``center_pad``), reorder to RGB if ``rgb``,
    then ``(pixel - mean) / std`` per channel (in the fed order), as float (1, 3, H, W)."""

    rgb: bool = False
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    center_pad: bool = False
    pad_value: float = 114.0


PREPROCESS = {
    # mmdet / mmdeploy RTMDet (rtmlib's RTMDet): BGR, mean / std of the mmdet config, pad bottom-right 114
    "rtmdet": DetectorPreprocess(mean=(103.53, 116.28, 123.675), std=(57.375, 57.12, 58.395)),
    # Megvii YOLOX (and mmdet YOLOX): BGR 0..255 unnormalised, pad bottom-right 114
    "yolox": DetectorPreprocess(),
    # ultralytics YOLOv8 / YOLO11 and YOLOv5: RGB / 255, pad centred 114
    "ultralytics": DetectorPreprocess(rgb=True, std=(255.0, 255.0, 255.0), center_pad=True),
}
LAYOUT_PREPROCESS = {"mmdeploy": "rtmdet", "yolox": "yolox", "yolo": "ultralytics", "yolov5": "ultralytics"}


# ---------------------------------------------------------------------------------------------- geometry


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x1y1x2y2 boxes ``a`` (N, 4) and ``b`` (M, 4): (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_thr: float) -> np.ndarray:
    """Greedy NMS of x1y1x2y2 ``boxes``: indices kept, best score first; a box whose IoU with a kept one is
    above ``iou_thr`` is dropped (``iou_thr >= 1`` keeps every box)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        best, order = int(order[0]), order[1:]
        keep.append(best)
        if order.size:
            order = order[box_iou(boxes[best], boxes[order])[0] <= iou_thr]
    return np.asarray(keep, dtype=np.int64)


def letterbox(image_bgr: np.ndarray, size: tuple[int, int], pre: DetectorPreprocess
              ) -> tuple[np.ndarray, float, tuple[float, float]]:
    """``(blob (1, 3, H, W) float32, ratio, (left, top))``: ``image_bgr`` resized by ``ratio`` into
    ``size = (W, H)`` and padded; an input pixel x is image pixel ``(x - left) / ratio``.

    Sizes as the official code rounds them: centred (ultralytics ``LetterBox``) ``round(w * ratio)`` with
    ``top = round(dh - 0.1)``; bottom-right (YOLOX ``preproc``, rtmlib) ``int(w * ratio)``."""
    in_w, in_h = size
    h, w = image_bgr.shape[:2]
    ratio = min(in_w / w, in_h / h)
    if pre.center_pad:
        new_w, new_h = int(round(w * ratio)), int(round(h * ratio))
        left, top = int(round((in_w - new_w) / 2 - 0.1)), int(round((in_h - new_h) / 2 - 0.1))
    else:
        new_w, new_h = int(w * ratio), int(h * ratio)
        left = top = 0
    new_w, new_h = max(1, min(in_w, new_w)), max(1, min(in_h, new_h))
    canvas = np.full((in_h, in_w, 3), pre.pad_value, dtype=np.float32)
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR) \
        if (new_w, new_h) != (w, h) else image_bgr
    canvas[top:top + new_h, left:left + new_w] = resized
    if pre.rgb:
        canvas = canvas[..., ::-1]
    canvas = (canvas - np.asarray(pre.mean, np.float32)) / np.asarray(pre.std, np.float32)
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None], dtype=np.float32), ratio, (left, top)


def grid_size(size: tuple[int, int], strides: tuple[int, ...] = STRIDES) -> int:
    """Number of grid cells over the output levels of an input ``size = (W, H)``: sum (H/s)(W/s)."""
    return sum((size[1] // s) * (size[0] // s) for s in strides)


def decode_yolox_grid(raw: np.ndarray, size: tuple[int, int], strides: tuple[int, ...] = STRIDES) -> np.ndarray:
    """YOLOX raw outputs (N, 4 + ...) -> decoded cx, cy, w, h in input pixels (the other columns kept):
    ``xy = (out + grid) * stride``, ``wh = exp(out) * stride``, cells row-major per level (x fastest)."""
    grids, steps = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(size[1] // s), np.arange(size[0] // s), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        steps.append(np.full((xs.size, 1), s, dtype=np.float64))
    grid, stride = np.concatenate(grids).astype(np.float64), np.concatenate(steps)
    out = np.array(raw, dtype=np.float64)
    out[:, :2] = (out[:, :2] + grid) * stride
    out[:, 2:4] = np.exp(np.minimum(out[:, 2:4], 50.0)) * stride
    return out


def yolox_outputs_are_raw(candidates: np.ndarray) -> bool:
    """Heuristic for a YOLOX output of N == grid-cell count rows: raw (not decoded) when every candidate row
    (scoring above the threshold) has ``|cx|, |cy|, |w|, |h| < 8``. Raw rows hold offsets from their cell
    (about -1..2) and log sizes (log(640 / 8) = 4.4 is a full-image box at stride 8), while a decoded row
    has pixel values: only a box under 8 px wide and high, centred within 8 px of the input's top-left
    corner, reads as raw."""
    return bool(candidates.size == 0 or np.abs(candidates[:, :4]).max() < RAW_YOLOX_LIMIT)


def _xyxy(cxcywh: np.ndarray) -> np.ndarray:
    cx, cy, w, h = (cxcywh[:, i] for i in range(4))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


# ---------------------------------------------------------------------------------------------- detector


class PersonDetector:
    """An ONNX person detector (onnxruntime CPU). ``detect(image_bgr)`` -> (N, 5) xywh + score, image pixels.

    Args:
        path: the ``.onnx`` file.
        layout: ``auto`` or one of ``LAYOUTS`` (module docstring).
        score_thr: boxes scoring below it are dropped; iou_thr: NMS IoU threshold (1.0: no NMS).
        person_class: the class id of "person" (0 in COCO-trained exports).
        input_size: ``(W, H)`` when the ONNX input has no fixed size (default 640 x 640).
        preprocess: a ``DetectorPreprocess`` or a ``PREPROCESS`` name; default per layout
            (``mmdeploy``: RTMDet's; give ``"yolox"`` for an mmdeploy YOLOX).
        decoded: ``yolox`` layout: whether the boxes are already decoded (``None``: raw when N is the
            grid-cell count and ``yolox_outputs_are_raw`` says so).
    """

    def __init__(self, path: str | os.PathLike, layout: str = "auto", score_thr: float = 0.3,
                 iou_thr: float = 0.65, person_class: int = 0, input_size: tuple[int, int] | None = None,
                 preprocess: DetectorPreprocess | str | None = None, decoded: bool | None = None) -> None:
        self.path = Path(path)
        if layout != "auto" and layout not in LAYOUTS:
            raise SlimposeInputError(f"{self.path}: unknown detector layout {layout!r} (auto, {', '.join(LAYOUTS)})")
        if not self.path.is_file():
            raise SlimposeInputError(f"detector not found: {self.path}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise SlimposeInputError(f"{self.path}: the person detector needs onnxruntime: "
                                     "pip install 'slimpose[export]' (or pip install onnxruntime)") from None
        try:
            self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for a bad file
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SlimposeInputError(f"{self.path}: not a valid ONNX model ({reason[:300]})") from None
        self.score_thr, self.iou_thr, self.person_class, self.decoded = score_thr, iou_thr, person_class, decoded
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        if inp.type not in ("tensor(float)", "tensor(float16)"):
            raise SlimposeInputError(f"{self.path}: the detector input {inp.name!r} is {inp.type}; a float32 / "
                                     "float16 image (1, 3, H, W) is expected")
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        self.input_size = self._input_size(inp.shape, input_size)
        self.layout = self._layout(layout)
        if preprocess is None:
            preprocess = LAYOUT_PREPROCESS[self.layout]
        if isinstance(preprocess, str):
            if preprocess not in PREPROCESS:
                raise SlimposeInputError(f"{self.path}: unknown detector preprocessing {preprocess!r} "
                                         f"({', '.join(PREPROCESS)})")
            preprocess = PREPROCESS[preprocess]
        self.preprocess = preprocess

    def _input_size(self, shape: list[Any], given: tuple[int, int] | None) -> tuple[int, int]:
        if len(shape) != 4:
            raise SlimposeInputError(f"{self.path}: the detector input has shape {shape}, not (1, 3, H, W)")
        h, w = shape[2], shape[3]
        if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0:
            if given is not None and tuple(given) != (w, h):
                raise SlimposeInputError(f"{self.path}: the model's input is {w}x{h}, input_size says "
                                         f"{given[0]}x{given[1]}")
            return w, h
        return (int(given[0]), int(given[1])) if given is not None else (640, 640)

    def _output_shapes(self) -> list[tuple[int, ...]]:
        """The outputs' shapes: from the model, or (symbolic dimensions) from one run on a blank input."""
        shapes = [o.shape for o in self.session.get_outputs()]
        if all(isinstance(d, int) for s in shapes for d in s):
            return [tuple(s) for s in shapes]
        blank = np.zeros((1, 3, self.input_size[1], self.input_size[0]), dtype=self.input_dtype)
        try:
            return [tuple(np.shape(o)) for o in self.session.run(None, {self.input_name: blank})]
        except Exception as e:
            raise SlimposeInputError(f"{self.path}: the detector fails on a {self.input_size[0]}x"
                                     f"{self.input_size[1]} input ({str(e).strip()[:300]})") from None

    def _layout(self, layout: str) -> str:
        shapes = self._output_shapes()
        found = None
        if len(shapes) == 2 and sorted(len(s) for s in shapes) == [2, 3]:
            dets = shapes[0] if len(shapes[0]) == 3 else shapes[1]
            found = "mmdeploy" if dets[-1] == 5 else None
        elif len(shapes) == 1 and len(shapes[0]) == 3 and shapes[0][0] == 1:
            _, a, b = shapes[0]
            if a < b and a > 4:
                found = "yolo"
            elif b > 5:
                grid = grid_size(self.input_size)
                found = "yolox" if a == grid else "yolov5" if a == 3 * grid else "yolox|yolov5"
        known = {"mmdeploy": "dets (1, N, 5) + labels (1, N)", "yolox": "(1, N, 5 + C), N = grid cells",
                 "yolo": "(1, 4 + C, N)", "yolov5": "(1, N, 5 + C), N = 3 x grid cells"}
        if layout == "auto":
            if found == "yolox|yolov5":
                raise SlimposeInputError(
                    f"{self.path}: output {list(shapes[0])} is (1, N, 5 + C) but N is neither the "
                    f"{grid_size(self.input_size)} grid cells of YOLOX nor 3x that (YOLOv5) at input "
                    f"{self.input_size[0]}x{self.input_size[1]}: give the layout (yolox or yolov5)")
            if found is None:
                raise SlimposeInputError(
                    f"{self.path}: outputs {[list(s) for s in shapes]} match no known detector layout ("
                    + "; ".join(f"{k}: {v}" for k, v in known.items()) + ")")
            layout = found
        elif found is None or layout not in found.split("|"):
            raise SlimposeInputError(f"{self.path}: outputs {[list(s) for s in shapes]} are not the {layout} "
                                     f"layout ({known[layout]})")
        if layout != "mmdeploy":
            classes = shapes[0][1] - 4 if layout == "yolo" else shapes[0][2] - 5
            if not 0 <= self.person_class < classes:
                raise SlimposeInputError(f"{self.path}: person class {self.person_class}, but the detector has "
                                         f"{classes} classes")
        return layout

    def _candidates(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes x1y1x2y2 in input pixels and their scores, above the score threshold."""
        thr, pc = self.score_thr, self.person_class
        if self.layout == "mmdeploy":
            dets, labels = (outputs[0], outputs[1]) if np.ndim(outputs[0]) == 3 else (outputs[1], outputs[0])
            dets = np.asarray(dets, dtype=np.float64).reshape(-1, 5)
            keep = (np.asarray(labels).reshape(-1).astype(np.int64) == pc) & (dets[:, 4] >= thr)
            return dets[keep, :4], dets[keep, 4]
        out = np.asarray(outputs[0], dtype=np.float64)[0]
        if self.layout == "yolo":
            out = out.T  # (N, 4 + C)
            cls, obj = out[:, 4:], np.ones(len(out))
        else:
            cls, obj = out[:, 5:], out[:, 4]
        scores = obj * cls[:, pc]
        keep = (cls.argmax(axis=1) == pc) & (scores >= thr)
        rows, scores = out[keep], scores[keep]
        if self.layout == "yolox":
            grid = grid_size(self.input_size)
            raw = not self.decoded if self.decoded is not None else (len(out) == grid
                                                                     and yolox_outputs_are_raw(rows))
            if raw and len(out) != grid:
                raise SlimposeInputError(f"{self.path}: decoded=False (raw grid offsets), but the output has "
                                         f"{len(out)} rows and an {self.input_size[0]}x{self.input_size[1]} "
                                         f"input {grid} grid cells")
            if raw:
                rows = decode_yolox_grid(out, self.input_size)[keep]
        return _xyxy(rows[:, :4]), scores

    def detect(self, image_bgr: np.ndarray) -> np.ndarray:
        """(N, 5) ``[x, y, w, h, score]`` person boxes in ``image_bgr``'s pixels, best score first."""
        image = np.asarray(image_bgr)
        if image.ndim != 3 or image.shape[2] != 3:
            raise SlimposeInputError(f"{self.path}: detect expects a BGR image (H, W, 3), got {image.shape}")
        blob, ratio, (left, top) = letterbox(image, self.input_size, self.preprocess)
        outputs = self.session.run(None, {self.input_name: blob.astype(self.input_dtype, copy=False)})
        boxes, scores = self._candidates(outputs)
        h, w = image.shape[:2]
        boxes = (boxes - np.array([left, top, left, top], dtype=np.float64)) / ratio
        boxes = np.clip(boxes, 0, [w, h, w, h])
        ok = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1]) & np.isfinite(scores)
        boxes, scores = boxes[ok], scores[ok]
        keep = nms(boxes, scores, self.iou_thr)
        boxes, scores = boxes[keep], scores[keep]
        return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2], scores[:, None]], axis=1) \
            if len(keep) else np.zeros((0, 5))
