"""Benchmark: reading a bring-your-own table's feature columns (the fitted preparation, `churn.preparation`):
a CSV read as text (as `churn score --table` and `churn train --table` read it), its kinds learnt (`fit`) and
the float matrix built (`transform`), the steps every training and table scoring repeats.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ready_table_read.py --rows 200000 --repeats 3

The table: `--rows` rows of 20 number columns written plainly, 4 with thousands separators ("1,234.5"), 4
yes/no columns and 2 category columns (seed 0). Prints the median seconds of fit and of transform.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def table(rows: int, seed: int = 0) -> pd.DataFrame:
    """The benchmark's table, as text."""
    rng = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for j in range(20):
        cols[f"n{j}"] = rng.gamma(2.0, 10.0 * (j + 1), rows).round(2)
    for j in range(4):
        cols[f"t{j}"] = [f"{v:,.1f}" for v in rng.gamma(2.0, 900.0, rows)]
    for j in range(4):
        cols[f"y{j}"] = rng.choice(["Yes", "No"], rows)
    for j in range(2):
        cols[f"c{j}"] = rng.choice(["basic", "standard", "premium", "family"], rows)
    return pd.DataFrame(cols)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    from churn.features.registry import Feature
    from churn.io import read_table
    from churn.preparation import Preparation

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "table.csv"
        table(args.rows).to_csv(path, index=False)
        X = read_table(path)
    feats = [Feature(c, "table", c) for c in X.columns]
    fits, transforms = [], []
    for _ in range(args.repeats):
        t = time.perf_counter()
        prep = Preparation(feats, infer=True).fit(X)
        fits.append(time.perf_counter() - t)
        t = time.perf_counter()
        prep.transform(X)
        transforms.append(time.perf_counter() - t)
    print(f"rows {args.rows:,} x {X.shape[1]} columns: fit {statistics.median(fits):.2f} s, "
          f"transform {statistics.median(transforms):.2f} s (median of {args.repeats})", file=sys.stderr)


if __name__ == "__main__":
    main()
