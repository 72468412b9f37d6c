"""torchrun with 2 CPU processes (gloo): DDP training runs, and its evaluation equals a 1-process one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from slimpose.config import config_to_dict

TINY = [  # after conftest.SYNTH_DATA
    "data.train_subset=64",
    "data.val_subset=21",  # odd: the DistributedSampler pads, the evaluator must de-duplicate
    "data.batch_size=16",
    "data.val_batch_size=1",  # per-sample forwards: bitwise equal on any CPU, whatever the rank split
    "data.workers=0",
    "data.val_workers=0",
    "model.name=tokenpose_s_v1",
    "model.overrides={\"dim\": 32, \"depth\": 2, \"num_heads\": 2, \"patch_size\": [2, 2]}",
    "schedule.epochs=1",
    "schedule.warmup_iters=2",
    "num_threads=1",
    "tensorboard=false",
]


def test_two_process_training_and_eval_match_one_process(synth_root, tiny_config, tmp_path):
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.engine.trainer import evaluate_checkpoint

    work = tmp_path / "ddp"
    cfg = tiny_config(TINY, synth_root, work)
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(config_to_dict(cfg)))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "slimpose.cli.main", "train", str(cfg_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    ckpt = load_checkpoint(work / "last.pth")
    assert ckpt["world_size"] == 2
    assert ckpt["global_step"] == (64 // 2) // 16  # each rank saw half of the data
    assert len(ckpt["rng_per_rank"]) == 2
    assert not torch.equal(ckpt["rng_per_rank"][0]["torch"], ckpt["rng_per_rank"][1]["torch"])
    ddp_records = json.loads((work / "results_val.json").read_text())
    ddp_metrics = json.loads((work / "metrics_val.json").read_text())

    torch.set_num_threads(1)
    one = evaluate_checkpoint(cfg, work / "last.pth", out_dir=tmp_path / "one", tag="val")
    one_records = json.loads((tmp_path / "one" / "results_val.json").read_text())
    assert one["num_predictions"] == ddp_metrics["num_predictions"] == 21
    assert one_records == ddp_records
    assert one == ddp_metrics
