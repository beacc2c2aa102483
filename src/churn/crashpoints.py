"""Named steps of churn's writes, where crash tests stop or kill a real `churn` process.

The writers mark their steps with `checkpoint(name, output)`: `file-written` and `dir-written` (a temporary
is complete), `install` (under the output's lock, before the rename), `swapped` (after the exchange of an
old folder with the new one), `old-window` (the fallback swap's gap) and training's `register`. In
production `checkpoint` is a function that does nothing: the environment is read once, at import, and only
a process started with one of these variables gets the hook:

- `CHURN_KILL_AT=point[,point...]`: SIGKILL the process at that point (nothing after it runs, as in a crash).
- `CHURN_PAUSE_AT=point[,point...]` with `CHURN_PAUSE_FILE=path`: create `path.reached` and wait (up to 5
  minutes) until `path` exists, so a test can hold two processes at one step and release them together.

A point is `name` (that step of any output) or `name:output` (only for the output with that file or folder
name, e.g. `dir-written:2024-09-01` is a scoring run's folder and not its `segments` subfolder).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

Checkpoint = Callable[..., None]


def _disarmed(name: str, output: str | os.PathLike[str] | None = None) -> None:
    """A step of a write; does nothing (no crash test armed this process)."""


def _armed(kill: set[str], pause: set[str], pause_file: str | None) -> Checkpoint:
    def checkpoint(name: str, output: str | os.PathLike[str] | None = None) -> None:
        """A step of a write: killed or paused here when the test asked for this point."""
        here = {name} if output is None else {name, f"{name}:{Path(output).name}"}
        if here & kill:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        if here & pause and pause_file:
            import time

            Path(f"{pause_file}.reached").write_text(name)
            deadline = time.monotonic() + 300
            while not Path(pause_file).exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    return checkpoint


def from_environment(env: Mapping[str, str]) -> Checkpoint:
    """The checkpoint function `env` asks for: the no-op unless CHURN_KILL_AT or CHURN_PAUSE_AT is set."""
    kill = {p for p in env.get("CHURN_KILL_AT", "").split(",") if p}
    pause = {p for p in env.get("CHURN_PAUSE_AT", "").split(",") if p}
    if not kill and not pause:
        return _disarmed
    return _armed(kill, pause, env.get("CHURN_PAUSE_FILE"))


checkpoint: Checkpoint = from_environment(os.environ)
