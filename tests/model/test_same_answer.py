"""The same raw rows give the same probabilities through `churn score`, the Python API and the MLflow pyfunc.

A telecom-style export (Yes/No and True/False text, numbers written with decimal commas and as
percentages, blanks, categories, ids with leading zeros, semicolons) is trained with `churn train --table`
and scored with `churn score --table`: every row's probability equals the registered model's in-memory
`predict_risk` on the same raw rows (1e-9), and the pyfunc's. Harmless differences at scoring (case and
spaces, integers for floats, column order, extra columns) change nothing; a truly unreadable column is one
clear error naming it.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.cli import app
from churn.training.loading import load_model


def telecom_export(n: int, seed: int) -> pd.DataFrame:
    """Rows shaped like a real operator's export, with a planted signal in several of the text columns."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    fiber = rng.random(n) < 0.45
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.25, 0.2])
    partner = rng.random(n) < 0.5
    charges = np.round(rng.uniform(18, 118, n), 2)
    z = -1.2 - 0.04 * tenure + 1.0 * fiber + 1.3 * (contract == "Month-to-month") - 0.4 * partner + 0.01 * charges
    churn = rng.random(n) < 1 / (1 + np.exp(-z))
    df = pd.DataFrame({
        "customerID": [f"{i:06d}" for i in range(n)],
        "tenure": tenure,
        "Partner": np.where(partner, "Yes", "No"),
        "PaperlessBilling": np.where(rng.random(n) < 0.6, "True", "False"),
        "InternetService": np.where(fiber, "Fiber optic", rng.choice(["DSL", "No"], n)),
        "Contract": contract,
        "MonthlyCharges": [f"{v:.2f}".replace(".", ",") for v in charges],  # decimal commas
        "Discount": [f"{v}%" for v in rng.integers(0, 30, n)],
        "Churn": np.where(churn, "Yes", "No"),
    })
    blank = rng.random(n) < 0.03
    df.loc[blank, "MonthlyCharges"] = ""
    df.loc[rng.random(n) < 0.02, "Partner"] = None
    return df


@pytest.fixture(scope="module")
def trained(mlflow_store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("same-answer")
    df = telecom_export(1600, seed=11)
    table = tmp / "telco.csv"
    df.to_csv(table, sep=";", index=False)
    cfg = tmp / "config.yaml"
    cfg.write_text(f"model:\n  registered_name: telco\n  experiment: telco\n  n_jobs: 1\n  num_boost_round: 200\n"
                   f"  early_stopping_rounds: 20\n  auto_tune_max_rows: 0\n  candidates: [lightgbm, logistic]\n"
                   f"  plots: false\n  bundle_dir: {tmp / 'models'}\n")
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--table", str(table), "--target", "Churn",
                                   "--id", "customerID"])
    assert res.exit_code == 0, res.output
    assert "registered models:/telco/1" in " ".join(res.output.split())
    return {"tmp": tmp, "df": df, "table": table, "cfg": cfg}


def _score(trained, table, out, *extra):
    res = CliRunner().invoke(app, ["score", "--config", str(trained["cfg"]), "--table", str(table),
                                   "--id", "customerID", "--model", "models:/telco/1", "--as-of", "2026-01-01",
                                   "--out", str(out), *extra])
    return res


def test_cli_scores_equal_in_memory_and_pyfunc(trained):
    df, tmp = trained["df"], trained["tmp"]
    res = _score(trained, trained["table"], tmp / "out")
    assert res.exit_code == 0, res.output
    scores = pd.read_parquet(tmp / "out" / "2026-01-01" / "scores.parquet")
    assert len(scores) == len(df) and (scores["status"] == "scored").all()
    model = load_model("models:/telco/1")
    raw = pd.read_csv(trained["table"], sep=";", dtype={"customerID": str})
    expected = pd.Series(model.predict_risk(raw), index=raw["customerID"])
    got = scores.set_index("customer_id")["churn_probability"]
    assert set(got.index) == set(expected.index)  # leading zeros kept
    np.testing.assert_allclose(got.loc[expected.index].to_numpy(), expected.to_numpy(), rtol=0, atol=1e-9)
    from churn.training.tracking import mlflow_session

    with mlflow_session():  # the project's store, whatever MLflow's process-wide URI says
        pyfunc = mlflow.pyfunc.load_model("models:/telco/1")
    np.testing.assert_allclose(pyfunc.predict(raw.drop(columns=["Churn"])), expected.to_numpy(), rtol=0, atol=1e-9)
    # the model read the text as training did: Yes/No as 1/0, decimal commas and percentages as numbers
    rules = {r.name: (r.kind, r.text_format) for r in model.preparation_.rules_}
    assert rules["Partner"] == ("yes_no", None) and rules["PaperlessBilling"] == ("yes_no", None)
    assert rules["MonthlyCharges"] == ("number", "decimal_comma") and rules["Discount"] == ("number", "percent")
    assert rules["Contract"][0] == "category"


def test_harmless_differences_change_nothing(trained):
    df, tmp = trained["df"], trained["tmp"]
    model = load_model("models:/telco/1")
    base = model.predict_risk(df)
    odd = df.copy()
    odd["Partner"] = odd["Partner"].map(lambda v: v if pd.isna(v) else f"  {v.upper()} ")
    odd["PaperlessBilling"] = odd["PaperlessBilling"].map({"True": True, "False": False})  # real booleans
    odd["tenure"] = odd["tenure"].astype(float)
    odd["Contract"] = odd["Contract"].str.lower()
    odd["MonthlyCharges"] = odd["MonthlyCharges"].str.replace(",", ".")  # another export's decimal point
    odd["note"] = "extra column"
    odd = odd[list(reversed(odd.columns))]
    np.testing.assert_allclose(model.predict_risk(odd), base, rtol=0, atol=1e-12)
    path = tmp / "odd.csv"
    odd.to_csv(path, index=False)
    res = _score(trained, path, tmp / "out-odd")
    assert res.exit_code == 0, res.output
    import json

    notices = json.loads((tmp / "out-odd" / "2026-01-01" / "summary.json").read_text())["notices"]
    assert any("the model does not use were ignored: note, Churn" in n for n in notices), notices


def test_unreadable_column_is_one_clear_error(trained):
    tmp = trained["tmp"]
    bad = trained["df"].copy()
    bad.loc[[3, 7], "Partner"] = "maybe"
    path = tmp / "bad.csv"
    bad.to_csv(path, index=False)
    res = _score(trained, path, tmp / "out-bad")
    assert res.exit_code == 1
    msg = " ".join(res.output.split())
    assert "column 'Partner'" in msg and "not yes/no" in msg and "(2 rows)" in msg and "'maybe'" in msg
    assert "Traceback" not in res.output
    assert not (tmp / "out-bad" / "2026-01-01").exists()  # nothing written
