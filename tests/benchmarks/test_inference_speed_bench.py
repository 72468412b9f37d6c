"""benchmarks/inference_speed.py: the official definitions it times compute what slimpose computes from the
same (official-layout) weights, and one quick round gives well-formed rows."""

import pytest
import torch

from _shared import load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("inference_speed")


@pytest.mark.parametrize("name", ["distilpose_s", "sdpose_s_v1"])
def test_official_definitions_predict_what_slimpose_predicts(bench, name):
    torch.manual_seed(0)
    model, official = bench._official_pair(name)
    assert sum(p.numel() for p in official.parameters()) == sum(p.numel() for p in model.parameters())
    x = torch.randn(1, 3, 256, 192, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref, out = official(x), model(x)
    assert ref.shape == out.shape
    assert float((ref - out).abs().max()) < 1e-4 * max(1.0, float(ref.abs().max()))
    if name == "sdpose_s_v1":  # the released two-cycle forward tests on its first cycle: the same output
        _, released = bench._official_pair(name, cycles=2)
        with torch.inference_mode():
            assert float((released(x) - ref).abs().max()) < 1e-5


def test_one_quick_round(bench):
    rows = bench.speed_rows("distilpose_s", ["torch"], [1], rounds=1, threads=1, calls=1)
    assert [r["candidate"] for r in rows] == ["official", "slimpose train", "slimpose torch"]
    for r in rows:
        assert r["ms_per_batch"] > 0 and r["gflops_per_s"] > 0 and r["matmul_gflops_per_s"] > 0
        assert r["max_abs_diff_vs_official"] < 1e-3
    assert rows[0]["vs_official"] == 1.0
    text = bench.markdown(rows, [], {"threads": 1, "rounds": 1, "cpu": "x", "torch": "t", "onnxruntime": "o",
                                     "command": "c"})
    assert text.count("| distilpose_s | 1 |") == 3
