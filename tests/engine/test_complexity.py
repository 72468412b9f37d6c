"""The complexity counter itself (hand-checked MACs) and the TokenPose-S figure it must reproduce."""

import pytest
import torch
from torch import nn

from slimpose.engine.complexity import (
    count_flops,
    count_params,
    measure_latencies_interleaved,
    measure_latency,
    measure_peak_memory,
    param_breakdown,
)
from slimpose.models.transformer import Attention

torch.set_num_threads(1)


class ConvLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8 * 16 * 8, 10)
        self.frozen = nn.Parameter(torch.zeros(7), requires_grad=False)

    def forward(self, x):
        return self.fc(self.conv(x).flatten(1))


class TokenAttention(nn.Module):
    """Pixels as tokens: Linear(3, 24) then one attention layer (2 heads)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Linear(3, 24)
        self.attn = Attention(24, num_heads=2)

    def forward(self, x):
        return self.attn(self.embed(x.flatten(2).transpose(1, 2)))


def test_conv_and_linear_macs_equal_hand_values():
    f = count_flops(ConvLinear(), input_size=(8, 16))
    assert f["conv"] * 1e9 == pytest.approx(8 * 3 * 9 * 16 * 8)
    assert f["linear"] * 1e9 == pytest.approx(8 * 16 * 8 * 10)
    assert f["attention"] == 0 and f["other"] == 0
    assert f["gflops"] == pytest.approx(f["conv"] + f["linear"]) and f["gflops_with_attention"] == f["gflops"]
    f4 = count_flops(ConvLinear(), input_size=(8, 16), batch=4)
    assert f4["gflops"] == pytest.approx(4 * f["gflops"])


def test_attention_products_counted_separately():
    n, d = 6 * 4, 24
    f = count_flops(TokenAttention(), input_size=(6, 4))
    linear = n * 3 * d + n * d * 3 * d + n * d * d  # embed (runs as bmm: non-contiguous input), qkv, proj
    assert f["linear"] * 1e9 == pytest.approx(linear)
    assert f["attention"] * 1e9 == pytest.approx(2 * n * n * d)  # QK^T and AV over all heads
    assert f["gflops_with_attention"] - f["gflops"] == pytest.approx(f["attention"])


def test_param_counts():
    m = ConvLinear()
    total = 8 * 3 * 9 + 8 + 1024 * 10 + 10 + 7
    assert count_params(m) == total and count_params(m, trainable_only=True) == total - 7
    assert param_breakdown(m) == {"params": total, "params_trainable": total - 7, "params_frozen": 7}


def test_tokenpose_s_v1_matches_the_official_measurement():
    from slimpose.models import tokenpose_s_v1

    f = count_flops(tokenpose_s_v1())
    # official definitions measured with the same method: SDPose-S-V1 one cycle 2.383, DistilPose-S 2.361
    assert f["gflops"] == pytest.approx(2.383, abs=0.01)
    assert f["conv"] == pytest.approx(1.003, abs=0.002)
    assert f["attention"] == pytest.approx(0.343, abs=0.002)


def test_latency_and_memory():
    m = ConvLinear()
    r = measure_latency(m, batch=2, device="cpu", warmup=1, repeats=3, input_size=(8, 16))
    assert r["batch"] == 2 and r["repeats"] == 3
    assert 0 < r["latency_ms_min"] <= r["latency_ms"] <= r["latency_ms_max"]
    assert r["throughput"] == pytest.approx(2000 / r["latency_ms"])
    small = measure_peak_memory(m, batch=1, input_size=(8, 16))
    big = measure_peak_memory(m, batch=16, input_size=(8, 16))
    # The conv output (8 x 16 x 8 floats = 4 KiB per image) is allocated whole during every forward, so
    # the peak is at least b x 4 KiB on any machine; what else the allocator adds (workspaces, the small
    # linear output) varies, so there is no upper bound and no ratio between the two batches.
    assert small >= 4096 / 2**20 and big >= 16 * 4096 / 2**20
    with pytest.raises(ValueError, match="input_size"):
        measure_latency(m, batch=1, repeats=1)


def test_interleaved_latencies_one_value_per_round():
    models = {"a": ConvLinear(), "b": ConvLinear()}
    settings = {"b1": dict(batch=1, warmup=0, repeats=1), "b2": dict(batch=2, warmup=0, repeats=1)}
    per = measure_latencies_interleaved(models, settings, rounds=3, input_size=(8, 16))
    assert set(per) == {"a", "b"} and all(set(v) == {"b1", "b2"} for v in per.values())
    assert all(len(ms) == 3 and min(ms) > 0 for v in per.values() for ms in v.values())
