"""Lite-HRNet (Yu et al. CVPR 2021): sizes, complexity, shapes, the official fusion quirk, key layout and
conversion of official / MMPose checkpoints."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimpose.convert import convert_checkpoint, convert_state_dict
from slimpose.engine.checkpoint import load_checkpoint
from slimpose.engine.complexity import count_flops, count_params
from slimpose.models import MODELS, create_model
from slimpose.models.litehrnet import (
    LiteHRModule,
    LiteHRNet,
    channel_shuffle,
    litehrnet_18,
    litehrnet_18_simcc,
    litehrnet_30,
)
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(2)


def _n(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _randomize(model: nn.Module, seed: int = 0) -> None:
    """Random values in every parameter and BN statistic (so that the BN paths matter in eval mode)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                if name.endswith("running_var"):
                    t.copy_(torch.rand(t.shape, generator=g) + 0.5)
                else:
                    t.copy_(torch.randn(t.shape, generator=g) * 0.3)


# ---------------------------------------------------------------- sizes (reference 6b, derived from the code)

@pytest.mark.parametrize("factory, backbone, full16, full17", [
    (litehrnet_18, 1_054_032, 1_130_728, 1_130_769),
    (litehrnet_30, 1_686_980, 1_763_676, 1_763_717),
])
def test_param_counts(factory, backbone, full16, full17):
    m = factory()
    assert _n(m.backbone) - _n(m.backbone.head_layer) == backbone
    assert _n(m.backbone.head_layer) == 76_040
    assert count_params(m) == full17
    assert count_params(factory(num_keypoints=16, input_size=(256, 256))) == full16


def test_simcc_param_counts():
    # 1x1 conv 40 -> K, Linear(64*48, 384), Linear(64*48, 512): 2,754,105 head parameters at 256x192
    m = litehrnet_18_simcc()
    assert count_params(m.head) == 40 * 17 + 17 + 3072 * 384 + 384 + 3072 * 512 + 512 == 2_754_105
    assert count_params(m) == 1_130_072 + 2_754_105
    mpii = litehrnet_18_simcc(num_keypoints=16, input_size=(256, 256))
    assert count_params(mpii.head) == 4_195_984


# ---------------------------------------------------------------- complexity

def _torchstat_like_mflops(model: nn.Module, size: tuple[int, int]) -> float:
    """The paper's counter (HRNet/Lite-HRNet ``tools/summary_network.py`` -> torchstat): per leaf module conv
    MACs + bias, BN 2 per element, ReLU 1, nn.Upsample H*W, AdaptiveAvgPool 1 per input element; a module
    called twice keeps only its last call (torchstat overwrites its buffer); reported in units of 2**20."""
    last: dict[int, int] = {}

    def hook(mod, inp, out):
        x = inp[0]
        if isinstance(mod, nn.Conv2d):
            f = out.numel() * (mod.in_channels // mod.groups) * mod.kernel_size[0] * mod.kernel_size[1]
            f += out.numel() if mod.bias is not None else 0
        elif isinstance(mod, nn.BatchNorm2d):
            f = 2 * x.numel()
        elif isinstance(mod, (nn.ReLU, nn.AdaptiveAvgPool2d)):
            f = x.numel()
        elif isinstance(mod, nn.Upsample):
            f = out.shape[0] * out.shape[2] * out.shape[3]
        else:
            f = 0
        last[id(mod)] = f

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model.eval()(torch.randn(1, 3, size[1], size[0]))
    finally:
        for h in handles:
            h.remove()
    return sum(last.values()) / 2**20


@pytest.mark.parametrize("factory, macs, published", [(litehrnet_18, 0.242345088, 205.2),
                                                      (litehrnet_30, 0.386103648, 319.2)])
def test_complexity_256x192(factory, macs, published):
    """slimpose's counter (conv + linear MACs of every call) vs the published 205.2M / 319.2M FLOPs.

    They differ on purpose: the published numbers are torchstat "Flops" (see ``_torchstat_like_mflops``),
    which count the doubly-called fuse layers once and BN/ReLU/pool elements, in units of 2**20. Our MACs
    are the work actually done (the official forward runs ``fuse_layers[i][0]`` twice for every i > 0).
    """
    m = factory()
    f = count_flops(m)
    assert f["linear"] == 0 and f["attention"] == 0
    assert abs(f["gflops"] - macs) < 1e-9
    assert abs(_torchstat_like_mflops(m, (192, 256)) - published) < 0.25  # 205.13 / 319.01 measured


def test_simcc_complexity():
    f = count_flops(litehrnet_18_simcc())
    assert abs(f["conv"] - 0.242345088) < 1e-9
    assert abs(f["linear"] - 17 * 3072 * (384 + 512) / 1e9) < 1e-9


# ---------------------------------------------------------------- shapes

def test_heatmap_and_stage_shapes():
    m = litehrnet_18(num_keypoints=5, input_size=(64, 96)).eval()  # (w, h): non-square catches a swap
    x = torch.randn(2, 3, 96, 64)
    with torch.no_grad():
        assert m(x).shape == (2, 5, 24, 16)
        stages = m.backbone.forward_stages(x)
    assert [tuple(s.shape) for s in stages] == [(2, 40, 24, 16)] * 3
    assert m.backbone.out_channels == 40 and m.backbone.stride == 4 and m.heatmap_size == (16, 24)
    with pytest.raises(ValueError, match="divisible by 32"):
        m.backbone(torch.randn(1, 3, 80, 64))
    with pytest.raises(ValueError, match="divisible by 32"):
        litehrnet_18(input_size=(192, 250))


def test_forward_stages_are_stage_outputs_and_feature_stages():
    m = litehrnet_18(input_size=(64, 64), num_modules=(1, 2, 1)).eval()
    _randomize(m)
    assert m.feature_stages == ("backbone.stage0", "backbone.stage1", "backbone.stage2")
    seen = {}
    mods = dict(m.named_modules())
    hs = [mods[n].register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o)) for n in m.feature_stages]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stages = m.backbone.forward_stages(x)
        for h in hs:
            h.remove()
        assert [len(seen[n]) for n in m.feature_stages] == [2, 3, 4]
        for s, n in zip(stages, m.feature_stages):
            assert torch.equal(s, seen[n][0])
        # forward = IterativeHead over the last stage's branches, branch 0
        assert torch.allclose(m.backbone(x), m.backbone.head_layer(seen["backbone.stage2"])[0])
        no_head = LiteHRNet(num_modules=(1, 2, 1), with_head=False)
        no_head.load_state_dict({k: v for k, v in m.backbone.state_dict().items() if "head_layer" not in k})
        assert torch.allclose(no_head.eval()(x), stages[-1])


def test_simcc_shapes():
    m = litehrnet_18_simcc(num_keypoints=3, input_size=(64, 96)).eval()
    with torch.no_grad():
        px, py = m(torch.randn(2, 3, 96, 64))
    assert px.shape == (2, 3, 128) and py.shape == (2, 3, 192)
    assert m.head.mlp_head_x.in_features == 16 * 24


# ---------------------------------------------------------------- building blocks

def test_channel_shuffle_is_the_shufflenet_permutation():
    x = torch.arange(8.0).reshape(1, 8, 1, 1).expand(2, 8, 3, 2).contiguous()
    y = channel_shuffle(x, 2)
    assert y[0, :, 0, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]
    assert torch.equal(channel_shuffle(y, 4), x)  # groups 4 undoes groups 2 for 8 channels
    z = torch.randn(3, 12, 5, 4)
    assert torch.equal(channel_shuffle(channel_shuffle(z, 2), 6), z)
    assert torch.equal(channel_shuffle(z, 2).sort(dim=1).values, z.sort(dim=1).values)


def test_fusion_counts_branch0_twice_and_fuses_the_overwritten_sum():
    """The official ``y = out[0]; y += out[0]; y += fuse(...)`` (and ``y = f(out[0]); y += f(out[0])``)."""
    mod = LiteHRModule(3, 1, [8, 16, 32]).eval()
    _randomize(mod, seed=3)
    mod.layers = nn.Identity()  # only the fusion is under test
    xs = [torch.randn(2, 8, 8, 8), torch.randn(2, 16, 4, 4), torch.randn(2, 32, 2, 2)]
    f = mod.fuse_layers
    with torch.no_grad():
        inp = [x.clone() for x in xs]
        out = mod(inp)
        assert all(torch.equal(a, b) for a, b in zip(inp, xs))  # unlike the official loop: no in-place
        y0 = 2 * xs[0] + f[0][1](xs[1]) + f[0][2](xs[2])
        y1 = 2 * f[1][0](y0) + xs[1] + f[1][2](xs[2])
        y2 = 2 * f[2][0](y0) + f[2][1](xs[1]) + xs[2]
        for got, want in zip(out, (y0, y1, y2)):
            assert torch.allclose(got, want.relu(), atol=1e-6)
        # the literal official loop (in-place on the aliased branch-0 tensor) gives the same
        ref_in = [x.clone() for x in xs]
        ref = []
        for i in range(3):
            y = ref_in[0] if i == 0 else f[i][0](ref_in[0])
            for j in range(3):
                if i == j:
                    y += ref_in[j]
                else:
                    y += f[i][j](ref_in[j])
            ref.append(y.relu())
        for got, want in zip(out, ref):
            assert torch.allclose(got, want, atol=1e-6)
        # and a plain HRNet sum (branch 0 once, block output x0 everywhere) would not
        plain1 = (f[1][0](xs[0]) + xs[1] + f[1][2](xs[2])).relu()
        assert not torch.allclose(out[1], plain1, atol=1e-3)


def test_official_init():
    m = litehrnet_18()
    for name, p in m.named_parameters():
        if p.dim() == 4 and p.numel() >= 1000:
            assert 0.0007 < p.std().item() < 0.0013, name
        elif name.endswith("bias"):
            assert torch.all(p == 0), name
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)


def test_trace():
    m = litehrnet_18(input_size=(64, 64), num_modules=(1, 1, 1), num_blocks=1).eval()
    _randomize(m)
    traced = torch.jit.trace(m, torch.randn(1, 3, 64, 64), check_trace=False)
    x = torch.randn(2, 3, 96, 64)  # another batch and size: no shape was frozen
    with torch.no_grad():
        assert torch.allclose(traced(x), m(x), atol=1e-6)


# ---------------------------------------------------------------- key layout and conversion

OFFICIAL_KEYS = {  # official LiteHRNet (mmcv ConvModule: conv/bn) key -> shape, Lite-HRNet-18, 17 joints
    "backbone.stem.conv1.conv.weight": (32, 3, 3, 3),
    "backbone.stem.conv1.bn.running_var": (32,),
    "backbone.stem.branch1.0.conv.weight": (16, 1, 3, 3),
    "backbone.stem.branch1.1.conv.weight": (16, 16, 1, 1),
    "backbone.stem.expand_conv.conv.weight": (32, 16, 1, 1),
    "backbone.stem.depthwise_conv.bn.weight": (32,),
    "backbone.stem.linear_conv.conv.weight": (16, 32, 1, 1),
    "backbone.transition0.0.0.weight": (32, 1, 3, 3),
    "backbone.transition0.0.2.weight": (40, 32, 1, 1),
    "backbone.transition0.1.0.2.weight": (80, 32, 1, 1),
    "backbone.transition2.3.0.3.num_batches_tracked": (),
    "backbone.stage0.0.layers.0.cross_resolution_weighting.conv1.conv.weight": (7, 60, 1, 1),
    "backbone.stage0.0.layers.1.cross_resolution_weighting.conv2.bn.bias": (60,),
    "backbone.stage0.0.layers.0.depthwise_convs.1.conv.weight": (40, 1, 3, 3),
    "backbone.stage0.0.layers.0.spatial_weighting.0.conv1.conv.bias": (5,),
    "backbone.stage0.0.layers.0.spatial_weighting.1.conv2.conv.weight": (40, 10, 1, 1),
    "backbone.stage0.0.fuse_layers.0.1.0.weight": (40, 80, 1, 1),
    "backbone.stage0.0.fuse_layers.1.0.0.0.weight": (40, 1, 3, 3),
    "backbone.stage0.0.fuse_layers.1.0.0.2.weight": (80, 40, 1, 1),
    "backbone.stage1.3.fuse_layers.2.0.1.2.weight": (160, 40, 1, 1),
    "backbone.stage2.1.fuse_layers.3.2.0.3.bias": (320,),
    "backbone.stage2.1.layers.1.cross_resolution_weighting.conv1.conv.weight": (37, 300, 1, 1),
    "backbone.head_layer.projects.0.depthwise_conv.conv.weight": (320, 1, 3, 3),
    "backbone.head_layer.projects.0.pointwise_conv.conv.weight": (160, 320, 1, 1),
    "backbone.head_layer.projects.3.pointwise_conv.bn.weight": (40,),
    "keypoint_head.final_layer.weight": (17, 40, 1, 1),
    "keypoint_head.final_layer.bias": (17,),
}


def test_official_key_layout():
    sd = litehrnet_18().state_dict()
    for key, shape in OFFICIAL_KEYS.items():
        assert key in sd and tuple(sd[key].shape) == shape, key
    assert not any(k.startswith("backbone.stage3") or "stage2.2." in k for k in sd)
    assert all(k.startswith(("backbone.stem.", "backbone.transition", "backbone.stage", "backbone.head_layer.",
                             "keypoint_head.final_layer.")) for k in sd)


def _official(model: nn.Module, head_prefix: str) -> dict[str, torch.Tensor]:
    """The official file's tensors, built key by key: ``backbone.<name>`` and ``<head_prefix><name>``."""
    out = {f"backbone.{k}": v.clone() for k, v in model.backbone.state_dict().items()}
    head = model.keypoint_head if hasattr(model, "keypoint_head") else model.head
    out.update({f"{head_prefix}{k}": v.clone() for k, v in head.state_dict().items()})
    return out


@pytest.mark.parametrize("head_prefix", ["keypoint_head.", "head."])  # MMPose 0.x TopDown / 1.x
def test_convert_official_layout(head_prefix):
    src = litehrnet_18(num_keypoints=16, input_size=(64, 64)).eval()
    _randomize(src, seed=1)
    sd = _official(src, head_prefix)
    dst = litehrnet_18(num_keypoints=16, input_size=(64, 64)).eval()
    state, report = convert_state_dict(sd, "mmpose", dst)
    assert report.ok and not report.filled and report.converted == len(sd), report.format()
    dst.load_state_dict(state, strict=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(dst(x), src(x))


def test_convert_checkpoint_file_and_bad_keys(tmp_path):
    src = litehrnet_18(num_keypoints=16).eval()
    _randomize(src, seed=2)
    sd = _official(src, "keypoint_head.")
    path = tmp_path / "litehrnet18_mpii.pth"
    torch.save({"meta": {}, "state_dict": sd}, path)
    report = convert_checkpoint(path, tmp_path / "out.pth", "mmpose", "litehrnet_18", input_size=(256, 256))
    assert report.ok and report.source_key == "state_dict"
    loaded = load_checkpoint(tmp_path / "out.pth")
    assert loaded["config"]["model"]["overrides"]["num_keypoints"] == 16  # inferred from final_layer
    dst = create_model("litehrnet_18", num_keypoints=16)
    dst.load_state_dict(loaded["model"])
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(dst.eval()(x), src(x))

    bad = dict(sd)
    del bad["backbone.stage1.2.fuse_layers.0.2.1.running_mean"]
    bad["backbone.stage1.2.fuse_layer.0.1.0.weight"] = bad.pop("backbone.stage1.2.fuse_layers.0.1.0.weight")
    _, report = convert_state_dict(bad, "mmpose", litehrnet_18(num_keypoints=16))
    assert "backbone.stage1.2.fuse_layers.0.2.1.running_mean" in report.missing
    assert "backbone.stage1.2.fuse_layers.0.1.0.weight" in report.missing
    assert any("fuse_layer.0.1.0.weight" in u for u in report.unexpected)
    torch.save({"state_dict": bad}, path)
    with pytest.raises(SlimposeInputError, match="does not fit"):
        convert_checkpoint(path, tmp_path / "bad.pth", "mmpose", "litehrnet_18")
    assert not (tmp_path / "bad.pth").exists()


def test_convert_simcc_mmpose1_layout():
    src = litehrnet_18_simcc(num_keypoints=4, input_size=(64, 64)).eval()
    _randomize(src, seed=4)
    sd = _official(src, "head.")  # MMPose 1.x SimCCHead: head.final_layer, head.mlp_head_x, head.mlp_head_y
    assert {"head.final_layer.weight", "head.mlp_head_x.weight", "head.mlp_head_y.bias"} <= set(sd)
    dst = litehrnet_18_simcc(num_keypoints=4, input_size=(64, 64)).eval()
    state, report = convert_state_dict(sd, "mmpose", dst)
    assert report.ok, report.format()
    dst.load_state_dict(state)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(dst(x), src(x)):
            assert torch.equal(a, b)


def test_registered():
    from slimpose.heads.heatmap import HeatmapHead
    from slimpose.heads.simcc import SimCCHead

    for name in ("litehrnet_18", "litehrnet_30", "litehrnet_18_simcc", "litehrnet_30_simcc"):
        assert name in MODELS
    assert create_model("litehrnet_30", input_size=(64, 64)).head_class is HeatmapHead
    assert create_model("litehrnet_30_simcc", input_size=(64, 64)).head_class is SimCCHead
    assert sum(1 for m in create_model("litehrnet_30").backbone.modules() if isinstance(m, LiteHRModule)) == 14


def test_cross_resolution_weighting_equals_the_official_adaptive_form():
    """Fixed-window pooling / integer up-sampling (ONNX-exportable) == adaptive pool / size-based resize."""
    import torch.nn.functional as F

    from slimpose.models.litehrnet import CrossResolutionWeighting

    torch.manual_seed(0)
    crw = CrossResolutionWeighting([8, 16, 32], ratio=8).eval()
    xs = [torch.randn(2, 8, 16, 12), torch.randn(2, 16, 8, 6), torch.randn(2, 32, 4, 3)]
    with torch.no_grad():
        got = crw(xs)
        mini = xs[-1].shape[-2:]
        pooled = [F.adaptive_avg_pool2d(s, mini) for s in xs[:-1]] + [xs[-1]]
        w = crw.conv2(crw.conv1(torch.cat(pooled, dim=1)))
        ref = [s * F.interpolate(a, size=s.shape[-2:], mode="nearest")
               for s, a in zip(xs, torch.split(w, crw.channels, dim=1))]
    for g, r in zip(got, ref):
        assert torch.allclose(g, r, atol=1e-6)
