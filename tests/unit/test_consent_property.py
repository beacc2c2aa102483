"""Marketing consent in every common encoding, property-tested (issue 16).

The oracle is a hand-written table of spellings with the answer a person would give; it does not use the
module's word list. Unknown text and blanks are never consent. Through `plan_retention` and the segment
files: a customer without consent is never in a contact segment, whatever else is true of them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn.config import ChannelsConfig, Config, Incentive, IncentivesConfig
from churn.scoring.allocation import plan_retention
from churn.scoring.rules import has_consent
from churn.scoring.segments import build_segments

YES = ["yes", "Yes", "YES", " yes ", "y", "Y", "true", "True", "TRUE", "t", "T", "1", "1.0", "1.00", " 1 ",
       True, 1, 1.0, np.int64(1), np.float64(1.0), np.bool_(True)]
NO = ["no", "No", "NO", "n", "N", "false", "False", "FALSE", "f", "0", "0.0", "", "   ", False, 0, 0.0,
      None, float("nan"), np.bool_(False), pd.NA]
# Text a person would not read as a clear yes: never consent.
UNCLEAR = ["maybe", "unknown", "?", "-", "n/a", "2", "-1", "yes please", "y es", "tru", "0.5", "10", "ja", "si"]


def _expected(v: object) -> bool:
    """The hand-written answer for a drawn value."""
    if any(v is y or (type(v) is type(y) and v == y) for y in YES):
        return True
    return False


values = st.one_of(st.sampled_from(YES), st.sampled_from(NO), st.sampled_from(UNCLEAR),
                   st.text(alphabet="abcdefnoqrsuvwxyz ?-.", max_size=8))


@given(st.lists(values, min_size=1, max_size=30))
def test_mixed_object_columns(drawn: list[object]) -> None:
    # Random letters can spell a yes-word ("y", "yes", "t", "true"): the oracle for them is written out.
    spelled_yes = {"y", "yes", "t", "true"}
    expected = [_expected(v) or (isinstance(v, str) and v.strip().lower() in spelled_yes) for v in drawn]
    got = has_consent(pd.DataFrame({"marketing_consent": pd.Series(drawn, dtype=object)}))
    assert got.tolist() == expected, list(zip(drawn, got, expected))


@given(st.lists(st.one_of(st.booleans(), st.none()), min_size=1, max_size=30),
       st.sampled_from(["bool", "boolean", "Int64", "float", "string", "category"]))
def test_typed_columns(flags: list[bool | None], dtype: str) -> None:
    # The same yes/no/blank stored the ways pandas and Parquet hand them over.
    if dtype == "bool":
        flags = [bool(f) for f in flags]
        col = pd.Series(flags, dtype=bool)
    elif dtype == "boolean":
        col = pd.Series(flags, dtype="boolean")
    elif dtype == "Int64":
        col = pd.Series([None if f is None else int(f) for f in flags], dtype="Int64")
    elif dtype == "float":
        col = pd.Series([np.nan if f is None else float(f) for f in flags], dtype=float)
    elif dtype == "string":
        col = pd.Series([None if f is None else ("yes" if f else "no") for f in flags], dtype="string")
    else:
        col = pd.Series([None if f is None else ("Y" if f else "N") for f in flags], dtype="category")
    got = has_consent(pd.DataFrame({"marketing_consent": col}))
    assert got.tolist() == [f is True for f in flags]


def test_no_consent_column_means_nobody_is_contacted() -> None:
    assert has_consent(pd.DataFrame({"customer_id": ["1", "2"]})).tolist() == [False, False]


def _config() -> Config:
    offer = Incentive(name="offer", kind="gift", unit_cost=0.5, save_rate={"critical": 0.5, "high": 0.5,
                                                                            "medium": 0.5, "low": 0.5},
                      messages={"en": "Hi {first_name}"})
    return Config(incentives=IncentivesConfig(budget=1e9, control_share=0.0, cooldown_days=0,
                                              channels=ChannelsConfig(contact_cost={"email": 0.01}),
                                              catalogue=[offer]))


@settings(max_examples=settings.default.max_examples * 3 // 4, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(values, st.floats(0.3, 1.0)), min_size=1, max_size=25))
def test_customers_without_consent_are_never_in_a_contact_segment(rows: list[tuple[object, float]]) -> None:
    # Everyone is worth an offer (high risk, high value, cheap gift, unlimited budget): consent alone decides.
    spelled_yes = {"y", "yes", "t", "true"}
    consent = [_expected(v) or (isinstance(v, str) and v.strip().lower() in spelled_yes) for v, _ in rows]
    df = pd.DataFrame({
        "customer_id": [f"C{i:03d}" for i in range(len(rows))],
        "as_of": pd.Timestamp("2025-03-01"),
        "churn_probability": [p for _, p in rows],
        "monthly_fee": 50.0,
        "language": "en",
        "marketing_consent": pd.Series([v for v, _ in rows], dtype=object),
    })
    plan = plan_retention(df, _config()).customers
    in_segments = set()
    for seg in build_segments(plan):
        in_segments |= set(seg.rows["customer_id"])
    allowed = {f"C{i:03d}" for i, ok in enumerate(consent) if ok}
    assert in_segments == allowed
    blocked = plan.loc[~plan["customer_id"].isin(allowed)]
    assert (blocked["no_contact_reason"] == "no marketing consent").all()
    assert not blocked["contact"].any()
