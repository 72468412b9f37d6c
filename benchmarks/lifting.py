"""Video 3-D lifting evidence on a CPU budget: MixSTE vs HoT-MixSTE vs the H2OT variants vs KTPFormer (and HoT
on it) vs StarPose (with and without STPG) on synthetic motion.

    python benchmarks/lifting.py train --out benchmarks/results/lifting_synth3d --rows mixste,hot_tpc_tra
    python benchmarks/lifting.py speed --out benchmarks/results/lifting_synth3d
    python benchmarks/lifting.py report --out benchmarks/results/lifting_synth3d

``train``: every row trains under one budget (the ``*_synth3d`` recipes' CPU-sized trunk: 27 frames, dim 64,
4 + 4 blocks, 8 heads; the same synthetic sequences, epochs, batch, AdamW and schedule; one thread) and is
scored on the synthetic test subjects (S9, S11, four cameras, every frame once, flip test on): MPJPE,
P-MPJPE, N-MPJPE, MPJVE, the acceleration error ACCEL and the action-wise MPJPE, in millimetres (StarPose's
weights are scored a second time with the STPG guidance off: row ``starpose_nostpg``). Each row is written to
``OUT_runs/<row>.json`` as soon as it ends (a rerun skips finished rows, so rows can run in parallel
processes); its trained weights stay in ``OUT_runs/<row>/last.pth``.

``speed``: params, linear-layer G MACs per clip (the papers' convention) and with the attention products, and
the CPU latency of one 27-frame clip at batch 1 of every row's model, measured round-robin in one process
(``measure_latencies_interleaved``: load changes hit all rows alike), as ratios to MixSTE. ``speed --full``:
the same for the released sizes (243 frames, dim 512) of every model (``OUT_speed_full.json``). StarPose (both
sizes) is counted and timed on a window with a full 27-frame history (its HPIM runs), with and without STPG.

``report`` gathers both into ``OUT.json``, ``OUT.md`` and ``OUT.png`` (MPJPE against G MACs per clip).

``draw``: ``OUT_poses.png``, the ground truth and every trained row's prediction (flip test) of a few frames of
the first test sequence of each motion kind, as 3-D skeletons (``slimpose.lifting.draw``).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

from slimpose.config.recipes.lifting import SYNTH_MODELS, _synth
from slimpose.lifting.config import LiftConfig
from slimpose.utils.io import load_json, write_json_atomic, write_text_atomic

# row -> (label, model name, factory overrides); the H2OT rows use the default schedule scaled to the CPU trunk
# (27 frames, 4 block pairs): 13, 7 and 3 of 27 frames before block pairs 1, 2 and 3
H2OT = SYNTH_MODELS["h2ot_mixste"]
ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mixste": ("MixSTE (all 27 frames)", "mixste", dict(SYNTH_MODELS["mixste"])),
    "hot_tpc_tra": ("HoT-MixSTE: TPC 9 of 27 before pair 2, TRA", "hot_mixste", dict(SYNTH_MODELS["hot_mixste"])),
    "hot_tps_tri": ("HoT-MixSTE with TPS + TRI", "hot_mixste",
                    dict(SYNTH_MODELS["hot_mixste"], pruner="tps", recovery="tri")),
    "h2ot_tpc_tra": ("H2OT: TPC 13/7/3 before pairs 1/2/3, TRA", "h2ot_mixste", dict(H2OT, pruner="tpc", recovery="tra")),
    "h2ot_tpa_tra": ("H2OT: TPA, TRA", "h2ot_mixste", dict(H2OT, pruner="tpa", recovery="tra")),
    "h2ot_tpmo_tra": ("H2OT: TPMo, TRA", "h2ot_mixste", dict(H2OT, pruner="tpmo", recovery="tra")),
    "h2ot_tps_tri": ("H2OT: TPS, TRI (parameter-free)", "h2ot_mixste", dict(H2OT, pruner="tps", recovery="tri")),
    "ktpformer": ("KTPFormer (KPA + TPA, then 3 pairs)", "ktpformer", dict(SYNTH_MODELS["ktpformer"])),
    "hot_ktpformer": ("HoT on KTPFormer: TPC 9 of 27 after 2 pairs, TRA", "hot_ktpformer",
                      dict(SYNTH_MODELS["hot_ktpformer"])),
    "starpose": ("StarPose-S: autoregressive diffusion, HPIM, STPG (5 hypotheses, 5 DDIM steps)", "starpose_s",
                 dict(SYNTH_MODELS["starpose_s"])),
}
#: rows scored a second time from the same weights with the STPG guidance off at sampling time
UNGUIDED = {"starpose": ("StarPose-S without STPG (same weights, unguided sampling)", "starpose_nostpg")}


#: the released sizes (243 frames, dim 512, 8 + 8 blocks), for ``speed --full``: counted and timed, not trained
FULL_ROWS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "mixste": ("MixSTE", "mixste", {}),
    "hot_tpc_tra": ("HoT-MixSTE (TPC 81 of 243 before pair 3, TRA)", "hot_mixste", {}),
    "h2ot_tpc_tra": ("H2OT (TPC 121/61/31 before pairs 2/3/4, TRA)", "h2ot_mixste", {}),
    "h2ot_tps_tri": ("H2OT (TPS, TRI)", "h2ot_mixste", {"pruner": "tps", "recovery": "tri"}),
    "ktpformer": ("KTPFormer", "ktpformer", {}),
    "hot_ktpformer": ("HoT on KTPFormer (TPC 81 of 243 after 3 of 8 pairs, TRA)", "hot_ktpformer", {}),
    "starpose": ("StarPose (MixSTE context, 27-frame history, 5 hypotheses x 5 DDIM steps, STPG)", "starpose", {}),
}


def report_rows() -> list[str]:
    """Every row in table order, each unguided variant right after its trained row."""
    out = []
    for row in ROWS:
        out.append(row)
        if row in UNGUIDED:
            out.append(UNGUIDED[row][1])
    return out


def row_config(args: argparse.Namespace, row: str) -> LiftConfig:
    """The synthetic-motion budget with this row's lifter."""
    _, model, overrides = ROWS[row]
    cfg = copy.deepcopy(_synth("mixste"))
    cfg.name = row
    cfg.model.name = model
    cfg.model.overrides = dict(overrides)
    d = cfg.data
    d.data_root = str(Path(args.data_dir) if args.data_dir else Path(f"{args.out}_data"))
    d.synthetic_sequences, d.synthetic_frames, d.stride = args.sequences, 243, args.stride
    cfg.schedule.epochs = args.epochs
    cfg.eval_interval = args.epochs
    cfg.num_threads = args.threads
    cfg.tensorboard = False
    cfg.device = "cpu"
    cfg.seed = args.seed
    cfg.work_dir = str(Path(f"{args.out}_runs") / run_name(row, args.seed))
    return cfg


def run_name(row: str, seed: int) -> str:
    """``row`` for seed 0 (the first run of every row), ``row_s<seed>`` for the others."""
    return row if seed == 0 else f"{row}_s{seed}"


def build_row_model(row: str, full: bool = False):
    """The row's lifter; an autoregressive one (StarPose) wrapped to run on a window with a full history (what
    every window but a sequence's first costs), unguided for the ``UNGUIDED`` rows."""
    from slimpose.lifting.models import create_lifter

    base = next((r for r, (_, name) in UNGUIDED.items() if name == row), row)
    _, model, overrides = (FULL_ROWS if full else ROWS)[base]
    lifter = create_lifter(model, **overrides)
    if getattr(lifter, "autoregressive", False):
        lifter.guidance = base == row
        return WithHistory(lifter)
    return lifter


def WithHistory(lifter):
    """``lifter`` called on a window with an L-frame history of zeros (its HPIM runs): the cost of a typical
    autoregressive window, for ``count_flops`` and the latency rounds."""
    import torch

    class _WithHistory(torch.nn.Module):
        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        @property
        def input_spec(self):
            return self.inner.input_spec

        def counting(self):
            return self.inner.counting()

        def forward(self, x):
            b, L, J = x.shape[0], self.inner.history, self.inner.num_joints
            return self.inner(x, x.new_zeros(b, L, J, 2), x.new_zeros(b, L, J, 3))

    return _WithHistory(lifter)


def cmd_train(args: argparse.Namespace) -> None:
    from slimpose.config.parse import config_to_dict
    from slimpose.training import fit_config

    runs = Path(f"{args.out}_runs")
    for row in args.rows.split(","):
        dst = runs / f"{run_name(row, args.seed)}.json"
        if dst.exists() and not args.overwrite:
            print(f"[lifting] {row}: done ({dst})", file=sys.stderr)
            continue
        cfg = row_config(args, row)
        t0 = time.perf_counter()
        summary, loop = fit_config(cfg)
        result = {"row": row, "seed": args.seed, "label": ROWS[row][0], "model": cfg.model.name,
                  "overrides": cfg.model.overrides,
                  "train_s": time.perf_counter() - t0, "steps": loop.global_step,
                  "metrics": {k[4:]: v for k, v in summary.items() if k.startswith("val_")},
                  "train_loss": summary.get("train_loss"), "config": config_to_dict(cfg)}
        if row in UNGUIDED:  # the same weights sampled without STPG
            from slimpose.lifting.train import evaluate_lift_checkpoint

            plain = copy.deepcopy(cfg)
            plain.model.overrides["stpg"] = False
            m = evaluate_lift_checkpoint(plain, Path(cfg.work_dir) / "last.pth", Path(cfg.work_dir) / "unguided")
            label, name = UNGUIDED[row]
            write_json_atomic(runs / f"{run_name(name, args.seed)}.json",
                              {**result, "row": name, "label": label, "metrics": m,
                               "overrides": plain.model.overrides}, indent=2)
        write_json_atomic(dst, result, indent=2)
        print(f"[lifting] {row}: MPJPE {result['metrics'].get('MPJPE'):.1f} mm in {result['train_s']:.0f} s",
              file=sys.stderr)


def cmd_speed(args: argparse.Namespace) -> None:
    import torch

    from slimpose.engine.complexity import count_flops, count_params, measure_latencies_interleaved

    torch.set_num_threads(args.threads)
    rows = (list(FULL_ROWS) + ["starpose_nostpg"]) if args.full else args.rows.split(",")
    models = {row: build_row_model(row, args.full).eval() for row in rows}
    out: dict[str, Any] = {"threads": args.threads, "rounds": args.rounds, "repeats": args.repeats, "batch": 1,
                           "num_frames": next(iter(models.values())).input_spec.num_frames, "rows": {}}
    for row, model in models.items():
        flops = count_flops(model)
        out["rows"][row] = {"params": count_params(model), "gmacs_linear": flops["linear"],
                            "gmacs_with_attention": flops["gflops_with_attention"]}
    lat = measure_latencies_interleaved(models, {"b1": {"batch": 1, "device": "cpu", "warmup": 3,
                                                        "repeats": args.repeats}}, rounds=args.rounds)
    for row in rows:
        ms = sorted(lat[row]["b1"])
        out["rows"][row]["latency_ms_rounds"] = ms
        out["rows"][row]["latency_ms"] = ms[len(ms) // 2]
    base = out["rows"].get("mixste")
    if base:
        for r in out["rows"].values():
            r["gmacs_vs_mixste"] = r["gmacs_linear"] / base["gmacs_linear"]
            r["latency_vs_mixste"] = r["latency_ms"] / base["latency_ms"]
    dst = Path(f"{args.out}_speed{'_full' if args.full else ''}.json")
    write_json_atomic(dst, out, indent=2)
    print(f"[lifting] speed written to {dst}", file=sys.stderr)


def cmd_report(args: argparse.Namespace) -> None:
    runs = Path(f"{args.out}_runs")
    speed_path = Path(f"{args.out}_speed.json")
    speed = load_json(speed_path, "speed results")["rows"] if speed_path.exists() else {}
    rows = []
    for row in report_rows():
        seeds = [load_json(p, "row result") for p in [runs / f"{row}.json"] + sorted(runs.glob(f"{row}_s[0-9]*.json"))
                 if p.exists()]
        if not seeds:
            continue
        r = {**seeds[0], **speed.get(row, {})}
        keys = dict.fromkeys(k for x in seeds for k in x["metrics"])
        # a metric added later (ACCEL) is the mean of the seeds that have it; ``metric_seeds`` says how many
        r["metrics"] = {k: sum(x["metrics"][k] for x in seeds if k in x["metrics"]) /
                        sum(k in x["metrics"] for x in seeds) for k in keys}
        r["metric_seeds"] = {k: sum(k in x["metrics"] for x in seeds) for k in keys}
        r["seeds"] = [{"seed": x.get("seed", 0), "MPJPE": x["metrics"]["MPJPE"]} for x in seeds]
        r["train_s"] = sum(x["train_s"] for x in seeds) / len(seeds)
        rows.append(r)
    if not rows:
        raise SystemExit(f"no finished rows in {runs}")
    base = next((r for r in rows if r["row"] == "mixste"), None)
    lines = ["| row | params | G MACs / clip (linear) | vs MixSTE | CPU ms / clip | vs MixSTE | MPJPE | vs MixSTE | "
             "MPJPE per seed | P-MPJPE | N-MPJPE | MPJVE | ACCEL | action-wise MPJPE | train s |", "|" + "---|" * 15]
    for r in rows:
        m = r["metrics"]
        accel = f"{m['ACCEL']:.2f}" if "ACCEL" in m else "-"
        if "ACCEL" in m and r["metric_seeds"]["ACCEL"] < len(r["seeds"]):
            accel += f" ({r['metric_seeds']['ACCEL']} seed)"
        d_mpjpe = f"{100 * (m['MPJPE'] / base['metrics']['MPJPE'] - 1):+.1f}%" if base else "-"
        lines.append(
            f"| {r['label']} | {r.get('params', 0) / 1e6:.3f} M | {r.get('gmacs_linear', float('nan')):.4f} | "
            f"{100 * (r.get('gmacs_vs_mixste', float('nan')) - 1):+.1f}% | {r.get('latency_ms', float('nan')):.2f} | "
            f"{100 * (r.get('latency_vs_mixste', float('nan')) - 1):+.1f}% | {m['MPJPE']:.1f} | {d_mpjpe} | "
            f"{' / '.join(format(x['MPJPE'], '.1f') for x in r['seeds'])} | "
            f"{m['P-MPJPE']:.1f} | {m['N-MPJPE']:.1f} | {m.get('MPJVE', float('nan')):.2f} | {accel} | "
            f"{m.get('MPJPE_actionwise', float('nan')):.1f} | {r['train_s']:.0f} |")
    cfg = rows[0]["config"]
    head = (f"Synthetic motion ({cfg['data']['synthetic_sequences']} sequences of 243 frames, test S9 + S11, four "
            f"cameras, detector-like 2-D noise); every row: {cfg['schedule']['epochs']} epochs, clips of 27 frames "
            f"every {cfg['data']['stride']}, batch {cfg['data']['batch_size']}, AdamW {cfg['optim']['lr']:g} "
            f"(x{cfg['schedule']['epoch_decay']:g} per epoch), {cfg['num_threads']} thread(s); flip test; errors in "
            "mm, the mean over the seeds run (init and data order; the data are the same). Latency: batch 1, one "
            "27-frame clip, median of interleaved rounds in one process.")
    full_path = Path(f"{args.out}_speed_full.json")
    if full_path.exists():
        full = load_json(full_path, "full-size speed results")
        lines += ["", f"Released sizes ({full['num_frames']} frames, dim 512, 8 + 8 blocks; counted and timed, not "
                  f"trained): batch 1, {full['threads']} thread(s), median of {full['rounds']} interleaved rounds of "
                  f"{full['repeats']} forwards.", "",
                  "| model | params | G MACs / clip (linear) | vs MixSTE | + attention | CPU s / clip | vs MixSTE |",
                  "|---|---|---|---|---|---|---|"]
        for row, r in full["rows"].items():
            label = FULL_ROWS[row][0] if row in FULL_ROWS else "StarPose without STPG (unguided sampling)"
            lines.append(f"| {label} | {r['params']:,} | {r['gmacs_linear']:.3f} | "
                         f"{100 * (r['gmacs_vs_mixste'] - 1):+.1f}% | {r['gmacs_with_attention']:.3f} | "
                         f"{r['latency_ms'] / 1000:.2f} | {100 * (r['latency_vs_mixste'] - 1):+.1f}% |")
    write_text_atomic(Path(f"{args.out}.md"), head + "\n\n" + "\n".join(lines) + "\n")
    write_json_atomic(Path(f"{args.out}.json"), {"rows": rows}, indent=2)
    _plot(rows, Path(f"{args.out}.png"))
    print("\n".join(lines))


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slimpose.visualization import save_figure

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in rows:
        if "gmacs_linear" not in r:
            continue
        ax.scatter(r["gmacs_linear"], r["metrics"]["MPJPE"], s=40)
        ax.annotate(r["row"], (r["gmacs_linear"], r["metrics"]["MPJPE"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("G MACs per 27-frame clip (linear layers)")
    ax.set_ylabel("MPJPE (mm), synthetic test subjects")
    ax.set_title("Lifting on synthetic motion: accuracy vs cost")
    ax.grid(alpha=0.3)
    save_figure(fig, path)
    plt.close(fig)


def cmd_draw(args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from slimpose.lifting.checkpoint import load_lifter
    from slimpose.lifting.data.clips import load_sequences
    from slimpose.lifting.draw import draw_skeleton_3d, view_radius
    from slimpose.lifting.inference import lift_sequence
    from slimpose.visualization import save_figure

    runs = Path(f"{args.out}_runs")
    rows = [r for r in args.rows.split(",") if (runs / r / "last.pth").exists()]
    if not rows:
        raise SystemExit(f"no trained rows in {runs}")
    seqs, seen = [], set()
    for seq in load_sequences(row_config(args, rows[0]), "test"):  # one camera-0 sequence per action group
        group = seq.action.split(" ")[0]
        if seq.camera_index == 0 and group not in seen:
            seen.add(group)
            seqs.append(seq)
    from slimpose.lifting.evaluator import guidance_intrinsics

    preds = {}
    for row in rows:  # as the evaluator lifts and scores: with the camera for guidance, root-relative
        model, _ = load_lifter(runs / row / "last.pth")
        preds[row] = [lift_sequence(model, s.keypoints_2d, flip_test=True, intrinsics=guidance_intrinsics(model, s))
                      for s in seqs]
        preds[row] = [p - p[:, s.root_joint:s.root_joint + 1] for p, s in zip(preds[row], seqs)]
    cols = ["ground truth"] + rows
    fig = plt.figure(figsize=(2.2 * len(cols), 2.4 * len(seqs)))
    for i, seq in enumerate(seqs):
        t = seq.num_frames // 2
        radius = view_radius(seq.poses_3d[t:t + 1])
        for j, col in enumerate(cols):
            ax = fig.add_subplot(len(seqs), len(cols), i * len(cols) + j + 1, projection="3d")
            pose = seq.poses_3d[t] if j == 0 else preds[col][i][t]
            draw_skeleton_3d(ax, pose, radius=radius)
            err = "" if j == 0 else f"\n{1000 * np.linalg.norm(pose - seq.poses_3d[t], axis=-1).mean():.0f} mm"
            ax.set_title((col if i == 0 else "") + ("\n" if i == 0 else "") + f"{seq.action}{err}", fontsize=7)
    save_figure(fig, Path(f"{args.out}_poses.png"))
    plt.close(fig)
    print(f"[lifting] poses drawn to {args.out}_poses.png", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=("train", "speed", "report", "draw"))
    p.add_argument("--out", required=True, help="results prefix (OUT.json / .md / .png, OUT_runs/, OUT_speed.json)")
    p.add_argument("--rows", default=None, help="train: the rows (default all); speed: the rows and unguided "
                   "variants (default all)")
    p.add_argument("--data-dir", default=None, help="synthetic motion folder (default OUT_data)")
    recipe = _synth("mixste")  # the *_synth3d recipes' budget by default
    p.add_argument("--sequences", type=int, default=recipe.data.synthetic_sequences)
    p.add_argument("--stride", type=int, default=recipe.data.stride)
    p.add_argument("--epochs", type=int, default=recipe.schedule.epochs)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0, help="train: the run's seed (0: OUT_runs/ROW, k: OUT_runs/ROW_sK)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--full", action="store_true", help="speed: the released sizes (243 frames) instead of the rows")
    args = p.parse_args(argv)
    if args.rows is None:
        args.rows = ",".join(ROWS if args.command in ("train", "draw") else report_rows())
    {"train": cmd_train, "speed": cmd_speed, "report": cmd_report, "draw": cmd_draw}[args.command](args)


if __name__ == "__main__":
    main()
