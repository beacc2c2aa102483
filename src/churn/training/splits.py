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
  (`calibration_share`). The refit uses every row.
- **the forward reading** (out of time only): what selection reads is the registered procedure (the
  candidate's settings refit by its rules) fitted on rows earlier than a validation date `V` and scored at
  `V`, as production scores a date with a model fitted on the rows whose labels had closed by then: fitted
  on the rows with `as_of + horizon <= V` and scored on every non-holdout customer at `V`. Where the
  snapshots are closer than the label horizon (too few such rows), the fit takes every row before `V` but
  the scored customers' own rows whose label window reaches `V` (a customer who churns early in `V`'s
  window is never a churner of the fit too); the scored customers are then the validation customers, or,
  with `k` folds, each fold of customers in turn. Small data reads at every validation date (with `k` > 1),
  large data at the newest. `forward_fits[i]` / `forward_valids[i]` hold each fit's rows and the rows it
  scores; `before_holdout` the rows the procedure is fitted on to be judged on the holdout, drawn the same
  way at the holdout date: the non-holdout customers' rows whose labels had closed by then (where two dates'
  had), else all their rows before it.
- **grouped random** (no time column, or too few snapshots): customers split 60/20/20 into train,
  validation and holdout; said in the warnings when a time column was given. Nothing is later than
  anything else, so there is no forward reading (`forward` False).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError

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
    forward: bool = False  # whether the forward fits are earlier than the rows they score (module docstring)
    forward_fits: list[np.ndarray] = field(default_factory=list)  # per fold: the rows the procedure is fitted on
    forward_valids: list[np.ndarray] = field(default_factory=list)  # per fold: the rows it scores
    before_holdout: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def forward_valid(self) -> np.ndarray:
        """Every row the forward reading scores, fold after fold (the order readings' scores come in)."""
        return np.concatenate(self.forward_valids) if self.forward_valids else np.empty(0, dtype=np.int64)

    @property
    def validation(self) -> np.ndarray:
        """Every validation row (early stopping and calibration), in order."""
        return np.sort(np.concatenate([self.early_stopping, self.calibration]))


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
                      valid_customer_share: float, horizon_days: int | None = None, forward_folds: int = 1) -> Split:
    """Out-of-time split (see the module docstring); holdout customers never appear in fitting rows, and
    validation customers never in training rows. Without `horizon_days` every row of a scored customer is
    left out of the forward reading's fit (as if the label never ended)."""
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
    split.forward = True
    for v in (va_dates if forward_folds > 1 else va_dates[-1:]):
        fits, valids, how = forward_rows(t, ids, id_series, v, fit_ok, validates, horizon_days, forward_folds, seed)
        split.forward_fits += fits
        split.forward_valids += valids
        split.notes.append(f"forward reading at {pd.Timestamp(v).date()}: {how}")
    # The holdout figure's fit, drawn as the forward reading's: as production would have had it on the
    # holdout date (the rows whose labels had closed), where that leaves enough dates.
    h = ho_dates[0]
    before_h = (t < h).to_numpy() & fit_ok
    if horizon_days:
        closed = before_h & (t + pd.Timedelta(days=horizon_days) <= h).to_numpy()
        if t[closed].nunique() >= MIN_GAP_DATES:
            before_h = closed
    split.before_holdout = _positions(before_h)
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


MIN_GAP_DATES = 2  # a forward fit on the rows whose labels were complete needs at least this many dates


def forward_rows(t: pd.Series, ids: np.ndarray, id_series: pd.Series, v: Any, fit_ok: np.ndarray,
                 validates: np.ndarray, horizon_days: int | None, folds: int,
                 seed: int) -> tuple[list[np.ndarray], list[np.ndarray], str]:
    """The forward reading's fits and scored rows at date `v` (module docstring), and how they were drawn.

    As in production: fitted on the rows whose label window had closed by `v` (`as_of + horizon <= v`) and
    scored on every customer at `v`, when those rows span MIN_GAP_DATES dates. Otherwise (dates closer than
    the horizon): fitted on every row before `v` except the scored customers' overlapping ones, the scored
    customers being the validation customers or, with `folds` > 1, each fold of customers in turn."""
    at = (t == v).to_numpy() & fit_ok
    before = (t < v).to_numpy() & fit_ok
    if horizon_days:
        closed = before & (t + pd.Timedelta(days=horizon_days) <= v).to_numpy()
        if t[closed].nunique() >= MIN_GAP_DATES:
            return ([_positions(closed)], [_positions(at)],
                    f"fitted on the {int(closed.sum()):,} rows whose labels had closed by then, scored on every "
                    f"non-holdout customer ({int(at.sum()):,} rows)")
    reaches = (t + pd.Timedelta(days=horizon_days) > v).to_numpy() if horizon_days else np.ones(len(t), dtype=bool)
    if folds > 1:
        fold = np.minimum((unit_hash(ids, seed, "forward") * folds).astype(int), folds - 1)
        scored = [fold == f for f in range(folds)]
    else:
        scored = [validates]
    valids = [_positions(at & s) for s in scored]
    # Only the customers a fold scores lose their overlapping rows (a hash lookup: np.isin on objects is slow).
    scored_ids = [id_series.isin(set(ids[rows])).to_numpy() for rows in valids]
    fits = [_positions(before & ~(s & reaches)) for s in scored_ids]
    fits, valids = [f for f, v in zip(fits, valids, strict=True) if len(v)], [v for v in valids if len(v)]
    who = f"{folds} folds of customers, each" if folds > 1 else "the validation customers"
    return fits, valids, (f"too few dates with closed labels: {who} scored by a fit on every earlier row but their "
                          "own whose label window reaches it")


def split_grouped(ids: np.ndarray, *, calibration_share: float, seed: int, holdout_share: float = 0.2,
                  valid_share: float = VALIDATION_SHARE) -> Split:
    """Random split by customer: train / validation (early stopping + calibration) / holdout."""
    u = unit_hash(ids, seed, "holdout")
    cal_pick = unit_hash(ids, seed, "calibration") < calibration_share
    holdout = u < holdout_share
    valid = (u >= holdout_share) & (u < holdout_share + valid_share)
    split = Split(
        scheme="grouped_random",
        train=_positions(~holdout & ~valid),
        early_stopping=_positions(valid & ~cal_pick),
        calibration=_positions(valid & cal_pick),
        holdout=_positions(holdout),
    )
    split.forward_fits, split.forward_valids = [split.train], [split.validation]
    split.before_holdout = _positions(~holdout)
    return split


def assert_holdout_customers_unseen(ids: np.ndarray, split: Split) -> None:
    """Fail loudly if any holdout customer has rows among the rows used for fitting."""
    fitting = np.concatenate([split.train, split.early_stopping, split.calibration])
    overlap = set(ids[split.holdout]) & set(ids[fitting])
    if overlap:
        raise AssertionError(f"{len(overlap)} holdout customer(s) appear in fitting rows, e.g. {sorted(overlap)[:3]}")


def make_split(ids: np.ndarray, frame: pd.DataFrame, time_col: str | None, config: Config,
               holdout_customer_share: float, warn: Callable[[str], None], horizon_days: int | None = None,
               forward_folds: int = 1) -> Split:
    """Out of time when the frame has enough snapshots, else grouped random (said in the warnings); the
    label's `horizon_days` decides which validation customers' rows the forward reading leaves out."""
    mc = config.model
    has_time = time_col is not None and time_col in frame.columns
    if time_col is not None and not has_time:
        warn(f"no time column '{time_col}' in the frame: evaluating on a random split by customer instead of "
             "out of time")
    times = pd.to_datetime(frame[time_col]).reset_index(drop=True) if has_time else None
    n_snap = int(times.nunique()) if has_time else 0
    need = mc.holdout_snapshots + 2
    # Fewer validation snapshots than configured rather than no out-of-time evaluation at all.
    valid = min(mc.valid_snapshots, n_snap - mc.holdout_snapshots - 1)
    if has_time and n_snap >= need:
        split = split_out_of_time(ids, times, holdout_snapshots=mc.holdout_snapshots,
                                  valid_snapshots=valid, calibration_share=mc.calibration_share,
                                  holdout_customer_share=holdout_customer_share, seed=mc.seed,
                                  valid_customer_share=mc.valid_customer_share, horizon_days=horizon_days,
                                  forward_folds=forward_folds)
    else:
        split = split_grouped(ids, calibration_share=mc.calibration_share, seed=mc.seed)
        if has_time:
            split.snapshots = {"all": [str(pd.Timestamp(v).date()) for v in sorted(pd.unique(times))]}
            warn(f"only {n_snap} snapshot(s) in '{time_col}' (out-of-time evaluation needs {need}): fell back to a "
                 "random split by customer (60% train, 20% validation, 20% holdout); holdout metrics are not out "
                 "of time")
    assert_holdout_customers_unseen(ids, split)
    for part in ("train", "early_stopping", "calibration", "holdout"):
        if len(getattr(split, part)) == 0:
            raise ChurnError(f"the {part.replace('_', ' ')} split is empty; need more customers or snapshots"
                             + (f" (validation reads {mc.valid_customer_share:.0%} of the customers: "
                                "model.valid_customer_share)" if part in ("early_stopping", "calibration")
                                and split.scheme == "out_of_time" else ""))
    return split
