"""DistilPose heatmap-to-regression distillation (Ye et al., CVPR 2023): the terms of Eq. 4 to 7.

    L = reg L_reg + kt L_KT + vt L_VT + sh L_SH + cs L_CS          (Eq. 7, paper: 1, 5e-4, 5e-4, 1, 1e-2)

* ``L_reg``: the student head's Smooth L1 on normalised coordinates (``slimpose.heads.RegressionHead``).
* ``L_KT`` / ``L_VT`` (Eq. 4): MSE between student and teacher final-layer keypoint / visual tokens.
* ``L_SH`` (Eq. 2, 5): the student's (x, y, sigma_x, sigma_y) are rendered as anisotropic Gaussians
  on the teacher's heatmap grid and compared with the teacher heatmaps by a JointsMSE-style loss
  (0.5 * mean squared error, target-weighted, averaged over joints as the official code does; the
  paper writes a sum over K). Like the official code the Gaussian centre is ``(x * W, y * H)``
  (not ``x * (W - 1)``), which matches the MSRA heatmap convention ``heatmap = input / stride``.
* ``L_CS`` (Eq. 6): L1 between the predicted confidence and the teacher heatmap value at the rounded
  predicted location ``round(clamp(p, 0, 1) * (W - 1))``; zero for predictions outside [0, 1].

The terms are ``DistillTerm``s of the one ``Distiller``; ``distilpose_terms(section)`` builds them from
the ``distill`` config section.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from slimpose.distillation.distiller import DistillTerm, StudentOutputs, TeacherOutputs
from slimpose.heads.regression import split_regression_output
from slimpose.losses.heatmap import per_joint_mse
from slimpose.models.transformer.pruning import visual_at
from slimpose.utils.io import SlimposeInputError


def render_simulated_heatmaps(
    coords: torch.Tensor, sigmas: torch.Tensor, heatmap_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Simulated Heatmaps (Eq. 2): one anisotropic, unnormalised Gaussian per keypoint.

    coords: (B,K,2) normalised (x, y); sigmas: (B,K,2) in heatmap pixels; heatmap_size: (w, h).
    Returns heatmaps (B,K,h,w), differentiable w.r.t. coords and sigmas, and a (B,K) float mask that
    is 0 where the 3-sigma box of the Gaussian lies wholly off the grid (official behaviour).
    """
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    mu_x = coords[..., 0] * w  # official: x * W, not x * (W - 1)
    mu_y = coords[..., 1] * h
    sx, sy = sigmas[..., 0], sigmas[..., 1]
    xs = torch.arange(w, dtype=coords.dtype, device=coords.device)
    ys = torch.arange(h, dtype=coords.dtype, device=coords.device)
    dx2 = (xs.view(1, 1, w) - mu_x.unsqueeze(-1)) ** 2 / (sx.unsqueeze(-1) ** 2 + 1e-9)  # (B,K,w)
    dy2 = (ys.view(1, 1, h) - mu_y.unsqueeze(-1)) ** 2 / (sy.unsqueeze(-1) ** 2 + 1e-9)  # (B,K,h)
    heatmaps = torch.exp(-0.5 * (dy2.unsqueeze(-1) + dx2.unsqueeze(-2)))
    with torch.no_grad():
        off = (
            (mu_x - 3 * sx >= w) | (mu_y - 3 * sy >= h) | (mu_x + 3 * sx + 1 < 0) | (mu_y + 3 * sy + 1 < 0)
        )
        valid = (~off).to(coords.dtype)
    return heatmaps, valid


def simulated_heatmap_loss(
    coords: torch.Tensor,
    sigmas: torch.Tensor,
    teacher_heatmaps: torch.Tensor,
    target_weight: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_SH (Eq. 5): JointsMSE between the simulated heatmaps and the teacher heatmaps (B,K,h,w)."""
    if teacher_heatmaps.dim() != 4 or teacher_heatmaps.shape[:2] != coords.shape[:2]:
        raise ValueError(
            f"simulated_heatmap_loss: teacher heatmaps {tuple(teacher_heatmaps.shape)} do not match "
            f"student keypoints {tuple(coords.shape[:2])}"
        )
    h, w = teacher_heatmaps.shape[-2:]
    sim, valid = render_simulated_heatmaps(coords, sigmas, (w, h))
    weight = valid if target_weight is None else valid * target_weight.to(valid.dtype)
    return per_joint_mse(sim, teacher_heatmaps.detach(), weight).mean()  # JointsMSELoss


def sample_teacher_confidence(coords: torch.Tensor, teacher_heatmaps: torch.Tensor) -> torch.Tensor:
    """Teacher heatmap value at ``round(clamp(coords, 0, 1) * (size - 1))`` -> (B,K); no gradient."""
    b, k, h, w = teacher_heatmaps.shape
    with torch.no_grad():
        c = coords.detach().clamp(0, 1)
        ix = torch.round(c[..., 0] * (w - 1)).long()
        iy = torch.round(c[..., 1] * (h - 1)).long()
        flat = teacher_heatmaps.detach().reshape(b, k, h * w)
        return flat.gather(2, (iy * w + ix).unsqueeze(-1)).squeeze(-1)


def confidence_loss(
    coords: torch.Tensor, scores: torch.Tensor, teacher_heatmaps: torch.Tensor
) -> torch.Tensor:
    """L_CS (Eq. 6): L1 between predicted confidences (B,K) and the teacher value at the prediction.

    Keypoints predicted outside [0, 1] contribute zero (they still count in the mean, as officially).
    """
    target = sample_teacher_confidence(coords, teacher_heatmaps)
    inside = ((coords >= 0) & (coords <= 1)).all(dim=-1).to(scores.dtype).detach()
    return F.l1_loss(scores * inside, target * inside, reduction="mean")


def token_distillation_loss(
    student_tokens: torch.Tensor, teacher_tokens: torch.Tensor, name: str
) -> torch.Tensor:
    """L_KT / L_VT (Eq. 4): mean squared error between student and (detached) teacher tokens."""
    if student_tokens.shape != teacher_tokens.shape:
        raise SlimposeInputError(
            f"DistilPose token distillation ({name}): student tokens {tuple(student_tokens.shape)} and "
            f"teacher tokens {tuple(teacher_tokens.shape)} differ; the teacher must share the token dim "
            "and the token "
            "grid (feature size / patch size) with the student"
        )
    return F.mse_loss(student_tokens, teacher_tokens.detach(), reduction="mean")


# ----------------------------------------------------------------------------------------------
# The terms
# ----------------------------------------------------------------------------------------------


class TokenTerm(DistillTerm):
    """L_KT (``which='keypoint'``) or L_VT (``'visual'``): MSE to the teacher's final tokens (Eq. 4)."""

    needs_features = True
    needs_teacher_features = True

    def __init__(self, weight: float, which: str) -> None:
        super().__init__(weight)
        if which not in ("keypoint", "visual"):
            raise ValueError(f"which must be 'keypoint' or 'visual', got {which!r}")
        self.which = which
        self.name = "kt" if which == "keypoint" else "vt"

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None, batch: dict[str, Any]) -> torch.Tensor:
        field = f"{self.which}_tokens"
        t = getattr(teacher.features, field)
        if self.which == "visual" and student.features.index is not None:  # a pruned student: the teacher's
            t = visual_at(t, teacher.features.index, student.features.index)  # tokens at the kept positions
        return token_distillation_loss(getattr(student.features, field), t, f"{self.which} tokens")


class SimulatedHeatmapTerm(DistillTerm):
    """L_SH: the student's Gaussians rendered on the teacher's heatmap grid against its heatmaps (Eq. 5)."""

    name = "sh"

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None, batch: dict[str, Any]) -> torch.Tensor:
        coords, _, sigmas = split_regression_output(student.output)
        return simulated_heatmap_loss(coords, sigmas, teacher.output, batch["target_weight"].to(coords.dtype))


class ConfidenceTerm(DistillTerm):
    """L_CS: the predicted confidence against the teacher heatmap value at the prediction (Eq. 6)."""

    name = "cs"

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None, batch: dict[str, Any]) -> torch.Tensor:
        coords, scores, _ = split_regression_output(student.output)
        return confidence_loss(coords, scores, teacher.output)


def distilpose_terms(section: Any) -> list[DistillTerm]:
    """The switched-on terms of a ``DistilPoseConfig`` (``distill`` section), in the order of Eq. 7."""
    candidates = [TokenTerm(section.kt, "keypoint"), TokenTerm(section.vt, "visual"),
                  SimulatedHeatmapTerm(section.sh), ConfidenceTerm(section.cs)]
    return [t for t in candidates if t.weight > 0]
