"""Real exports load, or fail with a clear error (issue 16).

Files are written byte by byte the way other systems export them (German Excel, a Slovenian ERP, a US
CRM ...): the delimiter, quoting, BOM, line ends, encoding, decimal comma, day-first dates, gzip and Excel
workbooks. Both readers are checked: the DuckDB source loader (data folders) and `read_table` (pandas:
`--table`, contact history, exclusions). Expected values are written out by hand.
"""

from __future__ import annotations

import gzip
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import load, make_config

from churn.errors import ChurnError
from churn.io import read_table
from churn.readers import detect_dialect
from churn.sources import DataSource


def _rows(ds: DataSource, sql: str) -> list[tuple[Any, ...]]:
    try:
        return ds.con.execute(sql).fetchall()
    finally:
        ds.con.close()


def _write(path: Path, text: str, encoding: str = "utf-8", bom: bool = False, crlf: bool = False) -> Path:
    """Write exactly these bytes (no newline translation)."""
    if crlf:
        text = text.replace("\n", "\r\n")
    data = ("\ufeff" if bom else "").encode(encoding) + text.encode(encoding)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


ISSUE_CONFIG = {"sources": {"tables": {"orders": {"columns": {"customer_id": "Kunde", "ordered_at": "Datum",
                                                              "amount": "Betrag"}}}}}


def test_the_issues_semicolon_export_loads(tmp_path: Path) -> None:
    # Issue 16 quoted: "required column 'customer_id' (configured as 'Kunde') is missing; the file has:
    # Kunde;Datum;Betrag". The delimiter must be detected, and its decimal commas read.
    _write(tmp_path / "orders.csv", "Kunde;Datum;Betrag\n007;05.01.2024;12,50\n7;01.02.2024;1.234,00\n")
    rows = _rows(load(tmp_path, make_config(ISSUE_CONFIG)), "SELECT * FROM orders ORDER BY customer_id")
    assert rows == [("007", datetime(2024, 1, 5), 12.5), ("7", datetime(2024, 2, 1), 1234.0)]
    df = read_table(tmp_path / "orders.csv")
    assert list(df.columns) == ["Kunde", "Datum", "Betrag"]
    assert df["Kunde"].tolist() == ["007", "7"]  # text: the leading zero survives


TABLE = [("A-1", "Müller, Hans", "2024-03-01", "10.5"), ("A-2", 'She said "hi"', "2024-03-02", "0")]


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
@pytest.mark.parametrize("bom", [False, True])
@pytest.mark.parametrize("crlf", [False, True])
def test_dialects_load_the_same_table(tmp_path: Path, delimiter: str, bom: bool, crlf: bool) -> None:
    # Every field quoted where it must be (a delimiter, a quote or a comma in a name), the rest not.
    def field(v: str) -> str:
        return '"' + v.replace('"', '""') + '"' if any(c in v for c in (delimiter, '"', ",")) else v

    lines = [delimiter.join(["customer_id", "name", "signup_date", "monthly_fee"])]
    lines += [delimiter.join(field(v) for v in row) for row in TABLE]
    _write(tmp_path / "customers.csv", "\n".join(lines) + "\n", bom=bom, crlf=crlf)
    _write(tmp_path / "events.csv", "customer_id,timestamp\nA-1,2024-03-05\n")
    got = _rows(load(tmp_path), "SELECT customer_id, name, signup_date, monthly_fee FROM customers ORDER BY 1")
    assert got == [("A-1", "Müller, Hans", datetime(2024, 3, 1), 10.5),
                   ("A-2", 'She said "hi"', datetime(2024, 3, 2), 0.0)]
    df = read_table(tmp_path / "customers.csv")
    assert list(df.columns) == ["customer_id", "name", "signup_date", "monthly_fee"]  # no BOM in the name
    assert df.values.tolist() == [list(r) for r in TABLE]
    assert detect_dialect(tmp_path / "customers.csv").delimiter == delimiter


def test_single_quoted_pipe_export(tmp_path: Path) -> None:
    text = "customer_id|name|signup_date\n'1'|'Ann|Lee'|2024-01-01\n'2'|'Bo'|2024-01-02\n"
    _write(tmp_path / "customers.csv", text)
    _write(tmp_path / "events.csv", "customer_id,timestamp\n1,2024-03-05\n")
    d = detect_dialect(tmp_path / "customers.csv")
    assert (d.delimiter, d.quote) == ("|", "'")
    assert _rows(load(tmp_path), "SELECT customer_id, name FROM customers ORDER BY 1") == [("1", "Ann|Lee"),
                                                                                            ("2", "Bo")]


def test_config_overrides_the_detected_dialect(tmp_path: Path) -> None:
    # One column of text holding commas: the sniffer cannot know that ',' is not the delimiter here.
    _write(tmp_path / "events.csv", "customer_id;timestamp;event_type\n1;2024-03-05;a,b\n")
    cfg = make_config({"sources": {"tables": {"events": {"csv_delimiter": ";", "csv_quote": "'"}}}})
    assert _rows(load(tmp_path, cfg), "SELECT customer_id, event_type FROM events") == [("1", "a,b")]
    assert read_table(tmp_path / "events.csv", delimiter=";")["event_type"].tolist() == ["a,b"]


SLOVENE = "customer_id;name;signup_date\n1;Žiga Šušteršič;1.3.2024\n2;Čedomir Đurić;2.3.2024\n"


def test_legacy_encoding_needs_config_and_the_error_suggests_it(tmp_path: Path) -> None:
    _write(tmp_path / "customers.csv", SLOVENE, encoding="cp1250")
    _write(tmp_path / "events.csv", "customer_id,timestamp\n1,2024-03-05\n")
    with pytest.raises(ChurnError) as info:
        load(tmp_path)
    msg = str(info.value)
    assert "customers.csv" in msg and "line 2" in msg and "not valid UTF-8" in msg
    assert "sources.tables.customers.encoding" in msg and "cp1250" in msg
    with pytest.raises(ChurnError, match="line 2 is not valid UTF-8"):
        read_table(tmp_path / "customers.csv")
    cfg = make_config({"sources": {"tables": {"customers": {"encoding": "cp1250"}}}})
    assert _rows(load(tmp_path, cfg), "SELECT name, signup_date FROM customers ORDER BY 1") == [
        ("Čedomir Đurić", datetime(2024, 3, 2)), ("Žiga Šušteršič", datetime(2024, 3, 1))]
    assert read_table(tmp_path / "customers.csv", encoding="cp1250")["name"].tolist() == [
        "Žiga Šušteršič", "Čedomir Đurić"]


def test_latin1_and_bad_bytes_far_into_a_file(tmp_path: Path) -> None:
    # The invalid byte sits beyond the 64 KiB the sniffer reads: DuckDB finds it, the error still says where.
    good = "".join(f"{i},2024-03-05\n" for i in range(9000))
    _write(tmp_path / "events.csv", "customer_id,timestamp,event_type\n" + good.replace("\n", ",x\n")
           + "9001,2024-03-05,Café\n", encoding="latin-1")
    with pytest.raises(ChurnError) as info:
        load(tmp_path)
    assert "events.csv: line 9002 is not valid UTF-8" in str(info.value), str(info.value)
    assert "sources.tables.events.encoding" in str(info.value)
    cfg = make_config({"sources": {"tables": {"events": {"encoding": "latin-1"}}}})
    got = _rows(load(tmp_path, cfg), "SELECT event_type FROM events WHERE customer_id = '9001'")
    assert got == [("Café",)]


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(Exception, match="unknown encoding 'klingon'"):
        make_config({"sources": {"tables": {"events": {"encoding": "klingon"}}}})


@pytest.mark.parametrize(("values", "expected", "settings"), [
    (["12,5", "3", "1.234,56"], [12.5, 3.0, 1234.56], {}),  # decimal comma with dot thousands
    (["12.5", "3", "1,234.56"], [12.5, 3.0, 1234.56], {}),  # decimal dot with comma thousands
    (["1 234,5", "0,75", "2"], [1234.5, 0.75, 2.0], {}),  # space grouping
    (["1,234", "2,000", "5"], [1234.0, 2000.0, 5.0], {}),  # comma file: "1,234" is grouping
    (["1,234", "2,000", "5"], [1.234, 2.0, 5.0], {"decimal_separator": ","}),  # unless the config says
    (["1.234", "2.5", "5"], [1234.0, 2.5, 5.0], {"decimal_separator": ",", "thousands_separator": "."}),
])
def test_decimal_comma_and_thousands(tmp_path: Path, values: list[str], expected: list[float],
                                     settings: dict[str, str]) -> None:
    lines = ["customer_id,ordered_at,amount"] + [f'{i},2024-01-0{i + 1},"{v}"' for i, v in enumerate(values)]
    _write(tmp_path / "orders.csv", "\n".join(lines) + "\n")
    cfg = make_config({"sources": {"tables": {"orders": settings}}})
    got = [r[0] for r in _rows(load(tmp_path, cfg), "SELECT amount FROM orders ORDER BY customer_id")]
    assert got == pytest.approx(expected, rel=1e-12)


def test_semicolon_exports_read_ambiguous_groups_as_decimal_commas(tmp_path: Path) -> None:
    _write(tmp_path / "orders.csv", "customer_id;ordered_at;amount\n1;2024-01-02;1,250\n2;2024-01-03;7\n")
    got = _rows(load(tmp_path), "SELECT amount FROM orders ORDER BY customer_id")
    assert got == [(1.25,), (7.0,)]


@pytest.mark.parametrize(("values", "expected"), [
    (["31.12.2023", "01.02.2024 10:30", "2024-03-04T05:06:07+01:00"],
     [datetime(2023, 12, 31), datetime(2024, 2, 1, 10, 30), datetime(2024, 3, 4, 4, 6, 7)]),
    (["31/12/2023", "01/02/2024"], [datetime(2023, 12, 31), datetime(2024, 2, 1)]),  # day first: 31 > 12
    (["12/31/2023", "01/02/2024"], [datetime(2023, 12, 31), datetime(2024, 1, 2)]),  # month first: 31 > 12
    (["05-06-2024 08:00:00", "2024-06-07"], [datetime(2024, 6, 5, 8), datetime(2024, 6, 7)]),
])
def test_day_first_and_mixed_dates(tmp_path: Path, values: list[str], expected: list[datetime]) -> None:
    lines = ["customer_id,timestamp"] + [f"{i},{v}" for i, v in enumerate(values)]
    _write(tmp_path / "events.csv", "\n".join(lines) + "\n")
    got = [r[0] for r in _rows(load(tmp_path), "SELECT timestamp FROM events ORDER BY customer_id")]
    assert got == expected


def test_dates_mixing_both_orders_are_reported(tmp_path: Path) -> None:
    _write(tmp_path / "events.csv", "customer_id,timestamp\n1,31/12/2023\n2,12/31/2023\n")
    with pytest.raises(ChurnError) as info:
        load(tmp_path)
    msg = str(info.value)
    assert "events.csv, column 'timestamp': unparseable date/time" in msg and "12/31/2023" in msg


def test_gzipped_csv(tmp_path: Path) -> None:
    _write(tmp_path / "orders.csv.gz", "Kunde;Datum;Betrag\n007;05.01.2024;12,50\n", bom=True, crlf=True)
    got = _rows(load(tmp_path, make_config(ISSUE_CONFIG)), "SELECT * FROM orders")
    assert got == [("007", datetime(2024, 1, 5), 12.5)]
    assert read_table(tmp_path / "orders.csv.gz").values.tolist() == [["007", "05.01.2024", "12,50"]]


def test_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    full = gzip.compress(("customer_id,timestamp\n" + "1,2024-01-01\n" * 5000).encode(), mtime=0)
    (tmp_path / "events.csv.gz").write_bytes(full[: len(full) // 2])
    with pytest.raises(ChurnError, match="events.csv.gz"):
        load(tmp_path)
    with pytest.raises(ChurnError, match="events.csv.gz"):
        read_table(tmp_path / "events.csv.gz")


def test_excel_workbook_with_a_named_sheet(tmp_path: Path) -> None:
    path = tmp_path / "customers.xlsx"
    with pd.ExcelWriter(path, engine="openpyxl") as xl:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(xl, sheet_name="Info", index=False)
        pd.DataFrame({"Kundennr": ["007", "8"], "Seit": ["01.03.2024", "2024-03-02"],
                      "Gebühr": [9.5, 12]}).to_excel(xl, sheet_name="Kunden", index=False)
    _write(tmp_path / "events.csv", "customer_id,timestamp\n007,2024-03-05\n")
    mapping = {"customer_id": "Kundennr", "signup_date": "Seit", "monthly_fee": "Gebühr"}
    with pytest.raises(ChurnError, match="no sheet named 'Customers'; the workbook has: 'Info', 'Kunden'"):
        load(tmp_path, make_config({"sources": {"tables": {"customers": {"sheet": "Customers",
                                                                         "columns": mapping}}}}))
    cfg = make_config({"sources": {"tables": {"customers": {"sheet": "Kunden", "columns": mapping}}}})
    got = _rows(load(tmp_path, cfg), "SELECT customer_id, signup_date, monthly_fee FROM customers ORDER BY 1")
    assert got == [("007", datetime(2024, 3, 1), 9.5), ("8", datetime(2024, 3, 2), 12.0)]
    df = read_table(path, sheet="Kunden")
    assert df["Kundennr"].tolist() == ["007", "8"]


def test_duplicated_header_is_refused_by_both_readers(tmp_path: Path) -> None:
    _write(tmp_path / "events.csv", "customer_id;timestamp;Customer_ID\n1;2024-01-01;2\n")
    with pytest.raises(ChurnError, match=r"events.csv: column\(s\) 'Customer_ID' appear more than once"):
        load(tmp_path)
    with pytest.raises(ChurnError, match="appear more than once"):
        read_table(tmp_path / "events.csv")


def test_empty_file_is_a_clear_error(tmp_path: Path) -> None:
    _write(tmp_path / "events.csv", "")
    with pytest.raises(ChurnError, match="events.csv: the file is empty"):
        load(tmp_path)
    with pytest.raises(ChurnError, match="events.csv: the file is empty"):
        read_table(tmp_path / "events.csv")


def test_cli_validate_reads_the_issues_export_and_refuses_a_legacy_one_cleanly(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from churn.cli import app

    data = tmp_path / "data"
    _write(data / "orders.csv", "Kunde;Datum;Betrag\n007;05.01.2024;12,50\n")
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({**ISSUE_CONFIG, "engine": {"threads": 1, "memory_limit": "1GB"}}))
    res = CliRunner().invoke(app, ["validate", "--data", str(data), "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and "orders" in res.output
    _write(data / "customers.csv", SLOVENE.replace("1;", "007;", 1), encoding="cp1250")
    res = CliRunner().invoke(app, ["validate", "--data", str(data), "--config", str(cfg)])
    text = "".join(res.output.split())  # Rich wraps long lines anywhere, even inside a file name
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert "customers.csv:line2isnotvalidUTF-8" in text and "setsources.tables.customers.encoding" in text
    assert "itlookslikecp1250" in text
