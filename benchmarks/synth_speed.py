"""Synthetic-people generator speed: images per minute on one CPU core.

Times ``generate_synthetic_dataset`` end to end (render + RLE masks + JPEG encode + file writes +
json) with one worker, and the bare renderer (``render_synthetic_image``) alone. Prints a table and
one JSON line.

    python benchmarks/synth_speed.py [--images 300] [--size 320 256] [--workers 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

import cv2

from slimpose.data.synth import SynthConfig, generate_synthetic_dataset, image_rng, render_synthetic_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, nargs=2, default=(320, 256), metavar=("W", "H"))
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(1)
    size = (args.size[0], args.size[1])

    cfg = SynthConfig(image_size=size)
    start = time.perf_counter()
    people = 0
    for i in range(args.images):
        people += len(render_synthetic_image(image_rng(args.seed, "speed", i), cfg).annotations)
    render_s = time.perf_counter() - start

    with tempfile.TemporaryDirectory(prefix="synth_speed_") as tmp:
        start = time.perf_counter()
        path = generate_synthetic_dataset(tmp, args.images, args.seed, split="val", image_size=size,
                                          workers=args.workers, progress=False)
        total_s = time.perf_counter() - start
        json_mb = os.path.getsize(path) / 1e6
    row = {
        "benchmark": "synth_speed", "images": args.images, "image_size": list(size), "workers": args.workers,
        "render_images_per_min": round(60.0 * args.images / render_s, 1),
        "end_to_end_images_per_min": round(60.0 * args.images / total_s, 1),
        "annotated_people_per_image": round(people / args.images, 2),
        "json_mb": round(json_mb, 2), "cpu": platform.processor() or platform.machine(),
    }
    print(f"{'stage':<28}{'images/min':>12}")
    print(f"{'render only':<28}{row['render_images_per_min']:>12.0f}")
    print(f"{'end to end (' + str(args.workers) + ' worker)':<28}{row['end_to_end_images_per_min']:>12.0f}")
    print(json.dumps(row))


if __name__ == "__main__":
    main()
