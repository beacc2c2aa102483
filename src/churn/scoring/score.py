"""Batch scoring: features as of a date (or a ready table) -> calibrated risk + reasons -> retention plan.

Outputs of one run go to `<out_root>/<as_of>/` (scores.parquet, segments/, segments.xlsx, report.html,
alerts.csv, summary.json), assembled in a temporary folder and swapped into place only when complete.
scores.parquet holds one row per current customer at as_of (or per id of a `--customers` list), each with
a `status` (`churn.scoring.status`): only `scored` rows have a probability, reasons and a plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config
from churn.errors import ChurnError, DataValidationError
from churn.io import (
    PSEUDONYM_KEY_ENV,
    atomic_dir,
    ensure_writable,
    pseudonym_key,
    pseudonymise,
    read_table,
    write_csv,
    write_json,
    write_parquet,
)
from churn.scoring import status
from churn.scoring.model_features import build_for_model, features_config
from churn.scoring.population import read_customer_list, standing_rows, table_standing, with_status
from churn.scoring.reasons import N_REASONS, reason_codes
from churn.scoring.run_folder import SCORES_FILE, SUMMARY_FILE, has_scores, read_scores
from churn.timeline import parse_as_of

Progress = Callable[[str], None] | None
ChunkProgress = Callable[[int, int], None] | None
ATTRIBUTES = ["name", "email", "plan", "region", "country", "language", "channel", "marketing_consent",
              "monthly_fee"]
# Customer attributes scores.parquet may carry (what the plan was decided on): nothing that identifies or
# reaches a person. Names, e-mails and other contact columns go to segment files only, when configured.
SCORE_ATTRIBUTES = ["plan", "region", "country", "language", "channel", "marketing_consent", "monthly_fee",
                    "last_activity_at"]  # the last one: when a lapsed (unscored) customer was last active
SCORE_COLUMNS = ["customer_id", "as_of", "status", "churn_probability", "risk_tier",
                 *[f"reason_{i + 1}" for i in range(N_REASONS)], "customer_value", "expected_loss", "incentive",
                 "channel", "contact", "holdout", "model_version"]


@dataclass
class ScoreRun:
    """What one scoring run wrote and decided."""

    out_dir: Path
    n_scored: int  # rows with status `scored`
    summary: dict[str, Any]  # PlanSummary.to_dict(), as in summary.json; `status_counts` counts every row
    files: list[Path] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    # What the run's reader must know before trusting it (a scoring date outside the data): also in
    # summary.json ("warnings") and at the top of the report.
    warnings: list[str] = field(default_factory=list)
    health: dict[str, Any] = field(default_factory=dict)  # drift.json: drift, estimated performance, breaches


def model_version(model: Any, ref: str) -> str:
    """A readable version label: registered name/version when known, else the reference."""
    meta = getattr(model, "metadata_", {}) or {}
    name, ver = meta.get("registered_name"), meta.get("registered_version")
    return f"{name}/{ver}" if name and ver else str(meta.get("model_version") or ref)


def score_frame(model: Any, frame: pd.DataFrame, *, chunk_rows: int = 200_000, reason_method: str = "path",
                progress: ChunkProgress = None) -> pd.DataFrame:
    """Calibrated churn probability and reason codes for every row, in chunks of bounded memory."""
    # Validated and encoded once, up front: a clear error on missing columns / wrong types before any work.
    enc, _ = model.encode(frame)
    features = list(model.features_)
    probs: list[np.ndarray] = []
    reasons: list[pd.DataFrame] = []
    n = len(frame)
    for start in range(0, n, chunk_rows):
        chunk = frame.iloc[start:start + chunk_rows]
        # One attribution pass gives both: contributions sum to the raw log-odds the calibrator maps.
        values = model.contributions_encoded(enc[start:start + chunk_rows], method=reason_method)
        raw = 1.0 / (1.0 + np.exp(-values.sum(axis=1)))
        p = np.asarray(model.calibrator_.predict(raw), dtype=float)
        probs.append(p)
        reasons.append(reason_codes(features, chunk, values, names=list(model.feature_names_)))  # bias unread
        if progress:
            progress(min(start + chunk_rows, n), n)
    out = pd.DataFrame({"churn_probability": np.concatenate(probs) if probs else np.array([], float)},
                       index=frame.index)
    rs = pd.concat(reasons) if reasons else pd.DataFrame(columns=[f"reason_{i + 1}" for i in range(N_REASONS)])
    return pd.concat([out, rs], axis=1)


def _riskiest_first(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows by descending probability, ties by customer id: one row order computed on the two keys and
    applied once (sorting the wide frame itself moved every column several times)."""
    ids = pd.factorize(frame["customer_id"].astype(str), sort=True)[0]
    order = np.lexsort((ids, -frame["churn_probability"].to_numpy(dtype=float)))
    return frame.take(order).reset_index(drop=True)


def _previous_scores(out_root: Path, as_of: pd.Timestamp) -> pd.DataFrame | None:
    """Scores of the latest earlier run under the same output root (for alerts), if any."""
    from churn.monitoring.history import run_folders

    earlier = [d for _, d in run_folders(out_root, as_of) if has_scores(d)]
    return read_scores(earlier[-1]) if earlier else None


def score_source(data: str | None, as_of: str, model_ref: str, out_root: str, config: Config, *,
                 overwrite: bool = False, csv: bool = False, progress: Progress = None,
                 chunk_progress: ChunkProgress = None, customers: str | None = None,
                 customers_id: str | None = None, allow_stale_data: bool = False) -> ScoreRun:
    """Validate the data, build the model's features as of the date, score, plan and write everything.

    One row per current customer at as_of, or with `customers` (a CSV/Parquet list of ids, column
    `customers_id`) one row per listed id; each with its status. A date long after the data, or in the
    future, is refused unless `allow_stale_data` (`scoring_date_warnings`)."""
    from churn.training.loading import load_model

    when = parse_as_of(as_of)
    run_dir = Path(out_root) / str(when.date())
    output_key(config)  # refused before any work when pseudonyms are asked for without a key
    ensure_writable(run_dir, overwrite)
    wanted = read_customer_list(customers, customers_id) if customers else None
    if progress:
        progress("loading model")
    model = load_model(model_ref)
    kpis: dict[str, Any] = {}  # the report's KPI trend (rows, notices), read while the source is open
    base, statuses, notices, warnings = source_rows(model, data, when, config, wanted=wanted, progress=progress,
                                                    model_ref=model_ref, allow_stale_data=allow_stale_data,
                                                    also=_kpi_trend(when, config, kpis))
    return _finish(model, model_ref, base, when, run_dir, Path(out_root), config, overwrite=overwrite, csv=csv,
                   progress=progress, chunk_progress=chunk_progress, notices=notices, source=str(data),
                   statuses=statuses, warnings=warnings, kpis=kpis)


def _kpi_trend(when: pd.Timestamp, config: Config, into: dict[str, Any]) -> Callable[[Any, Config], None] | None:
    """A `source_rows` hook filling `into` with the business KPIs of the months before `when` (None when
    `monitoring.kpi_months` is 0)."""
    if not config.monitoring.kpi_months:
        return None
    from churn.monitoring.kpis import report_kpis

    return lambda ds, cfg: into.update(report_kpis(ds, cfg, when))


def source_rows(model: Any, data: str | None, when: pd.Timestamp, config: Config, *,
                wanted: pd.Series | None = None, progress: Progress = None, model_ref: str = "the model",
                allow_stale_data: bool = False, also: Callable[[Any, Config], None] | None = None,
                ) -> tuple[pd.DataFrame, np.ndarray, list[str], list[str]]:
    """(rows, statuses, notices, warnings): the model's features as of `when` for every current customer (or
    every id of `wanted`) joined to their customer attributes, each row's status, the build's notices, and
    what the scoring date calls for (`churn.timeline.scoring_date_warnings`: a date long after the data or
    in the future is an error unless `allow_stale_data`). `also(source, config)` runs on the open source
    with the model's settings (monitoring: labels, KPIs).

    Only rows whose status is `scored` have features to score; `score_source` and the Python API both
    build their input here, so both score the same rows. A full run with nobody to score is an error; a
    customer list is written whatever its ids' statuses."""
    from churn.labels import data_range, share_on_or_after
    from churn.timeline import scoring_date_warnings
    from churn.validation import load_source

    cfg = features_config(model, config, model_ref)
    if progress:
        progress("validating data")
    ds = load_source(data, cfg)
    try:
        start, end = data_range(ds)
        warnings = scoring_date_warnings(
            when, data_start=start, data_end=end, share_after=share_on_or_after(ds, when),
            today=datetime.now(UTC).date(), max_staleness_days=config.scoring.max_staleness_days,
            future_tolerance_days=config.sources.future_tolerance_days, allow_stale=allow_stale_data)
        fs = build_for_model(ds, model, [when], cfg, progress)
        frame = fs.to_pandas()
        # The same population rule as the spine (and training): who else is current, or where listed ids stand.
        frame, statuses = with_status(frame, standing_rows(ds, cfg, fs.label, wanted), when)
        have = ds.columns("customers")
        cust_cols = [c for c in asked_attributes(config) if c in have]
        absent = [c for c in config.incentives.contact_columns if c not in have]
        attrs = ds.con.execute(
            "SELECT customer_id, " + ", ".join(f'"{c}"' for c in cust_cols) + " FROM customers"
        ).df() if cust_cols else pd.DataFrame({"customer_id": frame["customer_id"]})
        notices = list(fs.notices)
        if also is not None:
            also(ds, cfg)
        if absent:
            notices.append(f"incentives.contact_columns: {', '.join(absent)} not in the customers table; the "
                           "segment files leave them out")
    finally:
        ds.con.close()
    if wanted is None and not (statuses == status.SCORED).any():
        counts = ", ".join(f"{k} {v:,}" for k, v in status.status_counts(statuses).items()) or "none"
        raise ChurnError(f"no customer is active as of {when.date()} in {data}; nothing to score "
                         f"(customers: {counts})")
    base = _with_attributes(frame, attrs)
    return base, statuses, notices, warnings


def asked_attributes(config: Config) -> list[str]:
    """The customer columns a scoring run carries (where the data has them): the plan's attributes, the
    segments' contact columns and the alert digests' owner or region column."""
    asked = [*ATTRIBUTES, *(c for c in config.incentives.contact_columns if c not in ATTRIBUTES)]
    digest_by = config.monitoring.delivery.digest_by
    if digest_by and digest_by not in asked:
        asked.append(digest_by)
    return asked


def scoring_base(frame: pd.DataFrame, standing: pd.DataFrame, attrs: pd.DataFrame,
                 when: pd.Timestamp) -> tuple[pd.DataFrame, np.ndarray]:
    """(rows, statuses) of one part of a scoring run (a Spark bucket): the feature rows of the active
    customers, then every other current customer, with their status (`with_status`) and attributes."""
    frame, statuses = with_status(frame, standing, when)
    return _with_attributes(frame, attrs), statuses


def _with_attributes(frame: pd.DataFrame, attrs: pd.DataFrame) -> pd.DataFrame:
    """`frame` with the customers' attribute columns it does not have (a left merge keeps the rows' order)."""
    attrs["customer_id"] = attrs["customer_id"].astype(str)
    # Profile features (plan, fee at as_of) win over the customers table's current values.
    attrs = attrs[["customer_id", *[c for c in attrs.columns if c != "customer_id" and c not in frame.columns]]]
    return frame.merge(attrs, on="customer_id", how="left")


def score_table(table: str, id_col: str, model_ref: str, out_root: str, config: Config, *,
                as_of: str | None = None, overwrite: bool = False, csv: bool = False, progress: Progress = None,
                chunk_progress: ChunkProgress = None, customers: str | None = None) -> ScoreRun:
    """Score a ready feature table (one row per customer) and write the plan; with `customers` (a list of
    ids, column `id_col` or `customer_id` or its only one) exactly the listed ids, `unknown` if not in the table."""
    from churn.training.loading import load_model

    when = parse_as_of(as_of) if as_of else pd.Timestamp(datetime.now(UTC).date())
    run_dir = Path(out_root) / str(when.date())
    output_key(config)  # refused before any work when pseudonyms are asked for without a key
    ensure_writable(run_dir, overwrite)
    model = load_model(model_ref)
    df, statuses, notices = table_rows(table, id_col, model, when, customers)
    try:
        return _finish(model, model_ref, df, when, run_dir, Path(out_root), config, overwrite=overwrite, csv=csv,
                       progress=progress, chunk_progress=chunk_progress, notices=notices, source=str(table),
                       statuses=statuses)
    except DataValidationError as exc:  # the model's reading of a column: say which file it is in
        raise DataValidationError([replace(p, file=p.file or str(table)) for p in exc.problems]) from None


def table_rows(table: str, id_col: str, model: Any, when: pd.Timestamp,
               customers: str | None = None) -> tuple[pd.DataFrame, np.ndarray | None, list[str]]:
    """(rows, statuses, notices): a ready feature table read for `model` as `score_table` reads it (ids as
    text under `customer_id`, the scoring date, the listed ids' statuses when `customers` is given), with a
    `ChurnError` naming the file for an empty table, a missing id column or duplicate ids. The model's
    preparation reads the feature columns when the rows are scored (`score_frame`)."""
    df = read_table(table)
    if df.empty:  # a header and no rows: an export that went wrong, not a campaign of nobody
        raise ChurnError(f"{table}: the table has no rows to score (only a header: "
                         f"{', '.join(map(str, df.columns[:10]))})")
    if id_col not in df.columns:
        raise ChurnError(f"{table}: id column '{id_col}' not found; columns: {', '.join(map(str, df.columns[:30]))}")
    df = df.rename(columns={id_col: "customer_id"})
    df["customer_id"] = df["customer_id"].astype(str)
    dup = df["customer_id"].duplicated()
    if dup.any():
        raise ChurnError(f"{table}, column '{id_col}': {int(dup.sum())} duplicate ids, e.g. "
                         + ", ".join(repr(x) for x in df.loc[dup, "customer_id"].head(3)))
    df["as_of"] = when
    statuses, notices = None, []
    if customers:
        wanted = read_customer_list(customers, id_col)
        # Every listed id gets its row, `unknown` when the table lacks it (docs/population.md).
        df, statuses = with_status(df, table_standing(df["customer_id"], wanted), when)
    if "status" in df.columns and "status" not in {f.name for f in model.features_}:
        notices.append(f"{table}: its column 'status' is replaced by the scoring status in the scores")
    # Read as training read it (the model's preparation); what the model does not use is said, not an error.
    unused = [c for c in model.preparation_.extra_columns(df) if c not in {"customer_id", "as_of", "status"}]
    if unused:
        notices.append(f"{table}: {len(unused)} column(s) the model does not use were ignored: "
                       f"{', '.join(unused[:10])}{' ...' if len(unused) > 10 else ''}")
    return df, statuses, notices


def _finish(model: Any, model_ref: str, base: pd.DataFrame, when: pd.Timestamp, run_dir: Path, out_root: Path,
            config: Config, *, overwrite: bool, csv: bool, progress: Progress, chunk_progress: ChunkProgress,
            notices: list[str], source: str, statuses: np.ndarray | None = None,
            warnings: list[str] | None = None, kpis: dict[str, Any] | None = None) -> ScoreRun:
    """Score the rows whose status is `scored` (all rows when `statuses` is None), allocate incentives to
    them, and write every row, with its status, and the run folder atomically."""
    from churn.scoring.allocation import plan_retention

    output_key(config)  # refused before the work when pseudonyms are asked for without a key
    base = base.reset_index(drop=True).copy(deep=False)
    from_input = set(base.columns)  # what the data brought (features, raw table columns, attributes)
    is_scored = np.ones(len(base), dtype=bool) if statuses is None else statuses == status.SCORED
    everyone = bool(is_scored.all())
    if progress:
        progress(f"scoring {int(is_scored.sum()):,} customers")
    # Only the scored rows reach the model: the others have no features to score on.
    scored = score_frame(model, base if everyone else base[is_scored], chunk_rows=config.scoring.chunk_rows,
                         reason_method=config.scoring.reason_method, progress=chunk_progress)
    # New columns on a shallow copy: concatenating would copy every feature column once more.
    for col in scored.columns:
        base[col] = scored[col].to_numpy() if everyone else _spread(scored[col].to_numpy(), is_scored)
    # Set after scoring: a feature of a ready table may carry the same name.
    base["status"] = status.SCORED if statuses is None else statuses
    version = model_version(model, model_ref)
    base["model_version"] = version
    contact_history, exclusions, effects = plan_inputs(config)
    if progress:
        progress("allocating retention incentives")
    plan = plan_retention(base, config, contact_history=contact_history, exclusions=exclusions, seed=config.seed,
                          effects=effects)
    return write_run(model, model_ref, base, is_scored, plan.customers, plan.summary, from_input, when, run_dir,
                     out_root, config, overwrite=overwrite, csv=csv, progress=progress, notices=notices,
                     source=source, warnings=warnings, kpis=kpis)


def plan_inputs(config: Config) -> tuple[Any, Any, Any]:
    """(contact history, exclusions, effects) the plan reads, from the files the config names (or None)."""
    from churn.campaigns.learning import read_effects

    contact_history = read_table(config.incentives.contact_history) if config.incentives.contact_history else None
    exclusions = read_table(config.incentives.exclusions) if config.incentives.exclusions else None
    effects = read_effects(config.incentives.effects) if config.incentives.effects else None
    return contact_history, exclusions, effects


def score_columns(columns: list[str], model: Any, config: Config, from_input: set[str]) -> list[str]:
    """The columns of scores.parquet: the keys, the model's verdict, the plan's columns and the non-personal
    attributes the plan was decided on; no raw input column (activity, unused table columns) and no name,
    e-mail or contact column."""
    feature_cols = {f.name for f in model.features_}
    personal = {"name", "email", *config.incentives.contact_columns}
    extra = [c for c in columns
             if c not in SCORE_COLUMNS and c not in feature_cols and c not in personal
             and (c not in from_input or c in SCORE_ATTRIBUTES)]
    return [c for c in SCORE_COLUMNS if c in columns] + extra


def write_run(model: Any, model_ref: str, rows: pd.DataFrame, is_scored: np.ndarray, planned: pd.DataFrame,
              summary: Any, from_input: set[str], when: pd.Timestamp, run_dir: Path, out_root: Path,
              config: Config, *, overwrite: bool, csv: bool, progress: Progress, notices: list[str], source: str,
              warnings: list[str] | None = None, kpis: dict[str, Any] | None = None,
              write_scores: Callable[[Path, list[str]], list[Path]] | None = None) -> ScoreRun:
    """Write the run folder of a finished plan (`planned`: the plan's customers, `summary` its
    `PlanSummary`; `rows`: the model inputs, `is_scored` marking those scored, for the drift) atomically:
    scores, segments, the workbook, the report, alerts, health and summary.json. `write_scores(folder,
    columns)` writes scores.parquet itself (Spark: a folder of parts) instead of from `planned`."""
    from churn.monitoring.health import health_files, run_health
    from churn.scoring.alerts import compute_alerts
    from churn.scoring.report import write_report
    from churn.scoring.segments import write_segments

    key = output_key(config)
    version = model_version(model, model_ref)
    # What the plan could not do is said where the run's reader looks first (the CLI, summary.json's
    # warnings, the report's "Read this first"), not only inside the plan summary.
    warnings = [*(warnings or []), *summary.warnings]
    if key is not None:  # every output below names customers by pseudonym only
        planned = planned.assign(customer_id=pseudonymise(planned["customer_id"], key).to_numpy())
    customers = _riskiest_first(planned)
    previous = _previous_scores(out_root, when)
    alerts = compute_alerts(customers, previous, probability_rise=config.scoring.alert_probability_rise)
    health = run_health(model, model_ref, rows, is_scored, customers, when, out_root, config, kpis=kpis)
    notices = [*notices, *health.notices]
    columns = score_columns(list(customers.columns), model, config, from_input)
    scores = customers[columns]
    # No wall-clock time in the outputs: the same inputs must give byte-identical files.
    meta = {"model_version": version, "model": model_ref, "as_of": str(when.date()), "source": source}
    if progress:
        progress("writing scores, segments and report")
    with atomic_dir(run_dir, overwrite) as tmp:
        files = write_scores(tmp, columns) if write_scores else [write_parquet(scores, tmp / SCORES_FILE)]
        if csv or config.scoring.write_csv:
            files.append(write_csv(scores, tmp / "scores.csv"))
        files += write_segments(customers, tmp, summary=summary, contact=config.incentives.contact_columns)
        files.append(write_report(customers, summary, {**meta, "warnings": list(warnings or [])},
                                  tmp / "report.html", features=model.features_, health=health.report()))
        files.append(write_csv(alerts, tmp / "alerts.csv"))
        files += health_files(health, alerts, customers, tmp, config)
        as_json = summary.to_dict()  # the JSON form; segments and the report read the typed one
        files.append(write_json({"summary": as_json, "meta": meta, "notices": notices,
                                 "warnings": list(warnings or [])}, tmp / SUMMARY_FILE))
    files = [run_dir / f.relative_to(tmp) for f in files]
    return ScoreRun(run_dir, int(is_scored.sum()), as_json, files, notices, list(warnings or []), health.record)


def output_key(config: Config) -> bytes | None:
    """The key for pseudonymising ids in outputs when `scoring.pseudonymise_ids` is on (else None); refuses
    clearly when it is on and CHURN_PSEUDONYM_KEY is unset."""
    if not config.scoring.pseudonymise_ids:
        return None
    key = pseudonym_key()
    if key is None:
        raise ChurnError(f"scoring.pseudonymise_ids is on but {PSEUDONYM_KEY_ENV} is not set: set it to a "
                         "secret key (the same one every run, so outputs still join), or turn "
                         "scoring.pseudonymise_ids off")
    return key


def _spread(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """`values` placed at the rows where `mask` holds; missing (NaN / None) elsewhere."""
    numeric = values.dtype.kind in "fiu"
    out = np.full(mask.size, np.nan if numeric else None, dtype=float if numeric else object)
    out[mask] = values
    return out
