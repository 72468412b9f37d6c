"""``slimpose.detection.PersonDetector`` on tiny ONNX models that emit known boxes in each export layout, the
letterbox, NMS, the errors, and ``slimpose predict --detector`` replaying real detections."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from slimpose.cli.main import main
from slimpose.detection import PREPROCESS, PersonDetector, box_iou, grid_size, letterbox, nms
from slimpose.utils.io import SlimposeInputError
from _shared import SHARED_REAL

pytest.importorskip("onnxruntime")

IMAGE_W, IMAGE_H = 200, 100  # a non-square image into a 64 x 64 input: ratio 0.32, resized to 64 x 32
INPUT = 64
RATIO = 0.32
# xywh in image pixels, score, class
PERSON_A = ([20, 10, 60, 80], 0.9, 0)
PERSON_B = ([110, 5, 50, 90], 0.8, 0)
DUPLICATE_A = ([21, 11, 60, 79], 0.7, 0)  # IoU ~0.95 with A: NMS drops it
OUTSIDE = ([150, 50, 80, 80], 0.6, 0)  # reaches past the image: clipped to 150, 50, 50, 50
NOT_A_PERSON = ([60, 20, 40, 40], 0.95, 1)
LOW = ([5, 5, 30, 30], 0.1, 0)
BOXES = [PERSON_A, PERSON_B, DUPLICATE_A, OUTSIDE, NOT_A_PERSON, LOW]
EXPECTED = np.array([[20, 10, 60, 80, 0.9], [110, 5, 50, 90, 0.8], [150, 50, 50, 50, 0.6]])
EXPECTED_NO_NMS = np.array([[20, 10, 60, 80, 0.9], [110, 5, 50, 90, 0.8], [21, 11, 60, 79, 0.7],
                            [150, 50, 50, 50, 0.6]])


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


class Constant(nn.Module):
    """Outputs fixed tensors; ``0 * x.mean()`` keeps the input in the graph."""

    def __init__(self, *outputs: torch.Tensor) -> None:
        super().__init__()
        for i, t in enumerate(outputs):
            self.register_buffer(f"out{i}", t)
        self.n = len(outputs)

    def forward(self, x):
        zero = x.mean() * 0
        outs = [getattr(self, f"out{i}") for i in range(self.n)]
        return tuple(o + zero.to(o.dtype) for o in outs)


def export(module: nn.Module, path, names, size=(INPUT, INPUT), dynamic=False):
    axes = {"images": {2: "height", 3: "width"}} if dynamic else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.zeros(1, 3, size[1], size[0]),), str(path), dynamo=False,
                          input_names=["images"], output_names=names, dynamic_axes=axes, opset_version=17)
    return path


def to_input(xywh, pad_center: bool, ratio=RATIO, image=(IMAGE_W, IMAGE_H), size=(INPUT, INPUT)):
    """Image-pixel xywh -> input-pixel x1y1x2y2 through the letterbox (the expected mapping, written out)."""
    left = round((size[0] - round(image[0] * ratio)) / 2 - 0.1) if pad_center else 0
    top = round((size[1] - round(image[1] * ratio)) / 2 - 0.1) if pad_center else 0
    x, y, w, h = xywh
    return [x * ratio + left, y * ratio + top, (x + w) * ratio + left, (y + h) * ratio + top]


def cxcywh(xyxy):
    x1, y1, x2, y2 = xyxy
    return [(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1]


def encode(layout: str, pad_center: bool, raw: bool = False) -> nn.Module:
    """A ``Constant`` model emitting ``BOXES`` in ``layout`` (two classes; yolox ``raw``: grid-encoded)."""
    if layout == "mmdeploy":
        dets = [to_input(b, pad_center) + [s] for b, s, _ in BOXES] + [[0, 0, 0, 0, 0.0]] * 3
        labels = [c for _, _, c in BOXES] + [0] * 3
        return Constant(torch.tensor([dets], dtype=torch.float32), torch.tensor([labels], dtype=torch.int64))
    rows = []
    for b, s, c in BOXES:
        cls = [s, 0.01] if c == 0 else [0.2, s]
        rows.append(cxcywh(to_input(b, pad_center)) + ([] if layout == "yolo" else [1.0]) + cls)
    if layout == "yolo":
        table = np.zeros((10, 6))
        table[:len(rows)] = rows
        return Constant(torch.tensor(table.T[None], dtype=torch.float32))
    n = grid_size((INPUT, INPUT)) * (3 if layout == "yolov5" else 1)
    table = np.zeros((n, 7))
    if not raw:
        table[:len(rows)] = rows
    else:  # each box in a free cell that contains its centre, at the first level that has one
        used = set()
        for row in rows:
            start = 0
            for s in (8, 16, 32):
                gx, gy = int(row[0] // s), int(row[1] // s)
                index = start + gy * (INPUT // s) + gx
                start += (INPUT // s) ** 2
                if index not in used:
                    break
            used.add(index)
            table[index] = [row[0] / s - gx, row[1] / s - gy, np.log(row[2] / s), np.log(row[3] / s)] + row[4:]
    return Constant(torch.tensor(table[None], dtype=torch.float32))


def image():
    return np.random.default_rng(0).integers(0, 255, (IMAGE_H, IMAGE_W, 3), dtype=np.uint8)


@pytest.mark.parametrize("layout, pad_center, raw", [("mmdeploy", False, False), ("yolox", False, True),
                                                      ("yolox", False, False), ("yolo", True, False),
                                                      ("yolov5", True, False)],
                         ids=["mmdeploy", "yolox-raw", "yolox-decoded", "yolo", "yolov5"])
def test_each_layout_gives_the_known_boxes_in_image_pixels(tmp_path, layout, pad_center, raw):
    model = encode(layout, pad_center, raw)
    names = ["dets", "labels"] if layout == "mmdeploy" else ["output0"]
    path = export(model, tmp_path / "det.onnx", names)
    det = PersonDetector(path)  # auto: told from the outputs
    assert det.layout == layout and det.input_size == (INPUT, INPUT)
    assert det.preprocess.center_pad == pad_center
    got = det.detect(image())
    # the person boxes above 0.3, mapped back (letterbox inverse), clipped; NMS drops A's duplicate
    np.testing.assert_allclose(got, EXPECTED, atol=1e-3)
    no_nms = PersonDetector(path, layout=layout, iou_thr=1.0, score_thr=0.05)
    expected = np.concatenate([EXPECTED_NO_NMS, [[5, 5, 30, 30, 0.1]]])
    np.testing.assert_allclose(no_nms.detect(image()), expected, atol=1e-3)
    if layout == "yolox":  # the decode heuristic agrees with the explicit option
        np.testing.assert_allclose(PersonDetector(path, decoded=not raw).detect(image()), got, atol=1e-9)


def test_preprocess_can_be_overridden_and_the_input_size_is_a_fallback(tmp_path):
    """An mmdeploy model padded centred (ultralytics' letterbox) and a model without a fixed input size."""
    path = export(encode("mmdeploy", True), tmp_path / "det.onnx", ["dets", "labels"])
    got = PersonDetector(path, preprocess="ultralytics").detect(image())
    np.testing.assert_allclose(got, EXPECTED, atol=1e-3)
    dyn = export(encode("mmdeploy", False), tmp_path / "dyn.onnx", ["dets", "labels"], dynamic=True)
    det = PersonDetector(dyn, input_size=(64, 64))
    assert det.input_size == (64, 64)
    np.testing.assert_allclose(det.detect(image()), EXPECTED, atol=1e-3)
    assert PersonDetector(dyn).input_size == (640, 640)


def test_letterbox_pad_colour_order_and_normalisation():
    img = np.zeros((IMAGE_H, IMAGE_W, 3), np.uint8)
    img[..., 0], img[..., 2] = 10, 200  # blue 10, red 200
    blob, ratio, offset = letterbox(img, (64, 64), PREPROCESS["yolox"])
    assert blob.shape == (1, 3, 64, 64) and ratio == pytest.approx(0.32) and offset == (0, 0)
    assert blob[0, 0, 0, 0] == 10 and blob[0, 2, 0, 0] == 200  # BGR, 0..255
    assert np.all(blob[0, :, 32:] == 114)  # padded below
    blob, _, offset = letterbox(img, (64, 64), PREPROCESS["ultralytics"])
    assert offset == (0, 16)
    assert blob[0, 0, 20, 0] == pytest.approx(200 / 255) and blob[0, 2, 20, 0] == pytest.approx(10 / 255)
    assert np.allclose(blob[0, :, :16], 114 / 255) and np.allclose(blob[0, :, 48:], 114 / 255)
    blob, _, _ = letterbox(img, (64, 64), PREPROCESS["rtmdet"])
    assert blob[0, 0, 0, 0] == pytest.approx((10 - 103.53) / 57.375)
    assert blob[0, 2, 63, 0] == pytest.approx((114 - 123.675) / 58.395)


def test_the_command_offers_the_layouts_and_presets():
    from slimpose.cli.main import build_parser
    from slimpose.cli.predict import DETECTOR_LAYOUTS
    from slimpose.detection import LAYOUTS

    assert DETECTOR_LAYOUTS == LAYOUTS
    args = build_parser().parse_args(["predict", "x.jpg", "--checkpoint", "m.pth"])
    assert args.det_thr is None and args.det_nms == 0.65 and args.detector_layout == "auto"
    action = next(a for a in build_parser()._subparsers._group_actions[0].choices["predict"]._actions
                  if a.dest == "det_preprocess")
    assert set(action.choices) == {"auto", *PREPROCESS}


def test_nms_and_iou():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=float)
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.5).tolist() == [1, 2]
    assert nms(boxes, np.array([0.5, 0.9, 0.7]), 0.7).tolist() == [1, 2, 0]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_detector_errors(tmp_path, monkeypatch):
    with pytest.raises(SlimposeInputError, match="detector not found: .*nothing.onnx"):
        PersonDetector(tmp_path / "nothing.onnx")
    text = tmp_path / "notes.onnx"
    text.write_text("not a model")
    with pytest.raises(SlimposeInputError, match=r"notes\.onnx: not a valid ONNX model"):
        PersonDetector(text)
    odd = export(Constant(torch.zeros(1, 7)), tmp_path / "odd.onnx", ["out"])
    with pytest.raises(SlimposeInputError, match=r"odd\.onnx: outputs \[\[1, 7\]\] match no known detector layout"):
        PersonDetector(odd)
    yolo = export(encode("yolo", True), tmp_path / "yolo.onnx", ["output0"])
    with pytest.raises(SlimposeInputError, match=r"yolo\.onnx: outputs \[\[1, 6, 10\]\] are not the yolox layout"):
        PersonDetector(yolo, layout="yolox")
    with pytest.raises(SlimposeInputError, match=r"person class 5, but the detector has 2 classes"):
        PersonDetector(yolo, person_class=5)
    odd_n = export(Constant(torch.zeros(1, 50, 7)), tmp_path / "n.onnx", ["out"])
    with pytest.raises(SlimposeInputError, match=r"N is neither the 84 grid cells of YOLOX nor 3x that"):
        PersonDetector(odd_n)
    assert PersonDetector(odd_n, layout="yolov5").detect(image()).shape == (0, 5)
    assert PersonDetector(odd_n, layout="yolox").detect(image()).shape == (0, 5)  # N != grid cells: decoded
    with pytest.raises(SlimposeInputError, match=r"decoded=False \(raw grid offsets\), but the output has 50 rows"):
        PersonDetector(odd_n, layout="yolox", decoded=False).detect(image())
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(SlimposeInputError, match=r"yolo\.onnx: the person detector needs onnxruntime: pip install "
                                                 r"'slimpose\[export\]'"):
        PersonDetector(yolo)


# ---------------------------------------------------------------------------------- predict --detector

REAL = SHARED_REAL / "coco"


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    from slimpose.engine.checkpoint import save_checkpoint
    from slimpose.models import create_model

    tiny = {"depth": 1, "dim": 32, "num_heads": 2}
    torch.manual_seed(1)
    model = create_model("tokenpose_s_v1", input_size=(48, 64), **tiny)
    cfg = {"model": {"name": "tokenpose_s_v1", "overrides": tiny},
           "data": {"input_size": [48, 64], "heatmap_size": [12, 16]}}
    path = tmp_path_factory.mktemp("det") / "m.pth"
    save_checkpoint({"model": model.state_dict(), "model_name": "tokenpose_s_v1", "config": cfg}, path)
    return path


def test_predict_with_a_replay_detector_equals_predict_with_its_boxes(ckpt, tmp_path, capsys):
    """The real detections of image 785 (640 x 425), replayed by an ultralytics-layout model (640 x 640 input:
    ratio 1, centred pad of 107 rows above), give the results of ``--boxes`` with those detections."""
    dets = [d for d in json.loads((REAL / "test_coco_det_AP_H_56.json").read_text()) if d["image_id"] == 785]
    rows = [[x + w / 2, y + h / 2 + 107, w, h, d["score"]] for d in dets for x, y, w, h in [d["bbox"]]]
    replay = export(Constant(torch.tensor(np.array(rows).T[None], dtype=torch.float32)), tmp_path / "replay.onnx",
                    ["output0"], size=(640, 640))
    photo = tmp_path / "000000000785.jpg"
    shutil.copy(REAL / "images" / photo.name, photo)
    import cv2

    found = PersonDetector(replay, score_thr=0.0, iou_thr=1.0).detect(cv2.imread(str(photo)))
    order = np.argsort([-d["score"] for d in dets], kind="stable")
    np.testing.assert_allclose(found[:, :4], np.array([d["bbox"] for d in dets])[order], atol=1e-2)
    np.testing.assert_allclose(found[:, 4], np.array([d["score"] for d in dets])[order], atol=1e-6)

    base = ["predict", str(photo), "--checkpoint", str(ckpt), "--no-vis"]
    assert main(base + ["--detector", str(replay), "--det-thr", "0", "--det-nms", "1.0",
                        "--out", str(tmp_path / "a")]) == 0
    assert "ONE person box" not in capsys.readouterr().err  # boxes found: no whole-image warning
    assert main(base + ["--boxes", str(REAL / "test_coco_det_AP_H_56.json"), "--out", str(tmp_path / "b")]) == 0
    a, b = (sorted(json.loads((tmp_path / o / "results.json").read_text()), key=lambda r: -r["score"])
            for o in "ab")
    assert len(a) == len(b) == len(dets)
    for ra, rb in zip(a, b):
        assert ra["image_id"] == rb["image_id"] == 785
        assert ra["score"] == pytest.approx(rb["score"], abs=2e-6)
        np.testing.assert_allclose(ra["keypoints"], rb["keypoints"], atol=2e-2)
    # the defaults with --detector: --det-thr 0.3 keeps 0.99997 and 0.301, --det-nms 0.65 drops the second
    # (IoU ~0.9 with the first)
    assert main(base + ["--detector", str(replay), "--out", str(tmp_path / "c")]) == 0
    (rc,) = json.loads((tmp_path / "c" / "results.json").read_text())
    np.testing.assert_allclose(rc["keypoints"], b[0]["keypoints"], atol=2e-2)
