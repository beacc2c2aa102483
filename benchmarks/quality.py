"""Model quality under planted churn mechanisms: every candidate's holdout metrics, and which one was chosen.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py                                  # full run
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/quality.py --seeds 0,1 --customers 3000     # smoke run

For each mechanism x seed, `churn.generate.generate` writes a data source to a temporary folder (18 months,
2024-01-01 to 2025-07-01, 120 events per customer as in the demo, generator seed = the seed), and
`churn.pipeline.train_from_data` trains on it with the default config (`load_config(None)`, model seed = the
seed) and MLflow on a temporary SQLite store. Mechanisms:

- `default`, `additive`, `interactions`: subscription data with that generator `mechanism`, `--customers`
  customers;
- `small`: the default mechanism with `--small-customers` customers (a few hundred churn rows);
- `transaction_log`: a retail business (`business="retail"`, default mechanism) of which only
  `orders.parquet` is kept: customers are then derived from activity and the label is inactivity.

Writes one CSV row per (mechanism, seed, candidate) with ROC AUC, PR AUC, Brier and lift@10% on the holdout,
plus a `chosen_model` row (the chosen model's evaluation fit, `result.metrics`), and prints Markdown tables
for benchmarks/RESULTS.md: median over seeds per mechanism x candidate, and per mechanism the chosen model's
gap to the best candidate's ROC AUC and its ROC AUC minus logistic regression's (median and worst seed).
The Markdown is also written next to the CSV (`.md`).

Noise: the holdout is the last snapshots only, so at 3,000 customers it holds ~20-30 churners and ROC AUC
moves by several hundredths between seeds; 20,000 customers give ~180-200 holdout churners (standard error
of ROC AUC still ~0.015, though differences between candidates on the same holdout are paired and steadier).
Judge 0.003-sized gaps over many seeds and larger `--customers`. Generation takes < 1 s at 3,000 customers;
training dominates (one core: ~10 s without tuning, ~100 s with the time-budgeted tuning of small data). Same
arguments give the same CSV as long as training is deterministic (a wall-clock tuning budget is not).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

START, END = date(2024, 1, 1), date(2025, 7, 1)
EVENTS_PER_CUSTOMER = 120.0  # the demo's: a product used weekly
MECHANISMS = ("default", "additive", "interactions", "small", "transaction_log")
METRICS = ("roc_auc", "pr_auc", "brier", "lift_top_10pct")
CHOSEN_ROW = "chosen_model"  # the CSV/table name of the chosen model's evaluation fit (result.metrics)
BASELINE_ROW = "baseline_logistic"  # the plain logistic regression baseline (not a candidate)
FIELDS = ("mechanism", "seed", "customers", "candidate", "chosen", "chosen_candidate", *METRICS, "valid_roc_auc",
          "holdout_rows", "holdout_churners", "seconds")


@dataclass(frozen=True)
class Scenario:
    """How one benchmark mechanism is generated."""

    name: str
    customers: int
    business: str  # subscription | retail
    mechanism: str  # the generator's mechanism
    orders_only: bool  # keep only orders.parquet (a non-contractual transaction log)


def scenario(name: str, customers: int, small_customers: int) -> Scenario:
    """The generator settings of a benchmark mechanism name."""
    if name in ("default", "additive", "interactions"):
        return Scenario(name, customers, "subscription", name, False)
    if name == "small":
        return Scenario(name, small_customers, "subscription", "default", False)
    if name == "transaction_log":
        return Scenario(name, customers, "retail", "default", True)
    raise SystemExit(f"unknown mechanism {name!r}; choose from {', '.join(MECHANISMS)}")


def make_data(sc: Scenario, seed: int, folder: Path) -> Path:
    """Generate the scenario's data under `folder`; return the data folder to train on."""
    from churn.generate import generate

    raw = folder / "raw"
    generate(sc.customers, START, END, seed, raw, business=sc.business,  # type: ignore[arg-type]
             events_per_customer=EVENTS_PER_CUSTOMER, mechanism=sc.mechanism)  # type: ignore[arg-type]
    if not sc.orders_only:
        return raw
    # A transaction log has no customer table: the loader must derive customers from the orders.
    orders = folder / "orders_only"
    orders.mkdir()
    shutil.copy2(raw / "orders.parquet", orders / "orders.parquet")
    return orders


def candidates_of(result: Any) -> tuple[dict[str, dict[str, float]], str]:
    """Holdout metrics (and validation ROC AUC) per candidate and the chosen candidate's name."""
    return dict(result.candidates), str(result.chosen)


def train_once(sc: Scenario, seed: int, work: Path) -> list[dict[str, Any]]:
    """Generate, train and return the CSV rows of one mechanism x seed."""
    from churn.config import load_config
    from churn.pipeline import train_from_data

    config = load_config(None)
    config = config.model_copy(update={"model": config.model.model_copy(
        update={"bundle_dir": str(work / "models"), "seed": seed})})
    data = make_data(sc, seed, work)
    t0 = time.perf_counter()
    result = train_from_data(config, str(data))
    seconds = time.perf_counter() - t0
    candidates, chosen = candidates_of(result)
    common = {"mechanism": sc.name, "seed": seed, "customers": sc.customers, "chosen_candidate": chosen,
              "holdout_rows": int(result.metrics.get("n_rows", 0)),
              "holdout_churners": int(result.metrics.get("n_churners", 0)), "seconds": round(seconds, 1)}
    rows = [{**common, "candidate": name, "chosen": name == chosen, **_metrics(m)}
            for name, m in sorted(candidates.items())]
    rows.append({**common, "candidate": CHOSEN_ROW, "chosen": True, **_metrics(result.metrics)})
    rows.append({**common, "candidate": BASELINE_ROW, "chosen": False,
                 **_metrics(result.baseline_metrics["logistic"])})
    return rows


def _metrics(m: dict[str, Any]) -> dict[str, float]:
    return {k: round(float(m[k]), 5) if m.get(k) is not None else float("nan") for k in (*METRICS, "valid_roc_auc")}


# ------------------------------------------------------------------------------------------- summary
def _median(values: Iterable[float]) -> float:
    v = [x for x in values if x == x]  # drop NaN (a metric or candidate missing from a run)
    return statistics.median(v) if v else float("nan")


def _worst(values: Iterable[float], high_is_bad: bool) -> float:
    v = [x for x in values if x == x]
    return (max(v) if high_is_bad else min(v)) if v else float("nan")


def _fmt(x: float, signed: bool = False) -> str:
    return "n/a" if x != x else (f"{x:+.4f}" if signed else f"{x:.4f}")


def selection_gaps(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Per mechanism, per seed: best candidate's ROC AUC minus the chosen one's, and chosen minus logistic."""
    out: dict[str, dict[str, list[float]]] = {}
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in rows:
        if r["candidate"] not in (CHOSEN_ROW, BASELINE_ROW):
            runs.setdefault((r["mechanism"], r["seed"]), []).append(r)
    for (mech, _), cands in sorted(runs.items()):
        roc = {r["candidate"]: float(r["roc_auc"]) for r in cands}
        chosen = roc.get(cands[0]["chosen_candidate"], float("nan"))
        base = [float(r["roc_auc"]) for r in rows if r["candidate"] == BASELINE_ROW
                and (r["mechanism"], r["seed"]) == (mech, cands[0]["seed"])]
        gaps = out.setdefault(mech, {"gap_to_best": [], "minus_logistic": [], "minus_baseline": []})
        gaps["gap_to_best"].append(max(roc.values()) - chosen)
        gaps["minus_logistic"].append(chosen - roc.get("logistic", float("nan")))
        gaps["minus_baseline"].append(chosen - base[0] if base else float("nan"))
    return out


def markdown(rows: Sequence[dict[str, Any]], mechanisms: Sequence[str]) -> str:
    """Two Markdown tables: median metrics per mechanism x candidate, and the selection gaps per mechanism."""
    lines = ["| mechanism | candidate | ROC AUC | PR AUC | Brier | lift@10% | chosen (of seeds) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for mech in mechanisms:
        mine = [r for r in rows if r["mechanism"] == mech]
        for cand in sorted({r["candidate"] for r in mine}, key=lambda c: (c == CHOSEN_ROW, c)):
            rs = [r for r in mine if r["candidate"] == cand]
            med = [_fmt(_median(float(r[k]) for r in rs)) for k in METRICS]
            n_chosen = "" if cand == CHOSEN_ROW else f"{sum(bool(r['chosen']) for r in rs)}/{len(rs)}"
            lines.append(f"| {mech} | {cand} | {' | '.join(med)} | {n_chosen} |")
    lines += ["", "| mechanism | best candidate by median ROC AUC | its median minus the chosen model's median |",
              "|---|---|---:|"]
    for mech in mechanisms:
        mine = [r for r in rows if r["mechanism"] == mech]
        med = {c: _median(float(r["roc_auc"]) for r in mine if r["candidate"] == c)
               for c in {r["candidate"] for r in mine}}
        cands = {c: v for c, v in med.items() if c not in (CHOSEN_ROW, BASELINE_ROW)}
        if cands and CHOSEN_ROW in med:
            best = max(cands, key=lambda c: cands[c])
            lines.append(f"| {mech} | {best} | {_fmt(cands[best] - med[CHOSEN_ROW])} |")
    gaps = selection_gaps(rows)
    lines += ["", "| mechanism | seeds | chosen: best ROC AUC minus chosen (median, worst) "
              "| chosen minus logistic candidate (median, worst) | chosen minus plain logistic baseline (median, "
              "worst) | chosen per seed |", "|---|---:|---:|---:|---:|---|"]
    for mech in mechanisms:
        if mech not in gaps:
            continue
        g, lg, bg = gaps[mech]["gap_to_best"], gaps[mech]["minus_logistic"], gaps[mech]["minus_baseline"]
        picks = [r["chosen_candidate"] for r in rows if r["mechanism"] == mech and r["candidate"] == CHOSEN_ROW]
        lines.append(f"| {mech} | {len(g)} | {_fmt(_median(g))}, {_fmt(_worst(g, True))} "
                     f"| {_fmt(_median(lg), True)}, {_fmt(_worst(lg, False), True)} "
                     f"| {_fmt(_median(bg), True)}, {_fmt(_worst(bg, False), True)} | {', '.join(picks)} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main
def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (generator and model).")
    ap.add_argument("--customers", type=int, default=20_000, help="Customers per generated data source.")
    ap.add_argument("--small-customers", type=int, default=1_500, help="Customers for the `small` mechanism.")
    ap.add_argument("--mechanisms", default=",".join(MECHANISMS), help="Comma-separated, from: "
                    + ", ".join(MECHANISMS))
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/quality.csv"), help="CSV of all rows.")
    ap.add_argument("--summarise", type=Path, nargs="+", default=None, metavar="CSV",
                    help="Run nothing: print the tables of these earlier runs' CSVs together (e.g. seeds run apart).")
    args = ap.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.mechanisms = [m.strip() for m in args.mechanisms.split(",") if m.strip()]
    return args


def _quiet() -> None:
    """MLflow registration chatter and library warnings would bury the progress lines."""
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


def read_csv(path: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run's CSV, with the types `markdown` reads."""
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["seed"] = int(r["seed"])
        r["chosen"] = r["chosen"] == "True"
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """All rows, in run order, to `path` (folders created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run every mechanism x seed, write the CSV and print the Markdown tables."""
    args = _parse(argv)
    if args.summarise:
        rows = [r for path in args.summarise for r in read_csv(path)]
        present = [m for m in MECHANISMS if any(r["mechanism"] == m for r in rows)]
        print(markdown(rows, present))
        return 0
    scenarios = [scenario(m, args.customers, args.small_customers) for m in args.mechanisms]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="churn-quality-") as tmp:
        # MLflow reads these when churn first imports it: set them before any churn import.
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        os.environ["CHURN_ARTIFACT_ROOT"] = Path(tmp, "mlartifacts").as_uri()
        _quiet()
        from churn.errors import ChurnError

        for sc in scenarios:
            for seed in args.seeds:
                work = Path(tmp, f"{sc.name}-{seed}")
                work.mkdir()
                try:
                    new = train_once(sc, seed, work)
                except ChurnError as exc:  # e.g. too few churners: report it, keep the other runs
                    print(f"{sc.name} seed {seed}: FAILED: {exc}", file=sys.stderr, flush=True)
                    continue
                rows += new
                shutil.rmtree(work / "raw", ignore_errors=True)  # data is re-creatable from the seed
                print(f"{sc.name} seed {seed}: chosen {new[0]['chosen_candidate']}, "
                      + ", ".join(f"{r['candidate']} {r['roc_auc']:.4f}" for r in new), flush=True)
    write_csv(rows, args.out)
    table = markdown(rows, args.mechanisms)
    args.out.with_suffix(".md").write_text(table + "\n")
    print(f"\n{len(rows)} rows in {args.out}\n\n{table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
