"""``slimpose benchmark`` end to end on a small TokenPose-S."""

import json

import torch

from slimpose.cli.main import main
from slimpose.engine.complexity import param_breakdown
from slimpose.models import tokenpose_s_v1

torch.set_num_threads(1)

REQUIRED = ["params", "gflops", "gflops_with_attention", "latency_ms_b1", "latency_ms_b32", "throughput_b32",
            "peak_memory_mb"]


def test_json_no_timing(capsys):
    rc = main(["benchmark", "tokenpose_s_v1", "--input-size", "96", "128", "--no-timing", "--json"])
    assert rc == 0
    out = capsys.readouterr().out
    result = json.loads(out)  # exactly one JSON object
    for key in REQUIRED:
        assert key in result
    assert result["latency_ms_b1"] is None and result["latency_ms_b32"] is None
    assert result["throughput_b32"] is None
    assert result["input_size"] == [96, 128]
    # 96x128: 64 visual tokens (frozen sine embedding 64 x 192) and a one-layer head (hid 96 < 2 * 192)
    expected = param_breakdown(tokenpose_s_v1(input_size=(96, 128)))
    assert result["params_frozen"] == 64 * 192 and result["params"] == expected["params"]
    assert 0 < result["gflops"] < result["gflops_with_attention"] < 1.0
    assert result["peak_memory_mb"] > 0


def test_json_with_timing_small_batch(capsys):
    rc = main(["benchmark", "tokenpose_s_v1", "--input-size", "96", "128", "--batch", "2", "--warmup", "0",
               "--repeats", "1", "--repeats-large", "1", "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["latency_ms_b1"] > 0 and result["latency_ms_b2"] > 0
    assert result["throughput_b2"] > 0 and result["latency_ms_b32"] is None


def test_unknown_model_is_an_input_error(capsys):
    assert main(["benchmark", "tokenpose_xxl", "--no-timing"]) == 2
    assert "unknown model" in capsys.readouterr().err
