"""SDPose circulation-guided self-distillation (Chen et al., CVPR 2024, Eq. 1-3) as distiller terms.

    L = task sum_{i=1..N} L_task(P_i, GT)
      + kt sum_{i=1..N-1} MSE(KT_i, KT_{i+1}) + vt sum_{i=1..N-1} MSE(VT_i, VT_{i+1}),   kt = vt = 5e-6

``P_i``, ``KT_i``, ``VT_i``: output, keypoint tokens and visual tokens of MCT cycle ``i``. The later cycle
teaches the earlier one; there is no external teacher. ``L_task`` is the student head's loss (heatmap
``JointsMSELoss`` for SDPose, RLE for SDPose-Reg): the distiller applies it to the read cycle, the
``cycles`` term to every other cycle. MSE is ``nn.MSELoss(reduction='mean')`` (official
``TokenDistilLoss``). The official code does **not** detach the teacher (later) cycle, so the token terms
also pull cycle ``i+1`` towards cycle ``i``; ``detach_teacher=True`` is the textbook form (gradient only
into the student cycle).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slimpose.distillation.distiller import DistillTerm, StudentOutputs, TeacherOutputs
from slimpose.models.transformer.pruning import visual_at


def cycle_token_distillation(tokens: Sequence[torch.Tensor], detach_teacher: bool = False) -> torch.Tensor:
    """``sum_{i=1}^{N-1} MSE(T_i, T_{i+1})`` over consecutive cycles; 0 for one cycle."""
    if len(tokens) == 0:
        raise ValueError("cycle_token_distillation: no cycles given")
    total = tokens[0].new_zeros(())
    for student, teacher in zip(tokens[:-1], tokens[1:]):
        if student.shape != teacher.shape:
            raise ValueError(
                f"cycle_token_distillation: token shapes differ between cycles: {tuple(student.shape)} vs "
                f"{tuple(teacher.shape)}"
            )
        total = total + F.mse_loss(student, teacher.detach() if detach_teacher else teacher)
    return total


class CycleTaskTerm(DistillTerm):
    """The head's task loss on every cycle but the read one (whose loss the distiller adds itself)."""

    name = "cycles"
    scheduled = False  # a task loss, not a distillation term
    needs_teacher = False
    needs_cycles = True

    def __init__(self, weight: float, head: nn.Module) -> None:
        super().__init__(weight)
        object.__setattr__(self, "head", head)  # the distiller's own head, not a second copy in the tree

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None, batch: dict[str, Any]) -> torch.Tensor:
        losses = [self.head.loss(c[0], batch)[0] for i, c in enumerate(student.cycles) if i != student.read_cycle]
        return sum(losses, student.cycles[0][0].new_zeros(()))


class CycleTokenTerm(DistillTerm):
    """``sum_i MSE(T_i, T_{i+1})`` over consecutive cycles' keypoint (``kt``) or visual (``vt``) tokens."""

    needs_teacher = False
    needs_cycles = True

    def __init__(self, weight: float, which: str, detach_teacher: bool = False) -> None:
        super().__init__(weight)
        if which not in ("keypoint", "visual"):
            raise ValueError(f"which must be 'keypoint' or 'visual', got {which!r}")
        self.slot = 1 if which == "keypoint" else 2
        self.name = "kt" if which == "keypoint" else "vt"
        self.detach_teacher = detach_teacher

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None, batch: dict[str, Any]) -> torch.Tensor:
        cycles = student.cycles
        index = [c[3] if len(c) > 3 else None for c in cycles]  # grid positions (None: all, unpruned)
        if self.slot == 2 and any(i is not None for i in index):
            # pruned visual tokens: cycle i is compared on the grid positions cycle i + 1 kept
            return sum((cycle_token_distillation([visual_at(c[2], i, j), n[2]], self.detach_teacher)
                        for c, n, i, j in zip(cycles[:-1], cycles[1:], index[:-1], index[1:])),
                       cycles[0][2].new_zeros(()))
        tokens = [c[self.slot] for c in cycles]
        return cycle_token_distillation(tokens, self.detach_teacher)


def sdpose_terms(section: Any, head: nn.Module) -> list[DistillTerm]:
    """The terms of an ``SDPoseConfig`` (``sdpose`` section); the read cycle's task loss is the head's."""
    candidates = [CycleTaskTerm(section.task, head), CycleTokenTerm(section.kt, "keypoint", section.detach_teacher),
                  CycleTokenTerm(section.vt, "visual", section.detach_teacher)]
    return [t for t in candidates if t.weight > 0]
