"""On generated data, the built features show the planted drivers: churners versus stayers at the same as_of."""

from __future__ import annotations

from datetime import date

import pytest

from churn.config import Config
from churn.features.engine import build_training_frame
from churn.generate import generate
from churn.validation import load_source


@pytest.fixture(scope="module")
def frame(tmp_path_factory: pytest.TempPathFactory):
    data = tmp_path_factory.mktemp("planted") / "data"
    generate(4000, date(2024, 1, 1), date(2025, 1, 1), 5, data, events_per_customer=120)
    cfg = Config()
    cfg.engine.threads = 1
    ds = load_source(str(data), cfg)
    try:
        tf = build_training_frame(ds, cfg)
    finally:
        ds.con.close()
    return tf.frame


@pytest.mark.parametrize(
    ("feature", "churners_higher"),
    [
        ("events_30d", False),           # fading engagement
        ("active_days_30d", False),
        ("events_30d_vs_90d", False),    # ... relative to the customer's own usual level
        ("days_since_last_event", True),
        ("complaints_90d", True),        # complaint spikes
        ("open_tickets", True),          # unresolved tickets
        ("orders_90d", False),           # purchases thin out
        ("fee_change_90d", True),        # price increases
        ("survey_last_score", False),
    ],
)
def test_planted_driver_direction(frame, feature: str, churners_higher: bool) -> None:
    means = frame.groupby("churned")[feature].mean()
    assert frame["churned"].sum() > 200
    assert (means[1] > means[0]) == churners_higher, means.to_dict()
