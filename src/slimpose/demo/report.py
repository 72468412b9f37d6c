"""The demo's report: the verdict sentence, ``report.md`` and the console table, from a run's result dict.

Separate from the run logic (``slimpose.demo.run``) so that the text can be changed, tested and re-rendered
from a saved ``results.json`` without training anything.
"""

from __future__ import annotations

from typing import Any

MODEL_KEYS = ("teacher", "student_nodistill", "student_distill")
MODEL_LABELS = {
    "teacher": "teacher (TokenPose, heatmaps)",
    "student_nodistill": "student, no distillation (L_reg)",
    "student_distill": "student, DistilPose (all four terms)",
}

TEACHER_MIN_AP = 0.05  # below it the teacher has not learned to localize: nothing to distil


def verdict(rows: dict[str, dict[str, Any]], smoke: bool) -> str:
    """One honest sentence on what the numbers of this run show."""
    if smoke:
        return "smoke run: no conclusion on accuracy."
    t, nd, d = (rows[k]["AP"] for k in MODEL_KEYS)
    if t < TEACHER_MIN_AP:
        return (f"the teacher did not learn to localize within this budget (AP {t:.3f} < {TEACHER_MIN_AP}), "
                "so the two students cannot be told apart by distillation here; the run shows the pipeline "
                "and the cost side (params, GFLOPs, latency). Train longer (larger `teacher_epochs` in "
                "`slimpose.demo.DemoSizes`) for an accuracy comparison.")
    if d - nd > 0.01:
        return (f"the distilled student beats the one without distillation by {d - nd:+.3f} AP at the "
                "same cost.")
    return (f"with this budget the distilled student does not beat the one without distillation "
            f"({d - nd:+.3f} AP).")


def render_report(result: dict[str, Any]) -> str:
    """``report.md``: the table, the exact scaled-down configs and the full-size equivalents."""
    s = result["sizes"]
    smoke = result["quick"]
    rows = result["models"]
    tokens = (s["input_size"][0] // 4 // s["patch_size"][1]) * (s["input_size"][1] // 4 // s["patch_size"][0])
    lines = ["# slimpose demo: a heatmap teacher distilled into a regression student", ""]
    if smoke:
        lines += ["**SMOKE RUN (`--quick`)**: tiny data and 1 epoch per model; the numbers below only show "
                  "that the pipeline runs end to end, they say nothing about accuracy.", ""]
    lines += [
        f"Synthetic people (`slimpose.data.synth`, seed {result['seed']}): {s['train_images']} train / "
        f"{s['val_images']} val images of {s['image_size'][0]}x{s['image_size'][1]}, "
        f"{result['data']['train_instances']} / {result['data']['val_instances']} labelled people"
        f"{' (reused from an earlier run)' if result['data']['reused'] else ''}; "
        f"COCO AP on the synthetic val split (GT boxes, flip test, pycocotools). Benchmarks on this machine "
        f"({result['machine']['cpu_count']} CPUs, {result['threads']} torch threads, load average "
        f"{result['machine']['loadavg_start']} at the start, {result['machine']['loadavg_end']} at the end).",
        "",
        "| model | AP | AP50 | params | GFLOPs | latency ms (CPU, batch 1, median / min) | train min |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in MODEL_KEYS:
        r = rows[key]
        lines.append(
            f"| {MODEL_LABELS[key]} | {r['AP']:.3f} | {r['AP50']:.3f} | {r['params'] / 1e6:.2f}M | "
            f"{r['gflops']:.3f} | {r['latency_ms']:.1f} / {r['latency_ms_min']:.1f} | "
            f"{r['train_seconds'] / 60:.1f} |")
    gain = rows["student_distill"]["AP"] - rows["student_nodistill"]["AP"]
    lines += ["", f"**Verdict:** {verdict(rows, smoke)}"]
    lines += [
        "",
        f"Distillation changes the student's AP by {gain:+.3f} at the same size and cost "
        f"(the student needs {rows['student_distill']['gflops'] / rows['teacher']['gflops']:.0%} of the "
        "teacher's GFLOPs). GFLOPs = conv + linear multiply-accumulates (G), attention matmuls not counted "
        "(`slimpose.engine.complexity.count_flops`); latency = median of "
        f"{s['latency_repeats']} forward passes at batch 1 (min: the fastest one, less sensitive to a busy "
        "machine).",
        "",
        "![AP vs GFLOPs](ap_vs_gflops.png)",
        "",
        "## These models are scaled down",
        "",
        f"All three share the token transformer shape dim {s['dim']}, depth {s['depth']}, "
        f"{s['num_heads']} heads, "
        f"patch {s['patch_size'][0]}x{s['patch_size'][1]} on the stride-4 feature map "
        f"(input {s['input_size'][0]}x{s['input_size'][1]} (w x h), heatmaps "
        f"{s['input_size'][0] // 4}x{s['input_size'][1] // 4}, "
        f"{tokens} "
        "visual tokens), so that the token terms L_KT / L_VT apply:",
        "",
    ]
    for key in MODEL_KEYS:
        c = result["configs"][key]
        lines.append(f"* `{key}`: `{c['model']['name']}` with overrides `{c['model']['overrides']}`, "
                     f"{c['schedule']['epochs']} epochs, batch {c['data']['batch_size']}, "
                     f"Adam lr {c['optim']['lr']}"
                     + (f", distill weights {result['models'][key]['distill_weights']}"
                        if result["models"][key].get("distill_weights") else ""))
    lines += [
        "",
        f"StemNet Bottlenecks (official: 4): teacher {s['teacher_stem_blocks']}, students "
        f"{s['student_stem_blocks']}. The student trained without distillation scores every "
        "keypoint 1.0 (`score_source=constant`, as the DistilPose no-distillation baseline must); the "
        "distilled student uses its confidence head, trained by L_CS.",
        "",
        "## Full size, on COCO",
        "",
        "The published models are built by the factories `tokenpose_s_v1` (TokenPose-S-v1) and "
        "`distilpose_teacher` (HRNet-W48 + TokenPose, DistilPose's teacher) and `distilpose_s` / "
        "`distilpose_l` (students), trained by the recipes:",
        "",
        "```",
        "slimpose train distilpose_teacher_coco --data-root data/coco          # or tokenpose_s_v1_coco",
        "slimpose distill distilpose_s_coco --teacher work_dirs/distilpose_teacher_coco/best.pth",
        "slimpose distill distilpose_s_coco_nodistill                          # the L_reg-only baseline",
        "```",
        "",
        "## Files",
        "",
        "* `checkpoints/{teacher,student_nodistill,student_distill}.pth`: load with `slimpose.load(path)`; "
        "the distilled student records its teacher (path, sha256) but holds none of its weights.",
        "* `overlays/*.jpg`: teacher | student without distillation | distilled student on validation images "
        "(GT boxes in white).",
        "* `results.json`: every number above, the configs and the timings.",
        "",
        f"Wall time of the whole demo: {result['wall_seconds'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def format_table(result: dict[str, Any]) -> str:
    """The console table printed at the end."""
    head = f"{'model':<20} {'AP':>6} {'AP50':>6} {'params':>8} {'GFLOPs':>7} {'lat ms':>7}"
    out = [head, "-" * len(head)]
    for key in MODEL_KEYS:
        r = result["models"][key]
        out.append(f"{key:<20} {r['AP']:>6.3f} {r['AP50']:>6.3f} {r['params'] / 1e6:>7.2f}M "
                   f"{r['gflops']:>7.3f} "
                   f"{r['latency_ms']:>7.1f}")
    return "\n".join(out)
