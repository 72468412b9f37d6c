"""``slimpose convert SRC DST --from {tokenpose,distilpose,sdpose,ppt,vitpose,mmpose,hot,mixste,ktpformer} --model NAME``.

Renames an official checkpoint (mmcv ``{'state_dict': ...}``, TokenPose ``checkpoint.pth``, raw state dicts,
``module.`` prefixes) into a slimpose model, loads it strictly and prints a report of missing, unexpected
and shape-mismatched keys; exits with status 2 if there is any, unless ``--allow-partial``. ``--dataset K``
splits a raw ViTPose++ checkpoint into the plain ViTPose of data set K. ``--test-config udp|dark`` says that a
``--from mmpose`` heatmap checkpoint comes from a UDP or DARK config (its keys are the plain config's), so that
it predicts with that config's test conventions (docs/conversion.md); other sources refuse it.
``--from hot`` / ``--from mixste`` read the official 3-D lifting checkpoints (HoT raw state dicts, MixSTE
``run.py`` files) into a lifter of ``slimpose.lifting.models.LIFTERS`` (``--model mixste|hot_mixste|tpc_mixste``,
sizes read from the file, ``--set`` overrides; see ``slimpose.lifting.convert``).
DST ``.safetensors`` is written with metadata, anything else as a slimpose ``.pth`` checkpoint.
See ``slimpose.convert``.
"""

from __future__ import annotations

import argparse
import json
import sys

from slimpose.convert import SOURCES, TEST_CONFIG_SOURCES, TEST_CONFIGS
from slimpose.lifting.convert import LIFTING_SOURCES
from slimpose.utils.io import SlimposeInputError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("src", help="official checkpoint (read with torch.load(weights_only=True))")
    parser.add_argument("dst", help="output: .pth (slimpose checkpoint) or .safetensors")
    parser.add_argument("--from", dest="source", required=True, choices=SOURCES + LIFTING_SOURCES,
                        help="official code base (hot, mixste, ktpformer: 3-D lifting checkpoints)")
    parser.add_argument("--model", required=True,
                        help="slimpose model name (slimpose.models.MODELS; slimpose.lifting.models.LIFTERS with "
                             "--from hot|mixste|ktpformer)")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
                        help="2-D models: input width and height (default 192 256)")
    parser.add_argument("--num-keypoints", type=int, default=None,
                        help="default: read from the checkpoint (lifting models: num_joints)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="model factory keyword, e.g. --set depth=12 (repeatable)")
    parser.add_argument("--key", default=None,
                        help="checkpoint entry holding the weights (e.g. best_state_dict)")
    parser.add_argument("--allow-partial", action="store_true",
                        help="write even with missing/unexpected keys")
    parser.add_argument("--dataset", default=None, metavar="K",
                        help="ViTPose++ raw checkpoint -> the plain ViTPose of data set K (index or name: coco, aic, "
                             "mpii, ap10k, apt36k, wholebody; fc2 + expert K, head K), e.g. --model vitpose_b")
    parser.add_argument("--test-config", default=None, choices=TEST_CONFIGS,
                        help=f"the official test config the file comes from, where its keys cannot tell (--from "
                             f"{', '.join(TEST_CONFIG_SOURCES)}, heatmap models): udp (*_udp configs: UDP crops and "
                             "DARK-UDP decoding, no flip shift), dark (*_dark configs: DARK decoding), default (the "
                             "plain config, as without the option)")
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


def _convert(args: argparse.Namespace):
    """The 2-D converter, or the lifting one for ``--from hot|mixste``; returns the report."""
    overrides = parse_overrides(args.overrides)
    if args.source in LIFTING_SOURCES:
        from slimpose.lifting.convert import convert_lifting_checkpoint

        for flag, value in (("--input-size", args.input_size), ("--dataset", args.dataset),
                            ("--test-config", args.test_config)):
            if value is not None:
                raise SlimposeInputError(f"{flag} is for 2-D models, not --from {args.source} (lifting: "
                                         "--set num_frames=T ...)")
        if args.num_keypoints is not None:
            overrides.setdefault("num_joints", args.num_keypoints)
        return convert_lifting_checkpoint(args.src, args.dst, args.source, args.model, overrides,
                                          allow_partial=args.allow_partial, key=args.key)
    from slimpose import models
    from slimpose.convert import convert_checkpoint

    if args.model not in models.MODELS:
        from slimpose.lifting.models import LIFTERS

        if args.model in LIFTERS:
            raise SlimposeInputError(f"--model {args.model!r} is a 3-D lifting model: convert its official "
                                     f"checkpoint with --from {' or --from '.join(LIFTING_SOURCES)}")
    return convert_checkpoint(
        args.src, args.dst, args.source, args.model, tuple(args.input_size or (192, 256)), args.num_keypoints,
        overrides, allow_partial=args.allow_partial, key=args.key, dataset=args.dataset, test_config=args.test_config,
    )


def check_paths(src: str, dst: str) -> None:
    """The output must not be the input: a SlimposeInputError (always, there is no --overwrite for it)."""
    import os
    from pathlib import Path

    same = Path(src).resolve() == Path(dst).resolve()
    if not same and os.path.exists(src) and os.path.exists(dst):
        same = os.path.samefile(src, dst)
    if same:
        raise SlimposeInputError(f"{dst}: the output is the input checkpoint {src}; write the converted "
                                 "weights to another file")


def run(args: argparse.Namespace) -> int:
    check_paths(args.src, args.dst)
    try:
        report = _convert(args)
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
