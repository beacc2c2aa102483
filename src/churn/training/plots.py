"""Evaluation plots as PNG files: ROC, PR, reliability before/after calibration, lift/gain, profit, feature
importance and a SHAP-style summary.

Figures are built with matplotlib's object API (`matplotlib.figure.Figure`, rendered by the Agg canvas): no
pyplot state and no global backend switch, so no display is needed. Each function writes one file and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from churn.training.metrics import risk_order

DPI = 100


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    return path


def roc_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    """ROC curves of the model and baselines on the holdout."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, p in curves.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--")
    ax.set(xlabel="false positive rate", ylabel="true positive rate (churners found)", title="ROC (holdout)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def pr_plot(y: np.ndarray, curves: dict[str, np.ndarray], path: Path) -> Path:
    """Precision-recall curves of the model and baselines on the holdout."""
    fig = Figure(figsize=(5.5, 5))
    ax = fig.subplots()
    for name, p in curves.items():
        prec, rec, _ = precision_recall_curve(y, p)
        ax.plot(rec, prec, label=name)
    ax.axhline(float(np.mean(y)), color="grey", lw=0.8, ls="--", label="base rate")
    ax.set(xlabel="recall (share of churners found)", ylabel="precision", title="Precision-recall (holdout)")
    ax.legend(loc="upper right", fontsize=8)
    return _save(fig, path)


def calibration_plot(y: np.ndarray, p_raw: np.ndarray, p_cal: np.ndarray, path: Path, n_bins: int = 10) -> Path:
    """Reliability curves before and after calibration, with the distribution of calibrated risk."""
    fig = Figure(figsize=(5.5, 6))
    ax, hist = fig.subplots(2, 1, gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfect")
    for name, p in (("before calibration", p_raw), ("after calibration", p_cal)):
        obs, pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
        ax.plot(pred, obs, marker="o", label=name)
    ax.set(ylabel="observed churn rate", title="Reliability (holdout)")
    ax.legend(fontsize=8)
    hist.hist(p_cal, bins=50, color="tab:orange", alpha=0.7)
    hist.set(xlabel="predicted P(churn)", ylabel="customers")
    return _save(fig, path)


def lift_gain_plot(y: np.ndarray, p: np.ndarray, path: Path) -> Path:
    """Cumulative gain (share of churners captured) and lift against share of customers contacted."""
    y = np.asarray(y, dtype="float64")
    ys = y[risk_order(p)]
    n = len(ys)
    share = np.arange(1, n + 1) / n
    captured = np.cumsum(ys) / max(ys.sum(), 1)
    lift = (np.cumsum(ys) / np.arange(1, n + 1)) / max(y.mean(), 1e-12)
    fig = Figure(figsize=(10, 4.5))
    a, b = fig.subplots(1, 2)
    a.plot(share, captured, label="model")
    a.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="random")
    a.set(xlabel="share of customers contacted (riskiest first)", ylabel="share of churners captured",
          title="Cumulative gain")
    a.legend(fontsize=8)
    start = max(1, n // 100)
    b.plot(share[start - 1:], lift[start - 1:])
    b.axhline(1.0, color="grey", ls="--", lw=0.8)
    b.set(xlabel="share of customers contacted", ylabel="lift over base rate", title="Lift")
    return _save(fig, path)


def profit_plot(curve: pd.DataFrame, path: Path, note: str = "") -> Path:
    """Expected profit against share contacted, with the best share marked."""
    fig = Figure(figsize=(6, 4.5))
    ax = fig.subplots()
    ax.plot(curve["share"], curve["profit"])
    i = int(np.argmax(curve["profit"].to_numpy()))
    ax.axvline(curve["share"].iloc[i], color="tab:red", ls="--", lw=0.8,
               label=f"best: contact {curve['share'].iloc[i]:.1%}, profit {curve['profit'].iloc[i]:,.0f}")
    ax.axhline(0, color="grey", lw=0.6)
    ax.set(xlabel="share of customers contacted (riskiest first)", ylabel="expected profit",
           title="Expected retention profit (holdout)")
    ax.legend(fontsize=8)
    if note:
        fig.text(0.01, 0.005, note, fontsize=6, color="grey")
    return _save(fig, path)


def importance_plot(importance: pd.Series, path: Path, top: int = 30) -> Path:
    """Horizontal bars of importance per feature (top features), labelled by what `ChurnModel.feature_importance`
    measured (its series name): the trees' total gain, a regression's contribution spread, or an average's
    mean share."""
    imp = importance.sort_values(ascending=False).head(top)[::-1]
    fig = Figure(figsize=(7, max(3, 0.28 * len(imp) + 1)))
    ax = fig.subplots()
    ax.barh(imp.index.astype(str), imp.to_numpy())
    label = {"gain": "total gain", "contribution_sd": "spread of the contribution (log-odds)",
             "share": "mean share of the members' importance"}.get(str(importance.name), str(importance.name))
    ax.set(xlabel=label, title="Feature importance")
    ax.tick_params(axis="y", labelsize=7)
    return _save(fig, path)


def shap_summary_plot(contrib: pd.DataFrame, values: pd.DataFrame, path: Path, top: int = 20,
                      seed: int = 0) -> Path:
    """Beeswarm-like summary: each dot a customer, x its contribution to the log-odds, colour the feature's
    value (percentile within the feature; grey for categorical or missing), top features by mean |value|."""
    feats = [c for c in contrib.columns if c != "bias"]
    order = contrib[feats].abs().mean().sort_values(ascending=False).head(top).index[::-1]
    rng = np.random.default_rng(seed)
    fig = Figure(figsize=(8, max(3, 0.35 * len(order) + 1.2)))
    ax = fig.subplots()
    sc = None
    for j, name in enumerate(order):
        x = contrib[name].to_numpy()
        jitter = rng.uniform(-0.3, 0.3, len(x))
        v = pd.to_numeric(values[name], errors="coerce") if name in values else pd.Series(np.nan, index=contrib.index)
        col = v.rank(pct=True).to_numpy(dtype="float64", na_value=np.nan)
        known = ~np.isnan(col)
        ax.scatter(x[~known], j + jitter[~known], s=3, c="lightgrey", alpha=0.6, linewidths=0)
        if known.any():
            sc = ax.scatter(x[known], j + jitter[known], s=3, c=col[known], cmap="coolwarm", vmin=0, vmax=1,
                            alpha=0.7, linewidths=0)
    ax.set_yticks(range(len(order)), [str(o) for o in order], fontsize=7)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set(xlabel="contribution to churn log-odds (TreeSHAP)", title="What drives risk (holdout sample)")
    if sc is not None:
        cb = fig.colorbar(sc, ax=ax, pad=0.01)
        cb.set_label("feature value (low -> high)")
    return _save(fig, path)
