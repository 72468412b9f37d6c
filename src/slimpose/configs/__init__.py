"""Training recipes (one function per published configuration) and config loading by name or file."""

from __future__ import annotations

import os
from pathlib import Path

from slimpose.configs.recipes import RECIPES
from slimpose.engine.config import TrainConfig, load_config_file
from slimpose.utils.io import SlimposeInputError

DEFAULT_RECIPE = "tokenpose_tiny_synthetic"


def get_config(name_or_path: str | os.PathLike) -> TrainConfig:
    """A recipe by name (``RECIPES``) or a ``config.json`` file written by a run."""
    key = str(name_or_path)
    if key in RECIPES:
        return RECIPES[key]()
    path = Path(key)
    if path.suffix == ".json" or path.exists():
        return load_config_file(path)
    raise SlimposeInputError(
        f"unknown config {key!r}: not a recipe ({', '.join(RECIPES)}) nor an existing JSON file"
    )


__all__ = ["RECIPES", "DEFAULT_RECIPE", "get_config"]
