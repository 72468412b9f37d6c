"""A tiny TokenPose trained on synthetic people for a few steps lowers its loss; run outputs exist."""

from __future__ import annotations

import json

import torch

TINY = [  # after conftest.SYNTH_DATA
    "data.batch_size=32",
    "data.val_batch_size=16",
    "data.workers=0",
    "data.val_workers=0",
    "model.name=tokenpose_s_v1",
    "model.overrides={\"dim\": 32, \"depth\": 2, \"num_heads\": 2, \"patch_size\": [2, 2]}",
    "schedule.warmup_iters=5",
    "schedule.milestones=100,200",
    "num_threads=1",
    "tensorboard=false",
    "log_interval=5",
]


def _fixed_batch_loss(loop) -> float:
    from slimpose.engine.hooks import EvalHook

    task = loop.task
    task.eval()
    batch = next(iter(loop.hook(EvalHook).evaluator.loader))
    with torch.no_grad():
        loss, _ = task({k: v for k, v in batch.items()})
    return float(loss)


def test_tiny_tokenpose_loss_decreases(synth_root, tiny_config, tmp_path):
    from safetensors import safe_open

    from slimpose.engine.checkpoint import export_safetensors, load_checkpoint
    from slimpose.engine.trainer import build_trainer

    torch.set_num_threads(1)
    extra = ["schedule.epochs=3", "eval_interval=3", "data.train_subset=128", "data.batch_size=16"]
    cfg = tiny_config(TINY, synth_root, tmp_path / "run", extra)
    trainer = build_trainer(cfg)
    before = _fixed_batch_loss(trainer)
    summary = trainer.fit()
    after = _fixed_batch_loss(trainer)
    assert after < 0.7 * before, (before, after)
    assert summary["epoch"] == 3 and "val_AP" in summary

    run = tmp_path / "run"
    for name in ("config.json", "last.pth", "best.pth", "log.jsonl", "results_val.json", "metrics_val.json"):
        assert (run / name).is_file(), name
    assert json.loads((run / "config.json").read_text())["data"]["input_size"] == [48, 64]
    lines = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert any("lr" in x for x in lines) and lines[-1]["epoch"] == 3
    ckpt = load_checkpoint(run / "last.pth")
    assert ckpt["epoch"] == 3 and ckpt["global_step"] == 3 * len(trainer.train_loader)
    assert ckpt["best"]["metric"] == "AP" and ckpt["best"]["mode"] == "max"
    assert ckpt["best"]["value"] == summary["val_AP"] == summary["best_AP"]  # the only evaluation
    # safetensors export carries the weights and the model name / config
    out = export_safetensors(run / "last.pth", tmp_path / "w.safetensors")
    with safe_open(str(out), framework="pt") as f:
        meta = f.metadata()
        keys = set(f.keys())
        some = next(iter(keys))
        assert torch.equal(f.get_tensor(some), ckpt["model"][some])
    assert keys == set(ckpt["model"]) and meta["model_name"] == "tokenpose_s_v1"
    assert json.loads(meta["config"])["model"]["overrides"]["depth"] == 2


def test_eval_cli_prints_ap(synth_root, tiny_config, tmp_path, capsys):
    from slimpose.cli.main import main
    from slimpose.engine.checkpoint import save_checkpoint
    from slimpose.config import config_to_dict
    from slimpose.engine.builders import build_model

    cfg = tiny_config(TINY, synth_root, tmp_path / "run", ["data.val_subset=8", "flip_test=false"])
    (tmp_path / "cfg.json").write_text(json.dumps(config_to_dict(cfg)))
    torch.manual_seed(0)
    save_checkpoint({"model": build_model(cfg).state_dict()}, tmp_path / "m.pth")
    rc = main(["eval", str(tmp_path / "cfg.json"), "--checkpoint", str(tmp_path / "m.pth"), "--json",
               "--out-dir", str(tmp_path / "ev")])
    assert rc == 0
    metrics = json.loads(capsys.readouterr().out)
    assert set(metrics) >= {"AP", "AP50", "AR"} and metrics["num_predictions"] == 8
    assert len(json.loads((tmp_path / "ev" / "results_eval.json").read_text())) >= 1
    # a bad key on the command line is a clean error (exit code 2), not a traceback
    assert main(["eval", str(tmp_path / "cfg.json"), "--checkpoint", "x.pth", "--set", "optim.nope=1"]) == 2


def test_simcc_trains_evaluates_loads_and_exports(synth_root, tiny_config, tmp_path):
    """The SimCC head through every consumer: SimCC targets in the data set, KL loss in the loop, decoding
    in the evaluator, ``slimpose.load``, the ONNX export and ``slimpose benchmark``."""
    import numpy as np

    import slimpose
    from slimpose.engine.checkpoint import load_checkpoint
    from slimpose.engine.trainer import build_trainer
    from slimpose.heads import SimCCHead

    torch.set_num_threads(1)
    sets = ["model.name=simcc_res50", "model.overrides={\"depth\": 18, \"num_deconv_layers\": 1, "
            "\"deconv_channels\": 32}", "data.input_size=64,96", "data.heatmap_size=none", "data.sigma=4",
            "data.train_subset=32", "data.val_subset=8", "data.batch_size=8", "data.workers=0",
            "data.val_workers=0", "schedule.epochs=2", "schedule.warmup_iters=2", "eval_interval=1",
            "num_threads=1", "tensorboard=false", "flip_test=true"]
    loop = build_trainer(tiny_config([], synth_root, tmp_path / "simcc", sets))
    assert isinstance(loop.task.head, SimCCHead)
    batch = next(iter(loop.train_loader))
    assert batch["target"].shape == (8, 17, 128 + 192) and batch["target_x"].shape == (8, 17, 128)
    summary = loop.fit()
    assert "train_loss_kl" in summary and np.isfinite(summary["train_loss"])
    assert summary["val_num_predictions"] == 8 and 0 <= summary["val_AP"] <= 1
    ckpt = load_checkpoint(tmp_path / "simcc" / "last.pth")
    assert ckpt["best"]["metric"] == "AP" and "head.mlp_head_x.weight" in ckpt["model"]
    model = slimpose.load(tmp_path / "simcc" / "last.pth")
    crops = torch.randn(2, 3, 96, 64)
    kp, sc = model.predict_crops(crops, flip=False)
    with torch.no_grad():
        x, y = model.model(crops)
    # decoding: argmax / split ratio, score = min of the x / y maxima of the raw logits (MMPose)
    np.testing.assert_allclose(kp[..., 0], x.argmax(-1).numpy() / 2.0)
    np.testing.assert_allclose(sc, torch.minimum(x.max(-1).values, y.max(-1).values).numpy(), atol=1e-6)
    from slimpose.cli.main import main

    out = tmp_path / "simcc.onnx"
    assert main(["export", str(tmp_path / "simcc" / "last.pth"), "--out", str(out), "--decode-in-graph"]) == 0
    assert out.is_file() and torch.is_grad_enabled()  # the command leaves its caller's autograd state alone
    assert main(["benchmark", "simcc_res50", "--input-size", "64", "96", "--no-timing", "--json"]) == 0
