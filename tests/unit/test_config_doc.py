"""docs/configuration.md lists every key of the config schema, with a meaning, and its examples are valid.

Regenerate after changing the schema: `CHURN_UPDATE_DOCS=1 .venv/bin/python -m pytest tests/unit/test_config_doc.py`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from churn.config import Config
from churn.config_docs import MEANINGS, _models, config_markdown, meanings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_configuration_doc_is_in_sync() -> None:
    text = config_markdown()
    if os.environ.get("CHURN_UPDATE_DOCS"):
        DOC.write_text(text, encoding="utf-8")
    assert DOC.is_file() and DOC.read_text(encoding="utf-8") == text, (
        "docs/configuration.md is out of date: CHURN_UPDATE_DOCS=1 .venv/bin/python -m pytest "
        "tests/unit/test_config_doc.py")


def test_every_key_is_listed_with_a_meaning() -> None:
    text = DOC.read_text(encoding="utf-8")
    for path, model in _models(Config):
        assert f"## `{path or '(top level)'}`" in text
        for name, meaning in meanings(model).items():
            if name == "source_file":
                continue
            assert meaning, f"{model.__name__}.{name} has no meaning: comment it in churn/config/schema.py"
            assert f"| `{name}` |" in text


def test_supplementary_meanings_name_real_keys() -> None:
    fields = {f"{m.__name__}.{f}" for _, m in _models(Config) for f in m.model_fields}
    assert sorted(set(MEANINGS) - fields) == []


def test_every_yaml_example_is_a_valid_config() -> None:
    """Each section's defaults, pasted into a config file as shown, validate and equal the defaults."""
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 10
    for block in blocks:
        cfg = Config.model_validate(yaml.safe_load(block))
        assert cfg == Config(), block
