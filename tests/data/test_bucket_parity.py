"""The scale-out's seam without Spark: the source split by customer into buckets, each built by
`build_bucket` on the frozen global settings, gives every feature of the single-machine build; BG/NBD fitted
from history counts summed over buckets is the single-machine fit; validation problems of buckets add up to
the whole source's. (tests/data/test_spark_parity.py runs the same through Spark.)"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from bucket_data import DATES, HEAVY, LONELY, assert_same_features, parity_config, parity_source

from churn.errors import DataValidationError
from churn.features.bucket import build_bucket, fill_btyd, fit_buckets
from churn.features.engine import build_features, feature_frame
from churn.frozen import freeze, layouts_of
from churn.ids import ID_SPACE, normalise_id
from churn.validation import load_source, merge_problems

NOW = datetime(2026, 1, 1, tzinfo=UTC)
BUCKETS = 5


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    folder = parity_source(tmp_path_factory.mktemp("parity") / "data")
    config = parity_config()
    ds = load_source(str(folder), config, now=NOW)
    fs = build_features(ds, [pd.Timestamp(d) for d in DATES], config)
    want, meta = fs.to_pandas(), fs.metadata()
    raw = {name: pq.read_table(info.path) for name, info in ds.tables.items()}
    # What a Spark task receives: the id normalised once (`churn.ids`), the other columns as written.
    for name, table in raw.items():
        col = ds.tables[name].mapping["customer_id"]
        raw[name] = table.set_column(table.schema.get_field_index(col), col,
                                     pa.array([normalise_id(v) for v in table.column(col).to_pylist()], pa.string()))
    frozen = freeze(ds, config, with_range=True)
    frozen = type(frozen)(**{**frozen.__dict__, "tables": layouts_of(ds, {n: t.schema for n, t in raw.items()}),
                             "now": NOW})
    ds.con.close()
    yield folder, config, raw, frozen, want, meta


def _buckets(raw: dict[str, pa.Table], n: int) -> list[dict[str, pa.Table]]:
    """The tables split by customer: the heavy and the lonely customer each alone, the rest by id hash."""
    def bucket(cid: str | None) -> int:
        return {HEAVY: n, LONELY: n + 1}.get(cid, sum(map(ord, cid or "")) % n)

    out: list[dict[str, pa.Table]] = [{} for _ in range(n + 2)]
    for name, table in raw.items():
        which = np.array([bucket(c) for c in table.column(0).to_pylist()])
        for b in range(n + 2):
            part = table.filter(pa.array(which == b))
            if part.num_rows:
                out[b][name] = part
    return out


def test_buckets_give_every_feature_of_the_whole_build(source):
    folder, config, raw, frozen, want, meta = source
    parts = _buckets(raw, BUCKETS)
    assert set(parts[-1]) == {"events", "customers"}  # the lonely customer's bucket misses four tables
    outs = [build_bucket(tables, frozen, DATES, config) for tables in [*parts, {}]]  # and one with no rows
    assert outs[-2].features.num_rows == 0 and outs[-1].features.num_rows == 0  # nobody active: no rows
    assert not any(o.problems for o in outs)
    fitted, notices = fit_buckets([o.btyd_counts for o in outs], DATES, config)
    assert not notices
    table = pa.concat_tables([fill_btyd(o.features, fitted, config.label.horizon_days) for o in outs])
    got = feature_frame(table.to_pandas(), outs[0].registry)
    assert_same_features(got, want)
    assert want["btyd_p_no_order"].notna().sum() > 100  # the BG/NBD features were really compared
    assert {HEAVY, "0000003", "0000005"} <= set(want["customer_id"])  # heavy and re-spelled ids were built


def test_bgnbd_fitted_from_summed_bucket_counts_is_the_single_machine_fit(source):
    _, config, raw, frozen, _, meta = source
    outs = [build_bucket(tables, frozen, DATES, config) for tables in _buckets(raw, BUCKETS)]
    fitted, _ = fit_buckets([o.btyd_counts for o in outs], DATES, config)
    newest = max(pd.Timestamp(d) for d in DATES)
    assert fitted[newest] == meta["btyd_params"]  # the very same floats, not merely close
    # Summed, the buckets' histories count every buyer once.
    buyers = sum(int(o.btyd_counts[newest][3].sum()) for o in outs)
    single = build_bucket({n: t for n, t in raw.items()}, frozen, DATES, config).btyd_counts[newest]
    assert buyers == int(single[3].sum()) > 30


def test_one_bucket_holding_everyone_is_the_embedded_build(source):
    _, config, raw, frozen, want, _ = source
    out = build_bucket(raw, frozen, DATES, config)
    fitted, _ = fit_buckets([out.btyd_counts], DATES, config)
    assert_same_features(feature_frame(fill_btyd(out.features, fitted, 60).to_pandas(), out.registry), want)


def test_bucket_problems_add_up_to_the_whole_sources(tmp_path, source):
    folder, config, raw, frozen, _, _ = source
    bad = dict(raw)
    orders = raw["orders"]
    k = orders.schema.get_field_index("amount")
    amounts = orders.column(k).to_numpy(zero_copy_only=False).copy()
    amounts[::97] = -5.0  # below the contract's minimum of 0
    bad["orders"] = orders.set_column(k, "amount", pa.array(amounts))
    n_bad = int((amounts < 0).sum())
    parts = _buckets(bad, BUCKETS)
    merged = merge_problems([build_bucket(t, frozen, DATES, config).problems for t in parts])
    [problem] = merged
    assert (problem.table, problem.column, problem.count) == ("orders", "amount", n_bad)
    assert len(problem.examples) == 3 and all(e.startswith("customer '") for e in problem.examples)
    # The same data as one file: the embedded validation counts the same rows.
    pq.write_table(bad["orders"], tmp_path / "orders.parquet")
    for name in raw:
        if name != "orders":
            pq.write_table(raw[name], tmp_path / f"{name}.parquet")
    with pytest.raises(DataValidationError) as err:
        load_source(str(tmp_path), config, now=NOW)
    whole = [p for p in err.value.problems if p.column == "amount"]
    assert [p.count for p in whole] == [n_bad] and whole[0].message == problem.message


def test_merged_id_counts_are_summed():
    from churn.errors import Problem

    parts = [[Problem("orders", "activity for customers not in the customers table (2 unknown ids)", "o.parquet",
                      "customer_id", 5, ["customer 'x': id='x'"])],
             [Problem("orders", "activity for customers not in the customers table (1,200 unknown ids)",
                      "o.parquet", "customer_id", 3000, ["customer 'a': id='a'"])]]
    [p] = merge_problems(parts)
    assert p.message == "activity for customers not in the customers table (1,202 unknown ids)" and p.count == 3005
    assert p.examples == ["customer 'a': id='a'", "customer 'x': id='x'"]


def test_normalised_ids_are_the_duckdb_ids():
    import duckdb

    from churn.ids import id_sql

    texts = ["007", " 007", "007\xa0", "\t007\n", "\u3000x\u2028", "7.0", "-12.00", "7.5", "a b", "  ", "",
             "1e3", "0.0", "007.000", "x.0"]
    con = duckdb.connect()
    con.register("t", pa.table({"v": pa.array(texts, pa.string())}))
    got = [r[0] for r in con.execute(f"SELECT {id_sql('v', 'VARCHAR')} FROM t").fetchall()]
    assert got == [normalise_id(t) for t in texts]
    assert got[:4] == ["007"] * 4 and got[5:7] == ["7", "-12"] and got[9] is None
    floats = [7.0, 12.5, -3.0, 1e17]
    con.register("f", pa.table({"v": pa.array(floats)}))
    assert [r[0] for r in con.execute(f"SELECT {id_sql('v', 'DOUBLE')} FROM f").fetchall()] == \
        [normalise_id(v) for v in floats] == ["7", "12.5", "-3", "100000000000000000"]
    assert pc.utf8_trim_whitespace(pa.array(["007\xa0"])).to_pylist() == ["007"]  # Arrow agrees too


_ID_CHARS = st.sampled_from(list("0123456789abcXYZ.+-_ '\"") + list(ID_SPACE) + ["\u0301", "\u00e9", "\u4e2d", "\U0001f600"])


@settings(max_examples=settings.default.max_examples // 2)
@given(st.lists(st.text(_ID_CHARS, max_size=6), min_size=1, max_size=40))
def test_duckdb_ids_are_the_python_ids_for_any_text(texts: list[str]) -> None:
    """Texts made of digits, points, signs, every whitespace character and combining marks (a space before an
    accent, a point at either end): DuckDB's id (with its fast path for ids that need no change) is
    `normalise_id`'s."""
    import duckdb

    from churn.ids import id_sql

    con = duckdb.connect()
    con.register("t", pa.table({"v": pa.array(texts, pa.string())}))
    want = [normalise_id(t) for t in texts]
    assert [r[0] for r in con.execute(f"SELECT {id_sql('v', 'VARCHAR')} FROM t").fetchall()] == want


def test_id_space_is_every_character_python_strips():
    """`ID_SPACE` is written out (scanning Unicode at import cost every command start-up half a second): it
    must be exactly the characters `str.isspace()` holds, so DuckDB's and Spark's trims match `str.strip()`."""
    assert ID_SPACE == "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
