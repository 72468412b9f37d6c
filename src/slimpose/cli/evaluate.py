"""``slimpose evaluate``: COCO keypoint AP/AR of a results file against COCO-format ground truth."""

from __future__ import annotations

import argparse
import json
import sys

from slimpose.evaluation.coco import (
    COCO_SIGMAS,
    UNIFORM_SIGMA,
    dataset_sigma_names,
    evaluate_coco_keypoints,
    infer_num_keypoints,
    load_coco_gt,
    resolve_sigmas,
    stats_table,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="ANNOTATIONS.json",
                        help="COCO-format keypoint ground truth")
    parser.add_argument("--results", required=True, metavar="RESULTS.json",
                        help="COCO keypoint results: [{image_id, category_id, keypoints, score}, ...]")
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")
    parser.add_argument("--sigmas", default=None, metavar="NAME|s1,s2,...",
                        help="OKS sigmas: a data-set name (coco, crowdpose, ... from slimpose.data.metainfo) "
                             "or comma-separated numbers; default COCO for 17 keypoints")
    parser.add_argument("--no-area", dest="use_area", action="store_false",
                        help="use 0.53 x box area as the gt area (xtcocotools use_area=False; CrowdPose, "
                             "AIC); chosen automatically when the gt has no 'area'")
    parser.add_argument("--verbose", action="store_true", help="show pycocotools' own output (on stderr)")


def _warn(message: str) -> None:
    print(f"slimpose evaluate: warning: {message}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    dataset, _ = load_coco_gt(args.gt)
    num_keypoints = infer_num_keypoints(dataset, str(args.gt))
    if args.sigmas is None and num_keypoints != len(COCO_SIGMAS):
        names = dataset_sigma_names(num_keypoints)
        hint = f" (known data sets with {num_keypoints} keypoints: {', '.join(names)})" if names else ""
        _warn(f"{num_keypoints} keypoints and no --sigmas: using a uniform sigma {UNIFORM_SIGMA:.4f} for "
              f"every keypoint; the AP is not comparable with published numbers{hint}")
        sigmas = [UNIFORM_SIGMA] * num_keypoints
    else:
        sigmas = resolve_sigmas(args.sigmas, num_keypoints)
    use_area = args.use_area
    anns = dataset.get("annotations") or []
    if use_area and any(isinstance(a, dict) and "area" not in a for a in anns):
        _warn(f"{args.gt} has annotations without 'area': using 0.53 x box area (as --no-area)")
        use_area = False

    if args.verbose:
        saved, sys.stdout = sys.stdout, sys.stderr  # keep stdout clean for --json
        try:
            stats = evaluate_coco_keypoints(args.gt, args.results, sigmas=sigmas, use_area=use_area,
                                            verbose=True)
        finally:
            sys.stdout = saved
    else:
        stats = evaluate_coco_keypoints(args.gt, args.results, sigmas=sigmas, use_area=use_area)

    if args.json:
        print(json.dumps(stats))
    else:
        print(f"COCO keypoint evaluation: {args.results} vs {args.gt} ({num_keypoints} keypoints)")
        print(stats_table(stats))
    return 0
