"""The bad-input matrix of issue 16 ("nothing lost, nothing silently wrong"): one row per observed case.

Each row asserts the exit code (2 for a bad input, 1 for a diverged run) or the exception type, that the
message names the file / record, and for the "nothing lost" rows that the files already there are
byte-identical afterwards. Tiny models and a tiny synthetic data set (generated once per module)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from slimpose.cli.main import main
from slimpose.config import TrainConfig, apply_overrides, config_to_dict
from slimpose.engine.checkpoint import load_checkpoint, save_checkpoint
from slimpose.engine.hooks import CheckpointHook, Hook, LoggerHook
from slimpose.engine.loop import TrainingDivergedError, TrainLoop
from slimpose.utils.io import SlimposeInputError

TINY = ["data.dataset=synthetic", "data.input_size=48,64", "data.heatmap_size=12,16", "data.sigma=1.5",
        "data.synthetic_train_images=8", "data.synthetic_val_images=4", "data.synthetic_image_size=160,128",
        "data.batch_size=4", "data.val_batch_size=4", "data.workers=0", "data.val_workers=0",
        "model.name=tokenpose_s_v1", "schedule.epochs=1", "schedule.warmup_iters=1", "flip_test=false",
        "num_threads=1", "tensorboard=false"]
DIM32 = "model.overrides={\"dim\": 32, \"depth\": 1, \"num_heads\": 2, \"patch_size\": [4, 4]}"
DIM64 = "model.overrides={\"dim\": 64, \"depth\": 1, \"num_heads\": 2, \"patch_size\": [4, 4]}"


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (the "nothing lost" check)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _cfg(root: Path, work_dir: Path, overrides: str = DIM32) -> TrainConfig:
    return apply_overrides(TrainConfig(), TINY + [overrides, f"data.data_root={root}", f"work_dir={work_dir}"])


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    from slimpose.engine.builders import prepare_synthetic

    root = tmp_path_factory.mktemp("matrix") / "synth"
    prepare_synthetic(_cfg(root, root / "unused"))
    return root


def _config_file(tmp_path: Path, root: Path, overrides: str = DIM32, name: str = "cfg.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(config_to_dict(_cfg(root, tmp_path / "run", overrides))))
    return path


def _model_ckpt(path: Path, root: Path, overrides: str, training: bool = False) -> Path:
    """A checkpoint of the tiny TokenPose with ``overrides`` (with task / optimizer entries if ``training``)."""
    from slimpose.engine.builders import build_topdown_task

    cfg = _cfg(root, path.parent, overrides)
    torch.manual_seed(0)
    task = build_topdown_task(cfg)
    state = {"model": task.model.state_dict(), "model_name": cfg.model.name, "config": config_to_dict(cfg)}
    if training:
        state.update(task=task.state_dict(), optimizer={}, epoch=1, global_step=2)
    save_checkpoint(state, path)
    return path


def _err(capsys) -> str:
    return capsys.readouterr().err


# ------------------------------------------------------------------------------------------ a diverging run

class _Toy(nn.Module):
    """y = 2x with one weight; ``losses`` (optional) scripts the loss of each call."""

    def __init__(self, losses=None):
        super().__init__()
        self.model = nn.Linear(1, 1, bias=False)
        self.losses, self.calls = losses, 0

    def forward(self, batch):
        loss = ((self.model(batch["x"]) - 2 * batch["x"]) ** 2).mean()
        if self.losses is not None:
            loss = loss * 0 + self.losses[min(self.calls, len(self.losses) - 1)]
        self.calls += 1
        return loss, {}

    def checkpoint_extras(self):
        return {}


class _PoisonAt(Hook):
    """Makes the weights NaN after global step ``step`` (what a divergent update does)."""

    def __init__(self, step):
        self.step = step

    def after_step(self, loop, values):
        if loop.global_step == self.step:
            with torch.no_grad():
                loop.task.model.weight.fill_(float("nan"))


def _toy_loop(work_dir, hooks, epochs=3, losses=None, steps=2, **kwargs):
    torch.manual_seed(0)
    task = _Toy(losses)
    data = [{"x": torch.randn(4, 1)} for _ in range(steps)]
    return TrainLoop(task, data, torch.optim.SGD(task.parameters(), lr=0.01), epochs, hooks=hooks,
                     work_dir=work_dir, metadata={"config": {"toy": 1}}, **kwargs)


def test_nan_weights_are_never_saved_and_the_real_last_good_file_is_named(tmp_path):
    """Row 1a: weights NaN at the end of epoch 2 (the eval_interval=2 case): last.pth of epoch 1 is kept."""
    loop = _toy_loop(tmp_path, [CheckpointHook(tmp_path, "loss", "min"), _PoisonAt(4)])
    loop.hooks.insert(0, _Metric())
    loop.fit(stop_after_epoch=1)
    before = _snapshot(tmp_path)
    with pytest.raises(TrainingDivergedError, match=rf"NaN .*after epoch 2.*{tmp_path / 'last.pth'} \(epoch 1\)"):
        loop.fit()
    assert _snapshot(tmp_path) == before
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 1


class _Metric(Hook):
    def after_epoch(self, loop):
        loop.epoch_metrics = {"loss": float(loop.summary.get("train_loss", 0.0))}


def test_a_run_diverging_in_its_first_epoch_names_no_missing_file(tmp_path):
    """Row 1b: NaN loss before any checkpoint: the message says there is none (not 'last.pth (epoch 0)')."""
    loop = _toy_loop(tmp_path, [CheckpointHook(tmp_path, "loss", "min")], losses=[1.0, float("nan")])
    with pytest.raises(TrainingDivergedError, match=r"non-finite loss.*no checkpoint was written"):
        loop.fit()
    assert not (tmp_path / "last.pth").exists()


def test_a_loss_spike_stops_training(tmp_path):
    """Row 1c: a loss 1000x the running median stops the run (optim.loss_spike, default 100; 0: off)."""
    losses = [1.0 + 0.01 * i for i in range(30)] + [1000.0] + [1.0] * 10
    loop = _toy_loop(tmp_path, [CheckpointHook(tmp_path, "loss", "min"), _Metric()], epochs=2, steps=20,
                     losses=losses)
    loop.hooks.reverse()
    with pytest.raises(TrainingDivergedError, match=rf"loss spike \(1000.*global step 31.*{tmp_path / 'last.pth'} "
                                                    r"\(epoch 1\)"):
        loop.fit()
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 1
    off = _toy_loop(tmp_path / "off", [], epochs=2, steps=20, losses=losses, loss_spike=0)
    off.fit()
    assert off.global_step == 40
    from slimpose.config.schema import validate_config

    with pytest.raises(SlimposeInputError, match="optim.loss_spike"):
        validate_config(apply_overrides(TrainConfig(), ["optim.loss_spike=-1"]))


def test_a_loss_crossing_zero_is_no_spike_and_a_real_spike_still_is(tmp_path):
    """Row 1f: a loss that settles around zero (an RLE NLL going negative) with a healthy bump does not stop
    the run (the scale is floored at 1% of the starting magnitude); a real spike there still does."""
    settled = [1.0 - 0.04 * i for i in range(20)] + [1e-4 * (-1) ** i for i in range(50)]
    healthy = settled + [0.05] + [-1e-4] * 9  # 500x the settled |loss|, 0.06x the starting one
    loop = _toy_loop(tmp_path / "healthy", [], epochs=4, steps=20, losses=healthy)
    loop.fit()
    assert loop.global_step == 80
    spiked = settled + [0.05] + [-1e-4] * 4 + [1000.0] + [-1e-4] * 4
    loop = _toy_loop(tmp_path / "spiked", [], epochs=4, steps=20, losses=spiked)
    with pytest.raises(TrainingDivergedError, match=r"loss spike \(1000.*global step 76"):
        loop.fit()


def test_nan_predictions_in_evaluation_say_that_training_diverged(tmp_path):
    """Row 1d: finite weights whose predictions are NaN: not a bare "NaN or infinite keypoints" error."""
    from slimpose.engine.hooks import EvalHook

    from slimpose.evaluation.coco import NonFinitePredictionError

    def run(*a, **k):
        raise NonFinitePredictionError("prediction 0 (image 1): NaN or infinite keypoints/scores")

    evaluation = EvalHook(SimpleNamespace(run=run), interval=2)
    loop = _toy_loop(tmp_path, [evaluation, CheckpointHook(tmp_path, "loss", "min")], epochs=3)
    loop.hooks.insert(1, _Metric())
    with pytest.raises(TrainingDivergedError, match=rf"NaN or infinite values after epoch 2 \(prediction 0.*"
                                                    rf"{tmp_path / 'last.pth'} \(epoch 1\)"):
        loop.fit()
    assert load_checkpoint(tmp_path / "last.pth")["epoch"] == 1

    def other(*a, **k):  # another ValueError whose text happens to say the same is not a divergence
        raise ValueError("gt.json: annotation 3: NaN or infinite keypoints")

    loop = _toy_loop(tmp_path / "other", [EvalHook(SimpleNamespace(run=other), interval=1)], epochs=1)
    with pytest.raises(ValueError, match="gt.json: annotation 3") as caught:
        loop.fit()
    assert not isinstance(caught.value, TrainingDivergedError)
    from slimpose.evaluation.coco import COCO_SIGMAS, topdown_postprocess  # where the NaN is found

    nan = {"image_id": 1, "keypoints": np.full((17, 2), np.nan), "keypoint_scores": np.ones(17)}
    with pytest.raises(NonFinitePredictionError, match=r"prediction 0 \(image 1\): NaN or infinite"):
        topdown_postprocess([nan], COCO_SIGMAS)


def test_divergence_on_the_command_line_is_one_clear_line(tmp_path, capsys, monkeypatch):
    """Row 1e: ``slimpose train`` that diverges exits 1 with the message, no traceback."""
    import slimpose.training as training

    def diverging(cfg, resume=False, **_):
        raise TrainingDivergedError("training diverged: non-finite loss (nan) at epoch 1; no checkpoint")

    monkeypatch.setattr(training, "make_trainer", diverging)
    assert main(["train", "tokenpose_tiny_synthetic", "--work-dir", str(tmp_path / "w")]) == 1
    assert "slimpose train: error: training diverged" in _err(capsys)


# ---------------------------------------------------------------------------------------------- nothing lost

def test_train_into_an_earlier_run_is_refused_and_keeps_its_files(tmp_path, capsys):
    """Row 2a: ``train`` into a work dir with best.pth / last.pth, without --resume: exit 2, files intact."""
    from slimpose.engine.trainer import check_work_dir

    run = tmp_path / "run"
    run.mkdir()
    for name, text in (("last.pth", "L"), ("best.pth", "B"), ("config.json", "{}"), ("log.jsonl", "{}\n")):
        (run / name).write_text(text)
    before = _snapshot(run)
    assert main(["train", "tokenpose_tiny_synthetic", "--work-dir", str(run)]) == 2
    err = _err(capsys)
    assert str(run) in err and "last.pth and best.pth" in err and "--overwrite" in err
    assert _snapshot(run) == before
    check_work_dir(run, resume="auto")  # --resume continues it
    check_work_dir(run, resume=str(run / "." / "last.pth"))  # a checkpoint inside the work dir: the same
    check_work_dir(run, overwrite=True)  # --overwrite passes, and deletes nothing yet (assemble_loop does)
    assert _snapshot(run) == before
    other = tmp_path / "other"
    other.mkdir()
    (other / "last.pth").write_text("O")
    with pytest.raises(SlimposeInputError, match="last.pth and best.pth of an earlier run"):
        check_work_dir(run, resume=str(other / "last.pth"))  # a new run here, from another run's checkpoint
    assert main(["train", "tokenpose_tiny_synthetic", "--work-dir", str(run), "--resume",
                 str(other / "last.pth")]) == 2
    assert f"{run} holds last.pth and best.pth" in _err(capsys)
    assert _snapshot(run) == before
    from slimpose.engine.trainer import continues_run  # what --overwrite with a resume of this run keeps

    assert continues_run(run, "auto") and continues_run(run, str(run / "last.pth"))
    assert not continues_run(run, str(other / "last.pth")) and not continues_run(run, False)


def test_train_overwrite_clears_the_earlier_runs_outputs_only_once_the_new_run_is_built(synth, tmp_path,
                                                                                           capsys):
    """Row 2d: ``train --overwrite`` deletes the earlier run's checkpoints, log, tb/ and evaluation outputs
    (and no other file) after the new run is built: the new run's log holds only its own steps."""
    run = tmp_path / "run"
    (run / "tb").mkdir(parents=True)
    old = {"last.pth": "L", "best.pth": "B", "log.jsonl": '{"step": 99}\n', "tb/events.old": "E",
           "metrics_val.json": "{}", "results_val.json": "[]", "predictions_val.npz": "N"}
    for name, text in old.items():
        (run / name).write_text(text)
    (run / "notes.txt").write_text("mine")
    cfg = _config_file(tmp_path, synth, DIM32)
    assert main(["train", str(cfg), "--work-dir", str(run), "--overwrite"]) == 0
    assert (run / "notes.txt").read_text() == "mine"
    assert not (run / "tb").exists() and not (run / "predictions_val.npz").exists()
    assert (run / "last.pth").read_bytes() != b"L" and load_checkpoint(run / "last.pth")["epoch"] == 1
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert 99 not in steps and steps == sorted(steps)
    assert json.loads((run / "metrics_val.json").read_text())  # this run's evaluation, not the old "{}"


def test_a_failed_resume_leaves_config_json_alone_and_names_the_wrong_checkpoint(synth, tmp_path, capsys):
    """Rows 2b + 5b: ``train --resume`` of a checkpoint of another architecture: exit 2, the message names the
    file, the model it holds and the one expected; config.json and last.pth are byte-identical."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text('{"earlier": "run"}')
    _model_ckpt(run / "last.pth", synth, DIM64, training=True)
    before = _snapshot(run)
    cfg = _config_file(tmp_path, synth, DIM32)
    assert main(["train", str(cfg), "--work-dir", str(run), "--resume"]) == 2
    err = _err(capsys)
    assert f"{run / 'last.pth'}: holds a 'tokenpose_s_v1' model (overrides {{'dim': 64" in err
    assert "but a 'tokenpose_s_v1' model (overrides {'dim': 32" in err and "another shape" in err
    assert len(err.splitlines()) == 1
    assert _snapshot(run) == before


def test_convert_onto_its_own_input_is_refused(tmp_path, capsys):
    """Row 2c: ``convert X X`` (also through another spelling of the path): exit 2, X intact."""
    src = tmp_path / "official.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}}, src)
    before = src.read_bytes()
    for dst in (src, tmp_path / "." / "official.pth"):
        assert main(["convert", str(src), str(dst), "--from", "distilpose", "--model", "distilpose_s"]) == 2
        assert "the output is the input checkpoint" in _err(capsys)
    assert src.read_bytes() == before


def test_data_synth_keeps_an_existing_split_and_never_mixes_old_labels_with_new_images(tmp_path, capsys,
                                                                                         monkeypatch):
    """Row 3: ``data synth`` into a written split without --overwrite: exit 2, files intact; with it, the old
    labels are gone before the first new image is written (a kill leaves no labels, not wrong ones)."""
    from slimpose.data import synth as S

    out = tmp_path / "d"
    args = ["data", "synth", "--out", str(out), "--images", "2", "--width", "64", "--height", "64",
            "--no-progress"]
    assert main(args) == 0
    before = _snapshot(out)
    assert main(args + ["--seed", "5"]) == 2
    assert f"{out / 'annotations' / 'person_keypoints_train.json'} exists" in _err(capsys)
    assert _snapshot(out) == before

    def killed(*a, **k):
        assert not (out / "annotations" / "person_keypoints_train.json").exists()
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "render_coco_images", killed)
    assert main(args + ["--seed", "5", "--overwrite"]) == 130
    assert not (out / "annotations" / "person_keypoints_train.json").exists()


def test_data_synth_of_another_skeleton_never_relabels_the_images_of_another_run(tmp_path, capsys, monkeypatch):
    """Row 3b: COCO, AIC and CrowdPose labels share images/{split}/: ``--skeleton aic --seed 5`` over a seed-0
    COCO split is refused (exit 2, files intact); the same seed, size and count is allowed (same images); with
    --overwrite every label file over those images is gone before the first new image is written."""
    from slimpose.data import synth as S

    out = tmp_path / "d"
    args = ["data", "synth", "--out", str(out), "--images", "2", "--width", "64", "--height", "64",
            "--no-progress"]
    coco = out / "annotations" / "person_keypoints_train.json"
    assert main(args) == 0
    before = _snapshot(out)
    for change in (["--seed", "5"], ["--width", "96"], ["--images", "3"]):
        assert main(args + ["--skeleton", "aic"] + change) == 2
        err = _err(capsys)
        assert f"{coco} exists (labels other images:" in err and "--overwrite" in err
        assert _snapshot(out) == before
    assert main(args + ["--skeleton", "crowdpose"]) == 0  # the same images: their labels stay right
    assert coco.read_bytes() == before[str(coco.relative_to(out))]
    assert main(args + ["--skeleton", "aic", "--seed", "5"]) == 2  # crowdpose's labels are seed 0 as well
    assert "crowdpose_train.json exists" in _err(capsys)

    def killed(*a, **k):
        assert not list((out / "annotations").glob("*_train.json"))
        raise KeyboardInterrupt

    monkeypatch.setattr(S, "render_coco_images", killed)
    assert main(args + ["--skeleton", "aic", "--seed", "5", "--overwrite"]) == 130
    assert not list((out / "annotations").glob("*_train.json"))


def test_stale_tmp_files_are_removed_when_a_run_starts_and_when_saving(tmp_path):
    """Row 4a: temporary files a killed process left (our naming pattern, dead PID) are cleaned up."""
    from slimpose.engine.distributed import DistInfo
    from slimpose.engine.trainer import start_run

    dead = 2 ** 22 + 12345  # above Linux's pid_max default: no such process
    orphans = [tmp_path / f".last.pth.{dead}-abcd1234.tmp", tmp_path / ".best.pth.k2j4h5g6.tmp",
               tmp_path / ".metrics_val.json.k2j4h5g6.tmp"]
    # Row 4a': the PID-less pattern of older versions is only ours for the files slimpose writes
    keep = [tmp_path / f".last.pth.{os.getpid()}-abcd1234.tmp", tmp_path / "notes.tmp",
            tmp_path / ".notes.txt.k2j4h5g6.tmp", tmp_path / ".bashrc.a1b2c3d4.tmp"]
    for p in orphans + keep:
        p.write_text("x")
        os.utime(p, (time.time() - 7200,) * 2)
    start_run(SimpleNamespace(work_dir=str(tmp_path), seed=0), DistInfo())
    assert not any(p.exists() for p in orphans) and all(p.exists() for p in keep)
    orphan = tmp_path / f".m.pth.{dead}-abcd1234.tmp"
    orphan.write_text("x")
    os.utime(orphan, (time.time() - 120,) * 2)
    save_checkpoint({"model": {}}, tmp_path / "m.pth")
    assert not orphan.exists()


def test_log_jsonl_has_each_step_once_after_a_resume(tmp_path):
    """Row 4b: steps replayed after a resume are logged once (records past the checkpoint are dropped)."""
    def loop():
        return _toy_loop(tmp_path, [CheckpointHook(tmp_path, "loss", "min"), LoggerHook(tmp_path, interval=1)],
                         epochs=3)

    first = loop()
    first.fit(stop_after_epoch=1)
    (tmp_path / "epoch1.pth").write_bytes((tmp_path / "last.pth").read_bytes())
    first.fit(stop_after_epoch=2)  # logged up to step 4, then "killed" and resumed from epoch 1
    with open(tmp_path / "log.jsonl", "a") as f:
        f.write('{"step": 5, "lo')  # a line cut short by the kill
    again = loop()
    again.resume_from(tmp_path / "epoch1.pth")
    again.fit()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "lr" in r]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert [r["epoch"] for r in records if "lr" not in r] == [1, 2, 3]


def test_a_fresh_run_starts_a_new_log_over_a_killed_runs_log(tmp_path):
    """Row 4c: a run killed in epoch 1 leaves log.jsonl but no checkpoint (so nothing refuses the folder): the
    rerun logs each of its steps once, not after the killed run's."""
    def loop():
        return _toy_loop(tmp_path, [CheckpointHook(tmp_path, "loss", "min"), LoggerHook(tmp_path, interval=1)],
                         epochs=1)

    (tmp_path / "log.jsonl").write_text('{"step": 1, "epoch": 1, "lr": 0.01, "loss": 9.0}\n{"step": 2, "ep')
    loop().fit()
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "lr" in r] == [1, 2]
    assert all(r.get("loss") != 9.0 for r in records)


# ------------------------------------------------------------------------------- checkpoints of another model

def test_eval_of_a_checkpoint_of_another_architecture(synth, tmp_path, capsys):
    """Row 5a: ``eval`` with weights of another size: exit 2, file, held and expected model named."""
    ckpt = _model_ckpt(tmp_path / "dim64.pth", synth, DIM64)
    assert main(["eval", str(_config_file(tmp_path, synth)), "--checkpoint", str(ckpt)]) == 2
    err = _err(capsys)
    assert f"{ckpt}: holds a 'tokenpose_s_v1' model (overrides {{'dim': 64" in err
    assert "but a 'tokenpose_s_v1' model (overrides {'dim': 32" in err and len(err.splitlines()) == 1


def test_distill_with_a_teacher_of_another_architecture(tmp_path, capsys):
    """Row 5c: ``distill --teacher`` with a bare state dict of another model: exit 2, the file named."""
    from slimpose.models import create_model

    torch.manual_seed(0)
    wrong = create_model("tokenpose_s_v1", dim=32, depth=1, num_heads=2, patch_size=(2, 2), input_size=(64, 96))
    teacher = tmp_path / "not_the_teacher.pth"
    torch.save(wrong.state_dict(), teacher)
    sets = [f"data.data_root={tmp_path / 'synth'}", "data.synthetic_train_images=4", "data.synthetic_val_images=2",
            "data.synthetic_image_size=128,96", "data.workers=0", "data.val_workers=0", "tensorboard=false",
            "model.overrides.depth=1", "device=cpu", "num_threads=1",
            "distill.teacher_overrides={\"dim\": 64, \"depth\": 1, \"num_heads\": 4, \"patch_size\": [2, 2]}"]
    argv = ["distill", "distilpose_tiny_synthetic", "--teacher", str(teacher), "--work-dir", str(tmp_path / "run")]
    assert main(argv + sum((["--set", s] for s in sets), [])) == 2
    err = _err(capsys)
    assert f"{teacher}: holds weights without a model name, but the teacher 'tokenpose_s_v1'" in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "run" / "config.json").exists()
    # Row 2e: the same with --overwrite over an earlier run: the failed start destroys nothing of it
    run = tmp_path / "run"
    (run / "tb").mkdir(parents=True, exist_ok=True)
    for name, text in (("last.pth", "L"), ("best.pth", "B"), ("config.json", "{}"), ("log.jsonl", "{}\n"),
                       ("tb/events.old", "E"), ("metrics_val.json", "{}")):
        (run / name).write_text(text)
    before = _snapshot(run)
    assert main(argv + ["--overwrite"] + sum((["--set", s] for s in sets), [])) == 2
    assert f"{teacher}: holds weights without a model name" in _err(capsys)
    assert _snapshot(run) == before


# ----------------------------------------------------------------------------------------- data-loader workers

class _BadImages(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        raise SlimposeInputError(f"image not found: /data/missing_{i}.jpg (image id {i})")


def test_a_worker_error_arrives_unwrapped(tmp_path, capsys):
    """Row 6: a SlimposeInputError in DataLoader worker 0 is re-raised as itself, naming the file."""
    from slimpose.utils.io import unwrap_worker_error

    loader = torch.utils.data.DataLoader(_BadImages(), batch_size=2, num_workers=1)
    loop = _toy_loop(tmp_path, [], epochs=1)
    loop.train_loader = loader
    with pytest.raises(SlimposeInputError) as info:
        loop.fit()
    assert str(info.value) == "image not found: /data/missing_0.jpg (image id 0)"
    wrapped = SlimposeInputError("Caught SlimposeInputError in DataLoader worker process 0.\nOriginal Traceback "
                                 "(most recent call last):\n  File \"x.py\", line 1\nslimpose.utils.io."
                                 "SlimposeInputError: a.json: record 3: bad")
    assert str(unwrap_worker_error(wrapped)) == "a.json: record 3: bad"


# ---------------------------------------------------------------------------- evaluate / predict / export / synth

def _gt(tmp_path, **change):
    """A two-annotation COCO gt; ``change`` edits annotation id 2."""
    kp = [float(v) for j in range(17) for v in (10 + j, 20 + j, 2)]
    anns = [{"id": i, "image_id": 1, "category_id": 1, "bbox": [5, 5, 40, 60], "keypoints": list(kp),
             "area": 1200.0, "iscrowd": 0, "num_keypoints": 17} for i in (1, 2)]
    anns[1].update(change)
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 80}], "annotations": anns,
          "categories": [{"id": 1, "name": "person"}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    res = tmp_path / "res.json"
    res.write_text(json.dumps([{"image_id": 1, "category_id": 1, "keypoints": kp, "score": 0.9}]))
    return path, res


@pytest.mark.parametrize("change, extra, message", [
    ({"keypoints": [1.0, 2.0, 2] * 16}, [], r"annotations\[1\] \(id 2\): 48 keypoint values, while 1 annotations "
                                            r"have 51"),
    ({"keypoints": ["x"] + [1.0] * 50}, [], r"annotations\[1\] \(id 2\): keypoints must be numbers"),
    ({"area": "big"}, [], r"annotations\[1\] \(id 2\): area must be a number, got 'big'"),
    ({"bbox": [5, 5, 0, 60]}, ["--no-area"], r"annotations\[1\] \(id 2\): bbox width x height 0 x 60 is not positive"),
    ({"bbox": [5, 5, -4, 60]}, ["--no-area"], r"annotations\[1\] \(id 2\): bbox width x height -4 x 60"),
], ids=["keypoint-length", "keypoint-x", "area-big", "zero-width-box", "negative-width-box"])
def test_evaluate_names_the_bad_record(tmp_path, capsys, change, extra, message):
    """Row 7a-e: ``evaluate`` with a bad gt record: exit 2, the file and the annotation named."""
    import re

    gt, res = _gt(tmp_path, **change)
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), *extra]) == 2
    err = _err(capsys)
    assert str(gt) in err and re.search(message, err), err
    if "bbox" in change:  # with the gt's own areas the box does not decide the area: scored as before
        assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--json"]) == 0


@pytest.mark.parametrize("change", [{"bbox": [5, 5, 0, 60], "iscrowd": 1},
                                    {"bbox": [5, 5, -4, 60], "num_keypoints": 0, "keypoints": [0.0] * 51}],
                         ids=["crowd", "no-keypoints"])
def test_a_zero_box_that_cocoeval_ignores_is_accepted(tmp_path, capsys, change):
    """Row 7f: a zero / negative box on a crowd annotation or one without labelled keypoints (COCOeval ignores
    both, so its area changes no AP) is not refused under --no-area."""
    gt, res = _gt(tmp_path, **change)
    assert main(["evaluate", "--gt", str(gt), "--results", str(res), "--no-area", "--json"]) == 0, _err(capsys)


def test_numpy_keypoint_arrays_are_accepted_in_an_in_memory_gt():
    """Row 7g: an in-memory gt whose keypoints are numpy arrays (a flat [x, y, v] * K) gives K; a 2-D array is
    named."""
    from slimpose.evaluation.coco import infer_num_keypoints

    ann = {"id": 1, "image_id": 1, "keypoints": np.zeros(51)}
    assert infer_num_keypoints({"annotations": [ann]}) == 17
    with pytest.raises(SlimposeInputError, match=r"annotations\[0\] \(id 1\): keypoints must be a flat .*"
                                                 r"shape \(17, 3\)"):
        infer_num_keypoints({"annotations": [{**ann, "keypoints": np.zeros((17, 3))}]})


def test_a_training_runs_val_gt_is_checked_before_training(tmp_path):
    """Row 7e': the same box check when a run builds its metric (CrowdPose / AIC use box areas): it fails
    before the first epoch, not at the first evaluation."""
    from slimpose.evaluation.metrics import CocoKeypointMetric

    gt, _ = _gt(tmp_path, bbox=[5, 5, 0, 60])
    spec = SimpleNamespace(use_area=False, info=SimpleNamespace(sigmas=[0.05] * 17))
    with pytest.raises(SlimposeInputError, match=r"gt\.json: annotations\[1\] \(id 2\): bbox width x height 0"):
        CocoKeypointMetric.for_split(spec, gt, [])
    assert CocoKeypointMetric.for_split(SimpleNamespace(use_area=True, info=spec.info), gt, []).use_area


def test_predict_boxes_matching_no_image_and_out_that_is_a_file(synth, tmp_path, capsys):
    """Rows 7f-g: ``predict --boxes`` whose image ids match no image; ``--out`` an existing file: exit 2."""
    import cv2

    ckpt = _model_ckpt(tmp_path / "m.pth", synth, DIM32)
    image = tmp_path / "000000000007.jpg"
    cv2.imwrite(str(image), np.full((64, 48, 3), 127, np.uint8))
    boxes = tmp_path / "dets.json"
    boxes.write_text(json.dumps([{"image_id": 99, "category_id": 1, "bbox": [1, 1, 30, 40], "score": 0.9}]))
    assert main(["predict", str(image), "--checkpoint", str(ckpt), "--boxes", str(boxes), "--no-vis",
                 "--out", str(tmp_path / "p")]) == 2
    err = _err(capsys)
    assert f"{boxes}: no detection matches a source image (detection image ids 99; image ids 7" in err
    assert not (tmp_path / "p" / "results.json").exists()
    out = tmp_path / "taken.txt"
    out.write_text("mine")
    assert main(["predict", str(image), "--checkpoint", str(ckpt), "--out", str(out)]) == 2
    assert f"--out {out}: an existing file" in _err(capsys) and out.read_text() == "mine"


@pytest.mark.parametrize("case", ["missing", "not-onnx", "with-boxes", "with-gt-boxes", "with-mpii-gt"])
def test_predict_detector_bad_inputs(tmp_path, capsys, case):
    """Row 7g': ``predict --detector``: a missing file, a file that is no ONNX model, or with other boxes
    (``--boxes``, ``--gt-boxes``, an MPII json list): exit 2 naming the file, before the checkpoint is read."""
    import cv2

    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"not read")
    image = tmp_path / "000000000007.jpg"
    cv2.imwrite(str(image), np.full((64, 48, 3), 127, np.uint8))
    detector = tmp_path / "det.onnx"
    detector.write_text("not a model")
    boxes = tmp_path / "dets.json"
    boxes.write_text(json.dumps([{"image_id": 7, "category_id": 1, "bbox": [1, 1, 30, 40], "score": 0.9}]))
    gt = tmp_path / "gt.json"
    gt.write_text(json.dumps({"images": [{"id": 7, "file_name": image.name}], "annotations": []}))
    mpii = tmp_path / "mpii.json"
    mpii.write_text("[]")
    extra, message = {
        "missing": (["--detector", str(tmp_path / "none.onnx")], f"detector not found: {tmp_path / 'none.onnx'}"),
        "not-onnx": (["--detector", str(detector)], f"{detector}: not a valid ONNX model"),
        "with-boxes": (["--detector", str(detector), "--boxes", str(boxes)],
                       f"--detector {detector} finds the boxes itself: use it without --boxes"),
        "with-gt-boxes": (["--detector", str(detector), "--gt", str(gt), "--gt-boxes"],
                          f"--detector {detector} finds the boxes itself: use it without --gt-boxes"),
        "with-mpii-gt": (["--detector", str(detector), "--gt", str(mpii)],
                         f"--detector {detector} cannot be used with the MPII json list {mpii}"),
    }[case]
    out = tmp_path / "p"
    assert main(["predict", str(image), "--checkpoint", str(ckpt), "--out", str(out), *extra]) == 2
    assert message in _err(capsys)
    assert not out.exists()


def test_export_opset_out_of_range(tmp_path, capsys):
    """Row 7h: ``export --opset 3``: exit 2 with the supported range, nothing written."""
    ckpt = tmp_path / "m.pth"
    ckpt.write_bytes(b"not read")
    assert main(["export", str(ckpt), "--opset", "3"]) == 2
    assert f"{ckpt}: --opset 3 is not supported (ONNX opsets 13 to" in _err(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]


def test_export_at_an_opset_the_model_needs_more_than(synth, tmp_path, capsys):
    """Row 7h': ``export --opset 13`` is accepted; a model whose attention needs opset 14 gets the exporter's
    reason as one line (exit 2) naming the checkpoint and the opset, and no file."""
    pytest.importorskip("onnxruntime")
    ckpt = _model_ckpt(tmp_path / "m.pth", synth, DIM32)
    assert main(["export", str(ckpt), "--opset", "13"]) == 2
    err = _err(capsys)
    assert f"{ckpt}: --opset 13 cannot express this model: Exporting the operator " in err
    assert "scaled_dot_product_attention" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pth"]


@pytest.mark.parametrize("command", ["data-synth", "export"])
def test_out_of_the_wrong_kind(tmp_path, capsys, command):
    """Row 7j: ``data synth --out`` an existing file, ``export --out`` an existing folder: exit 2, untouched."""
    if command == "data-synth":
        out = tmp_path / "notes.txt"
        out.write_text("mine")
        argv = ["data", "synth", "--out", str(out), "--images", "1", "--no-progress"]
    else:
        out = tmp_path / "folder"
        out.mkdir()
        argv = ["export", str(tmp_path / "m.pth"), "--out", str(out)]
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    assert f"--out {out}: an existing" in _err(capsys)
    assert _snapshot(tmp_path) == before


def test_data_synth_with_more_images_than_the_disk_holds(tmp_path, capsys, monkeypatch):
    """Row 7i: ``data synth --images 1e9``: exit 2 before anything is written (no MemoryError): 1e8 on a disk of
    1 GB free (shutil.disk_usage patched), 1e7 on a machine of 1 GB memory, 1e9 (more images than 9-digit ids
    hold) anywhere."""
    import shutil

    from slimpose.data import synth as S

    big = tmp_path / "big"
    argv = ["data", "synth", "--out", str(big), "--no-progress", "--images"]
    monkeypatch.setattr(S, "available_memory", lambda: 2 ** 50)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=10 ** 9, used=0, free=10 ** 9))
    assert main(argv + ["1e8"]) == 2
    err = _err(capsys)
    assert f"synthetic data set {big}: 100000000 images of 320x256 need at least 819.2 GB, 1.0 GB" in err
    monkeypatch.setattr(shutil, "disk_usage", lambda path: SimpleNamespace(total=2 ** 60, used=0, free=2 ** 60))
    monkeypatch.setattr(S, "available_memory", lambda: 10 ** 9)
    assert main(argv + ["1e7"]) == 2
    assert f"synthetic data set {big}: 10000000 images need at least 20.0 GB of memory" in _err(capsys)
    monkeypatch.setattr(S, "available_memory", lambda: 2 ** 62)
    assert main(argv + ["1e9"]) == 2  # one more than 9-digit ids hold
    assert f"synthetic data set {big}: at most 999,999,999 images per split" in _err(capsys)
    assert not big.exists()


def test_the_onnx_message_names_the_export_extra(monkeypatch):
    """Row 8: the missing-onnx message gives the extra that exists (``slimpose[export]``)."""
    import sys

    from slimpose.export import require_onnx

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(SlimposeInputError, match=r"pip install 'slimpose\[export\]'"):
        require_onnx()


def test_torch_is_a_range_in_the_package_and_pinned_in_the_setup_scripts():
    """Row 9: pyproject asks for a compatible torch range; scripts/env.sh (test.sh, demo.sh, .ci/run) keeps
    installing the exact CPU build first."""
    root = Path(__file__).resolve().parents[2]
    deps = [line.strip().strip('",') for line in (root / "pyproject.toml").read_text().splitlines()
            if line.strip().startswith('"torch')]
    assert deps == ["torch>=2.5"]
    env = (root / "scripts" / "env.sh").read_text()
    assert 'pip install -q --disable-pip-version-check "torch==2.13.0"' in env
    for script in ("scripts/test.sh", "scripts/demo.sh"):
        assert 'source "$ROOT/scripts/env.sh"' in (root / script).read_text()
    assert "scripts/test.sh" in (root / ".ci" / "run").read_text()
