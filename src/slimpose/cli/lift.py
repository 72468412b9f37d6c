"""``slimpose lift KEYPOINTS.json --checkpoint LIFTER --out DIR``: one person's 2-D video keypoints -> 3-D.

Reads a COCO keypoint results file (``slimpose predict VIDEO`` writes ``OUT/results.json``, ``image_id`` =
frame index), keeps one track's records when they carry ``track_id`` (``--track ID``, default the track
in the most frames), the best person of each frame, maps COCO-17 to the Human3.6M 17 joints, fills missing
frames and low-score joints by linear interpolation in time, normalises by the image width, lifts with a
lifting checkpoint (``slimpose.lifting.inference.lift_sequence``) and writes ``DIR/poses_3d.npz``
(millimetres, root-relative), ``DIR/lift.mp4`` and ``DIR/lift_XXXX.png``. See docs/lifting.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from slimpose.utils.io import SlimposeInputError

NPZ_NAME, VIDEO_NAME = "poses_3d.npz", "lift.mp4"
_PNG = re.compile(r"^lift_\d{4,}\.png$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("keypoints",
                        help="COCO keypoint results json (slimpose predict VIDEO: OUT/results.json)")
    parser.add_argument("--checkpoint", required=True,
                        help="lifting checkpoint (a training run's, or slimpose convert's)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--track", type=int, default=None, metavar="ID",
                        help="the track_id of the person to lift (default: the track in the most frames; "
                             "records without track_id: the best person of each frame)")
    parser.add_argument("--video", default=None, help="the video the keypoints come from (image size, drawing)")
    parser.add_argument("--image-size", default=None, metavar="W,H", help="image size, when there is no --video")
    parser.add_argument("--kpt-thr", type=float, default=0.3,
                        help="keypoints scoring below this are interpolated from neighbouring frames")
    parser.add_argument("--flip-test", action=argparse.BooleanOptionalAction, default=True,
                        help="average with the mirrored input's prediction (default: on)")
    parser.add_argument("--batch", type=int, default=64, help="clips per forward pass")
    parser.add_argument("--fps", type=float, default=None,
                        help="fps of lift.mp4 (default: the video's, else 25)")
    parser.add_argument("--no-video-out", action="store_true", help="do not write lift.mp4")
    parser.add_argument("--png", type=int, default=4, metavar="N", help="evenly spaced PNG snapshots (0: none)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs in DIR")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")


def existing_outputs(out: Path, video_out: bool, png: int) -> list[Path]:
    """The files of ``out`` a run would replace or mix with: the npz, the mp4, any ``lift_NNNN.png``."""
    if not out.is_dir():
        return []
    found = [out / NPZ_NAME] + ([out / VIDEO_NAME] if video_out else [])
    found = [p for p in found if p.exists()]
    if png > 0:
        found += sorted(p for p in out.iterdir() if _PNG.match(p.name))
    return found


def image_size_of(args: argparse.Namespace) -> tuple[tuple[int, int], float, int]:
    """``((W, H), fps, frame count)`` from ``--video`` and / or ``--image-size`` (they must agree)."""
    from slimpose.lifting.keypoints import parse_image_size, video_size

    given = parse_image_size(args.image_size) if args.image_size else None
    if args.video:
        w, h, fps, count = video_size(args.video)
        if given is not None and given != (w, h):
            raise SlimposeInputError(f"{args.video}: the video is {w}x{h} but --image-size says "
                                     f"{given[0]}x{given[1]}")
        return (w, h), fps, count
    if given is None:
        raise SlimposeInputError(f"{args.keypoints}: give --video VIDEO or --image-size W,H: the keypoints are "
                                 "normalised by the image width, which a results file does not record")
    return given, 0.0, 0


def run(args: argparse.Namespace) -> int:
    from slimpose.lifting.cameras import normalize_screen_coordinates
    from slimpose.lifting.checkpoint import load_lifter
    from slimpose.lifting.data.h36m import write_npz
    from slimpose.lifting.draw import snapshot_paths, write_lift_renders
    from slimpose.lifting.inference import lift_sequence
    from slimpose.lifting.keypoints import prepare_keypoints, read_video_keypoints

    if args.batch < 1:
        raise SlimposeInputError(f"--batch must be >= 1, got {args.batch}")
    if args.png < 0:
        raise SlimposeInputError(f"--png must be >= 0, got {args.png}")
    if args.fps is not None and not args.fps > 0:
        raise SlimposeInputError(f"--fps must be positive, got {args.fps}")
    if str(args.device).startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SlimposeInputError(f"--device {args.device}: CUDA is not available here")
    out = Path(args.out)
    video_out = not args.no_video_out
    if out.exists() and not out.is_dir():
        raise SlimposeInputError(f"--out {out} exists and is not a folder")
    clash = existing_outputs(out, video_out, args.png)
    if clash and not args.overwrite:
        raise SlimposeInputError(f"{clash[0]} exists; pass --overwrite to replace the outputs in {out}")
    (w, h), video_fps, video_frames = image_size_of(args)

    video = read_video_keypoints(args.keypoints, track=args.track)
    if video.track_id is not None:
        how = "--track" if args.track is not None else f"the longest of {len(video.track_frames)} tracks"
        print(f"[slimpose] lift: track {video.track_id} ({how}), in {video.track_frames[video.track_id]} "
              "frames", file=sys.stderr)
    kp = prepare_keypoints(video, args.kpt_thr)
    first, last = int(kp.frame_index[0]), int(kp.frame_index[-1])
    if args.video and video_frames and last >= video_frames:
        raise SlimposeInputError(f"{args.keypoints}: keypoints up to frame {last}, but {args.video} has "
                                 f"{video_frames} frames")

    model, info = load_lifter(args.checkpoint, args.device)
    if (info.config.get("data") or {}).get("dataset") == "3dhp":
        raise SlimposeInputError(f"{args.checkpoint}: this lifter was trained on MPI-INF-3DHP, whose 17 joints are "
                                 "in another order; lift maps COCO to the Human3.6M 17 joints")
    spec = model.input_spec
    if info.num_joints != 17 or getattr(spec, "channels", 2) != 2:
        raise SlimposeInputError(f"{args.checkpoint}: the lifter takes {info.num_joints} joints x "
                                 f"{getattr(spec, 'channels', 2)} values; lift needs the Human3.6M 17 x 2")
    x = normalize_screen_coordinates(kp.keypoints.astype(np.float32), w, h)
    poses = lift_sequence(model, x, flip_test=args.flip_test, batch_size=args.batch, device=args.device,
                          progress=True)
    poses_mm = ((poses - poses[:, :1]) * 1000.0).astype(np.float32)  # metres -> mm, root-relative

    out.mkdir(parents=True, exist_ok=True)
    fps = args.fps or video_fps or 25.0
    written = write_lift_renders(out, kp.keypoints, poses_mm, kp.frame_index, (w, h), video=args.video, fps=fps,
                                 video_out=video_out, png=args.png)
    npz = out / NPZ_NAME  # last: a failed drawing leaves no npz that a rerun would have to --overwrite
    write_npz(npz, {"poses_3d": poses_mm, "keypoints_2d": kp.keypoints.astype(np.float32),
                    "keypoint_scores": kp.scores.astype(np.float32), "interpolated": kp.interpolated,
                    "frame_index": kp.frame_index, "image_size": np.asarray([w, h], dtype=np.int64)})
    if args.overwrite and not video_out and (out / VIDEO_NAME).exists():  # an earlier run's video
        (out / VIDEO_NAME).unlink()
    if args.overwrite and args.png > 0:  # snapshots of an earlier run that this one did not rewrite
        keep = {p.name for p in snapshot_paths(out, kp.frame_index, args.png).values()}
        for p in out.iterdir():
            if _PNG.match(p.name) and p.name not in keep:
                p.unlink()
    num = len(kp.frame_index)
    missing = int((~kp.found).sum())
    filled = int(kp.interpolated.sum())
    parts = [str(npz)] + [str(p) for p in written["video"]]
    if written["png"]:
        parts.append(f"{len(written['png'])} PNG{'s' if len(written['png']) > 1 else ''}")
    print(f"lift: {num} frames ({first}..{last}; {missing} without a detection, {filled} of {num * 17} joints "
          f"interpolated), {info.model_name} F={info.num_frames}{' + flip' if args.flip_test else ''} -> "
          f"{', '.join(parts)}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="slimpose lift")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
