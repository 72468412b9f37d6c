"""``Sequence3D``: one video of one camera, as every lifting loader returns it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from slimpose.lifting.cameras import Camera

__all__ = ["Sequence3D"]


@dataclass
class Sequence3D:
    """A 2-D keypoint sequence and its 3-D poses, ready for a lifter (VideoPose3D ``fetch`` output, one
    ``(subject, action, camera)`` per record).

    * ``keypoints_2d`` ``(T, J, 2)`` float32, normalised screen coordinates
      (``normalize_screen_coordinates(pixels, w, h)`` with ``image_size = (w, h)``);
    * ``poses_3d`` ``(T, J, 3)`` float32, camera frame, metres, **root-relative with the root joint set to 0**
      (VideoPose3D keeps the trajectory in joint 0 of ``positions_3d`` and zeroes it for evaluation; here it
      is ``root_trajectory``);
    * ``root_trajectory`` ``(T, 3)`` float32, the root joint in the camera frame, metres;
    * ``valid`` ``(T,)`` bool: frames to evaluate (MPI-INF-3DHP test sets), ``None`` = all.
    """

    subject: str
    action: str
    camera_index: int | None
    keypoints_2d: np.ndarray
    poses_3d: np.ndarray
    root_trajectory: np.ndarray
    image_size: tuple[int, int]
    camera: Camera | None = None
    root_joint: int = 0
    fps: float | None = None
    valid: np.ndarray | None = None

    def __post_init__(self) -> None:
        t, j = self.poses_3d.shape[:2]
        if self.poses_3d.shape != (t, j, 3) or self.keypoints_2d.shape != (t, j, 2):
            raise ValueError(f"Sequence3D {self.subject}/{self.action}: keypoints_2d {self.keypoints_2d.shape} "
                             f"and poses_3d {self.poses_3d.shape} must be (T, J, 2) and (T, J, 3)")
        if self.root_trajectory.shape != (t, 3):
            raise ValueError(f"Sequence3D {self.subject}/{self.action}: root_trajectory must be ({t}, 3)")
        if self.valid is not None and self.valid.shape != (t,):
            raise ValueError(f"Sequence3D {self.subject}/{self.action}: valid must be ({t},)")

    @property
    def num_frames(self) -> int:
        return int(self.poses_3d.shape[0])

    @property
    def num_joints(self) -> int:
        return int(self.poses_3d.shape[1])

    def absolute_poses_3d(self) -> np.ndarray:
        """Camera-frame poses with the trajectory added back (``poses_3d + root_trajectory``)."""
        return self.poses_3d + self.root_trajectory[:, None, :]
