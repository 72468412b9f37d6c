"""H2OT on MixSTE: the TPA / TPMo pruners, the staged schedule (composed absolute indices, per-stage position
embeddings, scaling), its reductions to MixSTE and HoT-MixSTE, state dict, gradients and complexity.

Small CPU configurations (27 frames, dim 32, depth 4); the full-size model only on the meta device.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from _shared import lifting_input, randomise_embeddings
from slimpose.engine.complexity import count_flops
from slimpose.lifting.models import LIFTERS, create_lifter, h2ot_mixste, hot_mixste, mixste
from slimpose.lifting.models.h2ot import (
    H2OT_SCHEDULE, H2OTMixSTE, check_schedule, hot_state_dict_to_h2ot, scale_schedule,
)
from slimpose.lifting.models.hot import make_pruner
from slimpose.lifting.models.pruning import (
    TPA, TPC, TPS, TRA, TRI, TPMo, TokenPruner, attention_scores, gather_frames, motion_scores, top_frames,
)

T, J, C, DEPTH = 27, 17, 32, 4
SMALL = dict(num_frames=T, dim=C, depth=DEPTH)
SCHEDULE = ((1, 13), (2, 7), (3, 3))      # what the default becomes at 27 frames, depth 4


def _input(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return lifting_input(batch, T, J, seed)


_randomise_embeddings = randomise_embeddings


def _ascending(index: torch.Tensor) -> bool:
    return bool(torch.all(index[:, 1:] > index[:, :-1]))


# ------------------------------------------------------------------------------------------------- TPA


def test_attention_scores_by_hand():
    """Column means of softmax(LN(x) LN(x)^T / sqrt(C)), computed with explicit loops."""
    x = torch.randn(2, 6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    n = (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-6)
    expected = torch.zeros(2, 6, dtype=torch.float64)
    for b in range(2):
        for i in range(6):
            logits = torch.stack([n[b, i] @ n[b, j] / math.sqrt(5) for j in range(6)])
            expected[b] += torch.softmax(logits, 0) / 6
    scores = attention_scores(x)
    assert torch.allclose(scores, expected, rtol=1e-12, atol=0)
    assert torch.allclose(scores.sum(-1), torch.ones(2, dtype=torch.float64))
    raw = attention_scores(x, norm=False, scale=1.0)
    assert torch.allclose(raw, torch.softmax(x @ x.transpose(1, 2), -1).mean(1), rtol=1e-12, atol=0)


def _common_and_outliers() -> tuple[torch.Tensor, list[int]]:
    """9 frames, C = 8: 5 near-copies of one direction (the frames 1, 2, 4, 6, 7) and 4 outliers along other
    axes; per-joint perturbations (J = 3) that cancel in the mean over joints."""
    g = torch.Generator().manual_seed(0)
    eye = torch.eye(8, dtype=torch.float64)
    common = [1, 2, 4, 6, 7]
    outliers = iter([eye[1], eye[2], eye[3], eye[5]])
    frames = torch.stack([eye[0] + 0.05 * torch.randn(8, generator=g, dtype=torch.float64) if t in common
                          else next(outliers) for t in range(9)])
    noise = torch.randn(9, 3, 8, generator=g, dtype=torch.float64) * 10
    return (frames[:, None] + noise - noise.mean(1, keepdim=True))[None], common


def test_tpa_keeps_the_frames_that_receive_the_most_attention():
    """Every frame attends most to itself; the near-copies also attend to each other, so they receive more
    attention than the outliers, which only their own query attends to (the joint perturbations cancel in the
    mean over joints and change nothing)."""
    x, common = _common_and_outliers()
    scores = attention_scores(x.mean(2))
    assert scores[0, common].min() > scores[0, [0, 3, 5, 8]].max()
    kept, index = TPA(5)(x)
    assert index.tolist() == [common] and torch.equal(kept, x[:, common])
    with_keep = TPA(5, keep=3).select(x)
    assert 3 in with_keep[0].tolist() and _ascending(with_keep)
    assert TPA(1, keep=8).select(x).tolist() == [[8]]
    assert isinstance(TPA(3), TokenPruner)


# ------------------------------------------------------------------------------------------------ TPMo


def _burst(batch: int = 1) -> torch.Tensor:
    """Still poses except frames 10 .. 14, which move by the same step each (then stay still again)."""
    rest = torch.rand(1, 1, J, 2, generator=torch.Generator().manual_seed(0))
    step = torch.rand(1, 1, J, 2, generator=torch.Generator().manual_seed(1))
    t = torch.arange(T, dtype=torch.float32).sub(9).clamp(0, 5)[None, :, None, None]
    return (rest + t * step).expand(batch, -1, -1, -1).clone()


def test_motion_scores_and_tpmo_keep_the_burst_of_motion():
    poses = _burst(2)
    score = motion_scores(poses)
    assert torch.equal(score[:, 0], score[:, 1])                       # frame 0: its change to frame 1
    moving = score > 1e-6
    assert moving[0].nonzero().flatten().tolist() == [10, 11, 12, 13, 14]
    features = torch.randn(2, T, J, 8)
    kept, index = TPMo(5)(features, poses=poses)
    assert index.tolist() == [[10, 11, 12, 13, 14]] * 2 and torch.equal(kept, features[:, 10:15])
    # the same criterion on the features (here the poses themselves)
    assert TPMo(5, source="features").select(poses).tolist() == [[10, 11, 12, 13, 14]] * 2
    # first="keep": frame 0 always in
    assert TPMo(6, first="keep").select(features, poses).tolist() == [[0, 10, 11, 12, 13, 14]] * 2
    assert torch.isinf(motion_scores(poses, first="keep")[:, 0]).all()
    with_keep = TPMo(5, keep=20).select(features, poses)
    assert 20 in with_keep[0].tolist() and _ascending(with_keep)
    assert motion_scores(poses[:, :1]).tolist() == [[0.0], [0.0]]


def test_tpmo_mean_over_joints_of_the_per_joint_change():
    p = torch.zeros(1, 3, 2, 2)
    p[0, 1, 0] = torch.tensor([3.0, 4.0])                                  # joint 0 moves by 5, joint 1 still
    assert motion_scores(p).tolist() == [[2.5, 2.5, 2.5]]


def test_tpmo_errors():
    with pytest.raises(ValueError, match="needs the poses"):
        TPMo(3)(torch.randn(1, T, J, 4))
    with pytest.raises(ValueError, match="source"):
        TPMo(3, source="velocity")
    with pytest.raises(ValueError, match="first"):
        TPMo(3, first="zero")
    with pytest.raises(ValueError, match="do not match"):
        TPMo(3)(torch.randn(1, T, J, 4), poses=torch.randn(1, T - 1, J, 2))


def test_poses_are_optional_for_the_other_pruners_and_top_frames():
    x = torch.randn(2, T, J, 4)
    poses = torch.randn(2, T, J, 2)
    torch.manual_seed(0)
    a = TPC(9)(x)[1]
    torch.manual_seed(0)
    assert torch.equal(TPC(9)(x, poses=poses)[1], a)
    assert torch.equal(TPS(9)(x, poses=poses)[1], TPS(9)(x)[1])
    assert torch.equal(TPA(9)(x, poses=poses)[1], TPA(9)(x)[1])
    score = torch.tensor([[0.1, 0.9, 0.5, 0.7]])
    assert top_frames(score.clone(), 2).tolist() == [[1, 3]]
    assert top_frames(score.clone(), 2, keep=0).tolist() == [[0, 1]]
    assert [type(make_pruner(n, 3)) for n in ("tpc", "tps", "tpa", "tpmo")] == [TPC, TPS, TPA, TPMo]


def test_hot_mixste_takes_the_new_pruners():
    torch.manual_seed(0)
    x = _input()
    for pruner in ("tpa", "tpmo"):
        model = hot_mixste(**SMALL, num_tokens=9, layer_index=2, pruner=pruner).eval()
        assert model(x).shape == (2, T, J, 3)
    model = hot_mixste(**SMALL, num_tokens=5, layer_index=2, pruner="tpmo").eval()
    assert model.forward_features(_burst(2))[1].tolist() == [[10, 11, 12, 13, 14]] * 2


# ---------------------------------------------------------------------------------------- the schedule


def test_default_schedule_and_its_scaling():
    assert H2OT_SCHEDULE == ((2, 121), (3, 61), (4, 31))
    assert scale_schedule(H2OT_SCHEDULE, 243, 8) == H2OT_SCHEDULE
    assert scale_schedule(H2OT_SCHEDULE, T, DEPTH) == SCHEDULE
    assert scale_schedule(H2OT_SCHEDULE, 81, 8) == ((2, 40), (3, 20), (4, 10))
    assert h2ot_mixste(**SMALL).schedule == SCHEDULE
    assert h2ot_mixste(num_frames=T, dim=C, depth=2, schedule=((1, 5),)).schedule == ((1, 5),)  # as given
    for frames in range(1, 300, 7):
        for depth in (4, 8, 12):
            try:
                sched = scale_schedule(H2OT_SCHEDULE, frames, depth)
            except ValueError:
                assert frames < 6
                continue
            check_schedule(sched, frames, depth)
            counts = [n for _, n in sched]
            assert all(a > b for a, b in zip(counts, counts[1:])) and counts[-1] >= 1
    with pytest.raises(ValueError, match="does not fit"):
        scale_schedule(H2OT_SCHEDULE, T, 3)           # 3 stages need layer indices 1, 2, 3
    with pytest.raises(ValueError, match="does not fit"):
        h2ot_mixste(num_frames=3, dim=C, depth=DEPTH)


@pytest.mark.parametrize("schedule, match", [
    (((2, 9), (2, 5)), "strictly increasing"),
    (((3, 9), (2, 5)), "strictly increasing"),
    (((1, 9), (2, 12)), "must not increase"),
    (((0, 9),), "1 .. depth - 1"),
    (((1, 9), (DEPTH, 5)), "1 .. depth - 1"),
    (((1, T + 1),), "more than the 27 frames"),
    (((1, 0),), ">= 1"),
    ((), "at least one"),
    (((1, 9, 3),), "pairs"),
])
def test_bad_schedules_are_refused(schedule, match):
    with pytest.raises(ValueError, match=match):
        h2ot_mixste(**SMALL, schedule=schedule)


def test_pruners_given_per_stage():
    model = h2ot_mixste(**SMALL, schedule=SCHEDULE, pruner=[TPS(13), TPA(7), TPMo(3)])
    assert [type(p) for p in model.pruners] == [TPS, TPA, TPMo]
    model = h2ot_mixste(**SMALL, schedule=SCHEDULE, pruner=lambda n: TPC(n, noise=0))
    assert all(isinstance(p, TPC) and p.noise == 0 for p in model.pruners)
    assert h2ot_mixste(**SMALL, schedule=((2, 9),), pruner=TPS(9)).pruners[0].num_tokens == 9
    with pytest.raises(ValueError, match="2 pruner"):
        h2ot_mixste(**SMALL, schedule=SCHEDULE, pruner=[TPS(13), TPS(7)])
    with pytest.raises(ValueError, match="the schedule says 7"):
        h2ot_mixste(**SMALL, schedule=SCHEDULE, pruner=[TPS(13), TPS(6), TPS(3)])
    with pytest.raises(ValueError, match="pruner must be one of"):
        h2ot_mixste(**SMALL, pruner="tpx")


# -------------------------------------------------------------------------- composed absolute indices


class _Recording(TokenPruner):
    """Wraps a pruner and keeps what it was given (features, poses) and what it chose."""

    def __init__(self, inner: TokenPruner) -> None:
        super().__init__(inner.num_tokens)
        self.inner = inner
        self.seen: list[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]] = []

    def select(self, x: torch.Tensor, poses: torch.Tensor | None = None) -> torch.Tensor:
        index = self.inner.select(x, poses)
        self.seen.append((x, poses, index))
        return index


@pytest.mark.parametrize("pruner", ["tpc", "tpa", "tpmo", "tps"])
def test_stage_indices_are_absolute_ascending_and_nested(pruner):
    torch.manual_seed(0)
    model = h2ot_mixste(**SMALL, schedule=SCHEDULE,
                        pruner=lambda n: _Recording(make_pruner(pruner, n))).eval()
    x = _input(3)
    with torch.no_grad():
        torch.manual_seed(1)                        # TPC's tie-breaking noise
        tokens, indices = model.forward_stages(x)
    assert tokens.shape == (3, 3, J, C) and [tuple(i.shape) for i in indices] == [(3, 13), (3, 7), (3, 3)]
    alive = torch.arange(T).expand(3, -1)
    for s, (rec, index) in enumerate(zip(model.pruners, indices)):
        (_, poses, rel), = rec.seen
        assert torch.equal(poses, gather_frames(x, alive))             # the input poses at the alive frames
        assert torch.equal(index, alive.gather(1, rel))                # relative choice -> absolute frames
        assert _ascending(index) and bool(torch.isin(index, alive).all())
        alive = index
    torch.manual_seed(1)
    assert torch.equal(model.forward_features(x)[1], indices[-1])


def test_tpmo_stages_follow_the_real_motion():
    """A burst of 5 moving frames (10 .. 14) in a still clip is kept at every stage. Later stages score the
    change between consecutive *alive* frames: only the burst frames, and frame 0 when the next alive frame is
    10 (``first="next"``: frame 0 takes the change to its next frame), have a non-zero one."""
    model = h2ot_mixste(**SMALL, schedule=((1, 13), (2, 8), (3, 6)), pruner="tpmo").eval()
    x = _burst(2)
    with torch.no_grad():
        _, indices = model.forward_stages(x)
    for index in indices:
        assert all(set(range(10, 15)) <= set(row) for row in index.tolist())
    last = indices[-1][0]
    alive = indices[-2][0]
    score = motion_scores(x[:1, alive])[0]
    assert set(alive[score > 0].tolist()) <= {0, 10, 11, 12, 13, 14} and set(last.tolist()) >= set(range(10, 15))


def test_given_indices_replace_the_choice():
    torch.manual_seed(0)
    model = h2ot_mixste(**SMALL, schedule=SCHEDULE, pruner="tpc").eval()
    x = _input()
    with torch.no_grad():
        torch.manual_seed(1)
        tokens, indices = model.forward_stages(x)
        again, same = model.forward_stages(x.flip(-1), indices)       # a flipped pass reuses them
        assert all(torch.equal(a, b) for a, b in zip(same, indices)) and again.shape == tokens.shape
        torch.manual_seed(1)
        assert torch.equal(model(x), model(x, indices))
        bad = [indices[0], indices[1].clone(), indices[2]]
        for b in range(2):                                              # a frame stage 0 dropped
            bad[1][b, 0] = next(t for t in range(T) if t not in indices[0][b].tolist())
        with pytest.raises(ValueError, match="not a subset"):
            model.forward_stages(x, bad)
        with pytest.raises(ValueError, match="one index per stage"):
            model(x, indices[-1])
        with pytest.raises(ValueError, match="2 indices"):
            model(x, indices[:2])


# ------------------------------------------------------------------------------------ shapes, outputs


@pytest.mark.parametrize("pruner", ["tpc", "tps", "tpa", "tpmo"])
@pytest.mark.parametrize("recovery", ["tra", "tri"])
def test_output_shape_for_every_pruner_and_recovery(pruner, recovery):
    torch.manual_seed(0)
    model = h2ot_mixste(**SMALL, pruner=pruner, recovery=recovery).eval()
    assert isinstance(model, H2OTMixSTE) and isinstance(model.recovery, TRA if recovery == "tra" else TRI)
    x = _input()
    tokens, index = model.forward_features(x)
    assert tokens.shape == (2, 3, J, C) and index.shape == (2, 3)
    assert model(x).shape == (2, T, J, 3)


def test_tri_output_is_the_interpolation_of_the_kept_frames_poses():
    torch.manual_seed(0)
    model = h2ot_mixste(**SMALL, pruner="tpa", recovery="tri").eval()
    x = _input()
    with torch.no_grad():
        tokens, index = model.forward_features(x)
        out = model(x)
    assert torch.equal(out, TRI()(model.head(tokens), index, T))
    assert torch.equal(gather_frames(out, index), model.head(tokens))   # the kept frames' own poses


def test_every_frame_kept_at_every_stage_equals_mixste():
    """TPS keeping every frame (num_tokens = T at each stage) is the identity selection and the per-stage
    position embeddings start at zero, so the trunk is MixSTE's exactly: with TRI the whole model is MixSTE,
    with TRA it is MixSTE's features through TRA and the same head."""
    torch.manual_seed(0)
    ref = mixste(**SMALL).eval()
    _randomise_embeddings(ref)
    x = _input()
    full = ((1, T), (2, T), (3, T))
    with torch.no_grad():
        feats, out = ref.forward_features(x), ref(x)
        for recovery in ("tri", "tra"):
            model = h2ot_mixste(**SMALL, schedule=full, pruner="tps", recovery=recovery).eval()
            missing = set(model.load_state_dict(ref.state_dict(), strict=False).missing_keys)
            assert {k for k in missing if "pos_embed" in k} == {f"pos_embed_tokens.{s}" for s in range(3)}
            tokens, indices = model.forward_stages(x)
            assert all(torch.equal(i, torch.arange(T).expand(2, -1)) for i in indices)
            assert torch.equal(tokens, feats)
            if recovery == "tri":
                assert torch.equal(model(x), out)
            else:
                assert torch.equal(model(x), ref.head(model.recovery(feats, indices[-1], T)))


@pytest.mark.parametrize("recovery", ["tra", "tri"])
def test_one_stage_tpc_h2ot_is_hot_mixste(recovery):
    torch.manual_seed(0)
    hot = hot_mixste(**SMALL, num_tokens=9, layer_index=2, recovery=recovery).eval()
    _randomise_embeddings(hot)
    model = h2ot_mixste(**SMALL, schedule=((2, 9),), recovery=recovery).eval()
    model.load_state_dict(hot_state_dict_to_h2ot(hot.state_dict()), strict=True)
    assert torch.equal(model.pos_embed_tokens[0], hot.pos_embed_token)
    x = _input()
    with torch.no_grad():
        torch.manual_seed(3)                       # TPC's tie-breaking noise comes from the global RNG
        expected, index = hot(x), hot.forward_features(x)[1]
        torch.manual_seed(3)
        assert torch.equal(model(x), expected)
        assert torch.equal(model.forward_features(x)[1], index)
        assert torch.equal(model(x, index), hot(x, index))     # a one-stage model takes a plain tensor


# ---------------------------------------------------------------- state dict, gradients, complexity


BLOCK_KEYS = [f"{m}.{p}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
              for p in ("weight", "bias")]
MIXSTE_KEYS = {"Spatial_patch_to_embedding.weight", "Spatial_patch_to_embedding.bias", "Spatial_pos_embed",
               "Temporal_pos_embed", "Spatial_norm.weight", "Spatial_norm.bias", "Temporal_norm.weight",
               "Temporal_norm.bias", "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias"} | {
    f"{stack}.{i}.{k}" for stack in ("STEblocks", "TTEblocks") for i in range(8) for k in BLOCK_KEYS}
TRA_KEYS = {"x_token"} | {f"cross_attention.{n}.{p}" for n in ("linear_q", "linear_k", "linear_v", "proj")
                          for p in ("weight", "bias")}


def test_state_dict_round_trips_strictly():
    torch.manual_seed(0)
    model = h2ot_mixste(**SMALL, pruner="tpa").eval()
    _randomise_embeddings(model)
    sd = model.state_dict()
    assert {k for k in sd if "pos_embed_tokens" in k} == {"pos_embed_tokens.0", "pos_embed_tokens.1",
                                                          "pos_embed_tokens.2"}
    assert "x_token" in sd and not any(k.startswith(("recovery.", "pruners.")) for k in sd)
    other = h2ot_mixste(**SMALL, pruner="tpa").eval()
    other.load_state_dict(sd, strict=True)
    x = _input()
    with torch.no_grad():
        assert torch.equal(other(x), model(x))
    wrapped = nn.ModuleDict({"m": h2ot_mixste(**SMALL)})
    wrapped.load_state_dict({f"m.{k}": v for k, v in sd.items()}, strict=True)
    with pytest.raises(RuntimeError, match="pos_embed_tokens.2"):
        h2ot_mixste(**SMALL, schedule=((1, 13), (2, 7))).load_state_dict(sd, strict=True)


def _meta(**kwargs) -> nn.Module:
    with torch.device("meta"):
        return h2ot_mixste(**kwargs)


def test_full_size_keys_shapes_params_and_macs():
    model = _meta()
    sd = model.state_dict()
    assert set(sd) == MIXSTE_KEYS | TRA_KEYS | {"pos_embed_tokens.0", "pos_embed_tokens.1", "pos_embed_tokens.2"}
    assert [tuple(sd[f"pos_embed_tokens.{s}"].shape) for s in range(3)] == [(1, 121, 512), (1, 61, 512),
                                                                            (1, 31, 512)]
    assert tuple(sd["x_token"].shape) == (1, 243, 512)
    assert sum(p.numel() for p in model.parameters()) == 35_067_907         # MixSTE + TRA + 213 x 512
    flops = count_flops(model)
    assert round(flops["linear"], 3) == 58.925                              # -57.5 % of MixSTE's 138.624
    tri = _meta(recovery="tri")
    assert sum(p.numel() for p in tri.parameters()) == 33_892_867
    assert round(count_flops(tri)["linear"], 3) == 56.477


def test_macs_of_a_small_model_match_the_closed_form():
    """Block pairs 0 | 1 | 2 | 3 run on 27 | 13 | 7 | 3 frames; TRA: 27 queries over 3 tokens."""
    hidden = 2 * C
    block = 4 * C * C + 2 * C * hidden
    frames = [T, 13, 7, 3]
    linear = J * (T * 2 * C + sum(2 * f * block for f in frames) + T * 3 * C + 2 * T * C * C + 2 * 3 * C * C)
    attention = sum(f * 2 * J ** 2 * C + J * 2 * f ** 2 * C for f in frames) + J * 2 * T * 3 * C
    flops = count_flops(h2ot_mixste(**SMALL, pruner="tps"))
    assert (round(flops["linear"] * 1e9), round(flops["attention"] * 1e9)) == (linear, attention)
    # TPA's frame attention (one F x F x C product per stage, on the joint means) is counted as attention
    tpa = count_flops(h2ot_mixste(**SMALL, pruner="tpa"))
    assert round(tpa["attention"] * 1e9) == attention + (T * T + 13 * 13 + 7 * 7) * C
    assert round(tpa["linear"] * 1e9) == linear


def test_gradients_reach_the_trunk_through_tra():
    torch.manual_seed(0)
    model = h2ot_mixste(**SMALL, pruner="tpmo").train()
    model(_input()).square().mean().backward()
    names = ["Spatial_patch_to_embedding.weight", "STEblocks.0.attn.qkv.weight", "TTEblocks.3.mlp.fc2.weight",
             "pos_embed_tokens.0", "pos_embed_tokens.1", "pos_embed_tokens.2", "recovery.x_token",
             "recovery.cross_attention.linear_k.weight"]
    params = dict(model.named_parameters())
    for name in names:
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name


def test_lifter_index_and_factory():
    assert LIFTERS["h2ot_mixste"] is h2ot_mixste
    model = create_lifter("h2ot_mixste", **SMALL, pruner="tps", recovery="tri")
    assert isinstance(model, H2OTMixSTE) and model.schedule == SCHEDULE
    assert model.layer_indices == (1, 2, 3) and model.token_counts == (13, 7, 3) and model.num_tokens == 3
    assert model.input_spec.shape(1) == (1, T, J, 2)
