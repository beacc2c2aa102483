"""How validation rows are drawn, and whether validation then ranks the candidates as the holdout does.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/validation_designs.py --mechanism small --seeds 3,4,5,6,7,8,9,10
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/validation_designs.py --mechanism default --seeds 0,1,2 \\
        --customers 10000

The data of `benchmarks/quality.py` (same generator settings and seeds); the evaluation fits of the tree
candidates and the spline logistic regression, without MLflow (the Optuna search by trials only, so runs
repeat exactly), under three designs of the out-of-time split:

- `shared`: validation rows of every non-holdout customer, whose older rows also train (before e01f81b);
- `held_out`: validation rows of a 30% share of customers, none of whose rows train (now);
- `purged`: as `shared`, less the training snapshots whose label window reaches the first validation date.

Per run it prints each candidate's ROC AUC on validation and on the holdout, and per design the Kendall
tau between the two rankings of the four single candidates, averaged over seeds, and per seed the logistic
regression's ROC AUC minus the best tree's on validation and on the holdout (same sign: validation told
the truth about trees against the logistic regression).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
DESIGNS = ("shared", "held_out", "purged")


def training_frame(mechanism: str, seed: int, customers: int) -> tuple[Any, list[Any]]:
    """The generated scenario's training frame and features (`benchmarks/quality.py`'s data)."""
    import quality
    from churn.config import load_config
    from churn.features.engine import build_training_frame
    from churn.validation import load_source

    sc = quality.scenario(mechanism, customers, customers)
    with tempfile.TemporaryDirectory() as d:
        data = quality.make_data(sc, seed, Path(d))
        cfg = load_config(None)
        ds = load_source(str(data), cfg)
        try:
            tf = build_training_frame(ds, cfg, None)
        finally:
            ds.con.close()
    return tf.frame.reset_index(drop=True), tf.features


def split(design: str, ids: np.ndarray, frame: Any, config: Any) -> Any:
    """The out-of-time split of `design`."""
    import pandas as pd

    from churn.training.splits import split_out_of_time

    mc = config.model
    kw = dict(holdout_snapshots=mc.holdout_snapshots, valid_snapshots=mc.valid_snapshots,
              calibration_share=mc.calibration_share, holdout_customer_share=0.3, seed=mc.seed)
    if design == "held_out":
        return split_out_of_time(ids, frame["as_of"], valid_customer_share=mc.valid_customer_share, **kw)
    every = split_out_of_time(ids, frame["as_of"], valid_customer_share=1.0 - 1e-12, **kw)  # validates all
    s = split_out_of_time(ids, frame["as_of"], valid_customer_share=1e-12, **kw)  # trains on all
    s.early_stopping, s.calibration = every.early_stopping, every.calibration
    if design == "purged":
        t = pd.to_datetime(frame["as_of"]).to_numpy()
        first = t[np.r_[s.early_stopping, s.calibration]].min()
        s.train = s.train[t[s.train] + np.timedelta64(config.label.horizon_days, "D") <= first]
    return s


def run(design: str, frame: Any, feats: list[Any], seed: int) -> dict[str, dict[str, float]]:
    """Each single candidate's validation and holdout ROC AUC under `design`."""
    from churn.config import load_config
    from churn.preparation import Preparation
    from churn.training import selection as sel
    from churn.training.metrics import ranking_metrics
    from churn.training.splits import VALIDATION_SHARE, unit_hash
    from churn.training.tune import tune

    cfg = load_config(None)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"seed": seed})})
    mc = cfg.model
    y = frame["churned"].to_numpy().astype(int)
    features = Preparation(feats, infer=True).fit(frame).features_
    ids = frame["customer_id"].astype(str).to_numpy(dtype=object)
    s = split(design, ids, frame, cfg)
    tuned = None
    if len(s.train) <= mc.auto_tune_max_rows:
        inner = unit_hash(ids[s.train], mc.seed, "tune") < VALIDATION_SHARE
        fit, ev = s.train[~inner], s.train[inner]
        prep = Preparation(features, infer=True).fit(frame.iloc[fit])
        tuned = tune(prep.transform(frame.iloc[fit]), y[fit], prep.transform(frame.iloc[ev]), y[ev],
                     base_params=dict(mc.params), categorical_index=prep.categorical_index_,
                     feature_names=prep.feature_names_, n_trials=mc.auto_tune_trials, minutes=None, seed=mc.seed,
                     n_jobs=mc.n_jobs, num_boost_round=mc.num_boost_round,
                     early_stopping_rounds=mc.early_stopping_rounds).params
    va = np.sort(np.r_[s.early_stopping, s.calibration])
    es = (frame.iloc[s.early_stopping], y[s.early_stopping])
    out = {}
    for c in sel.candidate_list(cfg, tuned):
        if c.kind == "blend":
            continue
        if c.kind == "logistic":
            m = sel._penalised(cfg, features, c, frame.iloc[s.train], y[s.train], es, None, lambda _: None)
        else:
            m = sel._model(cfg, features, c, None, None).fit(frame.iloc[s.train], y[s.train], eval_set=es)
        out[c.name] = {part: ranking_metrics(y[rows], m.predict_raw(frame.iloc[rows]))["roc_auc"]
                       for part, rows in (("valid", va), ("holdout", s.holdout))}
    return out


def main() -> int:
    from scipy.stats import kendalltau

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mechanism", default="small")
    ap.add_argument("--seeds", default="3,4,5,6,7,8,9,10")
    ap.add_argument("--customers", type=int, default=1500)
    args = ap.parse_args()
    taus: dict[str, list[float]] = {d: [] for d in DESIGNS}
    signs: dict[str, list[str]] = {d: [] for d in DESIGNS}
    for seed in (int(x) for x in args.seeds.split(",")):
        frame, feats = training_frame(args.mechanism, seed, args.customers)
        for design in DESIGNS:
            r = run(design, frame, feats, seed)
            print(design, seed, {k: {p: round(v, 4) for p, v in m.items()} for k, m in r.items()}, flush=True)
            names = list(r)
            taus[design].append(kendalltau([r[n]["valid"] for n in names], [r[n]["holdout"] for n in names]).statistic)
            trees = [n for n in names if n != "logistic"]
            gap = {p: r["logistic"][p] - max(r[n][p] for n in trees) for p in ("valid", "holdout")}
            signs[design].append(f"{gap['valid']:+.3f}/{gap['holdout']:+.3f}")
    print(f"\n`{args.mechanism}`, seeds {args.seeds}:\n")
    print("| design | Kendall tau, validation vs holdout ranking (mean) | logistic minus best tree, validation/holdout, per seed |")
    print("|---|---:|---|")
    for d in DESIGNS:
        print(f"| {d} | {statistics.mean(taus[d]):+.2f} | {', '.join(signs[d])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
