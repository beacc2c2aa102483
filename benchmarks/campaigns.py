"""The closed loop on generated data with planted campaign effects (issue 24): does the measurement recover the
planted effect, and does a plan that learned from three campaigns retain more than the alternatives?

    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/campaigns.py coverage --seeds 100
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/campaigns.py value --seeds 5
    OMP_NUM_THREADS=1 nice .venv/bin/python benchmarks/campaigns.py value --seeds 1 --customers 5000   # smoke

`coverage`: per seed, `churn.generate` writes a business (`--coverage-customers`, 18 months) with one random
campaign on 2025-01-01 (half the consenting current customers, half of those held out, one of six offers
each); `churn.campaigns.effect.measure` compares contacted and held-out customers per offer and overall on the
labels `churn.labels` reads from the written tables, and each 95% interval (Newcombe, for churn contacted -
churn held out) is checked against the planted effect: the mean over the cell's customers, contacted and held
out, of churn with the contact minus churn without it (`churn.generate.campaign_truth`: both potential
outcomes are known). Target: the overall interval covers it in at least 90 of 100 seeds.

`value`: per seed, the loop as a business would run it, on `--customers` customers:
1. a churn model (LightGBM, `n_jobs=1`) on four monthly snapshots ending before the first campaign;
2. three monthly campaigns (2024-12-01, 2025-01-01, 2025-02-01), each a retention plan made with the
   catalogue's rates (budget `--budget`, control share `--control-share`, cool-down 30 days) on the data as it
   was then (the world with the earlier campaigns' effects), its contacts fed back to the generator;
3. learning: each campaign measured on the final world's labels, the rates shrunk (`churn.campaigns.learning`);
   uplift models (two-model, X-learner and the hazard ratio on the churn model's probability) fitted on the
   first two campaigns, judged on the third against the tier rates, and refitted on all three for the offers
   where they won;
4. plans on 2025-05-01, all at the same budget: "top-k by risk" (riskiest contactable customers first, each
   with the catalogue's highest-rated offer open to them, until the budget is spent), the catalogue-rate plan,
   the plan with learned rates only, the learned plan (rates and, where chosen, uplift: `learned`, the
   Python API with all three learners) and the same through the effects file (`learned_file`: the hazard
   ratio only, written, read back and priced inside the plan, as `churn campaign-effect` then
   `churn score --effects` do);
5. each plan's net retained value on the planted truth (`churn.generate.offer_truth`): the sum over contacted
   customers of (churn without - churn with their offer) x customer value, minus what the plan spent.
Targets: learned >= 1.3 x top-k and >= the catalogue plan, median over seeds.

Prints Markdown for benchmarks/RESULTS.md and writes a CSV (`--out`).
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

START, END = date(2024, 1, 1), date(2025, 7, 1)
CAMPAIGN_DAYS = (date(2024, 12, 1), date(2025, 1, 1), date(2025, 2, 1))
PLAN_DAY = date(2025, 5, 1)
TRAIN_AS_OF = ["2024-07-01", "2024-08-01", "2024-09-01", "2024-10-01"]  # labels complete before 2024-12-01
COVERAGE_DAY = date(2025, 1, 1)
EVENTS_PER_CUSTOMER = 30.0
ATTRIBUTES = ["plan", "region", "country", "language", "channel", "marketing_consent", "monthly_fee"]


def _quiet() -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")


# ------------------------------------------------------------------------------------------------ coverage
def coverage_seed(seed: int, customers: int, work: Path) -> list[dict[str, Any]]:
    """One seed of the coverage check: a random campaign, measured per offer and overall."""
    from churn.campaigns.effect import ALL, measure, realised_labels
    from churn.config import load_config
    from churn.generate import Campaign, campaign_truth, generate
    from churn.validation import load_source

    campaign = Campaign(COVERAGE_DAY, reach=0.5, control_share=0.5)
    out = work / f"cov{seed}"
    generate(customers, START, END, seed, out, events_per_customer=5.0, campaigns=[campaign], overwrite=True)
    truth = campaign_truth(customers, START, END, seed, [campaign])
    config = load_config()
    ds = load_source(str(out), config)
    try:
        labels = realised_labels(ds, config, pd.Timestamp(COVERAGE_DAY))
    finally:
        ds.con.close()
    rows = pd.DataFrame({"customer_id": truth["customer_id"], "tier": "all", "incentive": truth["incentive"],
                         "treated": truth["contacted"].to_numpy(), "cost": 0.0, "value": 0.0})
    estimates, _ = measure(rows, labels)
    effect = truth.assign(d=truth["y_treated"] - truth["y_untreated"])
    result = []
    for e in estimates:
        if e.tier == ALL:  # per offer over the (one) tier, and overall
            cell = effect if e.incentive == ALL else effect[effect["incentive"] == e.incentive]
            planted = float(cell["d"].mean())
            result.append({"seed": seed, "cell": "overall" if e.incentive == ALL else e.incentive,
                           "treated": e.treated, "control": e.control, "planted": planted,
                           "measured": e.difference, "low": e.difference_low, "high": e.difference_high,
                           "covered": bool(e.difference_low <= planted <= e.difference_high)})
    return result


def run_coverage(seeds: list[int], customers: int, out_csv: Path) -> None:
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            rows += coverage_seed(s, customers, Path(tmp))
            print(f"seed {s}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    _write_csv(rows, out_csv)
    frame = pd.DataFrame(rows)
    print("\n| cell | seeds | covered | median planted | median measured | median interval width |")
    print("|---|---:|---:|---:|---:|---:|")
    for cell, g in frame.groupby("cell", sort=False):
        print(f"| {cell} | {len(g)} | {int(g['covered'].sum())} | {g['planted'].median():+.4f} | "
              f"{g['measured'].median():+.4f} | {(g['high'] - g['low']).median():.4f} |")
    offers = frame[frame["cell"] != "overall"]
    print(f"\nall per-offer intervals: {int(offers['covered'].sum())} of {len(offers)} cover the planted effect; "
          f"{time.perf_counter() - t0:.0f} s")


# --------------------------------------------------------------------------------------------------- value
def _features(data: Path, day: date, config: Any) -> pd.DataFrame:
    """Features of every current customer at `day` with the customer attributes the plan reads."""
    from churn.features.engine import build_features
    from churn.scoring.population import standing_rows, with_status
    from churn.validation import load_source

    ds = load_source(str(data), config)
    try:
        fs = build_features(ds, [pd.Timestamp(day)], config)
        frame = fs.to_pandas()
        frame, statuses = with_status(frame, standing_rows(ds, config, fs.label, None), pd.Timestamp(day))
    finally:
        ds.con.close()
    frame = frame[statuses == "scored"].reset_index(drop=True)
    attrs = pd.read_parquet(data / "customers.parquet", columns=["customer_id", *ATTRIBUTES])
    attrs = attrs[["customer_id", *[c for c in ATTRIBUTES if c not in frame.columns]]]
    return frame.merge(attrs, on="customer_id", how="left")


def _fit_churn_model(data: Path, config: Any, seed: int) -> tuple[Any, Any, list[str]]:
    from lightgbm import LGBMClassifier

    from churn.campaigns.uplift import _Frame
    from churn.features.engine import build_training_frame
    from churn.validation import load_source

    ds = load_source(str(data), config)
    try:
        tf = build_training_frame(ds, config, TRAIN_AS_OF)
    finally:
        ds.con.close()
    features = [f.name for f in tf.features]
    reader = _Frame().fit(tf.frame[features])
    model = LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, min_child_samples=100,
                           colsample_bytree=0.7, random_state=seed, n_jobs=1, verbose=-1)
    model.fit(reader.transform(tf.frame[features]), tf.frame["churned"].to_numpy())
    return model, reader, features


def _top_k_by_risk(customers: pd.DataFrame, config: Any, budget: float) -> pd.DataFrame:
    """Contact the riskiest customers the contact rules allow (control group left out), each with the
    catalogue's highest-rated offer open to them (ties: the cheaper), until the budget is spent."""
    from churn.scoring import allocation, offers, rules

    c = customers.reset_index(drop=True)
    allowed = c["contact"] | c["no_contact_reason"].isin(
        [allocation.REASON_BUDGET, allocation.REASON_CAP, allocation.REASON_NOT_WORTH])
    inc_cfg = config.incentives
    channel = allocation.customer_channels(c, inc_cfg.channels)
    prices = offers.channel_prices(inc_cfg.channels)
    own_price = pd.Series(channel).map(prices).fillna(0.0).to_numpy(dtype=float)
    revenue = c["monthly_fee"].fillna(0.0).to_numpy(dtype=float)
    tier = c["risk_tier"].astype(object)
    best_rate = np.full(len(c), -1.0)
    best_cost = np.zeros(len(c))
    best_name = np.full(len(c), None, dtype=object)
    for inc in inc_cfg.catalogue:
        ok = rules.offer_eligible(c, inc, tier, c["customer_value"].to_numpy(dtype=float))
        rate = offers.save_rates(inc, tier)
        cost = offers.contact_costs(inc, revenue, own_price, prices)
        better = ok & ((rate > best_rate) | ((rate == best_rate) & (cost < best_cost)))
        best_rate, best_cost = np.where(better, rate, best_rate), np.where(better, cost, best_cost)
        best_name = np.where(better, inc.name, best_name)
    order = np.argsort(-c["churn_probability"].to_numpy(dtype=float), kind="stable")
    left = budget
    chosen = np.full(len(c), None, dtype=object)
    spent = np.zeros(len(c))
    for i in order:
        if allowed[i] and best_name[i] is not None and best_cost[i] <= left:
            chosen[i], spent[i] = best_name[i], best_cost[i]
            left -= best_cost[i]
    return pd.DataFrame({"customer_id": c["customer_id"], "incentive": chosen, "incentive_cost": spent,
                         "customer_value": c["customer_value"], "contact": pd.notna(chosen)})


def _net_value(plan: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    """Net retained value of a plan on the planted truth: sum over contacted customers of (churn without -
    churn with their offer) x value, minus the plan's cost."""
    sent = plan[plan["contact"]].merge(truth, on="customer_id", how="left")
    with_offer = np.array([row[f"y_{inc}"] for inc, row in zip(sent["incentive"], sent.to_dict("records"))],
                          dtype=float) if len(sent) else np.zeros(0)
    kept = sent["y_none"].to_numpy(dtype=float) - with_offer
    value = float((kept * sent["customer_value"].to_numpy(dtype=float)).sum())
    cost = float(sent["incentive_cost"].sum())
    return {"contacted": len(sent), "kept": float(kept.sum()), "value": value, "cost": cost, "net": value - cost}


def value_seed(seed: int, customers: int, budget: float, control_share: float, work: Path,
               keep: Path | None = None) -> dict[str, Any]:
    """One seed of the value comparison (see the module docstring)."""
    from churn.campaigns.effect import measure, plan_rows, realised_labels
    from churn.campaigns.learning import Cell, catalogue_rates, pool_cells, read_effects, shrink
    from churn.campaigns.uplift import customer_save_rates, learn_uplift, uplift_record
    from churn.config import load_config
    from churn.generate import Campaign, generate, offer_truth
    from churn.scoring.allocation import plan_retention
    from churn.validation import load_source

    base = load_config()
    config = base.model_copy(update={"incentives": base.incentives.model_copy(
        update={"budget": budget, "control_share": control_share, "cooldown_days": 30})})
    t0 = time.perf_counter()
    gen = dict(events_per_customer=EVENTS_PER_CUSTOMER, overwrite=True)
    generate(customers, START, END, seed, work / "d0", **gen)
    model, reader, features = _fit_churn_model(work / "d0", config, seed)

    def scored(data: Path, day: date) -> pd.DataFrame:
        frame = _features(data, day, config)
        frame["churn_probability"] = model.predict_proba(reader.transform(frame[features]))[:, 1]
        frame["as_of"] = pd.Timestamp(day)
        return frame

    def history_of(data: Path) -> pd.DataFrame | None:
        f = data / "contact_history.parquet"
        return pd.read_parquet(f) if f.exists() else None

    campaigns: list[Any] = []
    plans, frames = [], []
    data = work / "d0"
    for k, day in enumerate(CAMPAIGN_DAYS):
        if k:
            data = work / f"d{k}"
            generate(customers, START, END, seed, data, campaigns=campaigns, **gen)
        frame = scored(data, day)
        plan = plan_retention(frame, config, contact_history=history_of(data), seed=seed * 10 + k).customers
        sent = plan.loc[plan["contact"], ["customer_id", "incentive"]]
        campaigns.append(Campaign(day, contacts=sent.reset_index(drop=True)))
        plans.append(plan)
        frames.append(frame)
    final = work / "final"
    generate(customers, START, END, seed, final, campaigns=campaigns, **gen)
    assumed = catalogue_rates(config)
    ds = load_source(str(final), config)
    measured, history = [], []
    try:
        for k, (day, plan, frame) in enumerate(zip(CAMPAIGN_DAYS, plans, frames)):
            labels = realised_labels(ds, config, pd.Timestamp(day))
            rows = plan_rows(plan)
            estimates, _ = measure(rows, labels, assumed)
            measured.append(estimates)
            h = rows.merge(labels, on="customer_id").merge(
                frame[["customer_id", "churn_probability", *features]], on="customer_id")
            h = h.rename(columns={"incentive": "offer", "tier": "risk_tier"}).assign(campaign=k)
            history.append(h)
    finally:
        ds.con.close()

    learned = shrink(pool_cells(measured), assumed, campaigns=[pool_cells([m]) for m in measured])
    first_two = shrink(pool_cells(measured[:2]), assumed, campaigns=[pool_cells([m]) for m in measured[:2]])
    tier_rates = {inc: {t: r.rate for t, r in by.items()} for inc, by in first_two.save_rates.items()}
    hist = pd.concat(history, ignore_index=True)
    hist["treated"] = hist["treated"].astype(bool)
    uplift = learn_uplift(hist, features, tier_rates, seed=seed, n_jobs=1)

    # The plans of the day hold out the usual 10%, whatever share the history campaigns used.
    config = config.model_copy(update={"incentives": config.incentives.model_copy(update={"control_share": 0.10})})
    frame = scored(final, PLAN_DAY)
    contacts = history_of(final)
    kw = {"contact_history": contacts, "seed": seed * 10 + 9}
    catalogue_plan = plan_retention(frame, config, **kw).customers
    rates_plan = plan_retention(frame, config, effects=learned, **kw).customers
    own = customer_save_rates(uplift, frame, features)
    learned_plan = plan_retention(frame, config, effects=learned, customer_save_rates=own, **kw).customers
    # What `churn campaign-effect` then `churn score --effects` give: the hazard ratio only (an effects file
    # holds plain numbers), written to the file, read back, and priced inside the plan.
    by_file = learn_uplift(hist, features, tier_rates, seed=seed, n_jobs=1, models=("hazard_ratio",))
    learned.uplift = uplift_record(by_file)
    (work / "effects.json").write_text(json.dumps(learned.to_dict()))
    file_plan = plan_retention(frame, config, effects=read_effects(work / "effects.json"), **kw).customers
    top_k = _top_k_by_risk(catalogue_plan, config, budget)
    truth = offer_truth(customers, START, END, seed, PLAN_DAY, campaigns=campaigns,
                        horizon_days=config.label.horizon_days)
    # References, knowing the planted truth: the tier-level rates a perfect measurement would give, and each
    # customer's own effect (the best any plan could do at this budget, up to the knapsack).
    tiers = catalogue_plan[["customer_id", "risk_tier", "churn_probability"]].merge(truth, on="customer_id")
    oracle_rates = shrink([Cell(str(t), inc, len(g), int(g[f"y_{inc}"].sum()), len(g), int(g["y_none"].sum()))
                           for inc in assumed for t, g in tiers.groupby("risk_tier", observed=True)
                           if len(g) and g["y_none"].sum()], assumed, strength=1e-9)
    oracle_tier = plan_retention(frame, config, effects=oracle_rates, **kw).customers
    p = tiers["churn_probability"].to_numpy(dtype=float)
    own_truth = pd.DataFrame({"customer_id": tiers["customer_id"], **{
        inc: np.where(p > 0, (tiers["y_none"] - tiers[f"y_{inc}"]).to_numpy(dtype=float) / np.maximum(p, 1e-9), 0.0)
        for inc in assumed}})
    oracle_customer = plan_retention(frame, config, customer_save_rates=own_truth, **kw).customers
    if keep is not None:  # what re-planning offline needs (variants of the learning on the same campaigns)
        import pickle

        keep.mkdir(parents=True, exist_ok=True)
        with open(keep / f"seed{seed}.pkl", "wb") as f:
            pickle.dump({"config": config, "frame": frame, "contacts": contacts, "kw_seed": seed * 10 + 9,
                         "measured": measured, "assumed": assumed, "history": hist, "features": features,
                         "tier_rates": tier_rates, "uplift": uplift, "by_file": by_file, "truth": truth,
                         "budget": budget}, f)
    row: dict[str, Any] = {"seed": seed, "customers": customers, "budget": budget, "control_share": control_share}
    for name, plan in (("top_k", top_k), ("catalogue", catalogue_plan), ("learned_rates", rates_plan),
                       ("learned", learned_plan), ("learned_file", file_plan), ("oracle_tier_rates", oracle_tier),
                       ("oracle_customers", oracle_customer)):
        for key, v in _net_value(plan, truth).items():
            row[f"{name}_{key}"] = v
    row["uplift_offers"] = ";".join(f"{o}:{u.evaluation.chosen if u.evaluation else 'none'}"
                                    for o, u in uplift.items())
    row["file_offers"] = ";".join(f"{o}:{u.evaluation.chosen if u.evaluation else 'none'}"
                                  for o, u in by_file.items())
    row["prior_strength"] = learned.prior_strength
    row["seconds"] = time.perf_counter() - t0
    return row


def run_value(seeds: list[int], customers: int, budget: float, control_share: float, out_csv: Path,
              keep: Path | None = None) -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in seeds:
            work = Path(tmp) / f"s{s}"
            work.mkdir()
            row = value_seed(s, customers, budget, control_share, work, keep)
            rows.append(row)
            print(f"seed {s}: top-k {row['top_k_net']:,.0f}, catalogue {row['catalogue_net']:,.0f}, "
                  f"learned rates {row['learned_rates_net']:,.0f}, learned {row['learned_net']:,.0f}, through the "
                  f"effects file {row['learned_file_net']:,.0f}; oracle tier "
                  f"rates {row['oracle_tier_rates_net']:,.0f}, oracle customers {row['oracle_customers_net']:,.0f} "
                  f"({row['seconds']:.0f} s; uplift {row['uplift_offers']})", file=sys.stderr)
    _write_csv(rows, out_csv)
    frame = pd.DataFrame(rows)
    print("\n| plan | median net retained value | median contacted | median customers kept | median spent |")
    print("|---|---:|---:|---:|---:|")
    for name in ("top_k", "catalogue", "learned_rates", "learned", "learned_file", "oracle_tier_rates",
                 "oracle_customers"):
        print(f"| {name} | {frame[f'{name}_net'].median():,.0f} | {frame[f'{name}_contacted'].median():,.0f} | "
              f"{frame[f'{name}_kept'].median():,.1f} | {frame[f'{name}_cost'].median():,.0f} |")
    ratio_topk = [r["learned_net"] / r["top_k_net"] if r["top_k_net"] > 0 else float("nan") for r in rows]
    gaps = ", ".join(f"{r['learned_net'] - r['catalogue_net']:,.0f}" for r in rows)
    print(f"\nper seed, learned / top-k: {', '.join(f'{x:.2f}' for x in ratio_topk)}; learned - catalogue: {gaps}")
    print(f"median learned / median top-k: {frame['learned_net'].median() / frame['top_k_net'].median():.2f}; "
          f"median of per-seed ratios: {statistics.median(ratio_topk):.2f}")
    for name in ("learned", "learned_file"):
        above = int((frame[f"{name}_net"] >= frame["catalogue_net"]).sum())
        print(f"{name}: {frame[f'{name}_net'].median() / frame['top_k_net'].median():.2f}x top-k (medians); at or "
              f"above the catalogue plan in {above} of {len(frame)} seeds")


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["coverage", "value"])
    ap.add_argument("--seeds", type=int, default=None, help="how many seeds (coverage 100, value 5)")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--customers", type=int, default=20_000, help="value: customers per business")
    ap.add_argument("--coverage-customers", type=int, default=6_000)
    ap.add_argument("--budget", type=float, default=3_000.0, help="value: budget of every campaign and plan")
    ap.add_argument("--control-share", type=float, default=0.10, help="value: control share of the campaigns")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/campaigns.csv"))
    ap.add_argument("--keep", type=Path, default=None,
                    help="value: pickle each seed's campaigns, frames and truth here, to re-plan offline")
    a = ap.parse_args(argv)
    _quiet()
    if a.part == "coverage":
        seeds = list(range(a.first_seed, a.first_seed + (a.seeds or 100)))
        run_coverage(seeds, a.coverage_customers, a.out.with_name(a.out.stem + "_coverage.csv"))
    else:
        seeds = list(range(a.first_seed, a.first_seed + (a.seeds or 5)))
        run_value(seeds, a.customers, a.budget, a.control_share, a.out.with_name(a.out.stem + "_value.csv"),
                  a.keep)


if __name__ == "__main__":
    main()
