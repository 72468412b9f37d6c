"""Token pruning that saves real time: complexity, CPU latency (eager and ONNX Runtime) and keep-ratio sweeps.

    python benchmarks/token_pruning.py complexity   # full-size factories vs published (about a minute)
    python benchmarks/token_pruning.py latency      # pruned vs unpruned, batch 1 and 32, eager and ORT
    python benchmarks/token_pruning.py sweep        # train on synthetic people, AP vs GFLOPs vs latency
    python benchmarks/token_pruning.py checkpoint --checkpoint outputs/demo/checkpoints/teacher.pth --layers 1 2 3
                                                    # prune a trained token model without retraining
    python benchmarks/token_pruning.py finetune --checkpoint .../student_distill.pth --layers 1 2 3 --ratios 1.0 0.5
                                                    # the same, fine-tuned with pruning (its own recipe)
    python benchmarks/token_pruning.py pareto --inputs A.json B.json ...   # one relative Pareto figure

``complexity`` counts params and GFLOPs (conv + linear MACs, the papers' convention; also with attention)
of TokenPose-S / PPT-S, TokenPose-B / PPT-B, ViTPose-S/B and EViTPose-S/B at several keep ratios.
``latency`` times the full-size models at 256x192 in one interleaved run (every model in every round, so a
busy machine hits all alike): eager PyTorch (``torch.inference_mode``) and ONNX Runtime (CPU provider,
the static-top-k export), batch 1 and 32, and reports each pruned model's speed-up over its unpruned one.
``sweep`` trains CPU-sized models (depth 12 so the pruning layers 3, 6, 9 exist; 48x64 crops of the one-person
"easy" synthetic people, 48 visual tokens; AdamW 2e-3, batch 8: the knowledge-token benchmark's set-up) under
one budget: for PPT a TokenPose trained unpruned and one trained at
keep 0.7; for EViTPose a ViTPose with joint tokens trained unpruned and one trained at keep 0.5, plus plain
ViTPose as the reference. Every trained model is then evaluated at every keep ratio of ``--ratios``
(COCO AP on the synthetic val split, flip test), counted (GFLOPs) and timed (batch 1 and 32, eager,
interleaved), and drawn as Pareto plots (AP against GFLOPs and against latency). Results are written after
every run (``OUT.json``; a rerun skips what is there).
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slimpose.config.schema import AugmentParams, DataConfig, ModelConfig, OptimConfig, ScheduleConfig, TrainConfig
from slimpose.engine.complexity import count_flops, count_params, measure_latency
from slimpose.models import create_model
from slimpose.utils.io import load_json, write_json_atomic, write_text_atomic
from slimpose.visualization import save_figure

# (name, factory, overrides, unpruned reference, published (params M, GFLOPs, source) or None)
FULL: list[tuple[str, str, dict, str | None, tuple | None]] = [
    ("tokenpose_s_v1", "tokenpose_s_v1", {}, None, (6.6, 2.2, "TokenPose T7")),
    ("ppt_s_v1", "ppt_s_v1", {}, "tokenpose_s_v1", (6.6, 2.0, "PPT (GTPT README)")),
    ("ppt_s_v1 r0.5", "ppt_s_v1", {"pruning": {"layers": [3, 6, 9], "keep_ratio": 0.5}}, "tokenpose_s_v1", None),
    ("tokenpose_b", "tokenpose_b", {}, None, (13.5, 5.7, "TokenPose")),
    ("ppt_b", "ppt_b", {}, "tokenpose_b", (13.5, 5.6, "PPT (GTPT README)")),
    ("vitpose_s", "vitpose_s", {}, None, (None, 5.4, "third party")),
    ("evitpose_s r0.7", "evitpose_s", {"keep_ratio": 0.7}, "vitpose_s", None),
    ("evitpose_s", "evitpose_s", {}, "vitpose_s", None),
    ("evitpose_s r0.4", "evitpose_s", {"keep_ratio": 0.4}, "vitpose_s", None),
    ("vitpose_b", "vitpose_b", {}, None, (86.0, 17.1, "ViTPose paper (backbone params)")),
    ("evitpose_b r0.7", "evitpose_b", {"keep_ratio": 0.7}, "vitpose_b", None),
    ("evitpose_b", "evitpose_b", {}, "vitpose_b", None),
    ("evitpose_b r0.4", "evitpose_b", {"keep_ratio": 0.4}, "vitpose_b", None),
]
LATENCY_ROWS = ("tokenpose_s_v1", "ppt_s_v1", "vitpose_s", "evitpose_s r0.7", "evitpose_s", "vitpose_b", "evitpose_b")


def build(name: str) -> torch.nn.Module:
    row = next(r for r in FULL if r[0] == name)
    return create_model(row[1], **row[2]).eval()


def complexity(args: argparse.Namespace) -> dict[str, Any]:
    rows = {}
    for name, factory, kw, ref, pub in FULL:
        m = build(name)
        f = count_flops(m)
        rows[name] = {"factory": factory, "overrides": kw, "reference": ref, "params_m": count_params(m) / 1e6,
                      "gflops": f["gflops"], "gflops_with_attention": f["gflops_with_attention"], "published": pub}
        print(f"[complexity] {name}: {rows[name]['params_m']:.2f} M, {f['gflops']:.3f} G", file=sys.stderr)
    for r in rows.values():
        if r["reference"]:
            r["gflops_vs_reference"] = r["gflops"] / rows[r["reference"]]["gflops"] - 1.0
    return rows


def render_complexity(rows: dict[str, Any]) -> str:
    lines = ["Full-size factories at 256x192 (w 192, h 256): params and GFLOPs (conv + linear MACs; with attention "
             "QK^T and AV in the next column). EViTPose adds 17 joint tokens (17 x C parameters).", "",
             "| model | params (M) | GFLOPs | GFLOPs with attention | vs unpruned | published (params M / GFLOPs) |",
             "|---|---:|---:|---:|---:|---|"]
    for name, r in rows.items():
        vs = f"{100 * r['gflops_vs_reference']:+.1f}% vs {r['reference']}" if r.get("reference") else ""
        pub = r["published"]
        ptxt = "" if not pub else f"{pub[0] if pub[0] is not None else '-'} / {pub[1]} ({pub[2]})"
        lines.append(f"| {name} | {r['params_m']:.2f} | {r['gflops']:.3f} | {r['gflops_with_attention']:.3f} | "
                     f"{vs} | {ptxt} |")
    return "\n".join(lines) + "\n"


def latency(args: argparse.Namespace) -> dict[str, Any]:
    from slimpose.export import onnxruntime_latency

    torch.set_num_threads(args.threads)
    models = {n: build(n) for n in LATENCY_ROWS}
    per: dict[str, dict[str, list[float]]] = {n: {} for n in models}
    for rnd in range(args.rounds):
        for name, m in models.items():
            for b in args.batches:
                reps = args.repeats if b == 1 else max(2, args.repeats // 4)
                e = measure_latency(m, batch=b, repeats=reps, warmup=1)["latency_ms"]
                o = onnxruntime_latency(m, batch=b, repeats=reps, warmup=1, threads=args.threads)["ort_latency_ms"]
                per[name].setdefault(f"eager_b{b}", []).append(e)
                per[name].setdefault(f"ort_b{b}", []).append(o)
            print(f"[latency] round {rnd + 1}/{args.rounds}: {name}", file=sys.stderr)
    out = {n: {k: {"median_ms": statistics.median(v), "rounds_ms": v} for k, v in d.items()} for n, d in per.items()}
    return {"threads": args.threads, "rounds": args.rounds, "machine": platform.processor() or platform.machine(),
            "torch": torch.__version__, "models": out}


def render_latency(res: dict[str, Any]) -> str:
    keys = list(next(iter(res["models"].values())).keys())
    lines = [f"CPU latency (ms, median over {res['rounds']} interleaved rounds, {res['threads']} threads, torch "
             f"{res['torch']}); x = speed-up over the unpruned model of the same round set.", "",
             "| model | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    refs = {r[0]: r[3] for r in FULL}
    for name, d in res["models"].items():
        ref = refs.get(name)
        cells = []
        for k in keys:
            v = d[k]["median_ms"]
            if ref and ref in res["models"]:
                cells.append(f"{v:.1f} (x{res['models'][ref][k]['median_ms'] / v:.2f})")
            else:
                cells.append(f"{v:.1f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ sweep

def sweep_data(args: argparse.Namespace, heatmap_size: tuple[int, int]) -> DataConfig:
    """The knowledge-token benchmark's CPU data: one-person "easy" synthetic people, 48x64 crops, batch 8."""
    return DataConfig(dataset="synthetic", data_root=str(Path(args.out).parent / (Path(args.out).name + "_data")),
                      input_size=(48, 64), heatmap_size=heatmap_size, sigma=2.0 * heatmap_size[0] / 24,
                      batch_size=8, val_batch_size=64, workers=args.workers, val_workers=args.workers,
                      synthetic_train_images=args.train_images, synthetic_val_images=args.val_images,
                      synthetic_seed=0, synthetic_preset="easy", synthetic_image_size=(160, 160),
                      aug=AugmentParams(rotation_factor=20.0, scale_factor=0.2, half_body_prob=0.0))


# run name -> (factory, overrides, training keep ratio or None). 48x64 crops, 48 visual tokens for both:
# TokenPose 2x2 patches on the 12x16 stride-4 map (heatmaps 12x16); ViTPose 8x8 patches (padding 2, 6x8
# grid), simple decoder x4 (heatmaps 24x32). Depth 12, so PPT's blocks 3, 6, 9 exist.
TOKENPOSE_SMALL = {"stem_blocks": 1, "dim": 96, "num_heads": 4, "depth": 12, "patch_size": [2, 2]}
VIT_SMALL = {"dim": 96, "num_heads": 3, "depth": 12, "decoder": "simple", "drop_path_rate": 0.0, "patch_size": 8}
HEATMAPS = {"tokenpose_s_v1": (12, 16), "vitpose_s": (24, 32), "evitpose_s": (24, 32)}
RUNS: dict[str, tuple[str, dict, float | None]] = {
    "tokenpose": ("tokenpose_s_v1", dict(TOKENPOSE_SMALL, pruning={"layers": [3, 6, 9], "keep_ratio": 1.0}), 1.0),
    "ppt_r0.7": ("tokenpose_s_v1", dict(TOKENPOSE_SMALL, pruning={"layers": [3, 6, 9], "keep_ratio": 0.7}), 0.7),
    "vitpose": ("vitpose_s", dict(VIT_SMALL), None),
    "evitpose_r1.0": ("evitpose_s", dict(VIT_SMALL, keep_ratio=1.0), 1.0),
    "evitpose_r0.5": ("evitpose_s", dict(VIT_SMALL, keep_ratio=0.5), 0.5),
}


def run_cfg(args: argparse.Namespace, run: str, keep: float | None) -> TrainConfig:
    factory, kw, _ = RUNS[run]
    kw = copy.deepcopy(kw)
    if keep is not None:
        if "pruning" in kw:
            kw["pruning"]["keep_ratio"] = keep
        else:
            kw["keep_ratio"] = keep
    return TrainConfig(
        name=f"token_pruning_{run}", work_dir=str(Path(args.out + "_runs") / run),
        data=sweep_data(args, HEATMAPS[factory]),
        model=ModelConfig(name=factory, overrides=kw), optim=OptimConfig(name="adamw", lr=2e-3, weight_decay=0.01),
        schedule=ScheduleConfig(epochs=args.epochs, warmup_iters=50, warmup_ratio=1e-3,
                                milestones=(int(args.epochs * 0.8),)),
        eval_interval=args.epochs, log_interval=50, dark=True, num_threads=args.threads, seed=0, tensorboard=False,
        flip_test=True)


def train(args: argparse.Namespace, run: str) -> dict[str, Any]:
    from slimpose.training import fit_config

    cfg = run_cfg(args, run, RUNS[run][2])
    t0 = time.perf_counter()
    summary, _ = fit_config(cfg)
    return {"AP": float(summary["val_AP"]), "minutes": (time.perf_counter() - t0) / 60,
            "checkpoint": str(Path(cfg.work_dir) / "last.pth")}


def evaluate_at(args: argparse.Namespace, run: str, keep: float | None, checkpoint: str) -> dict[str, Any]:
    from slimpose.engine.trainer import evaluate_checkpoint

    cfg = run_cfg(args, run, keep)
    metrics = evaluate_checkpoint(cfg, checkpoint, out_dir=Path(cfg.work_dir) / f"eval_r{keep}", tag=f"r{keep}")
    model = create_model(cfg.model.name, input_size=cfg.data.input_size, **cfg.model.overrides).eval()
    f = count_flops(model)
    return {"AP": float(metrics["AP"]), "AP50": float(metrics.get("AP50", float("nan"))), "gflops": f["gflops"],
            "gflops_with_attention": f["gflops_with_attention"]}


def sweep_latency(args: argparse.Namespace, points: dict[str, Any]) -> None:
    """Eager latency of every (run, ratio) point, interleaved over ``args.rounds`` rounds."""
    torch.set_num_threads(args.threads)
    models = {}
    for key, p in points.items():
        run, keep = p["run"], p["keep_ratio"]
        cfg = run_cfg(args, run, keep)
        models[key] = create_model(cfg.model.name, input_size=cfg.data.input_size, **cfg.model.overrides).eval()
    times: dict[str, dict[str, list[float]]] = {k: {"b1": [], "b32": []} for k in models}
    for _ in range(args.rounds):
        for key, m in models.items():
            times[key]["b1"].append(measure_latency(m, batch=1, repeats=args.repeats, warmup=2)["latency_ms"])
            times[key]["b32"].append(measure_latency(m, batch=32, repeats=max(2, args.repeats // 4),
                                                     warmup=1)["latency_ms"])
    for key, t in times.items():
        points[key]["latency_b1_ms"] = statistics.median(t["b1"])
        points[key]["latency_b32_ms"] = statistics.median(t["b32"])


def render_sweep(res: dict[str, Any]) -> str:
    s = res["settings"]
    lines = [f"Keep-ratio sweep on synthetic people ({s['train_images']} train / {s['val_images']} val images, "
             f"48x64 crops, {s['epochs']} epochs per trained model, {s['threads']} thread(s); COCO AP x100 on the "
             "synthetic val split, flip test; latency = eager PyTorch, median of interleaved rounds).", "",
             "| trained as | evaluated at keep | AP | GFLOPs | latency b1 (ms) | latency b32 (ms) |",
             "|---|---:|---:|---:|---:|---:|"]
    for key, p in res["points"].items():
        keep = "-" if p["keep_ratio"] is None else f"{p['keep_ratio']:.1f}"
        lat1 = p.get("latency_b1_ms")
        lat32 = p.get("latency_b32_ms")
        lines.append(f"| {p['run']} | {keep} | {100 * p['AP']:.1f} | {p['gflops']:.3f} | "
                     f"{'-' if lat1 is None else f'{lat1:.2f}'} | {'-' if lat32 is None else f'{lat32:.1f}'} |")
    lines += ["", "Training: " + ", ".join(f"{k} {v['minutes']:.1f} min (AP {100 * v['AP']:.1f} at its own ratio)"
                                           for k, v in res["trained"].items())]
    return "\n".join(lines) + "\n"


def plot_sweep(res: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for run in res["trained"]:
        pts = sorted((p for p in res["points"].values() if p["run"] == run), key=lambda p: p["gflops"])
        if not pts:
            continue
        for ax, x in zip(axes, ("gflops", "latency_b1_ms", "latency_b32_ms")):
            if any(p.get(x) is None for p in pts):
                continue
            style = dict(marker="*", ms=12, ls="none") if len(pts) == 1 else dict(marker="o", ms=4)
            ax.plot([p[x] for p in pts], [100 * p["AP"] for p in pts], label=run, **style)
            for p in pts:
                if p["keep_ratio"] is not None and len(pts) > 1:
                    ax.annotate(f"{p['keep_ratio']:.1f}", (p[x], 100 * p["AP"]), fontsize=6,
                                textcoords="offset points", xytext=(2, 2))
    for ax, label in zip(axes, ("GFLOPs", "latency batch 1 (ms, eager CPU)", "latency batch 32 (ms, eager CPU)")):
        ax.set_xlabel(label)
        ax.set_ylabel("AP (synthetic val, x100)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Token pruning: keep-ratio sweep (labels: keep ratio at inference)")
    save_figure(fig, path, dpi=120, close=True)


def sweep(args: argparse.Namespace) -> dict[str, Any]:
    json_path = Path(args.out).with_suffix(".json")
    res: dict[str, Any] = load_json(json_path, "sweep results") if json_path.is_file() else {}
    res["settings"] = {k: getattr(args, k) for k in ("epochs", "train_images", "val_images", "threads", "ratios",
                                                       "runs", "rounds")}
    res.setdefault("trained", {})
    res.setdefault("points", {})
    for run in args.runs:
        if run not in res["trained"]:
            print(f"[sweep] training {run} ({args.epochs} epochs)", file=sys.stderr)
            res["trained"][run] = train(args, run)
            write_json_atomic(json_path, res, indent=2)
        ratios = [None] if RUNS[run][2] is None else args.ratios
        for keep in ratios:
            key = f"{run}@{keep}"
            if key not in res["points"]:
                res["points"][key] = {"run": run, "keep_ratio": keep,
                                      **evaluate_at(args, run, keep, res["trained"][run]["checkpoint"])}
                write_json_atomic(json_path, res, indent=2)
    if args.rounds > 0:
        sweep_latency(args, res["points"])
    write_json_atomic(json_path, res, indent=2)
    plot_sweep(res, Path(args.out).with_suffix(".png"))
    return res


def prune_checkpoint(args: argparse.Namespace) -> dict[str, Any]:
    """PPT without retraining: a trained token model (``--checkpoint``, e.g. the demo's teacher and students)
    evaluated with pruning at ``--layers`` for every ratio of ``--ratios`` (AP, GFLOPs, eager latency)."""
    from slimpose.config.parse import config_from_dict
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.engine.trainer import evaluate_checkpoint

    torch.set_num_threads(args.threads)
    ckpt = load_checkpoint(args.checkpoint)
    base = config_from_dict(ckpt["config"], where=str(args.checkpoint))
    if args.data_root:
        base.data.data_root = args.data_root
    base.num_threads = args.threads
    base.data.workers = base.data.val_workers = args.workers
    points, models = {}, {}
    for keep in args.ratios:
        cfg = copy.deepcopy(base)
        cfg.model.overrides = {**cfg.model.overrides, "pruning": {"layers": list(args.layers), "keep_ratio": keep}}
        cfg.work_dir = str(Path(args.out + "_runs") / f"r{keep}")
        metrics = evaluate_checkpoint(cfg, args.checkpoint, out_dir=cfg.work_dir, tag=f"r{keep}")
        model = create_model(cfg.model.name, input_size=cfg.data.input_size, **cfg.model.overrides).eval()
        f = count_flops(model)
        models[keep] = model
        points[str(keep)] = {"keep_ratio": keep, "AP": float(metrics["AP"]), "gflops": f["gflops"]}
        print(f"[checkpoint] keep {keep}: AP {metrics['AP']:.4f}, {f['gflops']:.4f} G", file=sys.stderr)
    times: dict[float, list[float]] = {k: [] for k in models}
    for _ in range(args.rounds):
        for keep, m in models.items():
            times[keep].append(measure_latency(m, batch=32, repeats=args.repeats, warmup=1)["latency_ms"])
    for keep, t in times.items():
        if t:
            points[str(keep)]["latency_b32_ms"] = statistics.median(t)
    return {"checkpoint": str(args.checkpoint), "model": base.model.name, "overrides": base.model.overrides,
            "layers": list(args.layers), "threads": args.threads, "points": points}


def finetune(args: argparse.Namespace) -> dict[str, Any]:
    """PPT with training: the trained model ``--checkpoint`` fine-tuned ``--epochs`` epochs with its own recipe
    (its distillation section and teacher included) at every keep ratio of ``--ratios`` (1.0 = the unpruned
    control under the same budget), lr x0.1, then evaluated at that ratio. Resumable: a rerun skips done rows."""
    from slimpose.config.parse import config_from_dict
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.training import fit_config

    ckpt = load_checkpoint(args.checkpoint)
    base = config_from_dict(ckpt["config"], where=str(args.checkpoint))
    json_path = Path(args.out).with_suffix(".json")
    res: dict[str, Any] = load_json(json_path, "finetune results") if json_path.is_file() else {}
    res.update(checkpoint=str(args.checkpoint), model=base.model.name, overrides=base.model.overrides,
               layers=list(args.layers), epochs=args.epochs, threads=args.threads,
               method="distill" if base.distill is not None else "train")
    res.setdefault("rows", {})
    for keep in args.ratios:
        if str(keep) in res["rows"]:
            continue
        cfg = copy.deepcopy(base)
        if args.data_root:
            cfg.data.data_root = args.data_root
        cfg.model.overrides = {**cfg.model.overrides, "pruning": {"layers": list(args.layers), "keep_ratio": keep}}
        cfg.model.pretrained = str(args.checkpoint)
        cfg.optim.lr *= 0.1
        cfg.schedule = ScheduleConfig(epochs=args.epochs, warmup_iters=0, milestones=())
        cfg.eval_interval, cfg.num_threads, cfg.tensorboard = args.epochs, args.threads, False
        cfg.data.workers = cfg.data.val_workers = args.workers
        cfg.work_dir = str(Path(args.out + "_runs") / f"r{keep}")
        t0 = time.perf_counter()
        summary, _ = fit_config(cfg)
        res["rows"][str(keep)] = {"keep_ratio": keep, "AP": float(summary["val_AP"]),
                                  "minutes": (time.perf_counter() - t0) / 60}
        write_json_atomic(json_path, res, indent=2)
    return res


def render_finetune(res: dict[str, Any]) -> str:
    lines = [f"PPT with training: `{res['checkpoint']}` (`{res['model']}`, {res['method']}) fine-tuned {res['epochs']} "
             f"epochs at each keep ratio (pruning at blocks {res['layers']}; its own recipe, lr x0.1; "
             f"{res['threads']} thread(s)), evaluated at that ratio.", "",
             "| keep ratio | AP | minutes |", "|---:|---:|---:|"]
    for r in res["rows"].values():
        lines.append(f"| {r['keep_ratio']:.1f} | {100 * r['AP']:.1f} | {r['minutes']:.1f} |")
    return "\n".join(lines) + "\n"


def render_checkpoint(res: dict[str, Any]) -> str:
    lines = [f"PPT without retraining on `{res['checkpoint']}` (`{res['model']}` {res['overrides']}), pruning at "
             f"blocks {res['layers']}; COCO AP on its synthetic val split; eager latency at batch 32, "
             f"{res['threads']} thread(s).", "", "| keep ratio | AP | GFLOPs | latency b32 (ms) |", "|---:|---:|---:|---:|"]
    for p in res["points"].values():
        lat = p.get("latency_b32_ms")
        lines.append(f"| {p['keep_ratio']:.1f} | {100 * p['AP']:.1f} | {p['gflops']:.4f} | "
                     f"{'-' if lat is None else f'{lat:.1f}'} |")
    return "\n".join(lines) + "\n"


def pareto(args: argparse.Namespace) -> dict[str, Any]:
    """One figure from ``sweep`` and ``checkpoint`` results (``--inputs``): every trained model's points
    relative to its own unpruned point (keep 1.0; plain ViTPose for the EViTPose runs when it is there), so
    families of different size share the axes: AP change against GFLOPs and eager batch-32 latency ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves: dict[str, list[dict[str, Any]]] = {}
    for path in args.inputs:
        res = load_json(Path(path), "token-pruning results")
        if "trained" in res:  # a sweep
            plain = next((p for p in res["points"].values() if p["keep_ratio"] is None), None)
            for run in res["trained"]:
                pts = [p for p in res["points"].values() if p["run"] == run and p["keep_ratio"] is not None]
                if pts:
                    curves[f"{run} (trained at keep {RUNS[run][2]})"] = sorted(pts, key=lambda p: -p["keep_ratio"])
            if plain is not None:
                curves["vitpose (no joint tokens)"] = [plain]
        else:  # a trained checkpoint pruned without retraining
            name = Path(res["checkpoint"]).stem
            curves[f"{res['model']} `{name}` (PPT, no retraining)"] = sorted(res["points"].values(),
                                                                               key=lambda p: -p["keep_ratio"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    out: dict[str, Any] = {}
    for label, pts in curves.items():
        plain = curves.get("vitpose (no joint tokens)") if label.startswith("evitpose") else None
        ref = plain[0] if plain else next((p for p in pts if p["keep_ratio"] == 1.0), pts[0])
        rows = []
        for p in pts:
            row = {"keep_ratio": p["keep_ratio"], "AP": p["AP"], "dAP": 100 * (p["AP"] - ref["AP"]),
                   "gflops_ratio": p["gflops"] / ref["gflops"]}
            if p.get("latency_b32_ms") and ref.get("latency_b32_ms"):
                row["latency_ratio"] = p["latency_b32_ms"] / ref["latency_b32_ms"]
            rows.append(row)
        out[label] = rows
        style = dict(marker="*", ms=12, ls="none") if len(rows) == 1 else dict(marker="o", ms=4)
        axes[0].plot([r["gflops_ratio"] for r in rows], [r["dAP"] for r in rows], label=label, **style)
        lat = [r for r in rows if "latency_ratio" in r]
        if lat:
            axes[1].plot([r["latency_ratio"] for r in lat], [r["dAP"] for r in lat], label=label, **style)
        for ax, key in ((axes[0], "gflops_ratio"), (axes[1], "latency_ratio")):
            for r in rows:
                if key in r and r["keep_ratio"] is not None and len(rows) > 1:
                    ax.annotate(f"{r['keep_ratio']:.1f}", (r[key], r["dAP"]), fontsize=6,
                                textcoords="offset points", xytext=(2, 2))
    axes[0].set_xlabel("GFLOPs / unpruned GFLOPs")
    axes[1].set_xlabel("eager CPU latency, batch 32 / unpruned")
    for ax in axes:
        ax.set_ylabel("AP change vs unpruned (points, synthetic val)")
        ax.axhline(0, color="k", lw=0.5)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle("Token pruning on a CPU budget: labels = keep ratio at inference")
    save_figure(fig, Path(args.out).with_suffix(".png"), dpi=120, close=True)
    return {"inputs": list(args.inputs), "curves": out}


def render_pareto(res: dict[str, Any]) -> str:
    lines = ["Relative to each model's unpruned point (EViTPose: plain ViTPose when given): AP change (points x100), "
             "GFLOPs and eager batch-32 latency ratios.", "",
             "| model | keep | AP | AP change | GFLOPs ratio | latency ratio |", "|---|---:|---:|---:|---:|---:|"]
    for label, rows in res["curves"].items():
        for r in rows:
            keep = "-" if r["keep_ratio"] is None else f"{r['keep_ratio']:.1f}"
            lat = r.get("latency_ratio")
            lines.append(f"| {label} | {keep} | {100 * r['AP']:.1f} | {r['dAP']:+.1f} | {r['gflops_ratio']:.2f} | "
                         f"{'-' if lat is None else f'{lat:.2f}'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("part", choices=("complexity", "latency", "sweep", "checkpoint", "finetune", "pareto"))
    p.add_argument("--inputs", nargs="+", default=[], help="pareto: sweep / checkpoint result JSONs")
    p.add_argument("--checkpoint", default=None, help="checkpoint: a trained token model to prune")
    p.add_argument("--layers", type=int, nargs="+", default=[3, 6, 9], help="checkpoint: pruning blocks")
    p.add_argument("--data-root", default=None, help="checkpoint: where its synthetic data lies")
    p.add_argument("--out", default=None, help="output stem (default benchmarks/results/token_pruning_<part>)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (sweep: 0 skips timing)")
    p.add_argument("--repeats", type=int, default=8, help="timed forwards per round at batch 1 (batch 32: / 4)")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--train-images", type=int, default=1500)
    p.add_argument("--val-images", type=int, default=150)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--ratios", type=float, nargs="+", default=[1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    args = p.parse_args(argv)
    suffix = {"complexity": "complexity", "latency": "latency_cpu", "sweep": "sweep_cpu",
              "checkpoint": "checkpoint_cpu", "finetune": "finetune_cpu", "pareto": "pareto_cpu"}[args.part]
    args.out = args.out or f"benchmarks/results/token_pruning_{suffix}"
    out = Path(args.out)
    if args.part == "complexity":
        res = complexity(args)
        text = render_complexity(res)
    elif args.part == "latency":
        res = latency(args)
        text = render_latency(res)
    elif args.part == "pareto":
        res = pareto(args)
        text = render_pareto(res)
    elif args.part == "finetune":
        if not args.checkpoint:
            p.error("finetune needs --checkpoint")
        res = finetune(args)
        text = render_finetune(res)
    elif args.part == "checkpoint":
        if not args.checkpoint:
            p.error("checkpoint needs --checkpoint")
        res = prune_checkpoint(args)
        text = render_checkpoint(res)
    else:
        res = sweep(args)
        text = render_sweep(res)
    write_json_atomic(out.with_suffix(".json"), res, indent=2)
    write_text_atomic(out.with_suffix(".md"), text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
