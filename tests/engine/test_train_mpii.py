"""A Lite-HRNet SA-SimDR run on synthetic MPII-skeleton people: PCKh decides the best checkpoint, the
results file scores the same with ``slimpose evaluate --metric pckh``, and the model exports to ONNX."""

from __future__ import annotations

import json

import numpy as np
import torch

from slimpose.cli.main import main
from slimpose.config import apply_overrides, get_config
from slimpose.engine.checkpoint import load_checkpoint
from slimpose.training import make_trainer


def test_litehrnet_simcc_on_synthetic_mpii(tmp_path, capsys):
    torch.set_num_threads(1)
    cfg = apply_overrides(get_config("litehrnet_18_simcc_synth_mpii"), [
        f"data.data_root={tmp_path / 'data'}", "data.synthetic_train_images=8", "data.synthetic_val_images=4",
        "data.synthetic_image_size=96,96", "data.batch_size=4", "data.val_batch_size=4", "data.workers=0",
        "data.val_workers=0", "schedule.epochs=1", "schedule.warmup_iters=1", "schedule.milestones=[1]",
        "eval_interval=1", "num_threads=1", "tensorboard=false", f"work_dir={tmp_path / 'run'}"])
    assert cfg.data.dataset == "synthetic_mpii" and cfg.simcc.flip_average == "logits"
    loop = make_trainer(cfg)
    try:
        summary = loop.fit()
    finally:
        loop.close()
    assert 0.0 <= summary["val_PCKh"] <= 1.0 and "val_PCKh_Head" in summary
    ckpt = load_checkpoint(tmp_path / "run" / "last.pth")
    assert ckpt["best"]["metric"] == "PCKh" and ckpt["best"]["mode"] == "max"
    # the evaluator's results file: image_id = record index, scored the same by the stand-alone command
    gt = tmp_path / "data" / "annotations" / "mpii_val.json"
    results = tmp_path / "run" / "results_val.json"
    records = json.loads(results.read_text())
    assert sorted(r["image_id"] for r in records) == list(range(len(json.loads(gt.read_text()))))
    capsys.readouterr()
    assert main(["evaluate", "--metric", "pckh", "--gt", str(gt), "--results", str(results), "--json"]) == 0
    stand_alone = json.loads(capsys.readouterr().out)
    np.testing.assert_allclose(stand_alone["PCKh"], 100.0 * summary["val_PCKh"], atol=1e-6)
    onnx = tmp_path / "m.onnx"
    assert main(["export", str(tmp_path / "run" / "last.pth"), "--out", str(onnx), "--decode-in-graph"]) == 0
    assert onnx.is_file()
