"""Synthetic data: a realistic subscription or retail business with planted, documented churn drivers.

`generate` writes a data source (Parquet tables named and typed as in `churn.contract`) to a folder. Every
customer has latent traits (engagement, purchase rate, complaint propensity, price sensitivity, happiness);
a piecewise-constant churn hazard built from those traits, tenure and price increases decides if and when
they churn; most churners go through a 30-90 day decline phase first (fewer events, more complaints and
unresolved tickets, longer gaps between purchases, lower survey scores). Noise keeps the signal imperfect:
some churners leave without warning and some stayers decline and recover. The parameters live in
`PLANTED` (a frozen dataclass), so tests and docs (docs/synthetic-data.md) can refer to them.

Everything is vectorised numpy over chunks of `CHUNK_SIZE` customers; chunk `k` draws from
`np.random.SeedSequence(seed, spawn_key=(k,))` (the k-th child of `SeedSequence(seed)`), so the same
arguments give byte-identical files and memory stays bounded. Rows are sorted by customer id, then time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churn.errors import ChurnError
from churn.io import atomic_dir

Business = Literal["subscription", "retail"]
Mechanism = Literal["default", "additive", "interactions"]
MECHANISMS: tuple[str, ...] = ("default", "additive", "interactions")
"""Churn hazards `generate` can plant (docs/synthetic-data.md, "Mechanisms"); only the hazard differs."""

CHUNK_SIZE = 50_000
"""Customers per chunk: the unit of seeding, memory and progress. Changing it changes the data."""

_SEC_PER_DAY = 86_400
_US_PER_SEC = 1_000_000
_PARQUET_COMPRESSION = "zstd"


# ---------------------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Planted:
    """Every parameter of the simulation; the planted churn drivers are the `hazard_*`, `price_*` and
    decline (`warning_share`, `decline_*`, `*_decline`) fields. Rates are per day unless named otherwise."""

    # population
    pre_start_share: float = 0.40  # customers who already existed at `start`
    pre_start_tenure_mean_days: float = 540.0  # their tenure at `start`: 1 + exponential, capped
    pre_start_tenure_max_days: int = 3650
    growth: float = 0.5  # new-signup rate at `end` is (1 + growth) x the rate at `start`

    # latent traits (lognormal with mean 1 unless noted)
    engagement_sigma: float = 0.8  # sd of log engagement (scales the event rate)
    complaint_sigma: float = 0.7  # sd of log complaint propensity (scales the ticket rate)
    purchase_sigma: float = 0.7  # sd of log purchase rate; corr(log engagement, log purchase) = 0.5
    purchase_engagement_corr: float = 0.5
    price_sensitivity_beta: tuple[float, float] = (2.0, 3.0)  # Beta(a, b), mean 0.4

    # churn hazard: h(t) = base x exp(eng_coef*eng_z + comp_coef*comp_z) x tenure x plan x price
    base_monthly_hazard_subscription: float = 0.020
    base_monthly_hazard_retail: float = 0.025
    hazard_engagement: float = -0.60  # per sd of log engagement (low engagement -> more churn)
    hazard_complaint: float = 0.45  # per sd of log complaint propensity
    new_tenure_days: int = 90
    hazard_new_tenure: float = 1.8  # multiplier while tenure < new_tenure_days
    young_tenure_days: int = 365
    hazard_young_tenure: float = 1.3  # multiplier while new_tenure_days <= tenure < young_tenure_days
    hazard_plan: tuple[float, float, float] = (1.15, 1.0, 0.85)  # basic, standard, premium (subscription)

    # price increases (subscription): campaigns at month starts ~1/3 and ~2/3 into the period
    price_increase_share: float = 0.40  # of customers with tenure >= price_min_tenure_days at the campaign
    price_min_tenure_days: int = 90
    price_short_days: int = 90
    price_short: float = 4.0  # hazard x (1 + price_short x sensitivity) for price_short_days after it
    price_long: float = 0.5  # hazard x (1 + price_long x sensitivity) afterwards
    price_billing_ticket: float = 0.5  # P(billing ticket within ~a week) = this x sensitivity

    # mechanism="additive": h = base x scale x exp(eng x eng_z + comp x comp_z + price x increases + plan),
    # log-linear in the traits, no tenure effect, no thresholds or interactions
    additive_scale: float = 1.15  # about the default churn rate (3.4% a month)
    additive_engagement: float = -0.60
    additive_complaint: float = 0.45
    additive_price_increase: float = 0.60  # per price increase received so far (any sensitivity)
    additive_plan: tuple[float, float, float] = (0.14, 0.0, -0.16)  # log multipliers: basic, standard, premium

    # mechanism="interactions": h = base x scale x product of the multipliers whose conditions all hold;
    # the engagement effect flips sign with tenure, so a model without interactions can barely use it
    interactions_scale: float = 0.75  # about the default churn rate
    interactions_low_engagement_z: float = -0.4  # "low engagement": eng_z below this
    interactions_young_low_engagement: float = 8.0  # low engagement while tenure < young_tenure_days
    interactions_old_low_engagement: float = 0.25  # low engagement later: forgotten, still paying
    interactions_high_complaint_z: float = 0.6  # "complains a lot": comp_z above this
    interactions_complaint_low_engagement: float = 5.0  # complains a lot and low engagement
    interactions_sensitive: float = 0.5  # "price-sensitive": sensitivity above this
    interactions_price_sensitive: float = 6.0  # after a price increase, price-sensitive and eng_z < 0

    # decline phase before churn (and noise)
    warning_share: float = 0.80  # churners with a decline phase; the rest churn without warning
    recovery_share: float = 0.12  # non-churners with a decline phase at a random time who recover
    decline_min_days: float = 45.0
    decline_max_days: float = 120.0
    decline_depth: tuple[float, float] = (0.6, 1.0)  # uniform; level in third k is depth x (k + 1) / 3
    events_decline: float = 1.0  # event rate x (1 - events_decline x level)
    orders_decline: float = 1.5  # purchase rate x (1 - level) ** orders_decline: gaps lengthen
    tickets_decline: float = 3.0  # ticket rate x (1 + tickets_decline x level): complaints spike
    complaint_base: float = 0.15  # P(complaint) = base + complaint_trait x comp_z + complaint_decline x level
    complaint_trait: float = 0.08
    complaint_decline: float = 0.45
    unresolved_base: float = 0.02  # P(never closed) = base + complaint x is_complaint + decline x level
    unresolved_complaint: float = 0.06
    unresolved_decline: float = 0.30
    survey_decline: float = 4.0  # NPS points lost at level 1

    # activity rates
    tickets_per_year: float = 1.0
    surveys_per_year: float = 1.2
    orders_per_month_subscription: float = 0.5  # discretionary add-on purchases
    orders_per_month_retail: float = 1.2

    # prices
    plans_subscription: tuple[str, ...] = ("basic", "standard", "premium")
    plan_shares: tuple[float, ...] = (0.50, 0.35, 0.15)
    plan_fees: tuple[float, ...] = (9.99, 19.99, 29.99)
    plan_fee_increase: tuple[float, ...] = (1.00, 2.00, 3.00)  # per campaign
    tiers_retail: tuple[str, ...] = ("member", "silver", "gold")  # loyalty tier, from purchase rate

    markets: tuple[tuple[str, str, str, float], ...] = field(
        default=(
            ("North America", "US", "en", 0.30),
            ("North America", "CA", "en", 0.05),
            ("DACH", "DE", "de", 0.15),
            ("DACH", "AT", "de", 0.035),
            ("DACH", "CH", "de", 0.025),
            ("Slovenia", "SI", "sl", 0.10),
            ("Baltics", "LV", "lv", 0.05),
            ("Baltics", "LT", "lt", 0.03),
            ("Baltics", "EE", "et", 0.02),
            ("Türkiye", "TR", "tr", 0.13),
            ("Persian-speaking", "IR", "fa", 0.10),
        )
    )
    channels: tuple[str, ...] = ("email", "sms", "app_push", "call")
    # per region: channel preference shares and marketing-consent rate (overall consent ~0.80)
    region_channels: tuple[tuple[str, tuple[float, float, float, float], float], ...] = (
        ("North America", (0.50, 0.15, 0.30, 0.05), 0.82),
        ("DACH", (0.60, 0.08, 0.22, 0.10), 0.70),
        ("Slovenia", (0.45, 0.25, 0.18, 0.12), 0.80),
        ("Baltics", (0.40, 0.25, 0.30, 0.05), 0.82),
        ("Türkiye", (0.20, 0.40, 0.32, 0.08), 0.86),
        ("Persian-speaking", (0.12, 0.50, 0.30, 0.08), 0.85),
    )


PLANTED = Planted()

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

# Synthetic names per language: (native spelling, ASCII for e-mail addresses).
_NAMES: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "en": (
        [("James", "james"), ("Mary", "mary"), ("Robert", "robert"), ("Patricia", "patricia"),
         ("John", "john"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
         ("David", "david"), ("Elizabeth", "elizabeth"), ("Olivia", "olivia"), ("Ethan", "ethan")],
        [("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
         ("Jones", "jones"), ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"),
         ("Wilson", "wilson"), ("Anderson", "anderson"), ("Taylor", "taylor"), ("Moore", "moore")],
    ),
    "de": (
        [("Lukas", "lukas"), ("Anna", "anna"), ("Jürgen", "juergen"), ("Sophie", "sophie"),
         ("Maximilian", "maximilian"), ("Lena", "lena"), ("Jörg", "joerg"), ("Marie", "marie"),
         ("Felix", "felix"), ("Hannah", "hannah"), ("Günther", "guenther"), ("Käthe", "kaethe")],
        [("Müller", "mueller"), ("Schmidt", "schmidt"), ("Schneider", "schneider"), ("Fischer", "fischer"),
         ("Weber", "weber"), ("Meyer", "meyer"), ("Wagner", "wagner"), ("Becker", "becker"),
         ("Schulz", "schulz"), ("Hoffmann", "hoffmann"), ("Groß", "gross"), ("Köhler", "koehler")],
    ),
    "sl": (
        [("Luka", "luka"), ("Nina", "nina"), ("Žiga", "ziga"), ("Maja", "maja"), ("Jure", "jure"),
         ("Špela", "spela"), ("Matej", "matej"), ("Ana", "ana"), ("Nejc", "nejc"), ("Urška", "urska"),
         ("Tadej", "tadej"), ("Eva", "eva")],
        [("Novak", "novak"), ("Horvat", "horvat"), ("Kovačič", "kovacic"), ("Krajnc", "krajnc"),
         ("Zupančič", "zupancic"), ("Potočnik", "potocnik"), ("Kovač", "kovac"), ("Mlakar", "mlakar"),
         ("Vidmar", "vidmar"), ("Golob", "golob"), ("Turk", "turk"), ("Kos", "kos")],
    ),
    "lv": (
        [("Jānis", "janis"), ("Anna", "anna"), ("Andris", "andris"), ("Līga", "liga"),
         ("Mārtiņš", "martins"), ("Ilze", "ilze"), ("Edgars", "edgars"), ("Kristīne", "kristine"),
         ("Raivis", "raivis"), ("Inese", "inese"), ("Artūrs", "arturs"), ("Zane", "zane")],
        [("Bērziņš", "berzins"), ("Kalniņš", "kalnins"), ("Ozoliņš", "ozolins"), ("Jansons", "jansons"),
         ("Ozols", "ozols"), ("Liepiņš", "liepins"), ("Krūmiņš", "krumins"), ("Balodis", "balodis"),
         ("Eglītis", "eglitis"), ("Zariņš", "zarins"), ("Pētersons", "petersons"), ("Vītols", "vitols")],
    ),
    "lt": (
        [("Lukas", "lukas"), ("Emilija", "emilija"), ("Matas", "matas"), ("Gabija", "gabija"),
         ("Jonas", "jonas"), ("Austėja", "austeja")],
        [("Kazlauskas", "kazlauskas"), ("Jankauskas", "jankauskas"), ("Petrauskas", "petrauskas"),
         ("Stankevičius", "stankevicius"), ("Vasiliauskas", "vasiliauskas"), ("Žukauskas", "zukauskas")],
    ),
    "et": (
        [("Rasmus", "rasmus"), ("Maria", "maria"), ("Martin", "martin"), ("Sofia", "sofia"),
         ("Robin", "robin"), ("Eliise", "eliise")],
        [("Tamm", "tamm"), ("Saar", "saar"), ("Sepp", "sepp"), ("Mägi", "magi"), ("Kask", "kask"),
         ("Kukk", "kukk")],
    ),
    "tr": (
        [("Mehmet", "mehmet"), ("Ayşe", "ayse"), ("Mustafa", "mustafa"), ("Fatma", "fatma"),
         ("Ahmet", "ahmet"), ("Emine", "emine"), ("Ali", "ali"), ("Zeynep", "zeynep"),
         ("Hüseyin", "huseyin"), ("Elif", "elif"), ("Çağrı", "cagri"), ("Gökhan", "gokhan")],
        [("Yılmaz", "yilmaz"), ("Kaya", "kaya"), ("Demir", "demir"), ("Şahin", "sahin"),
         ("Çelik", "celik"), ("Yıldız", "yildiz"), ("Yıldırım", "yildirim"), ("Öztürk", "ozturk"),
         ("Aydın", "aydin"), ("Özdemir", "ozdemir"), ("Arslan", "arslan"), ("Doğan", "dogan")],
    ),
    "fa": (
        [("علی", "ali"), ("زهرا", "zahra"), ("محمد", "mohammad"), ("فاطمه", "fatemeh"),
         ("حسین", "hossein"), ("مریم", "maryam"), ("رضا", "reza"), ("سارا", "sara"),
         ("امیر", "amir"), ("نگار", "negar"), ("مهدی", "mehdi"), ("شیرین", "shirin")],
        [("رضایی", "rezaei"), ("محمدی", "mohammadi"), ("حسینی", "hosseini"), ("احمدی", "ahmadi"),
         ("کریمی", "karimi"), ("موسوی", "mousavi"), ("جعفری", "jafari"), ("صادقی", "sadeghi"),
         ("کاظمی", "kazemi"), ("رحیمی", "rahimi"), ("نوری", "nouri"), ("طاهری", "taheri")],
    ),
}
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net")


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


# -------------------------------------------------------------------------------------------- period
@dataclass(frozen=True)
class _Period:
    start: date
    days: int  # T: activity lies in [0, T) days after start
    start_us: int
    weekday0: int  # weekday of start (Mon=0)
    campaigns: tuple[int, ...]  # price-increase days after start (subscription)
    day_month: np.ndarray  # calendar month (0-11) of each day in [0, T)
    day_weekday: np.ndarray  # weekday of each day in [0, T)


def _period(start: date, end: date, business: Business) -> _Period:
    days = (end - start).days
    d0 = np.datetime64(start, "D")
    day = d0 + np.arange(days)
    month = (day.astype("datetime64[M]").astype(np.int64) % 12).astype(np.int64)
    weekday = ((day.astype(np.int64) + 3) % 7).astype(np.int64)  # 1970-01-01 was a Thursday
    campaigns: list[int] = []
    if business == "subscription":
        for k in (1, 2):
            target = start + pd.Timedelta(days=math.floor(k * days / 3))
            first = pd.Timestamp(target).to_period("M").to_timestamp()
            if first.date() < target:
                first = (pd.Timestamp(target) + pd.offsets.MonthBegin(1)).normalize()
            c = (first.date() - start).days
            if 0 < c < days - 1 and c not in campaigns:
                campaigns.append(c)
    start_us = int((d0 - np.datetime64("1970-01-01", "D")).astype(np.int64)) * _SEC_PER_DAY * _US_PER_SEC
    return _Period(start, days, start_us, start.weekday(), tuple(campaigns), month, weekday)


# --------------------------------------------------------------------------------- customer simulation
@dataclass
class _Customers:
    """One chunk's customers: attributes, latent traits and their simulated fate (days after start)."""

    first_index: int
    signup: np.ndarray  # int day; negative = before start
    a: np.ndarray  # first day activity can be recorded: max(signup, 0)
    b: np.ndarray  # end of activity: churn day, or T for customers still active at the end
    churned: np.ndarray
    eng_z: np.ndarray
    engagement: np.ndarray
    comp_z: np.ndarray
    complaint: np.ndarray
    purchase: np.ndarray
    spend: np.ndarray
    price_sens: np.ndarray
    happy_z: np.ndarray
    plan: np.ndarray
    market: np.ndarray
    region: np.ndarray
    channel: np.ndarray
    consent: np.ndarray
    first_name: np.ndarray  # index into the flattened name lists
    last_name: np.ndarray
    domain: np.ndarray
    initial_fee: np.ndarray
    increase: np.ndarray  # (C, n_campaigns) bool: selected for the campaign's price increase
    applied: np.ndarray  # increase and still a customer at the campaign
    fee: np.ndarray  # current monthly fee
    ep_start: np.ndarray  # decline episode (days); depth 0 = none
    ep_len: np.ndarray
    ep_depth: np.ndarray
    ep_kind: np.ndarray  # 0 none, 1 decline before churn, 2 decline and recovery

    @property
    def size(self) -> int:
        return len(self.signup)


def _markets(p: Planted) -> tuple[list[str], list[str], list[str], np.ndarray, np.ndarray]:
    regions = [r for r, _, _ in p.region_channels]
    region_of = np.array([regions.index(m[0]) for m in p.markets])
    w = np.array([m[3] for m in p.markets])
    return regions, [m[1] for m in p.markets], [m[2] for m in p.markets], region_of, w / w.sum()


_NameList = list[tuple[str, str]]


def _name_tables() -> tuple[dict[str, tuple[int, int, int, int]], _NameList, _NameList]:
    offsets: dict[str, tuple[int, int, int, int]] = {}
    firsts: list[tuple[str, str]] = []
    lasts: list[tuple[str, str]] = []
    for lang, (f, last) in _NAMES.items():
        offsets[lang] = (len(firsts), len(f), len(lasts), len(last))
        firsts += f
        lasts += last
    return offsets, firsts, lasts


def _choice(rng: np.random.Generator, probs: np.ndarray, size: int) -> np.ndarray:
    """Vectorised categorical draw from one probability vector."""
    cum = np.cumsum(probs / probs.sum())
    return np.minimum(np.searchsorted(cum, rng.random(size), side="right"), len(probs) - 1)


def _row_choice(u: np.ndarray, cum_rows: np.ndarray) -> np.ndarray:
    """Categorical draw per row: `cum_rows` (n, k) cumulative probabilities, `u` (n,) uniforms."""
    out = np.zeros(len(u), dtype=np.int64)
    for k in range(cum_rows.shape[1] - 1):
        out += u >= cum_rows[:, k]
    return out


# ------------------------------------------------------------------------------------ churn hazards
@dataclass(frozen=True)
class _Traits:
    """The per-customer inputs of a churn hazard (1-d arrays over the chunk's customers)."""

    eng_z: np.ndarray
    comp_z: np.ndarray
    price_sens: np.ndarray
    plan: np.ndarray | None  # subscription plan index; None in retail (no plan effect)


# A hazard maps (base daily hazard, traits, tenure at each segment midpoint (C, S), per campaign: segment
# is after the customer's increase (C, S), within its first price_short_days (C, S), parameters) to the
# daily hazard on each segment (C, S). Only the hazard differs between mechanisms, so every random draw
# (and hence the default output) is unchanged.
_Hazard = Callable[[float, _Traits, np.ndarray, list[np.ndarray], list[np.ndarray], Planted], np.ndarray]


def _hazard_default(base: float, t: _Traits, ten: np.ndarray, after: list[np.ndarray],
                    short: list[np.ndarray], p: Planted) -> np.ndarray:
    """Multiplicative traits x tenure steps x plan x price shock scaled by sensitivity (the documented one)."""
    trait = base * np.exp(p.hazard_engagement * t.eng_z + p.hazard_complaint * t.comp_z)
    if t.plan is not None:
        trait = trait * np.array(p.hazard_plan)[t.plan]
    h = trait[:, None] * np.where(
        ten < p.new_tenure_days,
        p.hazard_new_tenure,
        np.where(ten < p.young_tenure_days, p.hazard_young_tenure, 1.0),
    )
    sens = t.price_sens[:, None]
    for a, s in zip(after, short, strict=True):
        mult = np.where(s, 1 + p.price_short * sens, 1 + p.price_long * sens)
        h = h * np.where(a, mult, 1.0)
    return h


def _hazard_additive(base: float, t: _Traits, ten: np.ndarray, after: list[np.ndarray],
                     short: list[np.ndarray], p: Planted) -> np.ndarray:
    """Log-linear in the traits and the number of increases received: no thresholds, no interactions."""
    log_h = p.additive_engagement * t.eng_z + p.additive_complaint * t.comp_z
    if t.plan is not None:
        log_h = log_h + np.array(p.additive_plan)[t.plan]
    log_h = np.broadcast_to(log_h[:, None], ten.shape)
    for a in after:
        log_h = log_h + p.additive_price_increase * a
    return base * p.additive_scale * np.exp(log_h)


def _hazard_interactions(base: float, t: _Traits, ten: np.ndarray, after: list[np.ndarray],
                         short: list[np.ndarray], p: Planted) -> np.ndarray:
    """Thresholds and interactions only: no trait has one direction of effect on its own.

    Low engagement raises the hazard while tenure is young but lowers it afterwards (established customers
    who barely use the product forget the subscription and keep paying), and raises it with many
    complaints; a price increase matters only to price-sensitive customers who are not engaged.
    """
    low = (t.eng_z < p.interactions_low_engagement_z)[:, None]
    young = ten < p.young_tenure_days
    mult = np.where(low, np.where(young, p.interactions_young_low_engagement,
                                  p.interactions_old_low_engagement), 1.0)
    complains = (t.comp_z > p.interactions_high_complaint_z)[:, None]
    mult = mult * np.where(low & complains, p.interactions_complaint_low_engagement, 1.0)
    sensitive_idle = ((t.price_sens > p.interactions_sensitive) & (t.eng_z < 0))[:, None]
    for a in after:
        mult = mult * np.where(a & sensitive_idle, p.interactions_price_sensitive, 1.0)
    return base * p.interactions_scale * mult


_HAZARDS: dict[str, _Hazard] = {
    "default": _hazard_default,
    "additive": _hazard_additive,
    "interactions": _hazard_interactions,
}


def _simulate_customers(
    ss: np.random.SeedSequence, lo: int, hi: int, period: _Period, business: Business, p: Planted,
    mechanism: Mechanism = "default",
) -> _Customers:
    rng = np.random.default_rng(ss)
    n = hi - lo
    T = period.days

    # signups: a share existed before start, the rest arrive through [start, end) with growth
    pre = rng.random(n) < p.pre_start_share
    tenure0 = 1 + np.minimum(rng.exponential(p.pre_start_tenure_mean_days, n), p.pre_start_tenure_max_days)
    g = math.log1p(p.growth)
    new_day = np.floor(T * np.log1p(rng.random(n) * math.expm1(g)) / g)
    signup = np.where(pre, -np.floor(tenure0), np.minimum(new_day, T - 1)).astype(np.int64)
    a = np.maximum(signup, 0)

    # latent traits
    eng_z = rng.standard_normal(n)
    engagement = np.exp(p.engagement_sigma * eng_z - p.engagement_sigma**2 / 2)
    comp_z = rng.standard_normal(n)
    complaint = np.exp(p.complaint_sigma * comp_z - p.complaint_sigma**2 / 2)
    r = p.purchase_engagement_corr
    buy_z = r * eng_z + math.sqrt(1 - r * r) * rng.standard_normal(n)
    purchase = np.exp(p.purchase_sigma * buy_z - p.purchase_sigma**2 / 2)
    spend = np.exp(rng.normal(0.0, 0.5, n)) * (25.0 if business == "subscription" else 45.0)
    price_sens = rng.beta(*p.price_sensitivity_beta, n)
    happy_z = 0.5 * eng_z - 0.4 * comp_z + 0.75 * rng.standard_normal(n)

    # profile
    _, _, langs, region_of, market_w = _markets(p)
    market = _choice(rng, market_w, n)
    region = region_of[market]
    ch_cum = np.cumsum(np.array([c for _, c, _ in p.region_channels]), axis=1)
    channel = _row_choice(rng.random(n), ch_cum[region])
    consent = rng.random(n) < np.array([c for _, _, c in p.region_channels])[region]
    offsets, _, _ = _name_tables()
    off = np.array([offsets[lang] for lang in langs])[market]  # (n, 4)
    first_name = off[:, 0] + np.floor(rng.random(n) * off[:, 1]).astype(np.int64)
    last_name = off[:, 2] + np.floor(rng.random(n) * off[:, 3]).astype(np.int64)
    domain = _choice(rng, np.array([0.6, 0.25, 0.15]), n)
    if business == "subscription":
        plan = _choice(rng, np.array(p.plan_shares), n)
    else:  # loyalty tier follows the purchase rate, with noise
        score = buy_z + 0.6 * rng.standard_normal(n)
        plan = (score > 0.45).astype(np.int64) + (score > 1.5).astype(np.int64)

    # price increases (subscription): selected customers with enough tenure at each campaign
    camps = np.array(period.campaigns, dtype=np.float64)
    nc = len(camps)
    increase = (signup[:, None] <= camps[None, :] - p.price_min_tenure_days) & (
        rng.random((n, nc)) < p.price_increase_share
    )
    plan_fee = np.array(p.plan_fees)[plan] if business == "subscription" else np.zeros(n)
    plan_inc = np.array(p.plan_fee_increase)[plan] if business == "subscription" else np.zeros(n)
    initial_fee = plan_fee + plan_inc * (camps[None, :] <= signup[:, None]).sum(axis=1)

    # churn hazard: piecewise constant between tenure and price-increase breakpoints
    base = (
        p.base_monthly_hazard_subscription if business == "subscription" else p.base_monthly_hazard_retail
    ) / 30.4375
    Tf = float(T)
    cols = [a.astype(np.float64), signup + p.new_tenure_days, signup + p.young_tenure_days]
    for j in range(nc):
        cols.append(np.where(increase[:, j], camps[j], Tf))
        cols.append(np.where(increase[:, j], camps[j] + p.price_short_days, Tf))
    cols.append(np.full(n, Tf))
    bounds = np.sort(np.clip(np.column_stack(cols).astype(np.float64), a[:, None], Tf), axis=1)
    mid = (bounds[:, :-1] + bounds[:, 1:]) / 2
    ten = mid - signup[:, None]
    traits = _Traits(eng_z, comp_z, price_sens, plan if business == "subscription" else None)
    # "after[j]": segment lies after campaign j and the customer was selected for its increase
    after = [increase[:, j : j + 1] & (mid >= camps[j]) for j in range(nc)]
    short = [after[j] & (mid < camps[j] + p.price_short_days) for j in range(nc)]
    h = _HAZARDS[mechanism](base, traits, ten, after, short, p)
    mass = np.diff(bounds, axis=1) * h
    cum = np.cumsum(mass, axis=1)
    e = rng.exponential(1.0, n)
    seg = np.minimum((cum < e[:, None]).sum(axis=1), mass.shape[1] - 1)
    rows = np.arange(n)
    crossed = cum[:, -1] >= e
    tau = bounds[rows, seg] + (e - (cum[rows, seg] - mass[rows, seg])) / h[rows, seg]
    churn_day = np.maximum(np.floor(tau).astype(np.int64) + 1, a + 1)
    churned = crossed & (churn_day < T)
    b = np.where(churned, churn_day, T).astype(np.int64)

    applied = increase & (camps[None, :] < b[:, None])
    fee = initial_fee + plan_inc * applied.sum(axis=1)

    # decline episodes: before churn (most churners) or decline-and-recover (some stayers)
    length = rng.uniform(p.decline_min_days, p.decline_max_days, n)
    depth = rng.uniform(*p.decline_depth, n)
    warn = churned & (rng.random(n) < p.warning_share)
    recover = ~churned & (rng.random(n) < p.recovery_share)
    rec_start = a + rng.random(n) * (T - a)
    ep_kind = np.where(warn, 1, np.where(recover, 2, 0)).astype(np.int8)
    ep_start = np.where(warn, b - length, np.where(recover, rec_start, b.astype(np.float64)))
    ep_depth = np.where(ep_kind > 0, depth, 0.0)

    return _Customers(
        lo, signup, a, b, churned, eng_z, engagement, comp_z, complaint, purchase, spend, price_sens,
        happy_z, plan, market, region, channel, consent, first_name, last_name, domain, initial_fee,
        increase, applied, fee, ep_start, length, ep_depth, ep_kind,
    )


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


# ------------------------------------------------------------------------------------------ public API
def _check(n_customers: int, start: date, end: date, seed: int, business: str,
           events_per_customer: float, mechanism: str = "default") -> tuple[date, date]:
    if isinstance(n_customers, bool) or not isinstance(n_customers, (int, np.integer)) or n_customers < 1:
        raise ChurnError(f"n_customers must be a whole number >= 1, got {n_customers!r}")
    dates = []
    for label, d in (("start", start), ("end", end)):
        if isinstance(d, datetime):
            d = d.date()
        if not isinstance(d, date):
            raise ChurnError(f"{label} must be a date, got {d!r}")
        dates.append(d)
    start, end = dates
    if end <= start:
        raise ChurnError(f"end ({end}) must be after start ({start})")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ChurnError(f"seed must be a whole number >= 0, got {seed!r}")
    if business not in ("subscription", "retail"):
        raise ChurnError(f"business must be 'subscription' or 'retail', got {business!r}")
    if not (isinstance(events_per_customer, (int, float)) and math.isfinite(events_per_customer)
            and events_per_customer >= 0):
        raise ChurnError(f"events_per_customer must be a number >= 0, got {events_per_customer!r}")
    if not isinstance(mechanism, str) or mechanism not in MECHANISMS:
        raise ChurnError(f"mechanism must be one of {', '.join(MECHANISMS)}; got {mechanism!r}")
    return start, end


def _chunks(n: int) -> list[tuple[int, int, int]]:
    return [(k, lo, min(lo + CHUNK_SIZE, n)) for k, lo in enumerate(range(0, n, CHUNK_SIZE))]


def generate(
    n_customers: int,
    start: date,
    end: date,
    seed: int,
    out: str | Path,
    *,
    overwrite: bool = False,
    business: Business = "subscription",
    events_per_customer: float = 50.0,
    mechanism: Mechanism = "default",
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Write a synthetic data source (Parquet tables) to `out`; return row counts per table.

    Tables: customers, events, tickets, orders, surveys and, for `business="subscription"`, fee_changes
    (columns and types as in `churn.contract`). Activity lies in [start, end); a share of customers signed
    up before `start`. Retail is non-contractual: no cancel_date, no fees; churners just stop.
    The folder is written to a temporary sibling and swapped into place; an existing `out` is only
    replaced with `overwrite=True`. `progress(done_customers, total)` is called after each chunk.
    `mechanism` chooses the planted churn hazard (everything else is simulated the same way):
    "default" (tenure steps, multiplicative traits, price shocks scaled by sensitivity), "additive"
    (log-linear in the traits and price increases: no thresholds or interactions) or "interactions"
    (thresholds and interactions only: low engagement matters while tenure is young or with many
    complaints; price increases matter to price-sensitive, unengaged customers). See PLANTED and
    docs/synthetic-data.md. Same arguments give byte-identical files. Raises ChurnError for bad arguments.
    """
    start, end = _check(n_customers, start, end, seed, business, events_per_customer, mechanism)
    p = PLANTED
    period = _period(start, end, business)
    schemas = _schemas(business)
    width = max(7, len(str(n_customers)))
    counts = dict.fromkeys(schemas, 0)
    with atomic_dir(out, overwrite) as tmp:
        writers = {
            name: pq.ParquetWriter(tmp / f"{name}.parquet", schema, compression=_PARQUET_COMPRESSION)
            for name, schema in schemas.items()
        }
        try:
            for k, lo, hi in _chunks(n_customers):
                ss = np.random.SeedSequence(seed, spawn_key=(k,))
                s_cust, s_ev, s_tk, s_or, s_sv = ss.spawn(5)
                c = _simulate_customers(s_cust, lo, hi, period, business, p, mechanism)
                digits = _id_digits(lo, hi - lo, width)
                tables = {
                    "customers": _customers_table(c, digits, period, business, p, schemas["customers"]),
                    "events": _events_table(np.random.default_rng(s_ev), c, digits, period, business,
                                            float(events_per_customer), p, schemas["events"]),
                    "tickets": _tickets_table(np.random.default_rng(s_tk), c, digits, period, business, p,
                                              schemas["tickets"]),
                    "orders": _orders_table(np.random.default_rng(s_or), c, digits, period, business, p,
                                            schemas["orders"]),
                    "surveys": _surveys_table(np.random.default_rng(s_sv), c, digits, period, p,
                                              schemas["surveys"]),
                }
                if business == "subscription":
                    tables["fee_changes"] = _fee_changes_table(c, digits, period, p, schemas["fee_changes"])
                for name, table in tables.items():
                    writers[name].write_table(table)
                    counts[name] += table.num_rows
                del tables, c
                if progress is not None:
                    progress(hi, n_customers)
        finally:
            for w in writers.values():
                w.close()
    return counts


def ground_truth(
    n_customers: int,
    start: date,
    end: date,
    seed: int,
    *,
    business: Business = "subscription",
    mechanism: Mechanism = "default",
) -> pd.DataFrame:
    """The hidden side of `generate` with the same arguments (mechanism included): one row per customer
    with latent traits, the simulated churn day and the decline episode. For tests and model checks; never
    a model input.

    Columns: customer_id, signup_day, churned, churn_date (NaT if none), engagement, complaint, purchase,
    price_sensitivity, happy_z, price_increases, episode ("none", "decline", "recovery"), episode_start,
    episode_days, episode_depth (days are counted from `start`).
    """
    start, end = _check(n_customers, start, end, seed, business, 0.0, mechanism)
    period = _period(start, end, business)
    width = max(7, len(str(n_customers)))
    parts = []
    for k, lo, hi in _chunks(n_customers):
        s_cust = np.random.SeedSequence(seed, spawn_key=(k,)).spawn(5)[0]
        c = _simulate_customers(s_cust, lo, hi, period, business, PLANTED, mechanism)
        ids = np.arange(lo + 1, hi + 1)
        parts.append(pd.DataFrame({
            "customer_id": [f"{i:0{width}d}" for i in ids],
            "signup_day": c.signup,
            "churned": c.churned,
            "churn_date": pd.to_datetime(
                np.where(c.churned, np.datetime64(start, "D") + c.b, np.datetime64("NaT", "D"))
            ).astype("datetime64[us]"),
            "engagement": c.engagement,
            "complaint": c.complaint,
            "purchase": c.purchase,
            "price_sensitivity": c.price_sens,
            "happy_z": c.happy_z,
            "price_increases": c.applied.sum(axis=1),
            "episode": np.array(["none", "decline", "recovery"])[c.ep_kind],
            "episode_start": np.where(c.ep_kind > 0, c.ep_start, np.nan),
            "episode_days": np.where(c.ep_kind > 0, c.ep_len, np.nan),
            "episode_depth": c.ep_depth,
        }))
    return pd.concat(parts, ignore_index=True)
