"""docs/features.md lists exactly the features the builders declare (default configuration, every column).

Regenerate after changing a feature: `CHURN_UPDATE_DOCS=1 .venv/bin/pytest tests/data/test_features_doc.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

from conftest import build, make_config, write_source

from churn.features.docs import registry_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "features.md"

# One row per table with every optional column, so every optional feature is declared.
FULL = {
    "customers": [{"customer_id": "001", "signup_date": "2023-01-01", "cancel_date": None, "plan": "basic",
                   "monthly_fee": 10, "region": "north", "country": "DE", "language": "de", "channel": "email"}],
    "events": [{"customer_id": "001", "timestamp": "2024-05-01", "event_type": "login", "duration_s": 60}],
    "tickets": [{"customer_id": "001", "opened_at": "2024-05-01", "closed_at": "2024-05-02", "is_complaint": True,
                 "satisfaction": 4}],
    "orders": [{"customer_id": "001", "ordered_at": "2024-05-01", "amount": 10, "discount": 1}],
    "surveys": [{"customer_id": "001", "answered_at": "2024-05-01", "score": 9}],
    "fee_changes": [{"customer_id": "001", "changed_at": "2023-01-01", "monthly_fee": 10, "plan": "basic"}],
}


def test_features_doc_is_in_sync(tmp_path):
    config = make_config({"features": {"engagement": {"event_types": ["login"]}}}, btyd=True)
    fs = build(write_source(tmp_path, FULL), ["2024-06-01"], config)
    try:
        registry, types = fs.registry, fs.event_types
    finally:
        fs.ds.con.close()
    text = registry_markdown(registry, types)
    for f in registry:  # every feature is listed (per-event-type ones under their generic name)
        assert f"`{f.name.replace('_login_', '_<type>_')}`" in text
    if os.environ.get("CHURN_UPDATE_DOCS"):
        DOC.write_text(text)
    assert DOC.is_file() and DOC.read_text() == text, (
        "docs/features.md is out of date: CHURN_UPDATE_DOCS=1 .venv/bin/pytest tests/data/test_features_doc.py")
