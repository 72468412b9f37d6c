"""DistilPose Table 4 shape on the synthetic people: which distillation terms help a regression student.

Trains a heatmap TokenPose teacher (``--epochs``) and, under one student budget (same data,
``--student-epochs``, optimiser, augmentation), seven regression students of the same TDE shape and token grid (``distilpose_tiny_synthetic``: 64x96
input, dim 64, 4 layers, 2x2 patches -> 96 visual tokens; StemNets with ``--teacher-stem-blocks`` /
``--student-stem-blocks`` Bottlenecks, 1 each by default): no distillation (L_reg only, constant keypoint
scores), +L_CS, +L_SH,
+L_SH+L_CS, +L_KT, +L_VT, all four. Every model is evaluated with COCO AP on the synthetic val split
(flip test, no DARK for the students; the teacher both without and with DARK). Writes
``ablation.json`` and ``ablation.md`` (atomically) to ``--out``.

Default data: the ``easy`` synthetic preset, 3000 train / 150 val images of 160x160 (as ``slimpose demo``).

    python benchmarks/distilpose_ablation.py --out work_dirs/bench_distilpose_ablation --student-epochs 10

Paper Table 4 (COCO val, DistilPose-S): none 56.0, +CS 63.2, +SH 56.4, +SH+CS 64.1, +KT 67.1, +VT 61.7,
+KT+VT(+SH+CS in the paper's last two rows) 67.5 / 71.6; teacher 72.5 (no extra post-processing).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slimpose.configs.distill_recipes import DistillParams, distilpose_tiny_synthetic
from slimpose.configs.recipes import tokenpose_tiny_synthetic
from slimpose.data.synth import SYNTH_PRESETS
from slimpose.engine.config import TrainConfig
from slimpose.utils.io import write_json_atomic, write_text_atomic

# name, (cs, sh, kt, vt) switches
ROWS: list[tuple[str, tuple[bool, bool, bool, bool]]] = [
    ("no_distill", (False, False, False, False)),
    ("cs", (True, False, False, False)),
    ("sh", (False, True, False, False)),
    ("sh_cs", (True, True, False, False)),
    ("kt", (False, False, True, False)),
    ("vt", (False, False, False, True)),
    ("kt_vt", (False, False, True, True)),
    ("all", (True, True, True, True)),
]
PAPER_AP = {"no_distill": 56.0, "cs": 63.2, "sh": 56.4, "sh_cs": 64.1, "kt": 67.1, "vt": 61.7, "kt_vt": None,
            "all": 71.6, "teacher": 72.5}


def shared_settings(cfg: TrainConfig, args: argparse.Namespace, work_dir: Path, epochs: int) -> TrainConfig:
    """The common budget: data, input size, ``epochs``, batch, optimiser, threads."""
    w, h = args.input_size
    cfg.data.data_root = str(args.data_root or Path(args.out) / "synthetic")
    cfg.data.synthetic_train_images = args.train_images
    cfg.data.synthetic_val_images = args.val_images
    cfg.data.synthetic_preset = args.preset
    cfg.data.synthetic_image_size = tuple(args.image_size)
    cfg.data.sigma = args.sigma
    cfg.data.input_size = (w, h)
    cfg.data.heatmap_size = (w // 4, h // 4)
    cfg.data.batch_size = args.batch_size
    cfg.data.workers = 0
    cfg.data.val_workers = 0
    cfg.optim.lr = args.lr
    cfg.schedule.epochs = epochs
    cfg.schedule.milestones = (max(1, int(epochs * 0.8)),)
    cfg.schedule.warmup_iters = 20
    cfg.eval_interval = args.eval_every or epochs
    cfg.num_threads = args.threads
    cfg.tensorboard = False
    cfg.device = "cpu"
    cfg.seed = args.seed
    cfg.work_dir = str(work_dir)
    cfg.log_interval = 1000
    return cfg


def tde_overrides() -> dict[str, Any]:
    """The TDE shape shared by teacher and students (that of ``tokenpose_tiny_synthetic``)."""
    base = dict(tokenpose_tiny_synthetic().model.overrides)
    return {k: base[k] for k in ("dim", "depth", "num_heads", "patch_size") if k in base}


def build_teacher_model(args: argparse.Namespace) -> torch.nn.Module:
    """Heatmap TokenPose with the students' TDE shape on a StemNet of ``--teacher-stem-blocks`` blocks."""
    from slimpose.models import create_model
    from slimpose.models.stemnet import StemNet

    return create_model("tokenpose_s_v1", num_keypoints=17, input_size=tuple(args.input_size),
                        backbone=StemNet(num_blocks=args.teacher_stem_blocks), **tde_overrides())


def train_teacher(args: argparse.Namespace) -> dict[str, Any]:
    from slimpose.engine.trainer import Trainer, build_task

    cfg = shared_settings(tokenpose_tiny_synthetic(), args, Path(args.out) / "teacher", args.epochs)
    cfg.name = "ablation_teacher"
    cfg.model.overrides = tde_overrides()
    cfg.dark = False
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    trainer = Trainer(cfg, task=build_task(cfg, build_teacher_model(args)))
    try:
        summary = trainer.fit()
        minutes = (time.perf_counter() - t0) / 60
        dark_cfg = copy.deepcopy(cfg)
        dark_cfg.dark = True
        dark = trainer.evaluator.run(build_task(dark_cfg, trainer.task.model), tag="dark")
    finally:
        trainer.close()
    return {"checkpoint": str(Path(cfg.work_dir) / "last.pth"), "AP": summary.get("val_AP"),
            "AP_dark": dark.get("AP"), "minutes": minutes, "history": trainer.history,
            "metrics": {k[4:]: v for k, v in summary.items() if k.startswith("val_")}}


def train_student(args: argparse.Namespace, name: str, switches: tuple[bool, bool, bool, bool],
                  teacher_ckpt: str) -> dict[str, Any]:
    from slimpose.cli.distill import make_trainer

    cs, sh, kt, vt = switches
    cfg = shared_settings(distilpose_tiny_synthetic(), args, Path(args.out) / f"student_{name}",
                          args.student_epochs or args.epochs)
    cfg.name = f"ablation_{name}"
    cfg.model.overrides = {**tde_overrides(), "stem_blocks": args.student_stem_blocks}
    cfg.distill = DistillParams(
        teacher_model="tokenpose_s_v1", teacher_checkpoint=teacher_ckpt,
        kt=args.w_kt if kt else 0.0, vt=args.w_vt if vt else 0.0, sh=args.w_sh if sh else 0.0,
        cs=args.w_cs if cs else 0.0,
    )
    t0 = time.perf_counter()
    trainer = make_trainer(cfg, teacher=build_teacher_model(args))
    try:
        summary = trainer.fit()
    finally:
        trainer.close()
    return {"switches": {"cs": cs, "sh": sh, "kt": kt, "vt": vt}, "AP": summary.get("val_AP"),
            "score_source": trainer.task.score_source, "minutes": (time.perf_counter() - t0) / 60,
            "train_loss": summary.get("train_loss"), "history": trainer.history,
            "metrics": {k[4:]: v for k, v in summary.items() if k.startswith("val_")}}


def reused_teacher(path: str) -> dict[str, Any]:
    """A teacher trained by an earlier run of this script (same settings): its AP from the run's files."""
    from slimpose.utils.io import load_json

    run = Path(path).parent
    def read(name: str) -> dict[str, Any]:
        return load_json(run / name, "teacher metrics") if (run / name).is_file() else {}

    metrics, dark = read("metrics_val.json"), read("metrics_dark.json")
    if "AP" not in metrics:  # a checkpoint shipped without its run folder (e.g. slimpose demo's): best AP
        import torch

        best = torch.load(path, map_location="cpu", weights_only=True).get("best_ap")
        metrics = {"AP": float(best)} if best is not None else {}
    return {"checkpoint": str(path), "AP": metrics.get("AP", float("nan")),
            "AP_dark": dark.get("AP", float("nan")),
            "minutes": float("nan"), "reused": True, "metrics": metrics}


def render(result: dict[str, Any]) -> str:
    t = result["teacher"]
    base = result["students"].get("no_distill", {}).get("AP")
    lines = [
        f"DistilPose Table 4 shape on synthetic people ({result['settings']['train_images']} train / "
        f"{result['settings']['val_images']} val images, teacher {result['settings']['epochs']} / students "
        f"{result['settings']['student_epochs'] or result['settings']['epochs']} epochs, "
        f"{result['settings']['threads']} CPU threads, total {result['total_minutes']:.1f} min)",
        "",
        "| model | L_CS | L_SH | L_KT | L_VT | AP | improv. vs no-distill | score source | paper AP "
        "| minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| teacher (heatmap TokenPose, no DARK) | | | | | {100 * t['AP']:.1f} | | heatmap max | "
        f"{PAPER_AP['teacher']} | {t['minutes']:.1f} |",
        f"| teacher with DARK | | | | | {100 * t['AP_dark']:.1f} | | heatmap max | 75.2 | |",
    ]
    for name, _ in ROWS:
        r = result["students"].get(name)
        if r is None:
            continue
        s = r["switches"]
        mark = lambda on: "x" if on else "-"  # noqa: E731
        imp = "" if base is None or name == "no_distill" else f"{100 * (r['AP'] - base):+.1f}"
        paper = PAPER_AP.get(name)
        lines.append(
            f"| student {name} | {mark(s['cs'])} | {mark(s['sh'])} | {mark(s['kt'])} | {mark(s['vt'])} | "
            f"{100 * r['AP']:.1f} | {imp} | {r['score_source']} | {paper if paper is not None else ''} | "
            f"{r['minutes']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="work_dirs/bench_distilpose_ablation")
    p.add_argument("--epochs", type=int, default=28, help="teacher epochs (and students', unless --student-epochs)")
    p.add_argument("--student-epochs", type=int, default=0, help="epochs of every student (0: --epochs)")
    p.add_argument("--train-images", type=int, default=3000)
    p.add_argument("--val-images", type=int, default=150)
    p.add_argument("--preset", choices=tuple(SYNTH_PRESETS), default="easy", help="synthetic data preset")
    p.add_argument("--image-size", type=int, nargs=2, default=(160, 160), metavar=("W", "H"),
                   help="synthetic image size")
    p.add_argument("--data-root", default=None, help="synthetic data folder (default OUT/synthetic; reused)")
    p.add_argument("--sigma", type=float, default=2.0, help="teacher heatmap sigma")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--input-size", type=int, nargs=2, default=(64, 96), metavar=("W", "H"))
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-every", type=int, default=0, help="epochs between evaluations (0: at the end)")
    p.add_argument("--teacher-stem-blocks", type=int, default=1)
    p.add_argument("--student-stem-blocks", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", default=",".join(n for n, _ in ROWS), help="comma-separated subset of the rows")
    p.add_argument("--teacher-checkpoint", default=None, help="reuse a teacher trained by an earlier run")
    p.add_argument("--w-kt", type=float, default=5e-4)
    p.add_argument("--w-vt", type=float, default=5e-4)
    p.add_argument("--w-sh", type=float, default=1.0)
    p.add_argument("--w-cs", type=float, default=1e-2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    wanted = [r for r in args.rows.split(",") if r]
    unknown = sorted(set(wanted) - {n for n, _ in ROWS})
    if unknown:
        p.error(f"unknown rows {unknown}")
    t0 = time.perf_counter()
    out = Path(args.out)
    result: dict[str, Any] = {
        "settings": {k: v for k, v in vars(args).items()},
        "teacher": None,
        "students": {},
    }
    if args.teacher_checkpoint:
        result["teacher"] = reused_teacher(args.teacher_checkpoint)
    else:
        result["teacher"] = train_teacher(args)
    print(f"[ablation] teacher AP {result['teacher']['AP']:.4f} (DARK {result['teacher']['AP_dark']:.4f})",
          file=sys.stderr)
    for name, switches in ROWS:
        if name not in wanted:
            continue
        result["students"][name] = train_student(args, name, switches, result["teacher"]["checkpoint"])
        result["total_minutes"] = (time.perf_counter() - t0) / 60
        print(f"[ablation] {name}: AP {result['students'][name]['AP']:.4f}", file=sys.stderr)
        write_json_atomic(out / "ablation.json", result, indent=2)  # partial results survive an interruption
    result["total_minutes"] = (time.perf_counter() - t0) / 60
    table = render(result)
    print(table)
    write_json_atomic(out / "ablation.json", result, indent=2)
    write_text_atomic(out / "ablation.md", table + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
