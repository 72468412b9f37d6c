"""Building blocks shared by every CNN in slimpose: convolutions, residual blocks, deconv head, init.

Attribute names follow torchvision / the official HRNet code (``conv1, bn1, conv2, bn2, conv3, bn3,
downsample``) so that official state dicts load without renaming.
"""

from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM = 0.1  # official HRNet BN_MOMENTUM (the PyTorch default as well)


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution, padding 1, no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution, no bias."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm2d with the official HRNet momentum."""
    return nn.BatchNorm2d(channels, momentum=BN_MOMENTUM)


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs), He et al. CVPR 2016; HRNet branch block."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = batch_norm(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = batch_norm(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """ResNet bottleneck (1x1 -> 3x3 -> 1x1, expansion 4) with the stride on the 3x3 conv.

    This is the torchvision "v1.5" / mmpose ``style='pytorch'`` / official HRNet layout.
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv1x1(inplanes, planes)
        self.bn1 = batch_norm(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = batch_norm(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = batch_norm(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


ResBlock = type[BasicBlock] | type[Bottleneck]


def make_res_layer(
    block: ResBlock, inplanes: int, planes: int, num_blocks: int, stride: int = 1
) -> nn.Sequential:
    """``num_blocks`` residual blocks; the first gets ``downsample = Sequential(conv1x1, BN)`` when needed.

    Same construction as torchvision ``_make_layer`` and official HRNet ``_make_layer``.
    """
    if num_blocks < 1:
        raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_channels:
        downsample = nn.Sequential(conv1x1(inplanes, out_channels, stride), batch_norm(out_channels))
    layers: list[nn.Module] = [block(inplanes, planes, stride, downsample)]
    layers += [block(out_channels, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


def _deconv_padding(kernel_size: int) -> tuple[int, int]:
    """(padding, output_padding) giving an exact x2 upsampling (mmpose ``_get_deconv_cfg``)."""
    if kernel_size == 4:
        return 1, 0
    if kernel_size == 3:
        return 1, 1
    if kernel_size == 2:
        return 0, 0
    raise ValueError(f"deconv kernel size must be 2, 3 or 4, got {kernel_size}")


class DeconvHead(nn.Module):
    """Top-down heatmap output layers: ``num_deconv_layers`` x (ConvTranspose2d s2 + BN + ReLU), then a 1x1 conv.

    SimpleBaseline (Xiao et al. ECCV 2018) uses 3 deconvs of 256 channels; HRNet uses none.
    Key names follow mmpose 0.x ``TopdownHeatmapSimpleHead``: ``deconv_layers.{0,1,3,4,6,7}``,
    ``final_layer``.
    """

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        num_deconv_layers: int = 0,
        deconv_channels: int = 256,
        deconv_kernel: int = 4,
    ):
        super().__init__()
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
        self.in_channels = in_channels
        self.num_keypoints = num_keypoints
        self.upsample_factor = 2**num_deconv_layers
        if num_deconv_layers > 0:
            padding, output_padding = _deconv_padding(deconv_kernel)
            layers: list[nn.Module] = []
            channels = in_channels
            for _ in range(num_deconv_layers):
                layers += [
                    nn.ConvTranspose2d(
                        channels,
                        deconv_channels,
                        kernel_size=deconv_kernel,
                        stride=2,
                        padding=padding,
                        output_padding=output_padding,
                        bias=False,
                    ),
                    batch_norm(deconv_channels),
                    nn.ReLU(inplace=True),
                ]
                channels = deconv_channels
            self.deconv_layers: nn.Module = nn.Sequential(*layers)
        else:
            self.deconv_layers = nn.Identity()
            channels = in_channels
        self.final_layer = nn.Conv2d(channels, num_keypoints, kernel_size=1, stride=1, padding=0, bias=True)
        self.init_weights()

    def init_weights(self) -> None:
        """mmpose / official init: deconv normal(0.001), BN (1, 0), final conv normal(0.001) + zero bias."""
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_layer(self.deconv_layers(x))


def init_normal_(module: nn.Module, std: float = 0.001) -> None:
    """Official HRNet init: every conv / deconv weight ~ N(0, std), biases 0, BN weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def init_kaiming_(module: nn.Module) -> None:
    """torchvision ResNet init: conv kaiming_normal(fan_out, relu), BN weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def check_input_divisible(x: torch.Tensor, multiple: int, model_name: str) -> None:
    """Raise a clear error when the input height/width is not a multiple of the model's total stride.

    Skipped while tracing/compiling (shapes are then fixed by the caller).
    """
    if torch.jit.is_tracing() or torch.compiler.is_compiling():
        return
    if x.dim() != 4:
        raise ValueError(f"{model_name} expects images of shape (B, C, H, W), got {tuple(x.shape)}")
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if h % multiple or w % multiple:
        raise ValueError(
            f"{model_name} needs input height and width divisible by {multiple}, got (H, W) = ({h}, {w})"
        )
