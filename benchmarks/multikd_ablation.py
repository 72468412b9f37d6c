"""The shape of the Multi-KD paper's Table 3 on synthetic people in the MPII skeleton, on a CPU budget.

    python benchmarks/multikd_ablation.py --out benchmarks/results/multikd_ablation_cpu

Trains one SA-SimDR HRNet teacher (``hrnet_w32_simcc_synth_mpii``: width 16 at 64x64) and, for every seed,
the six Lite-HRNet-18 SA-SimDR students of Table 3 under one budget (same data, epochs, optimiser and
augmentation; ``litehrnet_18_simcc_synth_mpii``): no KD, +Cross-stage, +MFT, +WA, +MFT+WA, and all four
(+VKD). Every model is scored with PCKh@0.5 (the official MPII mean) on the synthetic val split, flip
test on. Results are written after every run (``OUT.json``; a rerun skips the runs already there), then
``OUT.md`` and ``OUT.png``. ``--teacher-checkpoint`` reuses a trained teacher.

Paper Table 3 (MPII val, PCKh@0.5, Lite-HRNet-18 / -30): 85.9 / 86.7, 86.8 / 87.6, 87.3 / 88.4, 87.1 / 88.1,
87.5 / 88.7, 87.7 / 88.9.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from slimpose.config.recipes.litehrnet import hrnet_w32_simcc_synth_mpii, litehrnet_18_simcc_synth_mpii
from slimpose.config.schema import MultiKDConfig, ScheduleConfig, TrainConfig
from slimpose.utils.io import load_json, write_json_atomic, write_text_atomic
from slimpose.visualization import save_figure

# name, label, (cross_stage, mft, wa, vkd)
ROWS: list[tuple[str, str, tuple[bool, bool, bool, bool]]] = [
    ("no_kd", "no KD", (False, False, False, False)),
    ("cross", "+Cross-stage", (True, False, False, False)),
    ("cross_mft", "+Cross-stage +MFT", (True, True, False, False)),
    ("cross_wa", "+Cross-stage +WA", (True, False, True, False)),
    ("cross_mft_wa", "+Cross-stage +MFT +WA", (True, True, True, False)),
    ("all", "all four (+VKD)", (True, True, True, True)),
]
PAPER_18 = {"no_kd": 85.9, "cross": 86.8, "cross_mft": 87.3, "cross_wa": 87.1, "cross_mft_wa": 87.5, "all": 87.7}


def shared(cfg: TrainConfig, args: argparse.Namespace, work_dir: Path, epochs: int, seed: int) -> TrainConfig:
    """The settings every run shares: data, budget, threads."""
    cfg = copy.deepcopy(cfg)
    d = cfg.data
    d.data_root = str(Path(args.out).parent / f"{Path(args.out).name}_data")
    d.synthetic_train_images, d.synthetic_val_images = args.train_images, args.val_images
    d.workers = d.val_workers = args.workers
    cfg.work_dir, cfg.seed, cfg.num_threads, cfg.tensorboard = str(work_dir), seed, args.threads, False
    cfg.schedule = ScheduleConfig(epochs=epochs, warmup_iters=50, warmup_ratio=1e-3, milestones=(int(epochs * 0.8),))
    cfg.eval_interval = epochs  # score the last epoch only (the budget is the same for every row)
    return cfg


def run(cfg: TrainConfig) -> dict[str, Any]:
    from slimpose.training import fit_config

    t0 = time.perf_counter()
    summary, _ = fit_config(cfg)
    return {"PCKh": 100.0 * float(summary["val_PCKh"]), "minutes": (time.perf_counter() - t0) / 60,
            "train_loss": summary.get("train_loss"), "run_dir": cfg.work_dir,
            "metrics": {k[4:]: v for k, v in summary.items() if k.startswith("val_")}}


def student_cfg(args: argparse.Namespace, name: str, switches: tuple[bool, ...], seed: int,
                teacher_ckpt: str) -> TrainConfig:
    cross, mft, wa, vkd = switches
    cfg = shared(litehrnet_18_simcc_synth_mpii(), args, Path(args.out + "_runs") / f"{name}_seed{seed}",
                 args.student_epochs, seed)
    cfg.name = f"multikd_{name}_seed{seed}"
    kd = any(switches)
    cfg.multikd = MultiKDConfig(teacher_model="hrnet_w32_simcc", teacher_checkpoint=teacher_ckpt if kd else None,
                                fkd=args.w_fkd if cross else 0.0, vkd=args.w_vkd if vkd else 0.0,
                                cross_stage=cross, mft=mft, wa=wa)
    return cfg


def render(result: dict[str, Any]) -> str:
    t = result.get("teacher") or {}
    lines = [f"Multi-KD Table 3 shape, synthetic MPII-skeleton people, {result['settings']['student_epochs']} student "
             f"epochs, {result['settings']['train_images']} train / {result['settings']['val_images']} val images, "
             f"64x64 crops, CPU. PCKh@0.5 (official mean, %) on the synthetic val split, flip test.", "",
             f"Teacher (SA-SimDR HRNet width 16, {result['settings']['teacher_epochs']} epochs): "
             f"{t.get('PCKh', float('nan')):.2f} ({t.get('minutes', float('nan')):.1f} min)", "",
             "| row | Cross-stage | MFT | WA | VKD | " + " | ".join(f"seed {s}" for s in result["settings"]["seeds"])
             + " | mean | paper (LiteHRNet-18, MPII) |", "|---|:-:|:-:|:-:|:-:|" + "---:|" * (len(result["settings"]["seeds"]) + 2)]
    for name, label, sw in ROWS:
        vals = [result["students"].get(f"{name}_seed{s}", {}).get("PCKh") for s in result["settings"]["seeds"]]
        got = [v for v in vals if v is not None]
        mean = f"{statistics.fmean(got):.2f}" if got else "-"
        marks = " | ".join("x" if on else "" for on in sw)
        lines.append(f"| {label} | {marks} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in vals)
                     + f" | {mean} | {PAPER_18[name]} |")
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (name, label, _) in enumerate(ROWS):
        vals = [result["students"].get(f"{name}_seed{s}", {}).get("PCKh") for s in result["settings"]["seeds"]]
        vals = [v for v in vals if v is not None]
        if vals:
            ax.bar(i, statistics.fmean(vals), color="#4c72b0", alpha=0.7)
            ax.scatter([i] * len(vals), vals, color="k", s=12, zorder=3)
    t = (result.get("teacher") or {}).get("PCKh")
    if t is not None:
        ax.axhline(t, color="#c44e52", ls="--", label=f"teacher {t:.1f}")
        ax.legend(loc="lower right")
    ax.set_xticks(range(len(ROWS)), [label for _, label, _ in ROWS], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("PCKh@0.5 (%)")
    ax.set_title("Multi-KD ablation (synthetic MPII-skeleton people, CPU budget)")
    save_figure(fig, path, dpi=120, close=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/multikd_ablation_cpu", help="output stem (.json/.md/.png)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--rows", default=",".join(r[0] for r in ROWS), help="comma-separated row names")
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--student-epochs", type=int, default=16)
    p.add_argument("--train-images", type=int, default=600)
    p.add_argument("--val-images", type=int, default=150)
    # the seed gives no weights: each term about the size of the task loss at the start (docs/multikd.md)
    p.add_argument("--w-fkd", type=float, default=5e-4)
    p.add_argument("--w-vkd", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--teacher-checkpoint", default=None, help="reuse a trained teacher (its last.pth)")
    args = p.parse_args(argv)
    out = Path(args.out)
    json_path = out.with_suffix(".json")
    result: dict[str, Any] = load_json(json_path, "ablation results") if json_path.is_file() else {}
    result["settings"] = {k: getattr(args, k) for k in ("seeds", "teacher_epochs", "student_epochs", "train_images",
                                                          "val_images", "w_fkd", "w_vkd", "threads")}
    result.setdefault("students", {})
    if args.teacher_checkpoint:
        result.setdefault("teacher", {"checkpoint": args.teacher_checkpoint, "reused": True})
    if not (result.get("teacher") or {}).get("checkpoint"):
        cfg = shared(hrnet_w32_simcc_synth_mpii(), args, Path(args.out + "_runs") / "teacher", args.teacher_epochs, 0)
        print(f"[multikd_ablation] teacher: {args.teacher_epochs} epochs", file=sys.stderr)
        result["teacher"] = {**run(cfg), "checkpoint": str(Path(cfg.work_dir) / "last.pth")}
        write_json_atomic(json_path, result, indent=2)
    wanted = [r for r in ROWS if r[0] in args.rows.split(",")]
    for seed in args.seeds:
        for name, label, switches in wanted:
            key = f"{name}_seed{seed}"
            if key in result["students"]:
                continue
            print(f"[multikd_ablation] {label}, seed {seed}", file=sys.stderr)
            res = run(student_cfg(args, name, switches, seed, result["teacher"]["checkpoint"]))
            result["students"][key] = {**res, "switches": dict(zip(("cross_stage", "mft", "wa", "vkd"), switches))}
            write_json_atomic(json_path, result, indent=2)
            write_text_atomic(out.with_suffix(".md"), render(result))
    text = render(result)
    write_text_atomic(out.with_suffix(".md"), text)
    plot(result, out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
