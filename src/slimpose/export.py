"""Export a pose model to ONNX (checked with onnxruntime) or safetensors; onnxruntime latency.

The ONNX graph takes the model input of its input spec (``images`` float32 (B,3,H,W), already normalised:
RGB, ImageNet mean/std, as ``slimpose.data.dataset.normalize_image``) with a dynamic batch axis. It returns
the raw model outputs, named by the head (``heatmaps``; a regression student's ``output`` (B,K,5); SimCC's
``simcc_x`` / ``simcc_y``), or with ``decode_in_graph`` ``keypoints`` (B,K,2) in input-crop pixels and
``scores`` (B,K), decoded by the head's ``export_decoder``:

* heatmaps: integer argmax + the HRNet quarter-pixel shift towards the higher neighbour, times
  ``input / heatmap`` (MSRA; UDP: ``(input - 1) / (heatmap - 1)``; a converted checkpoint: the spacing,
  quarter-step bounds and non-positive rule of its official test, docs/conversion.md); scores are the
  heatmap maxima. DARK
  (and the UDP Taylor refinement) stays outside the graph: it needs a Gaussian blur and a per-keypoint
  Newton step, which ``slimpose.api`` runs in numpy on the raw heatmaps;
* regression students: the sigmoid coordinates times the input size, scores from the head's
  ``score_source`` (the confidence channel, or 1);
* SimCC: argmax / split ratio, scores as the head decodes them.

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
    "DecodedModel",
    "export_lifter_checkpoint",
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
            "pip install 'slimpose[export]' (or pip install onnx onnxruntime)"
        ) from None
    return onnx, onnxruntime


class DecodedModel(nn.Module):
    """``model`` followed by its head's in-graph decoder: inputs -> (keypoints (B,K,2) crop px, scores (B,K))."""

    def __init__(self, model: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.decoder = decoder

    def forward(self, inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.decoder(self.model(inputs))


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    head: nn.Module | None = None,
    decode_in_graph: bool = False,
    input_size: tuple[int, int] | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    atol_px: float = 1e-3,
    quantize: str | None = None,
) -> dict[str, Any]:
    """Export ``model`` (CPU, eval) to ``path`` with a dynamic batch axis; returns a report dict.

    ``quantize='int8'``: ONNX Runtime dynamic quantisation of the MatMul / Gemm weights
    (``slimpose.inference.quantize_onnx_int8``); the differences to PyTorch are reported, not bounded.

    ``head`` names the outputs and decodes them when ``decode_in_graph`` (default: the model's head with
    default settings; a raw export of a model without a ``head_class`` names its output ``output``). With ``check`` the file is loaded with ``onnx.checker`` and run with onnxruntime at
    batch 2 on random input; the report holds the largest absolute difference to PyTorch per output.
    Raises a SlimposeInputError if a decoded keypoint differs by ``atol_px`` or more.
    """
    from slimpose.heads import default_head
    from slimpose.models.spec import input_spec_of

    onnx, _ = require_onnx()
    from slimpose.inference import check_quantize

    check_quantize(quantize)
    model = copy.deepcopy(model).cpu().eval()
    if head is None and (decode_in_graph or getattr(model, "head_class", None) is not None):
        head = default_head(model)
    spec = input_spec_of(model, input_size)
    module: nn.Module = DecodedModel(model, head.export_decoder().cpu()) if decode_in_graph else model
    module.eval()
    if decode_in_graph:
        output_names = ["keypoints", "scores"]
    else:
        output_names = list(head.output_names) if head is not None else ["output"]
    dynamic_axes = {spec.name: {0: "batch"}, **{n: {0: "batch"} for n in output_names}}
    path = Path(path)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shape checks that are constant here
        torch.onnx.export(
            module, (spec.example(1),), str(tmp), dynamo=False, input_names=[spec.name],
            output_names=output_names, dynamic_axes=dynamic_axes, opset_version=opset, do_constant_folding=True,
        )
        onnx.checker.check_model(str(tmp))
        if quantize is not None:
            from slimpose.inference import quantize_onnx_int8

            fp32 = tmp.with_suffix(".fp32.tmp")  # a stale-temp-file name: cleaned up after a kill
            os.replace(tmp, fp32)
            try:
                quantize_onnx_int8(fp32, tmp)
            finally:
                fp32.unlink(missing_ok=True)
    report: dict[str, Any] = {"path": str(path), "outputs": output_names, "input_size": list(spec.size),
                              "decode_in_graph": decode_in_graph, "opset": opset, "quantize": quantize}
    if check:
        report["max_abs_diff"] = check_onnx(path, module, spec, batch=2)
        if decode_in_graph and quantize is None and report["max_abs_diff"]["keypoints"] >= atol_px:
            raise SlimposeInputError(
                f"{path}: onnxruntime keypoints differ from PyTorch by "
                f"{report['max_abs_diff']['keypoints']:.3g} px")
    return report


def check_onnx(path: str | os.PathLike, module: nn.Module, spec: Any, batch: int = 2,
               seed: int = 0) -> dict[str, float]:
    """Run ``path`` with onnxruntime and ``module`` with PyTorch on the same random batch of input spec
    ``spec``. Returns the largest absolute difference per output name.
    """
    _, ort = require_onnx()
    x = spec.example(batch, generator=torch.Generator().manual_seed(seed))
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
    quantize: str | None = None,
) -> dict[str, Any]:
    """Export a ``.pth`` / ``.safetensors`` checkpoint to ``fmt`` ('onnx' or 'safetensors'); a 3-D lifter's goes
    through ``export_lifter_checkpoint``. ``quantize='int8'``: a 2-D model's ONNX file with int8 linear layers."""
    from slimpose.api import load

    src = Path(checkpoint)
    if fmt not in ("onnx", "safetensors"):
        raise SlimposeInputError(f"unknown export format {fmt!r} (choose onnx or safetensors)")
    dst = Path(out) if out else src.with_suffix(".onnx" if fmt == "onnx" else ".safetensors")
    if dst.resolve() == src.resolve():
        raise SlimposeInputError(f"{dst}: the output would overwrite the input checkpoint")
    from slimpose.api import read_weights

    sd, meta = read_weights(src)
    if quantize is not None and fmt != "onnx":
        raise SlimposeInputError(f"{src}: --quantize is for --format onnx")
    if (meta.get("config") or {}).get("family") == "lifting":
        if quantize is not None:
            raise SlimposeInputError(f"{src}: --quantize is for 2-D pose models, not lifters")
        return export_lifter_checkpoint(src, dst, fmt, decode_in_graph, opset, weights=(sd, meta))
    if fmt == "safetensors":
        from slimpose.engine.checkpoint import export_safetensors

        load(src, backend="train")  # the weights must rebuild a slimpose model before they are shipped
        ckpt = {"model": sd, "model_name": meta.get("model_name", ""), "config": meta.get("config") or {}}
        export_safetensors(ckpt, dst)
        return {"path": str(dst), "format": "safetensors", "tensors": len(sd)}
    pm = load(src, backend="train")
    report = export_onnx(pm.model, dst, pm.head, decode_in_graph=decode_in_graph, opset=opset, quantize=quantize)
    report["format"] = "onnx"
    return report


def export_lifter_checkpoint(src: Path, dst: Path, fmt: str, decode_in_graph: bool = False,
                             opset: int = DEFAULT_OPSET, weights: tuple[dict, dict] | None = None) -> dict[str, Any]:
    """A 3-D lifter's checkpoint (``config.family == 'lifting'``) to safetensors (weights + metadata, read back
    by ``slimpose.lifting.checkpoint.load_lifter``) or ONNX: input ``keypoints_2d`` (B, T, J, 2) normalised
    screen coordinates, output ``output`` (B, T, J, 3) root-relative metres (B, 1, J, 3 for seq2frame), dynamic
    batch, checked with onnxruntime. Lifters that choose their frames from the input (TPC, TPA, TPMo: HoT,
    H2OT and TPC-MixSTE as released) are refused for ONNX: DPC-kNN's tie-breaking noise and near-ties do not
    export exactly. The uniform TPS pruner (with TRA or TRI) exports."""
    from slimpose.api import read_weights
    from slimpose.lifting.checkpoint import lifter_from_weights
    from slimpose.lifting.models.pruning import TPS, TokenPruner

    if decode_in_graph:
        raise SlimposeInputError(f"{src}: --decode-in-graph is for 2-D heads; a lifter outputs its 3-D poses")
    sd, meta = weights if weights is not None else read_weights(src)
    model, info = lifter_from_weights(sd, meta, str(src))  # the weights must rebuild the lifter before shipping
    if fmt == "safetensors":
        from slimpose.engine.checkpoint import export_safetensors

        export_safetensors({"model": sd, "model_name": info.model_name, "config": meta.get("config") or {}}, dst)
        return {"path": str(dst), "format": "safetensors", "tensors": len(sd)}
    chosen = [type(m).__name__ for m in model.modules() if isinstance(m, TokenPruner) and not isinstance(m, TPS)]
    if chosen:
        raise SlimposeInputError(f"{src}: {info.model_name} chooses its frames from the input at run time "
                                 f"({', '.join(sorted(set(chosen)))}), which ONNX export does not reproduce exactly "
                                 "yet; export a MixSTE / KTPFormer lifter or one with the uniform TPS pruner, or use "
                                 "the safetensors format")
    if getattr(model, "autoregressive", False):
        raise SlimposeInputError(f"{src}: {info.model_name} samples its poses (random draws, an STPG gradient step "
                                 "per DDIM step, a history from its own past predictions), which has no ONNX graph; "
                                 "use the safetensors format")
    report = export_onnx(model, dst, opset=opset)
    report["format"] = "onnx"
    return report


def onnxruntime_latency(
    model: nn.Module,
    input_size: tuple[int, int] | None = None,
    batch: int = 1,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
) -> dict[str, Any]:
    """Median / mean / min onnxruntime CPU latency (ms) of the raw ``model`` at ``batch`` (its input spec, or
    images of ``input_size`` (w, h)).

    The model is exported to a temporary ONNX file first (not timed). Returns ``ort_latency_ms``,
    ``ort_latency_ms_mean``, ``ort_latency_ms_min``, ``ort_throughput`` (images/s), ``batch``, ``repeats``.
    """
    _, ort = require_onnx()
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    from slimpose.models.spec import input_spec_of

    spec = input_spec_of(model, input_size)
    with tempfile.TemporaryDirectory(prefix="slimpose_ort_") as tmp:
        path = Path(tmp) / "model.onnx"
        export_onnx(model, path, input_size=spec.size, check=False)
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(0).standard_normal(spec.shape(batch)).astype(np.float32)
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
