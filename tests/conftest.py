"""Suite-wide settings: Hypothesis runs derandomised on CI, so a failure found there replays exactly; and one
way for a test module to point MLflow at a store of its own."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from hypothesis import settings

# "ci": the examples derive from each test's own code (derandomize), no example database between runs,
# no deadline (2 shared cores make timing noisy). Loaded when CI=true, or by HYPOTHESIS_PROFILE=ci.
settings.register_profile("ci", derandomize=True, database=None, deadline=None, print_blob=True)
settings.register_profile("dev", deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") == "true" else "dev"))


@contextmanager
def _mlflow_env(root: Path) -> Iterator[Path]:
    """MLflow's tracking store (SQLite) and artifact root inside `root` for the block; environment restored."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root}/mlruns.db")
    mp.setenv("CHURN_ARTIFACT_ROOT", (root / "artifacts").as_uri())
    try:
        yield root
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def mlflow_env() -> Callable[[Path], AbstractContextManager[Path]]:
    """`with mlflow_env(folder):` a fresh MLflow store in `folder` (conftest modules cannot be imported)."""
    return _mlflow_env


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory, mlflow_env):
    """A fresh SQLite tracking store + artifact root for one test module (creating one costs seconds of
    migrations, so a module's tests share it)."""
    with mlflow_env(tmp_path_factory.mktemp("mlflow")) as root:
        yield root
