"""The shape of the Multi-KD paper's Table 2: Lite-HRNet-18/30 with the heatmap head against the SimCC head.

    python benchmarks/litehrnet_simcc.py                     # 256x256, 16 MPII joints, CPU, ~2 min
    python benchmarks/litehrnet_simcc.py --input-size 192 256 --num-keypoints 17 --out benchmarks/results/litehrnet_simcc_coco

For every model: parameters, GMACs (conv + linear, ``slimpose.engine.complexity``), peak inference memory
of tensors allocated during one forward above the weights (batch 1 and 32), the weights' MB, and latency at batch 1 and 32, measured in one
run with the models interleaved round by round (``measure_latencies_interleaved``; the table reports the
median over rounds and the SimCC / heatmap ratios of that run). The SimCC output is decoded by nothing
here: both heads are timed up to their raw outputs.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import torch

from slimpose.engine.complexity import (
    count_flops,
    measure_latencies_interleaved,
    measure_peak_memory,
    param_breakdown,
    weights_mb,
)
from slimpose.models import create_model
from slimpose.utils.io import write_json_atomic, write_text_atomic

MODELS = ("litehrnet_18", "litehrnet_18_simcc", "litehrnet_30", "litehrnet_30_simcc")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input-size", type=int, nargs=2, default=(256, 256), metavar=("W", "H"))
    p.add_argument("--num-keypoints", type=int, default=16)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave)")
    p.add_argument("--out", default="benchmarks/results/litehrnet_simcc_mpii")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    size = tuple(args.input_size)
    models = {n: create_model(n, num_keypoints=args.num_keypoints, input_size=size).eval() for n in MODELS}
    rows: dict[str, dict] = {}
    for name, model in models.items():
        flops = count_flops(model, size)
        rows[name] = {"model": name, **param_breakdown(model), "gmacs": flops["gflops"],
                      "weights_mb": weights_mb(model), "peak_mb_b1": measure_peak_memory(model, 1, "cpu", size),
                      "peak_mb_b32": measure_peak_memory(model, 32, "cpu", size)}
        print(f"{name}: {rows[name]['params']:,} params, {flops['gflops']:.4f} GMACs", file=sys.stderr)
    settings = {"b1": {"batch": 1, "repeats": args.repeats, "warmup": 3},
                "b32": {"batch": 32, "repeats": max(args.repeats // 3, 2), "warmup": 1}}
    lat = measure_latencies_interleaved(models, settings, rounds=args.rounds, input_size=size)
    for name in models:
        for key in settings:
            rows[name][f"latency_ms_{key}"] = statistics.median(lat[name][key])
            rows[name][f"latency_ms_{key}_rounds"] = lat[name][key]
    ratios = {}
    for depth in ("18", "30"):
        hm, sc = rows[f"litehrnet_{depth}"], rows[f"litehrnet_{depth}_simcc"]
        ratios[depth] = {k: sc[k] / hm[k] for k in ("params", "gmacs", "weights_mb", "peak_mb_b1", "peak_mb_b32",
                                                      "latency_ms_b1", "latency_ms_b32")}
    meta = {"input_size": list(size), "num_keypoints": args.num_keypoints, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
            "rounds": args.rounds}
    out = Path(args.out)
    write_json_atomic(out.with_suffix(".json"), {"meta": meta, "rows": rows, "simcc_over_heatmap": ratios}, indent=2)
    lines = [f"Lite-HRNet heatmap vs SimCC head, {size[0]}x{size[1]}, {args.num_keypoints} keypoints, CPU "
             f"({meta['threads']} threads, torch {meta['torch']}), latency median of {args.rounds} interleaved rounds",
             "", "| model | params | GMACs | weights MB | peak MB b1 | peak MB b32 | ms b1 | ms b32 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows.values():
        lines.append(f"| {r['model']} | {r['params']:,} | {r['gmacs']:.4f} | {r['weights_mb']:.1f} | {r['peak_mb_b1']:.1f} "
                     f"| {r['peak_mb_b32']:.1f} "
                     f"| {r['latency_ms_b1']:.1f} | {r['latency_ms_b32']:.1f} |")
    lines += ["", "| SimCC / heatmap | params | GMACs | weights | peak b1 | peak b32 | ms b1 | ms b32 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for depth, r in ratios.items():
        lines.append(f"| Lite-HRNet-{depth} | {r['params']:.2f} | {r['gmacs']:.3f} | {r['weights_mb']:.2f} | {r['peak_mb_b1']:.3f} | "
                     f"{r['peak_mb_b32']:.3f} | {r['latency_ms_b1']:.3f} | {r['latency_ms_b32']:.3f} |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
