"""Training clips for the lifters, and the sequences of a ``LiftConfig``.

``load_sequences(cfg, split)`` reads the configured data set (synthetic motion or Human3.6M in the VideoPose3D
layout, or MPI-INF-3DHP in P-STMO's) as ``Sequence3D`` records; ``joint_layout(cfg)`` says its 17 joints'
left / right sides and root; ``ClipDataset`` cuts them into fixed-length clips as MixSTE's seq2seq
generator does (clips of ``num_frames`` starting every ``stride`` frames; a sequence shorter than a clip is
edge-padded, VideoPose3D's ``'edge'`` padding) and mirrors a clip with probability 0.5 (2-D x negated, 3-D
x negated, left and right swapped). The mirror decision is a function of ``(seed, epoch, index)`` only, so
a resumed run and every DDP rank see the same clips.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from slimpose.lifting.data.h36m import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT, h36m_subjects, load_videopose3d
from slimpose.lifting.data.mpi_inf_3dhp import (MPI_INF_3DHP_JOINTS_LEFT, MPI_INF_3DHP_JOINTS_RIGHT, MPI_INF_3DHP_ROOT,
                                                load_3dhp_npz)
from slimpose.lifting.data.sequence import Sequence3D
from slimpose.utils.io import SlimposeInputError

MPI_INF_3DHP_FILES = {"train": "data_train_3dhp.npz", "test": "data_test_3dhp.npz"}


@dataclass(frozen=True)
class JointLayout:
    """The joint order of a data set's 17 joints: the mirrored pairs (for flips) and the root."""

    name: str
    left: tuple[int, ...]
    right: tuple[int, ...]
    root: int


H36M_LAYOUT = JointLayout("h36m", tuple(H36M_JOINTS_LEFT), tuple(H36M_JOINTS_RIGHT), 0)
MPI_INF_3DHP_LAYOUT = JointLayout("3dhp", tuple(MPI_INF_3DHP_JOINTS_LEFT), tuple(MPI_INF_3DHP_JOINTS_RIGHT),
                                  MPI_INF_3DHP_ROOT)


def joint_layout(cfg: Any) -> JointLayout:
    """MPI-INF-3DHP's joint order for ``dataset='3dhp'``, else Human3.6M's (synthetic motion uses it too)."""
    return MPI_INF_3DHP_LAYOUT if cfg.data.dataset == "3dhp" else H36M_LAYOUT


def clip_starts(num_frames: int, clip: int, stride: int) -> list[int]:
    """Start frames of the clips of one sequence: ``0, stride, ...`` while a whole clip fits, plus a last clip
    ending at the last frame when the stride leaves frames uncovered; ``[0]`` when the sequence is shorter
    than a clip (it is edge-padded)."""
    if num_frames <= clip:
        return [0]
    starts = list(range(0, num_frames - clip + 1, stride))
    if starts[-1] + clip < num_frames:
        starts.append(num_frames - clip)
    return starts


def take_clip(a: np.ndarray, start: int, clip: int) -> np.ndarray:
    """``a[start:start + clip]`` along axis 0, edge-padded at the end when the sequence is too short."""
    out = a[start:start + clip]
    if len(out) < clip:
        out = np.concatenate([out, np.repeat(out[-1:], clip - len(out), axis=0)], axis=0)
    return out


def centred_clip(a: np.ndarray, t: int, clip: int, centre: int) -> np.ndarray:
    """Frames ``t - centre .. t - centre + clip - 1`` of ``a`` (axis 0), the indices clamped into the sequence
    (edge padding on both sides): frame t at position ``centre``."""
    idx = np.clip(np.arange(t - centre, t - centre + clip), 0, len(a) - 1)
    return a[idx]


def mirror(x: np.ndarray, left: Sequence[int] = H36M_JOINTS_LEFT,
           right: Sequence[int] = H36M_JOINTS_RIGHT) -> np.ndarray:
    """(..., J, C) keypoints or poses mirrored: ``slimpose.lifting.losses.flip_keypoints`` on a numpy array."""
    from slimpose.lifting.losses import flip_keypoints

    return flip_keypoints(torch.from_numpy(np.asarray(x)), left, right).numpy()


class ClipDataset(Dataset):
    """Clips ``{"keypoints_2d": (F, J, 2), "poses_3d": (F, J, 3) metres root-relative, "flipped": bool}`` of
    ``sequences``. ``stride`` 0 = ``num_frames``; ``flip_aug``: mirror with probability 0.5 per clip and epoch,
    swapping the ``layout``'s left and right joints. ``centre`` (a seq2frame model's centre position c): one clip
    per ``stride`` frames t centred on t, the sequence edge-padded by c frames before and F - 1 - c after, so
    that every frame is a centre (VideoPose3D's seq2frame generator; the evaluation pads the same way).

    ``history`` L > 0 (an autoregressive lifter: StarPose) adds the L frames before each clip:
    ``"history_2d"`` (L, J, 2), ``"history_3d"`` (L, J, 3) (ground truth; the model predicts them at test time)
    and ``"has_history"`` (False for a clip starting at frame 0), edge-padded at the sequence start as
    :func:`history_window` pads at inference. ``intrinsics``: also ``"intrinsics"`` (4,) ``[fx, fy, cx, cy]``
    normalised (``Camera.intrinsic``; ``cx`` negated for a mirrored clip), for a reprojection term; every
    sequence must have a camera."""

    def __init__(self, sequences: Sequence[Sequence3D], num_frames: int, stride: int = 0, flip_aug: bool = True,
                 seed: int = 0, subset: int = 0, layout: JointLayout = H36M_LAYOUT,
                 centre: int | None = None, history: int = 0, intrinsics: bool = False) -> None:
        if num_frames < 1:
            raise ValueError(f"num_frames must be >= 1, got {num_frames}")
        if not sequences:
            raise SlimposeInputError("no training sequences")
        self.sequences = list(sequences)
        self.num_frames = int(num_frames)
        self.stride = int(stride) or self.num_frames
        self.flip_aug = bool(flip_aug)
        self.seed = int(seed)
        self.layout = layout
        self.epoch = 0
        self.centre = centre
        if centre is not None and not 0 <= centre < self.num_frames:
            raise ValueError(f"centre {centre} is not a frame of a {self.num_frames}-frame clip")
        if history < 0 or (history and centre is not None):
            raise ValueError(f"history must be >= 0 and only for seq2seq clips, got {history} (centre {centre})")
        self.history = int(history)
        self.intrinsics = bool(intrinsics)
        if self.intrinsics and any(seq.camera is None for seq in self.sequences):
            bad = next(seq for seq in self.sequences if seq.camera is None)
            raise SlimposeInputError(f"{bad.subject}/{bad.action}: no camera, but the model's training needs intrinsics")
        self.index = [(i, s) for i, seq in enumerate(self.sequences)
                      for s in (range(0, seq.num_frames, self.stride) if centre is not None
                                else clip_starts(seq.num_frames, self.num_frames, self.stride))]
        if subset > 0:
            self.index = self.index[:subset]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.index)

    def flipped(self, idx: int) -> bool:
        if not self.flip_aug:
            return False
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(self.epoch, idx)))
        return bool(rng.random() < 0.5)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        i, start = self.index[idx]
        seq = self.sequences[i]
        if self.centre is None:
            kps = take_clip(seq.keypoints_2d, start, self.num_frames)
            pose = take_clip(seq.poses_3d, start, self.num_frames)
        else:
            kps, pose = (centred_clip(a, start, self.num_frames, self.centre) for a in (seq.keypoints_2d, seq.poses_3d))
        flip = self.flipped(idx)
        arrays = {"keypoints_2d": kps, "poses_3d": pose}
        if self.history:
            arrays["history_2d"], arrays["history_3d"] = history_window(seq.keypoints_2d, seq.poses_3d, start,
                                                                        self.history)
        if flip:
            arrays = {k: mirror(a, self.layout.left, self.layout.right) for k, a in arrays.items()}
        out = {k: torch.from_numpy(np.ascontiguousarray(a, np.float32)) for k, a in arrays.items()}
        out["flipped"] = torch.tensor(flip)
        if self.history:
            out["has_history"] = torch.tensor(start > 0)
        if self.intrinsics:
            k = np.asarray(seq.camera.intrinsic[:4], np.float32).copy()
            k[2] = -k[2] if flip else k[2]
            out["intrinsics"] = torch.from_numpy(k)
        return out


def history_window(keypoints_2d: np.ndarray, poses_3d: np.ndarray, start: int,
                   length: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``start - length .. start - 1`` of both arrays, the indices clamped to ``[0, start - 1]`` (the
    first frame repeated when fewer than ``length`` frames precede ``start``; frame 0 for ``start == 0``, a
    clip without history)."""
    idx = np.clip(np.arange(start - length, start), 0, max(start - 1, 0))
    return keypoints_2d[idx], poses_3d[idx]


# ------------------------------------------------------------------------------------------ sequences


def prepare_synth3d(cfg: Any) -> None:
    """Write the synthetic motion of ``cfg.data`` into ``data_root`` unless it is there (``dataset='synth3d'``)."""
    d = cfg.data
    if d.dataset != "synth3d":
        return
    from slimpose.lifting.data.synth3d import SYNTH3D_FILES, generate_synth3d

    root = Path(d.data_root)
    if all((root / name).is_file() for name in SYNTH3D_FILES.values()):
        return
    print(f"[slimpose] writing synthetic motion to {root} ({d.synthetic_sequences} sequences of "
          f"{d.synthetic_frames} frames, seed {d.synthetic_seed})", file=sys.stderr)
    generate_synth3d(root, d.synthetic_sequences, d.synthetic_frames, d.synthetic_seed, progress=True)


def camera_file(cfg: Any) -> Path:
    """The camera JSON of ``cfg.data``: ``cameras`` if set, else ``data_root/h36m_cameras.json`` (synthetic motion
    writes its own there; for Human3.6M it is the user's copy of VideoPose3D's tables, docs/datasets.md)."""
    d = cfg.data
    path = Path(d.cameras) if d.cameras else Path(d.data_root) / "h36m_cameras.json"
    if not path.is_file():
        raise SlimposeInputError(f"{path}: no camera file (Human3.6M: write VideoPose3D's camera tables there as "
                                 "JSON, see docs/datasets.md 'Human3.6M', or set data.cameras=FILE)")
    return path


def load_sequences(cfg: Any, split: str) -> list[Sequence3D]:
    """The ``'train'`` or ``'test'`` sequences of ``cfg.data`` (one per subject, action and camera)."""
    from slimpose.lifting.cameras import load_h36m_cameras

    d = cfg.data
    root = Path(d.data_root)
    given = d.train_subjects if split == "train" else d.test_subjects
    if d.dataset == "3dhp":
        return _load_3dhp(root / MPI_INF_3DHP_FILES[split], split, given, d.val_subset)
    path_3d, path_2d = root / "data_3d_h36m.npz", root / f"data_2d_h36m_{d.keypoints}.npz"
    for p in (path_3d, path_2d):
        if not p.is_file():
            hint = (" (slimpose data synth3d writes it)" if d.dataset == "synth3d" else
                    " (Human3.6M in the VideoPose3D layout: see docs/datasets.md)")
            raise SlimposeInputError(f"{p}: not found{hint}")
    subjects = list(given) if given else None
    seqs = load_videopose3d(path_3d, path_2d, load_h36m_cameras(camera_file(cfg)), subjects=subjects,
                            split=None if subjects else split, actions=list(d.actions) or None)
    if split != "train" and d.val_subset > 0:
        seqs = seqs[:d.val_subset]
    if not seqs:
        raise SlimposeInputError(f"{path_3d}: no {split} sequences (subjects {subjects or h36m_subjects(split)})")
    return seqs


def _load_3dhp(path: Path, split: str, subjects: Sequence[str], val_subset: int) -> list[Sequence3D]:
    """P-STMO's MPI-INF-3DHP file of ``split`` (all its subjects, or ``subjects``: S1-S8 / TS1-TS6)."""
    if not path.is_file():
        raise SlimposeInputError(f"{path}: not found (MPI-INF-3DHP as P-STMO prepares it: see docs/datasets.md)")
    seqs = load_3dhp_npz(path, split=split)
    if subjects:
        seqs = [s for s in seqs if s.subject in set(subjects)]
    if split != "train" and val_subset > 0:
        seqs = seqs[:val_subset]
    if not seqs:
        raise SlimposeInputError(f"{path}: no {split} sequences{f' of {list(subjects)}' if subjects else ''}")
    return seqs


__all__ = ["ClipDataset", "H36M_LAYOUT", "JointLayout", "MPI_INF_3DHP_LAYOUT", "camera_file", "centred_clip",
           "clip_starts", "history_window", "joint_layout", "load_sequences", "mirror", "prepare_synth3d", "take_clip"]
