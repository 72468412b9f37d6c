"""``slimpose export CKPT --format onnx|safetensors [--out FILE] [--decode-in-graph] [--quantize int8]``.

ONNX: input ``images`` float32 (B,3,H,W) normalised, dynamic batch; outputs the raw model outputs named by
its head (``heatmaps``, ``output``, ``simcc_x`` + ``simcc_y``), or with ``--decode-in-graph`` ``keypoints``
(B,K,2) in input-crop pixels + ``scores`` (B,K) decoded by the head (argmax + quarter shift for heatmaps:
DARK stays outside the graph; coordinates for regression students; argmax for SimCC). The file is checked
against PyTorch with onnxruntime. safetensors: the weights plus ``model_name`` / ``config`` metadata,
loadable by ``slimpose.load``. A 3-D lifter's checkpoint (MixSTE, KTPFormer) exports with input ``keypoints_2d``
(B,T,J,2) and output ``output`` (B,T,J,3); lifters that choose frames from the input (TPC, TPA, TPMo) are refused
for ONNX (the uniform TPS pruner exports; safetensors works for all).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="slimpose .pth checkpoint (or .safetensors export)")
    parser.add_argument("--format", choices=("onnx", "safetensors"), default="onnx")
    parser.add_argument("--out", default=None,
                        help="output file (default: the checkpoint name, new extension)")
    parser.add_argument("--decode-in-graph", action="store_true",
                        help="ONNX outputs keypoints (B,K,2) in crop pixels + scores (B,K), not raw tensors")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--quantize", choices=("int8",), default=None,
                        help="ONNX: int8 dynamic quantisation of the linear layers (ONNX Runtime; convolutions "
                             "stay fp32; the AP change is in docs/inference.md)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


# ONNX opsets ``--opset`` accepts: from 13 (older opsets lack operators every slimpose head relies on) to the
# most that torch.onnx's TorchScript exporter writes (ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET). Within that range
# the exporter itself decides per model (scaled-dot-product attention needs 14, so a transformer is refused
# at 13: its "not supported" error becomes a SlimposeInputError naming the checkpoint and the opset)
MIN_OPSET = 13


def opset_range() -> tuple[int, int]:
    """The ``--opset`` values accepted (inclusive)."""
    try:
        from torch.onnx import _constants

        high = int(getattr(_constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))
    except ImportError:
        high = 20
    return MIN_OPSET, high


def run(args: argparse.Namespace) -> int:
    import torch

    from slimpose.export import export_checkpoint
    from slimpose.utils.io import SlimposeInputError

    if args.out and os.path.isdir(args.out):
        raise SlimposeInputError(f"--out {args.out}: an existing folder; give the output file's name")
    low, high = opset_range()
    if args.format == "onnx" and not low <= args.opset <= high:
        raise SlimposeInputError(f"{args.checkpoint}: --opset {args.opset} is not supported (ONNX opsets {low} to "
                                 f"{high}; default 17)")

    try:
        with torch.no_grad():  # not torch.set_grad_enabled(False): the CLI also runs inside other programs
            report = export_checkpoint(args.checkpoint, args.format, args.out, args.decode_in_graph,
                                       opset=args.opset, quantize=args.quantize)
    except torch.onnx.errors.UnsupportedOperatorError as e:  # an operator the model needs is newer
        first = next((line for line in str(e).splitlines() if "opset" in line), str(e).splitlines()[0])
        raise SlimposeInputError(f"{args.checkpoint}: --opset {args.opset} cannot express this model: "
                                 f"{first.strip()}"[:500]) from None
    if args.json:
        print(json.dumps(report))
    else:
        print(f"[slimpose] wrote {report['path']} ({args.format})", file=sys.stderr)
        for name, diff in (report.get("max_abs_diff") or {}).items():
            print(f"  onnxruntime vs PyTorch, max |diff| of {name}: {diff:.3g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="slimpose export")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
