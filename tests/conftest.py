"""Suite-wide settings and the expensive fixtures shared by the whole run.

Hypothesis: two profiles, both derandomised (a failure found in CI replays exactly), without an example
database and without deadlines (2 shared cores make timing noisy): `ci`, about 200 examples a property (what
`make test` runs), and `deep`, 1,000 (`make test-deep`). HYPOTHESIS_PROFILE picks one. A property whose
examples are expensive (a model fit, a DuckDB build) draws a fixed share of the profile's count,
`settings.default.max_examples // k`, so `deep` scales it too.

The demo workspace (`churn demo` run once, as a user runs it) is built once per test run, whatever the number
of pytest-xdist workers (tests/shared.py). Tests must treat it as read-only (copy what they change).

`webhook_server` and `smtp_sink` are local servers on 127.0.0.1 for the alert delivery tests (nothing leaves
the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from shared import built_once
from stores import fresh_store

# Wide enough that the CLI's console (Rich) never folds a temporary path inside a message a test reads,
# however deep pytest-xdist's folders are; inherited by every `churn` subprocess.
os.environ.setdefault("COLUMNS", "400")
# One compiled-code cache for every process of the run: the test processes, the `churn` subprocesses and the
# Spark Python workers (which otherwise compile every numba pass again, ~15 s cold, in their own cache).
os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(tempfile.gettempdir(), "churn-tests-numba-cache"))

settings.register_profile("ci", max_examples=200, derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.register_profile("deep", max_examples=1000, derandomize=True, database=None, deadline=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@contextmanager
def _mlflow_env(root: Path) -> Iterator[Path]:
    """A new MLflow tracking store (SQLite, tests/stores.py) and artifact root inside `root` for the block;
    environment restored."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", fresh_store(root))
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
    """A fresh SQLite tracking store + artifact root for one test module (its tests share it)."""
    with mlflow_env(tmp_path_factory.mktemp("mlflow")) as root:
        yield root


# ------------------------------------------------------------------------------------ the demo workspace
DEMO_CONFIG = Path(__file__).resolve().parent / "demo.yaml"  # the demo's settings with a smaller model search


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
    def config(self) -> Path:
        """The settings the demo was built with (tests/demo.yaml)."""
        return DEMO_CONFIG

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
                           "--workdir", str(work), "--config", str(DEMO_CONFIG)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (work / "demo.out").write_text(done.stdout + done.stderr)


@pytest.fixture(scope="session")
def demo_workspace(tmp_path_factory: pytest.TempPathFactory) -> DemoWorkspace:
    """`churn demo` as a user runs it (the installed command, a fresh folder, 3,000 customers, seed 11; a
    smaller model search, tests/demo.yaml), built once per test run and shared by every worker (read-only)."""
    work = built_once(tmp_path_factory, "shared-demo",
                      lambda folder: _build_demo(folder, DemoWorkspace.customers, DemoWorkspace.seed))
    reports = sorted((work / "outputs").rglob("report.html"))
    assert len(reports) == 1, reports
    run_dir = reports[0].parent
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))["summary"]
    return DemoWorkspace(work, run_dir, summary)


# tryfirst: pytest-xdist's worker turns the markers into its groups in its own collection hook, so they must
# be in place before it runs (as trylast they came too late and every test was scheduled alone).
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-xdist groups (`--dist loadgroup`): the tests that read the shared demo workspace run on one
    worker (the other runs the rest meanwhile instead of waiting for the demo's lock), the Spark tests share one
    worker (so they share one Spark session), and every other test runs with the rest of its module, so a
    module's fixtures (a trained model, a generated source) are built once, not once per worker. A module
    with `SPREAD_OVER_WORKERS = True` (long tests, session fixtures only) has its tests spread instead."""
    for item in items:
        if item.get_closest_marker("xdist_group") is not None:
            continue
        if "demo_workspace" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("demo"))
        elif "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("spark"))
        elif getattr(getattr(item, "module", None), "SPREAD_OVER_WORKERS", False):
            item.add_marker(pytest.mark.xdist_group(item.nodeid))  # each test alone: no module fixtures
        else:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return  # one process: the collection order as it is
    # The scheduler hands out groups in this order (pytest_configure turns off its own reorder by test count):
    # the two longest groups first (about a minute each on one worker), then those with slow tests, then the
    # rest, each by test count, so the run ends with short tests spread over both workers, not with one
    # worker finishing a long group while the other waits.
    groups = [_group_of(item) for item in items]
    sizes, first, slow = Counter(groups), {}, set()
    for i, (g, item) in enumerate(zip(groups, items)):
        first.setdefault(g, i)
        if item.get_closest_marker("slow"):
            slow.add(g)
    rank = {g: k for k, g in enumerate(LONGEST_GROUPS)}
    order = sorted(range(len(items)), key=lambda i: (rank.get(groups[i], len(rank)), groups[i] not in slow,
                                                     -sizes[groups[i]], first[groups[i]], i))
    items[:] = [items[i] for i in order]


LONGEST_GROUPS = ("spark", "demo")


def _group_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("xdist_group")
    return str(marker.args[0] if marker.args else marker.kwargs.get("name", "default"))


def pytest_collection_finish(session: pytest.Session) -> None:
    """On a pytest-xdist worker with `--dist loadgroup`, stop if the groups did not reach the scheduler (every
    test then runs alone and each module's fixtures are built on every worker: the suite doubles in time
    without a failure). pytest 9.2 broke this silently (pytest-xdist#1386): xdist's group suffix on the node
    id, which its scheduler reads, was dropped."""
    if not (os.environ.get("PYTEST_XDIST_WORKER") and getattr(session.config.option, "loadgroup", False)):
        return
    for item in session.items:
        names = sorted({str(m.args[0]) if m.args else str(m.kwargs.get("name", "default"))
                        for m in item.iter_markers("xdist_group")})
        if names and not item.nodeid.endswith("@" + "_".join(names)):
            raise pytest.UsageError(f"--dist loadgroup is not grouping tests ({item.nodeid} lacks its group; "
                                    "pytest-xdist#1386): see the pytest pin in pyproject.toml")


# ------------------------------------------------------------------------------------- compiled kernels
def pytest_configure(config: pytest.Config) -> None:
    """With pytest-xdist, fill numba's cache (NUMBA_CACHE_DIR above) before the workers start: otherwise
    both workers and the `churn` processes they start compile the same kernels at once on a fresh machine.
    Two processes, each compiling half of them (`churn.compiled`). Also: the scheduler keeps the groups in the
    order `pytest_collection_modifyitems` gives them."""
    if (hasattr(config, "workerinput") or config.getoption("numprocesses", default=None) in (None, 0, "0")
            or config.getoption("dist", default="no") == "no" or config.getoption("collectonly")):
        return
    config.option.loadscopereorder = False  # the groups' order is set in pytest_collection_modifyitems
    from churn.compiled import KERNEL_MODULES

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "churn.compiled", *half], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for half in (KERNEL_MODULES[0::2], KERNEL_MODULES[1::2])]
    failed = [err for proc in procs for _, err in [proc.communicate()] if proc.returncode != 0]
    if failed:
        raise pytest.UsageError(f"compiling the numba kernels failed: {failed[0][-3000:]}")


@pytest.fixture(scope="session")
def compiled_kernels() -> list[str]:
    """Every kernel compiled into numba's cache (already done before the workers started, under xdist)."""
    from churn.compiled import compile_all

    return compile_all()


# --------------------------------------------------------------------------------------------- Spark
@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One Spark session (local[2], no UI, two shuffle partitions) for the whole run: starting one takes
    ~10 s. Fails, not skips, with what to install when pyspark or Java 17 is missing (`make test` installs
    both: the `spark` extra, and Java from the OS packages)."""
    from churn.spark.session import JAVA_HELP, java_version

    try:
        import pyspark  # noqa: F401
    except ImportError:
        pytest.fail("pyspark is missing: the Spark tests need the spark extra (`make test` installs it: "
                    "uv pip install -e '.[dev,spark]')")
    version = java_version()
    if version is None or version < 17:
        pytest.fail(f"{'no Java' if version is None else f'Java {version}'} found: the Spark tests need Java 17. "
                    f"{JAVA_HELP} (`make test` does: scripts/install-java.sh)")
    from churn.config import Config
    from churn.spark.session import spark_session

    conf = {"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2", "spark.driver.memory": "1g"}
    session = spark_session(Config.model_validate(
        {"engine": {"spark": {"master": "local[2]", "app_name": "churn-tests", "conf": conf}}}))
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


# ------------------------------------------------------------------ local servers for alert delivery tests
@contextmanager
def _serving(server: Any) -> Iterator[int]:
    """Run a socketserver in a thread for the block; yields its port, then stops and closes it."""
    import threading

    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class WebhookServer:
    """A Slack-style incoming webhook on 127.0.0.1: records each POST's JSON; answers with the scripted
    (status, body) pairs first, then 200 "ok"."""

    url: str
    received: list  # (monotonic time, JSON body)
    script: list  # (status, body) answers still to give

    def bodies(self) -> list[dict]:
        return [body for _, body in self.received]


@pytest.fixture()
def webhook_server() -> Iterator[WebhookServer]:
    """A webhook server in a thread, stopped after the test."""
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    server_state = WebhookServer("", [], [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            server_state.received.append((time.monotonic(), json.loads(body)))
            status, text = server_state.script.pop(0) if server_state.script else (200, "ok")
            self.send_response(status)
            self.end_headers()
            self.wfile.write(text.encode())

        def log_message(self, *args: object) -> None:  # quiet
            pass

    with _serving(ThreadingHTTPServer(("127.0.0.1", 0), Handler)) as port:
        server_state.url = f"http://127.0.0.1:{port}/services/T000/B000/secret-token"
        yield server_state


@dataclass
class SmtpSink:
    """A minimal SMTP server on 127.0.0.1 (HELO/EHLO, MAIL FROM, RCPT TO, DATA, RSET, NOOP, QUIT): keeps each
    accepted message as (sender, recipients, email.message.Message); `fail_mail_from` answers MAIL FROM with
    these codes first (e.g. [451]: a transient refusal)."""

    port: int
    messages: list
    fail_mail_from: list


@pytest.fixture()
def smtp_sink() -> Iterator[SmtpSink]:
    """An SMTP sink in a thread (socketserver; the aiosmtpd package is not in the stack), stopped after."""
    import email
    import socketserver

    sink = SmtpSink(0, [], [])

    class Session(socketserver.StreamRequestHandler):
        def say(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self.say("220 sink ESMTP")
            sender, rcpts = None, []
            while line := self.rfile.readline():
                cmd = line.decode("utf-8", "replace").strip()
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    self.say("250 sink")
                elif verb == "MAIL":
                    if sink.fail_mail_from:
                        self.say(f"{sink.fail_mail_from.pop(0)} try again later")
                        continue
                    sender, rcpts = cmd[10:].strip("<> "), []
                    self.say("250 OK")
                elif verb == "RCPT":
                    rcpts.append(cmd[8:].strip("<> "))
                    self.say("250 OK")
                elif verb == "DATA":
                    self.say("354 end with .")
                    data = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                        data.append(chunk[1:] if chunk.startswith(b"..") else chunk)
                    sink.messages.append((sender, rcpts, email.message_from_bytes(b"".join(data))))
                    self.say("250 queued")
                elif verb in ("RSET", "NOOP"):
                    self.say("250 OK")
                elif verb == "QUIT":
                    self.say("221 bye")
                    return
                else:
                    self.say("502 not implemented")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Session)
    server.daemon_threads = True
    with _serving(server) as port:
        sink.port = port
        yield sink
