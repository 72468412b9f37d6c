"""HoT (Li et al., CVPR 2024, "Hourglass Tokenizer for Efficient Transformer-Based 3D Human Pose
Estimation") on MixSTE, and its seq2frame variant TPC-MixSTE.

Re-implemented from the official code (NationalGAILab/HoT ``model/mixste/hot_mixste.py``,
``model/mixste/tpc_mixste.py``). The trunk is MixSTE's (``slimpose.lifting.models.mixste``):

* **HoT-MixSTE** (seq2seq): block pairs 0 .. ``layer_index - 1`` run on all T frames; before block pair
  ``layer_index`` (3) the pruner (TPC: DPC-kNN, k = 2) keeps ``num_tokens`` (81 of 243) frames in temporal
  order, ``pos_embed_token`` (1, num_tokens, C) (zero-initialised) is added to every joint of them, and the
  remaining pairs run on the kept frames only; after the last pair the recovery (TRA: 243 learnable queries
  cross-attending to the kept tokens of each joint) restores T frames, then ``head``. Output (B, T, J, 3).
* **TPC-MixSTE** (seq2frame): the same without ``pos_embed_token`` and recovery; TPC always keeps the centre
  frame ``(T - 1) // 2`` (the 60 best of the others + the centre = 61 tokens, before block pair 7). The head
  runs on the kept frames (``forward_kept``: what the official training loss reads); ``forward`` returns the
  centre frame (B, 1, J, 3).

State-dict keys are the official raw state dict's: MixSTE's plus ``pos_embed_token``, ``x_token`` and
``cross_attention.{linear_q, linear_k, linear_v, proj}``. The recovery is a plug-in module
(``self.recovery``); its entries are written and read at the top level of the state dict (the official flat
layout), so ``state_dict()`` / ``load_state_dict(strict=True)`` speak the official keys while
``named_parameters()`` says ``recovery.x_token``.
"""

from __future__ import annotations

import torch
from torch import nn

from slimpose.lifting.models.mixste import MixSTE, released_cfg
from slimpose.lifting.models.pruning import (
    TPA, TPC, TPS, TRA, TRI, TPMo, TokenPruner, TokenRecovery, gather_frames,
)

PRUNERS = ("tpc", "tps", "tpa", "tpmo")
RECOVERIES = ("tra", "tri")


def _flat_names(module: nn.Module) -> set[str]:
    return set(module._parameters) | set(module._buffers) | set(module._modules)


def _flatten_recovery(model: "HoTMixSTE", state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """state_dict post-hook: ``{prefix}recovery.<name>`` -> ``{prefix}<name>`` (order kept)."""
    inner = prefix + "recovery."
    items = list(state_dict.items())
    state_dict.clear()
    for key, value in items:
        state_dict[prefix + key[len(inner):] if key.startswith(inner) else key] = value


def _nest_recovery(model: "HoTMixSTE", state_dict: dict, prefix: str, local_metadata: dict, strict: bool,
                   missing_keys: list, unexpected_keys: list, error_msgs: list) -> None:
    """load_state_dict pre-hook: ``{prefix}<name>`` -> ``{prefix}recovery.<name>`` for the recovery's names."""
    names = _flat_names(model.recovery)
    for key in [k for k in state_dict if k.startswith(prefix)]:
        if key[len(prefix):].split(".", 1)[0] in names:
            state_dict[prefix + "recovery." + key[len(prefix):]] = state_dict.pop(key)
    model._load_prefix = prefix


def _flatten_missing(model: "HoTMixSTE", incompatible_keys) -> None:
    """load_state_dict post-hook: missing / unexpected keys reported in the flat (official) names too."""
    prefix = model.__dict__.pop("_load_prefix", "")
    inner = prefix + "recovery."
    for keys in (incompatible_keys.missing_keys, incompatible_keys.unexpected_keys):
        keys[:] = [prefix + k[len(inner):] if k.startswith(inner) else k for k in keys]


class HoTMixSTE(MixSTE):
    """MixSTE with a token pruner before block pair ``layer_index`` and a token recovery after the last pair.

    ``pruner``: a ``TokenPruner`` (``TPC`` in HoT; ``TPS``, ``TPA``, ``TPMo``) choosing ``pruner.num_tokens``
    frames (it is given the input poses too, for TPMo);
    ``recovery``: a ``TokenRecovery`` (``TRA`` in HoT, ``TRI``). Other arguments are ``MixSTE``'s.
    ``forward_features(x, index=None)`` -> (kept tokens (B, n, J, C), index (B, n)); ``forward_head(tokens,
    index)`` -> (B, T, J, 3). A given ``index`` replaces the pruner's choice (e.g. to reuse one).
    """

    def __init__(self, pruner: TokenPruner, recovery: TokenRecovery, layer_index: int = 3,
                 num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 8, **kwargs) -> None:
        super().__init__(num_frames=num_frames, num_joints=num_joints, dim=dim, depth=depth, **kwargs)
        if not self.first_pair <= layer_index < depth:
            raise ValueError(f"layer_index must be in {self.first_pair} .. depth - 1 = {depth - 1}, "
                             f"got {layer_index}")
        if pruner.num_tokens > num_frames:
            raise ValueError(f"cannot keep {pruner.num_tokens} of {num_frames} frames")
        clash = _flat_names(recovery) & (_flat_names(self) | {"pruner", "recovery", "pos_embed_token"})
        if clash:
            raise ValueError(f"the recovery's names {sorted(clash)} clash with the model's")
        self.layer_index = int(layer_index)
        self.num_tokens = pruner.num_tokens
        self.pos_embed_token = nn.Parameter(torch.zeros(1, pruner.num_tokens, dim))
        self.pruner = pruner
        self.recovery = recovery
        self.register_state_dict_post_hook(_flatten_recovery)
        self.register_load_state_dict_pre_hook(_nest_recovery)
        self.register_load_state_dict_post_hook(_flatten_missing)

    def forward_features(self, x: torch.Tensor, index: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        poses = x
        x = self.forward_stem(x)
        for i in range(self.first_pair, self.depth):
            if i == self.layer_index:
                x, index = self.pruner(x, index, poses=poses)
                x = x + self.pos_embed_token.unsqueeze(2)
            x = self.forward_block(x, i)
        return x, index

    def forward_head(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if self.recovery.on_features:
            return self.head(self.recovery(x, index, self.num_frames))
        return self.recovery(self.head(x), index, self.num_frames)

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_head(*self.forward_features(x, index))


class TPCMixSTE(MixSTE):
    """TPC-MixSTE (seq2frame): MixSTE whose TPC before block pair ``layer_index`` keeps ``num_tokens`` frames,
    the centre frame ``(T - 1) // 2`` always among them. ``forward_kept(x, index=None)`` -> (poses of the
    kept frames (B, n, J, 3), index (B, n)); ``forward`` -> the centre frame's pose (B, 1, J, 3)."""

    def __init__(self, num_tokens: int = 61, layer_index: int = 7, num_frames: int = 243, num_joints: int = 17,
                 dim: int = 512, depth: int = 8, k: int = 2, noise: float = 1e-6, **kwargs) -> None:
        super().__init__(num_frames=num_frames, num_joints=num_joints, dim=dim, depth=depth, **kwargs)
        if not 1 <= layer_index < depth:
            raise ValueError(f"layer_index must be in 1 .. depth - 1 = {depth - 1}, got {layer_index}")
        if not 1 <= num_tokens <= num_frames:
            raise ValueError(f"cannot keep {num_tokens} of {num_frames} frames")
        self.layer_index = int(layer_index)
        self.num_tokens = int(num_tokens)
        self.center = (num_frames - 1) // 2
        self.pruner = TPC(num_tokens, k=k, keep=self.center, noise=noise)

    def forward_kept(self, x: torch.Tensor, index: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.forward_stem(x)
        for i in range(self.first_pair, self.depth):
            if i == self.layer_index:
                x, index = self.pruner(x, index)
            x = self.forward_block(x, i)
        return self.head(x), index

    def center_position(self, index: torch.Tensor) -> torch.Tensor:
        """(B,) position of the centre frame among the kept, sorted indices (B, n)."""
        return (index < self.center).sum(dim=1)

    def forward(self, x: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        out, index = self.forward_kept(x, index)
        return gather_frames(out, self.center_position(index).unsqueeze(1))


def make_pruner(pruner: str | TokenPruner, num_tokens: int) -> TokenPruner:
    """``"tpc"`` (k = 2), ``"tps"``, ``"tpa"`` or ``"tpmo"`` (on the input poses) with ``num_tokens`` tokens,
    or a given ``TokenPruner``."""
    if isinstance(pruner, TokenPruner):
        return pruner
    if pruner == "tpc":
        return TPC(num_tokens, k=2)
    if pruner == "tps":
        return TPS(num_tokens)
    if pruner == "tpa":
        return TPA(num_tokens)
    if pruner == "tpmo":
        return TPMo(num_tokens)
    raise ValueError(f"pruner must be one of {PRUNERS} or a TokenPruner, got {pruner!r}")


def make_recovery(recovery: str | TokenRecovery, num_frames: int, dim: int, num_heads: int = 8,
                  qkv_bias: bool = True) -> TokenRecovery:
    """``"tra"`` (``num_frames`` queries of ``dim``) or ``"tri"``, or a given ``TokenRecovery``."""
    if isinstance(recovery, TokenRecovery):
        return recovery
    if recovery == "tra":
        return TRA(num_frames, dim, num_heads, qkv_bias)
    if recovery == "tri":
        return TRI()
    raise ValueError(f"recovery must be one of {RECOVERIES} or a TokenRecovery, got {recovery!r}")


def build_hot(cls: type, num_frames: int, num_joints: int, dim: int, depth: int, num_tokens: int, layer_index: int,
              pruner: str | TokenPruner, recovery: str | TokenRecovery, **overrides) -> nn.Module:
    """A ``HoTMixSTE`` subclass ``cls`` (HoT-MixSTE, HoT-KTPFormer) with its pruner and recovery built from names
    or given, on the released trunk settings plus ``overrides``."""
    cfg = released_cfg(**overrides)
    return cls(make_pruner(pruner, num_tokens), make_recovery(recovery, num_frames, dim, cfg["num_heads"],
                                                              cfg["qkv_bias"]),
               layer_index=layer_index, num_frames=num_frames, num_joints=num_joints, dim=dim, depth=depth, **cfg)


def hot_mixste(num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 8,
               num_tokens: int = 81, layer_index: int = 3, pruner: str | TokenPruner = "tpc",
               recovery: str | TokenRecovery = "tra", **overrides) -> HoTMixSTE:
    """HoT-MixSTE as released (``--frames 243 --token_num 81 --layer_index 3``): TPC + TRA, 35,000,323
    parameters, 83.8 G linear-layer MACs per 243-frame clip. ``pruner`` / ``recovery``: ``"tpc"`` / ``"tps"`` /
    ``"tpa"`` / ``"tpmo"``, ``"tra"`` / ``"tri"`` or instances; other overrides go to ``MixSTE``."""
    return build_hot(HoTMixSTE, num_frames, num_joints, dim, depth, num_tokens, layer_index, pruner, recovery,
                     **overrides)


def tpc_mixste(num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 8,
               num_tokens: int = 61, layer_index: int = 7, **overrides) -> TPCMixSTE:
    """TPC-MixSTE as in the HoT README (``--token_num 61 --layer_index 7``, seq2frame): 33,783,811 parameters
    (MixSTE's), 125.6 G linear-layer MACs per clip (= per output frame)."""
    cfg = released_cfg(**overrides)
    return TPCMixSTE(num_tokens=num_tokens, layer_index=layer_index, num_frames=num_frames,
                     num_joints=num_joints, dim=dim, depth=depth, **cfg)


__all__ = ["HoTMixSTE", "PRUNERS", "RECOVERIES", "TPCMixSTE", "build_hot", "hot_mixste", "make_pruner", "make_recovery",
           "tpc_mixste"]
