"""Shared fixtures of the engine tests: the tiny synthetic data set and tiny training configs."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import pytest

from slimpose.config import TrainConfig, apply_overrides

# the synthetic data set and the tiny input / heatmap geometry every engine test trains on
SYNTH_DATA = [
    "data.dataset=synthetic",
    "data.input_size=48,64",
    "data.heatmap_size=12,16",
    "data.sigma=1.5",
    "data.synthetic_train_images=200",
    "data.synthetic_val_images=24",
    "data.synthetic_image_size=160,128",
]


def _tiny_config(overrides: Sequence[str], data_root: Path, work_dir: Path,
                 extra: Sequence[str] = ()) -> TrainConfig:
    paths = [f"data.data_root={data_root}", f"work_dir={work_dir}"]
    return apply_overrides(TrainConfig(), SYNTH_DATA + list(overrides) + paths + list(extra))


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory) -> Path:
    """~200 small synthetic images (train) + 24 (val), generated once per session."""
    from slimpose.engine.builders import prepare_synthetic

    root = tmp_path_factory.getbasetemp() / "engine_synth"
    prepare_synthetic(_tiny_config([], root, root / "unused"))
    return root


@pytest.fixture
def tiny_config() -> Callable[..., TrainConfig]:
    """``tiny_config(overrides, data_root, work_dir, extra=())``: a TrainConfig from ``SYNTH_DATA`` +
    the test module's ``overrides`` + the paths + ``extra`` (``--set`` strings, applied in that order)."""
    return _tiny_config
