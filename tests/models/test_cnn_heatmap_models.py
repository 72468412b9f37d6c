"""CNN heatmap models: HRNet-W32/W48 and SimpleBaseline-ResNet50 shapes, sizes vs. published, keys, MACs."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from slimpose.models.hrnet import HRNetPose, convert_official_hrnet_state_dict, hrnet_w32, hrnet_w48
from slimpose.models.simplebaseline import SimpleBaselinePose, simplebaseline_res50

torch.set_num_threads(1)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def conv_macs(m: torch.nn.Module, h: int = 256, w: int = 192) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        m(torch.randn(1, 3, h, w))
    counts = counter.get_flop_counts()["Global"]
    return sum(v for k, v in counts.items() if "conv" in str(k) or "mm" in str(k)) / 2


@pytest.fixture(scope="module")
def w32() -> HRNetPose:
    return hrnet_w32().eval()


@pytest.fixture(scope="module")
def sb50() -> SimpleBaselinePose:
    return simplebaseline_res50().eval()


def test_hrnet_w32_output_params_keys(w32):
    with torch.no_grad():
        y = w32(torch.randn(2, 3, 128, 96))
    assert tuple(y.shape) == (2, 17, 32, 24)
    assert w32.output_stride == 4
    assert n_params(w32) == 28_536_113
    assert abs(n_params(w32) / 28.5e6 - 1) < 0.02
    s = w32.state_dict()
    assert tuple(s["keypoint_head.final_layer.weight"].shape) == (17, 32, 1, 1)
    assert tuple(s["keypoint_head.final_layer.bias"].shape) == (17,)
    assert tuple(s["backbone.stage4.2.fuse_layers.0.1.0.weight"].shape) == (32, 64, 1, 1)
    assert torch.all(s["keypoint_head.final_layer.bias"] == 0)
    assert 0.0005 < s["keypoint_head.final_layer.weight"].std() < 0.002


def test_hrnet_w48_params():
    m = hrnet_w48(num_keypoints=14)
    assert n_params(m) == 63_594_912 + 48 * 14 + 14
    assert abs(n_params(hrnet_w48()) / 63.6e6 - 1) < 0.02
    assert m.keypoint_head.final_layer.out_channels == 14


def test_simplebaseline_res50_output_params_keys(sb50):
    with torch.no_grad():
        y = sb50(torch.randn(1, 3, 128, 96))
    assert tuple(y.shape) == (1, 17, 32, 24)
    assert sb50.output_stride == 4
    assert n_params(sb50) == 33_999_697
    assert abs(n_params(sb50) / 34.0e6 - 1) < 0.02
    s = {k: tuple(v.shape) for k, v in sb50.state_dict().items()}
    assert s["keypoint_head.deconv_layers.0.weight"] == (2048, 256, 4, 4)
    assert s["keypoint_head.deconv_layers.1.weight"] == (256,)
    for i in (3, 6):
        assert s[f"keypoint_head.deconv_layers.{i}.weight"] == (256, 256, 4, 4)
        assert s[f"keypoint_head.deconv_layers.{i + 1}.running_mean"] == (256,)
    assert "keypoint_head.deconv_layers.0.bias" not in s
    assert s["keypoint_head.final_layer.weight"] == (17, 256, 1, 1)
    assert s["backbone.layer4.2.conv3.weight"] == (2048, 512, 1, 1)
    with pytest.raises(ValueError, match="divisible by 32"):
        sb50(torch.randn(1, 3, 100, 96))


def test_conv_macs_at_256x192(w32, sb50):
    # measured once; conv MACs (FlopCounterMode / 2). Papers: HRNet-W32 7.1 G, mmpose 7.7 G.
    assert conv_macs(w32) == pytest.approx(7.645e9, rel=2e-3)
    assert conv_macs(sb50) == pytest.approx(5.426e9, rel=2e-3)


def test_factories_validate_input_size():
    with pytest.raises(ValueError, match="divisible by 32"):
        hrnet_w32(input_size=(190, 256))
    with pytest.raises(ValueError, match="divisible by 32"):
        simplebaseline_res50(input_size=(192, 250))


def test_convert_official_hrnet_layout(w32):
    official = {}
    for k, v in w32.state_dict().items():
        k = k.replace("backbone.", "", 1).replace("keypoint_head.", "", 1)
        official["module." + k] = v + 1 if v.is_floating_point() else v
    converted = convert_official_hrnet_state_dict(official)
    fresh = hrnet_w32()
    fresh.load_state_dict(converted, strict=True)
    assert torch.equal(fresh.keypoint_head.final_layer.bias, w32.keypoint_head.final_layer.bias + 1)
    assert convert_official_hrnet_state_dict(w32.state_dict()).keys() == w32.state_dict().keys()


@pytest.mark.parametrize("factory", [hrnet_w32, simplebaseline_res50])
def test_gradients_flow(factory):
    m = factory(num_keypoints=3).train()
    y = m(torch.randn(2, 3, 64, 64))
    target = torch.rand_like(y)
    torch.nn.functional.mse_loss(y, target).backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    assert m.backbone.conv1.weight.grad.abs().sum() > 0
    assert m.keypoint_head.final_layer.weight.grad.abs().sum() > 0
