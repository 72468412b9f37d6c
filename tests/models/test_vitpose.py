"""ViTPose: published sizes, the official forward's folded class slot, both decoders, checkpoint layouts."""

from __future__ import annotations

import re

import pytest
import torch

from slimpose.convert import convert_state_dict
from slimpose.engine.complexity import count_flops, count_params
from slimpose.heads import HeatmapHead, default_head
from slimpose.models import create_model

torch.set_num_threads(1)
TINY = {"depth": 2, "dim": 64, "num_heads": 4}


def test_published_sizes_and_grid():
    b = create_model("vitpose_b")
    assert count_params(b.backbone) == 85_794_816  # published 86M (backbone)
    assert b.backbone.patch_embed.grid_size == (12, 16)  # 16x16 patches, padding 2, at 256x192
    assert tuple(b.backbone.pos_embed.shape) == (1, 193, 768)  # the official class slot is kept
    assert isinstance(default_head(b), HeatmapHead) and b.heatmap_size == (48, 64)
    gmacs = count_flops(b)["gflops"]
    assert gmacs == pytest.approx(17.843, abs=0.002)  # conv + linear MACs; published 17.1 GFLOPs (+4.3 %)
    sizes = {"vitpose_s": (384, 12, 21_663_744), "vitpose_l": (1024, 24, 303_296_512),
             "vitpose_h": (1280, 32, 630_912_000)}
    for name, (dim, depth, params) in sizes.items():
        with torch.device("meta"):  # sizes only: no memory, no initialisation work
            m = create_model(name)
        assert (m.backbone.out_channels, len(m.backbone.blocks)) == (dim, depth)
        assert count_params(m.backbone) == params, name
        assert m.backbone.blocks[0].norm1.eps == 1e-6 and m.backbone.blocks[0].attn.qkv.bias is not None


def test_the_class_slot_is_added_to_every_patch():
    torch.manual_seed(0)
    m = create_model("vitpose_s", **TINY, input_size=(64, 64)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        m.backbone.pos_embed[:, 0] = torch.randn(64)
        out = m(x)
        folded = m.backbone.pos_embed[:, 1:] + m.backbone.pos_embed[:, :1]
        m.backbone.pos_embed[:, 1:] = folded
        m.backbone.pos_embed[:, 0] = 0.0
        assert torch.allclose(m(x), out, atol=1e-5)


def test_decoders():
    classic = create_model("vitpose_s", **TINY)
    simple = create_model("vitpose_s", **TINY, decoder="simple")
    cs, ss = classic.state_dict(), simple.state_dict()
    assert tuple(cs["keypoint_head.deconv_layers.0.weight"].shape) == (64, 256, 4, 4)
    assert tuple(cs["keypoint_head.final_layer.weight"].shape) == (17, 256, 1, 1)
    assert tuple(ss["keypoint_head.final_layer.weight"].shape) == (17, 64, 3, 3)
    x = torch.randn(2, 3, 256, 192)
    assert classic.eval()(x).shape == simple.eval()(x).shape == (2, 17, 64, 48)
    with pytest.raises(ValueError, match="decoder"):
        create_model("vitpose_s", **TINY, decoder="fancy")


def _randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.1 + (1.0 if name.endswith("running_var") else 0.0))
    return model.eval()


# the test's own table of MMPose 1.x names (mmpretrain VisionTransformer + HeatmapHead)
MMPOSE1 = [(r"backbone\.patch_embed\.proj\.", "backbone.patch_embed.projection."),
           (r"backbone\.blocks\.(\d+)\.norm1\.", r"backbone.layers.\1.ln1."),
           (r"backbone\.blocks\.(\d+)\.norm2\.", r"backbone.layers.\1.ln2."),
           (r"backbone\.blocks\.(\d+)\.mlp\.fc1\.", r"backbone.layers.\1.ffn.layers.0.0."),
           (r"backbone\.blocks\.(\d+)\.mlp\.fc2\.", r"backbone.layers.\1.ffn.layers.1."),
           (r"backbone\.blocks\.(\d+)\.attn\.", r"backbone.layers.\1.attn."),
           (r"backbone\.last_norm\.", "backbone.ln1."), (r"keypoint_head\.", "head.")]


@pytest.mark.parametrize("decoder", ["classic", "simple"])
def test_official_and_mmpose1_layouts_predict_the_same(decoder):
    src = _randomize(create_model("vitpose_s", **TINY, decoder=decoder))
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        expected = src(x)
    official = {"module." + k if i % 2 else k: v for i, (k, v) in enumerate(src.state_dict().items())}
    assert "backbone.blocks.1.attn.qkv.bias" in {k.removeprefix("module.") for k in official}
    mm1 = {}
    for k, v in src.state_dict().items():
        for pat, repl in MMPOSE1:
            if re.match(pat, k):
                k = re.sub(pat, repl, k)
                break
        mm1[k] = v
    # mmpretrain has no class slot: the official forward's pos[:, 1:] + pos[:, :1] is what it holds
    pos = src.backbone.pos_embed.detach()
    mm1["backbone.pos_embed"] = pos[:, 1:] + pos[:, :1]
    assert "backbone.layers.0.ffn.layers.0.0.weight" in mm1 and "head.final_layer.weight" in mm1
    for layout in (official, mm1):
        target = create_model("vitpose_s", **TINY, decoder=decoder)
        state, report = convert_state_dict(layout, "vitpose", target)
        assert report.ok, report.format()
        target.load_state_dict(state)
        with torch.no_grad():
            assert torch.allclose(target.eval()(x), expected, atol=1e-5)


def test_unknown_keys_are_reported_not_dropped():
    src = create_model("vitpose_s", **TINY)
    sd = dict(src.state_dict())
    sd["backbone.blocks.0.mlp.experts.0.weight"] = torch.zeros(8, 256)  # a ViTPose++ expert
    _, report = convert_state_dict(sd, "vitpose", create_model("vitpose_s", **TINY))
    assert not report.ok and any("experts.0" in u for u in report.unexpected)


def test_layer_decay_groups_follow_the_official_constructor():
    from slimpose.config import TrainConfig, apply_overrides
    from slimpose.engine.builders import build_optimizer, layer_decay_groups
    from slimpose.engine.tasks import TopDownTask
    from slimpose.utils.io import SlimposeInputError

    model = create_model("vitpose_s", **TINY)  # depth 2: layers 0 (embeddings), 1, 2 (blocks), 3 (the rest)
    task = TopDownTask(model, default_head(model))
    names = {id(p): n for n, p in task.named_parameters()}
    groups = layer_decay_groups(task, lr=1.0, weight_decay=0.1, rate=0.5)
    where = {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}
    assert where["model.backbone.patch_embed.proj.weight"] == (0.125, 0.1)  # 0.5 ** (depth + 1)
    assert where["model.backbone.pos_embed"] == (0.125, 0.0)  # no weight decay for pos_embed
    assert where["model.backbone.blocks.0.attn.qkv.weight"] == (0.25, 0.1)
    assert where["model.backbone.blocks.1.mlp.fc1.bias"] == (0.5, 0.0)  # biases: no weight decay
    assert where["model.backbone.last_norm.weight"] == (1.0, 0.0)
    assert where["model.keypoint_head.final_layer.weight"] == (1.0, 0.1)
    assert len(where) == sum(1 for p in task.parameters() if p.requires_grad)
    cfg = apply_overrides(TrainConfig(), ["optim.name=adamw", "optim.lr=0.1", "optim.layer_decay=0.5"])
    opt = build_optimizer(cfg, task)
    assert sorted({g["lr"] for g in opt.param_groups}) == [0.0125, 0.025, 0.05, 0.1]
    other = create_model("tokenpose_s_v1", depth=1, dim=32, num_heads=2)
    with pytest.raises(SlimposeInputError, match="layer_decay"):
        build_optimizer(cfg, TopDownTask(other, default_head(other)))


def _to_hf(sd, dim):
    """The official names -> Hugging Face ``VitPoseForPoseEstimation`` (transformers' convert_vitpose_to_hf.py)."""
    out = {}
    for k, v in sd.items():
        k = (k.replace("patch_embed.proj", "embeddings.patch_embeddings.projection")
             .replace("pos_embed", "embeddings.position_embeddings").replace("blocks", "encoder.layer")
             .replace("attn.proj", "attention.output.dense").replace("attn", "attention.self")
             .replace("norm1", "layernorm_before").replace("norm2", "layernorm_after")
             .replace("last_norm", "layernorm").replace("keypoint_head", "head").replace("final_layer", "conv"))
        if "self.qkv" in k:
            for i, name in enumerate(("query", "key", "value")):
                out[k.replace("self.qkv", f"attention.{name}")] = v[i * dim:(i + 1) * dim]
            continue
        m = re.match(r"head\.deconv_layers\.(\d+)\.(.+)", k)
        if m:
            layer = int(m.group(1))
            k = f"head.deconv{layer // 3 + 1}.{m.group(2)}" if layer % 3 == 0 else f"head.batchnorm{layer // 3 + 1}.{m.group(2)}"
        out[k] = v
    return out


@pytest.mark.parametrize("decoder", ["classic", "simple"])
def test_hugging_face_layout_predicts_the_same(decoder, tmp_path):
    from safetensors.torch import save_file

    from slimpose.convert import convert_checkpoint

    src = _randomize(create_model("vitpose_s", **TINY, decoder=decoder), seed=3)
    hf = _to_hf(src.state_dict(), 64)
    assert "backbone.encoder.layer.0.attention.attention.query.weight" in hf and "head.conv.weight" in hf
    if decoder == "classic":
        assert {"head.deconv2.weight", "head.batchnorm1.running_var"} <= set(hf)
    path = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in hf.items() if not k.endswith("num_batches_tracked")}, path)
    report = convert_checkpoint(path, tmp_path / "out.pth", "vitpose", "vitpose_s", overrides={**TINY, "decoder": decoder})
    assert report.ok, report.format()
    import slimpose

    pm = slimpose.load(tmp_path / "out.pth")
    assert pm.udp  # the official ViTPose test settings travel with the converted file
    loaded = pm.model.eval()
    x = torch.randn(1, 3, 256, 192)
    with torch.no_grad():
        assert torch.allclose(loaded(x), src(x), atol=1e-5)
