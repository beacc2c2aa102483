"""The files at the edges of the loop: a past scoring run and the data in, campaign_effect.json, the effects
file and an MLflow run out. `measure_campaigns` is what `churn campaign-effect` does.

A run folder is what `churn score` wrote: scores.parquet (the plan's columns, `would_be_incentive` included)
and summary.json (its as-of date in ``meta``), read by `churn.scoring.run_folder`. Outputs are written
atomically and an existing one is never replaced silently: the same content is left as it is, different
content needs `overwrite`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churn.campaigns.effect import ALL, CampaignEffect, control_advice, measure, plan_rows, realised_labels
from churn.campaigns.learning import Effects, catalogue_rates, pool_cells, shrink
from churn.errors import ChurnError
from churn.io import write_json
from churn.scoring.run_folder import SCORES_FILE, check_run_folder, read_scoring_run, read_summary

EFFECT_FILE = "campaign_effect.json"
EFFECTS_FILE = "effects.json"
Progress = Callable[[str], None] | None


def campaign_of_run(run_dir: str | Path) -> Any:
    """The campaign a scoring run planned, as the generator takes it (`churn.generate.Campaign`): on the
    run's as-of date, its contacted customers with their offers. For simulating what the plan did."""
    from churn.generate import Campaign

    scores, summary = read_scoring_run(run_dir)
    rows = plan_rows(scores, str(Path(run_dir) / SCORES_FILE))
    sent = rows.loc[rows["treated"], ["customer_id", "incentive"]].reset_index(drop=True)
    return Campaign(pd.Timestamp(summary["meta"]["as_of"]).date(), contacts=sent)


def measure_run(run_dir: str | Path, data: str | None, config: Any, *, progress: Progress = None
                ) -> CampaignEffect:
    """Measure the campaign of one run folder against the realised labels in `data` (see
    `churn.campaigns.effect`)."""
    return _measure_runs([run_dir], data, config, progress=progress)[0][0]


def _measure_runs(runs: Sequence[str | Path], data: str | None, config: Any, *, progress: Progress = None
                  ) -> tuple[list[CampaignEffect], list[pd.DataFrame]]:
    """(each run's measured campaign, its customers with their label: `plan_rows`' columns and churned). Each
    run folder's summary and scores are checked for before the data, and the data validated once for all."""
    from churn.validation import load_source

    for run in runs:  # a wrong folder is named before the (long) validation of the data
        check_run_folder(run)
    if progress:
        progress("validating data")
    ds = load_source(data, config)
    try:
        out = [_measure_run(run, ds, data, config, progress=progress) for run in runs]
    finally:
        ds.con.close()
    return [m for m, _ in out], [rows for _, rows in out]


def _measure_run(run_dir: str | Path, ds: Any, data: str | None, config: Any, *, progress: Progress = None
                 ) -> tuple[CampaignEffect, pd.DataFrame]:
    """One run of `_measure_runs`, on the open source `ds` (`data` names it in notices)."""
    from churn.scoring.score import output_key

    run = Path(run_dir)
    if progress:
        progress(f"measuring {run}")
    scores, summary = read_scoring_run(run)
    as_of = pd.Timestamp(summary["meta"]["as_of"])
    campaign = plan_rows(scores, str(run / SCORES_FILE))
    if progress:
        progress(f"reading the labels at {as_of.date()}")
    labels = realised_labels(ds, config, as_of)
    kind = str(labels.attrs["label"])
    key = output_key(config)
    if key is not None:  # the run names customers by pseudonym: so must the labels, to join
        from churn.io import pseudonymise

        labels = labels.assign(customer_id=pseudonymise(labels["customer_id"], key).to_numpy())
    assumed = catalogue_rates(config)
    estimates, unlabelled = measure(campaign, labels, assumed)
    share = float(config.incentives.control_share)
    notices = []
    if unlabelled:
        notices.append(f"{unlabelled:,} customer(s) of the campaign are not among the active customers at "
                       f"{as_of.date()} in {data}; they are left out")
    if not len(campaign):
        notices.append(f"{run}: nobody was contacted or held out with an offer; there is nothing to measure")
    total = next((e for e in estimates if e.tier == ALL and e.incentive == ALL), None)
    labelled = campaign.merge(labels[["customer_id", "churned"]], on="customer_id")
    return CampaignEffect(
        run=str(run), as_of=str(as_of.date()), horizon_days=int(config.label.horizon_days), label=kind,
        currency=str((summary.get("summary") or {}).get("currency", config.incentives.currency)),
        control_share=share, customers=(total.treated + total.control) if total else 0, unlabelled=unlabelled,
        estimates=estimates, advice=control_advice(estimates, assumed, share), notices=notices,
    ), labelled


def _check_same(obj: dict[str, Any], path: Path) -> bool:
    """True when `path` already holds exactly `obj`; False when there is no such file; a ChurnError when it
    holds something else (never replaced silently)."""
    if not path.exists():
        return False
    try:
        same = json.loads(path.read_text(encoding="utf-8")) == json.loads(json.dumps(obj, default=str))
    except (UnicodeDecodeError, json.JSONDecodeError, IsADirectoryError):
        same = False
    if not same:
        raise ChurnError(f"{path} already exists with other results; pass --overwrite to replace it")
    return True


def write_once(obj: dict[str, Any], path: Path, overwrite: bool) -> bool:
    """Write JSON atomically; True when written. Identical content already there is left as it is (False);
    different content is refused unless `overwrite`."""
    if not overwrite and _check_same(obj, path):
        return False
    write_json(obj, path, overwrite=overwrite)
    return True


def _metric_name(*parts: str) -> str:
    """An MLflow metric name from tier / offer names (MLflow allows letters, digits, _ - . / and spaces)."""
    return ".".join(re.sub(r"[^\w\-/ ]", "_", "all" if p == ALL else p) for p in parts)


def log_effect(effect: CampaignEffect, config: Any) -> str:
    """Log a measured campaign to MLflow (experiment `<model.experiment>-campaigns`): the run's settings as
    params, every estimate's churn, difference, save rate, customers saved and ROI as metrics, and
    campaign_effect.json as an artifact. Returns the MLflow run id."""
    import mlflow

    from churn.training.tracking import ensure_experiment, mlflow_session

    with mlflow_session() as client:
        exp = ensure_experiment(client, f"{config.model.experiment}-campaigns")
        with mlflow.start_run(experiment_id=exp, run_name=f"campaign {effect.as_of}") as active:
            mlflow.set_tags({"churn.kind": "campaign-effect", "churn.run": effect.run})
            mlflow.log_params({"as_of": effect.as_of, "horizon_days": effect.horizon_days, "label": effect.label,
                               "run": effect.run, "control_share": effect.control_share})
            metrics: dict[str, float] = {"customers": float(effect.customers), "unlabelled": float(effect.unlabelled)}
            for e in effect.estimates:
                for name in ("churn_treated", "churn_control", "difference", "difference_low", "difference_high",
                             "p_value", "save_rate", "save_rate_low", "save_rate_high", "saved", "cost",
                             "cost_per_saved", "roi", "detectable_save_rate"):
                    v = getattr(e, name)
                    if v is not None and pd.notna(v) and abs(v) != float("inf"):
                        metrics[_metric_name(name, e.tier, e.incentive)] = float(v)
            mlflow.log_metrics(metrics)
            mlflow.log_dict(effect.to_dict(), EFFECT_FILE)
            return active.info.run_id


@dataclass
class CampaignRun:
    """What `churn campaign-effect` measured, learned and wrote."""

    effects: list[CampaignEffect]
    learned: Effects
    files: list[Path] = field(default_factory=list)  # written now (identical files already there are not)
    mlflow_runs: list[str] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # what the learning could not do, and why


def uplift_history(measured: Sequence[CampaignEffect], labelled: Sequence[pd.DataFrame], data: str | None,
                   config: Any, model: Any) -> tuple[pd.DataFrame, list[str]]:
    """(history, notices): what `churn.campaigns.uplift.learn_uplift` learns from. Per measured campaign (in
    the order given, `campaign` 0, 1, ...) its customers with their label (`labelled`, from `_measure_runs`),
    offer, tier and the plan's churn probability, and the churn `model`'s features as of the campaign's date,
    built from `data` as `churn score` builds them, every date in one pass (`model_features`; point in time:
    what happened since does not change them). Customers without a probability or without features are left
    out, and counted in a notice; a date with nobody active is a ChurnError."""
    from churn.scoring.model_features import model_features
    from churn.scoring.score import output_key

    key = output_key(config)
    features = [f.name for f in model.features_]
    where = data or "the configured data source"
    wanted: dict[pd.Timestamp, set[str]] = {}
    for effect, rows in zip(measured, labelled):
        wanted.setdefault(pd.Timestamp(effect.as_of), set()).update(rows["customer_id"].astype(str))

    def campaign_rows(when: pd.Timestamp, built: pd.DataFrame) -> pd.DataFrame:
        """The campaigns' customers among one date's rows (named as the runs name them)."""
        if built.empty:
            raise ChurnError(f"no customer is active as of {when.date()} in {where}")
        missing = [c for c in features if c not in built.columns]
        if missing:
            raise ChurnError(f"{where}: the churn model's feature(s) {missing[:5]} were not built as of {when.date()}")
        ids = built["customer_id"].astype(str)
        if key is not None:  # the run names customers by pseudonym: so must the features, to join
            from churn.io import pseudonymise

            ids = pd.Series(pseudonymise(ids, key).to_numpy(), index=built.index)
        mine = ids.isin(wanted[when]).to_numpy()
        return built.loc[mine, features].assign(customer_id=ids[mine].to_numpy())

    by_date = model_features(model, data, list(wanted), config, campaign_rows)
    frames, notices = [], []
    for k, (effect, rows) in enumerate(zip(measured, labelled)):
        base = by_date[pd.Timestamp(effect.as_of)]
        h = rows.rename(columns={"incentive": "offer", "tier": "risk_tier", "probability": "churn_probability"})
        unpriced = ~pd.to_numeric(h["churn_probability"], errors="coerce").between(0.0, 1.0)
        joined = h[~unpriced].merge(base, on="customer_id")
        unbuilt = ~unpriced & ~h["customer_id"].isin(joined["customer_id"])
        for left_out, what in ((unpriced, "without a churn probability in scores.parquet"),
                               (unbuilt, f"without features as of {effect.as_of} in {where}")):
            if left_out.any():
                ex = ", ".join(h.loc[left_out, "customer_id"].astype(str).head(3))
                notices.append(f"{effect.run}: {int(left_out.sum()):,} campaign customer(s) {what} are left out "
                               f"of the uplift models, e.g. {ex}")
        frames.append(joined.assign(campaign=k))
    history = pd.concat(frames, ignore_index=True)
    history["treated"] = history["treated"].astype(bool)
    history["churned"] = history["churned"].astype(int)
    return history, notices


def learn_uplift_from_runs(runs: Sequence[str | Path], measured: Sequence[CampaignEffect],
                           labelled: Sequence[pd.DataFrame], data: str | None, config: Any,
                           model_ref: str | None = None, *, strength: float | None = None,
                           progress: Progress = None) -> tuple[dict[str, Any], list[str]]:
    """(the effects file's ``uplift`` section, notices): per offer, the hazard-ratio model
    (`churn.campaigns.hazard`) fitted on every campaign but the latest (by date, whatever the order of
    `runs`), judged on the latest against the tier rates the plan would use had it been learned without it
    (`strength` as given for the file's rates), and refitted on all where it predicts better. `model_ref` is
    the churn model whose features it reads (default: the one the latest run was scored with). Only the
    hazard ratio is learned here: an effects file holds plain numbers, and the LightGBM learners would need
    a pickle. What cannot be learned is a notice, not an error: the tier rates stand on their own."""
    from churn.campaigns.learning import applied_rates
    from churn.campaigns.uplift import learn_uplift, uplift_record
    from churn.scoring.model_features import rebuildable
    from churn.training.loading import load_model

    def skip(why: str) -> tuple[dict[str, Any], list[str]]:
        return {}, [f"per-customer effects (uplift) were not learned: {why}; the plan uses the tier rates"]

    if len(runs) < 2:
        return skip("they need two or more campaigns, one held out to judge them")
    dates = [e.as_of for e in measured]
    repeated = sorted(d for d in set(dates) if dates.count(d) > 1)
    if repeated:
        return skip(f"two runs are of the same date ({', '.join(repeated)}): name each campaign once")
    order = sorted(range(len(runs)), key=lambda i: dates[i])  # the held-out campaign is the latest by date
    runs, measured, labelled = [runs[i] for i in order], [measured[i] for i in order], [labelled[i] for i in order]
    meta = read_summary(runs[-1])["meta"]
    ref = model_ref or str(meta.get("model") or "")
    try:
        model = load_model(ref)
    except ChurnError as exc:
        if model_ref:  # asked for by name: its failure is the answer
            raise
        return skip(f"the latest run's model {ref!r} could not be loaded ({exc}); pass --model")
    if not rebuildable(model):
        return skip(f"model {ref!r} was trained on a ready feature table, whose features cannot be rebuilt as "
                    "of each campaign's date")
    if progress:
        progress("building the campaigns' features for the uplift models")
    try:
        history, notices = uplift_history(measured, labelled, data, config, model)
    except ChurnError as exc:  # e.g. nobody active at a campaign's date in this data
        return skip(f"the campaigns' features could not be built ({exc})")
    if not (history["campaign"] == len(measured) - 1).any():  # else an earlier campaign would be held out
        return {}, [*notices, *skip(f"no customer of the latest campaign ({measured[-1].as_of}) could be joined "
                                    "to their features")[1]]
    earlier = learn(measured[:-1], config, strength)
    used = applied_rates(earlier, catalogue_rates(config))  # clipped to [0, 1], as the plan reads them
    tier_rates = {inc: {t: r.rate for t, r in by.items()} for inc, by in used.items()}
    if progress:
        progress("fitting and judging the uplift models")
    try:
        learned = learn_uplift(history, [f.name for f in model.features_], tier_rates, seed=int(config.seed),
                               n_jobs=1, models=("hazard_ratio",))
    except ChurnError as exc:
        return {}, [*notices, *skip(str(exc))[1]]
    from churn.scoring.score import model_version

    # The version `churn score` writes beside each row, so a plan can tell scores of another churn model.
    return uplift_record(learned, ref, model_version(model, ref)), notices


def learn(measured: Sequence[CampaignEffect], config: Any, strength: float | None = None) -> Effects:
    """The save rates the next plan reads: every measured campaign's cells pooled, shrunk towards the
    catalogue (`churn.campaigns.learning.shrink`; with two or more campaigns, the catalogue's weight is the
    one whose rates best predict a campaign they were not learnt from)."""
    return shrink(pool_cells(measured), catalogue_rates(config), strength,
                  [{"run": e.run, "as_of": e.as_of, "horizon_days": e.horizon_days} for e in measured],
                  campaigns=[pool_cells([e]) for e in measured])


def measure_campaigns(runs: Sequence[str | Path], data: str | None, config: Any, *,
                      effects_out: str | Path | None = None, strength: float | None = None,
                      overwrite: bool = False, log: bool = True, uplift: bool = True, model_ref: str | None = None,
                      progress: Progress = None) -> CampaignRun:
    """What `churn campaign-effect` does: measure each run's campaign and learn save rates from all of them
    (and, with `uplift` and two or more runs, per-customer effects: `learn_uplift_from_runs`); then write
    campaign_effect.json into each run's folder and the effects file (`effects_out`, default: effects.json
    in the latest run's folder, by date), and log each newly written measurement to MLflow. Nothing is written or
    logged when a file would replace different results without `overwrite`."""
    if not runs:
        raise ChurnError("name at least one scoring run folder (--run outputs/<as-of>)")
    measured, labelled = _measure_runs(runs, data, config, progress=progress)
    learned = learn(measured, config, strength)
    notices: list[str] = []
    if uplift:
        learned.uplift, notices = learn_uplift_from_runs(runs, measured, labelled, data, config, model_ref,
                                                         strength=strength, progress=progress)
    latest = max(range(len(runs)), key=lambda i: measured[i].as_of)
    target = Path(effects_out) if effects_out else Path(runs[latest]) / EFFECTS_FILE
    outputs = [(e.to_dict(), Path(r) / EFFECT_FILE) for e, r in zip(measured, runs)]
    outputs.append((learned.to_dict(), target))
    if not overwrite:  # refuse before writing anything
        for obj, path in outputs:
            _check_same(obj, path)
    files, logged = [], []
    for (obj, path), effect in zip(outputs, [*measured, None]):
        if write_once(obj, path, overwrite):
            files.append(path)
            if log and effect is not None:
                logged.append(log_effect(effect, config))
    return CampaignRun(measured, learned, files, logged, notices)
