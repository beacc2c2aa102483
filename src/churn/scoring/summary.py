"""The retention plan's summary as typed records: what the segments workbook, the report and the CLI read.

`plan_retention` builds a `PlanSummary`; readers use its attributes. `PlanSummary.to_dict()` is what
summary.json stores (same keys, same order as ever, plain JSON types) and `PlanSummary.from_dict` reads it
back, so a summary written by one run can be handed to the report or the workbook of another.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class IncentiveResult:
    """What one incentive of the catalogue costs and is expected to save in this plan."""

    customers: int  # contacted customers who get it
    cost: float  # incentive plus contact cost, summed over them
    expected_saved_value: float  # sum of p x value x save rate
    expected_net_value: float  # saved minus cost
    max_customers: int | None = None  # the catalogue's cap, None when uncapped
    control_group_would_get: int = 0  # control-group customers it would have gone to


@dataclass(frozen=True)
class TierControl:
    """Contactable customers in a tier and how many of them were held out as the control group."""

    contactable: int
    holdout: int


@dataclass(frozen=True)
class TierSize:
    """A risk tier's size and the lowest churn probability that lands in it (None: no lower bound)."""

    customers: int
    min_probability: float | None


@dataclass(frozen=True)
class WinBack:
    """Lapsed customers, how many are on the win-back list, and why the others are not ({reason: count})."""

    lapsed: int = 0
    listed: int = 0
    not_listed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SaveRateUsed:
    """The save rate one offer had in one tier of this plan: measured in past campaigns (an effects file,
    `churn.campaigns.learning`: the measurement shrunk towards the catalogue) or assumed (the catalogue's)."""

    rate: float
    assumed: float  # the catalogue's
    source: str  # "measured" or "assumed"
    customers_priced: int = 0  # contactable customers priced with a rate of their own (an uplift model)
    measured: float | None = None  # the campaigns' raw save rate, its 95% interval and their counts
    measured_low: float | None = None
    measured_high: float | None = None
    treated: int = 0
    control: int = 0
    data_weight: float = 0.0  # how much of `rate` is measurement (the rest is the catalogue's)
    detectable_save_rate: float | None = None  # the smallest save rate those groups detect (80% power)


@dataclass(frozen=True)
class PlanSummary:
    """Budget, per-incentive results, reasons, control group, statuses and message problems of one plan.

    Example:
        >>> s = PlanSummary(currency="EUR", budget=1000.0, budget_used=250.0)
        >>> s.budget_left, s.to_dict()["budget_used"]
        (750.0, 250.0)
    """

    currency: str = "EUR"
    budget: float = 0.0
    budget_used: float = 0.0
    budget_left: float | None = None  # None: budget - budget_used
    budget_multiplier: float = 0.0  # net value one more unit of budget would buy, at the margin
    customers: int = 0  # rows of the plan (every status)
    contactable: int = 0
    control_group: int = 0
    contacted: int = 0
    expected_saved_value: float = 0.0
    expected_net_value: float = 0.0
    incentives: dict[str, IncentiveResult] = field(default_factory=dict)
    no_contact_reasons: dict[str, int] = field(default_factory=dict)
    control_group_by_tier: dict[str, TierControl] = field(default_factory=dict)
    tiers: dict[str, TierSize] = field(default_factory=dict)
    channels: dict[str, int] = field(default_factory=dict)  # contacted customers per channel
    missing_translations: dict[str, int] = field(default_factory=dict)  # language -> messages sent in default
    warnings: list[str] = field(default_factory=list)
    message_problems: dict[str, Any] = field(default_factory=dict)
    status_counts: dict[str, int] = field(default_factory=dict)  # every row by status, in STATUSES order
    win_back: WinBack = field(default_factory=WinBack)
    # {incentive: {tier: SaveRateUsed}} when the plan read an effects file; left out of to_dict() when empty,
    # so a plan made on the catalogue alone writes the summary.json it always did.
    save_rates: dict[str, dict[str, SaveRateUsed]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.budget_left is None:  # frozen: set through object.__setattr__, once, at construction
            object.__setattr__(self, "budget_left", self.budget - self.budget_used)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to summary.json (nested records become plain dicts)."""
        d = asdict(self)
        if not self.save_rates:
            del d["save_rates"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlanSummary:
        """Read a summary back from its JSON form (`summary.json`'s "summary"); unknown keys are refused."""
        d = dict(d)
        d["incentives"] = {k: IncentiveResult(**v) for k, v in (d.get("incentives") or {}).items()}
        d["control_group_by_tier"] = {k: TierControl(**v) for k, v in (d.get("control_group_by_tier") or {}).items()}
        d["tiers"] = {k: TierSize(**v) for k, v in (d.get("tiers") or {}).items()}
        d["win_back"] = WinBack(**(d.get("win_back") or {}))
        d["save_rates"] = {i: {t: SaveRateUsed(**r) for t, r in by_tier.items()}
                           for i, by_tier in (d.get("save_rates") or {}).items()}
        return cls(**d)


# Fields every part of one plan shares (settings and the plan's global decisions): taken from the first part.
_SHARED = {"currency", "budget", "budget_multiplier", "max_customers", "min_probability", "rate", "assumed",
           "source", "measured", "measured_low", "measured_high", "treated", "control", "data_weight",
           "detectable_save_rate"}


def _merge(a: Any, b: Any, key: str = "") -> Any:
    """Two parts' values of one field: counts and money summed, lists joined without repeats, dicts merged
    key by key, shared settings kept."""
    if key in _SHARED or a is None:
        return a if a is not None else b
    if isinstance(a, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(out[k], v, k) if k in out else v
        return out
    if isinstance(a, list):
        return a + [x for x in b if x not in a]
    if isinstance(a, bool) or not isinstance(a, int | float):
        return a
    return a + b


def merge_summaries(parts: list[PlanSummary], order: dict[str, list[str]] | None = None) -> PlanSummary:
    """One summary of a plan made in parts over disjoint customers with the same global decisions (Spark
    partitions): counts and money summed, shared settings kept, `budget_left` recomputed; `order` lists the
    keys of dict fields in the order the single-machine plan gives them (statuses, tiers, incentives)."""
    if not parts:
        return PlanSummary()
    merged = parts[0].to_dict()
    for p in parts[1:]:
        merged = {k: _merge(v, p.to_dict().get(k), k) for k, v in merged.items()}
    merged["budget_left"] = None
    for name in ("no_contact_reasons", "channels", "missing_translations"):
        merged[name] = dict(sorted(merged[name].items()))
    for name, keys in (order or {}).items():
        got = merged.get(name) or {}
        merged[name] = {k: got[k] for k in [*keys, *sorted(set(got) - set(keys))] if k in got}
    return PlanSummary.from_dict(merged)
