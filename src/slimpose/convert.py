"""Official checkpoints -> slimpose: key renaming for TokenPose, PPT, DistilPose, SDPose, ViTPose and mmpose.

Key tables (see docs/architecture.md and the official code):

* TokenPose (leeyegy/TokenPose, HRNet-style ``checkpoint.pth`` = ``{'state_dict' (module.-prefixed),
  'best_state_dict', ...}`` or a raw state dict): S: ``features.{conv1,bn1,conv2,bn2,layer1}`` (StemNet) and
  ``features.{keypoint_token,pos_embedding,patch_to_embedding,transformer.layers.{i},mlp_head}``;
  B/L: ``pre_feature.*`` (3-stage HRNet) + ``transformer.*`` (B: ``transformer.transformer.layers.{i}``,
  L: ``transformer.transformer{1,2,3}.layers.{i}`` = slimpose stacks 0, 1, 2). PPT: the same, with the
  attention sub-layer not wrapped in ``Residual`` (``layers.{i}.0.norm``, ``layers.{i}.0.fn.to_qkv``).
* DistilPose (mmcv ``{'meta','state_dict',...}``): ``backbone.*`` + ``keypoint_head.tokenhead.*`` (students)
  or ``keypoint_head.tokenpose.*`` (the heatmap teacher).
  SDPose: ``keypoint_head.tokenpose.transformer_layer1``.
* mmpose 0.x heatmap models: ``backbone.*`` + ``keypoint_head.{deconv_layers,final_layer}`` (1.x ``head.*``);
  deep-high-resolution-net files (``conv1.*``, ``final_layer.*``) via ``convert_official_hrnet_state_dict``.
  Lite-HRNet (HRNet/Lite-HRNet, mmpose 0.x/1.x ``LiteHRNet``) needs no renaming: ``backbone.{stem,
  transition{i},stage{i},head_layer}.*`` are slimpose's names. SimCC models (``SimCCPose``) take the 1.x
  ``head.{final_layer,mlp_head_x,mlp_head_y}`` keys as they are.
* ViTPose (ViTAE-Transformer/ViTPose mmcv ``state_dict``: ``backbone.*``, ``keypoint_head.*``, slimpose's own
  names) and MMPose 1.x ViTPose (``backbone.layers.{i}.ln1 ...``, ``head.*``): ``vitpose_keys``.
* ViTPose++ (same repository, ``slimpose.models.vitpose_plus``): a raw checkpoint (``mlp.fc2`` [C - P, 4C],
  ``mlp.experts.{k}`` [P, 4C], ``keypoint_head.*``, ``associate_keypoint_heads.{0..4}.*``) has slimpose's
  names and loads strictly into ``vitpose_plus_*``. ``convert_checkpoint(dataset=k)`` (``--dataset K``)
  first splits it as ``tools/model_split.py`` does (fc2 rows, then expert k; data set k's head as
  ``keypoint_head``) into a plain ``vitpose_*``; the other experts and heads are listed in
  ``report.ignored``. The official split files (``coco.pth``, ``aic.pth``, ...) hold the full ``fc2``
  [C, 4C] but, depending on the script's version, still carry the ``mlp.experts.*`` copies and the
  ``associate_keypoint_heads.*``. Such a file is recognised (every ``fc2`` fits the plain model and ends
  with the rows of the same ``experts.{k}``) and those keys are listed in ``report.ignored`` (printed, not an
  error: redundant copies and other data sets' heads) instead of failing as unexpected; experts that fc2
  does not end with stay unexpected. A raw file into a plain model fails, with a hint to use
  ``vitpose_plus_*`` or ``--dataset``.

Inside a token transformer: ``layers.{i}.0.fn.norm`` -> ``norm1``, ``.0.fn.fn.to_qkv`` -> ``attn.qkv``,
``.0.fn.fn.to_out.0`` -> ``attn.proj``, ``.1.fn.norm`` -> ``norm2``, ``.1.fn.fn.net.0`` -> ``mlp.fc1``,
``.1.fn.fn.net.3`` -> ``mlp.fc2``; ``patch_to_embedding`` -> ``patch_embed`` (a Linear over the same
``(p1, p2, c)`` patch flattening, so the weight is copied unchanged), ``pos_embedding`` -> ``pos_embed``,
``mlp_head.{j}`` -> ``head.mlp.{j}``. Files are read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from slimpose.utils.io import SlimposeInputError

__all__ = [
    "SOURCES",
    "TEST_CONFIGS",
    "ConversionReport",
    "read_official_state_dict",
    "convert_state_dict",
    "convert_checkpoint",
    "token_inner_key",
]

SOURCES = ("tokenpose", "distilpose", "sdpose", "ppt", "vitpose", "mmpose")

# (official prefix, what follows it): "token" = token-transformer keys, "backbone", "cnnhead" (mmpose heads),
# "stem_or_token" = TokenPose-S ``features.`` (StemNet and token keys share one module).
_PREFIXES: dict[str, tuple[tuple[str, str], ...]] = {
    "tokenpose": (("features.", "stem_or_token"), ("pre_feature.", "backbone"), ("transformer.", "token")),
    "ppt": (("features.", "stem_or_token"), ("pre_feature.", "backbone"), ("transformer.", "token")),
    "distilpose": (("backbone.", "backbone"), ("keypoint_head.tokenhead.", "token"),
                   ("keypoint_head.tokenpose.", "token")),
    "sdpose": (("backbone.", "backbone"), ("keypoint_head.tokenpose.", "token")),
    "mmpose": (("backbone.", "backbone"), ("keypoint_head.", "cnnhead"), ("head.", "cnnhead")),
}
# known extra tensors of an official state dict, dropped by name (and reported): layout -> (prefix, what it is)
KNOWN_EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "distilpose": (("teacher_model.", "the frozen teacher of DistilPose's TopDownDistil, not part of the student"),),
}
# known non-weight entries of official checkpoint files (mmcv, HRNet-style tools/train.py), dropped by name
KNOWN_ENTRIES = ("meta", "optimizer", "epoch", "perf", "model", "best_state_dict", "state_dict", "iter",
                 "message_hub", "param_schedulers", "ema_state_dict", "state_dict_ema", "amp", "scaler")

# the official test of each layout's repository, written into a converted checkpoint's config (TrainConfig
# fields; docs/conversion.md says where each one is verified). Rescoring (keypoint score threshold 0.2, OKS-NMS
# 0.9) and flip testing are the official ones in every layout and slimpose's defaults.
OFFICIAL_TEST: dict[str, dict[str, Any]] = {
    # leeyegy/TokenPose and HowieMa/PPT (HRNet-era code by the DARK authors): DARK warp for crops and heatmaps,
    # flip_back without shift (lib/core/function.py validate), DARK decoding (TEST.POST_PROCESS, BLUR_KERNEL 11)
    "tokenpose": {"conventions": {"source": "tokenpose", "geometry": "dark", "nonpositive": "zero"},
                  "shift_heatmap": False, "dark": True},
    "ppt": {"conventions": {"source": "ppt", "geometry": "dark", "nonpositive": "zero"}, "shift_heatmap": False,
            "dark": True},
    # yshMars/DistilPose (mmpose 0.22): students flip with fliplr_regression (x -> 1 - x) and average the
    # unswapped scores; the TokenPose teacher: shift_heatmap, post_process='unbiased' (DARK)
    "distilpose": {"conventions": {"source": "distilpose", "geometry": "standard", "flip_coords": "unit",
                                   "flip_swap_scores": False, "nonpositive": "minus_one"},
                   "shift_heatmap": True, "dark": True},
    # MartyrPenink/SDPose (mmpose 0.29): shift_heatmap, post_process='unbiased'
    "sdpose": {"conventions": {"source": "sdpose", "geometry": "standard", "nonpositive": "minus_one"},
               "shift_heatmap": True, "dark": True},
    # mmpose 0.x HRNet / SimpleBaseline / Lite-HRNet configs: shift_heatmap, post_process='default' (HRNet's
    # quarter step); SimCC models keep their head's own (MMPose 1.x) settings; an MMPose 1.x file (``head.*``)
    # gets 1.x's refine_keypoints bounds and get_simcc_maximum masking (see convert_checkpoint)
    "mmpose": {"conventions": {"source": "mmpose", "geometry": "standard", "quarter_bounds": "hrnet",
                               "nonpositive": "minus_one"},
               "shift_heatmap": True, "dark": False},
    # ViTAE-Transformer/ViTPose (mmpose 0.x): UDP crops and decoding (post_dark_udp), no heatmap shift;
    # an MMPose 1.x file (``backbone.layers.*``) gets MMPose 1.x's DARK-UDP blur (see convert_checkpoint)
    "vitpose": {"conventions": {"source": "vitpose", "geometry": "udp", "udp_blur": "plain", "udp_border": "pad",
                                "nonpositive": "minus_one"},
                "shift_heatmap": False, "dark": False},
}

# ``--test-config``: the official test config a file was trained and tested with, where its keys cannot tell.
# mmpose's UDP and DARK HRNet / SimpleBaseline / Lite-HRNet checkpoints (0.x ``*_udp.py`` / ``*_dark.py``, 1.x
# ``td-hm_*_udp-*`` / ``td-hm_*_dark-*``) hold exactly the tensors of the plain ones; ``default`` keeps the
# layout's OFFICIAL_TEST. Only ``--from mmpose`` heatmap models have such variants (docs/conversion.md).
TEST_CONFIGS = ("default", "udp", "dark")
TEST_CONFIG_SOURCES = ("mmpose",)
# (mmpose major version, test config) -> updates of the converted config (``conventions`` merged)
_TEST_CONFIG_UPDATES: dict[tuple[str, str], dict[str, Any]] = {
    # mmpose 0.x *_udp.py: test_cfg use_udp=True, target_type='GaussianHeatmap', shift_heatmap=False,
    # TopDownAffine(use_udp=True) -> post_dark_udp (cv2 blur in place, the batch's maps flattened together)
    ("0", "udp"): {"conventions": {"source": "mmpose-udp", "geometry": "udp", "udp_blur": "plain",
                                   "udp_border": "pad"}, "shift_heatmap": False, "dark": False},
    # mmpose 0.x *_dark.py: post_process='unbiased', shift_heatmap=True, modulate_kernel=11
    ("0", "dark"): {"conventions": {"source": "mmpose-dark"}, "dark": True},
    # MMPose 1.x td-hm_*_udp-*: UDPHeatmap (refine_keypoints_dark_udp: zero-padded rescaled blur, one instance's
    # maps flattened together), shift_heatmap=False, TopdownAffine(use_udp=True)
    ("1", "udp"): {"conventions": {"source": "mmpose1-udp", "geometry": "udp", "udp_blur": "keep_max",
                                   "udp_border": "pad_instance"}, "shift_heatmap": False, "dark": False},
    # MMPose 1.x td-hm_*_dark-*: MSRAHeatmap(unbiased=True) (refine_keypoints_dark: Taylor step where
    # 1 < x < W - 2 and 1 < y < H - 2, blur kernel 11), shift_heatmap=True
    ("1", "dark"): {"conventions": {"source": "mmpose1-dark"}, "dark": True},
}


def check_test_config(source: str, test_config: str | None) -> str:
    """``test_config`` (``None``: ``'default'``) if it means something for ``source``, else a SlimposeInputError."""
    name = "default" if test_config is None else str(test_config)
    if name not in TEST_CONFIGS:
        raise SlimposeInputError(f"--test-config {name!r}: choose from {', '.join(TEST_CONFIGS)}")
    if name != "default" and source not in TEST_CONFIG_SOURCES:
        raise SlimposeInputError(
            f"--test-config {name} means nothing for --from {source}: its checkpoints have one official test "
            f"(written by default); UDP / DARK variants with the plain keys exist for --from "
            f"{' / '.join(TEST_CONFIG_SOURCES)} only")
    return name


_TOKEN_ROOTS = ("keypoint_token", "pos_embedding", "patch_to_embedding", "transformer", "mlp_head")

# one transformer layer: official sub-key -> slimpose TokenBlock sub-module (both Residual and PPT forms)
_LAYER_MAP = {
    "0.fn.norm": "norm1",
    "0.norm": "norm1",
    "0.fn.fn.to_qkv": "attn.qkv",
    "0.fn.to_qkv": "attn.qkv",
    "0.fn.fn.to_out.0": "attn.proj",
    "0.fn.to_out.0": "attn.proj",
    "1.fn.norm": "norm2",
    "1.norm": "norm2",
    "1.fn.fn.net.0": "mlp.fc1",
    "1.fn.net.0": "mlp.fc1",
    "1.fn.fn.net.3": "mlp.fc2",
    "1.fn.net.3": "mlp.fc2",
}
_LAYER_RE = re.compile(
    r"^(transformer|transformer_layer1|transformer(\d+))\.layers\.(\d+)\.(.+)\.(weight|bias)$")


def token_inner_key(key: str) -> tuple[str, str] | None:
    """Official token-head key (prefix removed) -> ``(part, slimpose sub-key)`` with part ``'transformer'``
    or ``'head'``; ``None`` if it is not a token-transformer key."""
    if key == "keypoint_token":
        return "transformer", "keypoint_token"
    if key == "pos_embedding":
        return "transformer", "pos_embed"
    m = re.match(r"^patch_to_embedding\.(weight|bias)$", key)
    if m:
        return "transformer", f"patch_embed.{m.group(1)}"
    m = re.match(r"^mlp_head\.(\d+)\.(weight|bias)$", key)
    if m:
        return "head", f"mlp.{m.group(1)}.{m.group(2)}"
    m = _LAYER_RE.match(key)
    if m:
        stack = int(m.group(2)) - 1 if m.group(2) else 0
        sub = _LAYER_MAP.get(m.group(4))
        if sub is None or stack < 0:
            return None
        return "transformer", f"stacks.{stack}.layers.{int(m.group(3))}.{sub}.{m.group(5)}"
    return None


@dataclass
class ConversionReport:
    """What happened to every key: converted, missing in the file, unexpected, shape-mismatched, filled."""

    converted: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, str, tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    filled: list[str] = field(default_factory=list)  # deterministic tensors taken from the model
    ignored: list[str] = field(default_factory=list)  # official keys deliberately not loaded (with why)
    dropped: list[str] = field(default_factory=list)  # known extra entries / tensors of the layout (by name)
    initialised: list[str] = field(default_factory=list)  # new parameters no official file has (EViTPose)
    source_key: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched)

    def format(self, limit: int = 20) -> str:
        origin = f" (from '{self.source_key}')" if self.source_key else ""
        lines = [f"converted {self.converted} tensors{origin}"]

        def block(title: str, items: list[str]) -> None:
            if items:
                lines.append(f"{title} ({len(items)}):")
                lines.extend(f"  {s}" for s in items[:limit])
                if len(items) > limit:
                    lines.append(f"  ... {len(items) - limit} more")

        block("missing in the file (model keys with no official tensor)", self.missing)
        block("unexpected (official keys with no slimpose place)", self.unexpected)
        block("shape mismatch (slimpose key <- official key: model shape vs file shape)",
              [f"{k} <- {o}: {tuple(a)} vs {tuple(b)}" for k, o, a, b in self.mismatched])
        block("filled from the model (deterministic: BN counters, sine position embeddings)", self.filled)
        block("dropped (known extra entries of the official file, not weights of this model)", self.dropped)
        block("ignored (ViTPose++ tensors not needed by this model)", self.ignored)
        block("left at their initial values (parameters the official model does not have: train them before use)",
              self.initialised)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"converted": self.converted, "missing": self.missing, "unexpected": self.unexpected,
                "mismatched": [[k, o, list(a), list(b)] for k, o, a, b in self.mismatched],
                "filled": self.filled, "ignored": self.ignored, "dropped": self.dropped,
                "initialised": self.initialised,
                "source_key": self.source_key, "ok": self.ok}


def _torch_load_weights_only(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - untrusted file: any failure is a bad input
        raise SlimposeInputError(
            f"{path}: cannot be read with torch.load(weights_only=True) ({type(e).__name__}: {e})") from None


def read_checkpoint_dict(path: str | os.PathLike,
                         torch_load: Callable[[Path], Any] = _torch_load_weights_only) -> dict[str, Any]:
    """The top-level dict of a checkpoint file without executing code: ``.safetensors`` by its reader, anything
    else by ``torch_load`` (default ``torch.load(weights_only=True)``); a SlimposeInputError names the file."""
    path = Path(path)
    if not path.is_file():
        raise SlimposeInputError(f"checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            obj: Any = load_file(str(path))
        except Exception as e:  # noqa: BLE001
            raise SlimposeInputError(f"{path}: cannot be read as safetensors ({type(e).__name__}: {e})") from None
    else:
        obj = torch_load(path)
    if not isinstance(obj, dict):
        raise SlimposeInputError(f"{path}: expected a dict checkpoint, got {type(obj).__name__}")
    return obj


def read_official_state_dict(
    path: str | os.PathLike, key: str | None = None, entries: list[str] | None = None
) -> tuple[dict[str, torch.Tensor], str]:
    """Tensors of an official checkpoint and the entry they came from.

    Unwraps mmcv ``{'state_dict': ...}``, TokenPose ``{'state_dict', 'best_state_dict', ...}`` (``state_dict``
    first unless ``key`` names another entry), ``{'model': ...}`` and raw state dicts; strips ``module.``.
    ``entries`` (a list) receives the names of the other top-level entries (``meta``, ``optimizer``, ...).
    """
    path = Path(path)
    obj = read_checkpoint_dict(path)
    used = ""
    if key is not None:
        if not isinstance(obj.get(key), dict):
            raise SlimposeInputError(
                f"{path}: no state-dict entry {key!r} (entries: {', '.join(map(str, obj))})")
        top, obj, used = obj, obj[key], key
    elif not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for name in ("state_dict", "model", "best_state_dict", "state_dict_ema"):
            if isinstance(obj.get(name), dict):
                top, obj, used = obj, obj[name], name
                break
        else:
            raise SlimposeInputError(
                f"{path}: no state dict found (entries: {', '.join(map(str, obj))}); pass --key NAME")
    if used and entries is not None:
        entries.extend(str(k) for k in top if k != used)
    sd = {}
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise SlimposeInputError(f"{path}: entry {used or 'top level'!r}, key {k!r} is not a tensor")
        sd[k[len("module."):] if k.startswith("module.") else k] = v
    return sd, used


def _find_token_paths(model: nn.Module) -> tuple[str | None, str | None]:
    """Module paths of the model's TokenTransformer and of its token head (the module owning ``mlp``)."""
    from slimpose.models.transformer import TokenTransformer

    tt = next((name for name, m in model.named_modules() if isinstance(m, TokenTransformer)), None)
    head = getattr(model, "head", None)
    head_path = "head" if head is not None and isinstance(getattr(head, "mlp", None), nn.Sequential) else None
    return tt, head_path


def _rename(sd: dict[str, torch.Tensor], source: str, model: nn.Module
            ) -> tuple[dict[str, tuple[str, torch.Tensor]], list[str]]:
    """Official keys -> {slimpose key: (official key, tensor)}, plus the official keys with no place."""
    tt_path, head_path = _find_token_paths(model)
    out: dict[str, tuple[str, torch.Tensor]] = {}
    unplaced: list[str] = []
    if source == "mmpose" and not any(k.startswith(("backbone.", "keypoint_head.", "head.")) for k in sd):
        from slimpose.models.hrnet import convert_official_hrnet_state_dict

        sd = convert_official_hrnet_state_dict(sd)  # deep-high-resolution-net layout
    # mmpose head keys go to the model's CNN output layers: ``keypoint_head`` (heatmap models) or, for
    # ``SimCCPose`` (MMPose 1.x ``head.{final_layer,mlp_head_x,mlp_head_y}``), ``head``
    cnn_head = "keypoint_head" if isinstance(getattr(model, "keypoint_head", None), nn.Module) else "head"
    for key, value in sd.items():
        target = None
        for prefix, kind in _PREFIXES[source]:
            if not key.startswith(prefix):
                continue
            inner = key[len(prefix):]
            if kind == "stem_or_token":
                kind = "token" if inner.split(".")[0] in _TOKEN_ROOTS else "backbone"
            if kind == "backbone":
                target = f"backbone.{inner}"
            elif kind == "cnnhead":
                target = f"{cnn_head}.{inner}"
            else:
                mapped = token_inner_key(inner)
                if mapped is not None:
                    part, sub = mapped
                    path = tt_path if part == "transformer" else head_path
                    target = f"{path}.{sub}" if path is not None else None
            break
        if target is None:
            unplaced.append(key)
        else:
            out[target] = (key, value)
    return out, unplaced


# MMPose 1.x ViTPose (mmpretrain ``VisionTransformer`` + ``HeatmapHead``) -> the official / slimpose names
_VITPOSE_MMPOSE1 = (
    (re.compile(r"^backbone\.patch_embed\.projection\."), "backbone.patch_embed.proj."),
    (re.compile(r"^backbone\.layers\.(\d+)\.ln1\."), r"backbone.blocks.\1.norm1."),
    (re.compile(r"^backbone\.layers\.(\d+)\.ln2\."), r"backbone.blocks.\1.norm2."),
    (re.compile(r"^backbone\.layers\.(\d+)\.attn\."), r"backbone.blocks.\1.attn."),
    (re.compile(r"^backbone\.layers\.(\d+)\.ffn\.layers\.0\.0\."), r"backbone.blocks.\1.mlp.fc1."),
    (re.compile(r"^backbone\.layers\.(\d+)\.ffn\.layers\.1\."), r"backbone.blocks.\1.mlp.fc2."),
    (re.compile(r"^backbone\.ln1\."), "backbone.last_norm."),
    (re.compile(r"^head\."), "keypoint_head."),
)


# Hugging Face transformers ``VitPoseForPoseEstimation`` (its ``convert_vitpose_to_hf.py`` renames the official
# keys this way; q / k / v are the rows of the official ``qkv``) -> the official / slimpose names
_VITPOSE_HF = (
    (re.compile(r"^backbone\.embeddings\.patch_embeddings\.projection\."), "backbone.patch_embed.proj."),
    (re.compile(r"^backbone\.embeddings\.position_embeddings$"), "backbone.pos_embed"),
    (re.compile(r"^backbone\.encoder\.layer\.(\d+)\.layernorm_before\."), r"backbone.blocks.\1.norm1."),
    (re.compile(r"^backbone\.encoder\.layer\.(\d+)\.layernorm_after\."), r"backbone.blocks.\1.norm2."),
    (re.compile(r"^backbone\.encoder\.layer\.(\d+)\.attention\.output\.dense\."), r"backbone.blocks.\1.attn.proj."),
    (re.compile(r"^backbone\.encoder\.layer\.(\d+)\.mlp\."), r"backbone.blocks.\1.mlp."),
    (re.compile(r"^backbone\.layernorm\."), "backbone.last_norm."),
    (re.compile(r"^head\.deconv([12])\.weight$"), lambda m: f"keypoint_head.deconv_layers.{3 * (int(m.group(1)) - 1)}.weight"),
    (re.compile(r"^head\.batchnorm([12])\."), lambda m: f"keypoint_head.deconv_layers.{3 * (int(m.group(1)) - 1) + 1}."),
    (re.compile(r"^head\.conv\."), "keypoint_head.final_layer."),
)
_HF_QKV = re.compile(r"^backbone\.encoder\.layer\.(\d+)\.attention\.attention\.(query|key|value)\.(weight|bias)$")


def _merge_hf_qkv(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """HF's separate ``query`` / ``key`` / ``value`` of a layer -> one official ``attn.qkv`` (rows q, k, v); a
    layer missing one of the three keeps its keys (reported as unexpected)."""
    parts: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    out: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        m = _HF_QKV.match(key)
        if m:
            parts.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = value
        else:
            out[key] = value
    for (layer, kind), qkv in parts.items():
        if set(qkv) == {"query", "key", "value"}:
            out[f"backbone.blocks.{layer}.attn.qkv.{kind}"] = torch.cat([qkv["query"], qkv["key"], qkv["value"]])
        else:
            out.update({f"backbone.encoder.layer.{layer}.attention.attention.{n}.{kind}": v for n, v in qkv.items()})
    return out


def vitpose_keys(sd: dict[str, torch.Tensor], model: nn.Module) -> dict[str, tuple[str, torch.Tensor]]:
    """ViTPose checkpoints -> ``{slimpose key: (official key, tensor)}``.

    The official mmcv layout (``backbone.{patch_embed.proj, pos_embed, blocks.{i}, last_norm}``,
    ``keypoint_head.*``) is slimpose's. MMPose 1.x (``backbone.layers.{i}.{ln1, attn, ln2, ffn}``,
    ``backbone.ln1``, ``head.*``) is renamed; its ``pos_embed`` (1, N, C) has no class slot (mmpretrain
    drops it), so a zero slot is put in front: the forward then adds exactly what MMPose 1.x adds. Hugging
    Face ``VitPoseForPoseEstimation`` (``backbone.embeddings / encoder.layer.{i} / layernorm``, ``head.deconv
    {1,2} / batchnorm{1,2} / conv``, separate ``query`` / ``key`` / ``value``) is renamed and its q, k, v
    are stacked into ``qkv``.
    Keys of neither layout (ViTPose++ ``mlp.experts.*``, ...) are kept as they are: ``vitpose_plus_*`` has them;
    for a plain model they are unexpected, or, left in an official split file, "ignored" (reported) by
    ``convert_state_dict``; never dropped silently.
    """
    out: dict[str, tuple[str, torch.Tensor]] = {}
    own = model.state_dict()
    sd = {(k[len("module."):] if k.startswith("module.") else k): v for k, v in sd.items()}
    hf = any(k.startswith(("backbone.embeddings.", "backbone.encoder.layer.")) for k in sd)
    if hf:
        sd = _merge_hf_qkv(sd)
    for key, value in sd.items():
        k = key
        for pattern, repl in (_VITPOSE_HF if hf else _VITPOSE_MMPOSE1):
            if pattern.match(k):
                k = pattern.sub(repl, k)
                break
        if k == "backbone.pos_embed" and k in own and value.dim() == 3 and value.shape[1] == own[k].shape[1] - 1:
            value = torch.cat([value.new_zeros(1, 1, value.shape[2]), value], dim=1)
        out[k] = (key, value)
    return out


def _ends_with(full: torch.Tensor | None, part: torch.Tensor | None) -> bool:
    """``full``'s last rows are exactly ``part``."""
    return (full is not None and part is not None and full.shape[1:] == part.shape[1:]
            and full.shape[0] > part.shape[0] and torch.equal(full[-part.shape[0]:], part))


def _vitpose_split_leftovers(renamed: dict[str, tuple[str, torch.Tensor]], own: dict[str, torch.Tensor]) -> list[str]:
    """An official ViTPose++ split file (``tools/model_split.py``) into a plain ViTPose: when every ``fc2`` has the
    model's shape and ends with the same ``experts.{k}`` (weight and bias) in every block, i.e. the file is
    ``cat([fc2, expert k])``, its ``mlp.experts.*`` and ``associate_keypoint_heads.*`` keys are taken out of
    ``renamed`` and returned as "ignored" lines; otherwise nothing is touched (they stay unexpected)."""
    extra = [k for k in renamed if k not in own and (".mlp.experts." in k or k.startswith("associate_keypoint_heads."))]
    t = {key: value for key, (_, value) in renamed.items()}
    blocks = [key[: -len("fc2.weight")] for key in t if key.endswith(".mlp.fc2.weight")]
    fits = all(b + "fc2.weight" in own and t[b + "fc2.weight"].shape == own[b + "fc2.weight"].shape for b in blocks)
    if not extra or not blocks or not fits:
        return []
    common: set[int] | None = None
    for b in blocks:
        found = {int(m.group(1)) for key in t if (m := re.fullmatch(re.escape(b) + r"experts\.(\d+)\.weight", key))}
        found = {e for e in found if all(_ends_with(t.get(f"{b}fc2.{n}"), t.get(f"{b}experts.{e}.{n}"))
                                         for n in ("weight", "bias"))}
        common = found if common is None else common & found
    if not common:
        return []
    k = "/".join(map(str, sorted(common)))  # several only if those experts are identical (e.g. untrained)
    why = {True: f"expert copy, fc2 already ends with expert {k}", False: "another data set's head"}
    return [f"{renamed.pop(key)[0]} (ViTPose++ split file of data set {k}: {why['.mlp.experts.' in key]})"
            for key in extra]


def drop_known_extras(sd: dict[str, torch.Tensor], source: str) -> tuple[dict[str, torch.Tensor], list[str]]:
    """``sd`` without the known extra tensors of layout ``source`` (``KNOWN_EXTRAS``: DistilPose's
    ``teacher_model.*``), and one report line per dropped prefix; every other key is left to the renaming."""
    dropped = []
    for prefix, what in KNOWN_EXTRAS.get(source, ()):
        keys = [k for k in sd if k.startswith(prefix)]
        if keys:
            sd = {k: v for k, v in sd.items() if not k.startswith(prefix)}
            dropped.append(f"{prefix}* ({len(keys)} tensors: {what})")
    return sd, dropped


def convert_state_dict(sd: dict[str, torch.Tensor], source: str, model: nn.Module
                       ) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """Rename an official state dict for ``model``; returns a complete state dict and the report.

    Tensors the file does not hold are taken from ``model`` only when they are deterministic
    (``num_batches_tracked`` and frozen sine position embeddings) and reported as ``filled``.
    """
    ignored: list[str] = []
    sd, dropped = drop_known_extras(sd, source)
    if source == "vitpose":
        renamed, unplaced = vitpose_keys(sd, model), []
        ignored = _vitpose_split_leftovers(renamed, model.state_dict())
    elif source not in _PREFIXES:
        raise SlimposeInputError(f"unknown --from {source!r} (choose from {', '.join(SOURCES)})")
    else:
        renamed, unplaced = _rename(sd, source, model)
    own = model.state_dict()
    report = ConversionReport(unexpected=sorted(unplaced), ignored=ignored, dropped=dropped)
    out: dict[str, torch.Tensor] = {}
    for key, (official, value) in renamed.items():
        if key not in own:
            report.unexpected.append(f"{official} (-> {key})")
            continue
        if tuple(own[key].shape) != tuple(value.shape):
            report.mismatched.append((key, official, tuple(own[key].shape), tuple(value.shape)))
            continue
        out[key] = value.detach().to(own[key].dtype).clone()
        report.converted += 1
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    for key, value in own.items():
        if key in out or any(m[0] == key for m in report.mismatched):
            continue
        if key.endswith("num_batches_tracked") or (key in frozen and key.endswith("pos_embed")):
            out[key] = value.clone()
            report.filled.append(key)
        elif source == "vitpose" and key == "backbone.joint_tokens":  # EViTPose from a ViTPose checkpoint
            out[key] = value.clone()
            report.initialised.append(key)
        else:
            report.missing.append(key)
    return out, report


def _infer_num_keypoints(sd: dict[str, torch.Tensor]) -> int | None:
    for key, value in sd.items():
        if key.endswith("keypoint_token") and value.dim() == 3:
            return int(value.shape[1])
    for key, value in sd.items():
        if key.endswith("final_layer.weight") and value.dim() == 4 and not key.startswith("associate_keypoint_heads."):
            return int(value.shape[0])
    return None


def _split_vitpose_plus(sd: dict[str, torch.Tensor], source: str, dataset: int | str
                        ) -> tuple[dict[str, torch.Tensor], str, list[str]]:
    """``--dataset``: a raw ViTPose++ state dict -> the plain ViTPose one of ``dataset`` (an index or an official
    name), that data set's name and the "ignored" lines for the other experts and heads."""
    from slimpose.models.vitpose_plus import VITPOSE_PLUS_DATASETS, dataset_index, split_state_dict

    if source != "vitpose":
        raise SlimposeInputError(f"--dataset splits a ViTPose++ checkpoint: use it with --from vitpose, not {source!r}")
    experts = {int(m.group(1)) for k in sd if (m := re.search(r"\.mlp\.experts\.(\d+)\.", k))}
    if not experts:
        raise SlimposeInputError("--dataset: the file has no ViTPose++ experts (mlp.experts.*): not a raw ViTPose++ "
                                 "checkpoint")
    names = [name for name, _ in VITPOSE_PLUS_DATASETS][:len(experts)]
    try:
        k = dataset_index(names, dataset)
    except ValueError:
        raise SlimposeInputError(f"--dataset {dataset!r}: the file has {len(experts)} experts "
                                 f"(0..{len(experts) - 1}: {', '.join(names)})") from None
    if k > 0 and not any(key.startswith(f"associate_keypoint_heads.{k - 1}.") for key in sd):
        raise SlimposeInputError(f"--dataset {dataset!r}: the file has no head for data set {k} "
                                 f"(associate_keypoint_heads.{k - 1}.*)")
    try:
        out, left = split_state_dict(sd, k)
    except KeyError as e:
        raise SlimposeInputError(f"--dataset {dataset!r}: {e.args[0]}") from None
    name = names[k] if k < len(names) else str(k)
    return out, name, [f"{key} (--dataset {k}: another data set's expert or head)" for key in left]


def convert_checkpoint(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    source: str,
    model_name: str,
    input_size: tuple[int, int] = (192, 256),
    num_keypoints: int | None = None,
    overrides: dict[str, Any] | None = None,
    allow_partial: bool = False,
    key: str | None = None,
    dataset: int | str | None = None,
    test_config: str | None = None,
) -> ConversionReport:
    """Convert ``src`` (an official file) for slimpose model ``model_name`` and write ``dst``.

    ``dst`` ending in ``.safetensors`` is written with metadata (``export_safetensors``), anything else as
    a slimpose ``.pth`` checkpoint. Without ``allow_partial`` any missing / unexpected / mismatched key
    raises a SlimposeInputError (after which nothing is written); the report is returned either way
    through ``err.report`` on the exception. ``dataset`` (an index or ``coco``, ``aic``, ...): split a raw
    ViTPose++ checkpoint into the plain ViTPose of that data set first (see the module docstring).
    ``test_config`` (``--test-config``: ``default``, ``udp``, ``dark``): the official test config of a ``--from
    mmpose`` heatmap checkpoint, whose keys do not say whether it is a UDP or DARK one (``TEST_CONFIGS``);
    any other source or model refuses ``udp`` / ``dark`` (SlimposeInputError).
    """
    from slimpose import models

    test_config = check_test_config(source, test_config)
    entries: list[str] = []
    sd, used = read_official_state_dict(src, key, entries)
    if model_name not in models.MODELS:
        raise SlimposeInputError(
            f"--model {model_name!r} is not a slimpose model ({', '.join(sorted(models.MODELS))})")
    split_name, ignored = None, []
    if dataset is not None:
        if models.MODELS[model_name].__module__ == "slimpose.models.vitpose_plus":
            raise SlimposeInputError(f"--dataset writes a plain ViTPose (--model vitpose_s/b/l/h), not "
                                     f"{model_name!r}; a vitpose_plus_* model keeps every data set (route it with "
                                     "--set dataset_index=K)")
        sd, split_name, ignored = _split_vitpose_plus(sd, source, dataset)
    kwargs = dict(overrides or {})
    # a ViTPose++ model routed by ``--set dataset_index=K`` takes its keypoint count from data set K
    k = num_keypoints or (None if "dataset_index" in kwargs else _infer_num_keypoints(sd) or 17)
    try:
        model = models.create_model(model_name, num_keypoints=k, input_size=tuple(input_size), **kwargs)
    except (TypeError, ValueError) as e:
        raise SlimposeInputError(f"cannot build {model_name!r} with {kwargs}: {e}") from None
    k = int(model.num_keypoints) if k is None else k
    if test_config != "default":
        from slimpose.heads.heatmap import HeatmapHead

        if getattr(model, "head_class", None) is not HeatmapHead:
            raise SlimposeInputError(f"--test-config {test_config} is for heatmap models (UDP / DARK heatmap "
                                     f"decoding); {model_name!r} predicts with "
                                     f"{getattr(model.head_class, '__name__', 'no heatmap head')}")
    state, report = convert_state_dict(sd, source, model)
    report.source_key = used
    report.ignored[:0] = ignored
    known = [e for e in entries if e in KNOWN_ENTRIES]
    report.dropped[:0] = [f"entry {e!r} (not the weights: {used!r} holds them)" for e in known]
    # any other top-level entry fails like an unexpected key: it may hold weights this conversion would lose
    report.unexpected[:0] = [f"entry {e!r} (top level of the file, not one of the known non-weight entries "
                             f"{', '.join(KNOWN_ENTRIES)})" for e in entries if e not in KNOWN_ENTRIES]
    if not report.ok and not allow_partial:
        hint = ""
        if any(".mlp.experts." in u for u in report.unexpected) and not hasattr(model, "datasets"):
            hint = ("\n(a raw ViTPose++ checkpoint: convert it into a vitpose_plus_* model, or pass --dataset K "
                    "for the plain ViTPose of data set K)" if any(".mlp.fc2." in m[0] for m in report.mismatched) else
                    "\n(ViTPose++ experts, but fc2 does not end with any of them: not an official split file)")
        err = SlimposeInputError(
            f"{src}: the {source} checkpoint does not fit {model_name!r}:\n{report.format()}{hint}\n"
            "(use --allow-partial to write it anyway)")
        err.report = report  # type: ignore[attr-defined]
        raise err
    model.load_state_dict(state, strict=not allow_partial)
    from slimpose.data.catalog import CATALOG, dataset_for_num_keypoints

    routed = getattr(model, "datasets", None)  # ViTPose++: the routed data set's name
    name = split_name or (routed[model.dataset_index][0] if routed else None)

    w, h = int(input_size[0]), int(input_size[1])
    # the official test of the layout's repository (OFFICIAL_TEST: warp and spacing, flip, DARK, rescoring)
    config: dict[str, Any] = {
        "model": {"name": model_name, "overrides": {**kwargs, "num_keypoints": k}},
        "data": {"dataset": name if name in CATALOG else dataset_for_num_keypoints(k), "input_size": [w, h]},
        "flip_test": True,
        **{k_: dict(v) if isinstance(v, dict) else v for k_, v in OFFICIAL_TEST[source].items()},
    }
    if source == "mmpose" and any(k.startswith("head.") for k in sd):
        # an MMPose 1.x file (``head.*``, 0.x: ``keypoint_head.*``): heatmaps decode with 1.x's refine_keypoints
        # bounds, SimCC locations of non-positive scores are -1 bins (get_simcc_maximum)
        config["conventions"].update(source="mmpose1", quarter_bounds="mmpose1", simcc_nonpositive="minus_one")
    if test_config != "default":  # a UDP / DARK config's checkpoint (same keys as the plain one)
        version = "1" if config["conventions"]["source"] == "mmpose1" else "0"
        updates = _TEST_CONFIG_UPDATES[(version, test_config)]
        config["conventions"].update(updates["conventions"])
        config.update({k_: v for k_, v in updates.items() if k_ != "conventions"})
        if test_config == "udp":
            config["data"]["udp"] = True  # informative, as for ViTPose: these configs train with UDP too
    if source == "vitpose":
        # informative only: geometry='udp' alone decides the UDP crops and decoding (crop_warp); data.udp records
        # that ViTPose trains with UDP (read by benchmarks/conversion_parity.py's slimpose_defaults)
        config["data"]["udp"] = True
        if any(k.startswith("backbone.layers.") for k in sd):  # MMPose 1.x: its UDPHeatmap decoding
            config["conventions"].update(source="mmpose1-vitpose", udp_blur="keep_max",
                                         udp_border="pad_instance")
    ckpt = {
        "model": model.state_dict(),
        "model_name": model_name,
        "config": config,
        "converted_from": {"path": str(src), "source": source, "entry": used, "test_config": test_config},
    }
    from slimpose.engine.checkpoint import write_checkpoint

    write_checkpoint(ckpt, dst)
    return report
