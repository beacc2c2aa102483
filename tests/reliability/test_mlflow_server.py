"""Training against a real `mlflow server` on 127.0.0.1, started and stopped by the test (SQLite backend and
artifacts in a temporary folder): the run and the registered model land on the server; when the server goes
away in the middle of a run, `churn train` fails with a clear error (no traceback) and the model is still
saved as a local bundle `models/<name>-unregistered-<run>`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import run_churn, start_churn
from mlflow import MlflowClient

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group (gunicorn/uvicorn workers included) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)  # the group led by the server, started with setsid
    proc.wait(30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A fresh `mlflow server` (one worker, no job runner) on a free local port; (its URI, its process)."""
    port = _free_port()
    store = tmp_path / "server"
    store.mkdir()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    proc = subprocess.Popen(
        ["setsid", str(mlflow_cli), "server", "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
         "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=store, env=env, stdout=subprocess.DEVNULL, stderr=(store / "server.log").open("w"))
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (store / "server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not answer within 60 s"
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
        yield uri, proc
    finally:
        _stop(proc)


def _server_env(uri: str) -> dict[str, str]:
    # No CHURN_ARTIFACT_ROOT: artifacts go where the server says (proxied, its --artifacts-destination), not to
    # a folder of the client; no retries and a short timeout, so a vanished server fails the run in seconds.
    return {"MLFLOW_TRACKING_URI": uri, "CHURN_ARTIFACT_ROOT": "", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}


def test_training_logs_to_a_real_server_and_survives_it_going_away(server, tmp_path: Path) -> None:
    uri, proc = server
    work = tmp_path / "work"
    work.mkdir()
    r = run_churn(work, "generate", "--out", "data", "--customers", "400", "--start", "2024-01-01",
                  "--end", "2024-10-01", "--seed", "5")
    assert r.returncode == 0, r.stderr

    # 1. The server up: a finished run, the model registered (alias challenger), the bundle beside it.
    r = run_churn(work, "train", "--data", "data", **_server_env(uri))
    assert r.returncode == 0, r.stdout + r.stderr
    client = MlflowClient(tracking_uri=uri)
    [mv] = client.search_model_versions("name='churn'")
    assert mv.version == "1" and "challenger" in client.get_registered_model("churn").aliases
    run = client.get_run(mv.run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["roc_auc"] > 0.5
    assert client.list_artifacts(mv.run_id)  # artifacts uploaded through the server, into its store
    assert any((tmp_path / "server" / "artifacts").rglob("*")) and not (work / "mlartifacts").exists()
    assert (work / "models" / "churn-1" / "manifest.json").is_file()

    # 2. Paused just before logging the model; the server killed; the run resumed.
    go = work / "go"
    train = start_churn(work, "train", "--data", "data", CHURN_PAUSE_AT="register", CHURN_PAUSE_FILE=str(go),
                        **_server_env(uri))
    deadline = time.monotonic() + 120
    while not Path(f"{go}.reached").exists():
        assert train.poll() is None and time.monotonic() < deadline, train.communicate()
        time.sleep(0.1)
    _stop(proc)
    go.touch()
    out, err = train.communicate(timeout=120)
    said = " ".join((out + err).split())  # the console wraps long lines
    assert train.returncode not in (0, None), said
    assert "Traceback" not in out + err
    assert "MLflow tracking store" in said and "NOT registered" in said, said
    unregistered = [p for p in (work / "models").iterdir() if p.name.startswith("churn-unregistered-")]
    assert len(unregistered) == 1, sorted(p.name for p in (work / "models").iterdir())
    assert (unregistered[0] / "manifest.json").is_file()
    assert str(unregistered[0].name) in said  # the error names the bundle it wrote
    # The saved bundle passes the integrity checks and loads as the model it is.
    from churn.training.loading import load_model

    model = load_model(str(unregistered[0]))
    assert model.metadata_.get("registered_version") is None and model.features_
