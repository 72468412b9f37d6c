"""Facts of the shared token transformer (official TokenPose/DistilPose/SDPose design) and its parts."""

import math

import pytest
import torch

from slimpose.models.head_layers import TokenHeatmapHead, uses_hidden_layer
from slimpose.models.transformer import (
    Attention,
    PatchEmbed,
    TokenBlock,
    Tokens,
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
    x0 = t.embed(feats).x
    # embed: keypoint tokens first, pos added to visual tokens only
    kpt_expected = t.keypoint_token.expand(2, -1, -1)
    # the patch embedding is a Linear over the (p1, p2, c) patches (official ``patch_to_embedding``)
    embedded = torch.nn.functional.linear(patchify(feats, (4, 3)), t.patch_embed.weight, t.patch_embed.bias)
    assert torch.equal(t.patch_embed(feats), embedded)
    vis_expected = embedded + t.pos_embed
    assert torch.allclose(x0[:, :3], kpt_expected) and torch.allclose(x0[:, 3:], vis_expected, atol=1e-6)
    # official loop: for idx>0: x[:, K:] += pos (in place)
    x = x0.clone()
    for idx, layer in enumerate(t.stacks[0].layers):
        if idx > 0:
            x[:, 3:] += t.pos_embed
        x = layer(x)
    out = t(feats)
    assert torch.allclose(out.x, x, atol=1e-6)
    kpt = out.prefix
    # 'sine' (input only) differs from 'sine-full'
    s = _tiny(depth=3, pos_embedding="sine")
    s.load_state_dict(t.state_dict())
    assert not torch.allclose(s(feats).prefix, kpt, atol=1e-5)


def test_layers_stacks_and_cycles():
    torch.manual_seed(0)
    t = _tiny(depth=2, num_stacks=2)
    feats = torch.randn(1, 4, 8, 6)
    x = t.embed(feats)
    layers: list = []
    first = t.stacks[0](x, t.readd_pos, layers)
    assert len(layers) == 2 and torch.equal(layers[-1], first.x)
    stacks = t.run_stacks(x)
    assert len(stacks) == 2 and torch.equal(stacks[-1].x, t.run(x).x)
    final, inter = t.forward_intermediates(feats, [0, -1])
    assert len(inter) == 2 and torch.equal(inter[-1], final.x) and torch.equal(inter[0], layers[0])
    with pytest.raises(IndexError):
        t.forward_intermediates(feats, [4])
    assert final.prefix.shape == (1, 3, 16) and final.visual.shape == (1, 4, 16)


def test_gradients_reach_tokens_and_not_the_frozen_embedding():
    t = _tiny()
    out = t(torch.randn(2, 4, 8, 6))
    (out.prefix.sum() + out.visual.sum()).backward()
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


class _KeepFirstHalf(TokenBlock):
    """A pruning block: after its own computation it keeps the visual tokens with the largest first channel
    (half of them), with their grid positions."""

    def forward_tokens(self, tokens: Tokens) -> Tokens:
        tokens = super().forward_tokens(tokens)
        n = tokens.visual.shape[1]
        keep = tokens.visual[..., 0].topk(n // 2, dim=1).indices.sort(dim=1).values
        return tokens.keep(keep)


def test_positions_follow_the_tokens_that_a_block_keeps():
    """A block class plugged into the stack drops tokens; the re-added sine embedding of the next blocks is
    gathered at the kept tokens' grid positions: the pruned stack equals running the later blocks on the
    kept tokens with their own rows of the embedding."""
    torch.manual_seed(0)
    pruned = _tiny(depth=3, block_fn=_KeepFirstHalf, feature_size=(12, 8), patch_size=(2, 2))
    feats = torch.randn(2, 4, 8, 12)
    out = pruned(feats)
    assert out.visual.shape == (2, 24 // 8, 16)  # 24 grid tokens halved by each of the 3 blocks
    assert out.index.shape == (2, 3) and (out.index.diff(dim=1) > 0).all()  # kept in grid order
    # by hand: block 0 on all tokens, keep; re-add pos at the kept positions; block 1; keep; ...
    pos = pruned.pos_embed
    t = pruned.embed(feats)
    for i, blk in enumerate(pruned.stacks[0].layers):
        if i > 0:
            x = t.x.clone()
            x[:, 3:] = x[:, 3:] + pos[0][t.positions()]
            t = Tokens(x, 3, t.index)
        t = blk.forward_tokens(t)
    assert torch.equal(t.index, out.index) and torch.allclose(t.x, out.x, atol=1e-6)
    # with every token kept the index-gathered embedding is the plain one
    full = Tokens(torch.zeros(2, 3 + 24, 16), 3, torch.arange(24).expand(2, 24))
    assert torch.equal(full.add_positions(pos).x, Tokens(full.x, 3).add_positions(pos).x)


def test_image_patch_embedding_feeds_the_same_blocks():
    """A plain ViT (image patches, no keypoint tokens) runs on the same block stack."""
    torch.manual_seed(0)
    embed = PatchEmbed((24, 32), patch_size=(8, 8), dim=16)
    assert embed.grid_size == (3, 4) and embed.num_patches == 12
    images = torch.randn(2, 3, 32, 24)
    tokens = embed(images)
    assert tokens.shape == (2, 12, 16)
    # row-major patch order: patch (row 1, col 2) is the conv output at that grid cell
    conv = embed.proj(images)
    assert torch.allclose(tokens[:, 1 * 3 + 2], conv[:, :, 1, 2], atol=1e-6)
    stack = TokenStack(16, depth=2, num_heads=2)
    out = stack(Tokens(tokens, 0))
    assert out.x.shape == (2, 12, 16) and out.prefix.shape == (2, 0, 16)
    padded = PatchEmbed((192, 256), patch_size=(16, 16), dim=16, padding=2)  # ViTPose's patch embedding
    assert padded.grid_size == (12, 16) and padded(torch.randn(1, 3, 256, 192)).shape == (1, 192, 16)
