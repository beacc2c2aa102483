"""Per-customer effects in the effects file: a hazard-ratio model written as plain numbers (no pickle), read
back and checked, and used by every plan that reads the file (`plan_retention(effects=...)`), as the Python
API's `customer_save_rates` would price it; what it needs and cannot find is said, not guessed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_plan_learning import ASSUMED
from test_plan_learning import _config as learning_config
from test_plan_learning import _scores as learning_scores

from churn.campaigns.hazard import HazardRatio
from churn.campaigns.learning import Cell, read_effects, shrink
from churn.campaigns.uplift import OfferUplift, customer_save_rates, uplift_models, uplift_record
from churn.config import Config
from churn.errors import ChurnError
from churn.scoring.allocation import plan_retention


def _config(budget: float = 3_000.0) -> Config:
    return learning_config(budget, control_share=0.1)


def _scores(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed + 1000)
    return learning_scores(n, seed).assign(price_sensitivity=rng.normal(size=n),
                                           tickets_90d=rng.poisson(1.0, n).astype(float))


def _model() -> HazardRatio:
    """A discount that keeps price-sensitive customers (hazard x0.3 at +1 sd) and drives others away."""
    m = HazardRatio()
    m.columns_, m.mean_, m.scale_ = ["price_sensitivity", "tickets_90d"], np.array([0.0, 1.0]), np.array([1.0, 1.0])
    m.intercept_, m.coef_ = math.log(0.8), np.array([-1.2, 0.1])
    m.penalty_, m.control_penalty_, m.control_coef_ = 1000.0, 1e6, np.zeros(2)
    m.shifts_ = {0: 0.0, 1: 0.1}
    return m


def _effects_file(tmp_path, model: HazardRatio | None = None):
    effects = shrink([Cell("critical", "discount", 2000, 300, 500, 100)], ASSUMED, strength=200)
    learned = {"discount": OfferUplift(None, model or _model(), "hand-set for the test"),
               "call": OfferUplift(None, None, "too little history")}
    effects.uplift = uplift_record(learned, "models:/churn@champion")
    path = tmp_path / "effects.json"
    path.write_text(json.dumps(effects.to_dict()))
    return path, learned


def test_the_model_round_trips_through_the_file_as_numbers(tmp_path):
    path, learned = _effects_file(tmp_path)
    raw = json.loads(path.read_text())
    written = raw["uplift"]["offers"]["discount"]["model"]
    assert written["kind"] == "hazard_ratio" and written["coef"] == [-1.2, 0.1]
    assert raw["uplift"]["offers"]["call"] == {"chosen": None, "why": "too little history", "evaluation": None,
                                               "model": None}
    [(offer, back)] = read_effects(path).uplift_models().items()
    rows = _scores(50, 1)
    assert offer == "discount"
    np.testing.assert_array_equal(back.predict_uplift(rows), learned["discount"].model.predict_uplift(rows))


@pytest.mark.parametrize(("key", "bad", "said"), [
    ("coef", [-1.2], "coef: expected 2 finite"),
    ("coef", [-1.2, float("nan")], "coef: expected 2 finite"),
    ("scale", [1.0, 0.0], "scale: every scale"),
    ("intercept", "0.1", "intercept: expected a finite number"),
    ("kind", "two_model", "expected a mapping with kind 'hazard_ratio'"),
    ("columns", "price", "columns: expected a list"),
    ("columns", ["churn_probability", "tickets_90d"], "columns: feature names must be unique and not"),
    ("columns", ["customer_id", "tickets_90d"], "columns: feature names must be unique and not"),
    ("columns", ["tickets_90d", "tickets_90d"], "columns: feature names must be unique and not"),
    ("shifts", [0.1], "shifts: expected a mapping"),
    ("correct_with_controls", "false", "correct_with_controls: expected true or false"),
    ("penalty", 10 ** 400, "penalty: expected a finite number"),
])
def test_a_damaged_model_is_refused_naming_the_key(tmp_path, key, bad, said):
    path, _ = _effects_file(tmp_path)
    raw = json.loads(path.read_text())
    raw["uplift"]["offers"]["discount"]["model"][key] = bad
    path.write_text(json.dumps(raw, allow_nan=True))
    with pytest.raises(ChurnError) as err:
        read_effects(path)
    assert f"{path}: uplift.offers.discount.model" in str(err.value) and said in str(err.value)


def test_only_models_written_as_numbers_go_into_the_file():
    from churn.campaigns.uplift import TwoModel

    with pytest.raises(ChurnError, match="TwoModel.*cannot be written"):
        uplift_record({"discount": OfferUplift(None, TwoModel(), "")})
    assert uplift_models({}) == {}


def test_a_plan_reading_the_file_prices_as_the_python_api_does(tmp_path):
    path, learned = _effects_file(tmp_path)
    scores = _scores(1500, 2)
    effects = read_effects(path)
    from_file = plan_retention(scores, _config(), effects=effects, seed=5)
    by_api = plan_retention(scores, _config(), effects=effects, seed=5,
                            customer_save_rates=customer_save_rates(learned, scores, _model().columns_))
    pd.testing.assert_frame_equal(from_file.customers, by_api.customers)
    # The rate by hand for one contactable customer: m = 0.8 exp(-1.2 x + 0.1 (t - 1)), q = 1 - (1 - p)^m.
    c = from_file.customers
    row = c[(c["incentive"] == "discount") & c["contact"]].iloc[0]
    x = scores.set_index("customer_id").loc[row["customer_id"]]
    p, m = x["churn_probability"], 0.8 * math.exp(-1.2 * x["price_sensitivity"] + 0.1 * (x["tickets_90d"] - 1))
    rate = min(max((p - (1 - (1 - p) ** m)) / p, 0.0), 1.0)
    value_rate = row["expected_saved_value"] / (p * row["customer_value"])
    assert value_rate == pytest.approx(rate)
    # A customer the discount would drive away (m > 1): rate 0, so the plan does not send it to them.
    harmed = scores[scores["price_sensitivity"] < -1].iloc[0]
    rates = customer_save_rates(learned, scores, _model().columns_).set_index("customer_id")
    assert rates.loc[harmed["customer_id"], "discount"] == 0.0
    priced = from_file.summary.save_rates["discount"]
    assert sum(r.customers_priced for r in priced.values()) > 500
    assert all(r.customers_priced == 0 for r in from_file.summary.save_rates["call"].values())
    # The persuadable get the offer, those it would drive away do not; nobody without consent is contacted.
    got = c.set_index("customer_id")
    sent = got[got["incentive"].eq("discount") & got["contact"]]
    assert (sent["price_sensitivity"] > 0).mean() > 0.95
    assert not c.loc[c["contact"], "marketing_consent"].ne(True).any()
    # The control group is the same seeded draw as without the model: learning does not touch it.
    plain = plan_retention(scores, _config(), effects=effects.__class__(effects.save_rates), seed=5)
    assert plain.customers["holdout"].sum() > 30
    assert (plain.customers.loc[plain.customers["holdout"], "customer_id"].tolist()
            == c.loc[c["holdout"], "customer_id"].tolist())


def test_what_the_model_needs_and_the_scores_lack_is_said(tmp_path):
    path, _ = _effects_file(tmp_path)
    scores = _scores(500, 3)
    effects = read_effects(path)
    plan = plan_retention(scores.drop(columns="tickets_90d"), _config(), effects=effects, seed=5)
    assert any("tickets_90d" in w and "tier rates" in w for w in plan.summary.warnings)
    assert all(r.customers_priced == 0 for r in plan.summary.save_rates["discount"].values())
    # Rows without a churn probability are not priced (and not contacted); the others are.
    gaps = scores.assign(churn_probability=scores["churn_probability"].where(scores.index % 7 != 0))
    plan = plan_retention(gaps, _config(), effects=effects, seed=5)
    c = plan.customers.set_index("customer_id")
    assert not c.loc[gaps.loc[gaps.index % 7 == 0, "customer_id"], "contact"].any()
    assert sum(r.customers_priced for r in plan.summary.save_rates["discount"].values()) > 100


def test_a_text_column_or_another_churn_model_is_said(tmp_path):
    path, _ = _effects_file(tmp_path)
    effects = read_effects(path)
    scores = _scores(400, 4)
    text = scores.assign(tickets_90d=np.where(scores.index % 5 == 0, "many", "1"))
    plan = plan_retention(text, _config(), effects=effects, seed=5)
    assert any("tickets_90d" in w and "text" in w for w in plan.summary.warnings)
    assert all(r.customers_priced == 0 for r in plan.summary.save_rates["discount"].values())
    # Numbers held as objects (as a Spark partition may hold them) are numbers: the same plan as floats.
    as_objects = scores.assign(tickets_90d=scores["tickets_90d"].astype(object))
    pd.testing.assert_frame_equal(plan_retention(as_objects, _config(), effects=effects, seed=5).customers
                                  .drop(columns="tickets_90d"),
                                  plan_retention(scores, _config(), effects=effects, seed=5).customers
                                  .drop(columns="tickets_90d"))
    effects.uplift["churn_model_version"] = "7"
    plan = plan_retention(_scores(400, 4).assign(model_version="8"), _config(), effects=effects, seed=5)
    assert any("learned on churn model 7" in w and "from 8" in w for w in plan.summary.warnings)
    plan = plan_retention(_scores(400, 4).assign(model_version="7"), _config(), effects=effects, seed=5)
    assert not any("churn model" in w for w in plan.summary.warnings)


def test_a_learned_model_goes_through_the_file_unchanged(tmp_path):
    """`learn_uplift` on campaigns with a planted effect, its record written and read back: the same rates."""
    from churn.campaigns.uplift import learn_uplift

    rng = np.random.default_rng(7)
    n = 9_000
    X = pd.DataFrame({"price_sensitivity": rng.normal(size=n), "tickets_90d": rng.poisson(1.0, n).astype(float),
                      "churn_probability": rng.uniform(0.05, 0.6, n), "campaign": np.repeat([0, 1, 2], n // 3)})
    treated = rng.uniform(size=n) < 0.85
    ratio = np.where(X["price_sensitivity"] > 0, 0.3, 1.6)
    hazard = -np.log1p(-X["churn_probability"].to_numpy()) * np.where(treated, ratio, 1.0)
    history = X.assign(treated=treated, churned=(rng.uniform(size=n) < -np.expm1(-hazard)).astype(int),
                       offer="discount", risk_tier="critical", customer_id=[f"{i:05d}" for i in range(n)])
    features = ["price_sensitivity", "tickets_90d"]
    learned = learn_uplift(history, features, {"discount": {"critical": 0.25}}, models=("hazard_ratio",))
    assert learned["discount"].evaluation.chosen == "hazard_ratio"
    effects = shrink([Cell("critical", "discount", 2000, 300, 500, 100)], ASSUMED, strength=200)
    effects.uplift = uplift_record(learned, "models:/churn/3", "3")
    (tmp_path / "e.json").write_text(json.dumps(effects.to_dict()))
    back = read_effects(tmp_path / "e.json")
    rec = back.uplift["offers"]["discount"]
    assert rec["chosen"] == "hazard_ratio" and rec["evaluation"]["likelihood_gain"]["hazard_ratio"] > 0
    scores = _scores(800, 6)
    np.testing.assert_allclose(customer_save_rates({"discount": OfferUplift(None, back.uplift_models()["discount"])},
                                                   scores, features)["discount"],
                               customer_save_rates(learned, scores, features)["discount"], rtol=0, atol=1e-12)


def test_the_files_other_keys_are_checked_too(tmp_path):
    path, _ = _effects_file(tmp_path)
    raw = json.loads(path.read_text())
    raw["uplift"]["churn_model_version"] = 7
    path.write_text(json.dumps(raw))
    with pytest.raises(ChurnError, match="uplift.churn_model_version: expected text or null, got 7"):
        read_effects(path)
    # A number longer than Python reads is a damaged file, not a crash.
    raw["uplift"]["churn_model_version"] = None
    path.write_text(json.dumps(raw).replace('"penalty": 1000.0', '"penalty": ' + "9" * 5000))
    with pytest.raises(ChurnError, match="effects.json: not a JSON effects file"):
        read_effects(path)


def test_uplift_is_learned_only_from_two_campaigns_of_different_dates():
    from churn.campaigns.effect import CampaignEffect
    from churn.campaigns.run import learn_uplift_from_runs

    def campaign(as_of: str) -> CampaignEffect:
        return CampaignEffect(f"runs/{as_of}", as_of, 60, "cancellation", "EUR", 0.1, 0, 0)

    one = learn_uplift_from_runs(["a"], [campaign("2025-03-01")], [pd.DataFrame()], None, None)
    assert one[0] == {} and "two or more campaigns" in one[1][0]
    same = learn_uplift_from_runs(["a", "b"], [campaign("2025-03-01")] * 2, [pd.DataFrame()] * 2, None, None)
    assert same[0] == {} and "same date (2025-03-01)" in same[1][0]


def test_a_latest_run_whose_model_cannot_be_loaded_is_a_notice_unless_named(tmp_path):
    from churn.campaigns.effect import CampaignEffect
    from churn.campaigns.run import learn_uplift_from_runs

    runs = []
    for as_of, model in (("2025-04-01", "gone-latest"), ("2025-03-01", "gone-earlier")):  # latest given first
        run = tmp_path / as_of
        run.mkdir()
        (run / "summary.json").write_text(json.dumps({"meta": {"as_of": as_of, "model": str(tmp_path / model)}}))
        runs.append(str(run))
    measured = [CampaignEffect(r, Path(r).name, 60, "cancellation", "EUR", 0.1, 0, 0) for r in runs]
    section, notices = learn_uplift_from_runs(runs, measured, [pd.DataFrame()] * 2, None, _config())
    assert section == {} and len(notices) == 1
    assert "the latest run's model" in notices[0] and "pass --model" in notices[0]
    assert "gone-latest" in notices[0] and "gone-earlier" not in notices[0]
    with pytest.raises(ChurnError, match="gone-named"):  # asked for by name: the failure is the answer
        learn_uplift_from_runs(runs, measured, [pd.DataFrame()] * 2, None, _config(), str(tmp_path / "gone-named"))
