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

from slimpose.utils.io import SlimposeInputError, atomic_path, torch_save_atomic

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
    return torch_save_atomic(state, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a slimpose checkpoint (or a bare state dict, returned as ``{"model": sd}``)."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
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
    model: torch.nn.Module, ckpt: dict[str, Any] | str | os.PathLike, strict: bool = True
) -> None:
    """Load the ``model`` entry of a checkpoint into ``model`` (strips a ``module.`` DDP prefix)."""
    where = str(ckpt) if not isinstance(ckpt, dict) else "checkpoint"
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    sd = ckpt["model"]
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    result = model.load_state_dict(sd, strict=False)
    if strict and (result.missing_keys or result.unexpected_keys):
        raise SlimposeInputError(
            f"{where}: weights do not match the model (missing: {result.missing_keys[:5]}"
            f"{'...' if len(result.missing_keys) > 5 else ''}, unexpected: {result.unexpected_keys[:5]}"
            f"{'...' if len(result.unexpected_keys) > 5 else ''})"
        )


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
