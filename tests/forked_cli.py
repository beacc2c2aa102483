"""`churn` commands as real processes, started from a warm fork server instead of a fresh interpreter.

A fresh `python -m churn.cli` spends ~5 s importing its libraries (MLflow and its SQL store, scikit-learn,
LightGBM, numba, pandas, DuckDB) before it does anything; the suite starts about seventy of them. Here each
test process keeps one `multiprocessing` fork server that has imported those *third-party* libraries once,
and every command is a child forked from it: a separate process with its own pid, working folder,
environment, standard output and error, exit code and atexit hooks, which a test can pause or SIGKILL like
any other. churn's own modules are not preloaded: each child imports them after its environment is set, so
everything churn reads at import (the crash points of `churn.crashpoints`) comes from that command's
environment, as in a fresh process.

What a forked command cannot show is a missing import: a module the fork server preloaded is there for the
child whether or not churn imports it. So some commands still run in a fresh interpreter: the installed
`churn demo` of the demo workspace (tests/conftest.py: generate, train, score, every output), the reliability
tests' `churn train` and one `churn score` (tests/reliability/conftest.py, `run_churn_fresh`), and the
documented-commands test (generate, validate, features).
"""

from __future__ import annotations

import atexit
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

# Third-party modules the commands import; never churn's (see the module docstring).
PRELOAD = ["numpy", "pandas", "pyarrow", "pyarrow.parquet", "duckdb", "numba", "scipy.stats", "scipy.optimize",
           "sklearn.linear_model", "sklearn.isotonic", "sklearn.metrics", "lightgbm", "mlflow", "mlflow.pyfunc",
           "mlflow.store.tracking.sqlalchemy_store", "mlflow.artifacts", "matplotlib", "matplotlib.pyplot", "jinja2",
           "typer", "rich.console", "rich.progress", "yaml", "pydantic", "openpyxl", "filelock"]
# The fork server's environment for what is read once, when the interpreter starts or a library is loaded: a
# child inherits these whatever its own environment says. OpenMP's threads and waiting only change speed
# (churn gives LightGBM its threads explicitly); the hash seed, matplotlib's backend and numba's cache folder
# (inherited from the test process) could change what a command does, so `start` refuses a command
# environment that sets one of those to another value.
SERVER_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "PYTHONHASHSEED": "0", "MPLBACKEND": "Agg"}
_FIXED = ("PYTHONHASHSEED", "MPLBACKEND", "NUMBA_CACHE_DIR")

_lock = threading.Lock()
_context: multiprocessing.context.ForkServerContext | None = None
_fixed: dict[str, str | None] = {}  # the fork server's values of _FIXED


def _server() -> multiprocessing.context.ForkServerContext:
    """This test process's fork server, started (with SERVER_ENV) on first use."""
    global _context
    with _lock:
        if _context is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            saved = {k: os.environ.get(k) for k in SERVER_ENV}
            os.environ.update(SERVER_ENV)
            try:
                multiprocessing.forkserver.ensure_running()
                _fixed.update({k: os.environ.get(k) for k in _FIXED})
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            _context = context
    return _context


def _command(argv: list[str], env: dict[str, str], cwd: str, out: str, err: str) -> None:
    """The child: become `churn <argv>` in `cwd` with exactly `env`, output to the files `out` and `err`."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(target, fd)
        os.close(target)
    # As an interpreter sets them up for files: stderr line-buffered and never failing on a character.
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115 - fd 1 itself
    sys.stderr = sys.__stderr__ = open(2, "w", encoding="utf-8", errors="backslashreplace",  # noqa: SIM115
                                       buffering=1, closefd=False)
    sys.argv = ["churn", *argv]
    code: int = 0
    try:
        from churn.cli import main

        main()
    except SystemExit as stop:
        if isinstance(stop.code, int):
            code = stop.code
        elif stop.code is not None:
            print(stop.code, file=sys.stderr)
            code = 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    # What an interpreter does at its end, which a multiprocessing child skips: wait for the threads that are
    # not daemons (and thread pools' queued work), then run the atexit hooks (MLflow ends its runs there).
    threading._shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class ForkedChurn:
    """A started `churn` command with the parts of `subprocess.Popen`'s interface the tests use."""

    def __init__(self, argv: Sequence[str], env: Mapping[str, str], cwd: str | os.PathLike[str]) -> None:
        self.args = ["churn", *argv]
        self._files = tempfile.mkdtemp(prefix="churn-forked-")
        self._out, self._err = os.path.join(self._files, "out"), os.path.join(self._files, "err")
        self._proc = _server().Process(target=_command, args=(list(argv), dict(env), str(cwd), self._out, self._err))
        self._proc.start()
        self.pid = self._proc.pid
        self.returncode: int | None = None
        self._said: tuple[str, str] | None = None

    def poll(self) -> int | None:
        """The exit code (negative: killed by that signal), or None while it runs."""
        if self.returncode is None and not self._proc.is_alive():
            self._proc.join()
            self.returncode = self._proc.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; subprocess.TimeoutExpired when it outlives `timeout` seconds."""
        self._proc.join(timeout)
        if self.poll() is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Wait for the exit; (standard output, standard error) as text."""
        self.wait(timeout)
        if self._said is None:
            # No file: the child died before it could open them (the fork server says why on its stderr).
            self._said = tuple(Path(p).read_text(encoding="utf-8", errors="replace") if Path(p).exists() else ""
                               for p in (self._out, self._err))
            shutil.rmtree(self._files, ignore_errors=True)
        return self._said

    def kill(self) -> None:
        """SIGKILL the command, if it still runs (its pid is not looked at once it has ended)."""
        if self.poll() is None:
            self._proc.kill()


def start(argv: Sequence[object], env: Mapping[str, str] | None = None,
          cwd: str | os.PathLike[str] | None = None) -> ForkedChurn:
    """Start `churn <argv>` (environment `env`, default this process's; folder `cwd`, default this one)."""
    env = dict(os.environ if env is None else env)
    _server()
    for key in _FIXED:
        if key in env and env[key] != _fixed.get(key):
            raise ValueError(f"{key}={env[key]!r}: a forked command keeps its fork server's {key}="
                             f"{_fixed.get(key)!r} (read when the interpreter or a library starts); run this "
                             "command with subprocess instead")
    return ForkedChurn([str(a) for a in argv], env, cwd or os.getcwd())


def run(argv: Sequence[object], env: Mapping[str, str] | None = None, cwd: str | os.PathLike[str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `churn <argv>` to its end, as `subprocess.run(..., capture_output=True, text=True)` would."""
    proc = start(argv, env, cwd)
    try:
        out, err = proc.communicate(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()  # reaps it and removes its output files
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
