"""Every factory computes what it computed before the issue-10 refactor (``tests/golden/generate.py``).

Same initialisation (state-dict hash under ``torch.manual_seed(0)``), same state-dict keys and shapes,
the same forward output (within 1e-6), the same decoded keypoints with and without flip test, the same
tokens and SDPose cycles, and the same training losses of the tiny tasks.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "golden"
GOLDEN = np.load(GOLDEN_DIR / "factory_outputs.npz")
NAMES = [str(n) for n in GOLDEN["names"]]
X = torch.randn(2, 3, 256, 192, generator=torch.Generator().manual_seed(1))


def _generator():
    spec = importlib.util.spec_from_file_location("golden_generate", GOLDEN_DIR / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _check_summary(prefix: str, t: torch.Tensor) -> None:
    a = t.detach().double().cpu().numpy()
    assert tuple(a.shape) == tuple(GOLDEN[f"{prefix}_shape"]), prefix
    flat = a.reshape(-1)
    np.testing.assert_allclose(flat[GOLDEN[f"{prefix}_idx"]], GOLDEN[f"{prefix}_val"], rtol=0, atol=1e-6,
                               err_msg=prefix)
    np.testing.assert_allclose(flat.sum(), GOLDEN[f"{prefix}_sum"], rtol=1e-6, atol=1e-5, err_msg=prefix)
    np.testing.assert_allclose((flat * flat).sum(), GOLDEN[f"{prefix}_sumsq"], rtol=1e-6, err_msg=prefix)


def _predict(model, x, flip: bool):
    """Decoded crop-pixel keypoints and scores through the model's head, built from the default config
    (256x192, 64x48 heatmaps, MSRA targets, DARK decoding; regression: the model's score source)."""
    from slimpose.config import TrainConfig
    from slimpose.data.metainfo import COCO
    from slimpose.heads import build_head

    head = build_head(TrainConfig(), model)
    return head.predict(model, x, [tuple(p) for p in COCO.flip_pairs] if flip else None)


@pytest.mark.parametrize("name", NAMES)
def test_factory_output_unchanged(name):
    from slimpose import models

    gen = _generator()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = models.create_model(name).eval()
    sd = model.state_dict()
    assert [f"{k}:{tuple(v.shape)}" for k, v in sd.items()] == [str(s) for s in GOLDEN[f"{name}/sd_keys"]]
    assert gen.sd_hash(model) == str(GOLDEN[f"{name}/sd_sha256"]), "initialisation changed"
    with torch.no_grad():
        out = model(X)
        if f"{name}/out_full" in GOLDEN:
            np.testing.assert_allclose(out.double().numpy(), GOLDEN[f"{name}/out_full"], rtol=0, atol=1e-6)
        else:
            _check_summary(f"{name}/out", out)
        for flip, suffix in ((False, ""), (True, "_flip")):
            kp, sc = _predict(model, X, flip)
            np.testing.assert_allclose(np.asarray(kp, np.float64), GOLDEN[f"{name}/kp{suffix}"], rtol=0,
                                       atol=1e-4, err_msg=f"keypoints{suffix}")
            np.testing.assert_allclose(np.asarray(sc, np.float64), GOLDEN[f"{name}/sc{suffix}"], rtol=0,
                                       atol=1e-6, err_msg=f"scores{suffix}")
        if f"{name}/kpt_val" in GOLDEN:
            features = model.forward_features(X)
            _check_summary(f"{name}/kpt", features.keypoint_tokens)
            _check_summary(f"{name}/vis", features.visual_tokens)
        cycles = sorted(k for k in GOLDEN.files if k.startswith(f"{name}/cycle") and k.endswith("_val"))
        if cycles:
            outs = model.forward_cycles(X)
            assert len(outs) == len(cycles)
            for i, (o, _, _) in enumerate(outs):
                _check_summary(f"{name}/cycle{i}", o)


def _task_losses() -> dict[str, float]:
    """The old tasks of ``generate.task_losses`` rebuilt with heads and the distiller (same seeds, same
    batch); log names mapped onto the old ones."""
    from slimpose.codecs.msra_heatmap import MSRAHeatmap
    from slimpose.config import DistilPoseConfig, SDPoseConfig
    from slimpose.distillation.distilpose import distilpose_terms
    from slimpose.distillation.distiller import Distiller
    from slimpose.distillation.sdpose import sdpose_terms
    from slimpose.engine.tasks import TopDownTask
    from slimpose.heads import HeatmapHead, RegressionHead, RLEHead
    from slimpose.losses.heatmap import KeypointMSELoss, KeypointOHKMMSELoss
    from slimpose.models import distilpose_s, sdpose_reg, sdpose_s_v1, tokenpose_s_v1

    gen = _generator()
    small = gen.SMALL
    batch = gen.tiny_batch()
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
            out["task/rle_flow_sha256"] = gen.sd_hash(head)
    return out


def test_task_losses_unchanged():
    got = _task_losses()
    expected = {k: float(GOLDEN[k]) for k in GOLDEN.files if k.startswith("task/") and not k.endswith("sha256")}
    assert sorted(k for k in got if not k.endswith("sha256")) == sorted(expected)
    for k, v in expected.items():
        assert got[k] == pytest.approx(v, rel=1e-5, abs=1e-9), k
    assert got["task/rle_flow_sha256"] == str(GOLDEN["task/rle_flow_sha256"])
