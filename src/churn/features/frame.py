"""The labelled training frame: features plus label at every usable snapshot date, and what a model must
remember of how it was built (`TrainingFrame`). Built here from a DuckDB source, or on Spark
(`churn.spark.flows`) with the same dates, record and notices (`training_dates`, `training_frame`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.labels import LabelKind, create_labels, data_range
from churn.sources import DataSource
from churn.timeline import label_complete, parse_as_of, snapshot_dates


@dataclass
class TrainingFrame:
    """Stacked labelled snapshots ready for training."""

    frame: pd.DataFrame
    features: list[Feature]
    as_of: list[pd.Timestamp]
    excluded_as_of: list[pd.Timestamp]
    label: LabelKind
    fingerprint: dict[str, Any]
    metadata: dict[str, Any]
    notices: list[str]

    def source_settings(self) -> dict[str, Any]:
        """What scoring must reuse to build the same features (stored in the model's fitted preparation):
        label kind, event types chosen, horizon, the feature and label configuration (survey scale
        frozen) and the BG/NBD parameters."""
        keep = ("label", "event_types", "horizon_days", "label_config", "features_config", "btyd_params")
        return {k: self.metadata[k] for k in keep if k in self.metadata}


def training_as_of(ds: DataSource, config: Config, explicit: list[Any] | None = None,
                   notices: list[str] | None = None) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """(usable as_of dates, dates dropped because their label window is not complete); what explicit dates
    call for (a repeat, overlapping label windows) is added to `notices`."""
    return training_dates(*data_range(ds), config, explicit, notices)


def training_dates(start: pd.Timestamp, end: pd.Timestamp, config: Config, explicit: list[Any] | None = None,
                   notices: list[str] | None = None) -> tuple[list[pd.Timestamp], list[pd.Timestamp]]:
    """`training_as_of` for data whose activity runs from `start` to `end` (exclusive)."""
    s = config.snapshots
    dates = snapshot_dates(
        explicit=[parse_as_of(d) for d in explicit] if explicit else s.as_of, count=s.count,
        every_days=s.every_days, end=s.end, data_start=start, data_end=end,
        horizon_days=config.label.horizon_days, min_history_days=s.min_history_days, notices=notices,
    )
    keep = [d for d in dates if label_complete(d, config.label.horizon_days, end)]
    dropped = [d for d in dates if d not in keep]
    if not keep:
        raise ChurnError(
            f"no as-of date has a complete label window: data ends {end.date()} and the horizon is "
            f"{config.label.horizon_days} days; use an earlier --as-of"
        )
    return keep, dropped


def build_training_frame(ds: DataSource, config: Config, as_of: list[Any] | None = None,
                         progress: Callable[[str], None] | None = None) -> TrainingFrame:
    """Features plus label for every usable snapshot, most recent incomplete ones excluded."""
    from churn.features.engine import build_features

    date_notices: list[str] = []
    dates, dropped = training_as_of(ds, config, as_of, date_notices)
    fs = build_features(ds, dates, config, progress=progress)
    create_labels(ds, config, fs.label)
    frame = fs.to_pandas(with_label=True)
    counts = {t: ds.con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in [*ds.tables, "customers"]}
    scale = fs.ctx.survey_scale if fs.ctx is not None else None
    return training_frame(frame, list(fs.registry), dates, dropped, fs.label, fs.metadata(), config,
                          rows=counts, data=data_range(ds), survey_scale=scale,
                          notices=fs.notices + date_notices)


def training_frame(frame: pd.DataFrame, features: list[Feature], dates: list[pd.Timestamp],
                   dropped: list[pd.Timestamp], label: LabelKind, metadata: dict[str, Any], config: Config, *,
                   rows: dict[str, int], data: tuple[pd.Timestamp, pd.Timestamp],
                   survey_scale: tuple[float, float] | None, notices: list[str]) -> TrainingFrame:
    """The `TrainingFrame` of a built frame (ordered by as_of, customer_id): its fingerprint (rows per table,
    data range, snapshots, a hash of its keys and labels) and the settings scoring must reuse (`metadata`
    of the build, the horizon, the label and feature configuration with the survey scale frozen)."""
    start, end = data
    fingerprint = {
        "rows": rows, "data_start": str(start.date()), "data_end": str(end.date()),
        "snapshots": [str(d.date()) for d in dates], "frame_rows": len(frame),
        "frame_hash": str(pd.util.hash_pandas_object(frame[["customer_id", "as_of", "churned"]], index=False).sum()),
    }
    features_config = config.features.model_dump(mode="json")
    if survey_scale is not None and config.features.feedback.detractor_max is None:
        # Freeze the inferred survey scale, so scoring applies the detractor cut-off training used.
        features_config["feedback"]["detractor_max"] = survey_scale[0]
    meta = metadata | {"horizon_days": config.label.horizon_days,
                       "label_config": config.label.model_dump(mode="json"),
                       "features_config": features_config}
    notices = notices + ([(f"as-of dates without a complete label window excluded: "
                           f"{', '.join(str(d.date()) for d in dropped)}")] if dropped else [])
    return TrainingFrame(frame, features, dates, dropped, label, fingerprint, meta, notices)
