"""KTPFormer: the graphs, the learnable graph convolution, the prior blocks, the factories and HoT on KTPFormer."""

from __future__ import annotations

import pytest
import torch

from _shared import lifting_input, randomise_embeddings
from slimpose.engine.complexity import count_flops, count_params
from slimpose.lifting.data.h36m import H36M_PARENTS
from slimpose.lifting.models import create_lifter, hot_ktpformer, ktpformer
from slimpose.lifting.models.graph import LearnableGraphConv, chain_parents, graph_adjacency

T, J, C = 27, 17, 32
SMALL = dict(num_frames=T, dim=C, depth=2, num_heads=4)


def test_adjacency_from_the_skeleton_and_the_frame_chain():
    a = graph_adjacency(H36M_PARENTS)
    edges = (a > 0) & ~torch.eye(J, dtype=torch.bool)
    assert torch.equal(edges, edges.T)  # undirected
    assert int(edges.sum()) == 2 * 16  # 16 bones
    assert torch.equal(torch.diagonal(a), torch.ones(J))
    off = a * (1 - torch.eye(J))
    torch.testing.assert_close(off.sum(dim=1), torch.ones(J))  # each row divided by its degree
    assert a[8, 11] == pytest.approx(1 / 4)  # the thorax: spine, neck, both shoulders
    chain = graph_adjacency(chain_parents(5))
    expected = torch.tensor([[1, 1, 0, 0, 0], [.5, 1, .5, 0, 0], [0, .5, 1, .5, 0], [0, 0, .5, 1, .5], [0, 0, 0, 1, 1]])
    torch.testing.assert_close(chain, expected)
    with pytest.raises(ValueError, match="parent 7"):
        graph_adjacency([-1, 7])


def test_zero_learnable_topology_is_the_fixed_graph_convolution():
    torch.manual_seed(0)
    adj = graph_adjacency(H36M_PARENTS)
    conv = LearnableGraphConv(2, 8, adj)
    with torch.no_grad():
        conv.adj2.zero_()
        conv.M.copy_(torch.rand_like(conv.M))
    x = torch.randn(3, J, 2)
    eye = torch.eye(J)
    fixed = (adj + adj.T) / 2  # the row-normalised adjacency is not symmetric; the layer symmetrises it
    expected = (fixed * eye) @ (conv.M * (x @ conv.W[0])) + (fixed * (1 - eye)) @ (conv.M * (x @ conv.W[1])) \
        + conv.bias
    torch.testing.assert_close(conv(x), expected)
    # the learnable part is symmetrised too: an asymmetric adj2 acts as its symmetric half
    with torch.no_grad():
        conv.adj2.copy_(torch.randn(J, J))
    torch.testing.assert_close(conv.topology(), fixed + (conv.adj2 + conv.adj2.T) / 2)
    assert "adj" not in conv.state_dict() and set(conv.state_dict()) == {"W", "M", "adj2", "bias"}


def test_released_size_and_keys():
    with torch.device("meta"):
        model = ktpformer()
    assert count_params(model) == 35_213_430  # reference: 35.21 M (derived)
    assert count_flops(model)["linear"] == pytest.approx(142.96, abs=0.01)  # reference: about 143 G per clip
    keys = set(model.state_dict())
    assert {"kpattention.attn.kpa.gconv.W", "kpattention.attn.Spatial_pos_embed", "tpattention.attn.tpa.gconv2.bn.weight",
            "tpattention.attn.Temporal_pos_embed", "STEblocks.6.attn.qkv.weight", "head.1.weight"} <= keys
    assert not any(k.startswith(("Spatial_patch_to_embedding", "Spatial_pos_embed", "STEblocks.7")) for k in keys)


def test_forward_round_trip_and_ablation():
    torch.manual_seed(0)
    model = ktpformer(**SMALL).eval()
    randomise_embeddings(model)
    x = lifting_input(2, T, J)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, T, J, 3)
    again = ktpformer(**SMALL).eval()
    again.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(again(x), out)
    plain = ktpformer(**SMALL, prior_attention=False).eval()
    assert not any("gconv" in k for k in plain.state_dict()) and plain(x).shape == (2, T, J, 3)
    with pytest.raises(ValueError, match="keypoint sequences"):
        model(torch.zeros(1, T + 1, J, 2))


def test_gradients_reach_the_prior_blocks():
    torch.manual_seed(0)
    model = ktpformer(**SMALL)
    model(lifting_input(2, T, J)).square().mean().backward()
    for name in ("kpattention.attn.kpa.gconv.W", "kpattention.attn.kpa.gconv.adj2",
                 "tpattention.attn.tpa.gconv1.gconv.adj2", "tpattention.attn.qkv.weight"):
        grad = dict(model.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_hot_ktpformer_keeping_every_frame_is_ktpformer():
    """HoT on KTPFormer with TPS keeping all T frames and TRI recovering them: the trunk is KTPFormer's and
    the recovery the identity, so the outputs are KTPFormer's on the same weights."""
    torch.manual_seed(0)
    hot = hot_ktpformer(**SMALL, num_tokens=T, layer_index=1, pruner="tps", recovery="tri").eval()
    plain = ktpformer(**SMALL).eval()
    plain.load_state_dict({k: v for k, v in hot.state_dict().items() if k != "pos_embed_token"}, strict=True)
    x = lifting_input(2, T, J)
    with torch.no_grad():
        torch.testing.assert_close(hot(x), plain(x))
    pruned = create_lifter("hot_ktpformer", **SMALL, num_tokens=9, layer_index=0).eval()  # right after the priors
    tokens, index = pruned.forward_features(x)
    assert tokens.shape == (2, 9, J, C) and pruned(x).shape == (2, T, J, 3)
    with torch.device("meta"):
        full = create_lifter("hot_ktpformer")
    assert count_flops(full)["linear"] == pytest.approx(88.09, abs=0.01)  # -38.4 % of KTPFormer's 142.96
    with pytest.raises(ValueError, match="layer_index"):
        hot_ktpformer(**SMALL, num_tokens=9, layer_index=2)
