"""Property-based fuzzing of every loader (issue 16): each input either loads as documented or raises
`ChurnError` naming the file (and, for bad values, the column and example rows). Nothing else may escape.

Loaders fuzzed in-process, each with the Hypothesis profile's count of derandomised cases (200 in `make test`,
1,000 in `make test-deep`; the same ones replay every run): `read_table` (--table, contact history, exclusions and --customers lists), the data-folder loader
(`load_source`: DuckDB) and the contact-history rules (`contact_blocks`). The drawn tables mix real export
dresses (delimiters, quoting, BOM, CRLF, gzip, Excel, Parquet, legacy encodings) with the damage real exports
carry: wrong types, missing and duplicated columns, empty and header-only files, mixed date formats and
offsets, NaN/inf, absurd amounts, duplicate ids, "007" next to 7, very long strings, truncated Parquet.

The oracle is written here from what was drawn (which cells are valid, what they mean), not computed with
the loaders' code.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from conftest import NOW, make_config
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from stores import fresh_store

from churn.errors import ChurnError, DataValidationError
from churn.io import read_table
from churn.scoring.rules import contact_blocks
from churn.validation import load_source

# The profile's count (200 in `make test`, 1,000 in `make test-deep`); FUZZ_CASES overrides it for a quick look.
CASES = int(os.environ.get("FUZZ_CASES", settings.default.max_examples))
FUZZ = settings(max_examples=CASES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                       HealthCheck.data_too_large])
TRIED: Counter[str] = Counter()  # cases per loader, printed at the end of the module (pytest -s)


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print("\nfuzz cases tried per loader:", dict(TRIED))


# ---------------------------------------------------------------------------------- cells with meanings
@dataclass(frozen=True)
class Cell:
    """One drawn value: how the file spells it and what it means (None: the loader must reject it)."""

    text: str
    ok: bool
    value: Any = None


def _dt(y: int, m: int, d: int, hh: int = 0, mm: int = 0, off: int | None = None) -> datetime:
    t = datetime(y, m, d, hh, mm)
    return t - timedelta(hours=off) if off is not None else t  # as naive UTC


@st.composite
def date_cells(draw: st.DrawFn, day_first_layouts: bool = True) -> Cell:
    y, m, d = draw(st.integers(2015, 2024)), draw(st.integers(1, 12)), draw(st.integers(1, 28))
    hh, mm = draw(st.integers(0, 23)), draw(st.integers(0, 59))
    # Mostly readable layouts (a source with one bad cell is refused as a whole, and the fuzz must see
    # sources load too), sometimes garbage or a future date.
    kind = draw(st.sampled_from(["iso", "iso_time", "offset", "dotted", "dotted_time"] * 4 + ["garbage", "future"]))
    if kind == "iso":
        return Cell(f"{y:04d}-{m:02d}-{d:02d}", True, _dt(y, m, d))
    if kind == "iso_time":
        return Cell(f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:00", True, _dt(y, m, d, hh, mm))
    if kind == "offset":
        off = draw(st.integers(-11, 12))
        sign = "+" if off >= 0 else "-"
        return Cell(f"{y:04d}-{m:02d}-{d:02d}T{hh:02d}:{mm:02d}:00{sign}{abs(off):02d}:00", True,
                    _dt(y, m, d, hh, mm, off))
    if kind == "dotted":
        return Cell(f"{d:02d}.{m:02d}.{y:04d}", True, _dt(y, m, d))
    if kind == "dotted_time":
        return Cell(f"{d}.{m}.{y} {hh:02d}:{mm:02d}", True, _dt(y, m, d, hh, mm))
    if kind == "future":
        return Cell(f"{2031 + y % 5}-{m:02d}-{d:02d}", False)
    return Cell(draw(st.sampled_from(["yesterday", "2024-13-45", "2024-02-30", "May", "3pm", "n/a", "0",
                                      "31.02.2024", "2024/99/99 noon"])), False)


@st.composite
def number_cells(draw: st.DrawFn, decimal: str, signed: bool = False) -> Cell:
    """An amount in the column's decimal style, or a bad one (negative: bad unless the column is `signed`,
    like events.value; a fee or an amount has a minimum of 0 in the contract)."""
    kind = draw(st.sampled_from(["int", "frac", "frac", "grouped"] * 5 + ["nan", "inf", "absurd", "negative", "text"]))
    whole = draw(st.integers(0, 999))
    frac = draw(st.integers(1, 99))
    if kind == "int":
        return Cell(str(whole), True, float(whole))
    # The value a decimal text denotes is the double nearest to it, as float() reads it: not whole + frac / 100,
    # which is 1.8199999999999998 for "1.82".
    if kind == "frac":
        return Cell(f"{whole}{decimal}{frac:02d}", True, float(f"{whole}.{frac:02d}"))
    if kind == "grouped":
        big = draw(st.integers(1, 999)) * 1000 + whole
        sep = "." if decimal == "," else ","
        return Cell(f"{big // 1000}{sep}{big % 1000:03d}{decimal}{frac:02d}", True, float(f"{big}.{frac:02d}"))
    if kind == "nan":
        return Cell(draw(st.sampled_from(["NaN", "nan", "inf", "-inf", "Infinity"])), False)
    if kind == "inf":
        return Cell("1e999", False)
    if kind == "absurd":
        return Cell(draw(st.sampled_from(["1e300", "99999999999999999999"])), False)
    if kind == "negative":
        return Cell(f"-{whole + 1}", signed, -(whole + 1.0) if signed else None)
    return Cell(draw(st.sampled_from(["abc", "12 EUR", "€5", "1.2.3", "--1", "0x10"])), False)


ID_POOL = ["007", "7", "0042", "42", "A-1", "a-1", "Ω-9", "x" * 300, "ID 5", "1e3"]


# --------------------------------------------------------------------------------------- writing files
@dataclass
class Dress:
    """How a table is written."""

    fmt: str  # csv | csv.gz | tsv | xlsx | parquet | parquet-truncated
    delimiter: str = ","
    quoting: int = csv.QUOTE_MINIMAL
    bom: bool = False
    crlf: bool = False
    encoding: str = "utf-8"

    def suffix(self) -> str:
        return {"csv": ".csv", "csv.gz": ".csv.gz", "tsv": ".tsv", "xlsx": ".xlsx", "parquet": ".parquet",
                "parquet-truncated": ".parquet"}[self.fmt]


dresses = st.builds(
    Dress,
    fmt=st.sampled_from(["csv"] * 6 + ["csv.gz", "tsv", "xlsx", "parquet", "parquet-truncated"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    bom=st.booleans(),
    crlf=st.booleans(),
    encoding=st.sampled_from(["utf-8"] * 5 + ["cp1250"]),
)


# Data folders: Excel sheets are slow to write (openpyxl), so fewer of them than for read_table.
source_dresses = st.builds(
    Dress,
    fmt=st.sampled_from(["csv"] * 12 + ["csv.gz", "csv.gz", "tsv", "tsv", "xlsx", "parquet", "parquet",
                                        "parquet-truncated"]),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    bom=st.booleans(),
    crlf=st.booleans(),
    encoding=st.sampled_from(["utf-8"] * 9 + ["cp1250"]),
)


def write(path_stem: Path, header: list[str], rows: list[list[str | None]], dress: Dress) -> Path:
    """Write a table of text cells (None: empty) in a dress; return the file."""
    path = path_stem.with_name(path_stem.name + dress.suffix())
    if dress.fmt.startswith("parquet"):
        frame = pd.DataFrame(rows, columns=pd.Index(header), dtype=object)
        frame.to_parquet(path, index=False)
        if dress.fmt == "parquet-truncated":
            data = path.read_bytes()
            path.write_bytes(data[: max(1, len(data) * 2 // 3)])
        return path
    if dress.fmt == "xlsx":
        frame = pd.DataFrame(rows, columns=pd.Index(header), dtype=object)
        frame.to_excel(path, index=False, engine="openpyxl")
        return path
    delim = "\t" if dress.fmt == "tsv" else dress.delimiter
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, quoting=dress.quoting, lineterminator="\r\n" if dress.crlf else "\n")
    w.writerow(header)
    for r in rows:
        w.writerow(["" if v is None else v for v in r])
    data = ("\ufeff" if dress.bom and dress.encoding == "utf-8" else "") + buf.getvalue()
    raw = data.encode(dress.encoding, errors="replace")
    if dress.fmt == "csv.gz":
        raw = gzip.compress(raw, mtime=0)
    path.write_bytes(raw)
    return path


def _fresh(tmp: Path, name: str) -> Path:
    d = tmp / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    return d


def _non_ascii(header: list[str], rows: list[list[str | None]]) -> bool:
    return any(not str(v).isascii() for v in header) or any(v is not None and not v.isascii()
                                                            for r in rows for v in r)


def _cp1250_safe(text: str) -> bool:
    try:
        text.encode("cp1250")
        return True
    except UnicodeEncodeError:
        return False


# ------------------------------------------------------------------------------------------ read_table
header_names = st.sampled_from(["customer_id", "Kunde", "Datum", "Betrag", "name", "E-Mail", "Straße",
                                "Žiga", "notes", "plan", "Tenure (months)", "score"])
text_cells = st.one_of(
    st.none(),
    st.sampled_from(["007", "7", "0", "1,5", "1.234,56", "NaN", "inf", "-1e308", "yes", "  spaced  ", "Müller",
                     "Šušteršič", 'say "hi"', "a;b|c,d", "2024-01-02T03:04:05+02:00", "31.12.2024", "\u00a0"]),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12),
    st.just("L" * 5000),  # a very long string
)


@st.composite
def raw_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str | None]], Dress, str]:
    k = draw(st.integers(2, 5))
    header = draw(st.lists(header_names, min_size=k, max_size=k))
    if draw(st.integers(0, 9)) and len(set(h.casefold() for h in header)) < k:
        header = list(dict.fromkeys(header)) + [f"extra_{i}" for i in range(k - len(set(header)))]
    n = draw(st.sampled_from([0, 1, 3, 8]))
    rows = [[draw(text_cells) for _ in range(k)] for _ in range(n)]
    damage = draw(st.sampled_from(["none"] * 6 + ["empty_file", "truncated_gzip", "garbage_bytes"]))
    return header, rows, draw(dresses), damage


@FUZZ
@given(raw_tables())
def test_read_table_loads_or_says_why(tmp_path_factory: pytest.TempPathFactory, drawn: tuple) -> None:
    header, rows, dress, damage = drawn
    TRIED["read_table"] += 1
    if dress.fmt.startswith("parquet") and len(set(header)) < len(header):
        header = [f"{h}_{i}" for i, h in enumerate(header)]  # Parquet cannot even store a repeated name
    folder = _fresh(tmp_path_factory.getbasetemp(), "fuzz_read_table")
    if dress.encoding == "cp1250" and not all(_cp1250_safe(str(v)) for r in [header, *rows] for v in r if v):
        dress.encoding = "utf-8"
    path = write(folder / "table", header, rows, dress)
    if damage == "empty_file" and not dress.fmt.startswith(("parquet", "xlsx")):
        path.write_bytes(gzip.compress(b"", mtime=0) if dress.fmt == "csv.gz" else b"")
    elif damage == "truncated_gzip" and dress.fmt == "csv.gz":
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage_bytes" and dress.fmt in ("csv", "tsv"):
        path.write_bytes(b"\x00\xff\xfe" + path.read_bytes()[:50] + b"\xc3\x28")
    else:
        damage = "none"
    dup = len({h.strip().casefold() for h in header}) < len(header)
    legacy = dress.encoding == "cp1250" and _non_ascii(header, rows) and dress.fmt in ("csv", "csv.gz", "tsv")
    must_fail = (damage != "none" or dress.fmt == "parquet-truncated" or legacy
                 or (dup and not dress.fmt.startswith("parquet")))
    try:
        df = read_table(path)
    except ChurnError as exc:
        assert str(path) in str(exc), str(exc)
        assert must_fail or dup, f"{exc} for {dress}"
        if legacy and damage == "none":
            assert "UTF-8" in str(exc) and "encoding" in str(exc)
        return
    assert not must_fail, f"{dress} {damage} loaded: {df}"
    assert [str(c) for c in df.columns] == header
    got = df.astype(object).where(df.notna(), None).values.tolist()
    # Excel and pandas both read an empty cell as missing; a cell of spaces stays text in CSV.
    expected = [[None if v in (None, "") else v for v in r] for r in rows]
    if dress.fmt == "xlsx":
        # pandas writes text starting with "=" as a formula, stored without a computed value: it reads back
        # empty (a writer's artifact; Excel itself stores the value). Documented: fully blank rows of a sheet
        # (formatting below the data) are not rows.
        expected = [[None if isinstance(v, str) and v.startswith("=") else v for v in r] for r in expected]
        expected = [r for r in expected if any(v is not None for v in r)]
    assert got == expected


# ------------------------------------------------------------------------------------------ load_source
@dataclass
class Source:
    customers: list[tuple[Cell, Cell, Cell]] = field(default_factory=list)  # id, signup, monthly_fee
    events: list[tuple[Cell, Cell, Cell]] = field(default_factory=list)  # id, timestamp, value
    c_dress: Dress = field(default_factory=lambda: Dress("csv"))
    e_dress: Dress = field(default_factory=lambda: Dress("csv"))
    damage: str = "none"


@st.composite
def id_cells(draw: st.DrawFn, pool: list[str]) -> Cell:
    kind = draw(st.sampled_from(["known"] * 20 + ["blank", "spaced"]))
    if kind == "blank":
        return Cell(draw(st.sampled_from(["", "   "])), False)
    v = draw(st.sampled_from(pool))
    if kind == "spaced":
        return Cell(f" {v} ", True, v)  # ids are trimmed
    return Cell(v, True, v)


@st.composite
def sources(draw: st.DrawFn) -> Source:
    ids = draw(st.lists(st.sampled_from(ID_POOL), min_size=0, max_size=5, unique=True))
    dec_c, dec_e = draw(st.sampled_from([".", ","])), draw(st.sampled_from([".", ","]))
    customers = []
    extra = draw(st.lists(st.sampled_from(ID_POOL), max_size=1)) if not draw(st.integers(0, 4)) else []
    for v in ids + extra:  # sometimes a duplicate id (or "7" next to "007", which is not one)
        customers.append((Cell(v, True, v) if draw(st.integers(0, 9)) else draw(id_cells(ID_POOL)),
                          draw(date_cells()) if draw(st.integers(0, 3)) else Cell("2020-01-01", True,
                                                                                    datetime(2020, 1, 1)),
                          draw(number_cells(dec_c)) if draw(st.integers(0, 2)) else Cell("", True, None)))
    pool = ids or ["007"]
    events = [(draw(id_cells(pool + (["unknown"] if not draw(st.integers(0, 9)) else []))),
               draw(date_cells()) if draw(st.integers(0, 2)) else Cell("2024-05-01", True, datetime(2024, 5, 1)),
               draw(number_cells(dec_e, signed=True)) if draw(st.integers(0, 2)) else Cell("1", True, 1.0))
              for _ in range(draw(st.integers(0, 6)))]
    damage = draw(st.sampled_from(["none"] * 8 + ["drop_required", "dup_column", "empty_events",
                                                  "header_only_events"]))
    c_dress, e_dress = draw(source_dresses), draw(source_dresses)
    # Number styles are per column; the Parquet dress keeps text (as an export converted to Parquet would).
    return Source(customers, events, c_dress, e_dress, damage)


def _expect(src: Source) -> tuple[bool, str]:
    """(whether the source is valid, why not) from what was drawn."""
    cust_ids = [c[0].value for c in src.customers if c[0].ok]
    if any(not c[0].ok for c in src.customers) or any(not e[0].ok for e in src.events):
        return False, "empty id"
    if len(cust_ids) != len(set(cust_ids)):
        return False, "duplicate"
    for row in src.customers:
        if not row[1].ok or (row[2].text and not row[2].ok):
            return False, "bad customer value"
    for row in src.events:
        if not row[1].ok or not row[2].ok:
            return False, "bad event value"
        if row[0].value not in set(cust_ids):
            return False, "unknown customer"
    return True, ""


def _cells(rows: list[tuple[Cell, ...]]) -> list[list[str | None]]:
    return [[c.text if c.text != "" else None for c in r] for r in rows]


@FUZZ
@given(sources())
def test_load_source_loads_or_names_file_column_and_examples(tmp_path_factory: pytest.TempPathFactory,
                                                             src: Source) -> None:
    TRIED["load_source"] += 1
    folder = _fresh(tmp_path_factory.getbasetemp(), "fuzz_source")
    c_header, e_header = ["customer_id", "signup_date", "monthly_fee"], ["customer_id", "timestamp", "value"]
    e_rows = _cells(src.events)
    if src.damage == "drop_required":
        e_header, e_rows = e_header[::2], [r[::2] for r in e_rows]
    elif src.damage == "dup_column":
        e_header, e_rows = e_header + ["Timestamp"], [r + [r[1]] for r in e_rows]
    elif src.damage == "header_only_events":
        e_rows = []
    for d in (src.c_dress, src.e_dress):
        d.encoding = "utf-8" if d.encoding == "cp1250" and not all(
            _cp1250_safe(c.text) for r in src.customers + src.events for c in r) else d.encoding
    c_path = write(folder / "customers", c_header, _cells(src.customers), src.c_dress)
    e_path = write(folder / "events", e_header, e_rows, src.e_dress)
    if src.damage == "empty_events" and src.e_dress.fmt in ("csv", "tsv"):
        e_path.write_bytes(b"")
    elif src.damage == "empty_events":
        src.damage = "none"
    valid, why = _expect(Source(src.customers, [] if src.damage == "header_only_events" else src.events))
    structural = src.damage in ("drop_required", "dup_column", "empty_events")
    truncated = "parquet-truncated" in (src.c_dress.fmt, src.e_dress.fmt)
    legacy = any(d.encoding == "cp1250" and d.fmt in ("csv", "csv.gz", "tsv") and not all(
        c.text.isascii() for r in rows for c in r) for d, rows in ((src.c_dress, src.customers),
                                                                    (src.e_dress, src.events)))
    try:
        ds = load_source(str(folder), make_config({"engine": {"threads": 1}}), now=NOW)
    except DataValidationError as exc:
        event(f"load_source: validation error ({why or 'unexpected'})")
        assert not valid or structural or truncated or legacy, f"valid source refused: {exc}"
        for p in exc.problems:
            assert p.file in (str(c_path), str(e_path)), p.render()
            if p.count is not None and "duplicate" not in p.message and "missing" not in p.message:
                assert p.column and p.examples, p.render()  # a bad value: its column and example rows
        return
    except ChurnError as exc:
        # Not a list of bad values: a file that cannot be read as a table at all, and nothing else.
        event(f"load_source: read error ({src.damage}, truncated={truncated}, legacy={legacy})")
        assert structural or truncated or legacy, f"{exc}"
        assert str(c_path) in str(exc) or str(e_path) in str(exc), str(exc)
        return
    event(f"load_source: loaded {len(src.events)} events")
    try:
        assert valid and not structural and not truncated and not legacy, f"invalid source loaded ({why})"
        got = ds.con.execute("SELECT customer_id, signup_date, monthly_fee FROM customers").fetchall()
        want = [(c[0].value, c[1].value, c[2].value) for c in src.customers]
        assert sorted(got, key=repr) == sorted(want, key=repr)
        if src.damage != "header_only_events":
            got_e = ds.con.execute('SELECT customer_id, "timestamp", value FROM events').fetchall()
            want_e = [(e[0].value, e[1].value, e[2].value) for e in src.events]
            assert len(got_e) == len(want_e)
            for g, w in zip(sorted(got_e, key=repr), sorted(want_e, key=repr)):
                assert g[:2] == w[:2] and math.isclose(g[2], w[2], rel_tol=1e-12), (g, w)
    finally:
        ds.con.close()


# ------------------------------------------------------------------------------------ contact history
@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Cell], list[Cell], Dress, int]:
    n = draw(st.integers(0, 8))
    ids = [Cell(draw(st.sampled_from(["007", "7", "42", "A-1"])), True) for _ in range(n)]
    when = []
    for _ in range(n):
        kind = draw(st.integers(0, 4))
        if kind == 0:
            when.append(Cell("", True, None))  # a blank contact time is no contact
        else:
            when.append(draw(date_cells()))
    return ids, when, draw(dresses.filter(lambda d: d.fmt != "parquet-truncated")), draw(st.integers(0, 60))


@FUZZ
@given(histories())
def test_contact_history_loads_or_names_the_column_and_examples(tmp_path_factory: pytest.TempPathFactory,
                                                                drawn: tuple) -> None:
    ids, when, dress, cooldown = drawn
    TRIED["contact_history"] += 1
    folder = _fresh(tmp_path_factory.getbasetemp(), "fuzz_history")
    dress.encoding = "utf-8"
    path = write(folder / "history", ["customer_id", "contacted_at"],
                 [[i.text, w.text or None] for i, w in zip(ids, when)], dress)
    hist = read_table(path)
    as_of = datetime(2025, 1, 1)
    scores = pd.DataFrame({"customer_id": ["007", "7", "42", "A-1", "B"], "as_of": as_of,
                           "marketing_consent": True})
    # "future" cells are fine here: a contact after as_of blocks too (it is not a validation error).
    bad = [w for w in when if not w.ok and not w.text.startswith("203")]
    try:
        reason = contact_blocks(scores, cooldown_days=cooldown, contact_history=hist)
    except ChurnError as exc:
        assert bad, str(exc)
        # The column, and the first unreadable value in file order among the examples.
        assert str(path) in str(exc) and "contacted_at" in str(exc) and repr(bad[0].text) in str(exc), str(exc)
        return
    assert not bad or cooldown == 0 or len(hist) == 0, f"{[b.text for b in bad]} accepted"
    if cooldown == 0:
        assert reason.isna().all()
        return
    for cid, r in zip(scores["customer_id"], reason):
        times = [w.value if w.ok and not w.text.startswith("203") else datetime(2031, 1, 1)
                 for i, w in zip(ids, when) if i.text == cid and w.text]
        if not times:
            assert r is None, (cid, r)
            continue
        days = math.floor((as_of - max(times)) / timedelta(days=1))
        blocked = days < cooldown
        assert (r is not None) == blocked, (cid, r, days)


# ------------------------------------------------------------------------------ churn score --table
@pytest.fixture(scope="module")
def fuzz_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small model trained by `churn train --table` (own MLflow store): tenure, fee, plan, consent."""
    from typer.testing import CliRunner

    from churn.cli import app

    tmp = tmp_path_factory.mktemp("fuzz-model")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", fresh_store(tmp))
    mp.setenv("CHURN_ARTIFACT_ROOT", (tmp / "artifacts").as_uri())
    rng = np.random.default_rng(3)
    n = 400
    tenure, fee = rng.integers(0, 72, n), np.round(rng.uniform(10, 100, n), 2)
    churn = rng.random(n) < 1 / (1 + np.exp(1 + 0.04 * tenure - 0.02 * fee))
    pd.DataFrame({"cid": [f"{i:05d}" for i in range(n)], "tenure": tenure, "fee": fee,
                  "plan": rng.choice(["basic", "plus"], n), "consent": rng.choice(["yes", "no"], n),
                  "churn": np.where(churn, "yes", "no")}).to_csv(tmp / "train.csv", index=False)
    cfg = tmp / "config.yaml"
    cfg.write_text("model:\n  registered_name: fuzz\n  experiment: fuzz\n  n_jobs: 1\n  num_boost_round: 30\n"
                   "  early_stopping_rounds: 10\n  auto_tune_max_rows: 0\n  candidates: [lightgbm]\n"
                   f"  refit: false\n  plots: false\n  bundle_dir: {tmp / 'models'}\nengine:\n  threads: 1\n")
    try:
        res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--table", str(tmp / "train.csv"),
                                       "--target", "churn", "--id", "cid"])
        assert res.exit_code == 0, res.output
        from churn.training.loading import load_model

        bundle = tmp / "models" / "fuzz-1"
        yield {"tmp": tmp, "cfg": cfg, "bundle": bundle, "model": load_model(str(bundle))}
    finally:
        mp.undo()


FEATURES = ["cid", "tenure", "fee", "plan", "consent"]
# What each drawn cell means to the model (None: missing; BAD: the reading must refuse it), written here from
# the spellings, not computed with the loaders: tenure and fee were learnt as plain numbers (so "19,99" is a
# decimal comma, "1.234,50" European groups; "20 %" a percentage, which is never read for a plain number), plan as categories (case and spaces folded,
# an unseen level missing), consent as yes/no words.
BAD = object()
MEANING: dict[str, dict[str, Any]] = {
    "tenure": {"12": 12.0, "0": 0.0, "71": 71.0, "3.5": 3.5, "12,5": 12.5, "": None, "NaN": None, "inf": BAD,
               "-4": -4.0, "1e308": 1e308, "abc": BAD, "12 months": BAD},
    "fee": {"19.99": 19.99, "19,99": 19.99, "1.234,50": 1234.5, "": None, "NaN": None, "-inf": BAD, "1e300": 1e300,
            "free": BAD, "20 %": BAD},
    "plan": {"basic": "basic", "plus": "plus", "BASIC ": "basic", "": None, "new-plan": None, "p" * 5000: None},
    "consent": {"yes": 1.0, "no": 0.0, "Y": 1.0, "1": 1.0, "0": 0.0, "": None, "maybe": BAD, "TRUE": 1.0},
}


@st.composite
def feature_tables(draw: st.DrawFn) -> tuple[list[str], list[list[str | None]], Dress]:
    """Ready feature tables in the model's columns, with the damage real ones carry."""
    n = draw(st.integers(0, 6))
    ids = draw(st.lists(st.sampled_from(["00001", "1", "007", "7", "x" * 400, "Ω"]), min_size=n, max_size=n))
    cells = {c: st.sampled_from(sorted(MEANING[c])) for c in FEATURES[1:]}
    header = list(FEATURES)
    damage = draw(st.sampled_from(["none"] * 6 + ["drop_feature", "dup_column", "drop_id"]))
    rows = [[i] + [draw(cells[c]) or None for c in FEATURES[1:]] for i in ids]
    if damage == "drop_feature":
        k = draw(st.integers(1, 4))
        header.pop(k)
        rows = [r[:k] + r[k + 1:] for r in rows]
    elif damage == "dup_column":
        header.append("Fee")
        rows = [r + [r[2]] for r in rows]
    elif damage == "drop_id":
        header, rows = header[1:], [r[1:] for r in rows]
    return header, rows, draw(dresses)


def _feature_table(fuzz_model: dict[str, Any], name: str, drawn: tuple) -> Path:
    """Write a drawn feature table into a fresh folder: UTF-8, and CSV where Parquet cannot hold its header
    (two names differing in case)."""
    header, rows, dress = drawn
    folder = _fresh(fuzz_model["tmp"], name)
    if dress.fmt.startswith("parquet") and len({h.casefold() for h in header}) < len(header):
        dress.fmt = "csv"
    dress.encoding = "utf-8"
    return write(folder / "features", header, rows, dress)


@FUZZ
@given(feature_tables())
def test_score_table_reads_or_names_the_column(fuzz_model: dict[str, Any], drawn: tuple) -> None:
    """`churn score --table`'s own steps (`table_rows`, then `score_frame`): a table scores exactly as its
    cells mean (each row's probability equals the model's on the meanings written above), or the error
    names the file, or every column holding a value the model cannot read."""
    from churn.scoring.score import score_frame, table_rows

    header, rows, dress = drawn
    TRIED["score --table (in-process)"] += 1
    path = _feature_table(fuzz_model, "fuzz_table", drawn)
    model = fuzz_model["model"]
    kept = [r for r in rows if dress.fmt != "xlsx" or any(v is not None for v in r)]
    bad_columns = {c for c in FEATURES[1:] if c in header for r in kept
                   if MEANING[c].get(r[header.index(c)] or "") is BAD}
    ids = [r[0] for r in kept] if "cid" in header else []
    structural = (len(header) != len(FEATURES) or "cid" not in header or not kept or len(set(ids)) < len(ids)
                  or dress.fmt == "parquet-truncated")
    try:
        df, _, _ = table_rows(str(path), "cid", model, pd.Timestamp("2026-01-01"))
        p = score_frame(model, df)["churn_probability"].to_numpy(dtype=float)
    except ChurnError as exc:
        msg = " ".join(str(exc).split())
        assert bad_columns or structural, f"a readable table was refused: {msg}"
        if bad_columns and not structural:
            assert all(f"column '{c}'" in msg for c in bad_columns), (bad_columns, msg)
        else:
            missing = set(FEATURES) - set(header)  # a missing column is named, as is a duplicated one
            assert str(path) in msg or any(c in msg.split(": ")[-1] for c in missing) or "Fee" in msg, msg
        event(f"score --table: refused ({'values' if bad_columns else 'structure'})")
        return
    assert not bad_columns, f"unreadable values in {bad_columns} were scored"
    event("score --table: scored")
    assert len(p) == len(kept)
    if header == FEATURES:  # the probabilities are those of the cells' meanings, row by row
        meant = pd.DataFrame([{c: MEANING[c][r[header.index(c)] or ""] for c in FEATURES[1:]} for r in kept])
        for c in ("tenure", "fee", "consent"):
            meant[c] = meant[c].astype(float)
        np.testing.assert_allclose(p, model.predict_risk(meant), rtol=0, atol=1e-12)


CLI_CASES = settings.default.max_examples // 5  # each a CLI run


@settings(max_examples=CLI_CASES,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(feature_tables())
def test_cli_score_table_exits_cleanly_and_writes_nothing_on_error(fuzz_model: dict[str, Any], drawn: tuple
                                                                    ) -> None:
    from typer.testing import CliRunner

    from churn.cli import app

    header, rows, dress = drawn
    TRIED["churn score --table (CLI)"] += 1
    path = _feature_table(fuzz_model, "fuzz_cli", drawn)
    out = path.parent / "out"
    res = CliRunner().invoke(app, ["score", "--config", str(fuzz_model["cfg"]), "--table", str(path), "--id", "cid",
                                   "--model", str(fuzz_model["bundle"]), "--as-of", "2026-01-01",
                                   "--out", str(out)])
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    if res.exit_code == 0:
        event("CLI: scored")
        assert (out / "2026-01-01" / "scores.parquet").is_file()
    else:
        event("CLI: refused")
        assert "error:" in res.output, res.output
        # Nothing written: no run folder, and no temporary leftovers in the output root.
        assert not out.exists() or not any(out.iterdir()), sorted(p.name for p in out.rglob("*"))


@pytest.mark.parametrize(("name", "content"), [
    ("empty.csv", b""),
    ("header_only.csv", b"cid;tenure;fee;plan;consent\r\n"),
    ("truncated.parquet", b"PAR1\x15\x04\x15"),
    ("latin1.csv", "cid;tenure;fee;plan;consent\n1;3;9,5;Café;yes\n".encode("latin-1")),
    ("dup_ids.csv", b"cid,tenure,fee,plan,consent\n007,1,2,basic,yes\n007,1,2,basic,yes\n"),
])
def test_cli_fixed_bad_tables(fuzz_model: dict[str, Any], tmp_path: Path, name: str, content: bytes) -> None:
    from typer.testing import CliRunner

    from churn.cli import app

    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["score", "--config", str(fuzz_model["cfg"]), "--table", str(path), "--id", "cid",
                                   "--model", str(fuzz_model["bundle"]), "--as-of", "2026-01-01",
                                   "--out", str(out)])
    assert res.exit_code != 0, res.output
    assert "Traceback" not in res.output and (res.exception is None or isinstance(res.exception, SystemExit))
    assert name in " ".join(res.output.split()), res.output  # the message names the file
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------- --customers lists and exclusions
LIST_IDS = ["007", "7", "42", "A-1", "Ω-9", "x" * 300, " 8 ", "", None]


@st.composite
def id_lists(draw: st.DrawFn) -> tuple[list[Any], str, bool, Dress]:
    """A list of ids (text, or integers in Parquet), its column name, an extra column, and a dress."""
    as_ints = draw(st.integers(0, 5)) == 0
    if as_ints:
        ids: list[Any] = draw(st.lists(st.one_of(st.integers(0, 10**12), st.none()), max_size=8))
    else:
        ids = draw(st.lists(st.sampled_from(LIST_IDS), max_size=8))
    col = draw(st.sampled_from(["customer_id", "Kundennummer"]))
    extra = draw(st.booleans())
    dress = draw(dresses.filter(lambda d: d.fmt not in ("parquet-truncated",)))
    if as_ints:
        dress.fmt = "parquet"
    dress.encoding = "utf-8"
    return ids, col, extra, dress


def _write_list(folder: Path, ids: list[Any], col: str, extra: bool, dress: Dress) -> Path:
    if dress.fmt == "parquet":
        frame = pd.DataFrame({col: pd.array(ids, dtype="Int64") if ids and all(
            v is None or isinstance(v, int) for v in ids) and any(isinstance(v, int) for v in ids) else ids})
        if extra:
            frame["note"] = "x"
        path = folder / "list.parquet"
        frame.to_parquet(path, index=False)
        return path
    header = [col] + (["note"] if extra else [])
    return write(folder / "list", header, [[v] + (["x"] if extra else []) for v in ids], dress)


@FUZZ
@given(id_lists())
def test_customer_lists_load_or_name_file_and_rows(tmp_path_factory: pytest.TempPathFactory, drawn: tuple) -> None:
    from churn.scoring.population import read_customer_list

    ids, col, extra, dress = drawn
    TRIED["--customers list"] += 1
    folder = _fresh(tmp_path_factory.getbasetemp(), "fuzz_list")
    path = _write_list(folder, ids, col, extra, dress)
    text = [None if v is None or str(v).strip() == "" else str(v).strip() for v in ids]
    if dress.fmt == "xlsx":
        # Documented: fully blank rows of a sheet are not rows (a one-column list: blank ids vanish).
        text = [t for t, v in zip(text, ids) if extra or t is not None]
    findable = col == "customer_id" or not extra  # else the id column must be named with --id
    expect_ok = findable and bool(text) and None not in text and len(set(text)) == len(text)
    try:
        got = read_customer_list(path)
    except ChurnError as exc:
        assert str(path) in str(exc), str(exc)
        assert not expect_ok, f"{exc} for {ids!r} in {dress}"
        return
    assert expect_ok, f"{ids!r} {col} extra={extra} {dress} loaded as {got.tolist()}"
    assert got.tolist() == text  # text ids as written (trimmed), 007 and 7 distinct, integers as digits


@FUZZ
@given(id_lists(), st.lists(st.sampled_from(["007", "7", "42", "A-1", "8", "Ω-9", "1000000"]), min_size=1,
                            max_size=6, unique=True))
def test_exclusions_load_and_match_ids_as_text(tmp_path_factory: pytest.TempPathFactory, drawn: tuple,
                                              scored: list[str]) -> None:
    from churn.scoring.rules import is_excluded

    ids, col, extra, dress = drawn
    TRIED["exclusions"] += 1
    folder = _fresh(tmp_path_factory.getbasetemp(), "fuzz_exclusions")
    col = "customer_id"  # the exclusions table is documented to hold `customer_id`
    path = _write_list(folder, ids, col, extra, dress)
    table = read_table(path)
    got = is_excluded(pd.DataFrame({"customer_id": scored}), table)
    listed = {str(v).strip() for v in ids if v is not None and str(v).strip()}
    assert got.tolist() == [s in listed for s in scored]  # "007" never excludes "7", nor the reverse
