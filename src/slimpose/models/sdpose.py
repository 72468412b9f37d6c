"""SDPose (Chen et al., CVPR 2024): TokenPose with a Multi-Cycled Transformer (MCT) and a true
single-pass inference path.

MCT (paper Sec. 3.2, official ``tokenbase.py: SDPose.forward``): after patch + position embedding
the *same* transformer (shared weights) is applied ``num_cycles`` times; the full token sequence
(keypoint + visual tokens) output by cycle ``i`` is the input of cycle ``i+1``, and every cycle's
keypoint tokens go through the same head. The position embedding follows the official code
exactly: it is added to the visual tokens once at the input and, with ``sine-full``, re-added
before every layer ``idx > 0`` of a cycle; at **layer 0 of cycles >= 2 it is not re-added** (the
official loop just calls ``transformer_layer1(x)`` again, whose re-add is guarded by ``idx > 0``).
Keeping that makes cycle 1 bit-identical to a plain TokenPose forward and keeps the official
checkpoints' behaviour; ``readd_pos_between_cycles=True`` is offered as an (unofficial) variant.

The released code runs every cycle at inference and reads cycle 1, so its measured FLOPs are
``num_cycles`` x the paper's transformer cost. Here ``forward(images)`` runs only the cycles it
needs: ``read_cycle + 1`` (default ``read_cycle=0``: one pass, the paper's inference cost);
``forward_cycles`` runs all (or ``num_cycles``) cycles for training and analysis.

``SDPose`` *is* a ``TokenPose`` (same modules, same state-dict keys) plus a cycle count, so an MCT
checkpoint loads into the plain TokenPose of the same shape and gives the same first-cycle output.
``SDPoseReg`` is the same for the DistilPose token-regression student (paper Table 2, RLE loss).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from slimpose.heads.regression import RLEHead
from slimpose.models._factory import pop_backbone, pop_stem_backbone
from slimpose.models.base import TokenFeatures
from slimpose.models.distilpose import DistilPose
from slimpose.models.head_layers import RegressionTokenHead, rle_activation
from slimpose.models.hrnet import HRNet, hrnet_w32_backbone
from slimpose.models.layers import Bottleneck, init_normal_, make_res_layer
from slimpose.models.tokenpose import TokenPose
from slimpose.models.transformer import Tokens

CycleOutput = tuple[torch.Tensor, torch.Tensor, torch.Tensor, 'torch.Tensor | None']  # out, kpt, visual, grid index


def _check_cycles(num_cycles: int, read_cycle: int) -> None:
    if num_cycles < 1:
        raise ValueError(f"num_cycles must be >= 1, got {num_cycles}")
    if not 0 <= read_cycle < num_cycles:
        raise ValueError(f"read_cycle must be in [0, num_cycles={num_cycles}), got {read_cycle}")


class MultiCycleMixin:
    """Cycle logic shared by ``SDPose`` and ``SDPoseReg`` (needs ``backbone``, ``transformer``, ``head``)."""

    num_cycles: int
    read_cycle: int
    readd_pos_between_cycles: bool

    def embed(self, images: torch.Tensor) -> Tokens:
        """Images -> input tokens (backbone, patch embedding, keypoint tokens, position)."""
        self.check_images(images)  # PoseNet's
        return self.transformer.embed(self.backbone(images))

    def run_cycles(self, tokens: Tokens, num_cycles: int) -> list[Tokens]:
        """Apply the shared transformer ``num_cycles`` times; the tokens after each cycle."""
        if num_cycles < 1:
            raise ValueError(f"num_cycles must be >= 1, got {num_cycles}")
        t = self.transformer
        pos = t.readd_pos
        outs = []
        for c in range(num_cycles):
            if c > 0 and self.readd_pos_between_cycles and pos is not None:
                tokens = tokens.add_positions(pos)
            tokens = t.run(tokens)
            outs.append(tokens)
        return outs

    def forward_cycles(self, images: torch.Tensor, num_cycles: int | None = None) -> list[CycleOutput]:
        """``[(output, keypoint_tokens, visual_tokens, index)]`` for cycles 1..``num_cycles`` (default: all);
        ``index`` (B, N) is the grid position of every visual token (``None``: all, unpruned)."""
        n = self.num_cycles if num_cycles is None else int(num_cycles)
        return [(self.head(t.prefix), t.prefix, t.visual, t.index) for t in self.run_cycles(self.embed(images), n)]

    def forward_features(self, images: torch.Tensor) -> TokenFeatures:
        """Tokens of the read cycle (only the cycles up to it are run): the inference path, one
        transformer pass when ``read_cycle`` is 0."""
        t = self.run_cycles(self.embed(images), self.read_cycle + 1)[-1]
        return TokenFeatures(t.prefix, t.visual, t.prefix, t.index)


class SDPose(MultiCycleMixin, TokenPose):
    """TokenPose + MCT. ``forward(images) -> heatmaps (B,K,h,w)`` of cycle ``read_cycle`` (default first).

    Args:
        num_cycles: cycles run in training (``forward_cycles``); 1 makes it a plain TokenPose.
        read_cycle: 0-based cycle whose output ``forward`` returns (``num_cycles - 1`` for the
            MCT-without-self-distillation ablation that reads the last cycle).
        readd_pos_between_cycles: re-add the sine embedding before layer 0 of cycles >= 2 (not official).
        Remaining arguments go to ``TokenPose`` (``fuse_stacks`` is not supported).
    """

    def __init__(
        self,
        backbone: nn.Module,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (192, 256),
        num_cycles: int = 2,
        read_cycle: int = 0,
        readd_pos_between_cycles: bool = False,
        **tokenpose_kwargs,
    ):
        if tokenpose_kwargs.get("fuse_stacks", False):
            raise ValueError("SDPose does not support keypoint-token fusion (fuse_stacks=True)")
        _check_cycles(num_cycles, read_cycle)
        super().__init__(backbone, num_keypoints, input_size, **tokenpose_kwargs)
        self.num_cycles = num_cycles
        self.read_cycle = read_cycle
        self.readd_pos_between_cycles = readd_pos_between_cycles


class SDPoseReg(MultiCycleMixin, DistilPose):
    """SDPose-Reg: DistilPose token-regression student + MCT, trained with RLE.

    ``forward(images) -> (B,K,5)`` = ``[x, y, score, sigma_x, sigma_y]`` (x, y, sigma normalised to the
    input size; score = ``1 - mean(sigma)``), see ``rle_activation``. State-dict keys equal DistilPose's.
    """

    head_class = RLEHead

    def __init__(
        self,
        backbone: nn.Module,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (192, 256),
        num_cycles: int = 2,
        read_cycle: int = 0,
        readd_pos_between_cycles: bool = False,
        **distilpose_kwargs,
    ):
        _check_cycles(num_cycles, read_cycle)
        distilpose_kwargs.setdefault("score_source", "confidence")
        super().__init__(backbone, num_keypoints, input_size, **distilpose_kwargs)
        self.head = RegressionTokenHead(self.transformer.dim, activation=rle_activation)
        self.num_cycles = num_cycles
        self.read_cycle = read_cycle
        self.readd_pos_between_cycles = readd_pos_between_cycles


# ----------------------------------------------------------------------------------------------- factories


def sdpose_hrnet_w32_backbone(stage1_planes: int = 32) -> HRNet:
    """SDPose-B's ``HRNet_3stage``: HRNet-W32 stages 1-3, **32-plane** stage 1 (4 Bottlenecks -> 128 ch).

    The official ``sdpose_b_hr32_coco_256x192.py`` sets ``stage1.num_channels=(32,)`` (standard HRNet and
    TokenPose-B: 64 -> 256 ch); this is why SDPose-B has 13.2M / 5.2 GFLOPs against TokenPose-B's 13.5M / 5.7.
    Built as the 3-stage HRNet-W32 with ``layer1`` and ``transition1`` rebuilt for the narrower stage 1.
    """
    from slimpose.models.hrnet import _make_transition  # the official transition rule

    net = hrnet_w32_backbone(num_stages=3)
    if stage1_planes != 64:
        net.layer1 = make_res_layer(Bottleneck, 64, stage1_planes, 4)
        stage2_channels = list(net.stage_configs[0].num_channels)
        net.transition1 = _make_transition([stage1_planes * Bottleneck.expansion], stage2_channels)
        init_normal_(net.layer1)
        init_normal_(net.transition1)
    return net


def _sdpose(
    num_keypoints: int,
    input_size: tuple[int, int],
    overrides: dict,
    pop_backbone_fn: Callable[[dict], nn.Module],
    **defaults,
) -> SDPose:
    overrides = dict(overrides)
    backbone = pop_backbone_fn(overrides)
    cfg = dict(dim=192, num_heads=8, mlp_ratio=3.0, pos_embedding="sine-full", scale_with_head=True)
    cfg.update(defaults)
    cfg.update(overrides)
    return SDPose(backbone, num_keypoints, tuple(input_size), **cfg)


def sdpose_t(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SDPose:
    """SDPose-T: StemNet, patch 4x3, 6 layers, 3 cycles. Published 4.4M / 1.8 GFLOPs / 69.7 AP (COCO val).

    ``overrides`` go to ``SDPose`` (``num_cycles``, ``read_cycle``, ``depth``, ...); ``backbone=`` replaces
    the StemNet, ``stem_blocks=`` shrinks its Bottleneck stack.
    """
    return _sdpose(num_keypoints, input_size, overrides, pop_stem_backbone, patch_size=(4, 3), depth=6, num_cycles=3)


def sdpose_s_v1(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SDPose:
    """SDPose-S-V1: StemNet, patch 4x3, 12 layers, 2 cycles. Published 6.6M / 2.4 GFLOPs / 72.3 AP."""
    return _sdpose(num_keypoints, input_size, overrides, pop_stem_backbone, patch_size=(4, 3), depth=12, num_cycles=2)


def sdpose_s_v2(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SDPose:
    """SDPose-S-V2: StemNet, patch 2x2 (768 tokens), 12 layers, 2 cycles. Published 6.2M / 4.7 G / 73.5 AP."""
    return _sdpose(num_keypoints, input_size, overrides, pop_stem_backbone, patch_size=(2, 2), depth=12, num_cycles=2)


def sdpose_b(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SDPose:
    """SDPose-B: HRNet-W32 stages 1-3, patch 4x3, 12 layers, 2 cycles. Published 13.2M / 5.2 G / 73.7 AP."""
    return _sdpose(
        num_keypoints, input_size, overrides, lambda o: pop_backbone(o, sdpose_hrnet_w32_backbone),
        patch_size=(4, 3), depth=12, num_cycles=2,
    )


def sdpose_reg(num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides) -> SDPoseReg:
    """SDPose-Reg: StemNet + 12-layer TDE + DistilPose token-regression head (5 outputs), MCT with 2 cycles,
    RLE loss. Published 5.4M / 2.4 GFLOPs / 72.1 AP (COCO test-dev, paper Table 2)."""
    overrides = dict(overrides)
    backbone = pop_stem_backbone(overrides)
    cfg = dict(patch_size=(4, 3), dim=192, depth=12, num_heads=8, mlp_ratio=3.0, pos_embedding="sine-full",
               scale_with_head=True, num_cycles=2)
    cfg.update(overrides)
    return SDPoseReg(backbone, num_keypoints, tuple(input_size), **cfg)


__all__ = [
    "SDPose",
    "SDPoseReg",
    "MultiCycleMixin",
    "sdpose_t",
    "sdpose_s_v1",
    "sdpose_s_v2",
    "sdpose_b",
    "sdpose_reg",
]
