"""Official 3-D lifting checkpoints -> slimpose lifters (``slimpose convert --from hot|mixste|ktpformer``).

The lifters keep the official state-dict keys (docs/lifting_models.md), so nothing is renamed; what differs
is the file around them:

* ``hot`` (NationalGAILab/HoT ``common/utils.py: save_model``): the raw ``model.state_dict()``, no wrapper, no
  ``module.`` prefix. It holds HoT-MixSTE (``pos_embed_token``, ``x_token``, ``cross_attention.*``),
  TPC-MixSTE or MixSTE weights; ``--model`` says which network.
* ``mixste`` (JinluZhang1126/MixSTE ``run.py``, VideoPose3D's format): ``{'epoch', 'lr', 'random_state',
  'optimizer', 'model_pos'}``, the state dict under ``model_pos`` with DataParallel's ``module.`` prefix.
  ``random_state`` is the training generator's pickled ``numpy.random.RandomState``; ``min_loss``,
  ``model_traj`` and ``random_state_semi`` (commented out in ``run.py``, present in VideoPose3D files) are
  known too. These entries are dropped by name and listed in the report; any other top-level entry is
  unexpected.
* ``ktpformer`` (JihuaPeng/KTPFormer ``run_ktpformer.py``): the same file layout as ``mixste`` (``model_pos``
  with ``module.``); the official code loads it with ``strict=False``, slimpose strictly (a released file with
  stale keys needs ``--allow-partial``, which the report then lists).

Files are read with ``torch.load(weights_only=True)``. A MixSTE file cannot be read that way as it is (the
pickled ``RandomState``), so when the only globals the file names are numpy's RandomState / ndarray / dtype
reconstructors (checked with ``torch.serialization.get_unsafe_globals_in_checkpoint`` before anything is
unpickled) it is read again with exactly those names resolved to inert placeholders (``_Dropped``, through
``torch.serialization.safe_globals``): no numpy object is built from the file and no other code can run. ``module.`` is stripped in both layouts.

The shapes of the file decide the sizes the lifter is built with (``num_frames``, ``num_joints``, ``dim``,
``depth``, HoT's ``num_tokens``; ``in_chans`` / ``out_chans`` / ``mlp_ratio`` / ``qkv_bias`` when they differ
from the factory's); ``--set NAME=VALUE`` overrides win. ``num_heads`` and ``layer_index`` (HoT, TPC-MixSTE)
and TPC-MixSTE's ``num_tokens`` leave no trace in the weights: the factory defaults are the released models'.
The state dict then has to match the lifter exactly: any missing, unexpected or shape-mismatched key is an
error naming the file and the keys (``allow_partial`` writes it anyway, missing tensors left at their initial
values). The output is a slimpose checkpoint ``{'model', 'model_name', 'config': {'family': 'lifting',
'model': {'name', 'overrides'}}, 'converted_from', 'format'}`` (``.safetensors``: the same as metadata) that
``create_lifter(name, **config['model']['overrides'])`` + ``load_state_dict(strict=True)`` reads back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from slimpose.convert import ConversionReport
from slimpose.utils.io import SlimposeInputError

__all__ = [
    "LIFTING_SOURCES",
    "LiftingConversionReport",
    "convert_lifting_checkpoint",
    "convert_lifting_state_dict",
    "infer_lifter_overrides",
    "read_lifting_checkpoint",
]

LIFTING_SOURCES = ("hot", "mixste", "ktpformer")

# per layout: the entry holding the state dict (None: the file is the state dict) and the known other entries
_LAYOUTS: dict[str, tuple[str | None, dict[str, str]]] = {
    "hot": (None, {}),
    "mixste": ("model_pos", {
        "epoch": "epochs trained",
        "lr": "learning rate",
        "random_state": "the training generator's numpy RandomState",
        "optimizer": "optimizer state",
        "min_loss": "best validation MPJPE",
        "model_traj": "trajectory model (semi-supervised VideoPose3D)",
        "random_state_semi": "semi-supervised generator's RandomState",
    }),
}
# KTPFormer's run_ktpformer.py writes MixSTE's layout: {'epoch', 'lr', 'random_state', 'optimizer', 'model_pos'}
_LAYOUTS["ktpformer"] = _LAYOUTS["mixste"]

# HoT's pruning / recovery tensors: in a hot_mixste file, not in MixSTE / TPC-MixSTE
_HOT_ONLY = re.compile(r"^(pos_embed_token|x_token|cross_attention\..+)$")


class _Dropped:
    """What a numpy object of a dropped entry (a MixSTE file's ``random_state``) becomes: nothing is built from
    the file's bytes. (Building the real RandomState / ndarray / dtype would hand numpy a state from the file,
    and a crafted dtype state can make numpy read file bytes as object pointers.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _numpy_globals() -> dict[str, Any]:
    """The numpy globals a pickled ``RandomState`` (numpy 1.x and 2.x) and its uint32 key array name, by the
    name the file uses -> the ``safe_globals`` entry that resolves it to :class:`_Dropped`."""
    names = ["numpy.ndarray", "numpy.dtype", "numpy.random._pickle.__randomstate_ctor",
             "numpy.random._pickle.__bit_generator_ctor", "numpy.random._mt19937.MT19937",
             "numpy.random.mtrand.RandomState"]
    names += [f"{m}.{n}" for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")]
    return {name: (_Dropped, name) for name in names}


def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)``; a file that fails only because it names the numpy RandomState / array
    globals (a MixSTE checkpoint's ``random_state``) is read again with exactly those names resolved to
    :class:`_Dropped` placeholders (the entry is dropped by name afterwards; a placeholder anywhere else is a
    non-tensor value and fails the strict match)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - untrusted file: any failure is a bad input
        first = e
    try:
        names = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - not a zip checkpoint: report the first error
        names = []
    allowed = _numpy_globals()
    unknown = [n for n in names if n not in allowed]
    if names and not unknown:
        safe = [allowed[n] for n in names] + [_Dropped]
        try:
            with torch.serialization.safe_globals(safe):
                return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001
            first = e
    if unknown:
        raise SlimposeInputError(
            f"{path}: cannot be read with torch.load(weights_only=True): it names globals that are neither torch's "
            f"safe ones nor numpy's RandomState / array ones: {', '.join(unknown)} (refused, nothing was run)")
    lines = [line.strip() for line in str(first).splitlines() if line.strip()]
    # torch's weights-only message: a generic paragraph, then "WeightsUnpickler error: <the reason>"
    at = next((i for i, line in enumerate(lines) if "WeightsUnpickler error" in line), None)
    text = " ".join(lines[at:at + 2]) if at is not None else (lines[0] if lines else "")
    raise SlimposeInputError(f"{path}: cannot be read with torch.load(weights_only=True) "
                             f"({type(first).__name__}: {text})") from None


def _describe(value: Any) -> str:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return repr(value)
    if isinstance(value, _Dropped):
        return "numpy objects, not built"
    return type(value).__name__


def read_lifting_checkpoint(
    path: str | os.PathLike, source: str, key: str | None = None
) -> tuple[dict[str, torch.Tensor], str, list[str], list[str]]:
    """An official lifting checkpoint -> ``(state dict with module. stripped, entry used, dropped, unexpected)``.

    ``dropped``: the layout's known non-weight entries (``'epoch (epochs trained: 160)'``); ``unexpected``: any
    other top-level entry and any non-tensor value of the state dict. ``key`` names the state-dict entry
    instead of the layout's (``model_pos`` for MixSTE, the file itself for HoT).
    """
    if source not in _LAYOUTS:
        raise SlimposeInputError(f"unknown lifting layout {source!r} (choose from {', '.join(LIFTING_SOURCES)})")
    from slimpose.convert import read_checkpoint_dict

    path = Path(path)
    obj = read_checkpoint_dict(path, _torch_load)
    entry, extras = _LAYOUTS[source]
    entry = key if key is not None else entry
    dropped: list[str] = []
    unexpected: list[str] = []
    if entry is None:
        if isinstance(obj.get("model_pos"), dict):
            raise SlimposeInputError(f"{path}: the weights are under 'model_pos' (a MixSTE run.py checkpoint): "
                                     "convert it with --from mixste")
        sd_obj, used = obj, ""
    else:
        if not isinstance(obj.get(entry), dict):
            hint = (" (a raw state dict, as HoT saves it: use --from hot)"
                    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()) else "; pass --key NAME")
            raise SlimposeInputError(f"{path}: no state-dict entry {entry!r} (entries: "
                                     f"{', '.join(map(str, obj)) or 'none'}){hint}")
        sd_obj, used = obj[entry], entry
        for name, value in obj.items():
            if name == entry:
                continue
            if name in extras:
                dropped.append(f"{name} ({extras[name]}: {_describe(value)})")
            else:
                unexpected.append(f"{name} (top-level entry of the file: {_describe(value)})")
    sd: dict[str, torch.Tensor] = {}
    for k, v in sd_obj.items():
        name = str(k)
        if not isinstance(v, torch.Tensor):
            unexpected.append(f"{name} (not a tensor: {_describe(v)})")
            continue
        name = name[len("module."):] if name.startswith("module.") else name
        if name in sd:
            unexpected.append(f"{k} (a second tensor for {name!r} once 'module.' is stripped)")
            continue
        sd[name] = v
    return sd, used, dropped, unexpected


def infer_lifter_overrides(sd: dict[str, torch.Tensor], model_name: str) -> dict[str, Any]:
    """The factory keywords the tensors' shapes fix: ``num_frames`` (``Temporal_pos_embed``), ``num_joints``
    (``Spatial_pos_embed``), ``dim`` (``Spatial_patch_to_embedding``), ``depth`` (``STEblocks.{i}``), HoT's
    ``num_tokens`` (``pos_embed_token``); ``in_chans``, ``out_chans``, ``mlp_ratio``, ``qkv_bias`` only where they
    differ from the factory defaults (2, 3, 2.0, True). A missing or odd-shaped tensor fixes nothing (the
    strict load then names it)."""
    out: dict[str, Any] = {}

    def shape(name: str, dims: int) -> tuple[int, ...] | None:
        t = sd.get(name)
        return tuple(t.shape) if isinstance(t, torch.Tensor) and t.dim() == dims else None

    prefix = "kpattention.attn." if "kpattention.attn.Spatial_pos_embed" in sd else ""   # KTPFormer's prior blocks
    temporal = "tpattention.attn." if prefix else ""
    if (s := shape(f"{temporal}Temporal_pos_embed", 3)) is not None:
        out["num_frames"] = s[1]
    if (s := shape(f"{prefix}Spatial_pos_embed", 3)) is not None:
        out["num_joints"] = s[1]
    emb = shape("Spatial_patch_to_embedding.weight", 2)
    if prefix and (w := shape("kpattention.attn.kpa.gconv.W", 3)) is not None:
        emb = (w[2], w[1])  # the graph convolution's (out, in), as the linear embedding's weight
    if emb is not None:
        out["dim"] = emb[0]
        if emb[1] != 2:
            out["in_chans"] = emb[1]
    blocks = {int(m.group(1)) for k in sd if (m := re.match(r"^STEblocks\.(\d+)\.", k))}
    if blocks:
        out["depth"] = max(blocks) + 1
    fc1 = shape("STEblocks.0.mlp.fc1.weight", 2)
    if fc1 is not None and emb is not None and fc1[0] != 2 * emb[0]:
        out["mlp_ratio"] = fc1[0] / emb[0]
    if "STEblocks.0.attn.qkv.weight" in sd and "STEblocks.0.attn.qkv.bias" not in sd:
        out["qkv_bias"] = False
    if (s := shape("head.1.weight", 2)) is not None and s[0] != 3:
        out["out_chans"] = s[0]
    if model_name in ("hot_mixste", "hot_ktpformer") and (s := shape("pos_embed_token", 3)) is not None:
        out["num_tokens"] = s[1]
    return out


@dataclass
class LiftingConversionReport(ConversionReport):
    """``ConversionReport`` plus the entries dropped by name and the keywords the lifter was built with."""

    dropped: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)  # all keywords given to the factory
    inferred: list[str] = field(default_factory=list)  # those of them read from the file's shapes
    model_name: str = ""

    def format(self, limit: int = 20) -> str:
        lines = [super().format(limit)]
        if self.dropped:
            lines.append(f"dropped (known non-weight entries of the official file) ({len(self.dropped)}):")
            lines.extend(f"  {s}" for s in self.dropped)
        given = ", ".join(f"{k}={v!r}" for k, v in self.overrides.items()) or "the factory defaults"
        read = f" (from the file's shapes: {', '.join(self.inferred)})" if self.inferred else ""
        lines.append(f"built {self.model_name} with {given}{read}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "dropped": self.dropped, "overrides": self.overrides,
                "inferred": self.inferred, "model_name": self.model_name}


def convert_lifting_state_dict(sd: dict[str, torch.Tensor], model: torch.nn.Module
                               ) -> tuple[dict[str, torch.Tensor], LiftingConversionReport]:
    """Match an official state dict (already unwrapped, official names) against ``model``'s own keys."""
    own = model.state_dict()
    report = LiftingConversionReport()
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if key not in own:
            report.unexpected.append(key)
        elif tuple(own[key].shape) != tuple(value.shape):
            report.mismatched.append((key, key, tuple(own[key].shape), tuple(value.shape)))
        else:
            out[key] = value.detach().to(own[key].dtype).clone()
            report.converted += 1
    report.missing = [k for k in own if k not in sd]
    return out, report


def _hint(report: LiftingConversionReport, model_name: str, sd: dict[str, torch.Tensor]) -> str:
    ktp = any(k.startswith("kpattention.") for k in sd)
    if not ktp and model_name in ("ktpformer", "hot_ktpformer") and sd:
        return "\n(the file has no KTPFormer prior blocks (kpattention.*): a MixSTE / HoT checkpoint, use --model mixste)"
    if ktp and model_name not in ("ktpformer", "hot_ktpformer"):
        return "\n(the file holds KTPFormer's prior blocks (kpattention.*): use --from ktpformer --model ktpformer)"
    if model_name not in ("hot_mixste", "hot_ktpformer") and any(_HOT_ONLY.match(k) for k in report.unexpected):
        return ("\n(the file holds HoT's pruning / recovery tensors: a HoT checkpoint, use --model "
                f"{'hot_ktpformer' if ktp else 'hot_mixste'})")
    if model_name == "hot_mixste" and not any(_HOT_ONLY.match(k) for k in sd) and sd:
        return ("\n(the file has no HoT tensors (pos_embed_token, x_token, cross_attention): a MixSTE or "
                "TPC-MixSTE checkpoint, use --model mixste or tpc_mixste)")
    return ""


def convert_lifting_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    source: str,
    model_name: str,
    overrides: dict[str, Any] | None = None,
    allow_partial: bool = False,
    key: str | None = None,
) -> LiftingConversionReport:
    """Convert the official ``source`` (``hot`` / ``mixste``) checkpoint ``src`` into the slimpose lifter
    ``model_name`` and write ``dst`` (``.safetensors`` with metadata, anything else a slimpose ``.pth``).

    Without ``allow_partial`` a missing / unexpected / mismatched key raises a SlimposeInputError carrying the
    report as ``err.report`` and nothing is written.
    """
    from slimpose.lifting.models import LIFTERS, create_lifter

    if model_name not in LIFTERS:
        raise SlimposeInputError(f"--model {model_name!r} is not a lifting model ({', '.join(sorted(LIFTERS))})")
    sd, used, dropped, unexpected = read_lifting_checkpoint(src, source, key)
    explicit = dict(overrides or {})
    inferred = {k: v for k, v in infer_lifter_overrides(sd, model_name).items() if k not in explicit}
    kwargs = {**inferred, **explicit}
    try:
        model = create_lifter(model_name, **kwargs)
    except (TypeError, ValueError) as e:
        raise SlimposeInputError(f"cannot build {model_name!r} with {kwargs}: {e}"
                                 + (" (pass --set num_tokens=N)" if "cannot keep" in str(e) else "")) from None
    state, report = convert_lifting_state_dict(sd, model)
    report.unexpected[:0] = unexpected
    report.dropped, report.source_key, report.model_name = dropped, used, model_name
    report.overrides, report.inferred = kwargs, sorted(inferred)
    if not report.ok and not allow_partial:
        err = SlimposeInputError(
            f"{src}: the {source} checkpoint does not fit {model_name!r}:\n{report.format()}"
            f"{_hint(report, model_name, sd)}\n(use --allow-partial to write it anyway)")
        err.report = report  # type: ignore[attr-defined]
        raise err
    model.load_state_dict(state, strict=not allow_partial)
    ckpt = {
        "model": model.state_dict(),
        "model_name": model_name,
        "config": {"family": "lifting", "model": {"name": model_name, "overrides": kwargs}},
        "converted_from": {"path": str(src), "source": source, "entry": used,
                           "dropped": [d.split(" ", 1)[0] for d in dropped]},
    }
    from slimpose.engine.checkpoint import write_checkpoint

    write_checkpoint(ckpt, dst)
    return report
