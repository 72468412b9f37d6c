"""UniTransPose evidence on a CPU budget: architecture, JAGL and decoder ablations, single vs unified training.

    python benchmarks/unitranspose.py complexity --out benchmarks/results/unitranspose_complexity
    python benchmarks/unitranspose.py prepare --out benchmarks/results/unitranspose_cpu
    python benchmarks/unitranspose.py train --out benchmarks/results/unitranspose_cpu --rows utp_t,tokenpose_s
    python benchmarks/unitranspose.py report --out benchmarks/results/unitranspose_cpu

``complexity``: params and GFLOPs (conv + linear MACs; with attention products too) at 256x192 of
``unitranspose_{t,s,b}`` beside TokenPose-S-v1, ViTPose-S and ViTPose-B, and of the ablation variants.

``train``: every row trains under one budget (the ``unitranspose_synth`` recipe: synthetic people at 96x128,
the same images, epochs, batch, AdamW, augmentation and one thread; only the model or the data sources change)
and is scored on the synthetic val split of each data set it is evaluated on, in that set's own skeleton and
metric (COCO AP; PCKh@0.5 for the MPII skeleton), flip test on. Each row is written to ``OUT_runs/<row>.json``
as soon as it ends (a rerun skips finished rows, so rows can run in parallel processes); ``report`` gathers
them into ``OUT.json``, ``OUT.md`` and ``OUT.png``. ``prepare`` writes the synthetic data of every row first
(COCO, MPII and AIC skeletons; run it once before parallel ``train`` processes).

The single-data-set rows and the unified row see the same images of each skeleton (the same seeds); the
unified row trains on all three sets, so it makes three times the iterations per epoch.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from slimpose.config.recipes.unitranspose import unitranspose_synth
from slimpose.config.schema import DataSource, ModelConfig, TrainConfig
from slimpose.utils.io import load_json, write_json_atomic, write_text_atomic
from slimpose.visualization import save_figure

# row -> (label, model name, model overrides, sources ("coco" / "mpii" / "aic"; several = unified), evaluated on)
ROWS: dict[str, tuple[str, str, dict[str, Any], tuple[str, ...]]] = {
    "utp_t": ("UniTransPose-T (JAGL, sub-pixel, hybrid)", "unitranspose_t", {}, ("coco",)),
    "tokenpose_s": ("TokenPose-S-v1", "tokenpose_s_v1", {}, ("coco",)),
    "vitpose_s": ("ViTPose-S", "vitpose_s", {}, ("coco",)),
    "utp_t_heatmap": ("UniTransPose-T, heatmap head only", "unitranspose_t", {"head": "heatmap"}, ("coco",)),
    "utp_t_local": ("  local attention only", "unitranspose_t", {"head": "heatmap", "attention": "local"}, ("coco",)),
    "utp_t_global": ("  global (joint-token) path only", "unitranspose_t", {"head": "heatmap", "attention": "global"},
                     ("coco",)),
    "utp_t_deconv": ("  deconvolution decoder", "unitranspose_t", {"head": "heatmap", "upsample": "deconv"}, ("coco",)),
    "utp_t_mpii": ("UniTransPose-T on MPII-skeleton people only", "unitranspose_t", {}, ("mpii",)),
    "utp_t_aic": ("UniTransPose-T on AIC-skeleton people only", "unitranspose_t", {}, ("aic",)),
    "utp_t_unified": ("UniTransPose-T unified (COCO + MPII + AIC)", "unitranspose_t", {}, ("coco", "mpii", "aic")),
}
DATASETS = {"coco": "synthetic", "mpii": "synthetic_mpii", "aic": "synthetic_aic"}
SEEDS = {"coco": 0, "mpii": 10, "aic": 20}  # = the unified run's: main seed 0, extra source i seed 10 (i + 1)


def row_config(args: argparse.Namespace, row: str) -> TrainConfig:
    """The ``unitranspose_synth`` budget with this row's model and data sources."""
    _, model, overrides, sources = ROWS[row]
    cfg = copy.deepcopy(unitranspose_synth())
    data_root = Path(args.data_dir) if args.data_dir else Path(args.out).parent / f"{Path(args.out).name}_data"
    d = cfg.data
    d.dataset, d.data_root, d.synthetic_seed = DATASETS[sources[0]], str(data_root / sources[0]), SEEDS[sources[0]]
    d.synthetic_train_images, d.synthetic_val_images = args.train_images, args.val_images
    if len(sources) > 1:
        d.skeleton = "unified"
        d.extra_train = [DataSource(DATASETS[s], str(data_root / s)) for s in sources[1:]]
    cfg.model = ModelConfig(name=model, overrides=dict(overrides))
    cfg.name = f"utp_bench_{row}"
    cfg.work_dir = str(Path(args.out + "_runs") / row)
    cfg.seed, cfg.num_threads = args.seed, args.threads
    cfg.schedule = dataclasses.replace(cfg.schedule, epochs=args.epochs, milestones=(max(1, int(args.epochs * 0.8)),))
    cfg.optim = dataclasses.replace(cfg.optim, lr=args.lr)
    cfg.eval_interval = args.epochs
    return cfg


def complexity(args: argparse.Namespace) -> int:
    from slimpose.engine.complexity import count_flops, count_params
    from slimpose.models import create_model

    rows = [("unitranspose_t", {}), ("unitranspose_s", {}), ("unitranspose_b", {}), ("tokenpose_s_v1", {}),
            ("vitpose_s", {}), ("vitpose_b", {}), ("unitranspose_t", {"head": "heatmap"}),
            ("unitranspose_t", {"head": "regression"}), ("unitranspose_t", {"head": "heatmap", "attention": "local"}),
            ("unitranspose_t", {"head": "heatmap", "attention": "global"}),
            ("unitranspose_t", {"head": "heatmap", "upsample": "deconv"})]
    out = []
    for name, overrides in rows:
        m = create_model(name, **overrides)
        fl = count_flops(m)
        out.append({"model": name, "overrides": overrides, "params_M": count_params(m) / 1e6,
                    "gflops": fl["gflops"], "gflops_with_attention": fl["gflops_with_attention"]})
        print(out[-1], flush=True)
    lines = ["UniTransPose complexity at 256x192 (GFLOPs = conv + linear multiply-accumulates, "
             "`slimpose.engine.complexity`).", "", "| model | overrides | params (M) | GFLOPs | GFLOPs w/ attn |",
             "|---|---|---:|---:|---:|"]
    for r in out:
        ov = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "-"
        lines.append(f"| `{r['model']}` | {ov} | {r['params_M']:.2f} | {r['gflops']:.3f} | {r['gflops_with_attention']:.3f} |")
    write_json_atomic(Path(args.out + ".json"), out, indent=2)
    write_text_atomic(Path(args.out + ".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def prepare(args: argparse.Namespace) -> int:
    from slimpose.engine.builders import prepare_synthetic

    for row in ("utp_t_unified", "utp_t_mpii", "utp_t_aic"):
        prepare_synthetic(row_config(args, row))
    return 0


def train_row(args: argparse.Namespace, row: str) -> dict[str, Any]:
    from slimpose.engine.builders import source_configs
    from slimpose.engine.complexity import count_flops, count_params
    from slimpose.engine.trainer import evaluate_checkpoint
    from slimpose.training import build_config_model, fit_config

    cfg = row_config(args, row)
    t0 = time.perf_counter()
    summary, _ = fit_config(cfg)
    minutes = (time.perf_counter() - t0) / 60
    ckpt = Path(cfg.work_dir) / "last.pth"
    scores: dict[str, dict[str, float]] = {}
    for label, c in source_configs(cfg):
        m = evaluate_checkpoint(c, ckpt, out_dir=cfg.work_dir, tag=f"eval_{label}",
                                build=lambda c: build_config_model(c, load_pretrained=False))
        key = "PCKh" if "PCKh" in m else "AP"
        scores[label] = {"metric": key, "value": 100.0 * float(m[key])}
    model = build_config_model(cfg, load_pretrained=False)
    fl = count_flops(model)
    return {"row": row, "label": ROWS[row][0], "model": cfg.model.name, "overrides": cfg.model.overrides,
            "sources": list(ROWS[row][3]), "scores": scores, "minutes": minutes,
            "train_loss": summary.get("train_loss"), "params_M": count_params(model) / 1e6,
            "gflops_96x128": fl["gflops"], "settings": settings(args)}


def settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"epochs": args.epochs, "train_images": args.train_images, "val_images": args.val_images,
            "seed": args.seed, "threads": args.threads, "input_size": [96, 128], "lr": args.lr}


def train(args: argparse.Namespace) -> int:
    runs = Path(args.out + "_runs")
    for row in args.rows.split(","):
        if row not in ROWS:
            raise SystemExit(f"unknown row {row!r} (choose from {', '.join(ROWS)})")
        path = runs / f"{row}.json"
        if path.is_file():
            print(f"{row}: done already ({path})", flush=True)
            continue
        result = train_row(args, row)
        write_json_atomic(path, result, indent=2)
        print(f"{row}: {result['scores']} in {result['minutes']:.1f} min", flush=True)
    return 0


def render(results: dict[str, Any]) -> str:
    s = next(iter(results.values()))["settings"]
    lines = [f"UniTransPose on synthetic people, CPU budget: {s['epochs']} epochs of {s['train_images']} train images "
             f"per data set, {s['val_images']} val images, 96x128 crops, batch 8, AdamW {s.get('lr', 1e-3):g}, "
             f"{s['threads']} thread, "
             f"seed {s['seed']}. Scores on each synthetic val split in its own skeleton: COCO AP (%) for the COCO and "
             "AIC skeletons, PCKh@0.5 (%) for MPII; flip test. Wall minutes of training on a shared 2-core machine "
             "(two rows ran at a time): indicative only.", "",
             "| row | params (M) | GFLOPs @96x128 | trained on | COCO AP | MPII PCKh | AIC AP | wall min |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for row in ROWS:
        r = results.get(row)
        if r is None:
            continue
        cells = [f"{r['scores'][DATASETS[k]]['value']:.2f}" if DATASETS[k] in r["scores"] else "-"
                 for k in ("coco", "mpii", "aic")]
        lines.append(f"| {r['label']} | {r['params_M']:.2f} | {r['gflops_96x128']:.3f} | {' + '.join(r['sources'])} | "
                     + " | ".join(cells) + f" | {r['minutes']:.1f} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for row, r in results.items():
        if "synthetic" in r["scores"]:
            ax.scatter(r["gflops_96x128"], r["scores"]["synthetic"]["value"], s=30)
            ax.annotate(row, (r["gflops_96x128"], r["scores"]["synthetic"]["value"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("GFLOPs at 96x128")
    ax.set_ylabel("COCO AP on synthetic val (%)")
    ax.set_title("UniTransPose rows, one CPU budget")
    save_figure(fig, path, dpi=120, close=True)


def report(args: argparse.Namespace) -> int:
    runs = Path(args.out + "_runs")
    results = {p.stem: load_json(p) for p in sorted(runs.glob("*.json"))}
    if not results:
        raise SystemExit(f"no finished rows under {runs}")
    write_json_atomic(Path(args.out + ".json"), results, indent=2)
    text = render(results)
    write_text_atomic(Path(args.out + ".md"), text)
    plot(results, Path(args.out + ".png"))
    print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("complexity", "prepare", "train", "report"))
    p.add_argument("--out", default="benchmarks/results/unitranspose_cpu", help="output stem")
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows (train)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--train-images", type=int, default=400)
    p.add_argument("--val-images", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (the recipe's: 1e-3)")
    p.add_argument("--data-dir", default=None, help="synthetic data folder (default OUT_data; share it between runs)")
    args = p.parse_args(argv)
    return {"complexity": complexity, "prepare": prepare, "train": train, "report": report}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
