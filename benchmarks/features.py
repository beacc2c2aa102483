"""Benchmark: all feature families for N customers at 1 and 6 as-of dates, churn (DuckDB) vs a pandas baseline.

    python benchmarks/features.py --customers 1000000 --repeats 3

Each measurement runs in a fresh subprocess; wall time and that child's peak RSS (os.wait4) are recorded.
The data set is generated once (churn generate, seed 7) under benchmarks/out/ and reused.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "2024-01-01", "2025-07-01"
AS_OF_6 = ["2025-01-01", "2025-02-01", "2025-03-01", "2025-04-01", "2025-05-01", "2025-06-01"]
AS_OF_1 = ["2025-06-01"]


def ensure_data(customers: int) -> Path:
    """Generate the benchmark data set once."""
    out = HERE / "out" / f"data-{customers}"
    if not (out / "events.parquet").exists():
        from datetime import date

        from churn.generate import generate

        t = time.perf_counter()
        generate(customers, date.fromisoformat(START), date.fromisoformat(END), 7, out, overwrite=True)
        print(f"generated {customers:,} customers in {time.perf_counter() - t:.0f} s", file=sys.stderr)
    return out


def run_child(args: list[str]) -> tuple[float, float, dict]:
    """Run this script as a worker; return (wall s, peak RSS MiB, worker's JSON)."""
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    out = proc.stdout.read() if proc.stdout else ""
    if status != 0:
        raise SystemExit(f"worker {args} failed")
    return wall, usage.ru_maxrss / 1024, json.loads(out.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- workers
def worker_churn(data: Path, as_of: list[str]) -> dict:
    """Validate + build every family with churn's engine, write Parquet."""
    from churn.config import load_config
    from churn.features.engine import build_features
    from churn.timeline import parse_as_of
    from churn.validation import load_source

    cfg = load_config()
    t0 = time.perf_counter()
    ds = load_source(str(data), cfg)
    t1 = time.perf_counter()
    fs = build_features(ds, [parse_as_of(d) for d in as_of], cfg)
    t2 = time.perf_counter()
    out = HERE / "out" / "features.parquet"
    fs.write(out, overwrite=True)
    t3 = time.perf_counter()
    # Counted from the file: the feature rows exist only as each date's query, and counting one would rebuild it.
    rows = ds.con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0]
    ds.con.close()  # as `churn features` does
    return {"validate_s": t1 - t0, "features_s": t2 - t1, "write_s": t3 - t2, "rows": rows, "n_features": len(fs.registry)}


def worker_pandas(data: Path, as_of: list[str]) -> dict:
    """The same families with plain pandas groupbys (the baseline)."""
    import numpy as np
    import pandas as pd

    t0 = time.perf_counter()
    cust = pd.read_parquet(data / "customers.parquet")
    ev = pd.read_parquet(data / "events.parquet", columns=["customer_id", "timestamp", "event_type", "duration_s"])
    tk = pd.read_parquet(data / "tickets.parquet")
    od = pd.read_parquet(data / "orders.parquet", columns=["customer_id", "ordered_at", "amount", "discount"])
    sv = pd.read_parquet(data / "surveys.parquet")
    t1 = time.perf_counter()
    types = ev["event_type"].value_counts().index[:8].tolist()
    frames = []
    for d in as_of:
        a = pd.Timestamp(d)
        spine = cust[(cust.signup_date < a) & (cust.cancel_date.isna() | (cust.cancel_date >= a))][
            ["customer_id", "signup_date", "plan", "region", "country", "language", "channel", "monthly_fee"]].copy()
        spine["tenure_days"] = (a - spine.pop("signup_date")).dt.days
        f = spine.set_index("customer_id")
        e = ev[ev.timestamp < a]
        last = e.groupby("customer_id").timestamp.max()
        f["days_since_last_event"] = (a - last).dt.days
        for w in (7, 30, 90):
            ew = e[e.timestamp >= a - pd.Timedelta(days=w)]
            g = ew.groupby("customer_id")
            f[f"events_{w}d"] = g.size()
            f[f"active_days_{w}d"] = ew.assign(day=ew.timestamp.dt.normalize()).groupby("customer_id").day.nunique()
            f[f"duration_hours_{w}d"] = g.duration_s.sum() / 3600
            by_type = ew.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
            for t in types:
                if t in by_type:
                    f[f"events_{t}_{w}d"] = by_type[t]
        e60 = e[(e.timestamp >= a - pd.Timedelta(days=60)) & (e.timestamp < a - pd.Timedelta(days=30))]
        f["events_trend_30d"] = (f["events_30d"].fillna(0) + 1) / (e60.groupby("customer_id").size().reindex(f.index).fillna(0) + 1) - 1
        tka = tk[tk.opened_at < a]
        for w in (30, 90, 180):
            tw = tka[tka.opened_at >= a - pd.Timedelta(days=w)]
            f[f"tickets_{w}d"] = tw.groupby("customer_id").size()
            f[f"complaints_{w}d"] = tw[tw.is_complaint].groupby("customer_id").size()
        openm = tka.closed_at.isna() | (tka.closed_at >= a)
        f["open_tickets"] = tka[openm].groupby("customer_id").size()
        f["days_since_last_complaint"] = (a - tka[tka.is_complaint].groupby("customer_id").opened_at.max()).dt.days
        closed = tka[tka.closed_at < a]
        f["resolution_days_mean_180d"] = ((closed.closed_at - closed.opened_at).dt.total_seconds() / 86400).groupby(closed.customer_id).mean()
        o = od[od.ordered_at < a]
        for w in (30, 90, 180, 365):
            ow = o[o.ordered_at >= a - pd.Timedelta(days=w)]
            g = ow.groupby("customer_id")
            f[f"orders_{w}d"] = g.size()
            f[f"spend_{w}d"] = g.amount.sum()
        od_days = o.assign(day=o.ordered_at.dt.normalize()).drop_duplicates(["customer_id", "day"]).sort_values(["customer_id", "day"])
        od_days["gap"] = od_days.groupby("customer_id").day.diff().dt.days
        g = od_days.groupby("customer_id")
        f["days_since_last_order"] = (a - g.day.max()).dt.days
        f["order_gap_mean_days"] = g.gap.mean()
        f["order_gap_std_days"] = g.gap.std(ddof=0)
        f["order_overdue_ratio"] = f["days_since_last_order"] / f["order_gap_mean_days"]
        s = sv[sv.answered_at < a].sort_values("answered_at")
        gs = s.groupby("customer_id")
        f["survey_last_score"] = gs.score.last()
        f["survey_mean_score"] = gs.score.mean()
        f["days_since_last_survey"] = (a - gs.answered_at.max()).dt.days
        f["as_of"] = a
        frames.append(f.reset_index())
    res = pd.concat(frames, ignore_index=True)
    t2 = time.perf_counter()
    res.to_parquet(HERE / "out" / "features_pandas.parquet", index=False)
    t3 = time.perf_counter()
    return {"read_s": t1 - t0, "features_s": t2 - t1, "write_s": t3 - t2, "rows": len(res),
            "n_features": res.shape[1] - 2, "nan_share": float(np.mean(res.isna().to_numpy()))}


def main() -> None:
    """Parse arguments; run as orchestrator or as a worker."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--engines", default="churn,pandas")
    ap.add_argument("--worker", choices=["churn", "pandas"])
    ap.add_argument("--data", type=Path)
    ap.add_argument("--n-as-of", type=int, default=1)
    ap.add_argument("--as-of-counts", default="1,6", help="which builds to time: one as-of date, six, or both")
    a = ap.parse_args()
    if a.worker:
        dates = AS_OF_1 if a.n_as_of == 1 else AS_OF_6
        res = (worker_churn if a.worker == "churn" else worker_pandas)(a.data, dates)
        print(json.dumps(res), flush=True)
        # Leave as the `churn` command does (`churn.cli.main`): without the collector's last walk over every
        # object at exit. Both engines, so the comparison stays even.
        gc.freeze()
        return
    data = ensure_data(a.customers)
    (HERE / "out").mkdir(exist_ok=True)
    print("| engine | as-of dates | wall s (median) | peak RSS MiB (median) | rows | features | runs |")
    print("|---|---|---|---|---|---|---|")
    for engine in a.engines.split(","):
        for n in (int(c) for c in a.as_of_counts.split(",")):
            runs = [run_child(["--worker", engine, "--data", str(data), "--n-as-of", str(n)]) for _ in range(a.repeats)]
            wall = statistics.median(r[0] for r in runs)
            rss = statistics.median(r[1] for r in runs)
            info = runs[-1][2]
            print(f"| {engine} | {n} | {wall:.1f} | {rss:,.0f} | {info['rows']:,} | {info['n_features']} | "
                  f"{', '.join(f'{r[0]:.1f}' for r in runs)} |", flush=True)
            print(f"  detail ({engine}, {n}): {json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in info.items()})}",
                  file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
