"""BG/NBD at scoring: parameters frozen at training (what churn does) against a refit at the scoring date.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/btyd_frozen.py --seeds 0,1,2,3,4

Per seed: a retail business (`churn.generate`, 2024-01-01 to 2025-07-01) of which only `orders.parquet` is
kept, as `benchmarks/quality.py`'s `transaction_log`. A model is trained (default config, MLflow on a temporary
SQLite store) on snapshots ending `--train-end`, so that later dates with complete labels remain. At each
`--score-dates` date the features are built twice: with the BG/NBD parameters stored in the model (the newest
training date's fit) and with a fit at that date (the old behaviour); the model scores both and each is ranked
against the actual labels of that date (ROC AUC), as is the `btyd_p_no_order` feature on its own. Prints a
Markdown table (per date: median over seeds of each, and of frozen minus refit).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--train-end", default="2025-02-01", help="The newest training snapshot.")
    ap.add_argument("--score-dates", default="2025-03-01,2025-05-01", help="Later dates with complete labels.")
    return ap.parse_args()


def one_seed(seed: int, customers: int, train_end: str, dates: list[str], work: Path) -> list[dict[str, Any]]:
    """Train on one generated transaction log, then rank each later date's customers both ways."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    import quality
    from churn.config import load_config
    from churn.features.engine import build_features, build_training_frame
    from churn.pipeline import train_from_data
    from churn.validation import load_source

    data = quality.make_data(quality.scenario("transaction_log", customers, 0), seed, work)
    cfg = load_config(None)
    cfg = cfg.model_copy(update={
        "model": cfg.model.model_copy(update={"bundle_dir": str(work / "models"), "seed": seed}),
        "snapshots": cfg.snapshots.model_copy(update={"end": pd.Timestamp(train_end).date()})})
    model = train_from_data(cfg, str(data)).model
    settings = model.source_settings
    rows = []
    for when in dates:
        ds = load_source(str(data), cfg)
        try:  # features with a fit at this date, and the labels
            refit = build_training_frame(ds, cfg, [when]).frame
        finally:
            ds.con.close()
        ds = load_source(str(data), cfg)
        try:
            frozen = build_features(ds, [pd.Timestamp(when)], cfg, event_types=settings["event_types"],
                                    label=settings["label"], btyd_params=settings["btyd_params"]).to_pandas()
        finally:
            ds.con.close()
        frozen = frozen.set_index("customer_id").loc[refit["customer_id"]].reset_index()
        y = refit["churned"].to_numpy()
        p0 = refit["btyd_p_no_order"]
        f0 = frozen["btyd_p_no_order"]
        known = p0.notna().to_numpy() & f0.notna().to_numpy()
        rows.append({
            "seed": seed, "date": when, "rows": len(y), "churners": int(y.sum()),
            "model_frozen": roc_auc_score(y, model.predict_risk(frozen)),
            "model_refit": roc_auc_score(y, model.predict_risk(refit)),
            "feature_frozen": roc_auc_score(y[known], f0[known]),
            "feature_refit": roc_auc_score(y[known], p0[known]),
        })
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    args = _parse()
    seeds = [int(s) for s in args.seeds.split(",")]
    dates = args.score_dates.split(",")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="churn-btyd-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        os.environ["CHURN_ARTIFACT_ROOT"] = Path(tmp, "mlartifacts").as_uri()
        import quality

        quality._quiet()
        for seed in seeds:
            t0 = time.perf_counter()
            work = Path(tmp) / f"seed{seed}"
            work.mkdir()
            rows += one_seed(seed, args.customers, args.train_end, dates, work)
            print(f"seed {seed}: {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"\n`benchmarks/btyd_frozen.py --seeds {args.seeds} --customers {args.customers} --train-end "
          f"{args.train_end}`: ROC AUC on each date's actual labels, median over {len(seeds)} seeds\n")
    print("| date | churners (median) | model, frozen | model, refit | frozen minus refit (median, worst) "
          "| P(no order) alone, frozen | refit |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for when in dates:
        mine = [r for r in rows if r["date"] == when]
        med = {k: statistics.median(r[k] for r in mine) for k in mine[0] if k not in ("seed", "date")}
        diff = [r["model_frozen"] - r["model_refit"] for r in mine]
        print(f"| {when} | {med['churners']:.0f} | {med['model_frozen']:.4f} | {med['model_refit']:.4f} | "
              f"{statistics.median(diff):+.4f}, {min(diff):+.4f} | {med['feature_frozen']:.4f} | "
              f"{med['feature_refit']:.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
