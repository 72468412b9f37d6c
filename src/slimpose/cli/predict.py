"""``slimpose predict SOURCE --checkpoint CKPT``: poses on an image, a folder, a video or a webcam.

Boxes: a COCO detection-results json (``--boxes``; records ``{image_id, bbox: xywh, score, category_id}``,
matched to image files by the file-name stem read as a number, or by ``--gt ANNOTATIONS.json`` mapping
``file_name -> id``; for videos ``image_id`` is the frame index), the ground-truth boxes of ``--gt`` with
``--gt-boxes``, the person boxes of an ONNX detector the user supplies (``--detector MODEL.onnx``,
``slimpose.detection``; slimpose ships none), or else the whole frame as one box. Writes ``OUT/results.json``
(COCO keypoint results, atomically) and overlays ``OUT/vis/<name>.png``; a video or webcam gives
``OUT/<name>_pose.mp4`` (mp4v), and its people are tracked across frames (``slimpose.tracking``): each record
of a video carries a ``track_id``, drawn beside its box. See docs/inference.md.

MPII: ``--gt MPII.json`` (an HRNet / MMPose json list) gives one crop per record (its center / scale, as
``slimpose eval`` crops it) for the images named in the list (matched by file name; other images are
skipped), no NMS, and each result's ``image_id`` is the record's index in the list, so that
``slimpose evaluate --metric pckh --gt MPII.json --results OUT/results.json`` scores it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from slimpose.data.boxes import load_detections, load_gt_index
from slimpose.data.unified import SKELETON_CHOICES
from slimpose.utils.io import SlimposeInputError

DETECTOR_LAYOUTS = ("mmdeploy", "yolox", "yolo", "yolov5")  # slimpose.detection.LAYOUTS (imported lazily)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="image file, folder of images, video file, or webcam index (0, 1)")
    parser.add_argument("--checkpoint", required=True, help="slimpose .pth checkpoint or .safetensors export")
    parser.add_argument("--boxes", default=None, metavar="DETECTIONS.json", help="COCO detection results")
    parser.add_argument("--gt", default=None, metavar="ANNOTATIONS.json",
                        help="COCO annotations: file names -> image ids (and boxes with --gt-boxes); or an "
                             "MPII json list: one crop per record, image_id = record index")
    parser.add_argument("--gt-boxes", action="store_true", help="use the person boxes of --gt")
    parser.add_argument("--detector", default=None, metavar="MODEL.onnx",
                        help="an ONNX person detector (YOLOX, ultralytics YOLO, YOLOv5, mmdeploy RTMDet / YOLOX) "
                             "that finds the boxes; see docs/inference.md")
    parser.add_argument("--detector-layout", default="auto", choices=("auto",) + DETECTOR_LAYOUTS,
                        help="the detector's output layout (default: told from its outputs)")
    parser.add_argument("--det-preprocess", default="auto", choices=("auto", "rtmdet", "yolox", "ultralytics"),
                        help="the detector's input preprocessing (default: the layout's; an mmdeploy YOLOX "
                             "needs yolox)")
    parser.add_argument("--det-thr", type=float, default=None,
                        help="drop detections scoring below this (default 0.0 for --boxes, 0.3 for --detector)")
    parser.add_argument("--det-nms", type=float, default=0.65, help="--detector: box NMS IoU threshold")
    parser.add_argument("--out", default="predictions", help="output folder (default ./predictions)")
    parser.add_argument("--flip", action="store_true", help="flip test (average with the mirrored crop)")
    parser.add_argument("--kpt-thr", type=float, default=0.3, help="keypoints below this score are not drawn")
    parser.add_argument("--nms-thr", type=float, default=None, help="OKS-NMS per image at this threshold")
    parser.add_argument("--batch", type=int, default=32, help="crops per forward pass")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    parser.add_argument("--no-vis", action="store_true", help="do not write overlays")
    parser.add_argument("--max-frames", type=int, default=0,
                        help="video/webcam: stop after N frames (0: all)")
    parser.add_argument("--skeleton", default=None, choices=SKELETON_CHOICES,
                        help="keypoints of the results (default: the model's own); a model trained with "
                             "data.skeleton=unified gives any of these")
    add_backend_arguments(parser)


def add_backend_arguments(parser: argparse.ArgumentParser) -> None:
    """``--backend``, ``--quantize``, ``--precision``: how the pose network runs (``slimpose.inference``)."""
    parser.add_argument("--backend", choices=("torch", "compile", "onnxruntime", "train"), default="torch",
                        help="torch: the inference path (BN folded, channels-last; default); compile: "
                             "torch.compile of it; onnxruntime: ONNX Runtime (CPU); train: the network as trained")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="with --backend onnxruntime: int8 dynamic quantisation of the linear layers "
                             "(changes the predictions slightly: docs/inference.md)")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="torch / compile backends: autocast precision (bf16 on CPUs with AVX512-BF16, "
                             "fp16 / bf16 on GPUs)")


# ----------------------------------------------------------------------------------------------- sources


def list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS)


def image_id_for(path: Path, names: dict[str, int] | None, index: int) -> int:
    """Id of an image file: ``--gt`` mapping, else the file-name stem as a number, else its index."""
    if names is not None:
        if path.name not in names:
            raise SlimposeInputError(f"{path}: file name not listed in the --gt annotation file")
        return names[path.name]
    stem = path.stem
    return int(stem) if stem.isdigit() else index


def is_json_list(path: str | os.PathLike) -> bool:
    """Whether the JSON file ``path`` holds a list (an MPII json list) rather than an object (COCO)."""
    try:
        with open(path, "rb") as f:
            while True:
                block = f.read(4096)
                if not block:
                    return False
                block = block.lstrip(b" \t\r\n\xef\xbb\xbf")
                if block:
                    return block[:1] == b"["
    except OSError:
        return False


def load_mpii_index(path: str | os.PathLike) -> dict[str, tuple[list[int], np.ndarray]]:
    """MPII json list -> ``file name -> (record indices, (n, 5) xywh+score boxes)`` (box = the record's
    person box before the 1.25 padding, so that predict crops it as the evaluator does)."""
    from slimpose.data.mpii import load_mpii_instances

    index: dict[str, tuple[list[int], list[list[float]]]] = {}
    for inst in load_mpii_instances(path):
        ids, boxes = index.setdefault(Path(inst.image_path).name, ([], []))
        ids.append(inst.ann_id)
        boxes.append([float(v) for v in inst.bbox] + [1.0])
    return {name: (ids, np.asarray(boxes, dtype=np.float64)) for name, (ids, boxes) in index.items()}


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _progress(iterable: Iterable[Any], total: int | None, desc: str) -> Iterable[Any]:
    from tqdm import tqdm

    return tqdm(iterable, total=total, desc=desc, unit="img", dynamic_ncols=True, disable=None,
                file=sys.stderr)


def make_detector(args: argparse.Namespace) -> Any:
    """The ``--detector`` (``slimpose.detection.PersonDetector``), or ``None``; refused with other boxes."""
    if not args.detector:
        return None
    if args.boxes or args.gt_boxes:
        raise SlimposeInputError(f"--detector {args.detector} finds the boxes itself: use it without "
                                 f"{'--boxes' if args.boxes else '--gt-boxes'}")
    if args.gt and is_json_list(args.gt):
        raise SlimposeInputError(f"--detector {args.detector} cannot be used with the MPII json list {args.gt}: "
                                 "MPII is scored per record, with the records' own centres and scales")
    from slimpose.detection import PersonDetector

    return PersonDetector(args.detector, layout=args.detector_layout,
                          score_thr=0.3 if args.det_thr is None else args.det_thr, iou_thr=args.det_nms,
                          preprocess=None if args.det_preprocess == "auto" else args.det_preprocess)


class _Runner:
    """Shared state of one ``predict`` call."""

    def __init__(self, args: argparse.Namespace) -> None:
        from slimpose.api import load

        self.args = args
        self.detector = make_detector(args)
        self.model = load(args.checkpoint, device=args.device, batch_size=args.batch, flip_test=args.flip,
                          skeleton=args.skeleton, backend=args.backend, quantize=args.quantize,
                          precision=args.precision)
        self.sigmas = np.asarray(self.model.info.sigmas, dtype=np.float64)
        self.names, gt_boxes = (None, {})
        # MPII json list: file name -> (record indices, boxes); results get record-index image ids
        self.mpii: dict[str, tuple[list[int], np.ndarray]] | None = None
        if args.gt and is_json_list(args.gt):
            if args.boxes:
                raise SlimposeInputError(f"--boxes cannot be used with the MPII json list {args.gt}: MPII is "
                                         "scored per record, with the records' own centres and scales")
            self.mpii = load_mpii_index(args.gt)
            if args.nms_thr is not None:
                print("[slimpose] --nms-thr ignored: MPII gives one crop per record", file=sys.stderr)
        elif args.gt:
            self.names, gt_boxes = load_gt_index(args.gt)
        if args.gt_boxes and not args.gt:
            raise SlimposeInputError("--gt-boxes needs --gt ANNOTATIONS.json")
        if args.boxes and args.gt_boxes and self.mpii is None:
            raise SlimposeInputError("use either --boxes or --gt-boxes, not both")
        self.boxes: dict[int, np.ndarray] | None = None
        if args.boxes:
            self.boxes = load_detections(args.boxes, 0.0 if args.det_thr is None else args.det_thr)
        elif args.gt_boxes:
            self.boxes = gt_boxes
        self.out = Path(args.out)
        self.records: list[dict[str, Any]] = []
        self.num_instances = 0
        self.num_unlisted = 0  # MPII: images of the source not named in the json list

    def boxes_for(self, image_id: int, path: Path | None = None, image: np.ndarray | None = None
                  ) -> np.ndarray | None:
        if self.mpii is not None and path is not None:
            return self.mpii[path.name][1]
        if self.detector is not None and image is not None:
            return self.detector.detect(image)
        if self.boxes is None:
            return None  # whole frame
        return self.boxes.get(image_id, np.zeros((0, 5)))

    def _mpii_records(self, path: Path, result: Any) -> list[dict[str, Any]]:
        """One results record per MPII record of this image (boxes in record order), image_id = its index."""
        from slimpose.evaluation.results import make_coco_record

        record_ids = self.mpii[path.name][0]
        return [make_coco_record(rid, k, s, float(sc))
                for rid, k, s, sc in zip(record_ids, result.keypoints, result.keypoint_scores, result.scores)]

    def run_images(self, paths: list[Path]) -> None:
        from slimpose.api import to_bgr_image
        from slimpose.visualization import save_image

        if self.mpii is not None:
            listed = [p for p in paths if p.name in self.mpii]
            self.num_unlisted = len(paths) - len(listed)
            if not listed:
                raise SlimposeInputError(f"{self.args.gt}: none of the {len(paths)} source images is named in "
                                         "this MPII json list")
            paths, ids = listed, [-1] * len(listed)
        else:
            ids = [image_id_for(p, self.names, i) for i, p in enumerate(paths)]
            if self.args.boxes and self.boxes and not set(ids) & set(self.boxes):
                shown = ", ".join(str(i) for i in sorted(self.boxes)[:5])
                raise SlimposeInputError(
                    f"{self.args.boxes}: no detection matches a source image (detection image ids {shown}"
                    f"{' ...' if len(self.boxes) > 5 else ''}; image ids {', '.join(map(str, ids[:5]))}"
                    f"{' ...' if len(ids) > 5 else ''}, from the file-name stems or --gt)")
        bar = _progress(range(len(paths)), len(paths), "predict") if len(paths) > 1 else None
        per_chunk = max(1, min(16, self.args.batch))
        for chunk in _chunks(list(zip(paths, ids)), per_chunk):
            images = [to_bgr_image(p) for p, _ in chunk]
            boxes = [self.boxes_for(i, p, image) for (p, i), image in zip(chunk, images)]
            results = self.model.predict_batch(images, boxes)
            for (path, image_id), image, result in zip(chunk, images, results):
                if self.mpii is not None:
                    self.records.extend(self._mpii_records(path, result))
                else:
                    result = result.nms(self.sigmas, self.args.nms_thr)
                    self.records.extend(result.to_coco(image_id))
                self.num_instances += len(result)
                if not self.args.no_vis:
                    drawn = self.model.draw(image, result, self.args.kpt_thr)
                    save_image(self.out / "vis" / f"{path.stem}.png", drawn)
            if bar is not None:
                bar.update(len(chunk))
        if bar is not None:
            bar.close()

    def run_video(self, capture: Any, name: str) -> None:
        import cv2

        from slimpose.tracking import IouTracker
        from slimpose.visualization import draw_track_ids

        if self.mpii is not None:
            capture.release()
            raise SlimposeInputError(f"{name}: --gt {self.args.gt} is an MPII json list of image records; "
                                     "give the image folder, not a video or camera")
        if not capture.isOpened():
            raise SlimposeInputError(f"{name}: cannot open the video / camera")
        fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
        fps = fps if 0 < fps < 1000 else 25.0
        total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0) or None
        limit = self.args.max_frames if self.args.max_frames > 0 else None
        if limit is not None and total is not None:
            total = min(total, limit)
        self.out.mkdir(parents=True, exist_ok=True)
        final = self.out / f"{name}_pose.mp4"
        partial = self.out / f".{name}_pose.partial.mp4"
        writer = None
        tracker = IouTracker()

        def frames() -> Iterator[tuple[int, np.ndarray]]:
            index = 0
            while limit is None or index < limit:
                ok, frame = capture.read()
                if not ok:
                    return
                yield index, frame
                index += 1

        bar = _progress(range(total or 0), total, "frames")
        try:
            for chunk in _chunks(frames(), max(1, min(8, self.args.batch))):
                frames_ = [f for _, f in chunk]
                results = self.model.predict_batch(frames_, [self.boxes_for(i, None, f) for i, f in chunk])
                for (index, frame), result in zip(chunk, results):
                    result = result.nms(self.sigmas, self.args.nms_thr)
                    track_ids = tracker.update(result.bboxes)
                    records = result.to_coco(index)
                    for record, track_id in zip(records, track_ids):
                        record["track_id"] = int(track_id)
                    self.records.extend(records)
                    self.num_instances += len(result)
                    if self.args.no_vis:
                        continue
                    if writer is None:
                        h, w = frame.shape[:2]
                        writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                        if not writer.isOpened():
                            raise SlimposeInputError(f"{final}: OpenCV cannot write an mp4v video here")
                    drawn = self.model.draw(frame, result, self.args.kpt_thr)
                    writer.write(draw_track_ids(drawn, result.bboxes, track_ids, copy=False))
                bar.update(len(chunk))
        finally:
            bar.close()
            capture.release()
            if writer is not None:
                writer.release()
        if writer is not None:
            os.replace(partial, final)
            print(f"[slimpose] video: {final}", file=sys.stderr)

    def write_results(self) -> Path:
        from slimpose.evaluation.results import write_coco_results

        path = self.out / "results.json"
        records = self.records
        if self.mpii is not None:
            records = sorted(records, key=lambda r: r["image_id"])
            total = sum(len(ids) for ids, _ in self.mpii.values())
            if self.num_unlisted:
                print(f"[slimpose] {self.num_unlisted} source images are not in {self.args.gt}: skipped",
                      file=sys.stderr)
            if len(records) < total:
                print(f"[slimpose] {total - len(records)} of {total} records of {self.args.gt} have no image "
                      "in the source: no result for them", file=sys.stderr)
        write_coco_results(path, records)
        return path


def run(args: argparse.Namespace) -> int:
    import cv2

    if args.batch < 1:
        raise SlimposeInputError(f"--batch must be >= 1, got {args.batch}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SlimposeInputError(f"--out {args.out}: an existing file, not a folder (results.json and the overlays "
                                 "go into a folder)")
    runner = _Runner(args)
    if runner.boxes is None and runner.mpii is None and runner.detector is None:
        print("[slimpose] no --boxes / --gt-boxes / --detector: each image (or video frame) is used whole as ONE "
              "person box; top-down pose needs one box per person (give COCO detection results with --boxes, or "
              "an ONNX person detector with --detector MODEL.onnx)", file=sys.stderr)
    src = Path(args.source)
    if src.is_dir():
        paths = list_images(src)
        if not paths:
            raise SlimposeInputError(f"{src}: no images ({', '.join(IMAGE_EXTS)}) in this folder")
        runner.run_images(paths)
    elif src.is_file() and src.suffix.lower() in VIDEO_EXTS:
        runner.run_video(cv2.VideoCapture(str(src)), src.stem)
    elif src.is_file():
        runner.run_images([src])
    elif args.source.isdigit():
        runner.run_video(cv2.VideoCapture(int(args.source)), f"webcam{args.source}")
    else:
        raise SlimposeInputError(
            f"source not found: {args.source} (an image, a folder, a video or a webcam index)")
    path = runner.write_results()
    print(f"[slimpose] {runner.num_instances} poses -> {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="slimpose predict")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
