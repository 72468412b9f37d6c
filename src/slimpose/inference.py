"""The inference path: a trained pose network rewritten for fast prediction, with the same outputs.

``prepare_for_inference(model)`` returns a copy of the network in which

* every batch norm that directly follows a convolution (or transposed convolution) is folded into it
  (``W' = W * g / sqrt(v + eps)``, ``b' = (b - m) g / sqrt(v + eps) + beta``) and replaced by ``Identity``; the
  pairs are found by running one example through the network (a BN whose input is the output of a conv that
  nothing else reads), so every CNN of ``slimpose.models`` is handled without per-model code;
* the TokenPose-family patch embedding (``patchify`` then ``Linear``: a permuted copy of the feature map) is
  replaced by the same weights as a strided convolution, which on a channels-last feature map writes the
  tokens in place (``FeaturePatchEmbed.to_conv``);
* convolutions run channels-last (``memory_format=torch.channels_last``; the input is converted once);
* nothing keeps autograd state (parameters frozen; callers run it under ``torch.inference_mode``);
* denormal floats are flushed to zero (``InferenceNetwork``).

The rewritten network is checked against the original on the example (``InferenceCheckError`` when they
differ by more than ``atol`` of the outputs' scale, ``max(1, max |output|)``). ``inference_model(model,
backend)`` adds a backend: ``'torch'`` (eager), ``'compile'`` (``torch.compile``; needs a C++ compiler,
pays after its first, slow call) or ``'onnxruntime'``
(the network exported to ONNX and run by ONNX Runtime, optionally with int8 dynamically quantised
MatMul / Gemm weights: ``quantize='int8'``). Every backend is a ``nn.Module`` taking images and returning
the network's raw outputs, so the heads' decoding and flip test run on it unchanged
(``slimpose.load(..., backend=)``, ``slimpose predict --backend``, ``slimpose benchmark --backend``).
Measured speed: ``benchmarks/inference_speed.py`` and docs/inference.md.
"""

from __future__ import annotations

import copy
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slimpose.utils.io import SlimposeInputError

BACKENDS = ("torch", "compile", "onnxruntime")
QUANTIZE = (None, "int8")
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def check_quantize(quantize: str | None) -> None:
    """A SlimposeInputError unless ``quantize`` is one of ``QUANTIZE``."""
    if quantize not in QUANTIZE:
        raise SlimposeInputError(f"quantize must be one of {QUANTIZE[1:]}, got {quantize!r}")


class InferenceCheckError(RuntimeError):
    """The rewritten network does not give the original network's outputs."""


# ----------------------------------------------------------------------------------------------- rewrites


def _flat_outputs(out: Any) -> list[torch.Tensor]:
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flat_outputs(o)]
    if isinstance(out, dict):
        return [t for k in sorted(out) for t in _flat_outputs(out[k])]
    return []


def example_input(model: nn.Module, batch: int = 1) -> torch.Tensor:
    """A random input of the model's input spec (``model.input_spec.shape(batch)``; an image model)."""
    spec = getattr(model, "input_spec", None)
    if spec is None:
        raise ValueError(f"{type(model).__name__} has no input_spec: pass an example input")
    g = torch.Generator().manual_seed(0)
    p = next(iter(model.parameters()), None)
    return torch.randn(*spec.shape(batch), generator=g).to(p.device if p is not None else "cpu")


def _parent(model: nn.Module, name: str) -> tuple[nn.Module, str]:
    parent, _, leaf = name.rpartition(".")
    return (model.get_submodule(parent) if parent else model), leaf


def conv_bn_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` for every BatchNorm2d whose input is the output of one Conv2d /
    ConvTranspose2d, found by running ``example``. A conv or BN called more than once, a BN without running
    statistics, and a conv whose output another module also reads are left alone. A read by plain code
    (``bn(y) + y``) is not seen here: ``prepare_for_inference``'s check catches it and retries without folding."""
    outputs: dict[int, tuple[str, torch.Tensor]] = {}  # id(conv output) -> conv name (kept alive: ids stay unique)
    calls: dict[str, int] = {}
    pairs: dict[str, str] = {}  # bn name -> conv name
    readers: dict[str, int] = {}  # conv name -> modules that read its output
    handles = []

    def on_conv(name: str):
        def hook(_m, _inp, out):
            calls[name] = calls.get(name, 0) + 1
            outputs[id(out)] = (name, out)
        return hook

    def on_read(name: str, is_bn: bool):
        def hook(_m, inp):
            if is_bn:
                calls[name] = calls.get(name, 0) + 1
            for t in inp:
                if isinstance(t, torch.Tensor) and id(t) in outputs:
                    conv = outputs[id(t)][0]
                    readers[conv] = readers.get(conv, 0) + 1
                    if is_bn:
                        pairs[name] = conv
        return hook

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            handles.append(m.register_forward_hook(on_conv(name)))
        if isinstance(m, nn.BatchNorm2d) or not list(m.children()):
            handles.append(m.register_forward_pre_hook(on_read(name, isinstance(m, nn.BatchNorm2d))))
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
        outputs.clear()
    modules = dict(model.named_modules())
    return [(conv, bn) for bn, conv in pairs.items()
            if modules[bn].running_mean is not None and modules[bn].running_var is not None
            and calls.get(conv) == 1 and calls.get(bn) == 1 and readers.get(conv) == 1
            and modules[conv].out_channels == modules[bn].num_features]


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode ``bn`` into ``conv`` in place (the conv gains a bias)."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("batch norm without running statistics cannot be folded")
    gain = bn.running_var.add(bn.eps).rsqrt()
    if bn.weight is not None:
        gain = gain * bn.weight
    shift = -bn.running_mean * gain
    if bn.bias is not None:
        shift = shift + bn.bias
    w = conv.weight
    if isinstance(conv, nn.ConvTranspose2d):  # weight (in, out / groups, kh, kw)
        g = conv.groups
        wv = w.reshape(g, w.shape[0] // g, w.shape[1], *w.shape[2:])
        wv.mul_(gain.reshape(g, 1, -1, 1, 1))
    else:
        w.mul_(gain.reshape(-1, *([1] * (w.dim() - 1))))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(gain)
    new_bias = bias * gain + shift
    if conv.bias is None:
        conv.bias = nn.Parameter(new_bias)
    else:
        conv.bias.copy_(new_bias)


def fold_batch_norms(model: nn.Module, example: torch.Tensor) -> int:
    """Fold every conv-then-BN pair of ``model`` (eval mode) in place; the number folded."""
    pairs = conv_bn_pairs(model, example)
    for conv, bn in pairs:
        fold_conv_bn(model.get_submodule(conv), model.get_submodule(bn))
        parent, leaf = _parent(model, bn)
        setattr(parent, leaf, nn.Identity())
    return len(pairs)


def conv_patch_embeddings(model: nn.Module) -> int:
    """Replace every ``FeaturePatchEmbed`` (patchify + Linear) by its strided-convolution form; the count."""
    from slimpose.models.transformer.patch_embed import FeaturePatchEmbed

    names = [n for n, m in model.named_modules() if isinstance(m, FeaturePatchEmbed)]
    for name in names:
        parent, leaf = _parent(model, name)
        setattr(parent, leaf, getattr(parent, leaf).to_conv())
    return len(names)


class InferenceNetwork(nn.Module):
    """Runs the rewritten ``net``: on a channels-last copy of the input when ``channels_last`` (the network
    converted to it), with denormal floats flushed to zero (``torch.set_flush_denormal(True)``, process-wide:
    numbers below 1.2e-38, which x86 CPUs compute 10 to 100 times slower; an untrained network's tiny
    activations are full of them). Keeps ``net``'s attributes reachable (``input_spec``, ...)."""

    def __init__(self, net: nn.Module, channels_last: bool, precision: str = "fp32") -> None:
        super().__init__()
        self.channels_last = channels_last
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.precision = precision
        self.flush_denormal = True  # CompiledModule sets it outside the compiled region instead

    def forward(self, images: torch.Tensor) -> Any:
        if self.flush_denormal:
            torch.set_flush_denormal(True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return self.net(images)
        with torch.autocast(images.device.type, dtype=dtype):
            out = self.net(images)
        if isinstance(out, dict):
            return {k: v.float() for k, v in out.items()}
        return type(out)(o.float() for o in out) if isinstance(out, (tuple, list)) else out.float()

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)


def network_outputs(module: nn.Module, example: torch.Tensor) -> list[torch.Tensor]:
    """``module(example)`` flattened into a list of tensors, under ``torch.inference_mode``."""
    with torch.inference_mode():
        return _flat_outputs(module(example))


def max_output_difference(a: nn.Module | list[torch.Tensor], b: nn.Module, example: torch.Tensor,
                          relative: bool = False) -> float:
    """Largest absolute difference between the outputs of ``a`` (a module, or its ``network_outputs`` on
    ``example``, computed once) and ``b`` on ``example``; ``relative``: divided by the largest magnitude of
    ``a``'s output (at least 1)."""
    oa = a if isinstance(a, list) else network_outputs(a, example)
    ob = network_outputs(b, example)
    if len(oa) != len(ob) or any(x.shape != y.shape for x, y in zip(oa, ob)):
        return float("inf")
    diffs = [float((x.float() - y.float()).abs().max()) / (max(1.0, float(x.abs().max())) if relative else 1.0)
             for x, y in zip(oa, ob) if x.numel()]
    return max(diffs, default=0.0)


def prepare_for_inference(model: nn.Module, example: torch.Tensor | None = None, fold_bn: bool = True,
                          channels_last: bool = True, conv_patchify: bool = True, atol: float = 1e-4,
                          reference: list[torch.Tensor] | None = None) -> nn.Module:
    """A frozen, eval-mode copy of ``model`` with the rewrites of the module doc; checked on ``example``
    (default: a random input of its input spec) against ``model`` (in eval mode; its mode is restored) to
    ``atol`` of the outputs' scale. When the check fails with BN folding, it is tried once more without.
    ``reference``: ``model``'s ``network_outputs`` on ``example``, when the caller has them."""
    was_training = model.training
    model.eval()
    try:
        example = example_input(model) if example is None else example
        reference = network_outputs(model, example) if reference is None else reference
        try:
            return _prepare(model, example, reference, fold_bn, channels_last, conv_patchify, atol)
        except InferenceCheckError:
            if not fold_bn:
                raise
            return _prepare(model, example, reference, False, channels_last, conv_patchify, atol)
    finally:
        model.train(was_training)


def _prepare(model: nn.Module, example: torch.Tensor, reference: list[torch.Tensor], fold_bn: bool,
             channels_last: bool, conv_patchify: bool, atol: float) -> nn.Module:
    net = copy.deepcopy(model).eval()
    info = {"folded_bn": 0, "conv_patchify": 0, "channels_last": False}
    if fold_bn:
        info["folded_bn"] = fold_batch_norms(net, example)
    if conv_patchify:
        info["conv_patchify"] = conv_patch_embeddings(net)
    for p in net.parameters():
        p.requires_grad_(False)
    has_conv = any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)) for m in net.modules())
    info["channels_last"] = bool(channels_last and has_conv and example.dim() == 4)
    net = InferenceNetwork(net, info["channels_last"])
    diff = max_output_difference(reference, net, example, relative=True)
    if not diff <= atol:
        raise InferenceCheckError(f"the inference rewrite of {type(model).__name__} changes its outputs by {diff:.3g} "
                                  f"of their scale (> {atol:g}); use prepare_for_inference(..., fold_bn=False, "
                                  "conv_patchify=False)")
    net.inference_info = {**info, "max_difference": diff}
    return net


# ----------------------------------------------------------------------------------------------- backends


class CompiledModule(nn.Module):
    """``torch.compile`` of a prepared network (inductor). The first call compiles, and a second batch size
    compiles once more, with a dynamic batch dimension (torch's automatic dynamic shapes). Not run when built:
    a compile failure shows at the first call."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        net.flush_denormal = False  # no graph break: set here, outside the compiled region
        self.compiled = torch.compile(net)

    def forward(self, images: torch.Tensor) -> Any:
        torch.set_flush_denormal(True)
        return self.compiled(images)


def _session_options(ort: Any, threads: int | None) -> Any:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = int(threads or torch.get_num_threads())
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")  # fair to a shared machine
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return so


def quantize_onnx_int8(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """ONNX Runtime dynamic quantisation: int8 weights for MatMul / Gemm, activations quantised per call
    (uint8); convolutions stay fp32."""
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise SlimposeInputError(f"int8 quantisation needs onnxruntime ({e}): pip install 'slimpose[export]'") from None
    import logging

    root = logging.getLogger()
    quiet = None if root.handlers else logging.NullHandler()  # its logging.warning would configure the root logger
    if quiet is not None:
        root.addHandler(quiet)
    try:
        quantize_dynamic(str(src), str(dst), op_types_to_quantize=["MatMul", "Gemm"], weight_type=QuantType.QInt8)
    finally:
        if quiet is not None:
            root.removeHandler(quiet)


class OnnxRuntimeModule(nn.Module):
    """An ONNX Runtime session behind the ``nn.Module`` interface: images (B,3,H,W) -> the network's raw
    outputs (a tensor, or a tuple in the network's order). Built from a network with ``from_model``, or opened
    on an exported raw-output file (``OnnxRuntimeModule(path)``; ``structure``: None for one output, n for n)."""

    def __init__(self, path: str | os.PathLike, threads: int | None = None, structure: Any = None,
                 keep: Any = None) -> None:
        super().__init__()
        from slimpose.export import require_onnx

        _, ort = require_onnx()
        self.path = str(path)
        self.session = ort.InferenceSession(self.path, _session_options(ort, threads),
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.structure = structure  # None: one tensor; int n: a tuple of n tensors
        self._keep = keep  # the temporary folder of from_model, removed with the module

    @classmethod
    def from_model(cls, net: nn.Module, example: torch.Tensor, quantize: str | None = None,
                   threads: int | None = None, path: str | os.PathLike | None = None) -> "OnnxRuntimeModule":
        """Export ``net`` (dynamic batch) to ``path`` (default: a temporary file) and open it."""
        from slimpose.export import DEFAULT_OPSET, require_onnx

        require_onnx()
        check_quantize(quantize)
        keep = None
        if path is None:
            keep = tempfile.TemporaryDirectory(prefix="slimpose_ort_")
            path = Path(keep.name) / "model.onnx"
        path = Path(path)
        with torch.no_grad():
            out = net(example)
        n = len(_flat_outputs(out))
        names = ["output"] if n == 1 else [f"output{i}" for i in range(n)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (example,), str(path), input_names=["images"], output_names=names,
                              dynamic_axes={"images": {0: "batch"}, **{k: {0: "batch"} for k in names}},
                              opset_version=DEFAULT_OPSET, dynamo=False)
        if quantize == "int8":
            qpath = path.with_name(path.stem + ".int8.onnx")
            quantize_onnx_int8(path, qpath)
            path = qpath
        return cls(path, threads, None if isinstance(out, torch.Tensor) else n, keep)

    def forward(self, images: torch.Tensor) -> Any:
        outs = self.session.run(None, {self.input_name: images.detach().float().cpu().contiguous().numpy()})
        tensors = [torch.from_numpy(o).to(images.device) for o in outs]
        return tensors[0] if self.structure is None else tuple(tensors)


def inference_model(model: nn.Module, backend: str = "torch", example: torch.Tensor | None = None,
                    quantize: str | None = None, threads: int | None = None, precision: str = "fp32",
                    **prepare: Any) -> nn.Module:
    """``model`` prepared (``prepare_for_inference``) and run by ``backend``; the result keeps
    ``inference_info`` (rewrites, backend, the largest output difference to ``model`` on the example).

    ``precision`` ``'bf16'`` / ``'fp16'`` (torch backends): autocast around the network (bf16 on CPUs with
    AVX512-BF16 or AMX, both on GPUs); outputs in float32, not checked against ``model`` (reported only)."""
    if backend not in BACKENDS:
        raise SlimposeInputError(f"backend must be one of {', '.join(BACKENDS)} (or 'train' for slimpose.load), "
                                 f"got {backend!r}")
    check_quantize(quantize)
    if quantize is not None and backend != "onnxruntime":
        raise SlimposeInputError(f"quantize={quantize!r} needs backend='onnxruntime'")
    if precision not in PRECISIONS or (precision != "fp32" and backend == "onnxruntime"):
        raise SlimposeInputError(f"precision must be one of {', '.join(PRECISIONS)} (fp32 only for onnxruntime), "
                                 f"got {precision!r}")
    example = example_input(model) if example is None else example
    was_training = model.training
    reference = network_outputs(model.eval(), example)  # once, for every check below
    model.train(was_training)
    net = prepare_for_inference(model, example, reference=reference, **prepare)
    info = dict(net.inference_info, backend=backend, quantize=quantize, precision=precision)
    if precision != "fp32":
        net.precision = precision
        info["max_difference"] = max_output_difference(reference, net, example, relative=True)
    if backend == "compile":
        net = CompiledModule(net)
    elif backend == "onnxruntime":
        # ONNX keeps no memory format: export the folded network without the channels-last wrapper
        net = OnnxRuntimeModule.from_model(net.net, example, quantize=quantize, threads=threads)
        diff = max_output_difference(reference, net, example, relative=True)
        if quantize is None and not diff <= prepare.get("atol", 1e-4):
            raise InferenceCheckError(f"ONNX Runtime changes the outputs of {type(model).__name__} by {diff:.3g}")
        info["max_difference"] = max(info["max_difference"], diff)
    net.inference_info = info
    return net
