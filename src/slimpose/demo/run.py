"""The built-in demo: heatmap teacher -> regression students on synthetic people, with an honest report.

``run_demo(out_dir)`` runs, on a CPU and without downloads, the DistilPose story at a small scale:
synthetic COCO-format data (``slimpose.data.synth``), a scaled-down TokenPose heatmap teacher trained
with the engine, the same-size DistilPose-S regression student trained twice through the distiller
(``slimpose.training.make_trainer`` for all three): with L_reg only (constant keypoint scores,
DistilPose Table 4 first row) and with all four terms of Eq. 7 from that teacher. All three are scored by
the engine's evaluator (COCO AP via pycocotools, rescoring, OKS-NMS) and benchmarked in the same run
(params, GFLOPs = conv + linear MACs, batch-1 CPU latency). The report folder holds ``report.md``,
``results.json``, ``ap_vs_gflops.png``, ``overlays/*.jpg`` and ``checkpoints/*.pth``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimpose.demo.report import MODEL_KEYS, MODEL_LABELS, format_table, render_report, verdict
from slimpose.utils.io import SlimposeInputError, load_json, write_json_atomic, write_text_atomic

__all__ = ["DemoSizes", "demo_sizes", "run_demo", "prepare_data"]

DATA_STAMP = "demo_data.json"


@dataclass
class DemoSizes:
    """Every size of one demo run (data, shared token-transformer shape, schedules, benchmark repeats)."""

    preset: str = "easy"  # synthetic preset: one large person, mostly facing the camera (see docs/demo.md)
    train_images: int = 3000
    val_images: int = 150
    image_size: tuple[int, int] = (160, 160)  # (w, h) of the synthetic images
    input_size: tuple[int, int] = (64, 96)  # (w, h) of the model crops
    sigma: float = 2.0
    dim: int = 64
    depth: int = 4
    num_heads: int = 4
    patch_size: tuple[int, int] = (2, 2)  # (ph, pw) on the stride-4 feature map
    teacher_stem_blocks: int = 1  # StemNet Bottlenecks (official: 4; 1 keeps a CPU step at ~0.15 s)
    student_stem_blocks: int = 1
    teacher_epochs: int = 40  # ~3800 iterations: the tiny TokenPose leaves the mean-pose plateau after ~1700
    student_epochs: int = 20
    batch_size: int = 32
    lr: float = 5e-4  # 1e-3 (with heavier augmentation) kept the teacher on the plateau for 40 epochs
    warmup_iters: int = 50
    workers: int = 0
    rotation: float = 20.0  # lighter than the COCO recipes (45 deg, scale 0.35, half body 0.3): see docs/demo.md
    scale_factor: float = 0.2
    half_body_prob: float = 0.0
    eval_batch_size: int = 64
    latency_repeats: int = 30
    num_overlays: int = 4
    smoke: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input_size[0] // 4, self.input_size[1] // 4

    @property
    def tde(self) -> dict[str, Any]:
        """The token-transformer shape shared by teacher and students (same dim and token grid)."""
        return {"dim": self.dim, "depth": self.depth, "num_heads": self.num_heads,
                "patch_size": list(self.patch_size)}


def demo_sizes(quick: bool = False) -> DemoSizes:
    """The full demo (about 21 minutes on 2 CPU cores) or ``quick``: a smoke run of about a minute."""
    if not quick:
        return DemoSizes()
    return DemoSizes(train_images=16, val_images=4, image_size=(192, 160), teacher_epochs=1, student_epochs=1,
                     batch_size=8, warmup_iters=2, eval_batch_size=16, latency_repeats=3, num_overlays=2,
                     smoke=True)


# ----------------------------------------------------------------------------------------------- helpers


def _log(msg: str) -> None:
    print(f"[demo] {msg}", file=sys.stderr, flush=True)


def _stage(i: int, n: int, title: str) -> None:
    print(f"\n[demo] ==== {i}/{n} {title} ====", file=sys.stderr, flush=True)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def prepare_data(root: Path, sizes: DemoSizes, seed: int) -> dict[str, Any]:
    """Generate the train / val synthetic sets into ``root`` unless a stamp says the same ones are there.

    Returns ``{"reused": bool, "params": ..., "seconds": ...}``. Seeds: train ``seed``, val ``seed + 1``
    (as the engine's ``prepare_synthetic``).
    """
    from slimpose.data.synth import generate_synthetic_dataset, synth_preset

    params = {"train_images": sizes.train_images, "val_images": sizes.val_images, "seed": int(seed),
              "image_size": list(sizes.image_size), "preset": sizes.preset, "generator": "slimpose.data.synth"}
    stamp = root / DATA_STAMP
    anns = [root / "annotations" / f"person_keypoints_{s}.json" for s in ("train", "val")]
    if stamp.is_file() and all(a.is_file() for a in anns):
        try:
            old = load_json(stamp, "demo data stamp")
        except SlimposeInputError:
            old = None
        if old == params:
            _log(f"reusing the synthetic data set in {root} "
                 f"({sizes.train_images} train / {sizes.val_images} val)")
            return {"reused": True, "params": params, "seconds": 0.0}
    t0 = time.perf_counter()
    if stamp.exists():
        stamp.unlink()
    workers = min(_cpu_count(), 4)
    for split, n, s in (("train", sizes.train_images, seed), ("val", sizes.val_images, seed + 1)):
        split_dir = root / "images" / split
        if split_dir.is_dir():
            shutil.rmtree(split_dir)  # images of an earlier demo run with other parameters
        w, h = sizes.image_size
        _log(f"generating {n} synthetic {split} images ({w}x{h}) in {root}")
        generate_synthetic_dataset(root, num_images=n, seed=s, split=split, image_size=(w, h),
                                   workers=workers if n >= 64 else 1, progress=True,
                                   config=synth_preset(sizes.preset))
    write_json_atomic(stamp, params, indent=2)
    return {"reused": False, "params": params, "seconds": time.perf_counter() - t0}


def _common(cfg: Any, sizes: DemoSizes, data_root: Path, work_dir: Path, seed: int, threads: int,
            epochs: int) -> Any:
    """Data, optimiser, schedule and run settings shared by the three trainings (in place)."""
    d = cfg.data
    d.dataset = "synthetic"
    d.data_root = str(data_root)
    d.train_ann = d.train_images = d.val_ann = d.val_images = None
    d.input_size = tuple(sizes.input_size)
    d.heatmap_size = tuple(sizes.heatmap_size)
    d.sigma = sizes.sigma
    d.batch_size = sizes.batch_size
    d.val_batch_size = sizes.eval_batch_size
    d.workers = d.val_workers = sizes.workers
    d.train_subset = d.val_subset = 0
    d.synthetic_train_images = sizes.train_images
    d.synthetic_val_images = sizes.val_images
    d.synthetic_seed = seed
    d.synthetic_image_size = tuple(sizes.image_size)
    d.synthetic_preset = sizes.preset
    d.aug.rotation_factor = sizes.rotation
    d.aug.scale_factor = sizes.scale_factor
    d.aug.half_body_prob = sizes.half_body_prob
    cfg.optim.lr = sizes.lr
    cfg.schedule.epochs = epochs
    cfg.schedule.warmup_iters = sizes.warmup_iters
    cfg.schedule.milestones = (max(1, int(round(epochs * 0.8))),)
    cfg.eval_interval = max(1, epochs // 4)  # a few AP lines during training; the last epoch always
    cfg.log_interval = 10
    cfg.tensorboard = False
    cfg.device = "cpu"
    cfg.num_threads = threads
    cfg.seed = seed
    cfg.work_dir = str(work_dir)
    return cfg


def teacher_config(sizes: DemoSizes, data_root: Path, work_dir: Path, seed: int, threads: int) -> Any:
    """``tokenpose_tiny_synthetic`` resized: TokenPose-S-v1 (official StemNet) with the demo's TDE shape."""
    from slimpose.config import ModelConfig
    from slimpose.config.recipes.topdown import tokenpose_tiny_synthetic

    cfg = tokenpose_tiny_synthetic()
    cfg.name = "demo_teacher"
    cfg.model = ModelConfig(name="tokenpose_s_v1", overrides={**sizes.tde, "stem_blocks": sizes.teacher_stem_blocks})
    cfg.dark = True
    return _common(cfg, sizes, data_root, work_dir, seed, threads, sizes.teacher_epochs)


def student_config(sizes: DemoSizes, data_root: Path, work_dir: Path, seed: int, threads: int,
                   teacher_checkpoint: Path | None) -> Any:
    """``distilpose_tiny_synthetic`` resized; ``teacher_checkpoint=None``: L_reg only (constant scores)."""
    from slimpose.config import DistilPoseConfig, ModelConfig
    from slimpose.config.recipes.distilpose import distilpose_tiny_synthetic

    cfg = distilpose_tiny_synthetic()
    overrides = {**sizes.tde, "stem_blocks": sizes.student_stem_blocks}
    cfg.model = ModelConfig(name="distilpose_s", overrides=overrides)
    if teacher_checkpoint is None:
        cfg.name = "demo_student_nodistill"
        cfg.distill = DistilPoseConfig(teacher_model="tokenpose_s_v1", kt=0.0, vt=0.0, sh=0.0, cs=0.0)
    else:
        cfg.name = "demo_student_distill"
        cfg.distill = DistilPoseConfig(teacher_model="tokenpose_s_v1", teacher_overrides={},
                                    teacher_checkpoint=str(Path(teacher_checkpoint).resolve()))
    cfg.dark = False
    cfg.score_thr = 0.0
    return _common(cfg, sizes, data_root, work_dir, seed, threads, sizes.student_epochs)


def ship_checkpoint(loop: Any, path: Path) -> Path:
    """A slim copy of the final training state: weights, config, model name, distill record (no optimiser)."""
    from slimpose.engine.checkpoint import save_checkpoint

    full = loop.state_dict()
    keep = ("model", "config", "model_name", "epoch", "global_step", "best", "distill")
    return save_checkpoint({k: full[k] for k in keep if k in full}, path)


def _metrics(summary: dict[str, Any]) -> dict[str, float]:
    return {k[4:]: float(v) for k, v in summary.items() if k.startswith("val_")}


def train_model(key: str, cfg: Any, ckpt_path: Path) -> dict[str, Any]:
    """Train one model through the engine (``make_trainer``), ship it, return its record."""
    from slimpose.training import make_trainer

    t0 = time.perf_counter()
    work_dir = Path(cfg.work_dir)
    if work_dir.is_dir():
        shutil.rmtree(work_dir)  # a rerun starts clean (the engine appends to log.jsonl)
    loop = make_trainer(cfg)
    try:
        summary = loop.fit()
        ship_checkpoint(loop, ckpt_path)
        model = loop.task.model
    finally:
        loop.close()
    metrics = _metrics(summary)
    if "AP" not in metrics:
        raise RuntimeError(f"{key}: the last epoch was not evaluated (summary keys: {sorted(summary)})")
    return {"model": model, "metrics": metrics, "train_seconds": time.perf_counter() - t0,
            "train_loss": summary.get("train_loss"), "checkpoint": str(ckpt_path),
            "score_source": getattr(loop.task.head, "score_source", None), "steps": loop.global_step}


def benchmark(model: torch.nn.Module, input_size: tuple[int, int], repeats: int) -> dict[str, float]:
    """Params, GFLOPs (conv + linear MACs) and batch-1 latency of ``model`` on this CPU."""
    from slimpose.engine.complexity import count_flops, count_params, measure_latency

    model = model.eval()
    flops = count_flops(model, tuple(input_size))
    lat = measure_latency(model, batch=1, device="cpu", warmup=max(2, repeats // 5), repeats=repeats,
                          input_size=tuple(input_size))
    return {"params": int(count_params(model)), "gflops": float(flops["gflops"]),
            "gflops_with_attention": float(flops["gflops_with_attention"]),
            "latency_ms": float(lat["latency_ms"]), "latency_ms_min": float(lat["latency_ms_min"])}


def draw_overlays(out_dir: Path, val_ann: Path, image_root: Path, checkpoints: dict[str, Path],
                  count: int) -> list[str]:
    """Side-by-side keypoint overlays (one panel per model, GT boxes drawn) of the first ``count`` val
    images with labelled people; the models are loaded from the shipped checkpoints (``slimpose.load``)."""
    import cv2

    from slimpose.api import load
    from slimpose.visualization import draw_boxes, draw_poses, save_image

    gt = load_json(val_ann, "synthetic val annotations")
    boxes: dict[int, list[list[float]]] = {}
    for ann in gt.get("annotations", []):
        if ann.get("num_keypoints", 0) > 0 and not ann.get("iscrowd", 0):
            boxes.setdefault(int(ann["image_id"]), []).append([float(v) for v in ann["bbox"]])
    images = [im for im in gt.get("images", []) if int(im["id"]) in boxes][:count]
    models = {key: load(path) for key, path in checkpoints.items()}
    written = []
    for im in images:
        path = image_root / im["file_name"]
        image = cv2.imread(str(path))
        if image is None:
            raise SlimposeInputError(f"{val_ann}: image {im['id']} ({path}) cannot be read")
        b = np.asarray(boxes[int(im["id"])], dtype=np.float32)
        f = max(1, int(np.ceil(360 / image.shape[0])))  # small synthetic images are drawn enlarged
        big = cv2.resize(image, (image.shape[1] * f, image.shape[0] * f), interpolation=cv2.INTER_LINEAR)
        panels = []
        for key, model in models.items():
            res = model.predict(image, b)
            panel = draw_boxes(big, b * f, color=(255, 255, 255))
            kpts = (res.keypoints + 0.5) * f - 0.5
            panel = draw_poses(panel, kpts, res.keypoint_scores, model.info, kpt_thr=0.2, copy=False)
            label = key.replace("student_", "student ")
            cv2.rectangle(panel, (0, 0), (panel.shape[1], 22), (0, 0, 0), -1)
            cv2.putText(panel, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                        cv2.LINE_AA)
            panels.append(panel)
        gap = np.full((big.shape[0], 6, 3), 255, np.uint8)
        row = [panels[0]]
        for p in panels[1:]:
            row += [gap, p]
        name = f"overlays/val_{int(im['id']):06d}.jpg"
        save_image(out_dir / name, np.concatenate(row, axis=1))
        written.append(name)
    return written


def _count_instances(ann_path: Path) -> int:
    gt = load_json(ann_path, "synthetic annotations")
    anns = gt.get("annotations", [])
    return sum(1 for a in anns if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd", 0))


# ----------------------------------------------------------------------------------------------- main


def run_demo(out_dir: str | os.PathLike = "outputs/demo", quick: bool = False, seed: int = 0,
             threads: int | None = None, sizes: DemoSizes | None = None) -> Path:
    """Run the whole demo into ``out_dir``; returns the path of ``report.md``.

    ``sizes`` overrides ``demo_sizes(quick)`` (tests, tuning). ``threads``: torch threads (default: the
    number of CPUs this process may use).
    """
    from slimpose.config import config_to_dict
    from slimpose.visualization import plot_ap_vs_gflops

    if seed < 0:
        raise SlimposeInputError(f"demo: --seed must be >= 0, got {seed}")
    if threads is not None and threads < 1:
        raise SlimposeInputError(f"demo: --threads must be >= 1, got {threads}")
    t_start = time.perf_counter()
    load_start = _loadavg()
    sizes = sizes or demo_sizes(quick)
    threads = int(threads or _cpu_count())
    torch.set_num_threads(threads)
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    data_root = out / "data" / "synthetic"
    ckpt_dir = out / "checkpoints"
    runs = out / "runs"
    n = 6
    _log(f"{'smoke run (--quick)' if quick else 'full demo'} into {out} with {threads} torch threads "
         f"(load average {load_start})")

    _stage(1, n, "synthetic data")
    data = prepare_data(data_root, sizes, seed)
    val_ann = data_root / "annotations" / "person_keypoints_val.json"
    data["train_instances"] = _count_instances(data_root / "annotations" / "person_keypoints_train.json")
    data["val_instances"] = _count_instances(val_ann)

    cfgs = {"teacher": teacher_config(sizes, data_root, runs / "teacher", seed, threads)}
    ckpts = {k: ckpt_dir / f"{k}.pth" for k in MODEL_KEYS}
    cfgs["student_nodistill"] = student_config(sizes, data_root, runs / "student_nodistill", seed, threads,
                                               None)
    cfgs["student_distill"] = student_config(sizes, data_root, runs / "student_distill", seed, threads,
                                             ckpts["teacher"])
    configs = {k: config_to_dict(c) for k, c in cfgs.items()}  # before training: as configured

    records: dict[str, dict[str, Any]] = {}
    titles = {"teacher": "train the heatmap teacher (TokenPose)",
              "student_nodistill": "train the regression student without distillation (L_reg only)",
              "student_distill": "train the regression student with DistilPose distillation"}
    for i, key in enumerate(MODEL_KEYS):
        _stage(2 + i, n, f"{titles[key]}: {cfgs[key].schedule.epochs} epochs")
        records[key] = train_model(key, copy.deepcopy(cfgs[key]), ckpts[key])
        rec = records[key]
        _log(f"{key}: AP {rec['metrics']['AP']:.4f} after {rec['train_seconds'] / 60:.1f} min")

    _stage(5, n, "benchmark (params, GFLOPs, batch-1 latency on this CPU)")
    torch.set_num_threads(threads)
    rows: dict[str, dict[str, Any]] = {}
    for key in MODEL_KEYS:
        rec = records[key]
        bench = benchmark(rec["model"], tuple(sizes.input_size), sizes.latency_repeats)
        m = rec["metrics"]
        rows[key] = {"label": MODEL_LABELS[key], "AP": m["AP"], "AP50": m.get("AP50", float("nan")),
                     "AP75": m.get("AP75", float("nan")), "AR": m.get("AR", float("nan")), **bench,
                     "train_seconds": rec["train_seconds"], "train_steps": rec["steps"],
                     "train_loss": rec["train_loss"], "checkpoint": f"checkpoints/{key}.pth",
                     "metrics": m, "score_source": rec["score_source"]}
        if key != "teacher":
            weights = ("reg", "kt", "vt", "sh", "cs")
            rows[key]["distill_weights"] = {k: getattr(cfgs[key].distill, k) for k in weights}
        _log(f"{key}: {bench['params'] / 1e6:.2f}M params, {bench['gflops']:.3f} GFLOPs, "
             f"{bench['latency_ms']:.1f} ms")

    _stage(6, n, "report (table, plot, overlays)")
    overlays = draw_overlays(out, val_ann, data_root / "images", ckpts, sizes.num_overlays)
    plot_rows = [{"name": key.replace("student_", ""), "AP": rows[key]["AP"], "gflops": rows[key]["gflops"],
                  "group": "student" if key != "teacher" else None} for key in MODEL_KEYS]
    plot_ap_vs_gflops(plot_rows, out / "ap_vs_gflops.png",
                      title="slimpose demo (synthetic val)" + (" - SMOKE RUN" if quick else ""))
    result: dict[str, Any] = {
        "quick": bool(quick),
        "seed": int(seed),
        "threads": threads,
        "sizes": {**dataclasses.asdict(sizes), "heatmap_size": list(sizes.heatmap_size)},
        "data": {**data, "root": str(data_root)},
        "models": rows,
        "configs": configs,
        "overlays": overlays,
        "machine": {"cpu_count": _cpu_count(), "loadavg_start": load_start, "loadavg_end": _loadavg(),
                    "torch": torch.__version__, "python": platform.python_version(),
                    "processor": platform.processor() or platform.machine()},
        "wall_seconds": time.perf_counter() - t_start,
    }
    result["sizes"]["input_size"] = list(sizes.input_size)
    result["sizes"]["image_size"] = list(sizes.image_size)
    result["sizes"]["patch_size"] = list(sizes.patch_size)
    report = write_text_atomic(out / "report.md", render_report(result))
    write_json_atomic(out / "results.json", result, indent=2)
    print("\n" + format_table(result), flush=True)
    print(f"\n{verdict(rows, bool(quick))}", flush=True)
    print(f"\nreport: {report} ({result['wall_seconds'] / 60:.1f} min)", flush=True)
    return report
