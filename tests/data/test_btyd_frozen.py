"""BG/NBD parameters frozen at training: at scoring a customer's BG/NBD features come from their own
purchases and the stored parameters only, whoever else is in the data (the Spark scale-out scores one
customer bucket at a time), and equal lifetimes' predictions at those parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import build, make_config, write_source

AS_OF = "2024-01-01"
HORIZON = 60
PARAMS = {"r": 0.8, "alpha": 40.0, "a": 0.6, "b": 2.5}  # alpha per day
BTYD = ["btyd_expected_orders", "btyd_p_no_order"]


def _tables(n: int, seed: int = 7) -> dict[str, list[dict]]:
    """`n` customers; the last ten never buy; orders at midnight, so whole days by hand."""
    rng = np.random.default_rng(seed)
    customers, orders = [], []
    for i in range(n):
        cid = f"{i:03d}"
        customers.append({"customer_id": cid, "signup_date": "2023-01-01", "cancel_date": None})
        if i >= n - 10:
            continue
        day = pd.Timestamp("2023-01-02") + pd.Timedelta(days=int(rng.integers(0, 120)))
        for _ in range(int(rng.integers(1, 8))):
            if day < pd.Timestamp(AS_OF) + pd.Timedelta(days=40):  # some orders after as_of: never seen
                orders.append({"customer_id": cid, "ordered_at": day.isoformat(), "amount": 10})
            day += pd.Timedelta(days=int(rng.integers(5, 80)))
    return {"customers": customers, "orders": orders}


def _features(folder, btyd_params=None) -> pd.DataFrame:
    return _features_at(folder, AS_OF, btyd_params)


def _features_at(folder, as_of: str, btyd_params=None) -> pd.DataFrame:
    cfg = make_config({"features": {"families": ["purchases"]}, "label": {"horizon_days": HORIZON}}, btyd=True)
    fs = build(folder, [as_of], cfg, btyd_params=btyd_params)
    try:
        return fs.to_pandas().set_index("customer_id")[BTYD]
    finally:
        fs.ds.con.close()


def _subset(tables: dict[str, list[dict]], keep: set[str]) -> dict[str, list[dict]]:
    return {name: [r for r in rows if r["customer_id"] in keep] for name, rows in tables.items()}


def test_frozen_features_depend_on_the_customer_alone(tmp_path):
    tables = _tables(80)
    half = {f"{i:03d}" for i in range(0, 80, 2)}
    whole = _features(write_source(tmp_path / "all", tables), PARAMS)
    part = _features(write_source(tmp_path / "half", _subset(tables, half)), PARAMS)
    assert len(part) == 40 and part.loc[sorted(half)].notna().any().all()
    pd.testing.assert_frame_equal(part.sort_index(), whole.loc[sorted(half)].sort_index(), check_exact=True)
    # Fitted per date instead, the same customer's values move with who else is in the data.
    fitted_whole = _features(tmp_path / "all")
    fitted_part = _features(tmp_path / "half")
    buyers = part.index[part[BTYD[0]].notna()]
    assert not np.allclose(fitted_part.loc[buyers, BTYD[1]], fitted_whole.loc[buyers, BTYD[1]])


def test_frozen_features_equal_lifetimes_at_the_stored_parameters(tmp_path):
    import lifetimes  # a pinned dev dependency: missing is a failure, not a skip

    tables = _tables(40)
    got = _features(write_source(tmp_path, tables), PARAMS)
    ref = lifetimes.BetaGeoFitter()
    ref.params_ = pd.Series(PARAMS)
    as_of = pd.Timestamp(AS_OF)
    orders = pd.DataFrame(tables["orders"]).assign(day=lambda d: pd.to_datetime(d["ordered_at"]))
    seen = orders[orders["day"] < as_of].groupby("customer_id")["day"]
    checked = 0
    for cid, days in seen:
        days = days.drop_duplicates().sort_values()
        x, t_x, big_t = len(days) - 1, (days.iloc[-1] - days.iloc[0]).days, (as_of - days.iloc[0]).days
        expected = ref.conditional_expected_number_of_purchases_up_to_time(HORIZON, x, t_x, big_t)
        assert got.loc[cid, "btyd_expected_orders"] == pytest.approx(float(expected), rel=1e-6), cid
        checked += 1
    assert checked == 30
    assert got.loc[[f"{i:03d}" for i in range(30, 40)]].isna().all().all()  # never bought: outside the model


def test_frozen_parameters_must_be_positive():
    from churn.features.btyd import BetaGeo

    with pytest.raises(ValueError, match="finite and positive"):
        BetaGeo.from_params({**PARAMS, "a": 0.0})


def test_no_fit_at_training_leaves_the_features_missing_at_scoring(tmp_path):
    """Too few buyers at training: the build stores no parameters ({}), the model learnt the BG/NBD columns
    as missing, so scoring (given that empty fit) leaves them missing too rather than fitting where training
    could not."""
    cfg = make_config({"features": {"families": ["purchases"]}, "label": {"horizon_days": HORIZON}}, btyd=True)
    few = build(write_source(tmp_path / "young", _tables(25)), [AS_OF], cfg)  # 15 buyers: below the 30 a fit needs
    try:
        assert few.to_pandas()[BTYD].isna().all().all()
        stored = few.metadata()["btyd_params"]
    finally:
        few.ds.con.close()
    assert stored == {}
    folder = write_source(tmp_path, _tables(80))
    fs = build(folder, [AS_OF], cfg, btyd_params=stored)
    try:
        assert fs.to_pandas()[BTYD].isna().all().all()
        assert any("no fit was stored" in n for n in fs.notices), fs.notices
    finally:
        fs.ds.con.close()
    assert _features(folder)[BTYD[0]].notna().any()  # fitted when nothing is given


def test_training_metadata_stores_the_newest_dates_fit(tmp_path):
    folder = write_source(tmp_path, _tables(80))
    cfg = make_config({"features": {"families": ["purchases"]}, "label": {"horizon_days": HORIZON}}, btyd=True)
    fs = build(folder, ["2023-11-01", AS_OF], cfg)
    try:
        df = fs.to_pandas()
        stored = fs.metadata()["btyd_params"]
    finally:
        fs.ds.con.close()
    newest = df[df["as_of"] == pd.Timestamp(AS_OF)].set_index("customer_id")
    again = _features(folder, stored)  # the newest date rebuilt with the stored parameters: the same values
    pd.testing.assert_frame_equal(again.sort_index(), newest[BTYD].sort_index(), check_exact=False, rtol=1e-12)
    # ... and not the older date's fit: the older date's values differ from what the stored ones give there.
    older = df[df["as_of"] == pd.Timestamp("2023-11-01")].set_index("customer_id")[BTYD[1]].dropna()
    z = older.index
    assert len(z) > 20
    assert not np.allclose(older, _features_at(folder, "2023-11-01", stored).loc[z, BTYD[1]])
