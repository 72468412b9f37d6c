"""HRNet (Sun et al., CVPR 2019) backbone, its 3-stage truncation, and the HRNet heatmap models.

Module and attribute names follow the official code (deep-high-resolution-net ``pose_hrnet.py``) and
mmpose 0.x ``HRNet``: ``conv1, bn1, conv2, bn2, layer1, transition1, stage2, transition2, stage3,
transition3, stage4``; inside a stage ``stage{s}.{m}.branches.{b}.{k}.*`` and
``stage{s}.{m}.fuse_layers.{i}.{j}.*``.
The last module of the last built stage fuses into the highest-resolution branch only
(``multiscale_output=False``), as in the official 4-stage pose HRNet and DistilPose/SDPose ``HRNet_3stage``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from slimpose.heads.heatmap import HeatmapHead
from slimpose.models.base import PoseNet
from slimpose.models.layers import (
    BasicBlock,
    Bottleneck,
    DeconvHead,
    ResBlock,
    batch_norm,
    check_input_divisible,
    conv1x1,
    conv3x3,
    init_normal_,
    make_res_layer,
)


@dataclass(frozen=True)
class HRStageConfig:
    """One HRNet stage: ``num_modules`` HRModules of ``num_branches`` branches of ``num_blocks`` blocks."""

    num_modules: int
    num_channels: tuple[int, ...]
    num_blocks: int = 4
    block: ResBlock = BasicBlock

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)


def hrnet_stage_configs(width: int) -> tuple[HRStageConfig, HRStageConfig, HRStageConfig]:
    """Stages 2-4 of HRNet-W{width}: 1, 4 and 3 modules with widths (w, 2w), (w, 2w, 4w), (w, 2w, 4w, 8w)."""
    return (
        HRStageConfig(1, (width, 2 * width)),
        HRStageConfig(4, (width, 2 * width, 4 * width)),
        HRStageConfig(3, (width, 2 * width, 4 * width, 8 * width)),
    )


class HRModule(nn.Module):
    """Parallel multi-resolution branches followed by the exchange (fusion) unit.

    Fusion of branch j into output i: j > i conv1x1 + BN + nearest upsample x2^(j-i); j < i a chain of
    (i - j) strided conv3x3 + BN (+ ReLU except the last); j == i identity. Sum, then ReLU.
    """

    def __init__(
        self,
        in_channels: list[int],
        num_channels: tuple[int, ...],
        num_blocks: int,
        block: ResBlock = BasicBlock,
        multiscale_output: bool = True,
    ):
        super().__init__()
        if len(in_channels) != len(num_channels):
            raise ValueError(f"HRModule: {len(in_channels)} input branches but {len(num_channels)} widths")
        self.num_branches = len(num_channels)
        self.multiscale_output = multiscale_output
        self.branches = nn.ModuleList(
            make_res_layer(block, in_channels[b], num_channels[b], num_blocks)
            for b in range(self.num_branches)
        )
        self.out_channels = [c * block.expansion for c in num_channels]
        self.fuse_layers = self._make_fuse_layers() if self.num_branches > 1 else None
        self.relu = nn.ReLU(inplace=True)

    def _make_fuse_layers(self) -> nn.ModuleList:
        channels = self.out_channels
        num_out = self.num_branches if self.multiscale_output else 1
        fuse_layers = nn.ModuleList()
        for i in range(num_out):
            row = nn.ModuleList()
            for j in range(self.num_branches):
                if j > i:
                    row.append(
                        nn.Sequential(
                            conv1x1(channels[j], channels[i]),
                            batch_norm(channels[i]),
                            nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                        )
                    )
                elif j == i:
                    row.append(None)
                else:
                    chain: list[nn.Module] = []
                    for k in range(i - j):
                        if k == i - j - 1:
                            chain.append(
                                nn.Sequential(conv3x3(channels[j], channels[i], 2), batch_norm(channels[i]))
                            )
                        else:
                            chain.append(
                                nn.Sequential(
                                    conv3x3(channels[j], channels[j], 2),
                                    batch_norm(channels[j]),
                                    nn.ReLU(inplace=True),
                                )
                            )
                    row.append(nn.Sequential(*chain))
            fuse_layers.append(row)
        return fuse_layers

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        if self.fuse_layers is None:
            return xs
        out = []
        for i, row in enumerate(self.fuse_layers):
            y = xs[i]
            for j, fuse in enumerate(row):
                if j != i:
                    y = y + fuse(xs[j])
            out.append(self.relu(y))
        return out


def _make_transition(pre_channels: list[int], cur_channels: list[int]) -> nn.ModuleList:
    """Official transition layer: conv3x3 + BN + ReLU where widths change; new branches are strided
    conv3x3 chains from the lowest-resolution previous branch; ``None`` where nothing changes."""
    layers = nn.ModuleList()
    num_pre = len(pre_channels)
    for i, cur in enumerate(cur_channels):
        if i < num_pre:
            if cur != pre_channels[i]:
                layers.append(
                    nn.Sequential(conv3x3(pre_channels[i], cur), batch_norm(cur), nn.ReLU(inplace=True))
                )
            else:
                layers.append(None)
        else:
            chain: list[nn.Module] = []
            for k in range(i + 1 - num_pre):
                c_in = pre_channels[-1]
                c_out = cur if k == i - num_pre else c_in
                chain.append(nn.Sequential(conv3x3(c_in, c_out, 2), batch_norm(c_out), nn.ReLU(inplace=True)))
            layers.append(nn.Sequential(*chain))
    return layers


class HRNet(nn.Module):
    """HRNet-W{width} pose backbone returning the highest-resolution branch (B, width, H/4, W/4).

    ``num_stages=4`` is the full network (official pose_hrnet / mmpose ``HRNet``); ``num_stages=3`` is the
    truncation of TokenPose-B/L (``pre_feature``), DistilPose-L and SDPose-B (``HRNet_3stage``): no
    ``transition3``/``stage4`` and stage3's last module fuses into branch 0 only (``stage3_multiscale=False``,
    the DistilPose/SDPose default; set True to build the extra fuse layers some checkpoints carry).
    """

    stride = 4

    def __init__(
        self,
        width: int = 32,
        num_stages: int = 4,
        in_channels: int = 3,
        stage3_multiscale: bool = False,
    ):
        super().__init__()
        if num_stages not in (3, 4):
            raise ValueError(f"HRNet num_stages must be 3 or 4, got {num_stages}")
        if width < 1:
            raise ValueError(f"HRNet width must be positive, got {width}")
        self.width = width
        self.num_stages = num_stages
        self.out_channels = width
        # Inputs must be divisible by the stride of the lowest-resolution branch.
        self.input_multiple = 4 * 2 ** (num_stages - 1)
        self.stage_names = ("stage2", "stage3", "stage4")[: num_stages - 1]  # multi-branch stages

        self.conv1 = conv3x3(in_channels, 64, stride=2)
        self.bn1 = batch_norm(64)
        self.conv2 = conv3x3(64, 64, stride=2)
        self.bn2 = batch_norm(64)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_res_layer(Bottleneck, 64, 64, 4)

        cfg2, cfg3, cfg4 = hrnet_stage_configs(width)
        self.stage_configs = (cfg2, cfg3, cfg4)[: num_stages - 1]
        pre = [64 * Bottleneck.expansion]
        self.transition1 = _make_transition(pre, list(cfg2.num_channels))
        self.stage2, pre = self._make_stage(cfg2, list(cfg2.num_channels), multiscale_output=True)
        self.transition2 = _make_transition(pre, list(cfg3.num_channels))
        last3 = num_stages == 3
        self.stage3, pre = self._make_stage(
            cfg3, list(cfg3.num_channels), multiscale_output=(not last3) or stage3_multiscale
        )
        if num_stages == 4:
            self.transition3 = _make_transition(pre, list(cfg4.num_channels))
            self.stage4, pre = self._make_stage(cfg4, list(cfg4.num_channels), multiscale_output=False)
        init_normal_(self)

    @staticmethod
    def _make_stage(
        cfg: HRStageConfig, in_channels: list[int], multiscale_output: bool
    ) -> tuple[nn.Sequential, list[int]]:
        modules = []
        for m in range(cfg.num_modules):
            last = m == cfg.num_modules - 1
            module = HRModule(
                in_channels, cfg.num_channels, cfg.num_blocks, cfg.block, multiscale_output or not last
            )
            modules.append(module)
            in_channels = module.out_channels
        return nn.Sequential(*modules), in_channels

    @staticmethod
    def _apply_transition(transition: nn.ModuleList, ys: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = []
        for i, layer in enumerate(transition):
            if layer is None:
                xs.append(ys[i])
            else:
                xs.append(layer(ys[i] if i < len(ys) else ys[-1]))
        return xs

    def forward_branches(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All outputs of the last built stage (one tensor unless the last module is multi-scale)."""
        check_input_divisible(x, self.input_multiple, f"HRNet-W{self.width} ({self.num_stages} stages)")
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        x = self.layer1(x)
        ys = self.stage2(self._apply_transition(self.transition1, [x]))
        ys = self.stage3(self._apply_transition(self.transition2, ys))
        if self.num_stages == 4:
            ys = self.stage4(self._apply_transition(self.transition3, ys))
        return ys

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_branches(x)[0]


def hrnet_w32_backbone(num_stages: int = 4, **kwargs) -> HRNet:
    """HRNet-W32 backbone (4 stages: the full net; 3 stages: TokenPose-B / SDPose-B feature extractor)."""
    return HRNet(width=32, num_stages=num_stages, **kwargs)


def hrnet_w48_backbone(num_stages: int = 4, **kwargs) -> HRNet:
    """HRNet-W48 backbone (4 stages: the full net; 3 stages: TokenPose-L / DistilPose-L feature extractor)."""
    return HRNet(width=48, num_stages=num_stages, **kwargs)


class HRNetPose(PoseNet):
    """Top-down heatmap HRNet: backbone highest-resolution branch + conv1x1 ``final_layer`` (width -> K).

    State-dict keys follow mmpose 0.x ``TopDown``: ``backbone.*`` and ``keypoint_head.final_layer.*``
    (``convert_official_hrnet_state_dict`` maps the deep-high-resolution-net layout onto these).
    """

    head_class = HeatmapHead

    def __init__(self, backbone: nn.Module, num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256)):
        super().__init__()
        self.backbone = backbone
        self.keypoint_head = DeconvHead(backbone.out_channels, num_keypoints, num_deconv_layers=0)
        self.num_keypoints = num_keypoints
        self.output_stride = backbone.stride
        self.input_size = tuple(input_size)
        self.heatmap_size = (input_size[0] // self.output_stride, input_size[1] // self.output_stride)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> the backbone's stride-4 map (HRNet: its highest-resolution branch)."""
        return self.backbone(images)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Features -> heatmaps (B, K, H/4, W/4)."""
        return self.keypoint_head(features)


def convert_official_hrnet_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename an official deep-high-resolution-net pose HRNet state dict (``conv1.*``, ``stage4.*``,
    ``final_layer.*`` and, in the SimDR HRNets of leeyegy/SimCC, ``mlp_head_{x,y}.*``; optionally
    ``module.``-prefixed) to the ``HRNetPose`` layout (the converter then maps ``keypoint_head.*`` onto a
    SimCC model's ``head.*``). Keys already in the
    mmpose layout (``backbone.*`` / ``keypoint_head.*``) pass through unchanged."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        k = key[len("module.") :] if key.startswith("module.") else key
        if k.startswith(("backbone.", "keypoint_head.")):
            out[k] = value
        elif k.startswith(("final_layer.", "mlp_head_x.", "mlp_head_y.")):  # heatmap / SimDR (leeyegy/SimCC) heads
            out["keypoint_head." + k] = value
        else:
            out["backbone." + k] = value
    return out


def _check_input_size(input_size: tuple[int, int] | None, multiple: int, name: str) -> None:
    if input_size is None:
        return
    w, h = input_size
    if w % multiple or h % multiple:
        raise ValueError(f"{name}: input_size (w, h) = {tuple(input_size)} must be divisible by {multiple}")


def hrnet_w32(num_keypoints: int = 17, input_size: tuple[int, int] | None = None, **kwargs) -> HRNetPose:
    """HRNet-W32 heatmap model (Sun et al. 2019): 28.5M params; 7.1 GFLOPs in the paper, conv MACs
    7.65 G measured at 256x192 (mmpose reports 7.7 G).

    ``input_size`` (w, h) is validated and recorded (the network is fully convolutional); ``kwargs`` go to
    ``HRNet``.
    """
    _check_input_size(input_size, 32, "hrnet_w32")
    return HRNetPose(hrnet_w32_backbone(num_stages=4, **kwargs), num_keypoints, input_size or (192, 256))


def hrnet_w48(num_keypoints: int = 17, input_size: tuple[int, int] | None = None, **kwargs) -> HRNetPose:
    """HRNet-W48 heatmap model (Sun et al. 2019): 63.6M params; 14.6 GFLOPs in the paper, conv MACs
    15.69 G measured at 256x192."""
    _check_input_size(input_size, 32, "hrnet_w48")
    return HRNetPose(hrnet_w48_backbone(num_stages=4, **kwargs), num_keypoints, input_size or (192, 256))
