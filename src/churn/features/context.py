"""What a family builder needs: the connection, the config, and shared building blocks.

Every builder reads the typed tables once for all as_of dates (`list_per_customer`: each customer's rows
as one list) and declares its columns for each date's spine rows (`per_date_columns`): where each spine
row's customer is in what it read (`Ctx.spine_rows`, a hash lookup) and a function giving one date's
values for those rows, most of them a compiled pass over the lists."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.sources import DataSource


@dataclass
class Ctx:
    """Inputs shared by the family builders for one build."""

    ds: DataSource
    config: Config
    horizon_days: int
    event_types: list[str] = field(default_factory=list)
    zero_fill: set[str] = field(default_factory=set)  # counts: no rows means 0, not unknown
    dates: list[pd.Timestamp] = field(default_factory=list)  # the as_of dates being built
    notices: list[str] = field(default_factory=list)  # things the user should know (e.g. a model not fitted)
    # BG/NBD parameters (r, alpha in days, a, b) frozen at training: predict with them at every date instead
    # of fitting, so a customer's features depend on their own purchases only. None: fit per date.
    btyd_params: dict[str, float] | None = None
    btyd_fitted: dict[pd.Timestamp, dict[str, float]] = field(default_factory=dict)  # per date, when fitted
    btyd_done: Future | None = None  # the background work that fills `btyd_fitted`
    # A bucket of a larger build (Spark): without frozen parameters BG/NBD is fitted later from every
    # bucket's histories, so this build only counts them (`btyd_counts`, per date: distinct (x, t_x, T) and
    # how many share each) and hands each row's history on (`hidden`) instead of predicting.
    btyd_deferred: bool = False
    btyd_counts: dict[pd.Timestamp, tuple[np.ndarray, ...]] = field(default_factory=dict)
    hidden: dict[str, str] = field(default_factory=dict)  # extra output column -> the per-date column it is
    survey_scale: tuple[float, float] | None = None  # frozen for the whole data (None: read from `ds`)
    # Per-date columns (`per_date_columns`): (each spine row's position(s) in what the family read, the columns).
    compiled: list[tuple[np.ndarray, Callable[[pd.Timestamp, np.ndarray], dict[str, Any]]]] = field(
        default_factory=list)
    _spine: tuple[np.ndarray, Any, np.ndarray] | None = None
    # Each spine row's customer code, the distinct customers (Arrow), and their 64-bit hashes (None after
    # a hash collision: then customers are matched by id alone).
    _customers: tuple[np.ndarray, Any, np.ndarray | None] | None = None
    # The build's one background thread (False where passes must run inline: `background_ok`), and each
    # `compiled` entry's first-date columns computed on it.
    _pool: Any = None
    prefetched: list[Future] = field(default_factory=list)

    def later(self, fn: Callable[..., Any], *args: Any) -> Future:
        """Run `fn(*args)` on the build's background thread, in submission order.

        Compiled passes, sorts and BG/NBD fits are mostly single-threaded Python and numpy; DuckDB's
        listings release the GIL. Run beside them, the one-date build went ~13.3 -> ~11.8 s on two cores.
        """
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="features") if background_ok() else False
        if self._pool:
            return self._pool.submit(fn, *args)
        done: Future = Future()  # run here and now, as a finished future
        try:
            done.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - re-raised by .result(), as from the thread
            done.set_exception(exc)
        return done

    def end_background(self) -> None:
        """Let the background thread go once its work is done (results stay in their futures)."""
        if self._pool:
            self._pool.shutdown(wait=False)

    def spine(self) -> tuple[np.ndarray, Any, np.ndarray]:
        """The spine's rows ordered by (as_of, customer_id), read once: as_of in epoch microseconds, customer
        ids (an Arrow array) and their DuckDB hashes. Each date's rows are a slice, already in the order of
        the output."""
        if self._spine is None:
            import pyarrow.compute as pc

            t = self.ds.con.execute(
                f"SELECT epoch_us(as_of) AS t, customer_id, {CUSTOMER_HASH} AS h FROM spine "
                "ORDER BY as_of, customer_id").to_arrow_table()
            ids = t.column("customer_id").combine_chunks()
            self._spine = (t.column("t").to_numpy(), ids, t.column("h").to_numpy())
            # Distinct customers by their DuckDB hash (hashing the ids again in Arrow cost ~1 s at six
            # dates), checked against the ids themselves: a collision falls back to the ids.
            codes, hashes = pd.factorize(self._spine[2])
            some_row = np.empty(len(hashes), np.int64)
            some_row[codes] = np.arange(len(codes))
            customers = ids.take(some_row)
            if pc.all(pc.equal(ids, customers.take(codes))).as_py() is False:
                encoded = pc.dictionary_encode(ids)
                codes, customers, hashes = encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary, None
            self._customers = (np.asarray(codes, np.int64), customers, hashes)
        return self._spine

    def date_slice(self, when: pd.Timestamp) -> slice:
        """The spine rows (in `spine()` order) of one as_of date."""
        t = self.spine()[0]
        us = epoch_us(when)
        return slice(*np.searchsorted(t, [us, us + 1]))

    def spine_rows(self, ids: Any, hashes: np.ndarray) -> np.ndarray:
        """For each spine row (in `spine()` order), its customer's position in `ids` (whose DuckDB hashes
        are `hashes`), -1 if absent. Looked up once per distinct customer (a DuckDB join of the spine's
        rows cost ~0.8 s a family at six dates)."""
        self.spine()
        codes, customers, spine_hashes = self._customers
        return positions(customers, spine_hashes, ids, hashes)[codes]


def background_ok() -> bool:
    """Whether compiled passes may run on two threads at once: numba's OpenMP and TBB layers allow it; its
    workqueue (numba's fallback when neither library is installed) aborts the process on concurrent use."""
    import numba

    from churn.features.lookup import warm_up

    warm_up()  # numba picks its layer at the first parallel launch
    return numba.threading_layer() in ("omp", "tbb")


# Latin letters that Unicode does not decompose into a base letter and a mark.
_LATIN = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "ð": "d", "þ": "th", "ı": "i"})


def _spelling_key(text: str) -> str:
    """A data value as written, up to case, spacing, punctuation and compatibility forms: 'Page View',
    'page-view' and 'page_view' are one key; other scripts keep their letters ('покупка')."""
    return re.sub(r"[\W_]+", "_", unicodedata.normalize("NFKC", str(text)).casefold()).strip("_")


def ident(text: str) -> str:
    """A safe lower-case ASCII identifier fragment for a data value (e.g. an event type), the same for
    every spelling of one key (`_spelling_key`): accents folded ('Ünïcode-événement' -> 'unicode_evenement',
    'Straße' -> 'strasse'); letters with no ASCII reading (other scripts) are replaced by a short hash of
    the key, so distinct values keep distinct names ('покупка' -> 'v' + 8 hex digits)."""
    key = _spelling_key(text)
    kept, lost = [], False
    for c in unicodedata.normalize("NFKD", key.translate(_LATIN)):
        if unicodedata.combining(c):
            continue
        if c.isascii():
            kept.append(c)
        else:
            lost = True
            kept.append("_")
    s = re.sub(r"[^0-9a-z]+", "_", "".join(kept)).strip("_")
    if lost:
        digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
        return f"{s}_v{digest}" if s else f"v{digest}"
    return s or "blank"


def ts_lit(when: pd.Timestamp) -> str:
    """A timestamp literal."""
    return f"TIMESTAMP '{pd.Timestamp(when).isoformat(sep=' ')}'"


def per_date_columns(ctx: Ctx, rows: np.ndarray,
                     columns: Callable[[pd.Timestamp, np.ndarray], dict[str, Any]]) -> None:
    """Declare a family's per-date columns over what it read once: `rows` (`Ctx.spine_rows`) places each
    spine row's customer in the family's list of customers (-1: not in it, who gets what the features say
    of no activity; one column per list when a family reads several), and `columns(as_of, those rows)`
    gives that date's values for them: numpy arrays (NaN = unknown) or Arrow arrays (text, kept as is).

    They reach the date's query without a join: the pass writes them in the date's spine order
    (`engine._date_table`). `columns` may run on the build's background thread (`Ctx.later`): it must
    not use the DuckDB connection.
    """
    ctx.compiled.append((rows, columns))
    # The first date's values are wanted first (the engine builds that date's table before any other):
    # computed in the background while DuckDB lists the next family.
    first = ctx.dates[0]
    ctx.prefetched.append(ctx.later(columns, first, rows[ctx.date_slice(first)]))


# A customer id's 64-bit DuckDB hash: how what a family read finds its spine rows (`positions`).
CUSTOMER_HASH = "hash(CAST(customer_id AS VARCHAR))"


def scaled_int(expr: str, digits: int) -> str:
    """SQL: `expr` as an exact integer of 1/10**digits units (via DECIMAL(18, digits)), so sums of it do not
    depend on row order as float sums do."""
    return f"CAST(CAST({expr} AS DECIMAL(18, {int(digits)})) * {10 ** int(digits)} AS BIGINT)"


def list_per_customer(ctx: Ctx, table: str, time_col: str, fields: dict[str, str], typed: tuple[str, ...] = ()
                      ) -> tuple[np.ndarray, np.ndarray, list[Any]]:
    """Each customer's rows of `table` before the last as_of, listed once for every date (one DuckDB
    aggregation): (each spine row's list row, as `Ctx.spine_rows`; the lists' offsets; one array per field
    of `fields`, name -> SQL expression, in list order). Fields are int64 numpy arrays, except those named
    in `typed`, which keep their SQL type and come back as Arrow arrays (text, exact doubles). The lists
    are in no order a caller may rely on (an ordered `list(... ORDER BY ...)` took ~14 s to fetch for 1M
    customers' fee changes): passes that need an order sort each list themselves."""
    struct = ", ".join(f"'{name}': {expr if name in typed else f'CAST({expr} AS BIGINT)'}"
                       for name, expr in fields.items())
    lists = ctx.ds.con.execute(
        f"SELECT customer_id, {CUSTOMER_HASH} AS h, list({{{struct}}}) AS l FROM {table} "
        f"WHERE {time_col} < {ts_lit(max(ctx.dates))} GROUP BY customer_id"
    ).to_arrow_table()
    col = lists.column("l").combine_chunks()
    rows = ctx.spine_rows(lists.column("customer_id"), lists.column("h").to_numpy())
    # flatten: the struct's children with the struct's own offset applied.
    return rows, col.offsets.to_numpy(), [f if name in typed else f.to_numpy()
                                          for name, f in zip(fields, col.values.flatten())]


def positions(targets: Any, target_hashes: np.ndarray | None, ids: Any, hashes: np.ndarray) -> np.ndarray:
    """Each of `targets`' position in `ids` (Arrow arrays of customer ids), -1 if absent: a hash lookup on
    their DuckDB hashes, checked against the ids themselves; Arrow's index_in on the ids (slower: it
    hashes the text again) when the hashes cannot be trusted (a collision, or no hashes)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from churn.features.lookup import HashIndex

    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    if target_hashes is not None:
        index = HashIndex(np.asarray(hashes, np.uint64))
        if index.unique:  # else two of `ids` share a hash
            pos = index.find(np.asarray(target_hashes, np.uint64))
            found = pos >= 0
            if pc.all(pc.equal(targets.filter(found), ids.take(pos[found]).cast(targets.type))).as_py() is not False:
                return pos
    pos = pc.index_in(targets, value_set=ids.cast(targets.type))
    return pc.fill_null(pos, -1).to_numpy(zero_copy_only=False).astype(np.int64)


def epoch_us(when: pd.Timestamp) -> int:
    """Microseconds since 1970-01-01 of a naive timestamp (DuckDB's epoch_us)."""
    return int((pd.Timestamp(when) - pd.Timestamp("1970-01-01")) // pd.Timedelta(microseconds=1))
