"""``slimpose eval CONFIG --checkpoint CKPT [--json] [--set ...]``: validation metrics of a checkpoint.

Writes ``results_eval.json`` (COCO results) and ``metrics_eval.json`` into ``--out-dir`` (default: work_dir).
Runs under ``torchrun`` as well (predictions are gathered across processes). For MPII the results'
``image_id`` is the index of the record in the val json list (one result per record), so
``slimpose evaluate --metric pckh --gt mpii_val.json --results results_eval.json`` scores the file.
"""

from __future__ import annotations

import argparse
import json

from slimpose.cli.train import add_config_arguments, build_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--checkpoint", required=True, help="checkpoint (.pth) to evaluate")
    parser.add_argument("--out-dir", default=None, help="where results/metrics files go (default: work_dir)")
    parser.add_argument("--json", action="store_true", help="print the metrics as JSON")
    parser.add_argument("--per-source", action="store_true",
                        help="score the val split of the main data set and of every data.extra_train source, "
                             "each in its own skeleton and metric (a unified-skeleton model on each data set); "
                             "files get the tag eval_<dataset>")


def run(args: argparse.Namespace) -> int:
    import os

    from slimpose.engine.trainer import evaluate_checkpoint

    from slimpose.training import build_config_model

    cfg = build_config(args)
    if getattr(cfg, "family", None) == "lifting":
        from slimpose.lifting.train import evaluate_lift_checkpoint

        if args.per_source:
            from slimpose.utils.io import SlimposeInputError

            raise SlimposeInputError("--per-source is for multi-data-set 2-D configs, not lifting ones")
        metrics = evaluate_lift_checkpoint(cfg, args.checkpoint, out_dir=args.out_dir)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps(metrics, indent=2)) if args.json else _print(metrics)
        return 0

    def build(c):
        return build_config_model(c, load_pretrained=False)

    cfg, taken = adopt_checkpoint_conventions(cfg, args)  # a converted official checkpoint's test settings
    if taken and int(os.environ.get("RANK", "0")) == 0:
        import sys

        print(f"[slimpose] {args.checkpoint}: official test settings ({', '.join(taken)})", file=sys.stderr)

    if args.per_source:
        from slimpose.engine.builders import source_configs

        per = {label: evaluate_checkpoint(c, args.checkpoint, out_dir=args.out_dir, tag=f"eval_{label}", build=build)
               for label, c in source_configs(cfg)}
        if int(os.environ.get("RANK", "0")) == 0:
            if args.json:
                print(json.dumps(per, indent=2))
            else:
                for label, metrics in per.items():
                    print(f"== {label}")
                    _print(metrics)
        return 0
    metrics = evaluate_checkpoint(cfg, args.checkpoint, out_dir=args.out_dir, build=build)
    if int(os.environ.get("RANK", "0")) != 0:  # torchrun: print once
        return 0
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        _print(metrics)
    return 0


def adopt_checkpoint_conventions(cfg, args: argparse.Namespace):
    """``(cfg, taken)``: ``cfg`` (``build_config(args)``) with the test conventions of ``args.checkpoint``
    (``adopt_test_conventions``, from the checkpoint's metadata alone), and then every ``--set`` of ``args``
    again, so that the user's explicit settings win over the checkpoint's; ``taken``: the resulting settings
    (empty when nothing was taken)."""
    from slimpose.api import adopt_test_conventions, read_metadata
    from slimpose.config import apply_overrides

    if not adopt_test_conventions(cfg, read_metadata(args.checkpoint)):
        return cfg, []
    cfg = apply_overrides(cfg, list(args.overrides))  # --set assignments are absolute: re-applying them is exact
    return cfg, [f"conventions of {cfg.conventions.source}", f"shift_heatmap={cfg.shift_heatmap}",
                 f"dark={cfg.dark}", f"data.udp={cfg.data.udp}"]


def _print(metrics: dict) -> None:
    """The COCO stats table for AP metrics, else one line per metric."""
    if "AP" in metrics:
        from slimpose.evaluation.coco import stats_table

        print(stats_table(metrics))
    else:
        for k, v in metrics.items():
            print(f"{k:>20}: {v:.4f}")
