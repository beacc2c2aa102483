"""The `churn` command line: generate, validate, features, train, promote, score, demo; monitoring: backtest,
kpis, notify; the closed loop: campaign-effect."""

from __future__ import annotations

import functools
import gc
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from churn.config import load_config
from churn.errors import ChurnError

# OpenMP threads that spin while waiting made LightGBM 4-6x slower on busy cores; set before it loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

app = typer.Typer(
    help="churn: point-in-time churn features, calibrated LightGBM risk, and budgeted retention plans.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode="rich",
)
console = Console(stderr=True)
out = Console()
F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (default: configs/default.yaml).")]
# Text, not Path: with --engine spark the data may be a Hadoop URI (s3a://bucket/data), which Path would fold.
DataOpt = Annotated[Optional[str], typer.Option("--data", "-d", help="Data folder (CSV/Parquet tables; with --engine spark Parquet, local or a Hadoop URI); overrides sources.path.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
EngineOpt = Annotated[Optional[str], typer.Option("--engine", help="embedded (DuckDB on this machine) or spark (the same engine per customer bucket on Spark; Parquet input); overrides engine.kind.")]


def _engine(config: Any, engine: str | None) -> Any:
    """`config` with `--engine` applied (checked)."""
    from churn.pipeline import with_overrides

    if engine and engine not in ("embedded", "spark"):
        raise ChurnError(f"--engine must be embedded or spark, not {engine!r}")
    return with_overrides(config, engine=engine) if engine else config
MAX_WARNINGS = 15  # model-health breaches printed after a scoring run; the rest are in drift.json


def user_errors(fn: F) -> F:
    """Print user errors as a clear message (no traceback) and exit 1."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        # Every command prints churn's warnings itself ("note:" lines); without a handler Python's last-resort
        # one would print each a second time. A logging set-up of the caller's (cron, Airflow) still gets them.
        if not logging.getLogger("churn").handlers:
            logging.getLogger("churn").addHandler(logging.NullHandler())
        try:
            return fn(*args, **kwargs)
        except ChurnError as exc:
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; nothing was written[/]")
            raise typer.Exit(130) from None
    return wrapper  # type: ignore[return-value]


@contextmanager
def steps(title: str) -> Iterator[Callable[[str], None]]:
    """A Rich progress display for long multi-step work; yields a callback taking step descriptions."""
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), TimeElapsedColumn(),
                  console=console, transient=False) as prog:
        task = prog.add_task(title, total=None)

        def step(msg: str) -> None:
            prog.update(task, description=f"{title}: {msg}")

        yield step
        prog.update(task, description=f"{title}: done")


@contextmanager
def bar(title: str) -> Iterator[Callable[[int, int], None]]:
    """A Rich progress bar; yields a callback taking (done, total)."""
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console) as prog:
        task = prog.add_task(title, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield update


def _quiet_libraries() -> None:
    """MLflow and friends are chatty; the CLI says what matters itself."""
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")


def _notices(items: list[str]) -> None:
    for n in items:
        console.print(f"[yellow]note:[/] {n}", highlight=False)


@app.command()
@user_errors
def generate(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the tables to.")] = Path("data/demo"),
    customers: Annotated[int, typer.Option(help="Number of customers.")] = 20_000,
    start: Annotated[str, typer.Option(help="First day of recorded activity (YYYY-MM-DD).")] = "2024-01-01",
    end: Annotated[str, typer.Option(help="Day after the last recorded activity (YYYY-MM-DD).")] = "2025-07-01",
    seed: Annotated[int, typer.Option(help="Random seed: same seed, byte-identical tables.")] = 42,
    business: Annotated[str, typer.Option(help="subscription (cancellations) or retail (customers just stop).")] = "subscription",
    mechanism: Annotated[str, typer.Option(
        help="Planted churn hazard: default, additive (no interactions), interactions, or ageing (default hazard, everyone joins in the first 90 days).")] = "default",
    overwrite: OverwriteOpt = False,
    events_per_customer: Annotated[float, typer.Option(help="Mean product events per customer (`churn demo` uses 120).")] = 50.0,
    campaign: Annotated[Optional[list[Path]], typer.Option(help="A scoring run folder whose contacted customers the simulated business contacts on its as-of date, with the planted effects; repeat for several. Adds contact_history.parquet.")] = None,
) -> None:
    """Write a realistic synthetic data source (Parquet) with planted churn drivers."""
    from churn.generate import generate as gen

    if business not in ("subscription", "retail"):
        raise ChurnError(f"--business must be subscription or retail, not {business!r}")
    campaigns = []
    if campaign:
        from churn.campaigns.run import campaign_of_run

        campaigns = [campaign_of_run(r) for r in campaign]
    with bar("generating customers") as update:
        counts = gen(customers, date.fromisoformat(start), date.fromisoformat(end), seed, out_dir,
                     overwrite=overwrite, business=business, mechanism=mechanism,  # type: ignore[arg-type]
                     progress=update, events_per_customer=events_per_customer, campaigns=campaigns)
    t = Table(title=f"synthetic data in {out_dir}")
    t.add_column("table")
    t.add_column("rows", justify="right")
    for k, v in counts.items():
        t.add_row(k, f"{v:,}")
    out.print(t)


@app.command()
@user_errors
def validate(data: DataOpt = None, config: ConfigOpt = None) -> None:
    """Check a data folder against the data contract and list every problem."""
    import pandas as pd

    from churn.contract import CONTRACT
    from churn.labels import data_range, label_summary
    from churn.validation import load_source

    cfg = load_config(config)
    ds = load_source(str(data) if data else None, cfg)
    try:
        t = Table(title=f"{ds.label}: valid")
        t.add_column("table")
        t.add_column("file")
        t.add_column("rows", justify="right")
        for name, path, n in ds.table_rows():
            t.add_row(name, path, f"{n:,}")
        out.print(t)
        absent = [name for name in CONTRACT if not ds.has(name)]
        if absent:
            out.print(f"not in the data: {', '.join(absent)} (their features are skipped)")
        lo, hi = data_range(ds)
        out.print(f"activity from {lo.date()} to {(hi - pd.Timedelta(days=1)).date()}; label: {label_summary(ds, cfg)}")
        _notices(ds.notices)
    finally:
        ds.con.close()


@app.command()
@user_errors
def features(
    as_of: Annotated[list[str], typer.Option("--as-of", help="As-of date (YYYY-MM-DD); repeat for several.")],
    out_file: Annotated[str, typer.Option("--out", "-o", help="Output file (.parquet or .csv); with --engine spark a folder of Parquet parts (local or a Hadoop URI).")],
    data: DataOpt = None,
    config: ConfigOpt = None,
    overwrite: OverwriteOpt = False,
    engine: EngineOpt = None,
) -> None:
    """Build point-in-time features for every customer at each as-of date."""
    from churn.pipeline import features_to_file

    cfg = _engine(load_config(config), engine)
    with steps("features") as step:
        res = features_to_file(str(data) if data else None, as_of, str(out_file), cfg, overwrite=overwrite,
                               progress=step)
    _notices(res.notices)
    out.print(f"wrote {res.rows:,} rows x {res.features} features to {res.path}")


@app.command()
@user_errors
def train(
    config: ConfigOpt = None,
    data: DataOpt = None,
    table: Annotated[Optional[Path], typer.Option(help="Train on a ready feature table (CSV/Parquet) instead.")] = None,
    target: Annotated[Optional[str], typer.Option(help="--table: the label column (1/0, true/false, yes/no, or two values: see --churn-value).")] = None,
    churn_value: Annotated[Optional[str], typer.Option("--churn-value", help="--table: the target's value that means churn, e.g. 'Attrited Customer' (default: inferred when one of two values names churn).")] = None,
    keep_column: Annotated[Optional[list[str]], typer.Option("--keep-column", help="Keep this column as a feature although it looks like an id, personal data or a leak of the label; repeat for several.")] = None,
    id_col: Annotated[Optional[str], typer.Option("--id", help="--table: the customer id column.")] = None,
    time_col: Annotated[Optional[str], typer.Option("--time-col", help="--table: snapshot date column (enables out-of-time validation).")] = None,
    as_of: Annotated[Optional[list[str]], typer.Option("--as-of", help="Snapshot date; repeat for several (overrides config).")] = None,
    label: Annotated[Optional[str], typer.Option(help="cancellation or inactivity (overrides config).")] = None,
    horizon_days: Annotated[Optional[int], typer.Option(help="Label horizon in days (overrides config).")] = None,
    tune: Annotated[int, typer.Option(help="Hyper-parameter search trials (0 = off).")] = 0,
    tune_minutes: Annotated[Optional[float], typer.Option(help="Time budget for the search.")] = None,
    promote: Annotated[bool, typer.Option(help="Make it champion if it beats the current champion.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Register the model even when it ranks churners below non-churners on the holdout.")] = False,
    engine: EngineOpt = None,
) -> None:
    """Train a calibrated churn model, tracked and registered in MLflow."""
    from churn.config import tracking_uri
    from churn.pipeline import train_from_data, train_from_table, with_overrides

    _quiet_libraries()
    if label and label not in ("cancellation", "inactivity"):
        raise ChurnError(f"--label must be cancellation or inactivity, not {label!r}")
    cfg = _engine(with_overrides(load_config(config), label=label, horizon_days=horizon_days, as_of=as_of), engine)
    with steps("train") as step:
        if table:
            if not target or not id_col:
                raise ChurnError("--table needs --target and --id")
            res = train_from_table(cfg, str(table), target, id_col, time_col=time_col, tune_trials=tune,
                                   tune_minutes=tune_minutes, promote=promote, churn_value=churn_value,
                                   keep_columns=keep_column, force=force, progress=step)
        else:
            if churn_value:
                raise ChurnError("--churn-value is for --table; raw data's label comes from label.kind")
            res = train_from_data(cfg, str(data) if data else None, tune_trials=tune, tune_minutes=tune_minutes,
                                  promote=promote, keep_columns=keep_column, force=force, progress=step)
    _print_train(res, tracking_uri())


def _print_train(res: Any, uri: str) -> None:
    _notices(list(res.warnings))
    if res.candidates:
        forward = res.evaluation == "out_of_time"
        c = Table(title="candidates (chosen on the forward reading; holdout of each evaluation fit for information)"
                  if forward else "candidates (chosen on validation; holdout of each evaluation fit for information)")
        for col in ("candidate", "forward ROC AUC (rule)", "validation ROC AUC", "holdout ROC AUC"):
            c.add_column(col, justify="left" if col == "candidate" else "right")
        for name, m in res.candidates.items():
            mark = " (chosen)" if name == res.chosen else ""
            c.add_row(name + mark, f"{m.get('forward_roc_auc', float('nan')):.4f} ({m.get('forward_rule', '-')})",
                      f"{m.get('valid_roc_auc', float('nan')):.4f}", f"{m.get('roc_auc', float('nan')):.4f}")
        out.print(c)
        out.print(f"chosen: {res.chosen}: {res.chosen_why}", highlight=False)
        if res.refit:
            rule = res.refit.get("rule", "")
            if rule == "none":
                out.print(f"registered model: {res.chosen}'s evaluation fit, not refit")
            else:
                out.print(f"registered model: {res.chosen} refit on all {res.refit.get('rows', 0):,} rows (rule "
                          f"'{rule}'; calibration {res.refit.get('calibration', '')})", highlight=False)
    t = Table(title=f"model {res.registered_name} v{res.version}: the registered procedure on the holdout")
    t.add_column("metric")
    t.add_column("model", justify="right")
    base = res.baseline_metrics or {}
    names = [b for b in ("logistic", "l1_logistic", "heuristic", "bgnbd") if isinstance(base.get(b), dict)]
    for b in names:
        t.add_column(b, justify="right")
    for m in ("roc_auc", "pr_auc", "brier", "log_loss", "lift_top_10pct", "capture_top_10pct"):
        if m in res.metrics:
            t.add_row(m, f"{res.metrics[m]:.4f}", *(f"{base[b].get(m, float('nan')):.4f}" for b in names))
    out.print(t)
    if getattr(res, "verdict", "") in ("chance", "inverted", "suspect"):
        console.print(f"[bold red]{res.verdict.upper()}:[/] see the warnings above", highlight=False)
    out.print(f"MLflow run {res.run_id} in {uri}")
    out.print(f"registered {res.model_uri} (alias challenger){' and promoted to champion' if res.promoted else ''}")
    if res.promotion and not res.promoted:
        out.print(f"not promoted: {res.promotion.get('reason', '')}", highlight=False)
    out.print(f"bundle: {res.bundle_path}")


@app.command()
@user_errors
def promote(
    config: ConfigOpt = None,
    name: Annotated[Optional[str], typer.Option(help="Registered model name (default: from config).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote even when the challenger loses, is no better than chance, or the champion cannot be compared.")] = False,
) -> None:
    """Move alias 'champion' to the challenger if it beats the champion on the same holdout."""
    from churn.pipeline import promote_model

    _quiet_libraries()
    cfg = load_config(config)
    res = promote_model(cfg, name, force=force)
    for k, v in res.items():
        out.print(f"{k}: {v}")


@app.command()
@user_errors
def score(
    model: Annotated[str, typer.Option(help="models:/<name>@champion, runs:/<id>/model, or a bundle folder.")] = "models:/churn@champion",
    out_root: Annotated[Path, typer.Option("--out", "-o", help="Output root; the run goes to <out>/<as-of>/.")] = Path("outputs"),
    data: DataOpt = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="Score as of this date (YYYY-MM-DD).")] = None,
    table: Annotated[Optional[Path], typer.Option(help="Score a ready feature table instead of raw data.")] = None,
    id_col: Annotated[Optional[str], typer.Option("--id", help="--table: the customer id column (also looked for in --customers).")] = None,
    customers: Annotated[Optional[Path], typer.Option(help="Score exactly the ids in this CSV/Parquet list (column --id, customer_id or its only column).")] = None,
    config: ConfigOpt = None,
    csv: Annotated[bool, typer.Option("--csv", help="Also write scores.csv.")] = False,
    allow_stale_data: Annotated[bool, typer.Option(
        "--allow-stale-data", help="Score a date more than scoring.max_staleness_days after the newest activity, "
        "or in the future (said loudly in the output, summary.json and the report).")] = False,
    overwrite: OverwriteOpt = False,
    effects: Annotated[Optional[Path], typer.Option(help="Save rates learned from past campaigns (the effects file `churn campaign-effect` writes); overrides incentives.effects.")] = None,
    engine: EngineOpt = None,
) -> None:
    """Score customers, pick retention incentives within budget, and write segments and a report.

    One row per current customer at --as-of (or per id of --customers), each with a status: scored, or why
    not (lapsed, no_history, cancelled, not_yet_customer, unknown)."""
    from churn.pipeline import score_to_folder, with_effects

    _quiet_libraries()
    cfg = _engine(with_effects(load_config(config), str(effects) if effects else None), engine)
    with steps("score") as step, bar("scoring") as chunk:
        # Said in the options' own words here; the pipeline checks the same for API callers.
        if table and not id_col:
            raise ChurnError("--table needs --id")
        if not table and not as_of:
            raise ChurnError("--as-of is required when scoring raw data")
        run = score_to_folder(cfg, model, str(out_root), data=str(data) if data else None, as_of=as_of,
                              table=str(table) if table else None, id_col=id_col,
                              customers=str(customers) if customers else None, csv=csv, overwrite=overwrite,
                              allow_stale_data=allow_stale_data, progress=step, chunk_progress=chunk)
    _print_score(run)


def _print_score(run: Any) -> None:
    from churn.scoring.status import STATUS_TEXT, counts_from_summary

    _notices(run.notices)
    for w in getattr(run, "warnings", []):
        console.print(f"[bold red]WARNING:[/] [bold]{escape(w)}[/]", highlight=False)
    s = run.summary
    counts = counts_from_summary(s)
    out.print(f"scored {run.n_scored:,} of {sum(counts.values()) or run.n_scored:,} customers -> {run.out_dir}")
    if counts:
        t = Table(title="customers by status")
        t.add_column("status")
        t.add_column("customers", justify="right")
        t.add_column("meaning")
        for k, v in counts.items():
            t.add_row(k, f"{v:,}", STATUS_TEXT.get(k, ""))
        t.add_row("total", f"{sum(counts.values()):,}", "")
        out.print(t)
    wb = s.get("win_back") or {}
    if wb.get("lapsed"):
        out.print(f"win-back list: {wb['listed']:,} of {wb['lapsed']:,} lapsed customers (segments/win_back.csv)")
    if "budget_used" in s:
        out.print(f"budget used: {s.get('budget_used', 0):,.0f} of {s.get('budget', 0):,.0f} {s.get('currency', '')}")
    for f in run.files:
        out.print(f"  {f}")
    breaches = (getattr(run, "health", None) or {}).get("breaches", [])
    for b in breaches[:MAX_WARNINGS]:
        console.print(f"[bold yellow]warning:[/] model health: {b}", highlight=False)
    if len(breaches) > MAX_WARNINGS:
        console.print(f"[bold yellow]warning:[/] model health: ... and {len(breaches) - MAX_WARNINGS} more "
                      f"(drift.json, and the report's Model health section)", highlight=False)


@app.command()
@user_errors
def backtest(
    data: DataOpt = None,
    run: Annotated[Optional[Path], typer.Option("--run", help="A scoring run folder (<out>/<as-of>/) whose label window has passed.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Instead of --run: a model (models:/..., runs:/..., a bundle folder) ...")] = None,
    as_of: Annotated[Optional[str], typer.Option("--as-of", help="... scored as of this date (YYYY-MM-DD).")] = None,
    out_file: Annotated[Optional[Path], typer.Option("--out", "-o", help="With --model: also write the result here (JSON).")] = None,
    config: ConfigOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Realised performance once the outcomes are known: ROC AUC, PR AUC, lift and calibration, on the control
    group and the customers not contacted; logged to MLflow, written to <run>/backtest.json."""
    from churn.monitoring.backtest import backtest_model, backtest_run

    _quiet_libraries()
    cfg = load_config(config)
    if bool(run) == bool(model):
        raise ChurnError("give either --run RUN_FOLDER or --model MODEL with --as-of")
    with steps("backtest"):
        if run:
            res = backtest_run(run, str(data) if data else None, cfg, overwrite=overwrite)
        else:
            if not as_of:
                raise ChurnError("--model needs --as-of")
            res = backtest_model(model, as_of, str(data) if data else None, cfg,  # type: ignore[arg-type]
                                 out=str(out_file) if out_file else None, overwrite=overwrite)
    _notices(res.notices)
    _print_backtest(res.record)
    if res.path:
        out.print(f"wrote {res.path}")


def _print_backtest(rec: dict[str, Any]) -> None:
    r = rec["realised"]

    def f(x: Any, fmt: str = "{:.3f}") -> str:
        return "-" if x is None else fmt.format(x)

    t = Table(title=f"realised performance as of {rec['as_of']}: {r['population']} ({r['customers']:,}, "
                    f"{r['churners']:,} churned)")
    t.add_column("measure")
    t.add_column("value", justify="right")
    for label, v, fmt in (("ROC AUC", r["roc_auc"], "{:.3f}"), ("ROC AUC estimated before the outcomes",
                          rec.get("expected_roc_auc"), "{:.3f}"),
                          ("ROC AUC training holdout", (rec.get("model") or {}).get("holdout_roc_auc"), "{:.3f}"),
                          ("PR AUC", r["pr_auc"], "{:.3f}"), ("lift in the riskiest 10%", r["lift_top_10pct"], "{:.2f}"),
                          ("mean predicted churn", r["mean_predicted"], "{:.1%}"),
                          ("observed churn", r["observed_churn_rate"], "{:.1%}")):
        t.add_row(label, f(v, fmt))
    out.print(t)
    c = Table(title="calibration: predicted against observed churn")
    for col in ("group", "customers", "predicted", "observed"):
        c.add_column(col, justify="left" if col == "group" else "right")
    for row in [*r["calibration_by_tier"], *({**d, "group": f"decile {d['group']}"} for d in r["calibration_by_decile"])]:
        c.add_row(str(row["group"]), f"{row['customers']:,}", f(row["predicted"], "{:.1%}"), f(row["observed"], "{:.1%}"))
    out.print(c)
    if r["retrain"]:
        console.print(f"[bold yellow]warning:[/] retraining recommended: {r['retrain_why']}", highlight=False)


@app.command()
@user_errors
def kpis(
    out_file: Annotated[Path, typer.Option("--out", "-o", help="Output file: .csv or .xlsx.")],
    data: DataOpt = None,
    by: Annotated[Optional[list[str]], typer.Option("--by", help="Also per value of this customer column (region, plan, channel, language); repeat for several.")] = None,
    months: Annotated[int, typer.Option(help="How many months.")] = 12,
    end: Annotated[Optional[str], typer.Option(help="The month after the last one (YYYY-MM-DD; default: the month the data ends in).")] = None,
    campaign: Annotated[Optional[Path], typer.Option(help="A scoring run folder whose campaign's saved revenue to add (its label window must have passed).")] = None,
    config: ConfigOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Business KPIs per month and segment: churn and retention rates, revenue churn, net revenue retention,
    average CLTV, NPS, CSAT and, with --campaign, saved revenue."""
    from churn.pipeline import kpis_to_file

    cfg = load_config(config)
    with steps("kpis") as step:
        res = kpis_to_file(cfg, str(data) if data else None, str(out_file), months=months, end=end, by=by,
                           campaign=str(campaign) if campaign else None, overwrite=overwrite, progress=step)
    _notices(res.notes)
    out.print(f"wrote {len(res.table):,} rows (months x segments) to {res.path}")


@app.command()
@user_errors
def notify(
    run: Annotated[Path, typer.Option("--run", help="A scoring run folder (<out>/<as-of>/).")],
    config: ConfigOpt = None,
) -> None:
    """Deliver a run's risk jumps and model-health breaches (webhook, e-mail) that were not sent yet."""
    from churn.monitoring.delivery import deliver_run

    report = deliver_run(run, load_config(config))
    for s in report.sent:
        out.print(f"sent {s}")
    for s in report.skipped:
        out.print(f"already sent, not again: {s}")
    _notices(report.notes)


@app.command("campaign-effect")
@user_errors
def campaign_effect(
    run: Annotated[list[Path], typer.Option("--run", help="A past scoring run folder (<out>/<as-of>/) whose label window has passed; repeat to learn from several campaigns.")],
    data: DataOpt = None,
    config: ConfigOpt = None,
    effects_out: Annotated[Optional[Path], typer.Option("--effects-out", help="Where the learned save rates go (default: effects.json in the latest run's folder, by date); read by `churn score --effects`.")] = None,
    prior_strength: Annotated[Optional[float], typer.Option(help="Weight of the catalogue's save rates in customers (default: estimated from the campaigns).")] = None,
    uplift: Annotated[bool, typer.Option("--uplift/--no-uplift", help="With two or more runs, learn each offer's effect customer by customer (a hazard-ratio model, judged on the latest campaign) where it beats the tier rates.")] = True,
    model: Annotated[Optional[str], typer.Option("--model", help="The churn model whose features the per-customer effects read (bundle folder or MLflow URI; default: the model the latest run was scored with).")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Measure past campaigns against their control groups and learn the save rates the next plan uses.

    Per risk tier and incentive: churn of the contacted against the control group who would have got the
    same offer, the difference with a 95% interval, the save rate, customers saved, cost per saved customer,
    ROI, and what the control group could detect. Written to <run>/campaign_effect.json and MLflow. With
    several runs, each offer's per-customer effect too, where it predicts the latest campaign better."""
    from churn.pipeline import measure_campaigns

    _quiet_libraries()
    cfg = load_config(config)
    with steps("campaign effect") as step:
        res = measure_campaigns(cfg, [str(r) for r in run], str(data) if data else None,
                                effects_out=str(effects_out) if effects_out else None,
                                prior_strength=prior_strength, overwrite=overwrite, uplift=uplift, model=model,
                                progress=step)
    for effect in res.effects:
        _print_campaign(effect)
    _print_learned(res.learned)
    _print_uplift(res.learned.uplift)
    _notices(res.notices)
    for f in res.files:
        out.print(f"  wrote {f}")
    if res.mlflow_runs:
        out.print(f"MLflow runs {', '.join(res.mlflow_runs)} (experiment {cfg.model.experiment}-campaigns)")


def _pct(v: float | None, digits: int = 1) -> str:
    return "-" if v is None or v != v or abs(v) == float("inf") else f"{100 * v:.{digits}f}%"


def _print_campaign(effect: Any) -> None:
    _notices(effect.notices)
    t = Table(title=f"campaign of {effect.as_of}: contacted against control ({effect.horizon_days}-day {effect.label} label)")
    for col in ("tier", "incentive", "contacted (churn)", "control (churn)", "difference [95% CI]", "p",
                "save rate [95% CI]", "assumed", "saved", "cost/saved", "ROI", "detectable"):
        t.add_column(col, justify="left" if col in ("tier", "incentive") else "right")
    for e in effect.estimates:
        t.add_row(e.tier, e.incentive, f"{e.treated:,} ({_pct(e.churn_treated)})", f"{e.control:,} ({_pct(e.churn_control)})",
                  f"{_pct(e.difference)} [{_pct(e.difference_low)}, {_pct(e.difference_high)}]",
                  "-" if e.p_value != e.p_value else f"{e.p_value:.3f}",
                  f"{_pct(e.save_rate, 0)} [{_pct(e.save_rate_low, 0)}, {_pct(e.save_rate_high, 0)}]",
                  _pct(e.assumed_save_rate, 0), "-" if e.saved != e.saved else f"{e.saved:,.1f}",
                  "-" if e.cost_per_saved is None else f"{e.cost_per_saved:,.0f} {effect.currency}",
                  _pct(e.roi, 0), _pct(e.detectable_save_rate, 0))
    out.print(t)
    if effect.advice:
        a = Table(title="control group for the next campaign (80% power to detect the assumed save rate)")
        for col in ("tier", "customers", "control churn", "save rate", "controls needed", "share needed", "campaigns at current share"):
            a.add_column(col, justify="left" if col == "tier" else "right")
        for tier, v in effect.advice.items():
            a.add_row(tier, f"{v.customers:,}", _pct(v.control_churn), _pct(v.save_rate, 0),
                      "-" if v.controls_needed is None else f"{v.controls_needed:,}",
                      "over 50%" if v.recommended_share is None else _pct(v.recommended_share, 0),
                      "-" if v.campaigns_needed is None else str(v.campaigns_needed))
        out.print(a)


def _print_learned(learned: Any) -> None:
    t = Table(title=f"save rates for the next plan (catalogue weighs {learned.prior_strength:,.0f} customers, "
                    f"{learned.prior_strength_method})")
    for col in ("incentive", "tier", "rate", "source", "assumed", "measured", "weight of the data"):
        t.add_column(col, justify="left" if col in ("incentive", "tier", "source") else "right")
    for inc, by_tier in learned.save_rates.items():
        for tier, r in by_tier.items():
            t.add_row(inc, tier, _pct(r.rate), r.source, _pct(r.assumed), _pct(r.measured), _pct(r.data_weight, 0))
    out.print(t)


def _print_uplift(uplift: dict[str, Any]) -> None:
    offers = (uplift or {}).get("offers") or {}
    if not offers:
        return
    t = Table(title="per-customer effects (uplift), judged on the latest campaign")
    for col in ("incentive", "used", "log-likelihood gain", "why"):
        t.add_column(col, justify="right" if col == "log-likelihood gain" else "left")
    for offer, rec in offers.items():
        gain = ((rec.get("evaluation") or {}).get("likelihood_gain") or {}).get("hazard_ratio")
        t.add_row(offer, "yes" if rec.get("model") else "no (tier rates)",
                  "-" if gain is None or gain != gain else f"{gain:+.4f}", str(rec.get("why") or ""))
    out.print(t)


@app.command()
@user_errors
def demo(
    customers: Annotated[int, typer.Option(help="Customers to generate.")] = 20_000,
    workdir: Annotated[Path, typer.Option(help="Where data/, outputs/ and models/ go.")] = Path("."),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 42,
    config: ConfigOpt = None,
) -> None:
    """End to end: generate data, build features, train (MLflow), score, write segments and report."""
    from churn.demo import run_demo

    _quiet_libraries()
    cfg = load_config(config)
    with steps("demo") as step:
        res = run_demo(cfg, workdir=workdir, customers=customers, seed=seed, progress=step)
    _print_train(res.train, res.tracking_uri)
    _print_score(res.score)
    out.print(f"\n[bold green]demo done[/] in {res.seconds:.0f} s. Open {res.score.out_dir / 'report.html'}")


def main() -> None:
    """The `churn` command: run the app, then leave without the collector's last passes."""
    try:
        app()
    finally:
        # At exit the collector walks every object still alive (numba's type registries, pandas, scipy):
        # ~0.8 s of a `churn features` run. Every output is written, flushed and closed by now (atomic
        # renames, DuckDB closed, MLflow runs ended by their own atexit hook), so that walk finds nothing to
        # do; freezing the objects skips it. Modules are still torn down.
        gc.freeze()


if __name__ == "__main__":  # pragma: no cover
    main()
