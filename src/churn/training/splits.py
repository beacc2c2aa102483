"""How training rows are split, by customer and by time.

- **out of time** (a time column with at least holdout + validation + 1 snapshots): the newest
  `holdout_snapshots` are the holdout, the next `valid_snapshots` the validation, the rest train. The holdout
  holds the newest-snapshot rows of a seeded share of customers (`holdout_customer_share`, stable across
  runs with the same seed), and every row of those customers is left out of fitting, so the holdout is new
  in time *and* in customers. Validation is new in customers too: the validation snapshots' rows of a
  seeded share of the other customers (`valid_customer_share`), none of whose rows train the evaluation
  fits. With monthly snapshots and a longer label horizon, a customer's last training label covers part
  of the window their validation row is labelled on, so trees that had seen that customer were
  flattered: on a young business's data, validation preferred trees that lost on the holdout
  (benchmarks/RESULTS.md). Validation customers are split in two: early stopping and calibration
  (`calibration_share`); model selection reads both halves. The refit uses every row.
- **grouped random** (no time column, or too few snapshots): customers split 60/20/20 into train,
  validation and holdout; said in the warnings when a time column was given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

VALIDATION_SHARE = 0.2


@dataclass
class Split:
    """Row positions of each part and what they are."""

    scheme: str  # out_of_time | grouped_random
    train: np.ndarray
    early_stopping: np.ndarray
    calibration: np.ndarray
    holdout: np.ndarray
    snapshots: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- splits
def unit_hash(ids: np.ndarray, seed: int, salt: str) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per customer id (same id, seed and salt: same number)."""
    key = f"{salt}{seed}".encode().ljust(16, b"#")[:16].decode("latin-1")
    h = pd.util.hash_pandas_object(pd.Series(ids, dtype=object).astype(str), index=False, hash_key=key)
    return (h.to_numpy() >> np.uint64(11)).astype("float64") / float(1 << 53)


def _positions(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask)


def _dates(values: pd.Series) -> list[str]:
    return [str(pd.Timestamp(v).date()) for v in sorted(pd.unique(values))]


def split_out_of_time(ids: np.ndarray, times: pd.Series, *, holdout_snapshots: int, valid_snapshots: int,
                      calibration_share: float, holdout_customer_share: float, seed: int,
                      valid_customer_share: float) -> Split:
    """Out-of-time split (see the module docstring); holdout customers never appear in fitting rows, and
    validation customers never in training rows."""
    t = pd.Series(pd.to_datetime(times).to_numpy())
    dates = np.sort(t.unique())
    ho_dates, va_dates = dates[-holdout_snapshots:], dates[-(holdout_snapshots + valid_snapshots):-holdout_snapshots]
    tr_dates = dates[: -(holdout_snapshots + valid_snapshots)]
    in_ho, in_va, in_tr = (t.isin(d).to_numpy() for d in (ho_dates, va_dates, tr_dates))
    picked = unit_hash(ids, seed, "holdout") < holdout_customer_share
    holdout = in_ho & picked
    id_series = pd.Series(ids, dtype=object)
    held_customers = id_series.isin(set(id_series[holdout])).to_numpy()  # hash lookup (np.isin on objects is slow)
    fit_ok = ~held_customers
    cal_pick = unit_hash(ids, seed, "calibration") < calibration_share
    validates = unit_hash(ids, seed, "validation") < valid_customer_share
    split = Split(
        scheme="out_of_time",
        train=_positions(in_tr & fit_ok & ~validates),
        early_stopping=_positions(in_va & fit_ok & validates & ~cal_pick),
        calibration=_positions(in_va & fit_ok & validates & cal_pick),
        holdout=_positions(holdout),
        snapshots={"train": _dates(tr_dates), "validation": _dates(va_dates), "holdout": _dates(ho_dates)},
    )
    split.notes.append(
        f"out-of-time holdout: snapshot(s) {', '.join(split.snapshots['holdout'])}, customers hashed into a "
        f"{holdout_customer_share:.0%} holdout share ({len(split.holdout):,} rows); their rows are excluded "
        "from training, early stopping and calibration"
    )
    n_valid = len(split.early_stopping) + len(split.calibration)
    split.notes.append(
        f"validation: snapshot(s) {', '.join(split.snapshots['validation'])}, customers hashed into a "
        f"{valid_customer_share:.0%} validation share ({n_valid:,} rows); their rows are excluded from the "
        "evaluation fits' training")
    return split


def split_grouped(ids: np.ndarray, *, calibration_share: float, seed: int, holdout_share: float = 0.2,
                  valid_share: float = VALIDATION_SHARE) -> Split:
    """Random split by customer: train / validation (early stopping + calibration) / holdout."""
    u = unit_hash(ids, seed, "holdout")
    cal_pick = unit_hash(ids, seed, "calibration") < calibration_share
    holdout = u < holdout_share
    valid = (u >= holdout_share) & (u < holdout_share + valid_share)
    return Split(
        scheme="grouped_random",
        train=_positions(~holdout & ~valid),
        early_stopping=_positions(valid & ~cal_pick),
        calibration=_positions(valid & cal_pick),
        holdout=_positions(holdout),
    )


def assert_holdout_customers_unseen(ids: np.ndarray, split: Split) -> None:
    """Fail loudly if any holdout customer has rows among the rows used for fitting."""
    fitting = np.concatenate([split.train, split.early_stopping, split.calibration])
    overlap = set(ids[split.holdout]) & set(ids[fitting])
    if overlap:
        raise AssertionError(f"{len(overlap)} holdout customer(s) appear in fitting rows, e.g. {sorted(overlap)[:3]}")
