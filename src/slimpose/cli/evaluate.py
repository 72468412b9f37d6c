"""``slimpose evaluate``: score a keypoint results file against its ground truth.

``--metric coco`` (default): COCO keypoint AP/AR against COCO-format ground truth.
``--metric pckh``: MPII PCKh against an MPII json list (HRNet / MMPose format). Results are a COCO-style
results list whose ``image_id`` is the index of the person's record in the json list (what ``slimpose eval``
and ``slimpose predict --gt MPII.json`` write) and whose coordinates are 0-based image pixels. Head size =
0.6 x the head-box diagonal (the official ``mpii_gt_val.mat`` with ``--headbox-file``, else each record's
``head_box``), correct when ``dist / head size <= thr``; the headline is the official Mean (all joints but
pelvis and thorax). A record with several results keeps the highest-scoring one; a record without a result
counts every labelled joint as wrong (the official evaluation has a prediction per person); both are
reported on stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

import numpy as np

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
from slimpose.utils.io import SlimposeInputError, load_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gt", required=True, metavar="ANNOTATIONS.json",
                        help="ground truth: COCO-format keypoints (--metric coco) or an MPII json list "
                             "(--metric pckh)")
    parser.add_argument("--results", required=True, metavar="RESULTS.json",
                        help="COCO keypoint results: [{image_id, category_id, keypoints, score}, ...]; for "
                             "pckh image_id is the record index in the MPII json list, coordinates 0-based")
    parser.add_argument("--metric", choices=("coco", "pckh"), default="coco",
                        help="coco: keypoint AP/AR (default); pckh: MPII PCKh (in %%, official Mean without "
                             "pelvis and thorax, per joint, and the MPII table)")
    parser.add_argument("--headbox-file", default=None, metavar="mpii_gt_val.mat",
                        help="pckh: the official head boxes (headboxes_src; needs scipy); default: the "
                             "records' head_box fields, else the head-top/upper-neck distance")
    parser.add_argument("--thr", type=float, default=None, help="pckh: threshold on dist / head size (0.5)")
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
    if args.metric == "pckh":
        return run_pckh(args)
    for flag, value in (("--headbox-file", args.headbox_file), ("--thr", args.thr)):
        if value is not None:
            raise SlimposeInputError(f"{flag} is for --metric pckh (MPII), not for COCO AP")
    try:
        dataset, _ = load_coco_gt(args.gt)
    except SlimposeInputError as e:
        if isinstance(_load_quiet(args.gt), list):
            raise SlimposeInputError(f"{e}; {args.gt} is a json list (MPII?): use --metric pckh") from None
        raise
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


def _load_quiet(path: Any) -> Any:
    try:
        return load_json(path)
    except SlimposeInputError:
        return None


def _fmt(value: float | None, width: int = 8) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"


def _head_sizes(instances: list[Any], headbox_file: Any) -> tuple[np.ndarray, str]:
    """(N, 4) head boxes (NaN rows: none) and where they came from; warns when not the official ones."""
    boxes = np.array([np.full(4, np.nan) if inst.head_box is None else np.asarray(inst.head_box, np.float64)
                      for inst in instances]).reshape(-1, 4)
    if headbox_file is not None:
        return boxes, "headbox_file"
    have = int(np.count_nonzero(np.isfinite(boxes).all(axis=1)))
    if have == len(instances):
        return boxes, "head_box"
    if have == 0:
        _warn("no head boxes (no --headbox-file, no head_box in the records): head size = the head-top to "
              "upper-neck distance; not comparable with published PCKh")
        return boxes, "head_segment"
    _warn(f"{len(instances) - have} of {len(instances)} records have no head_box: their head size is the "
          "head-top to upper-neck distance")
    return boxes, "mixed"


def run_pckh(args: argparse.Namespace) -> int:
    """``--metric pckh``: MPII PCKh of ``--results`` against the MPII json list ``--gt``."""
    from slimpose.data.mpii import load_mpii_instances
    from slimpose.evaluation.pck import MPII_GROUPS, MPII_JOINT_NAMES, mpii_report, pckh
    from slimpose.evaluation.results import match_results_to_records, read_coco_results

    if args.sigmas is not None or not args.use_area:
        raise SlimposeInputError("--sigmas / --no-area are for --metric coco (OKS), not for PCKh")
    thr = 0.5 if args.thr is None else float(args.thr)
    if not (math.isfinite(thr) and thr > 0):
        raise SlimposeInputError(f"--thr must be a positive number, got {args.thr}")
    instances = load_mpii_instances(args.gt, headbox_file=args.headbox_file)
    num = len(instances)
    if num == 0:
        raise SlimposeInputError(f"{args.gt}: no MPII records to score")
    k = len(MPII_JOINT_NAMES)
    if instances[0].num_keypoints != k:
        raise SlimposeInputError(f"{args.gt}: {instances[0].num_keypoints} joints per record, PCKh needs {k}")
    results = read_coco_results(args.results, num_keypoints=k)
    match = match_results_to_records(results, num, str(args.results), k)
    if match.num_duplicates:
        _warn(f"{args.results}: {match.num_duplicates} results for records that already had one: the "
              "highest-scoring result of each record is scored")
    if match.num_missing:
        _warn(f"{args.results}: no result for {match.num_missing} of {num} records of {args.gt}: their "
              "labelled joints count as wrong")
    heads, source = _head_sizes(list(instances), args.headbox_file)
    gt = np.stack([inst.keypoints for inst in instances]).astype(np.float64)
    vis = np.stack([inst.visible for inst in instances]) > 0
    result = pckh(match.keypoints, gt, vis, heads, thr=thr)
    if result.num_skipped:
        _warn(f"{result.num_skipped} records have no usable head size (no head box and head top or upper "
              "neck unlabelled): left out")
    report: dict[str, Any] = mpii_report(result)
    report.update({"num_records": num, "num_results": len(results), "num_missing": match.num_missing,
                   "num_duplicates": match.num_duplicates, "head_size": source})
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"MPII PCKh@{thr:g}: {args.results} vs {args.gt} ({num} records, head size from {source})")
    print(f"PCKh (official Mean, without pelvis and thorax): {_fmt(report['PCKh'], 0)}")
    names = [name for name, _ in MPII_GROUPS] + ["Mean"]
    print("".join(f"{n:>9}" for n in names))
    print("".join(" " + _fmt(report[n]) for n in names))
    print("per joint:          PCKh   labelled")
    for name in MPII_JOINT_NAMES:
        print(f"  {name:<14}{_fmt(report['per_joint'][name])}  {report['per_joint_count'][name]:>9}")
    return 0
