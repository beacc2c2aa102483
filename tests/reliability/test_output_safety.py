"""Output writing under races and SIGKILL, at the level of `churn.io`'s writers, with real processes.

Each writer runs in its own Python process; the `CHURN_PAUSE_AT` / `CHURN_KILL_AT` checkpoints in the
writers (`churn.crashpoints`, armed only in processes started with them) hold two processes at the same
point (so the race is real, not a matter of luck) or kill one at an exact step of the write. A killed
writer's temporaries are told from a live one's by their lock, never by a process id.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from churn import crashpoints
from churn.errors import ChurnError
from churn.io import TEMP_MARK, atomic_dir, checkpoint, ensure_writable, sweep_stale, write_text

WRITER = r"""
import sys
from pathlib import Path
from churn.io import atomic_dir, atomic_path
kind, target, tag, overwrite = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
if kind == "dir":
    with atomic_dir(target, overwrite) as tmp:
        (tmp / "part1.txt").write_text(tag)
        (tmp / "part2.txt").write_text(tag)
else:
    with atomic_path(target, overwrite) as tmp:
        tmp.write_text(tag)
print("wrote", tag)
"""


def _writer(kind: str, target: Path, tag: str, overwrite: bool = False, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, kind, str(target), tag, "1" if overwrite else "0"],
                            env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if TEMP_MARK in p.name or p.name.endswith((".old", ".tmp")))


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_two_writers_of_one_output_exactly_one_wins(tmp_path: Path, kind: str) -> None:
    target = tmp_path / "out" / ("2025-01-01" if kind == "dir" else "features.parquet")
    point = "dir-written" if kind == "dir" else "file-written"
    go = tmp_path / "go"
    # Both pass the early "does it exist" check and finish writing before either installs: the old code
    # let the second silently replace the first here.
    procs = {tag: _writer(kind, target, tag, CHURN_PAUSE_AT=point, CHURN_PAUSE_FILE=str(go) + tag)
             for tag in ("A", "B")}
    for tag in procs:
        _wait_for(Path(f"{go}{tag}.reached"))
    for tag in procs:
        Path(f"{go}{tag}").touch()
    results = {tag: (p.wait(60), *p.communicate()) for tag, p in procs.items()}
    winners = [t for t, (rc, _, _) in results.items() if rc == 0]
    losers = [t for t, (rc, _, _) in results.items() if rc != 0]
    assert len(winners) == 1 and len(losers) == 1, results
    err = results[losers[0]][2]
    assert "already exists" in err and "nothing was replaced" in err
    content = (target / "part1.txt").read_text() if kind == "dir" else target.read_text()
    assert content == winners[0]  # the winner's output, whole, and not replaced by the loser
    assert _temps(target.parent) == []


@pytest.mark.parametrize("point", ["dir-written", "install", "swapped"])
def test_sigkill_during_overwrite_keeps_a_whole_copy(tmp_path: Path, point: str) -> None:
    target = tmp_path / "2025-01-01"
    assert _writer("dir", target, "old").wait(60) == 0
    p = _writer("dir", target, "new", overwrite=True, CHURN_KILL_AT=point)
    assert p.wait(60) == -9  # killed by SIGKILL at the checkpoint
    # Never missing, never mixed: the old output before the swap, the new one after it.
    parts = {(target / n).read_text() for n in ("part1.txt", "part2.txt")}
    assert parts == ({"new"} if point == "swapped" else {"old"})
    # The next run sweeps the dead writer's temporaries and succeeds.
    assert _writer("dir", target, "next", overwrite=True).wait(60) == 0
    assert (target / "part2.txt").read_text() == "next"
    assert _temps(tmp_path) == []


@pytest.mark.parametrize("point", ["dir-written", "install"])
def test_sigkill_of_a_first_write_leaves_nothing_visible(tmp_path: Path, point: str) -> None:
    target = tmp_path / "2025-01-01"
    assert _writer("dir", target, "x", CHURN_KILL_AT=point).wait(60) == -9
    assert not target.exists()
    assert _writer("file", tmp_path / "other.txt", "y").wait(60) == 0  # any later write into the folder
    assert _temps(tmp_path) == []
    assert _writer("dir", target, "z").wait(60) == 0 and (target / "part1.txt").read_text() == "z"


def test_old_window_restores_the_only_copy(tmp_path: Path) -> None:
    # The state a kill between the fallback swap's two renames leaves (systems without renameat2): the
    # output moved aside to `.name.old`, the new one not yet in place. The old code deleted it next time.
    target = tmp_path / "2025-01-01"
    old = tmp_path / ".2025-01-01.old"
    old.mkdir()
    (old / "scores.txt").write_text("the only copy")
    with pytest.raises(ChurnError, match="already exists"):
        ensure_writable(target, overwrite=False)  # restored first, so it is not silently overwritten
    assert (target / "scores.txt").read_text() == "the only copy" and not old.exists()


def test_outputs_are_owner_only(tmp_path: Path) -> None:
    old = os.umask(0o022)  # a usual umask would make new files world-readable
    try:
        with atomic_dir(tmp_path / "run") as tmp:
            (tmp / "sub").mkdir()
            (tmp / "sub" / "segment.csv").write_text("id,email\n")
        f = write_text("x", tmp_path / "scores.csv")
    finally:
        os.umask(old)
    for p in (tmp_path / "run", tmp_path / "run" / "sub"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700, p
    for p in (tmp_path / "run" / "sub" / "segment.csv", f):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_existing_output_is_refused_without_overwrite(tmp_path: Path) -> None:
    write_text("first", tmp_path / "a.txt")
    with pytest.raises(ChurnError, match="already exists"):
        write_text("second", tmp_path / "a.txt")
    assert (tmp_path / "a.txt").read_text() == "first"
    write_text("second", tmp_path / "a.txt", overwrite=True)
    assert (tmp_path / "a.txt").read_text() == "second"


def test_a_live_writers_temporary_is_judged_by_its_lock_not_a_pid(tmp_path: Path) -> None:
    target = tmp_path / "2025-01-01"
    go = tmp_path / "go"
    p = _writer("dir", target, "A", CHURN_PAUSE_AT="dir-written", CHURN_PAUSE_FILE=str(go))
    _wait_for(Path(f"{go}.reached"))
    temps = _temps(tmp_path)
    assert len(temps) == 2 and any(n.endswith(".lock") for n in temps)  # the temporary and its lock file
    assert str(p.pid) not in " ".join(temps)  # nothing in a name to trust across hosts or containers
    # Another writer into the same folder sweeps it: the paused writer's temporary is alive (its lock held).
    assert _writer("file", tmp_path / "other.txt", "y").wait(60) == 0
    assert _temps(tmp_path) == temps
    go.touch()
    assert p.wait(60) == 0 and (target / "part1.txt").read_text() == "A" and _temps(tmp_path) == []


def test_a_temporary_whose_lock_is_free_is_swept(tmp_path: Path) -> None:
    # A writer on another host holds the lock of `.x.churn-tmp-a.tmp`: a process here, here a child that
    # holds the flock until told to stop. `.x.churn-tmp-b.tmp`'s writer is gone: its lock is free.
    # Each also has the file DuckDB writes first when asked to write over an existing file (`tmp_<name>`,
    # renamed over it when done): a live writer's is being written, a dead one's is left over. A file of
    # someone else's that merely contains the mark is never judged.
    for stem in ("a", "b"):
        (tmp_path / f".x.churn-tmp-{stem}.tmp").mkdir()
        (tmp_path / f".x.churn-tmp-{stem}.tmp" / "part").write_text(stem)
        (tmp_path / f".x.churn-tmp-{stem}.lock").touch()
        (tmp_path / f"tmp_.x.churn-tmp-{stem}.tmp").write_text("parquet being written")
    (tmp_path / "notes.churn-tmp-c.txt").write_text("not ours")
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR); "
                                "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()"),
         str(tmp_path / ".x.churn-tmp-a.lock")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    removed = sweep_stale(tmp_path)
    assert sorted(p.name for p in removed) == [".x.churn-tmp-b.lock", ".x.churn-tmp-b.tmp", "tmp_.x.churn-tmp-b.tmp"]
    assert _temps(tmp_path) == [".x.churn-tmp-a.lock", ".x.churn-tmp-a.tmp", "notes.churn-tmp-c.txt",
                                "tmp_.x.churn-tmp-a.tmp"]
    holder.stdin.close()  # the holder exits: the kernel releases its lock
    assert holder.wait(60) == 0
    sweep_stale(tmp_path)
    assert _temps(tmp_path) == ["notes.churn-tmp-c.txt"]


def test_crash_hooks_are_off_unless_armed_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # This test process started without CHURN_KILL_AT: the writers' checkpoints do nothing, and setting it
    # now changes nothing (the environment is read once, at import), so this call returns.
    monkeypatch.setenv("CHURN_KILL_AT", "install")
    checkpoint("install", "anything")
    assert crashpoints.from_environment({}) is crashpoints.checkpoint
    armed = crashpoints.from_environment({"CHURN_KILL_AT": "install:other"})
    assert armed is not crashpoints.checkpoint
    armed("install", "not-this-one")  # another output's step: not killed
