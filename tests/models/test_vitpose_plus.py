"""ViTPose++: hard routing of the MoE feed-forward experts, split == routed model, the official key names and
shapes, conversion of raw and split official checkpoints, parameter counts."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import slimpose
from slimpose.cli.main import main
from slimpose.convert import convert_checkpoint, convert_state_dict
from slimpose.engine.complexity import count_params
from slimpose.models import MODELS, create_model
from slimpose.models.vitpose import ViTPose
from slimpose.models.vitpose_plus import MoEMlp, ViTPosePlus
from slimpose.utils.io import SlimposeInputError

torch.set_num_threads(1)
INPUT = (48, 64)  # (w, h): a 3 x 4 patch grid (padding 2), 12 x 16 heatmaps
TINY = {"depth": 2, "dim": 64, "num_heads": 4, "part_features": 16}
TINY_PLAIN = {k: v for k, v in TINY.items() if k != "part_features"}
SET = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
# the official data sets (configs/.../vitPose+_*_coco+aic+mpii+ap10k+apt36k+wholebody_256x192_udp.py)
OFFICIAL = [("coco", 17), ("aic", 14), ("mpii", 16), ("ap10k", 17), ("apt36k", 17), ("wholebody", 133)]


def _tiny(**kw) -> ViTPosePlus:
    return create_model("vitpose_plus_s", input_size=INPUT, **TINY, **kw)


def _randomize(model, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                v = torch.randn(t.shape, generator=g) * 0.1
                t.copy_(v.abs() + 0.5 if name.endswith("running_var") else v)
    return model.eval()


@pytest.fixture(scope="module")
def moe():
    return _randomize(_tiny())


@pytest.fixture(scope="module")
def images():
    return torch.randn(4, 3, INPUT[1], INPUT[0], generator=torch.Generator().manual_seed(1))


def test_moe_mlp_is_shared_fc2_then_the_sample_expert():
    torch.manual_seed(0)
    mlp = MoEMlp(8, 32, 3, 4)
    x, idx = torch.randn(5, 7, 8), torch.tensor([0, 3, 1, 3, 2])
    out = mlp(x, idx)
    h = F.gelu(F.linear(x, mlp.fc1.weight, mlp.fc1.bias))
    for b, k in enumerate(idx.tolist()):
        e = mlp.experts[k]
        want = torch.cat([F.linear(h[b], mlp.fc2.weight, mlp.fc2.bias), F.linear(h[b], e.weight, e.bias)], -1)
        assert torch.allclose(out[b], want, atol=1e-6)
    with pytest.raises(ValueError, match="part_features"):
        MoEMlp(8, 32, 8, 4)


def test_routing_each_sample_uses_its_expert(moe, images):
    idx = torch.tensor([0, 3, 3, 5])
    with torch.no_grad():
        feats = moe.forward_features(images, idx)
        for b, k in enumerate(idx.tolist()):  # alone, routed to its data set: the same features
            assert torch.allclose(feats[b:b + 1], moe.forward_features(images[b:b + 1], k), atol=1e-6)
        assert not torch.allclose(feats[1:2], moe.forward_features(images[1:2], 0), atol=1e-4)
        # changing expert 3 changes the data-set-3 samples only
        other = copy.deepcopy(moe)
        for block in other.backbone.blocks:
            block.mlp.experts[3].weight.add_(0.5)
        changed = other.forward_features(images, idx)
        same = (changed - feats).flatten(1).abs().amax(1)
        assert same[0] == 0 and same[3] == 0 and same[1] > 1e-3 and same[2] > 1e-3


def test_forward_contract(moe, images):
    assert moe.dataset_index == 0 and moe.num_keypoints == 17 and moe.heatmap_size == (12, 16)
    assert moe.datasets == tuple(OFFICIAL) and len(moe.associate_keypoint_heads) == 5
    with torch.no_grad():
        all_heads = moe.forward_all(images, 0)
        assert [o.shape[1] for o in all_heads] == [k for _, k in OFFICIAL]
        assert torch.equal(moe(images), all_heads[0])
        assert torch.equal(moe(images), moe.forward_head(moe.forward_features(images)))
        mpii = moe(images, "mpii")
        assert mpii.shape == (4, 16, 16, 12) and torch.equal(mpii, moe.forward_all(images, 2)[2])
        moe.dataset_index = "mpii"
        try:
            assert moe.num_keypoints == 16 and torch.equal(moe(images), mpii)
        finally:
            moe.dataset_index = 0
    with pytest.raises(ValueError, match="data set"):
        moe(images, 6)
    with pytest.raises(TypeError, match="forward_all"):
        moe(images, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="dataset_index"):
        moe.forward_all(images, torch.tensor([0, 1, 2, 6]))
    # factory: num_keypoints checks the routed data set; datasets= changes heads and experts
    assert create_model("vitpose_plus_s", num_keypoints=16, dataset_index=2, **TINY).num_keypoints == 16
    with pytest.raises(ValueError, match="dataset_index"):
        create_model("vitpose_plus_s", num_keypoints=16, **TINY)
    two = create_model("vitpose_plus_s", datasets=(("a", 5), ("b", 7)), **TINY)
    assert len(two.backbone.blocks[0].mlp.experts) == 2 and two.associate_keypoint_heads[0].num_keypoints == 7
    assert set(MODELS) >= {"vitpose_plus_s", "vitpose_plus_b", "vitpose_plus_l", "vitpose_plus_h"}


def test_split_equals_the_routed_moe_model(moe, images):
    with torch.no_grad():
        for k, (name, n) in enumerate(OFFICIAL):
            plain = moe.split(name if k % 2 else k)
            assert type(plain) is ViTPose and plain.num_keypoints == n and not plain.training
            sd = plain.state_dict()
            assert not any("experts" in key or "associate" in key for key in sd)
            assert tuple(sd["backbone.blocks.1.mlp.fc2.weight"].shape) == (64, 256)
            fc2 = sd["backbone.blocks.1.mlp.fc2.weight"]
            assert torch.equal(fc2[48:], moe.backbone.blocks[1].mlp.experts[k].weight)
            assert (plain(images) - moe(images, k)).abs().max() <= 1e-6, name


def _official_block(c: int, p: int, experts: int) -> dict[str, tuple[int, ...]]:
    """One block of the official ViTMoE (``vit_moe.py``): key -> shape (the test's own table)."""
    out = {"norm1.weight": (c,), "norm1.bias": (c,), "attn.qkv.weight": (3 * c, c), "attn.qkv.bias": (3 * c,),
           "attn.proj.weight": (c, c), "attn.proj.bias": (c,), "norm2.weight": (c,), "norm2.bias": (c,),
           "mlp.fc1.weight": (4 * c, c), "mlp.fc1.bias": (4 * c,), "mlp.fc2.weight": (c - p, 4 * c),
           "mlp.fc2.bias": (c - p,)}
    for k in range(experts):
        out.update({f"mlp.experts.{k}.weight": (p, 4 * c), f"mlp.experts.{k}.bias": (p,)})
    return out


def _official_head(c: int, k: int) -> dict[str, tuple[int, ...]]:
    """mmpose 0.x ``TopdownHeatmapSimpleHead``, two 4x4 deconvolutions of 256 (BN buffers included)."""
    out = {"deconv_layers.0.weight": (c, 256, 4, 4), "deconv_layers.3.weight": (256, 256, 4, 4),
           "final_layer.weight": (k, 256, 1, 1), "final_layer.bias": (k,)}
    for i in (1, 4):
        out.update({f"deconv_layers.{i}.{n}": (256,) for n in ("weight", "bias", "running_mean", "running_var")})
        out[f"deconv_layers.{i}.num_batches_tracked"] = ()
    return out


def _official_raw(c: int, depth: int, p: int, grid: int) -> dict[str, tuple[int, ...]]:
    """The raw ViTPose++ checkpoint's ``state_dict``: key -> shape."""
    out = {"backbone.patch_embed.proj.weight": (c, 3, 16, 16), "backbone.patch_embed.proj.bias": (c,),
           "backbone.pos_embed": (1, grid + 1, c), "backbone.last_norm.weight": (c,), "backbone.last_norm.bias": (c,)}
    for i in range(depth):
        out.update({f"backbone.blocks.{i}.{k}": s for k, s in _official_block(c, p, 6).items()})
    out.update({f"keypoint_head.{k}": s for k, s in _official_head(c, 17).items()})
    for j, (_, n) in enumerate(OFFICIAL[1:]):
        out.update({f"associate_keypoint_heads.{j}.{k}": s for k, s in _official_head(c, n).items()})
    return out


def test_state_dict_names_and_shapes_are_the_official_ones():
    with torch.device("meta"):
        b = create_model("vitpose_plus_b")
    sd = {k: tuple(v.shape) for k, v in b.state_dict().items()}
    assert sd == _official_raw(768, 12, 192, 192)
    block = {k[len("backbone.blocks.0."):] for k in sd if k.startswith("backbone.blocks.0.")}
    assert block == set(_official_block(768, 192, 6))


def _write_raw(model, path, safetensors=False):
    """The model's tensors under the official raw layout's names (asserted equal), as mmcv / safetensors."""
    c, depth, p = model.backbone.out_channels, len(model.backbone.blocks), model.backbone.part_features
    table = _official_raw(c, depth, p, model.backbone.patch_embed.num_patches)
    sd = model.state_dict()
    assert {k: tuple(v.shape) for k, v in sd.items()} == table
    official = {k: sd[k].clone() for k in table}
    if safetensors:
        from safetensors.torch import save_file

        save_file({k: v for k, v in official.items() if not k.endswith("num_batches_tracked")}, path)
    else:
        torch.save({"meta": {"epoch": 210}, "state_dict": {"module." + k: v for k, v in official.items()}}, path)
    return official


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_raw_official_checkpoint_loads_strictly_and_predicts_the_same(moe, images, tmp_path, fmt):
    src = tmp_path / f"vitpose+_small.{fmt}"
    _write_raw(moe, src, safetensors=fmt == "safetensors")
    report = convert_checkpoint(src, tmp_path / "out.pth", "vitpose", "vitpose_plus_s", INPUT, overrides=TINY)
    assert report.ok and not report.ignored and not report.missing, report.format()
    loaded = slimpose.load(tmp_path / "out.pth")
    with torch.no_grad():
        got = loaded.model.eval().forward_all(images, torch.tensor([0, 1, 4, 5]))
        want = moe.forward_all(images, torch.tensor([0, 1, 4, 5]))
    assert all(torch.equal(a, b) for a, b in zip(got, want))
    img = np.full((100, 80, 3), 128, np.uint8)
    res = loaded.predict(img, [[10, 10, 50, 80, 0.9]])  # the ordinary pipeline, data set 0 (COCO)
    assert res.keypoints.shape == (1, 17, 2)
    # the same file split into a plain ViTPose of COCO predicts the same through the pipeline
    assert main(["convert", str(src), str(tmp_path / "coco.pth"), "--from", "vitpose", "--model", "vitpose_s",
                 "--input-size", "48", "64", "--dataset", "coco", *SET[:-2]]) == 0
    plain = slimpose.load(tmp_path / "coco.pth")
    assert type(plain.model) is ViTPose
    assert np.allclose(plain.predict(img, [[10, 10, 50, 80, 0.9]]).keypoints, res.keypoints, atol=1e-4)


def test_dataset_option_splits_a_raw_checkpoint(moe, images, tmp_path, capsys):
    src = tmp_path / "raw.pth"
    _write_raw(moe, src)
    args = ["convert", str(src), str(tmp_path / "mpii.pth"), "--from", "vitpose", "--model", "vitpose_s",
            "--input-size", "48", "64", "--dataset", "mpii", *SET[:-2], "--json"]
    assert main(args) == 0
    out = capsys.readouterr().out
    report = json.loads(out.splitlines()[0])
    assert report["ok"] and any("experts.0" in s and "--dataset 2" in s for s in report["ignored"])
    assert any(s.startswith("associate_keypoint_heads.0.") for s in report["ignored"])
    loaded = slimpose.load(tmp_path / "mpii.pth")
    assert loaded.num_keypoints == 16
    with torch.no_grad():
        assert (loaded.model.eval()(images) - moe(images, 2)).abs().max() <= 1e-6
    # vitpose_plus keeps every data set: route it with dataset_index (the keypoint count follows)
    rep = convert_checkpoint(src, tmp_path / "plus.pth", "vitpose", "vitpose_plus_s", INPUT,
                             overrides={**TINY, "dataset_index": 1})
    assert rep.ok and slimpose.load(tmp_path / "plus.pth").num_keypoints == 14
    with pytest.raises(SlimposeInputError, match="plain ViTPose"):
        convert_checkpoint(src, tmp_path / "x.pth", "vitpose", "vitpose_plus_s", INPUT, overrides=TINY, dataset=1)
    with pytest.raises(SlimposeInputError, match="6 experts"):
        convert_checkpoint(src, tmp_path / "x.pth", "vitpose", "vitpose_s", INPUT, overrides=TINY_PLAIN, dataset=6)
    headless = {k: v for k, v in torch.load(src)["state_dict"].items() if "associate_keypoint_heads.0." not in k}
    torch.save(headless, tmp_path / "headless.pth")  # e.g. a file with the COCO head only
    with pytest.raises(SlimposeInputError, match="no head for data set 1"):
        convert_checkpoint(tmp_path / "headless.pth", tmp_path / "x.pth", "vitpose", "vitpose_s", INPUT,
                           overrides=TINY_PLAIN, dataset="aic")
    # a raw file into a plain model without --dataset: fails, and says what to do
    with pytest.raises(SlimposeInputError, match="--dataset K") as err:
        convert_checkpoint(src, tmp_path / "x.pth", "vitpose", "vitpose_s", INPUT, overrides=TINY_PLAIN)
    assert any("mlp.fc2.weight" in m[0] for m in err.value.report.mismatched)


def _model_split(raw: dict[str, torch.Tensor], k: int, clean: bool) -> dict[str, torch.Tensor]:
    """The official ``tools/model_split.py`` for data set ``k`` (the test's own version): fc2 rows then expert
    k; for k > 0 ``associate_keypoint_heads.{k-1}`` copied over ``keypoint_head``; ``clean`` (the later
    script, data sets k > 0 only) drops the associate heads and experts, else everything is left in."""
    out = dict(raw)
    for key, value in raw.items():
        if ".mlp.fc2." in key:
            out[key] = torch.cat([value, raw[key.replace("fc2.", f"experts.{k}.")]], dim=0)
    if k > 0:
        for key in [key for key in raw if key.startswith(f"associate_keypoint_heads.{k - 1}.")]:
            out[key.replace(f"associate_keypoint_heads.{k - 1}", "keypoint_head")] = raw[key]
        if clean:
            out = {key: v for key, v in out.items() if "expert" not in key and not key.startswith("associate")}
    return out


@pytest.mark.parametrize("k,clean", [(0, True), (1, False), (5, True)])
def test_official_split_files_load_into_plain_vitpose(moe, images, k, clean):
    raw = {key: v.clone() for key, v in moe.state_dict().items()}
    split = _model_split(raw, k, clean)
    target = create_model("vitpose_s", num_keypoints=OFFICIAL[k][1], input_size=INPUT, **TINY_PLAIN)
    state, report = convert_state_dict(split, "vitpose", target)
    assert report.ok, report.format()
    leftovers = [key for key in split if "experts" in key or key.startswith("associate")]
    assert sorted(s.split(" ")[0] for s in report.ignored) == sorted(leftovers)  # reported, not dropped silently
    assert bool(leftovers) == (k == 0 or not clean)
    assert all(f"data set {k}" in s for s in report.ignored)
    target.load_state_dict(state)
    with torch.no_grad():
        assert (target.eval()(images) - moe(images, k)).abs().max() <= 1e-6
    # experts that fc2 does not end with are not a split file: they stay unexpected
    bad = dict(split) if leftovers else {**split, "backbone.blocks.0.mlp.experts.0.weight": torch.zeros(16, 256)}
    for key in [key for key in bad if ".mlp.experts." in key and key.endswith(".weight")]:
        bad[key] = bad[key] + 1.0
    _, report = convert_state_dict(bad, "vitpose", target)
    assert not report.ok and any("experts" in u for u in report.unexpected) and not report.ignored


def _analytic(c: int, depth: int, p: int, heads=tuple(k for _, k in OFFICIAL), grid: int = 192) -> tuple[int, int]:
    """(backbone, total) parameter count of ViTPose++ from the layer shapes."""
    block = 4 * c + (3 * c * c + 3 * c) + (c * c + c) + (4 * c * c + 4 * c) + (4 * c * (c - p) + c - p)
    block += 6 * (4 * c * p + p)
    backbone = (3 * 256 * c + c) + (grid + 1) * c + depth * block + 2 * c
    head = lambda k: c * 256 * 16 + 512 + 256 * 256 * 16 + 512 + 256 * k + k  # noqa: E731
    return backbone, backbone + sum(head(k) for k in heads)


def test_parameter_counts():
    table = {"vitpose_plus_s": ((384, 12, 192), 39_369_984, 55_159_766, 24_290_577),
             "vitpose_plus_b": ((768, 12, 192), 121_195_776, 146_422_742, 89_994_513),
             "vitpose_plus_l": ((1024, 24, 256), 429_156_352, 460_674_774, 308_544_785),
             "vitpose_plus_h": ((1280, 32, 320), 893_107_200, 930_917_078, 637_208_849)}
    for name, (shape, backbone, total, plain) in table.items():
        with torch.device("meta"):  # sizes only
            m = create_model(name)
            v = create_model(name.replace("_plus", ""))
        assert (count_params(m.backbone), count_params(m)) == (backbone, total) == _analytic(*shape), name
        assert count_params(v) == plain  # what split() gives: a plain ViTPose of the same size
        assert m.backbone.blocks[0].drop_path.p == 0.0
        assert m.backbone.blocks[-1].drop_path.p == v.backbone.blocks[-1].drop_path.p
