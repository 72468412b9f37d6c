"""The shape of ViTPose's Table 8 (knowledge-token distillation, Sec. 3.4) on synthetic people, on a CPU budget.

    OMP_NUM_THREADS=1 python benchmarks/knowledge_token.py --out benchmarks/results/knowledge_token_cpu

Trains, one after the other on one CPU thread (``--threads``):

1. a teacher: a plain ViTPose of ``kt_synth_teacher`` (dim 128, 6 blocks, 8x8 patches at 48x64, the
   simple decoder), ``--teacher-epochs``;
2. its knowledge token (stage 1, ``kt_synth_token``): only the token trains on the frozen teacher,
   ``--token-epochs``; the teacher's AP with its token is reported beside its AP without;
3. the four students of Table 8 under one budget (same data, ``--student-epochs``, optimiser, augmentation;
   ``kt_synth_student``: dim 96, 3 blocks, so the 128-d token enters through the trained linear
   projection): the student alone, + token, + output KD (``--w-kd``, the plain teacher), + token + output KD.

Every model is scored with COCO AP on the synthetic val split (flip test, DARK). Results are written after
every run to ``OUT.json`` (a rerun with the same settings skips the runs already there; ``--rows`` trains
a subset, ``--merge`` combines the JSONs of runs that trained disjoint rows against one teacher and token),
then ``OUT.md`` and ``OUT.png``.

Paper Table 8 (COCO val, ViTPose-L -> ViTPose-B): 75.8 (student alone), 76.0 (+ token), 76.3 (+ output KD),
76.6 AP (+ both).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from slimpose.config.recipes.knowledge_token import (
    kt_synth_student,
    kt_synth_student_base,
    kt_synth_teacher,
    kt_synth_token,
)
from slimpose.config.schema import OptimConfig, TrainConfig
from slimpose.utils.io import SlimposeInputError, load_json, write_json_atomic, write_text_atomic

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks' helpers
from distilpose_ablation import reused_teacher  # noqa: E402  (AP of a teacher trained by an earlier run)
from multikd_ablation import shared as budget  # noqa: E402  (data, epochs, threads, seed of one run)

# name, label, (token, output KD)
ROWS: list[tuple[str, str, tuple[bool, bool]]] = [
    ("student", "student alone", (False, False)),
    ("token", "+ knowledge token", (True, False)),
    ("output_kd", "+ output KD", (False, True)),
    ("token_output_kd", "+ token + output KD", (True, True)),
]
PAPER_AP = {"student": 75.8, "token": 76.0, "output_kd": 76.3, "token_output_kd": 76.6}
# what must agree for runs to be one table (resume, merge)
BUDGET_KEYS = ("teacher_epochs", "token_epochs", "student_epochs", "train_images", "val_images", "lr", "w_kd",
               "seed", "threads", "batch_size")


def shared(cfg: TrainConfig, args: argparse.Namespace, name: str, epochs: int) -> TrainConfig:
    """The settings every run shares (``multikd_ablation.shared``: ``epochs`` with 50 warm-up iterations and
    decay at 80%, threads, seed, evaluation after the last epoch) + data folder, batch, AdamW, CPU."""
    cfg = budget(cfg, args, Path(args.runs) / name, epochs, args.seed)
    cfg.data.data_root = str(args.data_root)
    cfg.data.batch_size = args.batch_size
    cfg.name, cfg.device, cfg.log_interval = name, "cpu", 1000
    cfg.optim = OptimConfig(name="adamw", lr=args.lr, weight_decay=args.weight_decay)
    return cfg


def run(cfg: TrainConfig) -> dict[str, Any]:
    """Train ``cfg``; AP / AR (x100), optimiser steps and wall seconds (training and the final evaluation)."""
    from slimpose.training import fit_config

    t0 = time.perf_counter()
    summary, trainer = fit_config(cfg)
    metrics = {k[4:]: v for k, v in summary.items() if k.startswith("val_")}
    return {"AP": 100.0 * float(metrics["AP"]), "AR": 100.0 * float(metrics.get("AR", float("nan"))),
            "steps": int(trainer.global_step), "epochs": int(trainer.epoch),
            "seconds": time.perf_counter() - t0, "train_loss": summary.get("train_loss"),
            "run_dir": cfg.work_dir, "metrics": metrics}


def teacher_cfg(args: argparse.Namespace) -> TrainConfig:
    return shared(kt_synth_teacher(), args, "teacher", args.teacher_epochs)


def token_cfg(args: argparse.Namespace, teacher_ckpt: str) -> TrainConfig:
    cfg = shared(kt_synth_token(), args, "token", args.token_epochs)
    cfg.optim = OptimConfig(name="adamw", lr=args.token_lr, weight_decay=0.0)  # the token is not pulled to 0
    cfg.knowledge_token.teacher_checkpoint = teacher_ckpt
    return cfg


def student_cfg(args: argparse.Namespace, name: str, switches: tuple[bool, bool], teacher_ckpt: str,
                token_ckpt: str) -> TrainConfig:
    """Row ``name``: the plain student, or the stage-2 recipe with the token and / or output KD."""
    use_token, kd = switches
    if not (use_token or kd):
        return shared(kt_synth_student_base(), args, f"student_{name}", args.student_epochs)
    cfg = shared(kt_synth_student(), args, f"student_{name}", args.student_epochs)
    kt = cfg.knowledge_token
    kt.teacher_checkpoint, kt.token_path = teacher_ckpt, token_ckpt
    kt.use_token, kt.output_kd = use_token, args.w_kd if kd else 0.0
    return cfg


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k) for k in BUDGET_KEYS + ("token_lr", "weight_decay")} | {
        "torch_threads": torch.get_num_threads(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "")}


def _check_same_budget(a: dict[str, Any], b: dict[str, Any], where: str) -> None:
    diff = [k for k in BUDGET_KEYS if a.get(k) != b.get(k)]
    if diff:
        pairs = ", ".join(f"{k}: {a.get(k)} vs {b.get(k)}" for k in diff)
        raise SlimposeInputError(f"{where}: other settings ({pairs}); runs of different budgets are not one table "
                                 "(use another --out)")


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "" if value is None or value != value else format(value, spec)


def render(result: dict[str, Any]) -> str:
    """The Markdown table: AP / AR x100 on the synthetic val split, the gain over the student alone, steps,
    seconds, and the paper's Table 8 AP."""
    st = result["settings"]
    t, k = result.get("teacher") or {}, result.get("token") or {}
    base = (result["students"].get("student") or {}).get("AP")
    lines = [
        f"ViTPose Table 8 shape on synthetic people ({st['train_images']} train / {st['val_images']} val images, "
        f"48x64 crops), CPU: {st['threads']} thread(s) per run (torch.get_num_threads()={st.get('torch_threads')}, "
        f"OMP_NUM_THREADS={st.get('OMP_NUM_THREADS') or 'unset'}), runs one after the other. AP / AR x100 on the "
        "synthetic val split (flip test, DARK).",
        "",
        f"Teacher (ViTPose dim 128, 6 blocks, {t.get('epochs', st['teacher_epochs'])} epochs, {t.get('steps', '?')} "
        f"steps, {_fmt(t.get('seconds'), '.0f')} s): AP {_fmt(t.get('AP'))}; with its knowledge token (stage 1, "
        f"{k.get('epochs', st['token_epochs'])} epochs, {k.get('steps', '?')} steps, {_fmt(k.get('seconds'), '.0f')} "
        f"s, only the token trains): AP {_fmt(k.get('AP'))}.",
        "",
        f"Students (ViTPose dim 96, 3 blocks; 128-d token through a trained linear 128 -> 96), one budget: "
        f"{st['student_epochs']} epochs each, output-KD weight {st['w_kd']}.",
        "",
        "| row | token | output KD | AP | AR | AP vs student alone | steps | seconds | paper AP (L->B, COCO) |",
        "|---|:-:|:-:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, label, (use_token, kd) in ROWS:
        r = result["students"].get(name)
        if r is None:
            lines.append(f"| {label} | {'x' if use_token else ''} | {'x' if kd else ''} | - | - | | | | "
                         f"{PAPER_AP[name]} |")
            continue
        gain = "" if name == "student" or base is None else f"{r['AP'] - base:+.1f}"
        lines.append(f"| {label} | {'x' if use_token else ''} | {'x' if kd else ''} | {_fmt(r['AP'])} | "
                     f"{_fmt(r.get('AR'))} | {gain} | {r['steps']} | {_fmt(r['seconds'], '.0f')} | {PAPER_AP[name]} |")
    total = sum(float(x.get("seconds", 0.0)) for x in [t, k, *result["students"].values()])
    lines += ["", f"Total training + evaluation time: {total / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> Path:
    """``OUT.png``: AP of every row here beside the paper's Table 8 AP."""
    from slimpose.visualization import plot_bar_panels

    labels = [label for _, label, _ in ROWS]
    here = [(result["students"].get(name) or {}).get("AP") for name, _, _ in ROWS]
    series = {f"AP x100, synthetic val ({result['settings']['val_images']} images)": here,
              "AP, COCO val (paper Table 8, L->B)": [PAPER_AP[name] for name, _, _ in ROWS]}
    return plot_bar_panels(labels, series, path, title="Knowledge-token distillation (ViTPose Table 8 shape)")


def merge(paths: list[str]) -> dict[str, Any]:
    """One result from runs of disjoint rows against the same teacher and token (and budget); the teacher's
    and the token's records are the first part's."""
    results = [load_json(p, "knowledge-token result") for p in paths]
    merged = copy.deepcopy(results[0])
    for path, r in zip(paths[1:], results[1:]):
        _check_same_budget(merged["settings"], r["settings"], path)
        for key in ("teacher", "token"):
            if (r.get(key) or {}).get("checkpoint") != (merged.get(key) or {}).get("checkpoint"):
                raise SlimposeInputError(f"{path}: {key} {(r.get(key) or {}).get('checkpoint')} differs from "
                                         f"{paths[0]}'s; only runs of one teacher and token merge")
        merged["students"].update(r["students"])
    merged["students"] = {n: merged["students"][n] for n, _, _ in ROWS if n in merged["students"]}
    merged["merged_from"] = list(paths)
    return merged


def write(result: dict[str, Any], out: Path) -> str:
    text = render(result)
    write_json_atomic(out.with_suffix(".json"), result, indent=2)
    write_text_atomic(out.with_suffix(".md"), text)
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="benchmarks/results/knowledge_token_cpu", help="output stem (.json/.md/.png)")
    p.add_argument("--runs", default="work_dirs/bench_knowledge_token/runs", help="folder of the training runs")
    p.add_argument("--data-root", default="work_dirs/bench_knowledge_token/data",
                   help="synthetic data folder (generated once)")
    p.add_argument("--rows", default=",".join(r[0] for r in ROWS), help="comma-separated row names")
    p.add_argument("--teacher-epochs", type=int, default=15)
    p.add_argument("--token-epochs", type=int, default=2)
    p.add_argument("--student-epochs", type=int, default=14)
    p.add_argument("--train-images", type=int, default=1500)
    p.add_argument("--val-images", type=int, default=150)
    p.add_argument("--batch-size", type=int, default=8, help="8 learnt faster per second than 16 or 32 here")
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW rate of teacher and students")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay of teacher and students")
    p.add_argument("--token-lr", type=float, default=2e-3, help="AdamW rate of the knowledge token (stage 1)")
    p.add_argument("--w-kd", type=float, default=1.0, help="output-distillation weight (knowledge_token.output_kd)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--workers", type=int, default=0, help="data loader processes per run (0: in the main one)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--teacher-checkpoint", default=None, help="reuse a trained teacher (its last.pth)")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="only combine the results of runs with disjoint --rows into --out (no training)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    if args.merge:
        result = merge(args.merge)
        print(write(result, out))
        plot(result, out.with_suffix(".png"))
        return 0
    wanted = [r for r in ROWS if r[0] in args.rows.split(",")]
    unknown = sorted(set(args.rows.split(",")) - {r[0] for r in ROWS} - {""})
    if unknown:
        p.error(f"unknown rows {unknown}")
    json_path = out.with_suffix(".json")
    settings = settings_of(args)
    result: dict[str, Any] = {"settings": settings, "teacher": None, "token": None, "students": {}}
    if json_path.is_file():  # resume: the runs already there are kept
        result = load_json(json_path, "knowledge-token result")
        _check_same_budget(result["settings"], settings, str(json_path))
        result["settings"].update(settings)
    if args.teacher_checkpoint and not result.get("teacher"):
        reused = reused_teacher(args.teacher_checkpoint)
        result["teacher"] = {"checkpoint": args.teacher_checkpoint, "reused": True, "AP": 100.0 * reused["AP"]}
    if not (result.get("teacher") or {}).get("checkpoint"):
        print(f"[knowledge_token] teacher: {args.teacher_epochs} epochs", file=sys.stderr)
        cfg = teacher_cfg(args)
        result["teacher"] = {**run(cfg), "checkpoint": str(Path(cfg.work_dir) / "last.pth")}
        write(result, out)
    teacher_ckpt = result["teacher"]["checkpoint"]
    if not (result.get("token") or {}).get("checkpoint"):
        print(f"[knowledge_token] stage 1 (token): {args.token_epochs} epochs", file=sys.stderr)
        cfg = token_cfg(args, teacher_ckpt)
        result["token"] = {**run(cfg), "checkpoint": str(Path(cfg.work_dir) / "last.pth")}
        write(result, out)
    for name, label, switches in wanted:
        if name in result["students"]:
            continue
        print(f"[knowledge_token] student: {label}", file=sys.stderr)
        cfg = student_cfg(args, name, switches, teacher_ckpt, result["token"]["checkpoint"])
        result["students"][name] = {**run(cfg), "token": switches[0], "output_kd": switches[1]}
        result["students"] = {n: result["students"][n] for n, _, _ in ROWS if n in result["students"]}
        write(result, out)
    text = write(result, out)
    plot(result, out.with_suffix(".png"))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
