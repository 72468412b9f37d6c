"""H2OT (Li et al., TPAMI 2025, "H2OT: Hierarchical Hourglass Tokenizer for Efficient Video Pose
Transformers") on MixSTE: HoT's prune-then-recover, with the frames pruned **progressively** in several stages.

There is no official H2OT code (the NationalGAILab/HoT commit has one prune point per model); everything
here beyond "hierarchical (pyramidal) pruning with TPC / TPA / TPMo / TPS, recovery by TRA / TRI" is
slimpose's reading, and every choice is a parameter (docs/lifting_models.md, "H2OT"):

* ``schedule`` = ``((layer_index, num_tokens), ...)``: before block pair ``layer_index`` of each stage, the
  stage's pruner keeps ``num_tokens`` of the frames still alive (layer indices strictly increasing in
  1 .. depth - 1, token counts non-increasing). The default for 243 frames, ``H2OT_SCHEDULE`` =
  ``((2, 121), (3, 61), (4, 31))``, halves the frames before pairs 2, 3 and 4 (-57.5 % linear MACs vs
  MixSTE; the third-party H2OT claim on MixSTE is -57.4 % FLOPs).
* after each prune, the stage's zero-initialised ``pos_embed_tokens.{s}`` (1, num_tokens, C) is added to every
  joint of the kept frames (HoT's ``pos_embed_token``, one per stage);
* the pruner of stage s sees the features and the 2-D input poses of the alive frames; its indices (into the
  alive frames) are composed, so that the model's ``index`` (B, n_last) is in frames of the original clip,
  ascending;
* after the last pair, the recovery (``TRA``: ``num_frames`` learnable queries on the features, or ``TRI``:
  the head on the kept frames, then linear interpolation over the absolute indices) gives (B, T, J, 3).

State-dict keys: MixSTE's, ``pos_embed_tokens.{s}`` and (TRA) HoT's flat ``x_token`` /
``cross_attention.*``. A one-stage H2OT is HoT-MixSTE with ``pos_embed_token`` renamed
``pos_embed_tokens.0`` (``hot_state_dict_to_h2ot``).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence, Union

import torch
from torch import nn

from slimpose.lifting.models.hot import (
    _flat_names, _flatten_missing, _flatten_recovery, _nest_recovery, make_pruner, make_recovery,
)
from slimpose.lifting.models.mixste import MixSTE, released_cfg
from slimpose.lifting.models.pruning import TokenPruner, TokenRecovery, gather_frames

# the default schedule, for the reference clip length and depth (MixSTE: 243 frames, 8 block pairs)
H2OT_SCHEDULE: tuple[tuple[int, int], ...] = ((2, 121), (3, 61), (4, 31))
SCHEDULE_FRAMES = 243
SCHEDULE_DEPTH = 8

Schedule = Sequence[Sequence[int]]
PrunerSpec = Union[str, TokenPruner, Sequence[TokenPruner], Callable[[int], TokenPruner]]


def check_schedule(schedule: Schedule, num_frames: int, depth: int) -> tuple[tuple[int, int], ...]:
    """``schedule`` as a tuple of ``(layer_index, num_tokens)`` int pairs; ValueError unless it has at least one
    stage, the layer indices are strictly increasing in 1 .. depth - 1 and the token counts are >= 1,
    <= num_frames and non-increasing (a stage cannot keep more frames than are alive)."""
    try:
        stages = tuple((int(layer), int(tokens)) for layer, tokens in schedule)
    except (TypeError, ValueError):
        raise ValueError(f"schedule must be a sequence of (layer_index, num_tokens) pairs, got {schedule!r}") from None
    if not stages:
        raise ValueError("schedule needs at least one (layer_index, num_tokens) stage")
    prev_layer, prev_tokens = 0, num_frames
    for s, (layer, tokens) in enumerate(stages):
        if not 1 <= layer < depth:
            raise ValueError(f"schedule stage {s}: layer_index must be in 1 .. depth - 1 = {depth - 1}, got {layer}")
        if layer <= prev_layer:
            raise ValueError(f"schedule stage {s}: layer indices must be strictly increasing, got {layer} after "
                             f"{prev_layer} in {stages}")
        if tokens < 1:
            raise ValueError(f"schedule stage {s}: num_tokens must be >= 1, got {tokens}")
        if s == 0 and tokens > num_frames:
            raise ValueError(f"schedule stage 0: {tokens} tokens are more than the {num_frames} frames of the clip")
        if tokens > prev_tokens:
            raise ValueError(f"schedule stage {s}: {tokens} tokens are more than the {prev_tokens} of stage {s - 1} "
                             f"(token counts must not increase: {stages})")
        prev_layer, prev_tokens = layer, tokens
    return stages


def _round_half_up(v: float) -> int:
    return int(math.floor(v + 0.5))


def scale_schedule(schedule: Schedule, num_frames: int, depth: int, ref_frames: int = SCHEDULE_FRAMES,
                   ref_depth: int = SCHEDULE_DEPTH) -> tuple[tuple[int, int], ...]:
    """A schedule written for ``ref_frames`` frames and ``ref_depth`` block pairs, for ``num_frames`` / ``depth``:

    * token counts ``round(n * num_frames / ref_frames)`` (half up), clipped to 1 .. num_frames, then each made
      at most the previous one minus 1 (strictly decreasing);
    * layer indices ``round(l * depth / ref_depth)`` (half up), clipped to 1 .. depth - 1, then each made at
      least the previous one plus 1 (strictly increasing).

    Unchanged when the sizes are the reference ones; ValueError when the clip or the trunk is too short for
    the stages (a token count below 1, a layer index past depth - 1)."""
    stages = tuple((int(layer), int(tokens)) for layer, tokens in schedule)
    out: list[tuple[int, int]] = []
    prev_layer, prev_tokens = 0, num_frames + 1
    for layer, tokens in stages:
        if depth != ref_depth:
            layer = max(min(_round_half_up(layer * depth / ref_depth), depth - 1), 1, prev_layer + 1)
        if num_frames != ref_frames:
            tokens = min(max(_round_half_up(tokens * num_frames / ref_frames), 1), num_frames, prev_tokens - 1)
        if layer >= depth or tokens < 1:
            raise ValueError(f"the schedule {stages} ({ref_frames} frames, depth {ref_depth}) does not fit "
                             f"{num_frames} frames and depth {depth}: pass a schedule of your own")
        out.append((layer, tokens))
        prev_layer, prev_tokens = layer, tokens
    return tuple(out)


def _stage_pruners(pruner: PrunerSpec, stages: tuple[tuple[int, int], ...]) -> list[TokenPruner]:
    """One ``TokenPruner`` per stage: from a name (``make_pruner``), a factory ``num_tokens -> TokenPruner``,
    a list of instances, or one instance (one-stage schedules only)."""
    if isinstance(pruner, TokenPruner):
        pruners = [pruner]
    elif isinstance(pruner, str):
        pruners = [make_pruner(pruner, n) for _, n in stages]
    elif callable(pruner):
        pruners = [pruner(n) for _, n in stages]
    else:
        pruners = list(pruner)
    if len(pruners) != len(stages):
        raise ValueError(f"{len(pruners)} pruner(s) for the {len(stages)} stages of the schedule {stages}")
    for s, (p, (_, n)) in enumerate(zip(pruners, stages)):
        if not isinstance(p, TokenPruner):
            raise ValueError(f"stage {s}: expected a TokenPruner, got {type(p).__name__}")
        if p.num_tokens != n:
            raise ValueError(f"stage {s}: the pruner keeps {p.num_tokens} tokens, the schedule says {n}")
    return pruners


class H2OTMixSTE(MixSTE):
    """MixSTE with a pruner before each stage's block pair and a token recovery after the last pair.

    ``schedule``: ``(layer_index, num_tokens)`` stages (``check_schedule``); ``pruner``: a name
    (``"tpc"``, ``"tps"``, ``"tpa"``, ``"tpmo"``: one such pruner per stage), a factory ``num_tokens ->
    TokenPruner``, or one instance per stage; ``recovery``: a ``TokenRecovery`` (``TRA``, ``TRI``). Other
    arguments are ``MixSTE``'s. ``forward_stages(x, indices=None)`` -> (kept tokens (B, n_last, J, C), the
    absolute indices of every stage [(B, n_s)]); ``forward_features(x, index=None)`` -> (tokens, the last
    stage's absolute index (B, n_last)); ``forward_head(tokens, index)`` -> (B, T, J, 3). Given indices (one
    absolute (B, n_s) per stage, each a subset of the previous; a plain tensor for a one-stage schedule)
    replace the pruners' choices (e.g. to reuse them for a flipped pass).
    """

    def __init__(self, schedule: Schedule, recovery: TokenRecovery, pruner: PrunerSpec = "tpc",
                 num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 8, **kwargs) -> None:
        super().__init__(num_frames=num_frames, num_joints=num_joints, dim=dim, depth=depth, **kwargs)
        self.schedule = check_schedule(schedule, num_frames, depth)
        pruners = _stage_pruners(pruner, self.schedule)
        clash = _flat_names(recovery) & (_flat_names(self) | {"pruners", "recovery", "pos_embed_tokens"})
        if clash:
            raise ValueError(f"the recovery's names {sorted(clash)} clash with the model's")
        self.pruners = nn.ModuleList(pruners)
        self.pos_embed_tokens = nn.ParameterList(nn.Parameter(torch.zeros(1, n, dim)) for _, n in self.schedule)
        self.recovery = recovery
        self.register_state_dict_post_hook(_flatten_recovery)
        self.register_load_state_dict_pre_hook(_nest_recovery)
        self.register_load_state_dict_post_hook(_flatten_missing)

    @property
    def layer_indices(self) -> tuple[int, ...]:
        return tuple(layer for layer, _ in self.schedule)

    @property
    def token_counts(self) -> tuple[int, ...]:
        return tuple(n for _, n in self.schedule)

    @property
    def num_tokens(self) -> int:
        """The number of frames the last stage keeps (what the recovery sees)."""
        return self.schedule[-1][1]

    def _given_indices(self, index: torch.Tensor | Sequence[torch.Tensor] | None
                       ) -> list[torch.Tensor | None]:
        if index is None:
            return [None] * len(self.schedule)
        if isinstance(index, torch.Tensor):
            if len(self.schedule) != 1:
                raise ValueError(f"a {len(self.schedule)}-stage H2OT needs one index per stage "
                                 "(the list forward_stages returns), got one tensor")
            return [index]
        indices = list(index)
        if len(indices) != len(self.schedule):
            raise ValueError(f"{len(indices)} indices for the {len(self.schedule)} stages")
        return indices

    @staticmethod
    def _relative(given: torch.Tensor, alive: torch.Tensor | None, stage: int) -> torch.Tensor:
        """Absolute frame indices ``given`` (B, n) -> positions among the alive frames ``alive`` (B, m)."""
        if alive is None:
            return given
        rel = torch.searchsorted(alive.contiguous(), given.contiguous()).clamp(max=alive.shape[1] - 1)
        if given.device.type != "meta" and not torch.equal(alive.gather(1, rel), given):
            raise ValueError(f"stage {stage}: the given frames are not a subset of the frames alive after stage "
                             f"{stage - 1}")
        return rel

    def forward_stages(self, x: torch.Tensor, indices: Sequence[torch.Tensor] | None = None
                       ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        given = self._given_indices(indices)
        poses = x
        x = self.forward_stem(x)
        alive: torch.Tensor | None = None   # absolute indices of the alive frames; None: every frame
        out: list[torch.Tensor] = []
        stage = 0
        for i in range(self.first_pair, self.depth):
            if stage < len(self.schedule) and i == self.schedule[stage][0]:
                rel = None if given[stage] is None else self._relative(given[stage], alive, stage)
                x, rel = self.pruners[stage](x, rel, poses=poses)
                poses = gather_frames(poses, rel)
                alive = rel if alive is None else alive.gather(1, rel)
                x = x + self.pos_embed_tokens[stage].unsqueeze(2)
                out.append(alive)
                stage += 1
            x = self.forward_block(x, i)
        return x, out

    def forward_features(self, x: torch.Tensor, index: torch.Tensor | Sequence[torch.Tensor] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        x, indices = self.forward_stages(x, self._given_indices(index))
        return x, indices[-1]

    def forward_head(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        if self.recovery.on_features:
            return self.head(self.recovery(x, index, self.num_frames))
        return self.recovery(self.head(x), index, self.num_frames)

    def forward(self, x: torch.Tensor, index: torch.Tensor | Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        return self.forward_head(*self.forward_features(x, index))


def hot_state_dict_to_h2ot(state_dict: dict) -> dict:
    """A HoT-MixSTE state dict as a one-stage H2OT's: ``pos_embed_token`` -> ``pos_embed_tokens.0`` (with any
    prefix); every other key is the same."""
    out = {}
    for key, value in state_dict.items():
        head, dot, last = key.rpartition(".")
        out[f"{head}{dot}pos_embed_tokens.0" if last == "pos_embed_token" else key] = value
    return out


def h2ot_mixste(num_frames: int = 243, num_joints: int = 17, dim: int = 512, depth: int = 8,
                schedule: Schedule | None = None, pruner: PrunerSpec = "tpc",
                recovery: str | TokenRecovery = "tra", **overrides) -> H2OTMixSTE:
    """H2OT on MixSTE (slimpose's reading, see docs/lifting_models.md): ``schedule=None`` is ``H2OT_SCHEDULE``
    (121, 61, 31 of 243 frames before block pairs 2, 3, 4; 35,067,907 parameters, 58.9 G linear-layer MACs per
    243-frame clip with TRA), scaled by ``scale_schedule`` to other ``num_frames`` / ``depth``; a given
    schedule is used as is. ``pruner``: ``"tpc"`` / ``"tps"`` / ``"tpa"`` / ``"tpmo"``, a factory or instances;
    ``recovery``: ``"tra"`` / ``"tri"`` or an instance; other overrides go to ``MixSTE``."""
    cfg = released_cfg(**overrides)
    if schedule is None:
        schedule = scale_schedule(H2OT_SCHEDULE, num_frames, depth)
    return H2OTMixSTE(schedule, make_recovery(recovery, num_frames, dim, cfg["num_heads"], cfg["qkv_bias"]),
                      pruner=pruner, num_frames=num_frames, num_joints=num_joints, dim=dim, depth=depth, **cfg)


__all__ = ["H2OTMixSTE", "H2OT_SCHEDULE", "SCHEDULE_DEPTH", "SCHEDULE_FRAMES", "check_schedule", "h2ot_mixste",
           "hot_state_dict_to_h2ot", "scale_schedule"]
