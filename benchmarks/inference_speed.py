"""Inference speed against the official code on the same architecture, in one process, interleaved.

For DistilPose-S and SDPose-S-V1 (256x192, random weights of a trained network's scale) it builds the
official definition (``benchmarks/official_models.py``, written from ``../shared/reference/``) and loads it
with the official-layout state dict of slimpose's weights (so both compute the same function: the largest
output difference is reported), then times, round by round and in turn:

* ``official``: the official definition, eager, under ``torch.inference_mode`` (SDPose: the released code's
  two cycles, and one cycle, which is what the paper counts and what ratios are taken against);
* ``slimpose train``: the slimpose network as trained, eager;
* ``slimpose torch`` / ``compile`` / ``onnxruntime`` / ``onnxruntime int8`` / ``torch bf16``: the inference
  path of ``slimpose.inference`` (what ``slimpose.load(..., backend=)`` predicts with);
* a 2048 x 2048 fp32 matmul, the machine's reachable rate in the same rounds.

Every candidate runs with denormals flushed to zero (the official code included), so the ratios measure the
code, not the denormal penalty of untrained weights. Reports per model and batch: median ms per batch over the
rounds, images/s, the ratio to the official throughput, achieved GFLOP/s (2 x conv + linear + attention
MACs per image), the matmul GFLOP/s and the largest output difference to the official output.

``--ap CHECKPOINT --data ROOT`` also scores a trained checkpoint on a COCO-style split (ground-truth boxes)
with each backend, for the int8 / bf16 AP change.

    python benchmarks/inference_speed.py [--threads 2] [--rounds 7] [--batches 1 32] [--compile]
        [--ap outputs/demo/checkpoints/student_distill.pth --data outputs/demo/data/synthetic]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import official_models  # noqa: E402
from conversion_parity import _test_convert  # noqa: E402

MATMUL = 2048


def _official_pair(name: str, cycles: int = 1):
    """slimpose network (random weights of a trained scale) and the official definition with its weights."""
    from slimpose.models import create_model

    tc = _test_convert()
    model = tc.randomize(create_model(name))
    if name == "distilpose_s":
        official = official_models.OfficialDistilPoseS()
        sd = tc.to_official(model.state_dict(), "backbone.", "keypoint_head.tokenhead.")
    else:
        official = official_models.OfficialSDPoseS(cycles=cycles)
        sd = tc.to_official(model.state_dict(), "backbone.", "keypoint_head.tokenpose.", ("transformer_layer1",))
    official.load_state_dict(sd, strict=True)
    return model.eval(), official.eval()


def backend_options(label: str) -> dict[str, Any]:
    """A candidate label (``'onnxruntime int8'``, ``'torch bf16'``, ``'compile'``, ...) -> the keywords of
    ``slimpose.inference.inference_model`` / ``slimpose.load``."""
    backend, _, variant = label.partition(" ")
    if variant == "int8":
        return {"backend": backend, "quantize": "int8"}
    if variant in ("bf16", "fp16"):
        return {"backend": backend, "precision": variant}
    return {"backend": backend}


def _first(out: Any) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out[0]


def candidates(name: str, backends: list[str], example: torch.Tensor, threads: int
               ) -> tuple[list[tuple[str, Callable]], dict[str, float], torch.nn.Module]:
    """``[(label, callable)]`` for one model, the largest output difference of each to the official one,
    and the slimpose network (for the counts)."""
    from slimpose.inference import inference_model

    model, official = _official_pair(name)
    runs: list[tuple[str, Callable]] = []
    if name == "sdpose_s_v1":
        _, released = _official_pair(name, cycles=2)
        runs.append(("official, 2 cycles (as released)", released))
    runs += [("official", official), ("slimpose train", model)]
    for label in backends:
        runs.append((f"slimpose {label}", inference_model(model, **backend_options(label), threads=threads)))
    diffs = {}
    with torch.inference_mode():
        ref = _first(official(example))
        for label, fn in runs:
            diffs[label] = float((_first(fn(example)).float() - ref).abs().max())
    return runs, diffs, model


def _time(fn: Callable, x: torch.Tensor, calls: int) -> float:
    with torch.inference_mode():
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        return (time.perf_counter() - start) / calls


def matmul_gflops(calls: int = 3) -> float:
    a, b = torch.randn(MATMUL, MATMUL), torch.randn(MATMUL, MATMUL)
    a @ b
    start = time.perf_counter()
    for _ in range(calls):
        a @ b
    return 2 * MATMUL**3 * calls / (time.perf_counter() - start) / 1e9


def speed_rows(name: str, backends: list[str], batches: list[int], rounds: int, threads: int,
               calls: int | None = None) -> list[dict]:
    """One row per candidate and batch; ``calls`` timed calls per candidate and round (default 16 / batch)."""
    from slimpose.engine.complexity import count_flops

    example = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    runs, diffs, model = candidates(name, backends, example, threads)
    macs = count_flops(model)["gflops_with_attention"]  # G MACs per image, conv + linear + attention
    rows = []
    for batch in batches:
        x = torch.randn(batch, 3, 256, 192, generator=torch.Generator().manual_seed(2))
        n = calls or max(1, 16 // batch)
        times: dict[str, list[float]] = {label: [] for label, _ in runs}
        peak: list[float] = []
        for label, fn in runs:  # warm-up (compile happens here)
            _time(fn, x, 1)
        for r in range(rounds):
            for label, fn in runs:
                times[label].append(_time(fn, x, n))
            peak.append(matmul_gflops())
            print(f"  {name} b{batch} round {r + 1}/{rounds}", file=sys.stderr, flush=True)
        official = statistics.median(times["official"])
        mm = statistics.median(peak)
        for label, _ in runs:
            t = statistics.median(times[label])
            rows.append({"model": name, "batch": batch, "candidate": label, "ms_per_batch": 1000 * t,
                         "images_per_s": batch / t, "vs_official": official / t,
                         "gflops_per_s": 2 * macs * batch / t, "matmul_gflops_per_s": mm,
                         "max_abs_diff_vs_official": diffs[label], "rounds": rounds, "calls_per_round": n})
    return rows


def ap_rows(checkpoint: str, data: str, backends: list[str], threads: int) -> list[dict]:
    """COCO AP of ``checkpoint`` on ``data``'s val split (``annotations/*val*.json``, images under ``images/``
    as its ``file_name`` says; ground-truth boxes) per backend, ``train`` first."""
    import numpy as np

    import slimpose
    from slimpose.evaluation.coco import evaluate_coco_keypoints

    root = Path(data)
    ann = next(p for p in sorted((root / "annotations").glob("*val*.json")))
    gt = json.loads(ann.read_text())
    boxes: dict[int, list] = {}
    for a in gt["annotations"]:
        if a.get("num_keypoints", 1) > 0 and not a.get("iscrowd", 0):
            boxes.setdefault(a["image_id"], []).append(list(a["bbox"]) + [1.0])
    images = [(im["id"], root / "images" / im["file_name"]) for im in gt["images"] if im["id"] in boxes]
    rows = []
    for backend in ["train", *backends]:
        pm = slimpose.load(checkpoint, **backend_options(backend), threads=threads)
        records = []
        for image_id, path in images:
            result = pm.predict(str(path), np.asarray(boxes[image_id], dtype=np.float64))
            records.extend(result.to_coco(image_id))
        stats = evaluate_coco_keypoints(ann, records)
        rows.append({"checkpoint": checkpoint, "backend": backend, "AP": stats["AP"], "AP50": stats["AP50"],
                     "AR": stats["AR"], "images": len(images)})
        print(f"  AP {backend}: {stats['AP']:.4f}", file=sys.stderr, flush=True)
    return rows


def markdown(rows: list[dict], ap: list[dict], meta: dict) -> str:
    lines = [f"Inference speed, {meta['threads']} threads, fp32 unless named, 256x192, {meta['cpu']}, torch "
             f"{meta['torch']}, onnxruntime {meta['onnxruntime']}; median of {meta['rounds']} interleaved rounds "
             f"(`{meta['command']}`).", "",
             "| model | batch | candidate | ms / batch | img/s | x official | GFLOP/s | matmul GFLOP/s | max diff |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['batch']} | {r['candidate']} | {r['ms_per_batch']:.1f} | "
                     f"{r['images_per_s']:.1f} | {r['vs_official']:.2f} | {r['gflops_per_s']:.0f} | "
                     f"{r['matmul_gflops_per_s']:.0f} | {r['max_abs_diff_vs_official']:.1e} |")
    if ap:
        lines += ["", f"COCO AP per backend (ground-truth boxes, {ap[0]['images']} images; change against `train`):",
                  "", "| checkpoint | backend | AP | AP50 | AR |", "|---|---|---:|---:|---:|"]
        base = {}
        for r in ap:
            b = base.setdefault(r["checkpoint"], r["AP"])
            lines.append(f"| `{r['checkpoint']}` | {r['backend']} | {100 * r['AP']:.2f} ({100 * (r['AP'] - b):+.2f}) | "
                         f"{100 * r['AP50']:.2f} | {100 * r['AR']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["distilpose_s", "sdpose_s_v1"],
                        choices=["distilpose_s", "sdpose_s_v1"])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow first call)")
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--ap", default=None, metavar="CHECKPOINT", nargs="+",
                        help="also score these checkpoints per backend")
    parser.add_argument("--data", default=None, metavar="ROOT", help="COCO-style data root of --ap")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "inference_speed_cpu"),
                        help="writes OUT.json and OUT.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    backends = ["torch", "torch bf16", "onnxruntime"] + ([] if args.no_int8 else ["onnxruntime int8"])
    if args.compile:
        backends.insert(1, "compile")
    import onnxruntime

    meta = {"threads": args.threads, "rounds": args.rounds, "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "command": "python benchmarks/inference_speed.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    rows = [r for name in args.models for r in speed_rows(name, backends, args.batches, args.rounds, args.threads)]
    ap = [r for ckpt in args.ap or [] for r in ap_rows(ckpt, args.data, [b for b in backends if b != "compile"],
                                                        args.threads)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from slimpose.utils.io import atomic_path

    with atomic_path(out.with_suffix(".json")) as tmp:
        Path(tmp).write_text(json.dumps({"meta": meta, "speed": rows, "ap": ap}, indent=1))
    text = markdown(rows, ap, meta)
    with atomic_path(out.with_suffix(".md")) as tmp:
        Path(tmp).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
