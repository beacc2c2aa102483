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


def _fitted_world() -> tuple[pd.DataFrame, np.ndarray, Split, list[Evaluated], list[Reading]]:
    """Three candidates fitted and read forward on one later block of rows (each reading's raw is its
    model's prediction of those rows)."""
    from churn.training.metrics import ranking_metrics

    df, y = _table(4000, 6)
    split = Split("out_of_time", np.arange(0, 2000), np.arange(2000, 2400), np.arange(2400, 2800),
                  np.arange(3400, 4000), forward=True, forward_fits=[np.arange(0, 2000)],
                  forward_valids=[np.arange(2800, 3400)])
    cfg = _config(candidates=["lightgbm", "logistic", "logistic_l1"])
    ev = evaluate_candidates(candidate_list(cfg), df, y, split, FEATURES, cfg, scale_pos_weight=None, source=None,
                             say=lambda m: None)
    fv = split.forward_valid
    readings = []
    for e in ev:
        raw = e.model.predict_raw(df.iloc[fv])
        m = ranking_metrics(y[fv], raw)
        readings.append(Reading(e.name, "customers", m["roc_auc"], m["pr_auc"], 10, raw))
    return df, y, split, ev, readings


def test_the_average_pools_the_candidates_not_significantly_worse_than_the_best():
    """One standard error of the paired difference ties a candidate (it may be chosen alone); two admit it
    to the average's pool; further below, it is in neither. The readings' ROC AUC is set by hand around the
    margins the bootstrap gives for these very scores."""
    from dataclasses import replace

    from churn.training.selection import best_rule, margin_of

    df, y, split, ev, readings = _fitted_world()
    y_read = y[split.forward_valid]
    best = {e.name: best_rule(readings, e.name) for e in ev}
    leader = max(best, key=lambda n: best[n].roc_auc)
    other = next(n for n in ("logistic_l1", "logistic", "lightgbm") if n != leader)
    one = margin_of(best, leader, y_read, 0.0)[other]
    two = margin_of(best, leader, y_read, 0.0, errors=2.0)[other]
    assert two == pytest.approx(2 * one) and one > 0
    top = best[leader].roc_auc
    for below, tied, pooled in [(0.5, True, True), (1.5, False, True), (2.5, False, False)]:
        moved = [replace(r, roc_auc=top - below * one) if r.candidate == other else r for r in readings]
        choice = choose(ev, moved, forward=True, tie_margin=0.0, y_read=y_read)
        assert (other in choice.tied) is tied and (other in choice.pool) is pooled, below
        assert choice.pool[:len(choice.tied)] == choice.tied  # the tied first, then the rest of the pool


def test_tied_candidates_are_averaged_simplest_first_and_read_as_their_mean_log_odds():
    from dataclasses import replace

    from scipy.special import expit, logit
    from sklearn.metrics import roc_auc_score

    from churn.training.average import averaged

    df, y, split, ev, readings = _fitted_world()
    choice = choose(ev, readings, forward=True, tie_margin=0.099, y_read=y[split.forward_valid])
    assert set(choice.tied) == {"lightgbm", "logistic", "logistic_l1"}
    avg = averaged(choice, ev, readings, df, y, split, "isotonic")
    assert avg.name == "average" and avg.rule == "members" and avg.evaluated.candidate.parts == (
        "logistic_l1", "logistic", "lightgbm")
    raws = {r.candidate: r.raw for r in readings}
    want = expit(np.mean([logit(raws[n]) for n in ("logistic_l1", "logistic", "lightgbm")], axis=0))
    np.testing.assert_allclose(avg.reading.raw, want, rtol=0, atol=1e-12)
    assert avg.reading.roc_auc == pytest.approx(roc_auc_score(y[split.forward_valid], want))
    assert avg.evaluated.model.metadata_["members"] == ["logistic_l1", "logistic", "lightgbm"]
    # Calibrated on the 400 calibration rows as each evaluation fit is (a sigmoid below 1,000 rows).
    assert avg.evaluated.model.calibrator_.method == "sigmoid" and not avg.linear_won
    assert not np.allclose(avg.evaluated.p_holdout, avg.evaluated.p_raw_holdout)
    assert "NO CANDIDATE" not in avg.why and "the average of logistic_l1 (customers)" in avg.why
    # Two regressions alone: an average, said as loudly as a regression chosen alone.
    two = ("logistic_l1", "logistic")
    linear = averaged(replace(choice, tied=two, pool=two), ev, readings, df, y, split, "isotonic")
    assert linear.name == "average" and linear.linear_won and linear.why.startswith("NO CANDIDATE WITH LIGHTGBM")


def _fake(name: str, features: tuple[str, ...] | None = None) -> Evaluated:
    return Evaluated(Candidate(name, "logistic", {}, name, features=features), None, {"roc_auc": 0.7}, {},  # type: ignore[arg-type]
                     np.zeros(1), np.zeros(1))


def test_when_the_tied_candidates_are_not_averaged():
    from dataclasses import replace

    from churn.training.average import averaged
    from churn.training.selection import Choice

    y = np.array([1, 0, 1, 0, 1, 0])
    split = Split("out_of_time", np.arange(0), np.arange(0), np.arange(0), np.arange(0), forward=True,
                  forward_valids=[np.arange(6)])
    # Each reads 0.667; the mean of their log-odds reads 0.556: averaging lost what they agreed on.
    a = Reading("logistic_l1", "customers", 2 / 3, 0.5, 0, np.array([0.44, 0.17, 0.52, 0.95, 0.26, 0.2]))
    b = Reading("logistic", "customers", 2 / 3, 0.5, 0, np.array([0.83, 0.39, 0.51, 0.56, 0.58, 0.79]))
    ev = [_fake("logistic_l1"), _fake("logistic"), _fake("btyd", ("btyd_p_no_order",))]
    base = Choice(ev[0], "customers", "why", a, False, True, ("logistic_l1", "logistic"), "read")
    assert averaged(base, ev, [a, b], pd.DataFrame(), y, split, "isotonic") is base
    # Not a forward reading; one candidate tied; the best tied reading BG/NBD alone, which cannot join.
    assert averaged(replace(base, forward=False), ev, [a, b], pd.DataFrame(), y, split, "isotonic").name == \
        "logistic_l1"
    alone = replace(base, tied=("logistic_l1", "btyd"))
    c = Reading("btyd", "customers", 0.9, 0.5, 0, np.zeros(6))
    assert averaged(alone, ev, [a, b, c], pd.DataFrame(), y, split, "isotonic") is alone
    led = replace(base, tied=("btyd", "logistic_l1", "logistic"))
    assert averaged(led, ev, [a, b, c], pd.DataFrame(), y, split, "isotonic") is led
