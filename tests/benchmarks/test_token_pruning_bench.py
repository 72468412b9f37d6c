"""``benchmarks/token_pruning.py``: speed-ups against the unpruned row, the sweep table and its Pareto plot."""

from __future__ import annotations

from _shared import load_benchmark


def load_script():
    return load_benchmark("token_pruning")


def test_latency_table_divides_the_unpruned_time_by_the_pruned_one():
    mod = load_script()
    res = {"threads": 2, "rounds": 3, "torch": "x", "models": {
        "tokenpose_s_v1": {"eager_b1": {"median_ms": 30.0}, "ort_b1": {"median_ms": 20.0}},
        "ppt_s_v1": {"eager_b1": {"median_ms": 20.0}, "ort_b1": {"median_ms": 8.0}},
    }}
    text = mod.render_latency(res)
    assert "| ppt_s_v1 | 20.0 (x1.50) | 8.0 (x2.50) |" in text
    assert "| tokenpose_s_v1 | 30.0 | 20.0 |" in text


def test_sweep_table_and_plot(tmp_path):
    mod = load_script()
    res = {"settings": {"train_images": 10, "val_images": 4, "epochs": 1, "threads": 1},
           "trained": {"tokenpose": {"minutes": 1.0, "AP": 0.2}, "vitpose": {"minutes": 2.0, "AP": 0.1}},
           "points": {"tokenpose@1.0": {"run": "tokenpose", "keep_ratio": 1.0, "AP": 0.2, "gflops": 1.0,
                                        "latency_b1_ms": 3.0, "latency_b32_ms": 30.0},
                      "tokenpose@0.5": {"run": "tokenpose", "keep_ratio": 0.5, "AP": 0.15, "gflops": 0.7,
                                        "latency_b1_ms": 2.0, "latency_b32_ms": 20.0},
                      "vitpose@None": {"run": "vitpose", "keep_ratio": None, "AP": 0.1, "gflops": 2.0}}}
    text = mod.render_sweep(res)
    assert "| tokenpose | 0.5 | 15.0 | 0.700 | 2.00 | 20.0 |" in text
    assert "| vitpose | - | 10.0 | 2.000 | - | - |" in text
    mod.plot_sweep(res, tmp_path / "sweep.png")
    assert (tmp_path / "sweep.png").stat().st_size > 0
    # the sweep's models: the pruned run differs from the unpruned one only in its keep ratio
    cfg_a = mod.run_cfg(mod.argparse.Namespace(out=str(tmp_path / "o"), epochs=2, train_images=4, val_images=2,
                                               workers=0, threads=1), "tokenpose", 0.5)
    assert cfg_a.model.overrides["pruning"] == {"layers": [3, 6, 9], "keep_ratio": 0.5}
    assert mod.RUNS["tokenpose"][1]["pruning"]["keep_ratio"] == 1.0  # run_cfg copies, never mutates
