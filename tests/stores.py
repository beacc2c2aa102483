"""Fresh MLflow tracking stores for tests, without running MLflow's schema migrations for each one.

A new SQLite store runs every migration of MLflow's schema (~1.1 s on an idle core, twice that beside another
test); the suite makes a few dozen. Each test process migrates one empty store once and every store a test
asks for is a copy of it: the same schema and an empty `Default` experiment (whose artifact location is the
template's folder, where a fresh store's would be the working directory's `mlruns`; churn logs to experiments
of its own). The first migration of a store is still exercised, by the demo workspace's `churn demo` and by
the tests that start a tracking server.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from pathlib import Path

_lock = threading.Lock()
_template: Path | None = None


def _migrated_template() -> Path:
    """This process's empty, migrated SQLite store (made on first use)."""
    global _template
    with _lock:
        if _template is None:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            folder = Path(tempfile.mkdtemp(prefix="churn-mlflow-template-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            store = SqlAlchemyStore(f"sqlite:///{folder / 'mlruns.db'}", (folder / "artifacts").as_uri())
            store.engine.dispose()
            _template = folder / "mlruns.db"
    return _template


def fresh_store(folder: Path, name: str = "mlruns.db") -> str:
    """A new, empty tracking store at `folder/name` (a copy of the migrated template; left alone when the
    file exists already); its tracking URI."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        shutil.copyfile(_migrated_template(), path)
    return f"sqlite:///{path}"
