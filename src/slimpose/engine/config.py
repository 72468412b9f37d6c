"""Training configuration: plain nested dataclasses, JSON round-trip and ``--set key.sub=value`` overrides.

``TrainConfig`` holds ``data`` (:class:`DataConfig`), ``model`` (:class:`ModelConfig`), ``optim``
(:class:`OptimConfig`) and ``schedule`` (:class:`ScheduleConfig`). Every run writes its config as
``config.json`` into its work dir; ``load_config_file`` reads it back so that a run can be repeated.
Override values are converted from the dataclass field's type (bool, int, float, str, tuples, lists,
``X | None``, dicts as JSON / Python literals).
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Union

from slimpose.data.transforms import AugmentConfig
from slimpose.utils.io import SlimposeInputError, load_json

DATASET_NAMES = ("synthetic", "coco", "crowdpose", "mpii")
AMP_MODES = ("none", "fp16", "bf16")


def _augment_params_class() -> type:
    """``AugmentParams``: the fields of ``slimpose.data.transforms.AugmentConfig`` (see there), mutable.

    Defaults: HRNet / TokenPose (flip 0.5, half body p=0.3 with > 8 labelled joints, scale 0.35,
    rotation 45 deg with p=0.6); colour jitter is not part of the official recipes (off here).
    """
    defaults = {"color_jitter": False}
    hints = typing.get_type_hints(AugmentConfig)
    fields = [
        (f.name, hints[f.name], field(default=defaults.get(f.name, f.default)))
        for f in dataclasses.fields(AugmentConfig)
    ]
    cls = dataclasses.make_dataclass("AugmentParams", fields)
    cls.__module__ = __name__
    cls.__doc__ = _augment_params_class.__doc__
    return cls


AugmentParams = _augment_params_class()


@dataclass
class DataConfig:
    """Data set, its paths (derived from ``data_root`` with the official layouts), target and loader settings.

    Layouts under ``data_root``: COCO ``annotations/person_keypoints_{train,val}2017.json``, ``train2017/``,
    ``val2017/``, ``person_detection_results/COCO_val2017_detections_AP_H_56_person.json``; CrowdPose
    ``json/crowdpose_{trainval,test}.json`` + ``images/``; MPII ``annotations/mpii_{train,val}.json`` +
    ``images/``; synthetic ``annotations/person_keypoints_{train,val}.json`` + ``images/`` (generated on
    first use). The ``*_ann`` / ``*_images`` / ``det_file`` fields override the derived paths.
    """

    dataset: str = "synthetic"
    data_root: str = "data/synthetic"
    train_ann: str | None = None
    train_images: str | None = None
    val_ann: str | None = None
    val_images: str | None = None
    use_gt_bbox: bool = True
    det_file: str | None = None
    det_score_thr: float = 0.0
    input_size: tuple[int, int] = (192, 256)  # (w, h)
    heatmap_size: tuple[int, int] = (48, 64)  # (w, h)
    sigma: float = 2.0
    udp: bool = False
    unbiased_encoding: bool = False
    aug: AugmentParams = field(default_factory=AugmentParams)
    batch_size: int = 32  # per process (GPU)
    val_batch_size: int = 32
    workers: int = 2
    val_workers: int = 2
    train_subset: int = 0  # > 0: only the first N training instances (smoke runs)
    val_subset: int = 0
    synthetic_train_images: int = 200
    synthetic_val_images: int = 50
    synthetic_seed: int = 0
    synthetic_image_size: tuple[int, int] = (320, 256)  # (w, h)
    synthetic_preset: str = "default"  # "default" (the benchmark set) or "easy" (SynthConfig.easy())


@dataclass
class ModelConfig:
    """A factory name of ``slimpose.models.MODELS`` and keyword overrides passed to it."""

    name: str = "tokenpose_s_v1"
    overrides: dict[str, Any] = field(default_factory=dict)
    pretrained: str | None = None  # checkpoint / state dict loaded into the model before training


@dataclass
class OptimConfig:
    """Adam(W) as in the official configs; ``grad_clip`` > 0 clips the global gradient norm."""

    name: str = "adam"  # 'adam' | 'adamw'
    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 0.0


@dataclass
class ScheduleConfig:
    """Epochs, per-iteration linear warm-up and step decay at epoch milestones."""

    epochs: int = 300
    warmup_iters: int = 500
    warmup_ratio: float = 1e-3
    milestones: tuple[int, ...] = (200, 260)
    gamma: float = 0.1


@dataclass
class TrainConfig:
    """Everything a training run needs."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    name: str = "run"
    seed: int = 0
    work_dir: str = "work_dirs/run"
    device: str = "auto"  # 'auto' | 'cpu' | 'cuda'
    amp: str = "none"  # 'none' | 'fp16' | 'bf16' (CUDA only)
    eval_interval: int = 10  # epochs; the last epoch is always evaluated
    flip_test: bool = True
    shift_heatmap: bool = True  # 1-px shift of flipped-back heatmaps (False for UDP)
    dark: bool = True  # DARK (unbiased) decoding at test time
    ohkm: bool = False
    ohkm_topk: int = 8
    sync_bn: bool = False
    find_unused_parameters: bool = False  # DDP option, for tasks whose forward skips some parameters
    log_interval: int = 50
    tensorboard: bool = True
    deterministic: bool = False
    num_threads: int = 0  # > 0: torch.set_num_threads (CPU runs)
    nms_thr: float = 0.9
    score_thr: float = 0.2


# ----------------------------------------------------------------------------------------------- validation


def validate_config(cfg: TrainConfig, where: str = "config") -> TrainConfig:
    """Raise a SlimposeInputError naming ``where`` and the field for values that cannot work."""

    def bad(key: str, msg: str) -> SlimposeInputError:
        return SlimposeInputError(f"{where}: {key}: {msg}")

    if cfg.data.dataset not in DATASET_NAMES:
        raise bad("data.dataset",
                  f"unknown data set {cfg.data.dataset!r} (choose from {', '.join(DATASET_NAMES)})")
    from slimpose.data.synth import SYNTH_PRESETS

    if cfg.data.synthetic_preset not in SYNTH_PRESETS:
        raise bad("data.synthetic_preset",
                  f"{cfg.data.synthetic_preset!r} is not one of {', '.join(SYNTH_PRESETS)}")
    if cfg.amp not in AMP_MODES:
        raise bad("amp", f"{cfg.amp!r} is not one of {', '.join(AMP_MODES)}")
    if cfg.optim.name not in ("adam", "adamw"):
        raise bad("optim.name", f"{cfg.optim.name!r} is not 'adam' or 'adamw'")
    for key, size in (("data.input_size", cfg.data.input_size), ("data.heatmap_size", cfg.data.heatmap_size)):
        if len(size) != 2 or min(size) <= 0:
            raise bad(key, f"expected two positive sizes (w, h), got {size}")
    positive = {
        "data.batch_size": cfg.data.batch_size,
        "data.val_batch_size": cfg.data.val_batch_size,
        "schedule.epochs": cfg.schedule.epochs,
        "eval_interval": cfg.eval_interval,
        "log_interval": cfg.log_interval,
        "ohkm_topk": cfg.ohkm_topk,
    }
    for key, value in positive.items():
        if value <= 0:
            raise bad(key, f"must be positive, got {value}")
    if cfg.optim.lr <= 0:
        raise bad("optim.lr", f"must be positive, got {cfg.optim.lr}")
    return cfg


# ----------------------------------------------------------------------------------------------- dict / JSON


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-serialisable dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def _coerce(value: Any, tp: Any, key: str, where: str) -> Any:
    """Check / convert a JSON value to the field type ``tp``."""

    def bad() -> SlimposeInputError:
        return SlimposeInputError(f"{where}: {key}: expected {_type_name(tp)}, got {value!r}")

    if tp is Any:
        return value
    if _is_union(tp):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arm in args:
            if arm is type(None):
                continue
            try:
                return _coerce(value, arm, key, where)
            except SlimposeInputError as e:
                errors.append(e)
        raise bad()
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise bad()
        return _from_dict(tp, value, key, where)
    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise bad()
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise bad()
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise bad()
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad()
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise SlimposeInputError(
                    f"{where}: {key}: expected {len(args)} values, got {len(value)}: {value!r}"
                )
            items = [_coerce(v, a, f"{key}[{i}]", where) for i, (v, a) in enumerate(zip(value, args))]
        else:
            elem = args[0] if args else Any
            items = [_coerce(v, elem, f"{key}[{i}]", where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise bad()
        return dict(value)
    return value


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


def _from_dict(cls: type, data: dict[str, Any], prefix: str, where: str) -> Any:
    hints = _type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        full = [f"{prefix}.{k}" if prefix else k for k in unknown]
        raise SlimposeInputError(
            f"{where}: unknown config key(s) {', '.join(full)} (valid keys of "
            f"{prefix or 'the top level'}: {', '.join(names)})"
        )
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        kwargs[name] = _coerce(value, hints[name], key, where)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any], where: str = "config") -> TrainConfig:
    """Build a TrainConfig from a (possibly partial) dict; unknown keys raise a SlimposeInputError."""
    if not isinstance(data, dict):
        raise SlimposeInputError(f"{where}: expected a JSON object at the top level")
    return validate_config(_from_dict(TrainConfig, data, "", where), where)


def load_config_file(path: str | os.PathLike) -> TrainConfig:
    """Read a ``config.json`` written by a run (or a hand-written partial one)."""
    return config_from_dict(load_json(path, "config file"), where=str(path))


# ----------------------------------------------------------------------------------------------- overrides

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}
_NONE = {"none", "null"}


def _literal(text: str) -> Any:
    """JSON / Python literal, or the text itself when it is neither."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, json.JSONDecodeError):
            continue
    return text


def parse_value(text: str, tp: Any, key: str) -> Any:
    """Convert a command-line string to the field type ``tp``."""
    where = "--set"

    def bad(extra: str = "") -> SlimposeInputError:
        return SlimposeInputError(f"{where} {key}={text}: cannot convert to {_type_name(tp)}{extra}")

    s = text.strip()
    if _is_union(tp):
        args = typing.get_args(tp)
        if type(None) in args and s.lower() in _NONE:
            return None
        for arm in args:
            if arm is type(None):
                continue
            try:
                return parse_value(text, arm, key)
            except SlimposeInputError:
                continue
        raise bad()
    if dataclasses.is_dataclass(tp):
        raise SlimposeInputError(f"{where} {key}: is a section; set one of its fields ({key}.<field>=...)")
    if tp is bool:
        if s.lower() in _TRUE:
            return True
        if s.lower() in _FALSE:
            return False
        raise bad(" (use true/false)")
    if tp is int:
        try:
            return int(s)
        except ValueError:
            try:
                f = float(s)
            except ValueError:
                raise bad() from None
            if f.is_integer():
                return int(f)
            raise bad() from None
    if tp is float:
        try:
            return float(s)
        except ValueError:
            raise bad() from None
    if tp is str:
        return text
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        inner = s
        if inner[:1] in "([" and inner[-1:] in ")]":
            inner = inner[1:-1]
        parts = [p.strip() for p in inner.split(",") if p.strip() != ""] if inner.strip() else []
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(parts) != len(args):
                raise bad(f" (expected {len(args)} comma-separated values)")
            items = [parse_value(p, a, key) for p, a in zip(parts, args)]
        else:
            elem = args[0] if args else str
            items = [parse_value(p, elem, key) for p in parts]
        return tuple(items) if origin is tuple else items
    if origin is dict or tp is dict:
        value = _literal(s)
        if not isinstance(value, dict):
            raise bad(" (expected a JSON object)")
        return value
    if tp is Any:
        return _literal(s)
    raise bad()


def apply_override(cfg: TrainConfig, assignment: str) -> TrainConfig:
    """Apply one ``key.sub=value`` in place; ``model.overrides.NAME=value`` sets one factory keyword."""
    if "=" not in assignment:
        raise SlimposeInputError(f"--set {assignment!r}: expected KEY=VALUE (e.g. optim.lr=0.01)")
    key, text = assignment.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(p == "" for p in parts):
        raise SlimposeInputError(f"--set {assignment!r}: malformed key {key!r}")
    obj: Any = cfg
    path = []
    for i, part in enumerate(parts):
        path.append(part)
        last = i == len(parts) - 1
        if isinstance(obj, dict):
            # free-form dict (model.overrides): the rest of the key is one entry name
            name = ".".join(parts[i:])
            obj[name] = _literal(text.strip())
            return cfg
        if not dataclasses.is_dataclass(obj):
            raise SlimposeInputError(f"--set {key}: {'.'.join(path[:-1])} is not a section")
        names = [f.name for f in dataclasses.fields(obj)]
        if part not in names:
            section = ".".join(path[:-1]) or "the top level"
            raise SlimposeInputError(
                f"--set {key}: unknown config key {'.'.join(path)!r} "
                f"(valid keys of {section}: {', '.join(names)})"
            )
        if last:
            tp = _type_hints(type(obj))[part]
            setattr(obj, part, parse_value(text, tp, key))
            return cfg
        obj = getattr(obj, part)
    return cfg


def apply_overrides(
    cfg: TrainConfig,
    assignments: list[str] | tuple[str, ...],
    validate: Callable[[Any, str], Any] = validate_config,
) -> TrainConfig:
    """A copy of ``cfg`` with every ``key=value`` applied, then validated (``validate(cfg, "--set")``)."""
    cfg = copy.deepcopy(cfg)
    for a in assignments:
        apply_override(cfg, a)
    return validate(cfg, "--set")


def config_with_section_from_dict(
    cls: type, data: dict[str, Any], section: str, where: str = "config", raw_keys: tuple[str, ...] = ()
) -> Any:
    """A ``cls`` (a TrainConfig subclass with one extra dataclass field ``section``) from a (partial) dict.

    The TrainConfig part goes through ``config_from_dict``; every ``section`` entry is applied like a
    ``--set`` override. ``raw_keys`` fields take a JSON object or null as it is; any other object / list
    value, and unknown keys, raise a SlimposeInputError naming ``where``. Not validated beyond TrainConfig.
    """
    if not isinstance(data, dict):
        raise SlimposeInputError(f"{where}: expected a JSON object at the top level")
    data = dict(data)
    values = data.pop(section, {}) or {}
    if not isinstance(values, dict):
        raise SlimposeInputError(f"{where}: {section}: expected an object, got {values!r}")
    base = config_from_dict(data, where)
    cfg = cls(**{f.name: getattr(base, f.name) for f in dataclasses.fields(TrainConfig)})
    params = getattr(cfg, section)
    names = [f.name for f in dataclasses.fields(params)]
    for key, value in values.items():
        if key not in names:
            raise SlimposeInputError(
                f"{where}: unknown config key {section}.{key} (valid keys of {section}: {', '.join(names)})"
            )
        if key in raw_keys and isinstance(value, (dict, type(None))):
            setattr(params, key, value)
            continue
        if isinstance(value, (dict, list)):
            raise SlimposeInputError(f"{where}: {section}.{key}: unexpected value {value!r}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        apply_override(cfg, f"{section}.{key}={text}")
    return cfg


# ----------------------------------------------------------------------------------------------- data paths


@dataclass
class DataPaths:
    """Resolved files of a data set."""

    train_ann: Path
    train_images: Path
    val_ann: Path
    val_images: Path
    det_file: Path | None


def resolve_data_paths(data: DataConfig) -> DataPaths:
    """Derive the annotation / image paths from ``data_root`` (official layouts); explicit fields win."""
    root = Path(data.data_root).expanduser()
    if data.dataset == "coco":
        d = DataPaths(
            root / "annotations/person_keypoints_train2017.json", root / "train2017",
            root / "annotations/person_keypoints_val2017.json", root / "val2017",
            root / "person_detection_results/COCO_val2017_detections_AP_H_56_person.json",
        )
    elif data.dataset == "crowdpose":
        d = DataPaths(root / "json/crowdpose_trainval.json", root / "images",
                      root / "json/crowdpose_test.json", root / "images", None)
    elif data.dataset == "mpii":
        d = DataPaths(root / "annotations/mpii_train.json", root / "images",
                      root / "annotations/mpii_val.json", root / "images", None)
    elif data.dataset == "synthetic":
        d = DataPaths(root / "annotations/person_keypoints_train.json", root / "images",
                      root / "annotations/person_keypoints_val.json", root / "images", None)
    else:
        raise SlimposeInputError(f"data.dataset: unknown data set {data.dataset!r}")
    if data.train_ann:
        d.train_ann = Path(data.train_ann).expanduser()
    if data.train_images:
        d.train_images = Path(data.train_images).expanduser()
    if data.val_ann:
        d.val_ann = Path(data.val_ann).expanduser()
    if data.val_images:
        d.val_images = Path(data.val_images).expanduser()
    if data.det_file:
        d.det_file = Path(data.det_file).expanduser()
    return d
