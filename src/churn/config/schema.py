"""The config schema (one place): sources, features, label, snapshots, model, tiers, value, incentives,
scoring, monitoring.

Every section is a pydantic model with working defaults; unknown keys are errors, so a typo in a config is
reported instead of silently ignored. A field's comment is its documentation: `churn.config_docs` turns
them into docs/configuration.md.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

TABLES = ("customers", "events", "tickets", "orders", "surveys", "fee_changes")
ACTIVITY_TABLES = ("events", "tickets", "orders", "surveys")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------------------------- sources
class TableSource(_Strict):
    """Where one table lives and how its columns are named in the user's files."""

    path: str | None = None  # file or folder of parts; default: <sources.path>/<table>.{parquet,csv}
    columns: dict[str, str] = Field(default_factory=dict)  # our name -> their name
    date_format: str | None = None  # strptime format for text dates, e.g. "%d/%m/%Y"
    # Text dates like 03/04/2024: day first (European) or month first (US). None: from the data (a first
    # part above 12 means day first, a second part above 12 month first), day first when it cannot tell.
    day_first: bool | None = None
    # CSV dialect; None: detected from the file's first 64 KiB (see churn.readers).
    csv_delimiter: Literal[",", ";", "\t", "|"] | None = None
    csv_quote: Literal['"', "'"] | None = None
    encoding: str | None = None  # default UTF-8 (BOM or not); legacy exports: cp1250, latin-1, cp1252 ...
    # Numbers written as text: decimal separator and thousands grouping. None: detected per column.
    decimal_separator: Literal[".", ","] | None = None
    thousands_separator: Literal[",", ".", " ", "'", ""] | None = None
    sheet: str | None = None  # Excel workbooks: the sheet holding the table (default: the first)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, v: str | None) -> str | None:
        import codecs

        if v is not None:
            try:
                codecs.lookup(v)
            except LookupError:
                raise ValueError(f"unknown encoding {v!r}; e.g. utf-8, cp1250, latin-1, cp1252") from None
        return v

    @model_validator(mode="after")
    def _separators_differ(self) -> TableSource:
        if self.decimal_separator and self.decimal_separator == self.thousands_separator:
            raise ValueError("decimal_separator and thousands_separator must differ")
        return self


class SourcesConfig(_Strict):
    """A data source: a folder with up to six tables, CSV or Parquet."""

    path: str | None = None
    tables: dict[str, TableSource] = Field(default_factory=dict)
    timezone: str = "UTC"  # zone of naive timestamps; aware ones are converted to UTC
    future_tolerance_days: int = 1  # timestamps later than now + this are errors

    @field_validator("tables")
    @classmethod
    def _known_tables(cls, v: dict[str, TableSource]) -> dict[str, TableSource]:
        unknown = sorted(set(v) - set(TABLES))
        if unknown:
            raise ValueError(f"unknown table(s) {unknown}; known: {list(TABLES)}")
        return v


class SparkConfig(_Strict):
    """The Spark scale-out (`engine: spark` or `--engine spark`): the same engine run per customer bucket; see
    docs/spark.md (design, running it, sizing, limits)."""

    # Spark master when churn starts the session itself (None: spark-submit's, else local[*]).
    master: str | None = None
    app_name: str = "churn"  # the Spark application's name (its UI and logs)
    # Input rows (all tables together) per customer bucket: about 100-300 MB of Arrow each at 50-150 bytes
    # a row. A customer with more than `heavy_share` of that gets a bucket of their own.
    bucket_rows: int = Field(2_000_000, ge=1)
    heavy_share: float = Field(0.25, gt=0, le=1)  # of `bucket_rows`: a customer above it gets a bucket alone
    shuffle_partitions: int | None = None  # partitions of the bucket shuffle (None: one per bucket)
    # Per Spark task (one bucket at a time): DuckDB's threads, memory and spill folder, and numba's threads
    # and compiled-code cache (on local disk, so a worker compiles the passes once and then loads them).
    task_threads: int = Field(1, ge=1)  # DuckDB and numba threads per task (set spark.task.cpus to match)
    task_memory: str = "2GB"  # DuckDB's memory limit per task
    task_temp_directory: str | None = None  # DuckDB's spill folder per task (None: the worker's temp folder)
    numba_cache_dir: str | None = None  # numba's cache on the workers (None: <temp folder>/churn-numba-cache)
    # `churn train --engine spark`: the training frame is sampled by customer (all of a customer's
    # snapshots, or none) down to at most this many rows before it is collected to the driver.
    train_max_rows: int = Field(2_000_000, ge=1)
    conf: dict[str, str] = Field(default_factory=dict)  # any other Spark settings, e.g. spark.executor.memory


class EngineConfig(_Strict):
    """Where the work runs: `embedded` (DuckDB and numba on this machine) or `spark` (the same engine per
    customer bucket on a Spark cluster). DuckDB resources are explicit so cores are not oversubscribed and
    memory stays bounded. `engine: spark` is short for `engine: {kind: spark}`."""

    kind: Literal["embedded", "spark"] = "embedded"  # `--engine` overrides it per command
    threads: int = 2
    memory_limit: str = "2GB"
    temp_directory: str | None = None
    spark: SparkConfig = SparkConfig()  # settings of the Spark engine

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"kind": v} if isinstance(v, str) else v


# -------------------------------------------------------------------------------------------- features
class EngagementConfig(_Strict):
    windows: list[int] = [7, 30, 90]
    event_types: list[str] | None = None  # None: the most frequent types in the data
    max_event_types: int = 8
    weeks_active: int = 12


class SupportConfig(_Strict):
    windows: list[int] = [30, 90, 180]


class PurchasesConfig(_Strict):
    windows: list[int] = [30, 90, 180, 365]
    btyd: bool = True  # BG/NBD expected purchases and P(no purchase) over the label horizon


class FeedbackConfig(_Strict):
    promoter_min: float | None = None  # None: inferred from the score scale (NPS 9, CSAT 5)
    detractor_max: float | None = None  # None: NPS 6, CSAT 2


class ProfileConfig(_Strict):
    categoricals: list[str] = ["plan", "region", "country", "language", "channel"]
    numerics: list[str] = []  # extra numeric customer attributes known at signup


class FeaturesConfig(_Strict):
    families: list[Literal["engagement", "support", "purchases", "feedback", "profile"]] = [
        "engagement", "support", "purchases", "feedback", "profile",
    ]
    engagement: EngagementConfig = EngagementConfig()
    support: SupportConfig = SupportConfig()
    purchases: PurchasesConfig = PurchasesConfig()
    feedback: FeedbackConfig = FeedbackConfig()
    profile: ProfileConfig = ProfileConfig()


# ----------------------------------------------------------------------------------------- label, time
class LabelConfig(_Strict):
    """What churn means: a cancellation (contractual) or no activity (non-contractual) within the horizon."""

    kind: Literal["auto", "cancellation", "inactivity"] = "auto"  # auto: cancellation if cancel_date exists
    horizon_days: int = 60
    # Tables whose rows count as activity for the inactivity label. None: orders and events (those the data
    # has); a source with neither (a support desk's tickets) counts every activity table it has.
    activity_tables: list[Literal["orders", "events", "tickets", "surveys"]] | None = None
    event_types: list[str] | None = None  # which events count as activity (None: all)
    active_within_days: int | None = None  # inactivity: snapshot only customers active this recently
    churn_value: str | None = None  # a ready table's target: the value that means churn ("Attrited Customer")

    @field_validator("horizon_days")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v <= 0:
            raise ValueError("horizon_days must be positive")
        return v


class SnapshotsConfig(_Strict):
    """Which as-of dates a training frame stacks: explicit dates, or `count` month starts back from `end`."""

    as_of: list[date] = []
    count: int = 8
    every_days: int | None = None  # None: calendar month starts
    end: date | None = None  # None: the latest date whose label window is complete
    min_history_days: int = 90  # earlier dates would see features truncated by the extract's start


# ------------------------------------------------------------------------------------------------ model
# Features whose direction holds by definition: risk rises with the days since the last event or order and
# with BG/NBD's probability of no order, and falls with the orders it expects.
MONOTONE_DEFAULT = {"days_since_last_event": 1, "days_since_last_order": 1, "btyd_p_no_order": 1,
                    "btyd_expected_orders": -1}


class ModelConfig(_Strict):
    experiment: str = "churn"
    registered_name: str = "churn"
    seed: int = 42
    n_jobs: int = 2
    params: dict[str, Any] = Field(
        default_factory=lambda: {
            "learning_rate": 0.1,
            "num_leaves": 15,
            "min_child_samples": 100,
            "feature_fraction": 0.7,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "lambda_l2": 5.0,
        }
    )
    num_boost_round: int = 1000
    early_stopping_rounds: int = 100
    imbalance: Literal["none", "balanced"] = "none"
    calibration: Literal["isotonic", "sigmoid"] = "isotonic"
    calibration_share: float = 0.5  # share of the validation customers whose rows fit the calibrator
    holdout_snapshots: int = 1  # newest snapshots reported on, never trained on
    valid_snapshots: int = 2  # next newest: early stopping, calibration and model selection
    # Share of customers whose validation-snapshot rows validate and whose rows never train the evaluation
    # fits: a customer's training label would otherwise overlap the window validation scores them on.
    valid_customer_share: float = Field(0.3, gt=0.0, lt=1.0)
    # Candidates compared by their registered procedure's forward reading (churn.training.selection):
    # lightgbm (the params above), lightgbm_stumps (depth-1 trees: an additive model), blend (the best
    # LightGBM with the spline logistic regression), logistic (that regression alone), logistic_l1 (a sparse
    # linear logistic regression), btyd (BG/NBD's P(no order) alone, where the data has purchases).
    candidates: list[Literal["lightgbm", "lightgbm_stumps", "blend", "logistic", "logistic_l1", "btyd"]] = Field(
        default_factory=lambda: ["lightgbm", "lightgbm_stumps", "blend", "logistic", "logistic_l1", "btyd"])
    # Register this candidate whatever selection says (the choice and every score are still logged).
    force_candidate: Literal["lightgbm", "lightgbm_stumps", "lightgbm_tuned", "blend", "logistic", "logistic_l1",
                             "btyd"] | None = None
    # Readings within this ROC AUC of the best (or one standard error, where wider) are tied: a difference
    # this small is noise. Their average is registered (average_ties), or the simplest of them (btyd,
    # logistic_l1, logistic, stumps, lightgbm, tuned, blend).
    tie_margin: float = Field(0.002, ge=0.0, lt=0.1)
    # Register the mean log-odds of the candidates tied within that margin (or one standard error) on the
    # forward reading, each refit by its own rule, instead of the simplest of them: on small data the tied
    # readings cannot tell which will hold up later, and their average does better than any one chosen by
    # noise (churn.training.average). false: the simplest tied candidate.
    average_ties: bool = True
    # Folds of customers the forward reading scores (each fold by the procedure fitted without its
    # overlapping rows); 0: 3 when the training frame holds fewer than 5,000 churner rows (small data reads
    # too noisily on one fold), else 1 (the validation customers).
    forward_folds: int = Field(0, ge=0, le=10)
    keep_columns: list[str] = []  # kept as features although the table or leakage rules would drop them
    # Features whose effect on churn risk LightGBM's trees may only push one way: 1 (risk only rises with the
    # value), -1 (only falls). Names the data has no numeric feature of are ignored (a column of that name
    # read as categories is left free); the logistic regressions, and a blend's linear part, are not.
    # Default: the directions that hold by definition (longer since the last activity, likelier no order).
    monotone: dict[str, Literal[-1, 1]] = Field(default_factory=lambda: dict(MONOTONE_DEFAULT))
    # Inverse penalty strengths tried for the logistic regressions (L2 spline, L1 sparse): the best mean ROC
    # AUC over 3 folds of the training rows by customer is kept (small data wants the stronger penalties).
    # One value: no search.
    linear_c: list[float] = Field(default_factory=lambda: [0.02, 0.1, 0.5], min_length=1)
    # Knots of each number's spline tried with each penalty: 2 is a straight line (what a few hundred
    # churners can support), more bend with the data.
    linear_knots: list[int] = Field(default_factory=lambda: [2, 5], min_length=1)

    @field_validator("linear_knots")
    @classmethod
    def _knots(cls, v: list[int]) -> list[int]:
        if any(k < 2 for k in v):
            raise ValueError("linear_knots values must be >= 2 (2: straight lines)")
        return v

    @field_validator("linear_c", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, int | float) else v

    @field_validator("linear_c")
    @classmethod
    def _positive(cls, v: list[float]) -> list[float]:
        if any(c <= 0 for c in v):
            raise ValueError("linear_c values must be > 0")
        return v
    # Refit the chosen settings on every snapshot (holdout and validation included), by the refit rule the
    # forward reading chose (churn.training.procedure); false: register the evaluation fit as it is.
    refit: bool = True
    # Without a later date to read the refit on (a split by customer), the refit is calibrated on
    # out-of-fold predictions in this many folds by customer; with one, on the forward reading's.
    calibration_folds: int = Field(3, ge=2)
    # Small data: an Optuna search over LightGBM settings joins the candidates (0 trials: never).
    auto_tune_max_rows: int = 20_000
    auto_tune_trials: int = 20
    auto_tune_minutes: float = 0.5
    # The metric a challenger must beat the champion on to be promoted (train --promote, churn promote).
    promote_metric: Literal["roc_auc", "pr_auc", "log_loss", "brier"] = "pr_auc"
    bundle_dir: str = "models"  # where each registered version's bundle is exported (models/<name>-<version>)
    # Draw the evaluation plots (ROC, precision-recall, reliability, lift and gain, profit, importance, the
    # SHAP summary) into the run; false skips them, for quick iterations (churn.read_run then has no plots).
    # The metrics and tables, the reliability table among them, are logged either way.
    plots: bool = True
    max_shap_rows: int = 5000  # holdout rows sampled for the SHAP summary plot


# ------------------------------------------------------------------------------------ tiers and value
class TierLevel(_Strict):
    name: str
    min_probability: float | None = None
    top_share: float | None = None  # quantile tiers: the riskiest share of the scored list

    @model_validator(mode="after")
    def _one_rule(self) -> TierLevel:
        if (self.min_probability is None) == (self.top_share is None):
            raise ValueError(f"tier '{self.name}' needs exactly one of min_probability or top_share")
        return self


class TiersConfig(_Strict):
    """Risk tiers, riskiest first; the last tier catches everyone else."""

    method: Literal["probability", "quantile"] = "probability"
    levels: list[TierLevel] = [
        TierLevel(name="critical", min_probability=0.5),
        TierLevel(name="high", min_probability=0.3),
        TierLevel(name="medium", min_probability=0.15),
        TierLevel(name="low", min_probability=0.0),
    ]


class ValueConfig(_Strict):
    """Customer value: CLV = average purchase value x purchase frequency x expected lifetime."""

    method: Literal["auto", "fee", "spend"] = "auto"  # auto: fee if a monthly fee is known, else spend
    lifetime_months: float = 24.0  # expected remaining lifetime when retained
    spend_window_days: int = 365
    margin: float = 1.0  # share of revenue that is value (gross margin)


# ------------------------------------------------------------------------------------------ incentives
class Eligibility(_Strict):
    tiers: list[str] | None = None
    plans: list[str] | None = None
    regions: list[str] | None = None
    countries: list[str] | None = None
    min_value: float | None = None
    max_value: float | None = None


class Incentive(_Strict):
    name: str
    kind: Literal["discount", "free_month", "upgrade", "gift", "loyalty_points", "personal_call"]
    unit_cost: float = 0.0
    cost_share_of_fee: float = 0.0  # e.g. a 20% discount for 3 months: 0.6 of one monthly fee
    save_rate: dict[str, float]  # tier -> share of would-be churners it retains
    max_customers: int | None = None
    channel: str | None = None  # forces a channel (a personal call is a call)
    eligible: Eligibility = Eligibility()
    messages: dict[str, str] = Field(default_factory=dict)  # language -> template


class ChannelsConfig(_Strict):
    default: str = "email"
    by_language: dict[str, str] = Field(default_factory=dict)
    by_region: dict[str, str] = Field(default_factory=dict)
    contact_cost: dict[str, float] = Field(default_factory=dict)  # per contact, by channel


class IncentivesConfig(_Strict):
    currency: str = "EUR"
    budget: float = 50_000.0
    control_share: float = 0.10
    cooldown_days: int = 30
    contact_history: str | None = None  # table: customer_id, contacted_at
    exclusions: str | None = None  # table: customer_id
    effects: str | None = None  # file: save rates learned from past campaigns (`churn campaign-effect`)
    default_language: str = "en"
    channels: ChannelsConfig = ChannelsConfig()
    catalogue: list[Incentive] = []
    # Customer columns the segment files carry to reach a customer (besides the id and the campaign's own
    # columns); no other customer attribute leaves the plan. E.g. [name, email, phone]; [] for ids only.
    contact_columns: list[str] = ["name", "email"]

    @field_validator("contact_columns")
    @classmethod
    def _contact_columns(cls, v: list[str]) -> list[str]:
        reserved = {"customer_id", "language", "message_language", "channel", "incentive", "offer_message",
                    "reason_1", "reason_2", "reason_3", "risk_tier", "churn_probability", "last_activity"}
        names = [str(c).strip() for c in v]
        if any(not c for c in names):
            raise ValueError("a contact column name is empty")
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise ValueError(f"listed twice: {', '.join(dup)}")
        clash = [c for c in names if c in reserved]
        if clash:
            raise ValueError(f"{', '.join(clash)}: always in a segment file (not a customer contact column)")
        return names


class ScoringConfig(_Strict):
    chunk_rows: int = 200_000
    # Reason-code attribution: "path" (decision-path, fast enough for millions of rows) or "treeshap"
    # (exact SHAP via LightGBM pred_contrib, ~20x slower).
    reason_method: Literal["path", "treeshap"] = "path"
    alert_probability_rise: float = 0.15  # alerts.csv: a rise of probability this large since the last run
    write_csv: bool = False  # also write scores.csv beside scores.parquet (as --csv does)
    # An as-of date more than this many days after the newest activity, or in the future, is refused (the
    # data stopped: every recency would grow, every recent count fall to 0) unless --allow-stale-data.
    max_staleness_days: int = 31
    # Replace customer ids in every output (scores, segments, alerts, report) by keyed pseudonyms
    # p<24 hex> (HMAC-SHA256 under the CHURN_PSEUDONYM_KEY environment variable; scoring refuses without it).
    pseudonymise_ids: bool = False


# ------------------------------------------------------------------------------------------ monitoring
class DeliveryConfig(_Strict):
    """Where risk jumps (alerts.csv) and model-health breaches are sent after a scoring run: a Slack-compatible
    incoming webhook (its URL in the environment variable CHURN_WEBHOOK_URL) and/or e-mail over SMTP (server,
    port, TLS, sender and login in CHURN_SMTP_HOST, CHURN_SMTP_PORT, CHURN_SMTP_TLS, CHURN_SMTP_SENDER,
    CHURN_SMTP_USER, CHURN_SMTP_PASSWORD). Nothing is sent unless `channels` names one; see docs/monitoring.md."""

    channels: list[Literal["webhook", "email"]] = []  # e.g. [webhook, email]; [] sends nothing
    # Customer column that splits the risk jumps into one digest per value (an account owner or region
    # column of the customers table); None, or a column the data lacks: one digest for everyone.
    digest_by: str | None = "region"
    # E-mail recipients per digest value (e.g. {north: [anna@example.com]}); "*" receives every digest
    # whose value is not listed, and the health breaches.
    email_to: dict[str, list[str]] = Field(default_factory=dict)
    max_customers: int = Field(50, ge=1)  # customers listed per digest; the rest are counted (alerts.csv has all)
    retries: int = Field(3, ge=0)  # further tries after a failed send (HTTP 5xx or 429, a refused connection)
    backoff_seconds: float = Field(2.0, ge=0)  # wait before the first retry; doubled for each next one
    min_interval_seconds: float = Field(1.0, ge=0)  # between two messages to one channel (Slack: one a second)
    timeout_seconds: float = Field(10.0, gt=0)  # per HTTP request or SMTP connection
    # The ledger of messages sent (one JSON line each: run date, alert type, content hash), so a rerun of
    # a run never sends a message twice. Default: .churn-sent.jsonl in the output root.
    ledger: str | None = None


class MonitoringConfig(_Strict):
    """Model health on every scoring run (drift against the training reference stored with the model, the
    estimated performance), realised performance (`churn backtest`), business KPIs (`churn kpis`) and the
    delivery of alerts. Thresholds say when a change is a breach; see docs/monitoring.md."""

    drift: bool = True  # compare every scoring run with the model's training reference (drift.json)
    bins: int = Field(10, ge=2, le=100)  # reference quantile bins per numeric feature and for the score
    psi_threshold: float = Field(0.2, gt=0)  # a feature whose PSI exceeds this has drifted
    score_psi_threshold: float = Field(0.1, gt=0)  # the same for the churn probability's distribution
    js_threshold: float = Field(0.1, gt=0, le=1)  # Jensen-Shannon distance (base 2, 0-1) of a category's shares
    unseen_share_threshold: float = Field(0.01, ge=0, le=1)  # share of rows in categories never seen in training
    missing_share_change: float = Field(0.1, gt=0, le=1)  # change of a feature's missing share (0.1 = 10 points)
    # Relative change of the mean predicted churn probability (0.15: from 6.0% to above 6.9% or below 5.1%).
    mean_probability_change: float = Field(0.15, gt=0)
    tier_share_change: float = Field(0.05, gt=0, le=1)  # change of any tier's share of scored customers (points)
    # Flag the estimated ROC AUC (from the calibrated probabilities, before labels exist) when it is this
    # much below the training holdout's.
    estimated_auc_margin: float = Field(0.05, gt=0, le=1)
    retrain_below_roc_auc: float = Field(0.7, ge=0, le=1)  # `churn backtest`: recommend retraining below this realised ROC AUC
    mlflow: bool = True  # log each scoring run's health and each backtest as a run in MLflow
    experiment: str = "churn-monitoring"  # the MLflow experiment of those runs
    trend_runs: int = Field(12, ge=1)  # earlier runs under the same output root shown in the report's trends
    kpi_months: int = Field(6, ge=0)  # months of business KPIs the scoring report shows (0: none)
    max_lifetime_months: float = Field(120.0, gt=0)  # CLTV: expected lifetime 1 / churn rate, capped here
    delivery: DeliveryConfig = DeliveryConfig()


# ---------------------------------------------------------------------------------------------- root
class Config(_Strict):
    """The whole configuration; every section has working defaults."""

    seed: int = 42
    output_dir: str = "outputs"
    sources: SourcesConfig = SourcesConfig()
    engine: EngineConfig = EngineConfig()
    features: FeaturesConfig = FeaturesConfig()
    label: LabelConfig = LabelConfig()
    snapshots: SnapshotsConfig = SnapshotsConfig()
    model: ModelConfig = ModelConfig()
    tiers: TiersConfig = TiersConfig()
    value: ValueConfig = ValueConfig()
    incentives: IncentivesConfig = IncentivesConfig()
    scoring: ScoringConfig = ScoringConfig()
    monitoring: MonitoringConfig = MonitoringConfig()

    source_file: str | None = None  # where this config was read from (set by load_config)
