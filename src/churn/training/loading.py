"""`load_model`: one way to get a ChurnModel from a registry alias, a version, a run or a bundle folder.

MLflow models are code too (pickles): training records the sha256 of every file of the logged model, MLmodel
included, as the run's and the model version's tag `churn.model_sha256` (HMAC-signed under
`CHURN_BUNDLE_KEY` when set, tag `churn.model_sha256_sig`). `models:/` and `runs:/` loads download the
files, check them against that record and refuse a model without one, before anything is unpickled. Then
only the ChurnModel file is unpickled: read once, checked against its recorded hash on those bytes, and
unpickled with churn's allow-list (`churn.training.safe_pickle`). MLflow's own loader, which would unpickle
`python_model.pkl` with cloudpickle (no allow-list), is not used.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from churn.errors import ChurnError
from churn.training.model import ChurnModel

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")
HASH_TAG = "churn.model_sha256"
HASH_SIG_TAG = "churn.model_sha256_sig"
# Written by MLflow itself into the downloaded folder on a models:/ download: not part of the logged model.
_MLFLOW_DOWNLOAD_METADATA = "registered_model_meta"
# Where `log_model` puts the pyfunc's `churn_model` artifact (churn.training.pyfunc): the file unpickled.
PYFUNC_MODEL_FILE = "artifacts/model.joblib"
MLMODEL = "MLmodel"


def artifact_hashes(folder: str | Path) -> dict[str, str]:
    """sha256 of every file under a downloaded MLflow model folder, by relative path. MLmodel is included
    (it names the loader and code MLflow runs); the top-level registered_model_meta is not (MLflow writes
    it on a models:/ download)."""
    from churn.training.bundle import sha256_file

    root = Path(folder)
    out = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel != _MLFLOW_DOWNLOAD_METADATA:
            out[rel] = sha256_file(p)
    return out


def hash_tags(hashes: dict[str, str]) -> dict[str, str]:
    """The tags that record `hashes` (and their HMAC under CHURN_BUNDLE_KEY, when set)."""
    from churn.training.bundle import bundle_key, sign

    text = json.dumps(hashes, sort_keys=True)
    tags = {HASH_TAG: text}
    key = bundle_key()
    if key is not None:
        tags[HASH_SIG_TAG] = sign(text.encode(), key)
    return tags


def check_hashes(uri: str, folder: Path, tags: dict[str, str]) -> dict[str, str]:
    """Refuse the downloaded model in `folder` unless its files match the hashes recorded at training;
    returns the recorded hashes (by relative path)."""
    import hmac

    from churn.training.bundle import KEY_ENV, bundle_key, sign

    text = tags.get(HASH_TAG)
    if not text:
        raise ChurnError(f"{uri}: no artifact hashes were recorded at training (tag {HASH_TAG}); refusing to load "
                         "a model whose files cannot be checked (it is a pickle, i.e. code)")
    key = bundle_key()
    if key is not None and not hmac.compare_digest(tags.get(HASH_SIG_TAG, ""), sign(text.encode(), key)):
        raise ChurnError(f"{uri}: the recorded artifact hashes are not signed under {KEY_ENV} (unsigned, changed, "
                         "or another key): refusing it")
    try:
        recorded = json.loads(text)
    except ValueError:
        raise ChurnError(f"{uri}: the recorded artifact hashes (tag {HASH_TAG}) are unreadable") from None
    if not isinstance(recorded, dict) or not all(isinstance(v, str) for v in recorded.values()):
        raise ChurnError(f"{uri}: the recorded artifact hashes (tag {HASH_TAG}) are malformed")
    if MLMODEL not in recorded:
        raise ChurnError(f"{uri}: its recorded artifact hashes do not cover {MLMODEL} (recorded by an earlier "
                         "churn); refusing a model whose files cannot all be checked: log it again (churn train)")
    found = artifact_hashes(folder)
    problems = [f"{f} changed since training" for f in sorted(recorded) if f in found and found[f] != recorded[f]]
    problems += [f"{f} is missing" for f in sorted(recorded) if f not in found]
    problems += [f"{f} was not there at training" for f in sorted(found) if f not in recorded]
    if problems:
        raise ChurnError(f"{uri} failed its integrity check against the hashes recorded at training: "
                         + "; ".join(problems))
    return recorded


def load_model(uri_or_path: str) -> ChurnModel:
    """Load a ChurnModel from "models:/churn@champion", "models:/churn/3", "runs:/<run id>/model" or a
    bundle folder (hashes verified). MLflow URIs use the project's tracking store (`tracking_uri()`)."""
    s = str(uri_or_path)
    if not _URI.match(s) or s.startswith("file:"):
        path = Path(s.removeprefix("file://"))
        if path.is_dir():
            from churn.training.bundle import load_bundle

            return load_bundle(path)
        raise ChurnError(f"no model bundle at {path} (expected a folder with manifest.json, or an MLflow URI "
                         "such as models:/churn@champion)")
    return _load_mlflow(s)


def _load_mlflow(uri: str) -> ChurnModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    from churn.training.safe_pickle import load_model_bytes, read_verified
    from churn.training.tracking import mlflow_session

    with mlflow_session() as client, tempfile.TemporaryDirectory(prefix="churn-load-") as tmp:
        try:
            tags = _recorded_tags(client, uri)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            recorded = check_hashes(uri, local, tags)
        except MlflowException as exc:
            raise ChurnError(f"cannot load model {uri}: {exc.message}") from None
        except OSError as exc:
            raise ChurnError(f"cannot load model {uri}: {exc}") from None
        if PYFUNC_MODEL_FILE not in recorded:
            raise ChurnError(f"{uri} is not a churn model (no {PYFUNC_MODEL_FILE} in it)")
        # The ChurnModel only, from the bytes whose hash is checked; python_model.pkl is never unpickled.
        label = f"{uri} ({PYFUNC_MODEL_FILE})"
        data = read_verified(local / PYFUNC_MODEL_FILE, recorded[PYFUNC_MODEL_FILE], label=label)
        model = load_model_bytes(data, label)
        if not isinstance(model, ChurnModel):
            raise ChurnError(f"{label} does not hold a ChurnModel (found {type(model).__name__})")
        name, version = _registered_version(client, uri)
    meta = getattr(model, "metadata_", None)
    if isinstance(meta, dict):
        meta["model_uri"] = uri
        if name and version:
            meta["registered_name"], meta["registered_version"] = name, version
    return model


def _recorded_tags(client: Any, uri: str) -> dict[str, str]:
    """The tags recorded at training for `uri`: the model version's for models:/, the run's for runs:/."""
    m = re.match(r"^models:/([^/@]+)(?:/(\d+)|@(.+))$", uri)
    if m:
        name, ver, alias = m.groups()
        mv = client.get_model_version_by_alias(name, alias) if alias else client.get_model_version(name, ver)
        return dict(mv.tags or {})
    m = re.match(r"^runs:/([^/]+)/", uri)
    if m:
        return dict(client.get_run(m.group(1)).data.tags)
    raise ChurnError(f"cannot load model {uri}: only models:/<name>/<version>, models:/<name>@<alias> and "
                     "runs:/<run id>/<path> URIs (or a bundle folder) are supported")


def _registered_version(client, uri: str) -> tuple[str | None, str | None]:
    """(registered name, version) behind a models:/ or runs:/ URI, when the registry knows it."""
    from mlflow.exceptions import MlflowException

    try:
        m = re.match(r"^models:/([^/@]+)(?:/(\d+)|@(.+))$", uri)
        if m:
            name, ver, alias = m.groups()
            if alias:
                ver = str(client.get_model_version_by_alias(name, alias).version)
            return name, ver
        m = re.match(r"^runs:/([^/]+)/", uri)
        if m:
            found = client.search_model_versions(f"run_id='{m.group(1)}'")
            if found:
                return found[0].name, str(found[0].version)
    except MlflowException:
        pass
    return None, None
