"""Drawing poses on images and the plots of the demo report.

``draw_poses`` follows the mmpose 0.x ``imshow_keypoints`` look: one line per skeleton link in the
link's colour of the ``DatasetInfo`` (RGB there, converted to OpenCV's BGR here), a filled circle per
keypoint in its keypoint colour; keypoints whose score is below ``kpt_thr`` are hidden, and so is every
link touching one. ``plot_ap_vs_gflops`` draws AP against GFLOPs, ``plot_bar_panels`` one bar chart per series over
the same rows (matplotlib, Agg backend).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from slimpose.utils.io import SlimposeInputError, atomic_path

__all__ = ["draw_poses", "draw_boxes", "draw_track_ids", "save_image", "plot_ap_vs_gflops"]


def _bgr(rgb: Sequence[int]) -> tuple[int, int, int]:
    return int(rgb[2]), int(rgb[1]), int(rgb[0])


def _auto_sizes(image: np.ndarray) -> tuple[int, int]:
    """Circle radius and line thickness scaled to the image size (4 / 2 px at 640 px)."""
    side = max(image.shape[0], image.shape[1])
    radius = max(2, int(round(side / 160)))
    return radius, max(1, int(round(side / 320)))


def draw_poses(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray | None,
    info: Any,
    kpt_thr: float = 0.3,
    radius: int | None = None,
    thickness: int | None = None,
    copy: bool = True,
) -> np.ndarray:
    """Draw N poses on a BGR uint8 image; returns the drawn image (a copy unless ``copy=False``).

    Args:
        keypoints: (N, K, 2) or (K, 2) image pixels.
        scores: (N, K) or (K,) keypoint scores; ``None`` draws every keypoint.
        info: a ``DatasetInfo`` (``skeleton``, ``skeleton_colors``, ``keypoint_colors``, RGB).
        kpt_thr: keypoints with a score below it (and links touching them) are not drawn.
    """
    img = np.asarray(image_bgr)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"draw_poses: expected a BGR image (H, W, 3), got shape {img.shape}")
    if img.dtype != np.uint8:
        img = np.clip(img, 0, 255).astype(np.uint8)
    out = img.copy() if copy else img
    kpts = np.asarray(keypoints, dtype=np.float64)
    if kpts.ndim == 2:
        kpts = kpts[None]
    if kpts.ndim != 3 or kpts.shape[-1] != 2:
        raise ValueError(f"draw_poses: keypoints must be (N, K, 2), got {kpts.shape}")
    n, k = kpts.shape[:2]
    sc = np.ones((n, k)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(n, k)
    if k != len(info.keypoint_colors):
        raise ValueError(
            f"draw_poses: {k} keypoints but the DatasetInfo {info.name!r} has {len(info.keypoint_colors)}")
    r_auto, t_auto = _auto_sizes(out)
    r = r_auto if radius is None else radius
    t = t_auto if thickness is None else thickness
    h, w = out.shape[:2]
    for pts, s in zip(kpts, sc):
        shown = (s >= kpt_thr) & np.all(np.isfinite(pts), axis=1)
        shown &= (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
        for (a, b), color in zip(info.skeleton, info.skeleton_colors):
            if shown[a] and shown[b]:
                pa = (int(round(pts[a, 0])), int(round(pts[a, 1])))
                pb = (int(round(pts[b, 0])), int(round(pts[b, 1])))
                cv2.line(out, pa, pb, _bgr(color), t, lineType=cv2.LINE_AA)
        for j in np.flatnonzero(shown):
            c = (int(round(pts[j, 0])), int(round(pts[j, 1])))
            cv2.circle(out, c, r, _bgr(info.keypoint_colors[j]), -1, lineType=cv2.LINE_AA)
    return out


def draw_boxes(image_bgr: np.ndarray, boxes: np.ndarray, color: tuple[int, int, int] = (255, 255, 255),
               thickness: int = 1, copy: bool = True) -> np.ndarray:
    """Draw xywh boxes (N, 4) as rectangles (BGR ``color``)."""
    out = np.asarray(image_bgr).copy() if copy else np.asarray(image_bgr)
    for x, y, bw, bh in np.asarray(boxes, dtype=np.float64).reshape(-1, 4)[:, :4]:
        p1 = (int(round(x)), int(round(y)))
        p2 = (int(round(x + bw)), int(round(y + bh)))
        cv2.rectangle(out, p1, p2, color, thickness)
    return out


def track_color(track_id: int) -> tuple[int, int, int]:
    """A BGR colour per track id (a fixed cycle of 8 distinct colours)."""
    palette = ((0, 200, 255), (255, 128, 0), (0, 255, 0), (255, 0, 255), (0, 128, 255), (255, 255, 0),
               (128, 0, 255), (0, 0, 255))
    return palette[int(track_id) % len(palette)]


def draw_track_ids(image_bgr: np.ndarray, boxes: np.ndarray, track_ids: Sequence[int],
                   copy: bool = True) -> np.ndarray:
    """Draw each xywh box (N, 4+) in its track's colour with ``#id`` above its top-left corner (inside the
    box when there is no room above)."""
    out = np.asarray(image_bgr).copy() if copy else np.asarray(image_bgr)
    _, t = _auto_sizes(out)
    scale = max(0.4, max(out.shape[:2]) / 1280)
    if len(track_ids) == 0:
        return out
    for (x, y, bw, bh), tid in zip(np.asarray(boxes, dtype=np.float64).reshape(len(track_ids), -1)[:, :4],
                                   track_ids):
        color = track_color(tid)
        draw_boxes(out, np.array([[x, y, bw, bh]]), color, t, copy=False)
        p1 = (int(round(x)), int(round(y)))
        text = f"#{int(tid)}"
        (_, text_h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, t)
        y_text = p1[1] - 4 if p1[1] - 4 - text_h >= 0 else p1[1] + text_h + 4  # inside the box at the top
        cv2.putText(out, text, (p1[0] + 2, y_text), cv2.FONT_HERSHEY_SIMPLEX, scale, color, t, cv2.LINE_AA)
    return out


def save_image(path: str | os.PathLike, image_bgr: np.ndarray) -> Path:
    """``cv2.imwrite`` atomically (the extension of ``path`` picks the format)."""
    path = Path(path)
    ext = path.suffix.lower() or ".png"
    ok, buf = cv2.imencode(ext, np.asarray(image_bgr))
    if not ok:
        raise SlimposeInputError(f"{path}: OpenCV cannot encode an image with extension {ext!r}")
    with atomic_path(path) as tmp:
        buf.tofile(str(tmp))
    return path


def plot_ap_vs_gflops(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    title: str = "AP vs GFLOPs",
    ap_key: str = "AP",
    gflops_key: str = "gflops",
    name_key: str = "name",
) -> Path:
    """Scatter plot of ``row[ap_key]`` against ``row[gflops_key]``, each point labelled ``row[name_key]``.

    Rows with a ``group`` key are joined by a line per group (e.g. teacher -> students). Written atomically
    (PNG, or whatever the extension of ``path`` says) with matplotlib's Agg backend.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    pts = []
    for i, row in enumerate(rows):
        try:
            g, ap = float(row[gflops_key]), float(row[ap_key])
        except (KeyError, TypeError, ValueError):
            raise SlimposeInputError(
                f"plot_ap_vs_gflops: row {i} needs numeric {gflops_key!r} and {ap_key!r}: {row}") from None
        pts.append((g, ap, str(row.get(name_key, i)), row.get("group")))
    fig = Figure(figsize=(6.0, 4.5), dpi=120)
    ax = fig.add_subplot(1, 1, 1)
    groups: dict[Any, list[tuple[float, float]]] = {}
    for g, ap, _, grp in pts:
        if grp is not None:
            groups.setdefault(grp, []).append((g, ap))
    for grp, members in groups.items():
        members.sort()
        ax.plot([m[0] for m in members], [m[1] for m in members], "-", alpha=0.5, label=str(grp))
    ax.scatter([p[0] for p in pts], [p[1] for p in pts], zorder=3)
    for g, ap, name, _ in pts:
        ax.annotate(name, (g, ap), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("GFLOPs")
    ax.set_ylabel(ap_key)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if groups:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def plot_bar_panels(
    labels: Sequence[str],
    series: Mapping[str, Sequence[float | None]],
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Horizontal bars of every series over the same ``labels``, one panel per series, side by side.

    For tables whose columns live on different scales (e.g. an ablation's AP here and in the paper);
    ``None`` leaves a row of a panel empty. Written atomically like ``plot_ap_vs_gflops``.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    if not series:
        raise SlimposeInputError("plot_bar_panels: no series to draw")
    for name, values in series.items():
        if len(values) != len(labels):
            raise SlimposeInputError(
                f"plot_bar_panels: series {name!r} has {len(values)} values for {len(labels)} labels")
    fig = Figure(figsize=(3.2 * len(series) + 1.6, 0.35 * len(labels) + 1.4), dpi=120)
    axes = fig.subplots(1, len(series), sharey=True, squeeze=False)[0]
    ys = list(range(len(labels)))
    for ax, (name, values) in zip(axes, series.items()):
        shown = [(y, float(v)) for y, v in zip(ys, values) if v is not None]
        ax.barh([y for y, _ in shown], [v for _, v in shown], color="tab:blue", alpha=0.8)
        for y, v in shown:
            ax.annotate(f"{v:.1f}", (v, y), textcoords="offset points", xytext=(3, -3), fontsize=7)
        ax.set_title(name, fontsize=9)
        ax.margins(x=0.15)  # room for the value labels
        ax.grid(True, axis="x", alpha=0.3)
    axes[0].set_yticks(ys)
    axes[0].set_yticklabels(list(labels), fontsize=8)
    axes[0].invert_yaxis()  # first label on top, as in a table
    if title:
        fig.suptitle(title, fontsize=9)
    return save_figure(fig, path)


def save_figure(fig: Any, path: str | os.PathLike, dpi: float | None = None, close: bool = False) -> Path:
    """Lay out and write ``fig`` atomically in the format of ``path``'s extension (PNG by default); ``close``
    releases it (matplotlib's ``plt.close``)."""
    fig.tight_layout()
    path = Path(path)
    fmt = (path.suffix.lstrip(".") or "png").lower()
    with atomic_path(path) as tmp:
        fig.savefig(str(tmp), format=fmt, dpi=dpi)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    return path

