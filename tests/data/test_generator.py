"""The synthetic data generator: arguments, determinism, the data contract and the planted churn drivers.

Sizes are small (a few thousand customers, 18 months) so the whole module runs in seconds; every
threshold has a wide margin around what the documented parameters produce (docs/synthetic-data.md).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import churn.generate.writing as gen  # the module whose CHUNK_SIZE the chunking reads
from churn.contract import ACTIVITY, CONTRACT
from churn.errors import ChurnError
from churn.generate import PLANTED, generate, ground_truth

START, END = date(2023, 1, 1), date(2024, 7, 1)
N = 4000
SEED = 11
TABLES_SUB = ("customers", "events", "tickets", "orders", "surveys", "fee_changes")
TIME_COL = {name: spec.time_column for name, spec in CONTRACT.items()}


def _read(folder: Path) -> dict[str, pd.DataFrame]:
    return {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}


@pytest.fixture(scope="module")
def sub(tmp_path_factory) -> tuple[Path, dict[str, int], dict[str, pd.DataFrame], pd.DataFrame]:
    out = tmp_path_factory.mktemp("gen") / "subscription"
    counts = generate(N, START, END, SEED, out)
    return out, counts, _read(out), ground_truth(N, START, END, SEED).set_index("customer_id")


@pytest.fixture(scope="module")
def retail(tmp_path_factory) -> tuple[Path, dict[str, int], dict[str, pd.DataFrame], pd.DataFrame]:
    out = tmp_path_factory.mktemp("gen") / "retail"
    counts = generate(N, START, END, SEED, out, business="retail")
    gt = ground_truth(N, START, END, SEED, business="retail").set_index("customer_id")
    return out, counts, _read(out), gt


def _count_before(df: pd.DataFrame, col: str, ref: pd.Series, lo: float, hi: float) -> pd.Series:
    """Rows per customer with ref - time in (lo, hi] days; ref is indexed by customer_id."""
    d = df[df.customer_id.isin(ref.index)]
    days = (d.customer_id.map(ref) - d[col]).dt.total_seconds() / 86400
    hit = (days > lo) & (days <= hi)
    return hit.groupby(d.customer_id).sum().reindex(ref.index, fill_value=0)


def _churners(gt: pd.DataFrame, history_days: int) -> pd.Series:
    """Churn dates of churners observed for at least `history_days` before churning."""
    ch = gt[gt.churned]
    day = (ch.churn_date - pd.Timestamp(START)).dt.days
    return ch.churn_date[day - np.maximum(ch.signup_day, 0) >= history_days]


def _matched_stayers(gt: pd.DataFrame, churn_dates: pd.Series, history_days: int) -> pd.Series:
    """Stayers with reference dates drawn from the churners' dates (a comparable window)."""
    stay = gt[~gt.churned]
    ref = pd.Series(np.random.default_rng(0).choice(churn_dates.values, len(stay)), index=stay.index)
    day = (ref - pd.Timestamp(START)).dt.days
    return ref[day - np.maximum(stay.signup_day, 0) >= history_days]


# ------------------------------------------------------------------------------------------ arguments
@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_customers": 0},
        {"n_customers": -5},
        {"end": START},
        {"end": date(2022, 12, 1)},
        {"seed": -1},
        {"business": "telco"},
        {"events_per_customer": -1.0},
    ],
)
def test_bad_arguments_raise_churn_error(tmp_path, kwargs):
    args = {"n_customers": 10, "start": START, "end": END, "seed": 1, "out": tmp_path / "x"} | kwargs
    with pytest.raises(ChurnError):
        generate(**args)
    assert not (tmp_path / "x").exists()


def test_refuses_to_replace_an_existing_folder_unless_overwrite(tmp_path):
    out = tmp_path / "src"
    generate(50, START, END, 1, out)
    with pytest.raises(ChurnError, match="already exists"):
        generate(50, START, END, 2, out)
    generate(50, START, END, 2, out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in TABLES_SUB)
    assert [p.name for p in tmp_path.iterdir()] == ["src"]  # no temp folders left behind


def test_progress_is_reported_per_chunk_and_chunks_join_up(tmp_path, monkeypatch):
    monkeypatch.setattr(gen, "CHUNK_SIZE", 200)
    calls: list[tuple[int, int]] = []
    counts = generate(500, START, END, 3, tmp_path / "p", progress=lambda d, t: calls.append((d, t)))
    assert calls == [(200, 500), (400, 500), (500, 500)]
    customers = pd.read_parquet(tmp_path / "p" / "customers.parquet")
    assert customers.customer_id.tolist() == [f"{i:07d}" for i in range(1, 501)]
    events = pd.read_parquet(tmp_path / "p" / "events.parquet")
    assert counts["events"] == len(events)
    assert events.customer_id.is_monotonic_increasing


# ---------------------------------------------------------------------------------------- determinism
def test_same_arguments_give_byte_identical_files_and_another_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ca = generate(600, START, END, 5, a)
    cb = generate(600, START, END, 5, b)
    cc = generate(600, START, END, 6, c)
    assert ca == cb
    for t in TABLES_SUB:
        assert (a / f"{t}.parquet").read_bytes() == (b / f"{t}.parquet").read_bytes(), t
    for t in ("customers", "events", "tickets", "orders"):
        assert (a / f"{t}.parquet").read_bytes() != (c / f"{t}.parquet").read_bytes(), t
    assert ca != cc


def test_ground_truth_matches_the_generated_customers(sub):
    _, _, t, gt = sub
    cu = t["customers"].set_index("customer_id")
    assert cu.index.equals(gt.index)
    signup = (cu.signup_date - pd.Timestamp(START)).dt.days
    assert (signup == gt.signup_day).all()
    assert (cu.cancel_date.notna() == gt.churned).all()
    assert (cu.cancel_date.dropna() == gt.churn_date.dropna()).all()


# ------------------------------------------------------------------------------------------- contract
_ARROW_OK = {
    "id": pa.types.is_string,
    "text": pa.types.is_string,
    "timestamp": lambda t: pa.types.is_timestamp(t) and t.unit == "us" and t.tz is None,
    "date": lambda t: pa.types.is_timestamp(t) or pa.types.is_date(t),
    "number": lambda t: pa.types.is_floating(t) or pa.types.is_integer(t),
    "bool": pa.types.is_boolean,
}


@pytest.mark.parametrize("business", ["subscription", "retail"])
def test_tables_conform_to_the_contract(sub, retail, business):
    out, counts, tables, _ = sub if business == "subscription" else retail
    expected = TABLES_SUB if business == "subscription" else TABLES_SUB[:-1]
    assert sorted(tables) == sorted(expected)
    for name, df in tables.items():
        spec = CONTRACT[name]
        schema = pq.read_schema(out / f"{name}.parquet")
        assert set(spec.required) <= set(schema.names), name
        assert set(schema.names) <= {c.name for c in spec.columns}, name
        for field in schema:
            col = spec.column(field.name)
            assert _ARROW_OK[col.type](field.type), (name, field.name, field.type)
            if col.type == "number":
                values = df[field.name].dropna()
                if col.min is not None:
                    assert (values >= col.min).all(), (name, field.name)
                if col.max is not None:
                    assert (values <= col.max).all(), (name, field.name)
        assert counts[name] == len(df)
        for req in spec.required:
            assert df[req].notna().all(), (name, req)


def test_customer_ids_are_unique_zero_padded_text(sub):
    cu = sub[2]["customers"]
    assert cu.customer_id.is_unique
    assert cu.customer_id.str.fullmatch(r"\d{7}").all()
    assert cu.customer_id.iloc[0] == "0000001"
    assert cu.customer_id.is_monotonic_increasing


@pytest.mark.parametrize("business", ["subscription", "retail"])
def test_activity_only_between_signup_cancel_start_and_end(sub, retail, business):
    _, _, t, gt = sub if business == "subscription" else retail
    cu = t["customers"].set_index("customer_id")
    start, end = pd.Timestamp(START), pd.Timestamp(END)
    stop = gt.churn_date.fillna(end)  # retail has no cancel_date column; the truth knows when they left
    if business == "subscription":
        stop = cu.cancel_date.fillna(end)
    for name in ACTIVITY:
        df, col = t[name], TIME_COL[name]
        assert df.customer_id.isin(cu.index).all(), name
        ts = df[col]
        assert (ts >= start).all() and (ts < end).all(), name
        assert (ts >= df.customer_id.map(cu.signup_date)).all(), f"{name}: activity before signup"
        assert (ts < df.customer_id.map(stop)).all(), f"{name}: activity after churn"
        # sorted by customer, then time
        key = df.customer_id + ts.astype("int64").astype(str).str.zfill(20)
        assert key.is_monotonic_increasing, name


def test_ticket_and_order_values_are_sane(sub):
    t = sub[2]
    tk = t["tickets"]
    closed = tk.closed_at.notna()
    assert (tk.closed_at[closed] >= tk.opened_at[closed]).all()
    assert (tk.closed_at[closed] < pd.Timestamp(END)).all()
    assert 0.01 < (~closed).mean() < 0.2  # some tickets stay unresolved
    assert tk.satisfaction[~closed].isna().all()  # ratings only after resolution
    assert set(tk.satisfaction.dropna().unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert {"billing", "technical", "account"} <= set(tk.category)
    od = t["orders"]
    assert (od.amount >= 0).all() and (od.discount >= 0).all() and (od.quantity >= 1).all()
    assert (od.discount > 0).mean() > 0.05
    ev = t["events"]
    assert set(ev.event_type) == {"login", "session", "page_view", "feature_use"}
    assert ev.duration_s.notna().eq(ev.event_type == "session").all()
    assert (ev.duration_s.dropna() >= 0).all()
    assert t["surveys"].score.between(0, 10).all()


# ------------------------------------------------------------------------------ a realistic business
def test_population_mix(sub):
    _, counts, t, gt = sub
    cu = t["customers"]
    assert 0.35 < (cu.signup_date < pd.Timestamp(START)).mean() < 0.45
    assert abs(cu.marketing_consent.mean() - 0.8) < 0.03
    assert {"en", "de", "sl", "lv", "tr", "fa"} <= set(cu.language)
    assert set(cu.channel) == {"email", "sms", "app_push", "call"}
    sms = cu.assign(sms=cu.channel == "sms").groupby("region").sms.mean()
    assert sms["Persian-speaking"] > 2 * sms["DACH"]  # channel preferences differ by region
    assert set(cu[cu.language == "fa"].country) == {"IR"}
    assert cu.name.str.contains("[\u0600-\u06ff]").sum() > 0  # Persian names in Persian script
    assert cu.email.str.fullmatch(r"[a-z]+\.[a-z]+\.\d{7}@example\.(com|org|net)").all()
    assert abs(counts["events"] / len(cu) - 50) < 5
    new = cu.signup_date[cu.signup_date >= pd.Timestamp(START)]
    halves = (new < pd.Timestamp(START) + (pd.Timestamp(END) - pd.Timestamp(START)) / 2).value_counts()
    assert halves[False] > halves[True]  # signups grow

    # monthly churn: churns per customer-month at risk, a few percent
    a = np.maximum(gt.signup_day, 0)
    b = np.where(gt.churned, (gt.churn_date - pd.Timestamp(START)).dt.days, (END - START).days)
    monthly = gt.churned.sum() / ((b - a).sum() / 30.44)
    assert 0.01 < monthly < 0.06


def test_weekly_seasonality_in_events(sub):
    dow = sub[2]["events"].timestamp.dt.day_of_week.value_counts(normalize=True)
    assert dow[5] < 0.9 * dow[0]  # Saturdays are quieter than Mondays


def test_fee_history_explains_current_fee(sub):
    t = sub[2]
    cu, fc = t["customers"].set_index("customer_id"), t["fee_changes"]
    first = fc.groupby("customer_id").first()
    last = fc.groupby("customer_id").last()
    assert first.index.equals(cu.index)
    assert (first.changed_at == cu.signup_date).all()  # initial fee at signup
    assert np.allclose(last.monthly_fee, cu.monthly_fee)
    assert (last.plan == cu.plan).all()
    assert set(cu.plan) == {"basic", "standard", "premium"}
    assert set(first.monthly_fee.round(2)) >= {9.99, 19.99, 29.99}
    later = fc[fc.changed_at > fc.customer_id.map(cu.signup_date)]
    assert len(later) > 0.1 * len(cu)  # price increases for a subset
    step = fc.groupby("customer_id").monthly_fee.diff().dropna()
    assert (step > 0).all()  # changes are increases
    cancelled = later.customer_id.map(cu.cancel_date)
    assert (cancelled.isna() | (later.changed_at < cancelled)).all()


# ------------------------------------------------------------------------------------ planted drivers
def test_events_fade_before_cancellation(sub):
    _, _, t, gt = sub
    ev = t["events"]
    ch = _churners(gt, 120)
    assert len(ch) > 300
    last30 = _count_before(ev, "timestamp", ch, 0, 30)
    before = _count_before(ev, "timestamp", ch, 60, 90)
    assert last30.mean() < 0.75 * before.mean()
    stay = _matched_stayers(gt, ch, 120)
    stay30 = _count_before(ev, "timestamp", stay, 0, 30)
    assert last30.mean() < 0.6 * stay30.mean()
    # imperfect on purpose: a good share of churners do not fade (no warning, or shallow decline)
    assert 0.15 < (last30 >= before).mean() < 0.6


def test_complaints_spike_before_cancellation(sub):
    _, _, t, gt = sub
    comp = t["tickets"][t["tickets"].is_complaint]
    ch = _churners(gt, 180)
    last60 = _count_before(comp, "opened_at", ch, 0, 60).mean()
    earlier = _count_before(comp, "opened_at", ch, 60, 180).mean() / 2  # per 60 days
    stay = _matched_stayers(gt, ch, 180)
    stay60 = _count_before(comp, "opened_at", stay, 0, 60).mean()
    assert last60 > 2 * earlier
    assert last60 > 2 * stay60


def test_tickets_stay_unresolved_more_often_before_cancellation(sub):
    _, _, t, gt = sub
    tk = t["tickets"]
    cancel = tk.customer_id.map(gt.churn_date)
    days = (cancel - tk.opened_at).dt.total_seconds() / 86400
    late = days.between(0, 60)
    assert tk.closed_at[late].isna().mean() > 1.5 * tk.closed_at[~late & cancel.isna()].isna().mean()


@pytest.mark.parametrize("business", ["subscription", "retail"])
def test_purchase_gaps_lengthen_before_churn(sub, retail, business):
    _, _, t, gt = sub if business == "subscription" else retail
    od = t["orders"]
    ch = _churners(gt, 240)
    stay = _matched_stayers(gt, ch, 240)

    def rate_ratio(ref: pd.Series) -> float:  # orders in the last 60 days / the 60 days before
        late = _count_before(od, "ordered_at", ref, 0, 60).sum()
        return late / _count_before(od, "ordered_at", ref, 60, 120).sum()

    def recency_over_gap(ref: pd.Series) -> float:  # days since last order / usual gap (120-240 days back)
        d = od[od.customer_id.isin(ref.index)]
        days = (d.customer_id.map(ref) - d.ordered_at).dt.total_seconds() / 86400
        recency = days[days > 0].groupby(d.customer_id).min().reindex(ref.index).fillna(240)
        usual = _count_before(od, "ordered_at", ref, 120, 240)
        ok = usual >= 2
        return float((recency[ok] / (120 / usual[ok])).median())

    churner_ratio, stayer_ratio = rate_ratio(ch), rate_ratio(stay)
    assert churner_ratio < 0.8 and churner_ratio < 0.8 * stayer_ratio
    assert recency_over_gap(ch) > 1.15 * recency_over_gap(stay)


def test_price_increases_raise_churn(sub):
    t = sub[2]
    cu, fc = t["customers"], t["fee_changes"]
    increases = fc[fc.changed_at > fc.customer_id.map(cu.set_index("customer_id").signup_date)]
    campaigns = sorted(increases.changed_at.unique())
    assert len(campaigns) == 2
    with_inc = without = 0.0
    for c in campaigns:
        hit = set(increases.customer_id[increases.changed_at == c])
        eligible = cu[(cu.signup_date <= c - pd.Timedelta(days=PLANTED.price_min_tenure_days))
                      & (cu.cancel_date.isna() | (cu.cancel_date > c))]
        churn = eligible.cancel_date.notna() & (eligible.cancel_date <= c + pd.Timedelta(days=120))
        got = eligible.customer_id.isin(hit)
        assert 0.25 < got.mean() < 0.55
        with_inc += churn[got].mean() / len(campaigns)
        without += churn[~got].mean() / len(campaigns)
    assert with_inc > 1.5 * without
    # billing tickets follow a price increase
    tk = t["tickets"]
    after = tk[tk.opened_at.between(campaigns[0], campaigns[0] + pd.Timedelta(days=14))]
    before = tk[tk.opened_at.between(campaigns[0] - pd.Timedelta(days=14), campaigns[0])]
    assert (after.category == "billing").sum() > 2 * (before.category == "billing").sum()


def test_survey_scores_drop_before_cancellation(sub):
    _, _, t, gt = sub
    sv = t["surveys"]
    days = (sv.customer_id.map(gt.churn_date) - sv.answered_at).dt.days
    assert sv.score[days.between(0, 60)].mean() < sv.score[days.isna()].mean() - 1.0


def test_noise_churners_without_warning_and_recoveries(sub):
    gt = sub[3]
    ch = gt[gt.churned]
    assert 0.1 < (ch.episode == "none").mean() < 0.3
    stay = gt[~gt.churned]
    assert 0.05 < (stay.episode == "recovery").mean() < 0.2


def test_engagement_and_complaint_traits_drive_churn(sub):
    gt = sub[3]
    low = gt.engagement < gt.engagement.median()
    assert gt.churned[low].mean() > 1.2 * gt.churned[~low].mean()
    high = gt.complaint > gt.complaint.median()
    assert gt.churned[high].mean() > 1.1 * gt.churned[~high].mean()


# --------------------------------------------------------------------------------------------- retail
def test_retail_is_non_contractual_and_churners_just_stop(retail):
    out, counts, t, gt = retail
    cu = t["customers"]
    assert "cancel_date" not in cu.columns and "monthly_fee" not in cu.columns
    assert not (out / "fee_changes.parquet").exists() and "fee_changes" not in counts
    assert set(cu.plan) == {"member", "silver", "gold"}
    churned = gt.index[gt.churned]
    assert len(churned) > 0.15 * len(gt)
    last = pd.concat(
        [t[n][["customer_id", TIME_COL[n]]].set_axis(["customer_id", "ts"], axis=1) for n in ACTIVITY]
    )
    last = last.groupby("customer_id").ts.max()
    # churners stop: their last activity is before the (hidden) churn date, and well before the end
    lc = last.reindex(churned).dropna()
    assert (lc < gt.churn_date[lc.index]).all()
    quiet = pd.Timestamp(END) - pd.Timedelta(days=90)
    stayers_active = last.reindex(gt.index[~gt.churned & (gt.signup_day < 0)])
    assert (lc < quiet).mean() > 3 * (stayers_active < quiet).mean()
