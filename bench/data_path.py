"""The training data path of a run, timed stage by stage: ingest, features, labels.

The same code the pipeline's steps run, in the same order, on the same files:

1. ``ingest``: :func:`churn_kfp.data.validation.ingest` reads, validates and cleans a landing
   zone of monthly Parquet partitions (the layout ``churn import`` writes), then writes the
   clean transactions as Parquet (the ingestion step's output);
2. ``features``: :func:`churn_kfp.learn.duckdb_engine.build_feature_table_duckdb` on that
   Parquet at every cutoff of the run (the features step);
3. ``labels``: :func:`churn_kfp.learn.labels.label_churn` on the feature rows and the clean
   transactions' purchases in the label windows, read back from Parquet by
   :func:`churn_kfp.learn.labels.read_label_transactions` (the labels step).

Used by :mod:`features_bench` (``--path-max``); not a suite of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.compute as pc
import pyarrow.parquet as pq

from churn_kfp.core import columns
from churn_kfp.data.storage import open_landing_zone, partition_key
from churn_kfp.data.validation import ingest
from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb, connect
from churn_kfp.learn.labels import label_churn, read_label_transactions
from churn_kfp.learn.plan import CutoffPlan

STAGES = ("ingest", "features", "labels")


def write_landing_zone(paths: Sequence[Path], root: Path) -> int:
    """Writes transactions as a landing zone's monthly Parquet partitions; returns the files."""
    table = pq.read_table([str(p) for p in paths] if len(paths) > 1 else paths[0])
    months = pc.add(pc.multiply(pc.year(table["timestamp"]), 100), pc.month(table["timestamp"]))
    files = 0
    for key in sorted(months.unique().to_pylist()):
        part = table.filter(pc.equal(months, key))
        path = root / partition_key("transactions", key // 100, key % 100, suffix=".parquet")
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(part, path)
        files += 1
    return files


def run_data_path(
    zone_root: Path,
    work: Path,
    plan: CutoffPlan,
    windows: Sequence[int],
    timed: Callable[[Callable[[], Any]], tuple[dict[str, Any], Any]],
    memory_limit: str = "10GB",
) -> dict[str, Any]:
    """Runs the three steps on a landing zone, each timed by ``timed``.

    Args:
        zone_root: The landing zone folder (see :func:`write_landing_zone`).
        work: Folder for the steps' outputs and DuckDB's spill files.
        plan: The run's cutoffs and horizon.
        windows: Feature windows in days.
        timed: ``fn -> (figures, result)`` (seconds, CPU seconds, peak memory growth).
        memory_limit: DuckDB's memory limit.

    Returns:
        ``{"ingest": figures, "features": figures, "labels": figures, "seconds": total,
        "peak_mb": largest, "rows_labelled": n, "churn_rate": share}``.
    """
    clean = work / "transactions.parquet"

    def ingest_step() -> int:
        result = ingest(open_landing_zone(str(zone_root)))
        result.transactions.to_parquet(clean, index=False)
        return len(result.transactions)

    def features_step() -> pd.DataFrame:
        connection = connect(memory_limit=memory_limit, temp_directory=str(work / "spill"))
        try:
            return build_feature_table_duckdb(
                [str(clean)], plan, windows=windows, connection=connection
            )
        finally:
            connection.close()

    def labels_step(features: pd.DataFrame) -> pd.DataFrame:
        transactions, data_end = read_label_transactions(
            clean, plan.all_cutoffs(), plan.horizon_days
        )
        return label_churn(features, transactions, plan.horizon_days, data_end)

    stages: dict[str, Any] = {}
    stages["ingest"], _ = timed(ingest_step)
    stages["features"], features = timed(features_step)
    stages["labels"], labelled = timed(lambda: labels_step(features))
    return {
        **stages,
        "seconds": round(sum(stages[s]["seconds"] for s in STAGES), 3),
        "peak_mb": max(stages[s]["peak_mb"] for s in STAGES),
        "rows_labelled": len(labelled),
        "churn_rate": round(float(labelled[columns.LABEL].mean()), 4) if len(labelled) else None,
    }
