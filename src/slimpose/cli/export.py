"""``slimpose export CKPT --format onnx|safetensors [--out FILE] [--decode-in-graph]``.

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
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="slimpose .pth checkpoint (or .safetensors export)")
    parser.add_argument("--format", choices=("onnx", "safetensors"), default="onnx")
    parser.add_argument("--out", default=None,
                        help="output file (default: the checkpoint name, new extension)")
    parser.add_argument("--decode-in-graph", action="store_true",
                        help="ONNX outputs keypoints (B,K,2) in crop pixels + scores (B,K), not raw tensors")
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")


def run(args: argparse.Namespace) -> int:
    import torch

    from slimpose.export import export_checkpoint

    with torch.no_grad():  # not torch.set_grad_enabled(False): the CLI also runs inside other programs
        report = export_checkpoint(args.checkpoint, args.format, args.out, args.decode_in_graph, opset=args.opset)
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
