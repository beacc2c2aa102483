"""Suite-wide settings and the expensive fixtures shared by the whole run.

Hypothesis: two profiles, both derandomised (a failure found in CI replays exactly), without an example
database and without deadlines (2 shared cores make timing noisy): `ci`, about 200 examples a property (what
`make test` runs), and `deep`, 1,000 (`make test-deep`). HYPOTHESIS_PROFILE picks one. A property whose
examples are expensive (a model fit, a DuckDB build) draws a fixed share of the profile's count,
`settings.default.max_examples // k`, so `deep` scales it too.

The demo workspace (`churn demo` run once, as a user runs it) is built once per test run, whatever the number
of pytest-xdist workers: the first worker to need it builds it under a file lock, the others wait and read it.
Tests must treat it as read-only (copy what they change).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock
from hypothesis import settings

# Wide enough that the CLI's console (Rich) never folds a temporary path inside a message a test reads,
# however deep pytest-xdist's folders are; inherited by every `churn` subprocess.
os.environ.setdefault("COLUMNS", "400")

settings.register_profile("ci", max_examples=200, derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("deep", max_examples=1000, derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


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


# ------------------------------------------------------------------------------------ the demo workspace
FAST_CONFIG = Path(__file__).resolve().parent / "fast.yaml"


@dataclass(frozen=True)
class DemoWorkspace:
    """A finished `churn demo` folder: data/demo/, mlruns.db, mlartifacts/, models/ and one scoring run."""

    work: Path
    run_dir: Path  # outputs/<as_of>/
    summary: dict
    customers: int = 3000  # what `churn demo` was asked to generate
    seed: int = 11

    @property
    def data(self) -> Path:
        return self.work / "data" / "demo"

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.work / 'mlruns.db'}"

    @property
    def bundle(self) -> Path:
        [bundle] = sorted((self.work / "models").glob("churn-*"))
        return bundle

    def notebook_workspace(self, dest: Path) -> Path:
        """A `churn.workspace` folder at `dest` holding this demo's data and a copy of its MLflow store (whose
        champion's artifacts stay in the demo folder, read-only): a notebook given `dest`, `customers` and
        `seed` finds its data and champion there instead of generating and training again."""
        from churn.workspaces import END, START

        dest.mkdir(parents=True)
        shutil.copytree(self.data, dest / "data")
        shutil.copyfile(self.work / "mlruns.db", dest / "mlruns.db")
        # New runs of the copy (a notebook that trains) keep their artifacts in the copy, not the demo's.
        with sqlite3.connect(dest / "mlruns.db") as db:
            db.execute("UPDATE experiments SET artifact_location = ?", ((dest / "mlartifacts").as_uri(),))
        (dest / "workspace.json").write_text(json.dumps(
            {"customers": self.customers, "seed": self.seed, "start": str(START), "end": str(END)}))
        return dest


def _build_demo(work: Path, customers: int, seed: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlruns.db'}",
           "CHURN_ARTIFACT_ROOT": (work / "mlartifacts").as_uri()}
    churn = Path(sys.executable).with_name("churn")
    done = subprocess.run([str(churn), "demo", "--customers", str(customers), "--seed", str(seed),
                           "--workdir", str(work)], cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (work / "demo.out").write_text(done.stdout + done.stderr)


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> DemoWorkspace:
    """`churn demo` as a user runs it (the installed command, a fresh folder, 3,000 customers, seed 11),
    built once per test run and shared by every worker (read-only)."""
    # The base temp folder of the whole run: shared by the xdist workers (each has its own below it).
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    work = root / "shared-demo"
    with FileLock(str(root / "shared-demo.lock")):
        if not (work / "demo.out").is_file():
            if work.exists():
                shutil.rmtree(work)  # a build that failed half-way
            work.mkdir()
            _build_demo(work, DemoWorkspace.customers, DemoWorkspace.seed)
    reports = sorted((work / "outputs").rglob("report.html"))
    assert len(reports) == 1, reports
    run_dir = reports[0].parent
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["summary"]
    return DemoWorkspace(work, run_dir, summary)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the tests that read the shared demo workspace on one pytest-xdist worker (`--dist loadgroup`):
    the other worker runs the rest meanwhile instead of waiting for the demo's lock."""
    for item in items:
        if "demo_workspace" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("demo"))
