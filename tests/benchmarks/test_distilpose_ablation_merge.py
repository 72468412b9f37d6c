"""``benchmarks/distilpose_ablation.py --merge``: runs of disjoint rows against one teacher combine into one table."""

from __future__ import annotations

import json

import pytest

from slimpose.utils.io import SlimposeInputError
from _shared import load_benchmark


def load_script():
    return load_benchmark("distilpose_ablation")


def student(ap: float, cs: bool, sh: bool, kt: bool, vt: bool) -> dict:
    return {"switches": {"cs": cs, "sh": sh, "kt": kt, "vt": vt}, "AP": ap, "score_source": "constant",
            "minutes": 1.0}


def test_render_reports_ar_and_the_second_split():
    mod = load_script()
    base = student(0.1, False, False, False, False)
    base.update(metrics={"AP": 0.1, "AR": 0.3}, metrics_eval={"AP": 0.12, "AR": 0.31})
    full = student(0.4, True, True, True, True)
    full.update(metrics={"AP": 0.4, "AR": 0.5}, metrics_eval={"AP": 0.35, "AR": 0.45})
    result = {"settings": {"train_images": 10, "val_images": 2, "epochs": 3, "student_epochs": 3, "threads": 1},
              "teacher": {"checkpoint": "t.pth", "AP": 0.5, "AP_dark": 0.55, "minutes": 2.0},
              "students": {"no_distill": base, "all": full}, "total_minutes": 4.0,
              "eval_split": {"ann": "a.json", "images": "img", "people": 1000}}
    table = mod.render(result)
    assert "AP (1000 people)" in table
    row = next(line for line in table.splitlines() if line.startswith("| student all "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5:11] == ["40.0", "50.0", "+30.0", "35.0", "45.0", "+23.0"]
    header = table.splitlines()[2]
    assert all(line.count("|") == header.count("|") for line in table.splitlines()[3:])


def write_run(root: Path, name: str, teacher: str, students: dict, minutes: float) -> Path:
    run = root / name
    run.mkdir()
    result = {"settings": {"train_images": 10, "val_images": 2, "epochs": 3, "student_epochs": 3, "threads": 1},
              "teacher": {"checkpoint": teacher, "AP": 0.5, "AP_dark": 0.55, "minutes": 2.0},
              "students": students, "total_minutes": minutes}
    (run / "ablation.json").write_text(json.dumps(result))
    return run


def test_merge_combines_rows_in_table_order(tmp_path):
    mod = load_script()
    a = write_run(tmp_path, "a", "t.pth", {"all": student(0.4, True, True, True, True)}, 5.0)
    b = write_run(tmp_path, "b", "t.pth", {"no_distill": student(0.1, False, False, False, False)}, 7.0)
    out = tmp_path / "merged"
    assert mod.main(["--out", str(out), "--merge", str(a), str(b)]) == 0
    merged = json.loads((out / "ablation.json").read_text())
    assert list(merged["students"]) == ["no_distill", "all"]  # the order of ROWS, not of the parts
    assert merged["total_minutes"] == 12.0
    table = (out / "ablation.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| student all "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[:8] == ["student all", "x", "x", "x", "x", "40.0", "", "+30.0"]  # AR: not in these metrics
    assert (out / "ablation.png").read_bytes()[:4] == b"\x89PNG"


def test_merge_refuses_runs_of_different_teachers(tmp_path):
    mod = load_script()
    a = write_run(tmp_path, "a", "t1.pth", {"all": student(0.4, True, True, True, True)}, 5.0)
    b = write_run(tmp_path, "b", "t2.pth", {"cs": student(0.2, True, False, False, False)}, 5.0)
    with pytest.raises(SlimposeInputError, match="t2.pth"):
        mod.merge([str(a), str(b)])
