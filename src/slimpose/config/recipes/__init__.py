"""Published training recipes, one function each, and config loading by recipe name or file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from slimpose.config.parse import load_config_file
from slimpose.config.recipes import (distilpose, knowledge_token, lifting, litehrnet, multikd, sdpose, simcc, topdown,
                                     unitranspose, vitpose)
from slimpose.config.schema import TrainConfig
from slimpose.utils.io import SlimposeInputError

DEFAULT_RECIPE = "tokenpose_tiny_synthetic"

RECIPES: dict[str, Callable[[], Any]] = {
    **topdown.RECIPES, **distilpose.RECIPES, **sdpose.RECIPES, **simcc.RECIPES, **litehrnet.RECIPES,
    **multikd.RECIPES, **vitpose.RECIPES, **knowledge_token.RECIPES, **unitranspose.RECIPES, **lifting.RECIPES,
}


def get_config(name_or_path: str | os.PathLike) -> Any:
    """A recipe by name (any of ``RECIPES``) or a ``config.json`` file written by a run: a ``TrainConfig``, or a
    ``LiftConfig`` for the 3-D lifting recipes and runs."""
    key = str(name_or_path)
    if key in RECIPES:
        return RECIPES[key]()
    path = Path(key)
    if path.suffix == ".json" or path.exists():
        return load_config_file(path)
    raise SlimposeInputError(
        f"unknown config {key!r}: not a recipe ({', '.join(sorted(RECIPES))}) nor an existing JSON file"
    )


__all__ = ["RECIPES", "DEFAULT_RECIPE", "get_config"]
