"""Training, as the steps it runs: check the frame, read it as the model will, drop columns that leak the
label, split by time and customer, fit the candidates, read each one's registered procedure forward, choose,
fit the registered procedure on every row, judge it on the holdout against the baselines and against
chance, log the run, register, export a bundle and (optionally) promote.

Each step is a function of its own module: `checks`, `leakage`, `splits`, `tune`, `selection` (candidates
and the choice), `procedure` (refit rules, forward readings, the registered model), `baselines`,
`comparison` (verdicts with the holdout's noise); `run_log` records the `Outcome` in MLflow and the bundle.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.preparation import Preparation
from churn.training import procedure as proc
from churn.training.baselines import (
    BGNBD_COLUMN,
    HeuristicBaseline,
    l1_logistic_baseline,
    logistic_baseline,
    pick_heuristic_feature,
)
from churn.training.checks import check_calibration_rows, check_frame
from churn.training.comparison import beats_baselines, chance_verdict
from churn.training.leakage import find_leaks, leak_notice
from churn.training.metrics import (
    customer_value,
    holdout_metrics,
    incentive_economics,
    probability_metrics,
    profit_curve,
    profit_summary,
    ranking_metrics,
    top_share_metrics,
)
from churn.training.model import ChurnModel, sample_rows
from churn.training.outcome import Keys, Outcome
from churn.training.calibration import ProbabilityCalibrator
from churn.training.selection import Choice, calibration_method, candidate_list, choose, evaluate_candidates
from churn.training.splits import (  # noqa: F401 - re-exported: `from churn.training.train import split_...`
    Split,
    assert_holdout_customers_unseen,
    make_split,
    split_out_of_time,
)

log = logging.getLogger(__name__)

HOLDOUT_CUSTOMER_SHARE = 0.3
BASELINE_MAX_ROWS = 50_000  # plain baselines rank as well from a seeded sample
L1_BASELINE_MAX_ROWS = 10_000  # its penalty search fits 9 models: a sample ranks as well
SMALL_DATA_CHURNERS, SMALL_DATA_FOLDS = 5000, 3  # model.forward_folds 0: folds of the forward reading


@dataclass
class TrainResult:
    """What a training run produced.

    `metrics` are the registered procedure's holdout metrics (fitted on the rows before the holdout date,
    judged on holdout customers it never saw); `model` is the same procedure on every row. `candidates`
    holds each candidate's forward reading, validation ROC AUC and its evaluation fit's holdout metrics.
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
    holdout: pd.DataFrame | None = field(default=None, repr=False)  # holdout rows, label, registered risk
    verdict: str = ""  # the chance check: ok, chance, inverted, suspect or undefined


# ----------------------------------------------------------------------------------------- the steps
def drop_leaks(clean: pd.DataFrame, y: np.ndarray, ids: np.ndarray, features: list[Feature], keep: list[str],
               seed: int, warn: Callable[[str], None]) -> tuple[list[Feature], list[Any], list[str]]:
    """The features without the columns that alone rank the label (unless kept), the leaks found, and
    which of them were kept on the user's word (`churn.training.leakage`)."""
    leaks = find_leaks(clean, y, ids, features, seed=seed)
    kept = [lk.column for lk in leaks if lk.column in keep]
    if leaks:
        warn(leak_notice(leaks, kept))
    dropped = {lk.column for lk in leaks} - set(kept)
    remaining = [f for f in features if f.name not in dropped]
    if not remaining:
        raise ChurnError("every feature alone ranks the label almost perfectly, so all were dropped as leaks of "
                         "the label: " + "; ".join(lk.describe() for lk in leaks)
                         + ". If they are known before the outcome, keep them with --keep-column")
    return remaining, leaks, kept


def calibrate_registered(model: ChurnModel, choice: Choice, split: Split, frame: pd.DataFrame, y: np.ndarray,
                         ids: np.ndarray, config: Config, features: list[Feature], *, scale_pos_weight: float | None,
                         source: dict[str, Any] | None, say: Callable[[str], None],
                         ) -> tuple[str, ProbabilityCalibrator | None]:
    """Calibrate a refit: on its forward reading's predictions (later rows, unseen customers), or, with no
    later date, on out-of-fold predictions of the same procedure. Returns which, and the calibrator the
    holdout figure must use instead of the model's when the model's saw the holdout's labels (out of fold:
    the holdout's is fitted on the rows before it alone)."""
    method = config.model.calibration
    if choice.forward:
        proc.calibrated(model, choice.reading.raw, y[split.forward_valid], method)
        return (f"forward: the procedure's predictions of {len(split.forward_valid):,} rows at the validation "
                "date(s), fitted on earlier rows that never saw those customers' outcomes"), None
    kw = {"scale_pos_weight": scale_pos_weight, "source": source, "say": say}
    every = np.arange(len(y))
    oof = proc.out_of_fold_raw(choice.evaluated, choice.rule, frame, y, ids, split, config, features, rows=every, **kw)
    proc.calibrated(model, oof, y, method)
    before = split.before_holdout
    oof_before = proc.out_of_fold_raw(choice.evaluated, choice.rule, frame, y, ids, split, config, features,
                                      rows=before, **kw)
    held = ProbabilityCalibrator(calibration_method(method, len(before))).fit(oof_before, y[before])
    return f"out of fold ({config.model.calibration_folds} folds by customer)", held


def check_forward_rows(y: np.ndarray, split: Split) -> None:
    """Refuse a split whose forward reading cannot be read: its scored rows, or a fit's rows, of one class."""
    if len(split.forward_valid) and len(np.unique(y[split.forward_valid])) < 2:
        raise ChurnError(f"the rows the forward reading scores ({len(split.forward_valid):,} at "
                         f"{', '.join(split.snapshots.get('validation', []))}) hold only one class: need more "
                         "customers or snapshots, or more forward folds (model.forward_folds)")
    for rows in split.forward_fits:
        if len(np.unique(y[rows])) < 2:
            raise ChurnError(f"a forward fit's {len(rows):,} rows hold only one class: need more customers or "
                             "snapshots")


def fit_baselines(clean: pd.DataFrame, y: np.ndarray, split: Split, features: list[Feature],
                  seed: int) -> tuple[dict[str, dict[str, Any]], dict[str, np.ndarray]]:
    """Each plain baseline fitted on the rows before the holdout (the registered procedure's) and read on
    the holdout: (metrics and notes, scores) by name."""
    idx = sample_rows(split.before_holdout, BASELINE_MAX_ROWS, seed)
    Xf, yf, Xp, y_ho = clean.iloc[idx], y[idx], clean.iloc[split.holdout], y[split.holdout]
    scores = {"logistic": logistic_baseline(features, seed=seed).fit(Xf, yf).predict_proba(Xp)[:, 1]}
    notes: dict[str, dict[str, Any]] = {}
    try:  # the heuristic and the L1 regression read numbers
        column, why = pick_heuristic_feature(Xf, yf, features)
    except ValueError:  # no numeric feature that varies: no one-feature rule to compare with
        column = None
    if column is not None:
        scores["heuristic"] = HeuristicBaseline(column).fit(Xf, yf).predict_proba(Xp)[:, 1]
        notes["heuristic"] = {"column": column, "why": why}
        small = sample_rows(np.arange(len(idx)), L1_BASELINE_MAX_ROWS, seed)
        if len(np.unique(yf[small])) == 2:
            l1 = l1_logistic_baseline(features, seed=seed).fit(Xf.iloc[small], yf[small])
            scores["l1_logistic"] = l1.predict_proba(Xp)[:, 1]
    if BGNBD_COLUMN in clean.columns:
        scores["bgnbd"] = HeuristicBaseline(BGNBD_COLUMN).fit(Xf, yf).predict_proba(Xp)[:, 1]
        notes["bgnbd"] = {"column": BGNBD_COLUMN}
    metrics = {name: {**ranking_metrics(y_ho, p), **probability_metrics(y_ho, p), **top_share_metrics(y_ho, p),
                      **notes.get(name, {})} for name, p in scores.items()}
    return metrics, scores


# ----------------------------------------------------------------------------------------------- train
def train(frame: pd.DataFrame, features: list[Feature], config: Config, *, id_col: str = "customer_id",
          time_col: str | None = "as_of", label_col: str = "churned", data_fingerprint: dict | None = None,
          config_path: str | None = None, tune_trials: int = 0, tune_minutes: float | None = None,
          promote: bool = False, extra_metadata: dict | None = None, source: dict | None = None,
          progress: Callable[[str], None] | None = None,
          holdout_customer_share: float = HOLDOUT_CUSTOMER_SHARE, keep_columns: list[str] | tuple[str, ...] = (),
          force: bool = False) -> TrainResult:
    """Choose, fit the registered procedure, judge it, log, register (alias `challenger`), export a bundle and
    optionally promote (module docstring).

    `frame` holds `id_col`, `label_col` (0/1), optionally `time_col`, and one raw column per feature (yes/no
    text, numbers written as text and categories are read by the fitted preparation, as at scoring).
    `source` (the raw-data build's settings, its label horizon among them) is stored in the model's
    preparation for the scorer; `extra_metadata` in its metadata. `keep_columns` are kept although the
    leakage guard would drop them. A model that ranks churners *below* non-churners on the holdout is not
    registered unless `force`.
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
    horizon = int((source or {}).get("horizon_days") or config.label.horizon_days)
    folds = mc.forward_folds or (SMALL_DATA_FOLDS if int(y.sum()) < SMALL_DATA_CHURNERS else 1)
    split = make_split(ids, frame, time_col, config, holdout_customer_share, warn, horizon, folds)
    has_time = time_col is not None and time_col in frame.columns
    for note in split.notes:
        say(note)
    check_forward_rows(y, split)
    # Read on the rows before the holdout only: which columns a model may use must not depend on its labels.
    features, leaks, kept = drop_leaks(clean.iloc[split.before_holdout], y[split.before_holdout],
                                       ids[split.before_holdout], features, list(keep_columns), mc.seed, warn)
    clean = clean[[f.name for f in features]]
    n_pos, n_neg = int(y[split.train].sum()), int(len(split.train) - y[split.train].sum())
    if n_pos == 0:
        raise ChurnError("the training rows hold no churners")
    spw = (n_neg / n_pos) if mc.imbalance == "balanced" else None
    say(f"class balance in training rows: {n_pos:,} churners / {n_neg:,} others "
        f"({n_pos / len(split.train):.2%}); imbalance handling: {mc.imbalance}"
        + (f" (scale_pos_weight {spw:.2f}, undone by calibration)" if spw else ""))
    check_calibration_rows(y[split.calibration], mc.calibration, warn)
    if n_pos < 200:
        warn(f"only {n_pos} churners in the training rows: metrics will be noisy; the regularised candidates "
             "and the simplest model within noise of the best are what small data needs")
    fitting = {"scale_pos_weight": spw, "source": source, "say": say}

    from churn.training import run_log
    from churn.training.average import averaged
    from churn.training.tracking import mlflow_session
    from churn.training.tune import search_training_rows

    with mlflow_session() as client:
        run = run_log.open_run(client, mc.experiment, say)
        with run:
            run_id = run.info.run_id
            trees = any(c in mc.candidates for c in ("lightgbm", "lightgbm_stumps", "blend"))
            trials = (tune_trials or (mc.auto_tune_trials if len(split.train) <= mc.auto_tune_max_rows else 0)) \
                if trees else 0
            minutes = tune_minutes if tune_trials else (mc.auto_tune_minutes if trials else None)
            tuned = search_training_rows(frame, y, ids, split, features, config, spw, trials, minutes, run, say) \
                if trials > 0 else None
            candidates = candidate_list(config, tuned and tuned["best_params"], features)
            if not candidates:
                raise ChurnError(f"model.candidates {mc.candidates} leaves no candidate to fit (btyd needs BG/NBD's "
                                 "features, from an orders table with features.purchases.btyd on)")
            evaluated = evaluate_candidates(candidates, frame, y, split, features, config, ids=ids, **fitting)
            readings = proc.forward_readings(evaluated, frame, y, ids, split, config, features,
                                             with_refit=mc.refit, **fitting)
            read_rows = split.forward_valid if split.forward and mc.refit else split.validation
            choice = choose(evaluated, readings, forward=split.forward and mc.refit,
                            tie_margin=mc.tie_margin, force=mc.force_candidate, y_read=y[read_rows], seed=mc.seed)
            if mc.average_ties and mc.force_candidate is None:
                choice = averaged(choice, evaluated, readings, frame, y, split, mc.calibration)
            say(f"chosen: {choice.name}, refit rule '{choice.rule}' ({choice.why})")
            if choice.linear_won:
                warn(f"a candidate without LightGBM was chosen: {choice.why}")
            if not split.forward and mc.refit:
                warn("no later date to read the registered procedure on (a split by customer): the candidates were "
                     f"compared on validation rows and the refit follows the fallback rule '{proc.RULES[0]}'")
            model, refit = proc.register_procedure(choice.evaluated, choice.rule, frame, y, ids, split, config,
                                                   features, **fitting)
            model.fit_explainer()
            holdout_calibrator = None
            if choice.rule != proc.NO_REFIT:
                refit["calibration"], holdout_calibrator = calibrate_registered(
                    model, choice, split, frame, y, ids, config, features, **fitting)
            # What scoring runs compare their inputs and scores with (churn.monitoring): the newest snapshot.
            from churn.monitoring.reference import reference_for

            newest = (frame[time_col] == frame[time_col].max()).to_numpy() if has_time else np.ones(len(frame), bool)
            model.drift_reference_ = reference_for(model, frame.loc[newest], None, config)
            ch = choice.evaluated
            fits = [e for e, _ in ch.members] or [ch]  # an average's members stopped early, or did not, each
            if any(e.candidate.kind != "logistic" and e.model.best_iteration_ >= mc.num_boost_round for e in fits):
                warn(f"early stopping did not trigger within {mc.num_boost_round} rounds; consider raising "
                     "model.num_boost_round or the learning rate")

            y_ho = y[split.holdout]
            say(f"judging the registered procedure on {len(y_ho):,} holdout rows ({split.scheme.replace('_', ' ')})")
            p_raw_ho = proc.holdout_procedure(ch, choice.rule, frame, y, ids, split, config, features, **fitting)
            p_ho = (holdout_calibrator or model.calibrator_).predict(p_raw_ho)
            if len(np.unique(y_ho)) < 2:
                warn("the holdout holds only one class: ranking metrics are undefined")
            metrics = holdout_metrics(y_ho, p_ho, p_raw_ho)
            say("fitting baselines (plain logistic regression, L1 logistic regression, one-feature heuristic"
                + (", BG/NBD" if BGNBD_COLUMN in clean.columns else "") + ")")
            baselines, baseline_scores = fit_baselines(clean, y, split, features, mc.seed)
            econ = incentive_economics(config)
            value, value_source = customer_value(frame.iloc[split.holdout], config)
            curve = profit_curve(y_ho, p_ho, value, econ.save_rate, econ.cost)
            metrics.update(profit_summary(curve))
            metrics["best_iteration"] = float(max(e.model.best_iteration_ for e in fits))
            metrics["valid_roc_auc"] = ch.valid["roc_auc"]
            metrics["forward_roc_auc"] = choice.reading.roc_auc
            if value_source.startswith("no customer value"):
                warn(f"profit curve: {value_source}")
            beaten = beats_baselines(y_ho, p_ho, baseline_scores, mc.seed)
            metrics.update({f"vs_{k}": {"better": 1.0, "within noise": 0.0, "worse": -1.0}.get(v, np.nan)
                            for k, v in beaten["verdicts"].items()})
            if not beaten["ok"]:
                warn("MODEL IS WORSE THAN A BASELINE on the holdout: " + beaten["detail"])
            else:
                say("against the baselines on the holdout: " + beaten["detail"])
            chance = chance_verdict(y_ho, p_ho, mc.seed)
            if chance["verdict"] in ("chance", "inverted", "suspect"):
                warn(chance["detail"])

            outcome = Outcome(
                config=config, keys=Keys(id_col, time_col if has_time else None, label_col), features=features,
                clean=clean, frame=frame, y=y, split=split, evaluated=evaluated, readings=readings, choice=choice,
                model=model, refit=refit, leaks=leaks, kept_leaks=kept, scale_pos_weight=spw, n_pos=n_pos,
                n_neg=n_neg, p_holdout=p_ho, p_raw_holdout=p_raw_ho, metrics=metrics, baselines=baselines,
                baseline_scores=baseline_scores, beaten=beaten, chance=chance, curve=curve,
                value_source=value_source, economics=econ, tuned=tuned, tune_trials=tune_trials,
                tune_minutes=tune_minutes, extra_metadata=extra_metadata, warnings=warns,
                fingerprint=run_log.fingerprint(frame, id_col, time_col if has_time else None, label_col,
                                                data_fingerprint))
            model.metadata_.update(run_log.metadata(outcome, run_id))
            run_log.log_run(outcome, run_id)
            if chance["verdict"] == "inverted" and not force:
                import mlflow

                mlflow.end_run("FAILED")
                raise ChurnError(f"{chance['detail']}. The model was NOT registered (MLflow run {run_id} records "
                                 "it); train with --force to register it anyway")
            with tempfile.TemporaryDirectory(prefix="churn-train-") as tmpd:
                tmp = Path(tmpd)
                say("writing the run's files" + (" and drawing its plots" if mc.plots else ""))
                run_log.write_artifacts(tmp, outcome)
                holdout_df = run_log.holdout_frame(outcome)
                reg = run_log.register(client, run_id, outcome, config_path, tmp, holdout_df, say, warn)

        promotion = None
        if promote:
            from churn.training import registry

            say("comparing with the champion")
            promotion = registry.promote(mc.registered_name, config, version=reg["version"],
                                         holdout=run_log.with_label_risk(holdout_df, y_ho, p_ho), force=force)
            say(f"promotion: {promotion['decision']} ({promotion['reason']})")
            if promotion["decision"] == "refused":
                warn(f"NOT PROMOTED: {promotion['reason']}")
    return TrainResult(run_id=run_id, model_uri=reg["model_uri"], registered_name=mc.registered_name,
                       version=reg["version"], metrics=metrics, baseline_metrics=baselines,
                       bundle_path=reg["bundle"], warnings=warns, promoted=bool(promotion and promotion["promoted"]),
                       promotion=promotion, evaluation=split.scheme, chosen=choice.name, chosen_why=choice.why,
                       candidates=outcome.candidates_table(), refit=refit, model=model,
                       holdout=run_log.with_label_risk(holdout_df, y_ho, p_ho), verdict=chance["verdict"])
