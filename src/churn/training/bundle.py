"""Model bundles: a self-checking folder to score without an MLflow store.

`<bundle_dir>/<name>-<version>/` holds model.joblib, features.json and manifest.json (sha256 of every other
file, the feature list, library versions, metrics, created-at, MLflow run id). It is written atomically;
loading verifies every hash and warns when library versions differ from the ones it was trained with.

A bundle is code: model.joblib is a pickle (protocol 5; joblib's format in bundles of format 1), and
unpickling runs whatever it names. Loading therefore refuses (with a ChurnError, before unpickling) a bundle
whose manifest is missing or malformed, that holds a file the manifest does not list, or whose files do not
match their hashes; it unpickles the very bytes it hashed (read once) with the exact allow-list of
`churn.training.safe_pickle`, so a pickle naming anything a churn model is not made of is refused before it
runs. When the environment variable `CHURN_BUNDLE_KEY` is set, manifests are signed with HMAC-SHA256 under
that key (`manifest.sig`) and unsigned or wrongly signed bundles are refused, so a swapped file with a
rewritten manifest is caught. Load bundles only from stores you trust.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from churn.errors import ChurnError
from churn.io import atomic_dir
from churn.training.model import ChurnModel, library_versions
from churn.training.safe_pickle import dump_model, load_model_bytes, read_verified

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
MODEL_FILE = "model.joblib"
FEATURES_FILE = "features.json"
SIGNATURE_FILE = "manifest.sig"
KEY_ENV = "CHURN_BUNDLE_KEY"
# 2: model.joblib is a standard pickle (protocol 5). 1: joblib's format (still read, see safe_pickle).
BUNDLE_FORMAT = 2


def bundle_key() -> bytes | None:
    """The HMAC key for bundle manifests (`CHURN_BUNDLE_KEY`), or None when unset or empty."""
    key = os.environ.get(KEY_ENV, "")
    return key.encode() if key else None


def sign(data: bytes, key: bytes) -> str:
    """Hex HMAC-SHA256 of `data` under `key`."""
    return hmac.new(key, data, hashlib.sha256).hexdigest()


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
        (tmp / MODEL_FILE).write_bytes(dump_model(model))
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

        text = json.dumps(jsonable(manifest), indent=2, sort_keys=True, default=str) + "\n"
        (tmp / MANIFEST).write_text(text)
        key = bundle_key()
        if key is not None:
            (tmp / SIGNATURE_FILE).write_text(sign(text.encode(), key) + "\n")
    log.info("bundle written to %s", path)
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of the bundle at `path` (ChurnError when absent, unreadable or malformed)."""
    return _read_manifest(Path(path))[1]


def _read_manifest(path: Path) -> tuple[bytes, dict[str, Any]]:
    """(the manifest's bytes, read once, and what they say): the signature is checked on the same bytes
    that are parsed, so the manifest cannot change in between."""
    p = path / MANIFEST
    if not p.is_file():
        raise ChurnError(f"{path}: not a model bundle (no {MANIFEST})")
    try:
        raw = p.read_bytes()
        manifest = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise ChurnError(f"{p}: cannot read the bundle manifest ({exc}); the bundle is corrupt") from None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise ChurnError(f"{p}: malformed bundle manifest (no 'files' mapping of names to sha256); "
                         "the bundle is corrupt")
    return raw, manifest


def _check_signature(path: Path, manifest_bytes: bytes) -> None:
    """With `CHURN_BUNDLE_KEY` set, the manifest (these bytes of it) must carry a valid HMAC signature."""
    key = bundle_key()
    if key is None:
        return
    sig_file = path / SIGNATURE_FILE
    if not sig_file.is_file():
        raise ChurnError(f"model bundle {path} is not signed ({SIGNATURE_FILE} missing) and {KEY_ENV} is set: "
                         "refusing an unsigned bundle")
    expected = sign(manifest_bytes, key)
    if not hmac.compare_digest(sig_file.read_text().strip(), expected):
        raise ChurnError(f"model bundle {path}: the manifest's signature does not match under {KEY_ENV} "
                         "(the manifest was changed, or signed with another key): refusing it")


def verify_bundle(path: str | Path) -> dict[str, Any]:
    """Check the manifest (and its signature when `CHURN_BUNDLE_KEY` is set), that every listed file exists
    and matches its sha256, and that the folder holds no file the manifest does not list; returns it."""
    path = Path(path)
    raw, manifest = _read_manifest(path)
    _check_signature(path, raw)
    files = manifest["files"]
    if MODEL_FILE not in files:
        raise ChurnError(f"{path}: the manifest lists no {MODEL_FILE}")
    problems = []
    for fname, digest in sorted(files.items()):
        f = path / fname
        if Path(fname).name != fname or fname in (MANIFEST, SIGNATURE_FILE):
            problems.append(f"the manifest lists an invalid file name {fname!r}")
        elif not f.is_file():
            problems.append(f"{fname} is missing")
        elif sha256_file(f) != digest:
            problems.append(f"{fname} does not match its sha256 in {MANIFEST} (changed or corrupted)")
    extra = sorted(str(p.relative_to(path)) for p in path.rglob("*")
                   if p.name not in files and p.name not in (MANIFEST, SIGNATURE_FILE) or p.parent != path)
    if extra:
        problems.append(f"files not listed in {MANIFEST}: {', '.join(extra[:10])}")
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
    # The bytes unpickled are the bytes hashed: a file swapped after `verify_bundle` read it is caught here.
    data = read_verified(path / MODEL_FILE, manifest["files"][MODEL_FILE])
    model = load_model_bytes(data, str(path / MODEL_FILE))
    if not isinstance(model, ChurnModel):
        raise ChurnError(f"{path / MODEL_FILE} does not hold a ChurnModel (found {type(model).__name__})")
    meta = getattr(model, "metadata_", None)
    if isinstance(meta, dict):
        meta.setdefault("registered_name", manifest.get("name"))
        if manifest.get("version") is not None:
            meta.setdefault("registered_version", manifest["version"])
        meta["bundle_path"] = str(path)
    return model
