"""``slimpose convert --from hot|mixste`` and ``slimpose benchmark <lifter>``.

The official files are built here from a small slimpose lifter's own state dict (its keys are the official
ones): HoT's raw ``model.state_dict()`` and MixSTE ``run.py``'s ``{'epoch', 'lr', 'random_state' (a pickled
numpy RandomState), 'optimizer', 'model_pos' (DataParallel 'module.' keys)}``. They are converted through the
CLI, read back with ``create_lifter`` + ``load_state_dict(strict=True)`` and must give the source model's
outputs exactly. The full-size models are built only on the meta device.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
import torch

from slimpose.cli.main import main
from slimpose.engine.complexity import count_flops, count_params
from slimpose.lifting.convert import convert_lifting_state_dict, infer_lifter_overrides
from slimpose.lifting.models import create_lifter

T, J = 27, 17
SMALL = {
    "mixste": dict(num_frames=T, dim=32, depth=2),
    "hot_mixste": dict(num_frames=T, dim=32, depth=3, num_tokens=9, layer_index=1),
    "tpc_mixste": dict(num_frames=T, dim=32, depth=2, num_tokens=9, layer_index=1),
    "ktpformer": dict(num_frames=T, dim=32, depth=2),
}
# what the weights do not show (num_frames, dim, depth and HoT's num_tokens are read from the shapes)
NOT_IN_WEIGHTS = {"mixste": [], "hot_mixste": ["--set", "layer_index=1"],
                  "tpc_mixste": ["--set", "num_tokens=9", "--set", "layer_index=1"], "ktpformer": []}


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def small(name: str, seed: int = 0) -> torch.nn.Module:
    """A small lifter with every tensor random (the official zero-initialised embeddings / queries too)."""
    torch.manual_seed(seed)
    model = create_lifter(name, **SMALL[name])
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval()


def outputs(model: torch.nn.Module) -> torch.Tensor:
    x = torch.rand(2, T, J, 2, generator=torch.Generator().manual_seed(7)) * 2 - 1
    torch.manual_seed(3)  # TPC's tie-breaking noise comes from the global RNG
    with torch.no_grad():
        return model(x)


def mixste_run_py(model: torch.nn.Module) -> dict:
    """A checkpoint as MixSTE's run.py saves it (AdamW after one step, the generator's RandomState)."""
    opt = torch.optim.AdamW(model.parameters(), lr=4e-5, weight_decay=0.1)
    torch.manual_seed(0)
    model.train()
    model(torch.rand(1, T, J, 2)).square().mean().backward()
    opt.step()
    model.eval()
    rng = np.random.RandomState(1234)
    rng.permutation(10)
    return {"epoch": 160, "lr": 4e-5 * 0.99 ** 160, "random_state": rng, "optimizer": opt.state_dict(),
            "model_pos": {"module." + k: v for k, v in model.state_dict().items()}}


def read_back(path) -> tuple[dict, torch.nn.Module]:
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    model = create_lifter(ckpt["model_name"], **ckpt["config"]["model"]["overrides"])
    model.load_state_dict(ckpt["model"], strict=True)
    return ckpt, model.eval()


@pytest.mark.parametrize("source,name", [("mixste", "mixste"), ("hot", "hot_mixste"), ("hot", "tpc_mixste"),
                                         ("hot", "mixste"), ("ktpformer", "ktpformer")])
def test_official_layouts_convert_and_give_the_same_outputs(tmp_path, capsys, source, name):
    src = small(name)
    if source in ("mixste", "ktpformer"):  # run_ktpformer.py saves MixSTE's layout
        official = mixste_run_py(src)
        torch.save(official, tmp_path / "best_epoch.bin")
        with pytest.raises(Exception):  # the pickled RandomState: plain weights_only loading refuses the file
            torch.load(tmp_path / "best_epoch.bin", weights_only=True)
        path = tmp_path / "best_epoch.bin"
    else:
        torch.save(src.state_dict(), tmp_path / f"{name}_160_4010.pth")  # HoT's save_model: raw, no prefix
        path = tmp_path / f"{name}_160_4010.pth"
    expected = outputs(src)
    rc = main(["convert", str(path), str(tmp_path / "out.pth"), "--from", source, "--model", name,
               *NOT_IN_WEIGHTS[name], "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["converted"] == len(src.state_dict())
    assert set(report["inferred"]) >= {"num_frames", "num_joints", "dim", "depth"}
    if source in ("mixste", "ktpformer"):
        assert report["source_key"] == "model_pos"
        assert [d.split(" ")[0] for d in report["dropped"]] == ["epoch", "lr", "random_state", "optimizer"]
        assert "epoch (epochs trained: 160)" in report["dropped"]
    else:
        assert report["dropped"] == [] and report["source_key"] == ""
    ckpt, model = read_back(tmp_path / "out.pth")
    assert ckpt["model_name"] == name and ckpt["config"]["family"] == "lifting"
    assert ckpt["config"]["model"]["overrides"] == {**SMALL[name], "num_joints": J}
    assert ckpt["converted_from"]["source"] == source
    assert torch.equal(outputs(model), expected)


def test_safetensors_output_and_text_report(tmp_path, capsys):
    from safetensors import safe_open

    src = small("hot_mixste", seed=4)
    torch.save(src.state_dict(), tmp_path / "hot.pth")
    assert main(["convert", str(tmp_path / "hot.pth"), str(tmp_path / "hot.safetensors"), "--from", "hot",
                 "--model", "hot_mixste", "--set", "layer_index=1"]) == 0
    err = capsys.readouterr().err
    assert "converted" in err and "built hot_mixste with" in err and "num_tokens=9" in err
    with safe_open(str(tmp_path / "hot.safetensors"), "pt") as f:
        meta = f.metadata()
        state = {k: f.get_tensor(k) for k in f.keys()}
    config = json.loads(meta["config"])
    assert meta["model_name"] == "hot_mixste" and config["family"] == "lifting"
    model = create_lifter("hot_mixste", **config["model"]["overrides"])
    model.load_state_dict(state, strict=True)
    assert torch.equal(outputs(model.eval()), outputs(src))


def _numpy1_random_state(rng: np.random.RandomState):
    """An object pickled as numpy 1.17-1.2x pickles a RandomState: ``__randomstate_ctor('MT19937')`` + state."""
    from numpy.random import _pickle as np_pickle

    ctor = getattr(np_pickle, "__randomstate_ctor")

    class Old:
        def __reduce__(self):
            state = rng.get_state(legacy=False)
            return ctor, (state["bit_generator"],), state

    return Old()


def test_mixste_file_written_by_numpy_1(tmp_path, capsys):
    """The released MixSTE files were written with numpy 1.x (``numpy.core.multiarray`` names): MixSTE
    weights into TPC-MixSTE (the same parameters)."""
    src = small("tpc_mixste", seed=5)
    official = mixste_run_py(src)
    official["random_state"] = _numpy1_random_state(official["random_state"])
    buf = io.BytesIO()
    torch.save(official, buf)
    with zipfile.ZipFile(io.BytesIO(buf.getvalue())) as zin:
        items = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    path = tmp_path / "epoch_160.bin"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zout:
        for filename, blob in items:
            if filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in blob
                blob = blob.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            zout.writestr(filename, blob)
    assert "numpy.core.multiarray._reconstruct" in torch.serialization.get_unsafe_globals_in_checkpoint(path)
    assert main(["convert", str(path), str(tmp_path / "tpc.pth"), "--from", "mixste", "--model", "tpc_mixste",
                 *NOT_IN_WEIGHTS["tpc_mixste"]]) == 0
    assert "random_state (the training generator's numpy RandomState: numpy objects, not built)" in capsys.readouterr().err
    assert torch.equal(outputs(read_back(tmp_path / "tpc.pth")[1]), outputs(src))


def test_unexpected_and_missing_keys_fail_with_exit_2(tmp_path, capsys):
    src = small("mixste", seed=6)
    official = mixste_run_py(src)
    base = ["--from", "mixste", "--model", "mixste"]
    out = tmp_path / "out.pth"

    def convert(obj, *extra):
        path = tmp_path / "in.bin"
        torch.save(obj, path)
        rc = main(["convert", str(path), str(out), *base, *extra])
        return rc, capsys.readouterr().err

    extra_key = {**official, "model_pos": {**official["model_pos"], "module.extra_thing": torch.zeros(3)}}
    rc, err = convert(extra_key)
    assert rc == 2 and "in.bin" in err and "extra_thing" in err and "unexpected" in err and not out.exists()
    rc, err = convert({**official, "best_mpjpe": 40.1})  # an unknown top-level entry is not dropped silently
    assert rc == 2 and "best_mpjpe (top-level entry of the file: 40.1)" in err and not out.exists()
    missing = {**official, "model_pos": dict(official["model_pos"])}
    del missing["model_pos"]["module.STEblocks.1.mlp.fc2.bias"]
    rc, err = convert(missing)
    assert rc == 2 and "missing in the file" in err and "STEblocks.1.mlp.fc2.bias" in err and not out.exists()
    rc, err = convert(missing, "--allow-partial")
    assert rc == 0 and out.is_file() and "STEblocks.1.mlp.fc2.bias" in err
    rc, err = convert(official, "--set", "dim=64")  # an explicit size that contradicts the file
    assert rc == 2 and "shape mismatch" in err and "Temporal_pos_embed" in err
    # a HoT-MixSTE file into MixSTE, a raw file as --from mixste, a MixSTE file as --from hot
    hot = small("hot_mixste").state_dict()
    rc, err = convert({**official, "model_pos": hot})
    assert rc == 2 and "x_token" in err and "use --model hot_mixste" in err
    rc, err = convert(hot)
    assert rc == 2 and "no state-dict entry 'model_pos'" in err and "--from hot" in err
    base[1] = "hot"
    rc, err = convert(official)
    assert rc == 2 and "--from mixste" in err
    rc, err = convert(official["model_pos"], "--input-size", "48", "64")
    assert rc == 2 and "--input-size is for 2-D models" in err
    assert main(["convert", str(tmp_path / "in.bin"), str(out), "--from", "vitpose", "--model", "mixste"]) == 2
    assert "3-D lifting model" in capsys.readouterr().err


def test_only_numpy_rng_globals_are_allowed(tmp_path, capsys):
    """A file naming any other global is refused before anything of it runs."""
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return os.makedirs, (str(marker),)

    official = mixste_run_py(small("mixste"))
    torch.save({**official, "random_state": Payload()}, tmp_path / "evil.bin")
    assert main(["convert", str(tmp_path / "evil.bin"), str(tmp_path / "out.pth"), "--from", "mixste",
                 "--model", "mixste"]) == 2
    err = capsys.readouterr().err
    assert "evil.bin" in err and "os.makedirs" in err and "weights_only=True" in err
    assert not marker.exists() and not (tmp_path / "out.pth").exists()


def test_full_size_official_shapes_on_meta():
    """The released sizes are read from the shapes of a full-size state dict (meta tensors, no memory)."""
    with torch.device("meta"):
        hot = create_lifter("hot_mixste")
        tpc = create_lifter("tpc_mixste")
    sd = hot.state_dict()
    assert infer_lifter_overrides(sd, "hot_mixste") == dict(num_frames=243, num_joints=17, dim=512, depth=8,
                                                              num_tokens=81)
    _, report = convert_lifting_state_dict(sd, hot)
    assert report.ok and report.converted == len(sd)
    with torch.device("meta"):
        ktp = create_lifter("ktpformer")
    assert infer_lifter_overrides(ktp.state_dict(), "ktpformer") == dict(num_frames=243, num_joints=17, dim=512,
                                                                         depth=7)
    _, report = convert_lifting_state_dict(sd, tpc)  # HoT tensors do not fit TPC-MixSTE
    assert sorted(report.unexpected)[:2] == ["cross_attention.linear_k.bias", "cross_attention.linear_k.weight"]
    assert not report.missing and not report.ok


def _bench(capsys, *args):
    rc = main(["benchmark", *args])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("name", ["hot_mixste", "tpc_mixste"])
def test_benchmark_lifter_counts_equal_count_flops(capsys, name):
    sets = [a for k, v in SMALL[name].items() if k != "num_frames" for a in ("--set", f"{k}={v}")]
    rc, out, _ = _bench(capsys, name, "--frames", str(T), *sets, "--no-timing", "--json")
    assert rc == 0
    r = json.loads(out)
    model = create_lifter(name, **SMALL[name])
    flops = count_flops(model)
    assert r["params"] == count_params(model) and r["num_frames"] == T
    assert r["gflops"] == flops["gflops"] and r["gflops_with_attention"] == flops["gflops_with_attention"]
    frames = 1 if name == "tpc_mixste" else T  # seq2frame: one output frame per clip
    assert r["output_frames"] == frames and r["gflops_per_frame"] == pytest.approx(flops["gflops"] / frames)
    assert r["latency_ms_b1"] is None
    rc, out, _ = _bench(capsys, name, "--frames", str(T), *sets, "--warmup", "0", "--repeats", "1")
    assert rc == 0
    assert f"({count_params(model):,})" in out and f"{flops['gflops']:.6g}" in out
    assert f"{flops['gflops'] / frames:.6g}" in out and "latency / clip b1" in out and "- ms" not in out


def test_benchmark_lifter_errors(capsys):
    rc, _, err = _bench(capsys, "hot_mixste", "--frames", "27", "--no-timing")
    assert rc == 2 and "cannot keep 81 of 27 frames" in err and "num_tokens" in err
    rc, _, err = _bench(capsys, "mixste", "--frames", "27", "--batch", "4", "--no-timing")
    assert rc == 2 and "--batch is not for lifting models" in err
    rc, _, err = _bench(capsys, "tokenpose_s_v1", "--frames", "27", "--no-timing")
    assert rc == 2 and "lifting models" in err
