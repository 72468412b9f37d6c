"""UniTransPose (Kinfu & Vidal, arXiv 2503.00232): a hierarchical transformer with joint-aware global-local
(JAGL) attention, a sub-pixel CNN decoder and a hybrid heatmap + regression output.

No code has been released (``docs/unitranspose.md`` lists what is known and every choice made here; each
is a constructor parameter). The encoder has four stages at strides 4, 8, 16 and 32:

* ``patch_embed``: two 3x3 stride-2 convolutions (BN, GELU): the stride-4 patch grid, 64x48 at 256x192;
* ``downsamples.{i}``: a 3x3 stride-2 convolution + LayerNorm between stages (the paper's conv downsampling);
* ``stages.{i}.blocks.{j}``: ``JAGLBlock`` s over the patch grid and ``K`` joint tokens (one per keypoint,
  ``joint_tokens``, carried across stages by ``joint_proj.{i}``). A block is, in the paper's order
  (summary Sec. 4.2, "local patch-to-patch followed by global patch/joint interactions"):

  1. local: multi-head attention inside non-overlapping ``window`` s of patches (cost linear in N);
  2. gather: joint tokens attend to all patches (patch -> joint, K x N);
  3. mix: joint tokens attend to each other (joint -> joint, K x K);
  4. scatter: patches attend to the joint tokens (joint -> patch, N x K);
  5. feed-forward: a conv MLP for the patches (``fc1``, 3x3 depthwise conv, GELU, ``fc2``: the position
     information and the exchange across window borders, as PVTv2 / SegFormer) and an MLP for the joints.

  ``attention='local'`` keeps only step 1 and ``'global'`` only steps 2-4 (the ablations of the issue).

The decoder (``SubPixelDecoder``) starts from the stride-32 map and goes up x2 three times to stride 4:
each step is a 3x3 convolution to ``4 c`` channels and a PixelShuffle (the up-sampling happens in the
low-resolution space, ESPCN), BN + ReLU, the lateral 1x1 projection of the encoder stage at that stride
added, then a 3x3 refinement conv; a 1x1 conv gives the heatmaps. ``upsample='deconv'`` swaps each
PixelShuffle step for a 4x4 transposed convolution of the same channels (the ablation).

The regression branch (``regressor``) maps each final joint token to ``[x, y, score, sigma_x, sigma_y]``
(LN + MLP, DistilPose's activation), trained with Smooth L1 (the summary: "a regression MLP trained with
Smooth-L1"). ``head='hybrid'`` outputs both (``heads.HybridHead``), ``'heatmap'`` or ``'regression'`` one.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.heads.heatmap import HeatmapHead
from slimpose.heads.hybrid import HybridHead
from slimpose.heads.regression import RegressionHead
from slimpose.models.base import PoseNet
from slimpose.models.head_layers import RegressionTokenHead
from slimpose.models.transformer.blocks import Attention, DropPath, Mlp, init_transformer_

ATTENTIONS = ("jagl", "local", "global")
HEADS = {"hybrid": HybridHead, "heatmap": HeatmapHead, "regression": RegressionHead}
UPSAMPLES = ("pixelshuffle", "deconv")

# name -> (stage dims, stage depths, heads per stage, decoder channels per up-step (stride 16, 8, 4))
UNITRANSPOSE_SIZES = {
    "t": ((64, 128, 256, 512), (1, 2, 4, 1), (1, 2, 4, 8), (128, 64, 32)),
    "s": ((80, 160, 320, 640), (2, 2, 6, 2), (1, 2, 5, 10), (192, 96, 48)),
    "b": ((96, 192, 384, 768), (2, 2, 26, 2), (2, 4, 8, 16), (256, 128, 64)),
}


def window_partition(x: torch.Tensor, window: tuple[int, int]) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` (wh, ww) -> (B * nW, wh * ww, C), windows row-major."""
    b, h, w, c = x.shape
    wh, ww = window
    x = x.reshape(b, h // wh, wh, w // ww, ww, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, wh * ww, c)


def window_reverse(windows: torch.Tensor, window: tuple[int, int], b: int, h: int, w: int) -> torch.Tensor:
    """Inverse of ``window_partition``: (B * nW, wh * ww, C) -> (B, H, W, C)."""
    wh, ww = window
    x = windows.reshape(b, h // wh, w // ww, wh, ww, -1).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b, h, w, -1)


class WindowAttention(nn.Module):
    """Multi-head self-attention inside non-overlapping windows of the patch grid (Swin's W-MSA, no shift).

    A grid that the window does not tile is zero-padded at the bottom / right and the padded keys are
    masked out; a window larger than the grid is clipped to it (then this is full attention).
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int] = (8, 6)) -> None:
        super().__init__()
        self.window = (int(window[0]), int(window[1]))
        self.attn = Attention(dim, num_heads, scale_with_head=True, qkv_bias=True)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, c = x.shape
        h, w = hw
        wh, ww = min(self.window[0], h), min(self.window[1], w)
        ph, pw = (-h) % wh, (-w) % ww
        grid = x.reshape(b, h, w, c)
        if ph or pw:
            grid = F.pad(grid, (0, 0, 0, pw, 0, ph))
        hp, wp = h + ph, w + pw
        windows = window_partition(grid, (wh, ww))
        mask = None
        if ph or pw:
            valid = torch.zeros(1, hp, wp, 1, dtype=torch.bool, device=x.device)
            valid[:, :h, :w] = True
            keys = window_partition(valid, (wh, ww))[..., 0]  # (nW, wh * ww)
            mask = keys[:, None, None, :].repeat(b, 1, 1, 1)  # (B * nW, 1, 1, L): attend to real keys only
        out = window_reverse(self.attn(windows, attn_mask=mask), (wh, ww), b, hp, wp)[:, :h, :w]
        return out.reshape(b, n, c)


class ConvMlp(nn.Module):
    """Patch feed-forward ``fc1 -> 3x3 depthwise conv -> GELU -> fc2`` on the (H, W) grid (PVTv2's conv FFN)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.dwconv = nn.Conv2d(hidden_dim, hidden_dim, 3, padding=1, groups=hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        b, n, _ = x.shape
        h, w = hw
        y = self.fc1(x)
        y = self.dwconv(y.transpose(1, 2).reshape(b, -1, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(self.act(y))


class JAGLBlock(nn.Module):
    """One joint-aware global-local block on patches (B, N, C) of an (H, W) grid and joints (B, K, C).

    ``attention``: 'jagl' (local window attention, then gather / mix / scatter through the joint tokens),
    'local' (window attention only) or 'global' (the joint-token path only). Pre-norm residual branches
    with stochastic depth ``drop_path``.
    """

    def __init__(self, dim: int, num_heads: int, window: tuple[int, int] = (8, 6), mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, attention: str = "jagl") -> None:
        super().__init__()
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        self.attention = attention
        self.local = attention in ("jagl", "local")
        self.joint_path = attention in ("jagl", "global")
        hidden = int(dim * mlp_ratio)
        if self.local:
            self.norm_local = nn.LayerNorm(dim)
            self.local_attn = WindowAttention(dim, num_heads, window)
        if self.joint_path:
            self.norm_gather_j = nn.LayerNorm(dim)
            self.norm_gather_p = nn.LayerNorm(dim)
            self.gather = Attention(dim, num_heads, scale_with_head=True, qkv_bias=True)
            self.norm_mix = nn.LayerNorm(dim)
            self.mix = Attention(dim, num_heads, scale_with_head=True, qkv_bias=True)
            self.norm_scatter_p = nn.LayerNorm(dim)
            self.norm_scatter_j = nn.LayerNorm(dim)
            self.scatter = Attention(dim, num_heads, scale_with_head=True, qkv_bias=True)
            self.norm_joint_mlp = nn.LayerNorm(dim)
            self.joint_mlp = Mlp(dim, hidden)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = ConvMlp(dim, hidden)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor, joints: torch.Tensor, hw: tuple[int, int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        dp = self.drop_path
        if self.local:
            x = x + dp(self.local_attn(self.norm_local(x), hw))
        if self.joint_path:
            joints = joints + dp(self.gather.forward_cross(self.norm_gather_j(joints), self.norm_gather_p(x)))
            joints = joints + dp(self.mix(self.norm_mix(joints)))
            x = x + dp(self.scatter.forward_cross(self.norm_scatter_p(x), self.norm_scatter_j(joints)))
            joints = joints + dp(self.joint_mlp(self.norm_joint_mlp(joints)))
        x = x + dp(self.mlp(self.norm_mlp(x), hw))
        return x, joints


class ConvPatchEmbed(nn.Module):
    """Images (B, 3, H, W) -> stride-4 patch map (B, C, H / 4, W / 4): two 3x3 stride-2 convs with BN and GELU."""

    stride = 4

    def __init__(self, dim: int, in_channels: int = 3) -> None:
        super().__init__()
        mid = max(dim // 2, 16)
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, mid, 3, 2, 1, bias=False), nn.BatchNorm2d(mid), nn.GELU(),
            nn.Conv2d(mid, dim, 3, 2, 1, bias=False), nn.BatchNorm2d(dim), nn.GELU(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.proj(images)


class ConvDownsample(nn.Module):
    """Between stages: 3x3 stride-2 conv (C -> C') on the grid, then LayerNorm on the tokens."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, out_dim, 3, 2, 1)
        self.norm = nn.LayerNorm(out_dim)

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) -> normalised tokens (B, H W / 4, C') and the new grid size (H / 2, W / 2)."""
        y = self.conv(fmap)
        return self.norm(y.flatten(2).transpose(1, 2)), (y.shape[2], y.shape[3])


class JAGLStage(nn.Module):
    """``depth`` ``JAGLBlock`` s at one resolution."""

    def __init__(self, dim: int, depth: int, num_heads: int, window: tuple[int, int], mlp_ratio: float,
                 drop_paths: Sequence[float], attention: str) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(JAGLBlock(dim, num_heads, window, mlp_ratio, drop_paths[i], attention)
                                    for i in range(depth))

    def forward(self, x: torch.Tensor, joints: torch.Tensor, hw: tuple[int, int]
                ) -> tuple[torch.Tensor, torch.Tensor]:
        for block in self.blocks:
            x, joints = block(x, joints, hw)
        return x, joints


class UniTransPoseEncoder(nn.Module):
    """Images -> four stage maps (strides 4, 8, 16, 32) and the final joint tokens (B, K, C4)."""

    def __init__(self, num_keypoints: int, dims: Sequence[int], depths: Sequence[int], heads: Sequence[int],
                 window: tuple[int, int] = (8, 6), mlp_ratio: float = 4.0, drop_path_rate: float = 0.1,
                 attention: str = "jagl") -> None:
        super().__init__()
        if not (len(dims) == len(depths) == len(heads) == 4):
            raise ValueError(f"UniTransPose has 4 stages: dims, depths and heads need 4 values each, got "
                             f"{tuple(dims)}, {tuple(depths)}, {tuple(heads)}")
        self.dims = tuple(int(d) for d in dims)
        self.patch_embed = ConvPatchEmbed(self.dims[0])
        self.joint_tokens = nn.Parameter(torch.zeros(1, num_keypoints, self.dims[0]))
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.stages = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        self.joint_proj = nn.ModuleList()
        self.norms = nn.ModuleList()
        start = 0
        for i, (dim, depth, nh) in enumerate(zip(self.dims, depths, heads)):
            self.stages.append(JAGLStage(dim, depth, nh, window, mlp_ratio, rates[start:start + depth], attention))
            self.norms.append(nn.LayerNorm(dim))
            start += depth
            if i < 3:
                self.downsamples.append(ConvDownsample(dim, self.dims[i + 1]))
                self.joint_proj.append(nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, self.dims[i + 1])))
        self.joint_norm = nn.LayerNorm(self.dims[-1])
        nn.init.trunc_normal_(self.joint_tokens, std=0.02)
        init_transformer_(self)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        fmap = self.patch_embed(images)
        b = images.shape[0]
        hw = (fmap.shape[2], fmap.shape[3])
        x = fmap.flatten(2).transpose(1, 2)
        joints = self.joint_tokens.repeat(b, 1, 1)  # not a view: module hooks need a grad_fn in inference mode
        maps: list[torch.Tensor] = []
        for i, stage in enumerate(self.stages):
            if i > 0:
                x, hw = self.downsamples[i - 1](maps[-1])
                joints = self.joint_proj[i - 1](joints)
            x, joints = stage(x, joints, hw)
            maps.append(self.norms[i](x).transpose(1, 2).reshape(b, -1, hw[0], hw[1]))
        return maps, self.joint_norm(joints)


class SubPixelDecoder(nn.Module):
    """Stage maps (strides 4..32) -> heatmaps at stride 4; see the module docstring.

    ``channels``: the width after each x2 step (to strides 16, 8, 4); ``upsample``: 'pixelshuffle' (3x3 conv to
    ``4 c`` channels + PixelShuffle(2)) or 'deconv' (4x4 stride-2 transposed conv); ``skips``: add the 1x1
    projections of the encoder stages at strides 16, 8 and 4.
    """

    def __init__(self, in_dims: Sequence[int], channels: Sequence[int], num_keypoints: int,
                 upsample: str = "pixelshuffle", skips: bool = True) -> None:
        super().__init__()
        if upsample not in UPSAMPLES:
            raise ValueError(f"upsample must be one of {UPSAMPLES}, got {upsample!r}")
        if len(channels) != 3:
            raise ValueError(f"the decoder has 3 up-sampling steps (to strides 16, 8, 4), got channels {channels}")
        self.upsample = upsample
        self.skips = bool(skips)
        self.upsample_factor = 8
        ups, laterals, refines = [], [], []
        prev = in_dims[3]
        for c, skip_dim in zip(channels, (in_dims[2], in_dims[1], in_dims[0])):
            if upsample == "pixelshuffle":
                up: nn.Module = nn.Sequential(nn.Conv2d(prev, 4 * c, 3, padding=1, bias=False), nn.PixelShuffle(2),
                                              nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            else:
                up = nn.Sequential(nn.ConvTranspose2d(prev, c, 4, stride=2, padding=1, bias=False),
                                   nn.BatchNorm2d(c), nn.ReLU(inplace=True))
            ups.append(up)
            laterals.append(nn.Conv2d(skip_dim, c, 1) if self.skips else nn.Identity())
            refines.append(nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                         nn.ReLU(inplace=True)))
            prev = c
        self.ups = nn.ModuleList(ups)
        self.laterals = nn.ModuleList(laterals)
        self.refines = nn.ModuleList(refines)
        self.final_layer = nn.Conv2d(prev, num_keypoints, 1)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, maps: Sequence[torch.Tensor]) -> torch.Tensor:
        y = maps[3]
        for up, lateral, refine, skip in zip(self.ups, self.laterals, self.refines, (maps[2], maps[1], maps[0])):
            y = up(y)
            if self.skips:
                y = y + lateral(skip)
            y = refine(y)
        return self.final_layer(y)


class UniTransPose(PoseNet):
    """The UniTransPose network: ``UniTransPoseEncoder`` + ``SubPixelDecoder`` and / or the joint regressor.

    ``forward`` returns heatmaps (B, K, H / 4, W / 4) for ``head='heatmap'``, the (B, K, 5) regression for
    ``'regression'``, and the tuple (heatmaps, regression) for ``'hybrid'``. ``forward_features`` gives the
    stage maps and the final joint tokens. ``reg_weight`` and ``decode_from`` configure the hybrid head
    (``heads.HybridHead``): the weight of the regression loss and which output gives the keypoints.
    """

    def __init__(self, num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256),
                 dims: Sequence[int] = UNITRANSPOSE_SIZES["t"][0], depths: Sequence[int] = UNITRANSPOSE_SIZES["t"][1],
                 heads: Sequence[int] = UNITRANSPOSE_SIZES["t"][2],
                 decoder_channels: Sequence[int] = UNITRANSPOSE_SIZES["t"][3], window: Sequence[int] = (8, 6),
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.1, attention: str = "jagl",
                 upsample: str = "pixelshuffle", skips: bool = True, head: str = "hybrid", reg_weight: float = 1.0,
                 decode_from: str = "heatmap") -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {tuple(HEADS)}, got {head!r}")
        w, h = input_size
        if w % 32 or h % 32:
            raise ValueError(f"UniTransPose: input_size (w, h) = {tuple(input_size)} must be divisible by 32")
        if head != "heatmap" and attention == "local":
            raise ValueError("UniTransPose: attention='local' has no joint-token path, so no regression output; "
                             "use head='heatmap'")
        self.num_keypoints = int(num_keypoints)
        self.input_size = (int(w), int(h))
        self.head = head
        self.head_class = HEADS[head]
        self.attention = attention
        self.output_stride = 4
        self.heatmap_size = (w // 4, h // 4)
        self.encoder = UniTransPoseEncoder(self.num_keypoints, dims, depths, heads, tuple(window), mlp_ratio,
                                           drop_path_rate, attention)
        dims = self.encoder.dims
        self.decoder = (SubPixelDecoder(dims, decoder_channels, self.num_keypoints, upsample, skips)
                        if head != "regression" else None)
        self.regressor = RegressionTokenHead(dims[-1]) if head != "heatmap" else None
        self.score_source = "constant"  # the score channel is not trained (Smooth L1 on x, y only)
        self.reg_weight = float(reg_weight)  # the hybrid head's settings (heads.HybridHead.from_config)
        self.decode_from = str(decode_from)

    @property
    def feature_stages(self) -> tuple[str, ...]:
        return tuple(f"encoder.stages.{i}" for i in range(4))

    def forward_features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        self.check_images(images)
        return self.encoder(images)

    def forward_head(self, features: tuple[list[torch.Tensor], torch.Tensor]) -> Any:
        maps, joints = features
        if self.head == "heatmap":
            return self.decoder(maps)
        if self.head == "regression":
            return self.regressor(joints)
        return self.decoder(maps), self.regressor(joints)


def _unitranspose(size: str, num_keypoints: int, input_size: tuple[int, int], overrides: dict) -> UniTransPose:
    dims, depths, heads, channels = UNITRANSPOSE_SIZES[size]
    cfg: dict[str, Any] = dict(dims=dims, depths=depths, heads=heads, decoder_channels=channels)
    cfg.update(overrides)
    return UniTransPose(num_keypoints, tuple(input_size), **cfg)


def unitranspose_t(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> UniTransPose:
    """UniTransPose-T: dims 64-128-256-512, depths 1-2-4-1; sized beside TokenPose-S (2.36 GFLOPs at 256x192)."""
    return _unitranspose("t", num_keypoints, input_size, overrides)


def unitranspose_s(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> UniTransPose:
    """UniTransPose-S: dims 80-160-320-640, depths 2-2-6-2; sized beside ViTPose-S (5.29 GFLOPs at 256x192)."""
    return _unitranspose("s", num_keypoints, input_size, overrides)


def unitranspose_b(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> UniTransPose:
    """UniTransPose-B: dims 96-192-384-768, depths 2-2-26-2; sized beside ViTPose-B (GFLOPs in docs/unitranspose.md)."""
    return _unitranspose("b", num_keypoints, input_size, overrides)
