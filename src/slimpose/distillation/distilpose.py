"""DistilPose heatmap-to-regression distillation (Ye et al., CVPR 2023), Eq. 2 and 4 to 7.

    L = L_reg + a1 L_KT + a2 L_VT + a3 L_SH + a4 L_CS          (Eq. 7, a = 5e-4, 5e-4, 1, 1e-2)

* ``L_reg``: Smooth L1 on normalised coordinates, weighted by the target weight (visible and inside
  the crop), see :mod:`slimpose.losses.regression`.
* ``L_KT`` / ``L_VT`` (Eq. 4): MSE between student and teacher final-layer keypoint / visual tokens.
* ``L_SH`` (Eq. 2, 5): the student's (x, y, sigma_x, sigma_y) are rendered as anisotropic Gaussians
  on the teacher's heatmap grid and compared with the teacher heatmaps by a JointsMSE-style loss
  (0.5 * mean squared error, target-weighted, averaged over joints as the official code does; the
  paper writes a sum over K). Like the official code the Gaussian centre is ``(x * W, y * H)``
  (not ``x * (W - 1)``), which matches the MSRA heatmap convention ``heatmap = input / stride``.
* ``L_CS`` (Eq. 6): L1 between the predicted confidence and the teacher heatmap value at the rounded
  predicted location ``round(clamp(p, 0, 1) * (W - 1))``; zero for predictions outside [0, 1].

The teacher is frozen, in eval mode and run under ``torch.no_grad``; it never becomes part of the
student's state dict.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.losses.regression import smooth_l1_loss
from slimpose.models.distilpose import SCORE_SOURCES
from slimpose.utils.io import SlimposeInputError


# ----------------------------------------------------------------------------------------------
# The four distillation terms
# ----------------------------------------------------------------------------------------------


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


def joints_mse_loss(
    pred: torch.Tensor, target: torch.Tensor, target_weight: torch.Tensor | None = None
) -> torch.Tensor:
    """mmpose 0.x ``JointsMSELoss``: 0.5 * mean over (B,K,H,W) of ((pred - target) * w_k)^2."""
    if pred.shape != target.shape:
        raise ValueError(f"joints_mse_loss: pred {tuple(pred.shape)} and target {tuple(target.shape)} differ")
    diff = pred - target
    if target_weight is not None:
        diff = diff * target_weight.to(pred.dtype)[..., None, None]
    return 0.5 * diff.pow(2).mean()


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
    return joints_mse_loss(sim, teacher_heatmaps.detach(), weight)


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
# Loss configuration
# ----------------------------------------------------------------------------------------------


@dataclass
class DistilPoseLossConfig:
    """Weights of Eq. 7; a weight of 0 switches the term off (the Table 4 ablation)."""

    reg: float = 1.0
    kt: float = 5e-4
    vt: float = 5e-4
    sh: float = 1.0
    cs: float = 1e-2
    smooth_l1_beta: float = 1.0

    @property
    def uses_teacher(self) -> bool:
        return any(w > 0 for w in (self.kt, self.vt, self.sh, self.cs))

    @property
    def uses_tokens(self) -> bool:
        return self.kt > 0 or self.vt > 0

    @property
    def score_source(self) -> str:
        """'confidence' when L_CS trains the confidence channel, else 'constant' (scores = 1)."""
        return "confidence" if self.cs > 0 else "constant"

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass
class DistilPoseOutputs:
    """The split (B,K,5) student output plus optional tokens."""

    coords: torch.Tensor  # (B,K,2) normalised, sigmoid-activated
    scores: torch.Tensor  # (B,K) raw confidence
    sigmas: torch.Tensor  # (B,K,2) heatmap pixels, softplus-activated
    keypoint_tokens: torch.Tensor | None = None
    visual_tokens: torch.Tensor | None = None

    @classmethod
    def from_output(cls, out: torch.Tensor, kpt: torch.Tensor | None = None, vis: torch.Tensor | None = None):
        if out.dim() != 3 or out.shape[-1] != 5:
            raise ValueError(f"DistilPose student output must be (B,K,5), got {tuple(out.shape)}")
        return cls(out[..., 0:2], out[..., 2], out[..., 3:5], kpt, vis)


@dataclass
class TeacherOutputs:
    heatmaps: torch.Tensor  # (B,K,h,w)
    keypoint_tokens: torch.Tensor | None = None
    visual_tokens: torch.Tensor | None = None


class DistilPoseLoss(nn.Module):
    """Eq. 7: the regression loss plus the four weighted distillation terms; returns (loss, logs)."""

    def __init__(self, cfg: DistilPoseLossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or DistilPoseLossConfig()

    def forward(
        self,
        student: DistilPoseOutputs,
        target_coords: torch.Tensor,
        target_weight: torch.Tensor,
        teacher: TeacherOutputs | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        terms: dict[str, torch.Tensor] = {}
        if cfg.reg > 0:
            reg = smooth_l1_loss(student.coords, target_coords, target_weight, cfg.smooth_l1_beta)
            terms["reg"] = cfg.reg * reg
        if cfg.uses_teacher:
            if teacher is None:
                raise ValueError("DistilPoseLoss: distillation terms are on but no teacher outputs given")
            if cfg.kt > 0:
                if student.keypoint_tokens is None or teacher.keypoint_tokens is None:
                    raise ValueError("DistilPoseLoss: L_KT needs keypoint tokens from student and teacher")
                terms["kt"] = cfg.kt * token_distillation_loss(
                    student.keypoint_tokens, teacher.keypoint_tokens, "keypoint tokens"
                )
            if cfg.vt > 0:
                if student.visual_tokens is None or teacher.visual_tokens is None:
                    raise ValueError("DistilPoseLoss: L_VT needs visual tokens from student and teacher")
                terms["vt"] = cfg.vt * token_distillation_loss(
                    student.visual_tokens, teacher.visual_tokens, "visual tokens"
                )
            if cfg.sh > 0:
                terms["sh"] = cfg.sh * simulated_heatmap_loss(
                    student.coords, student.sigmas, teacher.heatmaps, target_weight
                )
            if cfg.cs > 0:
                terms["cs"] = cfg.cs * confidence_loss(student.coords, student.scores, teacher.heatmaps)
        if not terms:
            raise ValueError("DistilPoseLoss: every loss weight is 0")
        total = sum(terms.values())
        logs = {f"loss_{k}": float(v.detach()) for k, v in terms.items()}
        logs["loss"] = float(total.detach())
        return total, logs


# ----------------------------------------------------------------------------------------------
# Teacher handling
# ----------------------------------------------------------------------------------------------


def freeze_teacher(teacher: nn.Module) -> nn.Module:
    """Put the teacher in eval mode and turn off its gradients."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def run_teacher(teacher: nn.Module, images: torch.Tensor, need_tokens: bool) -> TeacherOutputs:
    """Forward the frozen teacher (eval mode, no_grad); tokens only when a token loss needs them."""
    if teacher.training:
        teacher.eval()
    if need_tokens:
        if not hasattr(teacher, "forward_with_tokens"):
            raise SlimposeInputError(
                f"DistilPose: teacher {type(teacher).__name__} has no forward_with_tokens(); "
                "L_KT/L_VT need a "
                "token (TokenPose-style) teacher, or switch them off (kt=0, vt=0)"
            )
        heatmaps, kpt, vis = teacher.forward_with_tokens(images)
        return TeacherOutputs(heatmaps, kpt, vis)
    out = teacher(images)
    if not torch.is_tensor(out) or out.dim() != 4:
        raise SlimposeInputError(
            f"DistilPose: teacher {type(teacher).__name__} must return heatmaps (B,K,h,w), got "
            f"{type(out).__name__} {tuple(out.shape) if torch.is_tensor(out) else ''}"
        )
    return TeacherOutputs(out)


@torch.no_grad()
def check_teacher_compatibility(
    student: nn.Module, teacher: nn.Module, input_size: tuple[int, int], need_tokens: bool = True
) -> dict[str, Any]:
    """Run one dummy image (w, h = input_size) through both models and check they can be distilled.

    Fails with a SlimposeInputError naming both shapes when the keypoint count, the token dim or the
    token grid differ. Returns the teacher's heatmap size and token shapes.
    """
    w, h = input_size
    dev = next(iter(p for p in student.parameters()), torch.zeros(())).device
    x = torch.zeros(1, 3, h, w, device=dev)
    was_training = student.training
    student.eval()
    try:
        if need_tokens:
            if not hasattr(student, "forward_with_tokens"):
                raise SlimposeInputError(
                    f"DistilPose: student {type(student).__name__} has no forward_with_tokens(); switch off "
                    "L_KT/L_VT for a CNN student"
                )
            s_out, s_kpt, s_vis = student.forward_with_tokens(x)
        else:
            s_out, s_kpt, s_vis = student(x), None, None
    finally:
        student.train(was_training)
    t = run_teacher(teacher, x, need_tokens)
    if t.heatmaps.shape[1] != s_out.shape[1]:
        raise SlimposeInputError(
            f"DistilPose: the teacher predicts {t.heatmaps.shape[1]} keypoints, the student {s_out.shape[1]}"
        )
    info: dict[str, Any] = {"teacher_heatmap_size": [int(t.heatmaps.shape[-1]), int(t.heatmaps.shape[-2])]}
    if need_tokens:
        pairs = (("keypoint tokens", s_kpt, t.keypoint_tokens), ("visual tokens", s_vis, t.visual_tokens))
        for name, s, tt in pairs:
            if s.shape != tt.shape:
                raise SlimposeInputError(
                    f"DistilPose: student {name} {tuple(s.shape)} vs teacher {tuple(tt.shape)}: "
                    "the teacher must "
                    "share the token dim and the token grid (feature map size / patch size) with the student"
                )
        info["token_dim"] = int(s_vis.shape[-1])
        info["num_visual_tokens"] = int(s_vis.shape[1])
    return info


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class TeacherRecord:
    """What a student checkpoint records about its teacher (never the teacher's weights)."""

    path: str
    sha256: str
    model: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DistilPoseTask(nn.Module):
    """Engine task: a regression student, an optional frozen teacher and the Eq. 7 loss.

    ``task(batch) -> (loss, logs)`` on a ``TopDownDataset`` batch (``image``, ``target_weight`` and
    either a regression ``target`` (B,K,2) normalised to the input size, or ``keypoints`` in crop
    pixels); ``task.predict(images, flip_pairs) -> (keypoints (B,K,2) crop pixels, scores (B,K))``.
    ``task.model`` is the student. The teacher is held outside the module tree (as the official
    ``object.__setattr__``): it is not in ``parameters()`` / ``state_dict()``, ``train()`` leaves it in
    eval mode, ``to()`` / ``cuda()`` still move it.
    """

    def __init__(
        self,
        model: nn.Module,
        teacher: nn.Module | None,
        loss_cfg: DistilPoseLossConfig | None = None,
        score_source: str | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.criterion = DistilPoseLoss(loss_cfg)
        if self.criterion.cfg.uses_teacher and teacher is None:
            raise SlimposeInputError("DistilPose: the loss config has distillation terms but no teacher")
        object.__setattr__(self, "teacher", freeze_teacher(teacher) if teacher is not None else None)
        source = score_source or self.criterion.cfg.score_source
        if source not in SCORE_SOURCES:
            raise SlimposeInputError(f"DistilPose: score_source must be in {SCORE_SOURCES}, got {source!r}")
        if source == "confidence" and self.criterion.cfg.cs <= 0 and score_source is not None:
            raise SlimposeInputError(
                "DistilPose: score_source='confidence' needs L_CS (distill.cs > 0): without it the "
                "confidence "
                "channel is untrained and ruins AP (yshMars/DistilPose#2); use 'constant'"
            )
        self.score_source = source
        if hasattr(model, "score_source"):
            model.score_source = source

    @property
    def loss_cfg(self) -> DistilPoseLossConfig:
        return self.criterion.cfg

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if self.teacher is not None:
            self.teacher._apply(fn)
        return self

    def train(self, mode: bool = True) -> "DistilPoseTask":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def compute_loss(
        self, images: torch.Tensor, target_coords: torch.Tensor, target_weight: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Eq. 7 for one batch; ``target_coords`` (B,K,2) normalised to [0, 1] of the input size."""
        cfg = self.loss_cfg
        if cfg.uses_tokens:
            out, kpt, vis = self.model.forward_with_tokens(images)
        else:
            out, kpt, vis = self.model(images), None, None
        student = DistilPoseOutputs.from_output(out, kpt, vis)
        teacher = run_teacher(self.teacher, images, cfg.uses_tokens) if cfg.uses_teacher else None
        return self.criterion(student, target_coords, target_weight, teacher)

    @staticmethod
    def target_coords(batch: dict[str, Any]) -> torch.Tensor:
        """Normalised (B,K,2) targets: the codec ``target`` when it has that shape, else keypoints / size."""
        target = batch.get("target")
        images = batch["image"]
        if torch.is_tensor(target) and target.dim() == 3 and target.shape[-1] == 2:
            return target.to(images.dtype)
        h, w = images.shape[-2:]
        return batch["keypoints"].to(images.dtype) / images.new_tensor([w, h])

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        images = batch["image"]
        weight = batch["target_weight"].to(images.dtype)
        loss, logs = self.compute_loss(images, self.target_coords(batch), weight)
        return loss, {k: torch.tensor(v) for k, v in logs.items()}

    def loss(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self(batch)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, flip_pairs=None):
        """Crop-pixel keypoints and scores (numpy); flip test when ``flip_pairs`` is not None."""
        import numpy as np

        from slimpose.models.distilpose import predict_regression

        kp, sc = predict_regression(
            self.model, images, flip_pairs, flip_test=flip_pairs is not None, score_source=self.score_source
        )
        return kp.float().cpu().numpy().astype(np.float32), sc.float().cpu().numpy().astype(np.float32)


def regression_eval_task(model: nn.Module) -> DistilPoseTask:
    """A teacher-less task for evaluating a trained regression student (uses ``model.score_source``)."""
    source = getattr(model, "score_source", "constant")
    task = DistilPoseTask(model, None, DistilPoseLossConfig(kt=0.0, vt=0.0, sh=0.0, cs=0.0))
    task.score_source = source
    if hasattr(model, "score_source"):
        model.score_source = source
    return task
