"""Training from a config, for every method: the task (a ``TopDownTask``, or a ``Distiller`` when the config
has a method section) and the training loop around it. What ``slimpose train`` / ``slimpose distill``, the
demo and the benchmarks call."""

from __future__ import annotations

from torch import nn

from slimpose.config.schema import TrainConfig
from slimpose.engine.builders import build_topdown_task
from slimpose.engine.distributed import DistInfo
from slimpose.engine.loop import TrainLoop
from slimpose.engine.trainer import build_trainer


def uses_distiller(cfg: TrainConfig) -> bool:
    return (cfg.distill is not None or cfg.sdpose is not None or cfg.multikd is not None
            or cfg.knowledge_token is not None)


def build_task(cfg: TrainConfig, teacher: nn.Module | None = None) -> nn.Module:
    """The task of ``cfg``: its model trained through its head, with the distiller of its method section."""
    if not uses_distiller(cfg):
        return build_topdown_task(cfg)
    from slimpose.distillation.build import build_distiller

    return build_distiller(cfg, teacher)


def build_config_model(cfg: TrainConfig, load_pretrained: bool = True) -> nn.Module:
    """The model ``cfg`` trains, without its distiller: a model with a knowledge token (built by
    ``distillation.knowledge_token``, which the engine may not import) or ``builders.build_model``. What loading
    and evaluating a checkpoint rebuild."""
    if cfg.knowledge_token is not None:
        from slimpose.distillation.knowledge_token import build_token_model

        return build_token_model(cfg, load_pretrained=load_pretrained)[0]
    from slimpose.engine.builders import build_model

    return build_model(cfg, load_pretrained=load_pretrained)


def make_trainer(cfg: TrainConfig, resume: bool | str = False, teacher: nn.Module | None = None,
                 dist: DistInfo | None = None, overwrite: bool = False) -> TrainLoop:
    """The training loop of ``cfg`` (see ``engine.trainer.build_trainer``); ``teacher``: a model of the
    teacher checkpoint's architecture built by the caller (its weights are loaded from the checkpoint). A
    lifting config (``family = "lifting"``) gets ``slimpose.lifting.train.build_lift_trainer``. ``overwrite``:
    an earlier run's files in the work dir are deleted once the new run is built (``--overwrite``)."""
    if getattr(cfg, "family", None) == "lifting":
        from slimpose.lifting.train import build_lift_trainer

        return build_lift_trainer(cfg, resume, dist, overwrite=overwrite)
    return build_trainer(cfg, lambda: build_task(cfg, teacher), resume, dist, overwrite=overwrite)


def fit_config(cfg: TrainConfig, teacher: nn.Module | None = None) -> tuple[dict, TrainLoop]:
    """Train ``cfg`` to the end (``make_trainer(cfg).fit()``, the loop closed after); returns the summary of the
    last epoch and the loop (its ``global_step`` / ``epoch``). What the benchmark scripts run per row."""
    loop = make_trainer(cfg, teacher=teacher)
    try:
        summary = loop.fit()
    finally:
        loop.close()
    return summary, loop
