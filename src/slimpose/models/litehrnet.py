"""Lite-HRNet (Yu et al., "Lite-HRNet: A Lightweight High-Resolution Network", CVPR 2021).

Re-implemented from the official code (HRNet/Lite-HRNet ``models/backbones/litehrnet.py``, identical to
MMPose's ``mmpose/models/backbones/litehrnet.py``): a ShuffleNetV2-style stem, three stages of
``LiteHRModule`` (two conditional channel weighting blocks, then the multi-resolution fusion) and the
``IterativeHead``. Attribute names follow the official key layout, so an MMPose 0.x checkpoint
(``backbone.stem.*``, ``backbone.transition{i}.*``, ``backbone.stage{i}.*``, ``backbone.head_layer.*``,
``keypoint_head.final_layer.*``) loads strictly; mmcv ``ConvModule`` keys are ``{conv,bn}.*`` and
``DepthwiseSeparableConvModule`` keys ``{depthwise_conv,pointwise_conv}.{conv,bn}.*``.

Only the ``LITE`` module type is built (the paper's Lite-HRNet-18/30; the "naive" ablation variants are not).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.models._factory import pop_backbone
from slimpose.models.layers import batch_norm, check_input_divisible, init_normal_
from slimpose.models.hrnet import HRNetPose
from slimpose.models.simcc import SimCCPose

# (num_modules per stage, widths per stage) of the two published sizes (official configs)
LITEHRNET_CHANNELS = ((40, 80), (40, 80, 160), (40, 80, 160, 320))
LITEHRNET_18_MODULES = (2, 4, 2)
LITEHRNET_30_MODULES = (3, 8, 3)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """ShuffleNet channel shuffle: channel ``g * n + k`` of the input goes to position ``k * groups + g``.

    Written with ``reshape`` on the sizes read from ``x.shape`` and no tensor-shape assertions (the mmcv
    version asserts, which breaks ``torch.jit.trace`` / ONNX export: HRNet/Lite-HRNet#23); the channel count
    must be divisible by ``groups`` (every caller here uses even widths and ``groups=2``).
    """
    b, c, h, w = x.shape
    return x.reshape(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class ConvModule(nn.Module):
    """mmcv ``ConvModule``: ``conv`` (padding k // 2, bias only without a norm) -> ``bn`` -> ``activate``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
                 groups: int = 1, norm: bool = True, act: nn.Module | None = None) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups,
                              bias=not norm)
        self.bn = batch_norm(out_channels) if norm else None
        self.activate = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        if self.activate is not None:
            x = self.activate(x)
        return x


class DepthwiseSeparableConvModule(nn.Module):
    """mmcv ``DepthwiseSeparableConvModule`` as the IterativeHead uses it: ``depthwise_conv`` (dw 3x3 + BN,
    no activation) -> ``pointwise_conv`` (1x1 + BN + ReLU)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.depthwise_conv = ConvModule(in_channels, in_channels, 3, groups=in_channels)
        self.pointwise_conv = ConvModule(in_channels, out_channels, 1, act=nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise_conv(self.depthwise_conv(x))


class Stem(nn.Module):
    """Official ``Stem``: conv3x3 s2 + BN + ReLU, then a ShuffleNetV2 down-sampling unit (x2 -> stride 4).

    The channels are split in halves: ``branch1`` (dw3x3 s2 + BN, 1x1 + BN + ReLU) on the first,
    ``expand_conv`` (1x1, ``expand_ratio``) -> ``depthwise_conv`` (dw3x3 s2 + BN) -> ``linear_conv``
    (1x1 + BN + ReLU) on the second; concatenated and channel-shuffled with 2 groups.
    """

    def __init__(self, in_channels: int = 3, stem_channels: int = 32, out_channels: int = 32,
                 expand_ratio: float = 1) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.conv1 = ConvModule(in_channels, stem_channels, 3, stride=2, act=nn.ReLU(inplace=True))
        mid_channels = int(round(stem_channels * expand_ratio))
        branch_channels = stem_channels // 2
        if stem_channels == out_channels:
            inc_channels = out_channels - branch_channels
            linear_out = branch_channels
        else:
            inc_channels = out_channels - stem_channels
            linear_out = stem_channels
        self.branch1 = nn.Sequential(
            ConvModule(branch_channels, branch_channels, 3, stride=2, groups=branch_channels),
            ConvModule(branch_channels, inc_channels, 1, act=nn.ReLU(inplace=True)),
        )
        self.expand_conv = ConvModule(branch_channels, mid_channels, 1, act=nn.ReLU(inplace=True))
        self.depthwise_conv = ConvModule(mid_channels, mid_channels, 3, stride=2, groups=mid_channels)
        self.linear_conv = ConvModule(mid_channels, linear_out, 1, act=nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        x1, x2 = x.chunk(2, dim=1)
        x2 = self.linear_conv(self.depthwise_conv(self.expand_conv(x2)))
        return channel_shuffle(torch.cat((self.branch1(x1), x2), dim=1), 2)


class SpatialWeighting(nn.Module):
    """Per-branch channel attention (SE-like): global average pool -> 1x1 C -> C/ratio + ReLU -> 1x1 -> C
    + Sigmoid, both convs with bias and without BN (official ``SpatialWeighting``, ratio 4)."""

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        hidden = int(channels / ratio)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = ConvModule(channels, hidden, 1, norm=False, act=nn.ReLU(inplace=True))
        self.conv2 = ConvModule(hidden, channels, 1, norm=False, act=nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.conv2(self.conv1(self.global_avgpool(x)))


class CrossResolutionWeighting(nn.Module):
    """Cross-resolution channel weights: every branch average-pooled to the smallest resolution,
    concatenated, 1x1 (sum C -> sum C / ratio) + BN + ReLU, 1x1 (-> sum C) + BN + Sigmoid, split per branch,
    nearest-upsampled back and multiplied onto each branch (official ``CrossResolutionWeighting``)."""

    def __init__(self, channels: Sequence[int], ratio: int = 8) -> None:
        super().__init__()
        self.channels = [int(c) for c in channels]
        total = sum(self.channels)
        self.conv1 = ConvModule(total, int(total / ratio), 1, act=nn.ReLU(inplace=True))
        self.conv2 = ConvModule(int(total / ratio), total, 1, act=nn.Sigmoid())

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        # branch i is exactly 2 ** (n - 1 - i) times the smallest (inputs are divisible by 32), so a fixed
        # window and an integer up-sampling factor are the official adaptive pool and size-based nearest
        # resize; unlike them they export to ONNX (open-mmlab/mmpose#1043: "onnx::Gather ... not constant")
        n = len(xs)
        factors = [2 ** (n - 1 - i) for i in range(n)]
        pooled = [F.avg_pool2d(s, f) if f > 1 else s for s, f in zip(xs, factors)]
        weights = self.conv2(self.conv1(torch.cat(pooled, dim=1)))
        return [s * (F.interpolate(a, scale_factor=f, mode="nearest") if f > 1 else a)
                for s, a, f in zip(xs, torch.split(weights, self.channels, dim=1), factors)]


class ConditionalChannelWeighting(nn.Module):
    """The Lite-HRNet block: each branch is split in halves; the second half goes through cross-resolution
    weighting, a per-branch dw3x3 + BN and spatial weighting; halves re-joined and channel-shuffled (2)."""

    def __init__(self, in_channels: Sequence[int], stride: int = 1, reduce_ratio: int = 8) -> None:
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"ConditionalChannelWeighting stride must be 1 or 2, got {stride}")
        branch_channels = [c // 2 for c in in_channels]
        self.cross_resolution_weighting = CrossResolutionWeighting(branch_channels, ratio=reduce_ratio)
        self.depthwise_convs = nn.ModuleList(
            ConvModule(c, c, 3, stride=stride, groups=c) for c in branch_channels)
        self.spatial_weighting = nn.ModuleList(SpatialWeighting(c, ratio=4) for c in branch_channels)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        halves = [s.chunk(2, dim=1) for s in xs]
        x1 = [h[0] for h in halves]
        x2 = self.cross_resolution_weighting([h[1] for h in halves])
        x2 = [dw(s) for s, dw in zip(x2, self.depthwise_convs)]
        x2 = [sw(s) for s, sw in zip(x2, self.spatial_weighting)]
        return [channel_shuffle(torch.cat([a, b], dim=1), 2) for a, b in zip(x1, x2)]


def _dw_pw(in_channels: int, out_channels: int, stride: int, relu: bool) -> nn.Sequential:
    """dw3x3 (stride) + BN + 1x1 + BN (+ ReLU): the official transition / fusion down-sampling step."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels, bias=False),
        batch_norm(in_channels),
        nn.Conv2d(in_channels, out_channels, 1, bias=False),
        batch_norm(out_channels),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class LiteHRModule(nn.Module):
    """``num_blocks`` conditional channel weighting blocks (``layers``) followed by the fusion
    (``fuse_layers``, official ``LiteHRModule`` of type ``LITE``).

    Fusion of branch j into output i: j > i: 1x1 + BN + nearest upsample x2^(j-i); j < i: (i - j) steps of
    dw3x3 s2 + BN + 1x1 + BN, ReLU after every step but the last; sum, then ReLU. The official sum has two
    quirks, reproduced in ``forward`` (see there).
    """

    def __init__(self, num_branches: int, num_blocks: int, in_channels: Sequence[int], reduce_ratio: int = 8,
                 multiscale_output: bool = True, with_fuse: bool = True) -> None:
        super().__init__()
        if num_branches != len(in_channels):
            raise ValueError(f"LiteHRModule: num_branches {num_branches} != len(in_channels) {len(in_channels)}")
        self.in_channels = list(in_channels)
        self.num_branches = num_branches
        self.multiscale_output = multiscale_output
        self.with_fuse = with_fuse
        self.layers = nn.Sequential(*(ConditionalChannelWeighting(self.in_channels, 1, reduce_ratio)
                                      for _ in range(num_blocks)))
        if with_fuse and num_branches > 1:
            self.fuse_layers = self._make_fuse_layers()
            self.relu = nn.ReLU()
        else:
            self.fuse_layers = None

    def _make_fuse_layers(self) -> nn.ModuleList:
        c = self.in_channels
        rows = nn.ModuleList()
        for i in range(self.num_branches if self.multiscale_output else 1):
            row = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:
                    row.append(nn.Sequential(nn.Conv2d(c[j], c[i], 1, bias=False), batch_norm(c[i]),
                                             nn.Upsample(scale_factor=2 ** (j - i), mode="nearest")))
                elif j == i:
                    row.append(None)
                else:
                    row.append(nn.Sequential(*(
                        _dw_pw(c[j], c[i], 2, relu=False) if k == i - j - 1 else _dw_pw(c[j], c[j], 2, relu=True)
                        for k in range(i - j))))
            rows.append(row)
        return rows

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = self.layers(xs)
        if self.fuse_layers is None:
            return out if self.multiscale_output else [out[0]]
        # The official loop is ``y = out[0] if i == 0 else fuse[i][0](out[0])`` followed by ``for j in
        # range(n): y += out[j] if i == j else fuse[i][j](out[j])``, i.e. it starts from the branch-0 term and
        # then adds it again at j = 0. Two consequences, both needed to reproduce official weights' outputs
        # (MMPose keeps it: "`y = 0` will lead to decreased accuracy (0.5~1 mAP)"):
        # 1. the branch-0 term counts twice in every output (2 x0 for i = 0, 2 fuse[i][0](.) for i > 0; the
        #    fuse layer really is run twice, which the paper's FLOPs and BN running statistics include);
        # 2. for i = 0, ``y`` *is* ``out[0]``, so the in-place ``+=`` overwrites ``out[0]`` with the pre-ReLU
        #    sum of output 0; the outputs i > 0 therefore fuse that sum, not the block output x0.
        y0 = out[0] + out[0]
        for j in range(1, self.num_branches):
            y0 = y0 + self.fuse_layers[0][j](out[j])
        fused = [self.relu(y0)]
        for i in range(1, len(self.fuse_layers)):
            y = self.fuse_layers[i][0](y0) + self.fuse_layers[i][0](y0)
            for j in range(1, self.num_branches):
                y = y + (out[j] if i == j else self.fuse_layers[i][j](out[j]))
            fused.append(self.relu(y))
        return fused


def _make_transition(pre: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
    """Official Lite-HRNet transition: dw3x3 + BN + 1x1 + BN + ReLU where a branch changes width (``None``
    where it does not); a new branch is a chain of dw3x3 s2 + BN + 1x1 + BN + ReLU steps from the
    lowest-resolution previous branch."""
    layers = nn.ModuleList()
    for i, c in enumerate(cur):
        if i < len(pre):
            layers.append(_dw_pw(pre[i], c, 1, relu=True) if c != pre[i] else None)
        else:
            steps = i + 1 - len(pre)
            layers.append(nn.Sequential(*(
                _dw_pw(pre[-1], c if k == steps - 1 else pre[-1], 2, relu=True) for k in range(steps))))
    return layers


class IterativeHead(nn.Module):
    """Official ``IterativeHead``: from the lowest resolution up, each branch adds the bilinearly
    (``align_corners=True``) upsampled previous result, then a depthwise-separable conv to the next width
    (320 -> 160 -> 80 -> 40 -> 40). Returns the outputs highest resolution first."""

    def __init__(self, in_channels: Sequence[int]) -> None:
        super().__init__()
        rev = list(in_channels)[::-1]
        self.projects = nn.ModuleList(
            DepthwiseSeparableConvModule(rev[i], rev[i + 1] if i < len(rev) - 1 else rev[i])
            for i in range(len(rev)))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        ys: list[torch.Tensor] = []
        last = None
        for i, s in enumerate(xs[::-1]):
            if last is not None:
                s = s + F.interpolate(last, size=s.shape[-2:], mode="bilinear", align_corners=True)
            last = self.projects[i](s)
            ys.append(last)
        return ys[::-1]


class LiteHRNet(nn.Module):
    """Lite-HRNet backbone: images (B, 3, H, W) -> the highest-resolution map (B, 40, H/4, W/4).

    ``forward`` returns branch 0 after the ``IterativeHead`` (``head_layer``; without it, ``with_head=False``,
    branch 0 of the last stage). ``forward_stages`` returns, for distillation, the branch-0 output of each
    of the 3 stages (after the stage's last ``LiteHRModule``, i.e. after its fusion and ReLU, before the next
    transition): three (B, 40, H/4, W/4) tensors. H and W must be divisible by 32 (the 4th branch is at
    stride 32). Init as the official ``init_weights``: conv weights N(0, 0.001), conv biases 0, BN (1, 0).
    """

    stride = 4

    def __init__(self, num_modules: Sequence[int] = LITEHRNET_18_MODULES,
                 num_channels: Sequence[Sequence[int]] = LITEHRNET_CHANNELS, num_blocks: int = 2,
                 reduce_ratio: int = 8, stem_channels: int = 32, stem_out_channels: int = 32,
                 expand_ratio: float = 1, in_channels: int = 3, with_head: bool = True) -> None:
        super().__init__()
        if len(num_modules) != len(num_channels):
            raise ValueError(f"LiteHRNet: {len(num_modules)} stages in num_modules, {len(num_channels)} in "
                             "num_channels")
        self.num_stages = len(num_modules)
        self.num_branches = [len(c) for c in num_channels]
        self.out_channels = int(num_channels[-1][0])
        self.input_multiple = self.stride * 2 ** (self.num_branches[-1] - 1)
        # what PoseNet.feature_stages taps: each stage's output list, counted by its branch 0
        self.stage_names = tuple(f"stage{s}" for s in range(self.num_stages))
        self.stem = Stem(in_channels, stem_channels, stem_out_channels, expand_ratio)
        pre = [stem_out_channels]
        for s in range(self.num_stages):
            cur = [int(c) for c in num_channels[s]]
            setattr(self, f"transition{s}", _make_transition(pre, cur))
            setattr(self, f"stage{s}", nn.Sequential(*(
                LiteHRModule(len(cur), num_blocks, cur, reduce_ratio) for _ in range(num_modules[s]))))
            pre = cur
        self.with_head = with_head
        if with_head:
            self.head_layer = IterativeHead(pre)
        init_normal_(self)

    def _stages(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        check_input_divisible(x, self.input_multiple, "LiteHRNet")
        ys = [self.stem(x)]
        outs = []
        for s in range(self.num_stages):
            transition = getattr(self, f"transition{s}")
            xs = [ys[j] if layer is None else layer(ys[j] if j < len(ys) else ys[-1])
                  for j, layer in enumerate(transition)]
            ys = getattr(self, f"stage{s}")(xs)
            outs.append(ys)
        return outs

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Branch 0 (highest resolution, 40 ch, stride 4) of each stage's output, stage 0 first."""
        return [ys[0] for ys in self._stages(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ys = self._stages(x)[-1]
        if self.with_head:
            ys = self.head_layer(ys)
        return ys[0]


class LiteHRNetPose(HRNetPose):
    """Top-down heatmap Lite-HRNet: backbone (B, 40, H/4, W/4) -> 1x1 conv ``keypoint_head.final_layer``
    (40 -> K) -> heatmaps (B, K, H/4, W/4): the official ``TopDownSimpleHead`` without deconvolutions, the
    same top-down structure as ``HRNetPose`` (keys ``backbone.*`` and ``keypoint_head.final_layer.*``)."""


def _check_size(input_size: tuple[int, int], name: str) -> tuple[int, int]:
    w, h = int(input_size[0]), int(input_size[1])
    if w % 32 or h % 32:
        raise ValueError(f"{name}: input_size (w, h) = {(w, h)} must be divisible by 32")
    return w, h


def _heatmap(name: str, modules: tuple[int, ...], num_keypoints: int, input_size: tuple[int, int],
             overrides: dict) -> LiteHRNetPose:
    size = _check_size(input_size, name)
    overrides = dict(overrides)
    overrides.setdefault("num_modules", modules)
    return LiteHRNetPose(pop_backbone(overrides, lambda: LiteHRNet(**overrides)), num_keypoints, size)


_SIMCC_KEYS = ("split_ratio", "num_deconv_layers", "deconv_channels", "deconv_kernel")


def _simcc(name: str, modules: tuple[int, ...], num_keypoints: int, input_size: tuple[int, int],
           overrides: dict) -> SimCCPose:
    size = _check_size(input_size, name)
    overrides = dict(overrides)
    head_kwargs = {"split_ratio": 2.0, "num_deconv_layers": 0}
    head_kwargs.update({k: overrides.pop(k) for k in _SIMCC_KEYS if k in overrides})
    overrides.setdefault("num_modules", modules)
    backbone = pop_backbone(overrides, lambda: LiteHRNet(**overrides))
    return SimCCPose(backbone, num_keypoints, size, **head_kwargs)


def litehrnet_18(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> LiteHRNetPose:
    """Lite-HRNet-18 heatmap model (official ``litehrnet_18_coco_256x192``: modules (2, 4, 2)): 1,130,769
    params (17 joints). Conv MACs 242.3M at 256x192 (322.9M at 256x256, 16 joints); the paper/README's
    205.2M / 273.4M "FLOPs" are torchstat's count, which runs each module's cost once (the fuse layers the
    official forward calls twice count once), adds BN/ReLU/pool elements and divides by 2**20 (COCO val
    64.8 AP). ``overrides`` go to ``LiteHRNet`` (or ``backbone=`` replaces it)."""
    return _heatmap("litehrnet_18", LITEHRNET_18_MODULES, num_keypoints, input_size, overrides)


def litehrnet_30(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> LiteHRNetPose:
    """Lite-HRNet-30 heatmap model (modules (3, 8, 3)): 1,763,717 params (17 joints). Conv MACs 386.1M at
    256x192 (514.6M at 256x256); published 319.2M / 425.3M in the torchstat convention (see
    ``litehrnet_18``); COCO val 67.2 AP."""
    return _heatmap("litehrnet_30", LITEHRNET_30_MODULES, num_keypoints, input_size, overrides)


def litehrnet_18_simcc(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256),
                       **overrides) -> SimCCPose:
    """Lite-HRNet-18 with MMPose's SimCC output layers without deconvolutions (1x1 conv 40 -> K on the
    stride-4 map, flattened, ``Linear(H/4 * W/4, 2W)`` and ``Linear(H/4 * W/4, 2H)``, split ratio 2).

    There is no official Lite-HRNet SimCC config; this is the third-party recipe (``SimCCHead(in_channels=40,
    in_featuremap_size=input // 4, deconv_out_channels=None)``). Faithful to it, the two linear layers on the
    flattened 64x48 map hold 2.75M parameters at 256x192 (4.20M at 256x256): the model is ~3.4x (~4.7x)
    the size of the 1.13M backbone. ``overrides``: ``SimCCPose`` keywords (``split_ratio``,
    ``num_deconv_layers``, ...), ``backbone=``, or ``LiteHRNet`` keywords.
    """
    return _simcc("litehrnet_18_simcc", LITEHRNET_18_MODULES, num_keypoints, input_size, overrides)


def litehrnet_30_simcc(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256),
                       **overrides) -> SimCCPose:
    """Lite-HRNet-30 with the same SimCC output layers as ``litehrnet_18_simcc`` (2.75M head parameters at
    256x192 on a 1.76M backbone)."""
    return _simcc("litehrnet_30_simcc", LITEHRNET_30_MODULES, num_keypoints, input_size, overrides)
