"""Reference points on the synthetic-people validation set: COCO keypoint AP of trivial predictors.

(a) mean pose: the mean keypoint layout in box coordinates ((x - x0) / w, (y - y0) / h over the
    labelled keypoints of a synthetic training set), placed in every ground-truth box, score 1;
(b) jittered ground truth: each labelled keypoint plus Gaussian noise of sigma = level x sqrt(area)
    (unlabelled ones from the mean pose), for two levels;
(c) the exact ground truth (sanity check: AP 1.0).
Scored with ``slimpose.evaluation.coco.evaluate_coco_keypoints`` (COCOeval, COCO sigmas) when it
exists, else pycocotools directly. The data sets are generated once and reused.

    python benchmarks/synth_baselines.py [--data-dir work_dirs/synth_baselines] [--val-images 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
from pathlib import Path

import numpy as np

from slimpose.data.synth import generate_synthetic_dataset
from slimpose.utils.io import load_json, write_json_atomic

COCO_SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87,
                        .89, .89]) / 10.0


def ensure_split(root: Path, split: str, images: int, seed: int, workers: int) -> Path:
    """Return the annotation json of ``split``, generating it unless a matching one exists."""
    path = root / "annotations" / f"person_keypoints_{split}.json"
    if path.is_file():
        info = load_json(path).get("info", {})
        same = info.get("seed") == seed and info.get("image_size") == [320, 256]
        if same and len(list((root / "images" / split).glob("*.jpg"))) == images:
            return path
    return generate_synthetic_dataset(root, images, seed, split=split, workers=workers, progress=True)


def mean_pose(train: dict) -> np.ndarray:
    """(17, 2) mean keypoint position in box coordinates over labelled keypoints."""
    total, count = np.zeros((17, 2)), np.zeros((17, 1))
    for ann in train["annotations"]:
        x, y, w, h = ann["bbox"]
        kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
        lab = kp[:, 2:3] > 0
        total += np.where(lab, (kp[:, :2] - [x, y]) / [w, h], 0.0)
        count += lab
    return total / np.maximum(count, 1)


def predictions(val: dict, pose: np.ndarray, noise_level: float | None,
                rng: np.random.Generator) -> list[dict]:
    """One result per labelled ground-truth person: mean pose in its box, or jittered ground truth."""
    out = []
    for ann in val["annotations"]:
        if ann["num_keypoints"] == 0:
            continue
        x, y, w, h = ann["bbox"]
        pts = pose * [w, h] + [x, y]
        if noise_level is not None:
            kp = np.asarray(ann["keypoints"], dtype=np.float64).reshape(17, 3)
            lab = kp[:, 2] > 0
            sigma = noise_level * np.sqrt(ann["area"])
            pts[lab] = kp[lab, :2] + (rng.normal(0.0, sigma, size=(int(lab.sum()), 2)) if sigma > 0 else 0.0)
        kps = np.concatenate([pts, np.ones((17, 1))], axis=1).reshape(-1)
        out.append({"image_id": ann["image_id"], "category_id": 1, "keypoints": [float(v) for v in kps],
                    "score": 1.0})
    return out


def evaluate(gt_path: Path, results: list[dict]) -> dict[str, float]:
    try:
        from slimpose.evaluation.coco import evaluate_coco_keypoints
    except ImportError:
        evaluate_coco_keypoints = None
    if evaluate_coco_keypoints is not None:
        return evaluate_coco_keypoints(str(gt_path), results, sigmas=COCO_SIGMAS)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = COCO_SIGMAS
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    names = ["AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL"]
    return {n: float(v) for n, v in zip(names, ev.stats)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="work_dirs/synth_baselines")
    parser.add_argument("--val-images", type=int, default=2000)
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--val-seed", type=int, default=1)
    parser.add_argument("--train-seed", type=int, default=0)
    parser.add_argument("--noise", type=float, nargs="+", default=(0.025, 0.05),
                        help="jitter levels: sigma = level x sqrt(area)")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    root = Path(args.data_dir)
    train_path = ensure_split(root, "train", args.train_images, args.train_seed, args.workers)
    val_path = ensure_split(root, "val", args.val_images, args.val_seed, args.workers)
    train, val = load_json(train_path), load_json(val_path)
    pose = mean_pose(train)
    rng = np.random.default_rng(0)
    rows = [("mean pose in GT box", evaluate(val_path, predictions(val, pose, None, rng)))]
    for level in args.noise:
        name = f"GT + N(0, {level:g} sqrt(area))"
        rows.append((name, evaluate(val_path, predictions(val, pose, level, rng))))
    rows.append(("exact GT (sanity)", evaluate(val_path, predictions(val, pose, 0.0, rng))))

    labelled = sum(1 for a in val["annotations"] if a["num_keypoints"] > 0)
    print(f"val: {val_path} ({len(val['images'])} images, {labelled} labelled people); "
          f"mean pose from {train_path} ({len(train['annotations'])} people)")
    print(f"{'predictor':<32}{'AP':>7}{'AP50':>7}{'AP75':>7}{'APM':>7}{'APL':>7}{'AR':>7}")
    for name, s in rows:
        print(f"{name:<32}" + "".join(f"{s[k]:>7.3f}" for k in ("AP", "AP50", "AP75", "APM", "APL", "AR")))
    report = {"benchmark": "synth_baselines", "val": str(val_path), "val_images": len(val["images"]),
              "labelled_people": labelled, "results": {name: s for name, s in rows}}
    write_json_atomic(root / "baselines.json", report, indent=1)
    print(json.dumps({"benchmark": "synth_baselines", **{name: round(s["AP"], 4) for name, s in rows}}))


if __name__ == "__main__":
    main()
