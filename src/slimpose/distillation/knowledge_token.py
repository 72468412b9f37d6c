"""Knowledge-token distillation (ViTPose, Xu et al., NeurIPS 2022, Sec. 3.4, Table 8).

Stage 1 (``knowledge_token.stage='token'``): one learnable token ``t`` (1, 1, C_T) joins the visual tokens of
a frozen trained ViTPose teacher ``T``; only ``t`` is trained, with the teacher's own heatmap loss

    t* = argmin_t MSE(T({t; X}), K_gt)

Stage 2 (``'student'``): ``t*`` is frozen and joins the student's visual tokens,

    L = task MSE(S({t*; X}), K_gt) + output_kd MSE(S({t*; X}), K_T)

with ``K_T`` the teacher's heatmaps (output distillation, optional). Paper, ViTPose-L -> ViTPose-B on COCO
val: 75.8 (student alone), 76.0 (token), 76.3 (output KD), 76.6 AP (both).

What slimpose decides where the paper is silent (``docs/knowledge_token.md``):

* **Where the token sits**: before the patch tokens, after the patch embedding and its position embedding,
  with no position embedding of its own (``ViTPoseBackbone.forward(images, prefix=...)``); it takes part in
  every block and is dropped before the decoder. Without a position embedding the blocks are permutation
  equivariant, so before or after the patch tokens gives the same heatmaps.
* **Widths** (ViTPose-L 1024 -> ViTPose-B 768, ``projection``): ``'auto'`` (default) puts a linear layer
  C_T -> C_S in front of the student, trained with the student while ``t*`` stays frozen (t* is the
  teacher's knowledge; re-learning it in the student's space would be stage 1 again without the teacher),
  and none when the widths are equal; ``'linear'`` always; ``'none'`` requires equal widths.
* **Teacher of the output distillation**: the plain teacher, as the paper's (``teacher_with_token=False``);
  ``True`` takes ``K_T`` from the teacher with ``t*``.
* **Output-KD loss**: the task's JointsMSE (``0.5 * mean``) between student and teacher heatmaps, over every
  joint (the teacher has a heatmap for unlabelled joints too), teacher detached.

The token file (``KnowledgeToken.save``) holds the token, its width and the teacher it was trained on (path,
sha256, model name); a stage-1 checkpoint (``best.pth`` / ``last.pth``) is one as well, since the stage-1
model's state dict is the token alone (the frozen teacher is held outside the module tree, as a distiller's).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimpose.config.schema import KnowledgeTokenConfig, TrainConfig
from slimpose.distillation.distiller import Distiller, DistillTerm, StudentOutputs, TeacherOutputs
from slimpose.distillation.teacher import check_teacher_compatibility, file_sha256, freeze_teacher, load_teacher
from slimpose.losses.heatmap import per_joint_mse
from slimpose.models.base import PoseNet
from slimpose.utils.io import SlimposeInputError, torch_save_atomic

TOKEN_FORMAT = "slimpose-knowledge-token-v1"
TOKEN_KEY = "knowledge_token.token"  # the token in a stage-1 / stage-2 state dict
_TEACHER_FIELDS = ("teacher_model", "teacher_overrides", "teacher_checkpoint", "check_teacher")


class KnowledgeToken(nn.Module):
    """The knowledge token ``t`` (1, 1, ``dim``) and where it came from (``teacher``: path, sha256, model of the
    teacher it was trained on); ``forward()`` returns it. Saved as a small file by ``save``."""

    def __init__(self, dim: int, teacher: dict[str, Any] | None = None, init_std: float = 0.02) -> None:
        super().__init__()
        self.token = nn.Parameter(torch.zeros(1, 1, int(dim)))
        if init_std > 0:
            nn.init.trunc_normal_(self.token, std=init_std)
        self.teacher = dict(teacher or {})

    @property
    def dim(self) -> int:
        return int(self.token.shape[-1])

    def forward(self) -> torch.Tensor:
        return self.token

    def freeze(self) -> "KnowledgeToken":
        """Stage 2: ``t*`` is not trained any more."""
        self.token.requires_grad_(False)
        return self

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``{format, token, dim, teacher}`` atomically (loadable with ``weights_only=True``)."""
        return torch_save_atomic({"format": TOKEN_FORMAT, "token": self.token.detach().cpu().clone(),
                                  "dim": self.dim, "teacher": _plain(self.teacher)}, path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KnowledgeToken":
        """A token file or a knowledge-token checkpoint (stage 1's, or a stage-2 student's) -> the token.
        Every bad input is a SlimposeInputError naming the file."""
        path = Path(path).expanduser()
        if not path.is_file():
            raise SlimposeInputError(f"{path}: knowledge token file not found (knowledge_token.token_path: a token "
                                     "file or the best.pth / last.pth of a knowledge_token.stage='token' run)")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad input file
            raise SlimposeInputError(f"{path}: cannot be read as a knowledge token ({type(e).__name__}: {e})") from None
        token, teacher = _token_entry(obj, path)
        if not isinstance(token, torch.Tensor) or token.dim() != 3 or token.shape[:2] != (1, 1):
            shape = tuple(token.shape) if isinstance(token, torch.Tensor) else type(token).__name__
            raise SlimposeInputError(f"{path}: the knowledge token must be a (1, 1, C) tensor, got {shape}")
        out = cls(token.shape[-1], teacher, init_std=0.0)
        with torch.no_grad():
            out.token.copy_(token.float())
        return out


def _plain(obj: Any) -> Any:
    """A record as plain containers (tuples -> lists) for a ``weights_only`` file."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _token_entry(obj: Any, path: Path) -> tuple[Any, dict[str, Any]]:
    """(token tensor, teacher record) of a token file or of a knowledge-token checkpoint."""
    if isinstance(obj, dict) and obj.get("format") == TOKEN_FORMAT:
        return obj.get("token"), dict(obj.get("teacher") or {})
    record = obj.get("distill") if isinstance(obj, dict) else None
    model = obj.get("model") if isinstance(obj, dict) else None
    if isinstance(record, dict) and record.get("method") == "knowledge_token" and isinstance(model, dict) \
            and TOKEN_KEY in model:
        return model[TOKEN_KEY], dict((record.get("token") or {}).get("teacher") or {})
    raise SlimposeInputError(f"{path}: neither a knowledge token file ({TOKEN_FORMAT}) nor a checkpoint of a "
                             "knowledge_token run")


def supports_prefix(model: nn.Module) -> bool:
    """A ViTPose-family model: its ``backbone`` takes ``prefix`` tokens and has a width ``out_channels``."""
    backbone = getattr(model, "backbone", None)
    if backbone is None or not hasattr(backbone, "out_channels"):
        return False
    try:
        return "prefix" in inspect.signature(backbone.forward).parameters
    except (TypeError, ValueError):
        return False


def token_width(model: nn.Module, what: str) -> int:
    """The token width of a ViTPose-family ``model`` (its backbone's ``out_channels``)."""
    if not supports_prefix(model):
        raise SlimposeInputError(f"knowledge_token: the {what} {type(model).__name__} is not a ViTPose-family model "
                                 "(its backbone must take prefix tokens: backbone.forward(images, prefix=...))")
    return int(model.backbone.out_channels)


def make_projection(mode: str, token_dim: int, model_dim: int, where: str = "knowledge_token") -> nn.Linear | None:
    """The layer between the token (``token_dim``) and the model (``model_dim``), see ``projection``.

    ``'linear'`` (and ``'auto'`` with different widths) is a ``Linear(token_dim, model_dim)`` initialised
    semi-orthogonally with zero bias (the projected token starts at about the token's scale)."""
    if mode not in ("auto", "linear", "none"):
        raise SlimposeInputError(f"knowledge_token.projection {mode!r} is not 'auto', 'linear' or 'none'")
    if mode == "none" or (mode == "auto" and token_dim == model_dim):
        if token_dim != model_dim:
            raise SlimposeInputError(f"{where}: the token is {token_dim}-d but the model is {model_dim}-d; "
                                     "knowledge_token.projection='none' needs equal widths (use 'auto' or 'linear' "
                                     "for a linear projection trained with the student)")
        return None
    proj = nn.Linear(token_dim, model_dim)
    nn.init.orthogonal_(proj.weight)
    nn.init.zeros_(proj.bias)
    return proj


class KnowledgeTokenModel(PoseNet):
    """A ViTPose-family ``model`` run with a knowledge token before its patch tokens (a ``PoseNet``: the
    normal task, training loop, evaluation and flip test apply).

    ``frozen=True`` (stage 1, or a teacher with its token): ``model`` is frozen, in eval mode and held outside
    the module tree, so ``state_dict()`` / ``parameters()`` are the token's alone. ``frozen=False`` (stage 2):
    ``model``'s submodules are this module's, under their own names (``backbone.*``, ``keypoint_head.*``: the
    student's keys, layer-wise rate decay and feature stages as the plain model's), plus ``knowledge_token.*``
    and the ``projection`` (``token_proj.*``) when there is one.
    """

    def __init__(self, model: nn.Module, token: KnowledgeToken, projection: nn.Module | None = None,
                 frozen: bool = False) -> None:
        super().__init__()
        width = token_width(model, "model")
        if projection is None and token.dim != width:
            raise SlimposeInputError(f"knowledge_token: a {token.dim}-d token for a {width}-d model needs a projection")
        object.__setattr__(self, "inner", model)
        self.frozen = bool(frozen)
        if self.frozen:
            freeze_teacher(model)
        else:
            for name, child in model.named_children():
                self.add_module(name, child)
            for name, param in model.named_parameters(recurse=False):
                self.register_parameter(name, param)
            for name, buf in model.named_buffers(recurse=False):
                self.register_buffer(name, buf, persistent=name not in model._non_persistent_buffers_set)
        self.knowledge_token = token
        self.token_proj = projection
        self.head_class = model.head_class
        for attr in ("input_size", "num_keypoints", "heatmap_size", "output_stride"):
            if hasattr(model, attr):
                setattr(self, attr, getattr(model, attr))

    @property
    def token_dim(self) -> int:
        return self.knowledge_token.dim

    def prefix(self) -> torch.Tensor:
        """The token as the model sees it: (1, 1, C_model)."""
        t = self.knowledge_token()
        return self.token_proj(t) if self.token_proj is not None else t

    def forward_features(self, images: torch.Tensor) -> Any:
        self.inner.check_images(images)
        return self.inner.backbone(images, prefix=self.prefix())

    def forward_head(self, features: Any) -> Any:
        return self.inner.forward_head(features)

    def train(self, mode: bool = True) -> "KnowledgeTokenModel":
        super().train(mode)
        self.inner.train(mode and not self.frozen)
        return self

    def _apply(self, fn, recurse: bool = True):
        super()._apply(fn, recurse)
        if self.frozen:
            self.inner._apply(fn)
        return self


# ----------------------------------------------------------------------------------------------- output KD


def heatmap_kd_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """``MSE(S, K_T)`` as the task's JointsMSE: ``0.5 * mean((S - K_T)^2)`` over pixels, joints and batch, every
    joint weighted 1, the teacher detached."""
    if student.shape != teacher.shape:
        raise SlimposeInputError(f"output distillation: student heatmaps {tuple(student.shape)} vs teacher heatmaps "
                                 f"{tuple(teacher.shape)} (same keypoints and heatmap size needed)")
    return per_joint_mse(student, teacher.detach(), None).mean()


class HeatmapKDTerm(DistillTerm):
    """Output distillation between student and teacher heatmaps (``heatmap_kd_loss``)."""

    name = "output_kd"

    def forward(self, student: StudentOutputs, teacher: TeacherOutputs | None,
                batch: dict[str, Any]) -> torch.Tensor:
        return heatmap_kd_loss(student.output, teacher.output)


# ----------------------------------------------------------------------------------------------- building


def _section(cfg: TrainConfig) -> KnowledgeTokenConfig:
    if cfg.knowledge_token is None:
        raise SlimposeInputError("the config has no knowledge_token section")
    return cfg.knowledge_token


def _load_teacher(cfg: TrainConfig, section: KnowledgeTokenConfig, teacher: nn.Module | None,
                  hint: str) -> tuple[nn.Module, dict[str, Any]]:
    from slimpose.engine.builders import model_info

    loaded, record = load_teacher(section.teacher_checkpoint, section.teacher_model, section.teacher_overrides,
                                  model_info(cfg).num_keypoints, tuple(cfg.data.input_size), teacher,
                                  missing_hint=hint)
    if not getattr(getattr(loaded, "head_class", None), "outputs_heatmaps", False):
        raise SlimposeInputError(f"{section.teacher_checkpoint}: the teacher {record['model']!r} must be a heatmap "
                                 "model")
    return loaded, record


def _student_token(section: KnowledgeTokenConfig, load: bool) -> KnowledgeToken:
    """Stage 2: ``t*`` from ``token_path`` (``load``), or a blank of its width whose value a checkpoint
    brings (rebuilding a trained student: the width from ``token_dim`` or else the token file)."""
    path = section.token_path
    if not path:
        raise SlimposeInputError("knowledge_token.token_path: stage 'student' needs the stage-1 token (a token file "
                                 "or the best.pth of the stage 'token' run); without a token set "
                                 "knowledge_token.use_token=false")
    if not load and section.token_dim > 0:
        return KnowledgeToken(section.token_dim, init_std=0.0).freeze()
    token = KnowledgeToken.load(path)
    if section.token_dim > 0 and token.dim != section.token_dim:
        raise SlimposeInputError(f"{path}: the knowledge token is {token.dim}-d, knowledge_token.token_dim is "
                                 f"{section.token_dim}")
    return token.freeze()


def build_token_model(cfg: TrainConfig, load_pretrained: bool = True, teacher: nn.Module | None = None
                      ) -> tuple[nn.Module, dict[str, Any] | None]:
    """The model a knowledge-token config trains, and (stage 1) its teacher's record.

    Stage 'token': the teacher of ``teacher_checkpoint`` (architecture from the checkpoint, as every
    distillation teacher; ``model.name`` must name it) frozen, with a fresh token. Stage 'student': the
    student of ``cfg.model`` (``load_pretrained``: its ``model.pretrained`` weights and the token file's
    ``t*``; else a blank token for a checkpoint's weights) with the frozen token and its projection, or the
    plain student with ``use_token=false``. ``teacher``: a model of the teacher checkpoint's architecture.
    """
    from slimpose.engine.builders import build_model

    section = _section(cfg)
    if section.stage == "token":
        if cfg.model.pretrained:
            raise SlimposeInputError("model.pretrained: in knowledge_token.stage='token' the teacher's weights come "
                                     "from knowledge_token.teacher_checkpoint (--teacher); unset model.pretrained")
        loaded, record = _load_teacher(cfg, section, teacher, "stage 'token' attaches the token to this teacher")
        if record["model"] != cfg.model.name:
            raise SlimposeInputError(f"{section.teacher_checkpoint}: the teacher is a {record['model']!r} model but "
                                     f"model.name is {cfg.model.name!r}; in knowledge_token.stage='token' model.name "
                                     "names the teacher")
        token = KnowledgeToken(token_width(loaded, "teacher"), teacher=_provenance(record),
                               init_std=section.token_init_std)
        return KnowledgeTokenModel(loaded, token, frozen=True), record
    student = build_model(dataclasses.replace(cfg, knowledge_token=None), load_pretrained=load_pretrained)
    if not section.use_token:
        return student, None
    width = token_width(student, "student")
    token = _student_token(section, load_pretrained)
    where = section.token_path or "knowledge_token"
    return KnowledgeTokenModel(student, token, make_projection(section.projection, token.dim, width, where)), None


def _provenance(record: dict[str, Any]) -> dict[str, Any]:
    """What a token keeps of its teacher's record: path, sha256, model name."""
    return {k: record.get(k) for k in ("path", "sha256", "model")}


def _check_token_teacher(section: KnowledgeTokenConfig, token: KnowledgeToken, teacher_sha: str,
                         teacher_width: int | None = None) -> None:
    """Stage 2 with a teacher (``check_teacher``): the token must have been trained on it (sha256, width)."""
    if not section.check_teacher:
        return
    path, teacher_path = section.token_path, section.teacher_checkpoint
    if teacher_width is not None and token.dim != teacher_width:
        raise SlimposeInputError(f"{path}: the knowledge token is {token.dim}-d but the teacher {teacher_path} is "
                                 f"{teacher_width}-d: the token comes from another teacher")
    sha = token.teacher.get("sha256")
    if sha and sha != teacher_sha:
        raise SlimposeInputError(
            f"{path}: the knowledge token was trained on teacher {token.teacher.get('path')} (sha256 {sha[:12]}), "
            f"not on {teacher_path} (sha256 {teacher_sha[:12]}); give the token of this teacher or set "
            "knowledge_token.check_teacher=false")


def knowledge_token_distiller(cfg: TrainConfig, teacher: nn.Module | None = None) -> Distiller:
    """The task of a ``knowledge_token`` config: stage 1 (only the token of the frozen teacher trains) or
    stage 2 (student + frozen token + projection, optional output distillation from the teacher)."""
    from slimpose.heads import build_head

    section = _section(cfg)
    model, record = build_token_model(cfg, teacher=teacher)
    head = build_head(cfg, model)
    if not head.outputs_heatmaps:
        raise SlimposeInputError(f"model.name: {cfg.model.name!r} is not a heatmap model (knowledge-token "
                                 "distillation compares heatmaps)")
    weights = {k: v for k, v in dataclasses.asdict(section).items() if k not in _TEACHER_FIELDS}
    token = getattr(model, "knowledge_token", None)
    info: dict[str, Any] = {"method": "knowledge_token", "stage": section.stage, "teacher": record,
                            "loss_weights": weights}
    if section.stage == "token":
        info["token"] = {"dim": token.dim, "teacher": token.teacher}
        return Distiller(model, head, [], None, task_weight=section.task, schedule=section.schedule, record=info)
    terms: list[DistillTerm] = []
    kd_teacher = None
    if token is not None:
        info["token"] = {"dim": token.dim, "teacher": token.teacher, "source": str(section.token_path),
                         "projection": model.token_proj is not None}
    if section.output_kd > 0:
        kd_teacher, record = _load_teacher(cfg, section, teacher, "for a token-only student set "
                                                                  "knowledge_token.output_kd=0")
        info["teacher"] = record
        t_token = token
        if section.teacher_with_token and t_token is None:  # a plain student, the teacher with its token
            t_token = _student_token(section, True)
        if t_token is not None:
            width = token_width(kd_teacher, "teacher") if supports_prefix(kd_teacher) else None
            _check_token_teacher(section, t_token, record["sha256"], width)
        if section.teacher_with_token:  # the teacher's own copy, outside the student's module tree
            kd_teacher = KnowledgeTokenModel(kd_teacher, copy.deepcopy(t_token).freeze(), frozen=True)
        if section.check_teacher:
            record["extra"].update(_check_heatmaps(model, kd_teacher))
        terms.append(HeatmapKDTerm(section.output_kd))
    elif token is not None and section.teacher_checkpoint:  # a token-only student: is its token this teacher's?
        if not Path(section.teacher_checkpoint).is_file():
            raise SlimposeInputError(f"knowledge_token.teacher_checkpoint: {section.teacher_checkpoint} not found")
        _check_token_teacher(section, token, file_sha256(section.teacher_checkpoint))
    return Distiller(model, head, terms, kd_teacher, task_weight=section.task,
                     schedule=section.schedule, record=info)


def _check_heatmaps(student: nn.Module, teacher: nn.Module) -> dict[str, Any]:
    """Teacher and student must give heatmaps of the same keypoints and size."""
    info = check_teacher_compatibility(student, teacher, need_tokens=False)
    w, h = student.heatmap_size
    want = [int(student.num_keypoints), int(h), int(w)]
    if info["teacher_output_shape"] != want:
        raise SlimposeInputError(f"output distillation: teacher heatmaps (K, h, w) = {info['teacher_output_shape']}"
                                 f" vs student {want}: teacher and student need the same keypoints and heatmap size")
    return info


def export_token(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """The token of a knowledge-token checkpoint (e.g. stage 1's ``best.pth``) as a small token file."""
    return KnowledgeToken.load(checkpoint).save(out)


def evaluate_token_checkpoint(cfg: TrainConfig, checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                              tag: str = "eval") -> dict[str, float]:
    """``engine.trainer.evaluate_checkpoint`` for a knowledge-token model (the engine rebuilds plain models
    only): the model of ``cfg`` rebuilt (stage 1: the teacher from its checkpoint), ``checkpoint``'s weights,
    the validation split."""
    from slimpose.engine.trainer import evaluate_checkpoint

    return evaluate_checkpoint(cfg, checkpoint, out_dir, tag=tag,
                               build=lambda c: build_token_model(c, load_pretrained=False)[0])
