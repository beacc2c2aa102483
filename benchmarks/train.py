"""Benchmark training: full `train()` (split, fit, calibration, baselines, metrics, plots, MLflow logging,
registration, bundle) and the LightGBM fit alone, on a synthetic frame of N rows x ~60 features.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train.py                      # 1M rows, 3 repeats
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train.py --rows 200000 --repeats 1
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train.py --demo 20000 --repeats 3   # `make demo`'s data

The frame is `churn.training.synthetic.synthetic_training_frame`: 5 monthly snapshots of rows/5 customers,
59 features (48 numeric signals, 8 planted churn drivers, 3 extra categoricals + plan + region). Config:
defaults (learning rate 0.05, up to 2000 rounds, early stopping 100, isotonic) with n_jobs=2. Each repeat
runs in a fresh subprocess with its own temporary SQLite store; the store is created (schema migrations,
~10 s) before the clock starts. Prints JSON per repeat and a Markdown row for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path


def _frame(rows: int, seed: int, demo: int) -> tuple:
    """(frame, features, horizon source): the synthetic frame, or the demo's generated data built into its
    training frame (cached under benchmarks/out, so only training is timed)."""
    if not demo:
        from churn.training.synthetic import synthetic_training_frame

        frame, features = synthetic_training_frame(rows // 5, 5, seed=seed, n_noise=48, n_extra_categorical=3)
        return frame, features, None
    from churn.config import load_config
    from churn.demo import DEMO_END, DEMO_EVENTS_PER_CUSTOMER, DEMO_START
    from churn.features.engine import build_training_frame
    from churn.generate import generate
    from churn.validation import load_source

    data = Path(__file__).resolve().parent / "out" / f"demo-{demo}-{seed}"
    if not (data / "customers.parquet").exists():
        generate(demo, DEMO_START, DEMO_END, seed, data, overwrite=True, events_per_customer=DEMO_EVENTS_PER_CUSTOMER)
    cfg = load_config(None)
    ds = load_source(str(data), cfg)
    try:
        tf = build_training_frame(ds, cfg)
    finally:
        ds.con.close()
    return tf.frame, tf.features, tf.source_settings()


def worker(rows: int, seed: int, demo: int = 0) -> dict:
    """One measurement in this process: returns timings and sizes."""

    from churn.config import Config, load_config
    from churn.preparation import Preparation
    from churn.training.model import lightgbm_params, train_booster
    from churn.training.tracking import ensure_experiment, mlflow_session
    from churn.training.train import split_out_of_time, train

    t0 = time.perf_counter()
    frame, features, source = _frame(rows, seed, demo)
    gen_s = time.perf_counter() - t0
    cfg = load_config(None) if demo else Config()
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"n_jobs": 2})})
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        os.environ["CHURN_ARTIFACT_ROOT"] = Path(tmp, "artifacts").as_uri()
        cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"bundle_dir": f"{tmp}/models"})})
        t = time.perf_counter()
        with mlflow_session() as client:
            ensure_experiment(client, cfg.model.experiment)
        store_s = time.perf_counter() - t

        marks: list[tuple[float, str]] = []
        t = time.perf_counter()
        res = train(frame, features, cfg, source=source, progress=lambda m: marks.append((time.perf_counter(), m)))
        train_s = time.perf_counter() - t
        phases = _phases(marks, t, t + train_s)

        # LightGBM alone: the same split, prepared once, same parameters and early stopping.
        mc = cfg.model
        s = split_out_of_time(frame["customer_id"].to_numpy(dtype=object), frame["as_of"],
                              holdout_snapshots=mc.holdout_snapshots, valid_snapshots=mc.valid_snapshots,
                              calibration_share=mc.calibration_share, holdout_customer_share=0.3, seed=mc.seed,
                              valid_customer_share=mc.valid_customer_share)
        y = frame["churned"].to_numpy()
        prep = Preparation(features, infer=True).fit(frame.iloc[s.train])
        X, X_es = prep.transform(frame.iloc[s.train]), prep.transform(frame.iloc[s.early_stopping])
        params = lightgbm_params(mc.params, seed=mc.seed, n_jobs=mc.n_jobs)
        t = time.perf_counter()
        _, best, _ = train_booster(X, y[s.train], X_es, y[s.early_stopping], params=params,
                                   categorical_index=prep.categorical_index_, feature_names=prep.feature_names_,
                                   num_boost_round=mc.num_boost_round, early_stopping_rounds=mc.early_stopping_rounds)
        lgb_s = time.perf_counter() - t
    return {
        "rows": len(frame), "features": len(features), "train_rows": len(s.train),
        "early_stopping_rows": len(s.early_stopping), "holdout_rows": len(s.holdout), "chosen": res.chosen,
        "generate_s": round(gen_s, 2), "store_create_s": round(store_s, 2), "train_s": round(train_s, 2),
        "lgb_fit_s": round(lgb_s, 2), "best_iteration": int(best), "train_best_iteration": res.model.best_iteration_,
        "roc_auc": round(res.metrics["roc_auc"], 4), "pr_auc": round(res.metrics["pr_auc"], 4),
        "baseline_logistic_roc_auc": round(res.baseline_metrics["logistic"]["roc_auc"], 4),
        "phases_s": phases,
    }


def _phases(marks: list[tuple[float, str]], start: float, end: float) -> dict[str, float]:
    """Seconds between successive progress messages, keyed by the message's first words."""
    out: dict[str, float] = {}
    points = [(start, "start")] + marks + [(end, "end")]
    for (t0, m0), (t1, _) in itertools.pairwise(points):
        key = " ".join(m0.split()[:2])
        out[key] = round(out.get(key, 0.0) + (t1 - t0), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--demo", type=int, default=0, metavar="CUSTOMERS",
                    help="Time train() on the demo's generated data of this many customers (20000: `make demo`'s) "
                         "instead of the synthetic frame; the data and its training frame are built before the clock.")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.rows, a.seed, a.demo)))
        return
    results, rss = [], []
    for i in range(a.repeats):
        t = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--worker", "--rows", str(a.rows), "--seed", str(a.seed),
                                 "--demo", str(a.demo)], stdout=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        out = proc.stdout.read() if proc.stdout else ""
        if status != 0:
            raise SystemExit(f"repeat {i + 1} failed")
        r = json.loads(out.strip().splitlines()[-1])
        r["wall_s"] = round(time.perf_counter() - t, 1)
        r["peak_rss_mib"] = round(usage.ru_maxrss / 1024)
        print(json.dumps(r), file=sys.stderr)
        results.append(r)
        rss.append(r["peak_rss_mib"])
    med = {k: statistics.median(r[k] for r in results) for k in ("train_s", "lgb_fit_s")}
    runs = lambda k: ", ".join(f"{r[k]:.1f}" for r in results)
    r0 = results[0]
    print(f"| {date.today()} | 2 cores / 24 GiB, Python {platform.python_version()} | "
          f"`benchmarks/train.py {f'--demo {a.demo}' if a.demo else f'--rows {a.rows}'} --repeats {a.repeats}` | "
          f"{r0['rows']:,} x {r0['features']} | "
          f"{med['train_s']:.1f} s (n={a.repeats}: {runs('train_s')}) | {med['lgb_fit_s']:.1f} s "
          f"(n={a.repeats}: {runs('lgb_fit_s')}; {r0['best_iteration']} rounds) | {max(rss):,} MiB | "
          f"{r0['roc_auc']:.3f} / {r0['baseline_logistic_roc_auc']:.3f} |")


if __name__ == "__main__":
    main()
