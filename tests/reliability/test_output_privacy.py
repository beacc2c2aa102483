"""Customer data in outputs: segment files carry only the configured contact columns, scores carry no raw
activity and no names or e-mails, and ids can be replaced by keyed pseudonyms in every output (refused
clearly without a key). Scored for real with the model the reliability fixture trained through the CLI."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pandas as pd
import pytest

from churn.config import load_config
from churn.errors import ChurnError
from churn.scoring.score import SCORE_COLUMNS, score_source, score_table

pytestmark = pytest.mark.slow
AS_OF = "2024-09-01"
MODEL = lambda work: str(work / "models" / "churn-1")  # noqa: E731 - the fixture's CLI-trained bundle
CAMPAIGN = ["language", "message_language", "channel", "incentive", "offer_message", "reason_1", "reason_2",
            "reason_3", "risk_tier", "churn_probability"]


def _config(tmp_path: Path, text: str):
    path = tmp_path / "privacy.yaml"
    path.write_text(text)
    return load_config(path)


def _default_with(section: str, **values):
    """The project's default configuration with some keys of one section changed."""
    cfg = load_config()
    return cfg.model_copy(update={section: getattr(cfg, section).model_copy(update=values)})


def _segments(run_dir: Path) -> pd.DataFrame:
    files = sorted((run_dir / "segments").glob("*.csv"))
    assert files
    return pd.concat([pd.read_csv(f, dtype=str, encoding="utf-8-sig").assign(_file=f.name) for f in files])


def _customers(work: Path) -> pd.DataFrame:
    return pd.read_parquet(work / "data" / "customers.parquet").astype({"customer_id": str})


def test_default_outputs_keep_personal_data_in_segments_only(trained: Path, tmp_path: Path) -> None:
    run = score_source(str(trained / "data"), AS_OF, MODEL(trained), str(tmp_path / "out"), load_config())
    scores = pd.read_parquet(run.out_dir / "scores.parquet")
    customers = _customers(trained)
    # No name, e-mail or raw activity: no model feature, no activity window column, no source column that
    # the plan did not decide on.
    from churn.training.loading import load_model

    features = {f.name for f in load_model(str(trained / "models" / "churn-1")).features_}
    assert not {"name", "email"} & set(scores.columns)
    assert not (features - set(SCORE_COLUMNS)) & set(scores.columns)  # 'channel': the plan's, not the input's
    activity = ("events", "orders", "spend", "sessions", "tickets")
    assert not [c for c in scores.columns if c.split("_")[0] in activity]
    text = set(scores.astype(str).to_numpy().ravel())
    assert not text & set(customers["email"].dropna()) and not text & set(customers["name"].dropna())
    # Segments: the id, name and e-mail (the default contact columns), then the campaign's columns.
    seg = _segments(run.out_dir)
    contact = seg[seg["_file"] != "win_back.csv"]
    assert list(contact.columns[:-1]) == ["customer_id", "name", "email", *CAMPAIGN]
    by_id = customers.set_index("customer_id")
    assert (contact["email"].to_numpy() == by_id.loc[contact["customer_id"], "email"].to_numpy()).all()
    assert not {"plan", "region", "country", "monthly_fee", "marketing_consent"} & set(seg.columns)


def test_configured_contact_columns_are_the_only_ones(trained: Path, tmp_path: Path) -> None:
    cfg = _default_with("incentives", contact_columns=["email"])
    run = score_source(str(trained / "data"), AS_OF, MODEL(trained), str(tmp_path / "out"), cfg)
    seg = _segments(run.out_dir)
    contact = seg[seg["_file"] != "win_back.csv"]
    assert list(contact.columns[:-1]) == ["customer_id", "email", *CAMPAIGN]
    assert "name" not in seg.columns
    # A configured column the customers table lacks is said, not an error.
    cfg = _default_with("incentives", contact_columns=["phone"])
    run = score_source(str(trained / "data"), AS_OF, MODEL(trained), str(tmp_path / "o2"), cfg)
    assert any("phone not in the customers table" in n for n in run.notices), run.notices
    assert list(_segments(run.out_dir).columns[:2]) == ["customer_id", "language"]


@pytest.mark.parametrize(("value", "words"), [
    ("[name, name]", "listed twice: name"),
    ("[churn_probability]", "always in a segment file"),
    ("['']", "empty"),
])
def test_bad_contact_columns_fail_at_load(tmp_path: Path, value: str, words: str) -> None:
    with pytest.raises(ChurnError) as err:
        _config(tmp_path, f"incentives: {{contact_columns: {value}}}\n")
    assert "incentives.contact_columns" in str(err.value) and words in str(err.value)


def test_pseudonymised_ids_in_every_output(trained: Path, tmp_path: Path, monkeypatch) -> None:
    cfg = _default_with("scoring", pseudonymise_ids=True)
    model, data = str(trained / "models" / "churn-1"), str(trained / "data")
    monkeypatch.delenv("CHURN_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ChurnError, match="scoring.pseudonymise_ids is on but CHURN_PSEUDONYM_KEY is not set"):
        score_source(data, AS_OF, model, str(tmp_path / "refused"), cfg)
    assert not (tmp_path / "refused").exists()

    plain = score_source(data, AS_OF, model, str(tmp_path / "plain"), load_config())
    monkeypatch.setenv("CHURN_PSEUDONYM_KEY", "s3cret")
    run = score_source(data, AS_OF, model, str(tmp_path / "pseudo"), cfg)
    raw = pd.read_parquet(plain.out_dir / "scores.parquet")
    got = pd.read_parquet(run.out_dir / "scores.parquet")

    def pseudonym(cid: str) -> str:  # HMAC-SHA256 under the key, by hand
        return "p" + hmac.new(b"s3cret", cid.encode(), hashlib.sha256).hexdigest()[:24]

    expected = raw.assign(customer_id=raw["customer_id"].map(pseudonym))
    pairs = expected.set_index("customer_id")["churn_probability"]
    assert set(got["customer_id"]) == set(pairs.index)
    pd.testing.assert_series_equal(got.set_index("customer_id")["churn_probability"],
                                   pairs.loc[got["customer_id"]], check_names=False)
    raw_ids = set(raw["customer_id"])
    seg = _segments(run.out_dir)
    assert seg["customer_id"].str.fullmatch(r"p[0-9a-f]{24}").all() and not raw_ids & set(seg["customer_id"])
    assert set(seg["customer_id"]) <= set(got["customer_id"])
    alerts = pd.read_csv(run.out_dir / "alerts.csv", dtype=str)
    assert not raw_ids & set(alerts.get("customer_id", pd.Series(dtype=str)))
    report = (run.out_dir / "report.html").read_text()
    assert not [c for c in raw["customer_id"].head(50) if f">{c}<" in report]
    assert json.loads((run.out_dir / "summary.json").read_text())["summary"]["contacted"] == len(
        seg[seg["_file"] != "win_back.csv"])


def test_scoring_a_table_drops_its_unused_columns(trained: Path, tmp_path: Path) -> None:
    from churn.training.loading import load_model

    model = load_model(str(trained / "models" / "churn-1"))
    table = pd.read_parquet(_features(trained, tmp_path)).drop(columns=["as_of"])
    table = table.assign(raw_clicks=range(len(table)), email="x@example.com")
    table.to_csv(tmp_path / "ready.csv", index=False)
    run = score_table(str(tmp_path / "ready.csv"), "customer_id", str(trained / "models" / "churn-1"),
                      str(tmp_path / "out"), load_config(), as_of=AS_OF)
    scores = pd.read_parquet(run.out_dir / "scores.parquet")
    assert not {"raw_clicks", "email"} & set(scores.columns)
    assert not ({f.name for f in model.features_} - set(SCORE_COLUMNS)) & set(scores.columns)
    assert len(scores) == len(table)


def _features(work: Path, tmp_path: Path) -> Path:
    from conftest import run_churn

    out = tmp_path / "features.parquet"
    r = run_churn(work, "features", "--data", "data", "--as-of", AS_OF, "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out
