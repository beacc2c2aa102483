"""Reading a config: the YAML file (default configs/default.yaml), its sections kept in other files, the
schema and the cross-checks; and the two places outside the config that runs use, the MLflow tracking URI
and the artifact root.

A section may be given inline or as the name of another YAML file next to the config
(``incentives: incentives.yaml``), so long catalogues live in their own file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from churn.config.checks import check_config
from churn.config.schema import Config
from churn.errors import ChurnError

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "default.yaml"


def _resolve_includes(raw: dict[str, Any], base: Path) -> dict[str, Any]:
    """Replace `section: other.yaml` with that file's contents (relative to the config's folder)."""
    out = dict(raw)
    for key, val in raw.items():
        if isinstance(val, str) and val.endswith((".yaml", ".yml")) and key != "source_file":
            inc = (base / val) if not Path(val).is_absolute() else Path(val)
            if not inc.is_file():
                raise ChurnError(f"config section '{key}' points to {inc}, which does not exist")
            out[key] = yaml.safe_load(inc.read_text()) or {}
    return out


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a YAML config (default: configs/default.yaml, else built-in defaults)."""
    p = Path(path) if path is not None else DEFAULT_CONFIG
    if path is None and not p.is_file():
        return Config()
    if not p.is_file():
        raise ChurnError(f"config file {p} does not exist")
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ChurnError(f"config file {p} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ChurnError(f"config file {p} must hold a mapping of sections")
    raw = _resolve_includes(raw, p.parent)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        msgs = "\n".join(
            f"  - {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" if e["loc"]
            else f"  - {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise ChurnError(f"config file {p} is invalid:\n{msgs}") from None
    check_config(cfg, f"config file {p}")
    # Relative source paths are relative to the config's folder's parent project, i.e. the CWD: keep as-is.
    return cfg.model_copy(update={"source_file": str(p)})

def tracking_uri() -> str:
    """MLflow tracking URI: $MLFLOW_TRACKING_URI, else a SQLite file in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlruns.db').resolve()}"


def artifact_root() -> str:
    """Where a local SQLite store keeps artifacts (./mlartifacts), so runs don't scatter into ./mlruns."""
    return os.environ.get("CHURN_ARTIFACT_ROOT") or Path("mlartifacts").resolve().as_uri()
