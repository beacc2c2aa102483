"""Every shell command in README.md and docs/*.md is checked, so the docs cannot describe a CLI that is gone.

A command is taken from a fenced block marked bash, sh or console (continuation lines joined, `$ ` prompts
and trailing comments dropped) or from a cron block (the five time fields dropped). Then, by its program:

* `churn COMMAND ...`: `churn COMMAND --help` must exist and list every `--option` the line uses; the cheap
  ones of the README (generate, validate, features) also run for real on a tiny generated data set
  (`test_cheap_commands_run_for_real`), and `churn demo` runs in tests/e2e/test_report_browser.py;
* `make TARGET`: `make -n TARGET` must succeed (the target exists);
* `mlflow COMMAND ...`: `mlflow COMMAND --help` must list every option used;
* `spark-submit [OPTIONS] FILE.py ARGS`: `spark-submit --help` of the venv's pyspark must list every option
  before the file (it starts a JVM, no Spark job), the file must exist in the repository, and the arguments
  after `scripts/spark_entry.py` (the churn CLI for spark-submit) are checked as a `churn` command;
* `.venv/bin/python -m pytest PATHS`: the paths exist; `airflow dags test`: the DAG in docs/operations.md
  compiles and its commands pass these checks;
* PostgreSQL's `createuser` / `createdb` (after `sudo -u postgres`): the installed tool's `--help` lists
  every option used; `export VAR=value`: well formed;
* anything else fails the test: add a check for it here.

Every ```json block of the docs (e.g. docs/spark.md's Databricks job) must parse.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BIN = Path(sys.executable).parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")  # the PostgreSQL client tools of this machine's OS packages
SHELL_BLOCK = re.compile(r"^```(bash|sh|console|cron)\n(.*?)^```", re.S | re.M)
JSON_BLOCK = re.compile(r"^```json\n(.*?)^```", re.S | re.M)
SPARK_ENTRY = "scripts/spark_entry.py"  # spark-submit's stand-in for the `churn` console script
# spark-submit's options that take no value (every other option is followed by one)
SPARK_FLAGS = {"--verbose", "-v", "--supervise", "--help", "-h", "--version", "--load-spark-defaults"}
ENV = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", "OMP_NUM_THREADS": "1"}


def commands() -> list[tuple[str, str]]:
    """(where, command) for every command line of every shell or cron block in the docs."""
    out = []
    for doc in DOCS:
        for lang, body in SHELL_BLOCK.findall(doc.read_text(encoding="utf-8")):
            joined = re.sub(r"\\\n\s*", " ", body)
            for line in joined.splitlines():
                line = line.strip()
                if line.startswith("$ "):
                    line = line[2:]
                if not line or line.startswith("#"):
                    continue
                if lang == "cron":
                    line = " ".join(line.split()[5:])  # minute hour day month weekday command
                line = re.split(r"\s+#\s", line, maxsplit=1)[0].strip()
                out.append((f"{doc.relative_to(ROOT)}", line))
    return out


def _words(line: str) -> list[str]:
    """The words of the first command of a line, without leading VAR=value assignments and `cd X &&`."""
    parts = re.split(r"\s*(?:&&|;|\|)\s*", line)
    for part in parts:
        words = shlex.split(part.replace("[", " ").replace("]", " "))
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
            words = words[1:]
        if words and words[0] != "cd":
            return words
    return []


@functools.cache
def _help(*argv: str) -> str:
    done = subprocess.run(list(argv) + ["--help"], capture_output=True, text=True, env=ENV, cwd=ROOT,
                          timeout=120)
    assert done.returncode == 0, f"{' '.join(argv)} --help failed: {done.stderr[-2000:]}"
    return done.stdout


@functools.cache
def _churn_help(*sub: str) -> str:
    """`churn [SUB] --help`, in this process (Typer's runner: the same app and help as the installed script,
    without a Python start-up per command)."""
    from typer.testing import CliRunner

    from churn.cli import app

    done = CliRunner().invoke(app, [*sub, "--help"], env={k: ENV[k] for k in ("COLUMNS", "NO_COLOR", "TERM")},
                              prog_name="churn")
    assert done.exit_code == 0, f"churn {' '.join(sub)} --help failed: {done.output[-2000:]}"
    return done.output


@functools.cache
def _mlflow_help(sub: str) -> str:
    """`mlflow SUB --help`, in this process (click's runner on MLflow's own command group, which the
    installed `mlflow` script runs), without a Python start-up and an MLflow import per command."""
    from click.testing import CliRunner
    from mlflow.cli import cli

    done = CliRunner().invoke(cli, [sub, "--help"], prog_name="mlflow", env={"COLUMNS": ENV["COLUMNS"]})
    assert done.exit_code == 0, f"mlflow {sub} --help failed: {done.output[-2000:]}"
    return done.output


def _check_options(argv: list[str], words: list[str], line: str) -> None:
    if argv[0] == str(BIN / "mlflow"):
        text = _mlflow_help(argv[1])
    else:
        text = _churn_help(*argv[1:]) if argv[0] == str(BIN / "churn") else _help(*argv)
    for w in words:
        if w.startswith("--"):
            opt = w.split("=", 1)[0]
            assert re.search(rf"{re.escape(opt)}\b", text), f"{line!r}: {' '.join(argv)} has no option {opt}"


@functools.cache
def _spark_submit_help() -> str:
    """`spark-submit --help` of the venv's pyspark. Its launcher finds SPARK_HOME through the Python named by
    PYSPARK_DRIVER_PYTHON (else whatever `python3` is on PATH), and it prints the usage to stderr."""
    env = {**ENV, "PYSPARK_DRIVER_PYTHON": sys.executable}
    done = subprocess.run([str(BIN / "spark-submit"), "--help"], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, f"spark-submit --help failed (Java 17? make java): {done.stderr[-2000:]}"
    return done.stdout + done.stderr


def _check_spark_submit(words: list[str], line: str) -> None:
    """spark-submit's options against its --help, the Python file it runs, and a churn command after
    scripts/spark_entry.py."""
    text = _spark_submit_help()
    at = 1
    while at < len(words) and words[at].startswith("-"):
        opt = words[at].split("=", 1)[0]
        assert re.search(rf"{re.escape(opt)}\b", text), f"{line!r}: spark-submit has no option {opt}"
        at += 1 if opt in SPARK_FLAGS or "=" in words[at] else 2
    assert at < len(words) and words[at].endswith(".py"), f"{line!r}: no Python file for spark-submit to run"
    script = words[at]
    assert "://" in script or (ROOT / script).exists(), f"{line!r}: {script} does not exist"
    if script == SPARK_ENTRY:
        check(shlex.join(["churn", *words[at + 1:]]))


def check(line: str) -> None:
    """Check one documented command (see the module docstring)."""
    words = _words(line)
    assert words, line
    if words[0] == "sudo":  # sudo [-u USER] COMMAND ...
        words = words[3:] if words[1] == "-u" else words[1:]
    prog = Path(words[0]).name
    if prog == "churn":
        assert len(words) > 1 and not words[1].startswith("-") or words[1:] == ["--help"], line
        _check_options([str(BIN / "churn"), *words[1:2]] if words[1] != "--help" else [str(BIN / "churn")],
                       words[2:], line)
    elif prog == "make":
        for target in [w for w in words[1:] if not w.startswith("-") and "=" not in w] or [""]:
            done = subprocess.run(["make", "-n", *([target] if target else [])], cwd=ROOT, capture_output=True,
                                  text=True, timeout=60)
            assert done.returncode == 0, f"{line!r}: {done.stderr}"
    elif prog == "mlflow":
        _check_options([str(BIN / "mlflow"), words[1]], words[2:], line)
    elif prog == "spark-submit":
        _check_spark_submit(words, line)
    elif prog in ("python", "python3") and words[1:3] == ["-m", "pytest"]:
        for w in words[3:]:
            if not w.startswith("-") and "/" in w:
                assert (ROOT / w.split("::")[0]).exists(), f"{line!r}: {w} does not exist"
    elif prog in ("createuser", "createdb"):
        tool = PG_BIN / prog
        assert tool.exists(), f"{line!r}: {tool} is not installed"
        _check_options([str(tool)], words[1:], line)
    elif prog == "export":
        assert len(words) == 2 and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S+", words[1]), line
    elif prog == "airflow":
        assert words[1:3] == ["dags", "test"], line  # the DAG itself is compiled in its own test
    else:
        pytest.fail(f"no check for {line!r}: add one to tests/unit/test_docs_commands.py")


def test_the_docs_have_commands() -> None:
    where = {w for w, _ in commands()}
    assert {"README.md", "docs/operations.md", "docs/architecture.md"} <= where


@pytest.mark.parametrize(("where", "line"), commands(), ids=lambda v: v[:60])
def test_documented_command_exists(where: str, line: str) -> None:
    check(line)


def test_json_blocks_in_the_docs_parse() -> None:
    for doc in DOCS:
        for block in JSON_BLOCK.findall(doc.read_text(encoding="utf-8")):
            try:
                json.loads(block)
            except json.JSONDecodeError as exc:
                pytest.fail(f"{doc.relative_to(ROOT)}: a json block does not parse: {exc}")


def test_airflow_dag_in_the_docs_compiles_and_runs_documented_commands() -> None:
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    dags = re.findall(r"```python\n(.*?)^```", text, re.S | re.M)
    assert dags, "docs/operations.md has no Airflow DAG"
    for src in dags:
        compile(src, "docs/operations.md", "exec")
        for cmd in re.findall(r'bash_command="([^"]+)"', src):
            check(cmd)


def test_cheap_commands_run_for_real(tmp_path: Path, compiled_kernels: list[str]) -> None:
    """The README's generate, validate and features commands, run as written but on 300 customers (in the
    other docs they are checked against --help: they name folders of the reader's own). `churn features`, a
    fresh process, also shows numba's cache at work (churn.compiled): it loads one version of each kernel it
    runs, every one compiled ahead by `compile_all`, and compiles nothing itself."""
    ran = set()
    for where, line in commands():
        if where != "README.md":
            continue
        words = _words(line)
        if Path(words[0]).name != "churn" or words[1] not in ("generate", "validate", "features") or "[" in line:
            continue
        words = [str(BIN / "churn"), *words[1:]]
        if "--customers" in words:
            words[words.index("--customers") + 1] = "300"  # small size, same command
        env = {**ENV, "NUMBA_DEBUG_CACHE": "1"} if words[1] == "features" else ENV
        done = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, f"{line!r}: {done.stdout[-1500:]} {done.stderr[-1500:]}"
        ran.add(words[1])
        if words[1] == "features":
            cache = re.findall(r"\[cache\] data (loaded from|saved to) '[^']*/([\w.]+)-\d+\.py\d+\.(\d+)\.nbc'",
                               done.stdout + done.stderr)
            loaded = [(kernel, version) for how, kernel, version in cache if how == "loaded from"]
            assert len(loaded) >= 10 and len(loaded) == len({k for k, _ in loaded}), loaded  # one version each
            assert [k for how, k, _ in cache if how == "saved to"] == [], "compiled here, not by compile_all"
    assert ran == {"generate", "validate", "features"}
