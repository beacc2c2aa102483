"""Benchmark: the full feature build against a minimal DuckDB query over the same tables (issue 21's ratio).

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/feature_overhead.py --customers 300000 --repeats 3
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/feature_overhead.py --customers 300000 --profile

`full`: `churn features --as-of 2025-06-01` as a user runs it (a fresh process: start-up, validation, every
feature family, BG/NBD, the Parquet written). `minimal`: a fresh Python process that imports DuckDB and
computes, per customer, events in the last 30 and 90 days and the last event, orders and spend in the last 90
days and the last order, written to Parquet. Each is timed as a child process (wall time, peak RSS from
os.wait4); the figure is the median over `--repeats` of full / minimal. `--profile` runs the build once under
cProfile and prints the phases (the functions with the most cumulative time). Data: benchmarks/features.py's
generated set (seed 7), made once under benchmarks/out/.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from features import HERE, ensure_data  # noqa: E402

AS_OF = "2025-06-01"

MINIMAL = """
import sys, duckdb
data, out, as_of = sys.argv[1:4]
con = duckdb.connect()
con.execute(f'''
COPY (
  WITH e AS (
    SELECT customer_id,
           count(*) FILTER (WHERE timestamp >= TIMESTAMP '{as_of}' - INTERVAL 30 DAY) AS events_30d,
           count(*) FILTER (WHERE timestamp >= TIMESTAMP '{as_of}' - INTERVAL 90 DAY) AS events_90d,
           max(timestamp) AS last_event
    FROM read_parquet('{data}/events.parquet') WHERE timestamp < TIMESTAMP '{as_of}' GROUP BY 1),
  o AS (
    SELECT customer_id,
           count(*) FILTER (WHERE ordered_at >= TIMESTAMP '{as_of}' - INTERVAL 90 DAY) AS orders_90d,
           sum(amount) FILTER (WHERE ordered_at >= TIMESTAMP '{as_of}' - INTERVAL 90 DAY) AS spend_90d,
           max(ordered_at) AS last_order
    FROM read_parquet('{data}/orders.parquet') WHERE ordered_at < TIMESTAMP '{as_of}' GROUP BY 1)
  SELECT c.customer_id, e.* EXCLUDE (customer_id), o.* EXCLUDE (customer_id)
  FROM read_parquet('{data}/customers.parquet') c
  LEFT JOIN e USING (customer_id) LEFT JOIN o USING (customer_id)
  WHERE c.signup_date < TIMESTAMP '{as_of}'
) TO '{out}' (FORMAT parquet)''')
print(con.execute(f"SELECT count(*) FROM read_parquet('{out}')").fetchone()[0])
"""


def timed(args: list[str]) -> tuple[float, float]:
    """Run a child process; (wall s, peak RSS MiB)."""
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr.read() if proc.stderr else ''}")
    return wall, usage.ru_maxrss / 1024


def full_args(data: Path) -> list[str]:
    out = HERE / "out" / "overhead-features.parquet"
    return [sys.executable, "-m", "churn.cli", "features", "--data", str(data), "--as-of", AS_OF, "--out", str(out),
            "--overwrite"]


def main() -> None:
    """Time both, print one JSON line per repeat and the median ratio."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--customers", type=int, default=300_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="run the full build once under cProfile instead")
    a = ap.parse_args()
    data = ensure_data(a.customers)
    if a.profile:
        prof = HERE / "out" / "overhead.prof"
        subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), *full_args(data)[1:]], check=True,
                       stdout=subprocess.DEVNULL)
        import pstats

        pstats.Stats(str(prof)).sort_stats("cumulative").print_stats(45)
        return
    ratios, fulls, minis, rss = [], [], [], []
    for i in range(a.repeats):
        f, f_rss = timed(full_args(data))
        m, _ = timed([sys.executable, "-c", MINIMAL, str(data), str(HERE / "out" / "overhead-minimal.parquet"),
                      AS_OF])
        ratios.append(f / m)
        fulls.append(f)
        minis.append(m)
        rss.append(f_rss)
        print(json.dumps({"repeat": i, "full_s": round(f, 2), "minimal_s": round(m, 2), "ratio": round(f / m, 2),
                          "full_peak_rss_mib": round(f_rss)}), flush=True)
    print(json.dumps({"customers": a.customers, "median_full_s": round(statistics.median(fulls), 2),
                      "median_minimal_s": round(statistics.median(minis), 2),
                      "median_ratio": round(statistics.median(ratios), 2),
                      "max_full_peak_rss_mib": round(max(rss))}))


if __name__ == "__main__":
    main()
