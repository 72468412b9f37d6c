"""``slimpose distill CONFIG --teacher CKPT [--set key=value ...]``: knowledge distillation from a teacher.

The same as ``slimpose train`` for a config with a ``distill`` section (DistilPose heatmap-to-regression,
``slimpose.config.recipes.distilpose``) or a ``multikd`` section (SimCC / SimDR Multi-KD and DWPose,
``slimpose.config.recipes.multikd``) or a ``knowledge_token`` section (ViTPose knowledge tokens, both stages:
``slimpose.config.recipes.knowledge_token``), or a JSON file with one. The teacher is rebuilt from its checkpoint (``model_name`` and ``config.model.overrides``
when the file has them, else ``distill.teacher_model`` / ``distill.teacher_overrides``), frozen, and never
saved: the student checkpoint records the teacher's path, sha256 and model name under ``distill``.
"""

from __future__ import annotations

import argparse

from slimpose.cli.train import add_config_arguments, add_run_arguments, build_config, teacher_section, train
from slimpose.utils.io import SlimposeInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, default=None)
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    if teacher_section(cfg) is None:
        raise SlimposeInputError(f"{args.config} has no distill or multikd section nor a knowledge_token one: it is "
                                 "not a distillation config (train it with `slimpose train`)")
    return train(cfg, args)
