"""A training run from a config: ``build_trainer(cfg, task)`` assembles the ``TrainLoop`` and its hooks.

One code path for 1 and N processes (``torchrun``): a DistributedSampler (also with one process, so that
the shuffling is a function of (seed, epoch) only), DDP around the task, SyncBN option, logging and
checkpoints on rank 0; AMP (CUDA bf16 / fp16 + GradScaler), gradient clipping, linear warm-up + step decay
per iteration. Every epoch writes ``last.pth`` atomically (``best.pth`` when the best metric improves);
``resume`` restores model, head, optimizer, scheduler, scaler, counters, hook states and RNG states so
that a resumed run reproduces the uninterrupted one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from slimpose.config.parse import config_to_dict
from slimpose.config.schema import TrainConfig, validate_config
from slimpose.engine import builders
from slimpose.engine.checkpoint import describe_checkpoint, load_model_weights
from slimpose.engine.distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from slimpose.engine.hooks import CheckpointHook, EpochHook, EvalHook, LoggerHook
from slimpose.engine.loop import TrainLoop
from slimpose.utils.io import SlimposeInputError, remove_stale_tmp, write_json_atomic

TaskOrBuilder = nn.Module | Callable[[], nn.Module] | None


def setup_run(cfg: Any, dist: DistInfo | None, prepare: Callable[[Any], None] = builders.prepare_synthetic
              ) -> tuple[DistInfo, bool]:
    """Distributed init, CPU threads, determinism; ``prepare(cfg)`` (synthetic data written once) on rank 0.
    Returns the process group and whether this call started it."""
    own = dist is None
    dist = dist if dist is not None else init_distributed(cfg.device)
    if cfg.num_threads > 0:
        torch.set_num_threads(cfg.num_threads)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    if dist.is_main:
        prepare(cfg)
    barrier()
    return dist, own




def best_metric(cfg: TrainConfig, metric: Any) -> tuple[str, str]:
    """The metric deciding ``best.pth`` and its direction: ``cfg.best_metric`` / ``best_mode`` or the
    data set metric's primary number and direction (``metric.mode_of(name)`` when the metric has it, else
    'max' for a number other than the primary)."""
    name = cfg.best_metric or metric.primary
    if cfg.best_mode:
        return name, cfg.best_mode
    if hasattr(metric, "mode_of"):  # a metric that knows the direction of each of its numbers
        return name, metric.mode_of(name)
    mode = metric.mode if name == metric.primary else "max"
    return name, mode


def build_trainer(cfg: TrainConfig, task: TaskOrBuilder = None, resume: bool | str = False,
                  dist: DistInfo | None = None, overwrite: bool = False) -> TrainLoop:
    """The training loop of ``cfg``: ``task`` is a built task, a zero-argument builder (called right after
    seeding, so every rank builds the same initial weights) or ``None`` (the ``TopDownTask`` of
    ``cfg.model``). ``resume``: ``True`` / ``'auto'`` continues from ``work_dir/last.pth``, a path from that
    checkpoint. ``overwrite``: an earlier run's files in ``work_dir`` are deleted once the new run is built
(``clear_earlier_run``). The loop's ``close()`` ends a process group it started."""
    cfg = validate_config(cfg)
    dist, own_dist = setup_run(cfg, dist)
    work_dir = start_run(cfg, dist)
    if task is None:
        task = builders.build_topdown_task(cfg)
    elif not isinstance(task, nn.Module):
        task = task()
    task, train_task = wrap_task(cfg, task, dist)
    codec = task.head.codec
    train_loader = builders.build_train_loader(cfg, builders.build_train_dataset(cfg, codec), dist)
    evaluator = builders.build_evaluator(cfg, dist, work_dir, codec)
    return assemble_loop(cfg, task, train_task, train_loader, evaluator, dist, own_dist, resume, overwrite)


# the files of a run that a new run into the same folder would replace or append to
RUN_FILES = ("last.pth", "best.pth", "log.jsonl")
# what else a run writes into its work dir (TensorBoard's folder, the evaluator's outputs): ``--overwrite``
# clears these too, and nothing else in the folder
RUN_OUTPUT_DIRS = ("tb",)
RUN_OUTPUT_GLOBS = ("metrics_*.json", "results_*.json", "predictions_*.npz")


def continues_run(work_dir: str | os.PathLike, resume: bool | str = False) -> bool:
    """Whether ``resume`` continues the run in ``work_dir``: ``True`` / ``'auto'`` (its ``last.pth``) or a
    checkpoint inside ``work_dir``; a checkpoint of another folder starts a new run here."""
    if resume in (True, "auto"):
        return True
    if not resume:
        return False
    try:
        Path(str(resume)).expanduser().resolve().relative_to(Path(work_dir).expanduser().resolve())
    except ValueError:
        return False
    return True


def check_work_dir(work_dir: str | os.PathLike, resume: bool | str = False, overwrite: bool = False,
                   is_main: bool = True) -> None:
    """Refuse to start a fresh run in a folder holding an earlier run's checkpoints (``slimpose train`` without
    ``--resume``): a SlimposeInputError naming them; with ``overwrite`` it passes. It deletes nothing: the
    earlier run's files go in ``assemble_loop(..., overwrite=True)`` once the new run is built (and a resume
    succeeded), so a run that fails to start leaves the earlier one whole. A ``resume`` of a checkpoint inside
    ``work_dir`` (``True`` / ``'auto'``: its ``last.pth``) continues that run and passes; one from another
    folder starts a new run here and is checked like a fresh start. ``is_main`` is kept for the callers."""
    work_dir = Path(work_dir)
    if continues_run(work_dir, resume):
        return
    found = [name for name in RUN_FILES[:2] if (work_dir / name).is_file()]
    if found and not overwrite:
        raise SlimposeInputError(f"{work_dir} holds {' and '.join(found)} of an earlier run: continue it with "
                                 "--resume, pass --overwrite to replace it, or choose another --work-dir")


def clear_earlier_run(work_dir: str | os.PathLike) -> list[Path]:
    """Delete what an earlier run wrote into ``work_dir`` (``RUN_FILES``, ``tb/``, ``metrics_*.json``,
    ``results_*.json``, ``predictions_*.npz``; not ``config.json``, which the new run has just rewritten, nor
    any other file); returns the deleted paths. ``--overwrite``, called by rank 0 once the new run is built."""
    import shutil

    work_dir = Path(work_dir)
    gone = [work_dir / name for name in RUN_FILES if (work_dir / name).is_file()]
    for pattern in RUN_OUTPUT_GLOBS:
        gone += sorted(p for p in work_dir.glob(pattern) if p.is_file())
    for path in gone:
        path.unlink(missing_ok=True)
    for name in RUN_OUTPUT_DIRS:
        if (work_dir / name).is_dir():
            shutil.rmtree(work_dir / name)
            gone.append(work_dir / name)
    return gone


def start_run(cfg: Any, dist: DistInfo) -> Path:
    """The run's folder (rank 0; temporary files a killed run left there are removed), then the seed every
    rank builds its weights with. ``config.json`` is written by ``assemble_loop`` once the run is set up, so
    that a run that fails to start leaves an existing one alone."""
    work_dir = Path(cfg.work_dir)
    if dist.is_main:
        work_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(work_dir)
    builders.seed_everything(cfg.seed)  # same initial weights on every rank
    return work_dir


def wrap_task(cfg: Any, task: nn.Module, dist: DistInfo) -> tuple[nn.Module, nn.Module]:
    """``task`` on the run's device (SyncBN with ``cfg.sync_bn``) and what the forward goes through: the task
    itself or its DistributedDataParallel wrapper."""
    device = dist.device
    task = task.to(device)
    if cfg.sync_bn and dist.distributed:
        if device.type != "cuda":
            raise SlimposeInputError("sync_bn needs CUDA (SyncBatchNorm has no CPU implementation)")
        task = nn.SyncBatchNorm.convert_sync_batchnorm(task)
    train_task: nn.Module = task
    if dist.distributed:
        ids = [device.index] if device.type == "cuda" else None
        train_task = nn.parallel.DistributedDataParallel(task, device_ids=ids,
                                                         find_unused_parameters=cfg.find_unused_parameters)
    return task, train_task


def assemble_loop(cfg: Any, task: nn.Module, train_task: nn.Module, train_loader: Any, evaluator: Any,
                  dist: DistInfo, own_dist: bool, resume: bool | str = False, overwrite: bool = False
                  ) -> TrainLoop:
    """The loop around a built task, its loader and evaluator: optimizer, schedule, AMP, the hooks
    (evaluation, last / best checkpoint by the metric's direction, logging, a distiller's epoch), the per-rank
    RNG stream and an optional resume; then the run's ``config.json`` (rank 0) and, with ``overwrite``, the
    deletion of an earlier run's files (``clear_earlier_run``: only now, when the build and resume have
    succeeded, so a run that fails to start destroys nothing). Shared by every family (2-D
    top-down, 3-D lifting)."""
    device = dist.device
    work_dir = Path(cfg.work_dir)
    optimizer = builders.build_optimizer(cfg, task)
    scheduler = builders.build_scheduler(cfg, optimizer, len(train_loader))
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16" and device.type == "cuda")
    autocast = builders.autocast_factory(cfg.amp, device)
    if cfg.amp != "none" and device.type != "cuda" and dist.is_main:
        print(f"[slimpose] amp={cfg.amp!r} ignored: training on {device}", file=sys.stderr)

    progress = dist.is_main and sys.stderr.isatty()
    metric, mode = best_metric(cfg, evaluator.metric)
    hooks = [EvalHook(evaluator, cfg.eval_interval, autocast, progress), CheckpointHook(work_dir, metric, mode),
             LoggerHook(work_dir, cfg.log_interval, cfg.tensorboard, ("train_loss", f"val_{metric}"),
                        enabled=dist.is_main)]
    if hasattr(task, "set_epoch"):  # a distiller's schedule
        hooks.insert(0, EpochHook(task))
    loop = TrainLoop(task, train_loader, optimizer, cfg.schedule.epochs, scheduler, hooks, train_task=train_task,
                     dist=dist, autocast=autocast, scaler=scaler, grad_clip=cfg.optim.grad_clip, work_dir=work_dir,
                     loss_spike=cfg.optim.loss_spike,
                     metadata={"config": config_to_dict(cfg), "model_name": cfg.model.name}, progress=progress,
                     on_close=(lambda: cleanup_distributed(dist)) if own_dist else None)
    # a per-rank RNG stream for dropout etc. (the initial weights above are identical on every rank)
    builders.seed_everything(cfg.seed + 1000 * dist.rank + 1)
    if resume:
        path = work_dir / "last.pth" if resume in (True, "auto") else Path(str(resume))
        loop.resume_from(path, reseed=lambda step: builders.seed_everything(cfg.seed + 1000 * dist.rank + 1 + step))
    if dist.is_main:
        if overwrite and not continues_run(work_dir, resume):  # a resume of this run keeps it
            clear_earlier_run(work_dir)
        write_json_atomic(work_dir / "config.json", config_to_dict(cfg), indent=2)
    return loop


def evaluate_checkpoint(cfg: TrainConfig, checkpoint: str | os.PathLike, out_dir: str | os.PathLike | None = None,
                        dist: DistInfo | None = None, tag: str = "eval",
                        build: Callable[[TrainConfig], nn.Module] | None = None) -> dict[str, float]:
    """Build the model of ``cfg`` (``build(cfg)``; default ``builders.build_model`` without pretrained weights),
    load ``checkpoint`` and evaluate it on the validation split."""
    cfg = validate_config(cfg)
    dist, own = setup_run(cfg, dist)
    try:
        model = build(cfg) if build is not None else builders.build_model(cfg, load_pretrained=False)
        load_model_weights(model, checkpoint, expected=describe_checkpoint({"config": config_to_dict(cfg)}))
        task = builders.build_topdown_task(cfg, model).to(dist.device)
        evaluator = builders.build_evaluator(cfg, dist, out_dir if out_dir is not None else cfg.work_dir,
                                             task.head.codec)
        return evaluator.run(task, tag=tag, autocast=builders.autocast_factory(cfg.amp, dist.device))
    finally:
        if own:
            cleanup_distributed(dist)
