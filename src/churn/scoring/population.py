"""Who a scoring run writes a row for: the current customers, or exactly the ids of a customer list.

`standing_rows` asks the data (the population rule of `churn.labels`) where each customer stands at the
scoring date; `with_status` puts the scored feature rows and the unscored rows together, each with its
`status` (`churn.scoring.status`); `read_customer_list` reads an operator's list of ids.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.ids import normalise_id
from churn.io import read_table
from churn.labels import CURRENT, LabelKind, create_standing
from churn.scoring import status
from churn.sources import DataSource

ID = "customer_id"
LAST_ACTIVITY = "last_activity_at"


def _rows(mask: pd.Series, limit: int = 5) -> str:
    """Row numbers of a list file (1 = first row after the header) where `mask` holds."""
    where = np.flatnonzero(mask.to_numpy()) + 1
    more = f" (and {where.size - limit:,} more)" if where.size > limit else ""
    return ", ".join(map(str, where[:limit])) + more


def _as_text(values: pd.Series, where: str) -> pd.Series:
    """Ids as text, as the data's ids read (`churn.ids`): trimmed, whole numbers without a decimal point."""
    if pd.api.types.is_bool_dtype(values):
        raise ChurnError(f"{where} holds true/false values, not customer ids")
    if pd.api.types.is_float_dtype(values):
        whole = values.isna() | (values == values.round())
        if not whole.all():
            raise ChurnError(f"{where} holds numbers that are not whole ids, rows {_rows(~whole)}")
        return values.map(lambda v: None if pd.isna(v) else str(int(v))).astype(object)
    if pd.api.types.is_integer_dtype(values):
        return values.map(lambda v: None if pd.isna(v) else str(int(v))).astype(object)
    return values.map(lambda v: None if v is None or (isinstance(v, float) and pd.isna(v))
                      else normalise_id(str(v)))


def read_customer_list(path: str | Path, id_col: str | None = None) -> pd.Series:
    """The ids of a customer list (CSV or Parquet), as text (leading zeros kept), in file order.

    The id column is the first of `id_col`, `customer_id` and the file's only column that the file has.
    Blank or repeated ids are an error naming the rows."""
    df = read_table(path)
    cols = [str(c) for c in df.columns]
    col = next((c for c in (id_col, ID) if c in cols), cols[0] if len(cols) == 1 else None)
    if col is None:
        raise ChurnError(f"{path}: no id column '{id_col or ID}' among {len(cols)} columns; "
                         "name it with --id "
                         f"(columns: {', '.join(cols[:30])})")
    where = f"{path}, column '{col}'"
    ids = _as_text(df[col], where)
    blank = ids.isna() | (ids == "")
    if blank.any():
        raise ChurnError(f"{where}: {int(blank.sum()):,} blank id(s), rows {_rows(blank)}")
    dup = ids.duplicated(keep=False)
    if dup.any():
        raise ChurnError(f"{where}: {ids[dup].nunique():,} id(s) listed more than once, e.g. "
                         + ", ".join(repr(x) for x in ids[dup].drop_duplicates().head(3))
                         + f"; rows {_rows(dup)}")
    if ids.empty:
        raise ChurnError(f"{path}: the customer list holds no ids")
    return pd.Series(ids.to_numpy(dtype=object), name=ID)


def standing_rows(ds: DataSource, config: Config, kind: LabelKind, wanted: pd.Series | None) -> pd.DataFrame:
    """(customer_id, standing, last_activity) at the one as_of in `asof_dates`: the current customers and
    those with no activity the label counts (`no_history`: a bare log's customer whose only activity before
    as_of was a ticket or a survey, or a customer who signed up and never bought), or with `wanted`
    exactly those ids (standing NULL for an id the data does not know)."""
    create_standing(ds, config, kind)
    if wanted is None:
        current = ", ".join(f"'{s}'" for s in (*CURRENT, "no_history"))
        return ds.con.execute(
            f"SELECT customer_id, standing, last_activity FROM standing WHERE standing IN ({current})"
        ).df()
    ds.con.register("wanted_ids", pd.DataFrame({ID: wanted.astype(str).to_numpy()}))
    try:
        return ds.con.execute(
            "SELECT w.customer_id, s.standing, s.last_activity FROM wanted_ids w "
            "LEFT JOIN standing s USING (customer_id)"
        ).df()
    finally:
        ds.con.unregister("wanted_ids")


def table_standing(table_ids: pd.Series, wanted: pd.Series | None) -> pd.DataFrame:
    """For a ready feature table: every row is active; listed ids the table lacks are unknown."""
    ids = table_ids if wanted is None else wanted
    known = ids.isin(set(table_ids)) if wanted is not None else pd.Series(True, index=ids.index)
    return pd.DataFrame({ID: ids.to_numpy(dtype=object),
                         "standing": np.where(known.to_numpy(), "active", None),
                         "last_activity": pd.NaT})


def with_status(frame: pd.DataFrame, standing: pd.DataFrame,
                when: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows, status per row): the scored rows (the feature rows of the active customers) first, then one
    row per other customer of `standing` (customer_id, as_of), every row with its last activity when known.
    The status is kept apart from the rows: a ready feature table may have a column of that name.

    The feature build and `standing` apply the same population rule; a customer active in one and not in
    the other is a bug, reported as such."""
    st = standing.assign(standing=standing["standing"].fillna(status.UNKNOWN))
    active = set(st[ID][st["standing"] == "active"])
    if len(frame) != len(active):  # a customer list: only the listed customers' feature rows
        frame = frame[frame[ID].isin(active)].reset_index(drop=True)
    if len(frame) != len(active) or not frame[ID].isin(active).all():
        raise RuntimeError(f"population mismatch: {len(frame):,} customers with features, "
                           f"{len(active):,} active; "
                           "the spine and the standing disagree (a bug, please report it)")
    rest = st[st["standing"] != "active"]
    unscored = pd.DataFrame({ID: rest[ID].to_numpy(dtype=object), "as_of": when})
    out = pd.concat([frame, unscored], ignore_index=True) if len(unscored) else frame
    last = pd.to_datetime(st.set_index(ID)["last_activity"])
    if last.notna().any():
        out = out.copy(deep=False)  # one more column, not a copy of every feature
        out[LAST_ACTIVITY] = out[ID].map(last).to_numpy()
    statuses = np.concatenate([np.full(len(frame), status.SCORED, dtype=object),
                               rest["standing"].to_numpy(dtype=object)])
    return out, statuses
