"""The activity of the simulated customers as Arrow tables, one chunk at a time: customers, events, tickets,
orders, surveys and fee changes, named and typed as in `churn.contract`.

Activity times are inhomogeneous Poisson processes per customer (rates lowered or raised during a decline
episode, weighted by weekday, hour and month); ids are built straight from fixed-width digit bytes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from churn.generate.names import _EMAIL_DOMAINS, _markets, _name_tables
from churn.generate.planted import Business, Planted
from churn.generate.simulation import _SEC_PER_DAY, _US_PER_SEC, _Customers, _Period, _row_choice

EVENT_TYPES = ("login", "session", "page_view", "feature_use")
_EVENT_MIX = {"subscription": (0.25, 0.30, 0.25, 0.20), "retail": (0.20, 0.25, 0.45, 0.10)}
TICKET_CATEGORIES = ("billing", "technical", "account", "delivery", "product", "other")
_TICKET_MIX = {
    # (ordinary tickets, complaints)
    "subscription": ((0.25, 0.40, 0.20, 0.02, 0.05, 0.08), (0.40, 0.35, 0.10, 0.02, 0.08, 0.05)),
    "retail": ((0.12, 0.08, 0.10, 0.40, 0.22, 0.08), (0.15, 0.05, 0.05, 0.45, 0.27, 0.03)),
}
# Mon..Sun; hour 0..23 (both normalised to mean 1 below)
_DOW_EVENTS = np.array([1.10, 1.08, 1.07, 1.05, 0.98, 0.80, 0.92])
_DOW_ORDERS = np.array([0.95, 0.92, 0.95, 1.00, 1.05, 1.15, 0.98])
_DOW_TICKETS = np.array([1.30, 1.20, 1.15, 1.10, 1.05, 0.55, 0.45])
_HOUR_ACTIVITY = np.array(
    [0.25, 0.15, 0.10, 0.08, 0.08, 0.15, 0.40, 0.80, 1.10, 1.20, 1.20, 1.20,
     1.30, 1.25, 1.15, 1.10, 1.15, 1.30, 1.50, 1.65, 1.70, 1.50, 1.00, 0.55]
)
_HOUR_OFFICE = np.array(
    [0.05, 0.03, 0.02, 0.02, 0.02, 0.05, 0.20, 0.80, 1.70, 2.10, 2.10, 2.00,
     1.60, 1.90, 2.00, 1.90, 1.70, 1.30, 0.80, 0.50, 0.35, 0.25, 0.15, 0.08]
)
_MONTH_ORDERS = np.array([0.80, 0.85, 0.95, 0.95, 1.00, 0.95, 0.90, 0.90, 1.00, 1.05, 1.30, 1.45])


# ------------------------------------------------------------------------------------------- schemas
_TS = pa.timestamp("us")


def _schemas(business: Business) -> dict[str, pa.Schema]:
    customers = [
        ("customer_id", pa.string()), ("signup_date", _TS), ("cancel_date", _TS), ("plan", pa.string()),
        ("monthly_fee", pa.float64()), ("region", pa.string()), ("country", pa.string()),
        ("language", pa.string()), ("channel", pa.string()), ("marketing_consent", pa.bool_()),
        ("name", pa.string()), ("email", pa.string()),
    ]
    if business == "retail":
        customers = [c for c in customers if c[0] not in ("cancel_date", "monthly_fee")]
    schemas = {
        "customers": pa.schema(customers),
        "events": pa.schema([
            ("customer_id", pa.string()), ("timestamp", _TS), ("event_type", pa.string()),
            ("duration_s", pa.float64()), ("value", pa.float64()),
        ]),
        "tickets": pa.schema([
            ("customer_id", pa.string()), ("opened_at", _TS), ("closed_at", _TS), ("category", pa.string()),
            ("is_complaint", pa.bool_()), ("satisfaction", pa.float64()),
        ]),
        "orders": pa.schema([
            ("customer_id", pa.string()), ("ordered_at", _TS), ("amount", pa.float64()),
            ("quantity", pa.int64()), ("discount", pa.float64()),
        ]),
        "surveys": pa.schema([("customer_id", pa.string()), ("answered_at", _TS), ("score", pa.int64())]),
    }
    if business == "subscription":
        schemas["fee_changes"] = pa.schema([
            ("customer_id", pa.string()), ("changed_at", _TS), ("monthly_fee", pa.float64()),
            ("plan", pa.string()),
        ])
    return schemas


# ------------------------------------------------------------------------------------ point processes
_THIRDS = (np.arange(3) + 1.0) / 3


def _decline_level(c: _Customers, cust: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Decline level (0 outside an episode) of each customer `cust` at time `t` (days)."""
    pos = (t - c.ep_start[cust]) / c.ep_len[cust]
    inside = (pos >= 0) & (pos < 1)
    k = np.clip(np.floor(pos * 3), 0, 2).astype(np.int64)
    return np.where(inside, c.ep_depth[cust] * _THIRDS[k], 0.0)


def _segments(c: _Customers, shape: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-customer segments [a, e0, e1, e2, e3, b] and rate multipliers [1, m0, m1, m2, 1]."""
    e = c.ep_start[:, None] + c.ep_len[:, None] * (np.arange(4) / 3)[None, :]
    e = np.clip(e, c.a[:, None], c.b[:, None])
    bounds = np.column_stack([c.a, e, c.b]).astype(np.float64)
    level = c.ep_depth[:, None] * _THIRDS[None, :]
    ones = np.ones((c.size, 1))
    return bounds, np.hstack([ones, shape(level), ones])


def _poisson_process(
    rng: np.random.Generator,
    c: _Customers,
    bounds: np.ndarray,
    rate: np.ndarray,
    day_weight: np.ndarray | None,
    hour_weight: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Event times of an inhomogeneous Poisson process per customer, sorted by (customer, time).

    `rate` (C, K) is constant on the segments `bounds` (C, K+1). Candidates are drawn at the rate times
    the weights' maxima by inverse CDF of the cumulative rate, then thinned by
    day_weight[day] x hour_weight[hour] / max (weights have mean ~1, so the mean rate is kept).
    Returns (customer row, integer seconds after start) with times in [a, b) of each customer.
    """
    wmax = (day_weight.max() if day_weight is not None else 1.0) * (
        hour_weight.max() if hour_weight is not None else 1.0
    )
    rate = rate * wmax
    mass = np.diff(bounds, axis=1) * rate
    cum = np.cumsum(mass, axis=1)
    total = cum[:, -1]
    counts = rng.poisson(total)
    cust = np.repeat(np.arange(c.size), counts)
    u = rng.random(cust.size) * total[cust]
    k = mass.shape[1]
    seg = np.zeros(cust.size, dtype=np.int64)
    for j in range(k - 1):
        seg += u >= cum[cust, j]
    flat = cust * k + seg
    t = bounds[:, :-1].ravel()[flat] + (u - (cum - mass).ravel()[flat]) / rate.ravel()[flat]
    del u, seg, flat
    if day_weight is not None or hour_weight is not None:
        w = np.ones(t.size)
        day = np.floor(t).astype(np.int64)
        if day_weight is not None:
            w *= day_weight[np.clip(day, 0, len(day_weight) - 1)]
        if hour_weight is not None:
            w *= hour_weight[np.clip(((t - day) * 24).astype(np.int64), 0, 23)]
        keep = rng.random(t.size) * wmax < w
        cust, t = cust[keep], t[keep]
    sec = np.floor(t * _SEC_PER_DAY).astype(np.int64)
    sec = np.clip(sec, c.a[cust] * _SEC_PER_DAY, c.b[cust] * _SEC_PER_DAY - 1)
    order = np.argsort((cust.astype(np.int64) << 32) | sec, kind="stable")
    return cust[order], sec[order]


def _norm(w: np.ndarray) -> np.ndarray:
    return w / w.mean()


# ---------------------------------------------------------------------------------------- to arrow
def _id_digits(first_index: int, n: int, width: int) -> np.ndarray:
    ids = np.arange(first_index + 1, first_index + n + 1, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((ids[:, None] // powers[None, :]) % 10 + ord("0")).astype(np.uint8)


def _ids(digits: np.ndarray, rows: np.ndarray) -> pa.Array:
    """Customer-id strings for customer rows, built straight from fixed-width digit bytes."""
    width = digits.shape[1]
    data = np.ascontiguousarray(digits[rows]).ravel()
    offsets = np.arange(0, (len(rows) + 1) * width, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), len(rows), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _labels(values: tuple[str, ...] | list[str], idx: np.ndarray) -> pa.Array:
    return pa.array(list(values), pa.string()).take(pa.array(np.asarray(idx, dtype=np.int64)))


def _ts(period: _Period, sec: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    us = period.start_us + sec.astype(np.int64) * _US_PER_SEC
    return pa.array(us, _TS, mask=mask)


# ---------------------------------------------------------------------------------------- the tables
def _customers_table(c: _Customers, digits: np.ndarray, period: _Period, business: Business,
                     p: Planted, schema: pa.Schema) -> pa.Table:
    regions, countries, langs, _, _ = _markets(p)
    _, firsts, lasts = _name_tables()
    rows = np.arange(c.size)
    cid = _ids(digits, rows)
    first = _labels([f for f, _ in firsts], c.first_name)
    last = _labels([s for s, _ in lasts], c.last_name)
    name = pc.binary_join_element_wise(first, last, " ")
    email = pc.binary_join_element_wise(
        _labels([a for _, a in firsts], c.first_name), ".", _labels([a for _, a in lasts], c.last_name), ".",
        cid, "@", _labels(_EMAIL_DOMAINS, c.domain), "",
    )
    cols = {
        "customer_id": cid,
        "signup_date": _ts(period, c.signup * _SEC_PER_DAY),
        "cancel_date": _ts(period, c.b * _SEC_PER_DAY, mask=~c.churned),
        "plan": _labels(p.plans_subscription if business == "subscription" else p.tiers_retail, c.plan),
        "monthly_fee": pa.array(np.round(c.fee, 2), pa.float64()),
        "region": _labels(regions, c.region),
        "country": _labels(countries, c.market),
        "language": _labels(langs, c.market),
        "channel": _labels(p.channels, c.channel),
        "marketing_consent": pa.array(c.consent, pa.bool_()),
        "name": name,
        "email": email,
    }
    return pa.table([cols[f.name] for f in schema], schema=schema)


def _events_table(rng: np.random.Generator, c: _Customers, digits: np.ndarray, period: _Period,
                  business: Business, events_per_customer: float, p: Planted, schema: pa.Schema) -> pa.Table:
    bounds, mult = _segments(c, lambda lv: np.clip(1 - p.events_decline * lv, 0.0, None))
    exposure = (np.diff(bounds, axis=1) * mult).sum(axis=1) * c.engagement
    scale = events_per_customer * c.size / exposure.sum() if exposure.sum() > 0 else 0.0
    rate = mult * (c.engagement * scale)[:, None]
    day_w = _norm(_DOW_EVENTS)[period.day_weekday]
    cust, sec = _poisson_process(rng, c, bounds, rate, day_w, _norm(_HOUR_ACTIVITY))
    n = len(cust)
    mix = rng.dirichlet(np.array(_EVENT_MIX[business]) * 30, c.size)
    etype = _row_choice(rng.random(n), np.cumsum(mix, axis=1)[cust])
    level = _decline_level(c, cust, sec / _SEC_PER_DAY)
    is_session = etype == 1
    dur = np.exp(np.log(240.0) + 0.25 * c.eng_z[cust] + 0.9 * rng.standard_normal(n)) * (1 - 0.5 * level)
    dur = np.round(np.maximum(dur, 1.0))
    is_feature = etype == 3
    value = 1.0 + rng.poisson(2.0 * c.engagement[cust] * (1 - 0.5 * level))
    return pa.table(
        [
            _ids(digits, cust), _ts(period, sec), _labels(EVENT_TYPES, etype),
            pa.array(dur, pa.float64(), mask=~is_session),
            pa.array(value.astype(np.float64), mask=~is_feature),
        ],
        schema=schema,
    )


def _tickets_table(rng: np.random.Generator, c: _Customers, digits: np.ndarray, period: _Period,
                   business: Business, p: Planted, schema: pa.Schema) -> pa.Table:
    bounds, mult = _segments(c, lambda lv: 1 + p.tickets_decline * lv)
    rate = mult * (c.complaint * p.tickets_per_year / 365.25)[:, None]
    cust, sec = _poisson_process(rng, c, bounds, rate, _norm(_DOW_TICKETS)[period.day_weekday],
                                 _norm(_HOUR_OFFICE))
    n_regular = len(cust)
    # billing tickets shortly after a price increase, from price-sensitive customers
    extra_c, extra_s = [], []
    for j, camp in enumerate(period.campaigns):
        hit = c.applied[:, j] & (rng.random(c.size) < p.price_billing_ticket * c.price_sens)
        rows = np.flatnonzero(hit)
        t = camp + rng.exponential(5.0, rows.size) + rng.random(rows.size) * 0.5
        s = np.floor(t * _SEC_PER_DAY).astype(np.int64)
        ok = s < c.b[rows] * _SEC_PER_DAY
        extra_c.append(rows[ok])
        extra_s.append(s[ok])
    cust = np.concatenate([cust, *extra_c])
    sec = np.concatenate([sec, *extra_s])
    billing = np.arange(len(cust)) >= n_regular
    order = np.argsort((cust.astype(np.int64) << 32) | sec, kind="stable")
    cust, sec, billing = cust[order], sec[order], billing[order]
    n = len(cust)

    level = _decline_level(c, cust, sec / _SEC_PER_DAY)
    p_complaint = np.clip(p.complaint_base + p.complaint_trait * c.comp_z[cust] + p.complaint_decline * level,
                          0.02, 0.95)
    p_complaint = np.where(billing, 0.5, p_complaint)
    complaint = rng.random(n) < p_complaint
    ordinary, complaining = (np.cumsum(m) for m in _TICKET_MIX[business])
    u = rng.random(n)
    category = np.where(complaint, _row_choice(u, np.broadcast_to(complaining, (n, len(complaining)))),
                        _row_choice(u, np.broadcast_to(ordinary, (n, len(ordinary)))))
    category = np.where(billing, 0, category)

    res_days = np.exp(np.log(np.where(complaint, 3.0, 0.8)) + 1.0 * rng.standard_normal(n)) * (1 + 2 * level)
    p_never = p.unresolved_base + p.unresolved_complaint * complaint + p.unresolved_decline * level
    never = rng.random(n) < p_never
    closed = sec + np.maximum(np.round(res_days * _SEC_PER_DAY), 60).astype(np.int64)
    open_ = never | (closed >= period.days * _SEC_PER_DAY)
    rated = ~open_ & (rng.random(n) < 0.8)
    sat = (4.3 - 0.9 * complaint - 0.35 * np.log1p(res_days) - 1.5 * level + 0.3 * c.happy_z[cust]
           + 0.6 * rng.standard_normal(n))
    sat = np.clip(np.round(sat), 1, 5)
    return pa.table(
        [
            _ids(digits, cust), _ts(period, sec), _ts(period, closed, mask=open_),
            _labels(TICKET_CATEGORIES, category), pa.array(complaint, pa.bool_()),
            pa.array(sat, pa.float64(), mask=~rated),
        ],
        schema=schema,
    )


def _orders_table(rng: np.random.Generator, c: _Customers, digits: np.ndarray, period: _Period,
                  business: Business, p: Planted, schema: pa.Schema) -> pa.Table:
    per_month = p.orders_per_month_subscription if business == "subscription" else p.orders_per_month_retail
    bounds, mult = _segments(c, lambda lv: np.clip(1 - lv, 0.0, None) ** p.orders_decline)
    rate = mult * (c.purchase * per_month / 30.4375)[:, None]
    day_w = _norm(_MONTH_ORDERS)[period.day_month] * _norm(_DOW_ORDERS)[period.day_weekday]
    cust, sec = _poisson_process(rng, c, bounds, rate, day_w, _norm(_HOUR_ACTIVITY))
    n = len(cust)
    qty = 1 + rng.poisson(0.4, n)
    unit = c.spend[cust] * np.exp(0.35 * rng.standard_normal(n))
    gross = np.round(unit * qty, 2)
    has_discount = rng.random(n) < 0.10 + 0.25 * c.price_sens[cust]
    discount = np.where(has_discount, np.round(gross * rng.uniform(0.05, 0.30, n), 2), 0.0)
    amount = np.round(np.maximum(gross - discount, 0.0), 2)
    return pa.table(
        [_ids(digits, cust), _ts(period, sec), pa.array(amount), pa.array(qty.astype(np.int64)),
         pa.array(discount)],
        schema=schema,
    )


def _surveys_table(rng: np.random.Generator, c: _Customers, digits: np.ndarray, period: _Period,
                   p: Planted, schema: pa.Schema) -> pa.Table:
    bounds = np.column_stack([c.a, c.b]).astype(np.float64)
    rate = np.full((c.size, 1), p.surveys_per_year / 365.25)
    cust, sec = _poisson_process(rng, c, bounds, rate, None, _norm(_HOUR_ACTIVITY))
    level = _decline_level(c, cust, sec / _SEC_PER_DAY)
    score = 7.4 + 1.2 * c.happy_z[cust] - p.survey_decline * level + 1.2 * rng.standard_normal(len(cust))
    score = np.clip(np.round(score), 0, 10).astype(np.int64)
    return pa.table([_ids(digits, cust), _ts(period, sec), pa.array(score)], schema=schema)


def _fee_changes_table(c: _Customers, digits: np.ndarray, period: _Period, p: Planted,
                       schema: pa.Schema) -> pa.Table:
    rows = [np.arange(c.size)]
    sec = [c.signup * _SEC_PER_DAY]
    fee = [c.initial_fee]
    inc = np.array(p.plan_fee_increase)[c.plan]
    for j, camp in enumerate(period.campaigns):
        r = np.flatnonzero(c.applied[:, j])
        rows.append(r)
        sec.append(np.full(r.size, camp * _SEC_PER_DAY, dtype=np.int64))
        fee.append(c.initial_fee[r] + inc[r] * c.applied[r, : j + 1].sum(axis=1))
    cust, s, f = np.concatenate(rows), np.concatenate(sec), np.concatenate(fee)
    order = np.lexsort((s, cust))
    cust, s, f = cust[order], s[order], f[order]
    return pa.table(
        [
            _ids(digits, cust), _ts(period, s), pa.array(np.round(f, 2)),
            _labels(p.plans_subscription, c.plan[cust]),
        ],
        schema=schema,
    )
