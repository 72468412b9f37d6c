"""ONNX export (raw and decoded, dynamic batch) checked with onnxruntime; safetensors round trip."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")
import onnxruntime as ort  # noqa: E402

from slimpose.api import load  # noqa: E402
from slimpose.cli.main import main  # noqa: E402
from slimpose.codecs.msra_heatmap import MSRAHeatmap  # noqa: E402
from slimpose.engine.checkpoint import save_checkpoint  # noqa: E402
from slimpose.export import DecodedModel, export_onnx, onnxruntime_latency  # noqa: E402
from slimpose.heads import default_head  # noqa: E402
from slimpose.models import create_model  # noqa: E402
from slimpose.models.stemnet import StemNet  # noqa: E402

INPUT = (48, 64)
TINY = {"depth": 1, "dim": 32, "num_heads": 2}


@pytest.fixture(scope="module")
def models():
    torch.set_num_threads(1)
    torch.manual_seed(2)
    tp = create_model("tokenpose_s_v1", input_size=INPUT, **TINY).eval()
    ds = create_model("distilpose_s", input_size=INPUT, stem_blocks=1, **TINY).eval()
    sc = create_model("simcc_res50", input_size=INPUT, backbone=StemNet(num_blocks=1), num_deconv_layers=0).eval()
    return {"heatmap": tp, "regression": ds, "simcc": sc}


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"images": x.numpy()})


@pytest.mark.parametrize("kind", ["heatmap", "regression", "simcc"])
def test_onnx_decoded_matches_pytorch_and_the_head(models, tmp_path, kind):
    model = models[kind]
    head = default_head(model)
    report = export_onnx(model, tmp_path / "m.onnx", head, decode_in_graph=True)
    assert report["outputs"] == ["keypoints", "scores"]
    x = torch.randn(3, 3, 64, 48, generator=torch.Generator().manual_seed(5))  # batch 3: dynamic axis
    kp, sc = _run(tmp_path / "m.onnx", x)
    with torch.no_grad():
        ref_kp, ref_sc = DecodedModel(model, head.export_decoder())(x)
    assert kp.shape == (3, 17, 2) and sc.shape == (3, 17)
    assert np.abs(kp - ref_kp.numpy()).max() < 1e-3
    assert np.abs(sc - ref_sc.numpy()).max() < 1e-4
    with torch.no_grad():
        out = model(x)
    if kind == "heatmap":  # the in-graph decode is the codec's argmax + quarter shift (DARK stays outside)
        codec_kp, codec_sc = MSRAHeatmap(INPUT, (12, 16), unbiased=False).decode(out.numpy())
    else:  # regression and SimCC: the head's own decoding, in the graph
        codec_kp, codec_sc = head.decode(out)
    np.testing.assert_allclose(ref_kp.numpy(), codec_kp, atol=1e-5)
    np.testing.assert_allclose(ref_sc.numpy(), codec_sc, atol=1e-6)
    # raw export: the head names the outputs
    raw = export_onnx(model, tmp_path / "raw.onnx", head)
    assert raw["outputs"] == list(head.output_names)
    assert len(_run(tmp_path / "raw.onnx", x)) == len(head.output_names)


def test_onnx_raw_output_and_latency(models, tmp_path):
    tp = models["heatmap"]
    export_onnx(tp, tmp_path / "raw.onnx")
    x = torch.randn(2, 3, 64, 48)
    (hm,) = _run(tmp_path / "raw.onnx", x)
    with torch.no_grad():
        assert np.abs(hm - tp(x).numpy()).max() < 1e-4
    lat = onnxruntime_latency(tp, batch=2, repeats=2, warmup=1)
    assert lat["ort_latency_ms"] > 0 and lat["batch"] == 2


def test_export_cli_onnx_and_safetensors(models, tmp_path, capsys):
    tp = models["heatmap"]
    cfg = {"model": {"name": "tokenpose_s_v1", "overrides": TINY},
           "data": {"input_size": list(INPUT), "heatmap_size": [12, 16]}}
    ckpt = tmp_path / "tp.pth"
    save_checkpoint({"model": tp.state_dict(), "model_name": "tokenpose_s_v1", "config": cfg}, ckpt)
    assert main(["export", str(ckpt), "--format", "onnx", "--decode-in-graph", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["max_abs_diff"]["keypoints"] < 1e-3 and (tmp_path / "tp.onnx").is_file()
    out = str(tmp_path / "w.safetensors")
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", out]) == 0
    img = np.random.default_rng(0).integers(0, 255, (120, 90, 3), dtype=np.uint8)
    a, b = load(ckpt).predict(img), load(tmp_path / "w.safetensors").predict(img)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert main(["export", str(ckpt), "--format", "safetensors", "--out", str(ckpt)]) == 2  # would overwrite
