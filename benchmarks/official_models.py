"""The official DistilPose-S and SDPose-S-V1 definitions, written by us from the facts in
``../shared/reference/official_implementations.md`` (sections 1 and 2), for side-by-side speed ratios.

They are written the way the official code computes (mmpose 0.x ``TopDown`` + TokenPose ``tokenbase.py``):
``Residual(PreNorm(...))`` blocks, ``to_qkv`` chunked and rearranged per head, attention as two einsums and a
softmax, the patches made by an einops-style ``rearrange`` (a copy), unfused batch norm, and their state-dict
keys are the official ones (``backbone.*``, ``keypoint_head.tokenhead.*`` / ``keypoint_head.tokenpose.*``), so
an official file loads into them strictly. ``tests/benchmarks/test_inference_speed_bench.py`` checks that
they predict exactly what slimpose predicts from the converted weights.

Not imported by slimpose itself; only ``benchmarks/inference_speed.py`` and its test use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.models.transformer.blocks import sine_position_embedding

# ----------------------------------------------------------------------------------------------- StemNet


class OfficialBottleneck(nn.Module):
    """torchvision-style Bottleneck (``conv1/bn1/conv2/bn2/conv3/bn3/downsample``), expansion 4."""

    def __init__(self, inplanes: int, planes: int, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


class OfficialStemNet(nn.Module):
    """``distilpose/models/backbones/stemnet.py``: conv3x3 s2 + BN + ReLU twice, ``layer1`` = 4 Bottlenecks."""

    def __init__(self, blocks: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(64, 64, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        down = nn.Sequential(nn.Conv2d(64, 256, 1, bias=False), nn.BatchNorm2d(256))
        self.layer1 = nn.Sequential(OfficialBottleneck(64, 64, down),
                                    *[OfficialBottleneck(256, 64) for _ in range(blocks - 1)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.layer1(x)


# ----------------------------------------------------------------------------------------------- TokenPose layers


class Residual(nn.Module):
    def __init__(self, fn: nn.Module):
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x) + x


class PreNorm(nn.Module):
    def __init__(self, dim: int, fn: nn.Module):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.norm(x))


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.0), nn.Linear(hidden, dim),
                                 nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class OfficialAttention(nn.Module):
    """``to_qkv`` (no bias) chunked into q, k, v, ``b n (h d) -> b h n d``, two einsums and a softmax."""

    def __init__(self, dim: int, heads: int, scale_with_head: bool):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5 if scale_with_head else dim**-0.5
        self.to_qkv = nn.Linear(dim, dim * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        h = self.heads
        q, k, v = (t.reshape(b, n, h, -1).permute(0, 2, 1, 3) for t in self.to_qkv(x).chunk(3, dim=-1))
        dots = torch.einsum("bhid,bhjd->bhij", q, k) * self.scale
        out = torch.einsum("bhij,bhjd->bhid", dots.softmax(dim=-1), v)
        return self.to_out(out.permute(0, 2, 1, 3).reshape(b, n, -1))


class OfficialTransformer(nn.Module):
    """``layers.{i}.0`` = Residual(PreNorm(Attention)), ``layers.{i}.1`` = Residual(PreNorm(FeedForward));
    ``all_attn`` (``sine-full``) re-adds the position embedding to the visual tokens before layers > 0."""

    def __init__(self, dim: int, depth: int, heads: int, mlp_dim: int, num_keypoints: int, all_attn: bool,
                 scale_with_head: bool):
        super().__init__()
        self.layers = nn.ModuleList([
            nn.ModuleList([Residual(PreNorm(dim, OfficialAttention(dim, heads, scale_with_head))),
                           Residual(PreNorm(dim, FeedForward(dim, mlp_dim)))])
            for _ in range(depth)])
        self.all_attn = all_attn
        self.num_keypoints = num_keypoints

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        for idx, (attn, ff) in enumerate(self.layers):
            if idx > 0 and self.all_attn:
                x[:, self.num_keypoints:] += pos
            x = ff(attn(x))
        return x


class OfficialTokenBase(nn.Module):
    """``TokenPose_TB_base`` / ``DistilPose_base``: rearrange + ``patch_to_embedding``, ``keypoint_token``, the
    frozen ``pos_embedding``, the transformer, ``mlp_head`` on the keypoint tokens."""

    def __init__(self, mlp_head: nn.Module, transformer_name: str = "transformer", in_channels: int = 256,
                 feature_size: tuple[int, int] = (48, 64), patch: tuple[int, int] = (4, 3), num_keypoints: int = 17,
                 dim: int = 192, depth: int = 12, heads: int = 8, mlp_ratio: int = 3, scale_with_head: bool = True):
        super().__init__()
        fw, fh = feature_size
        self.patch = patch
        self.num_keypoints = num_keypoints
        gh, gw = fh // patch[0], fw // patch[1]
        # the frozen sine table (a constant, not timed; slimpose's function is checked against the official
        # layout's values by tests/test_convert.py)
        self.pos_embedding = nn.Parameter(sine_position_embedding(gh, gw, dim), requires_grad=False)
        self.patch_to_embedding = nn.Linear(in_channels * patch[0] * patch[1], dim)
        self.keypoint_token = nn.Parameter(torch.zeros(1, num_keypoints, dim))
        self.dropout = nn.Dropout(0.0)
        self.transformer_name = transformer_name
        setattr(self, transformer_name, OfficialTransformer(dim, depth, heads, dim * mlp_ratio, num_keypoints,
                                                            True, scale_with_head))
        self.to_keypoint_token = nn.Identity()
        self.mlp_head = mlp_head

    def tokens(self, feature: torch.Tensor) -> torch.Tensor:
        p1, p2 = self.patch
        b, c, fh, fw = feature.shape
        x = feature.reshape(b, c, fh // p1, p1, fw // p2, p2).permute(0, 2, 4, 3, 5, 1)
        x = self.patch_to_embedding(x.reshape(b, (fh // p1) * (fw // p2), p1 * p2 * c))  # rearrange = a copy
        x = x + self.pos_embedding[:, : x.shape[1]]
        x = torch.cat((self.keypoint_token.expand(b, -1, -1), x), dim=1)
        return self.dropout(x)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, self.transformer_name)(x, self.pos_embedding)


class OfficialDistilPoseS(nn.Module):
    """DistilPose-S (``DistilPose_S_coco_256x192.py``): StemNet + ``DistilPose_base``, ``out_mode='all'``.

    ``forward`` returns the (B, 17, 5) ``[sigmoid x, sigmoid y, score, softplus sigma]`` the official decode
    reads (x, y normalised to the crop)."""

    def __init__(self, scale_with_head: bool = True):
        super().__init__()
        self.backbone = OfficialStemNet()
        self.keypoint_head = nn.Module()
        self.keypoint_head.tokenhead = OfficialTokenBase(nn.Sequential(nn.LayerNorm(192), nn.Linear(192, 5)),
                                                         scale_with_head=scale_with_head)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        head = self.keypoint_head.tokenhead
        x = head.run(head.tokens(self.backbone(img)))
        x = head.mlp_head(head.to_keypoint_token(x[:, : head.num_keypoints]))
        return torch.cat((x[..., 0:2].sigmoid(), x[..., 2:3], F.softplus(x[..., 3:5])), dim=-1)


class OfficialSDPoseS(nn.Module):
    """SDPose-S-V1 (``sdpose_s_v1_stemnet_coco_256x192.py``): StemNet + the shared ``transformer_layer1`` run
    ``cycles`` times, the heatmap ``mlp_head`` (LN 192, Linear 384, LN 384, Linear 3072) on each cycle's
    keypoint tokens. The released code runs both cycles and tests on the first one's heatmaps; ``cycles=1``
    is the single-cycle cost the paper reports. ``forward`` returns the first cycle's (B, 17, 64, 48)."""

    def __init__(self, cycles: int = 2, scale_with_head: bool = True):
        super().__init__()
        self.cycles = cycles
        self.backbone = OfficialStemNet()
        self.keypoint_head = nn.Module()
        mlp = nn.Sequential(nn.LayerNorm(192), nn.Linear(192, 384), nn.LayerNorm(384), nn.Linear(384, 3072))
        self.keypoint_head.tokenpose = OfficialTokenBase(mlp, "transformer_layer1", scale_with_head=scale_with_head)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        head = self.keypoint_head.tokenpose
        x = head.tokens(self.backbone(img))
        outputs = []
        for _ in range(self.cycles):
            x = head.run(x)
            kpt = head.mlp_head(head.to_keypoint_token(x[:, : head.num_keypoints]))
            outputs.append(kpt.reshape(x.shape[0], head.num_keypoints, 64, 48))
        return outputs[0]
