"""The ``slimpose`` command. Each sub-command lives in its own module of this package."""

from __future__ import annotations

import argparse
import sys

from slimpose.utils.io import SlimposeInputError, unwrap_worker_error

# Explicit list: (name, module). Each module defines ``add_arguments(parser)`` and ``run(args) -> int``.
COMMANDS = [
    ("data", "slimpose.cli.data", "data-set tools (synthetic people)"),
    ("evaluate", "slimpose.cli.evaluate", "score a keypoint results file (COCO AP or MPII PCKh)"),
    ("evaluate3d", "slimpose.cli.evaluate3d", "score 3-D pose predictions (MPJPE, P-MPJPE, MPJVE; 3DHP PCK/AUC)"),
    ("benchmark", "slimpose.cli.benchmark", "params, GFLOPs, latency and memory of a model"),
    ("train", "slimpose.cli.train", "train a model from a config"),
    ("eval", "slimpose.cli.eval", "evaluate a trained checkpoint"),
    ("distill", "slimpose.cli.distill", "DistilPose: distill a heatmap teacher into a regression student"),
    ("demo", "slimpose.cli.demo", "the built-in teacher-to-student demo on synthetic people"),
    ("predict", "slimpose.cli.predict", "run a checkpoint on images, folders, videos or a webcam"),
    ("export", "slimpose.cli.export", "export a checkpoint (ONNX, safetensors)"),
    ("convert", "slimpose.cli.convert", "convert an official checkpoint to slimpose"),
    ("lift", "slimpose.cli.lift", "lift one person's 2-D video keypoints to 3-D (npz, mp4, PNGs)"),
]


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(prog="slimpose", description="Efficient human pose estimation.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except SlimposeInputError as e:
        print(f"slimpose {args.command}: error: {unwrap_worker_error(e)}", file=sys.stderr)
        return 2
    except Exception as e:
        from slimpose.engine.loop import TrainingDivergedError

        if not isinstance(e, TrainingDivergedError):
            raise
        print(f"slimpose {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
