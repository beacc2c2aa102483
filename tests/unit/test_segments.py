"""Segment CSVs and the segments workbook: contents, text fidelity (ids, Persian), atomic writes."""

from __future__ import annotations

import zipfile
from datetime import datetime

import numpy as np
import openpyxl
import pandas as pd
import pytest
import xlsxwriter

import churn.scoring.segments as segments_mod
from churn.errors import ChurnError
from churn.scoring.segments import contact_rows, is_rtl_language, sheet_title, slug, write_segments
from churn.scoring.summary import IncentiveResult, PlanSummary

TIERS = ["critical", "high", "medium", "low"]
LANGS = ["en", "de", "sl", "lv", "tr", "fa"]
PERSIAN = "مشتری گرامی، ۲۰٪ تخفیف برای شما"
TEXT = {
    "en": "Hi {name}, enjoy your offer.",
    "de": "Hallo {name}, genießen Sie Ihr Angebot.",
    "sl": "Pozdravljeni, {name}! Izkoristite ponudbo.",
    "lv": "Sveiki, {name}! Izmantojiet piedāvājumu.",
    "tr": "Merhaba {name}, teklifiniz hazır.",
    "fa": PERSIAN,
}
NAMES = {
    "en": "Emma Brown",
    "de": "Jonas Müller",
    "sl": "Luka Kovačič",
    "lv": "Jānis Bērziņš",
    "tr": "Ayşe Yılmaz",
    "fa": "سارا احمدی",
}
INCENTIVE_BY_TIER = {
    "critical": ["discount_20", "personal_call"],
    "high": ["free_month"],
    "medium": ["loyalty_points", None],
    "low": [None],
}


def make_plan(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """A retention plan: ids with leading zeros, six languages, four tiers, control group, no-contacts."""
    rng = np.random.default_rng(seed)
    p = np.round(rng.uniform(0.01, 0.95, size=n), 6)
    tier = np.select([p >= 0.5, p >= 0.3, p >= 0.15], TIERS[:3], default="low")
    langs = np.array(LANGS)[np.arange(n) % len(LANGS)]
    incentive = [
        INCENTIVE_BY_TIER[t][(i // len(LANGS)) % len(INCENTIVE_BY_TIER[t])] for i, t in enumerate(tier)
    ]
    holdout = (tier != "low") & (np.arange(n) % 10 == 3)
    contact = (tier != "low") & ~holdout & (np.arange(n) % 13 != 5)
    why = np.where(
        holdout,
        "control_group",
        np.where(tier == "low", "low_risk", np.where(contact, None, "no_marketing_consent")),
    )
    return pd.DataFrame(
        {
            "customer_id": [f"{i:06d}" for i in range(1, n + 1)],
            "as_of": pd.Timestamp("2026-11-01"),
            "churn_probability": p,
            "risk_tier": pd.Categorical(tier, categories=TIERS, ordered=True),
            "reason_1": "Logged in much less often",
            "reason_2": "Has open support tickets",
            "reason_3": None,
            "customer_value": rng.uniform(100, 2000, size=n).round(2),
            "expected_loss": 0.0,
            "incentive": incentive,
            "channel": "email",
            "contact": contact,
            "holdout": holdout,
            "offer_message": [TEXT[lang].format(name=NAMES[lang]) for lang in langs],
            "message_language": langs,
            "no_contact_reason": why,
            "model_version": "v3",
            "name": [NAMES[lang] for lang in langs],
            "email": [f"c{i:06d}@example.com" for i in range(1, n + 1)],
            "language": langs,
            "incentive_cost": np.where(contact, 10.0, 0.0),
        }
    )


def _expected_segments(plan: pd.DataFrame) -> dict[str, list[str]]:
    sent = plan[plan["contact"] & ~plan["holdout"]].copy()
    sent["incentive"] = sent["incentive"].fillna("no_incentive")
    sent = sent.sort_values(["churn_probability", "customer_id"], ascending=[False, True])
    return {
        f"{t}__{i}.csv": g["customer_id"].tolist()
        for (t, i), g in sent.groupby(["risk_tier", "incentive"], observed=True)
    }


def _read_csv(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, encoding="utf-8-sig", keep_default_na=False)


@pytest.fixture
def plan() -> pd.DataFrame:
    return make_plan()


def test_one_file_per_tier_and_incentive_with_the_right_rows(plan, tmp_path):
    paths = write_segments(plan, tmp_path / "out")
    expected = _expected_segments(plan)
    csvs = [p for p in paths if p.suffix == ".csv"]
    assert paths[-1] == tmp_path / "out" / "segments.xlsx"
    assert {p.name for p in csvs} == set(expected)
    assert sorted(p.name for p in (tmp_path / "out" / "segments").iterdir()) == sorted(expected)
    # Riskiest tier first.
    assert [p.name.split("__")[0] for p in csvs] == sorted(
        [p.name.split("__")[0] for p in csvs], key=TIERS.index
    )
    for p in csvs:
        df = _read_csv(p)
        assert df["customer_id"].tolist() == expected[p.name], p.name  # sorted: probability desc, then id
        assert list(df.columns) == [
            "customer_id",
            "name",
            "email",
            "language",
            "message_language",
            "channel",
            "incentive",
            "offer_message",
            "reason_1",
            "reason_2",
            "reason_3",
            "risk_tier",
            "churn_probability",
        ]
        probs = df["churn_probability"].astype(float)
        assert (probs == probs.round(3)).all() and probs.is_monotonic_decreasing
    # "no incentive" contacts still get a list, with a readable name.
    assert "medium__no_incentive.csv" in expected


def test_only_contacted_customers_are_listed(plan, tmp_path):
    plan.loc[plan.index[plan["holdout"]][0], "contact"] = True  # inconsistent row: control group wins
    write_segments(plan, tmp_path)
    listed = pd.concat([_read_csv(p) for p in (tmp_path / "segments").glob("*.csv")])
    expected = set(plan.loc[plan["contact"] & ~plan["holdout"], "customer_id"])
    assert set(listed["customer_id"]) == expected
    assert listed["customer_id"].is_unique
    assert "customer_value" not in listed.columns and "expected_loss" not in listed.columns


def test_ids_keep_leading_zeros_in_csv_and_excel(plan, tmp_path):
    write_segments(plan, tmp_path)
    first = min((tmp_path / "segments").glob("*.csv"))
    raw = first.read_text(encoding="utf-8-sig").splitlines()[1]
    assert raw.split(",")[0].startswith("000")
    wb = openpyxl.load_workbook(tmp_path / "segments.xlsx")
    ids = []
    for ws in wb.worksheets[1:]:
        assert ws["A1"].value == "customer_id"
        for cell in ws["A"][1:]:
            assert cell.data_type == "s" and cell.number_format == "@"
            ids.append(cell.value)
    assert set(ids) == set(plan.loc[plan["contact"] & ~plan["holdout"], "customer_id"])
    assert all(len(i) == 6 and i.startswith("000") for i in ids)


def test_persian_round_trips_and_rtl_reading_order_is_set(plan, tmp_path):
    write_segments(plan, tmp_path)
    path = tmp_path / "segments" / "critical__discount_20.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it as UTF-8
    df = _read_csv(path)
    fa = df[df["message_language"] == "fa"]
    assert len(fa) and (fa["offer_message"] == PERSIAN).all() and (fa["name"] == "سارا احمدی").all()
    assert "Jānis Bērziņš" in set(_read_csv(tmp_path / "segments" / "high__free_month.csv")["name"]) | set(
        df["name"]
    )

    wb = openpyxl.load_workbook(tmp_path / "segments.xlsx")
    checked = {"rtl": 0, "ltr": 0}
    for ws in wb.worksheets[1:]:
        header = [c.value for c in ws[1]]
        lang_col, msg_col = header.index("message_language"), header.index("offer_message")
        name_col = header.index("name")
        for row in ws.iter_rows(min_row=2):
            msg, name = row[msg_col].alignment, row[name_col].alignment
            assert msg.vertical == "top" and msg.wrap_text
            if row[lang_col].value == "fa":
                assert row[msg_col].value == PERSIAN
                assert msg.readingOrder == 2 and msg.horizontal == "right"
                # The Persian name starts with right-to-left text, so it is read RTL too.
                assert name.readingOrder == 2 and name.horizontal == "right"
                checked["rtl"] += 1
            else:
                assert msg.readingOrder != 2 and msg.horizontal is None
                assert name.readingOrder != 2 and name.vertical == "top"
                checked["ltr"] += 1
    assert checked["rtl"] > 0 and checked["ltr"] > 0


def test_workbook_summary_and_sheets(plan, tmp_path):
    plan["incentive"] = plan["incentive"].replace(
        {
            "discount_20": "winter discount campaign for loyal customers A",
            "personal_call": "winter discount campaign for loyal customers B",
        }
    )
    summary = PlanSummary(
        budget=5000.0,
        budget_used=1230.0,
        currency="EUR",
        expected_saved_value=80.0,
        incentives={"free_month": IncentiveResult(customers=1, cost=25.0, expected_saved_value=80.0,
                                                  expected_net_value=55.0)},
    )
    paths = write_segments(plan, tmp_path, summary=summary)
    wb = openpyxl.load_workbook(tmp_path / "segments.xlsx")
    names = wb.sheetnames
    assert names[0] == "Summary"
    assert len(names) == len(paths)  # Summary + one sheet per CSV
    assert all(len(n) <= 31 for n in names) and len({n.casefold() for n in names}) == len(names)
    # Two long incentive names that share their first 31 characters still get two distinct sheets.
    assert sum(n.startswith("critical - winter discount") for n in names) == 2
    cells = {c.value for row in wb["Summary"].iter_rows() for c in row if c.value is not None}
    assert {"Customers by risk tier", "Contacts by incentive", "Budget used", 5000, 1230, 80} <= cells
    sheet = wb[names[1]]
    assert sheet.freeze_panes == "B2"
    assert sheet.column_dimensions["H"].width == 60  # offer_message
    assert sheet.column_dimensions["A"].width >= 10
    assert sheet.auto_filter.ref == f"A1:M{sheet.max_row}"
    header = sheet[1]
    assert all(
        c.font.b and c.fill.fill_type == "solid" and c.fill.fgColor.rgb.endswith("305496") for c in header
    )
    assert header[12].value == "churn_probability"
    for row in sheet.iter_rows(min_row=2):
        assert row[12].data_type == "n" and row[12].number_format == "0.0%" and 0 < row[12].value < 1
        assert row[10].value is None  # reason_3 is missing: an empty cell
    # The segment index links every sheet, quoted as Excel expects.
    summary_sheet = wb["Summary"]
    links = {c.value: c.hyperlink.location for row in summary_sheet.iter_rows() for c in row if c.hyperlink}
    assert links == {n: f"'{n}'!A1" for n in names[1:]}
    assert summary_sheet.column_dimensions["D"].width == 36


def test_text_that_looks_like_a_formula_stays_text(plan, tmp_path):
    first, second = plan.index[plan["contact"] & ~plan["holdout"]][:2]
    plan.loc[first, "name"] = '=HYPERLINK("http://evil.example","click")'
    plan.loc[second, "customer_id"] = "=0042+1"
    write_segments(plan, tmp_path)
    wb = openpyxl.load_workbook(tmp_path / "segments.xlsx")
    hits = [c for ws in wb.worksheets[1:] for c in ws["B"] if str(c.value).startswith("=HYPERLINK")]
    assert len(hits) == 1 and hits[0].data_type == "s"
    assert hits[0].value == '=HYPERLINK("http://evil.example","click")'
    ids = [c for ws in wb.worksheets[1:] for c in ws["A"] if c.value == "=0042+1"]
    assert len(ids) == 1 and ids[0].data_type == "s" and ids[0].number_format == "@"


def test_output_is_deterministic(plan, tmp_path):
    a = write_segments(plan, tmp_path / "a")
    b = write_segments(plan.sample(frac=1.0, random_state=3), tmp_path / "b")  # row order must not matter
    assert [p.name for p in a] == [p.name for p in b]
    for pa, pb in zip(a, b, strict=True):  # the workbook too, byte for byte
        assert pa.read_bytes() == pb.read_bytes(), pa.name


def test_workbook_stores_no_wall_clock_time(plan, tmp_path):
    # Two runs within the same second would match anyway: check that no date in the file is "now".
    path = write_segments(plan, tmp_path)[-1]
    props = openpyxl.load_workbook(path).properties
    assert props.creator == "churn"
    assert props.created == props.modified == datetime(1980, 1, 1)
    with zipfile.ZipFile(path) as zf:
        assert {info.date_time for info in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_refuses_to_overwrite_without_flag(plan, tmp_path):
    write_segments(plan, tmp_path)
    with pytest.raises(ChurnError, match="already exists"):
        write_segments(plan, tmp_path)
    # Only the xlsx left over from another run also blocks.
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "segments.xlsx").write_bytes(b"old")
    with pytest.raises(ChurnError, match="segments.xlsx already exists"):
        write_segments(plan, tmp_path / "other")
    assert not (tmp_path / "other" / "segments").exists()
    # With overwrite the folder is replaced as a whole: segments that no longer exist disappear.
    smaller = plan[plan["risk_tier"] == "high"]
    paths = write_segments(smaller, tmp_path, overwrite=True)
    assert [p.name for p in (tmp_path / "segments").iterdir()] == ["high__free_month.csv"]
    assert len(paths) == 2
    assert openpyxl.load_workbook(tmp_path / "segments.xlsx").sheetnames == ["Summary", "high - free_month"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "segments", "segments.xlsx"]


def _fail_on_second_csv(monkeypatch):
    real = segments_mod._write_segment_csv
    calls = {"n": 0}

    def flaky(rows, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        real(rows, path)

    monkeypatch.setattr(segments_mod, "_write_segment_csv", flaky)
    return calls


def test_failure_mid_write_leaves_no_partial_output(plan, tmp_path, monkeypatch):
    calls = _fail_on_second_csv(monkeypatch)
    out = tmp_path / "out"
    with pytest.raises(OSError, match="disk full"):
        write_segments(plan, out)
    assert calls["n"] == 2  # one CSV had been written (to the temp folder) when it failed
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_failure_during_overwrite_keeps_the_previous_output(plan, tmp_path, monkeypatch):
    write_segments(plan, tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "segments").iterdir()}
    xlsx_before = (tmp_path / "segments.xlsx").read_bytes()
    _fail_on_second_csv(monkeypatch)
    with pytest.raises(OSError):
        write_segments(plan.head(50), tmp_path, overwrite=True)
    assert {p.name: p.read_bytes() for p in (tmp_path / "segments").iterdir()} == before
    assert (tmp_path / "segments.xlsx").read_bytes() == xlsx_before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["segments", "segments.xlsx"]  # no temp leftovers


def test_workbook_failure_leaves_nothing(plan, tmp_path, monkeypatch):
    def broken_close(self):
        with open(self.filename, "wb") as fh:
            fh.write(b"PK half a workbook")
        raise RuntimeError("cannot save (simulated)")

    monkeypatch.setattr(xlsxwriter.Workbook, "close", broken_close)
    with pytest.raises(RuntimeError, match="simulated"):
        write_segments(plan, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_missing_columns_are_named(plan):
    with pytest.raises(ChurnError, match=r"lacks column\(s\) \['offer_message'\]"):
        contact_rows(plan.drop(columns=["offer_message"]))


def test_plan_without_name_or_email(plan, tmp_path):
    paths = write_segments(plan.drop(columns=["name", "email", "language"]), tmp_path)
    df = _read_csv(paths[0])
    assert "name" not in df.columns and "email" not in df.columns
    assert (df["language"] == df["message_language"]).all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Discount 20%", "discount_20"),
        ("critical", "critical"),
        ("Gratis-Monat (Ä)", "gratis_monat_a"),
        ("  ", None),
        ("تخفیف", None),
    ],
)
def test_slug_is_safe_and_readable(text, expected):
    s = slug(text)
    assert s and all(c.isascii() and (c.isalnum() or c == "_") for c in s)
    if expected:
        assert s == expected
    else:
        assert s.startswith("u") and s == slug(text)  # stable code for non-Latin names


@pytest.mark.parametrize(
    ("tier", "incentive", "expected"),
    [
        ("critical", "discount_20", "critical - discount_20"),
        ("high", "Kate's gift", "high - Kate's gift"),
        ("'vip'", "call'", "vip' - call"),
        ("medium", "a/b: [c]?", "medium - a_b_ _c__"),
        ("x" * 24, "abc'def", "x" * 24 + " - abc"),  # cut after the apostrophe: Excel refuses a trailing '
        ("low", "🎁" * 20, "low - " + "🎁" * 12),  # an emoji counts 2 of Excel's 31 units
    ],
)
def test_sheet_title_is_a_name_excel_accepts(tier, incentive, expected):
    assert sheet_title(tier, incentive) == expected


def test_awkward_sheet_names_are_written_and_linked(plan, tmp_path):
    plan["incentive"] = plan["incentive"].replace({"discount_20": "Kate's 🎁🎁 gift for our loyal customers"})
    write_segments(plan, tmp_path)
    wb = openpyxl.load_workbook(tmp_path / "segments.xlsx")
    name = next(n for n in wb.sheetnames if "Kate" in n)
    assert name == "critical - Kate's 🎁🎁 gift for"
    links = {c.value: c.hyperlink.location for row in wb["Summary"].iter_rows() for c in row if c.hyperlink}
    assert links[name] == "'critical - Kate''s 🎁🎁 gift for'!A1"


def test_rtl_languages():
    assert all(is_rtl_language(c) for c in ["fa", "ar", "he", "ur", "FA", "fa-IR"])
    assert not any(is_rtl_language(c) for c in ["en", "de", "tr", None, ""])
