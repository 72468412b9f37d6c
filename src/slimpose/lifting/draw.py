"""Drawing lifted poses: the video frame with its 2-D skeleton on the left, the 3-D skeleton on the right.

Conventions:

* **Skeleton and colours**: the Human3.6M 17 joints, one link per joint to its parent (``H36M_PARENTS``);
  left joints and their links green, right ones orange, the centre line blue, the colours of the COCO
  skeleton in ``slimpose.data.metainfo`` (so ``predict``'s overlays and these agree). The 2-D skeleton is
  drawn with :func:`slimpose.visualization.draw_poses`.
* **3-D view**: Human3.6M camera coordinates have x right, y *down*, z forward (away from the camera). For
  display a pose is made root-relative (the root at the origin) and rotated by +90 degrees about x:
  ``(x, y, z) -> (x, z, -y)``, so the plot's z axis points up and its y axis is the depth. The view is
  fixed (``elev=15``, ``azim=-70``: from the camera's side, 20 degrees to the right and 15 degrees above),
  with equal axes ``[-r, r]`` on all three (``r`` fixed for a whole video: 1.1 x the largest root-relative
  coordinate of all its poses).
* **Panels**: the frame (or, without a video, a dark canvas of the image size) is scaled to the output
  height (the frame's height clipped to 360 .. 720 px, made even) and the 3-D panel is a square of that
  height.
* **Files**: the mp4 (OpenCV ``mp4v``, as ``slimpose predict`` writes) goes to ``.lift.partial.mp4`` and is
  renamed when complete; PNGs are written atomically (``save_image``).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from slimpose.lifting.data.h36m import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, H36M_PARENTS
from slimpose.utils.io import SlimposeInputError

__all__ = ["H36M_DRAW_INFO", "to_display", "view_radius", "draw_skeleton_3d", "LiftRenderer", "render_frame",
           "snapshot_positions", "snapshot_paths", "write_lift_renders"]

_BLUE, _GREEN, _ORANGE = (51, 153, 255), (0, 255, 0), (255, 128, 0)  # RGB, as slimpose.data.metainfo
BLANK_BGR = (32, 32, 32)
ELEV, AZIM = 15.0, -70.0


def _side_colors(left: Sequence[int], right: Sequence[int], n: int) -> tuple[tuple[int, int, int], ...]:
    return tuple(_GREEN if j in left else _ORANGE if j in right else _BLUE for j in range(n))


@dataclass(frozen=True)
class _DrawInfo:
    """What :func:`slimpose.visualization.draw_poses` reads of a ``DatasetInfo``."""

    name: str
    skeleton: tuple[tuple[int, int], ...]
    skeleton_colors: tuple[tuple[int, int, int], ...]
    keypoint_colors: tuple[tuple[int, int, int], ...]


def _draw_info(parents: Sequence[int], left: Sequence[int], right: Sequence[int]) -> _DrawInfo:
    colors = _side_colors(left, right, len(parents))
    links = tuple((j, p) for j, p in enumerate(parents) if p >= 0)
    return _DrawInfo("h36m", links, tuple(colors[j] for j, _ in links), colors)


#: The H36M-17 skeleton for ``draw_poses`` (links child -> parent, colours by side).
H36M_DRAW_INFO = _draw_info(H36M_PARENTS, H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT)


def to_display(pose: np.ndarray, root: int = 0) -> np.ndarray:
    """(..., J, 3) camera-frame poses -> root-relative display coordinates ``(x, z, -y)`` (z up)."""
    p = np.asarray(pose, dtype=np.float64)
    p = p - p[..., root:root + 1, :]
    return np.stack([p[..., 0], p[..., 2], -p[..., 1]], axis=-1)


def view_radius(poses: np.ndarray, root: int = 0) -> float:
    """1.1 x the largest root-relative coordinate of ``poses`` (..., J, 3): one axis range for a video."""
    p = np.asarray(poses, dtype=np.float64)
    p = p - p[..., root:root + 1, :]
    r = float(np.max(np.abs(p))) if p.size else 0.0
    return max(1.1 * r, 1e-6) if np.isfinite(r) else 1.0


def draw_skeleton_3d(ax: Any, pose: np.ndarray, parents: Sequence[int] = H36M_PARENTS,
                     left: Sequence[int] = H36M_JOINTS_LEFT, right: Sequence[int] = H36M_JOINTS_RIGHT,
                     radius: float | None = None, lines: list[Any] | None = None) -> list[Any]:
    """Draw a (J, 3) camera-frame pose on a matplotlib 3-D axis (display conventions of the module docstring);
    returns the link lines. Given ``lines`` from an earlier call, only their data is updated (fast)."""
    d = to_display(pose)
    links = [(j, p) for j, p in enumerate(parents) if p >= 0]
    if lines is not None:
        for line, (j, p) in zip(lines, links):
            line.set_data_3d(d[[j, p], 0], d[[j, p], 1], d[[j, p], 2])
        return lines
    r = view_radius(pose) if radius is None else float(radius)
    colors = _side_colors(left, right, len(parents))
    out = []
    for j, p in links:
        rgb = tuple(c / 255.0 for c in colors[j])
        (line,) = ax.plot(d[[j, p], 0], d[[j, p], 1], d[[j, p], 2], color=rgb, linewidth=2.5)
        out.append(line)
    ax.view_init(elev=ELEV, azim=AZIM)
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_zlim(-r, r)
    ax.set_box_aspect((1, 1, 1), zoom=1.15)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.set_zticklabels([])
    return out


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


class LiftRenderer:
    """Renders frames of one video (fixed image size, 3-D radius and output height); keeps one matplotlib
    figure and updates its lines from frame to frame."""

    def __init__(self, image_size: tuple[int, int], radius: float, height: int | None = None) -> None:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        w, h = int(image_size[0]), int(image_size[1])
        if w < 1 or h < 1:
            raise ValueError(f"LiftRenderer: bad image size {image_size}")
        self.image_size = (w, h)
        self.height = _even(min(max(h, 360), 720) if height is None else height)
        self.scale = self.height / h
        self.frame_width = _even(w * self.scale)
        self.radius = float(radius)
        dpi = 100.0
        self.fig = Figure(figsize=(self.height / dpi, self.height / dpi), dpi=dpi)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot(1, 1, 1, projection="3d")
        self.fig.subplots_adjust(left=0, right=1, bottom=0, top=1)
        self.lines: list[Any] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` of a rendered frame."""
        return self.frame_width + self.height, self.height

    def panel_3d(self, pose_3d: np.ndarray) -> np.ndarray:
        """The 3-D panel (height x height BGR) of a (J, 3) pose."""
        import cv2

        self.lines = draw_skeleton_3d(self.ax, pose_3d, radius=self.radius, lines=self.lines)
        self.canvas.draw()
        rgba = np.asarray(self.canvas.buffer_rgba())
        bgr = cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGR)
        if bgr.shape[:2] != (self.height, self.height):
            bgr = cv2.resize(bgr, (self.height, self.height), interpolation=cv2.INTER_AREA)
        return bgr

    def render(self, frame_bgr: np.ndarray | None, keypoints_2d_px: np.ndarray,
               pose_3d: np.ndarray) -> np.ndarray:
        """The frame (or a dark canvas) with its (J, 2) pixel skeleton beside the (J, 3) pose: a BGR image."""
        import cv2

        from slimpose.visualization import draw_poses

        if frame_bgr is None:
            frame = np.empty((self.height, self.frame_width, 3), dtype=np.uint8)
            frame[:] = BLANK_BGR
        else:
            frame = cv2.resize(np.asarray(frame_bgr), (self.frame_width, self.height),
                               interpolation=cv2.INTER_AREA)
        sx, sy = self.frame_width / self.image_size[0], self.height / self.image_size[1]
        kpts = np.asarray(keypoints_2d_px, dtype=np.float64) * np.array([sx, sy])
        left = draw_poses(frame, kpts, None, H36M_DRAW_INFO, copy=False)
        return np.concatenate([left, self.panel_3d(pose_3d)], axis=1)


def render_frame(frame_bgr: np.ndarray | None, keypoints_2d_px: np.ndarray, pose_3d: np.ndarray,
                 image_size: tuple[int, int] | None = None, radius: float | None = None) -> np.ndarray:
    """One rendered frame (BGR): ``frame_bgr`` (or, when ``None``, a dark canvas of ``image_size``) with the
    (17, 2) pixel skeleton, beside the (17, 3) pose (radius: this pose's own when ``None``)."""
    if image_size is None:
        if frame_bgr is None:
            raise ValueError("render_frame: give a frame or an image_size")
        image_size = (frame_bgr.shape[1], frame_bgr.shape[0])
    renderer = LiftRenderer(image_size, view_radius(pose_3d) if radius is None else radius)
    return renderer.render(frame_bgr, keypoints_2d_px, pose_3d)


def snapshot_positions(num_frames: int, count: int) -> list[int]:
    """``count`` evenly spaced positions of ``0 .. num_frames - 1`` (first and last included, no repeats)."""
    if count <= 0 or num_frames <= 0:
        return []
    return sorted({int(round(v)) for v in np.linspace(0, num_frames - 1, min(count, num_frames))})


def snapshot_paths(out_dir: str | os.PathLike, frame_index: np.ndarray, count: int) -> dict[int, Path]:
    """position -> ``out_dir/lift_XXXX.png`` (the video frame number, 4 digits or more)."""
    frame_index = np.asarray(frame_index)
    return {t: Path(out_dir) / f"lift_{int(frame_index[t]):04d}.png"
            for t in snapshot_positions(len(frame_index), count)}


def write_lift_renders(out_dir: str | os.PathLike, keypoints_2d_px: np.ndarray, poses_3d: np.ndarray,
                       frame_index: np.ndarray, image_size: tuple[int, int],
                       video: str | os.PathLike | None = None,
                       fps: float = 25.0, video_out: bool = True, png: int = 4,
                       progress: bool = True) -> dict[str, list[Path]]:
    """Render a lifted video: ``out_dir/lift.mp4`` (every frame, unless ``video_out=False``) and ``png``
    snapshots ``out_dir/lift_XXXX.png``. Frame ``t`` is video frame ``frame_index[t]`` (``video`` read
    sequentially; without it, a dark canvas). Returns ``{"video": [...], "png": [...]}``."""
    import cv2

    from slimpose.visualization import save_image

    out_dir = Path(out_dir)
    kpts = np.asarray(keypoints_2d_px, dtype=np.float64)
    poses = np.asarray(poses_3d, dtype=np.float64)
    frame_index = np.asarray(frame_index, dtype=np.int64)
    num = len(frame_index)
    shots = snapshot_paths(out_dir, frame_index, png)
    written: dict[str, list[Path]] = {"video": [], "png": []}
    if num == 0 or (not video_out and not shots):
        return written
    renderer = LiftRenderer(image_size, view_radius(poses))
    cap = None
    if video is not None:
        cap = cv2.VideoCapture(str(video))
        if not cap.isOpened():
            raise SlimposeInputError(f"{video}: OpenCV cannot open this video")
    out_dir.mkdir(parents=True, exist_ok=True)
    final, partial = out_dir / "lift.mp4", out_dir / ".lift.partial.mp4"
    writer = None
    next_frame = 0  # the next frame number the capture returns
    ended = False
    bar = None
    if progress and video_out:
        from tqdm import tqdm

        bar = tqdm(total=num, desc="render", unit="frame", dynamic_ncols=True, disable=None, file=sys.stderr)
    try:
        if video_out:
            writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), renderer.size)
            if not writer.isOpened():
                raise SlimposeInputError(f"{final}: OpenCV cannot write an mp4v video here")
        for t in range(num):
            needed = video_out or t in shots
            frame = None
            if cap is not None and not ended:
                while not ended and next_frame < frame_index[t]:  # frames before this one: skipped
                    ended = not cap.grab()
                    next_frame += 1
                if not ended:
                    if needed:
                        ok, frame = cap.read()
                    else:
                        ok, frame = cap.grab(), None
                    ended = not ok
                    next_frame += 1
                if ended:
                    frame = None
                    print(f"[slimpose] {video}: the video ends before frame {int(frame_index[t])}; the rest is "
                          "drawn on a blank canvas", file=sys.stderr)
            if needed:
                image = renderer.render(frame, kpts[t], poses[t])
                if writer is not None:
                    writer.write(image)
                if t in shots:
                    written["png"].append(save_image(shots[t], image))
            if bar is not None:
                bar.update(1)
    except BaseException:
        if writer is not None:
            writer.release()
            writer = None
        partial.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()
        if cap is not None:
            cap.release()
    if writer is not None:
        writer.release()
        os.replace(partial, final)
        written["video"].append(final)
    return written
