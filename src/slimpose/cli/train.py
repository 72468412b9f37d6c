"""``slimpose train CONFIG [--set key.sub=value ...] [--teacher CKPT] [--resume [CKPT]] [--work-dir DIR]``.

CONFIG is a recipe name (``slimpose.config.RECIPES``: heatmap, regression, SimCC models, DistilPose and
SDPose, the 3-D lifters ``mixste_synth3d`` ...) or a ``config.json`` written by an earlier run. A config with a method section (``distill``,
``sdpose``) trains through the distiller; ``--teacher`` gives a DistilPose run its teacher checkpoint.
Multi-GPU / multi-node: ``torchrun --nproc_per_node G -m slimpose.cli.main train CONFIG ...``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from slimpose.config import DEFAULT_RECIPE, RECIPES, TrainConfig
from slimpose.utils.io import SlimposeInputError


def add_config_arguments(parser: argparse.ArgumentParser, default: str | None = DEFAULT_RECIPE) -> None:
    """Arguments shared by ``train``, ``distill`` and ``eval``."""
    parser.add_argument(
        "config", nargs="?" if default else None, default=default,
        help=f"recipe name ({', '.join(sorted(RECIPES))}) or a config.json file"
             + (f" (default: {default})" if default else ""),
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config field, e.g. --set optim.lr=0.01 --set data.input_size=96,128 "
             "--set model.overrides.depth=2 --set distill.cs=0 (repeatable)",
    )
    parser.add_argument("--work-dir", default=None, help="output folder (sets work_dir)")
    parser.add_argument("--data-root", default=None, help="data set root folder (sets data.data_root)")
    parser.add_argument("--device", default=None, help="auto | cpu | cuda (sets device)")


def teacher_section(cfg: TrainConfig):
    """The method section that takes a teacher checkpoint (``distill``, ``multikd``, ``knowledge_token``), or None."""
    return next((s for s in (getattr(cfg, k, None) for k in ("distill", "multikd", "knowledge_token"))
                 if s is not None), None)


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Recipe / file, then the shortcuts, then every ``--set`` (in order), then ``--teacher``; validated."""
    from slimpose.config import apply_overrides, get_config

    cfg = get_config(args.config)
    sets = []
    if args.work_dir is not None:
        sets.append(f"work_dir={args.work_dir}")
    if args.data_root is not None:
        sets.append(f"data.data_root={args.data_root}")
    if getattr(args, "device", None) is not None:
        sets.append(f"device={args.device}")
    cfg = apply_overrides(cfg, sets + list(args.overrides))
    teacher = getattr(args, "teacher", None)
    if teacher:
        section = teacher_section(cfg)
        if section is None:
            raise SlimposeInputError(f"--teacher: {args.config} has no distill or multikd section nor a "
                                     "knowledge_token one (a teacher is for DistilPose, Multi-KD and knowledge-token "
                                     "runs)")
        section.teacher_checkpoint = str(Path(teacher).expanduser().resolve())
    return cfg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    add_run_arguments(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--teacher", default=None, help="teacher checkpoint (.pth) of a DistilPose or Multi-KD config")
    parser.add_argument(
        "--resume", nargs="?", const="auto", default=None, metavar="CKPT",
        help="continue from WORK_DIR/last.pth (or from CKPT)",
    )
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in a work dir that holds an earlier run (its last.pth, best.pth, "
                             "log.jsonl, tb/, metrics_*.json, results_*.json and predictions_*.npz are deleted "
                             "once the new run is built); without it such a work dir is refused unless "
                             "--resume continues it")
    parser.add_argument("--print-config", action="store_true", help="print the final config as JSON and exit")


def train(cfg: TrainConfig, args: argparse.Namespace) -> int:
    from slimpose.config import config_to_dict
    from slimpose.training import make_trainer

    if args.print_config:
        print(json.dumps(config_to_dict(cfg), indent=2))
        return 0
    import os

    from slimpose.engine.trainer import check_work_dir

    check_work_dir(cfg.work_dir, args.resume or False, args.overwrite, is_main=os.environ.get("RANK", "0") == "0")
    loop = make_trainer(cfg, resume=args.resume or False, overwrite=args.overwrite)
    try:
        summary = loop.fit()
    finally:
        loop.close()
    if loop.is_main:
        from slimpose.engine.hooks import CheckpointHook

        best = loop.hook(CheckpointHook).state_dict()
        print(json.dumps({"work_dir": str(loop.work_dir), "best": best, **summary}, indent=2))
        sys.stdout.flush()
    return 0


def run(args: argparse.Namespace) -> int:
    return train(build_config(args), args)
