"""``slimpose convert SRC DST --from {tokenpose,distilpose,sdpose,ppt,vitpose,mmpose} --model NAME``.

Renames an official checkpoint (mmcv ``{'state_dict': ...}``, TokenPose ``checkpoint.pth``, raw state dicts,
``module.`` prefixes) into a slimpose model, loads it strictly and prints a report of missing, unexpected
and shape-mismatched keys; exits with status 2 if there is any, unless ``--allow-partial``. ``--dataset K``
splits a raw ViTPose++ checkpoint into the plain ViTPose of data set K.
DST ``.safetensors`` is written with metadata, anything else as a slimpose ``.pth`` checkpoint.
See ``slimpose.convert``.
"""

from __future__ import annotations

import argparse
import json
import sys

from slimpose.convert import SOURCES
from slimpose.utils.io import SlimposeInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="official checkpoint (read with torch.load(weights_only=True))")
    parser.add_argument("dst", help="output: .pth (slimpose checkpoint) or .safetensors")
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES, help="official code base")
    parser.add_argument("--model", required=True, help="slimpose model name (slimpose.models.MODELS)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=(192, 256))
    parser.add_argument("--num-keypoints", type=int, default=None, help="default: read from the checkpoint")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="model factory keyword, e.g. --set depth=12 (repeatable)")
    parser.add_argument("--key", default=None,
                        help="checkpoint entry holding the weights (e.g. best_state_dict)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="write even with missing/unexpected keys")
    parser.add_argument("--dataset", default=None, metavar="K",
                        help="ViTPose++ raw checkpoint -> the plain ViTPose of data set K (index or name: coco, aic, "
                             "mpii, ap10k, apt36k, wholebody; fc2 + expert K, head K), e.g. --model vitpose_b")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def parse_overrides(items: list[str]) -> dict:
    """``NAME=VALUE`` factory keywords, values read as ``--set model.overrides.NAME=VALUE`` reads them."""
    from slimpose.config.parse import parse_literal

    out = {}
    for item in items:
        if "=" not in item:
            raise SlimposeInputError(f"--set {item!r}: expected NAME=VALUE")
        name, text = item.split("=", 1)
        out[name.strip()] = parse_literal(text.strip())
    return out


def run(args: argparse.Namespace) -> int:
    from slimpose.convert import convert_checkpoint

    try:
        report = convert_checkpoint(
            args.src, args.dst, args.source, args.model, tuple(args.input_size), args.num_keypoints,
            parse_overrides(args.overrides), allow_partial=args.allow_partial, key=args.key,
            dataset=args.dataset,
        )
    except SlimposeInputError as e:
        report = getattr(e, "report", None)
        if report is None:
            raise
        if args.json:
            print(json.dumps(report.to_dict()))
        print(f"slimpose convert: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print(report.format(), file=sys.stderr)
        print(f"[slimpose] wrote {args.dst}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="slimpose convert")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
