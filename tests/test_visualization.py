"""Drawing: limb colours, hidden low-score keypoints, the AP-vs-GFLOPs plot."""

import numpy as np
import pytest

from slimpose.data.metainfo import COCO
from slimpose.utils.io import SlimposeInputError
from slimpose.visualization import draw_poses, plot_ap_vs_gflops, plot_bar_panels, save_image


def _pose():
    kpts = np.zeros((17, 2))
    kpts[:] = [[10, 10]] * 17
    kpts[15] = [20, 80]  # left ankle
    kpts[13] = [20, 40]  # left knee
    kpts[16] = [80, 80]  # right ankle
    kpts[14] = [80, 40]  # right knee
    scores = np.zeros(17)
    scores[[13, 14, 15]] = 0.9
    scores[16] = 0.1  # right ankle hidden
    return kpts, scores


def test_draw_poses_colours_and_threshold():
    img = np.zeros((100, 100, 3), np.uint8)
    kpts, scores = _pose()
    out = draw_poses(img, kpts[None], scores[None], COCO, kpt_thr=0.3, radius=3, thickness=3)
    assert img.sum() == 0  # the input is not modified
    link = COCO.skeleton.index((15, 13))  # left ankle - left knee, green
    r, g, b = COCO.skeleton_colors[link]
    assert tuple(out[60, 20]) == (b, g, r)  # middle of the shown link, BGR
    assert out[60, 80].sum() == 0  # right ankle - right knee: the ankle is below the threshold
    assert out[80, 80].sum() == 0  # hidden keypoint not drawn
    kr, kg, kb = COCO.keypoint_colors[14]
    assert tuple(out[40, 80]) == (kb, kg, kr)  # shown keypoint in its colour
    assert out[10, 10].sum() == 0  # score 0 keypoints (all at 10,10) hidden


def test_draw_poses_bad_shapes():
    img = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError):
        draw_poses(img, np.zeros((1, 5, 2)), np.ones((1, 5)), COCO)
    with pytest.raises(ValueError):
        draw_poses(np.zeros((20, 20)), np.zeros((1, 17, 2)), None, COCO)


def test_save_image_and_plot(tmp_path):
    import cv2

    p = save_image(tmp_path / "a.png", np.full((8, 9, 3), 7, np.uint8))
    assert cv2.imread(str(p)).shape == (8, 9, 3)
    rows = [{"name": "teacher", "gflops": 17.0, "AP": 0.75, "group": "distilpose"},
            {"name": "student", "gflops": 2.4, "AP": 0.71, "group": "distilpose"},
            {"name": "hrnet", "gflops": 7.1, "AP": 0.74}]
    out = plot_ap_vs_gflops(rows, tmp_path / "plot.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cv2.imread(str(out)).shape[0] > 100
    with pytest.raises(SlimposeInputError, match="row 0"):
        plot_ap_vs_gflops([{"name": "x"}], tmp_path / "bad.png")


def test_plot_bar_panels_sizes_with_rows_and_panels(tmp_path):
    import cv2

    labels = ["teacher", "no distill", "all"]
    one = plot_bar_panels(labels, {"ours": [6.8, 3.2, 5.0]}, tmp_path / "one.png")
    two = plot_bar_panels(labels, {"ours": [6.8, 3.2, 5.0], "paper": [72.5, 56.0, None]}, tmp_path / "two.png",
                          title="Table 4")
    h1, w1 = cv2.imread(str(one)).shape[:2]
    h2, w2 = cv2.imread(str(two)).shape[:2]
    assert h1 == h2 and w2 > w1  # one panel per series, side by side
    more = plot_bar_panels(labels * 3, {"ours": [1.0] * 9}, tmp_path / "more.png")
    assert cv2.imread(str(more)).shape[0] > h1  # one bar row per label
    with pytest.raises(SlimposeInputError, match="'paper' has 2 values for 3 labels"):
        plot_bar_panels(labels, {"paper": [1.0, 2.0]}, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
