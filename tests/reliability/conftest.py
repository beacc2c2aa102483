"""Shared fixtures for the reliability tests: one small generated data source and a model trained on it
through the real CLI into a SQLite MLflow store, all in a temporary work folder."""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # 2 shared cores: no OpenMP oversubscription in tests

import subprocess
import sys
from pathlib import Path

import forked_cli
import pytest
from shared import built_once, worker_copy
from stores import fresh_store

# These tests check crash safety, integrity and privacy, not model quality: `churn train` here trains small.
OLD_OUTPUT, OLD_OUTPUT_AS_OF = "kill-swap-old", "2024-09-01"  # see `trained`
FAST_CONFIG = str(Path(__file__).resolve().parents[1] / "fast.yaml")


def _args(args: tuple[str, ...]) -> list[str]:
    """`args`, with the fast test config added to a `train` that names no config of its own."""
    if args and args[0] == "train" and "--config" not in args:
        return [*args, "--config", FAST_CONFIG]
    return list(args)


def churn_env(work: Path, **extra: str) -> dict[str, str]:
    """The environment of a `churn` process working in `work` (its own SQLite store and artifacts, unless
    `extra` names another tracking URI)."""
    store = extra.get("MLFLOW_TRACKING_URI") or fresh_store(work)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": store,
           "CHURN_ARTIFACT_ROOT": (work / "mlartifacts").as_uri(), "PYTHONHASHSEED": "0"}
    env.pop("CHURN_KILL_AT", None)
    env.pop("CHURN_PAUSE_AT", None)
    return {**env, **extra}


def run_churn(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `churn <args>` as a process in `work` and wait for it (a `train` with the fast test config)."""
    return forked_cli.run(_args(args), env=churn_env(work, **env), cwd=work, timeout=600)


def run_churn_fresh(work: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`run_churn` as the installed `churn` command in a fresh interpreter: what the forked commands cannot
    show, a command that imports everything it uses itself, whatever the fork server had preloaded."""
    churn = Path(sys.executable).with_name("churn")
    return subprocess.run([str(churn), *_args(args)], cwd=work, env=churn_env(work, **env), capture_output=True,
                          encoding="utf-8", errors="replace", timeout=600)


def start_churn(work: Path, *args: str, **env: str) -> forked_cli.ForkedChurn:
    """Start `churn <args>` as a process in `work` without waiting (a `train` with the fast test config)."""
    return forked_cli.start(_args(args), env=churn_env(work, **env), cwd=work)


def _train_and_score(work: Path) -> None:
    r = run_churn(work, "generate", "--out", "data", "--customers", "400", "--start", "2024-01-01",
                  "--end", "2024-10-01", "--seed", "5")
    assert r.returncode == 0, r.stderr
    r = run_churn_fresh(work, "train", "--data", "data")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (work / "models" / "churn-1" / "manifest.json").is_file()
    # The finished output the crash tests replace: one `churn score --csv` in a fresh interpreter.
    r = run_churn_fresh(work, "score", "--data", "data", "--as-of", OLD_OUTPUT_AS_OF, "--model", "models/churn-1",
                        "--out", str(work / OLD_OUTPUT), "--csv")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A work folder with data/ (400 generated customers, seed 5), models/churn-1 (trained by the CLI, in a
    fresh interpreter) and OLD_OUTPUT (a finished `churn score --csv` run at OLD_OUTPUT_AS_OF): built once per
    test run (tests/shared.py), and copied for each worker, whose tests write into it."""
    shared = built_once(tmp_path_factory, "shared-trained", _train_and_score)
    return worker_copy(shared, tmp_path_factory.mktemp("reliability"))
