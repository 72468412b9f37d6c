"""Honest complexity numbers: parameters, GFLOPs (two conventions), latency, throughput, peak memory.

* ``gflops``: multiply-accumulates (G) of convolutions and linear layers, the convention of the pose
  papers (TokenPose/SimCC "convolution and linear layers only", DistilPose, SDPose); attention matrix
  products are **not** counted. ``gflops_with_attention`` adds ``QK^T`` and ``AV``.
  Counted by ``torch.utils.flop_counter.FlopCounterMode`` on a real forward pass (per aten op:
  convolution -> conv; addmm/mm and any op inside an ``nn.Linear`` -> linear; other bmm/baddbmm and
  scaled-dot-product attention -> attention),
  divided by 2 (the counter reports 2 FLOPs per MAC). Element-wise ops, norms, softmax are not counted.
* latency: median wall time of repeated forwards after warm-up under ``torch.inference_mode``.
* peak memory: the peak of tensor memory allocated *during* one forward above what was allocated
  before it (weights and the input already exist). CUDA: ``torch.cuda.max_memory_allocated``; CPU:
  the running sum of the allocation/free events recorded by ``torch.profiler`` (``profile_memory``),
  i.e. the same allocator-level quantity (process RSS is not used: the C allocator keeps freed pages).
"""

from __future__ import annotations

import contextlib
import statistics
import time
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from slimpose.models.spec import input_spec_of

_CONV_OPS = ("convolution", "_convolution", "cudnn_convolution", "convolution_overrideable")
_LINEAR_OPS = ("addmm", "mm")
_ATTENTION_OPS = ("bmm", "baddbmm")


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU fused attention kernel (not in torch's flop registry): ``QK^T`` + ``AV``."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _custom_flop_mapping() -> dict[Any, Any]:
    aten = torch.ops.aten
    mapping: dict[Any, Any] = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = _cpu_sdpa_flop
    return mapping


def _op_name(op: Any) -> str:
    """``aten.addmm.default`` / ``aten.addmm`` -> ``addmm``."""
    name = str(op)
    if name.startswith("aten."):
        name = name[len("aten.") :]
    return name.split(".")[0]


def _by_name(counts: dict[Any, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for op, flops in counts.items():
        name = _op_name(op)
        out[name] = out.get(name, 0) + int(flops)
    return out


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameter values (frozen ones, e.g. the sine position embedding, included by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def param_breakdown(model: nn.Module) -> dict[str, int]:
    """``params`` (all), ``params_trainable`` and ``params_frozen`` (e.g. TokenPose's sine embedding)."""
    total = count_params(model)
    trainable = count_params(model, trainable_only=True)
    return {"params": total, "params_trainable": trainable, "params_frozen": total - trainable}


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _example(model: nn.Module, input_size: tuple[int, int] | None, batch: int,
             device: torch.device | str) -> torch.Tensor:
    """A random input of ``batch`` samples from the model's input spec (or images of ``input_size``)."""
    return input_spec_of(model, input_size).example(batch, device=device)


@contextlib.contextmanager
def _eval_mode(model: nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def count_flops(
    model: nn.Module, input_size: tuple[int, int] | None = None, batch: int = 1
) -> dict[str, Any]:
    """Multiply-accumulates (G) of one forward of ``batch`` inputs of the model's input spec (images of
    ``input_size`` = (w, h) when given).

    Returns ``conv``, ``linear``, ``attention``, ``other`` (any other counted op), ``gflops`` (conv +
    linear) and ``gflops_with_attention`` (conv + linear + attention), all in G MACs, plus ``per_op``.
    A model with a ``counting()`` context manager runs inside it (StarPose: its sampling without the guidance
    gradients, which autograd cannot take under the counter).
    """
    x = _example(model, input_size, batch, _model_device(model))
    counter = FlopCounterMode(display=False, custom_mapping=_custom_flop_mapping())
    counting = model.counting() if hasattr(model, "counting") else contextlib.nullcontext()
    with _eval_mode(model), counting, torch.inference_mode(), counter:
        model(x)
    counts = counter.get_flop_counts()
    per_op = _by_name(counts["Global"])
    # Ops run inside an nn.Linear module are "linear" whatever aten op they became (a Linear on a
    # non-contiguous 3-D input runs as bmm); the module tracker keys modules as "<RootClass>.<path>".
    root = type(model).__name__
    linear_keys = {f"{root}.{n}" if n else root for n, m in model.named_modules() if isinstance(m, nn.Linear)}
    in_linear: dict[str, int] = {}
    for key in linear_keys & set(counts):
        for name, flops in _by_name(counts[key]).items():
            in_linear[name] = in_linear.get(name, 0) + flops
    groups = {"conv": 0, "linear": sum(in_linear.values()), "attention": 0, "other": 0}
    for name, flops in per_op.items():
        flops -= in_linear.get(name, 0)
        if name in _CONV_OPS:
            groups["conv"] += flops
        elif name in _LINEAR_OPS:
            groups["linear"] += flops
        elif name in _ATTENTION_OPS or "attention" in name:
            groups["attention"] += flops
        else:
            groups["other"] += flops
    out: dict[str, Any] = {k: v / 2e9 for k, v in groups.items()}
    out["gflops"] = out["conv"] + out["linear"]
    out["gflops_with_attention"] = out["gflops"] + out["attention"]
    out["per_op"] = {k: v / 2e9 for k, v in sorted(per_op.items())}
    return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_latency(
    model: nn.Module,
    batch: int = 1,
    device: str | torch.device = "cpu",
    warmup: int = 5,
    repeats: int = 20,
    input_size: tuple[int, int] | None = None,
    runner: nn.Module | None = None,
) -> dict[str, Any]:
    """Wall time of ``model(x)`` (or of ``runner(x)``, e.g. ``slimpose.inference.inference_model(model)``) for
    a random input of ``batch`` samples of ``model``'s input spec under ``inference_mode``.

    ``model`` is moved to ``device`` and put in eval mode. Returns ``latency_ms`` (median),
    ``latency_ms_mean``, ``latency_ms_min``, ``latency_ms_max``, ``throughput`` (images/s from the
    median), ``batch``, ``repeats``, ``warmup``, ``device``.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    device = torch.device(device)
    x = _example(model, input_size, batch, device)
    model = model.to(device).eval() if runner is None else runner
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(max(0, warmup)):
            model(x)
        _sync(device)
        for _ in range(repeats):
            t0 = time.perf_counter()
            model(x)
            _sync(device)
            times.append((time.perf_counter() - t0) * 1000.0)
    median = statistics.median(times)
    return {
        "batch": batch,
        "device": str(device),
        "warmup": warmup,
        "repeats": repeats,
        "latency_ms": median,
        "latency_ms_mean": statistics.fmean(times),
        "latency_ms_min": min(times),
        "latency_ms_max": max(times),
        "throughput": batch * 1000.0 / median,
    }


def measure_latencies_interleaved(
    models: dict[str, nn.Module],
    settings: dict[str, dict[str, Any]],
    rounds: int = 3,
    input_size: tuple[int, int] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Round-robin latency: ``rounds`` times, every model under every ``settings`` entry (keyword arguments
    of ``measure_latency``), so that load changes on a shared machine hit all models alike.

    Returns ``{model: {setting: [median latency_ms of each round]}}``.
    """
    per: dict[str, dict[str, list[float]]] = {n: {k: [] for k in settings} for n in models}
    for _ in range(rounds):
        for name, model in models.items():
            for key, kwargs in settings.items():
                per[name][key].append(measure_latency(model, input_size=input_size, **kwargs)["latency_ms"])
    return per


def _cpu_peak_bytes(model: nn.Module, x: torch.Tensor) -> int:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        model(x)
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for e in events:
        current += e.nbytes()
        peak = max(peak, current)
    return peak


def measure_peak_memory(
    model: nn.Module,
    batch: int = 1,
    device: str | torch.device = "cpu",
    input_size: tuple[int, int] | None = None,
) -> float:
    """Peak MB of tensor memory allocated during one forward, above the weights and the input."""
    device = torch.device(device)
    x = _example(model, input_size, batch, device)
    model = model.to(device).eval()
    with torch.inference_mode():
        model(x)  # first-call allocations (e.g. lazy workspaces) are not part of steady state
        if device.type == "cuda":
            _sync(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            model(x)
            _sync(device)
            peak = torch.cuda.max_memory_allocated(device) - base
        else:
            peak = _cpu_peak_bytes(model, x)
    return peak / 2**20


def weights_mb(model: nn.Module) -> float:
    """MB of parameters and buffers."""
    n = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    return n / 2**20


def benchmark_model(
    model: nn.Module,
    input_size: tuple[int, int] | None = None,
    device: str | torch.device = "cpu",
    batch: int = 32,
    timing: bool = True,
    warmup: int = 3,
    repeats: int = 10,
    repeats_large: int | None = None,
    runner: nn.Module | None = None,
) -> dict[str, Any]:
    """Everything ``slimpose benchmark`` reports, as one flat dict; the latencies are those of ``runner``
    when given (the inference form of ``model``), the counts and memory those of ``model``.

    Keys: ``params``, ``params_trainable``, ``params_frozen``, ``conv``, ``linear``, ``attention``,
    ``gflops``, ``gflops_with_attention``, ``input_size``, ``batch``, ``latency_ms_b1``,
    ``latency_ms_b{batch}``, ``throughput_b{batch}`` (``latency_ms_b32`` / ``throughput_b32`` are always
    present, None unless ``batch == 32``), ``peak_memory_mb`` (batch 1), ``peak_memory_mb_b{batch}``,
    ``weights_mb``, ``device``, ``memory_method``; with timing also ``latency_ms_b1_min`` and
    ``latency_ms_b{batch}_min`` (fastest run: less sensitive to a shared machine). Timing keys are None when
    ``timing`` is False.
    """
    device = torch.device(device)
    spec = input_spec_of(model, input_size)
    size = spec.size
    model = model.to(device).eval()
    result: dict[str, Any] = {"input_size": list(size), "device": str(device), "batch": batch}
    result.update(param_breakdown(model))
    flops = count_flops(model, input_size, batch=1)
    for key in ("conv", "linear", "attention", "gflops", "gflops_with_attention"):
        result[key] = flops[key]
    result["weights_mb"] = weights_mb(model)
    result["memory_method"] = (
        "torch.cuda.max_memory_allocated above the pre-forward allocation"
        if device.type == "cuda"
        else "torch.profiler allocation events (peak running sum during one forward)"
    )
    result["peak_memory_mb"] = measure_peak_memory(model, 1, device, input_size)
    large_keys = {f"latency_ms_b{batch}", f"throughput_b{batch}", f"peak_memory_mb_b{batch}"}
    for key in ("latency_ms_b1", "latency_ms_b32", "throughput_b32", *sorted(large_keys)):
        result.setdefault(key, None)
    if timing:
        small = measure_latency(model, 1, device, warmup, repeats, input_size, runner)
        result["latency_ms_b1"] = small["latency_ms"]
        result["latency_ms_b1_min"] = small["latency_ms_min"]
        big = measure_latency(model, batch, device, min(warmup, 2), repeats_large or repeats, input_size, runner)
        result[f"latency_ms_b{batch}"] = big["latency_ms"]
        result[f"latency_ms_b{batch}_min"] = big["latency_ms_min"]
        result[f"throughput_b{batch}"] = big["throughput"]
        result[f"peak_memory_mb_b{batch}"] = measure_peak_memory(model, batch, device, input_size)
    return result
