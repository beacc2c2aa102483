"""The closed loop through the commands, in fresh processes, on a real `churn score` run of the demo's model:

1. `churn score` at 2025-03-01 (the demo's data runs to 2025-07-01, so the 60-day label window has passed);
2. `churn generate --campaign RUN`: the same business, in which that plan's contacted customers were
   contacted with the planted effects;
3. `churn campaign-effect --run RUN --data ...`: campaign_effect.json and effects.json in the run folder, a
   run in a real MLflow store (SQLite in tmp); counts checked against churn computed here with pandas from
   the raw customers table; a second run leaves identical files alone and refuses to replace others;
4. a second run a month later, and `churn campaign-effect` on both: per-customer effects learned where two
   campaigns show them, or why not, in the effects file;
5. `churn score --effects`: summary.json and the report say which save rates are measured, and a per-customer
   model in the file prices its offer customer by customer.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import forked_cli
import mlflow
import pandas as pd
import pytest
from stores import fresh_store

pytestmark = pytest.mark.slow

AS_OF = "2025-03-01"
SECOND = "2025-04-01"
HORIZON = 60


def churn(*args: object, env: dict[str, str]) -> subprocess.CompletedProcess:
    return forked_cli.run(args, env={**os.environ, **env, "COLUMNS": "250", "OMP_NUM_THREADS": "1"})


@pytest.fixture(scope="module")
def loop(demo_workspace, tmp_path_factory):
    work = tmp_path_factory.mktemp("loop")
    env = {"MLFLOW_TRACKING_URI": fresh_store(work),
           "CHURN_ARTIFACT_ROOT": (work / "artifacts").as_uri()}
    bundle = demo_workspace.bundle
    done = churn("score", "--model", bundle, "--data", demo_workspace.data, "--as-of", AS_OF, "--out",
                 work / "runs", env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    run = work / "runs" / AS_OF
    done = churn("generate", "--customers", demo_workspace.customers, "--seed", demo_workspace.seed,
                 "--events-per-customer", 120, "--campaign", run, "--out", work / "data", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return work, run, env, bundle


def test_campaign_effect_measures_the_run_against_the_raw_tables(loop):
    work, run, env, _ = loop
    done = churn("campaign-effect", "--run", run, "--data", work / "data", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "campaign of 2025-03-01" in done.stdout and "save rates for the next plan" in done.stdout
    effect = json.loads((run / "campaign_effect.json").read_text())
    # Expected counts from the raw files: who the plan contacted or held out with an offer, and whether
    # their cancel date falls in [as_of, as_of + 60 days).
    scores = pd.read_parquet(run / "scores.parquet")
    customers = pd.read_parquet(work / "data" / "customers.parquet").set_index("customer_id")
    start = pd.Timestamp(AS_OF)
    cancel = customers["cancel_date"].reindex(scores["customer_id"]).to_numpy()
    scores["churned"] = (cancel >= start) & (cancel < start + pd.Timedelta(days=HORIZON))
    camp = scores[(scores["contact"] | scores["holdout"]) & scores["would_be_incentive"].notna()]
    assert effect["customers"] == len(camp) > 50 and effect["unlabelled"] == 0
    by_cell = {(e["tier"], e["incentive"]): e for e in effect["estimates"]}
    for (tier, offer), g in camp.groupby(["risk_tier", "would_be_incentive"], observed=True):
        e = by_cell[(str(tier), offer)]
        t, c = g[g["contact"]], g[g["holdout"]]
        assert (e["treated"], e["treated_churned"]) == (len(t), int(t["churned"].sum()))
        assert (e["control"], e["control_churned"]) == (len(c), int(c["churned"].sum()))
        assert e["cost"] == pytest.approx(float(t["incentive_cost"].sum()))
    total = by_cell[("(all)", "(all)")]
    assert total["treated"] == int(camp["contact"].sum())
    # The contacts went out (the contact history the scorer's cool-down reads) and the plan's offers match.
    hist = pd.read_parquet(work / "data" / "contact_history.parquet")
    sent = scores[scores["contact"]]
    assert sorted(hist["customer_id"]) == sorted(sent["customer_id"])
    # The learned rates: a file the next plan reads, with the catalogue's rates where nothing was measured.
    learned = json.loads((run / "effects.json").read_text())
    assert learned["kind"] == "churn-effects" and learned["learned_from"][0]["as_of"] == AS_OF
    sources = {r["source"] for by_tier in learned["save_rates"].values() for r in by_tier.values()}
    assert sources == {"measured", "assumed"}
    # One campaign: nothing to hold out, so no per-customer effects, and the command says why.
    assert learned["uplift"] == {} and "need two or more campaigns" in " ".join(done.stderr.split())
    # Logged to MLflow: one run in the campaigns experiment, with the JSON as an artifact.
    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("churn-campaigns")
    [logged] = client.search_runs([exp.experiment_id])
    assert logged.data.params["as_of"] == AS_OF
    assert logged.data.metrics["saved.all.all"] == pytest.approx(total["saved"])
    assert "campaign_effect.json" in [a.path for a in client.list_artifacts(logged.info.run_id)]

    # Again: identical results are left as they are; a different prior weight is not written over them.
    again = churn("campaign-effect", "--run", run, "--data", work / "data", env=env)
    assert again.returncode == 0 and "wrote" not in again.stdout
    other = churn("campaign-effect", "--run", run, "--data", work / "data", "--prior-strength", 5, env=env)
    assert other.returncode == 1 and "effects.json already exists with other results" in other.stderr
    assert json.loads((run / "effects.json").read_text()) == learned


def test_two_campaigns_learn_per_customer_effects_and_the_next_plan_uses_them(loop):
    work, run, env, bundle = loop
    # A second campaign a month later, on the same business (whose first campaign went out).
    done = churn("score", "--model", bundle, "--data", work / "data", "--as-of", SECOND, "--out", work / "runs2",
                 env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    second = work / "runs2" / SECOND
    done = churn("campaign-effect", "--run", run, "--run", second, "--data", work / "data", "--effects-out",
                 work / "two.json", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "per-customer effects (uplift)" in done.stdout
    learned = json.loads((work / "two.json").read_text())
    assert [c["as_of"] for c in learned["learned_from"]] == [AS_OF, SECOND]
    uplift = learned["uplift"]
    assert uplift["churn_model"] == str(bundle)  # the model the latest run was scored with
    meta = json.loads((second / "summary.json").read_text())["meta"]
    assert uplift["churn_model_version"] == meta["model_version"]
    # Every offer either has a model or says why not (3,000 customers: too few contacted to learn from).
    sent = pd.read_parquet(second / "scores.parquet")
    offers = set(sent.loc[sent["contact"] | sent["holdout"], "would_be_incentive"].dropna())
    assert offers and set(uplift["offers"]) >= offers
    for rec in uplift["offers"].values():
        assert rec["model"] is not None or "too little history" in rec["why"]
    # The held-out campaign is the latest by date, whatever the order of --run (the counts in `why` say which).
    done = churn("campaign-effect", "--run", second, "--run", run, "--data", work / "data", "--effects-out",
                 work / "reversed.json", env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((work / "reversed.json").read_text())["uplift"] == uplift

    # What the models learn from: each campaign's customers with the churn model's features as of its own date,
    # built from today's data (the customers in both campaigns are a month older in the second).
    from churn.campaigns.run import _measure_runs, uplift_history
    from churn.config import load_config
    from churn.training.loading import load_model

    cfg, model = load_config(), load_model(str(bundle))
    measured, labelled = _measure_runs([run, second], str(work / "data"), cfg)
    history, notices = uplift_history(measured, labelled, str(work / "data"), cfg, model)
    assert notices == []  # every campaign customer had a probability and features
    assert history.groupby("campaign").size().tolist() == [len(rows) for rows in labelled]
    assert set(history.columns) >= {f.name for f in model.features_} | {"churn_probability", "offer", "churned"}
    in_both = history.pivot_table(index="customer_id", columns="campaign", values="tenure_days").dropna()
    assert len(in_both) > 20 and ((in_both[1] - in_both[0]) == 31).all()  # 2025-03-01 -> 2025-04-01
    # The probability is the one the run's plan used.
    plan = pd.read_parquet(run / "scores.parquet").set_index("customer_id")["churn_probability"]
    first = history[history["campaign"] == 0].set_index("customer_id")["churn_probability"]
    assert (first == plan.loc[first.index]).all()
    # Both dates' features come from one pass of the engine: each equals what `churn score` builds for its date
    # alone.
    from churn.scoring.score import source_rows

    names = [f.name for f in model.features_]
    for k, effect in enumerate(measured):
        alone = source_rows(model, str(work / "data"), pd.Timestamp(effect.as_of), cfg, allow_stale_data=True)[0]
        mine = history[history["campaign"] == k].set_index("customer_id")[names]
        pd.testing.assert_frame_equal(mine, alone.set_index("customer_id").loc[mine.index, names],
                                      check_dtype=False)
    # A campaign date the data do not reach stops the step (campaign-effect says so in a notice).
    from dataclasses import replace

    from churn.errors import ChurnError

    with pytest.raises(ChurnError, match="no customer is active as of 1990-01-01"):
        uplift_history([replace(measured[0], as_of="1990-01-01"), measured[1]], labelled, str(work / "data"), cfg,
                       model)

    # The next plan reads the file. A model for the discount on a real feature (hand-set: the 3,000 customers
    # are too few to learn one) prices that offer customer by customer, on the features the scoring built.
    offer = sorted(offers)[0]
    learned["uplift"]["offers"][offer] = {"chosen": "hazard_ratio", "why": "set by the test", "evaluation": None,
                                          "model": {"kind": "hazard_ratio", "columns": ["tenure_days"],
                                                    "mean": [400.0], "scale": [200.0], "intercept": -0.5,
                                                    "coef": [-0.3], "penalty": 1000.0, "control_penalty": 1e6,
                                                    "control_coef": [0.0]}}
    (work / "with-model.json").write_text(json.dumps(learned))
    done = churn("score", "--model", bundle, "--data", work / "data", "--as-of", "2025-05-01", "--out",
                 work / "next", "--effects", work / "with-model.json", env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((work / "next" / "2025-05-01" / "summary.json").read_text())["summary"]
    for inc, by_tier in summary["save_rates"].items():
        for tier, used in by_tier.items():
            assert used["source"] == learned["save_rates"][inc][tier]["source"]
            if used["source"] == "measured":
                assert used["rate"] == pytest.approx(min(max(learned["save_rates"][inc][tier]["rate"], 0.0), 1.0))
    assert sum(u["customers_priced"] for u in summary["save_rates"][offer].values()) > 50
    warnings = json.loads((work / "next" / "2025-05-01" / "summary.json").read_text())["warnings"]
    assert not [w for w in warnings if "uplift" in w]  # the same churn model, every column there
    assert all(u["customers_priced"] == 0 for inc, by in summary["save_rates"].items() if inc != offer
               for u in by.values())
    report = (work / "next" / "2025-05-01" / "report.html").read_text()
    assert 'id="learned"' in report and "What past campaigns measured" in report


def test_bad_runs_are_refused_with_the_file_named(loop, demo_workspace, tmp_path):
    work, run, env, _ = loop
    # The demo's own run is at the end of its data: its label window has not passed.
    done = churn("campaign-effect", "--run", demo_workspace.run_dir, "--data", demo_workspace.data,
                 "--effects-out", tmp_path / "e.json", env=env)
    assert done.returncode == 1 and "has not passed" in done.stderr and "Traceback" not in done.stderr
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    pd.read_parquet(run / "scores.parquet").drop(columns="would_be_incentive").to_parquet(
        broken / "scores.parquet")
    for f in ("campaign_effect.json", "effects.json"):
        (broken / f).unlink(missing_ok=True)
    done = churn("campaign-effect", "--run", broken, "--data", work / "data", env=env)
    assert done.returncode == 1
    assert f"{broken / 'scores.parquet'}: missing column(s) ['would_be_incentive']" in done.stderr
    done = churn("score", "--model", "x", "--data", work / "data", "--as-of", "2025-05-01", "--out", tmp_path,
                 "--effects", tmp_path / "nope.json", env=env)
    assert done.returncode == 1 and "nope.json: no such effects file" in done.stderr
    assert not Path(tmp_path / "2025-05-01").exists()
