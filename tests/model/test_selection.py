"""Model selection and the fitted preparation on tables built here (not by our generator).

- Where the signal is additive, the chosen model ranks like the logistic regression; where interactions
  are planted, the chosen model has LightGBM in it and clearly beats the logistic regression.
- Reason contributions are exactly additive for every model kind.
- Random raw tables (yes/no text, booleans, numbers as text, blanks, unseen levels) train and score; the
  same rows in another dress (case, spaces, integers for floats, column order) give the same answer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.config import Config
from churn.errors import ChurnError
from churn.features.registry import Feature
from churn.training.metrics import ranking_metrics
from churn.training.model import ChurnModel
from churn.training.procedure import forward_readings
from churn.training.selection import candidate_list, choose, evaluate_candidates
from churn.training.splits import Split
from churn.training.table import prepare_table

FEATURES = [Feature(f"x{i}", "table", f"x{i}") for i in range(5)] + [Feature("seg", "table", "seg", kind="categorical")]


def _table(n: int, seed: int, interactions: bool) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    seg = rng.choice(["a", "b", "c"], n)
    if interactions:  # churn only where two conditions meet: no single feature says much on its own
        z = -2.5 + 3.0 * ((X[:, 0] > 0.3) & (X[:, 1] > 0.3)) + 2.5 * ((X[:, 2] < -0.5) ^ (seg == "b"))
    else:
        z = -2.0 + 0.8 * X[:, 0] - 0.6 * X[:, 1] + 0.4 * X[:, 2] + 0.5 * (seg == "b")
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)]).assign(seg=seg)
    return df, y


def _config() -> Config:
    base = Config()
    return base.model_copy(update={"model": base.model.model_copy(update={
        "n_jobs": 1, "num_boost_round": 400, "early_stopping_rounds": 30, "auto_tune_max_rows": 0})})


def _select(interactions: bool):
    df, y = _table(12000, 5, interactions)
    n = len(y)
    rows = Split("test", np.arange(0, int(0.5 * n)), np.arange(int(0.5 * n), int(0.6 * n)),
                np.arange(int(0.6 * n), int(0.7 * n)), np.arange(int(0.7 * n), n))
    rows.forward_fits, rows.forward_valids = [rows.train], [rows.validation]  # a split by customer: no later date
    cfg = _config()
    ev = evaluate_candidates(candidate_list(cfg), df, y, rows, FEATURES, cfg, scale_pos_weight=None, source=None,
                             say=lambda m: None)
    readings = forward_readings(ev, df, y, np.arange(n).astype(str).astype(object), rows, cfg, FEATURES,
                                scale_pos_weight=None, source=None, say=lambda m: None)
    choice = choose(ev, readings, forward=False, tie_margin=cfg.model.tie_margin)
    return {e.name: e for e in ev}, choice, readings


def test_additive_signal_chosen_model_ranks_like_the_logistic_regression():
    ev, choice, _ = _select(interactions=False)
    assert set(ev) <= {"lightgbm", "lightgbm_stumps", "logistic", "logistic_l1", "blend"}
    assert {"lightgbm", "lightgbm_stumps", "logistic", "logistic_l1"} <= set(ev)
    chosen = choice.evaluated
    assert abs(chosen.holdout["roc_auc"] - ev["logistic"].holdout["roc_auc"]) < 0.01
    assert chosen.holdout["roc_auc"] >= max(e.holdout["roc_auc"] for e in ev.values()) - 0.01
    assert choice.rule == "customers" and not choice.forward  # no later date: the fallback rule


def test_planted_interactions_chosen_model_has_trees_and_beats_the_logistic_regression():
    ev, choice, _ = _select(interactions=True)
    chosen = choice.evaluated
    assert not choice.linear_won and chosen.candidate.kind in {"lightgbm", "blend"}
    assert chosen.holdout["roc_auc"] > ev["logistic"].holdout["roc_auc"] + 0.03


@pytest.mark.parametrize("kind", ["lightgbm", "blend", "logistic"])
@pytest.mark.parametrize("method", ["path", "treeshap"])
def test_contributions_add_up_to_the_log_odds_for_every_kind(kind, method):
    df, y = _table(3000, 2, interactions=True)
    m = ChurnModel(FEATURES, {"num_leaves": 7, "min_child_samples": 20}, kind=kind, num_boost_round=60, n_jobs=1,
                   blend_weights=0.6 if kind == "blend" else None).fit(df, y)
    c = m.contributions(df.head(300), method)
    raw = m.predict_raw(df.head(300))
    np.testing.assert_allclose(c.sum(axis=1), np.log(raw / (1 - raw)), rtol=0, atol=1e-8)
    # a blend's contributions are its parts' contributions, weighted like its log-odds
    if kind == "blend":
        enc = m._encode(df.head(300))
        trees = m.booster_.predict(enc, pred_contrib=True) if method == "treeshap" else \
            m.path_explainer().contributions(enc)
        np.testing.assert_allclose(c.to_numpy(), 0.6 * trees + 0.4 * m.linear_.contributions(enc), atol=1e-10)
    # the features that drive the planted churn get the largest contributions
    spread = c.drop(columns="bias").abs().mean().sort_values(ascending=False)
    assert set(spread.index[:3]) >= {"x0", "x1"} or set(spread.index[:3]) >= {"x2", "seg"}


@pytest.mark.parametrize("method", ["path", "treeshap"])
def test_an_average_is_the_mean_log_odds_of_its_members_and_so_are_its_reasons(method):
    from scipy.special import expit, logit

    df, y = _table(3000, 3, interactions=True)
    members = [ChurnModel(FEATURES, {"num_leaves": 7, "min_child_samples": 20}, kind=kind, num_boost_round=60,
                          n_jobs=1, blend_weights=0.6 if kind == "blend" else None).fit(df, y)
               for kind in ("lightgbm", "logistic", "blend")]
    avg = ChurnModel.average_of(members).fit_explainer()
    rows = df.head(300)
    want = expit(np.mean([logit(m.predict_raw(rows)) for m in members], axis=0))
    np.testing.assert_allclose(avg.predict_raw(rows), want, rtol=0, atol=1e-12)
    c = avg.contributions(rows, method)
    np.testing.assert_allclose(c.sum(axis=1), logit(avg.predict_raw(rows)), rtol=0, atol=1e-8)
    parts = [m.contributions(rows, method).to_numpy() for m in members]
    np.testing.assert_allclose(c.to_numpy(), (parts[0] + parts[1] + parts[2]) / 3, atol=1e-10)
    share = avg.feature_importance()
    assert share.sum() == pytest.approx(1.0) and set(share.index[:2]) & {"x0", "x1", "x2", "seg"}
    assert avg.metadata_["members"] == ["lightgbm", "logistic", "blend"] and avg.kind == "average"
    with pytest.raises(ChurnError, match="average_of"):
        ChurnModel(FEATURES, kind="average").fit(df, y)
    with pytest.raises(ValueError, match="at least two"):
        ChurnModel.average_of(members[:1])
    # A member fitted on other rows knows other category levels: the first's preparation cannot encode for it.
    other = ChurnModel(FEATURES, kind="logistic", n_jobs=1).fit(df[df["seg"] != "c"], y[(df["seg"] != "c").to_numpy()])
    with pytest.raises(ValueError, match="same category levels"):
        ChurnModel.average_of([members[0], other])

def test_logistic_contribution_is_coefficient_times_distance_from_the_mean():
    """Read from the model's outputs only: changing one feature of a row moves that feature's contribution
    by exactly the change in log-odds and leaves the others alone, and each contribution averages to zero
    over the rows the regression was fitted on (it is measured from the training mean)."""
    df, y = _table(3000, 4, interactions=False)
    m = ChurnModel(FEATURES, {}, kind="logistic", n_jobs=1).fit(df, y)
    row = df.iloc[[7] * 5].reset_index(drop=True)
    row["x2"] = [-2.0, -0.5, 0.0, 0.7, 1.9]
    c = m.contributions(row)
    raw = m.predict_raw(row)
    logit = np.log(raw / (1 - raw))
    np.testing.assert_allclose(np.diff(c["x2"].to_numpy()), np.diff(logit), atol=1e-10)
    others = c.drop(columns=["x2"])
    np.testing.assert_allclose(others.to_numpy(), np.repeat(others.iloc[[0]].to_numpy(), 5, axis=0), atol=1e-12)
    assert np.ptp(c["x2"]) > 0.1  # x2 drives the planted churn: the check above was not vacuous
    np.testing.assert_allclose(m.contributions(df).drop(columns="bias").mean(), 0.0, atol=1e-9)
    assert ranking_metrics(y, m.predict_raw(df))["roc_auc"] > 0.7


def test_the_logistic_settings_are_chosen_by_cross_validation_by_customer():
    """Which penalty and knots the logistic regressions get: the best mean ROC AUC over folds of customers,
    read from the progress messages, and the fitted model carries exactly those settings."""
    df, y = _table(4000, 6, interactions=False)
    rows = Split("test", np.arange(0, 2400), np.arange(2400, 2800), np.arange(2800, 3200), np.arange(3200, 4000))
    cfg = _config()
    said: list[str] = []
    ev = evaluate_candidates([c for c in candidate_list(cfg) if c.name == "logistic"], df, y, rows, FEATURES, cfg,
                             scale_pos_weight=None, source=None, say=said.append,
                             ids=np.array([f"c{i % 800}" for i in range(len(y))], dtype=object))
    read = {}
    for m in said:
        if "cross-validated ROC AUC" in m:
            knots, c = m.split(": ")[1].split(", ")
            read[(int(knots.split()[0]), float(c.removeprefix("C=")))] = float(m.rsplit(" ", 1)[1])
    assert len(read) == len(cfg.model.linear_knots) * len(cfg.model.linear_c)
    best = max(read.values())
    chosen = (ev[0].model.linear_knots, ev[0].model.linear_c)
    assert read[chosen] == best  # ties would go to fewer knots and the stronger penalty


def test_blocks_shared_across_penalties_fit_the_same_regression_and_refuse_other_rows():
    """The cross-validation learns a fold's blocks once for every penalty: fitting on them gives the very
    coefficients and scores a fit from the raw rows gives; blocks of other rows or settings are refused."""
    from churn.training.linear import SplineLogit

    rng = np.random.default_rng(3)
    X = np.column_stack([rng.gamma(2.0, 3.0, 900), rng.normal(size=900), rng.integers(0, 4, 900).astype(float)])
    X[rng.random(900) < 0.1, 1] = np.nan
    y = (rng.random(900) < 1 / (1 + np.exp(2 - 0.3 * X[:, 0]))).astype(int)
    shared = SplineLogit((2,), n_knots=5).prepare(X)
    for c, penalty in [(0.05, "l2"), (1.0, "l2"), (0.2, "l1")]:
        alone = SplineLogit((2,), C=c, n_knots=5, penalty=penalty).fit(X, y)
        reused = SplineLogit((2,), C=c, n_knots=5, penalty=penalty).fit(X, y, prepared=shared)
        assert alone.intercept_ == reused.intercept_
        for a, b in zip(alone.coef_blocks_, reused.coef_blocks_, strict=True):
            assert np.array_equal(a, b)
        assert np.array_equal(alone.decision_function(X), reused.decision_function(X))
    with pytest.raises(ValueError, match="other rows or with other settings"):
        SplineLogit((2,), n_knots=5).fit(X[:500], y[:500], prepared=shared)
    with pytest.raises(ValueError, match="other rows or with other settings"):
        SplineLogit((2,), n_knots=2).fit(X, y, prepared=shared)
    with pytest.raises(ValueError, match="other rows or with other settings"):  # same shape, other rows
        SplineLogit((2,), n_knots=5).fit(X[::-1], y[::-1], prepared=shared)


_yes_no = st.sampled_from(["yes", "no", "Yes", "NO", " y ", "n", "", None])
_bool_text = st.sampled_from(["True", "False", "true", "FALSE", None])
_level = st.sampled_from(["gold", "silver", "bronze", "Gold ", "", None])


@settings(max_examples=settings.default.max_examples // 16, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), kind=st.sampled_from(["lightgbm", "blend", "logistic"]),
       rows=st.lists(st.tuples(_yes_no, _bool_text, st.one_of(st.none(), st.floats(-1e3, 1e3)), _level,
                               st.booleans()), min_size=10, max_size=10))
def test_random_raw_tables_train_and_score_the_same_in_any_dress(seed, kind, rows):
    rng = np.random.default_rng(seed)
    n = 300
    picks = [rows[i] for i in rng.integers(0, len(rows), n)]
    yn, bt, num, lvl, flag = (list(col) for col in zip(*picks, strict=True))
    target = np.where(rng.random(n) < 0.3, "Yes", "No")
    target[:2] = ["Yes", "No"]
    df = pd.DataFrame({
        "id": [f"{i:05d}" for i in range(n)], "churn": target, "vip": yn, "paper": bt,
        "spend": ["" if v is None else f"{v:.2f}".replace(".", ",") for v in num], "tier": lvl, "flag": flag,
        "visits": rng.integers(0, 20, n),
    })
    frame, feats = prepare_table(df, "churn", "id")
    y = frame["churn"].to_numpy()
    m = ChurnModel(feats, {"num_leaves": 4, "min_child_samples": 5}, kind=kind, num_boost_round=20, n_jobs=1,
                   blend_weights=0.5 if kind == "blend" else None).fit(frame, y)
    p = m.predict_risk(df)
    assert p.shape == (n,) and np.isfinite(p).all() and ((p > 0) & (p < 1)).all()
    dressed = df.assign(
        vip=df["vip"].map(lambda v: v if v is None else f" {str(v).upper()}  "),
        paper=df["paper"].map(lambda v: v if v is None else str(v).lower()),
        visits=df["visits"].astype(float),
        tier=df["tier"].map(lambda v: v if v is None else str(v).strip().upper()),
        note="ignored",
    )[["note", "tier", "visits", "flag", "spend", "paper", "vip", "id"]]
    np.testing.assert_allclose(m.predict_risk(dressed), p, rtol=0, atol=1e-12)
    unseen = df.assign(tier="platinum")  # a level never seen reads as missing, never an error
    assert np.isfinite(m.predict_risk(unseen)).all()


def test_stack_weights_are_non_negative_and_fit_the_held_out_rows():
    from churn.training.model import stack_weights

    rng = np.random.default_rng(8)
    n = 20000
    a_true = rng.normal(size=n)
    b_true = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 1.5 * a_true + 0.5 * b_true)))).astype(int)
    a, b, c = stack_weights((a_true, b_true), y)
    assert abs(a - 1.5) < 0.15 and abs(b - 0.5) < 0.1 and abs(c + 2.0) < 0.15
    # a part that only hurts (its log-odds point the wrong way) gets weight 0, never a negative one
    a, b, c = stack_weights((a_true, -b_true), y)
    assert b == 0.0 and a > 1.0


def test_a_forced_candidate_is_registered_whatever_validation_says():
    from churn.errors import ChurnError

    ev, choice, readings = _select(interactions=True)
    forced = choose(list(ev.values()), readings, forward=False, tie_margin=0.002, force="logistic")
    assert forced.name == "logistic" and "forced by model.force_candidate" in forced.why
    assert choice.name != "logistic"  # validation alone would not have chosen it
    with pytest.raises(ChurnError, match="lightgbm_tuned.*not among the candidates"):
        choose(list(ev.values()), readings, forward=False, tie_margin=0.002, force="lightgbm_tuned")


def test_few_calibration_rows_get_a_sigmoid_not_isotonic_steps():
    from churn.training.selection import calibration_method

    assert calibration_method("isotonic", 150) == "sigmoid"
    assert calibration_method("isotonic", 5000) == "isotonic"
    assert calibration_method("sigmoid", 5000) == "sigmoid"
    df, y = _table(3000, 6, interactions=False)
    n = len(y)
    rows = Split("test", np.arange(0, 1800), np.arange(1800, 2100), np.arange(2100, 2400), np.arange(2400, n))
    cfg = _config()
    ev = evaluate_candidates(candidate_list(cfg)[:1], df, y, rows, FEATURES, cfg, scale_pos_weight=None,
                             source=None, say=lambda m: None)
    assert ev[0].model.metadata_["calibration"] == "sigmoid"  # 300 calibration rows
