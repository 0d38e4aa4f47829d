"""The Spark engine (PySpark local mode) equals the DuckDB engine on synthetic data and CDNOW."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_kfp.data import datagen
from churn_kfp.data.importer.importing import import_file
from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb

pytest.importorskip("pyspark", reason="pyspark is the [spark] extra; requirements.lock pins it")

from test_duckdb_engine import assert_same_table, plan_for  # noqa: E402 (same checks)

from churn_kfp.learn import spark_engine  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.spark]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def spark():
    """One local-mode session for the whole test session (starting a JVM takes seconds)."""
    session = spark_engine.local_session(cores=2, shuffle_partitions=4, app_name="churn-tests")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def synthetic() -> datagen.SyntheticData:
    return datagen.simulate(n_customers=400, n_months=6, seed=11)


def test_synthetic_data_with_defects_every_group(spark, synthetic, tmp_path):
    transactions = synthetic.transactions
    assert transactions["amount"].isna().any()  # the generator's defects are in play
    rng = np.random.default_rng(1)
    feedback = synthetic.feedback.assign(
        sentiment=np.where(
            rng.random(len(synthetic.feedback)) < 0.1,
            np.nan,
            rng.uniform(-1, 1, len(synthetic.feedback)),
        )
    )
    plan = plan_for(transactions, horizon_days=30, n_train=3)
    options = {"customers": synthetic.customers, "feedback": feedback, "windows": (14, 30, 60)}
    want = build_feature_table_duckdb(transactions, plan, eligibility_days=60, **options)
    assert want.attrs["feature_groups"] == ["behaviour", "quantity", "sentiment", "demographics"]
    from_frame = spark_engine.build_feature_table_spark(
        transactions, plan, eligibility_days=60, spark=spark, **options
    )
    assert_same_table(from_frame, want)
    path = tmp_path / "transactions.parquet"
    transactions.to_parquet(path, index=False)
    from_parquet = spark_engine.build_feature_table_spark(
        path, plan, eligibility_days=60, spark=spark, **options
    )
    assert_same_table(from_parquet, want)


def test_cdnow(spark, cdnow_path, tmp_path):
    zone = tmp_path / "landing"
    import_file(cdnow_path, REPO / "examples/cdnow/mapping.yaml", str(zone), progress=False)
    sales = zone / "raw" / "sales"
    transactions = pd.read_parquet(sales, columns=["timestamp"])
    assert len(transactions) > 60_000
    plan = plan_for(transactions, horizon_days=90, n_train=3)
    want = build_feature_table_duckdb(sales, plan, eligibility_days=180)
    got = spark_engine.build_feature_table_spark(sales, plan, eligibility_days=180, spark=spark)
    assert_same_table(got, want)


def test_entry_point_writes_the_table(spark, synthetic, tmp_path):
    transactions, customers = synthetic.transactions, synthetic.customers
    transactions.to_parquet(tmp_path / "tx.parquet", index=False)
    customers.to_parquet(tmp_path / "customers.parquet", index=False)
    plan = plan_for(transactions, horizon_days=30, n_train=2)
    (tmp_path / "plan.json").write_text(json.dumps(plan.to_dict()))
    out = tmp_path / "out" / "features.parquet"
    args = ["--transactions", str(tmp_path / "tx.parquet"), "--plan", str(tmp_path / "plan.json")]
    args += ["--customers", str(tmp_path / "customers.parquet"), "--output", str(out)]
    assert spark_engine.main([*args, "--windows", "30,60,90"], spark=spark) == 0
    expected = build_feature_table_duckdb(transactions, plan, customers=customers)
    expected.to_parquet(tmp_path / "expected.parquet", index=False)  # the same round trip
    want = pd.read_parquet(tmp_path / "expected.parquet")
    want.attrs["feature_groups"] = expected.attrs["feature_groups"]
    got = pd.read_parquet(out)
    got.attrs["feature_groups"] = want.attrs["feature_groups"]
    assert_same_table(got, want)


def test_entry_point_plans_from_the_data(spark, synthetic, tmp_path):
    transactions = synthetic.transactions
    transactions.to_parquet(tmp_path / "tx.parquet", index=False)
    args = ["--transactions", str(tmp_path / "tx.parquet"), "--horizon-days", "30"]
    args += ["--n-train-cutoffs", "2", "--plan-output", str(tmp_path / "plan.json")]
    assert spark_engine.main([*args, "--output", str(tmp_path / "f.parquet")], spark=spark) == 0
    want = plan_for(transactions, horizon_days=30, n_train=2)
    assert json.loads((tmp_path / "plan.json").read_text()) == want.to_dict()
    assert len(pd.read_parquet(tmp_path / "f.parquet")) == len(
        build_feature_table_duckdb(transactions, want)
    )
    with pytest.raises(SystemExit):
        spark_engine.main(["--transactions", "x", "--output", "y"], spark=spark)


def test_missing_column_is_named(spark, synthetic):
    plan = plan_for(synthetic.transactions, horizon_days=30, n_train=1)
    with pytest.raises(ValueError, match=r"lack column\(s\) \['amount'\]"):
        spark_engine.build_feature_table_spark(
            synthetic.transactions.drop(columns=["amount"]), plan, spark=spark
        )
