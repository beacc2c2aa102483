"""A model's features rebuilt from raw data: the settings it was trained with (its fitted preparation holds
them) and the feature engine run with them. `churn score` builds one date (`churn.scoring.score.source_rows`;
Spark scoring reads the settings and builds per bucket); `churn campaign-effect` builds every campaign's date
in one pass (`model_features`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from churn.config import Config, FeaturesConfig
from churn.errors import ChurnError

Progress = Callable[[str], None] | None


def model_feature_metadata(model: Any) -> dict[str, Any]:
    """The feature-building settings a model was trained with (empty for bring-your-own tables): those its
    fitted preparation holds. (A model without a preparation predates it and could not score anyway.)"""
    return model.source_settings


def rebuildable(model: Any) -> bool:
    """Whether the model's features can be rebuilt from raw data (False: it was trained on a ready table)."""
    return bool(model_feature_metadata(model).get("features_config"))


def features_config(model: Any, config: Config, model_ref: str = "the model") -> Config:
    """The run config with feature and label settings replaced by the model's own (so columns match its
    training); ChurnError when the model was trained on a ready feature table."""
    if not rebuildable(model):
        raise ChurnError(f"model {model_ref} was trained on a ready feature table; score it with --table")
    meta = model_feature_metadata(model)
    update: dict[str, Any] = {"features": FeaturesConfig.model_validate(meta["features_config"])}
    if meta.get("label_config"):
        update["label"] = config.label.model_validate(meta["label_config"])
    return config.model_copy(update=update)


def build_for_model(ds: Any, model: Any, dates: Sequence[pd.Timestamp], cfg: Config, progress: Progress = None
                    ) -> Any:
    """The feature engine over the open source `ds` at `dates`, with the model's event types, label and BG/NBD
    parameters (`cfg` from `features_config`): a `churn.features.engine.FeatureSet`."""
    from churn.features.engine import build_features

    meta = model_feature_metadata(model)
    return build_features(ds, list(dates), cfg, event_types=meta.get("event_types"), label=meta.get("label"),
                          btyd_params=meta.get("btyd_params"), progress=progress)


def model_features(model: Any, data: str | None, dates: Sequence[pd.Timestamp], config: Config,
                   keep: Callable[[pd.Timestamp, pd.DataFrame], pd.DataFrame] | None = None, *,
                   model_ref: str = "the model", progress: Progress = None) -> dict[pd.Timestamp, pd.DataFrame]:
    """Per date of `dates`: customer_id, as_of and the model's features for every customer on the spine at
    that date, as `churn score` builds them for one date, passed through `keep(date, rows)` (e.g. only the
    customers wanted). Every date is built in one pass over `data` (validated once); one date's rows at a
    time are read into memory. For past dates: no scoring-date checks and no population statuses."""
    from churn.validation import load_source

    cfg = features_config(model, config, model_ref)
    if progress:
        progress("validating data")
    ds = load_source(data, cfg)
    try:
        fs = build_for_model(ds, model, sorted(set(map(pd.Timestamp, dates))), cfg, progress)
        return {d: keep(d, fs.date_frame(d)) if keep else fs.date_frame(d) for d in fs.as_of}
    finally:
        ds.con.close()
