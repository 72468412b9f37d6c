"""``slimpose demo [--out DIR] [--quick] [--seed S] [--threads N]``: the built-in teacher-to-student demo.

Synthetic people, a small TokenPose teacher, the same-size DistilPose-S student without and with
distillation, COCO AP + params / GFLOPs / latency, and a report folder (see ``slimpose.demo``).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="outputs/demo", help="report folder (default: outputs/demo)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny data, 1 epoch per model (about a minute)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data and the trainings (default 0)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: the number of CPUs available)")


def run(args: argparse.Namespace) -> int:
    from slimpose.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed, threads=args.threads)
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="slimpose demo")
    add_arguments(p)
    sys.exit(run(p.parse_args()))
