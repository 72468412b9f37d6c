"""DistilPose Table 3 shape: params, GFLOPs and batch-1 CPU latency of the students vs their teacher.

Paper (Table 3): DistilPose-S 5.36M / 2.38 GFLOPs / 40.2 FPS vs teacher 69.41M / 17.03 / 8.2 FPS:
12.95x fewer params, 7.16x fewer GFLOPs, 4.9x faster. GFLOPs here are conv + linear multiply-accumulates
(``slimpose.engine.complexity.count_flops``), attention products listed separately. All models are
measured in one run, interleaved, so the ratios are comparable even on a shared machine.

    python benchmarks/distilpose_complexity.py --out work_dirs/bench_distilpose_complexity [--with-l]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from slimpose.engine.complexity import count_flops, count_params, measure_latencies_interleaved
from slimpose.models import create_model
from slimpose.utils.io import write_json_atomic, write_text_atomic

PUBLISHED = {
    "distilpose_teacher": {"params_m": 69.41, "gflops": 17.03, "fps": 8.2, "ap": 72.5},
    "distilpose_s": {"params_m": 5.36, "gflops": 2.38, "fps": 40.2, "ap": 71.6},
    "distilpose_l": {"params_m": 21.27, "gflops": 10.33, "fps": 13.7, "ap": 74.4},
}


def measure(names: list[str], input_size: tuple[int, int], rounds: int, repeats: int) -> dict[str, dict]:
    models = {n: create_model(n, input_size=input_size).eval() for n in names}
    rows: dict[str, dict] = {}
    for n, m in models.items():
        f = count_flops(m, input_size=input_size)
        rows[n] = {
            "params": count_params(m, trainable_only=True),
            "params_all": count_params(m),
            "gflops": f["gflops"],
            "gflops_attention": f["attention"],
        }
    # interleave the models round by round so that machine load affects all of them alike
    b1 = {"b1": dict(batch=1, device="cpu", warmup=3, repeats=repeats)}
    for n, lat in measure_latencies_interleaved(models, b1, rounds, input_size).items():
        rows[n]["latencies_ms"] = lat["b1"]
    for r in rows.values():
        r["latency_ms"] = sorted(r["latencies_ms"])[len(r["latencies_ms"]) // 2]
        r["fps"] = 1000.0 / r["latency_ms"]
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="work_dirs/bench_distilpose_complexity")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--with-l", action="store_true", help="also measure DistilPose-L")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    names = ["distilpose_teacher", "distilpose_s"] + (["distilpose_l"] if args.with_l else [])
    t0 = time.perf_counter()
    rows = measure(names, (192, 256), args.rounds, args.repeats)
    teacher = rows["distilpose_teacher"]
    lines = [
        f"DistilPose Table 3 shape, input 256x192, batch 1, CPU {args.threads} threads "
        f"(torch {torch.__version__})",
        "",
        "| model | params (M) | GFLOPs (conv+linear) | attention GFLOPs | latency (ms) | FPS | "
        "params ratio | GFLOPs ratio | speed-up | published params / GFLOPs / FPS |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in rows.items():
        r["params_ratio"] = teacher["params"] / r["params"]
        r["gflops_ratio"] = teacher["gflops"] / r["gflops"]
        r["speedup"] = teacher["latency_ms"] / r["latency_ms"]
        pub = PUBLISHED[n]
        lines.append(
            f"| {n} | {r['params'] / 1e6:.2f} | {r['gflops']:.2f} | {r['gflops_attention']:.2f} | "
            f"{r['latency_ms']:.1f} | {r['fps']:.1f} | {r['params_ratio']:.2f}x | {r['gflops_ratio']:.2f}x | "
            f"{r['speedup']:.2f}x | {pub['params_m']} / {pub['gflops']} / {pub['fps']} |"
        )
    lines += ["", "Paper: DistilPose-S 12.95x fewer params, 7.16x fewer GFLOPs, 4.90x faster (GPU FPS).",
              f"Wall time {time.perf_counter() - t0:.0f} s."]
    table = "\n".join(lines)
    print(table)
    out = Path(args.out)
    write_json_atomic(out / "distilpose_complexity.json",
                      {"rows": rows, "published": PUBLISHED, "threads": args.threads,
                       "torch": torch.__version__}, indent=2)
    write_text_atomic(out / "distilpose_complexity.md", table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
