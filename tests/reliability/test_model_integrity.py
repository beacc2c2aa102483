"""Tampered bundles and MLflow models are refused with clear errors; nothing personal reaches MLflow."""

from __future__ import annotations

import json
import pickle
import re
import shutil
from pathlib import Path

import joblib
import pandas as pd
import pytest
from conftest import churn_env
from mlflow import MlflowClient

from churn.errors import ChurnError
from churn.training.bundle import SIGNATURE_FILE, export_bundle, sha256_file
from churn.training.loading import load_model

pytestmark = pytest.mark.slow


@pytest.fixture()
def bundle(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(trained / "models" / "churn-1", copy)
    return copy


@pytest.fixture()
def store(trained: Path, monkeypatch: pytest.MonkeyPatch) -> MlflowClient:
    for k, v in churn_env(trained).items():
        if k.startswith(("MLFLOW_", "CHURN_")):
            monkeypatch.setenv(k, v)
    return MlflowClient(tracking_uri=f"sqlite:///{trained / 'mlruns.db'}")


def _rewrite_manifest(b: Path) -> None:
    man = json.loads((b / "manifest.json").read_text())
    man["files"] = {n: sha256_file(b / n) for n in man["files"]}
    (b / "manifest.json").write_text(json.dumps(man))


def test_missing_and_corrupt_manifest(bundle: Path) -> None:
    (bundle / "manifest.json").write_text("{not json")
    with pytest.raises(ChurnError, match="cannot read the bundle manifest"):
        load_model(str(bundle))
    (bundle / "manifest.json").write_text('{"files": ["model.joblib"]}')
    with pytest.raises(ChurnError, match="malformed bundle manifest"):
        load_model(str(bundle))
    (bundle / "manifest.json").unlink()
    with pytest.raises(ChurnError, match="not a model bundle"):
        load_model(str(bundle))


def test_file_not_in_manifest(bundle: Path) -> None:
    (bundle / "extra.pkl").write_bytes(b"x")
    with pytest.raises(ChurnError, match="files not listed in manifest.json: extra.pkl"):
        load_model(str(bundle))


def test_swapped_file_with_rewritten_manifest_needs_the_key(bundle: Path, trained: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = load_model(str(bundle))
    monkeypatch.setenv("CHURN_BUNDLE_KEY", "s3cret")
    signed = export_bundle(model, tmp_path / "signed", name="churn", version="1")
    assert (signed / SIGNATURE_FILE).is_file()
    assert load_model(str(signed)).features_ == model.features_
    # Swap a file and rewrite the manifest's hashes: only the signature can tell.
    (signed / "features.json").write_text("[]\n")
    _rewrite_manifest(signed)
    with pytest.raises(ChurnError, match="signature does not match"):
        load_model(str(signed))
    with pytest.raises(ChurnError, match="not signed"):
        load_model(str(bundle))  # unsigned bundles are refused once a key is set
    monkeypatch.setenv("CHURN_BUNDLE_KEY", "another")
    shutil.rmtree(signed)
    export_bundle(model, signed, name="churn", version="1")
    monkeypatch.setenv("CHURN_BUNDLE_KEY", "s3cret")
    with pytest.raises(ChurnError, match="signature does not match"):
        load_model(str(signed))


class _Boom:
    def __reduce__(self):  # what a malicious pickle does: call something on load
        import os

        return (os.system, ("touch PWNED",))


def test_pickle_that_is_not_a_churn_model(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (bundle / "model.joblib").write_bytes(pickle.dumps(_Boom()))
    _rewrite_manifest(bundle)
    with pytest.raises(ChurnError, match=r"is not a churn model: its pickle references (posix|os)\.system"):
        load_model(str(bundle))
    assert not (tmp_path / "PWNED").exists()  # refused before anything ran
    joblib.dump({"a": 1}, bundle / "model.joblib")
    _rewrite_manifest(bundle)
    with pytest.raises(ChurnError, match="does not hold a ChurnModel"):
        load_model(str(bundle))


def test_mlflow_loads_check_hashes_recorded_at_training(store: MlflowClient, trained: Path) -> None:
    mv = store.get_model_version("churn", "1")
    recorded = json.loads(mv.tags["churn.model_sha256"])
    assert {"python_model.pkl", "artifacts/model.joblib"} <= set(recorded)
    assert load_model(f"runs:/{mv.run_id}/model").features_ == load_model("models:/churn/1").features_
    # Tamper with the stored model file itself (someone with write access to the artifact store).
    files = [p for p in (trained / "mlartifacts").rglob("model.joblib") if "artifacts" in p.parent.name]
    assert files
    for f in files:
        data = bytearray(f.read_bytes())
        data[-10] ^= 0xFF
        f.write_bytes(bytes(data))
    with pytest.raises(ChurnError, match="artifacts/model.joblib changed since training"):
        load_model("models:/churn/1")
    with pytest.raises(ChurnError, match="changed since training"):
        load_model(f"runs:/{mv.run_id}/model")


def test_nothing_personal_in_mlflow(store: MlflowClient, trained: Path) -> None:
    customers = pd.read_parquet(trained / "data" / "customers.parquet")
    ids = set(customers["customer_id"].astype(str))
    words = {*customers["name"], *customers["email"]}  # full names and e-mails: unique enough to search
    assert len(ids) == 400 and len(words) > 700
    exp = store.get_experiment_by_name("churn")
    runs = store.search_runs([exp.experiment_id])
    assert runs
    texts = []
    for run in runs:
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags)]
    files = [f for f in (trained / "mlartifacts").rglob("*") if f.is_file()]
    assert any(f.name == "holdout.parquet" for f in files)  # the artifact that used to carry them is there
    for f in files:  # every artifact, pickles and plots included, as bytes
        raw = f.read_bytes()
        if f.suffix == ".parquet":
            raw = pd.read_parquet(f).to_csv(index=False).encode()
        texts.append(raw.decode("latin-1"))
    blob = "\n".join(texts)
    # Ids are 7-digit numbers: match whole numbers only (a float such as 4.9100000000000001 contains one).
    numbers = set(re.findall(r"(?<![\d.])\d+(?![\d.])", blob))
    assert sorted(ids & numbers) == []
    assert sorted(w for w in words if w in blob) == []
