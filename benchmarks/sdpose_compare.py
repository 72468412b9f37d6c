"""SDPose on the synthetic people: plain TokenPose vs MCT without self-distillation vs SDPose (official,
teacher not detached) vs SDPose with a detached teacher, under one training budget.

All four share the TokenPose-S-v1 shape scaled down (``sdpose_s_v1`` factory; defaults: 64x96 input,
StemNet with 1 Bottleneck, 2x2 patches -> 96 visual tokens, dim 64, 4 layers, 4 heads, ``head_dim**-0.5``),
the data (the ``easy`` synthetic preset, 3000 train / 150 val images of 160x160, as ``slimpose demo``),
epochs, optimiser and augmentation (flip, scale 0.25, rotation 15, no half body):

* ``tokenpose``: 1 cycle (identical computation and state dict to ``tokenpose_s_v1``), heatmap MSE;
* ``mct_last``: 2 cycles, heatmap MSE summed over cycles, no token terms, inference reads the **last**
  cycle (paper ablation "w/o distillation"; costs 2 transformer passes);
* ``sdpose``: 2 cycles, Eq. 3 with a1 = a2 = 5e-6, teacher not detached (official), reads cycle 1;
* ``sdpose_detached``: same with the later cycle detached (textbook self-distillation).

Extra rows read the other cycle of the same trained weights (no training): ``mct_first`` (MCT without
self-distillation read at cycle 1, single pass) and ``sdpose*_last``. Every row reports COCO AP on the
synthetic val split (flip test, DARK), the conv+linear GFLOPs of its inference path (``model.forward``,
at the benchmark input size) and CPU latency (batch 1 and 32) measured in this run, round-robin over all
paths after training (a shared 2-core machine: compare rows, not absolute values).
Writes ``sdpose_compare.json`` and ``sdpose_compare.md`` atomically to ``--out``.

    python benchmarks/sdpose_compare.py --out work_dirs/bench_sdpose_compare
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slimpose.config import (
    AugmentParams,
    DataConfig,
    ModelConfig,
    OptimConfig,
    ScheduleConfig,
    SDPoseConfig,
    TrainConfig,
)
from slimpose.data.synth import SYNTH_PRESETS
from slimpose.utils.io import write_json_atomic, write_text_atomic

INPUT_SIZE = [48, 64]  # (w, h); set from --input-size in main
# name, num_cycles, (kt, vt) on?, detach, read_cycle
RUNS: list[tuple[str, int, bool, bool, int]] = [
    ("tokenpose", 1, False, False, 0),
    ("mct_last", 2, False, False, 1),
    ("sdpose", 2, True, False, 0),
    ("sdpose_detached", 2, True, True, 0),
]
# extra evaluation of another cycle of a trained run: row name -> (run name, read_cycle)
EXTRA_READS = {
    "mct_first": ("mct_last", 0),
    "sdpose_last": ("sdpose", 1),
    "sdpose_detached_last": ("sdpose_detached", 1),
}


def make_config(args: argparse.Namespace, name: str, num_cycles: int, tokens: bool, detach: bool,
                read_cycle: int) -> TrainConfig:
    data = DataConfig(
        dataset="synthetic", data_root=str(args.data_root or Path(args.out) / "synthetic"),
        input_size=tuple(INPUT_SIZE), heatmap_size=(INPUT_SIZE[0] // 4, INPUT_SIZE[1] // 4), sigma=args.sigma,
        batch_size=args.batch_size, val_batch_size=64, workers=0,
        val_workers=0, synthetic_train_images=args.train_images, synthetic_val_images=args.val_images,
        synthetic_seed=0, synthetic_preset=args.preset, synthetic_image_size=tuple(args.image_size),
        aug=AugmentParams(rotation_factor=args.rotation, scale_factor=0.25, half_body_prob=0.0),
    )
    overrides = {"dim": args.dim, "depth": args.depth, "num_heads": 4, "patch_size": [2, 2],
                 "stem_blocks": args.stem_blocks, "num_cycles": num_cycles, "read_cycle": read_cycle}
    return TrainConfig(
        name=f"sdpose_compare_{name}", work_dir=str(Path(args.out) / name), data=data,
        model=ModelConfig(name="sdpose_s_v1", overrides=overrides), optim=OptimConfig(lr=1e-3),
        schedule=ScheduleConfig(epochs=args.epochs, warmup_iters=10,
                                milestones=(max(1, int(args.epochs * 0.8)),)),
        eval_interval=args.epochs, log_interval=1000, tensorboard=False, device="cpu", seed=args.seed,
        num_threads=args.threads, flip_test=True, dark=True,
        sdpose=SDPoseConfig(kt=args.w_kt if tokens else 0.0, vt=args.w_vt if tokens else 0.0,
                            detach_teacher=detach),
    )


def inference_flops(model: torch.nn.Module) -> dict[str, Any]:
    """Params and GFLOPs of ``model.forward`` (its read cycle) at the benchmark input size."""
    from slimpose.engine.complexity import count_flops, count_params

    flops = count_flops(model, input_size=tuple(INPUT_SIZE))
    return {"gflops": flops["gflops"], "gflops_with_attention": flops["gflops_with_attention"],
            "params": count_params(model)}


def measure_latencies(
    paths: dict[str, torch.nn.Module], args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """CPU latency of every inference path, measured round-robin (``--latency-rounds`` rounds, the median
    of the per-round medians) so that load changes on a shared machine hit all rows alike."""
    import statistics

    from slimpose.engine.complexity import measure_latencies_interleaved

    settings = {"b1": dict(batch=1, warmup=3, repeats=args.latency_repeats),
                "b32": dict(batch=32, warmup=1, repeats=3)}
    per = measure_latencies_interleaved(paths, settings, args.latency_rounds, tuple(INPUT_SIZE))
    return {k: {"latency_ms_b1": statistics.median(v["b1"]), "latency_ms_b32": statistics.median(v["b32"])}
            for k, v in per.items()}


def train_and_measure(
    args: argparse.Namespace, spec: tuple[str, int, bool, bool, int], paths: dict[str, torch.nn.Module]
) -> dict[str, dict[str, Any]]:
    """Train one run, evaluate its read cycle (and the extra reads); ``paths`` gets each inference path."""
    import copy

    from slimpose.engine.hooks import EvalHook
    from slimpose.training import make_trainer

    name, num_cycles, tokens, detach, read_cycle = spec
    cfg = make_config(args, name, num_cycles, tokens, detach, read_cycle)
    t0 = time.perf_counter()
    trainer = make_trainer(cfg)
    rows: dict[str, dict[str, Any]] = {}
    try:
        summary = trainer.fit()
        minutes = (time.perf_counter() - t0) / 60
        model = trainer.task.model
        rows[name] = {"AP": summary.get("val_AP"), "num_cycles": num_cycles, "read_cycle": read_cycle,
                      "token_terms": tokens, "detach_teacher": detach, "train_minutes": minutes,
                      "train_loss": summary.get("train_loss"),
                      # the task loss summed over all cycles, and the unweighted cycle token terms
                      "train_loss_task": summary.get("train_loss_heatmap", 0.0) + summary.get("train_loss_cycles", 0.0),
                      "train_loss_kt": summary.get("train_loss_kt", 0.0) / args.w_kt if tokens else 0.0,
                      "train_loss_vt": summary.get("train_loss_vt", 0.0) / args.w_vt if tokens else 0.0,
                      **inference_flops(model)}
        paths[name] = copy.deepcopy(model).eval()
        for extra, (source, cycle) in EXTRA_READS.items():
            if source != name:
                continue
            model.read_cycle = cycle
            metrics = trainer.hook(EvalHook).evaluator.run(trainer.task, tag=extra)
            rows[extra] = {"AP": metrics.get("AP"), "num_cycles": num_cycles, "read_cycle": cycle,
                           "token_terms": tokens, "detach_teacher": detach, "trained_as": name,
                           **inference_flops(model)}
            paths[extra] = copy.deepcopy(model).eval()
            model.read_cycle = read_cycle
    finally:
        trainer.close()
    return rows


ORDER = ["tokenpose", "mct_last", "mct_first", "sdpose", "sdpose_last", "sdpose_detached",
         "sdpose_detached_last"]


def render(result: dict[str, Any]) -> str:
    s = result["settings"]
    lines = [
        f"SDPose on synthetic people ({s['train_images']} train / {s['val_images']} val images, "
        f"{s['epochs']} epochs, {s['input_size'][0]}x{s['input_size'][1]} (w x h) input, batch "
        f"{s['batch_size']}, dim {s['dim']}, {s['depth']} layers, {s['threads']} CPU threads, total "
        f"{result.get('total_minutes', 0):.1f} min). GFLOPs = conv+linear MACs of the inference path.",
        "",
        "| row | cycles trained | token terms | teacher detached | cycle read | AP | GFLOPs |"
        " latency b1 (ms) | latency b32 (ms) | train min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ORDER:
        r = result["rows"].get(name)
        if r is None:
            continue
        ap = "-" if r["AP"] is None else f"{100 * r['AP']:.1f}"
        tm = f"{r['train_minutes']:.1f}" if "train_minutes" in r else "(same weights)"
        lines.append(
            f"| {name} | {r['num_cycles']} | {'5e-6' if r['token_terms'] else '-'} | "
            f"{'yes' if r['detach_teacher'] else 'no'} | {r['read_cycle'] + 1} | {ap} | {r['gflops']:.3f} | "
            f"{r['latency_ms_b1']:.1f} | {r['latency_ms_b32']:.1f} | {tm} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="work_dirs/bench_sdpose_compare")
    p.add_argument("--epochs", type=int, default=28)
    p.add_argument("--train-images", type=int, default=3000)
    p.add_argument("--val-images", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--input-size", type=int, nargs=2, default=[64, 96], metavar=("W", "H"))
    p.add_argument("--preset", choices=tuple(SYNTH_PRESETS), default="easy", help="synthetic data preset")
    p.add_argument("--image-size", type=int, nargs=2, default=(160, 160), metavar=("W", "H"),
                   help="synthetic image size")
    p.add_argument("--data-root", default=None, help="synthetic data folder (default OUT/synthetic; reused)")
    p.add_argument("--sigma", type=float, default=2.0)
    p.add_argument("--rotation", type=float, default=15.0, help="rotation augmentation factor (degrees)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--stem-blocks", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--w-kt", type=float, default=5e-6)
    p.add_argument("--w-vt", type=float, default=5e-6)
    p.add_argument("--latency-repeats", type=int, default=10)
    p.add_argument("--latency-rounds", type=int, default=3)
    p.add_argument("--runs", default=",".join(r[0] for r in RUNS), help="comma-separated subset of the runs")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    INPUT_SIZE[:] = list(args.input_size)
    wanted = [r for r in args.runs.split(",") if r]
    unknown = sorted(set(wanted) - {r[0] for r in RUNS})
    if unknown:
        p.error(f"unknown runs {unknown}")
    out = Path(args.out)
    t0 = time.perf_counter()
    result: dict[str, Any] = {"settings": dict(vars(args)), "rows": {}}
    paths: dict[str, torch.nn.Module] = {}
    for spec in RUNS:
        if spec[0] not in wanted:
            continue
        result["rows"].update(train_and_measure(args, spec, paths))
        result["total_minutes"] = (time.perf_counter() - t0) / 60
        print(f"[sdpose_compare] {spec[0]}: AP {result['rows'][spec[0]]['AP']}", file=sys.stderr)
        write_json_atomic(out / "sdpose_compare.json", result, indent=2)  # partial results survive
    for name, lat in measure_latencies(paths, args).items():
        result["rows"][name].update(lat)
    result["total_minutes"] = (time.perf_counter() - t0) / 60
    table = render(result)
    print(table)
    write_json_atomic(out / "sdpose_compare.json", result, indent=2)
    write_text_atomic(out / "sdpose_compare.md", table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
