"""Tampered bundles and MLflow models are refused with clear errors; nothing personal reaches MLflow.

A model file is a pickle, and a pickle can run code: the allow-list of what a churn model is made of
(`churn.training.safe_pickle.MODEL_GLOBALS`) is checked against every model kind the project builds
(complete and minimal), and hand-made malicious pickles are put into bundles whose manifests are rewritten
to match (no CHURN_BUNDLE_KEY), then scored through the real CLI: each is refused and its payload never runs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import pickle
import re
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import churn_env, run_churn
from joblib import numpy_pickle
from mlflow import MlflowClient
from mlflow.pyfunc.model import PythonModelContext

from churn.errors import ChurnError
from churn.training.bundle import SIGNATURE_FILE, export_bundle, load_bundle, sha256_file
from churn.training.loading import HASH_TAG, load_model
from churn.training.model import ChurnModel
from churn.training.pyfunc import ChurnPyfunc
from churn.training.safe_pickle import JOBLIB_GLOBALS, MODEL_GLOBALS, load_model_bytes, read_verified
from churn.training.synthetic import synthetic_training_frame

pytestmark = pytest.mark.slow
AS_OF = "2024-09-01"


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


# ------------------------------------------------------------------ the allow-list against real models
@pytest.fixture(scope="module")
def every_model_kind(trained: Path) -> dict[str, ChurnModel]:
    """Every kind with every calibration (an average of three of them), on categorical features, the decision-path explainer built where
    there are trees; and the model `churn train` made from raw data (its preparation carries the source
    settings and the BG/NBD fit)."""
    frame, features = synthetic_training_frame(600, 3, seed=1, n_extra_categorical=1)
    X, y = frame[[f.name for f in features]], frame["churned"]
    a, b = int(len(X) * 0.6), int(len(X) * 0.8)
    models = {}
    for kind in ("lightgbm", "logistic", "blend"):
        for method in ("isotonic", "sigmoid"):
            m = ChurnModel(features, {"learning_rate": 0.2, "num_leaves": 7}, kind=kind, num_boost_round=20,
                           early_stopping_rounds=5, calibration=method, n_jobs=1, seed=1)
            m.fit(X.iloc[:a], y.iloc[:a], eval_set=(X.iloc[a:b], y.iloc[a:b]),
                  calibration_set=(X.iloc[b:], y.iloc[b:]))
            if kind != "logistic":
                m.fit_explainer()  # what the registered model carries
            models[f"{kind}-{method}"] = m
    average = ChurnModel.average_of([models["lightgbm-sigmoid"], models["logistic-isotonic"], models["blend-sigmoid"]])
    models["average"] = average.calibrate(average.predict_raw(X.iloc[b:]), y.iloc[b:], "isotonic").fit_explainer()
    models["trained-from-raw-data"] = load_model(str(trained / "models" / "churn-1"))
    return models


def _globals_of_pickle(data: bytes) -> set[tuple[str, str]]:
    """The globals a trusted pickle names, recorded as the standard unpickler resolves them."""
    seen: set[tuple[str, str]] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module: str, name: str):
            seen.add((module, name))
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return seen


def _globals_of_joblib_file(path: Path) -> set[tuple[str, str]]:
    """The same for a file joblib.dump wrote, read by joblib's own unpickler."""
    seen: set[tuple[str, str]] = set()

    class Recorder(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str):
            seen.add((module, name))
            return super().find_class(module, name)

    with open(path, "rb") as fh:
        Recorder(str(path), fh, True).load()
    return seen


def test_allow_list_is_exactly_what_the_models_pickle(every_model_kind: dict[str, ChurnModel], trained: Path,
                                                      tmp_path: Path) -> None:
    raw = every_model_kind["trained-from-raw-data"]
    assert raw.source_settings.get("btyd_params") and raw.kind in ("lightgbm", "blend", "logistic")
    assert all(m.categorical_levels_ for m in every_model_kind.values())
    assert {m.calibrator_.method for m in every_model_kind.values()} >= {"isotonic", "sigmoid"}
    plain: set[tuple[str, str]] = set()
    legacy: set[tuple[str, str]] = set()
    for name, m in every_model_kind.items():
        plain |= _globals_of_pickle(pickle.dumps(m, protocol=5))
        joblib.dump(m, tmp_path / f"{name}.joblib")  # the format bundles had before protocol 5
        legacy |= _globals_of_joblib_file(tmp_path / f"{name}.joblib")
    # What `churn train` wrote into the bundle, as written.
    plain |= _globals_of_pickle((trained / "models" / "churn-1" / "model.joblib").read_bytes())
    assert sorted(plain - MODEL_GLOBALS) == []  # complete: every global a model names is allowed
    assert sorted(MODEL_GLOBALS - plain) == []  # minimal: every allowed global is named by some model
    assert sorted(legacy - MODEL_GLOBALS - JOBLIB_GLOBALS) == []
    assert sorted(JOBLIB_GLOBALS - legacy) == []


def test_every_model_kind_round_trips_in_both_formats(every_model_kind: dict[str, ChurnModel],
                                                      tmp_path: Path) -> None:
    frame, features = synthetic_training_frame(300, 1, seed=9, n_extra_categorical=1)
    X = frame[[f.name for f in features]]
    for name, m in every_model_kind.items():
        if name == "trained-from-raw-data":
            continue
        out = export_bundle(m, tmp_path / name, name="churn", version="1")
        assert json.loads((out / "manifest.json").read_text())["format"] == 2
        new = load_bundle(out)
        # A bundle of format 1 (model.joblib written by joblib.dump) still loads, through the same allow-list.
        joblib.dump(m, out / "model.joblib")
        man = json.loads((out / "manifest.json").read_text())
        man["format"] = 1
        (out / "manifest.json").write_text(json.dumps(man))
        _rewrite_manifest(out)
        old = load_bundle(out)
        for loaded in (new, old):
            assert np.array_equal(loaded.predict_risk(X), m.predict_risk(X)), name
            if m.booster_ is not None:
                assert np.array_equal(loaded.path_explainer().contributions(m.encode(X)[0]),
                                      m.path_explainer().contributions(m.encode(X)[0])), name


class _Call:
    """Pickles as a call of `fn(*args)`: what a malicious pickle is."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _protocol0_call(module: str, name: str, *args: object) -> bytes:
    """A hand-made pickle calling `module.name(*args)`, naming the global exactly as given (GLOBAL opcode)."""
    return f"c{module}\n{name}\n".encode() + pickle.dumps(args, protocol=0)[:-1] + b"R."


def _touch(marker: Path) -> str:
    return f"touch {shlex.quote(str(marker))}"


# Globals that read files or evaluate something, under the names a pickle can use for them.
DANGEROUS = [("pandas", "read_pickle"), ("pandas.io.pickle", "read_pickle"), ("numpy", "load"),
             ("numpy.lib._npyio_impl", "load"), ("joblib", "load"), ("joblib.numpy_pickle", "load"),
             ("builtins", "eval"), ("builtins", "exec"), ("builtins", "getattr"), ("builtins", "__import__"),
             ("builtins", "open"), ("builtins", "compile"), ("__builtin__", "eval"), ("operator", "attrgetter"),
             ("operator", "methodcaller"), ("functools", "partial"), ("functools", "reduce"), ("os", "system"),
             ("posix", "system"), ("subprocess", "Popen"), ("pickle", "loads"), ("_pickle", "loads"),
             ("copyreg", "_reconstructor"), ("numpy._core.multiarray", "_reconstruct"),
             ("numpy", "ndarray"), ("sklearn.utils._joblib", "load")]


@pytest.mark.parametrize(("module", "name"), DANGEROUS)
def test_globals_that_read_or_evaluate_are_refused(tmp_path: Path, module: str, name: str) -> None:
    marker = tmp_path / "RAN"
    code = f"__import__('os').system('{_touch(marker)}')"
    data = _protocol0_call(module, name, code)
    with pytest.raises(ChurnError, match=rf"its pickle references {re.escape(module)}\.{re.escape(name)}, "):
        load_model_bytes(data, "model.joblib")
    assert (module, name) not in MODEL_GLOBALS and not marker.exists()


def test_real_functions_pickled_by_reference_are_refused(tmp_path: Path) -> None:
    # As pickle.dumps writes them (protocol 4/5: STACK_GLOBAL, memoised strings, the functions' own modules).
    marker = tmp_path / "RAN"
    for fn in (pd.read_pickle, np.load, joblib.load, eval, getattr, os.system, functools.partial):
        for protocol in (2, 4, 5):
            with pytest.raises(ChurnError, match="is not a churn model: its pickle references"):
                load_model_bytes(pickle.dumps(_Call(fn, _touch(marker)), protocol=protocol), "model.joblib")
    assert not marker.exists()


def test_read_verified_returns_the_bytes_it_checked(tmp_path: Path) -> None:
    f = tmp_path / "model.joblib"
    f.write_bytes(b"first")
    digest = hashlib.sha256(b"first").hexdigest()
    assert read_verified(f, digest) == b"first"
    f.write_bytes(b"other")
    with pytest.raises(ChurnError, match=r"model.joblib does not match its recorded sha256"):
        read_verified(f, digest)


# ----------------------------------------------- malicious bundles, scored through the real CLI
def _payload(kind: str, marker: Path, folder: Path) -> tuple[bytes, dict[str, bytes]]:
    """(model.joblib's bytes, other files to put beside it) of an attack that would create `marker`."""
    run = _Call(os.system, _touch(marker))
    if kind == "pandas.read_pickle":  # its only global: pandas.read_pickle, of a second file
        return _protocol0_call("pandas", "read_pickle", str(folder / "stage2.pkl")), {"stage2.pkl": pickle.dumps(run)}
    if kind == "numpy.load":  # numpy.load(file, None, allow_pickle=True) of an object array
        buf = io.BytesIO()
        arr = np.empty(1, dtype=object)
        arr[0] = run
        np.save(buf, arr, allow_pickle=True)
        return _protocol0_call("numpy", "load", str(folder / "stage2.npy"), None, True), {"stage2.npy": buf.getvalue()}
    if kind == "joblib.load":
        buf = io.BytesIO()
        joblib.dump(run, buf)
        return _protocol0_call("joblib", "load", str(folder / "stage2.joblib")), {"stage2.joblib": buf.getvalue()}
    if kind == "builtins.getattr":  # getattr(__import__("os"), "system")("touch ...")
        cmd = _touch(marker)
        return (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(Vos\ntRVsystem\ntR(V" + cmd.encode() + b"\ntR."), {}
    if kind == "builtins.eval":
        return _protocol0_call("builtins", "eval", f"__import__('os').system({_touch(marker)!r})"), {}
    if kind == "os.system":
        return pickle.dumps(run, protocol=5), {}
    if kind == "joblib-object-array":  # joblib's own format: a wrapped object array, unpickled by joblib.load
        arr = np.empty(1, dtype=object)
        arr[0] = run
        buf = io.BytesIO()
        joblib.dump(arr, buf)
        return buf.getvalue(), {}
    raise AssertionError(kind)


ATTACKS = {
    "pandas.read_pickle": r"its pickle references pandas\.read_pickle,",
    "numpy.load": r"its pickle references numpy\.load,",
    "joblib.load": r"its pickle references joblib\.load,",
    "builtins.getattr": r"its pickle references builtins\.getattr,",
    "builtins.eval": r"its pickle references builtins\.eval,",
    "os.system": r"its pickle references (posix|os)\.system,",
    "joblib-object-array": r"holds an array of Python objects, which no churn model contains",
}


@pytest.mark.parametrize("kind", list(ATTACKS))
def test_malicious_bundle_is_refused_by_churn_score(trained: Path, bundle: Path, tmp_path: Path, kind: str) -> None:
    # The attack works when loaded the ordinary way (pickle.loads / joblib.load): it is live.
    control = tmp_path / "control"
    control.mkdir()
    data, extra = _payload(kind, control / "RAN", control)
    for fname, content in extra.items():
        (control / fname).write_bytes(content)
    (joblib.load(io.BytesIO(data)) if kind == "joblib-object-array" else pickle.loads(data))
    assert (control / "RAN").exists()
    # The same attack in a bundle whose manifest lists and hashes every file (no CHURN_BUNDLE_KEY).
    marker = tmp_path / "PWNED"
    data, extra = _payload(kind, marker, bundle)
    (bundle / "model.joblib").write_bytes(data)
    for fname, content in extra.items():
        (bundle / fname).write_bytes(content)
    man = json.loads((bundle / "manifest.json").read_text())
    man["files"] = {p.name: sha256_file(p) for p in bundle.iterdir() if p.name != "manifest.json"}
    (bundle / "manifest.json").write_text(json.dumps(man))
    out = tmp_path / "out"
    r = run_churn(trained, "score", "--data", "data", "--as-of", AS_OF, "--model", str(bundle), "--out", str(out),
                  COLUMNS="500")
    said = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1, said
    assert re.search(ATTACKS[kind], said) and "model.joblib" in said and "Traceback" not in said, said
    assert not marker.exists()  # refused before anything ran
    assert not (out / AS_OF).exists()


# ------------------------------------------------------------------------------ MLflow models
@pytest.fixture()
def logged(store: MlflowClient) -> Iterator[tuple[Path, Any]]:
    """(the folder of models:/churn/1 in the artifact store, its model version); the files and the recorded
    hashes are put back afterwards (the store is shared by this module's tests)."""
    mv = store.get_model_version("churn", "1")
    location = store.get_logged_model(mv.source.rsplit("/", 1)[-1]).artifact_location
    folder = Path(url2pathname(urlparse(location).path))
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    tags = {k: v for k, v in mv.tags.items() if k.startswith(HASH_TAG)}
    yield folder, mv
    for p, data in files.items():
        p.write_bytes(data)
    _record_hashes(store, mv, json.loads(tags[HASH_TAG]))


def _record_hashes(store: MlflowClient, mv: Any, recorded: dict[str, str]) -> None:
    """What someone with write access to the store and no CHURN_BUNDLE_KEY can do: record new hashes."""
    text = json.dumps(recorded, sort_keys=True)
    store.set_tag(mv.run_id, HASH_TAG, text)
    store.set_model_version_tag(mv.name, mv.version, HASH_TAG, text)


def test_mlmodel_is_among_the_hashed_files(logged: tuple[Path, Any], store: MlflowClient) -> None:
    folder, mv = logged
    recorded = json.loads(mv.tags[HASH_TAG])
    assert {"MLmodel", "python_model.pkl", "artifacts/model.joblib"} <= set(recorded)
    assert recorded["MLmodel"] == sha256_file(folder / "MLmodel")
    # MLmodel names the loader and code MLflow runs: a changed one is refused.
    with open(folder / "MLmodel", "a") as fh:
        fh.write("code: evil\n")
    with pytest.raises(ChurnError, match="MLmodel changed since training"):
        load_model("models:/churn/1")
    # A record made before MLmodel was hashed cannot vouch for it: refused, saying what to do.
    (folder / "MLmodel").write_bytes((folder / "MLmodel").read_bytes().replace(b"code: evil\n", b""))
    _record_hashes(store, mv, {k: v for k, v in recorded.items() if k != "MLmodel"})
    with pytest.raises(ChurnError, match="do not cover MLmodel .* log it again"):
        load_model("models:/churn/1")


def test_mlflow_model_with_rewritten_hashes_is_unpickled_with_the_allow_list(
        logged: tuple[Path, Any], store: MlflowClient, tmp_path: Path) -> None:
    folder, mv = logged
    model_file = folder / "artifacts" / "model.joblib"
    good = model_file.read_bytes()
    # The pyfunc carries the sha256 of the model file it was logged with (read from the stored pickle, ours).
    pyfunc = pickle.loads((folder / "python_model.pkl").read_bytes())
    assert isinstance(pyfunc, ChurnPyfunc) and pyfunc.model_sha256 == hashlib.sha256(good).hexdigest()
    marker = tmp_path / "PWNED"
    evil = pickle.dumps(_Call(os.system, _touch(marker)))
    model_file.write_bytes(evil)
    recorded = json.loads(mv.tags[HASH_TAG])
    _record_hashes(store, mv, {**recorded, "artifacts/model.joblib": hashlib.sha256(evil).hexdigest()})
    for uri in ("models:/churn/1", f"runs:/{mv.run_id}/model"):
        with pytest.raises(ChurnError, match=r"artifacts/model\.joblib\) is not a churn model: its pickle "
                                             r"references (posix|os)\.system"):
            load_model(uri)
    # MLflow's own loader (serving, spark_udf) goes through load_context: the logged hash catches the swap...
    context = PythonModelContext({"churn_model": str(model_file)}, None)
    with pytest.raises(ChurnError, match="does not match its recorded sha256"):
        pyfunc.load_context(context)
    # ... and the allow-list refuses the pickle whatever hash the pyfunc was given (or none, logged earlier).
    for wrapper in (ChurnPyfunc(hashlib.sha256(evil).hexdigest()), ChurnPyfunc()):
        with pytest.raises(ChurnError, match=r"is not a churn model: its pickle references (posix|os)\.system"):
            wrapper.load_context(context)
    assert not marker.exists()
    model_file.write_bytes(good)
    pyfunc.load_context(context)
    assert isinstance(pyfunc.model, ChurnModel)


def test_mlflow_loads_check_hashes_recorded_at_training(store: MlflowClient, trained: Path) -> None:
    mv = store.get_model_version("churn", "1")
    recorded = json.loads(mv.tags["churn.model_sha256"])
    assert {"MLmodel", "python_model.pkl", "artifacts/model.joblib"} <= set(recorded)
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


def test_nothing_personal_in_mlflow_or_the_bundle(store: MlflowClient, trained: Path) -> None:
    """Every value of every text column of the input that is not a declared category (the customers' names
    and e-mails; the profile's categoricals, event types and ticket categories are declared), and every id,
    is absent from the MLflow runs and from the bundle."""
    customers = pd.read_parquet(trained / "data" / "customers.parquet")
    ids = set(customers["customer_id"].astype(str))
    declared = {"customer_id", "plan", "region", "country", "language", "channel"}
    free_text = [c for c in customers.columns if pd.api.types.is_string_dtype(customers[c]) and c not in declared]
    assert sorted(free_text) == ["email", "name"]
    words = {v for c in free_text for v in customers[c].dropna()}  # full names and e-mails: unique enough
    assert len(ids) == 400 and len(words) > 700
    exp = store.get_experiment_by_name("churn")
    runs = store.search_runs([exp.experiment_id])
    assert runs
    texts = []
    for run in runs:
        texts += [json.dumps(run.data.params), json.dumps(run.data.tags)]
    files = [f for f in (trained / "mlartifacts").rglob("*") if f.is_file()]
    assert any(f.name == "holdout.parquet" for f in files)  # the artifact that used to carry them is there
    bundle = [f for f in (trained / "models" / "churn-1").rglob("*") if f.is_file()]
    assert any(f.name == "model.joblib" for f in bundle) and any(f.name == "features.json" for f in bundle)
    files += bundle
    for f in files:  # every artifact, pickles included, as bytes
        raw = f.read_bytes()
        if f.suffix == ".parquet":
            raw = pd.read_parquet(f).to_csv(index=False).encode()
        texts.append(raw.decode("latin-1"))
    blob = "\n".join(texts)
    # Ids are 7-digit numbers: match whole numbers only (a float such as 4.9100000000000001 contains one).
    numbers = set(re.findall(r"(?<![\d.])\d+(?![\d.])", blob))
    assert sorted(ids & numbers) == []
    assert sorted(w for w in words if w in blob) == []
