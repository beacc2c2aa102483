"""Starting Spark for churn, and what each Spark task sets before it runs the engine.

Spark needs Java 17 and the `spark` extra (`pip install 'churn[spark]'`); both are checked first, with what
to install, so a missing one is a clear error instead of a Java stack trace. Under spark-submit or on
Databricks the session already exists and is used as it is.

Per task (`task_config`): the engine's DuckDB connection gets the task's threads, memory and spill folder
(its defaults, two threads and 2 GB per connection, would oversubscribe an executor running several tasks),
numba gets the task's threads and a compiled-code cache on local disk (its default, beside the installed
package, is read-only on clusters: every worker would compile the passes again for every process).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

from churn.config import Config
from churn.errors import ChurnError

JAVA_HELP = ("Spark needs Java 17 or later. Install it (Debian/Ubuntu: apt-get install openjdk-17-jre-headless; "
             "macOS: brew install openjdk@17) or point JAVA_HOME at one")


def java_version() -> int | None:
    """The major version of the `java` Spark would start (JAVA_HOME's, else the one on PATH); None if none."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        return None
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


def require_spark() -> None:
    """Refuse clearly when pyspark (the `spark` extra) or Java 17 is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ChurnError("the Spark engine needs pyspark: pip install 'churn[spark]' (pyspark 4.1 or later)") from None
    version = java_version()
    if version is None:
        raise ChurnError(f"no Java found. {JAVA_HELP}")
    if version < 17:
        raise ChurnError(f"Java {version} found. {JAVA_HELP}")


def spark_session(config: Config) -> Any:
    """The active Spark session, else one started with `engine.spark`'s settings (master, `conf`): session time zone UTC (timestamps reach the engine as instants or as naive text, and
    `sources.timezone` applies to naive ones as in the embedded engine), workers on this Python."""
    require_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    cfg = config.engine.spark
    # Workers must run the interpreter churn is installed in (not whatever `python3` is on PATH).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(cfg.app_name)
    if cfg.master:
        builder = builder.master(cfg.master)
    elif not os.environ.get("PYSPARK_GATEWAY_PORT"):  # not started by spark-submit
        builder = builder.master("local[*]")
    settings = {"spark.sql.session.timeZone": "UTC", "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.parquet.inferTimestampNTZ.enabled": "true"}
    for key, value in {**settings, **cfg.conf}.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def task_config(config: Config) -> Config:
    """Inside a Spark task: numba's threads and cache set (before numba loads in this worker) and `config`
    with DuckDB's threads, memory and spill folder for one task."""
    cfg = config.engine.spark
    temp = cfg.task_temp_directory or tempfile.gettempdir()
    threads = str(cfg.task_threads)
    os.environ.setdefault("NUMBA_CACHE_DIR", cfg.numba_cache_dir or os.path.join(temp, "churn-numba-cache"))
    os.environ.setdefault("NUMBA_NUM_THREADS", threads)
    os.environ.setdefault("OMP_NUM_THREADS", threads)  # LightGBM's threads when a task scores
    engine = config.engine.model_copy(update={"threads": cfg.task_threads, "memory_limit": cfg.task_memory,
                                              "temp_directory": os.path.join(temp, "churn-duckdb")})
    return config.model_copy(update={"engine": engine})
