"""What the marketing report shows, as plain numbers, text and tables (pure: no charts, no HTML).

`report_context` reads the retention plan, its `PlanSummary` (optional) and the run metadata.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churn.features.registry import Feature
from churn.scoring import status
from churn.scoring.drivers import driver_inputs, risk_drivers
from churn.scoring.plan_columns import (
    NO_INCENTIVE,
    as_flag,
    check_columns,
    is_rtl_language,
    starts_rtl,
    text_or_none,
    texts_or_none,
    tier_order,
)
from churn.scoring.report_charts import tier_colours
from churn.scoring.report_format import LANGUAGE_NAMES, _count, _date, _num, _pct, humanize, money_formatter
from churn.scoring.summary import PlanSummary

REPORT_REQUIRED = ("customer_id", "churn_probability", "risk_tier")
SAMPLES_PER_LANGUAGE = 3
TOP_REASONS = 5
MAX_BREAKDOWN_ROWS = 15


# -------------------------------------------------------------------------------------- pure: numbers
def _value_at_risk(plan: pd.DataFrame) -> pd.Series | None:
    """Each customer's expected loss (value x probability), from `expected_loss` or `customer_value`."""
    if "expected_loss" in plan.columns:
        return pd.to_numeric(plan["expected_loss"], errors="coerce")
    if "customer_value" in plan.columns:
        return pd.to_numeric(plan["customer_value"], errors="coerce") * plan["_p"]
    return None


def _breakdown(plan: pd.DataFrame, col: str, at_risk: pd.Series, loss: pd.Series | None) -> dict[str, Any]:
    """Customers, at-risk share and revenue at risk per value of `col` (largest revenue at risk first)."""
    if col not in plan.columns:
        return {"available": False, "column": col, "rows": [], "hidden": 0}
    key = texts_or_none(plan[col]).fillna("(not set)").astype(object)
    frame = pd.DataFrame({"key": key, "at_risk": at_risk.astype(int)})
    frame["loss"] = loss.fillna(0.0) if loss is not None else 0.0
    g = frame.groupby("key", sort=True).agg(
        customers=("at_risk", "size"), at_risk=("at_risk", "sum"), loss=("loss", "sum")
    )
    g["share"] = g["at_risk"] / g["customers"]
    sort_by = ["loss", "customers"] if loss is not None else ["share", "customers"]
    g = g.reset_index().sort_values(sort_by + ["key"], ascending=[False, False, True], kind="mergesort")
    max_loss = float(g["loss"].max()) if len(g) and loss is not None else 0.0
    rows = [
        {
            "name": r.key,
            "rtl": starts_rtl(r.key),
            "customers": int(r.customers),
            "at_risk": int(r.at_risk),
            "share": float(r.share),
            "loss": float(r.loss) if loss is not None else None,
            "loss_bar": float(r.loss) / max_loss if max_loss > 0 else 0.0,
        }
        for r in g.head(MAX_BREAKDOWN_ROWS).itertuples(index=False)
    ]
    return {"available": True, "column": col, "rows": rows, "hidden": max(0, len(g) - MAX_BREAKDOWN_ROWS)}


def _missing_translations(counts: dict[str, int]) -> list[str]:
    """{customer language: messages sent in the default language} as readable lines."""
    lines = []
    for k, v in sorted(counts.items()):
        label = f"{LANGUAGE_NAMES[k]} ({k})" if k in LANGUAGE_NAMES else str(k)
        noun = "customer" if v == 1 else "customers"
        lines.append(f"{label}: {v:,} {noun} got the message in the default language")
    return lines


def _statuses(plan: pd.DataFrame) -> dict[str, Any]:
    """Every customer of the plan by status (scored, or why not), and the win-back list's size."""
    st = plan["status"] if "status" in plan.columns else pd.Series(status.SCORED, index=plan.index)
    counts = status.status_counts(st)
    total = len(plan)
    is_lapsed = (st.astype(object) == status.LAPSED).to_numpy()
    listed = as_flag(plan["win_back"]).to_numpy() if "win_back" in plan.columns else np.zeros(total, dtype=bool)
    why = (texts_or_none(plan.loc[is_lapsed & ~listed, "no_contact_reason"]).fillna("(no reason)").value_counts()
           if "no_contact_reason" in plan.columns else pd.Series(dtype=int))
    return {
        "rows": [{"status": k, "label": humanize(k), "meaning": status.STATUS_TEXT.get(k, k), "count": v,
                  "share": v / total if total else 0.0} for k, v in counts.items()],
        "total": total,
        "unscored": total - counts.get(status.SCORED, 0),
        "lapsed": int(is_lapsed.sum()),
        "win_back": int(listed.sum()),
        "not_listed": [{"label": humanize(k), "count": int(v)} for k, v in sorted(why.items())],
    }


def _save_rates(summary: PlanSummary | None) -> dict[str, Any]:
    """The save rates the plan used, when it read an effects file: per offer and tier, measured or assumed
    (`PlanSummary.save_rates`); measured ones first, then by offer and tier."""
    rows = []
    for inc, by_tier in (summary.save_rates if summary else {}).items():
        for tier, r in by_tier.items():
            rows.append({"incentive": inc, "tier": tier, "rate": r.rate, "assumed": r.assumed,
                         "measured": r.source == "measured", "raw": r.measured, "low": r.measured_low,
                         "high": r.measured_high, "treated": r.treated, "control": r.control,
                         "weight": r.data_weight, "detectable": r.detectable_save_rate,
                         "priced": r.customers_priced})
    rows.sort(key=lambda r: (not r["measured"], r["incentive"], r["tier"]))
    return {"rows": rows, "measured": sum(r["measured"] for r in rows), "priced": sum(r["priced"] for r in rows)}


def report_context(plan: pd.DataFrame, summary: PlanSummary | None, meta: dict | None,
                   features: Sequence[Feature] = ()) -> dict[str, Any]:
    """Everything the report shows, as plain numbers, text and tables (no charts, no HTML).

    `features` (the model's) name and word the drivers of "Why customers are at risk"; without them the
    drivers are named by their column."""
    check_columns(plan, REPORT_REQUIRED, "report")
    meta = dict(meta or {})
    plan = plan.copy(deep=False)  # only adds helper columns; copy-on-write keeps the caller's frame intact
    plan["_p"] = pd.to_numeric(plan["churn_probability"], errors="coerce").astype(float)
    plan["_tier"] = texts_or_none(plan["risk_tier"])
    currency = summary.currency if summary else str(meta.get("currency") or "EUR")
    fmt_money = money_formatter(currency)

    tiers = tier_order(plan["risk_tier"], plan["_p"])
    tiers += sorted(set(plan["_tier"].dropna()) - set(tiers))
    colours = tier_colours(tiers)
    risky_tiers = tiers[:-1] if len(tiers) > 1 else []
    at_risk = plan["_tier"].isin(risky_tiers)
    contacted = as_flag(plan["contact"]) if "contact" in plan.columns else pd.Series(False, plan.index)
    control = as_flag(plan["holdout"]) if "holdout" in plan.columns else pd.Series(False, plan.index)
    contacted = contacted & ~control
    loss = _value_at_risk(plan)
    scored = plan["_p"].notna()
    n = int(scored.sum())  # shares of the scored: unscored rows have no tier and no risk

    # Tier table
    tier_rows = []
    for t in tiers:
        m = plan["_tier"] == t
        k = int(m.sum())
        tier_rows.append(
            {
                "tier": t,
                "colour": colours[t],
                "customers": k,
                "share": k / n if n else 0.0,
                "avg_probability": float(plan.loc[m, "_p"].mean()) if k else None,
                "loss": float(loss[m].sum()) if loss is not None else None,
                "contacted": int((m & contacted).sum()),
                "control": int((m & control).sum()),
            }
        )

    # Incentives: the summary's figures, with counts from the plan when there is no summary.
    figures = summary.incentives if summary else {}
    inc = (
        texts_or_none(plan.loc[contacted, "incentive"]).fillna(NO_INCENTIVE)
        if "incentive" in plan
        else None
    )
    counts = inc.value_counts().to_dict() if inc is not None else {}
    plan_cost = (
        pd.to_numeric(plan.loc[contacted, "incentive_cost"], errors="coerce").groupby(inc).sum().to_dict()
        if inc is not None and "incentive_cost" in plan.columns
        else {}
    )
    incentive_rows = []
    for name in sorted(set(figures) | set(counts)):
        f = figures.get(name)
        incentive_rows.append(
            {
                "name": name,
                "customers": f.customers if f else int(counts.get(name, 0)),
                "cost": f.cost if f else _num(plan_cost.get(name)),
                "saved": f.expected_saved_value if f else None,
                "net": f.expected_net_value if f else None,
            }
        )

    budget = summary.budget if summary else None
    budget_used = summary.budget_used if summary else None
    if budget_used is None and any(r["cost"] is not None for r in incentive_rows):
        budget_used = sum(r["cost"] or 0.0 for r in incentive_rows)
    saved = summary.expected_saved_value if summary else None

    # Reasons: per tier, the drivers (features) most often among the customers' top three reasons.
    reasons = []
    driving = plan[driver_inputs(plan, features)]
    for row in tier_rows:
        if not row["customers"]:
            continue
        drivers = risk_drivers(driving.loc[(plan["_tier"] == row["tier"]).to_numpy()], features, top=TOP_REASONS)
        if not drivers:
            continue
        reasons.append(
            {
                "tier": row["tier"],
                "colour": row["colour"],
                "customers": row["customers"],
                "reasons": [
                    {
                        "text": d.label,
                        "family": d.family,
                        "typical": d.typical,
                        "rtl": starts_rtl(d.label),
                        "count": d.customers,
                        "share": d.share,
                    }
                    for d in drivers
                ],
            }
        )

    # Why not contacted
    no_contact = []
    if "no_contact_reason" in plan.columns:
        why = texts_or_none(plan.loc[~contacted, "no_contact_reason"]).dropna()
        vc = why.value_counts()
        vc = vc.reset_index().sort_values(
            ["count", "no_contact_reason"], ascending=[False, True], kind="mergesort"
        )
        no_contact = [
            {
                "code": r.no_contact_reason,
                "label": humanize(r.no_contact_reason),
                "count": int(r.count),
                "share": int(r.count) / len(plan) if len(plan) else 0.0,
            }
            for r in vc.itertuples(index=False)
        ]

    # Sample offer messages, per message language (the most common languages first).
    samples = []
    lang_col = (
        "message_language"
        if "message_language" in plan.columns
        else ("language" if "language" in plan.columns else None)
    )
    if "offer_message" in plan.columns and lang_col:
        sent = (
            plan.loc[contacted]
            .assign(
                _lang=lambda d: texts_or_none(d[lang_col]).fillna("unknown"),
                _msg=lambda d: texts_or_none(d["offer_message"]),
                _inc=lambda d: (
                    texts_or_none(d["incentive"]).fillna(NO_INCENTIVE)
                    if "incentive" in d
                    else NO_INCENTIVE
                ),
                _id=lambda d: d["customer_id"].astype(str),
            )
            .dropna(subset=["_msg"])
        )
        sent = sent.sort_values(["_p", "_id"], ascending=[False, True], kind="mergesort")
        lang_counts = sent["_lang"].value_counts()
        for lang in sorted(lang_counts.index, key=lambda x: (-lang_counts[x], x)):
            sub = sent[sent["_lang"] == lang]
            picked = sub.drop_duplicates("_inc").head(SAMPLES_PER_LANGUAGE)  # one per incentive first
            rtl = is_rtl_language(lang)
            samples.append(
                {
                    "code": lang,
                    "name": LANGUAGE_NAMES.get(lang.split("-")[0].lower(), lang),
                    "rtl": rtl,
                    "count": int(lang_counts[lang]),
                    "messages": [
                        {
                            "text": r["_msg"],
                            "incentive": r["_inc"],
                            "tier": r["_tier"],
                            "rtl": rtl or starts_rtl(r["_msg"]),
                        }
                        for r in picked.to_dict("records")
                    ],
                }
            )

    fallback = 0
    if "language" in plan.columns and "message_language" in plan.columns:
        a = texts_or_none(plan.loc[contacted, "language"])
        b = texts_or_none(plan.loc[contacted, "message_language"])
        fallback = int((a.notna() & b.notna() & (a != b)).sum())

    risky_label = (
        ", ".join(risky_tiers[:-1])
        + (" or " if len(risky_tiers) > 1 else "")
        + (risky_tiers[-1] if risky_tiers else "")
    )
    total_loss = float(loss.sum()) if loss is not None else None
    return {
        "title": meta.get("title") or "Customer churn risk report",
        "as_of": _date(
            meta.get("as_of")
            if meta.get("as_of") is not None
            else (plan["as_of"].dropna().iloc[0] if "as_of" in plan and plan["as_of"].notna().any() else None)
        ),
        "model_version": text_or_none(meta.get("model_version"))
        or (
            text_or_none(plan["model_version"].dropna().iloc[0])
            if "model_version" in plan and plan["model_version"].notna().any()
            else None
        ),
        "data_source": text_or_none(meta.get("data_source") or meta.get("source")),
        "generated_at": _date(meta.get("generated_at")) if meta.get("generated_at") is not None else None,
        # What the reader must know before trusting the run (a scoring date long after the data ...).
        "warnings": [str(w) for w in meta.get("warnings") or []],
        "currency": currency,
        "money": fmt_money,
        "count": _count,
        "pct": _pct,
        "headline": {
            "scored": n,
            "at_risk": int(at_risk.sum()),
            "at_risk_share": float(at_risk.sum()) / n if n else 0.0,
            "at_risk_label": risky_label,
            "lowest_tier": tiers[-1] if tiers else None,
            "revenue_at_risk": total_loss,
            "revenue_at_risk_risky": float(loss[at_risk].sum()) if loss is not None else None,
            "contacted": int(contacted.sum()),
            "control": int(control.sum()),
            "expected_saved": saved,
            "budget": budget,
            "budget_used": budget_used,
            "budget_share": budget_used / budget if budget and budget_used is not None else None,
        },
        "tiers": tier_rows,
        "incentives": incentive_rows,
        "reasons": reasons,
        "by_region": _breakdown(plan[scored], "region", at_risk[scored], loss[scored] if loss is not None else None),
        "by_plan": _breakdown(plan[scored], "plan", at_risk[scored], loss[scored] if loss is not None else None),
        "statuses": _statuses(plan),
        "has_loss": loss is not None,
        "no_contact": no_contact,
        "samples": samples,
        "missing_translations": _missing_translations(summary.missing_translations if summary else {}),
        "save_rates": _save_rates(summary),
        "fallback_language": fallback,
        "_probabilities": plan["_p"].to_numpy(),
        "_tier_of": plan["_tier"].to_numpy(),
    }
