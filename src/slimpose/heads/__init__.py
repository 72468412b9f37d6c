"""Heads: what a model's raw output means (targets, loss, flip test, decoding, export decoding)."""

from slimpose.heads.base import Head, build_head, default_head
from slimpose.heads.heatmap import HeatmapHead
from slimpose.heads.regression import RegressionHead, RLEHead
from slimpose.heads.simcc import SimCCHead

__all__ = ["Head", "build_head", "default_head", "HeatmapHead", "RegressionHead", "RLEHead", "SimCCHead"]
