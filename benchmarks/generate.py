"""Benchmark the synthetic data generator: wall time and peak memory for N customers (default 1M).

Each repeat runs `churn.generate.generate` in a fresh subprocess (so imports and peak RSS are measured per
run), writing to a temporary folder that is removed afterwards. Prints one Markdown table row with the
median wall time and the largest peak RSS, ready for benchmarks/RESULTS.md.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generate.py                   # 1M customers, 3 repeats
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/generate.py --customers 100000 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

_CHILD = """
import json, resource, sys, time
from datetime import date
from churn.generate import generate
n, start, end, seed, out, business, epc = sys.argv[1:8]
t0 = time.perf_counter()
counts = generate(int(n), date.fromisoformat(start), date.fromisoformat(end), int(seed), out,
                  business=business, events_per_customer=float(epc))
seconds = time.perf_counter() - t0
rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"counts": counts, "generate_seconds": seconds, "peak_rss_mib": rss_kib / 1024}))
"""


def _folder_mib(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def run_once(args: argparse.Namespace, workdir: Path) -> dict:
    """One generator run in a subprocess; wall time includes interpreter start and imports."""
    out = workdir / "data"
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    cmd = [sys.executable, "-c", _CHILD, str(args.customers), args.start, args.end, str(args.seed), str(out),
           args.business, str(args.events_per_customer)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"generator failed:\n{proc.stderr}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_seconds"] = wall
    result["output_mib"] = _folder_mib(out)
    shutil.rmtree(out)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--start", default="2024-01-01")
    ap.add_argument("--end", default="2025-07-01")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--business", choices=["subscription", "retail"], default="subscription")
    ap.add_argument("--events-per-customer", type=float, default=50.0)
    ap.add_argument("--workdir", type=Path, default=None, help="where to write (default: a temp folder)")
    args = ap.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="churn-bench-gen-", dir=args.workdir))
    runs = []
    try:
        for i in range(args.repeats):
            r = run_once(args, base)
            runs.append(r)
            print(f"run {i + 1}/{args.repeats}: {r['wall_seconds']:.1f} s wall "
                  f"({r['generate_seconds']:.1f} s in generate), peak RSS {r['peak_rss_mib']:.0f} MiB, "
                  f"{r['output_mib']:.0f} MiB written", file=sys.stderr)
    finally:
        shutil.rmtree(base, ignore_errors=True)

    wall = statistics.median(r["wall_seconds"] for r in runs)
    rss = max(r["peak_rss_mib"] for r in runs)
    counts = runs[0]["counts"]
    rows = sum(counts.values())
    cores = os.cpu_count()
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    cmd = (f"benchmarks/generate.py --customers {args.customers} --repeats {args.repeats} "
           f"--business {args.business}")
    print("| date | machine | command | customers | rows (events) | median wall | peak RSS | output |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    print(f"| {date.today()} | {cores} cores / {mem_gib:.0f} GiB, Python {platform.python_version()} | "
          f"`{cmd}` | {args.customers:,} | {rows:,} ({counts['events']:,}) | {wall:.1f} s "
          f"(n={len(runs)}) | {rss:.0f} MiB | {runs[0]['output_mib']:.0f} MiB |")


if __name__ == "__main__":
    main()
