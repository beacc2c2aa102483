"""The registered model (the refit on every snapshot) on later dates it never saw, against their labels.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/registered_later.py --mechanisms default,transaction_log

`benchmarks/quality.py` measures each candidate's evaluation fit on the holdout; what is registered and
scored is the refit of the chosen settings on every snapshot, which that holdout cannot measure. Here, per
mechanism and seed (`benchmarks/quality.py`'s data), a model is trained on snapshots up to `--train-end`
and the registered model ranks each later `--score-dates` date's customers (features built as training
builds them), against that date's actual labels. Run it from git worktrees of two commits to compare them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))


def one(mechanism: str, seed: int, customers: int, train_end: str, dates: list[str], work: Path) -> list[dict]:
    """Train on one generated data set; ROC AUC of the registered model at each later date."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    import quality
    from churn.config import load_config
    from churn.features.engine import build_training_frame
    from churn.pipeline import train_from_data
    from churn.validation import load_source

    data = quality.make_data(quality.scenario(mechanism, customers, customers), seed, work)
    cfg = load_config(None)
    cfg = cfg.model_copy(update={
        "model": cfg.model.model_copy(update={"bundle_dir": str(work / "models"), "seed": seed,
                                              "auto_tune_minutes": 60.0}),  # trials only: repeatable
        "snapshots": cfg.snapshots.model_copy(update={"end": pd.Timestamp(train_end).date()})})
    res = train_from_data(cfg, str(data))
    rows = []
    for when in dates:
        ds = load_source(str(data), cfg)
        try:
            frame = build_training_frame(ds, cfg, [when]).frame
        finally:
            ds.con.close()
        y = frame["churned"].to_numpy()
        rows.append({"mechanism": mechanism, "seed": seed, "date": when, "chosen": res.chosen,
                     "churners": int(y.sum()), "roc_auc": roc_auc_score(y, res.model.predict_risk(frame))})
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mechanisms", default="default,transaction_log")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--train-end", default="2025-02-01")
    ap.add_argument("--score-dates", default="2025-03-01,2025-05-01")
    args = ap.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="churn-later-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        os.environ["CHURN_ARTIFACT_ROOT"] = Path(tmp, "mlartifacts").as_uri()
        import quality

        quality._quiet()
        for mech in args.mechanisms.split(","):
            for seed in (int(s) for s in args.seeds.split(",")):
                work = Path(tmp) / f"{mech}-{seed}"
                work.mkdir()
                rows += one(mech, seed, args.customers, args.train_end, args.score_dates.split(","), work)
    print("\n| mechanism | date | registered model's ROC AUC per seed | median | chosen per seed |")
    print("|---|---|---|---:|---|")
    for mech in args.mechanisms.split(","):
        for when in args.score_dates.split(","):
            mine = [r for r in rows if r["mechanism"] == mech and r["date"] == when]
            aucs = ", ".join(f"{r['roc_auc']:.4f}" for r in mine)
            chosen = ", ".join(r["chosen"] for r in mine)
            print(f"| {mech} | {when} | {aucs} | {statistics.median(r['roc_auc'] for r in mine):.4f} | {chosen} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
