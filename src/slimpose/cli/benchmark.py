"""``slimpose benchmark MODEL``: params, GFLOPs (conv+linear MACs, and with attention), latency, memory.

A 3-D lifting model (a name of ``slimpose.lifting.models.LIFTERS`` that is not in ``slimpose.models.MODELS``)
is built with ``--frames T`` and ``--set NAME=VALUE`` factory keywords and reported per clip (one input of
``T`` frames, batch 1): params, G MACs per clip and per output frame (a seq2seq model's clip divided by its
``T`` frames; the seq2frame ``tpc_mixste`` gives one frame per clip, so per frame = per clip) and the latency
of one clip. See ``slimpose.engine.complexity`` for what each number counts.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="model name (see slimpose.models.MODELS, slimpose.lifting.models.LIFTERS)")
    parser.add_argument("--batch", type=int, default=None,
                        help="large batch for latency/throughput (default 32; not for lifting models)")
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
    parser.add_argument("--frames", type=int, default=None,
                        help="lifting models: frames per clip (num_frames; default the factory's, 243)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="lifting models: factory keyword, e.g. --set dim=64 --set num_tokens=9 (repeatable)")
    from slimpose.cli.predict import add_backend_arguments

    add_backend_arguments(parser)  # what is timed (counts and memory are always those of the network as trained)


def _fmt(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _is_lifter(name: str) -> bool:
    from slimpose import models

    if name in models.MODELS:
        return False
    from slimpose.lifting.models import LIFTERS

    return name in LIFTERS


def lifter_benchmark(model: torch.nn.Module, device: str = "cpu", timing: bool = True, warmup: int = 3,
                     repeats: int = 10) -> dict:
    """What ``slimpose benchmark`` reports for a lifter: params, G MACs per clip and per output frame (conv +
    linear, and with the attention products), the clip latency at batch 1 (``latency_ms_b1``, None without
    ``timing``) and the frames per second it gives."""
    from slimpose.engine.complexity import count_flops, measure_latency, param_breakdown
    from slimpose.lifting.models import TPCMixSTE

    spec = model.input_spec
    model = model.to(device).eval()
    seq2frame = isinstance(model, TPCMixSTE)  # the centre frame's pose; the others are seq2seq
    out_frames = 1 if seq2frame else spec.num_frames
    flops = count_flops(model)
    result = {"family": "lifting", "class": type(model).__name__, "output": "seq2frame" if seq2frame else "seq2seq",
              "num_frames": spec.num_frames, "num_joints": spec.num_joints, "input_shape": list(spec.shape(1)),
              "output_frames": out_frames, "device": str(device), **param_breakdown(model)}
    for key in ("conv", "linear", "attention", "gflops", "gflops_with_attention"):
        result[key] = flops[key]
    result["gflops_per_frame"] = flops["gflops"] / out_frames
    result["gflops_per_frame_with_attention"] = flops["gflops_with_attention"] / out_frames
    result.update(latency_ms_b1=None, latency_ms_b1_min=None, frames_per_s=None)
    if timing:
        lat = measure_latency(model, 1, device, warmup, repeats)
        result.update(latency_ms_b1=lat["latency_ms"], latency_ms_b1_min=lat["latency_ms_min"],
                      frames_per_s=out_frames * 1000.0 / lat["latency_ms"])
    return result


def _run_lifter(args: argparse.Namespace) -> int:
    from slimpose.cli.convert import parse_overrides
    from slimpose.lifting.models import create_lifter
    from slimpose.utils.io import SlimposeInputError

    for flag, given in (("--batch", args.batch is not None), ("--input-size", args.input_size is not None),
                        ("--onnxruntime", args.onnxruntime), ("--backend", args.backend != "torch"),
                        ("--quantize", args.quantize is not None),
                        ("--precision", args.precision != "fp32")):
        if given:
            raise SlimposeInputError(f"{flag} is not for lifting models ({args.model!r}: batch 1, --frames T)")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SlimposeInputError("--device cuda given but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kwargs = {"num_joints": args.num_keypoints, **parse_overrides(args.overrides)}
    if args.frames is not None:
        if args.frames < 1:
            raise SlimposeInputError(f"--frames must be >= 1, got {args.frames}")
        kwargs["num_frames"] = args.frames
    try:
        model = create_lifter(args.model, **kwargs)
    except (TypeError, ValueError) as e:
        hint = " (a shorter clip needs its own --set num_tokens=N)" if "cannot keep" in str(e) else ""
        raise SlimposeInputError(f"cannot build {args.model!r} with {kwargs}: {e}{hint}") from None
    r = lifter_benchmark(model, args.device, not args.no_timing, args.warmup, args.repeats)
    r = {"model": args.model, "overrides": kwargs, "threads": torch.get_num_threads(), **r}
    if args.json:
        sys.stdout.write(json.dumps(r) + "\n")
        return 0
    t = r["num_frames"]
    print(f"{args.model} ({r['class']}, {r['output']}) @ {t} frames x {r['num_joints']} joints, {args.device}, "
          f"{r['threads']} threads")
    print(f"  params                   {r['params'] / 1e6:.3f} M  ({r['params']:,})")
    print(f"  GMACs / clip (linear)    {r['gflops']:.6g}  (multiply-accumulates, {t} frames in)")
    print(f"  GMACs / clip + attention {r['gflops_with_attention']:.6g}  [attention {r['attention']:.6g}]")
    per = "seq2frame: one output frame per clip" if r["output"] == "seq2frame" else f"clip / {t}"
    print(f"  GMACs / frame            {r['gflops_per_frame']:.6g}  ({per})")
    print(f"  GMACs / frame + attn     {r['gflops_per_frame_with_attention']:.6g}")
    print(f"  latency / clip b1        {_fmt(r['latency_ms_b1'], '.2f')} ms  "
          f"({_fmt(r['frames_per_s'], '.1f')} output frames/s)")
    return 0


def run(args: argparse.Namespace) -> int:
    from slimpose.engine.complexity import benchmark_model
    from slimpose.models import create_model
    from slimpose.utils.io import SlimposeInputError

    if _is_lifter(args.model):
        return _run_lifter(args)
    if args.frames is not None or args.overrides:
        raise SlimposeInputError(f"--frames and --set are for 3-D lifting models (slimpose.lifting.models.LIFTERS); "
                                 f"{args.model!r} is not one")
    if args.batch is None:
        args.batch = 32
    if args.batch < 1:
        raise SlimposeInputError(f"--batch must be >= 1, got {args.batch}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SlimposeInputError("--device cuda given but CUDA is not available")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    kwargs = {"num_keypoints": args.num_keypoints}
    if args.input_size is not None:
        kwargs["input_size"] = tuple(args.input_size)
    if args.quantize is not None and args.backend != "onnxruntime":
        raise SlimposeInputError("--quantize int8 needs --backend onnxruntime")
    model = create_model(args.model, **kwargs).to(args.device).eval()
    size = tuple(model.input_spec.size)
    runner, rewrites = None, None
    if args.backend != "train" and not args.no_timing:
        from slimpose.inference import inference_model

        if args.backend == "onnxruntime" and args.device != "cpu":
            raise SlimposeInputError("--backend onnxruntime runs on the CPU: use --device cpu")
        runner = inference_model(model, args.backend, quantize=args.quantize, threads=args.threads,
                                 precision=args.precision)
        rewrites = runner.inference_info
    result = benchmark_model(
        model,
        device=args.device,
        batch=args.batch,
        timing=not args.no_timing,
        warmup=args.warmup,
        repeats=args.repeats,
        repeats_large=args.repeats_large,
        runner=runner,
    )
    result = {"model": args.model, "head": model.head_class.__name__, "threads": torch.get_num_threads(),
              "backend": args.backend, "quantize": args.quantize, "precision": args.precision,
              "inference": rewrites, **result}
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
    if rewrites is not None:
        how = f"{args.backend} {args.precision}{' int8' if args.quantize else ''}"
        print(f"  inference path        {how}: {rewrites['folded_bn']} BN folded, conv patchify "
              f"{rewrites['conv_patchify']}, channels-last {rewrites['channels_last']}, max output difference "
              f"{rewrites['max_difference']:.1e}")
    print(f"  latency b1            {_fmt(result['latency_ms_b1'], '.2f')} ms")
    if "ort_latency_ms_b1" in result:
        print(f"  onnxruntime b1        {result['ort_latency_ms_b1']:.2f} ms")
    print(f"  latency b{b:<13d}{_fmt(result[f'latency_ms_b{b}'], '.2f')} ms")
    print(f"  throughput b{b:<10d}{_fmt(result[f'throughput_b{b}'], '.1f')} img/s")
    print(f"  peak memory b1        {result['peak_memory_mb']:.1f} MB  ({result['memory_method']})")
    return 0
