"""Training recipes (one function per published configuration) and config loading by name or file."""

from __future__ import annotations

import os
from pathlib import Path

from slimpose.configs.recipes import RECIPES
from slimpose.engine.config import TrainConfig, config_from_dict
from slimpose.utils.io import SlimposeInputError, load_json

DEFAULT_RECIPE = "tokenpose_tiny_synthetic"


def all_recipes() -> dict:
    """Every built-in recipe: heatmap models, DistilPose students and SDPose models."""
    from slimpose.configs import distill_recipes, sdpose_recipes

    return {**RECIPES, **distill_recipes.RECIPES, **sdpose_recipes.RECIPES}


def get_config(name_or_path: str | os.PathLike) -> TrainConfig:
    """A recipe by name (any of ``all_recipes()``) or a ``config.json`` file written by a run.

    A file with a ``distill`` section gives a ``DistillConfig``, one with an ``sdpose`` section an
    ``SDPoseConfig`` (both are ``TrainConfig`` subclasses), anything else a ``TrainConfig``.
    """
    key = str(name_or_path)
    recipes = all_recipes()
    if key in recipes:
        return recipes[key]()
    path = Path(key)
    if path.suffix == ".json" or path.exists():
        data = load_json(path, "config file")
        if isinstance(data, dict) and "distill" in data:
            from slimpose.configs.distill_recipes import distill_config_from_dict

            return distill_config_from_dict(data, where=str(path))
        if isinstance(data, dict) and "sdpose" in data:
            from slimpose.configs.sdpose_recipes import sdpose_config_from_dict

            return sdpose_config_from_dict(data, where=str(path))
        return config_from_dict(data, where=str(path))
    raise SlimposeInputError(
        f"unknown config {key!r}: not a recipe ({', '.join(sorted(recipes))}) nor an existing JSON file"
    )


__all__ = ["RECIPES", "DEFAULT_RECIPE", "all_recipes", "get_config"]
