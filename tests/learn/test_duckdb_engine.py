"""The DuckDB engine equals the pandas reference builder on synthetic data and on CDNOW."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_kfp.data import datagen
from churn_kfp.data.importer.importing import import_file
from churn_kfp.data.s3storage import S3LandingZone
from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb
from churn_kfp.learn.engines import build_features_with
from churn_kfp.learn.feature_sql import feature_query
from churn_kfp.learn.features import build_feature_table
from churn_kfp.learn.plan import plan_cutoffs

REPO = Path(__file__).resolve().parents[2]


def assert_same_table(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert len(want) > 0
    assert list(got.columns) == list(want.columns)
    assert list(got.dtypes) == list(want.dtypes)
    assert got.attrs["feature_groups"] == want.attrs["feature_groups"]
    pd.testing.assert_frame_equal(got, want, check_exact=False, rtol=1e-9, atol=1e-9)


def plan_for(transactions: pd.DataFrame, horizon_days: int, n_train: int):
    times = pd.to_datetime(transactions["timestamp"])
    return plan_cutoffs(
        times.min(), times.max(), horizon_days=horizon_days, n_train_cutoffs=n_train
    )


@pytest.fixture(scope="module")
def synthetic() -> datagen.SyntheticData:
    return datagen.simulate(n_customers=800, n_months=6, seed=7)


def test_synthetic_data_with_defects_every_group(synthetic):
    transactions = synthetic.transactions
    assert transactions["amount"].isna().any()  # the generator's defects are in play
    rng = np.random.default_rng(0)
    feedback = synthetic.feedback.assign(
        sentiment=np.where(
            rng.random(len(synthetic.feedback)) < 0.1,
            np.nan,
            rng.uniform(-1, 1, len(synthetic.feedback)),
        )
    )
    plan = plan_for(transactions, horizon_days=30, n_train=3)
    options = {"customers": synthetic.customers, "feedback": feedback, "windows": (14, 30, 60)}
    want = build_feature_table(transactions, plan, eligibility_days=60, **options)
    got = build_feature_table_duckdb(transactions, plan, eligibility_days=60, **options)
    assert want.attrs["feature_groups"] == ["behaviour", "quantity", "sentiment", "demographics"]
    assert_same_table(got, want)


@pytest.mark.parametrize(("windows", "eligibility_days"), [((7, 45), 100), ((10, 75), 75)])
def test_windows_off_the_active_period_grid(synthetic, windows, eligibility_days):
    # active months are counted in 30-day periods; here the windows and the eligibility
    # look-back end inside a period, so the period edges are counts of their own
    transactions = synthetic.transactions
    plan = plan_for(transactions, horizon_days=30, n_train=2)
    options = {"windows": windows, "eligibility_days": eligibility_days}
    want = build_feature_table(transactions, plan, **options)
    assert want[f"active_months_{max(windows)}d"].nunique() > 2
    assert_same_table(build_feature_table_duckdb(transactions, plan, **options), want)


def test_reads_parquet_directly_and_through_the_engine_switch(synthetic, tmp_path):
    transactions = synthetic.transactions
    path = tmp_path / "transactions.parquet"
    transactions.to_parquet(path, index=False)
    plan = plan_for(transactions, horizon_days=30, n_train=2)
    want = build_feature_table(transactions, plan)
    assert_same_table(build_features_with("duckdb", path, plan), want)
    assert_same_table(build_features_with("auto", str(path), plan), want)
    assert_same_table(build_features_with("pandas", path, plan), want)
    with pytest.raises(ValueError, match="unknown feature engine 'polars'"):
        build_features_with("polars", path, plan)
    # both engines decide where Parquet lives in one place, and refuse the same inputs
    for engine in ("duckdb", "pandas"):
        with pytest.raises(ValueError, match="cannot read gs://bucket/t.parquet"):
            build_features_with(engine, "gs://bucket/t.parquet", plan)
        with pytest.raises(ValueError, match="mixing local and s3:// paths"):
            build_features_with(engine, [str(path), "s3://bucket/t.parquet"], plan)


@pytest.mark.s3
def test_reads_s3_parquet_from_a_real_s3_server(synthetic, bucket, monkeypatch):
    """Objects and a prefix on SeaweedFS, read through pyarrow's S3 filesystem (no httpfs)."""
    zone = S3LandingZone(bucket)
    transactions = synthetic.transactions
    half = len(transactions) // 2
    for name, part in (("a", transactions.iloc[:half]), ("b", transactions.iloc[half:])):
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False)
        zone.write_bytes(f"sales/part-{name}.parquet", buffer.getvalue())
    plan = plan_for(transactions, horizon_days=30, n_train=2)
    want = build_feature_table(transactions, plan)
    objects = [f"s3://{bucket}/sales/part-a.parquet", f"s3://{bucket}/sales/part-b.parquet"]
    assert_same_table(build_features_with("duckdb", f"s3://{bucket}/sales", plan), want)
    assert_same_table(build_features_with("duckdb", objects, plan), want)
    assert_same_table(build_features_with("pandas", f"s3://{bucket}/sales", plan), want)
    # the credentials are the landing zone's: wrong ones are refused by the server
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    with pytest.raises(OSError, match="ACCESS_DENIED"):
        build_features_with("duckdb", f"s3://{bucket}/sales", plan)


def test_cdnow(cdnow_path, tmp_path):
    zone = tmp_path / "landing"
    import_file(cdnow_path, REPO / "examples/cdnow/mapping.yaml", str(zone), progress=False)
    transactions = pd.read_parquet(zone / "raw" / "sales")
    assert len(transactions) > 60_000
    plan = plan_for(transactions, horizon_days=90, n_train=3)
    want = build_feature_table(transactions, plan, eligibility_days=180)
    got = build_feature_table_duckdb(zone / "raw" / "sales", plan, eligibility_days=180)
    assert_same_table(got, want)


def test_query_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown SQL dialect"):
        feature_query("t", ["2024-01-01"], dialect="oracle")
    with pytest.raises(ValueError, match="at least one cutoff"):
        feature_query("t", [])
    with pytest.raises(ValueError, match="windows must be positive"):
        feature_query("t", ["2024-01-01"], windows=(0, 30))
    spark = feature_query("t", ["2024-01-01"], dialect="spark")
    assert "unix_micros(timestamp)" in spark and "epoch_us" not in spark
