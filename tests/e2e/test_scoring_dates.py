"""Scoring dates a scheduler passes by mistake, and a customer list of strangers (issue 25), through `churn
score` (Typer's runner) and the Python API, on generated data (activity 2023-01-01 to 2024-06-30) with a
small model (real DuckDB, LightGBM and MLflow in a temp folder):

- a date after the newest activity by more than `scoring.max_staleness_days`, or in the future, is refused;
  `--allow-stale-data` scores it and says so loudly (console, summary.json, report);
- a date before most of the data scores with a warning;
- a `--customers` list whose only id is unknown gives one row with status `unknown`, exit 0.
"""

from __future__ import annotations

import json
import warnings
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import churn
from churn.cli import app
from churn.config import Config
from churn.errors import ChurnError
from churn.generate import generate
from churn.pipeline import score_to_folder, train_from_data

pytestmark = pytest.mark.slow

START, END = date(2023, 1, 1), date(2024, 7, 1)  # the newest activity is on 2024-06-30


@pytest.fixture(scope="module")
def trained(mlflow_store: Path) -> dict[str, Any]:
    """Generated subscription data, a config file and a small model bundle trained on it."""
    data = mlflow_store / "data"
    generate(500, START, END, 3, data, business="subscription")
    sections = {"engine": {"threads": 1, "memory_limit": "1GB"}, "snapshots": {"count": 3},
                "incentives": str(Path(__file__).resolve().parents[2] / "configs" / "incentives.yaml"),
                "model": {"n_jobs": 1, "candidates": ["lightgbm"], "auto_tune_max_rows": 0, "num_boost_round": 30,
                          "early_stopping_rounds": 10, "refit": False, "plots": False,
                          "bundle_dir": str(mlflow_store / "models")}}
    cfg_path = mlflow_store / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(sections), encoding="utf-8")
    cfg = churn.load_config(cfg_path)
    res = train_from_data(cfg, str(data))
    return {"data": data, "config": cfg_path, "cfg": cfg, "bundle": res.bundle_path}


def score(trained: dict[str, Any], out: Path, *args: object) -> Any:
    return CliRunner().invoke(app, ["score", "--data", str(trained["data"]), "--model", str(trained["bundle"]),
                                    "--config", str(trained["config"]), "--out", str(out), *map(str, args)])


def said(text: str) -> str:
    return " ".join(text.split())


# ------------------------------------------------------------------------------- stale and future dates
@pytest.mark.parametrize(("as_of", "words"), [
    ("2030-01-01", "is in the future"),
    ("2024-09-01", "63 days after the newest activity (2024-06-30)"),
])
def test_a_date_long_after_the_data_is_refused(trained, tmp_path: Path, as_of: str, words: str) -> None:
    res = score(trained, tmp_path / "out", "--as-of", as_of)
    assert res.exit_code == 1 and "Traceback" not in res.output, res.output
    msg = said(res.output)
    assert f"as-of date {as_of}" in msg and words in msg
    assert "scoring.max_staleness_days" in msg and "--allow-stale-data" in msg and "2024-07-31" in msg
    assert not (tmp_path / "out" / as_of).exists()
    with pytest.raises(ChurnError, match=words.replace("(", r"\(").replace(")", r"\)")):
        churn.score(trained["bundle"], trained["data"], as_of, trained["cfg"])
    with pytest.raises(ChurnError, match="--allow-stale-data"):
        churn.score_to_folder(trained["bundle"], trained["data"], as_of, trained["cfg"], out=tmp_path / "api")
    assert not (tmp_path / "api" / as_of).exists()


def test_the_configured_gap_and_the_last_day_it_allows(trained, tmp_path: Path) -> None:
    ok = score(trained, tmp_path / "a", "--as-of", "2024-07-31")  # 31 days after the newest activity
    assert ok.exit_code == 0, ok.output
    cfg = Config.model_validate({**trained["cfg"].model_dump(), "scoring": {"max_staleness_days": 90}})
    run = score_to_folder(cfg, str(trained["bundle"]), str(tmp_path / "b"), data=str(trained["data"]),
                          as_of="2024-09-01")
    assert run.n_scored > 0 and not run.warnings


def test_allow_stale_data_scores_and_says_so_loudly(trained, tmp_path: Path) -> None:
    res = score(trained, tmp_path / "out", "--as-of", "2030-01-01", "--allow-stale-data")
    assert res.exit_code == 0, res.output
    assert "WARNING" in res.output and "--allow-stale-data" in said(res.output)
    run_dir = tmp_path / "out" / "2030-01-01"
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert len(summary["warnings"]) == 1 and "in the future" in summary["warnings"][0]
    assert "--allow-stale-data" in summary["warnings"][0]
    report = (run_dir / "report.html").read_text(encoding="utf-8")
    assert 'id="warnings"' in report and "in the future" in report
    with pytest.warns(UserWarning, match="in the future"):
        rows = churn.score(trained["bundle"], trained["data"], "2030-01-01", trained["cfg"], allow_stale_data=True)
    assert (rows["status"] == "scored").any()


def test_a_date_before_most_of_the_data_warns(trained, tmp_path: Path) -> None:
    res = score(trained, tmp_path / "out", "--as-of", "2023-03-01")
    assert res.exit_code == 0, res.output
    msg = said(res.output)
    assert "WARNING" in msg and "before most of the data" in msg and "on or after 2023-03-01" in msg
    summary = json.loads((tmp_path / "out" / "2023-03-01" / "summary.json").read_text(encoding="utf-8"))
    assert any("before most of the data" in w for w in summary["warnings"])
    with pytest.warns(UserWarning, match="before most of the data"):
        churn.score(trained["bundle"], trained["data"], "2023-03-01", trained["cfg"])


def test_a_date_inside_the_data_says_nothing(trained, tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows = churn.score(trained["bundle"], trained["data"], "2024-07-01", trained["cfg"])
    assert (rows["status"] == "scored").any()
    res = score(trained, tmp_path / "out", "--as-of", "2024-07-01")
    assert res.exit_code == 0 and "WARNING" not in res.output


# ----------------------------------------------------------------------- a list of one unknown customer
def test_a_list_of_one_unknown_id_gives_one_unknown_row(trained, tmp_path: Path) -> None:
    ids = tmp_path / "list.csv"
    ids.write_text("customer_id\nno-such-customer\n")
    res = score(trained, tmp_path / "out", "--as-of", "2024-07-01", "--customers", ids)
    assert res.exit_code == 0, res.output
    scores = pd.read_parquet(tmp_path / "out" / "2024-07-01" / "scores.parquet")
    assert scores[["customer_id", "status"]].to_dict("records") == [{"customer_id": "no-such-customer",
                                                                     "status": "unknown"}]
    assert scores["churn_probability"].isna().all()
    summary = json.loads((tmp_path / "out" / "2024-07-01" / "summary.json").read_text(encoding="utf-8"))
    assert summary["summary"]["status_counts"] == {"unknown": 1}
    run = score_to_folder(trained["cfg"], str(trained["bundle"]), str(tmp_path / "api"), data=str(trained["data"]),
                          as_of="2024-07-01", customers=str(ids))
    assert run.n_scored == 0 and run.summary["status_counts"] == {"unknown": 1}


def test_a_list_of_one_unknown_id_in_table_mode(trained, tmp_path: Path) -> None:
    table = tmp_path / "features.parquet"
    churn.build_features(trained["data"], "2024-07-01", trained["cfg"]).to_parquet(table)
    ids = tmp_path / "list.csv"
    ids.write_text("customer_id\nno-such-customer\n")
    res = CliRunner().invoke(app, ["score", "--table", str(table), "--id", "customer_id", "--as-of", "2024-07-01",
                                   "--model", str(trained["bundle"]), "--config", str(trained["config"]),
                                   "--out", str(tmp_path / "out"), "--customers", str(ids)])
    assert res.exit_code == 0, res.output
    scores = pd.read_parquet(tmp_path / "out" / "2024-07-01" / "scores.parquet")
    assert scores[["customer_id", "status"]].to_dict("records") == [{"customer_id": "no-such-customer",
                                                                     "status": "unknown"}]
