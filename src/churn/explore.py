"""Looking at a source before modelling: activity over time, churn rates by group, each signal family
against churn. Read-only; every function returns a DataFrame (and `plot_signals` a figure)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from churn.contract import ACTIVITY, CONTRACT
from churn.features.registry import Feature
from churn.sources import DataSource

LABEL = "churned"


def activity_by_month(ds: DataSource) -> pd.DataFrame:
    """Rows per calendar month of each activity table, and the customers active in each month (any table).

    Example:
        >>> with open_source("data/demo") as ds:  # doctest: +SKIP
        ...     activity_by_month(ds).tail(3)  # doctest: +SKIP
    """
    parts = [(t, CONTRACT[t].time_column) for t in ACTIVITY if t in ds.tables]
    union = " UNION ALL ".join(
        f"SELECT '{t}' AS tbl, customer_id, date_trunc('month', {col}) AS month FROM {t} "
        f"WHERE {col} IS NOT NULL"
        for t, col in parts)
    counts = ds.con.execute(f"SELECT month, tbl, count(*) AS n FROM ({union}) GROUP BY 1, 2").df()
    table = counts.pivot(index="month", columns="tbl", values="n").fillna(0).astype("int64")
    active = ds.con.execute(
        f"SELECT month, count(DISTINCT customer_id) AS active_customers FROM ({union}) GROUP BY 1").df()
    table = table.join(active.set_index("month")).sort_index()
    table.index = pd.DatetimeIndex(table.index).tz_localize(None)
    table.columns.name = None
    return table


def churn_rate_by(frame: pd.DataFrame, by: str) -> pd.DataFrame:
    """Snapshot rows, churners and churn rate per value of `by`: a column of the training frame (e.g.
    "plan", "region") or "month" (the snapshot's as_of month).

    Example:
        >>> churn_rate_by(training.frame, "plan")  # doctest: +SKIP
    """
    if by == "month":
        key = frame["as_of"].dt.to_period("M").dt.to_timestamp()
    else:
        key = frame[by].fillna("(missing)")
    out = frame.groupby(key.rename(by), sort=True, observed=True)[LABEL].agg(rows="size", churners="sum",
                                                                            churn_rate="mean")
    out["churners"] = out["churners"].astype("int64")
    return out


def univariate_auc(x: pd.Series, y: pd.Series) -> float:
    """How well one feature alone orders churners (ROC AUC folded to >= 0.5; 0.5 = no signal). Missing
    values count as their own lowest value, as a tree can split them off.

    Example:
        >>> univariate_auc(pd.Series([1.0, 2.0, 3.0, 4.0]), pd.Series([1, 1, 0, 0]))
        1.0
    """
    from sklearn.metrics import roc_auc_score

    if y.nunique() < 2:
        return float("nan")
    if x.dtype == object or isinstance(x.dtype, pd.CategoricalDtype):
        # A category's own churn rate is the best a single categorical can do.
        values = y.groupby(x.fillna("(missing)")).transform("mean")
    else:
        values = pd.to_numeric(x, errors="coerce").fillna(-np.inf).replace(-np.inf, np.nan)
        values = values.fillna(values.min() - 1 if values.notna().any() else 0.0)
    auc = roc_auc_score(y, values)
    return float(max(auc, 1 - auc))


def signal_strength(frame: pd.DataFrame, features: Sequence[Feature]) -> pd.DataFrame:
    """Every feature's univariate AUC against churn, with its family, strongest first.

    Example:
        >>> signal_strength(tf.frame, tf.features).head()  # doctest: +SKIP
    """
    y = frame[LABEL].astype(int)
    rows = [{"feature": f.name, "family": f.family, "auc": univariate_auc(frame[f.name], y),
             "description": f.description} for f in features if f.name in frame.columns]
    return pd.DataFrame(rows).sort_values("auc", ascending=False, ignore_index=True)


def signal_vs_churn(frame: pd.DataFrame, features: Sequence[Feature], *, per_family: int = 2,
                    bins: int = 5) -> pd.DataFrame:
    """Churn rate by level of the strongest `per_family` features of each family (quantile bins for
    numbers, categories for text): one row per (family, feature, level).

    Example:
        >>> signal_vs_churn(training.frame, training.features).head()  # doctest: +SKIP
    """
    strength = signal_strength(frame, features)
    top = strength.groupby("family", sort=True).head(per_family)
    out = []
    for row in top.itertuples():
        x = frame[row.feature]
        if x.dtype == object:
            level = x.fillna("(missing)").astype(str)
            order = sorted(level.unique())
        else:
            # Quantile bins (fewer when values repeat), lowest first; missing values form their own level.
            binned = pd.qcut(pd.to_numeric(x, errors="coerce"), bins, duplicates="drop")
            level = binned.astype(str).where(binned.notna(), "(missing)")
            order = [str(c) for c in binned.cat.categories] + ["(missing)"]
        rates = frame.groupby(level)[LABEL].agg(rows="size", churn_rate="mean")
        rates = rates.reindex([o for o in order if o in rates.index]).reset_index(names="level")
        rates.insert(0, "feature", row.feature)
        rates.insert(0, "family", row.family)
        rates["auc"] = row.auc
        out.append(rates)
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame(
        columns=["family", "feature", "level", "rows", "churn_rate", "auc"])


def plot_signals(table: pd.DataFrame, base_rate: float | None = None) -> Any:
    """One bar chart per feature of `signal_vs_churn`'s table (churn rate by level), a row per family;
    returns the matplotlib figure.

    Example:
        >>> table = signal_vs_churn(tf.frame, tf.features)  # doctest: +SKIP
        >>> plot_signals(table, base_rate=tf.frame["churned"].mean())  # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    feats = table[["family", "feature"]].drop_duplicates()
    families = list(dict.fromkeys(feats["family"]))
    per_row = int(feats.groupby("family").size().max()) if len(feats) else 1
    fig, axes = plt.subplots(len(families) or 1, per_row, figsize=(5 * per_row, 2.8 * max(len(families), 1)),
                             squeeze=False)
    for ax in axes.flat:
        ax.set_visible(False)
    for i, fam in enumerate(families):
        for j, feat in enumerate(feats.loc[feats["family"] == fam, "feature"]):
            ax = axes[i][j]
            ax.set_visible(True)
            part = table[table["feature"] == feat]
            ax.bar(part["level"].astype(str), part["churn_rate"], color="#4C72B0")
            if base_rate is not None:
                ax.axhline(base_rate, color="grey", linestyle="--", linewidth=1)
            ax.set_title(f"{fam}: {feat} (AUC {part['auc'].iloc[0]:.2f})", fontsize=9)
            ax.tick_params(axis="x", labelrotation=30, labelsize=7)
            ax.set_ylabel("churn rate")
    fig.tight_layout()
    return fig

