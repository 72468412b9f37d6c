"""``benchmarks/lifting.py``: every row is the one synthetic budget with its own lifter; the report's ratios."""

from __future__ import annotations

import argparse
import json

from _shared import load_benchmark


def _args(tmp_path, **kw):
    base = dict(out=str(tmp_path / "lift"), data_dir=None, sequences=3, stride=27, epochs=2, threads=1, seed=0,
                full=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_rows_differ_only_in_the_lifter(tmp_path):
    mod = load_benchmark("lifting")
    cfgs = {row: mod.row_config(_args(tmp_path), row) for row in mod.ROWS}
    budget = {json.dumps({k: v for k, v in vars(c.data).items()}, sort_keys=True, default=list) for c in cfgs.values()}
    assert len(budget) == 1
    assert {(c.optim.lr, c.schedule.epochs, c.schedule.epoch_decay) for c in cfgs.values()} == {(1e-3, 2, 0.95)}
    for row, cfg in cfgs.items():
        model = mod.build_row_model(row)
        assert model.input_spec.num_frames == 27 and cfg.model.name == mod.ROWS[row][1]
    assert mod.build_row_model("h2ot_tps_tri").schedule == ((1, 13), (2, 7), (3, 3))


def test_report_table_and_plot(tmp_path):
    mod = load_benchmark("lifting")
    args = _args(tmp_path)
    runs = tmp_path / "lift_runs"
    runs.mkdir()
    from slimpose.config.parse import config_to_dict

    for row, name, mpjpe in (("mixste", "mixste", 100.0), ("mixste", "mixste_s1", 110.0),
                             ("hot_tpc_tra", "hot_tpc_tra", 105.0)):
        cfg = mod.row_config(args, row)
        (runs / f"{name}.json").write_text(json.dumps({
            "row": row, "label": mod.ROWS[row][0], "train_s": 10.0, "config": config_to_dict(cfg),
            "metrics": {"MPJPE": mpjpe, "P-MPJPE": 80.0, "N-MPJPE": 95.0, "MPJVE": 3.0, "MPJPE_actionwise": 101.0}}))
    (tmp_path / "lift_speed.json").write_text(json.dumps({"rows": {
        "mixste": {"params": 1e6, "gmacs_linear": 0.2, "latency_ms": 10.0, "gmacs_vs_mixste": 1.0,
                   "latency_vs_mixste": 1.0},
        "hot_tpc_tra": {"params": 1.1e6, "gmacs_linear": 0.12, "latency_ms": 7.0, "gmacs_vs_mixste": 0.6,
                        "latency_vs_mixste": 0.7}}}))
    (tmp_path / "lift_speed_full.json").write_text(json.dumps({
        "num_frames": 243, "threads": 1, "rounds": 3, "repeats": 2, "rows": {
            "mixste": {"params": 33783811, "gmacs_linear": 138.624, "gmacs_with_attention": 147.4, "latency_ms": 4000.0,
                       "gmacs_vs_mixste": 1.0, "latency_vs_mixste": 1.0},
            "hot_tpc_tra": {"params": 35000323, "gmacs_linear": 83.756, "gmacs_with_attention": 88.1,
                            "latency_ms": 2600.0, "gmacs_vs_mixste": 0.6042, "latency_vs_mixste": 0.65}}}))
    mod.cmd_report(args)
    text = (tmp_path / "lift.md").read_text()
    assert "| HoT-MixSTE (TPC 81 of 243 before pair 3, TRA) | 35,000,323 | 83.756 | -39.6% | 88.100 | 2.60 | -35.0% |" \
        in text
    assert "| 1.100 M | 0.1200 | -40.0% | 7.00 | -30.0% | 105.0 | +0.0% | 105.0 |" in text  # vs the 2-seed mean
    assert "| 105.0 | +0.0% | 100.0 / 110.0 |" in text
    assert (tmp_path / "lift.png").stat().st_size > 0
