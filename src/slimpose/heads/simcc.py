"""SimCC head: 1-D classification of each coordinate into ``size * split_ratio`` bins (SimCC / SimDR).

Outputs ``(x_logits (B, K, W k), y_logits (B, K, H k))``; targets are ``SimCCLabel`` vectors (Gaussian of
``data.sigma`` bins, or one-hot with label smoothing), the loss ``KLDiscretLoss``. Flip test (MMPose 1.x
``SimCCHead.predict``): the flipped crop's vectors are reversed along x, left/right swapped and averaged
with the plain ones *as logits*, then decoded; ``flip_shift_bins`` moves the flipped x vectors back
(official: 0, which leaves a bias of ``(k - 1) / k`` crop px, see ``codecs.flip``). Decoding: argmax / k;
keypoint score = min of the x / y maxima of the raw outputs (MMPose ``get_simcc_maximum``) or, with
``from_logits`` (softmax first), the official SA-SimDR (``min_xy``) / SimDR (``max_xy``, with
``flip_average='probs'``: the two softmaxes averaged) scores, or ``'calibrated'`` (see ``codecs.simcc``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from slimpose.codecs.flip import flip_simcc_back
from slimpose.codecs.simcc import SimCCLabel, simcc_scores
from slimpose.heads.base import FlipPairs, Head
from slimpose.losses.simcc import KLDiscretLoss

FLIP_AVERAGES = ("logits", "probs")


def _parabola_refine(loc: torch.Tensor, log_values: torch.Tensor) -> torch.Tensor:
    """The codec's sub-bin step (``codecs._gaussian.parabola_refine_1d``) in torch, for the exported graph:
    the vertex of the parabola through three log-values around the argmax, clipped to +-0.5 bin."""
    length = log_values.shape[-1]
    if length < 3:
        return loc.to(log_values.dtype)
    s = (loc - 1).clamp(0, length - 3)
    f0, f1, f2 = (log_values.gather(-1, (s + i).unsqueeze(-1)).squeeze(-1) for i in range(3))
    curv = f2 - 2 * f1 + f0
    ok = (curv < 0) & torch.isfinite(curv)
    vertex = s.to(f0.dtype) + 1 - 0.5 * (f2 - f0) / torch.where(ok, curv, -torch.ones_like(curv))
    p = loc.to(f0.dtype)
    vertex = torch.minimum(torch.maximum(vertex, p - 0.5), p + 0.5)
    return torch.where(ok, vertex, p)


class SimCCDecode(nn.Module):
    """(x (B,K,Wx), y (B,K,Hy)) -> (keypoints (B,K,2) crop pixels, scores (B,K)) in-graph: the codec's
    decoding (softmax when ``from_logits``, argmax, optional sub-bin step, / split ratio, scores)."""

    def __init__(self, split_ratio: float, score_mode: str = "min_xy", from_logits: bool = False,
                 refine: bool = False, peaks: tuple[float, float] = (1.0, 1.0), nonpositive: str = "keep") -> None:
        super().__init__()
        self.split_ratio = float(split_ratio)
        self.score_mode = score_mode
        self.from_logits = from_logits
        self.refine = refine
        self.peaks = (float(peaks[0]), float(peaks[1]))
        self.mask_nonpositive = nonpositive == "minus_one"  # bin -1 where the score is <= 0 (MMPose 1.x)

    def forward(self, output: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = output
        px, py = (x.softmax(dim=-1), y.softmax(dim=-1)) if self.from_logits else (x, y)
        max_x, loc_x = px.max(dim=-1)
        max_y, loc_y = py.max(dim=-1)
        if self.refine:
            log_x, log_y = (x, y) if self.from_logits else (x.clamp_min(1e-10).log(), y.clamp_min(1e-10).log())
            fx, fy = _parabola_refine(loc_x, log_x), _parabola_refine(loc_y, log_y)
        else:
            fx, fy = loc_x.to(x.dtype), loc_y.to(y.dtype)
        scores = simcc_scores(max_x, max_y, self.score_mode, self.peaks)
        locs = torch.stack((fx, fy), dim=-1)
        if self.mask_nonpositive:
            locs = torch.where((scores > 0).unsqueeze(-1), locs, torch.full_like(locs, -1.0))
        return locs / self.split_ratio, scores


class SimCCHead(Head):
    """SimCC x / y logits of a model with ``split_ratio`` bins per input pixel."""

    output_names = ("simcc_x", "simcc_y")
    outputs_bins = True
    default_sigma = 6.0  # bins, MMPose's SimCCLabel (``data.sigma`` when not set)

    def __init__(self, codec: SimCCLabel, criterion: nn.Module | None = None, flip_shift_bins: int = 0,
                 flip_average: str = "logits") -> None:
        super().__init__(codec)
        if flip_average not in FLIP_AVERAGES:
            raise ValueError(f"flip_average must be one of {FLIP_AVERAGES}, got {flip_average!r}")
        self.criterion = criterion if criterion is not None else KLDiscretLoss()
        self.flip_shift_bins = int(flip_shift_bins)
        self.flip_average = flip_average

    @classmethod
    def from_config(cls, cfg: Any, model: nn.Module) -> "SimCCHead":
        from slimpose.config.schema import SimCCParams

        p = cfg.simcc if cfg.simcc is not None else SimCCParams()
        sigma = cfg.data.sigma if cfg.data.sigma is not None else cls.default_sigma
        codec = SimCCLabel(tuple(model.input_size), smoothing_type=p.smoothing_type, sigma=sigma,
                           split_ratio=model.split_ratio, label_smooth_weight=p.label_smooth_weight,
                           normalize=p.normalize, refine=p.refine, score_mode=p.score_mode,
                           from_logits=p.from_logits, nonpositive=cfg.conventions.simcc_nonpositive)
        loss = KLDiscretLoss(beta=p.beta, label_softmax=p.label_softmax, label_beta=p.label_beta,
                             bins=p.loss_bins, normalizer=p.loss_normalizer)
        return cls(codec, loss, flip_shift_bins=p.flip_shift_bins, flip_average=p.flip_average)

    def loss(self, output: tuple[torch.Tensor, torch.Tensor], batch: dict[str, Any]
             ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = self.codec.split(batch["target"])
        loss = self.criterion(output, target, batch["target_weight"])
        return loss, {"loss_kl": loss.detach()}

    def flip_back(self, output: tuple[torch.Tensor, torch.Tensor], flip_pairs: FlipPairs
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        return flip_simcc_back(output[0], output[1], flip_pairs, shift_bins=self.flip_shift_bins)

    def merge_flip(self, output: tuple[torch.Tensor, torch.Tensor], flipped_back: tuple[torch.Tensor, torch.Tensor]
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """``'logits'``: the mean of the logits (official SA-SimDR, MMPose). ``'probs'``: the mean of the two
        softmaxes (official SimDR), returned as log-probabilities when the codec decodes logits (a softmax
        of them gives the mean back) and as probabilities otherwise."""
        if self.flip_average == "logits":
            return super().merge_flip(output, flipped_back)
        merged = tuple(0.5 * (a.softmax(dim=-1) + b.softmax(dim=-1)) for a, b in zip(output, flipped_back))
        if self.codec.from_logits:
            merged = tuple(m.clamp_min(1e-30).log() for m in merged)
        return merged  # type: ignore[return-value]

    def decode(self, output: tuple[torch.Tensor, torch.Tensor]) -> tuple[np.ndarray, np.ndarray]:
        x, y = (o.detach().float().cpu().numpy() for o in output)
        keypoints, scores = self.codec.decode((x, y))
        return np.asarray(keypoints, np.float32), np.asarray(scores, np.float32)

    def export_decoder(self) -> nn.Module:
        c = self.codec
        peaks = c.label_peaks() if c.score_mode == "calibrated" else (1.0, 1.0)
        return SimCCDecode(c.split_ratio, c.score_mode, from_logits=c.from_logits, refine=c.refine, peaks=peaks,
                           nonpositive=getattr(c, "nonpositive", "keep"))
