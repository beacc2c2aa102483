"""Training orchestration: split, (tune), fit, calibrate, compare with baselines, evaluate, log to MLflow,
register, export a bundle and (optionally) promote.

The whole flow is `train()`; each step is a function here or in a sibling module, so tests can call them
one by one. How rows are split:

- **out of time** (a time column with at least holdout + validation + 1 snapshots): the newest
  `holdout_snapshots` are the holdout, the next `valid_snapshots` the validation, the rest train. The holdout
  holds the newest-snapshot rows of a seeded share of customers (`holdout_customer_share`, stable across
  runs with the same seed), and every row of those customers is left out of fitting, so the holdout is new
  in time *and* in customers. Validation customers are split in two: early stopping and calibration
  (`calibration_share`).
- **grouped random** (a time column with too few snapshots): customers split 60/20/20 into train,
  validation and holdout; said in the warnings.
- **cross-validation** (no time column): StratifiedGroupKFold by customer; out-of-fold predictions are the
  reported "holdout"; the final model fits all customers but a calibration share, with the median
  early-stopping round of the folds.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.training import plots
from churn.training.baselines import HeuristicBaseline, logistic_baseline, pick_heuristic_feature
from churn.training.metrics import (
    customer_value,
    holdout_metrics,
    incentive_economics,
    probability_metrics,
    profit_curve,
    profit_summary,
    ranking_metrics,
    reliability_table,
)
from churn.training.model import ChurnModel, FrameEncoder, coerce_frame
from churn.training.table import prepare_table  # noqa: F401 - re-exported for `from churn.training.train import ...`

log = logging.getLogger(__name__)

HOLDOUT_CUSTOMER_SHARE = 0.3
VALIDATION_SHARE = 0.2  # grouped/CV schemes: share of customers for early stopping + calibration
BASELINE_MAX_ROWS = 200_000


@dataclass
class TrainResult:
    """What a training run produced."""

    run_id: str
    model_uri: str  # models:/<name>/<version>
    registered_name: str
    version: str
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, Any]]
    bundle_path: str | None
    warnings: list[str]
    promoted: bool
    promotion: dict[str, Any] | None = None
    evaluation: str = ""
    model: ChurnModel | None = field(default=None, repr=False)
    holdout: pd.DataFrame | None = field(default=None, repr=False)  # holdout rows, label, model risk


@dataclass
class Split:
    """Row positions of each part and what they are."""

    scheme: str  # out_of_time | grouped_random | cross_validation
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
                      calibration_share: float, holdout_customer_share: float, seed: int) -> Split:
    """Out-of-time split (see the module docstring); holdout customers never appear in fitting rows."""
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
    split = Split(
        scheme="out_of_time",
        train=_positions(in_tr & fit_ok),
        early_stopping=_positions(in_va & fit_ok & ~cal_pick),
        calibration=_positions(in_va & fit_ok & cal_pick),
        holdout=_positions(holdout),
        snapshots={"train": _dates(tr_dates), "validation": _dates(va_dates), "holdout": _dates(ho_dates)},
    )
    split.notes.append(
        f"out-of-time holdout: snapshot(s) {', '.join(split.snapshots['holdout'])}, customers hashed into a "
        f"{holdout_customer_share:.0%} holdout share ({len(split.holdout):,} rows); their rows are excluded "
        "from training, early stopping and calibration"
    )
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
    if split.scheme == "cross_validation":
        return
    fitting = np.concatenate([split.train, split.early_stopping, split.calibration])
    overlap = set(ids[split.holdout]) & set(ids[fitting])
    if overlap:
        raise AssertionError(f"{len(overlap)} holdout customer(s) appear in fitting rows, e.g. {sorted(overlap)[:3]}")


# ----------------------------------------------------------------------------------------- validation
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


# -------------------------------------------------------------------------------------------- helpers
def _sample(idx: np.ndarray, n: int, seed: int) -> np.ndarray:
    if len(idx) <= n:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, n, replace=False))


def _fit_baselines(clean: pd.DataFrame, y: np.ndarray, fit_idx: np.ndarray, pred_idx: np.ndarray,
                   features: list[Feature], heuristic_col: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = _sample(fit_idx, BASELINE_MAX_ROWS, seed)
    Xf, yf = clean.iloc[idx], y[idx]
    Xp = clean.iloc[pred_idx]
    lr = logistic_baseline(features, seed=seed).fit(Xf, yf)
    heur = HeuristicBaseline(heuristic_col).fit(Xf, yf)
    return lr.predict_proba(Xp)[:, 1], heur.predict_proba(Xp)[:, 1]


def _baseline_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from churn.training.metrics import top_share_metrics

    return {**ranking_metrics(y, p), **probability_metrics(y, p), **top_share_metrics(y, p)}


def _model(config: Config, features: list[Feature], params: dict[str, Any], scale_pos_weight: float | None,
           num_boost_round: int | None = None) -> ChurnModel:
    mc = config.model
    return ChurnModel(features, params, num_boost_round=num_boost_round or mc.num_boost_round,
                      early_stopping_rounds=mc.early_stopping_rounds, calibration=mc.calibration,
                      scale_pos_weight=scale_pos_weight, seed=mc.seed, n_jobs=mc.n_jobs)


def _fit(model: ChurnModel, clean: pd.DataFrame, y: np.ndarray, fit_idx: np.ndarray, es_idx: np.ndarray | None,
         cal_idx: np.ndarray) -> ChurnModel:
    es = (clean.iloc[es_idx], y[es_idx]) if es_idx is not None and len(es_idx) else None
    return model.fit(clean.iloc[fit_idx], y[fit_idx], eval_set=es, calibration_set=(clean.iloc[cal_idx], y[cal_idx]))


# ----------------------------------------------------------------------------------------------- train
def train(frame: pd.DataFrame, features: list[Feature], config: Config, *, id_col: str = "customer_id",
          time_col: str | None = "as_of", label_col: str = "churned", data_fingerprint: dict | None = None,
          config_path: str | None = None, tune_trials: int = 0, tune_minutes: float | None = None,
          promote: bool = False, extra_metadata: dict | None = None,
          progress: Callable[[str], None] | None = None,
          holdout_customer_share: float = HOLDOUT_CUSTOMER_SHARE) -> TrainResult:
    """Train, evaluate, log, register (alias `challenger`), export a bundle and optionally promote.

    `frame` holds `id_col`, `label_col` (0/1), optionally `time_col`, and one column per feature.
    `extra_metadata` (e.g. the feature and label configuration) is stored in the model for the scorer.
    """
    import mlflow

    from churn.training import registry
    from churn.training.bundle import export_bundle
    from churn.training.pyfunc import log_pyfunc
    from churn.training.tracking import (
        data_fingerprint as fingerprint_of,
    )
    from churn.training.tracking import (
        ensure_experiment,
        git_info,
        jsonable,
        log_metrics,
        log_params,
        mlflow_session,
    )

    mc = config.model

    def say(msg: str) -> None:
        log.info(msg)
        if progress is not None:
            progress(msg)

    warns: list[str] = []

    def warn(msg: str) -> None:
        warns.append(msg)
        log.warning(msg)

    # 1. check and coerce ----------------------------------------------------------------------------
    y = check_frame(frame, features, id_col=id_col, time_col=time_col, label_col=label_col)
    say(f"checking {len(frame):,} rows x {len(features)} features")
    clean, extra_cols = coerce_frame(frame, features)
    clean = clean.reset_index(drop=True)
    ids = frame[id_col].astype(str).to_numpy(dtype=object)
    ignored = [c for c in extra_cols if c not in {id_col, time_col, label_col}]
    if ignored:
        warn(f"{len(ignored)} column(s) in the frame are not declared features and were ignored: "
             f"{', '.join(ignored[:10])}{' ...' if len(ignored) > 10 else ''}")

    # 2. split ---------------------------------------------------------------------------------------
    has_time = time_col is not None and time_col in frame.columns
    if time_col is not None and not has_time:
        warn(f"no time column '{time_col}' in the frame: evaluating by cross-validation instead of out of time")
    n_snap = int(pd.to_datetime(frame[time_col]).nunique()) if has_time else 0
    need = mc.holdout_snapshots + mc.valid_snapshots + 1
    times = pd.to_datetime(frame[time_col]).reset_index(drop=True) if has_time else None
    if has_time and n_snap >= need:
        split = split_out_of_time(ids, times, holdout_snapshots=mc.holdout_snapshots,
                                  valid_snapshots=mc.valid_snapshots, calibration_share=mc.calibration_share,
                                  holdout_customer_share=holdout_customer_share, seed=mc.seed)
    elif has_time:
        split = split_grouped(ids, calibration_share=mc.calibration_share, seed=mc.seed)
        split.snapshots = {"all": _dates(times)}
        warn(f"only {n_snap} snapshot(s) in '{time_col}' (out-of-time evaluation needs {need}): fell back to a "
             "random split by customer (60% train, 20% validation, 20% holdout); holdout metrics are not out of time")
    else:
        split = Split("cross_validation", np.array([], int), np.array([], int), np.array([], int),
                      np.arange(len(frame)))
    assert_holdout_customers_unseen(ids, split)
    for part in ("train", "early_stopping", "calibration", "holdout"):
        if split.scheme != "cross_validation" and len(getattr(split, part)) == 0:
            raise ChurnError(f"the {part.replace('_', ' ')} split is empty; need more customers or snapshots")
    for note in split.notes:
        say(note)

    # 3. class balance -------------------------------------------------------------------------------
    fit_rows = split.train if split.scheme != "cross_validation" else np.arange(len(frame))
    n_pos, n_neg = int(y[fit_rows].sum()), int(len(fit_rows) - y[fit_rows].sum())
    if n_pos == 0:
        raise ChurnError("the training rows hold no churners")
    scale_pos_weight = (n_neg / n_pos) if mc.imbalance == "balanced" else None
    say(f"class balance in training rows: {n_pos:,} churners / {n_neg:,} others "
        f"({n_pos / len(fit_rows):.2%}); imbalance handling: {mc.imbalance}"
        + (f" (scale_pos_weight {scale_pos_weight:.2f}, undone by calibration)" if scale_pos_weight else ""))

    params = dict(mc.params)
    uri_holder: dict[str, Any] = {}
    with mlflow_session() as client:
        exp_id = ensure_experiment(client, mc.experiment)
        with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{datetime.now():%Y%m%d-%H%M%S}") as run:
            run_id = run.info.run_id
            say(f"MLflow run {run_id} in experiment '{mc.experiment}' ({client.tracking_uri})")

            # 4. tuning ------------------------------------------------------------------------------
            tune_summary = None
            if tune_trials > 0:
                tune_summary, params = _tune(clean, y, ids, split, features, config, params, scale_pos_weight,
                                             tune_trials, tune_minutes, exp_id, say)

            # 5. fit ---------------------------------------------------------------------------------
            cv_metrics: dict[str, float] = {}
            heuristic_col, heuristic_why = pick_heuristic_feature(
                clean.iloc[fit_rows], y[fit_rows], features)
            if split.scheme == "cross_validation":
                model, p_ho, p_raw_ho, p_lr, p_heur, cv_metrics, split = _cross_validate(
                    clean, y, ids, features, config, params, scale_pos_weight, heuristic_col, say, warn)
            else:
                say(f"fitting LightGBM on {len(split.train):,} rows (early stopping on {len(split.early_stopping):,},"
                    f" calibration on {len(split.calibration):,})")
                _check_calibration_rows(y[split.calibration], mc.calibration, warn)
                model = _fit(_model(config, features, params, scale_pos_weight), clean, y, split.train,
                             split.early_stopping, split.calibration)
                X_ho = clean.iloc[split.holdout]
                p_raw_ho = model.predict_raw(X_ho)
                p_ho = model.calibrator_.predict(p_raw_ho)
                say("fitting baselines (logistic regression, one-feature heuristic)")
                p_lr, p_heur = _fit_baselines(clean, y, split.train, split.holdout, features, heuristic_col, mc.seed)
            if model.best_iteration_ >= model.num_boost_round and split.scheme != "cross_validation":
                warn(f"early stopping did not trigger within {model.num_boost_round} rounds; consider raising "
                     "model.num_boost_round or the learning rate")
            y_ho = y[split.holdout]

            # 6. metrics -----------------------------------------------------------------------------
            say(f"evaluating on {len(y_ho):,} holdout rows ({split.scheme.replace('_', ' ')})")
            if len(np.unique(y_ho)) < 2:
                warn("the holdout holds only one class: ranking metrics are undefined")
            metrics = holdout_metrics(y_ho, p_ho, p_raw_ho)
            econ = incentive_economics(config)
            value, value_source = customer_value(frame.iloc[split.holdout], config)
            curve = profit_curve(y_ho, p_ho, value, econ.save_rate, econ.cost)
            metrics.update(profit_summary(curve))
            metrics.update({f"cv_{k}": v for k, v in cv_metrics.items()})
            metrics["best_iteration"] = float(model.best_iteration_)
            if value_source.startswith("1.0"):
                warn(f"profit curve: value is {value_source}")
            baseline = {
                "logistic": _baseline_metrics(y_ho, p_lr),
                "heuristic": {**_baseline_metrics(y_ho, p_heur), "column": heuristic_col, "why": heuristic_why},
            }
            beaten = _beats_baselines(metrics, baseline)
            if not beaten["ok"]:
                warn("MODEL DOES NOT BEAT THE BASELINES on the holdout: " + beaten["detail"])

            # 7. metadata into the model --------------------------------------------------------------
            fp = fingerprint_of(frame, id_col=id_col, time_col=time_col if has_time else None, label_col=label_col)
            if data_fingerprint:
                fp = {**fp, **data_fingerprint}
            model.metadata_.update(jsonable({
                "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "label": {"column": label_col, "kind": config.label.kind, "horizon_days": config.label.horizon_days},
                "keys": {"id": id_col, "time": time_col if has_time else None},
                "evaluation": split.scheme,
                "snapshots": split.snapshots,
                "rows": {"train": len(split.train), "early_stopping": len(split.early_stopping),
                         "calibration": len(split.calibration), "holdout": len(split.holdout)},
                "imbalance": mc.imbalance, "scale_pos_weight": scale_pos_weight,
                "train_positive_rate": n_pos / len(fit_rows),
                "metrics": metrics, "baseline_metrics": baseline,
                "mlflow": {"run_id": run_id, "experiment": mc.experiment},
                "registered_name": mc.registered_name,
                "data_fingerprint": fp,
                "extra": extra_metadata or {},
                "warnings": list(warns),
            }))

            # 8. MLflow: params, tags, artifacts, model ----------------------------------------------
            say("logging to MLflow")
            log_params({
                "lgb": {k: v for k, v in model.lgb_params_.items()},
                "model": {k: v for k, v in mc.model_dump().items() if k != "params"},
                "n_rows": len(frame), "n_features": len(features),
                "n_categorical": sum(f.kind == "categorical" for f in features),
                "rows": model.metadata_["rows"], "evaluation": split.scheme,
                "holdout_customer_share": holdout_customer_share if split.scheme == "out_of_time" else None,
                "snapshots": {k: ",".join(v) for k, v in split.snapshots.items()},
                "imbalance": mc.imbalance, "scale_pos_weight": scale_pos_weight,
                "train_positives": n_pos, "train_negatives": n_neg,
                "label": {"column": label_col, "kind": config.label.kind, "horizon_days": config.label.horizon_days},
                "keys": {"id": id_col, "time": time_col if has_time else None},
                "heuristic_column": heuristic_col, "tune_trials": tune_trials, "tune_minutes": tune_minutes,
                "economics": {"save_rate": econ.save_rate, "cost": econ.cost},
            })
            log_metrics(metrics)
            log_metrics({"train_positive_rate": n_pos / len(fit_rows)})
            for bname, bm in baseline.items():
                log_metrics(bm, prefix=f"baseline_{bname}_")
            import churn

            tags = {
                "churn_version": churn.__version__, "evaluation": split.scheme,
                "baseline_check": "passed" if beaten["ok"] else "FAILED",
                "profit.value_source": value_source, "profit.economics": econ.source,
                "heuristic": heuristic_why,
                **{f"data.{k}": str(v) for k, v in fp.items()},
                **git_info(),
            }
            if not beaten["ok"]:
                tags["warning.baselines"] = "MODEL DOES NOT BEAT THE BASELINES: " + beaten["detail"]
            mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})

            with tempfile.TemporaryDirectory(prefix="churn-train-") as tmpd:
                tmp = Path(tmpd)
                say("drawing plots")
                _write_artifacts(tmp, model, clean, frame, split, y_ho, p_ho, p_raw_ho, p_lr, p_heur, curve,
                                 metrics, baseline, features, config, value_source, econ, extra_metadata,
                                 tune_summary, id_col, time_col if has_time else None)
                holdout_df = _holdout_frame(clean, frame, split, id_col, time_col if has_time else None)
                registry.holdout_artifact(holdout_df, y_ho, p_ho, tmp)
                mlflow.log_artifacts(str(tmp))
                if config_path:
                    if Path(config_path).is_file():
                        mlflow.log_artifact(str(config_path), "config")
                    else:
                        warn(f"config file {config_path} not found; not logged")
                say(f"logging the model and registering it as '{mc.registered_name}'")
                info = log_pyfunc(model, registered_model_name=mc.registered_name)
            version = str(info.registered_model_version)
            model.metadata_["registered_version"] = version
            model.metadata_["model_uri"] = f"models:/{mc.registered_name}/{version}"
            registry.set_alias(client, mc.registered_name, registry.CHALLENGER, version)
            for k in ("roc_auc", "pr_auc", "log_loss", "brier"):
                if np.isfinite(metrics.get(k, np.nan)):
                    client.set_model_version_tag(mc.registered_name, version, f"holdout_{k}", f"{metrics[k]:.6f}")
            client.set_model_version_tag(mc.registered_name, version, "evaluation", split.scheme)
            uri_holder["model_uri"] = f"models:/{mc.registered_name}/{version}"

            # 9. bundle ------------------------------------------------------------------------------
            bundle = Path(mc.bundle_dir) / f"{mc.registered_name}-{version}"
            if bundle.exists():
                alt = bundle.with_name(f"{bundle.name}-{run_id[:8]}")
                warn(f"bundle folder {bundle} already exists (another store?); writing {alt} instead")
                bundle = alt
            export_bundle(model, bundle, name=mc.registered_name, version=version, run_id=run_id,
                          model_uri=uri_holder["model_uri"])
            say(f"bundle written to {bundle}")
            mlflow.set_tags({"bundle_path": str(bundle.resolve()), "registered_version": version,
                             "warnings": (" | ".join(warns))[:5000] or "none"})

        # 10. promotion ------------------------------------------------------------------------------
        promotion = None
        if promote:
            say("comparing with the champion")
            promotion = registry.promote(mc.registered_name, config, version=version,
                                         holdout=_with_label_risk(holdout_df, y_ho, p_ho))
            say(f"promotion: {promotion['decision']} ({promotion['reason']})")
    result_holdout = _with_label_risk(holdout_df, y_ho, p_ho)
    return TrainResult(run_id=run_id, model_uri=uri_holder["model_uri"], registered_name=mc.registered_name,
                       version=version, metrics=metrics, baseline_metrics=baseline, bundle_path=str(bundle),
                       warnings=warns, promoted=bool(promotion and promotion["promoted"]), promotion=promotion,
                       evaluation=split.scheme, model=model, holdout=result_holdout)


def _with_label_risk(holdout_df: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    from churn.training.registry import LABEL_COLUMN, RISK_COLUMN

    out = holdout_df.copy()
    out[LABEL_COLUMN] = y
    out[RISK_COLUMN] = p
    return out


def _holdout_frame(clean: pd.DataFrame, frame: pd.DataFrame, split: Split, id_col: str,
                   time_col: str | None) -> pd.DataFrame:
    """Holdout rows: keys, the model's features (coerced) and the frame's other columns, so a champion
    trained on different features can still be scored on the same rows."""
    keys = frame[[c for c in (id_col, time_col) if c]].iloc[split.holdout].reset_index(drop=True)
    keys[id_col] = keys[id_col].astype(str).astype(object)
    others = [c for c in frame.columns if c not in clean.columns and c not in keys.columns]
    rest = frame[others].iloc[split.holdout].reset_index(drop=True)
    for c in rest.columns:  # keep only columns parquet can store as they are
        try:
            pd.DataFrame({c: rest[c].head(1000)}).to_parquet(__import__("io").BytesIO())
        except Exception:  # noqa: BLE001 - mixed-type columns are simply not kept
            rest = rest.drop(columns=[c])
    return pd.concat([keys, clean.iloc[split.holdout].reset_index(drop=True), rest], axis=1)


def _check_calibration_rows(y_cal: np.ndarray, method: str, warn: Callable[[str], None]) -> None:
    pos = int(y_cal.sum())
    if pos == 0 or pos == len(y_cal):
        raise ChurnError(f"the calibration split ({len(y_cal):,} rows) holds only one class; need more data or a "
                         "larger model.calibration_share")
    if pos < 30:
        warn(f"calibration fitted on only {pos} churners; probabilities may be noisy")
    if method == "isotonic" and len(y_cal) < 1000:
        warn(f"isotonic calibration on {len(y_cal):,} rows may overfit; model.calibration: sigmoid is steadier")


def _beats_baselines(metrics: dict[str, float], baseline: dict[str, dict[str, Any]]) -> dict[str, Any]:
    fails = []
    for k in ("roc_auc", "pr_auc"):
        for b, bm in baseline.items():
            mv, bv = metrics.get(k, np.nan), bm.get(k, np.nan)
            if not (np.isfinite(mv) and np.isfinite(bv) and mv > bv):
                fails.append(f"{k} {mv:.4f} vs {b} {bv:.4f}")
    return {"ok": not fails, "detail": "; ".join(fails)}


def _tune(clean: pd.DataFrame, y: np.ndarray, ids: np.ndarray, split: Split, features: list[Feature],
          config: Config, params: dict[str, Any], scale_pos_weight: float | None, n_trials: int,
          minutes: float | None, exp_id: str, say: Callable[[str], None]) -> tuple[dict[str, Any], dict[str, Any]]:
    import mlflow

    from churn.training.tune import tune

    mc = config.model
    if split.scheme == "cross_validation":
        inner = unit_hash(ids, mc.seed, "holdout") < VALIDATION_SHARE
        fit_idx, es_idx = np.flatnonzero(~inner), np.flatnonzero(inner)
    else:
        fit_idx, es_idx = split.train, split.early_stopping
    enc = FrameEncoder(features).fit(clean.iloc[fit_idx])
    X, X_es = enc.transform_clean(clean.iloc[fit_idx])[0], enc.transform_clean(clean.iloc[es_idx])[0]
    say(f"tuning: up to {n_trials} trial(s)" + (f" or {minutes:g} minute(s)" if minutes else ""))

    def on_trial(number: int, trial_params: dict[str, Any], value: float, best_iter: int) -> None:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"trial-{number:03d}", nested=True):
            mlflow.log_params(trial_params)
            mlflow.log_metrics({"valid_log_loss": value, "best_iteration": best_iter})
        say(f"  trial {number}: validation log loss {value:.5f} ({best_iter} rounds)")

    res = tune(X, y[fit_idx], X_es, y[es_idx], base_params=params, categorical_index=enc.categorical_index_,
               feature_names=enc.feature_names_, n_trials=n_trials, minutes=minutes, seed=mc.seed,
               n_jobs=mc.n_jobs, num_boost_round=mc.num_boost_round, early_stopping_rounds=mc.early_stopping_rounds,
               scale_pos_weight=scale_pos_weight, on_trial=on_trial)
    mlflow.log_metrics({"tune_best_valid_log_loss": res.best_value, "tune_trials_run": res.n_trials})
    say(f"tuning done: best validation log loss {res.best_value:.5f} after {res.n_trials} trial(s)")
    return {"best_value": res.best_value, "n_trials": res.n_trials, "best_params": res.params,
            "trials": res.trials}, res.params


def _cross_validate(clean: pd.DataFrame, y: np.ndarray, ids: np.ndarray, features: list[Feature], config: Config,
                    params: dict[str, Any], scale_pos_weight: float | None, heuristic_col: str,
                    say: Callable[[str], None], warn: Callable[[str], None]):
    """K-fold by customer: out-of-fold predictions for model and baselines, then the final model."""
    from sklearn.model_selection import StratifiedGroupKFold

    mc = config.model
    n = len(y)
    n_groups = len(pd.unique(ids))
    k = min(mc.cv_folds, n_groups)
    if k < 2:
        raise ChurnError("cross-validation needs at least 2 customers")
    inner = unit_hash(ids, mc.seed, "holdout") < VALIDATION_SHARE
    cal_pick = unit_hash(ids, mc.seed, "calibration") < mc.calibration_share
    oof, oof_raw, oof_lr, oof_heur = (np.full(n, np.nan) for _ in range(4))
    fold_metrics, best_iters = [], []
    sgkf = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=mc.seed)
    for fold, (tr, te) in enumerate(sgkf.split(np.zeros(n), y, groups=ids)):
        fit_idx = tr[~inner[tr]]
        es_idx = tr[inner[tr] & ~cal_pick[tr]]
        cal_idx = tr[inner[tr] & cal_pick[tr]]
        say(f"cross-validation fold {fold + 1}/{k}: fitting on {len(fit_idx):,} rows, testing on {len(te):,}")
        _check_calibration_rows(y[cal_idx], mc.calibration, lambda m: None)
        m = _fit(_model(config, features, params, scale_pos_weight), clean, y, fit_idx, es_idx, cal_idx)
        best_iters.append(m.best_iteration_)
        oof_raw[te] = m.predict_raw(clean.iloc[te])
        oof[te] = m.calibrator_.predict(oof_raw[te])
        oof_lr[te], oof_heur[te] = _fit_baselines(clean, y, tr, te, features, heuristic_col, mc.seed)
        fold_metrics.append({**ranking_metrics(y[te], oof[te]), **probability_metrics(y[te], oof[te])})
    fm = pd.DataFrame(fold_metrics)
    cv = {f"{c}_mean": float(fm[c].mean()) for c in fm.columns}
    cv.update({f"{c}_std": float(fm[c].std(ddof=1)) if len(fm) > 1 else 0.0 for c in fm.columns})
    cv["folds"] = float(k)
    rounds = int(np.median(best_iters))
    final_cal = inner & cal_pick
    _check_calibration_rows(y[final_cal], mc.calibration, warn)
    say(f"final model on {int((~final_cal).sum()):,} rows ({rounds} rounds, the folds' median), calibrated on "
        f"{int(final_cal.sum()):,} held-out rows")
    final = _model(config, features, params, scale_pos_weight, num_boost_round=rounds)
    final = _fit(final, clean, y, np.flatnonzero(~final_cal), None, np.flatnonzero(final_cal))
    split = Split("cross_validation", np.flatnonzero(~final_cal), np.array([], int), np.flatnonzero(final_cal),
                  np.arange(n), notes=[(f"{k}-fold cross-validation grouped by customer; out-of-fold predictions "
                                        "are the reported holdout")])
    return final, oof, oof_raw, oof_lr, oof_heur, cv, split


def _write_artifacts(tmp: Path, model: ChurnModel, clean: pd.DataFrame, frame: pd.DataFrame, split: Split,
                     y_ho: np.ndarray, p_ho: np.ndarray, p_raw_ho: np.ndarray, p_lr: np.ndarray, p_heur: np.ndarray,
                     curve: pd.DataFrame, metrics: dict, baseline: dict, features: list[Feature], config: Config,
                     value_source: str, econ: Any, extra_metadata: dict | None, tune_summary: dict | None,
                     id_col: str, time_col: str | None) -> None:
    from churn.training.bundle import features_document
    from churn.training.tracking import jsonable

    (tmp / "features.json").write_text(json.dumps(features_document(model), indent=2) + "\n")
    pd.DataFrame([f.to_dict() for f in features]).to_csv(tmp / "features.csv", index=False)
    (tmp / "metrics.json").write_text(json.dumps(jsonable({"model": metrics, "baselines": baseline}), indent=2,
                                                 sort_keys=True) + "\n")
    (tmp / "model_metadata.json").write_text(json.dumps(jsonable(model.metadata_), indent=2, sort_keys=True,
                                                        default=str) + "\n")
    if extra_metadata:
        (tmp / "extra_metadata.json").write_text(json.dumps(jsonable(extra_metadata), indent=2, default=str) + "\n")
    if tune_summary:
        (tmp / "tuning.json").write_text(json.dumps(jsonable(tune_summary), indent=2, default=str) + "\n")
    step = max(1, len(curve) // 1000)
    curve.iloc[::step].to_csv(tmp / "profit_curve.csv", index=False)
    pl = tmp / "plots"
    curves = {"model": p_ho, "logistic regression": p_lr, f"heuristic ({baseline['heuristic']['column']})": p_heur}
    if len(np.unique(y_ho)) == 2:
        plots.roc_plot(y_ho, curves, pl / "roc.png")
        plots.pr_plot(y_ho, curves, pl / "pr.png")
        plots.calibration_plot(y_ho, p_raw_ho, p_ho, pl / "calibration.png")
        reliability_table(y_ho, p_ho).to_csv(tmp / "reliability.csv", index=False)
        plots.lift_gain_plot(y_ho, p_ho, pl / "lift_gain.png")
    plots.profit_plot(curve, pl / "profit.png",
                      note=f"value: {value_source}; save rate {econ.save_rate:.2f}, cost {econ.cost:.2f} ({econ.source})")
    plots.importance_plot(model.feature_importance("gain"), pl / "feature_importance.png")
    rows = split.holdout
    if len(rows) > config.model.max_shap_rows:
        rows = np.sort(np.random.default_rng(config.model.seed).choice(rows, config.model.max_shap_rows,
                                                                       replace=False))
    Xs = clean.iloc[rows]
    contrib = model.contributions(Xs)
    plots.shap_summary_plot(contrib, Xs, pl / "shap_summary.png", seed=config.model.seed)
