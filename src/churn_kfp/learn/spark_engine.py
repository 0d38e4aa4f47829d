"""The feature table on Spark: the query of :mod:`churn_kfp.learn.feature_sql` on a cluster.

The same query text the DuckDB engine runs (``dialect="spark"``), executed by a
``SparkSession``: local mode in tests, the driver of a ``SparkApplication`` on a cluster
(:mod:`churn_kfp.orchestration.spark_app` builds it). Only the per-(customer, cutoff)
aggregates travel back to the driver, where
:func:`churn_kfp.learn.features.finish_feature_table` adds the small tables (customers,
feedback) exactly as on DuckDB. Paths may be local or ``s3a://`` (the image then needs
Hadoop's S3A connector on Spark's class path, configured by the SparkApplication).

pyspark is imported inside functions only: the package imports without it (``pip install
churn-kfp[spark]`` adds it).

Entry point (the SparkApplication's ``mainApplicationFile``)::

    python -m churn_kfp.learn.spark_engine --transactions s3a://zone/clean/transactions
        (--plan plan.json | --horizon-days 30 [--n-train-cutoffs 3] [--cutoff-spacing MS]
        [--test-cutoff YYYY-MM-DD] [--plan-output plan.json]) --output features.parquet
        [--customers PATH] [--feedback PATH] [--windows 30,60,90] [--eligibility-days 90]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from churn_kfp.learn.feature_sql import DIALECTS, feature_query
from churn_kfp.learn.features import finish_feature_table
from churn_kfp.learn.plan import CutoffPlan

__all__ = ["build_feature_table_spark", "local_session", "main"]

_VIEW = "transactions"
_REQUIRED = ("customer_id", "timestamp", "amount")

SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    # pandas writes nanosecond Parquet timestamps, which Spark reads only as integers.
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}
"""Settings the feature query relies on, applied to every session this module opens."""


def local_session(cores: int = 2, shuffle_partitions: int = 4, app_name: str = "churn-features"):
    """Opens (or returns the running) local-mode SparkSession, UI off, bound to loopback.

    Args:
        cores: Local worker threads (``local[cores]``).
        shuffle_partitions: ``spark.sql.shuffle.partitions`` (small data: few partitions).
        app_name: The application name.

    Returns:
        A ``pyspark.sql.SparkSession``.
    """
    from pyspark.sql import SparkSession

    builder = (
        SparkSession.builder.master(f"local[{int(cores)}]")
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", str(int(shuffle_partitions)))
    )
    for key, value in SESSION_CONF.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


def _configure(spark: Any) -> None:
    for key, value in SESSION_CONF.items():
        spark.conf.set(key, value)


def _micros(frame: Any) -> Any:
    """Turns a ``timestamp`` read as integer nanoseconds back into a microsecond timestamp."""
    from pyspark.sql import functions
    from pyspark.sql.types import LongType

    if "timestamp" in frame.columns and isinstance(frame.schema["timestamp"].dataType, LongType):
        micros = functions.floor(functions.col("timestamp") / 1000).cast("long")
        return frame.withColumn("timestamp", functions.timestamp_micros(micros))
    return frame


def _frame(spark: Any, transactions: Any) -> Any:
    """The transactions as a Spark DataFrame (Parquet path(s), a pandas frame or Spark's)."""
    if isinstance(transactions, str | Path | list | tuple):
        items = list(transactions) if isinstance(transactions, list | tuple) else [transactions]
        return _micros(spark.read.parquet(*[str(p) for p in items]))
    if isinstance(transactions, pd.DataFrame):
        frame = transactions.copy()
        stamps = pd.to_datetime(frame["timestamp"])
        if getattr(stamps.dt, "tz", None) is not None:
            stamps = stamps.dt.tz_convert("UTC").dt.tz_localize(None)
        frame["timestamp"] = stamps.astype("datetime64[us]")
        return spark.createDataFrame(frame)
    return transactions


def _query(spark: Any, transactions: Any, cutoffs: Sequence[Any], windows, eligibility_days):
    """Runs :func:`~churn_kfp.learn.feature_sql.feature_query` on Spark; returns its rows."""
    _configure(spark)
    frame = _frame(spark, transactions)
    names = list(frame.columns)
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise ValueError(f"transactions lack column(s) {missing}; have {names}")
    frame.createOrReplaceTempView(_VIEW)
    query = feature_query(
        _VIEW,
        cutoffs,
        windows=windows,
        eligibility_days=eligibility_days,
        has_quantity="quantity" in names,
        dialect="spark",
    )
    raw = spark.sql(query).toPandas()
    for name in ("cutoff_us", "first_purchase_us"):
        raw[name] = raw[name].astype("int64")
    return raw


def build_feature_table_spark(
    transactions: Any,
    plan: CutoffPlan,
    customers: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    windows: Sequence[int] = (30, 60, 90),
    eligibility_days: int = 90,
    spark: Any = None,
) -> pd.DataFrame:
    """The feature table of every cutoff of a plan, computed by Spark SQL in one pass.

    Equals :func:`churn_kfp.learn.duckdb_engine.build_feature_table_duckdb` (same query).

    Args:
        transactions: Clean transactions: Parquet path(s) (local or ``s3a://``), a pandas
            frame or a Spark DataFrame.
        plan: The cutoffs and their splits.
        customers: Optional customers table.
        feedback: Optional scored feedback.
        windows: Look-back windows in days.
        eligibility_days: Eligibility look-back in days.
        spark: A SparkSession (default: the active one, else :func:`local_session`).

    Returns:
        Rows ordered by cutoff then ``customer_id``.

    Raises:
        ValueError: A required column is missing, or bad windows.
    """
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession() or local_session()
    raw = _query(spark, transactions, plan.all_cutoffs(), windows, eligibility_days)
    return finish_feature_table(raw, plan, customers=customers, feedback=feedback, windows=windows)


def _small_table(spark: Any, path: str | None) -> pd.DataFrame | None:
    """An optional small Parquet table (local or ``s3a://``) as pandas; empty -> ``None``."""
    if not path:
        return None
    table = spark.read.parquet(path).toPandas()
    return table if len(table) else None


def _write(spark: Any, table: pd.DataFrame, output: str) -> None:
    """Writes the table as one Parquet file locally, or as a Parquet folder on ``s3a://``."""
    if "://" in output:
        spark.createDataFrame(table).coalesce(1).write.mode("overwrite").parquet(output)
        return
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.to_parquet(output, index=False)


def _plan_from_data(spark: Any, args: argparse.Namespace) -> CutoffPlan:
    """Plans the cutoffs from the transactions' time range, as the DuckDB features step does."""
    from churn_kfp.learn.plan import parse_spacing, plan_cutoffs

    _configure(spark)
    epoch = DIALECTS["spark"]
    bounds = [epoch.format(f"{f}(timestamp)") for f in ("min", "max")]
    first, last = (
        pd.Timestamp(us, unit="us")
        for us in _frame(spark, args.transactions).selectExpr(*bounds).first()
    )
    spacing, spacing_days = parse_spacing(args.cutoff_spacing)
    return plan_cutoffs(
        first,
        last,
        horizon_days=args.horizon_days,
        n_train_cutoffs=args.n_train_cutoffs,
        spacing=spacing,
        spacing_days=spacing_days,
        test_cutoff=args.test_cutoff or None,
    )


def _write_text(spark: Any, text: str, output: str) -> None:
    """Writes a small text file locally or through Hadoop's file system (``s3a://``)."""
    if "://" not in output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text)
        return
    jvm = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(output)
    stream = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()).create(path, True)
    try:
        stream.write(bytearray(text.encode()))
    finally:
        stream.close()


def main(argv: Sequence[str] | None = None, spark: Any = None) -> int:
    """The SparkApplication's entry point: builds and writes the feature table.

    Args:
        argv: Command-line arguments (see the module docstring).
        spark: A session to use (default: the one ``spark-submit`` started, or local).

    Returns:
        0 on success (errors raise, so the driver and the SparkApplication fail with them).
    """
    parser = argparse.ArgumentParser(prog="churn_kfp.learn.spark_engine", description=__doc__)
    parser.add_argument("--transactions", required=True, nargs="+")
    parser.add_argument("--plan", help="JSON of CutoffPlan.to_dict(), or a file")
    parser.add_argument("--horizon-days", type=int, help="without --plan: plan from the data")
    parser.add_argument("--n-train-cutoffs", type=int, default=3)
    parser.add_argument("--cutoff-spacing", default="MS")
    parser.add_argument("--test-cutoff", default="")
    parser.add_argument("--plan-output", help="where to write the plan as JSON")
    parser.add_argument("--output", required=True)
    parser.add_argument("--customers")
    parser.add_argument("--feedback")
    parser.add_argument("--windows", default="30,60,90")
    parser.add_argument("--eligibility-days", type=int, default=90)
    args = parser.parse_args(argv)
    if (args.plan is None) == (args.horizon_days is None):
        parser.error("give either --plan or --horizon-days (plan the cutoffs from the data)")
    if spark is None:
        from pyspark.sql import SparkSession

        spark = SparkSession.builder.appName("churn-features").getOrCreate()
    if args.plan is not None:
        text = args.plan if args.plan.lstrip().startswith("{") else Path(args.plan).read_text()
        plan = CutoffPlan.from_dict(json.loads(text))
    else:
        plan = _plan_from_data(spark, args)
    if args.plan_output:
        _write_text(spark, json.dumps(plan.to_dict(), indent=2), args.plan_output)
    table = build_feature_table_spark(
        args.transactions,
        plan,
        customers=_small_table(spark, args.customers),
        feedback=_small_table(spark, args.feedback),
        windows=tuple(int(w) for w in args.windows.split(",")),
        eligibility_days=args.eligibility_days,
        spark=spark,
    )
    _write(spark, table, args.output)
    print(f"features: {len(table)} rows at {len(plan.all_cutoffs())} cutoffs -> {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
