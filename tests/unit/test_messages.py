"""Offer messages: language choice and fallback, safe templates, text fidelity (Persian)."""

from __future__ import annotations

import pandas as pd

from churn.scoring.messages import pick_language, render_messages, render_template, template_fields

PERSIAN = "سلام {name}، ۲۰٪ تخفیف برای طرح {plan} شما"
TEMPLATES = {
    "discount": {
        "en": "Hi {first_name}, 20% off your {plan} plan.",
        "de": "Hallo {first_name}, 20 % Rabatt auf Ihren Tarif {plan}.",
        "fa": PERSIAN,
    },
    "call": {"en": "Call {name} about {plan}."},
}


def frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, index=[f"r{i}" for i in range(len(rows))])


def test_rendered_in_the_customer_language_with_fallback_counted():
    df = frame(
        [
            {"incentive": "discount", "language": "de", "name": "Jürgen Groß", "plan": "premium"},
            {"incentive": "discount", "language": "DE-at", "name": "Käthe", "plan": "basic"},
            {"incentive": "discount", "language": "sl", "name": "Luka Kovačič", "plan": "basic"},
            {"incentive": "discount", "language": "sl", "name": "Ana", "plan": "basic"},
            {"incentive": "call", "language": "de", "name": "Jörg", "plan": "basic"},
            {"incentive": "discount", "language": None, "name": "Emma", "plan": "basic"},
            {"incentive": None, "language": "de", "name": "Nobody", "plan": "basic"},
        ]
    )
    res = render_messages(df, TEMPLATES)
    assert res.message["r0"] == "Hallo Jürgen, 20 % Rabatt auf Ihren Tarif premium."
    assert res.language["r1"] == "de"  # regional variant matches the base language
    assert res.message["r2"] == "Hi Luka, 20% off your basic plan." and res.language["r2"] == "en"
    assert res.message["r4"] == "Call Jörg about basic." and res.language["r4"] == "en"
    assert res.language["r5"] == "en"  # unknown language: the default, not a missing translation
    assert res.message["r6"] is None and res.language["r6"] is None
    assert dict(res.missing_translations) == {"sl": 2, "de": 1}
    assert list(res.message.index) == list(df.index)


def test_persian_rendered_unchanged():
    df = frame([{"incentive": "discount", "language": "fa", "name": "سارا احمدی", "plan": "طلایی"}])
    res = render_messages(df, TEMPLATES)
    expected = "سلام سارا احمدی، ۲۰٪ تخفیف برای طرح طلایی شما"
    assert res.message.iloc[0] == expected
    assert res.message.iloc[0].encode("utf-8") == expected.encode("utf-8")  # no normalisation or reordering
    assert res.language.iloc[0] == "fa"


def test_missing_values_leave_no_stray_punctuation():
    df = frame([{"incentive": "discount", "language": "en", "name": None, "plan": None}])
    assert render_messages(df, TEMPLATES).message.iloc[0] == "Hi, 20% off your plan."


def test_templates_are_safe():
    text, unknown, fallback = render_template("Hi {name}, code {voucher}!", {"name": "Ana"})
    assert text == "Hi Ana, code!" and unknown == {"voucher"} and not fallback
    # Not valid format syntax: plain substitution by name, the rest of the text kept as written.
    assert render_template("Hi {name, broken {", {"name": "Ana"}) == ("Hi {name, broken {", set(), True)
    assert render_template("Hi {name} {", {"name": "Ana"}) == ("Hi Ana {", set(), True)
    text, _, _ = render_template("Fee {monthly_fee:.2f} {currency}", {"monthly_fee": 9.5, "currency": "EUR"})
    assert text == "Fee 9.50 EUR"
    text, _, _ = render_template("Fee {monthly_fee:.2f} EUR", {"monthly_fee": None})
    assert text == "Fee EUR"  # a format spec on a missing value: the field left out, spacing tidied
    # Positional fields are not filled; attribute and index access never reach the value's attributes
    # (no method reprs, no '<class ...>'): the field is substituted by its name's value.
    assert render_template("Hi {0} {name.upper}", {"name": "Ana"}) == ("Hi {0} Ana", set(), True)
    assert render_template("Hi {name.__class__}", {"name": "Ana"}) == ("Hi Ana", set(), True)
    assert render_template("{name.__init__.__globals__}", {"name": "Ana"})[0] == "Ana"
    assert render_template("Code {code[0]}", {"code": "XY"})[0] == "Code XY"
    assert template_fields("a {x} {y:.1f} {z[0]}") == ["x", "y", "z"]
    assert template_fields("a {x") is None


def test_unknown_placeholders_and_incentives_without_messages_are_reported():
    df = frame(
        [
            {"incentive": "odd", "language": "en", "name": "A"},
            {"incentive": "silent", "language": "en", "name": "B"},
        ]
    )
    res = render_messages(df, {"odd": {"en": "Hi {name}, use {voucher}"}, "silent": {}})
    assert res.message.iloc[0] == "Hi A, use"
    assert res.unknown_placeholders == {"odd": ["voucher"]}
    assert res.incentives_without_messages == ["silent"] and res.message.iloc[1] is None


def test_pick_language():
    assert pick_language("tr", ["en", "de"], "en") == ("en", True)
    assert pick_language(" DE_ch ", ["en", "de"], "en") == ("de", False)
    assert pick_language(None, ["en"], "en") == ("en", False)
    assert pick_language("tr", ["fa", "de"], "en") == ("de", True)  # no default: first available
    assert pick_language("tr", [], "en") == (None, False)
