"""The registered model at a later date than everything it was fitted on, against plain baselines, on
generated and real public data.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/forward.py                         # every data set
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/forward.py --sets cdnow,bank --candidates

As a new user would: train on the dates whose labels are complete at the scoring date `S`, then score `S`
with what got registered (through `churn.pipeline.score_customers`, the product's scoring path, with every
setting frozen at training) and compare with S's actual labels. Beside it, the classic baselines a data
scientist would try first, fitted on the same training rows (features built in one pass with S, so they
see the same columns):

- `recency`: days since the last activity alone;
- `logistic`: the project's plain baseline (median-imputed, scaled, one-hot, L2 logistic regression);
- `l1_logistic`: an L1 logistic regression on the numeric features (per-window counts and the like),
  its penalty chosen by 5-fold cross-validation grouped by customer;
- `bgnbd`: BG/NBD's P(no order within the horizon) at S (fitted on the purchase history before S), where
  the data has orders.

With `--candidates`, every configured candidate is also trained alone (`model.force_candidate`) and scored
the same way, so the table can say how far the registered model is from the best single candidate.

Data sets:
- generated (`churn.generate`, 18 months to 2025-07-01, seeds from `--seeds`): `default` (subscription,
  10,000 customers), `transaction_log` (a retailer's orders only), `small` (1,500 subscribers);
  `ageing` (retail orders only; every customer joins in the first quarter; 180-day label, so the newest
  complete training date is six months before S and the scored customers are older than every training
  row); `small_subscription` (4,400 subscribers, three training dates two weeks apart, a 30-day label).
- real, public (not in the repository; benchmarks may read them, tests may not):
  `cdnow`: the CDNOW transaction log (23,570 customers who first bought in the first quarter of 1997,
  69,659 purchases to June 1998; Fader, Hardie & Lee 2005), as shipped in the `lifetimes` package
  (`lifetimes/datasets/CDNOW_master.txt`, MIT licence), or `../shared/data/CDNOW_master.txt`; orders only,
  180-day inactivity label, S = 1998-01-01, training dates 1997-04-01 to 1997-07-01.
  `bank`: `../shared/data/BankChurners.csv` (the public "Credit Card customers" table; two columns computed
  from the label); `telecom`: `../shared/data/mlc_churn.csv` (R modeldata's mlc_churn). Ready tables have
  one row per customer and no dates: a seeded 70/30 split by customer stands in for "later".

Prints one Markdown table (data set x registered model, each baseline, best candidate), medians over seeds
for generated sets, and writes every run's figures to `--out` (CSV).
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FIELDS = ("set", "seed", "model", "roc_auc", "rows", "churners", "chosen", "seconds")


# ------------------------------------------------------------------------------------------ data sets
@dataclass(frozen=True)
class RawSet:
    """A data folder trained on up to `train_end` and scored at `score_date`."""

    name: str
    make: Callable[[Path, int], Path]  # (work folder, seed) -> data folder
    score_date: str
    train_end: str | None = None  # snapshots.end; None when `as_of` lists the training dates
    as_of: tuple[str, ...] = ()
    horizon_days: int = 60
    label: str = "auto"
    generated: bool = True


@dataclass(frozen=True)
class TableSet:
    """A ready table (one row per customer) split 70/30 by customer."""

    name: str
    path: Path
    target: str
    id_col: str
    churn_value: str | None = None
    generated: bool = False


def _generated(business: str, customers: int, mechanism: str = "default", orders_only: bool = False
               ) -> Callable[[Path, int], Path]:
    def make(work: Path, seed: int) -> Path:
        import quality

        sc = quality.Scenario("x", customers, business, mechanism, orders_only)
        return quality.make_data(sc, seed, work)
    return make


def _cdnow(work: Path, seed: int) -> Path:
    """CDNOW as an orders table (ids keep their leading zeros)."""
    import pandas as pd

    src = _cdnow_file()
    raw = pd.read_csv(src, sep=r"\s+", header=0, names=["customer_id", "date", "cds", "amount"],
                      dtype={"customer_id": str, "date": str})
    orders = pd.DataFrame({"customer_id": raw["customer_id"],
                           "ordered_at": pd.to_datetime(raw["date"], format="%Y%m%d"),
                           "amount": raw["amount"].astype(float), "quantity": raw["cds"].astype(float)})
    folder = work / "cdnow"
    folder.mkdir()
    orders.to_csv(folder / "orders.csv", index=False)
    return folder


def _cdnow_file() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("lifetimes")
    candidates = [SHARED / "CDNOW_master.txt"]
    if spec is not None and spec.origin:
        candidates.insert(0, Path(spec.origin).parent / "datasets" / "CDNOW_master.txt")
    for p in candidates:
        if p.is_file():
            return p
    raise SystemExit("CDNOW_master.txt not found (install the dev extras for lifetimes, or put it in ../shared/data)")


SETS: dict[str, RawSet | TableSet] = {
    "default": RawSet("default", _generated("subscription", 10_000), "2025-05-01", "2025-03-01"),
    "transaction_log": RawSet("transaction_log", _generated("retail", 10_000, orders_only=True), "2025-05-01",
                              "2025-03-01"),
    "small": RawSet("small", _generated("subscription", 1_500), "2025-05-01", "2025-03-01"),
    "ageing": RawSet("ageing", _generated("retail", 10_000, "ageing", orders_only=True), "2025-01-01", "2024-07-01",
                     horizon_days=180, label="inactivity"),
    "small_subscription": RawSet("small_subscription", _generated("subscription", 4_400), "2025-05-01",
                                 as_of=("2025-03-01", "2025-03-15", "2025-03-29"), horizon_days=30),
    "cdnow": RawSet("cdnow", _cdnow, "1998-01-01", "1997-07-01", horizon_days=180, label="inactivity",
                    generated=False),
    "bank": TableSet("bank", SHARED / "BankChurners.csv", "Attrition_Flag", "CLIENTNUM", "Attrited Customer"),
    "telecom": TableSet("telecom", SHARED / "mlc_churn.csv", "churn", "account_id"),
}


# ------------------------------------------------------------------------------------------ baselines
def _auc(y: Any, p: Any) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if len(set(y)) == 2 else float("nan")


def baseline_scores(train: Any, test: Any, features: list, label: str, id_col: str, seed: int) -> dict[str, Any]:
    """Each plain baseline fitted on `train` and applied to `test` (numeric features as read, categories as
    text)."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.model_selection import GroupKFold

    from churn.preparation import Preparation
    from churn.training.baselines import RECENCY_COLUMNS, logistic_baseline

    out: dict[str, Any] = {}
    y = train[label].to_numpy()
    ids = train[id_col].astype(str)
    # Read as the model reads them (yes/no text as 1/0, numbers written as text, categories as text).
    prep = Preparation(features, infer=True).fit(train)
    features = prep.features_
    train, test = prep.clean(train), prep.clean(test)
    out["logistic"] = logistic_baseline(features, seed=seed).fit(train, y).predict_proba(test)[:, 1]
    numeric = [f.name for f in features if f.kind != "categorical"]
    Xtr = train[numeric].apply(pd.to_numeric, errors="coerce")
    Xte = test[numeric].apply(pd.to_numeric, errors="coerce")
    med = Xtr.median()
    lo, hi = Xtr.quantile(0.001), Xtr.quantile(0.999)
    mu, sd = Xtr.fillna(med).mean(), Xtr.fillna(med).std().replace(0, 1.0)

    def design(X: pd.DataFrame) -> np.ndarray:
        miss = X.isna().to_numpy(dtype=float)[:, Xtr.isna().any().to_numpy()]
        z = ((X.fillna(med).clip(lo, hi, axis=1) - mu) / sd).fillna(0.0).to_numpy()
        return np.hstack([z, miss])

    cv = GroupKFold(n_splits=5)
    l1 = LogisticRegressionCV(Cs=8, penalty="l1", solver="liblinear", scoring="roc_auc", max_iter=500,
                              cv=list(cv.split(Xtr, y, groups=ids)), random_state=seed)
    out["l1_logistic"] = l1.fit(design(Xtr), y).predict_proba(design(Xte))[:, 1]
    rec = next((c for c in RECENCY_COLUMNS if c in numeric), None)
    if rec is not None:
        x = Xte[rec].to_numpy(dtype=float)
        out["recency"] = np.where(np.isnan(x), np.nanmax(x), x)
    if "btyd_p_no_order" in test.columns:
        out["bgnbd"] = pd.to_numeric(test["btyd_p_no_order"], errors="coerce").fillna(1.0).to_numpy()
    return out


# ------------------------------------------------------------------------------------------ one run
def _config(spec: RawSet, seed: int, work: Path, force: str | None = None) -> Any:
    from churn.config import load_config

    cfg = load_config(None)
    model = cfg.model.model_copy(update={"bundle_dir": str(work / "models"), "seed": seed,
                                         "auto_tune_minutes": 60.0,  # trials only: repeatable
                                         "force_candidate": force})
    snaps = cfg.snapshots.model_copy(update={
        "end": date.fromisoformat(spec.train_end) if spec.train_end else None,
        "as_of": [date.fromisoformat(d) for d in spec.as_of]})
    label = cfg.label.model_copy(update={"horizon_days": spec.horizon_days, "kind": spec.label})
    return cfg.model_copy(update={"model": model, "snapshots": snaps, "label": label})


def _registered_at(model: Any, data: Path, when: str, cfg: Any, labels: Any) -> tuple[float, int, int, float]:
    """ROC AUC of the registered model's scores at `when` (the product's scoring path) on that date's labels."""
    from churn.pipeline import score_customers

    rows = score_customers(model, str(data), when, cfg)
    rows = rows[rows["status"] == "scored"].merge(labels, on="customer_id", how="inner")
    raw = model.predict_raw(rows)  # before calibration: what calibration's ties cost shows in the difference
    return (_auc(rows["churned"], rows["churn_probability"]), len(rows), int(rows["churned"].sum()),
            _auc(rows["churned"], raw))


def run_raw(spec: RawSet, seed: int, work: Path, candidates: bool) -> list[dict[str, Any]]:
    """Train, score S with the registered model, and the baselines; rows for the CSV."""
    import time

    import pandas as pd

    from churn.features.engine import build_training_frame, training_as_of
    from churn.pipeline import train_from_data
    from churn.validation import load_source

    data = spec.make(work, seed)
    cfg = _config(spec, seed, work)
    t0 = time.perf_counter()
    res = train_from_data(cfg, str(data))
    seconds = time.perf_counter() - t0
    ds = load_source(str(data), cfg)
    try:
        dates, _ = training_as_of(ds, cfg)
        tf = build_training_frame(ds, cfg, [*(str(d.date()) for d in dates), spec.score_date])
    finally:
        ds.con.close()
    frame = tf.frame
    at_s = frame["as_of"] == pd.Timestamp(spec.score_date)
    train, test = frame[~at_s], frame[at_s]
    labels = test[["customer_id", "churned"]]
    common = {"set": spec.name, "seed": seed, "chosen": res.chosen}
    auc, n, pos, raw = _registered_at(res.model, data, spec.score_date, cfg, labels)
    rows = [{**common, "model": "registered", "roc_auc": auc, "rows": n, "churners": pos,
             "seconds": round(seconds, 1)},
            {**common, "model": "registered_uncalibrated", "roc_auc": raw, "rows": n, "churners": pos}]
    used = {f.name for f in res.model.features_}
    for name, p in baseline_scores(train, test, [f for f in tf.features if f.name in used], "churned", "customer_id",
                                   seed).items():
        rows.append({**common, "model": name, "roc_auc": _auc(test["churned"], p), "rows": len(test),
                     "churners": int(test["churned"].sum())})
    if candidates:
        # Each candidate registered alone (model.force_candidate), trained on the same training frame and
        # read on S's rows of the one build (BG/NBD fitted at S there, frozen at training in the product's
        # path: the registered row above): what "the best single candidate" means in the table.
        from churn.training.train import train as fit

        for cand in sorted(res.candidates):
            t0 = time.perf_counter()
            forced = fit(train.reset_index(drop=True), tf.features, _config(spec, seed, work, force=cand),
                         source=tf.source_settings())
            rows.append({**common, "model": f"candidate:{cand}", "rows": len(test), "churners": int(test["churned"].sum()),
                         "roc_auc": _auc(test["churned"], forced.model.predict_risk(test)),
                         "seconds": round(time.perf_counter() - t0, 1)})
    return rows


def run_table(spec: TableSet, seed: int, work: Path, candidates: bool) -> list[dict[str, Any]]:
    """Train on a seeded 70% of a ready table's customers, score the other 30%."""
    import time

    import numpy as np
    import pandas as pd

    from churn.config import load_config
    from churn.io import read_table
    from churn.pipeline import train_from_table
    from churn.training.table import prepare_table

    if not spec.path.is_file():
        raise SystemExit(f"{spec.path} not found")
    df = read_table(str(spec.path))
    rng = np.random.default_rng(seed)
    test_mask = rng.random(len(df)) < 0.3
    train_df, test_df = df[~test_mask], df[test_mask]
    train_path = work / f"{spec.name}-train.csv"
    train_df.to_csv(train_path, index=False)
    base = load_config(None)

    def cfg(force: str | None) -> Any:
        return base.model_copy(update={"model": base.model.model_copy(update={
            "bundle_dir": str(work / "models"), "seed": seed, "auto_tune_minutes": 60.0, "force_candidate": force,
            "registered_name": f"{spec.name}-{force or 'chosen'}"})})

    t0 = time.perf_counter()
    res = train_from_table(cfg(None), str(train_path), spec.target, spec.id_col, churn_value=spec.churn_value)
    seconds = time.perf_counter() - t0
    tr_frame, features = prepare_table(train_df, spec.target, spec.id_col, churn_value=spec.churn_value)
    te_frame, _ = prepare_table(test_df, spec.target, spec.id_col, churn_value=spec.churn_value)
    y = te_frame[spec.target].to_numpy()
    common = {"set": spec.name, "seed": seed, "chosen": res.chosen, "rows": len(y), "churners": int(y.sum())}
    rows = [{**common, "model": "registered", "roc_auc": _auc(y, res.model.predict_risk(test_df)),
             "seconds": round(seconds, 1)},
            {**common, "model": "registered_uncalibrated", "roc_auc": _auc(y, res.model.predict_raw(test_df))}]
    used = {f.name for f in res.model.features_}
    for name, p in baseline_scores(tr_frame, te_frame, [f for f in features if f.name in used], spec.target,
                                   spec.id_col, seed).items():
        rows.append({**common, "model": name, "roc_auc": _auc(y, p)})
    if candidates:
        for cand in sorted(res.candidates):
            forced = train_from_table(cfg(cand), str(train_path), spec.target, spec.id_col,
                                      churn_value=spec.churn_value)
            rows.append({**common, "model": f"candidate:{cand}", "roc_auc": _auc(y, forced.model.predict_risk(test_df))})
    _ = pd
    return rows


# ------------------------------------------------------------------------------------------ summary
def _median(v: Sequence[float]) -> float:
    v = [x for x in v if x == x]
    return statistics.median(v) if v else float("nan")


def markdown(rows: Sequence[dict[str, Any]], sets: Sequence[str]) -> str:
    """One table: per data set the registered model, each baseline and the best candidate (medians over seeds),
    and the registered model minus the best baseline and minus the best candidate."""
    models = ["registered", "recency", "logistic", "l1_logistic", "bgnbd"]
    lines = ["| data set | seeds | registered | recency | logistic | L1 logistic | BG/NBD | best candidate "
             "| registered minus best baseline | minus best candidate | chosen per seed |",
             "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for s in sets:
        mine = [r for r in rows if r["set"] == s]
        if not mine:
            continue
        med = {m: _median([float(r["roc_auc"]) for r in mine if r["model"] == m]) for m in {r["model"] for r in mine}}
        cands = {m.split(":", 1)[1]: v for m, v in med.items() if m.startswith("candidate:")}
        best_c = max(cands, key=lambda c: cands[c]) if cands else None
        base = [med[m] for m in models[1:] if m in med and med[m] == med[m]]
        seeds = sorted({r["seed"] for r in mine})
        chosen = [next(r["chosen"] for r in mine if r["seed"] == sd) for sd in seeds]
        cell = lambda m: f"{med[m]:.4f}" if m in med and med[m] == med[m] else "-"  # noqa: E731
        lines.append(
            f"| {s} | {len(seeds)} | {cell('registered')} | {cell('recency')} | {cell('logistic')} "
            f"| {cell('l1_logistic')} | {cell('bgnbd')} | "
            + (f"{best_c} {cands[best_c]:.4f}" if best_c else "-")
            + f" | {med['registered'] - max(base):+.4f} | "
            + (f"{med['registered'] - cands[best_c]:+.4f}" if best_c else "-")
            + f" | {', '.join(chosen)} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", default=",".join(SETS), help="Comma-separated, from: " + ", ".join(SETS))
    ap.add_argument("--seeds", default="0,1,2", help="Seeds for generated sets (real sets run seed 0 only).")
    ap.add_argument("--candidates", action="store_true", help="Also train and score every candidate alone.")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "forward.csv")
    args = ap.parse_args(argv)
    sets = [s.strip() for s in args.sets.split(",") if s.strip()]
    unknown = [s for s in sets if s not in SETS]
    if unknown:
        raise SystemExit(f"unknown data set(s) {unknown}; choose from {', '.join(SETS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="churn-forward-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        os.environ["CHURN_ARTIFACT_ROOT"] = Path(tmp, "mlartifacts").as_uri()
        import quality

        quality._quiet()
        for name in sets:
            spec = SETS[name]
            for seed in (seeds if spec.generated else seeds[:1]):
                work = Path(tmp, f"{name}-{seed}")
                work.mkdir()
                run = run_raw if isinstance(spec, RawSet) else run_table
                new = run(spec, seed, work, args.candidates)  # type: ignore[arg-type]
                rows += new
                shutil.rmtree(work, ignore_errors=True)
                print(f"{name} seed {seed}: chosen {new[0]['chosen']}: "
                      + ", ".join(f"{r['model']} {r['roc_auc']:.4f}" for r in new), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    print("\n" + markdown(rows, sets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
