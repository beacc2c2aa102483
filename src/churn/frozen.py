"""The global settings of a feature build, decided once from the whole data and frozen (`Frozen`).

Every feature of a customer depends on that customer's rows plus a few settings that depend on everyone:
the snapshot dates (the data's range), the event types counted, the survey scale, the BG/NBD fit per date,
how each table's text columns read (its layouts), which tables and columns exist, and the label kind. Built
per customer bucket without freezing them, a bucket would decide them from its own rows (a sandbox run
gave different `btyd_*` features in 657 of 823 rows). So they are decided first and handed to every build:
by the embedded engine from its DuckDB source (`freeze`), on Spark from counts summed over partitions
(`GlobalCounts`, merged with `+`), or at scoring from the model (event types, label, BG/NBD parameters).

Like the fitted preparation, a `Frozen` is a plain value: pickled to Spark's tasks, never changed by a build.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from churn.config import Config

# The survey scale when surveys exist: (highest detractor score, top of the scale).
SurveyScale = tuple[float, float]


@dataclass(frozen=True)
class TableLayout:
    """How one table of the whole data is read: its raw columns as a build receives them (an Arrow schema),
    which of them feed which contract column, and how its text numbers and dates read."""

    name: str
    path: str  # named in messages
    schema: Any  # pyarrow.Schema of the raw columns, as the tables handed to `build_bucket` carry them
    mapping: dict[str, str]  # our column -> the user's column (present columns only)
    missing_required: tuple[str, ...] = ()
    number_styles: dict[str, tuple[str, str]] = field(default_factory=dict)
    date_formats: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Frozen:
    """The settings every bucket of one build shares (see the module docstring)."""

    timezone: str
    label: str  # LabelKind: cancellation or inactivity
    event_types: tuple[str, ...]
    survey_scale: SurveyScale | None  # None: no surveys table
    # BG/NBD parameters (r, alpha, a, b) frozen by a model: predicted with at every date. {}: the model has
    # none (features stay missing). None: fitted per date from the histories of everyone in the snapshot.
    btyd_params: dict[str, float] | None = None
    tables: dict[str, TableLayout] = field(default_factory=dict)  # "table present": the keys
    derived_customers: bool = False  # no customers table: each customer's signup is their first activity
    data_range: tuple[pd.Timestamp, pd.Timestamp] | None = None  # (first activity, day after the last)
    rows: dict[str, int] = field(default_factory=dict)  # rows per table of the whole data
    now: datetime = field(default_factory=lambda: datetime.now(UTC))  # validation's "in the future"
    notices: tuple[str, ...] = ()

    def with_params(self, btyd_params: dict[str, float] | None) -> Frozen:
        """A copy predicting BG/NBD with `btyd_params` (None: fit per date)."""
        return replace(self, btyd_params=None if btyd_params is None else dict(btyd_params))


@dataclass
class GlobalCounts:
    """What the global settings are decided from, as counts that add up over any split of the rows (per
    Spark partition, then merged on the driver with `+`): rows per table, each activity table's first and
    last time, how often each event type is written, the highest survey score, and activity rows at or
    after a scoring date."""

    rows: dict[str, int] = field(default_factory=dict)
    times: dict[str, tuple[pd.Timestamp | None, pd.Timestamp | None]] = field(default_factory=dict)
    event_types: dict[str, int] = field(default_factory=dict)
    survey_max: float | None = None
    activity_after: int = 0

    def __add__(self, other: GlobalCounts) -> GlobalCounts:
        times = dict(self.times)
        for t, (lo, hi) in other.times.items():
            a, b = times.get(t, (None, None))
            times[t] = (_pick(min, a, lo), _pick(max, b, hi))
        types = dict(self.event_types)
        for v, n in other.event_types.items():
            types[v] = types.get(v, 0) + n
        rows = dict(self.rows)
        for t, n in other.rows.items():
            rows[t] = rows.get(t, 0) + n
        return GlobalCounts(rows, times, types, _pick(max, self.survey_max, other.survey_max),
                            self.activity_after + other.activity_after)

    def data_range(self, where: str) -> tuple[pd.Timestamp, pd.Timestamp]:
        """(first activity, day after the last), as `churn.labels.data_range` gives it."""
        from churn.labels import range_of

        los = [lo for lo, _ in self.times.values() if lo is not None]
        his = [hi for _, hi in self.times.values() if hi is not None]
        return range_of(min(los) if los else None, max(his) if his else None, where)


def _pick(fn: Any, a: Any, b: Any) -> Any:
    """fn(a, b) where both are known, else the known one."""
    if a is None:
        return b
    return a if b is None else fn(a, b)


def layouts_of(ds: Any, schemas: Mapping[str, Any] | None = None) -> dict[str, TableLayout]:
    """Each table of an opened source (`churn.sources.DataSource`) as a `TableLayout`; `schemas` gives the
    Arrow schema of the raw tables buckets will receive (a table not in it: its raw relation's). None: no
    schemas (a build over `ds` itself needs none)."""
    out = {}
    for name, info in ds.tables.items():
        schema = None
        if schemas is not None:
            schema = schemas.get(name) or ds.con.execute(
                f"SELECT * FROM {info.raw_view} LIMIT 0").to_arrow_table().schema
        out[name] = TableLayout(name, str(info.path), schema, dict(info.mapping), tuple(info.missing_required),
                                dict(info.number_styles), {k: tuple(v) for k, v in info.date_formats.items()})
    return out


def freeze(ds: Any, config: Config, *, event_types: list[str] | None = None, label: str | None = None,
           btyd_params: dict[str, float] | None = None, with_range: bool = False) -> Frozen:
    """The global settings of the whole source `ds` (a validated `DataSource`), the model's where given:
    `event_types`, `label` and `btyd_params` as `churn.features.engine.build_features` takes them."""
    from churn.features import engagement, feedback
    from churn.features.context import Ctx
    from churn.labels import data_range, label_kind

    ctx = Ctx(ds=ds, config=config, horizon_days=config.label.horizon_days)
    if event_types is None:
        event_types = engagement.discover_event_types(ctx) if "events" in ds.tables else []
    scale = feedback.score_scale(ctx) if "surveys" in ds.tables else None
    return Frozen(timezone=ds.timezone, label=label or label_kind(ds, config), event_types=tuple(event_types),
                  survey_scale=scale, btyd_params=None if btyd_params is None else dict(btyd_params),
                  tables=layouts_of(ds), derived_customers=ds.derived_customers,
                  data_range=data_range(ds) if with_range else None, notices=tuple(ds.notices))


def global_counts(ds: Any, after: pd.Timestamp | None = None) -> GlobalCounts:
    """The `GlobalCounts` of a typed source (the whole data, or one Spark partition's rows)."""
    from churn.contract import ACTIVITY, CONTRACT

    con = ds.con
    rows = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in [*ds.tables, "customers"]}
    times, activity_after = {}, 0
    for t in ACTIVITY:
        if t in ds.tables:
            col = CONTRACT[t].time_column
            since = f"count(*) FILTER (WHERE {col} >= TIMESTAMP '{pd.Timestamp(after)}')" if after is not None else "0"
            lo, hi, n = con.execute(f"SELECT min({col}), max({col}), {since} FROM {t}").fetchone()
            times[t] = (None if lo is None else pd.Timestamp(lo), None if hi is None else pd.Timestamp(hi))
            activity_after += int(n or 0)
    types: dict[str, int] = {}
    if ds.has_column("events", "event_type"):
        types = {v: int(n) for v, n in con.execute(
            "SELECT event_type, count(*) FROM events WHERE event_type IS NOT NULL GROUP BY 1").fetchall()}
    top = con.execute("SELECT max(score) FROM surveys").fetchone()[0] if "surveys" in ds.tables else None
    return GlobalCounts(rows, times, types, None if top is None else float(top), activity_after)


def freeze_counts(counts: GlobalCounts, layouts: dict[str, TableLayout], config: Config, *, where: str,
                  event_types: list[str] | None = None, label: str | None = None,
                  btyd_params: dict[str, float] | None = None, now: datetime | None = None,
                  notices: tuple[str, ...] = ()) -> Frozen:
    """The global settings from counts summed over the whole data (Spark), decided by the same rules as
    `freeze`: the most frequent event types, the survey scale, the label kind, the data range."""
    from churn.features.engagement import choose_event_types
    from churn.features.feedback import scale_of
    from churn.labels import kind_of

    derived = "customers" not in layouts
    has_cancel = not derived and "cancel_date" in layouts["customers"].mapping
    if event_types is None:
        has_type = "events" in layouts and "event_type" in layouts["events"].mapping
        event_types = choose_event_types(sorted(counts.event_types.items(), key=lambda kv: (-kv[1], kv[0])),
                                         config) if has_type else []
    scale = scale_of(counts.survey_max, config) if "surveys" in layouts else None
    return Frozen(timezone=config.sources.timezone, label=label or kind_of(has_cancel, config),
                  event_types=tuple(event_types), survey_scale=scale,
                  btyd_params=None if btyd_params is None else dict(btyd_params), tables=dict(layouts),
                  derived_customers=derived, data_range=counts.data_range(where), rows=dict(counts.rows),
                  now=now or datetime.now(UTC), notices=notices)
