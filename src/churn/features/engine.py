"""Build the point-in-time feature table (and the labelled training frame) for a set of as_of dates.

The flow, in one place: as_of dates -> snapshot spine (sorted once by as_of, customer) -> each family's
columns -> one table per as_of date in customer order, keyed by (customer_id, as_of), streamed into the
output file or pandas. Every family (engagement, support, purchases, feedback, profile) has DuckDB read or
list each customer's rows once for all dates, placed on the spine by a hash lookup of the customers, and a
compiled (numba) pass or array take per date writes the date's spine rows directly. BG/NBD is fitted per
as_of on the distinct purchase histories (its likelihood compiled too), unless the parameters a model
stored are given (scoring). The compiled work and the fits run on one background thread while DuckDB lists
the next family (`Ctx.later`).
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.features import engagement, feedback, profile, purchases, support
from churn.features.context import Ctx, ts_lit
from churn.features.registry import Registry
from churn.frozen import Frozen, freeze
from churn.io import atomic_path, ensure_writable
from churn.labels import LabelKind, create_spine
from churn.sources import DataSource, _lit, _q
from churn.timeline import parse_as_of

# Family -> (module, table it needs). Profile needs only customers, which always exist (maybe derived).
FAMILIES: dict[str, tuple[Any, str]] = {
    "engagement": (engagement, "events"),
    "support": (support, "tickets"),
    "purchases": (purchases, "orders"),
    "feedback": (feedback, "surveys"),
    "profile": (profile, "customers"),
}
# Family -> (its compiled pass, the table that pass needs): loaded in the background as a build starts.
KERNELS: dict[str, tuple[str, str]] = {
    "purchases": ("churn.features.purchases_kernel", "orders"),
    "support": ("churn.features.support_kernel", "tickets"),
    "feedback": ("churn.features.feedback_kernel", "surveys"),
    "profile": ("churn.features.profile_kernel", "fee_changes"),
    "engagement": ("churn.features.engagement_kernel", "events"),
}
KEYS = ["customer_id", "as_of"]
ROW_GROUP = 122_880  # rows: DuckDB's row group, and the Parquet row groups written


@dataclass
class FeatureSet:
    """The result of a build: each date's feature query over the source's DuckDB connection, and the registry."""

    ds: DataSource
    registry: Registry
    as_of: list[pd.Timestamp]
    label: LabelKind
    event_types: list[str]
    # as_of literal -> the SELECT of that date's feature rows (see `_assemble`).
    date_select: Callable[[str], str] = field(repr=False)
    notices: list[str] = field(default_factory=list)
    # BG/NBD parameters per date fitted by this build, filled by the background work `btyd_done`.
    btyd_fitted: dict[pd.Timestamp, dict[str, float]] = field(default_factory=dict)
    btyd_done: Future | None = field(default=None, repr=False)
    ctx: Ctx | None = field(default=None, repr=False)  # the build's context (a bucket's BG/NBD counts)

    def _date_sql(self, columns: list[str], when: pd.Timestamp, with_label: bool = False) -> str:
        """One as_of date's feature rows (`columns` of alias f, and the label), in customer order.

        One date at a time: one date's rows are one table already in customer order (see `_date_table`), so
        only the label's join needs a sort.
        """
        sql = f"SELECT {', '.join(columns)}" + (", l.churned" if with_label else "")
        sql += f" FROM ({self.date_select(ts_lit(when))}) f"
        if with_label:
            # A join does not keep the order; the rows alone are a scan of one table in customer order.
            sql += " JOIN labels l USING (customer_id, as_of) ORDER BY f.customer_id"
        return sql

    def rows(self) -> int:
        """How many (customer, as_of) rows the feature table has: one per spine row (counting the feature
        queries' rows would run the whole build again)."""
        return self.ds.con.execute("SELECT count(*) FROM spine").fetchone()[0]

    def to_pandas(self, with_label: bool = False) -> pd.DataFrame:
        """The features (and label) as pandas, ordered by (as_of, customer_id): categoricals as text,
        numbers as float."""
        parts = [self._date_rows(d, with_label) for d in self.as_of]
        return feature_frame(pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0], self.registry)

    def date_frame(self, when: pd.Timestamp) -> pd.DataFrame:
        """One as-of date's rows of `to_pandas`, read alone (memory for one date, however many were built)."""
        return feature_frame(self._date_rows(pd.Timestamp(when)), self.registry)

    def _date_rows(self, when: pd.Timestamp, with_label: bool = False) -> pd.DataFrame:
        cols = [f"f.{_q(c)}" for c in [*KEYS, *self.registry.names]]
        return self.ds.con.execute(self._date_sql(cols, when, with_label)).df()

    @property
    def hidden(self) -> list[str]:
        """Columns a bucket hands on besides the features (each row's BG/NBD history, for the later fit)."""
        return list(self.ctx.hidden) if self.ctx is not None else []

    def to_arrow(self, with_label: bool = False) -> Any:
        """The features (and label, and the `hidden` columns) as one Arrow table, ordered by (as_of,
        customer_id)."""
        import pyarrow as pa

        cols = [f"f.{_q(c)}" for c in [*KEYS, *self.registry.names, *self.hidden]]
        return pa.concat_tables([self.ds.con.execute(self._date_sql(cols, d, with_label)).to_arrow_table()
                                 for d in self.as_of])

    def write(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write the feature table (Parquet or CSV by suffix) straight from DuckDB, atomically, ordered by
        (as_of, customer_id)."""
        p = Path(path)
        # USE_TMP_FILE false: the file is churn's temporary already (atomic_path); DuckDB need not write a
        # `tmp_` file of its own beside it and rename it over.
        fmt = {".parquet": "(FORMAT PARQUET, USE_TMP_FILE false)",
               ".csv": "(FORMAT CSV, HEADER, USE_TMP_FILE false)"}.get(p.suffix.lower())
        if fmt is None:
            raise ChurnError(f"{p}: output must end in .parquet or .csv")
        ensure_writable(p, overwrite)
        cols = [f"f.{_q(c)}" for c in [*KEYS, *self.registry.names]]
        con = self.ds.con
        with atomic_path(p, overwrite) as tmp:
            if len(self.as_of) == 1:
                con.execute(f"COPY ({self._date_sql(cols, self.as_of[0])}) TO {_lit(str(tmp))} {fmt}")
                return p
            # Date by date into one file, with no intermediate copy of the whole table: Arrow batches into
            # one Parquet writer, or CSV parts (header on the first only) appended byte for byte.
            if p.suffix.lower() == ".parquet":
                import pyarrow.parquet as pq

                # Each date's rows are encoded in a worker thread while DuckDB computes the next date (the
                # encoder is single-threaded and releases the GIL; DuckDB leaves part of the second core idle).
                # At most one date waits to be written, so memory holds two dates' rows at most.
                writer, pending = None, None
                with ThreadPoolExecutor(1, thread_name_prefix="parquet") as pool:
                    try:
                        for d in self.as_of:
                            rows = con.execute(self._date_sql(cols, d)).to_arrow_table()
                            if pending is not None:
                                pending.result()
                            writer = writer or pq.ParquetWriter(tmp, rows.schema)
                            pending = pool.submit(writer.write_table, rows, ROW_GROUP)
                        pending.result()
                    finally:
                        if pending is not None:
                            pending.exception()  # wait: never close the file under a running write
                        if writer is not None:
                            writer.close()
                return p
            # Parts are copied, not renamed, so they live in the system's temp folder: a run killed here
            # leaves nothing in the output folder.
            parts = Path(tempfile.mkdtemp(prefix="churn-feature-parts-"))
            try:
                with open(tmp, "wb") as out:
                    for i, d in enumerate(self.as_of):
                        part = parts / f"{i:05d}.csv"
                        con.execute(f"COPY ({self._date_sql(cols, d)}) TO {_lit(str(part))} "
                                    f"(FORMAT CSV, HEADER {'true' if i == 0 else 'false'})")
                        with open(part, "rb") as f:
                            shutil.copyfileobj(f, out)
            finally:
                shutil.rmtree(parts, ignore_errors=True)
        return p

    def metadata(self) -> dict[str, Any]:
        """What a model must remember to rebuild these features identically at scoring time."""
        if self.btyd_done is not None:
            self.btyd_done.result()  # the BG/NBD fits run on the build's background thread
        newest = max(self.btyd_fitted) if self.btyd_fitted else None
        return {
            "label": self.label,
            "event_types": self.event_types,
            "features": [f.to_dict() for f in self.registry],
            # The newest training date's BG/NBD fit, frozen for scoring (docs/model-selection.md says why).
            "btyd_params": self.btyd_fitted[newest] if newest is not None else {},
        }


def feature_frame(df: pd.DataFrame, registry: Registry) -> pd.DataFrame:
    """Feature rows as every consumer reads them: categoricals as text (None when missing), numbers as
    float64, customer ids as text."""
    for feat in registry:
        if feat.kind == "categorical":
            df[feat.name] = df[feat.name].astype(object).where(df[feat.name].notna(), None)
        else:
            df[feat.name] = pd.to_numeric(df[feat.name], errors="coerce").astype("float64")
    df["customer_id"] = df["customer_id"].astype(str)
    return df


def _asof_tables(ds: DataSource, dates: list[pd.Timestamp]) -> None:
    """Temp table `asof_dates(as_of)`: one row per as_of date."""
    values = ", ".join(f"({ts_lit(d)})" for d in dates)
    ds.con.execute(f"CREATE OR REPLACE TEMP TABLE asof_dates AS SELECT * FROM (VALUES {values}) v(as_of) ORDER BY as_of")


def build_features(
    ds: DataSource,
    as_of: list[pd.Timestamp],
    config: Config,
    *,
    event_types: list[str] | None = None,
    label: LabelKind | None = None,
    btyd_params: dict[str, float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> FeatureSet:
    """Build every enabled family at each as_of date; the result reads each date's rows with one query.

    `event_types`, `label` and `btyd_params` are what training chose (the model's preparation), given at
    scoring so the features are built the same way; None: decided from this data (`btyd_params` {}: training
    fitted no BG/NBD, its features stay missing). The global settings are decided first (`churn.frozen`),
    then the one engine (`build_frozen`) runs on them, as it does per bucket on Spark."""
    if not as_of:
        raise ChurnError("no as-of date given")
    dates = sorted({parse_as_of(d) for d in as_of})
    _warm_up(ds, config)
    frozen = freeze(ds, config, event_types=event_types, label=label, btyd_params=btyd_params)
    return build_frozen(ds, frozen, dates, config, progress=progress)


def _warm_up(ds: DataSource, config: Config) -> None:
    """Start loading the compiled passes the build will need (see `_import_in_background`)."""
    _import_in_background("churn.features.lookup", "warm_up")
    for family, (module, table) in KERNELS.items():
        if family in config.features.families and ds.has(table):
            _import_in_background(module, "warm_up")
    if config.features.purchases.btyd and "purchases" in config.features.families and ds.has("orders"):
        _import_in_background("churn.features.btyd", "warm_up")


def build_frozen(ds: DataSource, frozen: Frozen, dates: list[pd.Timestamp], config: Config, *,
                 bucket: bool = False, progress: Callable[[str], None] | None = None) -> FeatureSet:
    """The engine: every enabled family at each of `dates` (sorted) for the customers of `ds`, on the global
    settings `frozen`. `bucket`: `ds` holds some customers of a larger build (Spark), so BG/NBD without
    frozen parameters is counted here and fitted later (`Ctx.btyd_counts`), and a table the whole data has
    is there, maybe empty."""
    kind = frozen.label
    _asof_tables(ds, dates)
    create_spine(ds, config, kind)
    notices = list(ds.notices)
    ctx = Ctx(ds=ds, config=config, horizon_days=config.label.horizon_days, dates=dates, notices=notices,
              btyd_params=frozen.btyd_params, btyd_deferred=bucket, survey_scale=frozen.survey_scale)
    ctx.event_types = list(frozen.event_types)
    registry = Registry()
    for family in config.features.families:
        module, needs = FAMILIES[family]
        if not ds.has(needs):
            notices.append(f"no '{needs}' table: feature family '{family}' skipped")
            continue
        if progress:
            progress(f"features: {family}")
        for feat in module.declare(ctx):
            registry.add(feat)
        module.build(ctx)
    if not ctx.compiled:
        raise ChurnError("no feature family could be built from this data")
    ds.notices = notices
    return FeatureSet(ds=ds, registry=registry, as_of=dates, label=kind, event_types=ctx.event_types,
                      btyd_fitted=ctx.btyd_fitted, btyd_done=ctx.btyd_done,
                      date_select=_assemble(ctx, registry), notices=notices, ctx=ctx)


def _import_in_background(module: str, call: str | None = None) -> None:
    """Start importing `module` (and calling its function `call`) in a daemon thread, to overlap with DuckDB's
    first queries (which release the GIL): BG/NBD's scipy.optimize takes ~0.6 s to import, numba and the
    compiled loops (engagement pass, BG/NBD likelihood) ~1 s. The real import later waits for it, or
    reports whatever error it hits."""

    def run() -> None:
        try:
            loaded = importlib.import_module(module)
            if call:
                getattr(loaded, call)()
        except Exception:  # noqa: BLE001, S110 - the import in the main thread raises it properly
            pass

    threading.Thread(target=run, name=f"import {module}", daemon=True).start()


def _assemble(ctx: Ctx, registry: Registry) -> Callable[[str], str]:
    """The SELECT of one date's feature rows from that date's table (`_date_table`), in customer order:
    counts default to 0, other facts stay unknown (NULL)."""
    table = _date_table(ctx)
    con = ctx.ds.con
    have = {d[0] for d in con.execute(f"SELECT * FROM ({table(ts_lit(ctx.dates[0]))}) LIMIT 0").description}
    sel = []
    for feat in registry:
        if feat.name not in have:
            raise RuntimeError(f"feature '{feat.name}' was declared but not built")  # a bug, not user error
        expr = f"s.{_q(feat.name)}"
        if feat.name in ctx.zero_fill:
            expr = f"coalesce({expr}, 0)"
        sel.append(f"CAST({expr} AS {'VARCHAR' if feat.kind == 'categorical' else 'DOUBLE'}) AS {_q(feat.name)}")
    sel += [f"CAST(s.{_q(inner)} AS BIGINT) AS {_q(name)}" for name, inner in ctx.hidden.items()]

    def date_select(as_of: str) -> str:
        return f"SELECT s.customer_id, {as_of} AS as_of, {', '.join(sel)} FROM ({table(as_of)}) s"

    return date_select


def _date_table(ctx: Ctx) -> Callable[[str], str]:
    """For an as_of literal, a query over that date's table: one row per spine row, in customer order, with
    every family's columns written by position instead of joined.

    Each family's pass writes the date's spine rows directly (`Ctx.compiled`). DuckDB's joins of ~8
    relations onto the spine and the sort of the wide rows cost ~3 s a date on 650k rows; the spine is
    sorted once, and a scan of one table keeps its order (preserve_insertion_order). One date's table is
    registered at a time: each replaces the previous date's, so a query still naming an earlier date fails
    loudly.
    """
    import pyarrow as pa

    con = ctx.ds.con
    dates = {ts_lit(d): d for d in ctx.dates}
    _, spine_ids, _ = ctx.spine()
    current: str | None = None

    def table(as_of: str) -> str:
        nonlocal current
        when = dates[as_of]
        name = f"f_date_{when:%Y%m%d}"
        if current != name:
            at = ctx.date_slice(when)
            cols: dict[str, Any] = {"customer_id": spine_ids[at]}
            first = when == ctx.dates[0]
            for (rows, columns), ready in zip(ctx.compiled, ctx.prefetched, strict=True):
                for k, v in (ready.result() if first else columns(when, rows[at])).items():
                    # from_pandas: NaN (unknown) -> NULL; Arrow columns (text, exact values) as they are.
                    cols.setdefault(k, v if isinstance(v, pa.Array | pa.ChunkedArray) else pa.array(v, from_pandas=True))
            if first:
                ctx.end_background()
            if current is not None:
                con.unregister(current)
            date_rows = pa.table(cols)
            # In row-group-sized batches: DuckDB scans an Arrow table batch by batch, so one batch would
            # leave the write's casts and Parquet encoding on one thread (3.0 -> 2.1 s a date at 650k rows).
            con.register(name, pa.Table.from_batches(date_rows.to_batches(max_chunksize=ROW_GROUP),
                                                     schema=date_rows.schema))
            current = name
        return f"SELECT * FROM {name}"

    return table


# The labelled training frame lives in `churn.features.frame`; imported from here by older callers.
from churn.features.frame import TrainingFrame, build_training_frame, training_as_of  # noqa: E402, F401
