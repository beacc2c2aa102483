"""The input data contract: which tables exist, their columns, types and rules (one place).

The validator, the source loader, the generator and docs/data-contract.md all follow this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ColType = Literal["id", "timestamp", "date", "text", "number", "bool"]


@dataclass(frozen=True)
class Column:
    """One column of the contract."""

    name: str
    type: ColType
    required: bool = False
    min: float | None = None  # inclusive lower bound for numbers
    max: float | None = None  # inclusive upper bound for numbers
    description: str = ""


@dataclass(frozen=True)
class TableSpec:
    """One table of the contract."""

    name: str
    columns: tuple[Column, ...]
    time_column: str | None = None  # the column that places a row in time (checked for the future)
    activity: bool = True  # rows are customer activity (checked against known customers)
    description: str = ""
    extra_columns: bool = False  # keep unknown columns (customers: any other attributes)

    @property
    def required(self) -> list[str]:
        """Names of required columns."""
        return [c.name for c in self.columns if c.required]

    def column(self, name: str) -> Column | None:
        """The contract column called `name`, if any."""
        return next((c for c in self.columns if c.name == name), None)


CUSTOMERS = TableSpec(
    "customers",
    (
        Column("customer_id", "id", True, description="unique customer key (text; leading zeros kept)"),
        Column("signup_date", "timestamp", True, description="when the customer relationship started"),
        Column("cancel_date", "timestamp", description="contract cancellation (contractual churn)"),
        Column("plan", "text", description="subscription plan or tier"),
        Column("monthly_fee", "number", min=0, description="current monthly fee"),
        Column("region", "text"),
        Column("country", "text"),
        Column("language", "text", description="preferred language (ISO 639-1, e.g. en, de, fa)"),
        Column("channel", "text", description="preferred contact channel (email, sms, app_push, call)"),
        Column("marketing_consent", "bool", description="may we contact them with offers"),
        Column("name", "text"),
        Column("email", "text"),
    ),
    time_column="signup_date",
    activity=False,
    description="one row per customer",
    extra_columns=True,
)
EVENTS = TableSpec(
    "events",
    (
        Column("customer_id", "id", True),
        Column("timestamp", "timestamp", True),
        Column("event_type", "text", description="login, session, page_view, feature_use, ..."),
        Column("duration_s", "number", min=0, description="session length in seconds"),
        Column("value", "number"),
    ),
    time_column="timestamp",
    description="engagement: one row per product event",
)
TICKETS = TableSpec(
    "tickets",
    (
        Column("customer_id", "id", True),
        Column("opened_at", "timestamp", True),
        Column("closed_at", "timestamp", description="empty while the ticket is open"),
        Column("category", "text"),
        Column("is_complaint", "bool"),
        Column("satisfaction", "number", min=1, max=5, description="1-5 rating after resolution"),
    ),
    time_column="opened_at",
    description="support tickets and complaints",
)
ORDERS = TableSpec(
    "orders",
    (
        Column("customer_id", "id", True),
        Column("ordered_at", "timestamp", True),
        Column("amount", "number", True, min=0),
        Column("quantity", "number", min=0),
        Column("discount", "number", min=0, description="discount amount on the order"),
    ),
    time_column="ordered_at",
    description="purchases",
)
SURVEYS = TableSpec(
    "surveys",
    (
        Column("customer_id", "id", True),
        Column("answered_at", "timestamp", True),
        Column("score", "number", True, min=0, max=10, description="NPS 0-10 or CSAT 1-5"),
    ),
    time_column="answered_at",
    description="feedback surveys",
)
FEE_CHANGES = TableSpec(
    "fee_changes",
    (
        Column("customer_id", "id", True),
        Column("changed_at", "timestamp", True),
        Column("monthly_fee", "number", True, min=0, description="the fee from this moment on"),
        Column("plan", "text"),
    ),
    time_column="changed_at",
    description="price history: makes fee changes visible point in time",
)

CONTRACT: dict[str, TableSpec] = {
    t.name: t for t in (CUSTOMERS, EVENTS, TICKETS, ORDERS, SURVEYS, FEE_CHANGES)
}
ACTIVITY = ("events", "tickets", "orders", "surveys")
