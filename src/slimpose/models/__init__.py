"""Pose models and the model index.

``MODELS`` maps each published variant's name to its factory (a plain dict, written out by hand).
Every factory takes ``num_keypoints=17, input_size=(192, 256)`` (w, h) and keyword overrides; every model
is a ``PoseNet`` (``slimpose.models.base``): an ``input_spec``, a ``head_class`` and ``forward_features`` /
``forward_head``.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from slimpose.models.distilpose import deeppose_res50, distilpose_l, distilpose_s
from slimpose.models.evitpose import evitpose_b, evitpose_s
from slimpose.models.hrnet import hrnet_w32, hrnet_w48
from slimpose.models.litehrnet import litehrnet_18, litehrnet_18_simcc, litehrnet_30, litehrnet_30_simcc
from slimpose.models.sdpose import sdpose_b, sdpose_reg, sdpose_s_v1, sdpose_s_v2, sdpose_t
from slimpose.models.simcc import hrnet_w32_simcc, hrnet_w48_simcc, simcc_res50
from slimpose.models.simplebaseline import simplebaseline_res50, simplebaseline_res101, simplebaseline_res152
from slimpose.models.tokenpose import (
    distilpose_teacher,
    ppt_b,
    ppt_s_v1,
    tokenpose_b,
    tokenpose_l_d24,
    tokenpose_s_v1,
    tokenpose_s_v1_simdr,
    tokenpose_s_v2,
    tokenpose_t,
)
from slimpose.models.unitranspose import unitranspose_b, unitranspose_s, unitranspose_t
from slimpose.models.vitpose import vitpose_b, vitpose_h, vitpose_l, vitpose_s
from slimpose.models.vitpose_plus import vitpose_plus_b, vitpose_plus_h, vitpose_plus_l, vitpose_plus_s
from slimpose.models._factory import create_from

MODELS: dict[str, Callable[..., nn.Module]] = {
    # heatmap CNNs
    "simplebaseline_res50": simplebaseline_res50,
    "simplebaseline_res101": simplebaseline_res101,
    "simplebaseline_res152": simplebaseline_res152,
    "hrnet_w32": hrnet_w32,
    "hrnet_w48": hrnet_w48,
    # Lite-HRNet (heatmaps; SimCC)
    "litehrnet_18": litehrnet_18,
    "litehrnet_30": litehrnet_30,
    "litehrnet_18_simcc": litehrnet_18_simcc,
    "litehrnet_30_simcc": litehrnet_30_simcc,
    # TokenPose family (heatmaps from keypoint tokens)
    "tokenpose_s_v1": tokenpose_s_v1,
    "tokenpose_s_v2": tokenpose_s_v2,
    "tokenpose_t": tokenpose_t,  # no CNN: 16x12 patches of the image
    "tokenpose_b": tokenpose_b,
    "tokenpose_l_d24": tokenpose_l_d24,
    "distilpose_teacher": distilpose_teacher,
    # PPT: TokenPose with keypoint-attention token pruning (same weights as the TokenPose model)
    "ppt_s_v1": ppt_s_v1,
    "ppt_b": ppt_b,
    # SDPose (TokenPose + multi-cycled transformer; forward = the single-pass first cycle)
    "sdpose_t": sdpose_t,
    "sdpose_s_v1": sdpose_s_v1,
    "sdpose_s_v2": sdpose_s_v2,
    "sdpose_b": sdpose_b,
    # regression students
    "deeppose_res50": deeppose_res50,
    "distilpose_s": distilpose_s,
    "distilpose_l": distilpose_l,
    "sdpose_reg": sdpose_reg,
    # coordinate classification (SimCC)
    "simcc_res50": simcc_res50,
    "hrnet_w32_simcc": hrnet_w32_simcc,
    "hrnet_w48_simcc": hrnet_w48_simcc,
    "tokenpose_s_v1_simdr": tokenpose_s_v1_simdr,
    # ViTPose (plain ViT + heatmap decoder; decoder='simple' for the simple one)
    "vitpose_s": vitpose_s,
    "vitpose_b": vitpose_b,
    "vitpose_l": vitpose_l,
    "vitpose_h": vitpose_h,
    # ViTPose++ (MoE feed-forward experts + one decoder per data set; forward = data set 0, COCO)
    "vitpose_plus_s": vitpose_plus_s,
    "vitpose_plus_b": vitpose_plus_b,
    "vitpose_plus_l": vitpose_plus_l,
    "vitpose_plus_h": vitpose_plus_h,
    # EViTPose: ViTPose with joint tokens choosing the patches kept in deeper layers
    "evitpose_s": evitpose_s,
    "evitpose_b": evitpose_b,
    # UniTransPose: hierarchical JAGL encoder, sub-pixel decoder, hybrid heatmap + regression output
    "unitranspose_t": unitranspose_t,
    "unitranspose_s": unitranspose_s,
    "unitranspose_b": unitranspose_b,
}


def create_model(name: str, **overrides) -> nn.Module:
    """Build ``MODELS[name](**overrides)``; an unknown name raises SlimposeInputError listing known ones."""
    return create_from(MODELS, name, "model", **overrides)


__all__ = ["MODELS", "create_model"]
