"""Benchmark: score 1M customers from a ready feature table, with reason codes, incentives and all outputs.

    python benchmarks/score.py --customers 1000000 --repeats 3

Preparation (not timed, cached under benchmarks/out/): the 1M-customer generated data set (shared with
benchmarks/features.py), its point-in-time feature table at one as-of date joined with the customers'
contact attributes (a ready feature table, as a team would hand it over), and a model bundle trained with
the default config on a 20k-customer generated data set (same feature columns). Timed: `churn score
--table ... --id customer_id --model <bundle> --out ...` in a fresh subprocess (wall and that child's
peak RSS via os.wait4): read, validate against the model's schema, calibrated probabilities, reason
codes (default path attribution), tiers, value, budgeted allocation, control group, messages, and
scores.parquet, segments, workbook, report, alerts, summary.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
AS_OF = "2025-06-01"
EARLIER = "2024-12-01"


def prepare_table(customers: int) -> Path:
    """The ready feature table: `customers` rows of engine features plus contact attributes.

    The generated population grows over time (663k of the 1M customers are active on AS_OF), so the
    table is topped up with customers' rows from a snapshot six months earlier, under distinct ids: real
    feature distributions, exactly `customers` rows.
    """
    path = OUT / f"score-input-{customers}.parquet"
    if path.exists():
        return path
    sys.path.insert(0, str(HERE))
    import features as fb  # the shared benchmark data set

    from churn.config import load_config
    from churn.features.engine import build_features
    from churn.timeline import parse_as_of
    from churn.validation import load_source

    data = fb.ensure_data(customers)
    cfg = load_config()
    ds = load_source(str(data), cfg)
    # Features are built and streamed date by date into a file (there is no stored feature table to join).
    feats = path.with_suffix(".features.parquet")
    build_features(ds, [parse_as_of(AS_OF), parse_as_of(EARLIER)], cfg).write(feats, overwrite=True)
    ds.con.execute(
        f"CREATE TEMP TABLE ready AS SELECT f.*, c.marketing_consent, c.name, c.email FROM read_parquet('{feats}') f "
        "JOIN customers c USING (customer_id)"
    )
    feats.unlink()
    tmp = path.with_suffix(".tmp.parquet")
    ds.con.execute(
        f"""COPY (
              SELECT * EXCLUDE (as_of) FROM (
                SELECT * FROM ready WHERE as_of = TIMESTAMP '{AS_OF}'
                UNION ALL
                SELECT * REPLACE ('E' || customer_id AS customer_id) FROM ready
                WHERE as_of = TIMESTAMP '{EARLIER}')
              ORDER BY as_of DESC, customer_id LIMIT {customers}
            ) TO '{tmp}' (FORMAT PARQUET)"""
    )
    os.replace(tmp, path)
    return path


def prepare_model(kind: str | None = None) -> Path:
    """A bundle trained with the default config on 20k generated customers (`kind`: the candidate forced
    with model.force_candidate, so each model kind's scoring cost can be measured)."""
    models = OUT / (f"models-{kind}" if kind else "models")
    existing = sorted(models.glob("churn-*")) if models.exists() else []
    if existing:
        return existing[-1]
    from churn.config import load_config
    from churn.generate import generate
    from churn.pipeline import train_from_data

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{OUT / 'mlruns.db'}"
    os.environ["CHURN_ARTIFACT_ROOT"] = (OUT / "mlartifacts").as_uri()
    data = OUT / "train-data-20000"
    if not (data / "events.parquet").exists():
        generate(20_000, date(2024, 1, 1), date(2025, 7, 1), 42, data, overwrite=True, events_per_customer=120)
    cfg = load_config()
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"bundle_dir": str(models),
                                                                        "force_candidate": kind})})
    res = train_from_data(cfg, str(data))
    return Path(res.bundle_path)


def run_once(table: Path, model: Path) -> tuple[float, float]:
    """Score in a fresh `churn` process; return (wall s, peak RSS MiB)."""
    out = OUT / "scores"
    if out.exists():
        shutil.rmtree(out)
    churn = Path(sys.executable).parent / "churn"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    t = time.perf_counter()
    proc = subprocess.Popen([str(churn), "score", "--table", str(table), "--id", "customer_id", "--model", str(model),
                             "--as-of", AS_OF, "--out", str(out)], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit("churn score failed")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    """Prepare once, then time repeated scoring runs."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kind", choices=["lightgbm", "blend", "logistic"], default=None,
                    help="force this candidate in the scored model (default: whatever validation chooses)")
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    table = prepare_table(a.customers)
    model = prepare_model(a.kind)
    import pyarrow.parquet as pq

    rows = pq.ParquetFile(table).metadata.num_rows
    runs = [run_once(table, model) for _ in range(a.repeats)]
    print("| rows | model | wall s (median) | peak RSS MiB (median) | runs (s) |")
    print("|---|---|---|---|---|")
    print(f"| {rows:,} | {model.name} | {statistics.median(r[0] for r in runs):.1f} | "
          f"{statistics.median(r[1] for r in runs):,.0f} | {', '.join(f'{r[0]:.1f}' for r in runs)} |")


if __name__ == "__main__":
    main()
