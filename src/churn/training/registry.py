"""Registry aliases and promotion: `challenger` is every new version, `champion` moves only when it wins.

The challenger and the current champion are compared on the challenger's holdout (the newest snapshot it
never trained on), kept as the run artifact `holdout/holdout.parquet` with the challenger's own holdout
predictions; that artifact holds no customer ids, names or e-mails (`holdout_artifact`). The champion is scored on those rows with its own model. Aliases only, never stages.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException

from churn.config import Config
from churn.errors import ChurnError
from churn.training.metrics import probability_metrics, ranking_metrics
from churn.training.tracking import mlflow_session

log = logging.getLogger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
PREVIOUS_CHAMPION = "previous_champion"
HOLDOUT_ARTIFACT_DIR = "holdout"
HOLDOUT_FILE = "holdout.parquet"
LABEL_COLUMN = "__label__"
RISK_COLUMN = "__risk__"
PSEUDONYM_COLUMN = "__customer_pseudonym__"
MIN_GROUP = 5  # a text value shared by fewer holdout rows is blanked in the logged holdout
PERSONAL_NAME = re.compile(r"name|e-?mail|phone|mobile|address|street|zip|postcode|birth|iban|ssn|passport",
                           re.IGNORECASE)
LOWER_IS_BETTER = {"log_loss", "brier"}


def metric_value(metric: str, y: np.ndarray, p: np.ndarray) -> float:
    """One of roc_auc, pr_auc, log_loss, brier."""
    vals = {**ranking_metrics(y, p), **probability_metrics(y, p)}
    if metric not in vals:
        raise ChurnError(f"unknown promotion metric {metric!r}; use one of {sorted(vals)}")
    return float(vals[metric])


def is_better(metric: str, challenger: float, champion: float) -> bool:
    """Strictly better: higher AUCs, lower log loss / Brier. NaN never wins."""
    if not np.isfinite(challenger):
        return False
    if not np.isfinite(champion):
        return True
    return challenger < champion if metric in LOWER_IS_BETTER else challenger > champion


def alias_version(client: MlflowClient, name: str, alias: str) -> str | None:
    """The version an alias points to, or None."""
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(client: MlflowClient, name: str, alias: str, version: str | int) -> None:
    """Point `alias` at `version`."""
    client.set_registered_model_alias(name, alias, str(version))


def _holdout_of(client: MlflowClient, run_id: str) -> pd.DataFrame:
    with tempfile.TemporaryDirectory(prefix="churn-holdout-") as tmp:
        try:
            local = client.download_artifacts(run_id, f"{HOLDOUT_ARTIFACT_DIR}/{HOLDOUT_FILE}", tmp)
        except (MlflowException, OSError) as exc:
            raise ChurnError(f"run {run_id} has no holdout artifact to compare on ({exc})") from None
        return pd.read_parquet(local)


def promote(name: str, config: Config, *, version: str | int | None = None, holdout: pd.DataFrame | None = None,
            force: bool = False) -> dict[str, Any]:
    """Move `champion` to the challenger (alias `challenger`, or `version`) if it beats the current champion
    on the challenger's holdout by `config.model.promote_metric`; with no champion it is promoted.

    Both scores and the decision are logged on the challenger's run (tags and metrics) and on the model
    version (tags), and returned. A challenger whose holdout ROC AUC is no better than chance (the version's
    `chance_check` tag, set at training) is refused. `force=True` promotes even when the challenger loses, is
    at chance, or the champion cannot be scored (e.g. it needs features the new holdout lacks).
    """
    metric = config.model.promote_metric
    with mlflow_session() as client:
        try:
            client.get_registered_model(name)
        except MlflowException:
            raise ChurnError(f"no registered model named {name!r} in {client.tracking_uri}") from None
        challenger = str(version) if version is not None else alias_version(client, name, CHALLENGER)
        if challenger is None:
            raise ChurnError(f"model {name!r} has no '{CHALLENGER}' version to promote; train one first")
        try:
            mv = client.get_model_version(name, challenger)
        except MlflowException:
            raise ChurnError(f"model {name!r} has no version {challenger}") from None
        champion = alias_version(client, name, CHAMPION)
        out: dict[str, Any] = {"name": name, "metric": metric, "challenger_version": challenger,
                               "champion_version": champion, "challenger_score": None, "champion_score": None,
                               "promoted": False, "decision": "", "reason": ""}
        if champion == challenger:
            out.update(decision="already_champion", reason=f"version {challenger} is already the champion")
            return out
        verdict = mv.tags.get("chance_check", "")
        if verdict in ("chance", "inverted") and not force:
            # A model no better than a coin (or worse) must not score customers, champion or not.
            out.update(decision="refused", reason=f"the challenger is no better than chance on its holdout: "
                       f"{mv.tags.get('chance_detail', verdict)}")
            _log_decision(client, mv.run_id, name, challenger, out)
            log.warning("promotion of %s v%s refused: %s", name, challenger, out["reason"])
            return out
        if champion is None:
            out.update(promoted=True, decision="promoted", reason="there was no champion")
        else:
            frame = holdout if holdout is not None else _holdout_of(client, mv.run_id)
            y = frame[LABEL_COLUMN].to_numpy()
            out["challenger_score"] = metric_value(metric, y, frame[RISK_COLUMN].to_numpy())
            from churn.training.loading import load_model

            try:
                champ_model = load_model(f"models:/{name}/{champion}")
                out["champion_score"] = metric_value(metric, y, champ_model.predict_risk(frame))
            except ChurnError as exc:
                out.update(decision="not_comparable", reason=f"the champion cannot score the holdout: {exc}")
            if out["champion_score"] is not None:
                better = is_better(metric, out["challenger_score"], out["champion_score"])
                direction = "lower" if metric in LOWER_IS_BETTER else "higher"
                out.update(
                    promoted=better,
                    decision="promoted" if better else "kept_champion",
                    reason=(f"{metric} {out['challenger_score']:.5f} (challenger v{challenger}) vs "
                            f"{out['champion_score']:.5f} (champion v{champion}) on the challenger's holdout "
                            f"of {len(frame):,} rows; {direction} is better"),
                )
            if force and not out["promoted"]:
                out.update(promoted=True, decision="forced", reason=out["reason"] + " (promotion forced)")
        if out["promoted"]:
            if champion is not None:
                set_alias(client, name, PREVIOUS_CHAMPION, champion)
            set_alias(client, name, CHAMPION, challenger)
        _log_decision(client, mv.run_id, name, challenger, out)
        log.info("promotion of %s v%s: %s (%s)", name, challenger, out["decision"], out["reason"])
        return out


def _log_decision(client: MlflowClient, run_id: str, name: str, version: str, out: dict[str, Any]) -> None:
    tags = {"promotion.decision": out["decision"], "promotion.reason": out["reason"][:5000],
            "promotion.metric": out["metric"], "promotion.champion_version": str(out["champion_version"]),
            "promotion.promoted": str(out["promoted"]).lower()}
    for k, v in tags.items():
        client.set_tag(run_id, k, v)
        client.set_model_version_tag(name, version, k, v)
    ts = int(time.time() * 1000)
    metrics = []
    for who in ("challenger", "champion"):
        v = out[f"{who}_score"]
        if v is not None and np.isfinite(v):
            metrics.append(Metric(f"promotion_{who}_{out['metric']}", float(v), ts, 0))
    if metrics:
        client.log_batch(run_id, metrics=metrics)


def holdout_artifact(frame: pd.DataFrame, y: np.ndarray, risk: np.ndarray, folder: Path, *,
                     id_col: str | None = None, features: list[str] | None = None,
                     key: bytes | None = None) -> Path:
    """Write the holdout (model inputs, label, the model's holdout predictions) for later comparison,
    with nothing personal in it.

    The id column is dropped (with `key`, replaced by keyed pseudonyms, so rows can be joined by whoever
    holds the key and by no one else). Other columns are kept so a champion trained on other features can
    still be scored on the same rows, except contact details: text columns named like names, e-mails,
    phones or addresses are dropped, and in every other text column a value seen in fewer than
    `MIN_GROUP` rows is blanked (a unique value - a name, an e-mail, an id - could single a customer out;
    a plan or a region shared by many cannot).
    """
    from churn.io import pseudonymise

    inputs = set(features or [])
    out = frame.drop(columns=[c for c in frame.columns if c == id_col
                              or (c not in inputs and PERSONAL_NAME.search(str(c)))]).copy()
    for c in out.columns:
        col = out[c]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_datetime64_any_dtype(col):
            continue
        counts = col.astype(str).map(col.astype(str).value_counts())
        out[c] = col.where(counts >= MIN_GROUP)
    if id_col and key is not None and id_col in frame.columns:
        out.insert(0, PSEUDONYM_COLUMN, pseudonymise(frame[id_col], key).to_numpy())
    out[LABEL_COLUMN] = np.asarray(y, dtype="int64")
    out[RISK_COLUMN] = np.asarray(risk, dtype="float64")
    path = Path(folder) / HOLDOUT_ARTIFACT_DIR / HOLDOUT_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_parquet(path, index=False)
    return path
