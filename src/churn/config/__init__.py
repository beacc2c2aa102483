"""The configuration: one schema, its cross-checks, and loading from YAML.

Configs are YAML. A section may be given inline or as the name of another YAML file next to the config
(``incentives: incentives.yaml``), so long catalogues live in their own file. Unknown keys are errors, so a
typo in a config is reported instead of silently ignored.

`schema` holds the sections (pydantic models with working defaults), `checks` the inconsistencies between
settings (`config_problems`, `check_config`), `load` the reading (`load_config`, `DEFAULT_CONFIG`) and the
MLflow locations (`tracking_uri`, `artifact_root`). Everything is importable from `churn.config`.
"""

from __future__ import annotations

from churn.config.checks import check_config, config_problems
from churn.config.load import DEFAULT_CONFIG, artifact_root, load_config, tracking_uri
from churn.config.schema import (
    ACTIVITY_TABLES,
    TABLES,
    ChannelsConfig,
    Config,
    Eligibility,
    EngagementConfig,
    EngineConfig,
    FeaturesConfig,
    FeedbackConfig,
    Incentive,
    IncentivesConfig,
    LabelConfig,
    ModelConfig,
    ProfileConfig,
    PurchasesConfig,
    ScoringConfig,
    SnapshotsConfig,
    SourcesConfig,
    SupportConfig,
    TableSource,
    TierLevel,
    TiersConfig,
    ValueConfig,
)

__all__ = [
    "ACTIVITY_TABLES",
    "DEFAULT_CONFIG",
    "TABLES",
    "ChannelsConfig",
    "Config",
    "Eligibility",
    "EngagementConfig",
    "EngineConfig",
    "FeaturesConfig",
    "FeedbackConfig",
    "Incentive",
    "IncentivesConfig",
    "LabelConfig",
    "ModelConfig",
    "ProfileConfig",
    "PurchasesConfig",
    "ScoringConfig",
    "SnapshotsConfig",
    "SourcesConfig",
    "SupportConfig",
    "TableSource",
    "TierLevel",
    "TiersConfig",
    "ValueConfig",
    "artifact_root",
    "check_config",
    "config_problems",
    "load_config",
    "tracking_uri",
]
