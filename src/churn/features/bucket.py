"""One customer bucket through the one engine: `build_bucket(tables, frozen, as_of, config) -> BucketOut`.

The seam of the scale-out (docs/architecture.md, "Scale-out on Spark"): a Spark task hands its bucket's rows
(Arrow tables in the user's raw columns) and the frozen global settings; the bucket is opened as a DuckDB
source laid out as the whole data was (`churn.sources.arrow`), validated by the same rules, typed and built
by `churn.features.engine.build_frozen`, the engine the embedded path runs on the whole data. A bucket with
nobody active, or without one of the tables, is normal: it gives no rows, in the same schema.

What comes back (`BucketOut`): the features in a fixed schema (keys, every declared feature, and without
frozen BG/NBD parameters each row's history for the later fit), the labels (training), every known
customer's standing and attributes (scoring), the validation problems, the notices and the BG/NBD history
counts per date, which the driver sums over buckets and fits once (`churn.features.purchases`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from churn.config import Config
from churn.errors import Problem
from churn.features.purchases import Histories
from churn.features.registry import Registry
from churn.frozen import Frozen


@dataclass
class BucketOut:
    """What one bucket's build gives (see the module docstring); no features when there are `problems`
    (the build is refused, as `churn.validation.load_source` refuses a whole source)."""

    features: Any  # pyarrow.Table: customer_id, as_of, the features, the hidden BG/NBD histories (and churned)
    registry: Registry | None
    labels: Any = None  # pyarrow.Table (customer_id, as_of, churned) when asked for
    standing: pd.DataFrame | None = None  # customer_id, standing, last_activity at the one as_of
    attributes: Any = None  # pyarrow.Table: customer_id and the asked customer columns the data has
    problems: list[Problem] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    btyd_counts: dict[pd.Timestamp, Histories] = field(default_factory=dict)


def build_bucket(tables: Mapping[str, Any], frozen: Frozen, as_of: Sequence[pd.Timestamp], config: Config, *,
                 labels: bool = False, standing: bool = False, attributes: Sequence[str] = ()) -> BucketOut:
    """Validate and build the features of the customers in `tables` (name -> pyarrow.Table of raw columns)
    at each date of `as_of`, on the global settings `frozen`; with `labels` their labels, with `standing`
    (one date) every known customer's standing and the customers table's `attributes` columns."""
    from churn.features.engine import build_frozen
    from churn.labels import create_labels
    from churn.scoring.population import standing_rows
    from churn.sources import register_typed
    from churn.sources.arrow import open_tables
    from churn.validation import validate

    ds = open_tables(tables, frozen, config)
    try:
        problems = validate(ds, config, frozen.now)
        if problems:
            return BucketOut(None, None, problems=problems)
        register_typed(ds, config)
        fs = build_frozen(ds, frozen, sorted(pd.Timestamp(d) for d in as_of), config, bucket=True)
        if labels:
            create_labels(ds, config, fs.label)
        out = BucketOut(fs.to_arrow(with_label=labels), fs.registry, notices=list(fs.notices))
        if labels:  # the features carry them too, as the training frame does
            out.labels = out.features.select(["customer_id", "as_of", "churned"])
        if fs.btyd_done is not None:
            fs.btyd_done.result()  # the histories are counted on the build's background thread
        out.btyd_counts = dict(fs.ctx.btyd_counts) if fs.ctx is not None else {}
        if standing:
            out.standing = standing_rows(ds, config, fs.label, None)
            have = ds.columns("customers")
            cols = [c for c in dict.fromkeys(attributes) if c in have and c != "customer_id"]
            out.attributes = ds.con.execute(
                "SELECT customer_id" + "".join(f', "{c}"' for c in cols) + " FROM customers").to_arrow_table()
        return out
    finally:
        ds.con.close()


HIDDEN = ("_btyd_x", "_btyd_t_x", "_btyd_T")  # a row's BG/NBD history, as `purchases` hands it on


def fit_buckets(counts: Sequence[Mapping[pd.Timestamp, Histories]], dates: Sequence[pd.Timestamp],
                config: Config) -> tuple[dict[pd.Timestamp, dict[str, float]], list[str]]:
    """BG/NBD per date from the history counts of every bucket, summed: the fit the whole data's build makes
    (the same histories, in the same order, with the same weights); (parameters per date fitted, notices)."""
    from churn.features.context import Ctx
    from churn.features.purchases import add_histories, fit_histories

    ctx = Ctx(ds=None, config=config, horizon_days=config.label.horizon_days)  # type: ignore[arg-type]
    fitted = {}
    for when in sorted(pd.Timestamp(d) for d in dates):
        model = fit_histories(ctx, when, add_histories([c[when] for c in counts if when in c]))
        if model is not None:
            fitted[when] = model.params_._asdict()
    return fitted, ctx.notices


def fill_btyd(features: Any, fitted: Mapping[pd.Timestamp, Mapping[str, float]], horizon_days: int) -> Any:
    """Feature rows (an Arrow table or batch) with the BG/NBD features predicted from each row's history by
    its date's fit (missing where the date has none), and the hidden history columns dropped."""
    import numpy as np
    import pyarrow as pa

    from churn.features.btyd import BetaGeo
    from churn.features.purchases import predict_rows

    if HIDDEN[0] not in features.schema.names:
        return features
    as_of = features.column("as_of").to_numpy()
    hist = [features.column(c).to_numpy(zero_copy_only=False) for c in HIDDEN]
    expected, p_none = np.full(len(as_of), np.nan), np.full(len(as_of), np.nan)
    unit = np.datetime_data(as_of.dtype)[0]
    for when, params in fitted.items():
        at = np.flatnonzero(as_of == np.datetime64(pd.Timestamp(when).to_datetime64(), unit))
        if len(at):
            e, p = predict_rows(BetaGeo.from_params(dict(params)), *(h[at] for h in hist), horizon_days)
            expected[at], p_none[at] = e, p
    filled = {"btyd_expected_orders": pa.array(expected), "btyd_p_no_order": pa.array(p_none)}
    names = [n for n in features.schema.names if n not in HIDDEN]
    arrays = [filled[n] if n in filled else features.column(n) for n in names]
    if isinstance(features, pa.Table):
        return pa.table(arrays, names=names)
    return pa.RecordBatch.from_arrays(arrays, names=names)
