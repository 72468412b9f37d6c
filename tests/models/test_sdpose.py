import pytest
import torch

from slimpose.engine.complexity import count_flops, count_params
from slimpose.models.distilpose import distilpose_s
from slimpose.models import MODELS
from slimpose.models.sdpose import sdpose_b, sdpose_reg, sdpose_s_v1, sdpose_s_v2, sdpose_t
from slimpose.models.stemnet import StemNet
from slimpose.models.tokenpose import tokenpose_s_v1

torch.set_num_threads(1)
SMALL = dict(input_size=(48, 64), dim=32, depth=2, num_heads=4, stem_blocks=1)


def _plain():
    kw = {k: v for k, v in SMALL.items() if k != "stem_blocks"}
    return tokenpose_s_v1(backbone=StemNet(num_blocks=1), scale_with_head=True, **kw).eval()


def _images(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, 64, 48, generator=g)


def _small(num_cycles=2, **kw):
    torch.manual_seed(0)
    return sdpose_s_v1(num_cycles=num_cycles, **SMALL, **kw).eval()


def test_single_pass_equals_first_cycle_exactly():
    model = _small(num_cycles=3)
    x = _images()
    with torch.no_grad():
        cycles = model.forward_cycles(x)
        single = model(x)
        features = model.forward_features(x)
        kpt, vis = features.keypoint_tokens, features.visual_tokens
    assert len(cycles) == 3
    assert torch.equal(single, cycles[0][0])
    assert torch.equal(kpt, cycles[0][1]) and torch.equal(vis, cycles[0][2])
    # later cycles really differ (the loop feeds cycle i's tokens into cycle i+1)
    assert not torch.allclose(cycles[0][0], cycles[1][0])
    # read_cycle selects a later cycle
    model.read_cycle = 2
    with torch.no_grad():
        assert torch.equal(model(x), cycles[2][0])
    with torch.no_grad():
        assert len(model.forward_cycles(x, num_cycles=1)) == 1


def test_inference_path_runs_one_pass():
    model = _small(num_cycles=3)
    f0 = count_flops(model, input_size=(48, 64))
    model.read_cycle = 1
    f1 = count_flops(model, input_size=(48, 64))
    model.read_cycle = 2
    f2 = count_flops(model, input_size=(48, 64))
    plain = _plain()
    fp = count_flops(plain, input_size=(48, 64))
    assert f0["gflops"] == pytest.approx(fp["gflops"], rel=1e-9)
    assert f0["conv"] == pytest.approx(f2["conv"], rel=1e-9)
    # each further cycle read costs one more transformer pass
    per_cycle = f1["linear"] - f0["linear"]
    assert per_cycle > 0
    assert f2["linear"] - f0["linear"] == pytest.approx(2 * per_cycle, rel=1e-9)


def test_checkpoint_loads_into_plain_tokenpose():
    model = _small(num_cycles=2)
    plain = _plain()
    assert list(model.state_dict().keys()) == list(plain.state_dict().keys())
    plain.load_state_dict(model.state_dict(), strict=True)
    x = _images()
    with torch.no_grad():
        assert torch.equal(plain(x), model.forward_cycles(x)[0][0])


def test_gradients_reach_weights_through_every_cycle():
    x = _images()
    grads = {}
    for n in (1, 2):
        model = _small(num_cycles=n).train()
        out = model.forward_cycles(x)[-1][0]  # loss on the last cycle only
        out.pow(2).mean().backward()
        g = model.transformer.patch_embed.weight.grad
        assert g is not None and g.abs().sum() > 0
        assert model.transformer.keypoint_token.grad.abs().sum() > 0
        assert model.backbone.conv1.weight.grad.abs().sum() > 0
        grads[n] = g.clone()
    assert not torch.allclose(grads[1], grads[2])


def test_position_embedding_between_cycles():
    x = _images()
    official = _small(num_cycles=2)
    readd = _small(num_cycles=2, readd_pos_between_cycles=True)
    readd.load_state_dict(official.state_dict())
    with torch.no_grad():
        a, b = official.forward_cycles(x), readd.forward_cycles(x)
        assert torch.equal(a[0][0], b[0][0])
        assert not torch.allclose(a[1][0], b[1][0])
        # official: cycle 2 = transformer.run(cycle-1 tokens) with no re-add at its layer 0
        t = official.transformer
        tokens1 = t.run(t.embed(official.backbone(x)))
        assert torch.equal(t.run(tokens1).x, torch.cat((a[1][1], a[1][2]), dim=1))


def test_sdpose_reg_output_and_keys():
    torch.manual_seed(0)
    model = sdpose_reg(**SMALL).eval()
    x = _images()
    with torch.no_grad():
        out = model(x)
        cycles = model.forward_cycles(x)
    assert out.shape == (2, 17, 5) and len(cycles) == 2
    assert torch.equal(out, cycles[0][0])
    assert ((out[..., :2] > 0) & (out[..., :2] < 1)).all()
    assert torch.allclose(out[..., 2], 1 - out[..., 3:5].mean(-1))
    ref = distilpose_s(**SMALL)
    assert list(model.state_dict().keys()) == list(ref.state_dict().keys())


def test_bad_arguments():
    with pytest.raises(ValueError):
        sdpose_s_v1(num_cycles=2, read_cycle=2, **SMALL)
    with pytest.raises(ValueError):
        sdpose_s_v1(num_cycles=0, **SMALL)
    with pytest.raises(ValueError):
        sdpose_s_v1(fuse_stacks=True, **SMALL)
    with pytest.raises(ValueError):
        _small()(torch.randn(1, 3, 64, 64))


@pytest.mark.parametrize(
    "factory,params_m,trainable_only,cycles",
    [(sdpose_t, 4.4, False, 3), (sdpose_s_v1, 6.6, False, 2), (sdpose_s_v2, 6.2, True, 2),
     (sdpose_b, 13.2, False, 2), (sdpose_reg, 5.4, False, 2)],
)
def test_published_parameter_counts(factory, params_m, trainable_only, cycles):
    model = factory()
    assert model.num_cycles == cycles and model.read_cycle == 0
    n = count_params(model, trainable_only=trainable_only) / 1e6
    assert abs(n - params_m) / params_m < 0.02
    assert {"sdpose_t", "sdpose_s_v1", "sdpose_s_v2", "sdpose_b", "sdpose_reg"} <= set(MODELS)
