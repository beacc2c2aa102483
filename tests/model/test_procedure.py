"""The registered procedure: refit rules, reading the trees at several rounds from one fit, the choice on
forward readings (ties to the simpler candidate), blends whose trees carry no weight, and no model kind
extrapolating beyond what it was fitted on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.config import Config
from churn.features.registry import Feature
from churn.training.model import ChurnModel
from churn.training.procedure import Reading, Rows, rule_rounds
from churn.training.selection import Candidate, Evaluated, build_model, candidate_list, choose, evaluate_candidates
from churn.training.splits import Split

FEATURES = [Feature("tenure", "table", "tenure"), Feature("visits", "table", "visits"),
            Feature("plan", "table", "plan", kind="categorical")]


def _table(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    tenure = rng.uniform(0, 10, n)
    visits = rng.poisson(3, n).astype(float)
    plan = rng.choice(["basic", "gold"], n)
    z = -1.0 - 0.3 * tenure + 0.4 * (visits < 2) + 0.5 * (plan == "basic")
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame({"tenure": tenure, "visits": visits, "plan": plan}), y


def _config(**model: object) -> Config:
    base = Config()
    return base.model_copy(update={"model": base.model.model_copy(update={
        "n_jobs": 1, "num_boost_round": 200, "early_stopping_rounds": 20, "auto_tune_max_rows": 0, **model})})


def test_refit_rules_scale_the_rounds_by_what_they_say():
    fitted, refit = Rows(rows=1000, customers=400), Rows(rows=4300, customers=600)
    assert rule_rounds("same", 80, fitted, refit, 1000) == 80
    assert rule_rounds("customers", 80, fitted, refit, 1000) == 120  # 80 x 600 / 400
    assert rule_rounds("rows", 80, fitted, refit, 1000) == 344  # 80 x 4300 / 1000
    assert rule_rounds("rows", 80, fitted, refit, 300) == 300  # capped
    assert rule_rounds("customers", 0, fitted, refit, 300) == 1  # never zero rounds


def test_trees_read_at_fewer_rounds_equal_a_fit_with_that_many_rounds():
    """Forward readings grow each candidate's trees once and read them at every rule's rounds: the first r
    rounds of a longer fit must be exactly the model an r-round fit gives (bagging included)."""
    df, y = _table(3000, 1)
    params = {"num_leaves": 7, "min_child_samples": 20, "bagging_fraction": 0.8, "bagging_freq": 1,
              "feature_fraction": 0.7}
    long = ChurnModel(FEATURES, params, num_boost_round=90, n_jobs=1, seed=3).fit(df, y)
    short = ChurnModel(FEATURES, params, num_boost_round=37, n_jobs=1, seed=3).fit(df, y)
    enc = long._encode(df)
    np.testing.assert_array_equal(long.log_odds_encoded(enc, num_iteration=37), short.log_odds_encoded(enc))
    assert not np.array_equal(long.log_odds_encoded(enc), short.log_odds_encoded(enc))


def _reading(name: str, auc: float, rule: str = "customers") -> Reading:
    return Reading(name, rule, auc, 0.3, 10, np.zeros(1))


def _evaluated(names: list[str]) -> list[Evaluated]:
    kinds = {"btyd": "logistic", "logistic_l1": "logistic", "logistic": "logistic", "blend": "blend"}
    return [Evaluated(Candidate(n, kinds.get(n, "lightgbm"), {}, n), None, {"roc_auc": 0.7}, {}, np.zeros(1),  # type: ignore[arg-type]
                      np.zeros(1)) for n in names]


def test_readings_within_the_margin_go_to_the_simpler_candidate():
    ev = _evaluated(["lightgbm", "lightgbm_stumps", "logistic", "blend"])
    near = [_reading("lightgbm", 0.8010), _reading("lightgbm_stumps", 0.8000), _reading("logistic", 0.7995),
            _reading("blend", 0.8014)]
    c = choose(ev, near, forward=True, tie_margin=0.002)
    assert c.name == "logistic" and "simpler" in c.why and c.linear_won  # 0.7995 >= 0.8014 - 0.002
    assert "NO CANDIDATE WITH LIGHTGBM" in c.why
    clear = [_reading("lightgbm", 0.8010), _reading("lightgbm_stumps", 0.8000), _reading("logistic", 0.7950),
             _reading("blend", 0.8040)]
    c = choose(ev, clear, forward=True, tie_margin=0.002)
    assert c.name == "blend" and not c.linear_won  # stumps 0.8000 < 0.8040 - 0.002
    exact = [_reading("lightgbm", 0.8), _reading("lightgbm_stumps", 0.8)]
    assert choose(ev[:2], exact, forward=True, tie_margin=0.0).name == "lightgbm_stumps"


def test_a_rule_tie_goes_to_the_fallback_rule():
    ev = _evaluated(["lightgbm"])
    readings = [_reading("lightgbm", 0.75, "rows"), _reading("lightgbm", 0.75, "customers"),
                _reading("lightgbm", 0.75, "none"), _reading("lightgbm", 0.74, "same")]
    assert choose(ev, readings, forward=True, tie_margin=0.002).rule == "customers"
    readings[0] = _reading("lightgbm", 0.76, "rows")
    assert choose(ev, readings, forward=True, tie_margin=0.002).rule == "rows"


def test_a_blend_whose_trees_take_no_weight_is_not_a_candidate():
    """Trees that cannot split (every leaf needs more rows than there are) add nothing to the logistic
    regression: the blend of the two is the logistic regression, so it is dropped and said."""
    df, y = _table(4000, 2)
    n = len(y)
    rows = Split("test", np.arange(0, 2400), np.arange(2400, 2800), np.arange(2800, 3200), np.arange(3200, n))
    cfg = _config(params={"min_child_samples": 100_000, "num_leaves": 4}, candidates=["lightgbm", "blend", "logistic"])
    said: list[str] = []
    ev = evaluate_candidates(candidate_list(cfg), df, y, rows, FEATURES, cfg, scale_pos_weight=None, source=None,
                             say=said.append)
    assert [e.name for e in ev] == ["lightgbm", "logistic"]
    assert any("blend: dropped" in m and "it is the logistic regression" in m for m in said)


@pytest.mark.parametrize("name", ["lightgbm", "lightgbm_stumps", "logistic", "logistic_l1", "blend", "btyd",
                                  "average"])
def test_no_kind_scores_beyond_the_edge_of_what_it_was_fitted_on(name):
    """A customer far outside the training range (a tenure of 1,000 when training saw 0-10, or -1,000)
    scores exactly like one at the nearest edge, for every candidate kind."""
    df, y = _table(3000, 4)
    df["btyd_p_no_order"] = np.clip(0.2 + 0.05 * df["tenure"] + np.random.default_rng(0).normal(0, 0.05, len(df)), 0, 1)
    feats = [*FEATURES, Feature("btyd_p_no_order", "purchases", "P(no order)")]
    cfg = _config(candidates=["lightgbm", "lightgbm_stumps", "logistic", "logistic_l1", "btyd", "blend"])
    if name == "average":  # of a tree model and a regression
        model = ChurnModel.average_of([build_model(cfg, feats, c, None, None, num_boost_round=60).fit(df, y)
                                       for c in candidate_list(cfg, features=feats) if c.name in ("lightgbm", "logistic")])
    else:
        cand = next(c for c in candidate_list(cfg, features=feats) if c.name == name)
        kw = {"blend_weights": (0.5, 0.5, 0.0)} if name == "blend" else {}
        if cand.kind == "blend":
            cand = Candidate("blend", "blend", cand.params, cand.note)
        model = build_model(cfg, feats, cand, None, None, num_boost_round=60, **kw).fit(df, y)
    edge = df.iloc[[0, 0, 0, 0]].reset_index(drop=True)
    column = "btyd_p_no_order" if name == "btyd" else "tenure"
    lo, hi = df[column].min(), df[column].max()
    edge[column] = [lo, lo - 1000.0, hi, hi + 1000.0]
    p = model.predict_raw(edge)
    assert p[1] == p[0] and p[3] == p[2], p
    assert p[0] != p[2]  # the feature matters inside the range: the equalities above are not vacuous
