"""`churn score`, `churn features` and `churn train` raced against each other and SIGKILLed, as real
processes on real generated data: one winner, a clear error for the loser, nothing partial or temporary
left behind, and the next run succeeds. MLflow runs of killed trainings do not look successful."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import OLD_OUTPUT, OLD_OUTPUT_AS_OF, run_churn, start_churn
from mlflow import MlflowClient

from churn.io import TEMP_MARK

SPREAD_OVER_WORKERS = True  # each kill test runs alone on either worker (each worker has its own `trained` copy)
pytestmark = pytest.mark.slow
AS_OF = OLD_OUTPUT_AS_OF  # the date of the finished output the kill tests replace


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
                                "--out", str(out)], f"dir-written:{AS_OF}"))
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


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _score_args(out: Path) -> list[str]:
    return ["score", "--data", "data", "--as-of", AS_OF, "--model", "models/churn-1", "--out", str(out)]


# Kill points inside `churn score`'s write of its run folder (see churn.crashpoints): after the first file is
# complete, and with every file but summary.json in the folder's temporary.
MID_WRITE = {
    "file-written:scores.parquet": set(),
    "file-written:summary.json": {"scores.parquet", "segments", "segments.xlsx", "report.html", "alerts.csv",
                                  "drift.json", "notifications.json"},
}


@pytest.mark.parametrize("point", list(MID_WRITE))
def test_score_killed_mid_write_leaves_nothing_visible(trained: Path, point: str) -> None:
    out = trained / f"kill-mid-{point.split(':')[1]}"
    r = run_churn(trained, *_score_args(out), CHURN_KILL_AT=point)
    assert r.returncode == -9, r.stdout + r.stderr
    assert not (out / AS_OF).exists()  # no half-written run folder in sight
    # Killed where asked: the run's temporary holds exactly what was written before that point.
    temps = [p for p in out.iterdir() if TEMP_MARK in p.name and p.is_dir()]
    assert len(temps) == 1, _leftovers(out)
    assert {p.name for p in temps[0].iterdir() if TEMP_MARK not in p.name} == MID_WRITE[point]
    # The next run (no --overwrite: there is nothing to replace) writes it whole and sweeps the leftovers.
    r = run_churn(trained, *_score_args(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert {"scores.parquet", "summary.json", "report.html", "alerts.csv"} <= set(_files(out / AS_OF))
    assert _leftovers(out) == []


@pytest.fixture(scope="session")
def old_output(trained: Path) -> Path:
    """One finished `churn score --csv` run folder at AS_OF (the output the kill tests replace; scored once
    per test run with the trained folder, and copied by each test)."""
    return trained / OLD_OUTPUT


@pytest.mark.parametrize("point", ["file-written:summary.json", f"dir-written:{AS_OF}", f"install:{AS_OF}",
                                   f"swapped:{AS_OF}"])
def test_score_killed_while_replacing_an_output(trained: Path, old_output: Path, point: str) -> None:
    out = trained / f"kill-swap-{point.split(':')[0]}"
    shutil.copytree(old_output, out)
    before = _files(out / AS_OF)
    assert "scores.csv" in before
    r = run_churn(trained, *_score_args(out), "--overwrite", CHURN_KILL_AT=point)
    assert r.returncode == -9, r.stdout + r.stderr
    after = _files(out / AS_OF)
    if point.startswith("swapped"):  # killed just after the exchange: the new output, whole
        assert set(after) == set(before) - {"scores.csv"}
        summary = json.loads(after["summary.json"])
        assert len(pd.read_parquet(out / AS_OF / "scores.parquet")) == \
            sum(summary["summary"]["status_counts"].values())
    else:
        assert after == before  # the previous output, byte for byte
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == [AS_OF]
    assert any(TEMP_MARK in n for n in _leftovers(out))  # the dead run's temporary (swept next)
    assert run_churn(trained, *_score_args(out), "--overwrite").returncode == 0
    assert "scores.csv" not in _files(out / AS_OF) and _leftovers(out) == []


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
