"""ViTPose++ (Xu et al., "ViTPose++: Vision Transformer for Generic Body Pose Estimation", IEEE TPAMI,
arXiv 2212.04246).

Knowledge factorization: one ViTPose backbone trained on several data sets at once, whose feed-forward
layers are split into a task-agnostic part shared by every data set and task-specific experts, one per
data set. Re-implemented from the facts of the official code (ViTAE-Transformer/ViTPose
``mmpose/models/backbones/vit_moe.py``, ``detectors/top_down_moe.py``, ``tools/model_split.py``):

* ``MoEMlp``: shared ``fc1 = Linear(C, 4C)`` and GELU; shared ``fc2 = Linear(4C, C - P)`` (the first
  ``C - P`` output channels); ``experts.{k} = Linear(4C, P)`` (the last ``P`` channels) for data set ``k``.
  Routing is hard, by the data-set index of each sample; every expert runs on the whole batch and is masked
  (as official, so every expert takes part in the graph). ``P`` (``part_features``) is 192 / 192 / 256 / 320
  for S / B / L / H, with 6 experts.
* Attention, LayerNorms, patch embedding and position embedding (the class slot folded in, as ViTPose)
  are shared; they are ``ViTPoseBackbone``'s.
* One classic heatmap decoder per data set: ``keypoint_head`` (data set 0, COCO) and
  ``associate_keypoint_heads.{0..4}`` (AIC 14, MPII 16, AP-10K 17, APT-36K 17, COCO-WholeBody 133).
* Deployment: ``split(k)`` concatenates ``fc2`` with expert ``k`` (fc2 rows first) into a plain ``ViTPose``
  of data set ``k``, as ``tools/model_split.py``: the same function at plain ViTPose cost.

State-dict keys equal the official raw checkpoint's (``backbone.blocks.{i}.mlp.{fc1,fc2,experts.{k}}``,
``keypoint_head.*``, ``associate_keypoint_heads.{j}.*``).
"""

from __future__ import annotations

import operator
import re

import torch
from torch import nn

from slimpose.heads.heatmap import HeatmapHead
from slimpose.models.base import PoseNet
from slimpose.models.layers import DeconvHead
from slimpose.models.transformer.blocks import Attention
from slimpose.models.vitpose import VITPOSE_SIZES, DropPath, SimpleDecoder, ViTPose, ViTPoseBackbone

# the official data sets, in dataset-index order (``dataset_idx`` of the official configs)
VITPOSE_PLUS_DATASETS = (("coco", 17), ("aic", 14), ("mpii", 16), ("ap10k", 17), ("apt36k", 17), ("wholebody", 133))
# task-specific channels P of the official vitPose+_{small,base,large,huge} configs
VITPOSE_PLUS_PART_FEATURES = {"s": 192, "b": 192, "l": 256, "h": 320}

_FC2 = re.compile(r"^(.+\.mlp\.)fc2\.(weight|bias)$")
_EXPERT = re.compile(r"^.+\.mlp\.experts\.(\d+)\.(weight|bias)$")
_ASSOCIATE = re.compile(r"^associate_keypoint_heads\.(\d+)\.(.+)$")


def dataset_index(names: list[str], dataset: int | str) -> int:
    """The index of ``dataset`` (an int, its digits, or one of ``names``) among ``names``; a ValueError naming
    the choices otherwise."""
    if isinstance(dataset, str):
        if dataset.isdigit():
            dataset = int(dataset)
        elif dataset in names:
            return names.index(dataset)
        else:
            raise ValueError(f"unknown data set {dataset!r}; this model has {names}")
    try:
        k = -1 if isinstance(dataset, bool) else operator.index(dataset)
    except TypeError:
        k = -1
    if not 0 <= k < len(names):
        raise ValueError(f"data set index must be an int in [0, {len(names)}) or one of {names}, got {dataset!r}")
    return k


class MoEMlp(nn.Module):
    """Official ``MoEMlp``: ``cat([fc2(h), sum_k experts[k](h) * 1[dataset_index == k]], -1)`` with
    ``h = GELU(fc1(x))``; no dropout."""

    def __init__(self, dim: int, hidden: int, part_features: int, num_experts: int) -> None:
        super().__init__()
        if not 0 < part_features < dim:
            raise ValueError(f"part_features must be in (0, {dim}), got {part_features}")
        if num_experts < 1:
            raise ValueError(f"num_experts must be >= 1, got {num_experts}")
        self.part_features = int(part_features)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim - part_features)
        self.experts = nn.ModuleList(nn.Linear(hidden, part_features) for _ in range(num_experts))

    def forward(self, x: torch.Tensor, dataset_index: torch.Tensor) -> torch.Tensor:
        """``x`` (B, N, C), ``dataset_index`` (B,) long -> (B, N, C)."""
        h = self.act(self.fc1(x))
        idx = dataset_index.view(-1, 1, 1)
        part = sum(expert(h) * (idx == k) for k, expert in enumerate(self.experts))
        return torch.cat([self.fc2(h), part], dim=-1)


class MoEBlock(nn.Module):
    """``ViTBlock`` (official ``Block``) with the ``MoEMlp``: pre-norm, LayerNorm eps 1e-6, qkv bias."""

    def __init__(self, dim: int, num_heads: int, part_features: int, num_experts: int, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, eps: float = 1e-6) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, scale_with_head=True, qkv_bias=True)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = MoEMlp(dim, int(dim * mlp_ratio), part_features, num_experts)

    def forward(self, x: torch.Tensor, dataset_index: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x), dataset_index))


class ViTPosePlusBackbone(ViTPoseBackbone):
    """The ViTMoE encoder: ``ViTPoseBackbone`` (patch / position embedding, ``last_norm``, ``embed``,
    ``to_map``) with ``MoEBlock``s; ``forward(images, dataset_index)`` with a (B,) long index."""

    def __init__(self, image_size: tuple[int, int] = (192, 256), dim: int = 768, depth: int = 12,
                 num_heads: int = 12, mlp_ratio: float = 4.0, drop_path_rate: float = 0.0, patch_size: int = 16,
                 padding: int = 2, part_features: int = 192, num_experts: int = 6) -> None:
        super().__init__(image_size, dim, depth, num_heads, mlp_ratio, drop_path_rate, patch_size, padding,
                         lambda i, rate: MoEBlock(dim, num_heads, part_features, num_experts, mlp_ratio, rate))
        # what a plain ViTPoseBackbone of the same shape takes (``ViTPosePlus.split``)
        self.plain_config = dict(image_size=tuple(image_size), dim=dim, depth=depth, num_heads=num_heads,
                                 mlp_ratio=mlp_ratio, drop_path_rate=drop_path_rate, patch_size=patch_size,
                                 padding=padding)
        self.part_features = int(part_features)
        self.num_experts = int(num_experts)

    def forward(self, images: torch.Tensor, dataset_index: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = self.embed(images)
        for block in self.blocks:
            x = block(x, dataset_index)
        return self.to_map(x)


def _decoder(kind: str, in_channels: int, num_keypoints: int) -> nn.Module:
    if kind == "classic":
        return DeconvHead(in_channels, num_keypoints, num_deconv_layers=2)
    if kind == "simple":
        return SimpleDecoder(in_channels, num_keypoints)
    raise ValueError(f"ViTPose++ decoder must be 'classic' or 'simple', got {kind!r}")


class ViTPosePlus(PoseNet):
    """ViTPose++: the MoE backbone and one heatmap decoder per data set.

    ``datasets``: ``((name, num_keypoints), ...)`` in dataset-index order (expert ``k`` and head ``k``
    belong to data set ``k``; default the official six). ``forward(images)`` routes every sample to data
    set ``dataset_index`` (attribute, default 0) and returns that head's heatmaps, so the model predicts
    through the ordinary single-data-set pipeline (``num_keypoints`` = that data set's).

    Multi-dataset training (as official ``TopDownMoE.forward_train``): ``forward_all(images, index)`` with
    each sample's data set runs every head on every sample; the loss of head ``k`` must be masked to the
    samples with ``index == k`` (the other heads' outputs carry no target), so each head and expert learns
    only from its data set while attention and the shared FFN part learn from all.
    """

    head_class = HeatmapHead

    def __init__(self, backbone: ViTPosePlusBackbone, datasets=VITPOSE_PLUS_DATASETS,
                 input_size: tuple[int, int] = (192, 256), decoder: str = "classic", dataset_index: int | str = 0
                 ) -> None:
        super().__init__()
        self.datasets = tuple((str(name), int(k)) for name, k in datasets)
        if len(self.datasets) != backbone.num_experts:
            raise ValueError(f"{len(self.datasets)} data sets need {len(self.datasets)} experts, "
                             f"the backbone has {backbone.num_experts}")
        if len({name for name, _ in self.datasets}) != len(self.datasets):
            raise ValueError(f"data set names must differ: {self.datasets}")
        self.backbone = backbone
        self.input_size = tuple(input_size)
        self.decoder = decoder
        c = backbone.out_channels
        self.keypoint_head = _decoder(decoder, c, self.datasets[0][1])
        self.associate_keypoint_heads = nn.ModuleList(_decoder(decoder, c, k) for _, k in self.datasets[1:])
        self.dataset_index = dataset_index
        up = self.keypoint_head.upsample_factor
        self.output_stride = backbone.stride // up
        gw, gh = backbone.patch_embed.grid_size
        self.heatmap_size = (gw * up, gh * up)

    # ---------------------------------------------------------------- data sets

    def index_of(self, dataset: int | str) -> int:
        """Data-set index of ``dataset`` (an index or a name of ``datasets``)."""
        return dataset_index([name for name, _ in self.datasets], dataset)

    @property
    def dataset_index(self) -> int:
        """The data set ``forward(images)`` / ``forward_features`` / ``forward_head`` use."""
        return self._dataset_index

    @dataset_index.setter
    def dataset_index(self, value: int | str) -> None:
        self._dataset_index = self.index_of(value)

    @property
    def num_keypoints(self) -> int:
        return self.datasets[self._dataset_index][1]

    def heads(self) -> list[nn.Module]:
        """The heatmap decoders in dataset-index order."""
        return [self.keypoint_head, *self.associate_keypoint_heads]

    def _route(self, images: torch.Tensor, dataset_index) -> torch.Tensor:
        """(B,) long data-set index of every sample: an int / name for all, or a (B,) tensor."""
        b = images.shape[0]
        if isinstance(dataset_index, torch.Tensor):
            idx = dataset_index.to(device=images.device, dtype=torch.long).reshape(-1)
            if idx.numel() == 1:
                idx = idx.expand(b)
            if idx.numel() != b:
                raise ValueError(f"dataset_index has {idx.numel()} entries for {b} images")
            tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
            if not tracing and bool(((idx < 0) | (idx >= len(self.datasets))).any()):
                raise ValueError(f"dataset_index values must be in [0, {len(self.datasets)})")
            return idx
        return torch.full((b,), self.index_of(dataset_index), dtype=torch.long, device=images.device)

    # ---------------------------------------------------------------- forward

    def forward_features(self, images: torch.Tensor, dataset_index=None) -> torch.Tensor:
        """Backbone feature map; every sample routed to ``dataset_index`` (default the attribute) or, for a
        (B,) tensor, each sample to its own data set."""
        self.check_images(images)
        index = self._dataset_index if dataset_index is None else dataset_index
        return self.backbone(images, self._route(images, index))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.heads()[self._dataset_index](features)

    def forward(self, images: torch.Tensor, dataset_index: int | str | None = None) -> torch.Tensor:
        """Heatmaps of data set ``dataset_index`` (an int or name; ``None``: the attribute) for every sample."""
        if isinstance(dataset_index, torch.Tensor):
            raise TypeError("forward routes all samples to one data set (an int or a name); "
                            "use forward_all(images, index) for per-sample data sets")
        k = self._dataset_index if dataset_index is None else self.index_of(dataset_index)
        return self.heads()[k](self.forward_features(images, k))

    def forward_all(self, images: torch.Tensor, dataset_index) -> tuple[torch.Tensor, ...]:
        """Multi-dataset training: each sample's features through its own experts (``dataset_index``: (B,)
        tensor, or one int / name), then every head on every sample; returns one (B, K_k, h, w) tensor per
        data set, in index order. Mask head ``k``'s loss to the samples of data set ``k``."""
        features = self.forward_features(images, dataset_index)
        return tuple(head(features) for head in self.heads())

    # ---------------------------------------------------------------- deployment

    def split(self, dataset: int | str) -> ViTPose:
        """A plain ``ViTPose`` equal to this model routed to ``dataset``: ``fc2`` and expert ``k`` concatenated
        (fc2 rows first, as the official ``tools/model_split.py``) and data set ``k``'s decoder as
        ``keypoint_head``. Built on this model's device and dtype, in its training mode."""
        k = self.index_of(dataset)
        p = next(self.parameters())
        with torch.device(p.device):
            plain = ViTPose(ViTPoseBackbone(**self.backbone.plain_config), self.datasets[k][1], self.input_size,
                            self.decoder)
        state, _ = split_state_dict(self.state_dict(), k)
        plain.load_state_dict(state)
        return plain.to(p.dtype).train(self.training)


def split_state_dict(sd: dict[str, torch.Tensor], dataset: int) -> tuple[dict[str, torch.Tensor], list[str]]:
    """A ViTPose++ state dict (the official raw layout, which is slimpose's) -> the plain ViTPose state dict of
    data set ``dataset`` and the keys left out (the other experts and heads).

    ``mlp.fc2.{weight,bias}`` become ``cat([fc2, experts.{k}])`` (fc2 rows first); ``keypoint_head.*`` is
    data set 0's decoder, ``associate_keypoint_heads.{k-1}.*`` data set ``k``'s, renamed to ``keypoint_head.*``.
    A ``KeyError`` names a missing expert tensor.
    """
    k = int(dataset)
    out: dict[str, torch.Tensor] = {}
    left: list[str] = []
    for key, value in sd.items():
        m = _FC2.match(key)
        if m:
            expert = f"{m.group(1)}experts.{k}.{m.group(2)}"
            if expert not in sd:
                raise KeyError(f"{key} has no expert tensor {expert}")
            out[key] = torch.cat([value, sd[expert]], dim=0)
        elif _EXPERT.match(key):
            left.append(key)
        elif key.startswith("keypoint_head.") and k != 0:
            left.append(key)
        elif _ASSOCIATE.match(key):
            a = _ASSOCIATE.match(key)
            if int(a.group(1)) == k - 1:
                out[f"keypoint_head.{a.group(2)}"] = value
            else:
                left.append(key)
        else:
            out[key] = value
    return out, left


def _vitpose_plus(size: str, num_keypoints: int | None, input_size: tuple[int, int], overrides: dict) -> ViTPosePlus:
    dim, depth, heads, dpr = VITPOSE_SIZES[size]
    o = dict(overrides)
    decoder = o.pop("decoder", "classic")
    datasets = tuple(o.pop("datasets", VITPOSE_PLUS_DATASETS))
    index = o.pop("dataset_index", 0)
    cfg = dict(dim=dim, depth=depth, num_heads=heads, drop_path_rate=dpr,
               part_features=VITPOSE_PLUS_PART_FEATURES[size], num_experts=len(datasets))
    cfg.update(o)
    model = ViTPosePlus(ViTPosePlusBackbone(tuple(input_size), **cfg), datasets, tuple(input_size), decoder, index)
    if num_keypoints is not None and int(num_keypoints) != model.num_keypoints:
        name, k = model.datasets[model.dataset_index]
        raise ValueError(f"num_keypoints={num_keypoints} but the routed data set {model.dataset_index} ({name!r}) "
                         f"has {k}; choose the data set with dataset_index= (or change datasets=)")
    return model


def vitpose_plus_s(num_keypoints: int | None = None, input_size: tuple[int, int] = (192, 256),
                   **overrides) -> ViTPosePlus:
    """ViTPose++-S: ViTPose-S (384, depth 12, 12 heads, drop path 0.1), P = 192 task-specific channels (the
    official config), 6 experts; 75.8 AP COCO val (README). 55,159,766 parameters: backbone 39,369,984 +
    6 classic decoders; ``split(k)`` = ViTPose-S, 24,290,577 with 17 keypoints. (The packaged Hugging Face
    file, ~33M, fits P = 96 rather: ``part_features=96``; see docs/vitpose.md.)

    ``num_keypoints``: optional check against the routed data set's; ``overrides``: ``datasets``,
    ``dataset_index``, ``decoder='simple'`` and ``ViTPosePlusBackbone`` keywords (``depth``, ``dim``,
    ``part_features``, ...)."""
    return _vitpose_plus("s", num_keypoints, input_size, overrides)


def vitpose_plus_b(num_keypoints: int | None = None, input_size: tuple[int, int] = (192, 256),
                   **overrides) -> ViTPosePlus:
    """ViTPose++-B: ViTPose-B (768, 12, 12 heads, drop path 0.3), P = 192, 6 experts; 77.0 AP.
    146,422,742 parameters (backbone 121,195,776; backbone + COCO head 125,395,473, the packaged ~130M;
    split ViTPose-B 89,994,513)."""
    return _vitpose_plus("b", num_keypoints, input_size, overrides)


def vitpose_plus_l(num_keypoints: int | None = None, input_size: tuple[int, int] = (192, 256),
                   **overrides) -> ViTPosePlus:
    """ViTPose++-L: ViTPose-L (1024, 24, 16 heads, drop path 0.5), P = 256, 6 experts; 78.6 AP.
    460,674,774 parameters (backbone 429,156,352; + COCO head 434,404,625, the packaged ~430M;
    split ViTPose-L 308,544,785)."""
    return _vitpose_plus("l", num_keypoints, input_size, overrides)


def vitpose_plus_h(num_keypoints: int | None = None, input_size: tuple[int, int] = (192, 256),
                   **overrides) -> ViTPosePlus:
    """ViTPose++-H: ViTPose-H (1280, 32, 16 heads, drop path 0.55), P = 320, 6 experts; 79.4 AP.
    930,917,078 parameters (backbone 893,107,200; + COCO head 899,404,049, the packaged ~900M;
    split ViTPose-H 637,208,849)."""
    return _vitpose_plus("h", num_keypoints, input_size, overrides)
