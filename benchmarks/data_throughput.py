"""Top-down data pipeline throughput: crops with MSRA heatmap targets per second on one CPU core.

Measures ``TopDownDataset.__getitem__`` (image read + decode, augmentation, warp, normalisation,
target encoding) in train mode (full augmentation) and val mode, on the real COCO sample images
(``../shared/data/real/coco`` beside the checkout) or on a COCO-style folder given with ``--data DIR`` (for example the
output of the synthetic generator: ``DIR/annotations/*.json`` + ``DIR/images``). Prints a table and
one JSON line.

    python benchmarks/data_throughput.py [--data DIR] [--seconds 3] [--udp] [--input-size 192 256]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import torch

from slimpose.codecs.msra_heatmap import MSRAHeatmap
from slimpose.data.coco import load_coco_instances
from slimpose.data.dataset import TopDownDataset
from slimpose.data.metainfo import COCO
from slimpose.utils.io import SlimposeInputError

# the real COCO sample of ``shared/`` beside the checkout
DEFAULT_ANN = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "coco" / "test_coco.json"


def find_annotation(data: Path) -> Path:
    """A COCO-style json in ``data`` (or ``data/annotations``), or ``data`` itself if it is a file."""
    if data.is_file():
        return data
    for folder in (data / "annotations", data):
        found = sorted(folder.glob("*.json")) if folder.is_dir() else []
        if found:
            return found[0]
    raise SlimposeInputError(f"{data}: no COCO-style annotation json found "
                             f"(looked in {data} and {data}/annotations)")


def measure(dataset: TopDownDataset, seconds: float, min_items: int) -> dict[str, float]:
    """Run ``dataset[i]`` round-robin for at least ``seconds`` and ``min_items``; items per second."""
    dataset[0]  # warm-up (imports, first-call allocations)
    n, start = 0, time.perf_counter()
    while True:
        dataset[n % len(dataset)]
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= min_items:
            break
    return {"items": n, "seconds": elapsed, "per_second": n / elapsed, "ms_per_item": 1000.0 * elapsed / n}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="COCO-style folder or json (default: the real COCO sample)")
    parser.add_argument("--seconds", type=float, default=3.0, help="minimum timed seconds per mode")
    parser.add_argument("--min-items", type=int, default=50)
    parser.add_argument("--input-size", type=int, nargs=2, default=(192, 256), metavar=("W", "H"))
    parser.add_argument("--udp", action="store_true", help="UDP warp instead of the standard one")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    ann = find_annotation(args.data) if args.data is not None else DEFAULT_ANN
    try:
        instances = load_coco_instances(ann, info=COCO)
    except SlimposeInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not instances:
        print(f"error: {ann}: no labelled person instances", file=sys.stderr)
        return 2
    w, h = args.input_size
    codec = MSRAHeatmap(input_size=(w, h), heatmap_size=(w // 4, h // 4), sigma=2.0)
    rows = {}
    for mode in ("train", "val"):
        ds = TopDownDataset(instances, COCO, codec, input_size=(w, h), train=mode == "train",
                            udp=args.udp, seed=0)
        rows[mode] = measure(ds, args.seconds, args.min_items)

    cpu = platform.processor() or platform.machine()
    print(f"data throughput, 1 core ({cpu}), {len(instances)} instances "
          f"from {ann}, input {w}x{h}, MSRA heatmaps {w // 4}x{h // 4}{', UDP' if args.udp else ''}")
    print(f"{'mode':<6} {'items':>7} {'crops/s':>9} {'ms/crop':>9}")
    for mode, r in rows.items():
        print(f"{mode:<6} {r['items']:>7d} {r['per_second']:>9.1f} {r['ms_per_item']:>9.2f}")
    print(json.dumps({"benchmark": "data_throughput", "annotation": str(ann), "instances": len(instances),
                      "input_size": [w, h], "udp": bool(args.udp), "threads": 1,
                      **{f"{m}_crops_per_s": round(r["per_second"], 2) for m, r in rows.items()},
                      **{f"{m}_ms_per_crop": round(r["ms_per_item"], 3) for m, r in rows.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
