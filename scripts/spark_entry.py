"""The churn command line as a Python file, for spark-submit (docs/spark.md).

spark-submit runs a `.py` file or a jar, not a console script such as `churn`, so this file stands in for it:

    spark-submit [spark options] scripts/spark_entry.py score --engine spark --data ... --as-of ... --out ...

It only calls the CLI: churn and its dependencies must be installed in the Python that the driver and every
executor run (PYSPARK_PYTHON), since the tasks import churn to build each customer bucket.
"""

from churn.cli import main

main()
