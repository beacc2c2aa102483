"""The Spark scale-out against the single-machine engine on the same data (real Spark, local[2]; one session
for the run, the `spark` fixture): the training frame's features and labels at several dates, the global
settings it freezes and its BG/NBD fit; the scoring run's scores, tiers, reasons, control group, plan,
summary, segments, alerts and drift for the same model. The data (`bucket_data`) has ids to normalise, a
heavy customer with a bucket of their own, a bucket where nobody is active and four tables are missing,
instants beside zone-less times, and a text column read through its layout."""

from __future__ import annotations

import filecmp
import inspect
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bucket_data import DATES, HEAVY, LONELY, assert_same_features, parity_config, parity_source

from churn.errors import ChurnError
from churn.ids import ID_SPACE, normalise_id

AS_OF = "2025-06-01"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return parity_source(tmp_path_factory.mktemp("spark") / "data")


def _with_engine(config, kind: str):
    return config.model_copy(update={"engine": config.engine.model_copy(update={"kind": kind})})


def test_training_frame_built_on_spark_is_the_embedded_one(spark, data, monkeypatch):
    from churn.features.frame import build_training_frame
    from churn.spark.flows import training_frame_on_spark
    from churn.validation import load_source

    monkeypatch.setattr("churn.frozen.datetime", _Now)  # validation's "in the future", as in the embedded run
    config = parity_config()
    ds = load_source(str(data), config, now=NOW)
    try:
        want = build_training_frame(ds, config, DATES)
    finally:
        ds.con.close()
    got = training_frame_on_spark(str(data), _with_engine(config, "spark"), DATES)
    assert_same_features(got.frame, want.frame)
    assert (got.frame["churned"].to_numpy() == want.frame["churned"].to_numpy()).all()
    assert got.fingerprint == want.fingerprint  # rows per table, data range, snapshots, hash of the labels
    assert got.metadata == want.metadata  # event types, survey scale, label, BG/NBD fit of the newest date
    assert got.metadata["btyd_params"] and got.metadata["event_types"]
    assert any("bucket of their own" in n for n in got.notices)
    # The edge cases were really in the data: the heavy and the re-spelled customers have features.
    assert {HEAVY, "0000003", "0000005"} <= set(got.frame["customer_id"]) and LONELY not in set(got.frame["customer_id"])


class _Now(datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: D102 - the test's fixed clock
        return NOW


def test_ids_are_normalised_alike_by_spark_duckdb_and_python(spark):
    import duckdb
    import pyarrow as pa

    from churn.ids import id_spark, id_sql

    texts = ["007", "007\xa0", "\u00a0007", "\t007\n", " 007 ", "\u3000x\u2028", "7.0", "-12.00", "7.5", "  ", "",
             None, "x.0", "a b"]
    frame = spark.createDataFrame([(t,) for t in texts], "v string")
    got = [r[0] for r in frame.select(id_spark(frame["v"], frame.schema["v"].dataType)).collect()]
    con = duckdb.connect()
    con.register("t", pa.table({"v": pa.array(texts, pa.string())}))
    duck = [r[0] for r in con.execute(f"SELECT {id_sql('v', 'VARCHAR')} FROM t").fetchall()]
    assert got == duck == [normalise_id(t) for t in texts]
    assert got[:5] == ["007"] * 5  # "007\xa0" lands with "007" (Spark's own trim keeps the no-break space)
    floats = spark.createDataFrame([(7.0,), (12.5,), (-3.0,)], "v double")
    assert [r[0] for r in floats.select(id_spark(floats["v"], floats.schema["v"].dataType)).collect()] == \
        ["7", "12.5", "-3"]
    assert len(ID_SPACE) == 29


def test_spark_scoring_run_is_the_single_machine_run(spark, data, tmp_path, mlflow_store, monkeypatch):
    from churn.config import load_config
    from churn.pipeline import score_to_folder, train_from_data

    monkeypatch.setattr("churn.frozen.datetime", _Now)
    fast = load_config(Path(__file__).resolve().parents[1] / "fast.yaml")
    config = parity_config().model_copy(update={"model": fast.model, "incentives": fast.incentives,
                                                "monitoring": fast.monitoring.model_copy(update={
                                                    "kpi_months": 0, "mlflow": False})})
    monkeypatch.chdir(tmp_path)
    trained = train_from_data(config, str(data), force=True)
    # A per-customer effect of the first offer in the effects file (as `churn campaign-effect` writes one):
    # each partition prices that offer customer by customer, as the single machine does.
    offer = config.incentives.catalogue[0].name
    model = {"kind": "hazard_ratio", "columns": ["tenure_days"], "mean": [300.0], "scale": [150.0],
             "intercept": -0.4, "coef": [-0.5], "penalty": 1000.0, "control_penalty": 1e6, "control_coef": [0.0]}
    (tmp_path / "effects.json").write_text(json.dumps({
        "kind": "churn-effects", "version": 1, "save_rates": {},
        "uplift": {"churn_model": None, "offers": {offer: {"chosen": "hazard_ratio", "why": "", "model": model}}}}))
    config = config.model_copy(update={"incentives": config.incentives.model_copy(
        update={"effects": str(tmp_path / "effects.json")})})
    runs = {}
    for kind in ("embedded", "spark"):
        runs[kind] = score_to_folder(_with_engine(config, kind), trained.bundle_path, str(tmp_path / kind),
                                     data=str(data), as_of=AS_OF)
    one, many = (runs[k].out_dir for k in ("embedded", "spark"))
    want, got = pd.read_parquet(one / "scores.parquet"), pd.read_parquet(many / "scores.parquet")
    assert list(got.columns) == list(want.columns) and len(got) == len(want) > 150
    assert (got["customer_id"].to_numpy() == want["customer_id"].to_numpy()).all()  # riskiest first, same ties
    for col in want.columns:
        a, b = want[col], got[col]
        if pd.api.types.is_float_dtype(a):
            np.testing.assert_allclose(b.to_numpy(float), a.to_numpy(float), rtol=0, atol=1e-9, err_msg=col)
        else:
            assert [None if pd.isna(v) else str(v) for v in a] == [None if pd.isna(v) else str(v) for v in b], col
    # The plan really had every part: tiers, reasons, a control group, offers given and refused.
    assert want["risk_tier"].nunique() >= 3 and want["reason_1"].notna().sum() > 100
    assert want["holdout"].sum() > 5 and want["incentive"].notna().sum() > 5 and (~want["contact"]).sum() > 5
    summary = [json.loads((d / "summary.json").read_text()) for d in (one, many)]
    assert sum(r["customers_priced"] for r in summary[0]["summary"]["save_rates"][offer].values()) > 10
    # Money summed per partition: equal up to the order of the float additions.
    _assert_same(summary[1]["summary"], summary[0]["summary"])
    assert summary[1]["warnings"] == summary[0]["warnings"]
    for name in ["alerts.csv", "drift.json", "notifications.json", *sorted(
            str(p.relative_to(one)) for p in (one / "segments").iterdir())]:
        assert filecmp.cmp(one / name, many / name, shallow=False), name
    assert (many / "scores.parquet").is_dir() and len(list((many / "scores.parquet").glob("part-*.parquet"))) >= 1


def _assert_same(got: object, want: object, where: str = "summary") -> None:
    """Equal JSON values, floats within 1e-9 (relative)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for k in want:
            _assert_same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and isinstance(got, float):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), where
    else:
        assert got == want, where


def test_spark_udfs_annotate_every_argument():
    """pyspark picks applyInArrow's iterator form from the hints, and 4.3 fails with UnboundLocalError on a
    function whose arguments are only partly annotated: every UDF here annotates them all."""
    import pyarrow as pa

    from churn.spark import udfs

    made = [udfs.global_counts_udf({}, None, None, None), udfs.bucket_udf({}, None, [], None, pa.schema([]), "x"),
            udfs.fill_btyd_udf({}, 60, pa.schema([])), udfs.score_udf(None, None, None, pa.schema([])),
            udfs.options_udf(None, None, (None, None, None), pa.schema([])),
            udfs.plan_udf(None, None, (None, None, None), pa.schema([]))]
    for fn in made:
        sig = inspect.signature(fn)
        assert all(p.annotation is not p.empty for p in sig.parameters.values()), fn
        assert sig.return_annotation is not sig.empty, fn
    from pyspark.sql.pandas.typehints import infer_group_arrow_eval_type_from_func
    from pyspark.util import PythonEvalType

    assert infer_group_arrow_eval_type_from_func(made[1]) == PythonEvalType.SQL_GROUPED_MAP_ARROW_ITER_UDF


def test_missing_java_is_a_clear_error(tmp_path, monkeypatch):
    from churn.spark.session import require_spark

    monkeypatch.setenv("JAVA_HOME", str(tmp_path))  # no bin/java there
    with pytest.raises(ChurnError, match="Java 17"):
        require_spark()
