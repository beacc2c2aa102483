"""Model bundles: a self-checking folder to score without an MLflow store.

`<bundle_dir>/<name>-<version>/` holds model.joblib, features.json and manifest.json (sha256 of every other
file, the feature list, library versions, metrics, created-at, MLflow run id). It is written atomically;
loading verifies every hash and warns when library versions differ from the ones it was trained with.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from churn.errors import ChurnError
from churn.io import atomic_dir
from churn.training.model import ChurnModel, library_versions

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
FEATURES_FILE = "features.json"
BUNDLE_FORMAT = 1


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def features_document(model: ChurnModel) -> list[dict[str, Any]]:
    """The model's features in order, with kind, description and (categoricals) the levels it knows."""
    out = []
    for f in model.features_:
        d = f.to_dict()
        if f.name in model.categorical_levels_:
            d["levels"] = model.categorical_levels_[f.name]
        out.append(d)
    return out


def export_bundle(model: ChurnModel, path: str | Path, *, name: str, version: str | int | None = None,
                  run_id: str | None = None, model_uri: str | None = None, overwrite: bool = False) -> Path:
    """Write `model` as a bundle folder at `path` (atomically); returns the folder."""
    path = Path(path)
    with atomic_dir(path, overwrite=overwrite) as tmp:
        joblib.dump(model, tmp / MODEL_FILE)
        (tmp / FEATURES_FILE).write_text(json.dumps(features_document(model), indent=2) + "\n")
        meta = getattr(model, "metadata_", {})
        files = {p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        manifest = {
            "format": BUNDLE_FORMAT,
            "name": name,
            "version": None if version is None else str(version),
            "model_uri": model_uri,
            "mlflow_run_id": run_id,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": files,
            "features": [f.name for f in model.features_],
            "versions": meta.get("versions", library_versions()),
            "metrics": meta.get("metrics", {}),
            "label": meta.get("label", {}),
            "snapshots": meta.get("snapshots", {}),
        }
        # Imported here: MLflow (behind tracking) costs seconds to import, and loading a bundle needs none.
        from churn.training.tracking import jsonable

        (tmp / MANIFEST).write_text(json.dumps(jsonable(manifest), indent=2, sort_keys=True, default=str) + "\n")
    log.info("bundle written to %s", path)
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the bundle at `path` (ChurnError when absent or unreadable)."""
    p = Path(path) / MANIFEST
    if not p.is_file():
        raise ChurnError(f"{path}: not a model bundle (no {MANIFEST})")
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ChurnError(f"{p}: cannot read the bundle manifest ({exc})") from None


def verify_bundle(path: str | Path) -> dict[str, Any]:
    """Check every file listed in the manifest exists and matches its sha256; returns the manifest."""
    path = Path(path)
    manifest = read_manifest(path)
    files = manifest.get("files") or {}
    if MODEL_FILE not in files:
        raise ChurnError(f"{path}: the manifest lists no {MODEL_FILE}")
    problems = []
    for fname, digest in sorted(files.items()):
        f = path / fname
        if not f.is_file():
            problems.append(f"{fname} is missing")
        elif sha256_file(f) != digest:
            problems.append(f"{fname} does not match its sha256 in {MANIFEST} (changed or corrupted)")
    if problems:
        raise ChurnError(f"model bundle {path} failed its integrity check: " + "; ".join(problems))
    return manifest


def version_differences(saved: dict[str, str]) -> dict[str, tuple[str, str]]:
    """Libraries whose installed version differs from the saved one: name -> (saved, installed)."""
    now = library_versions()
    return {k: (v, now[k]) for k, v in saved.items() if k in now and k != "python" and now[k] != v}


def load_bundle(path: str | Path) -> ChurnModel:
    """Verify and load a bundle; warns (UserWarning) when library versions differ from training."""
    path = Path(path)
    manifest = verify_bundle(path)
    diffs = version_differences(manifest.get("versions") or {})
    if diffs:
        msg = ", ".join(f"{k} {a} (trained) vs {b} (installed)" for k, (a, b) in sorted(diffs.items()))
        warnings.warn(f"model bundle {path}: library versions differ: {msg}", UserWarning, stacklevel=2)
    try:
        model = joblib.load(path / MODEL_FILE)
    except Exception as exc:  # noqa: BLE001 - a broken pickle is the user's file
        raise ChurnError(f"{path / MODEL_FILE}: cannot load the model ({type(exc).__name__}: {exc})") from None
    if not isinstance(model, ChurnModel):
        raise ChurnError(f"{path / MODEL_FILE} does not hold a ChurnModel (found {type(model).__name__})")
    meta = getattr(model, "metadata_", None)
    if isinstance(meta, dict):
        meta.setdefault("registered_name", manifest.get("name"))
        if manifest.get("version") is not None:
            meta.setdefault("registered_version", manifest["version"])
        meta["bundle_path"] = str(path)
    return model
