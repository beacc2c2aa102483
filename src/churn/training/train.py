"""Training orchestration: check, split, evaluate the candidates, choose on validation, refit on all data,
compare with the baselines, log to MLflow (a nested run per candidate), register, export a bundle and
(optionally) promote.

The steps are functions here and in `splits` (how rows are split), `selection` (candidates, choice,
refit) and `baselines`; `train()` wires them, and the MLflow calls stay in `_log_run` and `_register`.
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
from churn.preparation import Preparation
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
from churn.training.model import ChurnModel, sample_rows
from churn.training.selection import Evaluated, candidate_list, choose, evaluate_candidates, refit_all
from churn.training.splits import (  # noqa: F401 - re-exported: `from churn.training.train import split_...`
    VALIDATION_SHARE,
    Split,
    assert_holdout_customers_unseen,
    split_grouped,
    split_out_of_time,
    unit_hash,
)
from churn.training.table import prepare_table  # noqa: F401 - re-exported for `from churn.training.train import ...`

log = logging.getLogger(__name__)

HOLDOUT_CUSTOMER_SHARE = 0.3
BASELINE_MAX_ROWS = 200_000


@dataclass
class TrainResult:
    """What a training run produced.

    `metrics` are the chosen candidate's holdout metrics from its evaluation fit (which never saw the
    holdout); the registered `model` is the refit on every row. `candidates` holds every candidate's
    holdout metrics (and `valid_roc_auc`, what the choice read).
    """

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
    chosen: str = ""
    chosen_why: str = ""
    candidates: dict[str, dict[str, float]] = field(default_factory=dict)
    refit: dict[str, Any] = field(default_factory=dict)
    model: ChurnModel | None = field(default=None, repr=False)
    holdout: pd.DataFrame | None = field(default=None, repr=False)  # holdout rows, label, evaluation risk


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
def _fit_baselines(clean: pd.DataFrame, y: np.ndarray, fit_idx: np.ndarray, pred_idx: np.ndarray,
                   features: list[Feature], heuristic_col: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    idx = sample_rows(fit_idx, BASELINE_MAX_ROWS, seed)
    Xf, yf = clean.iloc[idx], y[idx]
    Xp = clean.iloc[pred_idx]
    lr = logistic_baseline(features, seed=seed).fit(Xf, yf)
    heur = HeuristicBaseline(heuristic_col).fit(Xf, yf)
    return lr.predict_proba(Xp)[:, 1], heur.predict_proba(Xp)[:, 1]


def _baseline_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    from churn.training.metrics import top_share_metrics

    return {**ranking_metrics(y, p), **probability_metrics(y, p), **top_share_metrics(y, p)}


def make_split(ids: np.ndarray, frame: pd.DataFrame, time_col: str | None, config: Config,
               holdout_customer_share: float, warn: Callable[[str], None]) -> Split:
    """Out of time when the frame has enough snapshots, else grouped random (said in the warnings)."""
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
                                  valid_customer_share=mc.valid_customer_share)
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


def refit_folds(ids: np.ndarray, config: Config) -> np.ndarray:
    """Each row's calibration fold for the refit: all rows of a customer in one fold, seeded."""
    k = config.model.calibration_folds
    return np.minimum((unit_hash(ids, config.model.seed, "refit-fold") * k).astype(int), k - 1)


# ----------------------------------------------------------------------------------------------- train
def train(frame: pd.DataFrame, features: list[Feature], config: Config, *, id_col: str = "customer_id",
          time_col: str | None = "as_of", label_col: str = "churned", data_fingerprint: dict | None = None,
          config_path: str | None = None, tune_trials: int = 0, tune_minutes: float | None = None,
          promote: bool = False, extra_metadata: dict | None = None, source: dict | None = None,
          progress: Callable[[str], None] | None = None,
          holdout_customer_share: float = HOLDOUT_CUSTOMER_SHARE) -> TrainResult:
    """Choose, refit, evaluate, log, register (alias `challenger`), export a bundle and optionally promote.

    `frame` holds `id_col`, `label_col` (0/1), optionally `time_col`, and one raw column per feature (yes/no
    text, numbers written as text and categories are read by the fitted preparation, as at scoring).
    `source` (the raw-data build's settings) is stored in the model's preparation for the scorer;
    `extra_metadata` in its metadata.
    """
    mc = config.model

    def say(msg: str) -> None:
        log.info(msg)
        if progress is not None:
            progress(msg)

    warns: list[str] = []

    def warn(msg: str) -> None:
        warns.append(msg)
        log.warning(msg)

    y = check_frame(frame, features, id_col=id_col, time_col=time_col, label_col=label_col)
    say(f"checking {len(frame):,} rows x {len(features)} features")
    frame = frame.reset_index(drop=True)
    # How each column is read, decided once on every row (a yes/no column is numeric 1/0 for every model).
    prep = Preparation(features, infer=True).fit(frame)
    features, clean = prep.features_, prep.clean(frame)
    ids = frame[id_col].astype(str).to_numpy(dtype=object)
    names = {f.name for f in features}
    ignored = [str(c) for c in frame.columns if c not in names and c not in {id_col, time_col, label_col}]
    if ignored:
        warn(f"{len(ignored)} column(s) in the frame are not declared features and were ignored: "
             f"{', '.join(ignored[:10])}{' ...' if len(ignored) > 10 else ''}")
    split = make_split(ids, frame, time_col, config, holdout_customer_share, warn)
    has_time = time_col is not None and time_col in frame.columns
    for note in split.notes:
        say(note)
    n_pos, n_neg = int(y[split.train].sum()), int(len(split.train) - y[split.train].sum())
    if n_pos == 0:
        raise ChurnError("the training rows hold no churners")
    scale_pos_weight = (n_neg / n_pos) if mc.imbalance == "balanced" else None
    say(f"class balance in training rows: {n_pos:,} churners / {n_neg:,} others "
        f"({n_pos / len(split.train):.2%}); imbalance handling: {mc.imbalance}"
        + (f" (scale_pos_weight {scale_pos_weight:.2f}, undone by calibration)" if scale_pos_weight else ""))
    _check_calibration_rows(y[split.calibration], mc.calibration, warn)
    if n_pos < 200:
        warn(f"only {n_pos} churners in the training rows: metrics will be noisy; the regularised candidates "
             "and the blend with a logistic regression are what small data needs")

    from churn.training.tracking import mlflow_session

    with mlflow_session() as client:
        run = _open_run(client, mc.experiment, say)
        with run:
            run_id = run.info.run_id
            trials = tune_trials or (mc.auto_tune_trials if len(split.train) <= mc.auto_tune_max_rows else 0)
            minutes = tune_minutes if tune_trials else (mc.auto_tune_minutes if trials else None)
            tuned = _tune(frame, y, ids, split, features, config, scale_pos_weight, trials, minutes, run, say) \
                if trials > 0 else None
            evaluated = evaluate_candidates(candidate_list(config, tuned and tuned["best_params"]), frame, y, split,
                                            features, config, scale_pos_weight=scale_pos_weight, source=source,
                                            say=say)
            chosen, why, linear_won = choose(evaluated, mc.force_candidate)
            say(f"chosen: {chosen.name} ({why})")
            if linear_won:
                warn(f"the logistic regression was chosen: {why}")
            heuristic_col, heuristic_why = pick_heuristic_feature(clean.iloc[split.train], y[split.train], features)
            say("fitting baselines (plain logistic regression, one-feature heuristic)")
            p_lr, p_heur = _fit_baselines(clean, y, split.train, split.holdout, features, heuristic_col, mc.seed)
            y_ho = y[split.holdout]
            if mc.refit:
                model, refit = refit_all(chosen, frame, y, ids, features, config, fit_rows=len(split.train),
                                         scale_pos_weight=scale_pos_weight, source=source,
                                         fold_of=refit_folds(ids, config), say=say)
            else:
                model, refit = chosen.model, {"rows": len(split.train), "rounds": chosen.model.best_iteration_}
            if chosen.candidate.kind != "logistic" and chosen.model.best_iteration_ >= mc.num_boost_round:
                warn(f"early stopping did not trigger within {mc.num_boost_round} rounds; consider raising "
                     "model.num_boost_round or the learning rate")

            say(f"evaluating on {len(y_ho):,} holdout rows ({split.scheme.replace('_', ' ')})")
            if len(np.unique(y_ho)) < 2:
                warn("the holdout holds only one class: ranking metrics are undefined")
            metrics = dict(chosen.holdout)
            econ = incentive_economics(config)
            value, value_source = customer_value(frame.iloc[split.holdout], config)
            curve = profit_curve(y_ho, chosen.p_holdout, value, econ.save_rate, econ.cost)
            metrics.update(profit_summary(curve))
            metrics["best_iteration"] = float(chosen.model.best_iteration_)
            metrics["valid_roc_auc"] = chosen.valid["roc_auc"]
            if value_source.startswith("1.0"):
                warn(f"profit curve: value is {value_source}")
            baseline = {
                "logistic": _baseline_metrics(y_ho, p_lr),
                "heuristic": {**_baseline_metrics(y_ho, p_heur), "column": heuristic_col, "why": heuristic_why},
            }
            beaten = _beats_baselines(y_ho, chosen.p_holdout, {"logistic": p_lr, "heuristic": p_heur}, mc.seed)
            metrics.update({f"vs_{k}": {"better": 1.0, "within noise": 0.0, "worse": -1.0}.get(v, np.nan)
                            for k, v in beaten["verdicts"].items()})
            if not beaten["ok"]:
                warn("MODEL IS WORSE THAN A BASELINE on the holdout: " + beaten["detail"])
            else:
                say("against the baselines on the holdout: " + beaten["detail"])

            fp = _fingerprint(frame, id_col, time_col if has_time else None, label_col, data_fingerprint)
            model.metadata_.update(_metadata(
                config, split, refit, chosen, why, evaluated, metrics, baseline, fp, extra_metadata, warns,
                run_id, label_col, id_col, time_col if has_time else None, scale_pos_weight, n_pos))
            _log_run(run_id, config, model, chosen, why, evaluated, split, refit, metrics, baseline, beaten,
                     fp, scale_pos_weight, n_pos, n_neg, heuristic_col, heuristic_why, value_source, econ,
                     tune_trials, tune_minutes, label_col, id_col, time_col if has_time else None, len(frame))
            with tempfile.TemporaryDirectory(prefix="churn-train-") as tmpd:
                tmp = Path(tmpd)
                say("drawing plots")
                _write_artifacts(tmp, model, clean, frame, split, y_ho, chosen.p_holdout, chosen.p_raw_holdout, p_lr,
                                 p_heur, curve, metrics, baseline, features, config, value_source, econ,
                                 extra_metadata, tuned, id_col, time_col if has_time else None)
                holdout_df = _holdout_frame(clean, frame, split, id_col, time_col if has_time else None)
                reg = _register(client, run_id, model, config, config_path, tmp, holdout_df, y_ho, chosen.p_holdout,
                                metrics, split.scheme, warns, say, warn)

        promotion = None
        if promote:
            from churn.training import registry

            say("comparing with the champion")
            promotion = registry.promote(mc.registered_name, config, version=reg["version"],
                                         holdout=_with_label_risk(holdout_df, y_ho, chosen.p_holdout))
            say(f"promotion: {promotion['decision']} ({promotion['reason']})")
    candidates = {e.name: {**e.holdout, "valid_roc_auc": e.valid["roc_auc"]} for e in evaluated}
    return TrainResult(run_id=run_id, model_uri=reg["model_uri"], registered_name=mc.registered_name,
                       version=reg["version"], metrics=metrics, baseline_metrics=baseline,
                       bundle_path=reg["bundle"], warnings=warns, promoted=bool(promotion and promotion["promoted"]),
                       promotion=promotion, evaluation=split.scheme, chosen=chosen.name, chosen_why=why,
                       candidates=candidates, refit=refit, model=model,
                       holdout=_with_label_risk(holdout_df, y_ho, chosen.p_holdout))


def _open_run(client: Any, experiment: str, say: Callable[[str], None]) -> Any:
    import mlflow

    from churn.training.tracking import ensure_experiment

    exp_id = ensure_experiment(client, experiment)
    run = mlflow.start_run(experiment_id=exp_id, run_name=f"train-{datetime.now():%Y%m%d-%H%M%S}")
    say(f"MLflow run {run.info.run_id} in experiment '{experiment}' ({client.tracking_uri})")
    return run


def _fingerprint(frame: pd.DataFrame, id_col: str, time_col: str | None, label_col: str,
                 extra: dict | None) -> dict[str, Any]:
    from churn.training.tracking import data_fingerprint

    fp = data_fingerprint(frame, id_col=id_col, time_col=time_col, label_col=label_col)
    return {**fp, **extra} if extra else fp


def _metadata(config: Config, split: Split, refit: dict[str, Any], chosen: Evaluated, why: str,
              evaluated: list[Evaluated], metrics: dict[str, float], baseline: dict[str, Any], fp: dict[str, Any],
              extra_metadata: dict | None, warns: list[str], run_id: str, label_col: str, id_col: str,
              time_col: str | None, scale_pos_weight: float | None, n_pos: int) -> dict[str, Any]:
    """What the registered model carries about its training (read by the scorer, the report and the docs)."""
    from churn.training.tracking import jsonable

    mc = config.model
    return jsonable({
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": {"column": label_col, "kind": config.label.kind, "horizon_days": config.label.horizon_days},
        "keys": {"id": id_col, "time": time_col},
        "evaluation": split.scheme,
        "snapshots": split.snapshots,
        "rows": {"train": len(split.train), "early_stopping": len(split.early_stopping),
                 "calibration": len(split.calibration), "holdout": len(split.holdout), "refit": refit.get("rows")},
        "chosen": {"candidate": chosen.name, "kind": chosen.candidate.kind, "why": why,
                   "note": chosen.candidate.note, "refit": refit},
        "candidates": {e.name: {"valid_roc_auc": e.valid["roc_auc"], **e.holdout} for e in evaluated},
        "metrics_are": "holdout metrics of the chosen candidate's evaluation fit (trained without the holdout); "
                       "the registered model is that candidate refit on every row",
        "imbalance": mc.imbalance, "scale_pos_weight": scale_pos_weight,
        "train_positive_rate": n_pos / max(len(split.train), 1),
        "metrics": metrics, "baseline_metrics": baseline,
        "mlflow": {"run_id": run_id, "experiment": mc.experiment},
        "registered_name": mc.registered_name,
        "data_fingerprint": fp,
        "extra": extra_metadata or {},
        "warnings": list(warns),
    })


def _log_run(run_id: str, config: Config, model: ChurnModel, chosen: Evaluated, why: str,
             evaluated: list[Evaluated], split: Split, refit: dict[str, Any], metrics: dict[str, float],
             baseline: dict[str, Any], beaten: dict[str, Any], fp: dict[str, Any], scale_pos_weight: float | None,
             n_pos: int, n_neg: int, heuristic_col: str, heuristic_why: str, value_source: str, econ: Any,
             tune_trials: int, tune_minutes: float | None, label_col: str, id_col: str, time_col: str | None,
             n_rows: int) -> None:
    """Params, metrics and tags of the parent run, and one nested run per candidate."""
    import mlflow

    import churn
    from churn.training.tracking import git_info, log_metrics, log_params

    mc = config.model
    exp_id = mlflow.get_run(run_id).info.experiment_id
    for e in evaluated:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"candidate-{e.name}", nested=True):
            log_params({"candidate": e.name, "kind": e.candidate.kind, "note": e.candidate.note,
                        "lgb": e.model.lgb_params_ if e.candidate.kind != "logistic" else None,
                        "best_iteration": e.model.best_iteration_, "blend_weights": list(e.model.blend_weights_)})
            log_metrics({"valid_roc_auc": e.valid["roc_auc"], "valid_pr_auc": e.valid["pr_auc"]})
            log_metrics(e.holdout, prefix="holdout_")
            mlflow.set_tags({"chosen": str(e is chosen).lower()})
    log_params({
        "chosen": chosen.name, "kind": chosen.candidate.kind, "blend_weights": list(model.blend_weights_),
        "lgb": model.lgb_params_ if chosen.candidate.kind != "logistic" else None,
        "model": {k: v for k, v in mc.model_dump().items() if k != "params"},
        "n_rows": n_rows,
        "n_features": len(model.features_),
        "n_categorical": sum(f.kind == "categorical" for f in model.features_),
        "rows": {"train": len(split.train), "early_stopping": len(split.early_stopping),
                 "calibration": len(split.calibration), "holdout": len(split.holdout)},
        "refit": refit, "evaluation": split.scheme,
        "snapshots": {k: ",".join(v) for k, v in split.snapshots.items()},
        "imbalance": mc.imbalance, "scale_pos_weight": scale_pos_weight,
        "train_positives": n_pos, "train_negatives": n_neg,
        "label": {"column": label_col, "kind": config.label.kind, "horizon_days": config.label.horizon_days},
        "keys": {"id": id_col, "time": time_col},
        "heuristic_column": heuristic_col, "tune_trials": tune_trials, "tune_minutes": tune_minutes,
        "economics": {"save_rate": econ.save_rate, "cost": econ.cost},
    })
    log_metrics(metrics)
    log_metrics({"train_positive_rate": n_pos / max(len(split.train), 1)})
    for e in evaluated:
        log_metrics({"valid_roc_auc": e.valid["roc_auc"], **e.holdout}, prefix=f"candidate_{e.name}_")
    for bname, bm in baseline.items():
        log_metrics(bm, prefix=f"baseline_{bname}_")
    tags = {
        "churn_version": churn.__version__, "evaluation": split.scheme,
        "model.chosen": chosen.name, "model.chosen_why": why,
        "metrics": "holdout metrics of the chosen candidate's evaluation fit; the registered model is refit on all rows",
        "baseline_check": beaten["check"], "baseline_detail": beaten["detail"],
        "profit.value_source": value_source, "profit.economics": econ.source,
        "heuristic": heuristic_why,
        **{f"data.{k}": str(v) for k, v in fp.items()},
        **git_info(),
    }
    if not beaten["ok"]:
        tags["warning.baselines"] = "MODEL IS WORSE THAN A BASELINE: " + beaten["detail"]
    mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items()})


def _register(client: Any, run_id: str, model: ChurnModel, config: Config, config_path: str | None, tmp: Path,
              holdout_df: pd.DataFrame, y_ho: np.ndarray, p_ho: np.ndarray, metrics: dict[str, float], scheme: str,
              warns: list[str], say: Callable[[str], None], warn: Callable[[str], None]) -> dict[str, str]:
    """Log the artifacts and the pyfunc, register it (alias challenger), record the logged model's file
    hashes (checked by every models:/ and runs:/ load) and export the bundle.

    The holdout artifact carries no customer ids, names or e-mails (ids pseudonymised under
    CHURN_PSEUDONYM_KEY when set, else dropped). If the tracking store fails on the way (a server gone), the
    bundle is still written, as `<name>-unregistered-<run>`, the run is ended as failed where the store
    still answers, and the error says so.
    """
    import contextlib

    import mlflow

    from churn.io import checkpoint, pseudonym_key
    from churn.training import registry
    from churn.training.bundle import export_bundle
    from churn.training.loading import artifact_hashes, hash_tags
    from churn.training.pyfunc import log_pyfunc

    mc = config.model
    registry.holdout_artifact(holdout_df, y_ho, p_ho, tmp, id_col=(model.metadata_.get("keys") or {}).get("id"),
                              features=[f.name for f in model.features_], key=pseudonym_key())
    checkpoint("register")
    try:
        mlflow.log_artifacts(str(tmp))
        if config_path:
            if Path(config_path).is_file():
                mlflow.log_artifact(str(config_path), "config")
            else:
                warn(f"config file {config_path} not found; not logged")
        say(f"logging the model and registering it as '{mc.registered_name}'")
        info = log_pyfunc(model, registered_model_name=mc.registered_name)
        version = str(info.registered_model_version)
        # The files as the store now holds them: what every later models:/ or runs:/ load must match.
        with tempfile.TemporaryDirectory(prefix="churn-logged-") as dl:
            hashes = artifact_hashes(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=dl))
        tags = hash_tags(hashes)
        mlflow.set_tags(tags)
        for k, v in tags.items():
            client.set_model_version_tag(mc.registered_name, version, k, v)
        model_uri = f"models:/{mc.registered_name}/{version}"
        registry.set_alias(client, mc.registered_name, registry.CHALLENGER, version)
        for k in ("roc_auc", "pr_auc", "log_loss", "brier"):
            if np.isfinite(metrics.get(k, np.nan)):
                client.set_model_version_tag(mc.registered_name, version, f"holdout_{k}", f"{metrics[k]:.6f}")
        client.set_model_version_tag(mc.registered_name, version, "evaluation", scheme)
    except Exception as exc:  # noqa: BLE001 - any store failure: keep the model, then say what happened
        bundle = Path(mc.bundle_dir) / f"{mc.registered_name}-unregistered-{run_id[:8]}"
        export_bundle(model, bundle, name=mc.registered_name, version=None, run_id=run_id, model_uri=None)
        # Popped from MLflow's run stack first, so the failing store cannot replace this error on the way out.
        with contextlib.suppress(Exception):
            mlflow.end_run("FAILED")
        detail = str(getattr(exc, "message", None) or exc).splitlines()[0][:300]
        raise ChurnError(f"the MLflow tracking store {client.tracking_uri} failed while logging run {run_id} "
                         f"({type(exc).__name__}: {detail}); the model was NOT registered, but it was saved as "
                         f"the bundle {bundle}: score with --model {bundle}, or train again once the store "
                         "answers") from None
    model.metadata_["registered_version"] = version
    model.metadata_["model_uri"] = model_uri
    bundle = Path(mc.bundle_dir) / f"{mc.registered_name}-{version}"
    if bundle.exists():
        alt = bundle.with_name(f"{bundle.name}-{run_id[:8]}")
        warn(f"bundle folder {bundle} already exists (another store?); writing {alt} instead")
        bundle = alt
    export_bundle(model, bundle, name=mc.registered_name, version=version, run_id=run_id, model_uri=model_uri)
    say(f"bundle written to {bundle}")
    mlflow.set_tags({"bundle_path": str(bundle.resolve()), "registered_version": version,
                     "warnings": (" | ".join(warns))[:5000] or "none"})
    return {"version": version, "model_uri": model_uri, "bundle": str(bundle)}


def _check_calibration_rows(y_cal: np.ndarray, method: str, warn: Callable[[str], None]) -> None:
    pos = int(y_cal.sum())
    if pos == 0 or pos == len(y_cal):
        raise ChurnError(f"the calibration split ({len(y_cal):,} rows, {pos} churners) holds only one class; need "
                         "more data, a larger model.valid_customer_share (the customers validation reads) or a "
                         "larger model.calibration_share (their share that calibrates)")
    if pos < 30:
        warn(f"calibration fitted on only {pos} churners; probabilities may be noisy")
    if method == "isotonic" and len(y_cal) < 1000:
        warn(f"only {len(y_cal):,} calibration rows: the evaluation fits are calibrated with a sigmoid (isotonic "
             "steps would overfit); the registered model's calibration uses every row's out-of-fold prediction")


def _tune(frame: pd.DataFrame, y: np.ndarray, ids: np.ndarray, rows: Split, features: list[Feature],
          config: Config, scale_pos_weight: float | None, n_trials: int, minutes: float | None, run: Any,
          say: Callable[[str], None]) -> dict[str, Any] | None:
    """An Optuna search over LightGBM settings within the training rows (a fifth of their customers scores
    the trials), so the validation rows that choose among the candidates stay unseen by the search; each
    trial is a nested MLflow run. Its best settings join the candidates as `lightgbm_tuned`."""
    import mlflow

    from churn.training.tune import tune

    mc = config.model
    inner = unit_hash(ids[rows.train], mc.seed, "tune") < VALIDATION_SHARE
    fit_rows, eval_rows = rows.train[~inner], rows.train[inner]
    if not (0 < y[eval_rows].sum() < len(eval_rows)) or not y[fit_rows].any():
        say("tuning skipped: too few churners in the training rows to score trials")
        return None
    prep = Preparation(features, infer=True).fit(frame.iloc[fit_rows])
    X, X_es = prep.transform(frame.iloc[fit_rows]), prep.transform(frame.iloc[eval_rows])
    say(f"tuning: up to {n_trials} trial(s)" + (f" or {minutes:g} minute(s)" if minutes else ""))
    exp_id = run.info.experiment_id

    def on_trial(number: int, trial_params: dict[str, Any], value: float, best_iter: int) -> None:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"trial-{number:03d}", nested=True):
            mlflow.log_params(trial_params)
            mlflow.log_metrics({"valid_log_loss": value, "best_iteration": best_iter})

    res = tune(X, y[fit_rows], X_es, y[eval_rows], base_params=dict(mc.params),
               categorical_index=prep.categorical_index_, feature_names=prep.feature_names_, n_trials=n_trials,
               minutes=minutes, seed=mc.seed, n_jobs=mc.n_jobs, num_boost_round=mc.num_boost_round,
               early_stopping_rounds=mc.early_stopping_rounds, scale_pos_weight=scale_pos_weight, on_trial=on_trial)
    mlflow.log_metrics({"tune_best_valid_log_loss": res.best_value, "tune_trials_run": res.n_trials})
    say(f"tuning done: best validation log loss {res.best_value:.5f} after {res.n_trials} trial(s)")
    return {"best_value": res.best_value, "n_trials": res.n_trials, "best_params": res.params, "trials": res.trials}


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


def _weighted_auc(order: np.ndarray, ties: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """ROC AUC with row weights `w`, from the rows' score order and tie-group starts (computed once)."""
    ys, ws = y[order], w[order]
    neg, pos = ws * (ys == 0), ws * (ys == 1)
    # Per tie group: negatives strictly below it, and half of its own negatives.
    group_neg = np.add.reduceat(neg, ties)
    below = np.cumsum(group_neg) - group_neg
    group_pos = np.add.reduceat(pos, ties)
    denom = pos.sum() * neg.sum()
    return float((group_pos * (below + 0.5 * group_neg)).sum() / denom) if denom > 0 else np.nan


def auc_difference(y: np.ndarray, p: np.ndarray, q: np.ndarray, *, n_boot: int = 300,
                   seed: int = 0) -> tuple[float, float, float]:
    """ROC AUC of `p` minus that of `q` on the same rows, and its 95% paired-bootstrap interval.

    Each resample is a row weighting (multinomial counts), so the two scores are sorted once, not per
    resample (sklearn's roc_auc_score per resample cost seconds a run)."""
    y = np.asarray(y).astype(int)
    prepared = []
    for s in (np.asarray(p, dtype=float), np.asarray(q, dtype=float)):
        order = np.argsort(s, kind="mergesort")
        ss = s[order]
        prepared.append((order, np.flatnonzero(np.r_[True, ss[1:] != ss[:-1]])))
    ones = np.ones(len(y))
    diff = _weighted_auc(*prepared[0], y, ones) - _weighted_auc(*prepared[1], y, ones)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        w = rng.multinomial(len(y), np.full(len(y), 1.0 / len(y))).astype(float)
        d = _weighted_auc(*prepared[0], y, w) - _weighted_auc(*prepared[1], y, w)
        if np.isfinite(d):
            draws.append(d)
    lo, hi = np.quantile(draws, [0.025, 0.975]) if draws else (np.nan, np.nan)
    return float(diff), float(lo), float(hi)


def _beats_baselines(y: np.ndarray, p: np.ndarray, baselines: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """The chosen model against each baseline on the holdout's ROC AUC, with the noise of that holdout:
    `worse` when the whole 95% interval of the difference is below zero, `better` when above, else
    `within noise` (a few hundred holdout churners leave about +-0.015 of ROC AUC to chance)."""
    verdicts, lines = {}, []
    for name, q in baselines.items():
        if len(np.unique(y)) < 2:
            verdicts[name] = "undefined"
            continue
        d, lo, hi = auc_difference(y, p, q, seed=seed)
        verdicts[name] = "worse" if hi < 0 else "better" if lo > 0 else "within noise"
        lines.append(f"ROC AUC {d:+.4f} vs {name} (95% interval {lo:+.4f} to {hi:+.4f}): {verdicts[name]}")
    ok = "worse" not in verdicts.values()
    return {"ok": ok, "verdicts": verdicts, "detail": "; ".join(lines),
            "check": "FAILED" if not ok else "passed" if set(verdicts.values()) == {"better"} else "within noise"}


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
