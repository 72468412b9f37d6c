"""Multi-KD for SimDR students (``papers/simdr_multi_kd.md``) and the DWPose SimCC distillation (MMPose).

    L = task L_task + s(epoch) * (vkd L_vkd + fkd L_fkd)

* ``L_task``: the student head's SimCC / SimDR loss (``heads.SimCCHead``).
* ``L_vkd`` (vanilla KD, the seed's ``L_vkd = -1/N sum_n sum_k KL(T, S)``): per keypoint and axis
  ``KL(softmax(beta t) || softmax(beta s))`` summed over the bins, summed over keypoints and both axes,
  divided by ``N`` (``normalizer='batch'``, the seed) or ``N K`` (``'batch_keypoints'``: MMPose
  ``KDLoss``, DWPose). The teacher is detached.
* ``L_fkd`` (cross-stage feature KD with adaptive weights):

      L_fkd = 1/N sum_i sum_{l} sum_{m >= l} gamma_i(t_l, s_m) D(F_t_l[i] - f_align(F_s_m[i]))

  over teacher stages ``l`` and student stages ``m >= l`` (``cross_stage``; off: only ``m = l``).
  ``f_align`` is a 1x1 conv (student to teacher channels) and a bilinear resize to the teacher stage's
  grid, one per pair. ``D`` is the mean squared difference (``distance='mse'``) or its sum over C, H, W
  (``'sum'``: DWPose ``FeaLoss``, ``MSELoss(sum) / N``). The batch is averaged (the seed sums over it:
  a mean keeps the weight independent of the batch size).

  **WA** (adaptive weights, the seed's gamma equation): for each stage feature a similarity matrix is
  formed per sample: the feature is average-pooled to ``wa_pool x wa_pool``, L2-normalised over channels
  at each position, and ``S = F^T F`` (positions x positions; independent of the channel count, so
  teacher and student stages compare). ``S`` is flattened, projected by a learned linear layer (one per
  stage and side) to ``wa_dim`` and L2-normalised; ``gamma_i`` is the softmax over all pairs of
  ``s_m[i] . t_l[i] / wa_temperature``. The gradient reaches the projections and, through ``S_m``, the
  student (as in attention-based feature distillation, the pairing is learned with the student).
  WA off: every pair weighs ``1 / #pairs``.

  **MFT** (multi-stage feature fusion transfer): the seed's Table 3 names it without defining it; its
  comparison is ReviewKD, whose defining part is that a student stage is fused with all deeper ones
  before it is compared with a teacher stage. In slimpose, with MFT the student side of pair (l, m) is
  ``fuse_{l,m}(f_align_{l,m}(F_s_m), fused_{l,m+1})``, built from the deepest student stage down to
  ``m``, where ``fuse`` is ReviewKD's attention-based fusion (a 1x1 conv on the concatenation gives two
  sigmoid maps that weigh the two inputs). Without MFT the pair uses ``f_align_{l,m}(F_s_m)`` alone.

Stage features are the outputs of the submodules a model names in ``feature_stages`` (a list output
counts by its first branch), captured by forward hooks in one forward pass (``capture_outputs``).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.config.schema import FEATURE_DISTANCES, VKD_NORMALIZERS
from slimpose.distillation.distiller import DistillTerm, StudentOutputs, TeacherOutputs, capture_outputs
from slimpose.utils.io import SlimposeInputError

DISTANCES = FEATURE_DISTANCES


@torch.no_grad()
def probe_stage_shapes(model: nn.Module, names: Sequence[str], input_size: tuple[int, int]
                       ) -> list[tuple[int, int, int]]:
    """``(C, H, W)`` of each named stage output for one ``input_size`` (w, h) crop (eval mode, no grad)."""
    was_training = model.training
    model.eval()
    w, h = input_size
    try:
        param = next(model.parameters())
        x = torch.zeros(1, 3, h, w, device=param.device, dtype=param.dtype)
        with capture_outputs(model, names) as captured:
            model(x)
    finally:
        model.train(was_training)
    return [tuple(int(s) for s in captured[n].shape[1:]) for n in names]  # type: ignore[misc]


def simcc_kd_loss(student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor], beta: float = 1.0,
                  normalizer: str = "batch") -> torch.Tensor:
    """``sum_{axis, n, k} KL(softmax(beta t) || softmax(beta s)) / (N or N K)`` (bins summed; the seed's
    ``L_vkd`` with ``normalizer='batch'``, MMPose ``KDLoss`` with ``'batch_keypoints'``)."""
    if normalizer not in VKD_NORMALIZERS:
        raise ValueError(f"normalizer must be one of {VKD_NORMALIZERS}, got {normalizer!r}")
    n, k = student[0].shape[:2]
    total = student[0].new_zeros((), dtype=torch.float32)
    for s, t in zip(student, teacher):
        if s.shape != t.shape:
            raise SlimposeInputError(f"vanilla KD: student bins {tuple(s.shape)} and teacher bins "
                                     f"{tuple(t.shape)} differ (same input size and split ratio needed)")
        log_s = F.log_softmax(s.float() * beta, dim=-1)
        p_t = F.softmax(t.detach().float() * beta, dim=-1)
        total = total + F.kl_div(log_s, p_t, reduction="sum")
    return total / (n if normalizer == "batch" else n * k)


class VanillaKDTerm(DistillTerm):
    """``L_vkd`` on the SimCC x / y logits of student and teacher (see the module docstring)."""

    name = "vkd"

    def __init__(self, weight: float, beta: float = 1.0, normalizer: str = "batch") -> None:
        super().__init__(weight)
        if normalizer not in VKD_NORMALIZERS:
            raise SlimposeInputError(f"multikd.vkd_normalizer {normalizer!r} is not one of {VKD_NORMALIZERS}")
        self.beta = float(beta)
        self.normalizer = normalizer

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None,
                batch: dict[str, Any]) -> torch.Tensor:
        return simcc_kd_loss(student.output, teacher.output, self.beta, self.normalizer)


class AttentionFusion(nn.Module):
    """ReviewKD's attention-based fusion of a stage feature ``x`` with the fused deeper one ``y`` (same
    shape): ``z = sigmoid(conv1x1([x, y]))`` (2 maps), ``x z_0 + y z_1``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.att = nn.Conv2d(2 * channels, 2, kernel_size=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(self.att(torch.cat([x, y], dim=1)))
        return x * z[:, 0:1] + y * z[:, 1:2]


class SimilarityEmbedding(nn.Module):
    """A stage feature (B, C, H, W) -> an L2-normalised (B, dim) embedding of its spatial self-similarity
    matrix (pooled to ``pool x pool``, channels L2-normalised per position, ``F^T F``, linear layer)."""

    def __init__(self, pool: int, dim: int) -> None:
        super().__init__()
        self.pool = int(pool)
        self.proj = nn.Linear(self.pool ** 4, dim)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        f = F.adaptive_avg_pool2d(feature.float(), self.pool).flatten(2)  # (B, C, p*p)
        f = F.normalize(f, dim=1)
        sim = torch.bmm(f.transpose(1, 2), f).flatten(1)  # (B, p^4)
        return F.normalize(self.proj(sim), dim=-1)


class CrossStageFeatureTerm(DistillTerm):
    """``L_fkd``: teacher stages ``teacher_taps`` vs student stages ``student_taps`` with pair weights
    ``gamma`` (WA), optional ReviewKD-style fusion (MFT) and cross-stage pairs (see the module docstring).

    ``student_shapes`` / ``teacher_shapes``: ``(C, H, W)`` of every tap (``probe_stage_shapes``).
    """

    name = "fkd"

    def __init__(self, weight: float, student_taps: Sequence[str], teacher_taps: Sequence[str],
                 student_shapes: Sequence[tuple[int, int, int]], teacher_shapes: Sequence[tuple[int, int, int]],
                 cross_stage: bool = True, mft: bool = False, adaptive: bool = False, distance: str = "mse",
                 wa_pool: int = 4, wa_dim: int = 64, wa_temperature: float = 1.0) -> None:
        super().__init__(weight)
        if distance not in DISTANCES:
            raise SlimposeInputError(f"multikd.distance {distance!r} is not one of {DISTANCES}")
        if not student_taps or not teacher_taps:
            raise SlimposeInputError("feature distillation needs at least one student and one teacher stage")
        if len(student_shapes) != len(student_taps) or len(teacher_shapes) != len(teacher_taps):
            raise ValueError("one (C, H, W) shape per stage tap is needed")
        self.student_taps = tuple(student_taps)
        self.teacher_taps = tuple(teacher_taps)
        self.cross_stage, self.mft, self.adaptive = bool(cross_stage), bool(mft), bool(adaptive)
        self.distance = distance
        self.wa_temperature = float(wa_temperature)
        n_t, n_s = len(self.teacher_taps), len(self.student_taps)
        if self.cross_stage:
            self.pairs = [(l, m) for l in range(n_t) for m in range(l, n_s)]
        else:
            self.pairs = [(l, l) for l in range(min(n_t, n_s))]
        if not self.pairs:
            raise SlimposeInputError(f"feature distillation: no (teacher l, student m >= l) stage pair for "
                                     f"{n_t} teacher and {n_s} student stages")
        # aligned pairs: the compared ones, and with MFT every deeper student stage that is fused in
        aligned = sorted({(l, m2) for l, m in self.pairs for m2 in (range(m, n_s) if self.mft else (m,))})
        self.teacher_shapes = [tuple(s) for s in teacher_shapes]
        self.align = nn.ModuleDict({
            f"t{l}_s{m}": nn.Conv2d(student_shapes[m][0], self.teacher_shapes[l][0], kernel_size=1)
            for l, m in aligned})
        self.fuse = nn.ModuleDict({
            f"t{l}_s{m}": AttentionFusion(self.teacher_shapes[l][0])
            for l, m in aligned if self.mft and m < n_s - 1})
        if self.adaptive:
            self.embed_student = nn.ModuleList(SimilarityEmbedding(wa_pool, wa_dim) for _ in range(n_s))
            self.embed_teacher = nn.ModuleList(SimilarityEmbedding(wa_pool, wa_dim) for _ in range(n_t))

    def aligned(self, l: int, m: int, student: Sequence[torch.Tensor]) -> torch.Tensor:
        """``f_align_{l,m}(F_s_m)`` on teacher stage ``l``'s grid."""
        _, h, w = self.teacher_shapes[l]
        x = self.align[f"t{l}_s{m}"](student[m])
        if x.shape[-2:] != (h, w):
            x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)
        return x

    def student_side(self, student: Sequence[torch.Tensor]) -> dict[tuple[int, int], torch.Tensor]:
        """The student feature each pair compares (fused from the deepest stage down with MFT)."""
        out: dict[tuple[int, int], torch.Tensor] = {}
        wanted = set(self.pairs)
        n_s = len(student)
        for l in sorted({l for l, _ in self.pairs}):
            if not self.mft:
                for m in (m for ll, m in self.pairs if ll == l):
                    out[(l, m)] = self.aligned(l, m, student)
                continue
            fused = None
            lowest = min(m for ll, m in self.pairs if ll == l)
            for m in range(n_s - 1, lowest - 1, -1):
                x = self.aligned(l, m, student)
                fused = x if fused is None else self.fuse[f"t{l}_s{m}"](x, fused)
                if (l, m) in wanted:
                    out[(l, m)] = fused
        return out

    def pair_weights(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        """``gamma`` (B, #pairs): the softmax over the pairs of the similarity embeddings' dot products
        (WA), or ``1 / #pairs`` everywhere."""
        b = student[0].shape[0]
        if not self.adaptive:
            return student[0].new_full((b, len(self.pairs)), 1.0 / len(self.pairs), dtype=torch.float32)
        s = [e(f) for e, f in zip(self.embed_student, student)]
        t = [e(f.detach()) for e, f in zip(self.embed_teacher, teacher)]
        logits = torch.stack([(s[m] * t[l]).sum(-1) for l, m in self.pairs], dim=1) / self.wa_temperature
        return logits.softmax(dim=1)

    def pair_distances(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor]) -> torch.Tensor:
        """``D`` per sample and pair, (B, #pairs)."""
        side = self.student_side(student)
        cols = []
        for l, m in self.pairs:
            diff = (side[(l, m)].float() - teacher[l].detach().float()) ** 2
            cols.append(diff.flatten(1).mean(1) if self.distance == "mse" else diff.flatten(1).sum(1))
        return torch.stack(cols, dim=1)

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None,
                batch: dict[str, Any]) -> torch.Tensor:
        s = [student.stages[n] for n in self.student_taps]
        t = [teacher.stages[n] for n in self.teacher_taps]
        gamma = self.pair_weights(s, t)
        return (gamma * self.pair_distances(s, t)).sum(dim=1).mean()


def multikd_terms(section: Any, student: nn.Module, teacher: nn.Module, input_size: tuple[int, int]
                  ) -> list[DistillTerm]:
    """The terms the ``multikd`` section switches on (a weight of 0 leaves a term out)."""
    terms: list[DistillTerm] = []
    if section.fkd > 0:
        s_taps = tuple(section.student_stages) or tuple(getattr(student, "feature_stages", ()))
        t_taps = tuple(section.teacher_stages) or tuple(getattr(teacher, "feature_stages", ()))
        for who, taps, model in (("student", s_taps, student), ("teacher", t_taps, teacher)):
            if not taps:
                raise SlimposeInputError(f"multikd: the {who} {type(model).__name__} declares no feature_stages; "
                                         f"name them in multikd.{who}_stages or set multikd.fkd=0")
        terms.append(CrossStageFeatureTerm(
            section.fkd, s_taps, t_taps, probe_stage_shapes(student, s_taps, input_size),
            probe_stage_shapes(teacher, t_taps, input_size), cross_stage=section.cross_stage, mft=section.mft,
            adaptive=section.wa, distance=section.distance, wa_pool=section.wa_pool, wa_dim=section.wa_dim,
            wa_temperature=section.wa_temperature))
    if section.vkd > 0:
        terms.append(VanillaKDTerm(section.vkd, section.vkd_beta, section.vkd_normalizer))
    return terms
