"""The inference path (slimpose.inference): BN folding, conv patchify, channels-last and the backends give
the trained network's outputs; the API, predict and benchmark use it."""

import numpy as np
import pytest
import torch
from torch import nn

from slimpose.engine.checkpoint import save_checkpoint
from slimpose.inference import (InferenceCheckError, conv_bn_pairs, fold_conv_bn, inference_model,
                                max_output_difference, prepare_for_inference)
from slimpose.models import create_model
from slimpose.models.stemnet import StemNet
from slimpose.models.transformer.patch_embed import FeaturePatchEmbed

INPUT = (48, 64)
TINY = {"depth": 1, "dim": 32, "num_heads": 2}


def _random_bn(bn: nn.BatchNorm2d, g: torch.Generator) -> None:
    with torch.no_grad():
        bn.running_mean.copy_(torch.randn(bn.num_features, generator=g))
        bn.running_var.copy_(torch.rand(bn.num_features, generator=g) + 0.3)
        bn.weight.copy_(torch.randn(bn.num_features, generator=g))
        bn.bias.copy_(torch.randn(bn.num_features, generator=g))


def _randomise_bns(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BN statistics and affine, and conv / linear weights of unit gain (a trained network's scale:
    the factories' std-0.001 init makes denormal activations, slow on CPUs)."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            _random_bn(m, g)
        elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            with torch.no_grad():
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in**0.5)
    return model.eval()


@pytest.mark.parametrize("conv", [
    nn.Conv2d(4, 6, 3, padding=1, bias=False),
    nn.Conv2d(4, 6, 3, padding=1, groups=2, bias=True),
    nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, bias=False),
    nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2, bias=True),
], ids=["conv", "grouped-conv-bias", "deconv", "grouped-deconv-bias"])
def test_fold_conv_bn_equals_conv_then_bn(conv):
    g = torch.Generator().manual_seed(0)
    bn = nn.BatchNorm2d(6)
    _random_bn(bn, g)
    seq = nn.Sequential(conv, bn).eval()
    x = torch.randn(2, 4, 5, 7, generator=g)
    with torch.no_grad():
        ref = seq(x)
        fold_conv_bn(conv, bn)
        out = conv(x)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


class _SharedConv(nn.Module):
    """A conv whose output is read by its BN and by a second module: folding would change the second."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + self.act(y) + self.bn2(self.conv2(x))


def test_a_conv_read_twice_is_not_folded():
    model = _randomise_bns(_SharedConv())
    x = torch.randn(1, 3, 8, 8)
    assert conv_bn_pairs(model, x) == [("conv2", "bn2")]
    net = prepare_for_inference(model, x)
    assert net.inference_info["folded_bn"] == 1
    assert max_output_difference(model, net, x) < 1e-5


def test_conv_patchify_gives_the_same_tokens():
    embed = FeaturePatchEmbed(8, (6, 8), (4, 3), 16)
    x = torch.randn(2, 8, 8, 6)
    conv = embed.to_conv()
    with torch.no_grad():
        torch.testing.assert_close(conv(x), embed(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(conv(x.contiguous(memory_format=torch.channels_last)), embed(x),
                                   atol=1e-5, rtol=1e-5)
    assert conv.grid_size == embed.grid_size and conv.num_patches == embed.num_patches == 4


MODELS = {
    "distilpose_s": lambda: create_model("distilpose_s", input_size=INPUT, stem_blocks=1, **TINY),
    "tokenpose_s_v1": lambda: create_model("tokenpose_s_v1", input_size=INPUT, **TINY),
    "sdpose_s_v1": lambda: create_model("sdpose_s_v1", input_size=INPUT, stem_blocks=1, **TINY),
    "simcc_stem": lambda: create_model("simcc_res50", input_size=INPUT, backbone=StemNet(num_blocks=1),
                                       num_deconv_layers=0),
    "simplebaseline_res50": lambda: create_model("simplebaseline_res50", input_size=(64, 64)),
    "litehrnet_18": lambda: create_model("litehrnet_18", input_size=(64, 64)),
    "hrnet_w32": lambda: create_model("hrnet_w32", input_size=(64, 64)),
    "vitpose_s": lambda: create_model("vitpose_s", input_size=INPUT, depth=1),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_prepared_networks_predict_what_the_trained_network_predicts(name):
    torch.manual_seed(0)
    model = _randomise_bns(MODELS[name]())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = prepare_for_inference(model)
    info = net.inference_info
    bns = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    left = sum(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    assert info["folded_bn"] == bns - left
    if name in ("distilpose_s", "tokenpose_s_v1", "sdpose_s_v1", "simcc_stem", "simplebaseline_res50"):
        assert left == 0  # every BN of these follows its own conv
    assert bns == 0 or info["folded_bn"] > 0
    assert info["conv_patchify"] == (1 if name in ("distilpose_s", "tokenpose_s_v1", "sdpose_s_v1") else 0)
    assert not any(p.requires_grad for p in net.parameters())
    x = torch.randn(*model.input_spec.shape(3), generator=torch.Generator().manual_seed(1))
    assert max_output_difference(model, net, x, relative=True) < 1e-4
    for k, v in model.state_dict().items():  # the trained network is untouched
        assert torch.equal(v, before[k]), k


def test_the_check_refuses_a_rewrite_that_changes_the_outputs(monkeypatch):
    import slimpose.inference as inf

    model = _randomise_bns(MODELS["distilpose_s"]())

    def broken(conv, bn):  # forgets the BN shift
        with torch.no_grad():
            conv.weight.mul_(2.0)

    monkeypatch.setattr(inf, "fold_conv_bn", broken)
    net = prepare_for_inference(model)  # retried without folding: still right
    assert net.inference_info["folded_bn"] == 0 and net.inference_info["conv_patchify"] == 1
    x = torch.randn(*model.input_spec.shape(2))
    assert max_output_difference(model, net, x, relative=True) < 1e-4

    def broken_patchify(net):  # doubles the embedding weights
        with torch.no_grad():
            for e in net.modules():
                if isinstance(e, FeaturePatchEmbed):
                    e.weight.mul_(2.0)
        return 1

    monkeypatch.setattr(inf, "conv_patch_embeddings", broken_patchify)
    model.train()
    with pytest.raises(InferenceCheckError, match="changes its outputs"):
        prepare_for_inference(model)
    assert model.training  # the caller's mode is restored


def test_load_falls_back_to_the_trained_network_when_the_rewrite_fails(checkpoint, monkeypatch):
    import slimpose
    import slimpose.inference as inf

    def fails(*a, **k):
        raise RuntimeError("view size is not compatible")

    monkeypatch.setattr(inf, "prepare_for_inference", fails)
    with pytest.warns(UserWarning, match="predicting with the network as trained"):
        pm = slimpose.load(checkpoint)
    assert pm.network is pm.model


def test_onnxruntime_backend_and_int8():
    pytest.importorskip("onnxruntime")
    model = _randomise_bns(MODELS["distilpose_s"]())
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(3))
    ort = inference_model(model, "onnxruntime")
    assert ort.inference_info["backend"] == "onnxruntime"
    assert max_output_difference(model, ort, x) < 1e-4  # dynamic batch: exported at batch 1, run at 2
    q = inference_model(model, "onnxruntime", quantize="int8")
    with torch.inference_mode():
        ref, out = model(x), q(x)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    assert 0 < float((out - ref).abs().max()) < 0.5  # quantised: close, not equal


def test_bf16_precision_returns_float32_close_outputs():
    model = _randomise_bns(MODELS["tokenpose_s_v1"]())
    net = inference_model(model, "torch", precision="bf16")
    x = torch.randn(1, 3, 64, 48)
    with torch.inference_mode():
        ref, out = model(x), net(x)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert float((out - ref).abs().max()) < 0.05 * float(ref.abs().max()) + 1e-3


@pytest.mark.parametrize("kw", [{"backend": "tensorrt"}, {"backend": "torch", "quantize": "int8"},
                                {"backend": "onnxruntime", "precision": "bf16"}, {"backend": "torch",
                                                                                    "quantize": "int4"}])
def test_bad_backend_options_are_refused(kw):
    from slimpose.utils.io import SlimposeInputError

    with pytest.raises(SlimposeInputError):
        inference_model(MODELS["simcc_stem"](), **kw)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = _randomise_bns(MODELS["tokenpose_s_v1"]())
    cfg = {"model": {"name": "tokenpose_s_v1", "overrides": TINY},
           "data": {"input_size": list(INPUT), "heatmap_size": [12, 16], "dataset": "coco"},
           "dark": True, "flip_test": True, "score_thr": 0.2}
    path = tmp_path_factory.mktemp("inf") / "m.pth"
    save_checkpoint({"model": model.state_dict(), "model_name": "tokenpose_s_v1", "config": cfg}, path)
    return path


def test_load_backends_predict_the_same_poses(checkpoint):
    pytest.importorskip("onnxruntime")
    import slimpose

    image = (np.random.default_rng(0).random((90, 70, 3)) * 255).astype(np.uint8)
    boxes = np.array([[5, 4, 40, 70, 0.9], [20, 10, 30, 60, 0.8]])
    ref = slimpose.load(checkpoint, backend="train").predict(image, boxes)
    for backend in ("torch", "onnxruntime"):
        pm = slimpose.load(checkpoint, backend=backend)
        assert pm.network is not pm.model
        got = pm.predict(image, boxes)
        np.testing.assert_allclose(got.keypoints, ref.keypoints, atol=1e-3)
        np.testing.assert_allclose(got.keypoint_scores, ref.keypoint_scores, atol=1e-5)
    pm = slimpose.load(checkpoint, backend="train")
    assert pm.network is pm.model


def test_predict_and_benchmark_cli_take_a_backend(checkpoint, tmp_path, capsys):
    import cv2

    from slimpose.cli.main import main

    image = (np.random.default_rng(0).random((90, 70, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "1.png"), image)
    outs = {}
    for backend in ("train", "onnxruntime"):
        out = tmp_path / backend
        assert main(["predict", str(tmp_path / "1.png"), "--checkpoint", str(checkpoint), "--out", str(out),
                     "--backend", backend, "--no-vis"]) == 0
        outs[backend] = (out / "results.json").read_text()
    import json

    a, b = (json.loads(outs[k]) for k in ("train", "onnxruntime"))
    np.testing.assert_allclose(np.asarray(a[0]["keypoints"]), np.asarray(b[0]["keypoints"]), atol=1e-2)
    assert main(["predict", str(tmp_path / "1.png"), "--checkpoint", str(checkpoint), "--out",
                 str(tmp_path / "q"), "--quantize", "int8"]) == 2  # int8 needs onnxruntime
    capsys.readouterr()
    assert main(["benchmark", "tokenpose_s_v1", "--input-size", "48", "64", "--batch", "2", "--repeats", "1",
                 "--repeats-large", "1", "--warmup", "0", "--json", "--backend", "torch"]) == 0
    r = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert r["backend"] == "torch" and r["inference"]["conv_patchify"] == 1
    assert r["inference"]["folded_bn"] > 0 and r["latency_ms_b1"] > 0


def test_export_int8_writes_a_quantised_graph_that_runs(checkpoint, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    import json

    import onnxruntime as ort

    from slimpose.cli.main import main

    out = tmp_path / "q.onnx"
    assert main(["export", str(checkpoint), "--out", str(out), "--quantize", "int8", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["quantize"] == "int8" and 0 < report["max_abs_diff"]["heatmaps"] < 1.0
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (hm,) = sess.run(None, {"images": np.zeros((2, 3, 64, 48), np.float32)})
    assert hm.shape == (2, 17, 16, 12)
    assert not list(tmp_path.glob("*.tmp*")) and not list(tmp_path.glob("*.fp32"))
    assert main(["export", str(checkpoint), "--format", "safetensors", "--out", str(tmp_path / "s.safetensors"),
                 "--quantize", "int8"]) == 2
