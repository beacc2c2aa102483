"""`churn score`, `churn features` and `churn train` raced against each other and SIGKILLed, as real
processes on real generated data: one winner, a clear error for the loser, nothing partial or temporary
left behind, and the next run succeeds. MLflow runs of killed trainings do not look successful."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_churn, start_churn
from mlflow import MlflowClient

from churn.io import TEMP_MARK

pytestmark = pytest.mark.slow
AS_OF = "2024-09-01"


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _race(work: Path, args: list[str], point: str) -> list[tuple[int, str, str]]:
    """Start two identical runs, hold both just before installing their output, release both."""
    procs = [start_churn(work, *args, CHURN_PAUSE_AT=point, CHURN_PAUSE_FILE=str(work / f"go{i}"))
             for i in range(2)]
    deadline = time.monotonic() + 300
    while not all((work / f"go{i}.reached").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        time.sleep(0.1)
    for i in range(2):
        (work / f"go{i}").touch()
    return [(p.wait(300), *p.communicate()) for p in procs]


def _one_winner(results: list[tuple[int, str, str]]) -> str:
    codes = sorted(rc for rc, _, _ in results)
    assert codes == [0, 1], results
    loser = " ".join(next(out + err for rc, out, err in results if rc == 1).split())  # the console wraps lines
    assert "already exists" in loser and "Traceback" not in loser
    return loser


def test_two_scores_into_one_folder_one_wins(trained: Path) -> None:
    out = trained / "race-out"
    _one_winner(_race(trained, ["score", "--data", "data", "--as-of", AS_OF, "--model", "models/churn-1",
                                "--out", str(out)], "dir-written"))
    run = out / AS_OF
    summary = json.loads((run / "summary.json").read_text())
    assert len(pd.read_parquet(run / "scores.parquet")) == sum(summary["summary"]["status_counts"].values())
    assert _leftovers(out) == []


def test_two_feature_builds_into_one_file_one_wins(trained: Path) -> None:
    target = trained / "feat-race" / "features.parquet"
    _one_winner(_race(trained, ["features", "--data", "data", "--as-of", AS_OF, "--out", str(target)],
                      "file-written"))
    assert len(pd.read_parquet(target)) > 100
    assert _leftovers(target.parent) == []


@pytest.mark.parametrize("delay", [1.0, 3.0, 6.0])
def test_score_killed_after_a_delay(trained: Path, delay: float) -> None:
    out = trained / f"kill-score-{delay}"
    p = start_churn(trained, "score", "--data", "data", "--as-of", AS_OF, "--model", "models/churn-1",
                    "--out", str(out))
    time.sleep(delay)
    p.kill()
    p.wait(60)
    run = out / AS_OF
    # Nothing partial: the run folder is absent or complete.
    if run.exists():
        assert {"scores.parquet", "summary.json", "report.html"} <= {f.name for f in run.iterdir()}
    r = run_churn(trained, "score", "--data", "data", "--as-of", AS_OF, "--model", "models/churn-1",
                  "--out", str(out), "--overwrite")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (run / "summary.json").is_file() and _leftovers(out) == []


@pytest.mark.parametrize("point", ["dir-written", "install"])
def test_score_killed_at_the_swap(trained: Path, point: str) -> None:
    out = trained / f"kill-swap-{point}"
    args = ["score", "--data", "data", "--as-of", AS_OF, "--model", "models/churn-1", "--out", str(out)]
    assert run_churn(trained, *args).returncode == 0
    before = (out / AS_OF / "scores.parquet").read_bytes()
    r = run_churn(trained, *args, "--overwrite", CHURN_KILL_AT=point)
    assert r.returncode == -9
    assert (out / AS_OF / "scores.parquet").read_bytes() == before  # the previous output, whole
    assert any(TEMP_MARK in n for n in _leftovers(out))  # the dead run's temporary (swept next)
    assert run_churn(trained, *args, "--overwrite").returncode == 0
    assert _leftovers(out) == []


def test_features_killed_before_install(trained: Path) -> None:
    target = trained / "feat-kill" / "features.csv"
    r = run_churn(trained, "features", "--data", "data", "--as-of", AS_OF, "--as-of", "2024-08-01",
                  "--out", str(target), CHURN_KILL_AT="file-written")
    assert r.returncode == -9 and not target.exists()
    r = run_churn(trained, "features", "--data", "data", "--as-of", AS_OF, "--out", str(target))
    assert r.returncode == 0 and target.is_file() and _leftovers(target.parent) == []


def test_train_killed_mid_run_is_not_a_finished_run(trained: Path) -> None:
    r = run_churn(trained, "train", "--data", "data", CHURN_KILL_AT="register")
    assert r.returncode == -9
    client = MlflowClient(tracking_uri=f"sqlite:///{trained / 'mlruns.db'}")
    exp = client.get_experiment_by_name("churn")
    runs = client.search_runs([exp.experiment_id], "tags.mlflow.runName LIKE 'train-%'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    assert runs[0].info.status in ("RUNNING", "FAILED")  # never FINISHED
    assert not [p for p in (trained / "models").iterdir() if p.name.startswith(".")]
    r = run_churn(trained, "train", "--data", "data")
    assert r.returncode == 0, r.stdout + r.stderr
    latest = client.search_runs([exp.experiment_id], "tags.mlflow.runName LIKE 'train-%'",
                                order_by=["attributes.start_time DESC"], max_results=1)[0]
    assert latest.info.status == "FINISHED"
    assert (trained / "models" / f"churn-{latest.data.tags['registered_version']}" / "manifest.json").is_file()
