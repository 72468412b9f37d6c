"""Official checkpoint layouts -> slimpose: each layout is built here from a slimpose model's random tensors
with an independent table of the official key names, converted back, and checked against a forward pass
computed directly from the official tensors."""

import json

import pytest
import torch
import torch.nn.functional as F

from slimpose.api import load
from slimpose.cli.main import main
from slimpose.convert import convert_checkpoint, convert_state_dict, read_official_state_dict
from slimpose.heads import RegressionHead
from slimpose.models import create_model
from slimpose.models.stemnet import StemNet
from slimpose.utils.io import SlimposeInputError

INPUT = (48, 64)
TINY = {"depth": 2, "dim": 32, "num_heads": 2}

# official sub-keys of one transformer layer (TokenPose Residual(PreNorm(...)) form, and PPT's attention form)
OFFICIAL_LAYER = {"norm1": "0.fn.norm", "attn.qkv": "0.fn.fn.to_qkv", "attn.proj": "0.fn.fn.to_out.0",
                  "norm2": "1.fn.norm", "mlp.fc1": "1.fn.fn.net.0", "mlp.fc2": "1.fn.fn.net.3"}
PPT_LAYER = {**OFFICIAL_LAYER, "norm1": "0.norm", "attn.qkv": "0.fn.to_qkv", "attn.proj": "0.fn.to_out.0"}


def randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                v = torch.randn(t.shape, generator=g) * 0.2
                t.copy_(v.abs() + 0.5 if name.endswith("running_var") else v)
    return model.eval()


def to_official(sd, backbone_prefix, token_prefix, stack_names=("transformer",), layer=OFFICIAL_LAYER):
    """slimpose state dict -> an official layout (the test's own inverse of the official tables)."""
    out = {}
    for key, value in sd.items():
        parts = key.split(".")
        if parts[0] == "backbone":
            out[backbone_prefix + ".".join(parts[1:])] = value
        elif key == "transformer.keypoint_token":
            out[token_prefix + "keypoint_token"] = value
        elif key == "transformer.pos_embed":
            out[token_prefix + "pos_embedding"] = value
        elif parts[:2] == ["transformer", "patch_embed"]:
            out[token_prefix + "patch_to_embedding." + parts[2]] = value
        elif parts[:2] == ["transformer", "stacks"]:
            stack, i, leaf = int(parts[2]), parts[4], parts[-1]
            sub = ".".join(parts[5:-1])
            out[f"{token_prefix}{stack_names[stack]}.layers.{i}.{layer[sub]}.{leaf}"] = value
        elif parts[:2] == ["head", "mlp"]:
            out[f"{token_prefix}mlp_head.{parts[2]}.{parts[3]}"] = value
        else:
            raise AssertionError(f"unmapped key {key}")
    return out


def reference_tokens(o, feats, prefix, depth, heads, scale, patch=(4, 3)):
    """Official-style forward from the raw official tensors ``o`` (explicit loops, no einops); ``patch`` (h, w)."""
    w = lambda k: o[prefix + k]  # noqa: E731
    b, c, fh, fw = feats.shape
    ph, pw = patch
    patches = []
    for r in range(fh // ph):
        for col in range(fw // pw):
            vec = [feats[:, :, r * ph + p1, col * pw + p2] for p1 in range(ph) for p2 in range(pw)]
            patches.append(torch.cat(vec, dim=1))  # (p1, p2, c) with c fastest
    x = torch.stack(patches, dim=1) @ w("patch_to_embedding.weight").T + w("patch_to_embedding.bias")
    k = w("keypoint_token").shape[1]
    pos = w("pos_embedding")
    x = torch.cat([w("keypoint_token").expand(b, -1, -1), x + pos], dim=1)
    d = x.shape[-1]
    for i in range(depth):
        L = f"transformer.layers.{i}."
        if i > 0:
            x = torch.cat([x[:, :k], x[:, k:] + pos], dim=1)
        h = F.layer_norm(x, (d,), w(L + "0.fn.norm.weight"), w(L + "0.fn.norm.bias"))
        q, kk, v = (h @ w(L + "0.fn.fn.to_qkv.weight").T).chunk(3, dim=-1)
        split = lambda t: t.reshape(b, -1, heads, d // heads).transpose(1, 2)  # noqa: E731
        q, kk, v = split(q), split(kk), split(v)
        attn = torch.softmax(q @ kk.transpose(-1, -2) * scale, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, -1, d)
        x = x + out @ w(L + "0.fn.fn.to_out.0.weight").T + w(L + "0.fn.fn.to_out.0.bias")
        h = F.layer_norm(x, (d,), w(L + "1.fn.norm.weight"), w(L + "1.fn.norm.bias"))
        h = F.gelu(h @ w(L + "1.fn.fn.net.0.weight").T + w(L + "1.fn.fn.net.0.bias"))
        x = x + h @ w(L + "1.fn.fn.net.3.weight").T + w(L + "1.fn.fn.net.3.bias")
    return x[:, :k]


def mlp_head(o, prefix, t, n_layers):
    for j in range(n_layers):
        wt, bs = o[f"{prefix}mlp_head.{j}.weight"], o[f"{prefix}mlp_head.{j}.bias"]
        t = F.layer_norm(t, (t.shape[-1],), wt, bs) if j % 2 == 0 else t @ wt.T + bs
    return t


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def test_tokenpose_s_trainer_checkpoint(tmp_path):
    ours = randomize(create_model("tokenpose_s_v1", input_size=INPUT, hidden_heatmap_dim=64, **TINY))
    o = to_official(ours.state_dict(), "features.", "features.")
    assert o["features.patch_to_embedding.weight"].shape == (32, 4 * 3 * 256)
    # TokenPose tools/train.py checkpoint.pth: DataParallel 'module.' keys + best_state_dict
    module_sd = {"module." + k: v for k, v in o.items()}
    wrapped = {"epoch": 3, "state_dict": module_sd, "best_state_dict": o, "perf": 0.1}
    torch.save(wrapped, tmp_path / "checkpoint.pth")
    overrides = {**TINY, "hidden_heatmap_dim": 64}
    report = convert_checkpoint(tmp_path / "checkpoint.pth", tmp_path / "s.pth", "tokenpose",
                                "tokenpose_s_v1", INPUT, overrides=overrides)
    assert report.ok and report.source_key == "state_dict" and report.converted == len(o)
    model = load(tmp_path / "s.pth").model
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        feats = model.backbone(x)
        # TokenPose-S scales attention by dim**-0.5
        tokens = reference_tokens(o, feats, "features.", depth=2, heads=2, scale=32 ** -0.5)
        ref = mlp_head(o, "features.", tokens, 4).reshape(2, 17, 16, 12)
        torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-4)
        for k, v in o.items():
            if k.startswith("features.conv1") or k.startswith("features.layer1.0.bn1"):
                torch.testing.assert_close(model.state_dict()["backbone." + k[len("features."):]], v)


def test_distilpose_student_mmcv_checkpoint_cli(tmp_path, capsys):
    ours = randomize(create_model("distilpose_s", input_size=INPUT, stem_blocks=1, **TINY), seed=3)
    o = to_official(ours.state_dict(), "backbone.", "keypoint_head.tokenhead.")
    torch.save({"meta": {"epoch": 300}, "state_dict": o}, tmp_path / "distilpose_s.pth")
    rc = main(["convert", str(tmp_path / "distilpose_s.pth"), str(tmp_path / "s.safetensors"),
               "--from", "distilpose", "--model", "distilpose_s", "--input-size", "48", "64",
               "--set", "stem_blocks=1", "--set", "depth=2",
               "--set", "dim=32", "--set", "num_heads=2", "--json"])
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    pm = load(tmp_path / "s.safetensors")
    assert isinstance(pm.head, RegressionHead) and pm.head.score_source == "confidence"
    assert pm.config.data.dataset == "coco" and pm.score_thr == 0.2 and pm.flip_test
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        p = "keypoint_head.tokenhead."
        tokens = reference_tokens(o, pm.model.backbone(x), p, depth=2, heads=2, scale=16 ** -0.5)
        raw = mlp_head(o, p, tokens, 2)
        ref = torch.cat([raw[..., :2].sigmoid(), raw[..., 2:3], F.softplus(raw[..., 3:5])], dim=-1)
        torch.testing.assert_close(pm.model(x), ref, atol=1e-5, rtol=1e-4)




@pytest.mark.parametrize("variant", ["tokenpose_b", "tokenpose_l", "ppt", "ppt_s_pruned", "teacher", "sdpose"])
def test_other_layouts_roundtrip(variant):
    x = torch.randn(1, 3, 64, 48, generator=torch.Generator().manual_seed(4))

    def build():
        kw = dict(input_size=INPUT, backbone=StemNet(num_blocks=1), **TINY)
        if variant == "tokenpose_l":
            return create_model("tokenpose_l_d24", **{**kw, "depth": 1})
        if variant == "sdpose":
            sdpose = pytest.importorskip("slimpose.models.sdpose")
            return sdpose.sdpose_s_v1(**kw)
        if variant == "ppt_s_pruned":  # a PPT checkpoint into ppt_s_v1, pruning on (16 -> 8 tokens)
            return create_model("ppt_s_v1", **kw, pruning={"layers": [0], "keep_ratio": 0.5})
        return create_model("tokenpose_b", **kw)

    torch.manual_seed(0)
    src = randomize(build(), seed=5)
    sd = src.state_dict()
    if variant == "tokenpose_b":
        o, source = to_official(sd, "pre_feature.", "transformer."), "tokenpose"
        assert "transformer.transformer.layers.1.0.fn.fn.to_qkv.weight" in o
    elif variant == "tokenpose_l":
        names = ("transformer.transformer1", "transformer.transformer2", "transformer.transformer3")
        o, source = to_official(sd, "pre_feature.", "", names), "tokenpose"
        keep = ("pre_feature.", "transformer.")
        o = {(k if k.startswith(keep) else "transformer." + k): v for k, v in o.items()}
        assert "transformer.transformer3.layers.0.1.fn.fn.net.3.weight" in o
    elif variant in ("ppt", "ppt_s_pruned"):
        o, source = to_official(sd, "features.", "features.", layer=PPT_LAYER), "ppt"
        assert "features.transformer.layers.0.0.fn.to_qkv.weight" in o
    elif variant == "teacher":
        o, source = to_official(sd, "backbone.", "keypoint_head.tokenpose."), "distilpose"
    else:
        o = to_official(sd, "backbone.", "keypoint_head.tokenpose.", ("transformer_layer1",))
        source = "sdpose"
    torch.manual_seed(1)
    target = build().eval()
    state, report = convert_state_dict(o, source, target)
    assert report.ok, report.format()
    target.load_state_dict(state, strict=True)
    with torch.no_grad():
        torch.testing.assert_close(target(x), src(x))


@pytest.mark.parametrize("layout", ["leeyegy", "sdpose"])
def test_tokenpose_t_layouts(layout, tmp_path, capsys):
    """TokenPose-T: leeyegy/TokenPose ``pose_tokenpose_t.py`` (``transformer.*``: TokenPose_TB_base, no backbone)
    and SDPose's copy (``IdentityNet`` backbone without tensors + ``keypoint_head.tokenpose.*``), converted by the
    CLI, equal the official forward computed from the official tensors on the normalised image itself (16x12
    patches, channel fastest; 16 heads would be 12**-0.5 at full size, here dim 32 / 2 heads); each file carries
    its repository's test conventions."""
    kw = dict(input_size=INPUT, depth=2, dim=32, num_heads=2, hidden_heatmap_dim=64)
    ours = randomize(create_model("tokenpose_t", **kw), seed=8)
    prefix = "transformer." if layout == "leeyegy" else "keypoint_head.tokenpose."
    o = to_official(ours.state_dict(), "backbone.", prefix)
    assert o[prefix + "patch_to_embedding.weight"].shape == (32, 16 * 12 * 3)
    assert not any(k.startswith("backbone.") for k in o)
    obj = {"state_dict": o, "epoch": 1} if layout == "leeyegy" else {"meta": {}, "state_dict": o}
    torch.save(obj, tmp_path / "t.pth")
    source = "tokenpose" if layout == "leeyegy" else "sdpose"
    args = ["convert", str(tmp_path / "t.pth"), str(tmp_path / "out.pth"), "--from", source, "--model",
            "tokenpose_t", "--input-size", "48", "64", "--set", "depth=2", "--set", "dim=32", "--set",
            "num_heads=2", "--set", "hidden_heatmap_dim=64", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["ok"]
    pm = load(tmp_path / "out.pth")
    conv = pm.config.conventions
    if layout == "leeyegy":  # lib/core: flip_back without shift, DARK, get_max_preds zeros, DARK warp
        assert (conv.source, conv.geometry, conv.nonpositive) == ("tokenpose", "dark", "zero")
        assert not pm.config.shift_heatmap and pm.config.dark
    else:  # mmpose 0.29 test_cfg: post_process='unbiased', shift_heatmap=True
        assert (conv.source, conv.geometry, conv.nonpositive) == ("sdpose", "standard", "minus_one")
        assert pm.config.shift_heatmap and pm.config.dark
    x = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        tokens = reference_tokens(o, x, prefix, depth=2, heads=2, scale=16 ** -0.5, patch=(16, 12))
        ref = mlp_head(o, prefix, tokens, 4).reshape(2, 17, 16, 12)
        torch.testing.assert_close(pm.model(x), ref, atol=1e-5, rtol=1e-4)


def test_mmpose_and_deep_hrnet_layouts():
    src = randomize(create_model("hrnet_w32"), seed=6)
    sd = src.state_dict()
    deep = {"module." + (k[len("backbone."):] if k.startswith("backbone.") else k[len("keypoint_head."):]): v
            for k, v in sd.items()}
    assert "module.final_layer.weight" in deep and "module.stage4.0.fuse_layers.0.1.0.weight" in deep
    target = create_model("hrnet_w32")
    for layout in (sd, {k[len("module."):]: v for k, v in deep.items()}):
        state, report = convert_state_dict(layout, "mmpose", target)
        assert report.ok, report.format()
        assert all(torch.equal(state[k], v) for k, v in sd.items())


def test_official_simdr_hrnet_and_mmpose_simcc_layouts():
    """leeyegy/SimCC ``pose_hrnet.py`` (``conv1.*``, ``final_layer.*``, ``mlp_head_{x,y}.*`` at the top level)
    and MMPose 1.x (``backbone.*``, ``head.{final_layer,mlp_head_x,mlp_head_y}.*``) load into ``hrnet_w32_simcc``."""
    size = (64, 64)
    src = randomize(create_model("hrnet_w32_simcc", input_size=size), seed=7)
    sd = src.state_dict()
    official = {"module." + (k[len("backbone."):] if k.startswith("backbone.") else k[len("head."):]): v
                for k, v in sd.items()}
    assert {"module.mlp_head_x.weight", "module.final_layer.weight", "module.conv1.weight"} <= set(official)
    x = torch.randn(1, 3, 64, 64)
    expected = src(x)
    for layout in (official, sd):
        target = create_model("hrnet_w32_simcc", input_size=size)
        state, report = convert_state_dict(layout, "mmpose", target)
        assert report.ok, report.format()
        target.load_state_dict(state)
        got = target.eval()(x)
        assert all(torch.allclose(a, b) for a, b in zip(got, expected))


def test_mismatch_report_exit_2_and_allow_partial(tmp_path, capsys):
    ours = randomize(create_model("tokenpose_s_v1", input_size=INPUT, **TINY))
    o = to_official(ours.state_dict(), "features.", "features.")
    o["features.extra_thing"] = torch.zeros(3)
    del o["features.transformer.layers.1.1.fn.fn.net.3.bias"]
    del o["features.layer1.0.bn1.num_batches_tracked"]  # deterministic: filled, not an error
    torch.save(o, tmp_path / "raw.pth")
    args = ["convert", str(tmp_path / "raw.pth"), str(tmp_path / "out.pth"), "--from", "tokenpose", "--model",
            "tokenpose_s_v1", "--input-size", "48", "64", "--set", "depth=2", "--set", "dim=24",
            "--set", "num_heads=2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "features.extra_thing" in err and "shape mismatch" in err and "(32,) vs" not in err
    assert "transformer.stacks.0.layers.1.mlp.fc2.bias" in err and "(24,)" in err
    assert not (tmp_path / "out.pth").exists()
    args[args.index("dim=24")] = "dim=32"
    assert main(args) == 2  # still one unexpected and one missing key
    assert main(args + ["--allow-partial"]) == 0
    assert (tmp_path / "out.pth").is_file()
    assert "layer1.0.bn1.num_batches_tracked" in capsys.readouterr().err


def test_bad_files(tmp_path):
    with pytest.raises(SlimposeInputError, match="x.pth"):
        convert_checkpoint(tmp_path / "x.pth", tmp_path / "y.pth", "vitpose", "vitpose_s")
    vit = create_model("vitpose_s", depth=1, dim=32, num_heads=2)
    torch.save({"state_dict": vit.state_dict()}, tmp_path / "vit.pth")
    with pytest.raises(SlimposeInputError, match="does not fit 'tokenpose_s_v1'"):  # a ViTPose file, another model
        convert_checkpoint(tmp_path / "vit.pth", tmp_path / "y.pth", "vitpose", "tokenpose_s_v1")
    assert not (tmp_path / "y.pth").exists()
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SlimposeInputError, match="junk.pth"):
        read_official_state_dict(tmp_path / "junk.pth")
    torch.save({"epoch": 1, "optimizer": {"lr": 1.0}}, tmp_path / "nostate.pth")
    with pytest.raises(SlimposeInputError, match="no state dict"):
        read_official_state_dict(tmp_path / "nostate.pth")
