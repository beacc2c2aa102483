"""A `churn score` run folder (outputs/<as-of>/) read back: its summary.json and its scores.parquet, each
with an error that names the file. `churn.scoring.score` writes the folder; the campaign measurement, the
backtest, the KPIs and the next run's alerts (the previous scores) read it here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from churn.errors import ChurnError

SCORES_FILE = "scores.parquet"
SUMMARY_FILE = "summary.json"


def has_scores(run_dir: str | Path) -> bool:
    """Whether a run folder holds its scores: a file, or the folder of Parquet parts a Spark run writes."""
    path = Path(run_dir) / SCORES_FILE
    return path.is_file() or path.is_dir()


def _not_found(path: Path) -> ChurnError:
    return ChurnError(f"{path}: not found; a run folder is one written by `churn score` (outputs/<as-of>/)")


def check_run_folder(run_dir: str | Path) -> dict[str, Any]:
    """summary.json of a run folder (`read_summary`), after checking that its scores are there too: what can
    be checked before a long step (the data's validation) without reading the scores."""
    summary = read_summary(run_dir)
    if not has_scores(run_dir):
        raise _not_found(Path(run_dir) / SCORES_FILE)
    return summary


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """summary.json of a run folder (without its scores, which may be millions of rows); ChurnError naming the
    file when it is missing, unreadable or has no as-of date (``meta.as_of``)."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.is_file():
        raise _not_found(path)
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # ValueError: JSONDecodeError, or a number too long
        raise ChurnError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("meta"), dict) or not summary["meta"].get("as_of"):
        raise ChurnError(f"{path}: key meta.as_of is missing: not a summary written by `churn score`")
    return summary


def read_scores(run_dir: str | Path) -> pd.DataFrame:
    """scores.parquet of a run folder (a file, or a Spark run's folder of parts); ChurnError naming it when it
    is missing or unreadable."""
    path = Path(run_dir) / SCORES_FILE
    if not has_scores(run_dir):
        raise _not_found(path)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
        raise ChurnError(f"{path}: not readable as Parquet ({exc})") from None


def read_scoring_run(run_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(scores, summary) of a run folder, the summary checked first (it is small)."""
    summary = read_summary(run_dir)
    return read_scores(run_dir), summary
