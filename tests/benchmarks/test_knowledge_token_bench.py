"""``benchmarks/knowledge_token.py``: the table, resuming (finished runs are skipped) and ``--merge``."""

from __future__ import annotations

import json

import pytest

from slimpose.utils.io import SlimposeInputError
from _shared import load_benchmark


def load_script():
    return load_benchmark("knowledge_token")


def _row(ap, steps=100):
    return {"AP": ap, "AR": ap + 10, "steps": steps, "seconds": 60.0, "run_dir": "r"}


def _result(mod, students, **settings):
    args = mod.main.__globals__["argparse"].Namespace(
        teacher_epochs=2, token_epochs=1, student_epochs=1, train_images=10, val_images=4, lr=1e-3, w_kd=1.0,
        seed=0, threads=1, batch_size=4, token_lr=1e-3, weight_decay=0.01)
    st = mod.settings_of(args)
    st.update(settings)
    return {"settings": st, "teacher": {"checkpoint": "t.pth", "AP": 50.0, "steps": 20, "seconds": 100.0, "epochs": 2},
            "token": {"checkpoint": "k.pth", "AP": 51.0, "steps": 10, "seconds": 30.0, "epochs": 1},
            "students": students}


def test_render_shows_every_row_with_its_gain_steps_and_the_paper():
    mod = load_script()
    table = mod.render(_result(mod, {"student": _row(20.0), "token_output_kd": _row(23.5, 120)}))
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in table.splitlines() if line.startswith("| ")}
    assert rows["+ token + output KD"] == ["+ token + output KD", "x", "x", "23.5", "33.5", "+3.5", "120", "60", "76.6"]
    assert rows["student alone"][3:7] == ["20.0", "30.0", "", "100"]
    assert rows["+ knowledge token"][3] == "-"  # not trained yet
    assert "1 thread(s) per run" in table and "AP 51.0" in table


def test_a_rerun_skips_finished_runs_and_refuses_another_budget(tmp_path):
    mod = load_script()
    out = tmp_path / "kt"
    done = {name: _row(20.0 + i) for i, (name, _, _) in enumerate(mod.ROWS)}
    budget = ["--teacher-epochs", "2", "--token-epochs", "1", "--student-epochs", "1", "--train-images", "10",
              "--val-images", "4", "--lr", "1e-3", "--batch-size", "4", "--token-lr", "1e-3"]
    (tmp_path / "kt.json").write_text(json.dumps(_result(mod, done)))
    assert mod.main(["--out", str(out), *budget]) == 0  # nothing to train
    assert (tmp_path / "kt.png").read_bytes()[:4] == b"\x89PNG"
    assert "+ output KD" in (tmp_path / "kt.md").read_text()
    with pytest.raises(SlimposeInputError, match="student_epochs: 1 vs 5"):
        mod.main(["--out", str(out), *budget, "--student-epochs", "5"])


def test_merge_combines_disjoint_rows_of_one_teacher_in_table_order(tmp_path):
    mod = load_script()
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    a.write_text(json.dumps(_result(mod, {"token_output_kd": _row(24.0)})))
    b.write_text(json.dumps(_result(mod, {"student": _row(20.0)})))
    other = _result(mod, {"token": _row(21.0)})
    other["token"]["checkpoint"] = "another.pth"
    c.write_text(json.dumps(other))
    out = tmp_path / "merged"
    assert mod.main(["--out", str(out), "--merge", str(a), str(b)]) == 0
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert list(merged["students"]) == ["student", "token_output_kd"]
    with pytest.raises(SlimposeInputError, match="another.pth"):
        mod.merge([str(a), str(c)])
