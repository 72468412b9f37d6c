"""The one config parser: JSON dicts and ``--set key.sub=value`` strings into ``TrainConfig`` fields.

``coerce(value, type)`` converts a value to a dataclass field's type. A JSON value must already have
the type's JSON shape (a number for ``float``, a list for ``tuple[int, int]``, ...); command-line text
is read by the same function: ``true/false/yes/no/on/off/1/0`` for ``bool``, numbers, comma-separated
(optionally bracketed) lists for tuples and lists (a JSON list of objects for a list of sections),
``none``/``null`` for ``X | None``, JSON or Python literals for dicts. A section typed ``Section | None`` is created with its defaults when one of its
keys is set. Every error is a ``SlimposeInputError`` naming the file (or ``--set``) and the key.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import json
import os
import types
import typing
from typing import Any, Union

from slimpose.config.schema import TrainConfig, validate_config
from slimpose.utils.io import SlimposeInputError, load_json

_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n"}
_NONE = {"none", "null"}


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-serialisable dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else str(tp).replace("typing.", "")


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (Union, types.UnionType)


def parse_literal(text: str) -> Any:
    """JSON / Python literal, or the text itself when it is neither."""
    for parse in (json.loads, ast.literal_eval):
        try:
            return parse(text)
        except (ValueError, SyntaxError, json.JSONDecodeError):
            continue
    return text


def _split_list(text: str) -> list[str]:
    inner = text.strip()
    if inner[:1] in "([" and inner[-1:] in ")]":
        inner = inner[1:-1]
    return [p.strip() for p in inner.split(",") if p.strip() != ""]


class _Where:
    """Where a value comes from, for error messages: a file (``x.json: key: ...``) or ``--set key=text``."""

    def __init__(self, where: str, text: str | None = None) -> None:
        self.where, self.text = where, text

    def error(self, key: str, tp: Any, value: Any, extra: str = "") -> SlimposeInputError:
        if self.text is not None:
            return SlimposeInputError(f"--set {key}={self.text}: cannot convert to {_type_name(tp)}{extra}")
        return SlimposeInputError(f"{self.where}: {key}: expected {_type_name(tp)}, got {value!r}{extra}")


def coerce(value: Any, tp: Any, key: str, where: _Where, text: bool = False) -> Any:
    """``value`` as field type ``tp``; ``text``: ``value`` is command-line text (see the module doc)."""
    if tp is Any:
        return parse_literal(value.strip()) if text else value
    if _is_union(tp):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        nullable = len(arms) < len(typing.get_args(tp))
        if nullable and (value is None or (text and value.strip().lower() in _NONE)):
            return None
        for arm in arms:
            try:
                return coerce(value, arm, key, where, text)
            except SlimposeInputError:
                continue
        raise where.error(key, tp, value)
    if dataclasses.is_dataclass(tp):
        if text:
            raise SlimposeInputError(f"--set {key}: is a section; set one of its fields ({key}.<field>=...)")
        if not isinstance(value, dict):
            raise where.error(key, tp, value)
        return from_dict(tp, value, key, where)
    if tp is bool:
        if text and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if not text and isinstance(value, bool):
            return value
        raise where.error(key, tp, value, " (use true/false)" if text else "")
    if tp in (int, float):
        number: Any = value
        if text:
            try:
                number = float(value.strip()) if tp is float else _int_text(value.strip())
            except ValueError:
                raise where.error(key, tp, value) from None
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise where.error(key, tp, value)
        if tp is int:
            if isinstance(number, float) and not number.is_integer():
                raise where.error(key, tp, value)
            return int(number)
        return float(number)
    if tp is str:
        if isinstance(value, str):
            return value
        raise where.error(key, tp, value)
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        items = _split_list(value) if text else value
        if text and value.strip().startswith("[{"):  # a JSON list of sections, e.g. data.extra_train
            items, text = parse_literal(value.strip()), False
        if not isinstance(items, (list, tuple)):
            raise where.error(key, tp, value)
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(items) != len(args):
                if text:
                    raise where.error(key, tp, value, f" (expected {len(args)} comma-separated values)")
                raise SlimposeInputError(f"{where.where}: {key}: expected {len(args)} values, got "
                                         f"{len(items)}: {value!r}")
            out = [coerce(v, a, f"{key}[{i}]", where, text) for i, (v, a) in enumerate(zip(items, args))]
        else:
            elem = args[0] if args else Any
            out = [coerce(v, elem, f"{key}[{i}]", where, text) for i, v in enumerate(items)]
        return tuple(out) if origin is tuple else out
    if origin is dict or tp is dict:
        mapping = parse_literal(value.strip()) if text else value
        if not isinstance(mapping, dict):
            raise where.error(key, tp, value, " (expected a JSON object)" if text else "")
        return dict(mapping)
    return value


def _int_text(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        f = float(text)
        if not f.is_integer():
            raise
        return int(f)


def from_dict(cls: type, data: dict[str, Any], prefix: str, where: _Where) -> Any:
    """A ``cls`` dataclass from a (partial) dict; unknown keys are a clear error."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        full = [f"{prefix}.{k}" if prefix else k for k in unknown]
        raise SlimposeInputError(
            f"{where.where}: unknown config key(s) {', '.join(full)} (valid keys of "
            f"{prefix or 'the top level'}: {', '.join(names)})"
        )
    kwargs = {name: coerce(value, hints[name], f"{prefix}.{name}" if prefix else name, where)
              for name, value in data.items()}
    return cls(**kwargs)


def validate_any(cfg: Any, where: str = "config") -> Any:
    """Validate a ``TrainConfig`` or a ``LiftConfig`` (``family = "lifting"``) by its own rules."""
    from slimpose.lifting.config import LiftConfig, validate_lift_config

    if isinstance(cfg, LiftConfig):
        return validate_lift_config(cfg, where)
    return validate_config(cfg, where)


def config_from_dict(data: dict[str, Any], where: str = "config") -> Any:
    """A validated TrainConfig (or ``LiftConfig`` when ``family`` is ``"lifting"``) from a (possibly partial)
    dict; unknown keys raise a SlimposeInputError."""
    if not isinstance(data, dict):
        raise SlimposeInputError(f"{where}: expected a JSON object at the top level")
    cls: type = TrainConfig
    if data.get("family") == "lifting":
        from slimpose.lifting.config import LiftConfig

        cls = LiftConfig
    return validate_any(from_dict(cls, data, "", _Where(where)), where)


def load_config_file(path: str | os.PathLike) -> Any:
    """Read a ``config.json`` written by a run (or a hand-written partial one)."""
    return config_from_dict(load_json(path, "config file"), where=str(path))


def _section_type(tp: Any) -> type | None:
    """The dataclass of a field typed ``Section`` or ``Section | None``."""
    if dataclasses.is_dataclass(tp):
        return tp
    if _is_union(tp):
        arms = [a for a in typing.get_args(tp) if dataclasses.is_dataclass(a)]
        return arms[0] if len(arms) == 1 else None
    return None


def apply_override(cfg: Any, assignment: str) -> Any:
    """Apply one ``key.sub=value`` in place; ``model.overrides.NAME=value`` sets one factory keyword."""
    if "=" not in assignment:
        raise SlimposeInputError(f"--set {assignment!r}: expected KEY=VALUE (e.g. optim.lr=0.01)")
    key, text = assignment.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(p == "" for p in parts):
        raise SlimposeInputError(f"--set {assignment!r}: malformed key {key!r}")
    obj: Any = cfg
    for i, part in enumerate(parts):
        if isinstance(obj, dict):  # free-form dict (model.overrides): the rest of the key is one entry name
            obj[".".join(parts[i:])] = parse_literal(text.strip())
            return cfg
        names = [f.name for f in dataclasses.fields(obj)]
        if part not in names:
            section = ".".join(parts[:i]) or "the top level"
            raise SlimposeInputError(f"--set {key}: unknown config key {'.'.join(parts[:i + 1])!r} "
                                     f"(valid keys of {section}: {', '.join(names)})")
        tp = typing.get_type_hints(type(obj))[part]
        if i == len(parts) - 1:
            setattr(obj, part, coerce(text, tp, key, _Where("--set", text), text=True))
            return cfg
        child = getattr(obj, part)
        if child is None and _section_type(tp) is not None:  # an optional section: create it
            child = _section_type(tp)()
            setattr(obj, part, child)
        if not (dataclasses.is_dataclass(child) or isinstance(child, dict)):
            raise SlimposeInputError(f"--set {key}: {'.'.join(parts[:i + 1])} is not a section")
        obj = child
    return cfg


def apply_overrides(cfg: TrainConfig, assignments: list[str] | tuple[str, ...]) -> TrainConfig:
    """A copy of ``cfg`` with every ``key=value`` applied in order, then validated."""
    cfg = copy.deepcopy(cfg)
    for a in assignments:
        apply_override(cfg, a)
    return validate_any(cfg, "--set")
