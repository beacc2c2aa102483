"""Earlier runs under one output root, for the trends the report shows: each run folder's drift.json (what
scoring measured) and backtest.json (what `churn backtest` found once the labels arrived)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

DRIFT_FILE = "drift.json"
BACKTEST_FILE = "backtest.json"


def read_record(path: Path) -> dict[str, Any] | None:
    """A run's JSON record, or None when absent or unreadable (an old or half-copied run is skipped)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def run_folders(out_root: Path, before: pd.Timestamp | None = None) -> list[tuple[pd.Timestamp, Path]]:
    """(as_of, folder) of the run folders `<out_root>/<YYYY-MM-DD>/`, oldest first, only those before `before`."""
    found = []
    for d in out_root.iterdir() if out_root.is_dir() else []:
        try:
            when = pd.Timestamp(d.name)
        except ValueError:
            continue
        if d.is_dir() and (before is None or when < before):
            found.append((when, d))
    return sorted(found)


def trend(out_root: Path, before: pd.Timestamp | None, limit: int) -> list[dict[str, Any]]:
    """One row per earlier run (the newest `limit`, oldest first): its mean predicted churn, drift breaches,
    estimated ROC AUC and, once backtested, the realised ROC AUC and whether retraining was recommended."""
    rows = []
    for when, folder in run_folders(out_root, before)[-limit:] if limit > 0 else []:
        drift = read_record(folder / DRIFT_FILE) or {}
        back = read_record(folder / BACKTEST_FILE) or {}
        realised = back.get("realised") or {}
        estimate = drift.get("estimate") or {}
        moved = drift.get("drift") or {}
        if not drift and not back:
            continue
        rows.append({
            "as_of": str(when.date()),
            "mean_predicted": moved.get("mean_now"),
            "breaches": len(drift.get("breaches") or []) if drift else None,
            "expected_roc_auc": estimate.get("expected_roc_auc"),
            "realised_roc_auc": realised.get("roc_auc"),
            "observed_churn_rate": realised.get("observed_churn_rate"),
            "retrain": realised.get("retrain"),
        })
    return rows
