"""TokenPose family: forward contract on small inputs, parameter counts of the full variants."""

import pytest
import torch

from slimpose.engine.complexity import param_breakdown
from slimpose.heads import HeatmapHead
from slimpose.models import MODELS, create_model
from slimpose.models.tokenpose import (
    distilpose_teacher,
    tokenpose_b,
    tokenpose_l_d24,
    tokenpose_s_v1,
    tokenpose_s_v2,
    tokenpose_t,
)
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)

SMALL = (96, 128)  # (w, h): stride-4 features 24 x 32, heatmaps 24 x 32


@pytest.mark.parametrize(
    "factory, depth_kw, num_tokens",
    [
        (tokenpose_s_v1, {"depth": 1}, 64),  # (32/4) * (24/3)
        (tokenpose_s_v2, {"depth": 1}, 192),  # (32/2) * (24/2)
        (tokenpose_b, {"depth": 1}, 64),
        (tokenpose_l_d24, {"depth": 1}, 64),
        (distilpose_teacher, {"depth": 1}, 64),
    ],
)
def test_forward_contract_small(factory, depth_kw, num_tokens):
    torch.manual_seed(0)
    model = factory(num_keypoints=5, input_size=SMALL, **depth_kw).eval()
    assert model.head_class is HeatmapHead and model.num_keypoints == 5
    assert model.input_size == SMALL and model.heatmap_size == (24, 32)
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        hm = model(x)
        features = model.forward_features(x)
        hm2 = model.forward_head(features)
        layers = model.forward_intermediates(x)
    kpt, vis = features.keypoint_tokens, features.visual_tokens
    assert hm.shape == (2, 5, 32, 24)
    assert kpt.shape == (2, 5, 192) and vis.shape == (2, num_tokens, 192)
    assert torch.equal(hm, hm2) and torch.isfinite(hm).all()
    # one output per block of every stack; the last one is the final token sequence
    assert len(layers) == model.transformer.num_stacks * model.transformer.depth
    assert torch.equal(layers[-1], torch.cat([kpt, vis], dim=1))


def test_wrong_input_size_is_a_clear_error():
    model = tokenpose_s_v1(input_size=SMALL, depth=1)
    with pytest.raises(ValueError, match=r"\(B, 3, 128, 96\)"):
        model(torch.randn(1, 3, 96, 128))
    with pytest.raises(ValueError, match="divisible"):
        tokenpose_s_v1(input_size=(98, 128))


def test_tokenpose_l_fuses_three_stacks():
    model = tokenpose_l_d24(input_size=SMALL, depth=1)
    assert model.transformer.num_stacks == 3 and model.head.dim == 576 and not model.head.two_layer
    assert model.transformer.stacks[0].layers[0].attn.num_heads == 12


def test_attention_scales_follow_official_code():
    s = tokenpose_s_v1(input_size=SMALL, depth=1)
    s2 = tokenpose_s_v2(input_size=SMALL, depth=1)
    b = tokenpose_b(input_size=SMALL, depth=1)
    assert s.transformer.stacks[0].layers[0].attn.scale == pytest.approx(192**-0.5)
    assert s2.transformer.stacks[0].layers[0].attn.scale == pytest.approx(192**-0.5)
    assert b.transformer.stacks[0].layers[0].attn.scale == pytest.approx(24**-0.5)


# name -> (published params, which count it matches: all params or trainable only)
PUBLISHED_PARAMS = {
    "tokenpose_s_v1": (6.67e6, "params"),  # TokenPose Table 7 (incl. the frozen sine embedding)
    "tokenpose_s_v2": (6.2e6, "params_trainable"),  # TokenPose Table 6 (6.37M incl. the 147k frozen values)
    "tokenpose_b": (13.5e6, "params"),
    "tokenpose_l_d24": (27.5e6, "params"),
    "distilpose_teacher": (69.41e6, "params_trainable"),  # DistilPose Table 3
    "tokenpose_t": (5.8e6, "params_trainable"),  # TokenPose paper 5.8M (yaml comment: 580.3w)
}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMS))
def test_full_size_param_counts_match_published(name):
    published, key = PUBLISHED_PARAMS[name]
    counts = param_breakdown(MODELS[name]())
    assert abs(counts[key] - published) / published < 0.02, counts
    assert counts["params_frozen"] == {"tokenpose_s_v2": 768 * 192}.get(name, 256 * 192)


def test_model_index():
    for name in ["tokenpose_s_v1", "tokenpose_s_v2", "tokenpose_b", "tokenpose_l_d24", "distilpose_teacher",
                 "hrnet_w32", "hrnet_w48", "simplebaseline_res50"]:
        assert name in MODELS
    model = create_model("tokenpose_s_v1", input_size=SMALL, depth=2)
    assert len(model.transformer.stacks[0].layers) == 2
    with pytest.raises(SlimposeInputError, match="tokenpose_s_v1"):
        create_model("tokenpose_xl")


def test_tokenpose_t_full_size():
    """TokenPose-T (leeyegy/TokenPose pose_tokenpose_t.py): no CNN, 16x12 patches of the 256x192 crop, 12 layers
    of dim 192 with 16 heads (scale (192 / 16) ** -0.5), MLP 576, head LN(192)-Linear(192,384)-LN(384)-Linear(384,
    3072) -> 64x48 heatmaps; 5,865,600 parameters of which 49,152 are the frozen sine embedding."""
    model = MODELS["tokenpose_t"]().eval()
    counts = param_breakdown(model)
    assert (counts["params"], counts["params_trainable"], counts["params_frozen"]) == (5_865_600, 5_816_448, 49_152)
    assert model.heatmap_size == (48, 64) and model.transformer.feature_size == (192, 256)
    assert model.transformer.num_patches == 256 and model.transformer.patch_embed.weight.shape == (192, 576)
    attn = model.transformer.stacks[0].layers[0].attn
    assert attn.num_heads == 16 and attn.scale == pytest.approx(12 ** -0.5)
    assert len(model.transformer.stacks[0].layers) == 12
    assert model.transformer.stacks[0].layers[0].mlp.fc1.weight.shape == (576, 192)
    assert [tuple(m.weight.shape) for m in model.head.mlp] == [(192,), (384, 192), (384,), (3072, 384)]
    assert not any(k.startswith("backbone.") for k in model.state_dict())  # IdentityNet: no tensors
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert model(x).shape == (1, 17, 64, 48)
    assert model.backbone(x) is x


def test_tokenpose_t_small_and_heatmap_size():
    model = tokenpose_t(num_keypoints=5, input_size=(48, 64), depth=1, dim=32, num_heads=2).eval()
    assert model.heatmap_size == (12, 16) and model.transformer.num_patches == 16
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 48)).shape == (2, 5, 16, 12)
    other = tokenpose_t(input_size=(48, 64), depth=1, dim=32, num_heads=2, heatmap_size=(24, 32))
    assert other.head.mlp[-1].out_features == 24 * 32
    with pytest.raises(ValueError, match="divisible"):
        tokenpose_t(input_size=(50, 64), depth=1)
