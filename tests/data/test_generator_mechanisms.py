"""The generator's `mechanism` option: validation, determinism, the default left untouched, and the planted
hazards visible in the raw tables (docs/synthetic-data.md, "Mechanisms").

The interaction checks measure engagement and churn from the written tables only (events per customer in
their first 60 observed days, cancellations in a later window), never with the generator's formulas.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.errors import ChurnError
from churn.generate import MECHANISMS, generate, ground_truth

START, END = date(2023, 1, 1), date(2024, 7, 1)
N_CROSS = 6000  # enough customers for ~30+ cancellations in every engagement x tenure cell
SEED = 3


def _content_hash(folder: Path) -> str:
    """Hash of every table's names and values (not the Parquet bytes, whose footer names the pyarrow version)."""
    h = hashlib.sha256()
    for p in sorted(folder.glob("*.parquet")):
        df = pd.read_parquet(p)
        h.update(p.stem.encode())
        h.update(",".join(df.columns).encode())
        h.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return h.hexdigest()


def _bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.parquet"))}


# Computed with the generator before `mechanism` existed (300 customers, 2023, seed 5, 20 events each).
DEFAULT_HASHES = {
    "subscription": "dc5921476162796bb6182361cd050f1b2251b94a7bb8d0a91278ba21e5480445",
    "retail": "dbf2ff78a7c9a8d8698dcdc7f12a1a08541ebb6e6a6b9052ccc948bba700d4bb",
}


@pytest.mark.parametrize("business", ["subscription", "retail"])
@pytest.mark.parametrize("mechanism", [None, "default"])
def test_default_output_is_unchanged(tmp_path, business, mechanism):
    kwargs = {} if mechanism is None else {"mechanism": mechanism}
    generate(300, date(2023, 1, 1), date(2024, 1, 1), 5, tmp_path / "d", business=business,
             events_per_customer=20.0, **kwargs)
    assert _content_hash(tmp_path / "d") == DEFAULT_HASHES[business]


@pytest.mark.parametrize("business", ["subscription", "retail"])
@pytest.mark.parametrize("mechanism", MECHANISMS)
def test_every_mechanism_generates_deterministically(tmp_path, business, mechanism):
    a = generate(800, START, END, 7, tmp_path / "a", business=business, mechanism=mechanism)
    b = generate(800, START, END, 7, tmp_path / "b", business=business, mechanism=mechanism)
    assert a == b
    assert a["customers"] == 800 and a["events"] > 0 and a["orders"] > 0
    assert _bytes(tmp_path / "a") == _bytes(tmp_path / "b")
    other = generate(800, START, END, 8, tmp_path / "c", business=business, mechanism=mechanism)
    assert other != a or _bytes(tmp_path / "c") != _bytes(tmp_path / "a")


def test_ageing_customers_all_join_in_the_first_quarter(tmp_path):
    """`ageing`: nobody before the start, everyone within `ageing_signup_days` (90) of it; the hazard is the
    default's, so the first-quarter joiners churn at the default's rate for such customers."""
    from churn.generate import PLANTED

    generate(3000, START, END, 4, tmp_path / "a", business="retail", mechanism="ageing")
    cu = pd.read_parquet(tmp_path / "a" / "customers.parquet")
    days = (cu["signup_date"] - pd.Timestamp(START)).dt.days
    assert days.min() >= 0 and days.max() < PLANTED.ageing_signup_days
    assert days.nunique() > 60  # spread over the burst, not one day
    truth = ground_truth(3000, START, END, 4, business="retail", mechanism="ageing")
    assert 0.2 < truth["churned"].mean() < 0.6


def test_mechanisms_change_who_churns_and_nothing_else(tmp_path):
    """Only the hazard differs: same customers, signups and plans; different churners."""
    tables = {}
    for m in HAZARDS:
        generate(2000, START, END, 4, tmp_path / m, mechanism=m)
        tables[m] = pd.read_parquet(tmp_path / m / "customers.parquet")
    base = tables["default"]
    for m in ("additive", "interactions"):
        cu = tables[m]
        for col in ("customer_id", "signup_date", "plan", "region", "email"):
            pd.testing.assert_series_equal(cu[col], base[col])
        same_fate = (cu.cancel_date.isna() & base.cancel_date.isna()) | (cu.cancel_date == base.cancel_date)
        assert same_fate.mean() < 0.9, m  # many churners differ
        assert 0.15 < cu.cancel_date.notna().mean() < 0.45, m  # churn stays in a realistic range


@pytest.mark.parametrize("mechanism", ["additive", "interactions"])
def test_ground_truth_follows_the_mechanism(tmp_path, mechanism):
    generate(1000, START, END, 9, tmp_path / "d", mechanism=mechanism)
    cu = pd.read_parquet(tmp_path / "d" / "customers.parquet").set_index("customer_id")
    gt = ground_truth(1000, START, END, 9, mechanism=mechanism).set_index("customer_id")
    assert (cu.cancel_date.notna() == gt.churned).all()
    assert (cu.cancel_date[gt.churned] == gt.churn_date[gt.churned]).all()


@pytest.mark.parametrize("bad", ["nope", "Additive", "", None, 1, ("default",)])
def test_bad_mechanism_raises_churn_error(tmp_path, bad):
    with pytest.raises(ChurnError, match="mechanism"):
        generate(10, START, END, 1, tmp_path / "d", mechanism=bad)
    with pytest.raises(ChurnError, match="mechanism"):
        ground_truth(10, START, END, 1, mechanism=bad)
    assert not (tmp_path / "d").exists()


def test_cli_mechanism_option(tmp_path):
    from churn.cli import app

    runner = CliRunner()
    args = ["generate", "--customers", "300", "--start", "2023-01-01", "--end", "2024-01-01", "--seed", "2"]
    ok = runner.invoke(app, [*args, "--out", str(tmp_path / "cli"), "--mechanism", "interactions"])
    assert ok.exit_code == 0, ok.output
    generate(300, date(2023, 1, 1), date(2024, 1, 1), 2, tmp_path / "api", mechanism="interactions")
    assert _content_hash(tmp_path / "cli") == _content_hash(tmp_path / "api")
    bad = runner.invoke(app, [*args, "--out", str(tmp_path / "bad"), "--mechanism", "nope"])
    assert bad.exit_code != 0
    assert "mechanism" in bad.output
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------------- planted interaction, measured
def _monthly_churn_by_engagement(folder: Path) -> dict[str, dict[str, float]]:
    """Cancellations per 30 customer-days, least vs most engaged third, for new and established customers.

    Engagement: events in a customer's first 60 observed days (from signup for customers who signed up in
    the period, from `START` for those with a year or more of tenure at `START`). Churn: cancellations from
    day 180 after that (so the decline phase before churn, at most 120 days, cannot touch the engagement
    window) to tenure 365 for new customers, and to the end for established ones, per day at risk.
    """
    cu = pd.read_parquet(folder / "customers.parquet")
    ev = pd.read_parquet(folder / "events.parquet", columns=["customer_id", "timestamp"])
    t0 = pd.Timestamp(START)
    horizon = (pd.Timestamp(END) - t0).days
    signup = (cu.signup_date - t0).dt.days.to_numpy()
    cancel = (cu.cancel_date - t0).dt.days.fillna(horizon + 1).to_numpy()
    new, established = signup >= 0, signup <= -365
    first = np.where(new, signup, 0)
    rel = (ev.timestamp - t0).dt.total_seconds().to_numpy() / 86400 - ev.customer_id.map(
        pd.Series(first, index=cu.customer_id)).to_numpy()
    early = pd.Series((rel >= 0) & (rel < 60)).groupby(ev.customer_id.to_numpy()).sum()
    engagement = early.reindex(cu.customer_id, fill_value=0).to_numpy()
    lo = first + 180
    hi = np.minimum(np.where(new, signup + 365, horizon), horizon)
    at_risk = (cancel > lo) & (hi > lo)
    days = np.clip(np.minimum(cancel, hi) - lo, 0, None)
    churned = (cancel > lo) & (cancel <= hi)
    out = {}
    for name, group in (("new", new & at_risk), ("established", established & at_risk)):
        q1, q2 = np.quantile(engagement[group], [1 / 3, 2 / 3])
        rate = {}
        for third, m in (("low", group & (engagement <= q1)), ("high", group & (engagement > q2))):
            assert churned[m].sum() >= 25, (name, third)  # enough cancellations for a stable rate
            rate[third] = 30 * churned[m].sum() / days[m].sum()
        out[name] = rate
    return out


HAZARDS = ("default", "additive", "interactions")  # the mechanisms that differ in the hazard alone


@pytest.fixture(scope="module")
def churn_by_engagement(tmp_path_factory) -> dict[str, dict[str, dict[str, float]]]:
    out = {}
    for m in HAZARDS:
        folder = tmp_path_factory.mktemp("mech") / m
        generate(N_CROSS, START, END, SEED, folder, mechanism=m)
        out[m] = _monthly_churn_by_engagement(folder)
    return out


def _ratio(r: dict[str, float]) -> float:
    return r["low"] / r["high"]


def test_interactions_engagement_effect_flips_with_tenure(churn_by_engagement):
    """Planted: low engagement x8 while tenure < 1 year, x0.25 after (complaint and price terms add noise)."""
    r = churn_by_engagement["interactions"]
    assert _ratio(r["new"]) > 2.5  # measured 3.6-4.8 over seeds 1-3
    assert _ratio(r["established"]) < 1.2  # measured 0.8-0.9: the least engaged established churn least
    assert _ratio(r["new"]) > 2.5 * _ratio(r["established"])


@pytest.mark.parametrize("mechanism", ["default", "additive"])
def test_without_interactions_engagement_matters_alike_at_every_tenure(churn_by_engagement, mechanism):
    """Engagement multiplies the hazard whatever the tenure: low engagement raises churn in both groups,
    by a similar factor (measured 2.0-3.1)."""
    r = churn_by_engagement[mechanism]
    assert _ratio(r["new"]) > 1.6
    assert _ratio(r["established"]) > 1.6
    assert 0.5 < _ratio(r["new"]) / _ratio(r["established"]) < 2.0
