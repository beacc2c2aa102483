"""The retention plan on Spark: the steps that look at everyone decided once on the driver, the rest row by row
in the partitions, through the same functions as the single-machine plan (`churn.scoring.allocation`):

1. tiers: each quantile level's cut point is the k-th highest probability, found exactly (`kth`: an
   approximate quantile brackets it, the rows inside the bracket are sorted on the driver; up to
   EXACT_ROWS probabilities are simply sorted on the driver);
2. first pass (`mapInArrow`, `churn.scoring.plan_rows`): each row's tier, whether it may be contacted, its
   control-group draw, and every offer's net value and cost;
3. control group: per tier the k-th lowest (draw, id) of the contactable customers, k = floor(share x n + 0.5),
   found the same way; everyone up to it is held out, as `allocation.control_group` holds them out;
4. allocation: only treated rows with an offer worth giving (net > 0, within budget, cap above zero) go to
   the driver, in customer-id order, where `solve_mckp` runs as today (it never looks at the other rows);
5. second pass (`mapInArrow`): `plan_retention` per partition with those decisions (`Decisions`): the
   control group's would-be offer at the solution's prices, channels, messages; each partition's summary
   merged on the driver (`summary.merge_summaries`).
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from churn.config import Config

APPROX_ERROR = 1e-3  # relative rank error of the quantile that brackets an exact k-th value
EXACT_ROWS = 200_000  # up to this many values, they are gathered on the driver and sorted there


def kth(df: Any, col: str, k: int, n: int, *, highest: bool, tie: str | None = None) -> tuple[Any, ...]:
    """The k-th (1-based) highest or lowest value of numeric column `col` of the `n` rows of `df`, exactly:
    `approxQuantile` (rank error APPROX_ERROR x n) brackets it, the rows strictly outside are counted and
    those inside sorted on the driver (with `tie` as the second key: the row (value, tie))."""
    from pyspark.sql import functions as F

    q = (n - k + 0.5) / n if highest else (k - 0.5) / n
    lo_q, hi_q = max(q - 2 * APPROX_ERROR, 0.0), min(q + 2 * APPROX_ERROR, 1.0)
    lo, hi = df.approxQuantile(col, [lo_q, hi_q], APPROX_ERROR)
    c = F.col(col)
    inside = (c >= lo if lo_q > 0 else F.lit(True)) & (c <= hi if hi_q < 1 else F.lit(True))
    outside = (c > hi) if highest else (c < lo)
    before = df.where(outside).count() if (hi_q < 1 if highest else lo_q > 0) else 0
    keys = [col, *([tie] if tie else [])]
    rows = sorted((tuple(r) for r in df.where(inside).select(*keys).collect()), reverse=highest)
    at = k - before - 1
    if not 0 <= at < len(rows):  # the bracket missed (never within the quantile's guarantee): sort all
        rows = sorted((tuple(r) for r in df.select(*keys).collect()), reverse=highest)
        at = k - 1
    return rows[at]


@dataclass
class SparkPlan:
    """The plan's rows (a Spark frame), its merged summary and the decisions taken for everyone."""

    rows: Any
    summary: Any
    decisions: Any


def plan_on_spark(scored: Any, config: Config, inputs: tuple[Any, Any, Any]) -> SparkPlan:
    """The retention plan of every row of `scored` (Spark frame: base rows with `churn_probability`, reasons
    and status), steps 1-5 of the module docstring; `inputs`: (contact history, exclusions, effects)."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    from churn.scoring import status
    from churn.scoring.allocation import EXACT_MAX_OPTIONS, Decisions
    from churn.scoring.knapsack import solve_mckp
    from churn.scoring.summary import merge_summaries
    from churn.scoring.tiers import RiskTiers
    from churn.spark.build import _spark_schema
    from churn.spark.udfs import options_udf, plan_udf

    inc = config.incentives
    m = len(inc.catalogue)
    probs = scored.where(F.col("churn_probability").isNotNull()).select("churn_probability")
    few = probs.limit(EXACT_ROWS + 1).collect()
    if len(few) <= EXACT_ROWS:  # every probability fits on the driver: the very fit of the single machine
        tiers = RiskTiers(config.tiers).fit(pd.Series([r[0] for r in few], dtype=float))
    else:
        probs = probs.persist()
        try:
            n = probs.count()
            tiers = RiskTiers(config.tiers).fit_ranked(
                n, lambda k: float(kth(probs, "churn_probability", k, n, highest=True)[0]))
        finally:
            probs.unpersist()

    fields = [pa.field("customer_id", pa.string()), pa.field("tier_code", pa.int32()),
              pa.field("contactable", pa.bool_()), pa.field("draw", pa.int64())]
    fields += [pa.field(f"{w}_{j}", pa.float64()) for j in range(m) for w in ("net", "cost")]
    options = scored.mapInArrow(options_udf(config, tiers, inputs, pa.schema(fields)),
                                _spark_schema(pa.schema(fields))).where("contactable").persist()
    try:
        cuts = _control_cuts(options, inc.control_share, len(tiers.tier_names_))
        held = F.lit(False)
        for t, (draw, cid) in cuts.items():
            mine = (F.col("draw") < draw) | ((F.col("draw") == draw) & (F.col("customer_id") <= cid))
            held = held | ((F.col("tier_code") == t) & mine)
        caps = np.array([np.inf if i.max_customers is None else float(i.max_customers) for i in inc.catalogue])
        budget = max(float(inc.budget), 0.0)
        worth = F.lit(False)
        for j in range(m):
            if caps[j] > 0:
                worth = worth | ((F.col(f"net_{j}") > 0) & (F.col(f"cost_{j}") <= budget))
        wanted = options.where(~held & worth).orderBy("customer_id").toPandas() if m else None
    finally:
        options.unpersist()
    decisions = _allocate(wanted, m, budget, caps, tiers, {t: (_unsigned(d), c) for t, (d, c) in cuts.items()},
                          solve_mckp, EXACT_MAX_OPTIONS, Decisions)

    out_schema = _plan_schema(scored, config, decisions, inputs)
    planned = scored.mapInArrow(plan_udf(config, decisions, inputs, out_schema), _spark_schema(out_schema)).persist()
    parts = [pickle.loads(r["_payload"]) for r in planned.where("_kind = 'side'").select("_payload").collect()]
    summary = merge_summaries(parts, {"status_counts": list(status.STATUSES)})
    return SparkPlan(planned.where("_kind = 'row'").drop("_kind", "_payload"), summary, decisions)


def _unsigned(draw: int) -> int:
    """A draw stored as a signed long (`options_udf`) back as the uint64 `control_keys` gives."""
    return int(np.int64(draw).view(np.uint64) ^ np.uint64(1 << 63))


def _control_cuts(options: Any, share: float, tiers: int) -> dict[int, tuple[int, str]]:
    """Per tier code, the (signed draw, id) of the last contactable customer held out (none when k is 0)."""
    from pyspark.sql import functions as F

    if share <= 0:
        return {}
    few = options.select("tier_code", "draw", "customer_id").limit(EXACT_ROWS + 1).collect()
    if len(few) <= EXACT_ROWS:  # sorted on the driver
        by_tier: dict[int, list[tuple[int, str]]] = {}
        for t, draw, cid in few:
            by_tier.setdefault(t, []).append((draw, cid))
        sizes = {t: len(v) for t, v in by_tier.items()}
    else:
        by_tier = {}
        sizes = {r["tier_code"]: r["count"] for r in options.groupBy("tier_code").count().collect()}
    cuts = {}
    for t in range(tiers):
        size = int(sizes.get(t, 0))
        k = math.floor(share * size + 0.5)
        if not k:
            continue
        if t in by_tier:
            draw, cid = sorted(by_tier[t])[k - 1]
        else:
            draw, cid = kth(options.where(F.col("tier_code") == t), "draw", k, size, highest=False,
                            tie="customer_id")
        cuts[t] = (int(draw), str(cid))
    return cuts


def _allocate(wanted: Any, m: int, budget: float, caps: np.ndarray, tiers: Any, cuts: dict, solve: Any,
              exact_below: int, decisions: Any) -> Any:
    """The decisions of the plan: the knapsack solved on the rows worth an offer (in customer-id order)."""
    from churn.scoring.knapsack import MCKPSolution

    if not m or wanted is None or wanted.empty:
        return decisions(tiers, cuts, {}, MCKPSolution(np.zeros(0, np.int64), 0.0, np.zeros(m), 0.0, 0.0),
                         np.zeros(m, np.int64))
    net = wanted[[f"net_{j}" for j in range(m)]].to_numpy(dtype=float)
    cost = wanted[[f"cost_{j}" for j in range(m)]].to_numpy(dtype=float)
    sol = solve(net, cost, budget, caps, exact_below=exact_below)
    given = sol.choice >= 0
    choice = dict(zip(wanted["customer_id"].to_numpy(dtype=object)[given], sol.choice[given].tolist(), strict=True))
    return decisions(tiers, cuts, choice, sol, np.bincount(sol.choice[given], minlength=m))


def _plan_schema(scored: Any, config: Config, decisions: Any, inputs: tuple[Any, Any, Any]) -> Any:
    """The Arrow schema of the plan's rows: the plan of no customer, made by the same function, gives the
    columns; each takes its input's type or, when the plan adds it, its values' type."""
    import pyarrow as pa

    from churn.scoring.allocation import plan_retention
    from churn.spark.udfs import plan_arrow

    given = scored.limit(0).toArrow()
    plan = plan_retention(given.to_pandas(), config, contact_history=inputs[0], exclusions=inputs[1],
                          seed=config.seed, effects=inputs[2], decisions=decisions)
    made = plan_arrow(plan.customers).schema
    fields = []
    for f in made:
        if f.name in given.schema.names:
            fields.append(given.schema.field(f.name))
        elif pa.types.is_null(f.type) or pa.types.is_string(f.type) or pa.types.is_large_string(f.type):
            fields.append(pa.field(f.name, pa.string()))
        else:
            fields.append(f)
    return pa.schema([*fields, pa.field("_kind", pa.string()), pa.field("_payload", pa.binary())])
