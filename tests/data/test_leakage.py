"""Leakage: features at as_of are a function of facts strictly before as_of, and the label of its window only.

Hypothesis draws a small random source around a fixed as_of `T0`, split into a shared past (everything
dated before `T0`) and two independently drawn futures (everything dated at or after `T0`: new rows in
every table, new customers, the closing and rating of tickets still open at `T0`, cancellations at or
after `T0`). Whatever the two futures are (added, removed or changed rows), the features at `T0` and at any
earlier as_of built alongside it must be identical, NaN for NaN.

Two schema choices are made from the whole table by design, so the property tests pin them in the config:
the event types that become columns (stored with a model and reused when scoring; values stay point in time,
see `test_discovered_event_types_change_columns_not_values`) and the survey scale that sets the detractor
cut-off (NPS when any score in the table exceeds 5; `features.feedback.detractor_max` pins it).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from conftest import assert_frames_identical, build, make_config, write_source
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

T0 = pd.Timestamp("2024-06-01")
DAY = 86_400
# Other as_of dates that may be built together with T0 (earlier ones share buckets with it; the later
# one is built too but not compared, its features may see the changed future).
EARLIER = [pd.Timestamp("2024-03-01"), pd.Timestamp("2024-05-01"), pd.Timestamp("2024-05-31")]
LATER = pd.Timestamp("2024-07-01")
HORIZON = 30

PAST_IDS = ["01", "001", "1", "002"]  # distinct ids that differ only by leading zeros
FUTURE_IDS = ["F1", "F2"]

CONFIG = {
    "features": {
        "engagement": {"event_types": ["login", "view"]},  # schema choices pinned (see module doc)
        "feedback": {"detractor_max": 6},
        "support": {"windows": [30, 90]},
        "purchases": {"windows": [30, 90]},
    },
    "label": {"horizon_days": HORIZON},
}

# Instants that matter: as_of dates and a second either side of T0 and of the earlier as_of dates.
_edges_past = sorted({-1, -DAY, -DAY - 1, -DAY + 1, -7 * DAY, -30 * DAY, -31 * DAY, -31 * DAY - 1,
                      -90 * DAY, -92 * DAY, -92 * DAY - 1, -180 * DAY, -365 * DAY})
_edges_future = [0, 1, DAY - 1, DAY, 30 * DAY - 1, 30 * DAY, 30 * DAY + 1]

past_s = st.one_of(st.integers(-400 * DAY, -1), st.sampled_from(_edges_past))
future_s = st.one_of(st.integers(0, 120 * DAY), st.sampled_from(_edges_future))
gap_s = st.one_of(st.integers(0, 60 * DAY), st.sampled_from([0, 1, DAY]))


def ts(offset_s: int) -> str:
    """T0 plus an offset in seconds, as ISO text (offsets in the text are covered by the hand-made tests)."""
    return (T0 + pd.Timedelta(seconds=offset_s)).isoformat()


@st.composite
def event_rows(draw, ids: list[str], when) -> list[dict[str, Any]]:
    return [
        {"customer_id": draw(st.sampled_from(ids)), "timestamp": ts(draw(when)),
         "event_type": draw(st.sampled_from(["login", "view", "other"])),
         "duration_s": draw(st.one_of(st.none(), st.integers(0, 7200)))}
        for _ in range(draw(st.integers(0, 6)))
    ]


@st.composite
def order_rows(draw, ids: list[str], when) -> list[dict[str, Any]]:
    return [
        {"customer_id": draw(st.sampled_from(ids)), "ordered_at": ts(draw(when)),
         "amount": draw(st.integers(0, 100)), "discount": draw(st.one_of(st.none(), st.integers(0, 20)))}
        for _ in range(draw(st.integers(0, 6)))
    ]


def _with_ties(draw, rows: list[dict[str, Any]], **values) -> list[dict[str, Any]]:
    """Maybe add copies of some rows (same customer, same instant) with other values: ties for "latest"."""
    if not rows:
        return rows
    for i in draw(st.lists(st.integers(0, len(rows) - 1), max_size=2)):
        rows.append(rows[i] | {k: draw(v) for k, v in values.items()})
    return rows


@st.composite
def survey_rows(draw, ids: list[str], when) -> list[dict[str, Any]]:
    return _with_ties(draw, [
        {"customer_id": draw(st.sampled_from(ids)), "answered_at": ts(draw(when)),
         "score": draw(st.integers(0, 10))}
        for _ in range(draw(st.integers(0, 4)))
    ], score=st.integers(0, 10))


@st.composite
def fee_rows(draw, ids: list[str], when) -> list[dict[str, Any]]:
    plans = st.sampled_from(["basic", "plus"])
    return _with_ties(draw, [
        {"customer_id": draw(st.sampled_from(ids)), "changed_at": ts(draw(when)),
         "monthly_fee": draw(st.integers(0, 50)), "plan": draw(plans)}
        for _ in range(draw(st.integers(0, 3)))
    ], monthly_fee=st.integers(0, 50), plan=plans)


def _ticket(draw, cid: str, opened: int, closed: int | None, complaint: bool | None = None) -> dict[str, Any]:
    return {"customer_id": cid, "opened_at": ts(opened), "closed_at": None if closed is None else ts(closed),
            "is_complaint": draw(st.booleans()) if complaint is None else complaint,
            "satisfaction": None if closed is None else draw(st.one_of(st.none(), st.integers(1, 5)))}


def _closing_at_or_after_t0(draw, opened: int) -> int | None:
    """A ticket open at T0: still open, or closed at/after T0 (each future decides on its own)."""
    return draw(st.one_of(st.none(), st.builds(lambda g: max(opened, 0) + g, gap_s)))


@dataclass
class Future:
    """Everything dated at or after T0 in one version of the source."""

    customers: list[dict[str, Any]] = field(default_factory=list)
    cancel: dict[str, str | None] = field(default_factory=dict)  # past customers still active at T0
    events: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    surveys: list[dict[str, Any]] = field(default_factory=list)
    fees: list[dict[str, Any]] = field(default_factory=list)
    tickets: list[dict[str, Any]] = field(default_factory=list)  # opened at/after T0
    closing: list[dict[str, Any]] = field(default_factory=list)  # opened before T0, open at T0


@st.composite
def futures(draw, past_customers: list[dict[str, Any]], open_tickets: list[tuple[str, int, bool]],
            with_customers: bool) -> Future:
    f = Future()
    new_ids = draw(st.lists(st.sampled_from(FUTURE_IDS), unique=True)) if with_customers else []
    for cid in new_ids:
        signup = draw(future_s)
        gap = draw(st.one_of(st.none(), gap_s))
        cancel = None if gap is None else signup + gap
        f.customers.append({"customer_id": cid, "signup_date": ts(signup),
                            "cancel_date": None if cancel is None else ts(cancel)})
    for c in past_customers:
        if c["cancel_date"] is None or pd.Timestamp(c["cancel_date"]) >= T0:
            off = draw(st.one_of(st.none(), future_s))
            f.cancel[c["customer_id"]] = None if off is None else ts(off)
    ids = PAST_IDS + (new_ids if with_customers else FUTURE_IDS)
    f.events = draw(event_rows(ids, future_s))
    f.orders = draw(order_rows(ids, future_s))
    f.surveys = draw(survey_rows(ids, future_s))
    f.fees = draw(fee_rows(ids, future_s))
    for _ in range(draw(st.integers(0, 3))):
        opened, gap = draw(future_s), draw(st.one_of(st.none(), gap_s))
        f.tickets.append(_ticket(draw, draw(st.sampled_from(ids)), opened, None if gap is None else opened + gap))
    for cid, opened, complaint in open_tickets:
        # What was known at T0 (who, when opened, complaint or not) is shared; closing and rating are not.
        f.closing.append(_ticket(draw, cid, opened, _closing_at_or_after_t0(draw, opened), complaint))
    return f


@dataclass
class Scenario:
    with_customers: bool
    fmt: str
    as_of: list[pd.Timestamp]
    past: dict[str, list[dict[str, Any]]]
    a: Future
    b: Future

    def tables(self, fut: Future) -> dict[str, list[dict[str, Any]]]:
        """The whole source: the shared past plus one future."""
        out = {
            "events": self.past["events"] + fut.events,
            "orders": self.past["orders"] + fut.orders,
            "surveys": self.past["surveys"] + fut.surveys,
            "fee_changes": self.past["fee_changes"] + fut.fees,
            "tickets": self.past["tickets"] + fut.closing + fut.tickets,
        }
        if self.with_customers:
            past = [c | ({"cancel_date": fut.cancel[c["customer_id"]]} if c["customer_id"] in fut.cancel else {})
                    for c in self.past["customers"]]
            out["customers"] = past + fut.customers
        return out


COLUMNS = {
    "customers": ["customer_id", "signup_date", "cancel_date"],
    "events": ["customer_id", "timestamp", "event_type", "duration_s"],
    "orders": ["customer_id", "ordered_at", "amount", "discount"],
    "surveys": ["customer_id", "answered_at", "score"],
    "fee_changes": ["customer_id", "changed_at", "monthly_fee", "plan"],
    "tickets": ["customer_id", "opened_at", "closed_at", "is_complaint", "satisfaction"],
}


@st.composite
def scenarios(draw) -> Scenario:
    with_customers = draw(st.booleans())
    past_customers = []
    for cid in PAST_IDS:
        signup = draw(past_s)
        # Cancelled before T0 (shared), or still a customer at T0 (each future decides when they cancel).
        cancelled = draw(st.one_of(st.none(), st.integers(signup, -1)))
        past_customers.append({"customer_id": cid, "signup_date": ts(signup),
                               "cancel_date": None if cancelled is None else ts(cancelled)})
    past: dict[str, list[dict[str, Any]]] = {
        "customers": past_customers,
        "events": draw(event_rows(PAST_IDS, past_s)),
        "orders": draw(order_rows(PAST_IDS, past_s)),
        "surveys": draw(survey_rows(PAST_IDS, past_s)),
        "fee_changes": draw(fee_rows(PAST_IDS, past_s)),
        "tickets": [],
    }
    open_at_t0: list[tuple[str, int, bool]] = []
    for _ in range(draw(st.integers(0, 4))):
        cid, opened = draw(st.sampled_from(PAST_IDS)), draw(past_s)
        closed = draw(st.one_of(st.none(), st.integers(opened, -1)))
        if closed is None:
            open_at_t0.append((cid, opened, draw(st.booleans())))  # closed (or not) later: each future's
        else:
            past["tickets"].append(_ticket(draw, cid, opened, closed))
    past["tickets"] = _with_ties(draw, past["tickets"], satisfaction=st.integers(1, 5))
    as_of = sorted({T0, *draw(st.lists(st.sampled_from([*EARLIER, LATER]), max_size=2))})
    return Scenario(
        with_customers=with_customers,
        fmt=draw(st.sampled_from(["csv", "parquet"])),
        as_of=as_of,
        past=past,
        a=draw(futures(past_customers, open_at_t0, with_customers)),
        b=draw(futures(past_customers, open_at_t0, with_customers)),
    )


def _features(folder: Path, tables: dict[str, list[dict[str, Any]]], fmt: str, as_of, config,
              with_label: bool = False) -> pd.DataFrame:
    write_source(folder, tables, fmt, columns=COLUMNS)
    fs = build(folder, [str(d.date()) for d in as_of], config)
    try:
        if with_label:
            from churn.labels import create_labels

            create_labels(fs.ds, config, fs.label)
        return fs.to_pandas(with_label=with_label).set_index(["customer_id", "as_of"])
    finally:
        fs.ds.con.close()


@settings(max_examples=settings.default.max_examples // 10, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenarios(), st.randoms(use_true_random=False))
def test_rows_at_or_after_as_of_never_change_features(s: Scenario, rnd) -> None:
    """Features at as_of depend on the set of rows before as_of only: not on later rows, nor on row order.

    Version b's rows are also shuffled, so ties (rows at the same instant) cannot lean on file order.
    """
    config = make_config(CONFIG)
    tables_b = {k: rnd.sample(v, len(v)) for k, v in s.tables(s.b).items()}
    with tempfile.TemporaryDirectory() as d:
        fa = _features(Path(d) / "a", s.tables(s.a), s.fmt, s.as_of, config)
        fb = _features(Path(d) / "b", tables_b, s.fmt, s.as_of, config)
    keep = lambda f: f[f.index.get_level_values("as_of") <= T0]
    assert_frames_identical(keep(fa), keep(fb))


def test_same_instant_ties_do_not_depend_on_row_order(tmp_path) -> None:
    """Two surveys, ratings or fee changes at the same instant: one defined answer, either file order."""
    customers = [{"customer_id": "a", "signup_date": "2023-01-01", "cancel_date": None, "plan": "basic"}]
    surveys = [{"customer_id": "a", "answered_at": "2024-05-01", "score": 3},
               {"customer_id": "a", "answered_at": "2024-05-01", "score": 9}]
    tickets = [{"customer_id": "a", "opened_at": "2024-04-01", "closed_at": "2024-05-01", "satisfaction": 1},
               {"customer_id": "a", "opened_at": "2024-04-02", "closed_at": "2024-05-01", "satisfaction": 5}]
    fees = [{"customer_id": "a", "changed_at": "2024-04-01", "monthly_fee": 10, "plan": "basic"},
            {"customer_id": "a", "changed_at": "2024-05-01", "monthly_fee": 3, "plan": "basic"},
            {"customer_id": "a", "changed_at": "2024-05-01", "monthly_fee": 9, "plan": "plus"}]
    out = []
    for name, order in (("fwd", slice(None)), ("rev", slice(None, None, -1))):
        tables = {"customers": customers, "surveys": surveys[order], "tickets": tickets[order], "fee_changes": fees[order]}
        write_source(tmp_path / name, tables)
        fs = build(tmp_path / name, ["2024-06-01"])
        out.append(fs.to_pandas())
        fs.ds.con.close()
    assert_frames_identical(out[0], out[1])
    row = out[0].iloc[0]
    # The same-instant tie resolves to the higher value (one rule for every "latest" fact).
    assert (row["survey_last_score"], row["satisfaction_last"], row["monthly_fee"], row["plan"]) == (9, 5, 9, "plus")
    assert row["fee_increases_365d"] == 1  # 10 -> 3 -> 9: one increase, whatever the file order


# ------------------------------------------------------------------------------------------------ labels
H_S = HORIZON * DAY
_edges_label = [-H_S - 1, -H_S, -1, 0, 1, H_S - 1, H_S, H_S + 1]
anywhere_s = st.one_of(st.integers(-200 * DAY, 150 * DAY), st.sampled_from(_edges_label))
in_window_s = st.one_of(st.integers(0, H_S - 1), st.sampled_from([0, 1, H_S - 1]))
outside_window_s = st.one_of(st.integers(-200 * DAY, -1), st.integers(H_S, 150 * DAY),
                             st.sampled_from([-H_S - 1, -H_S, -1, H_S, H_S + 1]))
after_window_s = st.one_of(st.integers(H_S, 150 * DAY), st.sampled_from([H_S, H_S + 1]))
LABEL_CONFIG = {"label": {"horizon_days": HORIZON}, "features": {"families": ["profile"]}}


def _labels(folder: Path, tables: dict[str, list[dict[str, Any]]], config, kind: str) -> pd.Series:
    """The labels at T0 (customers' columns as given: no cancel_date column means inactivity)."""
    write_source(folder, tables, "parquet", columns={k: v for k, v in COLUMNS.items() if k in tables and k != "customers"})
    fs = build(folder, [str(T0.date())], config)
    try:
        from churn.labels import create_labels

        assert fs.label == kind
        create_labels(fs.ds, config, fs.label)
        return fs.to_pandas(with_label=True).set_index("customer_id")["churned"]
    finally:
        fs.ds.con.close()


def _activity(draw, when, n_max: int = 6) -> dict[str, list[dict[str, Any]]]:
    ids = st.sampled_from(PAST_IDS)
    return {
        "events": [{"customer_id": draw(ids), "timestamp": ts(draw(when)),
                    "event_type": draw(st.sampled_from(["login", "view"]))} for _ in range(draw(st.integers(0, n_max)))],
        "orders": [{"customer_id": draw(ids), "ordered_at": ts(draw(when)), "amount": 1}
                   for _ in range(draw(st.integers(0, n_max)))],
        "tickets": [{"customer_id": draw(ids), "opened_at": ts(draw(when))} for _ in range(draw(st.integers(0, 2)))],
        "surveys": [{"customer_id": draw(ids), "answered_at": ts(draw(when)), "score": 5}
                    for _ in range(draw(st.integers(0, 2)))],
    }


@settings(max_examples=settings.default.max_examples // 16, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_cancellation_label_depends_only_on_cancellations_in_the_window(data) -> None:
    """Any activity, before or after as_of, and cancellations outside the window leave the label alone."""
    draw = data.draw
    customers_a, customers_b = [], []
    for cid in PAST_IDS:
        signup = draw(past_s)
        kind = draw(st.sampled_from(["before", "in_window", "outside", "outside"]))
        if kind == "before":
            cancel_a = cancel_b = draw(st.integers(signup, -1))
        elif kind == "in_window":
            cancel_a = cancel_b = draw(in_window_s)
        else:  # none, or at/after the window's end: each version on its own
            cancel_a, cancel_b = (draw(st.one_of(st.none(), after_window_s)) for _ in range(2))
        for out, cancel in ((customers_a, cancel_a), (customers_b, cancel_b)):
            out.append({"customer_id": cid, "signup_date": ts(signup),
                        "cancel_date": None if cancel is None else ts(cancel)})
    config = make_config(LABEL_CONFIG)
    with tempfile.TemporaryDirectory() as d:
        la = _labels(Path(d) / "a", {"customers": customers_a, **_activity(draw, anywhere_s)}, config, "cancellation")
        lb = _labels(Path(d) / "b", {"customers": customers_b, **_activity(draw, anywhere_s)}, config, "cancellation")
    event(f"snapshot size {min(len(la), 2)}+, churned: {sorted(set(la))}")
    pd.testing.assert_series_equal(la, lb)


@settings(max_examples=settings.default.max_examples // 16, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_inactivity_label_depends_only_on_activity_in_the_window(data) -> None:
    """Activity outside [as_of, as_of + horizon), and tickets, surveys and uncounted event types anywhere,
    never change the inactivity label of a customer in both snapshots (activity before as_of may change
    who is in the snapshot, and the features, but not the label)."""
    draw = data.draw
    with_customers = draw(st.booleans())
    event_types = draw(st.sampled_from([None, ["login"]]))
    shared = _activity(draw, in_window_s)
    shared["tickets"], shared["surveys"] = [], []
    # Most customers share some activity in the lookback before as_of, so most are in both snapshots.
    shared["events"] += [{"customer_id": c, "timestamp": ts(draw(st.integers(-H_S, -1))), "event_type": "login"}
                         for c in draw(st.lists(st.sampled_from(PAST_IDS), unique=True))]
    if event_types:  # uncounted event types inside the window belong to each version on its own
        shared["events"] = [e for e in shared["events"] if e["event_type"] in event_types]
    config = make_config({**LABEL_CONFIG, "label": {"horizon_days": HORIZON, "event_types": event_types}})
    out = []
    with tempfile.TemporaryDirectory() as d:
        for name in ("a", "b"):
            own = _activity(draw, outside_window_s)
            extra = _activity(draw, in_window_s)
            own["tickets"] += extra["tickets"]
            own["surveys"] += extra["surveys"]
            if event_types:
                own["events"] += [e for e in extra["events"] if e["event_type"] not in event_types]
            tables = {k: shared[k] + own[k] for k in shared}
            if with_customers:  # without cancel dates: the label is inactivity
                tables["customers"] = [{"customer_id": c, "signup_date": ts(-400 * DAY)} for c in PAST_IDS]
            out.append(_labels(Path(d) / name, tables, config, "inactivity"))
    la, lb = out
    common = la.index.intersection(lb.index)
    event(f"customers in both snapshots: {min(len(common), 2)}+, churned: {sorted(set(la.loc[common]))}")
    pd.testing.assert_series_equal(la.loc[common], lb.loc[common])


def test_discovered_event_types_change_columns_not_values(tmp_path) -> None:
    """Without configured event types, future events may change which types get columns, never a value."""
    customers = [{"customer_id": c, "signup_date": "2024-01-01", "cancel_date": None} for c in ("a", "b")]
    past = [{"customer_id": "a", "timestamp": "2024-05-20", "event_type": "login"},
            {"customer_id": "b", "timestamp": "2024-05-21", "event_type": "view"},
            {"customer_id": "b", "timestamp": "2024-05-22", "event_type": "view"}]
    future = [{"customer_id": "a", "timestamp": f"2024-06-{d:02d}", "event_type": "share"} for d in range(1, 5)]
    config = make_config({"features": {"engagement": {"max_event_types": 2}}})
    frames = []
    for name, events in (("past", past), ("both", past + future)):
        fs = build(write_source(tmp_path / name, {"customers": customers, "events": events}), ["2024-06-01"], config)
        frames.append(fs.to_pandas())
        fs.ds.con.close()
    before, after = frames
    assert "events_login_7d" in before and "events_share_7d" not in before
    assert "events_share_7d" in after and "events_login_7d" not in after  # "share" outnumbers "login" later
    assert (after["events_share_7d"] == 0).all()  # but nobody had shared before as_of
    shared = [c for c in before.columns if c in after.columns]
    assert_frames_identical(before[shared], after[shared])
