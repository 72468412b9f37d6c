"""Training checkpoints (atomic, resumable, loadable with ``weights_only=True``) and safetensors export.

A checkpoint is a dict: ``model`` (state dict of the bare model), ``task`` (model and head, e.g. a trained
RLE flow), ``optimizer``, ``scheduler``, ``scaler``, ``epoch`` (epochs completed), ``global_step``, ``best``
(``{"metric", "mode", "value"}`` of the best checkpoint), ``rng`` / ``rng_per_rank`` (python / numpy /
torch / cuda states, numpy's as a tensor so that no pickled object is needed), ``config`` (the TrainConfig
as a JSON dict), ``model_name``, ``world_size``, a distiller's ``distill`` record, and ``format``
(``slimpose-checkpoint-v1``).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slimpose.utils.io import SlimposeInputError, atomic_path, remove_stale_tmp, torch_save_atomic

CHECKPOINT_FORMAT = "slimpose-checkpoint-v1"


def capture_rng_state() -> dict[str, Any]:
    """All RNG states that influence training, in a ``weights_only``-loadable form."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "python": [int(py_version), [int(x) for x in py_state], py_gauss],
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    version, py_state, gauss = state["python"]
    random.setstate((int(version), tuple(int(x) for x in py_state), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["name"], keys, int(n["pos"]), int(n["has_gauss"]), float(n["cached_gaussian"])))
    torch.set_rng_state(state["torch"])
    cuda_states = state.get("cuda") or []
    if cuda_states and torch.cuda.is_available():
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)
        else:
            torch.cuda.set_rng_state(cuda_states[0])


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``state`` to ``path`` atomically: a failed save leaves any previous file untouched."""
    state = dict(state)
    state.setdefault("format", CHECKPOINT_FORMAT)
    remove_stale_tmp(Path(path).parent, Path(path).name)  # what a killed earlier save left behind
    return torch_save_atomic(state, path)


def non_finite_tensors(state: dict[str, Any]) -> list[str]:
    """Names of the floating-point tensors of a state dict that hold a NaN or an infinity."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def describe_checkpoint(ckpt: dict[str, Any]) -> str:
    """Which model a checkpoint holds, from its ``model_name`` and ``config.model.overrides`` (if present)."""
    name = ckpt.get("model_name")
    config = ckpt.get("config")
    overrides = None
    if isinstance(config, dict) and isinstance(config.get("model"), dict):
        name = name or config["model"].get("name")
        overrides = config["model"].get("overrides") or None
    if not name:
        return "weights without a model name"
    return f"a {name!r} model" + (f" (overrides {overrides})" if overrides else "")


def mismatched_shapes(module: torch.nn.Module, sd: dict[str, Any]) -> list[tuple[str, tuple, tuple]]:
    """``(key, checkpoint shape, module shape)`` of every tensor the module has under another shape."""
    own = module.state_dict()
    return [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items()
            if k in own and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)]


def load_fitting_state(module: torch.nn.Module, sd: dict[str, Any], where: str, held: str, expected: str,
                       strict: bool = True) -> Any:
    """``module.load_state_dict(sd, strict)``; weights that do not fit (a checkpoint of another architecture)
    are a SlimposeInputError naming the file (``where``), what it holds and what was expected, never a
    size-mismatch traceback. Returns the load result (missing / unexpected keys when not ``strict``)."""
    try:
        return module.load_state_dict(sd, strict=strict)
    except RuntimeError as e:
        error = e
    own = module.state_dict()
    bad = mismatched_shapes(module, sd)
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    parts = []
    if bad:
        k, a, b = bad[0]
        parts.append(f"{len(bad)} tensors of another shape, e.g. {k}: {list(a)} in the file, {list(b)} in the model")
    if strict and missing:
        parts.append(f"missing: {missing[:5]}{'...' if len(missing) > 5 else ''}")
    if strict and unexpected:
        parts.append(f"unexpected: {unexpected[:5]}{'...' if len(unexpected) > 5 else ''}")
    if not parts:  # keys the module renames itself (a distiller's legacy keys): PyTorch's first line
        parts.append(str(error).strip().splitlines()[0][:300])
    raise SlimposeInputError(f"{where}: holds {held}, but {expected} is expected here; the weights do not fit "
                             f"({'; '.join(parts)})") from None


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    mmap: bool = False) -> dict[str, Any]:
    """Load a slimpose checkpoint (or a bare state dict, returned as ``{"model": sd}``). ``mmap``: the tensors
    stay on disk until used (zip-format files only; any other file is a SlimposeInputError then)."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as e:  # noqa: BLE001 - any unpickling failure is a bad input file
        raise SlimposeInputError(
            f"{path}: cannot be read as a PyTorch checkpoint ({type(e).__name__}: {e})"
        ) from None
    if not isinstance(obj, dict):
        raise SlimposeInputError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    if "model" in obj and isinstance(obj["model"], dict):
        return obj
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        return {**obj, "model": obj["state_dict"]}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return {"model": obj}
    raise SlimposeInputError(f"{path}: no 'model' or 'state_dict' entry in this checkpoint")


def load_model_weights(
    model: torch.nn.Module, ckpt: dict[str, Any] | str | os.PathLike, strict: bool = True,
    where: str | os.PathLike | None = None, expected: str | None = None,
) -> None:
    """Load the ``model`` entry of a checkpoint into ``model`` (strips a ``module.`` DDP prefix). Weights of
    another architecture are a SlimposeInputError naming the file (``where``, default: the path given), the
    model the file holds and ``expected`` (default: the model's class)."""
    where = str(where if where is not None else ckpt if not isinstance(ckpt, dict) else "checkpoint")
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    sd = ckpt["model"]
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    load_fitting_state(model, sd, where, describe_checkpoint(ckpt), expected or f"a {type(model).__name__}",
                       strict=strict)


def export_safetensors(ckpt: dict[str, Any] | str | os.PathLike, out: str | os.PathLike) -> Path:
    """Write the model weights of ``ckpt`` to ``out`` (safetensors, atomic).

    Metadata (strings only, as safetensors requires): ``model_name``, ``config`` (JSON), ``epoch``,
    ``best`` (JSON), ``format``.
    """
    from safetensors.torch import save_file

    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in ckpt["model"].items()}
    metadata = {
        "format": "slimpose-weights-v1",
        "model_name": str(ckpt.get("model_name", "")),
        "config": json.dumps(ckpt.get("config", {}), sort_keys=True),
        "epoch": str(ckpt.get("epoch", "")),
        "best": json.dumps(ckpt.get("best") or {}, sort_keys=True),
    }
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return out


def write_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike) -> Path:
    """``ckpt`` to ``path``: a ``.safetensors`` export for that suffix (``export_safetensors``), else a ``.pth``
    checkpoint (``save_checkpoint``); what the converters write."""
    path = Path(path)
    if path.suffix == ".safetensors":
        export_safetensors(ckpt, path)
    else:
        save_checkpoint(ckpt, path)
    return path
