"""Business KPIs per month and segment (region, plan, channel, language), from the raw tables in DuckDB.

Who counts as a customer at a date is the population rule of `churn.labels` (`create_standing`): an
*active* customer at a month start is one scoring would score then. For month [m, m'):

- S customers active at m, E active at m', N of E signed up in [m, m'), churned: in S and not in E;
- churn rate = churned / S; customer retention rate = (E - N) / S (a customer who lapsed earlier and came
  back counts in E - N, as the usual formula does);
- revenue per customer: the monthly fee in force (the fee history's latest change, else `monthly_fee`) for
  a subscription; the month's order amounts where there is no fee. Revenue at start R = sum over S (fee at
  m, or last month's orders); revenue churn = (revenue of the churned at m + fee cuts of the retained) / R;
  net revenue retention = the same customers' revenue one month later (fee at m' of those still active, or
  this month's orders) / R;
- average CLTV = average purchase value x purchase frequency x expected lifetime - acquisition cost: the mean
  fee x 1 a month (subscription) or S's order amount / orders x orders / S (orders), expected lifetime =
  1 / churn rate months (capped at `monitoring.max_lifetime_months`), acquisition cost the mean of the
  customers' `acquisition_cost` column where the data has one (else 0, and the column is empty);
- NPS = % promoters (9-10) - % detractors (0-6) of the survey answers in the month (surveys on a 0-10
  scale); CSAT = share of 4-5 answers (1-5 ticket satisfaction ratings, dated when the ticket closed, and
  1-5 surveys);
- saved revenue (with a campaign's run folder): per tier, the control group's realised churn rate minus
  the contacted customers', times each contacted customer's value (`customer_value` of the plan), summed,
  in the run's month. Without a campaign run the column is left out.

Segments are the customers table's current attribute. Formulas and sources: docs/monitoring.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.labels import create_standing, label_kind
from churn.sources import DataSource

SEGMENTS = ("region", "plan", "channel", "language")
ALL = "all"
COLUMNS = ["month", "segment", "group", "customers_start", "new_customers", "customers_end", "churned",
           "churn_rate", "retention_rate", "revenue_basis", "revenue_start", "revenue_churn",
           "net_revenue_retention", "avg_purchase_value", "purchase_frequency", "expected_lifetime_months",
           "acquisition_cost", "cltv", "nps", "nps_answers", "csat", "csat_answers"]


def month_start(when: pd.Timestamp) -> pd.Timestamp:
    """The first day of `when`'s month (midnight)."""
    return pd.Timestamp(when).normalize().replace(day=1)


def _dates(ds: DataSource, dates: list[pd.Timestamp]) -> None:
    values = ", ".join(f"(TIMESTAMP '{d:%Y-%m-%d}')" for d in dates)
    ds.con.execute(f"CREATE OR REPLACE TEMP TABLE asof_dates AS SELECT * FROM (VALUES {values}) v(as_of)")


def _revenue_basis(ds: DataSource) -> str | None:
    if ds.has_column("customers", "monthly_fee") or "fee_changes" in ds.tables:
        return "fee"
    return "spend" if "orders" in ds.tables else None


def _customer_months(ds: DataSource, config: Config, dates: list[pd.Timestamp], segments: list[str]) -> str:
    """Temp table kpi_cm: one row per customer and month, the customer active at its start or end."""
    con = ds.con
    _dates(ds, dates)
    create_standing(ds, config, label_kind(ds, config))
    has = set(ds.columns("customers"))
    basis = _revenue_basis(ds)
    orders = "orders" in ds.tables
    if basis == "fee":
        history = ("ASOF LEFT JOIN fee_changes f ON s.customer_id = f.customer_id AND s.as_of > f.changed_at"
                   if "fee_changes" in ds.tables else "")
        # The fee in force at each date: the latest change before it (as the profile features read it).
        fee = (f"coalesce({'f.monthly_fee' if history else 'NULL'}, "
               f"{'c.monthly_fee' if 'monthly_fee' in has else 'NULL'})")
        source = f"standing s JOIN customers c USING (customer_id) {history}"
    else:
        fee, source = "CAST(NULL AS DOUBLE)", "standing s"
    # Each customer's dates in order: a month's end is the next date's standing (one pass, no self-join).
    con.execute(
        "CREATE OR REPLACE TEMP TABLE kpi_steps AS SELECT * FROM (SELECT s.customer_id, s.as_of AS m, "
        "lag(s.as_of) OVER w AS m_prev, lead(s.as_of) OVER w AS m_next, s.standing = 'active' AS start_active, "
        f"coalesce(lead(s.standing) OVER w = 'active', FALSE) AS end_active, {fee} AS fee0, lead({fee}) OVER w AS fee1 "
        f"FROM {source} WINDOW w AS (PARTITION BY s.customer_id ORDER BY s.as_of)) "
        "WHERE m_prev IS NOT NULL AND m_next IS NOT NULL AND (start_active OR end_active)")
    joins = []
    if orders:
        con.execute("CREATE OR REPLACE TEMP TABLE kpi_orders AS SELECT customer_id, CAST(date_trunc('month', "
                    "ordered_at) AS TIMESTAMP) AS m, count(*) AS n, sum(amount) AS amount FROM orders GROUP BY ALL")
        joins.append("LEFT JOIN kpi_orders o ON o.customer_id = t.customer_id AND o.m = t.m")
    if basis == "fee":
        r_start, r_end = "coalesce(t.fee0, 0)", "CASE WHEN t.end_active THEN coalesce(t.fee1, 0) ELSE 0 END"
    elif basis == "spend":
        joins.append("LEFT JOIN kpi_orders op ON op.customer_id = t.customer_id AND op.m = t.m_prev")
        r_start, r_end = "coalesce(op.amount, 0)", "coalesce(o.amount, 0)"
    else:
        r_start = r_end = "CAST(NULL AS DOUBLE)"
    acq = _number_column(ds, "acquisition_cost") if "acquisition_cost" in has else "CAST(NULL AS DOUBLE)"
    seg = ", ".join(f'CAST(c."{s}" AS VARCHAR) AS "seg_{s}"' for s in segments)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE kpi_cm AS SELECT t.m, t.customer_id, t.start_active, t.end_active, "
        "coalesce(c.signup_date >= t.m AND c.signup_date < t.m_next, FALSE) AS signed_up, "
        f"{r_start} AS r_start, {r_end} AS r_end, "
        f"{'coalesce(o.n, 0)' if orders else '0'} AS orders_n, {'coalesce(o.amount, 0)' if orders else '0'} AS orders_amount, "
        f"{acq} AS acquisition_cost{', ' + seg if seg else ''} "
        f"FROM kpi_steps t JOIN customers c USING (customer_id) {' '.join(joins)}"
    )
    return basis or ""


def _number_column(ds: DataSource, column: str) -> str:
    """SQL reading an extra customer attribute as a number (as the profile features read theirs); a value
    that is no number is an error naming the file, the column and example rows."""
    expr = f'TRY_CAST(c."{column}" AS DOUBLE)'
    bad = ds.con.execute(
        f"SELECT count(*), list(c.customer_id ORDER BY c.customer_id)[:3], list(CAST(c.\"{column}\" AS VARCHAR) "
        f"ORDER BY c.customer_id)[:3] FROM customers c WHERE {expr} IS NULL AND c.\"{column}\" IS NOT NULL "
        f"AND trim(CAST(c.\"{column}\" AS VARCHAR)) <> ''").fetchone()
    if bad[0]:
        where = ds.tables["customers"].path if "customers" in ds.tables else "customers"
        examples = "; ".join(f"customer {i}: {v!r}" for i, v in zip(bad[1], bad[2], strict=True))
        raise ChurnError(f"{where}, column '{column}': {bad[0]:,} values are not numbers (write them like 12.5); "
                         f"e.g. {examples}")
    return expr


def _group(segment: str | None, alias: str) -> str:
    return f"'{ALL}'" if segment is None else f"coalesce({alias}, '(unknown)')"


def _counts(ds: DataSource, segment: str | None) -> pd.DataFrame:
    grp = _group(segment, f'"seg_{segment}"')
    return ds.con.execute(
        f"SELECT m, {grp} AS \"group\", "
        "count(*) FILTER (WHERE start_active) AS customers_start, "
        "count(*) FILTER (WHERE end_active AND signed_up) AS new_customers, "
        "count(*) FILTER (WHERE end_active) AS customers_end, "
        "count(*) FILTER (WHERE start_active AND NOT end_active) AS churned, "
        "sum(r_start) FILTER (WHERE start_active) AS revenue_start, "
        "sum(r_start) FILTER (WHERE start_active AND NOT end_active) AS revenue_lost, "
        "sum(greatest(r_start - r_end, 0)) FILTER (WHERE start_active AND end_active) AS revenue_cut, "
        "sum(r_end) FILTER (WHERE start_active) AS revenue_kept, "
        "sum(orders_n) FILTER (WHERE start_active) AS orders, "
        "sum(orders_amount) FILTER (WHERE start_active) AS orders_amount, "
        "avg(acquisition_cost) FILTER (WHERE start_active) AS acquisition_cost "
        "FROM kpi_cm GROUP BY ALL"
    ).df()


def _feedback(ds: DataSource, config: Config, segment: str | None, first: pd.Timestamp,
              last: pd.Timestamp) -> pd.DataFrame:
    """Per month and group: NPS answers, promoters, detractors; CSAT answers and 4-5 answers."""
    from churn.features.context import Ctx
    from churn.features.feedback import score_scale

    grp = _group(segment, f'CAST(c."{segment}" AS VARCHAR)' if segment else "")
    answers = []  # (timestamp column, score column, table, scale)
    if "surveys" in ds.tables:
        _, top = score_scale(Ctx(ds=ds, config=config, horizon_days=config.label.horizon_days))
        answers.append(("answered_at", "score", "surveys", "nps" if top > 5 else "csat"))
    if "tickets" in ds.tables and ds.has_column("tickets", "satisfaction"):
        when = "closed_at" if ds.has_column("tickets", "closed_at") else "opened_at"
        answers.append((when, "satisfaction", "tickets", "csat"))
    parts = [f"SELECT CAST(date_trunc('month', t.{ts}) AS TIMESTAMP) AS m, {grp} AS \"group\", '{scale}' AS scale, "
             f"CAST(t.{score} AS DOUBLE) AS score FROM {table} t JOIN customers c USING (customer_id) "
             f"WHERE t.{score} IS NOT NULL AND t.{ts} >= TIMESTAMP '{first:%Y-%m-%d}' AND t.{ts} < TIMESTAMP '{last:%Y-%m-%d}'"
             for ts, score, table, scale in answers]
    if not parts:
        return pd.DataFrame(columns=["m", "group", "nps_answers", "promoters", "detractors", "csat_answers",
                                     "satisfied"])
    return ds.con.execute(
        f"SELECT m, \"group\", count(*) FILTER (WHERE scale = 'nps') AS nps_answers, "
        "count(*) FILTER (WHERE scale = 'nps' AND score >= 9) AS promoters, "
        "count(*) FILTER (WHERE scale = 'nps' AND score <= 6) AS detractors, "
        "count(*) FILTER (WHERE scale = 'csat') AS csat_answers, "
        "count(*) FILTER (WHERE scale = 'csat' AND score >= 4) AS satisfied "
        f"FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL"
    ).df()


def _ratio(a: pd.Series, b: pd.Series) -> pd.Series:
    a, b = pd.to_numeric(a, errors="coerce").astype(float), pd.to_numeric(b, errors="coerce").astype(float)
    return (a / b).where(b > 0)


def _derive(t: pd.DataFrame, basis: str, max_lifetime: float) -> pd.DataFrame:
    t = t.copy()
    t["churn_rate"] = _ratio(t["churned"], t["customers_start"])
    t["retention_rate"] = _ratio(t["customers_end"] - t["new_customers"], t["customers_start"])
    t["revenue_basis"] = basis or None
    t["revenue_churn"] = _ratio(t["revenue_lost"] + t["revenue_cut"], t["revenue_start"])
    t["net_revenue_retention"] = _ratio(t["revenue_kept"], t["revenue_start"])
    if basis == "fee":
        t["avg_purchase_value"] = _ratio(t["revenue_start"], t["customers_start"])
        t["purchase_frequency"] = np.where(t["customers_start"] > 0, 1.0, np.nan)
    else:
        t["avg_purchase_value"] = _ratio(t["orders_amount"], t["orders"])
        t["purchase_frequency"] = _ratio(t["orders"], t["customers_start"])
    rate = t["churn_rate"].astype(float)
    t["expected_lifetime_months"] = np.where(rate > 0, np.minimum(1.0 / rate.where(rate > 0), max_lifetime),
                                             np.where(rate == 0, max_lifetime, np.nan))
    t["cltv"] = (t["avg_purchase_value"] * t["purchase_frequency"] * t["expected_lifetime_months"]
                 - t["acquisition_cost"].astype(float).fillna(0.0))
    t["nps"] = 100.0 * _ratio(t["promoters"] - t["detractors"], t["nps_answers"])
    t["csat"] = _ratio(t["satisfied"], t["csat_answers"])
    return t


def kpi_table(ds: DataSource, config: Config, *, end: pd.Timestamp, months: int, by: list[str] | tuple[str, ...] = (),
              savings: pd.DataFrame | None = None) -> pd.DataFrame:
    """The KPI table of the `months` calendar months before `end` (a month start): one row per month for
    everyone (segment "all") and one per month and value of each `by` column; with `savings` (from
    `campaign_savings`) a saved_revenue column."""
    if months < 1:
        raise ChurnError(f"kpis: months must be at least 1, got {months}")
    have = set(ds.columns("customers"))
    unknown = [s for s in by if s not in have]
    if unknown:
        where = ds.tables["customers"].path if "customers" in ds.tables else "the customers derived from activity"
        raise ChurnError(f"kpis: {where} has no column {', '.join(map(repr, unknown))} to break the KPIs down by; "
                         f"columns: {', '.join(sorted(have))}")
    end = month_start(end)
    # The month start before the first month (last month's orders), then every month start up to `end`.
    dates = [pd.Timestamp(end - pd.DateOffset(months=k)) for k in range(months + 1, -1, -1)]
    basis = _customer_months(ds, config, dates, list(by))
    frames = []
    for segment in [None, *by]:
        counts = _counts(ds, segment)
        fb = _feedback(ds, config, segment, dates[1], dates[-1])
        t = counts.merge(fb, on=["m", "group"], how="left")
        t.insert(1, "segment", segment or ALL)
        frames.append(t)
    t = _derive(pd.concat(frames, ignore_index=True), basis, config.monitoring.max_lifetime_months)
    t["month"] = pd.to_datetime(t["m"]).dt.strftime("%Y-%m")
    cols = list(COLUMNS)
    if savings is not None:
        t = t.merge(savings, on=["month", "segment", "group"], how="left")
        cols.append("saved_revenue")
    return t.sort_values(["segment", "group", "month"], key=lambda s: s.map(lambda v: (v != ALL, str(v))),
                         kind="mergesort")[cols].reset_index(drop=True)


def report_kpis(ds: DataSource, config: Config, when: pd.Timestamp) -> dict[str, Any]:
    """Everyone's KPIs for the `monitoring.kpi_months` months before `when`'s month, for the report:
    {"rows": one plain dict per month (missing values None), "notices": [...]}. Months the data does not
    reach are left out; a KPI the data cannot give (an unreadable column) is a notice, never a failed run."""
    from churn.labels import data_range

    try:
        start, _ = data_range(ds)
        table = kpi_table(ds, config, end=month_start(when), months=config.monitoring.kpi_months)
    except ChurnError as exc:
        return {"rows": [], "notices": [f"business KPIs left out of the report: {exc}"]}
    table = table[(table["segment"] == ALL) & (pd.to_datetime(table["month"]) >= month_start(start))]
    rows = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()}
            for r in table[table["customers_start"] > 0].to_dict("records")]
    return {"rows": rows, "notices": []}


def campaign_savings(run_dir: str | Path, ds: DataSource, config: Config, by: list[str] | tuple[str, ...] = ()
                     ) -> tuple[pd.DataFrame, str]:
    """(saved revenue per month, segment and group, how it was computed) of a scoring run's campaign: per
    tier, (control group churn rate - contacted churn rate) x the contacted customers' value, once the
    run's label window has passed."""
    from churn.monitoring.backtest import _label_config, as_output_ids, read_run, realised_labels
    from churn.scoring.plan_columns import as_flag, texts_or_none
    from churn.scoring.run_folder import SCORES_FILE

    meta, drift, scores = read_run(Path(run_dir))
    when = pd.Timestamp(str(meta.get("as_of")))
    labels = realised_labels(ds, _label_config(config, drift.get("label_config")), when)
    outcome = dict(zip(as_output_ids(labels["customer_id"], config), labels["churned"], strict=True))
    plan = scores[pd.to_numeric(scores["churn_probability"], errors="coerce").notna()].copy()
    missing = [c for c in ("contact", "holdout", "risk_tier", "customer_value") if c not in plan.columns]
    if missing:
        raise ChurnError(f"{Path(run_dir) / SCORES_FILE}: no campaign to value (column(s) "
                         f"{', '.join(missing)} missing)")
    plan["churned"] = texts_or_none(plan["customer_id"]).map(outcome)
    plan = plan[plan["churned"].notna()]
    control = as_flag(plan["holdout"])
    treated = as_flag(plan["contact"]) & ~control
    tier = texts_or_none(plan["risk_tier"])
    rates = pd.DataFrame({"tier": tier, "churned": plan["churned"].astype(float), "control": control,
                          "treated": treated})
    by_tier = rates.groupby("tier").apply(
        lambda g: g.loc[g["control"], "churned"].mean() - g.loc[g["treated"], "churned"].mean()
        if g["control"].any() and g["treated"].any() else np.nan, include_groups=False)
    uplift = tier.map(by_tier).astype(float)
    saved = (pd.to_numeric(plan["customer_value"], errors="coerce").fillna(0.0) * uplift).where(treated, 0.0)
    cust = ds.con.execute("SELECT * FROM customers").df() if by else None
    rows = [{"segment": ALL, "group": ALL, "saved_revenue": float(saved.sum(skipna=True))}]
    for s in by:
        ids = as_output_ids(cust["customer_id"].astype(str), config)
        seg = texts_or_none(plan["customer_id"]).map(dict(zip(ids, cust[s].astype(object), strict=True)))
        seg = texts_or_none(seg).fillna("(unknown)")
        rows += [{"segment": s, "group": g, "saved_revenue": float(v)} for g, v in saved.groupby(seg).sum().items()]
    out = pd.DataFrame(rows).assign(month=f"{when:%Y-%m}")
    how = (f"saved revenue: the campaign of the run {when.date()} (control group against contacted customers, per "
           f"tier: {', '.join(f'{k} {v:+.1%}' for k, v in by_tier.items() if np.isfinite(v)) or 'no tier had both'})")
    return out, how


def write_kpis(table: pd.DataFrame, path: str | Path, notes: list[str], overwrite: bool = False) -> Path:
    """Write the KPI table as CSV (.csv) or Excel (.xlsx: a KPI sheet and a notes sheet), atomically."""
    from churn.io import atomic_path, write_csv

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return write_csv(table, path, overwrite)
    if suffix != ".xlsx":
        raise ChurnError(f"{path}: the KPI table is written as .csv or .xlsx")
    with atomic_path(path, overwrite) as tmp, pd.ExcelWriter(tmp, engine="xlsxwriter") as xl:
        table.to_excel(xl, sheet_name="kpis", index=False)
        xl.sheets["kpis"].freeze_panes(1, 3)
        pd.DataFrame({"note": notes or ["formulas and sources: docs/monitoring.md"]}).to_excel(
            xl, sheet_name="notes", index=False)
    return path
