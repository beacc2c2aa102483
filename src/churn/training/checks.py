"""Checks of a training frame before anything is fitted: keys, label, duplicates, and enough rows of each
class where calibration needs them. Every failure is a `ChurnError` naming the column and example rows."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from churn.errors import ChurnError
from churn.features.registry import Feature


def check_frame(frame: pd.DataFrame, features: list[Feature], *, id_col: str, time_col: str | None,
                label_col: str) -> np.ndarray:
    """Check the training frame's key columns and label; returns the labels as int 0/1."""
    if not isinstance(frame, pd.DataFrame):
        raise ChurnError(f"the training frame must be a pandas DataFrame, got {type(frame).__name__}")
    if not features:
        raise ChurnError("no features to train on")
    names = [f.name for f in features]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ChurnError(f"features declared twice: {dup}")
    missing = [c for c in (id_col, label_col) if c not in frame.columns]
    if missing:
        raise ChurnError(f"the training frame lacks column(s) {missing} (id '{id_col}', label '{label_col}')")
    clash = {id_col, label_col, time_col} & set(names)
    if clash:
        raise ChurnError(f"column(s) {sorted(c for c in clash if c)} are keys or the label, not features")
    if len(frame) < 50:
        raise ChurnError(f"the training frame has only {len(frame)} rows; too few to train and evaluate")
    if frame[id_col].isna().any():
        raise ChurnError(f"column '{id_col}' has {int(frame[id_col].isna().sum())} rows without a customer id")
    y = pd.to_numeric(frame[label_col], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    bad = np.isnan(y) | ~np.isin(y, (0.0, 1.0))
    if bad.any():
        ex = [f"row {i}: {frame[label_col].iloc[i]!r}" for i in np.flatnonzero(bad)[:3]]
        raise ChurnError(f"label column '{label_col}' must be 0/1; {int(bad.sum()):,} row(s) are not, e.g. "
                         + "; ".join(ex))
    if len(np.unique(y)) < 2:
        raise ChurnError(f"label column '{label_col}' holds only {int(y[0])}s; need churners and non-churners")
    if time_col is not None and time_col in frame.columns:
        dup = frame.duplicated([id_col, time_col]).to_numpy()
        if dup.any():
            ex = [f"{frame[id_col].iloc[i]!r} at {frame[time_col].iloc[i]}" for i in np.flatnonzero(dup)[:3]]
            raise ChurnError(f"{int(dup.sum()):,} duplicated ({id_col}, {time_col}) row(s), e.g. " + "; ".join(ex))
    return y.astype(int)


def check_calibration_rows(y_cal: np.ndarray, method: str, warn: Callable[[str], None]) -> None:
    """Refuse a one-class calibration split; warn when it is small."""
    pos = int(y_cal.sum())
    if pos == 0 or pos == len(y_cal):
        raise ChurnError(f"the calibration split ({len(y_cal):,} rows, {pos} churners) holds only one class; need "
                         "more data, a larger model.valid_customer_share (the customers validation reads) or a "
                         "larger model.calibration_share (their share that calibrates)")
    if pos < 30:
        warn(f"calibration fitted on only {pos} churners; probabilities may be noisy")
    if method == "isotonic" and len(y_cal) < 1000:
        warn(f"only {len(y_cal):,} calibration rows: the evaluation fits are calibrated with a sigmoid (isotonic "
             "steps would overfit); the registered model is calibrated on its forward reading (or out of fold)")
