"""Writing Spark's output atomically: into a temporary folder beside the output, renamed into place only when
the write finished (never over an existing output without `overwrite`). A local path goes through
`churn.io.atomic_dir` (the same temporaries, locks and sweeping as every other output); a Hadoop URI
(hdfs://, s3a://, abfss://, dbfs:/...) through the Hadoop file system's rename.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from churn.errors import ChurnError


def is_uri(path: str) -> bool:
    """Whether `path` names a Hadoop file system other than the local one."""
    return ("://" in path and not path.startswith("file://")) or path.startswith("dbfs:")


def check_writable(spark: Any, path: str, overwrite: bool) -> None:
    """Refuse before any work when `path` exists and may not be replaced."""
    if not is_uri(path):
        from churn.io import ensure_writable

        ensure_writable(path.removeprefix("file://"), overwrite)
        return
    fs, p = _fs(spark, path)
    if fs.exists(p) and not overwrite:
        raise ChurnError(f"{path} already exists; pass --overwrite to replace it")


def _fs(spark: Any, path: str) -> tuple[Any, Any]:
    jvm = spark.sparkContext._jvm
    p = jvm.org.apache.hadoop.fs.Path(path)
    return p.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), p


@contextlib.contextmanager
def spark_output(spark: Any, path: str, overwrite: bool = False) -> Iterator[str]:
    """Yield a temporary folder for Spark to write (mode 'overwrite'); on success it becomes `path`, on error
    it is removed."""
    if not is_uri(path):
        from churn.io import atomic_dir

        with atomic_dir(path.removeprefix("file://"), overwrite) as tmp:
            yield str(Path(tmp).resolve())
        return
    check_writable(spark, path, overwrite)
    tmp = f"{path.rstrip('/')}.tmp-{uuid.uuid4().hex[:12]}"
    fs, final = _fs(spark, path)
    _, temp = _fs(spark, tmp)
    try:
        yield tmp
        if fs.exists(final):
            fs.delete(final, True)
        if not fs.rename(temp, final):
            raise ChurnError(f"{path}: could not move the finished output {tmp} into place")
    finally:
        if fs.exists(temp):
            fs.delete(temp, True)
