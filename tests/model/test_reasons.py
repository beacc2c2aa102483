"""Reason codes: fast path attribution is exact and agrees with TreeSHAP; reasons name the real drivers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.features.registry import Feature
from churn.scoring.reasons import reason_codes, render_many, render_reason
from churn.scoring.score import score_frame
from churn.training.model import ChurnModel
from churn.training.synthetic import synthetic_training_frame


@pytest.fixture(scope="module")
def fitted():
    frame, features = synthetic_training_frame(3000, 4, seed=11, n_noise=5)
    train = frame[frame.as_of < frame.as_of.max()]
    test = frame[frame.as_of == frame.as_of.max()].reset_index(drop=True)
    model = ChurnModel(features, {"learning_rate": 0.1, "num_leaves": 15, "min_child_samples": 50},
                       num_boost_round=150, n_jobs=1, seed=3)
    model.fit(train, train["churned"])
    return model, features, test


def test_path_contributions_are_additive_and_share_shap_bias(fitted) -> None:
    model, _, test = fitted
    path = model.contributions(test, method="path")
    shap = model.contributions(test, method="treeshap")
    raw = model.predict_raw(test)
    logit = np.log(raw / (1 - raw))
    np.testing.assert_allclose(path.sum(axis=1), logit, atol=1e-9)
    np.testing.assert_allclose(path["bias"], shap["bias"], atol=1e-9)


def test_path_and_treeshap_agree_on_the_top_driver(fitted) -> None:
    model, features, test = fitted
    names = [f.name for f in features]
    path = model.contributions(test, method="path")[names].to_numpy()
    shap = model.contributions(test, method="treeshap")[names].to_numpy()
    top_shap = shap.argmax(axis=1)
    top3_path = np.argsort(-path, axis=1)[:, :3]
    assert (path.argmax(axis=1) == top_shap).mean() > 0.7
    assert np.mean([top_shap[i] in top3_path[i] for i in range(len(test))]) > 0.9


def test_reasons_name_the_planted_drivers(fitted) -> None:
    """Customers long inactive are told so; customers with many complaints hear about complaints."""
    model, _, test = fitted
    scored = score_frame(model, test, chunk_rows=500)
    assert len(scored) == len(test) and scored["churn_probability"].between(0, 1).all()
    reasons = scored[["reason_1", "reason_2", "reason_3"]].fillna("")
    inactive = test["days_since_last_event"] > 80
    mention = reasons.apply(lambda r: any("activity" in x for x in r), axis=1)
    assert inactive.sum() > 20 and mention[inactive].mean() > 0.8
    complainers = test["complaints_90d"] >= 3
    said = reasons.apply(lambda r: any("complain" in x for x in r), axis=1)
    assert complainers.sum() > 5 and said[complainers].mean() > 0.8
    # Chunking never changes a result.
    again = score_frame(model, test, chunk_rows=10_000)
    pd.testing.assert_frame_equal(scored, again)


def test_render_reason_fills_context_and_handles_missing_values() -> None:
    f = Feature("days_since_last_event", "engagement", "days since the last product activity",
                reason="no activity in {value:.0f} days (usually every {event_gap_typical_days:.0f})",
                reason_missing="no product activity on record")
    assert render_reason(f, {"days_since_last_event": 41.0, "event_gap_typical_days": 3.2}) == \
        "no activity in 41 days (usually every 3)"  # this test's own template, without units
    assert render_reason(f, {"days_since_last_event": 41.0, "event_gap_typical_days": float("nan")}) == \
        "no activity in 41 days"
    assert render_reason(f, {"days_since_last_event": None}) == "no product activity on record"
    cat = Feature("plan", "profile", "customer plan", kind="categorical", reason="plan: {value}")
    assert render_reason(cat, {"plan": "basic"}) == "plan: basic"


def test_only_risk_raising_features_become_reasons() -> None:
    feats = [Feature(n, "x", n, reason=f"{n}={{value:.0f}}") for n in ("a", "b", "c", "d")]
    X = pd.DataFrame({"a": [1.0, 1.0], "b": [2.0, 2.0], "c": [3.0, 3.0], "d": [4.0, 4.0]})
    contrib = pd.DataFrame({"a": [0.5, -0.1], "b": [0.9, -0.2], "c": [-0.3, 0.0], "d": [0.1, -0.5],
                            "bias": [-2.0, -2.0]})
    r = reason_codes(feats, X, contrib)
    assert list(r.iloc[0]) == ["b=2", "a=1", "d=4", "b", "a", "d"]
    assert r.iloc[1].isna().all()


_TEMPLATES = [
    "no activity in {value:.0f} days (usually every {gap:.0f})",
    "spent {value:,.2f} ({share:.0%} discounted)",
    "plan: {value}",
    "{value!r} then {gap}",
    "value {value:.1f} and gap {gap:.0f} outside parens",
    "broken {value",
    "{0} positional",
    "{value.real:.0f} attribute",
    "0: none at all || 1: just one ({gap:.0f hour|hours}) || {value:.1f thing|things} ({gap:,.0f day|days})",
    "1: a single one || {value:+.0%} change",
    "0: nothing || {value!r} as repr",
    "{value:.0f bad spec|x} and {gap:q unit|units}",
    None,
]
_VALUES = [0.0, 1.0, 2.5, -3.25, 41.0, 1234567.891, float("nan"), None, "basic", "Ärger", 7, True, pd.NA]


@pytest.mark.parametrize("template", _TEMPLATES)
def test_render_many_gives_the_same_text_as_render_reason_row_by_row(template) -> None:
    """The vectorised renderer is only an optimisation: every row's text equals the row-by-row one."""
    rng = np.random.default_rng(5)
    n = 400
    pick = lambda: np.array([_VALUES[i] for i in rng.integers(0, len(_VALUES), n)], dtype=object)
    cols = {"x": pick(), "gap": pick(), "share": pick()}
    floats = {"x": rng.choice([0.0, 3.0, 41.5, np.nan], n), "gap": rng.choice([2.0, np.nan, 7.25], n),
              "share": rng.random(n)}
    f = Feature("x", "t", "a test feature", reason=template, reason_missing=None)
    for data in (cols, floats):
        got = render_many(f, data)
        want = [render_reason(f, {k: v[i] for k, v in data.items()}) for i in range(n)]
        assert list(got) == want


def test_top_positive_matches_a_stable_sort_including_ties() -> None:
    """The compiled top-k picks what sorting by (-value, column) would, and never a non-positive value."""
    from churn.compiled import kernel_input
    from churn.scoring.reasons import _top_positive

    rng = np.random.default_rng(9)
    c = rng.choice([-1.0, 0.0, 0.25, 0.5, 0.5, 1.0, np.nan], size=(3000, 9))  # many exact ties
    c[:50] = -1.0  # rows without any risk-raising feature
    for k in (1, 3, 9):
        got = _top_positive(kernel_input(c, np.float64), c.shape[1], k)  # as reason_codes passes it
        masked = np.where(c > 0, c, -np.inf)
        want = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        want = np.where(np.take_along_axis(masked, want, axis=1) > -np.inf, want, -1)
        np.testing.assert_array_equal(got, want)
