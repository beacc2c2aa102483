"""A scoring run folder read back (`churn.scoring.run_folder`): every reader (the campaign measurement, the
backtest) gives the same error naming the file that is missing or damaged."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from churn.campaigns.run import campaign_of_run
from churn.errors import ChurnError
from churn.monitoring.backtest import read_run as backtest_read_run
from churn.scoring.run_folder import read_scoring_run, read_summary


def _folder(tmp_path: Path, summary: object = None, scores: bytes | None = None) -> Path:
    run = tmp_path / "2025-03-01"
    run.mkdir()
    if summary is not None:
        (run / "summary.json").write_text(summary if isinstance(summary, str) else json.dumps(summary))
    if scores is not None:
        (run / "scores.parquet").write_bytes(scores)
    return run


def _parquet(tmp_path: Path) -> bytes:
    f = tmp_path / "x.parquet"
    pd.DataFrame({"customer_id": ["007", "012"], "churn_probability": [0.25, 0.5], "contact": [True, False],
                  "incentive": ["discount", None], "holdout": [False, True],
                  "would_be_incentive": ["discount", "gift"], "risk_tier": ["high", "high"]}).to_parquet(f)
    return f.read_bytes()


def test_a_whole_folder_reads_back(tmp_path):
    run = _folder(tmp_path, {"meta": {"as_of": "2025-03-01"}}, _parquet(tmp_path))
    scores, summary = read_scoring_run(run)
    assert scores["customer_id"].tolist() == ["007", "012"] and summary["meta"]["as_of"] == "2025-03-01"
    meta, drift, same = backtest_read_run(run)
    assert meta == {"as_of": "2025-03-01"} and drift == {} and same.equals(scores)
    campaign = campaign_of_run(run)
    assert str(campaign.day) == "2025-03-01" and campaign.contacts["customer_id"].tolist() == ["007"]


@pytest.mark.parametrize(("summary", "scores", "file", "message"), [
    (None, b"", "summary.json", "not found"),
    ("{not json", b"", "summary.json", "not valid JSON"),
    ({"summary": {}}, b"", "summary.json", "meta.as_of is missing"),
    ({"meta": "2025-03-01"}, b"", "summary.json", "meta.as_of is missing"),
    ({"meta": {"as_of": "2025-03-01"}}, None, "scores.parquet", "not found"),
    ({"meta": {"as_of": "2025-03-01"}}, b"PAR1 but not really", "scores.parquet", "not readable as Parquet"),
])
def test_every_reader_names_the_file_that_is_wrong(tmp_path, summary, scores, file, message):
    run = _folder(tmp_path, summary, scores)
    for read in (read_scoring_run, backtest_read_run, campaign_of_run):
        with pytest.raises(ChurnError, match=message) as err:
            read(run)
        assert str(run / file) in str(err.value)
    if file == "summary.json":
        with pytest.raises(ChurnError, match=message):
            read_summary(run)


def test_campaign_effect_names_a_wrong_run_folder_before_it_reads_the_data(tmp_path):
    from churn.campaigns.run import measure_campaigns
    from churn.config import load_config

    good = _folder(tmp_path, {"meta": {"as_of": "2025-03-01"}}, _parquet(tmp_path))
    wrong = tmp_path / "2025-04-01"
    wrong.mkdir()
    with pytest.raises(ChurnError) as err:
        measure_campaigns([good, wrong], str(tmp_path / "no-such-data"), load_config(), log=False)
    assert str(wrong / "summary.json") in str(err.value) and "no-such-data" not in str(err.value)


def test_a_spark_runs_folder_of_score_parts_reads_back(tmp_path):
    run = _folder(tmp_path, {"meta": {"as_of": "2025-03-01"}})
    parts = pd.read_parquet(pd.io.common.BytesIO(_parquet(tmp_path)))
    (run / "scores.parquet").mkdir()  # as Spark writes it: a folder of parts
    parts.iloc[:1].to_parquet(run / "scores.parquet" / "part-00000.parquet")
    parts.iloc[1:].to_parquet(run / "scores.parquet" / "part-00001.parquet")
    scores, _ = read_scoring_run(run)
    assert sorted(scores["customer_id"]) == ["007", "012"]
    assert campaign_of_run(run).contacts["customer_id"].tolist() == ["007"]


def test_campaign_effect_names_a_run_without_scores_before_it_reads_the_data(tmp_path):
    from churn.campaigns.run import measure_campaigns
    from churn.config import load_config

    run = _folder(tmp_path, {"meta": {"as_of": "2025-03-01"}})
    with pytest.raises(ChurnError) as err:
        measure_campaigns([run], str(tmp_path / "no-such-data"), load_config(), log=False)
    assert str(run / "scores.parquet") in str(err.value) and "no-such-data" not in str(err.value)


def test_a_model_trained_on_a_ready_table_has_no_features_to_rebuild():
    from types import SimpleNamespace

    from churn.config import load_config
    from churn.scoring.model_features import features_config, rebuildable

    ready = SimpleNamespace(source_settings={})
    assert not rebuildable(ready)
    with pytest.raises(ChurnError, match="model models:/m@champion was trained on a ready feature table"):
        features_config(ready, load_config(), "models:/m@champion")
    # A model's own feature and label settings replace the run config's.
    config = load_config()
    own = config.features.model_copy(update={"families": ["engagement"]})
    label = config.label.model_copy(update={"horizon_days": config.label.horizon_days + 30})
    trained = SimpleNamespace(source_settings={"features_config": own.model_dump(mode="json"),
                                               "label_config": label.model_dump(mode="json")})
    cfg = features_config(trained, config)
    assert rebuildable(trained) and cfg.features.families == ["engagement"]
    assert cfg.label.horizon_days == config.label.horizon_days + 30 and cfg.incentives == config.incentives


def test_the_next_runs_alerts_find_an_earlier_spark_runs_scores(tmp_path):
    from churn.scoring.score import _previous_scores

    earlier = _folder(tmp_path, {"meta": {"as_of": "2025-03-01"}})
    (earlier / "scores.parquet").mkdir()  # a Spark run's folder of parts
    pd.read_parquet(pd.io.common.BytesIO(_parquet(tmp_path))).to_parquet(earlier / "scores.parquet" / "part-0.parquet")
    previous = _previous_scores(tmp_path, pd.Timestamp("2025-04-01"))
    assert previous is not None and sorted(previous["customer_id"]) == ["007", "012"]
    assert _previous_scores(tmp_path, pd.Timestamp("2025-03-01")) is None  # only runs before the date
