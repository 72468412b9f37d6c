"""Configuration: the dataclass tree (``schema``), its one parser (``parse``) and the recipes."""

from slimpose.config.parse import (
    apply_override,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config_file,
)
from slimpose.config.recipes import DEFAULT_RECIPE, RECIPES, get_config
from slimpose.config.schema import (
    AugmentParams,
    DataConfig,
    DataSource,
    DistilPoseConfig,
    KnowledgeTokenConfig,
    ModelConfig,
    MultiKDConfig,
    OptimConfig,
    ScheduleConfig,
    SDPoseConfig,
    SimCCParams,
    TrainConfig,
    validate_config,
)

__all__ = [
    "AugmentParams", "DataConfig", "DataSource", "DistilPoseConfig", "KnowledgeTokenConfig", "ModelConfig",
    "MultiKDConfig", "OptimConfig", "ScheduleConfig", "SDPoseConfig", "SimCCParams", "TrainConfig", "validate_config",
    "apply_override", "apply_overrides", "config_from_dict", "config_to_dict", "load_config_file", "DEFAULT_RECIPE",
    "RECIPES", "get_config",
]
