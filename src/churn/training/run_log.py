"""A training run's record, at the edge of the computation: the MLflow run (params, metrics, tags, a nested
run per candidate, artifacts and plots), the model's metadata, the registered model version and the bundle.

Everything here reads an `Outcome` (`churn.training.outcome`); nothing here decides anything (the plots
compute what they show: the SHAP summary, importances).
"""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.errors import ChurnError
from churn.training import plots
from churn.training.metrics import reliability_table
from churn.training.outcome import Outcome

METRICS_ARE = ("holdout metrics of the registered procedure: the chosen candidate's settings refit by its rule on "
               "the rows before the holdout date (every non-holdout customer's), calibrated as the registered "
               "model is, and scored on holdout customers it never saw; the registered model is the same "
               "procedure on every row")


def open_run(client: Any, experiment: str, say: Callable[[str], None]) -> Any:
    """Start the parent MLflow run of a training in `experiment` (created when new)."""
    import mlflow

    from churn.training.tracking import ensure_experiment

    exp_id = ensure_experiment(client, experiment)
    run = mlflow.start_run(experiment_id=exp_id, run_name=f"train-{datetime.now():%Y%m%d-%H%M%S}")
    say(f"MLflow run {run.info.run_id} in experiment '{experiment}' ({client.tracking_uri})")
    return run


def fingerprint(frame: pd.DataFrame, id_col: str, time_col: str | None, label_col: str,
                extra: dict | None) -> dict[str, Any]:
    """The training data's fingerprint (rows, customers, dates, label rate, a hash), plus `extra`."""
    from churn.training.tracking import data_fingerprint

    fp = data_fingerprint(frame, id_col=id_col, time_col=time_col, label_col=label_col)
    return {**fp, **extra} if extra else fp


def metadata(o: Outcome, run_id: str) -> dict[str, Any]:
    """What the registered model carries about its training (read by the scorer, the report and the docs)."""
    from churn.training.tracking import jsonable

    mc, split, k = o.config.model, o.split, o.keys
    return jsonable({
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "label": {"column": k.label_col, "kind": o.config.label.kind, "horizon_days": o.config.label.horizon_days},
        "keys": {"id": k.id_col, "time": k.time_col},
        "evaluation": split.scheme,
        "snapshots": split.snapshots,
        "rows": {"train": len(split.train), "early_stopping": len(split.early_stopping),
                 "calibration": len(split.calibration), "holdout": len(split.holdout),
                 "forward_fit": [len(r) for r in split.forward_fits], "forward_valid": len(split.forward_valid),
                 "refit": o.refit.get("rows")},
        "chosen": {"candidate": o.choice.name, "kind": o.chosen.candidate.kind, "why": o.choice.why,
                   "note": o.chosen.candidate.note, "rule": o.choice.rule, "forward": o.choice.forward,
                   "refit": o.refit, "tied": list(o.choice.tied), "pool": list(o.choice.pool)},
        "candidates": o.candidates_table(),
        "readings": [{"candidate": r.candidate, "rule": r.rule, "roc_auc": r.roc_auc, "pr_auc": r.pr_auc,
                      "rounds": r.rounds} for r in o.readings],
        "metrics_are": METRICS_ARE,
        "leaks": [{"column": lk.column, "roc_auc": lk.auc, "how": lk.how, "kept": lk.column in o.kept_leaks}
                  for lk in o.leaks],
        "chance": {k: v for k, v in o.chance.items()},
        "imbalance": mc.imbalance, "scale_pos_weight": o.scale_pos_weight,
        "train_positive_rate": o.n_pos / max(len(split.train), 1),
        "metrics": o.metrics, "baseline_metrics": o.baselines,
        "mlflow": {"run_id": run_id, "experiment": mc.experiment},
        "registered_name": mc.registered_name,
        "data_fingerprint": o.fingerprint,
        "extra": o.extra_metadata or {},
        "warnings": list(o.warnings),
    })


def log_run(o: Outcome, run_id: str) -> None:
    """Params, metrics and tags of the parent run, and one nested run per candidate."""
    import mlflow

    import churn
    from churn.training.tracking import git_info, log_metrics, log_params

    mc, split = o.config.model, o.split
    exp_id = mlflow.get_run(run_id).info.experiment_id
    table = o.candidates_table()
    # An average of tied candidates gets a run of its own beside its members' (its reading is the choice's).
    readings = [*o.readings, *([o.choice.reading] if o.chosen.members else [])]
    for e in [*o.evaluated, *([o.chosen] if o.chosen.members else [])]:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"candidate-{e.name}", nested=True):
            log_params({"candidate": e.name, "kind": e.candidate.kind, "note": e.candidate.note,
                        "lgb": e.model.lgb_params_ if e.candidate.kind != "logistic" else None,
                        "best_iteration": e.model.best_iteration_, "blend_weights": list(e.model.blend_weights_),
                        "features": len(e.model.features_)})
            log_metrics({"valid_roc_auc": e.valid["roc_auc"], "valid_pr_auc": e.valid["pr_auc"]})
            log_metrics({f"forward_roc_auc_{r.rule}": r.roc_auc for r in readings if r.candidate == e.name})
            log_metrics(e.holdout, prefix="holdout_")
            mlflow.set_tags({"chosen": str(e is o.chosen).lower(),
                             "average_member": str(any(e is m for m, _ in o.chosen.members)).lower()})
    log_params({
        "chosen": o.choice.name, "kind": o.chosen.candidate.kind, "refit_rule": o.choice.rule,
        "blend_weights": list(o.model.blend_weights_),
        "lgb": o.model.lgb_params_ if o.chosen.candidate.kind != "logistic" else None,
        "model": {k: v for k, v in mc.model_dump().items() if k != "params"},
        "n_rows": len(o.frame),
        "n_features": len(o.model.features_),
        "n_categorical": sum(f.kind == "categorical" for f in o.model.features_),
        "rows": {"train": len(split.train), "early_stopping": len(split.early_stopping),
                 "calibration": len(split.calibration), "holdout": len(split.holdout),
                 "forward_fit": [len(r) for r in split.forward_fits], "forward_valid": len(split.forward_valid)},
        "refit": o.refit, "evaluation": split.scheme, "forward": split.forward,
        "snapshots": {k: ",".join(v) for k, v in split.snapshots.items()},
        "imbalance": mc.imbalance, "scale_pos_weight": o.scale_pos_weight,
        "train_positives": o.n_pos, "train_negatives": o.n_neg,
        "label": {"column": o.keys.label_col, "kind": o.config.label.kind, "horizon_days": o.config.label.horizon_days},
        "keys": {"id": o.keys.id_col, "time": o.keys.time_col},
        "heuristic_column": o.baselines.get("heuristic", {}).get("column"),
        "tune_trials": o.tune_trials, "tune_minutes": o.tune_minutes,
        "economics": {"save_rate": o.economics.save_rate, "cost": o.economics.cost} if o.economics else None,
        "dropped_leaks": [lk.column for lk in o.leaks if lk.column not in o.kept_leaks],
    })
    log_metrics(o.metrics)
    log_metrics({"train_positive_rate": o.n_pos / max(len(split.train), 1),
                 "forward_roc_auc": o.choice.reading.roc_auc})
    for name, row in table.items():
        log_metrics({k: v for k, v in row.items() if isinstance(v, float | int)}, prefix=f"candidate_{name}_")
    for bname, bm in o.baselines.items():
        log_metrics(bm, prefix=f"baseline_{bname}_")
    tags = {
        "churn_version": churn.__version__, "evaluation": split.scheme,
        "model.chosen": o.choice.name, "model.chosen_why": o.choice.why, "model.refit_rule": o.choice.rule,
        "metrics": METRICS_ARE,
        "baseline_check": o.beaten.get("check"), "baseline_detail": o.beaten.get("detail"),
        "chance_check": o.chance.get("verdict"), "chance_detail": o.chance.get("detail"),
        "profit.value_source": o.value_source, "profit.economics": getattr(o.economics, "source", ""),
        "heuristic": o.baselines.get("heuristic", {}).get("why"),
        **{f"data.{k}": str(v) for k, v in o.fingerprint.items()},
        **git_info(),
    }
    if o.beaten and not o.beaten["ok"]:
        tags["warning.baselines"] = "MODEL IS WORSE THAN A BASELINE: " + o.beaten["detail"]
    if o.chance.get("verdict") in ("chance", "inverted", "suspect"):
        tags[f"warning.{o.chance['verdict']}"] = o.chance["detail"]
    if o.leaks:
        tags["warning.leaks"] = "; ".join(lk.describe() for lk in o.leaks)
    mlflow.set_tags({k: str(v)[:5000] for k, v in tags.items() if v is not None})


def holdout_frame(o: Outcome) -> pd.DataFrame:
    """Holdout rows: keys, the model's features (as read) and the frame's other columns, so a champion
    trained on different features can still be scored on the same rows."""
    k, rows = o.keys, o.split.holdout
    keys = o.frame[[c for c in (k.id_col, k.time_col) if c]].iloc[rows].reset_index(drop=True)
    keys[k.id_col] = keys[k.id_col].astype(str).astype(object)
    others = [c for c in o.frame.columns if c not in o.clean.columns and c not in keys.columns]
    rest = o.frame[others].iloc[rows].reset_index(drop=True)
    for c in rest.columns:  # keep only columns parquet can store as they are
        try:
            pd.DataFrame({c: rest[c].head(1000)}).to_parquet(io.BytesIO())
        except Exception:  # noqa: BLE001 - mixed-type columns are simply not kept
            rest = rest.drop(columns=[c])
    return pd.concat([keys, o.clean.iloc[rows].reset_index(drop=True), rest], axis=1)


def with_label_risk(holdout_df: pd.DataFrame, y: np.ndarray, p: np.ndarray) -> pd.DataFrame:
    """The holdout frame with its label and the model's risk (what promotion compares champions on)."""
    from churn.training.registry import LABEL_COLUMN, RISK_COLUMN

    out = holdout_df.copy()
    out[LABEL_COLUMN] = y
    out[RISK_COLUMN] = p
    return out


def write_artifacts(tmp: Path, o: Outcome) -> None:
    """The run's files: features, metrics, metadata, tuning, the profit curve and the plots."""
    from churn.training.bundle import features_document
    from churn.training.tracking import jsonable

    model, y_ho, p_ho = o.model, o.y_holdout, o.p_holdout
    (tmp / "features.json").write_text(json.dumps(features_document(model), indent=2) + "\n")
    pd.DataFrame([f.to_dict() for f in o.features]).to_csv(tmp / "features.csv", index=False)
    (tmp / "metrics.json").write_text(json.dumps(jsonable({"model": o.metrics, "baselines": o.baselines}), indent=2,
                                                 sort_keys=True) + "\n")
    (tmp / "model_metadata.json").write_text(json.dumps(jsonable(model.metadata_), indent=2, sort_keys=True,
                                                        default=str) + "\n")
    if o.extra_metadata:
        (tmp / "extra_metadata.json").write_text(json.dumps(jsonable(o.extra_metadata), indent=2, default=str) + "\n")
    if o.tuned:
        (tmp / "tuning.json").write_text(json.dumps(jsonable(o.tuned), indent=2, default=str) + "\n")
    if o.curve is not None:
        step = max(1, len(o.curve) // 1000)
        o.curve.iloc[::step].to_csv(tmp / "profit_curve.csv", index=False)
    both_classes = len(np.unique(y_ho)) == 2
    if both_classes:
        reliability_table(y_ho, p_ho).to_csv(tmp / "reliability.csv", index=False)
    if o.config.model.plots:
        write_plots(tmp / "plots", o, both_classes)


def write_plots(pl: Path, o: Outcome, both_classes: bool) -> None:
    """The evaluation plots of the registered procedure on the holdout (model.plots)."""
    model, y_ho, p_ho = o.model, o.y_holdout, o.p_holdout
    curves = {"model": p_ho, **{_baseline_label(n, o.baselines[n]): p for n, p in o.baseline_scores.items()}}
    if both_classes:
        plots.roc_plot(y_ho, curves, pl / "roc.png")
        plots.pr_plot(y_ho, curves, pl / "pr.png")
        plots.calibration_plot(y_ho, o.p_raw_holdout, p_ho, pl / "calibration.png")
        plots.lift_gain_plot(y_ho, p_ho, pl / "lift_gain.png")
    if o.curve is not None and o.economics is not None:
        econ = o.economics
        plots.profit_plot(o.curve, pl / "profit.png", note=f"value: {o.value_source}; save rate "
                          f"{econ.save_rate:.2f}, cost {econ.cost:.2f} ({econ.source})")
    plots.importance_plot(model.feature_importance("gain"), pl / "feature_importance.png")
    rows = o.split.holdout
    mc = o.config.model
    if len(rows) > mc.max_shap_rows:
        rows = np.sort(np.random.default_rng(mc.seed).choice(rows, mc.max_shap_rows, replace=False))
    Xs = o.clean.iloc[rows][[f.name for f in model.features_]]
    plots.shap_summary_plot(model.contributions(Xs), Xs, pl / "shap_summary.png", seed=mc.seed)


def _baseline_label(name: str, metrics: dict[str, Any]) -> str:
    labels = {"logistic": "logistic regression", "l1_logistic": "L1 logistic regression", "bgnbd": "BG/NBD"}
    if name == "heuristic":
        return f"heuristic ({metrics.get('column')})"
    return labels.get(name, name)


def register(client: Any, run_id: str, o: Outcome, config_path: str | None, tmp: Path, holdout_df: pd.DataFrame,
             say: Callable[[str], None], warn: Callable[[str], None]) -> dict[str, str]:
    """Log the artifacts and the pyfunc, register it (alias challenger), record the logged model's file
    hashes (checked by every models:/ and runs:/ load) and export the bundle.

    The holdout artifact carries no customer ids, names or e-mails (ids pseudonymised under
    CHURN_PSEUDONYM_KEY when set, else dropped). If the tracking store fails on the way (a server gone), the
    bundle is still written, as `<name>-unregistered-<run>`, the run is ended as failed where the store
    still answers, and the error says so.
    """
    import mlflow

    from churn.io import checkpoint, pseudonym_key
    from churn.training import registry
    from churn.training.bundle import export_bundle
    from churn.training.loading import artifact_hashes, hash_tags
    from churn.training.pyfunc import log_pyfunc

    mc, model, metrics = o.config.model, o.model, o.metrics
    registry.holdout_artifact(holdout_df, o.y_holdout, o.p_holdout, tmp,
                              id_col=(model.metadata_.get("keys") or {}).get("id"),
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
        client.set_model_version_tag(mc.registered_name, version, "evaluation", o.split.scheme)
        client.set_model_version_tag(mc.registered_name, version, "chance_check", str(o.chance.get("verdict")))
        client.set_model_version_tag(mc.registered_name, version, "chance_detail", str(o.chance.get("detail"))[:5000])
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
                     "warnings": (" | ".join(o.warnings))[:5000] or "none"})
    return {"version": version, "model_uri": model_uri, "bundle": str(bundle)}
