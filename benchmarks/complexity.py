"""Regenerate the model-zoo complexity table: ours (params, GFLOPs, GFLOPs with attention) vs published.

    python benchmarks/complexity.py --no-timing                  # counts only (about a minute)
    python benchmarks/complexity.py --models tokenpose_s_v1 ...  # a subset, with CPU latency b1/b32

Writes markdown and JSON (``--out`` stem, default ``benchmarks/results/complexity``). ``gflops`` are
conv + linear multiply-accumulates (the papers' convention); see ``slimpose.engine.complexity``.
A row is ``ok`` when params are within 2 % and GFLOPs within 5 % of at least one published figure.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

from slimpose.engine.complexity import benchmark_model
from slimpose.models import MODELS
from slimpose.utils.io import write_json_atomic, write_text_atomic

# name -> list of (params in M, GFLOPs, source); None where the source gives no figure.
PUBLISHED: dict[str, list[tuple[float | None, float | None, str]]] = {
    "simplebaseline_res50": [(34.0, 8.9, "SimpleBaseline/HRNet papers")],
    "simplebaseline_res101": [(53.0, 12.4, "SimpleBaseline/HRNet papers")],
    "simplebaseline_res152": [(68.6, 15.7, "SimpleBaseline/HRNet papers")],
    "hrnet_w32": [(28.5, 7.1, "HRNet paper"), (28.54, 7.7, "MMPose get_flops (MACs)")],
    "hrnet_w48": [(63.6, 14.6, "HRNet paper")],
    "litehrnet_18": [(1.1, 0.2052, "Lite-HRNet README (torchstat)")],
    "litehrnet_30": [(1.8, 0.3192, "Lite-HRNet README (torchstat)")],
    "tokenpose_s_v1_simdr": [(5.5, 2.2, "SimCC paper (TokenPose-S SimDR)")],
    "vitpose_s": [(None, 5.4, "third party (ViTPose-S 5.4-5.7 G)")],
    "vitpose_b": [(86.0, 17.1, "ViTPose paper (86M = backbone; T8)")],
    "vitpose_l": [(307.0, None, "ViTPose paper")],
    "vitpose_h": [(632.0, None, "ViTPose paper")],
    "tokenpose_s_v1": [(6.67, 2.23, "TokenPose T7"), (6.6, 2.40, "DistilPose T1"),
                       (6.6, 2.4, "SDPose (S-V1)")],
    "tokenpose_s_v2": [(6.2, None, "TokenPose T6"), (6.2, 4.7, "SDPose-S-V2, same net"),
                       (None, 11.6, "third party (GTPT)")],
    "tokenpose_b": [(13.5, 5.7, "third party (GTPT)"), (13.2, 5.2, "SDPose (SDPose-B)")],
    "tokenpose_t": [(5.803, 1.29, "TokenPose yaml comment '580.3w ... 1.29 gflops'")],
    "tokenpose_l_d24": [(27.5, 11.0, "TokenPose"), (27.5, 11.60, "DistilPose T1")],
    "distilpose_teacher": [(69.41, 17.03, "DistilPose T3")],
    "deeppose_res50": [(23.6, 4.04, "RLE ResNet-50 (DistilPose T1)")],
    "distilpose_s": [(5.36, 2.38, "DistilPose")],
    "distilpose_l": [(21.27, 10.33, "DistilPose")],
    "sdpose_t": [(4.4, 1.8, "SDPose")],
    "sdpose_s_v1": [(6.6, 2.4, "SDPose")],
    "sdpose_s_v2": [(6.2, 4.7, "SDPose")],
    "sdpose_b": [(13.2, 5.2, "SDPose")],
    "sdpose_reg": [(5.4, 2.4, "SDPose T2")],
    "ppt_s_v1": [(6.6, 2.0, "PPT (GTPT README)")],
    "ppt_b": [(13.5, 5.6, "PPT (GTPT README)")],
}


def _rel(ours: float, published: float | None) -> float | None:
    return None if published is None else (ours - published) / published


def compare(row: dict) -> dict:
    """Best relative deviations of params (all or trainable) and GFLOPs from the published figures."""
    best_p = best_g = None
    for p, g, _ in PUBLISHED.get(row["model"], []):
        for count in (row["params"], row["params_trainable"]):
            d = _rel(count / 1e6, p)
            if d is not None and (best_p is None or abs(d) < abs(best_p)):
                best_p = d
        d = _rel(row["gflops"], g)
        if d is not None and (best_g is None or abs(d) < abs(best_g)):
            best_g = d
    ok = best_p is not None and best_g is not None and abs(best_p) <= 0.02 and abs(best_g) <= 0.05
    return {"params_dev": best_p, "gflops_dev": best_g, "ok": ok}


def _pct(d: float | None) -> str:
    return "—" if d is None else f"{100 * d:+.1f}%"


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


def markdown(rows: list[dict], timing: bool) -> str:
    head = ("| model | params (M) | trainable (M) | GFLOPs | GFLOPs w/ attn "
            "| published params / GFLOPs (source) | Δparams | ΔGFLOPs | ok |")
    sep = "|---|---|---|---|---|---|---|---|---|"
    if timing:
        head += " b1 ms median (min) | b32 ms median (min) | img/s b32 | peak MB b1 |"
        sep += "---|---|---|---|"
    lines = [head, sep]
    for r in rows:
        pub = "; ".join(
            f"{_num(p, '.2f')} / {_num(g, '.2f')} ({src})" for p, g, src in PUBLISHED.get(r["model"], [])
        ) or "—"
        line = (
            f"| `{r['model']}` | {r['params'] / 1e6:.2f} | {r['params_trainable'] / 1e6:.2f} "
            f"| {r['gflops']:.3f} "
            f"| {r['gflops_with_attention']:.3f} | {pub} | {_pct(r['params_dev'])} | {_pct(r['gflops_dev'])} "
            f"| {'yes' if r['ok'] else 'see notes'} |"
        )
        if timing:
            line += (
                f" {_num(r.get('latency_ms_b1'), '.1f')} ({_num(r.get('latency_ms_b1_min'), '.1f')}) "
                f"| {_num(r.get('latency_ms_b32'), '.0f')} ({_num(r.get('latency_ms_b32_min'), '.0f')}) "
                f"| {_num(r.get('throughput_b32'), '.1f')} | {_num(r.get('peak_memory_mb'), '.1f')} |"
            )
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=None, help="subset of MODELS (default: all)")
    parser.add_argument("--no-timing", action="store_true", help="counts only")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=10, help="timed runs at batch 1")
    parser.add_argument("--repeats-large", type=int, default=2, help="timed runs at the large batch")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/results/complexity", help="output stem (.md and .json)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = args.models or list(MODELS)
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    timing = not args.no_timing
    rows = []
    for name in names:
        torch.manual_seed(0)
        model = MODELS[name]()
        size = tuple(getattr(model, "input_size", None) or (192, 256))
        r = benchmark_model(model, size, args.device, args.batch, timing, args.warmup, args.repeats,
                            args.repeats_large)
        r = {"model": name, **r}
        r.update(compare(r))
        rows.append(r)
        print(f"{name:24s} params {r['params'] / 1e6:7.2f}M  gflops {r['gflops']:7.3f}  "
              f"w/attn {r['gflops_with_attention']:7.3f}  b1 {_num(r.get('latency_ms_b1'), '.1f')} ms  "
              f"b{args.batch} {_num(r.get(f'latency_ms_b{args.batch}'), '.0f')} ms", file=sys.stderr)
        del model
    env = {
        "torch": torch.__version__,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "cuda_device": torch.cuda.get_device_name() if args.device == "cuda" else None,
    }
    out = Path(args.out)
    write_json_atomic(out.with_suffix(".json"), {"env": env, "rows": rows}, indent=1)
    text = f"<!-- generated by benchmarks/complexity.py; torch {env['torch']}, {env['device']}, " \
           f"{env['threads']} threads -->\n" + markdown(rows, timing)
    write_text_atomic(out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
