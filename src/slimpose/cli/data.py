"""``slimpose data``: data-set tools. Sub-command ``synth`` writes the synthetic-people data set, ``synth3d``
the synthetic-motion 3-D lifting data (VideoPose3D layout)."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

from slimpose.data.synth import SKELETONS, SYNTH_PRESETS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", required=True)
    p = sub.add_parser("synth", help="write a synthetic-people keypoint data set (COCO, MPII, AI Challenger "
                                     "or CrowdPose skeleton)",
                       description="Write DIR/images/{split}/*.jpg and "
                                   "DIR/annotations/person_keypoints_{split}.json (17 COCO keypoints, "
                                   "visibility from the rendered depth, 3-D joints and cameras), or with "
                                   "--skeleton mpii the same images as DIR/images/*.jpg and "
                                   "DIR/annotations/mpii_{split}.json (the HRNet/MMPose MPII json list: 16 "
                                   "joints, 1-based, center/scale, head boxes; the catalog's 'mpii' layout), "
                                   "or with --skeleton aic / crowdpose the same images under the same names "
                                   "and DIR/annotations/{aic,crowdpose}_{split}.json (COCO format, 14 "
                                   "joints: the COCO limb joints plus head top and neck). "
                                   "The same seed gives byte-identical files.")
    p.add_argument("--out", required=True, help="output folder DIR")
    p.add_argument("--images", type=count, required=True, help="number of images (1e4 is read as 10000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--split", default="train", help="split name, e.g. train or val (default train)")
    p.add_argument("--width", type=int, default=320, help="image width in pixels (default 320)")
    p.add_argument("--height", type=int, default=256, help="image height in pixels (default 256)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (output does not depend on it)")
    p.add_argument("--preset", choices=tuple(SYNTH_PRESETS), default="default",
                   help="default: the benchmark set (1-4 people, occluders, all views); easy: one large person "
                        "mostly facing the camera (CPU-minute demos)")
    p.add_argument("--skeleton", choices=SKELETONS, default="coco",
                   help="coco: COCO 17-keypoint json (default); mpii: MPII 16-joint json list with head "
                        "boxes; aic: AI Challenger 14-joint COCO-format json (annotations/aic_{split}.json); "
                        "crowdpose: CrowdPose 14-joint COCO-format json (annotations/crowdpose_{split}.json)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing split (without it such a split is refused, as is one whose "
                        "images another skeleton's labels describe with another seed, size or count); every "
                        "label file over the split's images is deleted before the first new image is written")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")

    q = sub.add_parser("synth3d", help="write synthetic-motion 3-D lifting data (Human3.6M / VideoPose3D layout)",
                       description="Write DIR/data_3d_h36m.npz (17 joints, world, metres), "
                                   "DIR/data_2d_h36m_gt.npz (noise-free projections), "
                                   "DIR/data_2d_h36m_synth_noisy.npz (detector-like noise, dropped joints), "
                                   "DIR/h36m_cameras.json (four cameras per subject) and DIR/synth3d_meta.json: "
                                   "walking, turning, reaching, sitting and random motion of the synthetic body, "
                                   "subjects S1, S5-S8 (train) and S9, S11 (test). "
                                   "The same seed gives byte-identical files.")
    q.add_argument("--out", required=True, help="output folder DIR")
    q.add_argument("--sequences", type=int, required=True, help="number of sequences (each seen by 4 cameras)")
    q.add_argument("--frames", type=int, default=243, help="frames per sequence at 50 fps (default 243)")
    q.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    q.add_argument("--overwrite", action="store_true", help="replace existing synth3d files in DIR")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")


def count(text: str) -> int:
    """An image count: an integer, also in float notation (``1e4``)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or not value.is_integer():
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}")
    return int(value)


def _run_synth3d(args: argparse.Namespace) -> int:
    from slimpose.lifting.data.synth3d import generate_synth3d

    start = time.perf_counter()
    paths = generate_synth3d(args.out, args.sequences, args.frames, args.seed, overwrite=args.overwrite,
                             progress=not args.no_progress)
    seconds = time.perf_counter() - start
    names = ", ".join(p.name for p in paths.values())
    print(f"wrote {args.sequences} sequences x {args.frames} frames x 4 cameras to {args.out} ({names}) "
          f"in {seconds:.1f} s")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.data_command == "synth":
        from slimpose.data.synth import (checked_config, conflicting_labels, generate_synthetic_dataset,
                                         split_label_paths, synth_preset)
        from slimpose.utils.io import SlimposeInputError

        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise SlimposeInputError(f"--out {args.out}: an existing file, not a folder")
        config = synth_preset(args.preset)
        checked_config(args.out, args.images, args.seed, args.split, (args.width, args.height), config)
        if args.overwrite:
            # every label file over these images goes before the first new image is written
            for labels in split_label_paths(args.out, args.split, args.skeleton):
                labels.unlink(missing_ok=True)
        else:
            conflicts = conflicting_labels(args.out, args.split, args.skeleton, args.images, args.seed,
                                           (args.width, args.height))
            if conflicts:
                listed = "; ".join(f"{path} exists ({why})" for path, why in conflicts)
                raise SlimposeInputError(f"{listed}: split {args.split!r} of {args.out} is already written; "
                                         "pass --overwrite to replace it, or choose another --out / --split")
        start = time.perf_counter()
        path = generate_synthetic_dataset(args.out, args.images, args.seed, split=args.split,
                                          image_size=(args.width, args.height), workers=args.workers,
                                          progress=not args.no_progress, config=config,
                                          skeleton=args.skeleton)
        seconds = time.perf_counter() - start
        print(f"wrote {args.images} images and {path} in {seconds:.1f} s "
              f"({60.0 * args.images / max(seconds, 1e-9):.0f} images/min)")
        return 0
    if args.data_command == "synth3d":
        return _run_synth3d(args)
    raise ValueError(f"unknown data command {args.data_command!r}")
