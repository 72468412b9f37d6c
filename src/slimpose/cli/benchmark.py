"""``slimpose benchmark MODEL``: params, GFLOPs (conv+linear MACs, and with attention), latency, memory.

See ``slimpose.engine.complexity`` for what each number counts.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see slimpose.models.MODELS)")
    parser.add_argument("--batch", type=int, default=32, help="large batch for latency/throughput")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--input-size", type=int, nargs=2, metavar=("W", "H"), default=None,
        help="input width and height (default: the factory's, 192 256)",
    )
    parser.add_argument("--num-keypoints", type=int, default=17)
    parser.add_argument("--no-timing", action="store_true", help="counts only; latency keys are null")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up forwards before timing")
    parser.add_argument("--repeats", type=int, default=10, help="timed forwards at batch 1")
    parser.add_argument("--repeats-large", type=int, default=3, help="timed forwards at the large batch")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object")
    parser.add_argument("--onnxruntime", action="store_true",
                        help="also time the ONNX export with onnxruntime (CPU)")


def _fmt(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def run(args: argparse.Namespace) -> int:
    from slimpose.engine.complexity import benchmark_model
    from slimpose.models import create_model
    from slimpose.utils.io import SlimposeInputError

    if args.batch < 1:
        raise SlimposeInputError(f"--batch must be >= 1, got {args.batch}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SlimposeInputError("--device cuda given but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kwargs = {"num_keypoints": args.num_keypoints}
    if args.input_size is not None:
        kwargs["input_size"] = tuple(args.input_size)
    model = create_model(args.model, **kwargs)
    size = tuple(model.input_spec.size)
    result = benchmark_model(
        model,
        device=args.device,
        batch=args.batch,
        timing=not args.no_timing,
        warmup=args.warmup,
        repeats=args.repeats,
        repeats_large=args.repeats_large,
    )
    result = {"model": args.model, "head": model.head_class.__name__, "threads": torch.get_num_threads(),
              **result}
    if args.onnxruntime and not args.no_timing:
        from slimpose.export import onnxruntime_latency

        ort = onnxruntime_latency(model, batch=1, repeats=args.repeats, warmup=args.warmup, threads=args.threads)
        result["ort_latency_ms_b1"] = ort["ort_latency_ms"]
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
        return 0
    b = args.batch
    print(f"{args.model} ({result['head']}) @ {size[0]}x{size[1]} (w x h), {args.device}, "
          f"{result['threads']} threads")
    r = result
    print(f"  params                {r['params'] / 1e6:.3f} M  "
          f"(trainable {r['params_trainable'] / 1e6:.3f} M, frozen {r['params_frozen']})")
    print(f"  GFLOPs (conv+linear)  {r['gflops']:.3f}  [conv {r['conv']:.3f}, linear {r['linear']:.3f}]"
          "  (multiply-accumulates)")
    print(f"  GFLOPs with attention {r['gflops_with_attention']:.3f}  [attention {r['attention']:.3f}]")
    print(f"  latency b1            {_fmt(result['latency_ms_b1'], '.2f')} ms")
    if "ort_latency_ms_b1" in result:
        print(f"  onnxruntime b1        {result['ort_latency_ms_b1']:.2f} ms")
    print(f"  latency b{b:<13d}{_fmt(result[f'latency_ms_b{b}'], '.2f')} ms")
    print(f"  throughput b{b:<10d}{_fmt(result[f'throughput_b{b}'], '.1f')} img/s")
    print(f"  peak memory b1        {result['peak_memory_mb']:.1f} MB  ({result['memory_method']})")
    return 0
