"""The whole configuration is validated when it is loaded (issue 16): tiers, incentive catalogue, contact
rules and channels. A bad setting fails in milliseconds with the key to fix, not after features are built
and a model has scored."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from churn.config import DEFAULT_CONFIG, Config, load_config
from churn.errors import ChurnError

OFFER = {"name": "gift", "kind": "gift", "unit_cost": 5.0, "save_rate": {"critical": 0.2, "high": 0.1}}


def _load(tmp_path: Path, sections: dict) -> Config:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(sections, allow_unicode=True), encoding="utf-8")
    return load_config(path)


def _error(tmp_path: Path, sections: dict) -> str:
    with pytest.raises(ChurnError) as info:
        _load(tmp_path, sections)
    return str(info.value)


def test_the_shipped_configs_are_valid() -> None:
    cfg = load_config(DEFAULT_CONFIG)
    assert len(cfg.incentives.catalogue) == 6 and [lv.name for lv in cfg.tiers.levels][0] == "critical"


@pytest.mark.parametrize(("sections", "key", "words"), [
    ({"tiers": {"levels": [{"name": "hot", "min_probability": 0.2}, {"name": "warm", "min_probability": 0.5},
                           {"name": "rest", "min_probability": 0}]}},
     "tiers.levels[1].min_probability", "above the riskier tier's 0.2"),
    ({"tiers": {"levels": [{"name": "hot", "min_probability": 1.5}, {"name": "rest", "min_probability": 0}]}},
     "tiers.levels[0].min_probability", "must be in [0, 1]"),
    ({"tiers": {"levels": [{"name": "Hot", "min_probability": 0.5}, {"name": "hot", "min_probability": 0}]}},
     "tiers.levels[1].name", "listed twice"),
    ({"tiers": {"method": "quantile", "levels": [{"name": "a", "top_share": 0.3}, {"name": "b", "top_share": 0.1},
                                                 {"name": "c", "top_share": 1}]}},
     "tiers.levels[1].top_share", "below the riskier tier's 0.3"),
    ({"tiers": {"levels": [{"name": "a", "top_share": 0.1}, {"name": "b", "min_probability": 0}]}},
     "tiers.levels[0].top_share", "tiers.method: quantile"),
    ({"tiers": {"levels": []}}, "tiers.levels", "at least one tier"),
    ({"incentives": {"control_share": 1.0}}, "incentives.control_share", "[0, 1)"),
    ({"incentives": {"budget": -5}}, "incentives.budget", "non-negative"),
    ({"incentives": {"cooldown_days": -1}}, "incentives.cooldown_days", "must not be negative"),
    ({"incentives": {"currency": " "}}, "incentives.currency", "must not be empty"),
    ({"incentives": {"channels": {"contact_cost": {"email": -0.1}}}},
     "incentives.channels.contact_cost.email", "non-negative"),
    ({"incentives": {"channels": {"default": "app-push", "contact_cost": {"app_push": 0.01}}}},
     "incentives.channels.default", "priced as 'app_push'"),
    ({"incentives": {"channels": {"by_language": {"de": ""}}}}, "incentives.channels.by_language.de",
     "must name a channel"),
    ({"incentives": {"catalogue": [OFFER, OFFER]}}, "incentives.catalogue[1].name", "repeats"),
    ({"incentives": {"catalogue": [{**OFFER, "save_rate": {"critcal": 0.2}}]}},
     "incentives.catalogue[0].save_rate.critcal", "no tier is called 'critcal'"),
    ({"incentives": {"catalogue": [{**OFFER, "save_rate": {"high": 1.2}}]}},
     "incentives.catalogue[0].save_rate.high", "must be in [0, 1]"),
    ({"incentives": {"catalogue": [{**OFFER, "unit_cost": -1}]}}, "incentives.catalogue[0].unit_cost",
     "non-negative"),
    ({"incentives": {"catalogue": [{**OFFER, "max_customers": -3}]}}, "incentives.catalogue[0].max_customers",
     "must not be negative"),
    ({"incentives": {"catalogue": [{**OFFER, "eligible": {"tiers": ["vip"]}}]}},
     "incentives.catalogue[0].eligible.tiers", "no tier is called 'vip'"),
    ({"incentives": {"catalogue": [{**OFFER, "eligible": {"min_value": 500, "max_value": 100}}]}},
     "incentives.catalogue[0].eligible", "nobody could get it"),
    ({"incentives": {"catalogue": [{**OFFER, "save_rate": {}}]}}, "incentives.catalogue[0].save_rate",
     "at least one tier"),
    ({"sources": {"tables": {"orders": {"csv_delimiter": "#"}}}}, "sources.tables.orders.csv_delimiter", ""),
    ({"sources": {"tables": {"orders": {"encoding": "utf-9"}}}}, "sources.tables.orders.encoding",
     "unknown encoding 'utf-9'"),
    ({"sources": {"tables": {"orders": {"decimal_separator": ",", "thousands_separator": ","}}}},
     "sources.tables.orders", "must differ"),
])
def test_bad_settings_fail_at_load_naming_the_key(tmp_path: Path, sections: dict, key: str, words: str) -> None:
    msg = _error(tmp_path, sections)
    assert f"{key}" in msg and words in msg, msg
    assert str(tmp_path / "config.yaml") in msg


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    msg = _error(tmp_path, {"incentives": {"budget": -1, "control_share": 2,
                                           "catalogue": [{**OFFER, "save_rate": {"x": 0.1}}]}})
    for key in ("incentives.budget", "incentives.control_share", "incentives.catalogue[0].save_rate.x"):
        assert key in msg
    assert msg.count("\n  - ") == 3


def test_a_bad_catalogue_stops_the_cli_before_any_data_is_read(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from churn.cli import app

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump({"incentives": {"catalogue": [{**OFFER, "save_rate": {"critcal": 0.2}}]}}))
    out = tmp_path / "out"
    # The data folder does not even exist: the config error must come first.
    result = CliRunner().invoke(app, ["score", "--config", str(cfg), "--data", str(tmp_path / "nowhere"),
                                      "--as-of", "2025-01-01", "--model", str(tmp_path / "no-model"),
                                      "--out", str(out)])
    assert result.exit_code != 0
    assert "save_rate.critcal" in result.output and "Traceback" not in result.output
    assert not out.exists()
