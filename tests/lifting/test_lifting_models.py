"""The 3-D lifters: MixSTE, HoT-MixSTE (TPC / TPS pruning, TRA / TRI recovery) and TPC-MixSTE.

Small CPU configurations (27 frames, dim 32, depth 4) for everything that runs; the full-size models only
on the meta device (official state-dict layout, parameter counts). Complexity of small configurations is
checked against the closed-form count of their linear layers and attention products.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from _shared import lifting_input, randomise_embeddings
from slimpose.engine.complexity import count_flops
from slimpose.lifting.models import LIFTERS, create_lifter, hot_mixste, mixste, tpc_mixste
from slimpose.lifting.models.hot import HoTMixSTE, TPCMixSTE
from slimpose.lifting.models.pruning import (
    TPC, TPS, TRA, TRI, TokenPruner, TokenRecovery, cluster_dpc_knn, dpc_knn_scores, uniform_indices,
)
from slimpose.lifting.models.spec import SequenceInput
from slimpose.utils.io import SlimposeInputError

T, J, C, DEPTH = 27, 17, 32, 4
SMALL = dict(num_frames=T, dim=C, depth=DEPTH)


def _input(batch: int = 2, seed: int = 0) -> torch.Tensor:
    return lifting_input(batch, T, J, seed)


_randomise_embeddings = randomise_embeddings


# ---------------------------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("pruner, recovery", [("tpc", "tra"), ("tpc", "tri"), ("tps", "tra"), ("tps", "tri")])
def test_hot_output_shape_for_every_pruner_and_recovery(pruner, recovery):
    torch.manual_seed(0)
    model = hot_mixste(**SMALL, num_tokens=9, layer_index=2, pruner=pruner, recovery=recovery).eval()
    x = _input()
    tokens, index = model.forward_features(x)
    assert tokens.shape == (2, 9, J, C) and index.shape == (2, 9)
    assert model(x).shape == (2, T, J, 3)


def test_mixste_and_tpc_mixste_output_shapes():
    torch.manual_seed(0)
    x = _input()
    assert mixste(**SMALL).eval()(x).shape == (2, T, J, 3)
    tpc = tpc_mixste(**SMALL, num_tokens=7, layer_index=3).eval()
    kept, index = tpc.forward_kept(x)
    assert kept.shape == (2, 7, J, 3) and index.shape == (2, 7)
    assert tpc(x).shape == (2, 1, J, 3)


def test_input_spec_and_wrong_input_refused():
    model = mixste(**SMALL)
    spec = model.input_spec
    assert spec == SequenceInput(T, J, 2) and spec.shape(3) == (3, T, J, 2) and spec.size == (T, J)
    assert spec.example(2).shape == (2, T, J, 2)
    with pytest.raises(ValueError, match="keypoint sequences"):
        model(torch.zeros(1, T + 1, J, 2))


def test_lifter_index():
    assert set(LIFTERS) == {"mixste", "hot_mixste", "tpc_mixste", "h2ot_mixste", "ktpformer", "hot_ktpformer",
                            "starpose", "starpose_s"}
    assert isinstance(create_lifter("hot_mixste", **SMALL, num_tokens=9), HoTMixSTE)
    with pytest.raises(SlimposeInputError, match="mixste"):
        create_lifter("posformer")
    with pytest.raises(ValueError, match="layer_index"):
        hot_mixste(**SMALL, layer_index=DEPTH)
    with pytest.raises(ValueError, match="recovery"):
        hot_mixste(**SMALL, recovery="nearest")


# ------------------------------------------------------------- HoT with every frame kept is MixSTE


def test_tpc_keeping_every_frame_is_the_identity_selection():
    x = torch.randn(3, T, J, C)
    kept, index = TPC(T)(x)
    assert torch.equal(index, torch.arange(T).expand(3, -1)) and torch.equal(kept, x)


def test_hot_keeping_every_frame_equals_mixste_with_the_same_weights():
    """With num_tokens = T, TPC keeps every frame in order; ``pos_embed_token`` is zero (its official
    initialisation, and MixSTE has none), so the trunk is MixSTE's exactly. TRI over all frames is the
    identity, so HoT-TRI *is* MixSTE; HoT-TRA is MixSTE's features through TRA and the same head (the official
    model does not reduce to MixSTE: its learnable queries always re-mix the frames)."""
    torch.manual_seed(0)
    ref = mixste(**SMALL).eval()
    _randomise_embeddings(ref)
    x = _input()
    with torch.no_grad():
        feats, out = ref.forward_features(x), ref(x)
        for recovery in ("tri", "tra"):
            hot = hot_mixste(**SMALL, num_tokens=T, layer_index=2, recovery=recovery).eval()
            missing = hot.load_state_dict(ref.state_dict(), strict=False).missing_keys
            assert set(missing) == {"pos_embed_token"} | ({"x_token"} | {
                f"cross_attention.{n}.{p}" for n in ("linear_q", "linear_k", "linear_v", "proj")
                for p in ("weight", "bias")} if recovery == "tra" else set())
            tokens, index = hot.forward_features(x)
            assert torch.equal(index, torch.arange(T).expand(2, -1))
            assert torch.equal(tokens, feats)
            if recovery == "tri":
                assert torch.equal(hot(x), out)
            else:
                assert torch.equal(hot(x), ref.head(hot.recovery(feats, index, T)))


def test_tpc_mixste_keeping_every_frame_is_mixste_at_the_centre():
    torch.manual_seed(0)
    ref = mixste(**SMALL).eval()
    _randomise_embeddings(ref)
    tpc = tpc_mixste(**SMALL, num_tokens=T, layer_index=3).eval()
    tpc.load_state_dict(ref.state_dict(), strict=True)  # TPC-MixSTE has exactly MixSTE's parameters
    x = _input()
    with torch.no_grad():
        assert torch.equal(tpc(x), ref(x)[:, (T - 1) // 2:(T - 1) // 2 + 1])


# ------------------------------------------------------------------------------------------- DPC-kNN


def test_dpc_knn_scores_by_hand():
    """Points 0, 1, 3, 7 on a line (C = 1, so d = |a - b|), k = 2 (the point itself + its nearest):
    rho = exp(-d_nn^2 / 2) = e^-0.5, e^-0.5, e^-2, e^-8. Without noise 0 and 1 tie, so neither is denser
    than the other: both get delta = the largest distance, 7; 3 -> 2 (to 1), 7 -> 4 (to 3)."""
    x = torch.tensor([[[0.0], [1.0], [3.0], [7.0]]], dtype=torch.float64)
    expected = torch.tensor([[7 * math.exp(-0.5), 7 * math.exp(-0.5), 2 * math.exp(-2), 4 * math.exp(-8)]],
                            dtype=torch.float64)
    assert torch.allclose(dpc_knn_scores(x, k=2, noise=0), expected, rtol=1e-12, atol=0)
    # with the official tie-breaking noise, one of the tied pair becomes the peak, the other gets delta 1
    torch.manual_seed(0)
    s = dpc_knn_scores(x, k=2)
    assert sorted(s[0, :2].tolist()) == pytest.approx([math.exp(-0.5), 7 * math.exp(-0.5)], rel=1e-5)


def _clustered_frames(labels: list[int], dim: int, seed: int) -> torch.Tensor:
    """float64: the two frames of a cluster's closest pair have equal densities, and the official 1e-6
    tie-breaking noise, rounded to float32 near a density of 1, has only ~17 levels (a 1-in-17 chance that
    the tie survives and both become centres, in the official code as here); float64 always breaks it."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(max(labels) + 1, dim, generator=g, dtype=torch.float64) * 10
    return centres[labels] + 0.01 * torch.randn(len(labels), dim, generator=g, dtype=torch.float64)


LABELS = [2, 2, 0, 0, 1, 0, 3, 3, 1, 1, 2, 0, 3, 1, 2]   # 4 interleaved clusters of near-identical frames


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_dpc_knn_picks_one_centre_per_cluster_in_temporal_order(seed):
    frames = _clustered_frames(LABELS, 8, seed)
    torch.manual_seed(seed)   # the tie-breaking noise
    index = cluster_dpc_knn(frames[None], 4, k=2)[0]
    assert torch.all(index[1:] > index[:-1])
    assert sorted(LABELS[i] for i in index.tolist()) == [0, 1, 2, 3]


def test_tpc_clusters_the_frame_features_averaged_over_joints():
    """Per-joint perturbations that cancel in the mean over joints (and would dominate any one joint) do
    not change TPC's choice: one frame per cluster; ``keep`` forces a frame in and the rest stays sorted."""
    frames = _clustered_frames(LABELS, 8, 0)
    noise = torch.randn(len(LABELS), J, 8, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 100
    x = (frames[:, None, :] + noise - noise.mean(dim=1, keepdim=True))[None]
    torch.manual_seed(0)
    _, index = TPC(4)(x)
    assert sorted(LABELS[i] for i in index[0].tolist()) == [0, 1, 2, 3]
    torch.manual_seed(0)
    _, index = TPC(5, keep=7)(x)
    assert 7 in index[0].tolist() and torch.all(index[0, 1:] > index[0, :-1])
    assert sorted({LABELS[i] for i in index[0].tolist()}) == [0, 1, 2, 3]
    assert TPC(1, keep=7).select(x).tolist() == [[7]]


# ------------------------------------------------------------------------------------------------- TPS


def test_tps_uniform_frames():
    assert uniform_indices(27, 9).tolist() == [0, 3, 6, 10, 13, 16, 20, 23, 26]   # round(linspace), half to even
    assert uniform_indices(27, 27).tolist() == list(range(27))
    assert uniform_indices(27, 4).tolist() == [0, 9, 17, 26]
    assert uniform_indices(27, 4, keep=12).tolist() == [0, 12, 17, 26]            # 9, the nearest, moved
    assert uniform_indices(27, 4, keep=13).tolist() == [0, 13, 17, 26]            # a tie: the earlier moves
    x = torch.randn(2, 27, J, 4)
    kept, index = TPS(9)(x)
    assert torch.equal(index, uniform_indices(27, 9).expand(2, -1)) and torch.equal(kept, x[:, index[0]])
    assert isinstance(TPS(3), TokenPruner) and isinstance(TPC(3), TokenPruner)


# ------------------------------------------------------------------------------------------ recoveries


def test_tra_output_length_is_the_requested_length_and_joints_stay_apart():
    torch.manual_seed(0)
    tra = TRA(num_frames=T, dim=16, num_heads=4).eval()
    _randomise_embeddings(tra)
    kept = torch.randn(2, 9, J, 16)
    out = tra(kept, None, T)
    assert out.shape == (2, T, J, 16)
    changed = kept.clone()
    changed[:, :, 3] += 1.0
    diff = (tra(changed, None, T) - out).abs().amax(dim=(0, 1, 3))
    assert diff[3] > 0 and torch.all(diff[torch.arange(J) != 3] == 0)   # attention within one joint's frames
    assert TRA(num_frames=40, dim=16, num_heads=4)(kept).shape == (2, 40, J, 16)
    with pytest.raises(ValueError, match="queries"):
        tra(kept, None, T + 1)
    assert isinstance(tra, TokenRecovery) and tra.on_features and not TRI.on_features


def test_tri_is_exact_on_features_linear_in_time():
    index = torch.tensor([[0, 3, 4, 10, 26], [2, 5, 13, 20, 24]])
    a = torch.randint(-5, 5, (1, 1, J, 3)).double()
    b = torch.randint(-5, 5, (1, 1, J, 3)).double()
    kept = a + b * index[:, :, None, None].double()
    out = TRI()(kept, index, T)
    t = torch.arange(T).double()[None, :, None, None]
    line = a + b * t
    assert out.shape == (2, T, J, 3)
    assert torch.allclose(out[0], line[0], rtol=0, atol=1e-12)                # kept frames span 0 .. 26
    assert torch.allclose(out[1, 2:25], line[0, 2:25], rtol=0, atol=1e-12)
    assert torch.equal(out[1, :2], kept[1, :1].expand(2, -1, -1))              # before the first: a copy
    assert torch.equal(out[1, 25:], kept[1, -1:].expand(2, -1, -1))            # after the last: a copy
    assert torch.equal(out[torch.arange(2)[:, None], index], kept)             # kept frames unchanged
    assert torch.equal(TRI()(kept[:, :1], index[:, :1], 5), kept[:, :1].expand(-1, 5, -1, -1))


# ------------------------------------------------------------------- official layout, parameter counts


BLOCK_KEYS = [f"{m}.{p}" for m in ("norm1", "attn.qkv", "attn.proj", "norm2", "mlp.fc1", "mlp.fc2")
              for p in ("weight", "bias")]
MIXSTE_KEYS = {"Spatial_patch_to_embedding.weight", "Spatial_patch_to_embedding.bias", "Spatial_pos_embed",
               "Temporal_pos_embed", "Spatial_norm.weight", "Spatial_norm.bias", "Temporal_norm.weight",
               "Temporal_norm.bias", "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias"} | {
    f"{stack}.{i}.{k}" for stack in ("STEblocks", "TTEblocks") for i in range(8) for k in BLOCK_KEYS}
TRA_KEYS = {"x_token"} | {f"cross_attention.{n}.{p}" for n in ("linear_q", "linear_k", "linear_v", "proj")
                          for p in ("weight", "bias")}
HOT_KEYS = MIXSTE_KEYS | {"pos_embed_token"} | TRA_KEYS


def _meta(factory, **kwargs) -> nn.Module:
    with torch.device("meta"):
        return factory(**kwargs)


def test_full_size_state_dicts_have_the_official_keys_and_shapes():
    mix, hot, tpc = _meta(mixste), _meta(hot_mixste), _meta(tpc_mixste)
    assert set(mix.state_dict()) == MIXSTE_KEYS and set(tpc.state_dict()) == MIXSTE_KEYS
    sd = hot.state_dict()
    assert set(sd) == HOT_KEYS
    shapes = {"Spatial_patch_to_embedding.weight": (512, 2), "Spatial_pos_embed": (1, 17, 512),
              "Temporal_pos_embed": (1, 243, 512), "pos_embed_token": (1, 81, 512), "x_token": (1, 243, 512),
              "STEblocks.0.attn.qkv.weight": (1536, 512), "TTEblocks.7.attn.qkv.bias": (1536,),
              "STEblocks.3.mlp.fc1.weight": (1024, 512), "TTEblocks.5.mlp.fc2.weight": (512, 1024),
              "cross_attention.linear_q.weight": (512, 512), "cross_attention.proj.bias": (512,),
              "head.0.weight": (512,), "head.1.weight": (3, 512)}
    assert {k: tuple(sd[k].shape) for k in shapes} == shapes
    eps = {n: m.eps for n, m in hot.named_modules() if isinstance(m, nn.LayerNorm)}
    assert eps["head.0"] == 1e-5 and eps["Spatial_norm"] == eps["TTEblocks.7.norm2"] == 1e-6


def test_full_size_parameter_counts_match_the_published_ones():
    """Reference §2d: MixSTE 33.78 M (33,783,811), HoT-MixSTE 35.00 M (35,000,323 = + 1,216,512),
    TPC-MixSTE MixSTE's; the counts derived from the official definitions are exact."""
    counts = {name: sum(p.numel() for p in _meta(f).parameters())
              for name, f in (("mixste", mixste), ("hot_mixste", hot_mixste), ("tpc_mixste", tpc_mixste))}
    assert counts == {"mixste": 33_783_811, "hot_mixste": 35_000_323, "tpc_mixste": 33_783_811}
    assert round(counts["mixste"] / 1e6, 2) == 33.78 and round(counts["hot_mixste"] / 1e6, 2) == 35.00


def test_flat_recovery_keys_round_trip_strictly_also_nested_and_copied():
    torch.manual_seed(0)
    hot = hot_mixste(**SMALL, num_tokens=9).eval()
    _randomise_embeddings(hot)
    assert "recovery.x_token" in dict(hot.named_parameters())
    other = hot_mixste(**SMALL, num_tokens=9).eval()
    other.load_state_dict(hot.state_dict(), strict=True)
    assert torch.equal(other.recovery.x_token, hot.recovery.x_token)
    wrapped = nn.ModuleDict({"model": copy.deepcopy(hot)})
    sd = wrapped.state_dict()
    assert "model.x_token" in sd and "model.cross_attention.proj.weight" in sd and not any("recovery" in k for k in sd)
    fresh = nn.ModuleDict({"model": hot_mixste(**SMALL, num_tokens=9)})
    fresh.load_state_dict(sd, strict=True)
    x = _input()
    with torch.no_grad():
        torch.manual_seed(1)
        a = hot(x)
        torch.manual_seed(1)
        assert torch.equal(fresh["model"].eval()(x), a)
    assert set(hot_mixste(**SMALL, num_tokens=9, recovery="tri").state_dict()) == set(mixste(**SMALL).state_dict()) | {
        "pos_embed_token"}


# ------------------------------------------------------------------------------------------ complexity


def _block_macs(dim: int, hidden: int) -> int:
    return 4 * dim * dim + 2 * dim * hidden          # qkv + proj + fc1 + fc2, per token


def _expected_macs(frames_per_pair: list[int], joints: int, dim: int, hidden: int, head_frames: int,
                   tra: tuple[int, int] | None = None) -> tuple[int, int]:
    """(linear, attention) MACs of a MixSTE trunk whose block pair i runs on frames_per_pair[i] frames."""
    linear = joints * (frames_per_pair[0] * 2 * dim                                   # joint embedding
                       + sum(2 * f * _block_macs(dim, hidden) for f in frames_per_pair)
                       + head_frames * 3 * dim)
    attention = sum(f * 2 * joints ** 2 * dim + joints * 2 * f ** 2 * dim for f in frames_per_pair)
    if tra is not None:
        queries, kept = tra
        linear += joints * (2 * queries * dim * dim + 2 * kept * dim * dim)            # q, proj; k, v
        attention += joints * 2 * queries * kept * dim
    return linear, attention


@pytest.mark.parametrize("name", ["mixste", "hot_tra", "hot_tri", "tpc"])
def test_macs_of_small_models_match_the_closed_form(name):
    hidden = 2 * C
    if name == "mixste":
        model, expected = mixste(**SMALL), _expected_macs([T] * 4, J, C, hidden, T)
    elif name == "hot_tra":
        model = hot_mixste(**SMALL, num_tokens=9, layer_index=2)
        expected = _expected_macs([T, T, 9, 9], J, C, hidden, T, tra=(T, 9))
    elif name == "hot_tri":
        model = hot_mixste(**SMALL, num_tokens=9, layer_index=2, pruner="tps", recovery="tri")
        expected = _expected_macs([T, T, 9, 9], J, C, hidden, 9)
    else:
        model = tpc_mixste(**SMALL, num_tokens=7, layer_index=3)
        expected = _expected_macs([T, T, T, 7], J, C, hidden, 7)
    flops = count_flops(model)
    assert (round(flops["linear"] * 1e9), round(flops["attention"] * 1e9)) == expected
    assert flops["conv"] == 0 and flops["other"] == 0


# --------------------------------------------------------------------------------------- training use


def test_gradients_reach_the_trunk_and_the_queries_through_the_pruning():
    torch.manual_seed(0)
    model = hot_mixste(**SMALL, num_tokens=9, layer_index=2).train()
    model(_input()).square().mean().backward()
    for name in ("Spatial_patch_to_embedding.weight", "STEblocks.3.mlp.fc2.weight", "pos_embed_token",
                 "recovery.x_token", "recovery.cross_attention.linear_k.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_tpc_mixste_keeps_the_centre_and_reuses_a_given_index():
    torch.manual_seed(0)
    model = tpc_mixste(**SMALL, num_tokens=7, layer_index=3).eval()
    assert isinstance(model, TPCMixSTE) and model.center == 13
    x = _input(3)
    with torch.no_grad():
        kept, index = model.forward_kept(x)
        assert torch.all((index == 13).sum(dim=1) == 1) and torch.all(index[:, 1:] > index[:, :-1])
        pos = (index == 13).nonzero()[:, 1]
        assert torch.equal(model(x, index)[:, 0], kept[torch.arange(3), pos])
        flipped = x.flip(-1)
        assert torch.equal(model.forward_kept(flipped, index)[1], index)   # the flip test reuses the indices
