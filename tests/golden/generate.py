"""Write ``factory_outputs.npz``: what every model factory computes, saved before the head/task refactor.

Run once at commit e566332 (before issue 10's refactor) with ``python tests/golden/generate.py``; the file
it writes is the reference of ``tests/models/test_golden_outputs.py``. Per factory of
``slimpose.models.MODELS`` at its published size (17 keypoints, 256x192, ``torch.manual_seed(0)`` before
building, eval mode, a fixed batch of two random images):

* ``{name}/sd_keys``: the state-dict keys with shapes; ``{name}/sd_sha256``: a hash of every tensor's bytes
  (the initialisation), ``{name}/params``;
* ``{name}/out_*``: the forward output, sampled at 1024 fixed flat positions plus its float64 sum and sum
  of squares; regression outputs (B, K, 5) in full;
* ``{name}/kp`` / ``{name}/sc``: decoded keypoints (crop pixels) and scores without flip test, and
  ``{name}/kp_flip`` / ``{name}/sc_flip`` with the COCO flip test (heatmaps: MSRA + DARK with the 1-px
  shift; regression: the model's own decoding);
* token models: ``{name}/kpt_*`` and ``{name}/vis_*`` (final keypoint / visual tokens), SDPose models:
  ``{name}/cycle{i}_*`` (every cycle's output).

It also writes losses of the training tasks on tiny models (``task/*``), so that the refactored heads
and distiller are checked against the old tasks on the same batch.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).with_name("factory_outputs.npz")
SAMPLES = 1024


def summary(prefix: str, t: torch.Tensor, store: dict) -> None:
    a = t.detach().double().cpu().numpy()
    flat = a.reshape(-1)
    idx = np.random.default_rng(0).choice(flat.size, size=min(SAMPLES, flat.size), replace=False)
    store[f"{prefix}_idx"] = idx
    store[f"{prefix}_val"] = flat[idx]
    store[f"{prefix}_sum"] = np.array(flat.sum())
    store[f"{prefix}_sumsq"] = np.array((flat * flat).sum())
    store[f"{prefix}_shape"] = np.array(a.shape)


def sd_hash(model: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main() -> None:
    from slimpose import models
    from slimpose.codecs.msra_heatmap import MSRAHeatmap
    from slimpose.data.metainfo import COCO
    from slimpose.engine.tasks import HeatmapTask
    from slimpose.models.distilpose import predict_regression

    torch.set_num_threads(2)
    store: dict[str, np.ndarray] = {}
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    pairs = [tuple(p) for p in COCO.flip_pairs]
    names = sorted(models.MODELS)
    store["names"] = np.array(names)
    for name in names:
        print(name, file=sys.stderr, flush=True)
        torch.manual_seed(0)
        model = models.create_model(name).eval()
        sd = model.state_dict()
        store[f"{name}/sd_keys"] = np.array([f"{k}:{tuple(v.shape)}" for k, v in sd.items()])
        store[f"{name}/sd_sha256"] = np.array(sd_hash(model))
        store[f"{name}/params"] = np.array(sum(p.numel() for p in model.parameters()))
        with torch.no_grad():
            out = model(x)
            if out.dim() == 3:
                store[f"{name}/out_full"] = out.double().numpy()
                kp, sc = predict_regression(model, x)
                kpf, scf = predict_regression(model, x, pairs, flip_test=True)
            else:
                summary(f"{name}/out", out, store)
                codec = MSRAHeatmap((192, 256), tuple(model.heatmap_size), sigma=2.0, unbiased=True)
                task = HeatmapTask(model, codec, torch.nn.Identity(), shift_heatmap=True)
                kp, sc = task.predict(x, None)
                kpf, scf = task.predict(x, pairs)
            for key, value in (("kp", kp), ("sc", sc), ("kp_flip", kpf), ("sc_flip", scf)):
                store[f"{name}/{key}"] = np.asarray(torch.as_tensor(np.asarray(value)).double())
            if hasattr(model, "forward_with_tokens"):
                _, kpt, vis = model.forward_with_tokens(x)
                summary(f"{name}/kpt", kpt, store)
                summary(f"{name}/vis", vis, store)
            if hasattr(model, "forward_cycles"):
                for i, (o, _, _) in enumerate(model.forward_cycles(x)):
                    summary(f"{name}/cycle{i}", o, store)
    task_losses(store)
    np.savez_compressed(OUT, **store)
    print(f"wrote {OUT}", file=sys.stderr)


def tiny_batch(k: int = 17) -> dict:
    from slimpose.codecs.msra_heatmap import MSRAHeatmap
    from slimpose.codecs.regression import RegressionLabel

    g = torch.Generator().manual_seed(3)
    b = 3
    kps = torch.rand(b, k, 2, generator=g) * torch.tensor([47.0, 63.0])
    weights = (torch.rand(b, k, generator=g) > 0.2).float()
    hm = MSRAHeatmap((48, 64), (12, 16), sigma=1.5)
    reg = RegressionLabel((48, 64))
    enc = [hm.encode(kps[i].numpy(), weights[i].numpy()) for i in range(b)]
    regs = [reg.encode(kps[i].numpy(), weights[i].numpy()) for i in range(b)]
    return {
        "image": torch.randn(b, 3, 64, 48, generator=g),
        "target": torch.as_tensor(np.stack([e["target"] for e in enc])),
        "target_weight": torch.as_tensor(np.stack([e["target_weight"] for e in enc])),
        "reg_target": torch.as_tensor(np.stack([r["target"] for r in regs])),
        "reg_weight": torch.as_tensor(np.stack([r["target_weight"] for r in regs])),
        "keypoints": kps,
    }


SMALL = dict(input_size=(48, 64), dim=32, depth=2, num_heads=2, patch_size=(2, 2), stem_blocks=1)


def task_losses(store: dict) -> None:
    """Loss and logs of every training task on one batch of tiny models (old task classes)."""
    from slimpose.codecs.msra_heatmap import MSRAHeatmap
    from slimpose.distillation.distilpose import DistilPoseLossConfig, DistilPoseTask
    from slimpose.distillation.sdpose import SDPoseRegTask, SDPoseTask
    from slimpose.engine.tasks import HeatmapTask
    from slimpose.losses.heatmap import KeypointMSELoss, KeypointOHKMMSELoss
    from slimpose.models import distilpose_s, sdpose_reg, sdpose_s_v1, tokenpose_s_v1

    batch = tiny_batch()
    codec = MSRAHeatmap((48, 64), (12, 16), sigma=1.5)
    hm_batch = {k: batch[k] for k in ("image", "target", "target_weight", "keypoints")}
    reg_batch = {"image": batch["image"], "target": batch["reg_target"], "target_weight": batch["reg_weight"],
                 "keypoints": batch["keypoints"]}

    def put(name: str, loss: torch.Tensor, logs: dict) -> None:
        store[f"task/{name}/loss"] = np.array(float(loss.detach()))
        for k, v in logs.items():
            store[f"task/{name}/log_{k}"] = np.array(float(v))

    torch.manual_seed(0)
    teacher = tokenpose_s_v1(**SMALL).eval()
    for name, crit in (("heatmap_mse", KeypointMSELoss()), ("heatmap_ohkm", KeypointOHKMMSELoss(topk=8))):
        t = HeatmapTask(teacher, codec, crit)
        put(name, *t(hm_batch))
    torch.manual_seed(1)
    student = distilpose_s(**SMALL)
    for name, cfg in (("distilpose_all", DistilPoseLossConfig()),
                      ("distilpose_reg", DistilPoseLossConfig(kt=0, vt=0, sh=0, cs=0)),
                      ("distilpose_sh_cs", DistilPoseLossConfig(kt=0, vt=0))):
        t = DistilPoseTask(student, teacher if cfg.uses_teacher else None, cfg)
        t.train()
        put(name, *t(reg_batch))
    torch.manual_seed(2)
    sd = sdpose_s_v1(num_cycles=2, **SMALL)
    sd.train()
    put("sdpose", *SDPoseTask(sd, codec)(hm_batch))
    torch.manual_seed(3)
    sr = sdpose_reg(**SMALL)
    task = SDPoseRegTask(sr)
    task.train()
    put("sdpose_reg", *task(reg_batch))
    store["task/rle_flow_sha256"] = np.array(sd_hash(task.criterion))


if __name__ == "__main__":
    main()
