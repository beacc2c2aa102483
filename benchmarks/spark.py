"""Benchmark: features and scoring for N customers, the Spark engine on local[2] against the embedded engine on
the same machine.

    python benchmarks/spark.py --customers 1000000
    python benchmarks/spark.py --customers 200000 --steps features,score

Each measurement runs in a fresh subprocess (wall time includes interpreter, JVM and Spark start; the
embedded runs' peak RSS via os.wait4; for Spark that figure is the driver's Python process only, since the
JVM pyspark starts is not a child it waits for). Data: `churn generate`, seed 7, 2024-01-01 to 2025-07-01, 50 events per
customer, generated once under benchmarks/out/ (as benchmarks/features.py). Scoring uses one bundle trained
once on 20,000 generated customers with tests/fast.yaml's model settings. The Spark feature worker also
records each bucket's cost (seconds, input rows, Arrow bytes: `SparkBuild.costs`) and Spark's shuffle bytes
(its REST API), which docs/spark.md ("Settings and sizing") sizes a cluster from.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from features import ensure_data  # noqa: E402  (the data set shared with benchmarks/features.py)

AS_OF = "2025-06-01"


def config_file(bucket_rows: int) -> Path:
    """The benchmark's config: the demo config with fast.yaml's model, Spark local[2] with the UI on (for its
    shuffle metrics) and `bucket_rows`, no KPI trend (the Spark run leaves it out), no MLflow health runs."""
    path = HERE / "out" / f"spark-{bucket_rows}.yaml"
    path.write_text(
        f"incentives: {ROOT / 'configs' / 'incentives.yaml'}\n"
        "model: {n_jobs: 1, candidates: [lightgbm], auto_tune_max_rows: 0, num_boost_round: 60,\n"
        "        early_stopping_rounds: 10, refit: false, max_shap_rows: 200}\n"
        "monitoring: {kpi_months: 0, mlflow: false}\n"
        "engine:\n  threads: 2\n  memory_limit: 4GB\n"
        f"  spark: {{master: 'local[2]', bucket_rows: {bucket_rows}, task_memory: 2GB,\n"
        "          conf: {spark.driver.memory: 6g, spark.sql.shuffle.partitions: '8'}}\n")
    return path


def ensure_model(config: Path) -> Path:
    """A bundle trained once on 20,000 generated customers."""
    bundle = HERE / "out" / "spark-model"
    if not (bundle / "manifest.json").exists():
        data = ensure_data(20_000)
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{HERE / 'out' / 'spark-mlruns.db'}",
               "CHURN_ARTIFACT_ROOT": (HERE / "out" / "spark-artifacts").as_uri()}
        subprocess.run([sys.executable, "-m", "churn.cli", "train", "--data", str(data), "--config", str(config),
                        "--force"], check=True, cwd=HERE / "out", env=env, capture_output=True)
        [made] = sorted((HERE / "out" / "models").glob("churn-*"))[-1:]
        shutil.rmtree(bundle, ignore_errors=True)
        shutil.copytree(made, bundle)
    return bundle


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run a child; (wall s, peak RSS MiB, its stdout)."""
    t = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "2", **(env or {})})
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{' '.join(args)} failed")
    return time.perf_counter() - t, usage.ru_maxrss / 1024, out


def cli(*words: str) -> list[str]:
    return [sys.executable, "-m", "churn.cli", *words]


def worker_spark_features(data: Path, config: Path) -> dict:
    """`churn features --engine spark`'s steps, timed, with each bucket's cost and Spark's shuffle bytes."""
    from churn.config import load_config
    from churn.spark.build import build_on_spark, frozen_settings
    from churn.spark.session import spark_session
    from churn.spark.source import open_spark_source
    from churn.timeline import parse_as_of

    cfg = load_config(config)
    cfg = cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"kind": "spark"})})
    t0 = time.perf_counter()
    spark = spark_session(cfg)
    t1 = time.perf_counter()
    src = open_spark_source(spark, str(data), cfg)
    frozen, found = frozen_settings(src, cfg)
    t2 = time.perf_counter()
    build = build_on_spark(src, frozen, found, [parse_as_of(AS_OF)], cfg)
    t3 = time.perf_counter()
    out = HERE / "out" / "spark-features.parquet"
    build.rows.write.mode("overwrite").parquet(str(out))
    t4 = time.perf_counter()
    shuffle = _shuffle_bytes(spark)
    costs = build.costs
    return {"session_s": t1 - t0, "globals_s": t2 - t1, "buckets_s": t3 - t2, "fill_write_s": t4 - t3,
            "buckets": len(costs), "rows_in": sum(c["rows"] for c in costs),
            "arrow_bytes_in": sum(c["bytes"] for c in costs), "bucket_seconds": sum(c["seconds"] for c in costs),
            "bucket_max_rows": max(c["rows"] for c in costs), "bucket_max_s": max(c["seconds"] for c in costs),
            "shuffle_write_bytes": shuffle, "heavy": len(found.heavy), "customers": found.customers}


def _shuffle_bytes(spark) -> int | None:
    """Bytes Spark wrote to shuffle files in this application (its REST API), None without the UI."""
    url = spark.sparkContext.uiWebUrl
    if not url:
        return None
    app = spark.sparkContext.applicationId
    with urllib.request.urlopen(f"{url}/api/v1/applications/{app}/stages", timeout=30) as r:  # noqa: S310 - local
        return sum(int(s.get("shuffleWriteBytes", 0)) for s in json.load(r))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1_000_000)
    p.add_argument("--bucket-rows", type=int, default=2_000_000)
    p.add_argument("--steps", default="features,score")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker == "spark-features":
        print(json.dumps(worker_spark_features(Path(a.data), Path(a.config))))
        return
    data = ensure_data(a.customers)
    config = config_file(a.bucket_rows)
    results = {"customers": a.customers, "bucket_rows": a.bucket_rows}
    steps = a.steps.split(",")
    if "features" in steps:
        out = HERE / "out" / "embedded-features.parquet"
        wall, rss, _ = run(cli("features", "--data", str(data), "--as-of", AS_OF, "--out", str(out), "--config",
                               str(config), "--overwrite"))
        results["features_embedded"] = {"wall_s": wall, "peak_rss_mib": rss}
        shutil.rmtree(HERE / "out" / "spark-features.parquet", ignore_errors=True)
        wall, rss, text = run([sys.executable, __file__, "--worker", "spark-features", "--data", str(data),
                               "--config", str(config)])
        results["features_spark"] = {"wall_s": wall, "peak_rss_mib": rss, **json.loads(text.strip().splitlines()[-1])}
        print(json.dumps(results), flush=True)
    if "score" in steps:
        bundle = ensure_model(config)
        for engine in ("embedded", "spark"):
            target = HERE / "out" / f"score-{engine}"
            shutil.rmtree(target, ignore_errors=True)
            wall, rss, _ = run(cli("score", "--data", str(data), "--as-of", AS_OF, "--model", str(bundle), "--out",
                                   str(target), "--config", str(config), "--engine", engine),
                               env={"MLFLOW_TRACKING_URI": f"sqlite:///{HERE / 'out' / 'spark-mlruns.db'}"})
            results[f"score_{engine}"] = {"wall_s": wall, "peak_rss_mib": rss}
            print(json.dumps(results), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
