"""The head contract: every head's targets, loss, flip test, decoding and export decoding agree."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from slimpose.codecs.msra_heatmap import MSRAHeatmap
from slimpose.codecs.simcc import SimCCLabel
from slimpose.codecs.udp_heatmap import UDPHeatmap
from slimpose.config import TrainConfig, apply_overrides
from slimpose.heads import HeatmapHead, RegressionHead, RLEHead, SimCCHead, build_head, default_head
from slimpose.losses.simcc import KLDiscretLoss
from slimpose.models import create_model
from slimpose.models.stemnet import StemNet
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)
INPUT = (48, 64)
PAIRS = [(1, 2), (3, 4)]


def _keypoints(b=3, k=5, seed=0):
    g = np.random.default_rng(seed)
    # at least 3 heatmap pixels from the border, where DARK and the UDP step apply
    return g.uniform([12, 12], [INPUT[0] - 13, INPUT[1] - 13], size=(b, k, 2)).astype(np.float32)


def _targets(head, kps):
    enc = [head.codec.encode(k, np.ones(len(k), np.float32)) for k in kps]
    return {key: torch.as_tensor(np.stack([e[key] for e in enc])) for key in ("target", "target_weight")}


def _perfect_output(head, kps):
    """The raw output that decodes to ``kps``: the targets themselves (heatmaps, SimCC logits) or
    normalised coordinates (regression)."""
    batch = _targets(head, kps)
    if isinstance(head, SimCCHead):
        return head.codec.split(batch["target"]), batch
    if isinstance(head, RegressionHead):
        out = torch.zeros(*kps.shape[:2], 5)
        out[..., :2] = torch.as_tensor(kps) / torch.tensor(INPUT, dtype=torch.float32)
        out[..., 2] = 0.8
        out[..., 3:] = 0.1
        return out, batch
    return batch["target"], batch


HEADS = {
    "msra_dark": lambda: HeatmapHead(MSRAHeatmap(INPUT, (12, 16), sigma=2.0, unbiased=True)),
    "udp": lambda: HeatmapHead(UDPHeatmap(INPUT, (12, 16), sigma=2.0), shift_heatmap=False),
    "regression": lambda: RegressionHead(INPUT),
    "rle": lambda: RLEHead(INPUT),
    "simcc": lambda: SimCCHead(SimCCLabel(INPUT, sigma=4.0, refine=True, score_mode="min_xy", from_logits=False)),
}


@pytest.mark.parametrize("name", sorted(HEADS))
def test_decoding_the_targets_gives_the_keypoints_back(name):
    head = HEADS[name]()
    kps = _keypoints()
    out, _ = _perfect_output(head, kps)
    decoded, scores = head.decode(out)
    # heatmaps: a quarter of a heatmap pixel on these 12x16 maps (the codecs' precision is tested with
    # codecs); the head must return crop pixels of the right scale
    tol = {"msra_dark": 1.0, "udp": 1.0, "simcc": 0.01}.get(name, 1e-4)
    np.testing.assert_allclose(decoded, kps, atol=tol)
    assert decoded.dtype == np.float32 and scores.shape == kps.shape[:2]


@pytest.mark.parametrize("name", ["msra_dark", "regression", "simcc"])
def test_loss_is_lowest_at_the_target(name):
    head = HEADS[name]()
    kps = _keypoints()
    out, batch = _perfect_output(head, kps)
    if isinstance(head, SimCCHead):
        out = tuple(torch.log(o.clamp_min(1e-6)) for o in out)  # logits whose softmax is the label
    best, logs = head.loss(out, batch)
    worse_out = tuple(o + torch.randn_like(o) for o in out) if isinstance(out, tuple) else out + 0.1
    worse, _ = head.loss(worse_out, batch)
    assert best.item() < worse.item() and len(logs) == 1 and next(iter(logs.values())).item() == best.item()
    if name != "simcc":
        assert best.item() == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name", ["udp", "regression", "simcc"])
def test_flip_back_is_an_involution(name):
    head = HEADS[name]()
    out, _ = _perfect_output(head, _keypoints())
    twice = head.flip_back(head.flip_back(out, PAIRS), PAIRS)
    for a, b in zip(out if isinstance(out, tuple) else (out,), twice if isinstance(twice, tuple) else (twice,)):
        assert torch.allclose(a, b, atol=1e-6)


class _Mirror(torch.nn.Module):
    """Outputs ``plain`` for the image and ``mirrored`` for its horizontal flip."""

    def __init__(self, plain, mirrored):
        super().__init__()
        self.plain, self.mirrored = plain, mirrored

    def forward(self, images):
        return self.mirrored if images[0, 0, 0, 0] < 0 else self.plain


@pytest.mark.parametrize("name", ["udp", "regression", "simcc"])
def test_flip_test_of_a_consistent_model_predicts_the_keypoints(name):
    """A model that sees the mirrored crop and predicts the mirrored keypoints: the flip test gives the
    plain prediction (UDP, regression and exact SimCC flips are unbiased)."""
    head = HEADS[name]()
    if isinstance(head, SimCCHead):
        head.flip_shift_bins = round(head.codec.split_ratio) - 1  # the exact flip
    kps = _keypoints(b=1)
    mirrored = kps[:, [0, 2, 1, 4, 3]].copy()
    mirrored[..., 0] = INPUT[0] - 1 - mirrored[..., 0]
    plain_out, _ = _perfect_output(head, kps)
    mirror_out, _ = _perfect_output(head, mirrored)
    image = torch.ones(1, 3, INPUT[1], INPUT[0])
    image[..., -1] = -1  # its flip starts with a negative pixel
    kp, _ = head.predict(_Mirror(plain_out, mirror_out), image, PAIRS)
    kp_plain, _ = head.predict(_Mirror(plain_out, mirror_out), image)
    tol = {"simcc": 0.01, "udp": 1.0}.get(name, 1e-4)
    np.testing.assert_allclose(kp, kps, atol=tol)
    np.testing.assert_allclose(kp_plain, kps, atol=tol)


@pytest.mark.parametrize("name, refine, from_logits", [("regression", None, None), ("simcc", False, False),
                                                       ("simcc", True, False), ("simcc", True, True)])
def test_export_decoder_equals_the_head_decoding(name, refine, from_logits):
    head = HEADS[name]()
    if isinstance(head, SimCCHead):  # the in-graph decoding has the codec's sub-bin step and softmax too
        head.codec.refine, head.codec.from_logits = refine, from_logits
    out, _ = _perfect_output(head, _keypoints())
    if from_logits:
        out = tuple(torch.log(o.clamp_min(1e-6)) for o in out)
    kp, sc = head.export_decoder()(out)
    ref_kp, ref_sc = head.decode(out)
    np.testing.assert_allclose(kp.numpy(), ref_kp, atol=1e-5)
    np.testing.assert_allclose(sc.numpy(), ref_sc, atol=1e-6)


def test_kl_discret_loss_by_hand():
    """MMPose's reduction: per (n, k) the bin mean of KL(label || softmax(beta pred)), weighted, summed over
    the batch and both axes, divided by K."""
    pred_x = torch.tensor([[[0.0, 1.0, 2.0], [1.0, 1.0, 1.0]]])
    pred_y = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])
    lab_x = torch.tensor([[[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]])
    lab_y = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])
    weight = torch.tensor([[1.0, 0.5]])

    def kl(p, t):
        q = [math.exp(v) / sum(math.exp(u) for u in p) for v in p]
        return sum(ti * math.log(ti / qi) for ti, qi in zip(t, q) if ti > 0) / len(p)

    expected = sum(w * (kl(px, tx) + kl(py, ty)) for w, px, tx, py, ty in zip(
        weight[0].tolist(), pred_x[0].tolist(), lab_x[0].tolist(), pred_y[0].tolist(), lab_y[0].tolist())) / 2
    got = KLDiscretLoss()((pred_x, pred_y), (lab_x, lab_y), weight)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_heads_from_config_and_model():
    cfg = TrainConfig()
    tp = create_model("tokenpose_s_v1", input_size=INPUT, depth=1, dim=32, num_heads=2)
    head = build_head(apply_overrides(cfg, ["data.input_size=48,64", "dark=false", "ohkm=true"]), tp)
    assert isinstance(head, HeatmapHead) and head.heatmap_size == (12, 16) and not head.codec.dark
    assert type(head.criterion).__name__ == "KeypointOHKMMSELoss" and head.shift_heatmap
    udp = build_head(apply_overrides(cfg, ["data.udp=true"]), tp)
    assert isinstance(udp.codec, UDPHeatmap) and not udp.shift_heatmap
    with pytest.raises(SlimposeInputError, match="data.heatmap_size"):
        build_head(apply_overrides(cfg, ["data.heatmap_size=24,32"]), tp)
    ds = create_model("distilpose_s", input_size=INPUT, depth=1, dim=32, num_heads=2, stem_blocks=1,
                      score_source="constant")
    assert default_head(ds).score_source == "constant" and default_head(ds).input_size == INPUT
    assert isinstance(default_head(create_model("sdpose_reg", input_size=INPUT, depth=1, dim=32, num_heads=2,
                                                stem_blocks=1)), RLEHead)
    sc = create_model("simcc_res50", input_size=INPUT, backbone=StemNet(num_blocks=1), num_deconv_layers=0)
    simcc = build_head(apply_overrides(cfg, ["data.sigma=6", "simcc.score_mode=max", "simcc.from_logits=true"]),
                       sc)
    assert isinstance(simcc, SimCCHead) and simcc.codec.simcc_size == (96, 128)
    assert simcc.codec.score_mode == "max" and simcc.codec.from_logits
    with pytest.raises(SlimposeInputError, match="names no head_class"):
        build_head(cfg, torch.nn.Linear(2, 2))


def test_simcc_layers_follow_mmpose():
    """SimCC-ResNet-50 at 256x192: three deconvs to 64x48 maps, Linear(3072, 384) and Linear(3072, 512)."""
    model = create_model("simcc_res50")
    keys = model.state_dict().keys()
    assert {"head.deconv_head.deconv_layers.0.weight", "head.deconv_head.final_layer.weight",
            "head.mlp_head_x.weight", "head.mlp_head_y.weight"} <= set(keys)
    assert tuple(model.head.mlp_head_x.weight.shape) == (384, 3072)
    assert tuple(model.head.mlp_head_y.weight.shape) == (512, 3072)
    head_params = sum(p.numel() for n, p in model.named_parameters() if n.startswith("head.mlp"))
    assert head_params == 3072 * 384 + 384 + 3072 * 512 + 512
    no_deconv = create_model("simcc_res50", input_size=INPUT, backbone=StemNet(num_blocks=1), num_deconv_layers=0)
    assert "head.final_layer.weight" in no_deconv.state_dict() and no_deconv.head.map_size == (12, 16)
