"""Heatmap head: Gaussian heatmap targets (MSRA, DARK or UDP), (OHKM-)MSE, flip test, argmax decoding.

Targets and decoding come from the codec (``MSRAHeatmap`` with optional unbiased encoding / DARK
decoding, or ``UDPHeatmap``); the loss is HRNet's ``JointsMSELoss`` or its OHKM variant. Flip test
(HRNet / MMPose ``flip_test=True``): the flipped crop's heatmaps are mirrored with left/right channels
swapped, shifted one pixel right when ``shift_heatmap`` (the MSRA convention needs it; not UDP), and
averaged with the plain ones before decoding. In an exported graph the decoding is the integer argmax plus
HRNet's quarter-pixel shift (DARK's blur and Newton step stay outside the graph).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from slimpose.codecs._gaussian import NONPOSITIVE, NONPOSITIVE_FILL, QUARTER_BOUNDS, check_choice, heatmap_to_crop
from slimpose.codecs.flip import flip_heatmaps_back
from slimpose.codecs.msra_heatmap import MSRAHeatmap
from slimpose.codecs.udp_heatmap import UDPHeatmap
from slimpose.heads.base import FlipPairs, Head
from slimpose.losses.heatmap import KeypointMSELoss, KeypointOHKMMSELoss
from slimpose.utils.io import SlimposeInputError


def argmax_quarter_decode(heatmaps: torch.Tensor, bounds: str = "axis", fill: float | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,K,h,w) -> heatmap-pixel locations (B,K,2) and maxima (B,K): argmax, then +-0.25 px per axis
    towards the higher neighbour where both neighbours exist (``bounds='hrnet'``: both axes, only where
    ``1 < x < w - 1`` and ``1 < y < h - 1``, HRNet ``get_final_preds`` without DARK; ``'mmpose1'``: MMPose 1.x
    ``refine_keypoints``, x where ``1 < x < w - 1 and 0 < y < h``, y where ``1 < y < h - 1 and 0 < x < w``). ``fill``: the location
    of maps whose maximum is <= 0 (mmpose -1, HRNet 0; ``None`` keeps the argmax)."""
    check_choice(bounds, QUARTER_BOUNDS, "quarter_bounds")
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    vals, idx = flat.max(dim=-1)
    xi = idx % w
    yi = torch.div(idx, w, rounding_mode="floor")

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (y * w + x).unsqueeze(-1)).squeeze(-1)

    dx = at(yi, (xi + 1).clamp(max=w - 1)) - at(yi, (xi - 1).clamp(min=0))
    dy = at((yi + 1).clamp(max=h - 1), xi) - at((yi - 1).clamp(min=0), xi)
    okx = ((xi > 0) & (xi < w - 1)).to(heatmaps.dtype)
    oky = ((yi > 0) & (yi < h - 1)).to(heatmaps.dtype)
    if bounds == "hrnet":
        okx = oky = ((xi > 1) & (xi < w - 1) & (yi > 1) & (yi < h - 1)).to(heatmaps.dtype)
    elif bounds == "mmpose1":  # MMPose 1.x refine_keypoints: per axis
        okx = ((xi > 1) & (xi < w - 1) & (yi > 0) & (yi < h)).to(heatmaps.dtype)
        oky = ((yi > 1) & (yi < h - 1) & (xi > 0) & (xi < w)).to(heatmaps.dtype)
    x = xi.to(heatmaps.dtype) + 0.25 * torch.sign(dx) * okx
    y = yi.to(heatmaps.dtype) + 0.25 * torch.sign(dy) * oky
    locs = torch.stack((x, y), dim=-1)
    if fill is not None:  # (-1 or 0: outside the quarter step's bounds, so the step did not move them)
        locs = torch.where((vals > 0).unsqueeze(-1), locs, torch.full_like(locs, fill))
    return locs, vals


class HeatmapArgmaxDecode(nn.Module):
    """Heatmaps (B,K,h,w) -> (keypoints (B,K,2) crop pixels, scores (B,K)): argmax + quarter shift, mapped to
    the crop by ``heatmap_to_crop`` (``udp``: False MSRA ``input / heatmap``, True UDP ``(input - 1) /
    (heatmap - 1)``, ``'dark'`` TokenPose / PPT)."""

    def __init__(self, input_size: tuple[int, int], heatmap_size: tuple[int, int], udp: bool | str = False,
                 quarter_bounds: str = "axis", nonpositive: str = "keep") -> None:
        super().__init__()
        scale, offset = heatmap_to_crop(input_size, heatmap_size, udp)
        self.quarter_bounds = check_choice(quarter_bounds, QUARTER_BOUNDS, "quarter_bounds")
        # None: keep the argmax of maps with a maximum <= 0
        self.fill = NONPOSITIVE_FILL.get(check_choice(nonpositive, NONPOSITIVE, "nonpositive"))
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32), persistent=False)
        self.register_buffer("offset", torch.tensor(offset, dtype=torch.float32), persistent=False)

    def forward(self, heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        locs, scores = argmax_quarter_decode(heatmaps, self.quarter_bounds, self.fill)
        return locs * self.scale.to(locs.dtype) + self.offset.to(locs.dtype), scores


class HeatmapHead(Head):
    """Heatmaps (B, K, h, w) of a top-down model (SimpleBaseline, HRNet, TokenPose, SDPose).

    Args:
        codec: ``MSRAHeatmap`` or ``UDPHeatmap`` of the model's input and heatmap size.
        criterion: ``criterion(heatmaps, target, target_weight)`` (default ``KeypointMSELoss``).
        shift_heatmap: the 1-px shift of flipped-back heatmaps (MSRA convention; False for UDP).
    """

    output_names = ("heatmaps",)
    default_sigma = 2.0  # heatmap pixels, the HRNet / TokenPose recipes' (``data.sigma`` when not set)
    outputs_heatmaps = True

    def __init__(self, codec: MSRAHeatmap | UDPHeatmap, criterion: nn.Module | None = None,
                 shift_heatmap: bool = True) -> None:
        super().__init__(codec)
        self.criterion = criterion if criterion is not None else KeypointMSELoss()
        self.shift_heatmap = shift_heatmap
        self.udp = isinstance(codec, UDPHeatmap)

    @classmethod
    def from_config(cls, cfg: Any, model: nn.Module) -> "HeatmapHead":
        d = cfg.data
        size = tuple(model.input_size)
        hm = tuple(model.heatmap_size)
        if d.heatmap_size is not None and hm != tuple(d.heatmap_size):
            raise SlimposeInputError(
                f"data.heatmap_size {tuple(d.heatmap_size)} does not match the heatmap size {hm} of model "
                f"{cfg.model.name!r} at input size {size}")
        sigma = d.sigma if d.sigma is not None else cls.default_sigma
        from slimpose.config.schema import crop_warp

        geometry = crop_warp(cfg)  # a converted checkpoint's conventions (TestConventions), else data.udp
        udp = geometry != "dark" and bool(geometry)  # by value: np.bool_(True) or 1 are UDP too
        if udp:
            codec: MSRAHeatmap | UDPHeatmap = UDPHeatmap(size, hm, sigma=sigma, blur=cfg.conventions.udp_blur,
                                                         nonpositive=cfg.conventions.nonpositive,
                                                         border=cfg.conventions.udp_border)
        else:
            codec = MSRAHeatmap(size, hm, sigma=sigma, unbiased=d.unbiased_encoding, dark=cfg.dark,
                                geometry="dark" if geometry == "dark" else "standard",
                                quarter_bounds=cfg.conventions.quarter_bounds,
                                nonpositive=cfg.conventions.nonpositive)
        criterion = KeypointOHKMMSELoss(topk=cfg.ohkm_topk) if cfg.ohkm else KeypointMSELoss()
        return cls(codec, criterion, shift_heatmap=cfg.shift_heatmap and not udp)

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return tuple(self.codec.heatmap_size)

    def loss(self, output: torch.Tensor, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = batch["target"]
        if output.shape != target.shape:
            raise ValueError(
                f"model output {tuple(output.shape)} does not match the codec target {tuple(target.shape)} "
                "(check data.heatmap_size against the model's heatmap_size)")
        loss = self.criterion(output, target, batch["target_weight"])
        return loss, {"loss_heatmap": loss.detach()}

    def flip_back(self, output: torch.Tensor, flip_pairs: FlipPairs) -> torch.Tensor:
        return flip_heatmaps_back(output, flip_pairs, shift=self.shift_heatmap)

    def decode(self, output: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        keypoints, scores = self.codec.decode(output.detach().float().cpu().numpy())
        return np.asarray(keypoints, np.float32), np.asarray(scores, np.float32)

    def export_decoder(self) -> nn.Module:
        geometry = True if self.udp else getattr(self.codec, "geometry", "standard")
        return HeatmapArgmaxDecode(self.codec.input_size, self.codec.heatmap_size, udp=geometry,
                                   quarter_bounds=getattr(self.codec, "quarter_bounds", "axis"),
                                   nonpositive=getattr(self.codec, "nonpositive", "keep"))
