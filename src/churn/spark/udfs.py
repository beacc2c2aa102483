"""The functions Spark runs in its Python workers, each a thin shell around the engine's own code.

Written without `from __future__ import annotations` and with every argument annotated: pyspark reads the
type hints to choose the iterator form of `applyInArrow` (`Tuple[pa.Scalar, ...], Iterator[pa.RecordBatch]
-> Iterator[pa.RecordBatch]`, so a bucket arrives in batches), and pyspark 4.3 fails with an
UnboundLocalError on a function whose arguments are only partly annotated. Each function first applies the
task's settings (`churn.spark.session.task_config`) and returns Arrow with `string`, never `large_string`
(which Spark rejects and pandas 3 produces).
"""

import pickle
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pyarrow as pa

from churn.config import Config
from churn.frozen import Frozen

BatchFn = Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]
GroupFn = Callable[[Tuple[pa.Scalar, ...], Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]


def _rows(batches: Iterator[pa.RecordBatch]) -> Optional[pa.Table]:
    """The batches as one table (None when there are none)."""
    got = list(batches)
    return pa.Table.from_batches(got) if got else None


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in `schema`'s columns and types: absent columns null, large text cast to Spark's text."""
    arrays = []
    for f in schema:
        if f.name in table.column_names:
            arrays.append(table.column(f.name).cast(f.type))
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def global_counts_udf(tables: Dict[str, Any], frozen: Frozen, config: Config,
                      after: Optional[Any]) -> BatchFn:
    """mapInArrow, one pass over the input: each partition's `churn.frozen.GlobalCounts` (pickled in
    `counts`) and its rows per customer (`_id`, `n`), summed per customer by the caller."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from churn.frozen import global_counts
        from churn.sources import register_typed
        from churn.sources.arrow import open_tables
        from churn.spark.session import task_config
        from churn.spark.source import split_tables

        rows = _rows(batches)
        if rows is None:
            return
        cfg = task_config(config)
        ds = open_tables(split_tables(rows, tables), frozen, cfg)
        try:
            register_typed(ds, cfg)
            counts = global_counts(ds, after)
        finally:
            ds.con.close()
        yield conform(pa.table({"counts": [pickle.dumps(counts)]}), COUNTS_SCHEMA).to_batches()[0]
        per = rows.group_by("_id").aggregate([([], "count_all")]).rename_columns(["_id", "n"])
        yield from conform(per, COUNTS_SCHEMA).to_batches()

    return run


COUNTS_SCHEMA = pa.schema([pa.field("counts", pa.binary()), pa.field("_id", pa.string()),
                           pa.field("n", pa.int64())])


def bucket_udf(tables: Dict[str, Any], frozen: Frozen, dates: List[Any], config: Config,
               schema: pa.Schema, mode: str, attributes: Tuple[str, ...] = ()) -> GroupFn:
    """applyInArrow: one bucket's rows through `churn.features.bucket.build_bucket`; its rows (`_kind`
    'row': features, with `churned` in mode 'train', with status and attributes in mode 'score') and, as
    pickled `_payload`, its problems, notices and BG/NBD history counts."""

    def run(key: Tuple[pa.Scalar, ...], batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from churn.features.bucket import build_bucket
        from churn.spark.session import task_config
        from churn.spark.source import split_tables

        rows = _rows(batches)
        cfg = task_config(config)
        started = time.perf_counter()
        out = build_bucket(split_tables(rows, tables) if rows is not None else {}, frozen, dates, cfg,
                           labels=mode == "train", standing=mode == "score", attributes=attributes)
        # What the bucket cost (docs/spark.md, "Settings and sizing", sizes a cluster from it).
        cost = {"seconds": time.perf_counter() - started, "rows": rows.num_rows if rows is not None else 0,
                "bytes": rows.nbytes if rows is not None else 0}
        side = {"problems": out.problems, "notices": out.notices, "btyd": out.btyd_counts, "cost": cost}
        yield from conform(pa.table({"_kind": ["side"], "_payload": [pickle.dumps(side)]}), schema).to_batches()
        if out.features is None:
            return
        table = _scoring_rows(out, dates[0]) if mode == "score" else out.features
        if table.num_rows == 0:
            return
        table = table.append_column("_kind", pa.array(["row"] * table.num_rows, pa.string()))
        yield from conform(table, schema).to_batches()

    return run


def _scoring_rows(out: Any, when: Any) -> pa.Table:
    """A bucket's scoring rows (`churn.scoring.score.scoring_base`): the active customers' features, then
    every other current or listed customer, each with a status, last activity and attributes."""
    from churn.features.engine import feature_frame
    from churn.scoring.score import scoring_base

    frame = feature_frame(out.features.to_pandas(), out.registry)
    base, statuses = scoring_base(frame, out.standing, out.attributes.to_pandas(), when)
    base["status"] = statuses
    return pa.Table.from_pandas(base, preserve_index=False)


def fill_btyd_udf(fitted: Dict[Any, Dict[str, float]], horizon_days: int, schema: pa.Schema) -> BatchFn:
    """mapInArrow: feature rows with the BG/NBD features predicted by the fit of their date."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from churn.features.bucket import fill_btyd

        for batch in batches:
            yield from conform(pa.Table.from_batches([fill_btyd(batch, fitted, horizon_days)]), schema).to_batches()

    return run


def score_udf(model: Any, registry: Any, config: Config, schema: pa.Schema) -> BatchFn:
    """mapInArrow with the broadcast model (`model`: a Spark broadcast): the rows whose status is 'scored'
    get their calibrated probability and reasons from `churn.scoring.score.score_frame`, the others none."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        from churn.features.engine import feature_frame
        from churn.scoring.score import score_frame
        from churn.spark.session import task_config

        cfg = task_config(config)
        for batch in batches:
            frame = feature_frame(batch.to_pandas(), registry)
            scored = (frame["status"] == "scored").to_numpy()
            out = pa.Table.from_batches([batch])
            if scored.any():
                values = score_frame(model.value, frame[scored], chunk_rows=cfg.scoring.chunk_rows,
                                     reason_method=cfg.scoring.reason_method)
                at = np.flatnonzero(scored)
                for col in values.columns:
                    full = np.full(len(frame), None, dtype=object)
                    full[at] = values[col].to_numpy(dtype=object)
                    out = out.append_column(col, pa.array(full, type=schema.field(col).type, from_pandas=True))
            yield from conform(out, schema).to_batches()

    return run


def options_udf(config: Config, tiers: Any, inputs: Tuple[Any, Any, Any], schema: pa.Schema) -> BatchFn:
    """mapInArrow, the plan's first pass: each row's tier, whether it may be contacted, its control-group
    draw and, for those who may be, every offer's net value and cost (`churn.scoring.plan_rows`)."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np

        from churn.scoring.allocation import control_keys
        from churn.scoring.plan_rows import plan_rows

        contact_history, exclusions, effects = inputs
        for batch in batches:
            r = plan_rows(batch.to_pandas(), config, tiers=tiers, contact_history=contact_history,
                          exclusions=exclusions, effects=effects)
            n, m = r.n, len(r.catalogue)
            cols = {"customer_id": r.df["customer_id"].to_numpy(dtype=object),
                    "tier_code": r.tier_code.astype(np.int32), "contactable": r.contactable,
                    # uint64 draws as signed longs in the same order (Spark has no unsigned type)
                    "draw": (control_keys(r.df["customer_id"], config.seed) ^ np.uint64(1 << 63)).view(np.int64)}
            for j in range(m):
                net, cost = np.full(n, -np.inf), np.zeros(n)
                net[r.rows], cost[r.rows] = r.net[:, j], r.cost[:, j]
                cols[f"net_{j}"], cols[f"cost_{j}"] = net, cost
            yield from conform(pa.table(cols), schema).to_batches()

    return run


def plan_udf(config: Config, decisions: Any, inputs: Tuple[Any, Any, Any], schema: pa.Schema) -> BatchFn:
    """mapInArrow, the plan's second pass: `churn.scoring.allocation.plan_retention` on each partition's rows
    with the decisions taken for everyone; the plan's rows, and the partition's summary (pickled, `_kind`
    'side') for the driver to merge."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from churn.scoring.allocation import plan_retention

        contact_history, exclusions, effects = inputs
        rows = _rows(batches)
        if rows is None:
            return
        plan = plan_retention(rows.to_pandas(), config, contact_history=contact_history, exclusions=exclusions,
                              seed=config.seed, effects=effects, decisions=decisions)
        side = pa.table({"_kind": ["side"], "_payload": [pickle.dumps(plan.summary)]})
        yield from conform(side, schema).to_batches()
        out = plan_arrow(plan.customers)
        out = out.append_column("_kind", pa.array(["row"] * out.num_rows, pa.string()))
        yield from conform(out, schema).to_batches()

    return run


def plan_arrow(customers: Any) -> pa.Table:
    """A plan's customers as Arrow: categoricals (the tier) and object columns as text, flags as flags."""
    import pandas as pd

    frame = customers.copy(deep=False)
    for col in frame.columns:
        if isinstance(frame[col].dtype, pd.CategoricalDtype):
            frame[col] = frame[col].astype(object).where(frame[col].notna(), None)
    return pa.Table.from_pandas(frame, preserve_index=False)
