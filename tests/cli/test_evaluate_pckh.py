"""``slimpose evaluate --metric pckh``: MPII PCKh of a record-index results file; threshold flips, missing and
duplicate results, head sizes, bad input (exit 2, file named); ``slimpose eval`` / ``predict`` on MPII write
record-index results that it scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from slimpose.cli.main import main
from slimpose.data.mpii import load_mpii_instances
from slimpose.data.synth_mpii import generate_synthetic_mpii
from slimpose.evaluation.pck import MPII_JOINT_NAMES


@pytest.fixture(scope="module")
def gt(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pckh")
    return generate_synthetic_mpii(root, 8, seed=2, split="val", image_size=(96, 96), progress=False)


def _results(gt: Path, path: Path, move: dict[tuple[int, int], np.ndarray] | None = None,
             drop: tuple[int, ...] = ()) -> Path:
    recs = []
    for inst in load_mpii_instances(gt):
        if inst.image_id in drop:
            continue
        kp = inst.keypoints.astype(np.float64)
        for (rid, j), delta in (move or {}).items():
            if rid == inst.image_id:
                kp[j] += delta
        flat = np.concatenate([kp, np.full((16, 1), 0.9)], axis=1).reshape(-1)
        recs.append({"image_id": inst.image_id, "category_id": 1, "keypoints": flat.tolist(), "score": 0.8})
    path.write_text(json.dumps(recs))
    return path


def _pckh(capsys, gt: Path, res: Path, *extra: str) -> tuple[dict, str]:
    assert main(["evaluate", "--metric", "pckh", "--gt", str(gt), "--results", str(res), "--json", *extra]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err  # exactly one JSON object on stdout


def _labelled(gt: Path) -> tuple[list, np.ndarray]:
    insts = load_mpii_instances(gt)
    return insts, np.stack([i.visible for i in insts]) > 0


def test_perfect_results_score_100_per_labelled_joint(gt, tmp_path, capsys):
    report, err = _pckh(capsys, gt, _results(gt, tmp_path / "r.json"))
    insts, vis = _labelled(gt)
    assert report["PCKh"] == report["Mean"] == 100.0
    for j, name in enumerate(MPII_JOINT_NAMES):
        assert report["per_joint_count"][name] == int(vis[:, j].sum())
        assert report["per_joint"][name] == (100.0 if vis[:, j].any() else None)
    for group in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle"):
        assert report[group] == 100.0
    assert report["num_records"] == len(insts) and report["num_missing"] == 0 and report["head_size"] == "head_box"
    assert err == ""
    # the table output names the mean, the MPII table and every joint
    assert main(["evaluate", "--metric", "pckh", "--gt", str(gt), "--results", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "official Mean" in out and "Shoulder" in out and "Ankle" in out
    assert all(name in out for name in MPII_JOINT_NAMES)


def _head_size(inst) -> float:
    hb = np.asarray(inst.head_box, dtype=np.float64)
    return 0.6 * float(np.linalg.norm(hb[2:] - hb[:2]))


@pytest.mark.parametrize("joint", [15, 9, 6])  # l_wrist, head top, pelvis (not in the Mean)
def test_just_over_half_a_head_flips_exactly_that_joint(gt, tmp_path, capsys, joint):
    insts, vis = _labelled(gt)
    rid = int(np.flatnonzero(vis[:, joint])[0])
    h = _head_size(insts[rid])
    direction = np.array([0.6, -0.8])
    under = _results(gt, tmp_path / "under.json", {(rid, joint): 0.5 * h * (1 - 1e-4) * direction})
    over = _results(gt, tmp_path / "over.json", {(rid, joint): 0.5 * h * (1 + 1e-4) * direction})
    report_under, _ = _pckh(capsys, gt, under)
    assert report_under["PCKh"] == 100.0
    report, _ = _pckh(capsys, gt, over)
    name = MPII_JOINT_NAMES[joint]
    n = int(vis[:, joint].sum())
    assert report["per_joint"][name] == pytest.approx(100.0 * (n - 1) / n)
    assert all(v == 100.0 for k, v in report["per_joint"].items() if k != name and v is not None)
    in_mean = vis.copy()
    in_mean[:, [6, 7]] = False
    total = int(in_mean.sum())
    expected_mean = 100.0 if joint in (6, 7) else 100.0 * (total - 1) / total
    assert report["PCKh"] == pytest.approx(expected_mean)
    # the same results at --thr 0.6: correct again
    assert _pckh(capsys, gt, over, "--thr", "0.6")[0]["PCKh"] == 100.0


def test_missing_and_duplicate_results(gt, tmp_path, capsys):
    insts, vis = _labelled(gt)
    report, err = _pckh(capsys, gt, _results(gt, tmp_path / "m.json", drop=(0,)))
    assert report["num_missing"] == 1 and "no result for 1 of" in err
    counted = vis[:, :].copy()
    counted[:, [6, 7]] = False
    assert report["PCKh"] == pytest.approx(100.0 * (counted.sum() - counted[0].sum()) / counted.sum())
    # a second, worse result for record 1 with a lower score is ignored; with a higher score it is used
    base = json.loads(_results(gt, tmp_path / "d.json").read_text())
    worse = {**base[1], "keypoints": (np.asarray(base[1]["keypoints"]) + 1000.0).tolist()}
    (tmp_path / "d.json").write_text(json.dumps(base + [{**worse, "score": 0.1}]))
    report, err = _pckh(capsys, gt, tmp_path / "d.json")
    assert report["PCKh"] == 100.0 and report["num_duplicates"] == 1 and "highest-scoring" in err
    (tmp_path / "d.json").write_text(json.dumps(base + [{**worse, "score": 0.99}]))
    assert _pckh(capsys, gt, tmp_path / "d.json")[0]["PCKh"] < 100.0


def test_head_size_without_boxes_falls_back_with_a_warning(gt, tmp_path, capsys):
    data = json.loads(gt.read_text())
    for rec in data:
        rec.pop("head_box")
    plain = tmp_path / "annotations" / "mpii_val.json"
    plain.parent.mkdir()
    plain.write_text(json.dumps(data))
    report, err = _pckh(capsys, plain, _results(plain, tmp_path / "r.json"))
    assert report["head_size"] == "head_segment" and "not comparable" in err and report["PCKh"] == 100.0


def test_headbox_file(gt, tmp_path, capsys):
    sio = pytest.importorskip("scipy.io")
    n = len(load_mpii_instances(gt))
    src = np.zeros((2, 2, n))
    src[1] = 2.0  # every head box (1,1)-(3,3) 1-based: head size 0.6 * sqrt(8)
    sio.savemat(tmp_path / "mpii_gt_val.mat", {"headboxes_src": src})
    res = _results(gt, tmp_path / "r.json", {(0, 15): np.array([0.6 * np.sqrt(8) * 0.51, 0.0])})
    report, _ = _pckh(capsys, gt, res, "--headbox-file", str(tmp_path / "mpii_gt_val.mat"))
    assert report["head_size"] == "headbox_file" and report["per_joint"]["l_wrist"] < 100.0


def _bad(capsys, *argv: str) -> str:
    assert main(["evaluate", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    return captured.err


def test_bad_inputs_exit_2_and_name_the_file(gt, tmp_path, capsys):
    good = json.loads(_results(gt, tmp_path / "good.json").read_text())
    base = ["--metric", "pckh", "--gt", str(gt), "--json", "--results"]

    def write(name: str, obj) -> str:
        (tmp_path / name).write_text(obj if isinstance(obj, str) else json.dumps(obj))
        return str(tmp_path / name)

    err = _bad(capsys, *base, str(tmp_path / "absent.json"))
    assert "absent.json" in err
    err = _bad(capsys, *base, write("far.json", good[:1] + [{**good[1], "image_id": 999}]))
    assert "far.json" in err and "record 1" in err and "image_id 999" in err
    err = _bad(capsys, *base, write("seventeen.json", [{**good[0], "keypoints": [1.0] * 51}]))
    assert "seventeen.json" in err and "record 0" in err
    nan = json.dumps([good[0]]).replace(str(good[0]["keypoints"][0]), "NaN", 1)
    err = _bad(capsys, *base, write("nan.json", nan))
    assert "nan.json" in err and "NaN" in err
    err = _bad(capsys, *base, write("obj.json", {"annotations": []}))
    assert "obj.json" in err
    err = _bad(capsys, "--metric", "pckh", "--gt", str(tmp_path / "no_gt.json"), "--results", str(tmp_path / "good.json"))
    assert "no_gt.json" in err
    err = _bad(capsys, *base, str(tmp_path / "good.json"), "--headbox-file", str(tmp_path / "none.mat"))
    assert "none.mat" in err
    err = _bad(capsys, *base, str(tmp_path / "good.json"), "--thr", "-1")
    assert "--thr" in err
    # COCO (the default metric) refuses the PCKh options and points an MPII list to --metric pckh
    err = _bad(capsys, "--gt", str(gt), "--results", str(tmp_path / "good.json"))
    assert "--metric pckh" in err
    err = _bad(capsys, "--gt", str(gt), "--results", str(tmp_path / "good.json"), "--thr", "0.5")
    assert "--thr" in err


def test_eval_and_predict_write_record_index_results_that_pckh_scores(gt, tmp_path, capsys):
    """A tiny random 16-joint model on the synthetic MPII val split: ``slimpose eval`` writes results with
    record-index image ids whose PCKh is the evaluator's; ``slimpose predict --gt MPII.json`` crops every
    record as the evaluator does and gives the same results."""
    import torch

    from slimpose.config import TrainConfig, apply_overrides, config_to_dict
    from slimpose.engine.builders import build_model
    from slimpose.engine.checkpoint import save_checkpoint

    torch.set_num_threads(1)
    root = gt.parent.parent
    cfg = apply_overrides(TrainConfig(), [
        "data.dataset=mpii", f"data.data_root={root}", "data.input_size=48,64", "data.heatmap_size=12,16",
        "data.val_batch_size=8", "data.val_workers=0", "data.workers=0", "model.name=tokenpose_s_v1",
        "model.overrides={\"dim\": 32, \"depth\": 1, \"num_heads\": 2}", "num_threads=1", "tensorboard=false",
        "flip_test=false", f"work_dir={tmp_path / 'run'}"])
    (tmp_path / "cfg.json").write_text(json.dumps(config_to_dict(cfg)))
    torch.manual_seed(0)
    model = build_model(cfg, load_pretrained=False)
    save_checkpoint({"model": model.state_dict(), "model_name": "tokenpose_s_v1", "config": config_to_dict(cfg)},
                    tmp_path / "m.pth")
    assert main(["eval", str(tmp_path / "cfg.json"), "--checkpoint", str(tmp_path / "m.pth"), "--json",
                 "--out-dir", str(tmp_path / "ev")]) == 0
    metrics = json.loads(capsys.readouterr().out)
    n = len(load_mpii_instances(gt))
    results = tmp_path / "ev" / "results_eval.json"
    records = json.loads(results.read_text())
    assert sorted(r["image_id"] for r in records) == list(range(n))
    report, _ = _pckh(capsys, gt, results)
    assert report["PCKh"] == pytest.approx(100.0 * metrics["PCKh"], abs=1e-6)

    out = tmp_path / "pred"
    assert main(["predict", str(root / "images"), "--checkpoint", str(tmp_path / "m.pth"), "--gt", str(gt),
                 "--out", str(out), "--no-vis"]) == 0
    capsys.readouterr()
    predicted = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in predicted] == list(range(n))
    by_id = {r["image_id"]: np.asarray(r["keypoints"]).reshape(16, 3) for r in records}
    for r in predicted:
        np.testing.assert_allclose(np.asarray(r["keypoints"]).reshape(16, 3)[:, :2], by_id[r["image_id"]][:, :2],
                                   atol=0.05)
    assert _pckh(capsys, gt, out / "results.json")[0]["PCKh"] == pytest.approx(report["PCKh"], abs=1e-6)
