"""`load_model`: one way to get a ChurnModel from a registry alias, a version, a run or a bundle folder."""

from __future__ import annotations

import re
from pathlib import Path

from churn.errors import ChurnError
from churn.training.model import ChurnModel

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:/")


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

    from churn.training.tracking import mlflow_session

    with mlflow_session() as client:
        try:
            pyfunc = mlflow.pyfunc.load_model(uri)
        except MlflowException as exc:
            raise ChurnError(f"cannot load model {uri}: {exc.message}") from None
        except OSError as exc:
            raise ChurnError(f"cannot load model {uri}: {exc}") from None
        try:
            model = getattr(pyfunc.unwrap_python_model(), "model", None)
        except MlflowException:
            model = None
        if not isinstance(model, ChurnModel):
            raise ChurnError(f"{uri} is not a churn model (no ChurnModel inside its pyfunc)")
        name, version = _registered_version(client, uri)
    meta = getattr(model, "metadata_", None)
    if isinstance(meta, dict):
        meta["model_uri"] = uri
        if name and version:
            meta["registered_name"], meta["registered_version"] = name, version
    return model


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
