"""``slimpose train CONFIG [--set key.sub=value ...] [--resume [CKPT]] [--work-dir DIR] [--data-root DIR]``.

CONFIG is a recipe name (``slimpose.configs.all_recipes()``: heatmap models and SDPose; DistilPose students
train with ``slimpose distill``) or a ``config.json`` written by an earlier run.
Multi-GPU / multi-node: ``torchrun --nproc_per_node G -m slimpose.cli.main train CONFIG ...``.
"""

from __future__ import annotations

import argparse
import json
import sys

from slimpose.configs import DEFAULT_RECIPE, all_recipes
from slimpose.engine.config import TrainConfig


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by ``train`` and ``eval``."""
    parser.add_argument(
        "config", nargs="?", default=DEFAULT_RECIPE,
        help=f"recipe name ({', '.join(sorted(all_recipes()))}) or a config.json file (default: {DEFAULT_RECIPE})",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=0.01 --set data.input_size=96,128 "
             "--set model.overrides.depth=2 (repeatable)",
    )
    parser.add_argument("--work-dir", default=None, help="output folder (sets work_dir)")
    parser.add_argument("--data-root", default=None, help="data set root folder (sets data.data_root)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (sets device)")


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Recipe / file, then the shortcuts, then every ``--set`` (in order); validated."""
    from slimpose.configs import get_config
    from slimpose.engine.config import apply_overrides

    cfg = get_config(args.config)
    sets = []
    if args.work_dir is not None:
        sets.append(f"work_dir={args.work_dir}")
    if args.data_root is not None:
        sets.append(f"data.data_root={args.data_root}")
    if getattr(args, "device", None) is not None:
        sets.append(f"device={args.device}")
    return apply_overrides(cfg, sets + list(args.overrides))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None, metavar="CKPT",
        help="continue from WORK_DIR/last.pth (or from CKPT)",
    )
    parser.add_argument("--print-config", action="store_true", help="print the final config as JSON and exit")


def run(args: argparse.Namespace) -> int:
    from slimpose.engine.config import config_to_dict
    from slimpose.engine.trainer import Trainer

    cfg = build_config(args)
    if args.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    from slimpose.configs.distill_recipes import DistillConfig
    from slimpose.configs.sdpose_recipes import SDPoseConfig
    from slimpose.utils.io import SlimposeInputError

    resume = args.resume if args.resume else False
    if isinstance(cfg, DistillConfig):
        raise SlimposeInputError(
            f"{args.config} is a DistilPose student config: run `slimpose distill {args.config} --teacher CKPT`"
        )
    if isinstance(cfg, SDPoseConfig):  # multi-cycled transformer + self-distillation (SDPose)
        from slimpose.distillation.sdpose import sdpose_trainer

        trainer = sdpose_trainer(cfg, resume=resume)
    else:
        trainer = Trainer(cfg, resume=resume)
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    if trainer.is_main:
        out = {"work_dir": str(trainer.work_dir), "best_ap": trainer.best_ap, **summary}
        print(json.dumps(out, indent=2))
        sys.stdout.flush()
    return 0
