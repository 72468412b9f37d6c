"""UniTransPose: window attention, the JAGL block and its ablations, the sub-pixel decoder, the hybrid head,
the factories' sizes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slimpose.engine.complexity import count_flops
from slimpose.heads import HeatmapHead, RegressionHead, default_head
from slimpose.heads.hybrid import HybridHead
from slimpose.models import create_model
from slimpose.models.unitranspose import JAGLBlock, SubPixelDecoder, WindowAttention, window_partition, window_reverse

torch.set_num_threads(1)
TINY = dict(dims=(16, 32, 32, 64), depths=(1, 1, 1, 1), heads=(1, 2, 2, 4), decoder_channels=(32, 16, 16),
            drop_path_rate=0.0)


def _full_attention(wa: WindowAttention, x: torch.Tensor) -> torch.Tensor:
    """Plain multi-head attention over every patch with ``wa``'s weights (the reference)."""
    a = wa.attn
    b, n, c = x.shape
    q, k, v = a._qkv(x)
    attn = (q @ k.transpose(-2, -1) * a.scale).softmax(-1)
    return a.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


def test_window_attention_equals_full_attention_when_the_window_covers_the_map():
    torch.manual_seed(0)
    x = torch.randn(2, 6 * 4, 32)
    for window in ((6, 4), (8, 8)):  # exactly the map, and larger than it (clipped)
        wa = WindowAttention(32, 4, window).eval()
        assert torch.allclose(wa(x, (6, 4)), _full_attention(wa, x), atol=1e-5)


def test_windows_are_independent_and_padding_is_masked():
    torch.manual_seed(0)
    wa = WindowAttention(16, 2, (2, 2)).eval()
    x = torch.randn(1, 4 * 4, 16)
    out = wa(x, (4, 4))
    # each 2x2 window alone gives the same as within the map
    grid = x.reshape(1, 4, 4, 16)
    win = window_partition(grid, (2, 2))
    ref = window_reverse(torch.cat([_full_attention(wa, win[i:i + 1]) for i in range(4)]), (2, 2), 1, 4, 4)
    assert torch.allclose(out, ref.reshape(1, 16, 16), atol=1e-5)
    # a 3x3 map in 2x2 windows is padded; the padded keys are masked: the top-left window equals attention
    # over its four real patches, and no output depends on the padding value
    x3 = torch.randn(1, 9, 16)
    out3 = wa(x3, (3, 3))
    tl = x3.reshape(1, 3, 3, 16)[:, :2, :2].reshape(1, 4, 16)
    assert torch.allclose(out3.reshape(1, 3, 3, 16)[:, :2, :2].reshape(1, 4, 16), _full_attention(wa, tl), atol=1e-5)
    corner = x3.reshape(1, 3, 3, 16)[:, 2:, 2:].reshape(1, 1, 16)
    assert torch.allclose(out3.reshape(1, 3, 3, 16)[:, 2, 2], _full_attention(wa, corner)[:, 0], atol=1e-5)


def test_jagl_block_paths():
    torch.manual_seed(0)
    x, joints = torch.randn(2, 8 * 6, 32), torch.randn(2, 5, 32)
    jagl = JAGLBlock(32, 4, (4, 3)).eval()
    local = JAGLBlock(32, 4, (4, 3), attention="local").eval()
    glob = JAGLBlock(32, 4, (4, 3), attention="global").eval()
    assert not hasattr(local, "gather") and not hasattr(glob, "local_attn")
    with torch.no_grad():
        xo, jo = local(x, joints, (8, 6))
        assert torch.equal(jo, joints)  # no joint path: the joints pass unchanged
        # local only: a patch's output does not depend on patches of other windows (the conv MLP aside:
        # zero its depthwise conv and the patch MLP is per token)
        local.mlp.dwconv.weight.zero_()
        local.mlp.dwconv.bias.zero_()
        x2 = x.clone()
        x2[:, -1] += 5.0 * torch.randn(32)  # a patch in the last window (not a constant: LayerNorm removes those)
        assert torch.allclose(local(x, joints, (8, 6))[0][:, 0], local(x2, joints, (8, 6))[0][:, 0], atol=1e-6)
        # the joint path carries information across the whole map in one block
        jagl.mlp.dwconv.weight.zero_()
        jagl.mlp.dwconv.bias.zero_()
        assert not torch.allclose(jagl(x, joints, (8, 6))[0][:, 0], jagl(x2, joints, (8, 6))[0][:, 0], atol=1e-4)
        _, jg = glob(x, joints, (8, 6))
        assert jg.shape == joints.shape and not torch.allclose(jg, joints)
    with pytest.raises(ValueError, match="attention"):
        JAGLBlock(32, 4, attention="both")


@pytest.mark.parametrize("upsample", ["pixelshuffle", "deconv"])
def test_decoder_output_size(upsample):
    dims = (16, 32, 48, 64)
    maps = [torch.randn(2, d, 32 // 2 ** i, 24 // 2 ** i) for i, d in enumerate(dims)]
    dec = SubPixelDecoder(dims, (32, 16, 8), 17, upsample=upsample)
    assert dec(maps).shape == (2, 17, 32, 24)  # stride 32 -> 4
    kinds = {type(m) for m in dec.modules()}
    assert (torch.nn.PixelShuffle in kinds) == (upsample == "pixelshuffle")
    assert (torch.nn.ConvTranspose2d in kinds) == (upsample == "deconv")
    assert SubPixelDecoder(dims, (32, 16, 8), 17, skips=False)(maps).shape == (2, 17, 32, 24)
    with pytest.raises(ValueError, match="upsample"):
        SubPixelDecoder(dims, (32, 16, 8), 17, upsample="bilinear")


def test_model_outputs_and_heads():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 128, 96)
    hybrid = create_model("unitranspose_t", input_size=(96, 128), **TINY).eval()
    hm = create_model("unitranspose_t", input_size=(96, 128), head="heatmap", **TINY).eval()
    reg = create_model("unitranspose_t", input_size=(96, 128), head="regression", **TINY).eval()
    with torch.no_grad():
        h, r = hybrid(x)
        assert h.shape == (2, 17, 32, 24) and r.shape == (2, 17, 5)
        assert hm(x).shape == (2, 17, 32, 24) and reg(x).shape == (2, 17, 5)
        assert ((r[..., :2] >= 0) & (r[..., :2] <= 1)).all()
    assert isinstance(default_head(hybrid), HybridHead)
    assert isinstance(default_head(hm), HeatmapHead) and isinstance(default_head(reg), RegressionHead)
    assert hybrid.heatmap_size == (24, 32)
    with pytest.raises(ValueError, match="divisible by 32"):
        create_model("unitranspose_t", input_size=(48, 64))
    with pytest.raises(ValueError, match="no regression output"):
        create_model("unitranspose_t", attention="local")


def test_hybrid_head_loss_flip_and_decode():
    torch.manual_seed(0)
    model = create_model("unitranspose_t", input_size=(96, 128), **TINY).eval()
    head = default_head(model)
    kpts = torch.tensor([[10.0, 20.0], [50.0, 60.0]]).numpy()
    enc = head.codec.encode(kpts, [1.0, 0.0])
    assert enc["target"].shape == (2, 32, 24) and enc["reg_target"].shape == (2, 2)
    assert enc["reg_target_weight"].tolist() == [1.0, 0.0]
    k = 17
    batch = {"target": torch.zeros(1, k, 32, 24), "target_weight": torch.ones(1, k),
             "reg_target": torch.full((1, k, 2), 0.5), "reg_target_weight": torch.zeros(1, k)}
    batch["reg_target_weight"][0, 3] = 1.0
    h = torch.zeros(1, k, 32, 24, requires_grad=True)
    r = torch.full((1, k, 5), 0.5, requires_grad=True)
    loss, logs = head.loss((h, r), batch)
    assert float(loss.detach()) == 0.0 and set(logs) == {"loss_heatmap", "loss_reg"}
    with torch.no_grad():
        r2 = r.clone()
        r2[0, 3, 0] = 0.9  # the labelled joint is off: a regression loss
        r2[0, 5, 0] = 0.9  # an unlabelled one: none
    loss, _ = head.loss((h, r2), batch)
    # one of the K x 2 coordinates is off by 0.4 (Smooth L1, mean over every coordinate)
    ref = F.smooth_l1_loss(torch.tensor(0.9), torch.tensor(0.5), beta=head.regression.smooth_l1_beta) / (2 * k)
    assert float(loss.detach()) == pytest.approx(float(ref) * head.reg_weight, rel=1e-5)
    images = torch.randn(1, 3, 128, 96)
    kp, sc = head.predict(model, images, flip_pairs=[(1, 2)])
    assert kp.shape == (1, k, 2) and sc.shape == (1, k)
    with torch.no_grad():
        out = model(images)
    exp_k, exp_s = head.decode(out)
    dk, ds = head.export_decoder()(out)
    assert dk.shape == (1, k, 2) and torch.allclose(torch.as_tensor(exp_s), ds, atol=1e-6)
    reg_head = HybridHead(head.heatmap, head.regression, decode_from="regression")
    rk, _ = reg_head.decode(out)
    assert torch.allclose(torch.as_tensor(rk), out[1][..., :2] * torch.tensor([96.0, 128.0]), atol=1e-4)
    with pytest.raises(ValueError, match="decode_from"):
        HybridHead(head.heatmap, head.regression, decode_from="vote")


def test_factories_sit_beside_tokenpose_and_vitpose():
    """GFLOPs at 256x192 beside TokenPose-S-v1 (2.38), ViTPose-S (5.25) and ViTPose-B (17.84)."""
    gflops = {}
    for name in ("unitranspose_t", "unitranspose_s"):
        gflops[name] = count_flops(create_model(name))["gflops"]
    assert gflops["unitranspose_t"] == pytest.approx(2.357, abs=0.002)
    assert gflops["unitranspose_s"] == pytest.approx(5.292, abs=0.002)
    with torch.device("meta"):
        b = create_model("unitranspose_b")
    assert len(b.encoder.stages[2].blocks) == 26 and b.encoder.dims == (96, 192, 384, 768)


def test_onnx_export_with_in_graph_decoding(tmp_path):
    """The window partition and the hybrid decoder export with a dynamic batch and match eager."""
    import numpy as np

    ort = pytest.importorskip("onnxruntime")
    from slimpose.export import export_onnx

    torch.manual_seed(0)
    model = create_model("unitranspose_t", input_size=(96, 128), **TINY).eval()
    head = default_head(model)
    report = export_onnx(model, tmp_path / "utp.onnx", head=head, decode_in_graph=True)
    assert report["outputs"] == ["keypoints", "scores"]
    session = ort.InferenceSession(str(tmp_path / "utp.onnx"))
    x = torch.randn(3, 3, 128, 96)
    keypoints, scores = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref_k, ref_s = head.export_decoder()(model(x))
    assert np.abs(keypoints - ref_k.numpy()).max() < 1e-3 and np.abs(scores - ref_s.numpy()).max() < 1e-5
