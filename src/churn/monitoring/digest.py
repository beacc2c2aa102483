"""The messages a scoring run has for people: risk jumps as one digest per owner or region, and the model's
health breaches. A pure step: alerts, the plan and the breaches in, messages out (notifications.json).

A digest names a customer by id and the configured contact columns only (`incentives.contact_columns`),
with the alert's reason; no other customer attribute leaves the run. Each message carries its key: run
date, alert type, group and a hash of its content, which the delivery ledger records once it is sent.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd

from churn.config import Config
from churn.scoring.plan_columns import texts_or_none

RISK_JUMPS = "risk_jumps"
HEALTH = "health"
ALL = "(all)"


def message_key(as_of: str, kind: str, group: str | None, text: str) -> str:
    """The ledger key of a message: run date, alert type, group and the first 16 hex of its text's sha256."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"{as_of}|{kind}|{group or ALL}|{digest}"


def _message(as_of: str, kind: str, group: str | None, title: str, lines: list[str], more: str | None) -> dict[str, Any]:
    body = "\n".join(f"• {line}" for line in lines) + (f"\n{more}" if more else "")
    text = f"*{title}*\n{body}"
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
              {"type": "section", "text": {"type": "mrkdwn", "text": body[:3000]}}]
    return {"key": message_key(as_of, kind, group, text), "kind": kind, "group": group, "title": title,
            "body": body, "text": text, "blocks": blocks, "items": len(lines)}


def risk_jump_digests(alerts: pd.DataFrame, plan: pd.DataFrame, as_of: str, config: Config) -> list[dict[str, Any]]:
    """One message per value of `monitoring.delivery.digest_by` (one for all without it) listing the
    customers whose risk jumped, riskiest rise first, at most `max_customers` each."""
    if alerts.empty:
        return []
    dc = config.monitoring.delivery
    contact = [c for c in config.incentives.contact_columns if c in plan.columns]
    by = dc.digest_by if dc.digest_by and dc.digest_by in plan.columns else None
    keep = ["customer_id", *contact, *([by] if by and by not in contact else [])]
    who = plan[keep].assign(customer_id=texts_or_none(plan["customer_id"]).to_numpy())
    rows = alerts[["customer_id", "why"]].assign(customer_id=texts_or_none(alerts["customer_id"]).to_numpy())
    rows = rows.merge(who, on="customer_id", how="left", validate="one_to_one")
    groups = texts_or_none(rows[by]).fillna(f"(no {by})") if by else pd.Series(ALL, index=rows.index)
    out = []
    for group in sorted(groups.unique()):
        part = rows[(groups == group).to_numpy()]
        lines = []
        for r in part.head(dc.max_customers).to_dict("records"):
            names = " ".join(str(r[c]) for c in contact if pd.notna(r.get(c)) and str(r[c]).strip())
            lines.append(f"{r['customer_id']}{' ' + names if names else ''}: {r['why']}")
        more = f"… and {len(part) - dc.max_customers:,} more (alerts.csv)" if len(part) > dc.max_customers else None
        where = f" ({by}: {group})" if by else ""
        title = f"Churn risk rose for {len(part):,} customer{'s' if len(part) != 1 else ''}{where}, run {as_of}"
        out.append(_message(as_of, RISK_JUMPS, group if by else None, title, lines, more))
    return out


def health_message(breaches: list[str], as_of: str, model_version: str) -> list[dict[str, Any]]:
    """One message listing the run's model-health breaches (none when there are none)."""
    if not breaches:
        return []
    title = f"Model health: {len(breaches)} breach{'es' if len(breaches) != 1 else ''} in the run {as_of} ({model_version})"
    return [_message(as_of, HEALTH, None, title, list(breaches), "See the report's Model health section.")]
