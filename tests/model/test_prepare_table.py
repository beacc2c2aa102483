"""Bring-your-own feature tables: target parsing, text/number columns, blanks, ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from churn.errors import ChurnError
from churn.training.table import parse_number_text, prepare_table


def _table(target):
    n = len(target)
    return pd.DataFrame({
        "account": ["007", "008", "009", "010"][:n],
        "left": target,
        "plan": ["gold", "silver", None, " gold "][:n],
        "spend": ["1.5", "", "3", "NA"][:n],
        "visits": [1, 2, np.nan, 4][:n],
        "vip": ["yes", "no", "", "YES"][:n],
    })


@pytest.mark.parametrize("target,expected", [
    (["yes", "No", "YES", "no"], [1, 0, 1, 0]),
    (["true", "False", "TRUE", "false"], [1, 0, 1, 0]),
    ([1, 0, 1, 0], [1, 0, 1, 0]),
    (["1", "0", "1.0", "0"], [1, 0, 1, 0]),
    ([True, False, True, False], [1, 0, 1, 0]),
])
def test_target_forms(target, expected):
    frame, _ = prepare_table(_table(target), "left", "account")
    assert frame["left"].tolist() == expected


def test_bad_target_names_column_and_rows():
    with pytest.raises(ChurnError, match=r"target column 'left'.*'maybe'.*row 2 \(account='008'"):
        prepare_table(_table(["yes", "maybe", "no", "yes"]), "left", "account")
    with pytest.raises(ChurnError, match="target column 'left'"):
        prepare_table(_table(["yes", None, "no", "yes"]), "left", "account")


def test_columns_become_features():
    from churn.preparation import Preparation

    raw, feats = prepare_table(_table(["yes", "no", "yes", "no"]), "left", "account")
    frame = raw[["account"]].join(Preparation(feats, infer=True).fit(raw).clean(raw))  # read as the model reads
    kinds = {f.name: f.kind for f in feats}
    assert kinds == {"plan": "categorical", "spend": "numeric", "visits": "numeric", "vip": "numeric"}
    assert frame["account"].tolist() == ["007", "008", "009", "010"]  # ids stay text
    assert frame["plan"].tolist() == ["gold", "silver", None, "gold"]
    assert frame["spend"].tolist()[:1] == [1.5] and np.isnan(frame["spend"].iloc[1])
    assert frame["spend"].iloc[2] == 3.0 and np.isnan(frame["spend"].iloc[3])
    assert np.isnan(frame["visits"].iloc[2])
    assert frame["vip"].iloc[0] == 1.0 and frame["vip"].iloc[1] == 0.0 and np.isnan(frame["vip"].iloc[2])
    assert all(f.description for f in feats)


def test_number_text_variants():
    assert parse_number_text(pd.Series(["1,5", "2,25", ""])).tolist()[:2] == [1.5, 2.25]
    assert parse_number_text(pd.Series(["1,234.5", "12", None])).tolist()[:2] == [1234.5, 12.0]
    assert parse_number_text(pd.Series(["-3", "+4.5e1", " 7 "])).tolist() == [-3.0, 45.0, 7.0]
    assert parse_number_text(pd.Series(["gold", "1"])) is None


def test_time_column_and_keys():
    df = _table(["yes", "no", "yes", "no"]).assign(snap=["2025-01-01", "2025-01-01", "2025-02-01", "2025-02-01"])
    frame, feats = prepare_table(df, "left", "account", time_col="snap")
    assert str(frame["snap"].dtype).startswith("datetime64") and "snap" not in {f.name for f in feats}
    with pytest.raises(ChurnError, match="time column 'snap'"):
        prepare_table(df.assign(snap=["2025-01-01", "soon", "x", "2025-02-01"]), "left", "account", time_col="snap")
    with pytest.raises(ChurnError, match="id column 'customer'"):
        prepare_table(df, "left", "customer")
    dup = df.assign(account=["1", "1", "2", "3"], snap="2025-01-01")
    with pytest.raises(ChurnError, match="duplicated"):
        prepare_table(dup, "left", "account", time_col="snap")


def test_prepared_table_trains_a_model():
    from churn.training.model import ChurnModel

    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    df = pd.DataFrame({"id": np.arange(n), "y": np.where(rng.random(n) < 1 / (1 + np.exp(-2 * x)), "yes", "no"),
                       "x": [f"{v:.3f}" for v in x], "segment": rng.choice(["a", "b"], n)})
    frame, feats = prepare_table(df, "y", "id")
    m = ChurnModel(feats, {"num_leaves": 4, "min_child_samples": 10}, num_boost_round=30, n_jobs=1)
    m.fit(frame, frame["y"])
    p = m.predict_risk(frame)
    assert np.corrcoef(p, x)[0, 1] > 0.5


def test_number_styles_read_at_scoring_and_only_bad_values_named():
    from churn.features.registry import Feature
    from churn.preparation import Preparation

    fee = [Feature("fee", "t", "fee")]
    plain = Preparation(fee, infer=True).fit(pd.DataFrame({"fee": ["19.99", "5.00", "7.5"] * 10}))
    # another export's style is harmless: decimal commas, European groups, thousands separators
    got = plain.transform(pd.DataFrame({"fee": ["19,99", "1.234,5", "5"]})).ravel()
    assert got.tolist() == [19.99, 1234.5, 5.0]
    assert plain.transform(pd.DataFrame({"fee": ["1,234.5", "12"]})).ravel().tolist() == [1234.5, 12.0]
    # one unreadable value is reported alone, with its row
    with pytest.raises(ChurnError, match=r"column 'fee'.*\(1 rows\); e\.g\. row 2: 'abc'"):
        plain.transform(pd.DataFrame({"fee": ["19,99", "abc", "3,5"]}))
    with pytest.raises(ChurnError, match=r"column 'fee'.*'inf'"):
        plain.transform(pd.DataFrame({"fee": ["1.5", "inf"]}))
    # a column learnt as European reads "1.234" as a thousand and more, not as one point two
    euro = Preparation(fee, infer=True).fit(pd.DataFrame({"fee": ["1.234,5", "12,5"] * 5}))
    assert euro.rules_[0].text_format == "european"
    assert euro.transform(pd.DataFrame({"fee": ["1.234", "7,25"]})).ravel().tolist() == [1234.0, 7.25]


def test_plain_numbers_read_alike_as_text_of_either_kind():
    """Arrow reads a string column's plain numbers (its fast path); pandas reads the same text held as objects,
    or a column Arrow refuses (digits of another script): both must read what Python's float() reads, signs
    and overflow included, and what is not a number as NaN."""
    from churn.preparation import parse_numbers

    raw = ["+1", "-1", "1.", ".5", "1e5", "1E+05", "007", "-.5e-3", "0.1", "-0", "1e400", "+7e23",
           "123456789012345678901234567890", "abc", "1,5"]
    want = [float(v) if v not in ("abc", "1,5") else np.nan for v in raw]
    for text in (pd.Series(raw, dtype="str"), pd.Series(raw, dtype=object),
                 pd.Series([*raw, "\u0661"], dtype="str")):  # ARABIC-INDIC DIGIT ONE: Arrow refuses the column
        got = parse_numbers(text, "plain").to_numpy()
        np.testing.assert_array_equal(got[: len(raw)], np.array(want))
        assert np.signbit(got[raw.index("-0")])
        assert len(got) == len(raw) or np.isnan(got[-1])


def test_stripped_text_writes_values_as_str_does():
    """Values that are not text are written as str() writes them, bytes and lone surrogates included (Arrow
    would decode the one and refuse the other); text is stripped of what str.strip() strips."""
    from churn.preparation import stripped_text

    values = [b"\xf9\x01", b"yes", "\ud800", 1.5, 2, True, None, np.nan, " a\xa0", "\u3000b\t"]
    got = stripped_text(pd.Series(values, dtype=object)).tolist()
    assert got == ["b'\\xf9\\x01'", "b'yes'", "\ud800", "1.5", "2", "True", "", "", "a", "b"]
    text = pd.Series([" a\xa0", None, "\u3000b\t"], dtype="str")
    assert stripped_text(text).tolist() == ["a", "", "b"]
