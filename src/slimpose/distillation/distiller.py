"""One distiller for every method: a student trained through its head, a frozen teacher, weighted terms.

    L = task_weight * L_head(student output) + s(epoch) * sum_t w_t * L_t(student, teacher, batch)

``L_head`` is the student head's own loss (Smooth L1 for a DistilPose student, RLE for SDPose-Reg,
heatmap MSE for SDPose, ...). Each term ``L_t`` is a ``DistillTerm`` with its weight ``w_t``; the optional
schedule ``s`` is ``constant`` (1) or ``linear_decay`` (``1 - epoch / epochs``, DWPose's fade), set before
every epoch through ``set_epoch``; it scales the terms marked ``scheduled`` (every distillation term, not a
term that is a task loss, such as SDPose's loss on the other cycles). The student's forward is run once per batch in the form the terms ask
for (plain output, output + tokens, or all cycles of a multi-cycled model); the teacher (if any) runs in
eval mode under ``no_grad``, is held outside the module tree (not in ``parameters()`` / ``state_dict()``;
``train()`` leaves it in eval mode; ``to()`` moves it) and is never saved. DistilPose's four terms and
SDPose's cycle self-distillation are configurations of this class (``slimpose.distillation.build``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch
from torch import nn

from slimpose.distillation.teacher import freeze_teacher
from slimpose.engine.tasks import TopDownTask
from slimpose.models.base import TokenFeatures
from slimpose.utils.io import SlimposeInputError

SCHEDULES: dict[str, Callable[[int, int], float]] = {
    "constant": lambda epoch, epochs: 1.0,
    "linear_decay": lambda epoch, epochs: 1.0 - epoch / max(epochs, 1),
}


def _first_branch(output: Any) -> torch.Tensor:
    while isinstance(output, (list, tuple)):
        output = output[0]
    return output


def resolve_taps(model: nn.Module, names: Sequence[str]) -> dict[str, nn.Module]:
    """``name -> submodule`` of ``model`` for the tapped names (in order, without repeats); an unknown name
    raises SlimposeInputError listing the model's ``feature_stages``."""
    modules = dict(model.named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        stages = getattr(model, "feature_stages", ())
        raise SlimposeInputError(f"feature distillation: {type(model).__name__} has no submodule "
                                 f"{', '.join(missing)} (its feature_stages: {', '.join(stages) or 'none'})")
    return {n: modules[n] for n in dict.fromkeys(names)}


@contextlib.contextmanager
def capture_modules(modules: Mapping[str, nn.Module]) -> Iterator[dict[str, torch.Tensor]]:
    """Within the block, ``captured[name]`` is the last output of ``modules[name]`` (the first branch of a
    list output), recorded by forward hooks that are removed on exit."""
    captured: dict[str, torch.Tensor] = {}
    handles = []
    for name, module in modules.items():
        def hook(_module, _inputs, output, _name=name):
            captured[_name] = _first_branch(output)
        handles.append(module.register_forward_hook(hook))
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


def capture_outputs(model: nn.Module, names: Sequence[str]) -> contextlib.AbstractContextManager:
    """``capture_modules`` of ``model``'s submodules ``names`` (see ``resolve_taps``)."""
    return capture_modules(resolve_taps(model, names))


def _tapped(taps: Mapping[str, nn.Module], run: Callable[[torch.Tensor], Any], inputs: torch.Tensor) -> Any:
    """``run(inputs)`` with the outputs of ``taps`` put in the result's ``stages``."""
    if not taps:
        return run(inputs)
    with capture_modules(taps) as captured:
        out = run(inputs)
    out.stages = dict(captured)
    return out


@dataclass
class StudentOutputs:
    """The student's forward of one batch: ``output`` (what its head decodes), ``features`` (tokens of a
    token model) and, for a multi-cycled model, every cycle's ``(output, keypoint_tokens, visual_tokens)``
    with the index of the cycle that ``output`` is; ``stages``: the outputs of the submodules the terms tap
    (``student_taps``), by name."""

    output: Any
    features: Any = None
    cycles: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]] | None = None
    read_cycle: int = 0
    stages: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class TeacherOutputs:
    """The frozen teacher's output and, when a term needs them, its tokens and tapped stage outputs."""

    output: Any
    features: TokenFeatures | None = None
    stages: dict[str, torch.Tensor] = field(default_factory=dict)


class DistillTerm(nn.Module):
    """One weighted term of a distillation loss; ``forward(student, teacher, batch) -> scalar``.

    ``needs_teacher`` / ``needs_teacher_features``: what of the teacher it reads; ``needs_features``: the
    student's tokens; ``needs_cycles``: every cycle of a multi-cycled student; ``student_taps`` /
    ``teacher_taps``: names of submodules whose outputs it reads (``StudentOutputs.stages``); ``scheduled``:
    the distiller's schedule scales it.
    """

    name = "term"
    scheduled = True
    needs_teacher = True
    needs_teacher_features = False
    needs_features = False
    needs_cycles = False
    student_taps: tuple[str, ...] = ()
    teacher_taps: tuple[str, ...] = ()

    def __init__(self, weight: float) -> None:
        super().__init__()
        self.weight = float(weight)

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None,
                batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError


class Distiller(TopDownTask):
    """Engine task (``task(batch) -> (loss, logs)``, ``predict`` as ``TopDownTask``): student ``model`` +
    ``head``, ``terms``, an optional frozen ``teacher``, the record that goes into every checkpoint
    (``distill``) and ``frozen`` parts of the student (kept in eval mode without gradients)."""

    # keys of the old SDPose-Reg task (its RLE flow) -> the head's, for resuming a run of an older version
    LEGACY_KEYS = (("criterion.rle.", "head.rle."), ("sd_loss.criterion.rle.", None))

    def __init__(self, model: nn.Module, head: nn.Module, terms: Sequence[DistillTerm],
                 teacher: nn.Module | None = None, task_weight: float = 1.0, schedule: str = "constant",
                 record: dict[str, Any] | None = None, frozen: Sequence[nn.Module] = ()) -> None:
        super().__init__(model, head)
        if schedule not in SCHEDULES:
            raise SlimposeInputError(f"distillation schedule {schedule!r} is not one of {', '.join(SCHEDULES)}")
        self.terms = nn.ModuleList(terms)
        if any(t.needs_teacher for t in self.terms) and teacher is None:
            raise SlimposeInputError("distillation: the terms "
                                     f"{', '.join(t.name for t in self.terms if t.needs_teacher)} need a teacher, "
                                     "none was given")
        if any(t.needs_cycles for t in self.terms) and not hasattr(model, "forward_cycles"):
            raise SlimposeInputError(f"distillation: cycle terms need a multi-cycled model (forward_cycles), "
                                     f"got {type(model).__name__}")
        object.__setattr__(self, "teacher", freeze_teacher(teacher) if teacher is not None else None)
        self.task_weight = float(task_weight)
        self.schedule = schedule
        self.factor = 1.0
        self.record = dict(record or {})
        # parts of the student that do not train (DWPose stage 2: the backbone): no gradients, eval mode
        self.frozen = list(frozen)
        for module in self.frozen:
            freeze_teacher(module)
        # the tapped submodules, looked up once (plain dicts: not registered again as submodules)
        self._student_taps = resolve_taps(model, [n for t in self.terms for n in t.student_taps])
        self._teacher_taps = (resolve_taps(teacher, [n for t in self.terms for n in t.teacher_taps])
                              if teacher is not None else {})

    def set_epoch(self, epoch: int, epochs: int) -> None:
        """The schedule's factor of the distillation terms for ``epoch`` (0-based) of ``epochs``."""
        self.factor = float(SCHEDULES[self.schedule](epoch, epochs))

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if self.teacher is not None:
            self.teacher._apply(fn)
        return self

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        for module in self.frozen:
            module.eval()
        return self

    def run_student(self, inputs: torch.Tensor) -> StudentOutputs:
        """One forward of the student in the form the terms need (with the tapped stage outputs)."""
        return _tapped(self._student_taps, self._run_student, inputs)

    def _run_student(self, inputs: torch.Tensor) -> StudentOutputs:
        if any(t.needs_cycles for t in self.terms):
            cycles = self.model.forward_cycles(inputs)
            read = int(getattr(self.model, "read_cycle", 0))
            out, kpt, vis, *index = cycles[read]
            return StudentOutputs(out, TokenFeatures(kpt, vis, kpt, *index), cycles, read)
        if any(t.needs_features for t in self.terms):
            features = self.model.forward_features(inputs)
            _require_tokens(features, "student", self.model)
            return StudentOutputs(self.model.forward_head(features), features)
        return StudentOutputs(self.model(inputs))

    @torch.no_grad()
    def run_teacher(self, inputs: torch.Tensor) -> TeacherOutputs | None:
        """The frozen teacher's outputs (tokens only when a term reads them)."""
        if self.teacher is None or not any(t.needs_teacher for t in self.terms):
            return None
        if self.teacher.training:
            self.teacher.eval()
        return _tapped(self._teacher_taps, self._run_teacher, inputs)

    def _run_teacher(self, inputs: torch.Tensor) -> TeacherOutputs:
        if any(t.needs_teacher_features for t in self.terms):
            features = self.teacher.forward_features(inputs)
            _require_tokens(features, "teacher", self.teacher)
            return TeacherOutputs(self.teacher.forward_head(features), features)
        return TeacherOutputs(self.teacher(inputs))

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        inputs = batch[self.input_key]
        student = self.run_student(inputs)
        teacher = self.run_teacher(inputs)
        logs: dict[str, torch.Tensor] = {}
        total = inputs.new_zeros(())
        if self.task_weight > 0:
            loss, head_logs = self.head.loss(student.output, batch)
            total = total + self.task_weight * loss
            logs.update({k: self.task_weight * v for k, v in head_logs.items()})
        for term in self.terms:
            factor = self.factor if term.scheduled else 1.0
            value = (factor * term.weight) * term(student, teacher, batch)
            total = total + value
            logs[f"loss_{term.name}"] = value.detach()
        return total, logs

    def checkpoint_extras(self) -> dict[str, Any]:
        return {"distill": self.record}

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False):
        renamed = {}
        for key, value in state_dict.items():
            for old, new in self.LEGACY_KEYS:
                if key.startswith(old):
                    key = None if new is None else new + key[len(old):]
                    break
            if key is not None:
                renamed[key] = value
        return super().load_state_dict(renamed, strict=strict, assign=assign)


def _require_tokens(features: Any, who: str, model: nn.Module) -> None:
    if not isinstance(features, TokenFeatures):
        raise SlimposeInputError(f"distillation: the {who} {type(model).__name__} has no tokens; the token terms "
                                 "(L_KT / L_VT) need token models on both sides (switch them off: kt=0, vt=0)")
