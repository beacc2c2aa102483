"""Ready tables as teams export them (issues 20 and 25), trained through the CLI and the Python API:

- a target written as two words ("Attrited Customer" / "Existing Customer") is read with the one naming
  churn as churn, and said; `--churn-value` names it outright; two words naming nothing are refused;
- two columns computed from the label (a bank export's "Naive_Bayes_Classifier..." scores) are dropped
  before training, loudly and by name, unless kept with `--keep-column`;
- e-mail addresses, an identifier, a code with many levels, a date written as text and a constant column
  are not features, each named with its reason, and no e-mail address reaches the bundle or the MLflow run;
- a count that is 0 or 1 in the older snapshots and 2 later, in a CSV, trains (it is a number, not yes/no).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import churn
from churn.cli import app
from churn.errors import ChurnError
from churn.training.table import read_ready_table

FAST = ("model:\n  n_jobs: 1\n  num_boost_round: 80\n  early_stopping_rounds: 15\n  auto_tune_max_rows: 0\n"
        "  candidates: [lightgbm, logistic_l1]\n  registered_name: {name}\n  experiment: {name}\n"
        "  plots: false\n  bundle_dir: {models}\n")


def bank_export(n: int, seed: int) -> pd.DataFrame:
    """A credit-card export: text target, two leaking scores, personal and useless columns, real signal."""
    rng = np.random.default_rng(seed)
    trans = rng.poisson(60, n).astype(float)
    inactive = rng.integers(0, 6, n)
    z = -1.0 - 0.05 * (trans - 60) + 0.45 * inactive + rng.normal(0, 1.0, n)
    attrited = rng.random(n) < 1 / (1 + np.exp(-z))
    noise = rng.uniform(0, 0.02, n)
    return pd.DataFrame({
        "CLIENTNUM": rng.choice(np.arange(700_000_000, 800_000_000), n, replace=False),
        "Attrition_Flag": np.where(attrited, "Attrited Customer", "Existing Customer"),
        "Total_Trans_Ct": trans,
        "Months_Inactive_12_mon": inactive,
        "Card_Category": rng.choice(["Blue", "Silver", "Gold"], n, p=[0.8, 0.15, 0.05]),
        "Naive_Bayes_Classifier_1": np.where(attrited, 0.99 - noise, 0.0001 + noise),
        "Naive_Bayes_Classifier_2": np.where(attrited, 0.01 + noise, 0.9999 - noise),
        "email": [f"client{i}.{rng.integers(10**6)}@mail{i % 7}.example.com" for i in range(n)],
        "ref_code": [f"R{c:05d}" for c in rng.integers(0, 400, n)],
        "opened_on": pd.to_datetime("2015-01-01") + pd.to_timedelta(rng.integers(0, 3000, n), unit="D"),
        "country": "US",
        "export_batch": 7,
    }).assign(opened_on=lambda d: d["opened_on"].dt.strftime("%Y-%m-%d"))


def _config(tmp: Path, name: str) -> Path:
    cfg = tmp / f"{name}.yaml"
    cfg.write_text(FAST.format(name=name, models=tmp / "models"))
    return cfg


def test_a_two_word_target_naming_churn_is_read_and_said():
    df = bank_export(200, 1)
    t = read_ready_table(df, "Attrition_Flag", "CLIENTNUM")
    assert t.frame["Attrition_Flag"].tolist() == (df["Attrition_Flag"] == "Attrited Customer").astype(int).tolist()
    assert any("'Attrited Customer' read as churn" in n and "--churn-value" in n for n in t.notices)
    named = read_ready_table(df, "Attrition_Flag", "CLIENTNUM", churn_value="existing customer")
    assert named.frame["Attrition_Flag"].sum() == (df["Attrition_Flag"] == "Existing Customer").sum()
    neutral = df.assign(Attrition_Flag=np.where(df["Attrition_Flag"] == "Attrited Customer", "A", "B"))
    with pytest.raises(ChurnError, match=r"'Attrition_Flag'.*if 'A' or 'B' means churn, say which with --churn-value"):
        read_ready_table(neutral, "Attrition_Flag", "CLIENTNUM")
    with pytest.raises(ChurnError, match=r"no row holds the churn value 'Closed'.*\['Attrited Customer', 'Existing"):
        read_ready_table(df, "Attrition_Flag", "CLIENTNUM", churn_value="Closed")


def test_columns_a_model_must_not_learn_from_are_named_with_their_reason():
    df = bank_export(1000, 2)
    t = read_ready_table(df, "Attrition_Flag", "CLIENTNUM")
    assert t.dropped == {
        "email": "e-mail addresses (personal data)",
        "ref_code": f"a code with {df['ref_code'].nunique()} distinct values (too many to be categories)",
        "opened_on": "a date written as text (give a number such as days since it instead)",
        "country": "constant (the same value in every row)",
        "export_batch": "constant (the same value in every row)",
    }
    assert {f.name for f in t.features} == {"Total_Trans_Ct", "Months_Inactive_12_mon", "Card_Category",
                                            "Naive_Bayes_Classifier_1", "Naive_Bayes_Classifier_2"}
    kept = read_ready_table(bank_export(1000, 2), "Attrition_Flag", "CLIENTNUM", keep=["ref_code"])
    assert "ref_code" in {f.name for f in kept.features} and "ref_code" not in kept.dropped
    ids = pd.DataFrame({"cid": range(300), "y": [0, 1] * 150, "token": [f"t{i:06d}x" for i in range(300)],
                        "x": np.arange(300.0)})
    assert read_ready_table(ids, "y", "cid").dropped == {"token": "an identifier (unique or nearly unique per row)"}


@pytest.fixture(scope="module")
def bank_run(mlflow_store, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bank")
    df = bank_export(3000, 3)
    table = tmp / "bank.csv"
    df.to_csv(table, index=False)
    res = CliRunner().invoke(app, ["train", "--config", str(_config(tmp, "bank")), "--table", str(table),
                                   "--target", "Attrition_Flag", "--id", "CLIENTNUM"])
    return tmp, df, res


def test_columns_computed_from_the_label_are_dropped_loudly_through_the_cli(bank_run):
    tmp, df, res = bank_run
    said = " ".join(res.output.split())
    assert res.exit_code == 0, res.output
    assert "LIKELY LEAK OF THE LABEL: 2 column(s) dropped" in said
    assert "'Naive_Bayes_Classifier_1'" in said and "'Naive_Bayes_Classifier_2'" in said
    assert "'Attrited Customer' read as churn" in said and "'email': e-mail addresses" in said
    model = churn.load_model("models:/bank/1")
    names = {f.name for f in model.features_}
    assert not {"Naive_Bayes_Classifier_1", "Naive_Bayes_Classifier_2", "email", "ref_code"} & names
    assert 0.6 < model.metadata_["metrics"]["roc_auc"] < 0.99  # the real signal, not the leak


def test_no_email_address_reaches_the_bundle_or_the_mlflow_run(bank_run):
    tmp, df, _ = bank_run
    bundle = next((tmp / "models").glob("bank-1*"))
    run_id = churn.load_model("models:/bank/1").metadata_["mlflow"]["run_id"]
    from mlflow import MlflowClient

    from churn.config import tracking_uri

    artifacts = Path(MlflowClient(tracking_uri=tracking_uri()).get_run(run_id).info.artifact_uri.removeprefix("file://"))
    files = [p for root in (bundle, artifacts) for p in root.rglob("*") if p.is_file()]
    assert any(p.name == "model.joblib" for p in files) and any(p.name == "features.json" for p in files)
    blob = b"".join(p.read_bytes() for p in files)
    for value in [*df["email"].head(300), *df["ref_code"].head(300)]:
        assert value.encode() not in blob, value


def test_a_kept_leak_is_kept_and_the_result_called_suspect(mlflow_store, tmp_path):
    df = bank_export(2000, 4)
    table = tmp_path / "bank.csv"
    df.to_csv(table, index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(FAST.format(name="bankkeep", models=tmp_path / "models"))
    res = churn.train_table(table, "Attrition_Flag", "CLIENTNUM", cfg, keep_columns=["Naive_Bayes_Classifier_1"])
    said = " ".join(" ".join(res.warnings).split())
    assert "kept on your word" in said and "'Naive_Bayes_Classifier_1'" in said
    assert "Naive_Bayes_Classifier_1" in {f.name for f in res.model.features_}
    assert res.verdict == "suspect" and "THE DATA PROBABLY LEAKS THE LABEL" in said


def test_a_count_that_grows_later_in_a_csv_trains(mlflow_store, tmp_path):
    """The project's own feature output over 8 monthly snapshots saved as CSV: `complaints` is 0/1 in the
    first five months and reaches 2 later; a column of integers is a count, not a yes/no flag."""
    rng = np.random.default_rng(5)
    rows = []
    for m, month in enumerate(pd.date_range("2024-01-01", periods=8, freq="MS")):
        for c in range(250):
            complaints = int(rng.random() < 0.3) + (int(rng.random() < 0.3) if m >= 5 else 0)
            visits = rng.poisson(4)
            churned = int(rng.random() < 1 / (1 + np.exp(-(-2.5 + 1.0 * complaints - 0.2 * visits))))
            rows.append({"customer_id": f"{c:05d}", "snapshot": month.date(), "complaints": complaints,
                         "visits": visits, "churned": churned})
    table = tmp_path / "features.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(FAST.format(name="counts", models=tmp_path / "models"))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--table", str(table), "--target", "churned",
                                   "--id", "customer_id", "--time-col", "snapshot"])
    assert res.exit_code == 0, res.output
    model = churn.load_model("models:/counts/1")
    rule = next(r for r in model.preparation_.rules_ if r.name == "complaints")
    assert rule.kind == "number"
    later = pd.DataFrame({"complaints": ["0", "1", "2", "3"], "visits": ["4", "4", "4", "4"]})
    p = model.predict_risk(later)
    assert np.all(np.diff(p) >= 0) and p[-1] > p[0]  # more complaints, more risk; a 3 is read, never refused


def test_a_batch_mixing_number_styles_names_the_ambiguous_rows():
    from churn.features.registry import Feature
    from churn.preparation import Preparation

    prep = Preparation([Feature("fee", "t", "fee")], infer=True).fit(pd.DataFrame({"fee": ["19.99", "5.00"] * 10}))
    with pytest.raises(ChurnError, match=r"column 'fee'.*mixes number styles.*\(1 rows\); e\.g\. row 1: '1\.234'"):
        prep.transform(pd.DataFrame({"fee": ["1.234", "2,5", "7"]}))
    assert prep.transform(pd.DataFrame({"fee": ["1.234", "2.5"]})).ravel().tolist() == [1.234, 2.5]
    assert prep.transform(pd.DataFrame({"fee": ["2,5", "3,75"]})).ravel().tolist() == [2.5, 3.75]


def test_percentages_and_plain_numbers_never_stand_in_for_each_other():
    from churn.features.registry import Feature
    from churn.preparation import Preparation

    share = [Feature("share", "t", "share")]
    pct = Preparation(share, infer=True).fit(pd.DataFrame({"share": ["45%", "12%"] * 10}))
    with pytest.raises(ChurnError, match=r"column 'share'.*e\.g\. row 1: '0\.45'"):
        pct.transform(pd.DataFrame({"share": ["0.45", "12%"]}))
    plain = Preparation(share, infer=True).fit(pd.DataFrame({"share": ["0.45", "0.12"] * 10}))
    with pytest.raises(ChurnError, match=r"column 'share'.*e\.g\. row 2: '45%'"):
        plain.transform(pd.DataFrame({"share": ["0.5", "45%"]}))
    assert pct.transform(pd.DataFrame({"share": ["7%"]})).ravel().tolist() == [7.0]

