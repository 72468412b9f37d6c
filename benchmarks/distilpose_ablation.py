"""DistilPose Table 4 shape on the synthetic people: which distillation terms help a regression student.

Trains a heatmap TokenPose teacher (``--epochs``) and, under the same budget (same data, epochs, optimiser,
augmentation), the regression students of Table 4, all of the same TDE shape and token grid
(``distilpose_tiny_synthetic``: 64x96 input, dim 64, 4 layers, 2x2 patches -> 96 visual tokens; StemNets
with ``--teacher-stem-blocks`` / ``--student-stem-blocks`` Bottlenecks, 1 each by default): no
distillation (L_reg only, constant keypoint scores), +L_CS, +L_SH, +L_SH+L_CS, +L_KT, +L_VT, +L_KT+L_VT,
all four. Every model is evaluated with COCO AP and AR on the synthetic val split (flip test, no DARK for
the students; the teacher both without and with DARK) and, with ``--eval-val``, on a second (larger)
split. Writes ``ablation.json``, ``ablation.md`` and ``ablation.png`` (atomically) to ``--out``.

Default data: the ``easy`` synthetic preset, 3000 train / 150 val images of 160x160 (as ``slimpose demo``).
Defaults (40 epochs, Adam 5e-4, rotation 20 deg, scale 0.2, no half body) are the measured setting of
``docs/distilpose.md``; one serial run takes about 2.5 h on 2 CPU cores. Rows can be trained side by side
(``--rows`` against one ``--teacher-checkpoint``) and combined with ``--merge``:

    python benchmarks/distilpose_ablation.py --out work_dirs/abl/teacher --rows ""   # data: OUT/synthetic
    python benchmarks/distilpose_ablation.py --out work_dirs/abl/a --rows no_distill,cs,sh,sh_cs --threads 1 \
        --teacher-checkpoint work_dirs/abl/teacher/teacher/last.pth --data-root work_dirs/abl/teacher/synthetic &
    python benchmarks/distilpose_ablation.py --out work_dirs/abl/b --rows kt,vt,kt_vt,all --threads 1 \
        --teacher-checkpoint work_dirs/abl/teacher/teacher/last.pth --data-root work_dirs/abl/teacher/synthetic
    python benchmarks/distilpose_ablation.py --out work_dirs/abl/table \
        --merge work_dirs/abl/teacher work_dirs/abl/a work_dirs/abl/b

Paper Table 4 (COCO val, DistilPose-S): none 56.0, +CS 63.2, +SH 56.4, +SH+CS 64.1, +KT 67.1, +VT 61.7,
+KT+VT 67.5, all four 71.6; teacher 72.5 without DARK (75.2 with).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from slimpose.config import DistilPoseConfig, TrainConfig, apply_override
from slimpose.config.recipes.distilpose import distilpose_tiny_synthetic
from slimpose.config.recipes.topdown import tokenpose_tiny_synthetic
from slimpose.data.synth import SYNTH_PRESETS
from slimpose.demo import DemoSizes
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
PAPER_AP = {"no_distill": 56.0, "cs": 63.2, "sh": 56.4, "sh_cs": 64.1, "kt": 67.1, "vt": 61.7, "kt_vt": 67.5,
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
    cfg.data.aug.rotation_factor = args.rotation
    cfg.data.aug.scale_factor = args.scale_factor
    cfg.data.aug.half_body_prob = args.half_body_prob
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
    for assignment in args.set:  # the same overrides for teacher and students (the shared budget)
        apply_override(cfg, assignment)
    return cfg


def tde_overrides() -> dict[str, Any]:
    """The TDE shape shared by teacher and students (that of ``tokenpose_tiny_synthetic``)."""
    base = dict(tokenpose_tiny_synthetic().model.overrides)
    return {k: base[k] for k in ("dim", "depth", "num_heads", "patch_size") if k in base}


def teacher_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """``tokenpose_s_v1`` keywords of the teacher: the students' TDE shape on a ``--teacher-stem-blocks`` StemNet."""
    return {**tde_overrides(), "stem_blocks": args.teacher_stem_blocks}


def build_teacher_model(args: argparse.Namespace) -> torch.nn.Module:
    """Heatmap TokenPose with the students' TDE shape (what the teacher's ``config.json`` rebuilds too)."""
    from slimpose.models import create_model

    return create_model("tokenpose_s_v1", num_keypoints=17, input_size=tuple(args.input_size),
                        **teacher_overrides(args))


def train_teacher(args: argparse.Namespace) -> dict[str, Any]:
    from slimpose.engine.builders import build_topdown_task
    from slimpose.engine.hooks import EvalHook
    from slimpose.training import make_trainer

    cfg = shared_settings(tokenpose_tiny_synthetic(), args, Path(args.out) / "teacher", args.epochs)
    cfg.name = "ablation_teacher"
    cfg.model.overrides = teacher_overrides(args)  # config.json must rebuild this exact model
    cfg.dark = False
    t0 = time.perf_counter()
    trainer = make_trainer(cfg)
    try:
        summary = trainer.fit()
        minutes = (time.perf_counter() - t0) / 60
        dark_cfg = copy.deepcopy(cfg)
        dark_cfg.dark = True
        dark = trainer.hook(EvalHook).evaluator.run(build_topdown_task(dark_cfg, trainer.task.model), tag="dark")
    finally:
        trainer.close()
    return {"checkpoint": str(Path(cfg.work_dir) / "last.pth"), "AP": summary.get("val_AP"),
            "AP_dark": dark.get("AP"), "metrics_dark": dark, "minutes": minutes, "history": trainer.history,
            "metrics": {k[4:]: v for k, v in summary.items() if k.startswith("val_")}}


def train_student(args: argparse.Namespace, name: str, switches: tuple[bool, bool, bool, bool],
                  teacher_ckpt: str) -> dict[str, Any]:
    from slimpose.training import make_trainer

    cs, sh, kt, vt = switches
    cfg = shared_settings(distilpose_tiny_synthetic(), args, Path(args.out) / f"student_{name}",
                          args.student_epochs or args.epochs)
    cfg.name = f"ablation_{name}"
    cfg.model.overrides = {**tde_overrides(), "stem_blocks": args.student_stem_blocks}
    cfg.distill = DistilPoseConfig(
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
            "run_dir": cfg.work_dir,
            "score_source": trainer.task.head.score_source, "minutes": (time.perf_counter() - t0) / 60,
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
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        best = (ckpt.get("best") or {}).get("value", ckpt.get("best_ap"))  # ``best_ap``: older checkpoints
        metrics = {"AP": float(best)} if best is not None else {}
    return {"checkpoint": str(path), "AP": metrics.get("AP", float("nan")),
            "AP_dark": dark.get("AP", float("nan")), "metrics_dark": dark,
            "minutes": float("nan"), "reused": True, "metrics": metrics}


def _pct(metrics: dict[str, Any] | None, key: str) -> str:
    value = (metrics or {}).get(key)
    return "" if value is None or value != value else f"{100 * value:.1f}"


class TableRow(NamedTuple):
    """One model of the table and the plot: its metrics on the run's val split and on ``--eval-val``'s."""

    label: str  # in the table
    short: str  # in the plot
    switches: dict[str, bool] | None  # None: the teacher
    metrics: dict[str, Any]
    metrics_eval: dict[str, Any] | None
    score_source: str
    paper_ap: float | None
    minutes: float | None
    is_baseline: bool = False


def table_rows(result: dict[str, Any]) -> list[TableRow]:
    """Teacher (without and with DARK), then the students in the order of ``ROWS``."""
    t = result["teacher"]
    rows = [TableRow("teacher (heatmap TokenPose, no DARK)", "teacher", None, t.get("metrics") or {"AP": t["AP"]},
                     t.get("metrics_eval"), "heatmap max", PAPER_AP["teacher"], t["minutes"]),
            TableRow("teacher with DARK", "teacher + DARK", None, t.get("metrics_dark") or {"AP": t["AP_dark"]},
                     t.get("metrics_eval_dark"), "heatmap max", 75.2, None)]
    for name, _ in ROWS:
        r = result["students"].get(name)
        if r is not None:
            rows.append(TableRow(f"student {name}", f"student {name}", r["switches"], r.get("metrics") or {"AP": r["AP"]},
                                 r.get("metrics_eval"), r["score_source"], PAPER_AP.get(name), r["minutes"],
                                 is_baseline=name == "no_distill"))
    return rows


def render(result: dict[str, Any]) -> str:
    """The Markdown table: AP and AR (x100) on the run's val split and, after ``--eval-val``, on that split.

    AR does not depend on the instance scores (one prediction per ground-truth box), so it isolates the
    localisation; AP also ranks the instances by score (the effect of a learned confidence, L_CS).
    """
    st = result["settings"]
    extra = "eval_split" in result
    rows = table_rows(result)
    base = next((r for r in rows if r.is_baseline), None)
    header = "| model | L_CS | L_SH | L_KT | L_VT | AP | AR | AP vs no-distill |"
    if extra:
        n = result["eval_split"].get("people", "")
        header += f" AP ({n} people) | AR ({n}) | AP ({n}) vs no-distill |"
    header += " score source | paper AP | minutes |"
    lines = [
        f"DistilPose Table 4 shape on synthetic people ({st['train_images']} train / {st['val_images']} val "
        f"images, teacher {st['epochs']} / students {st['student_epochs'] or st['epochs']} epochs, "
        f"{st['threads']} CPU thread(s) per run, total {result['total_minutes']:.1f} min of training); "
        "AP and AR x100",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]

    def gain(row: TableRow, metrics: dict[str, Any] | None, base_metrics: dict[str, Any] | None) -> str:
        if row.switches is None or row.is_baseline or metrics is None or base_metrics is None:
            return ""
        return f"{100 * (metrics['AP'] - base_metrics['AP']):+.1f}"

    for r in rows:
        flags = " | ".join(("x" if r.switches[k] else "-") if r.switches else "" for k in ("cs", "sh", "kt", "vt"))
        line = (f"| {r.label} | {flags} | {_pct(r.metrics, 'AP')} | {_pct(r.metrics, 'AR')} | "
                f"{gain(r, r.metrics, base and base.metrics)} |")
        if extra:
            line += (f" {_pct(r.metrics_eval, 'AP')} | {_pct(r.metrics_eval, 'AR')} | "
                     f"{gain(r, r.metrics_eval, base and base.metrics_eval)} |")
        line += (f" {r.score_source} | {'' if r.paper_ap is None else r.paper_ap} | "
                 f"{'' if r.minutes is None else f'{r.minutes:.1f}'} |")
        lines.append(line)
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """``ablation.png``: AP of every row (x100) on the val split(s) of this run beside the paper's Table 4 AP."""
    from slimpose.visualization import plot_bar_panels

    rows = table_rows(result)

    def ap(metrics: dict[str, Any] | None) -> float | None:
        value = (metrics or {}).get("AP")
        return None if value is None or value != value else 100 * value  # NaN: no bar

    panels = {f"AP x100, synthetic val ({result['settings']['val_images']} images)": [ap(r.metrics) for r in rows]}
    if "eval_split" in result:
        panels[f"AP x100, second split ({result['eval_split'].get('people', '?')} people)"] = \
            [ap(r.metrics_eval) for r in rows]
    panels["AP, COCO val (paper Table 4)"] = [r.paper_ap for r in rows]
    return plot_bar_panels([r.short for r in rows], panels, path, title="DistilPose Table 4 shape")


def reevaluate(result: dict[str, Any], ann: str, images: str) -> None:
    """Every model of ``result`` again on another validation split (``metrics_eval``), e.g. a larger one.

    150 val people give AP / AR steps of ~0.7 points; a 1000-image split shows the differences between
    rows with less noise. The teacher is evaluated without and with DARK; a teacher checkpoint without its
    run folder (``config.json``) is skipped.
    """
    import tempfile

    from slimpose.config import get_config
    from slimpose.engine.trainer import evaluate_checkpoint

    def run(run_dir: Path, dark: bool | None = None) -> dict[str, float]:
        cfg = get_config(str(run_dir / "config.json"))
        if dark is not None:  # the teacher: runs before the stem was recorded in its config had 1 block
            cfg.model.overrides.setdefault("stem_blocks", result["settings"].get("teacher_stem_blocks", 1))
        cfg.data.val_ann, cfg.data.val_images = ann, images
        cfg.num_threads = torch.get_num_threads()
        if dark is not None:
            cfg.dark = dark
        with tempfile.TemporaryDirectory() as tmp:
            return evaluate_checkpoint(cfg, run_dir / "last.pth", out_dir=tmp)

    teacher_dir = Path(result["teacher"]["checkpoint"]).parent
    if (teacher_dir / "config.json").is_file():
        result["teacher"]["metrics_eval"] = run(teacher_dir, dark=False)
        result["teacher"]["metrics_eval_dark"] = run(teacher_dir, dark=True)
    for name, row in result["students"].items():
        row["metrics_eval"] = run(Path(row["run_dir"]))
        print(f"[ablation] {name} on {ann}: AP {row['metrics_eval']['AP']:.4f}", file=sys.stderr)
    evaluated = [row["metrics_eval"] for row in result["students"].values()] + [result["teacher"].get("metrics_eval")]
    people = max(int((m or {}).get("num_predictions", 0)) for m in evaluated)  # GT boxes: one per person
    result["eval_split"] = {"ann": ann, "images": images, "people": people}


def merge(parts: list[str]) -> dict[str, Any]:
    """One result from runs that trained disjoint ``--rows`` against the same teacher (e.g. side by side).

    The teacher's record is the first part's: list the run that trained the teacher first. ``total_minutes``
    is the sum over the parts (the training time, not the wall time of parts run side by side).
    """
    from slimpose.utils.io import SlimposeInputError, load_json

    results = [load_json(Path(p) / "ablation.json", "ablation result") for p in parts]
    merged = copy.deepcopy(results[0])
    for part, r in zip(parts[1:], results[1:]):
        if r["teacher"]["checkpoint"] != merged["teacher"]["checkpoint"]:
            raise SlimposeInputError(f"{part}/ablation.json: teacher {r['teacher']['checkpoint']} differs from "
                                     f"{parts[0]}'s {merged['teacher']['checkpoint']}; only runs of one teacher merge")
        merged["students"].update(r["students"])
    if Path(merged["teacher"]["checkpoint"]).is_file():  # the teacher's final metrics, from its run folder
        fresh = reused_teacher(merged["teacher"]["checkpoint"])
        merged["teacher"].update({k: fresh[k] for k in ("AP", "AP_dark", "metrics", "metrics_dark")})
    for part, r in zip(parts, results):  # results written before run_dir was recorded
        for name, row in r["students"].items():
            merged["students"][name].setdefault("run_dir", str(Path(part) / f"student_{name}"))
    merged["students"] = {n: merged["students"][n] for n, _ in ROWS if n in merged["students"]}
    merged["total_minutes"] = sum(r.get("total_minutes", 0.0) for r in results)
    merged["merged_from"] = list(parts)
    return merged


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo = DemoSizes()  # data and training setting default to the demo's (one place for both)
    p.add_argument("--out", default="work_dirs/bench_distilpose_ablation")
    p.add_argument("--epochs", type=int, default=demo.teacher_epochs,
                   help="teacher epochs (and students', unless --student-epochs)")
    p.add_argument("--student-epochs", type=int, default=0, help="epochs of every student (0: --epochs)")
    p.add_argument("--train-images", type=int, default=demo.train_images)
    p.add_argument("--val-images", type=int, default=demo.val_images)
    p.add_argument("--preset", choices=tuple(SYNTH_PRESETS), default=demo.preset, help="synthetic data preset")
    p.add_argument("--image-size", type=int, nargs=2, default=demo.image_size, metavar=("W", "H"),
                   help="synthetic image size")
    p.add_argument("--data-root", default=None, help="synthetic data folder (default OUT/synthetic; reused)")
    p.add_argument("--sigma", type=float, default=demo.sigma, help="teacher heatmap sigma")
    p.add_argument("--batch-size", type=int, default=demo.batch_size)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--input-size", type=int, nargs=2, default=demo.input_size, metavar=("W", "H"))
    p.add_argument("--lr", type=float, default=demo.lr, help="Adam lr (1e-3 kept the teacher on the mean-pose plateau)")
    p.add_argument("--rotation", type=float, default=demo.rotation, help="rotation augmentation (deg; COCO recipes: 45)")
    p.add_argument("--scale-factor", type=float, default=demo.scale_factor,
                   help="scale augmentation (COCO recipes: 0.35)")
    p.add_argument("--half-body-prob", type=float, default=demo.half_body_prob,
                   help="half-body augmentation (COCO recipes: 0.3)")
    p.add_argument("--eval-every", type=int, default=0, help="epochs between evaluations (0: at the end)")
    p.add_argument("--teacher-stem-blocks", type=int, default=demo.teacher_stem_blocks)
    p.add_argument("--student-stem-blocks", type=int, default=demo.student_stem_blocks)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", default=",".join(n for n, _ in ROWS), help="comma-separated subset of the rows")
    p.add_argument("--teacher-checkpoint", default=None, help="reuse a teacher trained by an earlier run")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="config override for teacher and students alike (repeatable), e.g. data.aug.rotation_factor=30")
    p.add_argument("--w-kt", type=float, default=5e-4)
    p.add_argument("--w-vt", type=float, default=5e-4)
    p.add_argument("--w-sh", type=float, default=1.0)
    p.add_argument("--w-cs", type=float, default=1e-2)
    p.add_argument("--merge", nargs="+", default=None, metavar="RUN_DIR",
                   help="only combine the ablation.json of runs with disjoint --rows into --out (no training)")
    p.add_argument("--eval-val", nargs=2, default=None, metavar=("ANN", "IMAGES"),
                   help="also evaluate every model on this validation split (COCO json, image folder)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.merge:
        result = merge(args.merge)
        if args.eval_val:
            reevaluate(result, *args.eval_val)
        table = render(result)
        print(table)
        write_json_atomic(Path(args.out) / "ablation.json", result, indent=2)
        write_text_atomic(Path(args.out) / "ablation.md", table + "\n")
        plot(result, Path(args.out) / "ablation.png")
        return 0
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
    if args.eval_val:
        reevaluate(result, *args.eval_val)
    result["total_minutes"] = (time.perf_counter() - t0) / 60
    table = render(result)
    print(table)
    write_json_atomic(out / "ablation.json", result, indent=2)
    write_text_atomic(out / "ablation.md", table + "\n")
    plot(result, out / "ablation.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
