"""Settings a campaign manager gets wrong without noticing (issue 25): a message template with an unknown
placeholder or broken braces, tiers whose last cut point is never applied or that share a cut point. Each is
refused when the config loads, naming the key (and the placeholder), before `churn validate` or `churn score`
does any work; through the command (Typer's runner) and `churn.load_config`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

import churn
from churn.cli import app
from churn.config import DEFAULT_CONFIG
from churn.errors import ChurnError

TIERS = [{"name": "critical", "min_probability": 0.5}, {"name": "high", "min_probability": 0.3},
         {"name": "low", "min_probability": 0.0}]


def offer(**messages: str) -> dict[str, Any]:
    return {"name": "gift", "kind": "gift", "unit_cost": 5.0, "save_rate": {"critical": 0.2},
            "messages": messages}


def write(tmp_path: Path, sections: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(sections, allow_unicode=True), encoding="utf-8")
    return path


def refused(tmp_path: Path, sections: dict[str, Any]) -> str:
    """The error of loading `sections`, through `churn validate`, `churn score` and the API alike."""
    cfg = write(tmp_path, sections)
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "orders.csv").write_text("customer_id,ordered_at,amount\na,2024-01-02,5\n")
    messages = []
    for args in (["validate", "--data", data], ["score", "--data", data, "--as-of", "2024-02-01",
                                                 "--model", tmp_path / "no-model", "--out", tmp_path / "out"]):
        res = CliRunner().invoke(app, [*map(str, args), "--config", str(cfg)])
        assert res.exit_code == 1, res.output
        assert "Traceback" not in res.output and "error:" in res.output
        messages.append(res.output)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ChurnError) as info:
        churn.load_config(cfg)
    messages.append(str(info.value))
    return "\n".join(" ".join(m.split()) for m in messages)


# ------------------------------------------------------------------------------------- message templates
def test_an_unknown_placeholder_is_refused_naming_key_and_placeholder(tmp_path: Path) -> None:
    msg = refused(tmp_path, {"incentives": {"catalogue": [offer(en="Hi {first_name}", de="Hallo {firstname}")]},
                             "tiers": {"levels": TIERS}})
    assert msg.count("incentives.catalogue[0].messages.de: unknown placeholder {firstname}") == 3
    assert "did you mean {first_name}?" in msg and "messages.en" not in msg


def test_a_template_with_broken_braces_is_refused(tmp_path: Path) -> None:
    msg = refused(tmp_path, {"incentives": {"catalogue": [offer(en="Hi {first_name, 500 points {")]},
                             "tiers": {"levels": TIERS}})
    assert msg.count("incentives.catalogue[0].messages.en: not a valid template") == 3
    assert "'Hi {first_name, 500 points {'" in msg and "{{" in msg


@pytest.mark.parametrize(("template", "words"), [
    ("Hi {name.upper}", "placeholder {name.upper}: only plain names"),
    ("Hi {0}", "placeholder {0}: only plain names"),
    ("Fee {monthly_fee:.2f}, hi {name:.2f}", "placeholder {name:.2f}: its format does not fit"),
])
def test_placeholders_that_would_not_render_are_refused(tmp_path: Path, template: str, words: str) -> None:
    with pytest.raises(ChurnError, match=r"incentives\.catalogue\[0\]\.messages\.en") as info:
        churn.load_config(write(tmp_path, {"incentives": {"catalogue": [offer(en=template)]},
                                           "tiers": {"levels": TIERS}}))
    assert words in str(info.value)


def test_good_templates_and_the_shipped_catalogue_load(tmp_path: Path) -> None:
    churn.load_config(DEFAULT_CONFIG)
    ok = "Hi {first_name}, {incentive} for {monthly_fee:.2f} {currency}; {{literal braces}}"
    churn.load_config(write(tmp_path, {"incentives": {"catalogue": [offer(en=ok)]}, "tiers": {"levels": TIERS}}))


# ------------------------------------------------------------------------------------------------- tiers
def test_a_last_tier_with_a_threshold_is_refused(tmp_path: Path) -> None:
    levels = [{"name": "critical", "min_probability": 0.5}, {"name": "low", "min_probability": 0.1}]
    msg = refused(tmp_path, {"tiers": {"levels": levels}})
    assert msg.count("tiers.levels[1].min_probability: the last tier catches everyone else") == 3
    assert "below 0.1" in msg and "set it to 0" in msg


def test_two_tiers_with_one_threshold_are_refused(tmp_path: Path) -> None:
    levels = [{"name": "critical", "min_probability": 0.3}, {"name": "high", "min_probability": 0.3},
              {"name": "low", "min_probability": 0.0}]
    msg = refused(tmp_path, {"tiers": {"levels": levels}})
    assert msg.count("tiers.levels[1].min_probability: 0.3 equals tiers.levels[0]'s") == 3
    assert "'high' would always be empty" in msg


@pytest.mark.parametrize(("tiers", "words"), [
    ({"levels": [{"name": "a", "min_probability": 0.4}, {"name": "b", "min_probability": 0.0},
                 {"name": "c", "min_probability": 0.0}]}, "tiers.levels[2].min_probability: 0 equals"),
    ({"method": "quantile", "levels": [{"name": "a", "top_share": 0.1}, {"name": "b", "top_share": 0.1},
                                       {"name": "c", "top_share": 1.0}]}, "tiers.levels[1].top_share: 0.1 equals"),
    ({"method": "quantile", "levels": [{"name": "a", "top_share": 0.1}, {"name": "b", "top_share": 0.8}]},
     "tiers.levels[1].top_share: the last tier catches everyone else"),
])
def test_other_tier_settings_that_leave_a_tier_empty_or_unapplied(tmp_path: Path, tiers: dict, words: str) -> None:
    with pytest.raises(ChurnError) as info:
        churn.load_config(write(tmp_path, {"tiers": tiers}))
    assert words in str(info.value)
