"""DistilPose students (Ye et al., CVPR 2023) and the DeepPose CNN student of its Table 6.

``DistilPose`` = CNN backbone (stride 4) + Token-distilling Encoder (the shared token transformer:
patch 4x3 on the 64x48 feature map, 12 layers, dim 192, 8 heads, MLP ratio 3, ``sine-full``,
attention scale ``head_dim**-0.5``) + a per-keypoint-token head ``LN(D) + Linear(D, 5)`` (official
``DistilPose_base`` with ``out_mode='all'``).

Output convention of every model here: ``forward(images) -> (B, K, 5)`` holding, already activated,
``[x, y, score, sigma_x, sigma_y]``:

* ``x, y`` = sigmoid of the first two channels: coordinates normalised to [0, 1] of the input crop
  (pixel = value * input size, the ``RegressionLabel`` convention);
* ``score`` = the raw third channel: the keypoint confidence trained by L_CS towards the teacher
  heatmap value (no activation, as official);
* ``sigma_x, sigma_y`` = softplus of the last two channels, in heatmap pixels (for L_SH).

``score_source`` says what inference uses as keypoint score: ``"confidence"`` (the channel above;
only meaningful when the model was trained with L_CS) or ``"constant"`` (1.0 for every keypoint: the
no-distillation / no-L_CS students, whose confidence channel is untrained; using it anyway is what
made the official no-distillation run score AP < 0.1, yshMars/DistilPose#2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.models.token_transformer import (
    TokenTransformer, backbone_feature_size, pop_backbone, pop_stem_backbone,
)

SCORE_SOURCES = ("confidence", "constant")
REGRESSION_OUT_DIM = 5


def activate_regression_output(raw: torch.Tensor) -> torch.Tensor:
    """Raw (..., 5) -> [sigmoid(x), sigmoid(y), score, softplus(sx), softplus(sy)] (official 'all' mode)."""
    return torch.cat((raw[..., 0:2].sigmoid(), raw[..., 2:3], F.softplus(raw[..., 3:5])), dim=-1)


def _check_score_source(score_source: str) -> None:
    if score_source not in SCORE_SOURCES:
        raise ValueError(f"score_source must be one of {SCORE_SOURCES}, got {score_source!r}")


def keypoint_scores(output: torch.Tensor, score_source: str) -> torch.Tensor:
    """Per-keypoint scores (B,K) of a (B,K,5) output under ``score_source``."""
    if score_source == "confidence":
        return output[..., 2]
    if score_source == "constant":
        return torch.ones_like(output[..., 2])
    raise ValueError(f"score_source must be one of {SCORE_SOURCES}, got {score_source!r}")


class RegressionTokenHead(nn.Module):
    """Keypoint tokens (B,K,D) -> activated (B,K,5) (official ``mlp_head`` = LN + Linear(D, 5))."""

    def __init__(self, dim: int, out_dim: int = REGRESSION_OUT_DIM):
        super().__init__()
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, out_dim))
        nn.init.trunc_normal_(self.mlp[1].weight, std=0.02)
        nn.init.zeros_(self.mlp[1].bias)

    def forward(self, keypoint_tokens: torch.Tensor) -> torch.Tensor:
        return activate_regression_output(self.mlp(keypoint_tokens))


class DistilPose(nn.Module):
    """Backbone (stride 4) + TDE token transformer + regression token head.

    Args:
        backbone: CNN with ``out_channels`` and ``stride`` returning one (B,C,H/s,W/s) feature map.
        input_size: ``(w, h)`` of the input crop.
        patch_size: ``(ph, pw)`` on the feature map, height first (official ``[4, 3]``).
        score_source: ``"confidence"`` or ``"constant"`` (see the module doc).
    """

    output_kind = "regression"

    def __init__(
        self,
        backbone: nn.Module,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (192, 256),
        patch_size: tuple[int, int] = (4, 3),
        dim: int = 192,
        depth: int = 12,
        num_heads: int = 8,
        mlp_ratio: float = 3.0,
        pos_embedding: str = "sine-full",
        scale_with_head: bool = True,
        score_source: str = "confidence",
    ):
        super().__init__()
        feature_size = backbone_feature_size(backbone, input_size, "DistilPose")
        _check_score_source(score_source)
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.score_source = score_source
        self.transformer = TokenTransformer(
            in_channels=backbone.out_channels,
            feature_size=feature_size,
            patch_size=patch_size,
            num_keypoints=num_keypoints,
            dim=dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            pos_embedding=pos_embedding,
            scale_with_head=scale_with_head,
        )
        self.head = RegressionTokenHead(dim)

    def forward_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(keypoint_tokens (B,K,D), visual_tokens (B,N,D)) of the last TDE layer."""
        return self.transformer(self.backbone(images))

    def forward_with_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        kpt, vis = self.forward_tokens(images)
        return self.head(kpt), kpt, vis

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_tokens(images)[0])


class DeepPose(nn.Module):
    """DeepPose-style CNN regressor (Toshev & Szegedy 2014; DistilPose Table 6 student).

    Backbone -> global average pooling -> Linear(C, K*5) -> the same activated (B,K,5) output as
    ``DistilPose``. Has no tokens: it can only be distilled with Simulated Heatmaps (+ L_CS).
    """

    output_kind = "regression"

    def __init__(
        self,
        backbone: nn.Module,
        num_keypoints: int = 17,
        input_size: tuple[int, int] = (192, 256),
        score_source: str = "confidence",
    ):
        super().__init__()
        _check_score_source(score_source)
        self.backbone = backbone
        self.num_keypoints = num_keypoints
        self.input_size = tuple(input_size)
        self.score_source = score_source
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(backbone.out_channels, num_keypoints * REGRESSION_OUT_DIM)
        nn.init.normal_(self.fc.weight, std=0.01)
        nn.init.zeros_(self.fc.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.backbone(images)).flatten(1)
        raw = self.fc(x).reshape(x.shape[0], self.num_keypoints, REGRESSION_OUT_DIM)
        return activate_regression_output(raw)


def _tde_kwargs(overrides: dict) -> dict:
    kw = dict(patch_size=(4, 3), dim=192, depth=12, num_heads=8, mlp_ratio=3.0, pos_embedding="sine-full")
    kw.update(overrides)
    return kw


def distilpose_s(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> DistilPose:
    """DistilPose-S: StemNet + 12-layer TDE. Published 5.36M params / 2.38 GFLOPs at 256x192.

    ``stem_blocks`` (default 4, official) shrinks the StemNet's Bottleneck stack for CPU-sized runs.
    """
    backbone = pop_stem_backbone(overrides)
    return DistilPose(backbone, num_keypoints, input_size, **_tde_kwargs(overrides))


def distilpose_l(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> DistilPose:
    """DistilPose-L: HRNet-W48 (3 stages, highest-resolution branch) + TDE. Published 21.27M / 10.33 G."""
    from slimpose.models.hrnet import hrnet_w48_backbone

    if input_size[0] % 16 or input_size[1] % 16:
        raise ValueError(f"distilpose_l: input_size (w, h) = {tuple(input_size)} must be divisible by 16")
    backbone = pop_backbone(overrides, lambda: hrnet_w48_backbone(num_stages=3))
    return DistilPose(backbone, num_keypoints, input_size, **_tde_kwargs(overrides))


def deeppose_res50(
    num_keypoints: int = 17, input_size: tuple[int, int] = (192, 256), **overrides
) -> DeepPose:
    """DeepPose, ResNet-50 backbone (DistilPose Table 6: 52.6 AP alone, 59.7 AP with Simulated Heatmaps)."""
    from slimpose.models.resnet import resnet50

    backbone = pop_backbone(overrides, resnet50)
    return DeepPose(backbone, num_keypoints, input_size, **overrides)


def _flip_permutation(flip_pairs, num_keypoints: int) -> list[int]:
    perm = list(range(num_keypoints))
    for a, b in flip_pairs or ():
        perm[a], perm[b] = b, a
    return perm


@torch.no_grad()
def predict_regression(
    model: nn.Module,
    images: torch.Tensor,
    flip_pairs=None,
    flip_test: bool = False,
    score_source: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints (B,K,2) in input-crop pixels and keypoint scores (B,K) of a (B,K,5) regression model.

    Pixels are ``x * w, y * h`` of the input (the ``RegressionLabel`` normalisation). With
    ``flip_test`` the mirrored image is also run; its keypoints are mirrored back
    (``x -> (w - 1) - x``, the pixel flip of the crop, left/right partners swapped) and averaged with
    the plain ones, and so are the scores (official ``fliplr_regression`` + score averaging).
    ``score_source`` defaults to the model's own ``score_source`` attribute.
    """
    source = score_source or getattr(model, "score_source", "confidence")
    b, _, h, w = images.shape
    size = images.new_tensor([w, h])
    out = model(images)
    keypoints = out[..., :2] * size
    scores = keypoint_scores(out, source)
    if flip_test:
        from slimpose.codecs.flip import flip_coordinates_back

        out_f = model(images.flip(-1))
        scores_f = keypoint_scores(out_f, source)[:, _flip_permutation(flip_pairs, out_f.shape[1])]
        kp_f = flip_coordinates_back(out_f[..., :2] * size, [tuple(p) for p in flip_pairs or ()], w)
        keypoints = 0.5 * (keypoints + kp_f)
        scores = 0.5 * (scores + scores_f)
    return keypoints, scores


def instance_score(keypoint_scores_: torch.Tensor, box_scores: torch.Tensor | None = None) -> torch.Tensor:
    """DistilPose Eq. 3: ``s_human = s_bbox * mean_k(s_k)`` for (B,K) keypoint scores -> (B,)."""
    s = keypoint_scores_.mean(dim=-1)
    return s if box_scores is None else s * box_scores.to(s)
