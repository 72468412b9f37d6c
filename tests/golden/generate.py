"""Write ``factory_outputs.npz``: what every model factory computes, saved before the head/task refactor.

The committed file was written at commit 6e06fc7 (before issue 10's refactor), by that commit's version of
this script, which used the old task classes; this version computes the same quantities through heads and
the distiller and writes a file equal to it (``python tests/golden/generate.py OUT.npz`` to compare). It is
the reference of ``tests/models/test_golden_outputs.py``. Per factory of
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


def main(path: Path = OUT) -> None:
    from slimpose import models
    from slimpose.config import TrainConfig
    from slimpose.data.metainfo import COCO
    from slimpose.heads import build_head

    torch.set_num_threads(2)
    store: dict[str, np.ndarray] = {}
    x = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))
    pairs = [tuple(p) for p in COCO.flip_pairs]
    names = sorted(n for n in models.MODELS if n != "simcc_res50")  # the factories of commit 6e06fc7
    store["names"] = np.array(names)
    for name in names:
        print(name, file=sys.stderr, flush=True)
        torch.manual_seed(0)
        model = models.create_model(name).eval()
        sd = model.state_dict()
        store[f"{name}/sd_keys"] = np.array([f"{k}:{tuple(v.shape)}" for k, v in sd.items()])
        store[f"{name}/sd_sha256"] = np.array(sd_hash(model))
        store[f"{name}/params"] = np.array(sum(p.numel() for p in model.parameters()))
        # heatmaps: MSRA + DARK decoding with the 1-px flip shift; regression: the model's score source
        head = build_head(TrainConfig(), model)
        with torch.no_grad():
            out = model(x)
            if out.dim() == 3:
                store[f"{name}/out_full"] = out.double().numpy()
            else:
                summary(f"{name}/out", out, store)
            kp, sc = head.predict(model, x, None)
            kpf, scf = head.predict(model, x, pairs)
            for key, value in (("kp", kp), ("sc", sc), ("kp_flip", kpf), ("sc_flip", scf)):
                store[f"{name}/{key}"] = np.asarray(value, dtype=np.float64)
            features = model.forward_features(x)
            if hasattr(features, "keypoint_tokens"):
                summary(f"{name}/kpt", features.keypoint_tokens, store)
                summary(f"{name}/vis", features.visual_tokens, store)
            if hasattr(model, "forward_cycles"):
                for i, (o, *_) in enumerate(model.forward_cycles(x)):
                    summary(f"{name}/cycle{i}", o, store)
    for k, v in task_losses().items():
        store[k] = np.array(v)
    np.savez_compressed(path, **store)
    print(f"wrote {path}", file=sys.stderr)


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


def task_losses() -> dict[str, float]:
    """Loss and logs of every training task on one batch of tiny models (log names as the old tasks had
    them: SDPose's ``loss_task`` is the task loss summed over cycles, its token terms unweighted)."""
    from slimpose.codecs.msra_heatmap import MSRAHeatmap
    from slimpose.config import DistilPoseConfig, SDPoseConfig
    from slimpose.distillation.distilpose import distilpose_terms
    from slimpose.distillation.distiller import Distiller
    from slimpose.distillation.sdpose import sdpose_terms
    from slimpose.engine.tasks import TopDownTask
    from slimpose.heads import HeatmapHead, RegressionHead, RLEHead
    from slimpose.losses.heatmap import KeypointMSELoss, KeypointOHKMMSELoss
    from slimpose.models import distilpose_s, sdpose_reg, sdpose_s_v1, tokenpose_s_v1

    small = SMALL
    batch = tiny_batch()
    codec = MSRAHeatmap((48, 64), (12, 16), sigma=1.5)
    hm_batch = {k: batch[k] for k in ("image", "target", "target_weight", "keypoints")}
    reg_batch = {"image": batch["image"], "target": batch["reg_target"], "target_weight": batch["reg_weight"]}
    out: dict[str, float] = {}

    def put(name, loss, logs):
        out[f"task/{name}/loss"] = float(loss.detach())
        for k, v in logs.items():
            out[f"task/{name}/log_{k}"] = float(v.detach())

    torch.manual_seed(0)
    teacher = tokenpose_s_v1(**small).eval()
    for name, crit in (("heatmap_mse", KeypointMSELoss()), ("heatmap_ohkm", KeypointOHKMMSELoss(topk=8))):
        put(name, *TopDownTask(teacher, HeatmapHead(codec, crit))(hm_batch))
    torch.manual_seed(1)
    student = distilpose_s(**small)
    for name, section in (("distilpose_all", DistilPoseConfig()),
                          ("distilpose_reg", DistilPoseConfig(kt=0, vt=0, sh=0, cs=0)),
                          ("distilpose_sh_cs", DistilPoseConfig(kt=0, vt=0))):
        task = Distiller(student, RegressionHead((48, 64)), distilpose_terms(section),
                         teacher if section.uses_teacher else None, task_weight=section.reg)
        task.train()
        loss, logs = task(reg_batch)
        put(name, loss, {"loss": loss, **logs})
    for name, seed, model_fn, head_fn, data in (
            ("sdpose", 2, lambda: sdpose_s_v1(num_cycles=2, **small), lambda: HeatmapHead(codec), hm_batch),
            ("sdpose_reg", 3, lambda: sdpose_reg(**small), lambda: RLEHead((48, 64)), reg_batch)):
        torch.manual_seed(seed)
        model = model_fn()
        head = head_fn()
        section = SDPoseConfig()
        task = Distiller(model, head, sdpose_terms(section, head), task_weight=section.task)
        task.train()
        loss, logs = task(data)
        first = next(v for k, v in logs.items() if k not in ("loss_cycles", "loss_kt", "loss_vt"))
        put(name, loss, {"loss_task": first + logs["loss_cycles"], "loss_kt": logs["loss_kt"] / section.kt,
                         "loss_vt": logs["loss_vt"] / section.vt})
        if name == "sdpose_reg":
            out["task/rle_flow_sha256"] = sd_hash(head)
    return out


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT)
