"""Lifting a whole 2-D keypoint sequence of any length with a fixed-length lifter (``lift_sequence``).

The lifters take clips of exactly ``model.input_spec.num_frames`` (F) frames. A sequence of T frames is cut
into clips as MixSTE's evaluation (``run.py: eval_data_prepare``) cuts it:

* **seq2seq** (the model returns F frames): ``floor(T / F)`` non-overlapping clips ``[kF, (k + 1) F)``, plus,
  when ``T % F != 0``, one final clip of the last F frames ``[T - F, T)``. The frames covered twice take the
  final clip's prediction (it overwrites; no averaging), so every frame's pose comes from exactly one model
  output. A sequence shorter than F is right-padded to F by repeating its last frame, and the padded frames'
  predictions are cut off. (MixSTE scores each clip against its own targets, so its published numbers count
  the overlapping frames twice; this function returns one pose per frame.)
* **seq2frame** (the model returns one frame, the clip's centre ``c = model.center`` or ``(F - 1) // 2``):
  one clip per frame t, frames ``[t - c, t - c + F)``, the sequence padded on both sides by repeating its
  first / last frame (VideoPose3D's edge padding).

With ``flip_test`` every clip's prediction is the mean of the plain and the un-flipped prediction of the
mirrored clip (:func:`slimpose.lifting.losses.flip_test`).

An **autoregressive** lifter (``model.autoregressive``: StarPose) lifts the seq2seq windows in order, one at a
time, each conditioned on the ``model.history`` (L) frames before it: their 2-D keypoints and the 3-D poses
already predicted for them (:func:`slimpose.lifting.data.clips.history_window`: the first frame repeated when
fewer than L frames precede the window; the first window has no history). The flip test mirrors the window
and its history together; ``intrinsics`` (``[fx, fy, cx, cy, ...]`` normalised, ``Camera.intrinsic``) go to the
model for its reprojection guidance (``cx`` negated for the mirrored pass).
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from slimpose.lifting.data.clips import clip_starts, history_window, take_clip
from slimpose.lifting.data.h36m import H36M_JOINTS_LEFT, H36M_JOINTS_RIGHT
from slimpose.lifting.losses import flip_keypoints
from slimpose.lifting.losses import flip_test as _flip_test

__all__ = ["lift_sequence", "seq2seq_window_starts", "model_output_frames"]


def seq2seq_window_starts(num_frames: int, window: int) -> list[int]:
    """First frames of the seq2seq clips of a ``num_frames`` sequence cut into ``window``-frame clips:
    ``0, F, 2F, ...`` and, when F does not divide T, ``T - F`` (``[0]`` when T < F: one right-padded clip).
    The training clips at stride F (``slimpose.lifting.data.clips.clip_starts``)."""
    if num_frames < 1 or window < 1:
        raise ValueError(f"need num_frames >= 1 and window >= 1, got {num_frames}, {window}")
    return clip_starts(num_frames, window, window)


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def model_output_frames(model: nn.Module, device: str | torch.device | None = None) -> int:
    """How many frames ``model`` returns for one clip (one forward pass on a zero clip)."""
    spec = model.input_spec
    device = _device_of(model) if device is None else torch.device(device)
    x = torch.zeros(spec.shape(1), device=device)
    with torch.no_grad():
        return int(model(x).shape[1])


def lift_sequence(
    model: nn.Module,
    keypoints_2d: np.ndarray,
    *,
    flip_test: bool = False,
    batch_size: int = 64,
    left: Sequence[int] = H36M_JOINTS_LEFT,
    right: Sequence[int] = H36M_JOINTS_RIGHT,
    device: str | torch.device | None = None,
    seq2frame: bool | None = None,
    progress: bool = False,
    intrinsics: np.ndarray | Sequence[float] | None = None,
) -> np.ndarray:
    """3-D poses (T, J, 3) float32, as the model predicts them (root-relative, the training data's unit),
    for a (T, J, 2) sequence of normalised screen coordinates, any T >= 1 (see the module docstring).

    ``seq2frame``: ``None`` asks the model (one forward pass: does it return 1 frame or F?). ``device``:
    ``None`` is the model's own. The model runs in eval mode under ``torch.no_grad()``; its training flag
    is restored afterwards. ``progress`` shows a tqdm bar over the batches (on stderr, when it is a tty).
    ``intrinsics``: only for an autoregressive lifter (module docstring).
    """
    spec = model.input_spec
    window, joints = int(spec.num_frames), int(spec.num_joints)
    channels = int(getattr(spec, "channels", 2))
    x = np.asarray(keypoints_2d, dtype=np.float32)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1:] != (joints, channels):
        raise ValueError(f"lift_sequence: keypoints must be (T >= 1, {joints}, {channels}), got {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = int(np.flatnonzero(~np.all(np.isfinite(x), axis=(1, 2)))[0])
        raise ValueError(f"lift_sequence: keypoints contain NaN or infinite values (frame {bad})")
    if batch_size < 1:
        raise ValueError(f"lift_sequence: batch_size must be >= 1, got {batch_size}")
    device = _device_of(model) if device is None else torch.device(device)
    was_training = model.training
    model.eval()
    try:
        if getattr(model, "autoregressive", False):
            return _lift_autoregressive(model, x, flip_test, left, right, device, progress, intrinsics)
        if intrinsics is not None:
            raise ValueError("lift_sequence: intrinsics are only used by an autoregressive lifter")
        if seq2frame is None:
            seq2frame = window > 1 and model_output_frames(model, device) == 1
        num = x.shape[0]
        if seq2frame:
            center = int(getattr(model, "center", (window - 1) // 2))
            padded = np.concatenate([np.repeat(x[:1], center, axis=0), x,
                                     np.repeat(x[-1:], window - 1 - center, axis=0)], axis=0)
            starts = list(range(num))  # clip t = padded[t : t + F], its centre is frame t
        else:
            padded = x if num >= window else take_clip(x, 0, window)
            starts = seq2seq_window_starts(num, window)
        out = np.empty((num, joints, 3), dtype=np.float32)
        batches = range(0, len(starts), batch_size)
        if progress:
            from tqdm import tqdm

            batches = tqdm(batches, desc="lift", unit="batch", dynamic_ncols=True, disable=None, file=sys.stderr)
        with torch.no_grad():
            for b0 in batches:
                chunk = starts[b0:b0 + batch_size]
                clips = torch.from_numpy(np.stack([padded[s:s + window] for s in chunk])).to(device)
                if flip_test:
                    pred = _flip_test(model, clips, left, right)
                else:
                    pred = model(clips)
                pred = pred.float().cpu().numpy()
                expected = 1 if seq2frame else window
                if pred.shape[1:] != (expected, joints, 3):
                    raise ValueError(f"lift_sequence: the model returned {tuple(pred.shape)}, expected "
                                     f"(B, {expected}, {joints}, 3)")
                for s, p in zip(chunk, pred):
                    if seq2frame:
                        out[s] = p[0]
                    else:  # later clips overwrite the frames they share with earlier ones
                        n = min(window, num - s)
                        out[s:s + n] = p[:n]
        return out
    finally:
        model.train(was_training)


def _lift_autoregressive(model: nn.Module, x: np.ndarray, flip: bool, left: Sequence[int], right: Sequence[int],
                         device: torch.device, progress: bool, intrinsics: Any) -> np.ndarray:
    """The windows of ``x`` in order, each with the history of its predicted frames (module docstring)."""
    window, num, length = int(model.input_spec.num_frames), x.shape[0], int(model.history)
    padded = x if num >= window else take_clip(x, 0, window)
    out = np.zeros((max(num, window), x.shape[1], 3), dtype=np.float32)
    k = k_flip = None
    if intrinsics is not None:
        k = torch.as_tensor(np.asarray(intrinsics, np.float32), device=device)
        k_flip = k.clone()
        k_flip[2] = -k_flip[2]
    mirror = lambda a: flip_keypoints(a, left, right)  # noqa: E731
    starts = seq2seq_window_starts(num, window)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, desc="lift", unit="window", dynamic_ncols=True, disable=None, file=sys.stderr)
    with torch.no_grad():
        for s in starts:
            clip = torch.from_numpy(np.ascontiguousarray(padded[s:s + window]))[None].to(device)
            h2 = h3 = None
            if s > 0:
                a2, a3 = history_window(padded, out, s, length)
                h2, h3 = (torch.from_numpy(np.ascontiguousarray(a))[None].to(device) for a in (a2, a3))
            pred = model(clip, h2, h3, intrinsics=k)
            if flip:
                flipped = model(mirror(clip), None if h2 is None else mirror(h2), None if h3 is None else mirror(h3),
                                intrinsics=k_flip)
                pred = (pred + mirror(flipped)) * 0.5
            out[s:s + window] = pred[0].float().cpu().numpy()
    return out[:num]
