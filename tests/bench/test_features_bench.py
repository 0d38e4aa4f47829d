"""The features benchmark on a small size: its data path runs the pipeline steps' code."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from churn_kfp.core import columns
from churn_kfp.learn.features import build_feature_table
from churn_kfp.learn.labels import label_churn

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))
    try:
        import data_path
        import features_bench

        yield features_bench, data_path
    finally:
        sys.path.remove(str(BENCH))


def test_data_path_labels_what_the_reference_builder_labels(bench, tmp_path):
    features_bench, data_path = bench
    (tmp_path / "tx").mkdir()
    paths = features_bench.write_transactions(20_000, tmp_path / "tx", seed=3)
    assert data_path.write_landing_zone(paths, tmp_path / "zone") == 12  # one file per month
    result = data_path.run_data_path(
        tmp_path / "zone",
        tmp_path,
        features_bench.PLAN,
        features_bench.WINDOWS,
        features_bench.timed,
    )
    for step in data_path.STAGES:
        assert result[step]["seconds"] > 0
    assert result["seconds"] == pytest.approx(sum(result[s]["seconds"] for s in data_path.STAGES))

    transactions = pd.read_parquet(paths[0])
    reference = build_feature_table(
        transactions, features_bench.PLAN, windows=features_bench.WINDOWS
    )
    labelled = label_churn(reference, transactions, 30, transactions["timestamp"].max())
    assert result["rows_labelled"] == len(labelled)
    assert result["churn_rate"] == round(float(labelled[columns.LABEL].mean()), 4)


def test_run_reports_every_size_and_the_growth(bench, tmp_path):
    features_bench, _ = bench
    results = features_bench.run(sizes=(10_000, 20_000), png=None, path_max=10_000)
    small, large = results["sizes"]["10k"], results["sizes"]["20k"]
    assert small["same_core_values"] and large["same_core_values"]
    assert "data_path" in small and "data_path" not in large  # beyond --path-max
    assert results["time_per_tx_growth"] > 0


def test_targets_are_judged_only_where_measured(bench):
    features_bench, _ = bench

    def size(n, seconds, speedup=None):
        entry = {"transactions": n, "duckdb": {"seconds": seconds, "tx_per_s": round(n / seconds)}}
        return entry if speedup is None else {**entry, "speedup": speedup}

    sizes = {
        "1M": size(1_000_000, 0.5),
        "10M": size(10_000_000, 2.0, speedup=2.9),
        "30M": size(30_000_000, 19.5),
    }
    got = features_bench.targets(sizes)
    assert got["tx_per_s_at_10M"] == {"target": ">= 5e+06", "measured": 5_000_000, "met": True}
    assert got["speedup_at_10M"]["met"] is False
    assert got["time_per_tx_growth_30M_over_1M"] == {
        "target": "<= 1.3",
        "measured": 1.3,
        "met": True,
    }
    assert features_bench.targets({"1M": sizes["1M"]}) == {}
