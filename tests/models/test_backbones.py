"""Backbones: output shapes/strides, exact parameter counts, official key names and shapes, gradients."""

from __future__ import annotations

import pytest
import torch

from slimpose.models.hrnet import HRNet, hrnet_w32_backbone, hrnet_w48_backbone
from slimpose.models.layers import BasicBlock, Bottleneck, DeconvHead, make_res_layer
from slimpose.models.resnet import ResNet, resnet50
from slimpose.models.stemnet import StemNet, stemnet

torch.set_num_threads(1)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def shapes(m: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


@pytest.fixture(scope="module")
def hr32_3() -> HRNet:
    return hrnet_w32_backbone(num_stages=3).eval()


@pytest.fixture(scope="module")
def hr32_4() -> HRNet:
    return hrnet_w32_backbone(num_stages=4).eval()


def test_blocks_shapes_and_stride_on_3x3():
    b = Bottleneck(64, 32, stride=2, downsample=torch.nn.Sequential(torch.nn.Conv2d(64, 128, 1, 2)))
    assert b.conv2.stride == (2, 2) and b.conv1.stride == (1, 1)
    assert tuple(b(torch.randn(1, 64, 8, 8)).shape) == (1, 128, 4, 4)
    layer = make_res_layer(BasicBlock, 16, 16, 2)
    assert layer[0].downsample is None
    layer = make_res_layer(Bottleneck, 64, 64, 4)
    assert isinstance(layer[0].downsample, torch.nn.Sequential) and layer[1].downsample is None
    with pytest.raises(ValueError):
        make_res_layer(BasicBlock, 16, 16, 0)


def test_heatmap_head_deconv_keys():
    head = DeconvHead(64, 5, num_deconv_layers=2, deconv_channels=32, deconv_kernel=4)
    keys = shapes(head)
    assert keys["deconv_layers.0.weight"] == (64, 32, 4, 4)
    assert keys["deconv_layers.3.weight"] == (32, 32, 4, 4)
    assert keys["final_layer.weight"] == (5, 32, 1, 1) and keys["final_layer.bias"] == (5,)
    assert tuple(head(torch.randn(1, 64, 3, 4)).shape) == (1, 5, 12, 16)
    for k in (2, 3):
        h = DeconvHead(8, 2, num_deconv_layers=1, deconv_channels=8, deconv_kernel=k)
        assert tuple(h(torch.randn(1, 8, 3, 4)).shape) == (1, 2, 6, 8)
    with pytest.raises(ValueError):
        DeconvHead(8, 2, num_deconv_layers=1, deconv_kernel=5)


def test_stemnet_shape_params_keys():
    m = stemnet().eval()
    assert isinstance(m, StemNet) and m.out_channels == 256 and m.stride == 4
    with torch.no_grad():
        y = m(torch.randn(2, 3, 64, 48))
    assert tuple(y.shape) == (2, 256, 16, 12)
    assert n_params(m) == 325_056
    s = shapes(m)
    assert s["conv1.weight"] == (64, 3, 3, 3) and s["conv2.weight"] == (64, 64, 3, 3)
    assert s["bn1.weight"] == (64,) and s["bn2.running_var"] == (64,)
    assert s["layer1.0.downsample.0.weight"] == (256, 64, 1, 1)
    assert s["layer1.0.downsample.1.weight"] == (256,)
    assert s["layer1.3.conv3.weight"] == (256, 64, 1, 1)
    assert "layer1.1.downsample.0.weight" not in s and "layer1.4.conv1.weight" not in s
    assert m.conv1.stride == (2, 2) and m.conv1.bias is None
    assert m.bn1.momentum == 0.1


def test_hrnet_3stage_w32(hr32_3):
    assert hr32_3.out_channels == 32 and hr32_3.stride == 4
    with torch.no_grad():
        y = hr32_3(torch.randn(1, 3, 64, 48))
    assert tuple(y.shape) == (1, 32, 16, 12)
    assert n_params(hr32_3) == 7_685_632  # TokenPose-B 13.5M - transformer ~5.8M
    s = shapes(hr32_3)
    assert not any(k.startswith(("transition3", "stage4")) for k in s)
    assert s["transition1.0.0.weight"] == (32, 256, 3, 3)
    assert s["transition1.1.0.0.weight"] == (64, 256, 3, 3)
    assert s["transition2.2.0.0.weight"] == (128, 64, 3, 3)
    assert "transition2.0.0.weight" not in s  # widths unchanged -> None
    # stage3's last module fuses into branch 0 only (DistilPose/SDPose HRNet_3stage)
    assert len(hr32_3.stage3[3].fuse_layers) == 1 and len(hr32_3.stage3[2].fuse_layers) == 3
    assert s["stage3.3.fuse_layers.0.2.0.weight"] == (32, 128, 1, 1)
    assert "stage3.3.fuse_layers.1.0.0.0.weight" not in s
    assert s["stage3.2.fuse_layers.2.0.0.0.weight"] == (32, 32, 3, 3)
    assert s["stage3.2.fuse_layers.2.0.1.0.weight"] == (128, 32, 3, 3)
    assert s["stage3.0.branches.2.3.conv2.weight"] == (128, 128, 3, 3)
    assert len(hr32_3.forward_branches(torch.randn(1, 3, 32, 32))) == 1


def test_hrnet_3stage_multiscale_option():
    m = hrnet_w32_backbone(num_stages=3, stage3_multiscale=True)
    assert len(m.stage3[3].fuse_layers) == 3
    assert n_params(m) == 7_832_896
    with torch.no_grad():
        ys = m.eval().forward_branches(torch.randn(1, 3, 64, 48))
    assert [tuple(y.shape) for y in ys] == [(1, 32, 16, 12), (1, 64, 8, 6), (1, 128, 4, 3)]


def test_hrnet_3stage_w48():
    m = hrnet_w48_backbone(num_stages=3).eval()
    assert n_params(m) == 16_705_824  # DistilPose-L 21.3M - TDE ~4.6M
    with torch.no_grad():
        assert tuple(m(torch.randn(1, 3, 64, 48)).shape) == (1, 48, 16, 12)
    assert shapes(m)["stage3.0.branches.2.0.conv1.weight"] == (192, 192, 3, 3)


def test_hrnet_4stage_w32(hr32_4):
    with torch.no_grad():
        y = hr32_4(torch.randn(1, 3, 128, 96))
    assert tuple(y.shape) == (1, 32, 32, 24)
    assert n_params(hr32_4) == 28_535_552
    s = shapes(hr32_4)
    assert s["transition3.3.0.0.weight"] == (256, 128, 3, 3)
    assert s["stage4.2.fuse_layers.0.1.0.weight"] == (32, 64, 1, 1)
    assert s["stage4.2.fuse_layers.0.3.0.weight"] == (32, 256, 1, 1)
    assert s["stage4.0.fuse_layers.3.0.2.0.weight"] == (256, 32, 3, 3)
    assert s["stage4.0.fuse_layers.3.0.1.0.weight"] == (32, 32, 3, 3)
    assert "stage4.2.fuse_layers.1.0.0.0.weight" not in s
    assert s["stage2.0.branches.1.3.bn2.running_mean"] == (64,)
    assert len(hr32_4.stage2) == 1 and len(hr32_4.stage3) == 4 and len(hr32_4.stage4) == 3


def test_hrnet_4stage_w48():
    m = hrnet_w48_backbone(num_stages=4)
    assert n_params(m) == 63_594_912
    assert shapes(m)["stage4.0.branches.3.0.conv1.weight"] == (384, 384, 3, 3)


def test_hrnet_rejects_bad_input(hr32_4):
    with pytest.raises(ValueError, match="divisible by 32"):
        hr32_4(torch.randn(1, 3, 64, 48))  # 48 / 32 is not integral
    with pytest.raises(ValueError):
        HRNet(width=32, num_stages=2)


def test_resnet50_shapes_params_keys():
    m = resnet50().eval()
    assert m.out_channels == 2048 and m.stride == 32
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert tuple(m(x).shape) == (1, 2048, 2, 2)
        feats = m.forward_features(x)
    expected = [(1, 256, 16, 16), (1, 512, 8, 8), (1, 1024, 4, 4), (1, 2048, 2, 2)]
    assert [tuple(f.shape) for f in feats] == expected
    assert n_params(m) == 23_508_032  # torchvision resnet50 25,557,032 minus fc
    s = shapes(m)
    assert s["conv1.weight"] == (64, 3, 7, 7)
    assert s["layer4.0.downsample.0.weight"] == (2048, 1024, 1, 1)
    assert s["layer3.5.conv3.weight"] == (1024, 256, 1, 1)
    assert "layer3.6.conv1.weight" not in s and not any(k.startswith("fc.") for k in s)
    assert m.layer2[0].conv2.stride == (2, 2) and m.layer2[0].conv1.stride == (1, 1)
    all_m = ResNet(depth=50, return_all=True).eval()
    with torch.no_grad():
        assert len(all_m(x)) == 4
    with pytest.raises(ValueError):
        ResNet(depth=42)


def test_resnet18_basic_blocks():
    m = ResNet(depth=18)
    assert n_params(m) == 11_176_512 and m.out_channels == 512


@pytest.mark.parametrize("name", ["stemnet", "hrnet3"])
def test_gradients_flow(name):
    m = stemnet() if name == "stemnet" else hrnet_w32_backbone(num_stages=3)
    m.train()
    y = m(torch.randn(2, 3, 64, 48))
    (y.float() ** 2).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None]
    assert not missing, missing[:5]
    assert m.conv1.weight.grad.abs().sum() > 0
