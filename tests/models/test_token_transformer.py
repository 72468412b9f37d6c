"""Facts of the shared token transformer (official TokenPose/DistilPose/SDPose design)."""

import math

import pytest
import torch

from slimpose.models.heads import TokenHeatmapHead, uses_hidden_layer
from slimpose.models.token_transformer import (
    Attention,
    TokenStack,
    TokenTransformer,
    attention_explicit,
    patchify,
    sine_position_embedding,
)

torch.set_num_threads(1)


def _tiny(**kw):
    cfg = dict(in_channels=4, feature_size=(6, 8), patch_size=(4, 3), num_keypoints=3, dim=16, depth=2,
               num_heads=2)
    cfg.update(kw)
    return TokenTransformer(**cfg)


def test_sine_embedding_values_and_yx_order():
    h, w, dim = 4, 3, 16
    pe = sine_position_embedding(h, w, dim)
    assert pe.shape == (1, h * w, dim)
    feats = dim // 2
    two_pi, eps = 2 * math.pi, 1e-6
    for (r, c) in [(0, 0), (2, 1), (3, 2)]:
        y = (r + 1) / (h + eps) * two_pi
        x = (c + 1) / (w + eps) * two_pi
        expected = []
        for v in (y, x):  # pos_y channels first, then pos_x
            for i in range(feats):
                arg = v / 10000 ** (2 * (i // 2) / feats)
                expected.append(math.sin(arg) if i % 2 == 0 else math.cos(arg))
        got = pe[0, r * w + c]  # row-major flattening
        assert torch.allclose(got, torch.tensor(expected), atol=1e-5), (r, c)
    # first position: channel 0 = sin(y), channel dim/2 = sin(x); y != x because h != w
    assert pe[0, 0, 0].item() == pytest.approx(math.sin(1 / (h + eps) * two_pi), abs=1e-6)
    assert pe[0, 0, feats].item() == pytest.approx(math.sin(1 / (w + eps) * two_pi), abs=1e-6)


def test_sine_embedding_is_frozen_parameter_in_state_dict():
    t = _tiny()
    assert isinstance(t.pos_embed, torch.nn.Parameter)
    assert not t.pos_embed.requires_grad
    sd = t.state_dict()
    assert sd["pos_embed"].shape == (1, 4, 16)  # grid (8/4) x (6/3) = 2 x 2
    assert torch.equal(sd["pos_embed"], sine_position_embedding(2, 2, 16))
    learn = _tiny(pos_embedding="learnable")
    assert learn.pos_embed.shape == (1, 4 + 3, 16) and learn.pos_embed.requires_grad
    assert _tiny(pos_embedding="none").pos_embed is None
    with pytest.raises(ValueError, match="pos_embedding"):
        _tiny(pos_embedding="rope")


def test_patch_order_is_p1_p2_c_with_c_fastest():
    c_n, ph, pw = 3, 2, 3
    f = torch.zeros(1, c_n, 2 * ph, 2 * pw)  # 2 x 2 patches
    for c in range(c_n):
        for y in range(2 * ph):
            for x in range(2 * pw):
                f[0, c, y, x] = 1000 * (y // ph * 2 + x // pw) + 100 * c + 10 * (y % ph) + (x % pw)
    tokens = patchify(f, (ph, pw))
    assert tokens.shape == (1, 4, ph * pw * c_n)
    for n in range(4):  # patches row-major
        expected = [
            1000 * n + 100 * c + 10 * p1 + p2 for p1 in range(ph) for p2 in range(pw) for c in range(c_n)
        ]
        assert tokens[0, n].tolist() == expected
    with pytest.raises(ValueError, match="not divisible"):
        patchify(torch.zeros(1, 1, 5, 6), (2, 3))


@pytest.mark.parametrize("scale_with_head", [True, False])
def test_fused_attention_equals_explicit(scale_with_head):
    torch.manual_seed(0)
    attn = Attention(32, num_heads=4, scale_with_head=scale_with_head)
    x = torch.randn(2, 11, 32)
    q, k, v = attn._qkv(x)
    ref = attention_explicit(q, k, v, attn.scale).transpose(1, 2).reshape(2, 11, 32)
    assert torch.allclose(attn(x), attn.proj(ref), atol=1e-5)
    out, maps = attn.forward_with_attention(x)
    assert torch.allclose(attn(x), out, atol=1e-5)
    assert maps.shape == (2, 4, 11, 11) and torch.allclose(maps.sum(-1), torch.ones(2, 4, 11), atol=1e-5)
    assert attn.scale == pytest.approx((8 if scale_with_head else 32) ** -0.5)


def test_two_scale_modes_give_different_outputs():
    torch.manual_seed(0)
    a = Attention(32, num_heads=4, scale_with_head=True)
    b = Attention(32, num_heads=4, scale_with_head=False)
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 7, 32) * 3
    assert not torch.allclose(a(x), b(x), atol=1e-4)


def test_sine_full_readds_pos_before_later_layers_only():
    torch.manual_seed(0)
    t = _tiny(depth=3)
    feats = torch.randn(2, 4, 8, 6)
    x0 = t.embed(feats)
    # embed: keypoint tokens first, pos added to visual tokens only
    kpt_expected = t.keypoint_token.expand(2, -1, -1)
    vis_expected = t.patch_embed(patchify(feats, (4, 3))) + t.pos_embed
    assert torch.allclose(x0[:, :3], kpt_expected) and torch.allclose(x0[:, 3:], vis_expected, atol=1e-6)
    # official loop: for idx>0: x[:, K:] += pos (in place)
    x = x0.clone()
    for idx, layer in enumerate(t.stacks[0].layers):
        if idx > 0:
            x[:, 3:] += t.pos_embed
        x = layer(x)
    kpt, vis = t(feats)
    assert torch.allclose(torch.cat([kpt, vis], 1), x, atol=1e-6)
    # 'sine' (input only) differs from 'sine-full'
    s = _tiny(depth=3, pos_embedding="sine")
    s.load_state_dict(t.state_dict())
    assert not torch.allclose(s(feats)[0], kpt, atol=1e-5)


def test_layers_stacks_and_cycles():
    torch.manual_seed(0)
    t = _tiny(depth=2, num_stacks=2)
    x = t.embed(torch.randn(1, 4, 8, 6))
    layers = t.run_stack(x, 0, return_layers=True)
    assert len(layers) == 2 and torch.equal(layers[-1], t.run_stack(x, 0))
    stacks = t.run_stacks(x)
    assert len(stacks) == 2 and torch.allclose(stacks[-1], t.run(x))
    cycles = t.run_cycles(x, 2)
    assert len(cycles) == 2 and torch.allclose(cycles[1], t.run(t.run(x)), atol=1e-6)
    assert not torch.allclose(cycles[0], cycles[1])
    kpt, vis = t.split(cycles[0])
    assert kpt.shape == (1, 3, 16) and vis.shape == (1, 4, 16)


def test_gradients_reach_tokens_and_not_the_frozen_embedding():
    t = _tiny()
    kpt, vis = t(torch.randn(2, 4, 8, 6))
    (kpt.sum() + vis.sum()).backward()
    assert t.keypoint_token.grad is not None and t.keypoint_token.grad.abs().sum() > 0
    assert t.pos_embed.grad is None


def test_heatmap_head_branch_rule_and_layout():
    assert uses_hidden_layer(192, (48, 64))  # hid 384, 192 <= 192
    assert not uses_hidden_layer(192, (12, 16))  # hid 24, 192 > 12
    assert not uses_hidden_layer(576, (48, 64))  # TokenPose-L fused tokens
    two = TokenHeatmapHead(192, (48, 64))
    assert two.two_layer and [tuple(p.shape) for p in two.mlp.parameters()] == [
        (192,), (192,), (384, 192), (384,), (384,), (384,), (3072, 384), (3072,)]
    one = TokenHeatmapHead(192, (12, 16))
    assert not one.two_layer and len(one.mlp) == 2
    # row-major reshape: output element (k, y, x) is flat index y * W + x
    tokens = torch.randn(2, 5, 192)
    hm = one(tokens)
    flat = one.mlp(tokens)
    assert hm.shape == (2, 5, 16, 12) and torch.equal(hm[1, 3, 7, 5], flat[1, 3, 7 * 12 + 5])
