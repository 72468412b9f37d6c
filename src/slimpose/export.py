"""Export a pose model to ONNX (checked with onnxruntime) or safetensors; onnxruntime latency.

The ONNX graph takes ``images`` float32 (B,3,H,W), already normalised (RGB, ImageNet mean/std, as
``slimpose.data.dataset.normalize_image``), with a dynamic batch axis. It returns the raw model tensor
(``heatmaps`` (B,K,h,w), or a regression student's ``output`` (B,K,5)), or with ``decode_in_graph``
``keypoints`` (B,K,2) in input-crop pixels and ``scores`` (B,K):

* heatmap models: integer argmax + the HRNet quarter-pixel shift towards the higher neighbour, times
  ``input / heatmap`` (MSRA; UDP: ``(input - 1) / (heatmap - 1)``); scores are the heatmap maxima. DARK
  (and the UDP Taylor refinement) stays outside the graph: it needs a Gaussian blur and a per-keypoint
  Newton step, which ``slimpose.api`` runs in numpy on the raw heatmaps;
* regression students: the sigmoid coordinates times the input size, scores from the model's
  ``score_source`` (the confidence channel, or 1).

onnx / onnxruntime are an optional extra, imported lazily.
"""

from __future__ import annotations

import copy
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from slimpose.utils.io import SlimposeInputError, atomic_path

__all__ = [
    "HeatmapArgmaxDecode",
    "RegressionDecode",
    "decode_wrapper",
    "export_onnx",
    "check_onnx",
    "export_checkpoint",
    "onnxruntime_latency",
    "require_onnx",
]

DEFAULT_OPSET = 17


def require_onnx() -> tuple[Any, Any]:
    """``(onnx, onnxruntime)``, or a clear error naming the optional extra."""
    try:
        import onnx
        import onnxruntime
    except ImportError as e:
        raise SlimposeInputError(
            f"ONNX export needs the optional packages onnx and onnxruntime ({e.name} is missing): "
            "pip install 'slimpose[onnx]' (or pip install onnx onnxruntime)"
        ) from None
    return onnx, onnxruntime


def argmax_quarter_decode(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,K,h,w) -> heatmap-pixel locations (B,K,2) and maxima (B,K): argmax, then +-0.25 px per axis
    towards the higher neighbour where both neighbours exist (HRNet ``get_final_preds`` without DARK)."""
    b, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(b, k, h * w)
    vals, idx = flat.max(dim=-1)
    xi = idx % w
    yi = torch.div(idx, w, rounding_mode="floor")

    def at(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return flat.gather(-1, (y * w + x).unsqueeze(-1)).squeeze(-1)

    dx = at(yi, (xi + 1).clamp(max=w - 1)) - at(yi, (xi - 1).clamp(min=0))
    dy = at((yi + 1).clamp(max=h - 1), xi) - at((yi - 1).clamp(min=0), xi)
    okx = ((xi > 0) & (xi < w - 1)).to(heatmaps.dtype)
    oky = ((yi > 0) & (yi < h - 1)).to(heatmaps.dtype)
    x = xi.to(heatmaps.dtype) + 0.25 * torch.sign(dx) * okx
    y = yi.to(heatmaps.dtype) + 0.25 * torch.sign(dy) * oky
    return torch.stack((x, y), dim=-1), vals


class HeatmapArgmaxDecode(nn.Module):
    """``model`` + in-graph argmax/quarter-shift decoding -> (keypoints (B,K,2) crop pixels, scores (B,K))."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int], heatmap_size: tuple[int, int],
                 udp: bool = False) -> None:
        super().__init__()
        self.model = model
        (iw, ih), (hw, hh) = input_size, heatmap_size
        if udp:
            scale = [(iw - 1) / max(hw - 1, 1), (ih - 1) / max(hh - 1, 1)]
        else:
            scale = [iw / hw, ih / hh]
        self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32), persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        locs, scores = argmax_quarter_decode(self.model(images))
        return locs * self.scale.to(locs.dtype), scores


class RegressionDecode(nn.Module):
    """Regression student + decoding: ``x, y`` (sigmoid, [0, 1]) times the input size; scores by
    ``score_source``."""

    def __init__(self, model: nn.Module, input_size: tuple[int, int],
                 score_source: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.score_source = score_source or getattr(model, "score_source", "confidence")
        if self.score_source not in ("confidence", "constant"):
            raise ValueError(f"score_source must be 'confidence' or 'constant', got {self.score_source!r}")
        size = torch.tensor([float(input_size[0]), float(input_size[1])])
        self.register_buffer("size", size, persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(images)
        keypoints = out[..., :2] * self.size.to(out.dtype)
        scores = out[..., 2] if self.score_source == "confidence" else torch.ones_like(out[..., 2])
        return keypoints, scores


def _probe(model: nn.Module, input_size: tuple[int, int]) -> torch.Tensor:
    w, h = input_size
    dev = next((p.device for p in model.parameters()), torch.device("cpu"))
    with torch.no_grad():
        return model(torch.zeros(1, 3, h, w, device=dev))


def decode_wrapper(model: nn.Module, input_size: tuple[int, int], udp: bool = False,
                   score_source: str | None = None) -> nn.Module:
    """The in-graph decoding wrapper matching ``model``'s output (heatmaps or (B,K,5) regression)."""
    out = _probe(model, input_size)
    if out.dim() == 4:
        return HeatmapArgmaxDecode(model, input_size, (int(out.shape[-1]), int(out.shape[-2])), udp=udp)
    if out.dim() == 3 and out.shape[-1] == 5:
        return RegressionDecode(model, input_size, score_source)
    raise SlimposeInputError(f"{type(model).__name__}: cannot decode an output of shape {tuple(out.shape)}")


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_size: tuple[int, int],
    decode_in_graph: bool = False,
    udp: bool = False,
    score_source: str | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol_px: float = 1e-3,
) -> dict[str, Any]:
    """Export ``model`` (CPU, eval) to ``path`` with a dynamic batch axis; returns a report dict.

    With ``check`` the file is loaded with ``onnx.checker`` and run with onnxruntime at batch 2 on random
    input; the report holds the largest absolute difference to PyTorch (``max_abs_diff`` per output).
    Raises a SlimposeInputError if a decoded keypoint differs by ``atol_px`` or more.
    """
    onnx, _ = require_onnx()
    model = copy.deepcopy(model).cpu().eval()
    w, h = int(input_size[0]), int(input_size[1])
    module: nn.Module = decode_wrapper(model, (w, h), udp, score_source) if decode_in_graph else model
    module.eval()
    if decode_in_graph:
        output_names = ["keypoints", "scores"]
    else:
        output_names = ["heatmaps" if _probe(model, (w, h)).dim() == 4 else "output"]
    dynamic_axes = {"images": {0: "batch"}, **{n: {0: "batch"} for n in output_names}}
    example = torch.randn(1, 3, h, w)
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks that are constant here
        torch.onnx.export(
            module, (example,), str(tmp), dynamo=False, input_names=["images"], output_names=output_names,
            dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
        )
        onnx.checker.check_model(str(tmp))
    report: dict[str, Any] = {"path": str(path), "outputs": output_names, "input_size": [w, h],
                              "decode_in_graph": decode_in_graph, "opset": opset}
    if check:
        report["max_abs_diff"] = check_onnx(path, module, (w, h), batch=2)
        if decode_in_graph and report["max_abs_diff"]["keypoints"] >= atol_px:
            raise SlimposeInputError(
                f"{path}: onnxruntime keypoints differ from PyTorch by "
                f"{report['max_abs_diff']['keypoints']:.3g} px")
    return report


def check_onnx(path: str | os.PathLike, module: nn.Module, input_size: tuple[int, int], batch: int = 2,
               seed: int = 0) -> dict[str, float]:
    """Run ``path`` with onnxruntime and ``module`` with PyTorch on the same random batch.

    Returns the largest absolute difference per output name.
    """
    _, ort = require_onnx()
    w, h = input_size
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        ref = module.cpu().eval()(x)
    ref = ref if isinstance(ref, (tuple, list)) else (ref,)
    names = [o.name for o in sess.get_outputs()]
    return {n: float(np.abs(np.asarray(g, dtype=np.float64) - r.double().numpy()).max())
            for n, g, r in zip(names, got, ref)}


def export_checkpoint(
    checkpoint: str | os.PathLike,
    fmt: str,
    out: str | os.PathLike | None = None,
    decode_in_graph: bool = False,
    opset: int = DEFAULT_OPSET,
) -> dict[str, Any]:
    """Export a ``.pth`` / ``.safetensors`` checkpoint to ``fmt`` ('onnx' or 'safetensors')."""
    from slimpose.api import load

    src = Path(checkpoint)
    if fmt not in ("onnx", "safetensors"):
        raise SlimposeInputError(f"unknown export format {fmt!r} (choose onnx or safetensors)")
    dst = Path(out) if out else src.with_suffix(".onnx" if fmt == "onnx" else ".safetensors")
    if dst.resolve() == src.resolve():
        raise SlimposeInputError(f"{dst}: the output would overwrite the input checkpoint")
    if fmt == "safetensors":
        from slimpose.api import read_weights
        from slimpose.engine.checkpoint import export_safetensors

        sd, meta = read_weights(src)
        load(src)  # the weights must rebuild a slimpose model before they are shipped
        ckpt = {"model": sd, "model_name": meta.get("model_name", ""), "config": meta.get("config") or {}}
        export_safetensors(ckpt, dst)
        return {"path": str(dst), "format": "safetensors", "tensors": len(sd)}
    pm = load(src)
    report = export_onnx(pm.model, dst, pm.input_size, decode_in_graph=decode_in_graph, udp=pm.udp,
                         score_source=getattr(pm.task, "score_source", None), opset=opset)
    report["format"] = "onnx"
    return report


def onnxruntime_latency(
    model: nn.Module,
    input_size: tuple[int, int],
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> dict[str, Any]:
    """Median / mean / min onnxruntime CPU latency (ms) of the raw ``model`` at ``batch`` (w, h = input_size).

    The model is exported to a temporary ONNX file first (not timed). Returns ``ort_latency_ms``,
    ``ort_latency_ms_mean``, ``ort_latency_ms_min``, ``ort_throughput`` (images/s), ``batch``, ``repeats``.
    """
    _, ort = require_onnx()
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    w, h = int(input_size[0]), int(input_size[1])
    with tempfile.TemporaryDirectory(prefix="slimpose_ort_") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, (w, h), check=False)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal((batch, 3, h, w)).astype(np.float32)
        name = sess.get_inputs()[0].name
        for _ in range(max(0, warmup)):
            sess.run(None, {name: x})
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            sess.run(None, {name: x})
            times.append((time.perf_counter() - t0) * 1000.0)
    median = statistics.median(times)
    return {
        "ort_latency_ms": median,
        "ort_latency_ms_mean": statistics.fmean(times),
        "ort_latency_ms_min": min(times),
        "ort_throughput": batch * 1000.0 / median if median > 0 else None,
        "batch": batch,
        "repeats": repeats,
    }
