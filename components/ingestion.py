"""Component: discover, read, validate and clean the landing-zone partitions."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Metrics, Output

from churn_kfp.components._base import churn_component


@churn_component
def ingest_and_validate(
    landing_zone: str,
    until: str,
    transactions: Output[Dataset],
    customers: Output[Dataset],
    feedback: Output[Dataset],
    quality_report: Output[Artifact],
    quality_metrics: Output[Metrics],
) -> NamedTuple(
    "IngestOutputs",
    [
        ("quality_score", float),
        ("data_start", str),
        ("data_end", str),
        ("has_customers", bool),
        ("has_feedback", bool),
    ],
):
    """Validates every partition and writes clean tables (Parquet) and a quality report.

    Fails with a message naming the file, the column and the problem for defects that
    cannot be repaired (missing required column, unparseable dates, empty input).

    Args:
        landing_zone: Landing-zone path or ``s3://`` URI; empty means ``CHURN_LANDING_ZONE``.
        until: Only partitions up to this month (``YYYY-MM``); empty means all.
    """
    import json
    from collections import namedtuple

    import pandas as pd

    from churn_kfp.core.config import Settings
    from churn_kfp.data import validation
    from churn_kfp.data.storage import open_landing_zone

    zone = open_landing_zone(landing_zone or Settings.from_env().landing_zone)
    result = validation.ingest(zone, until=until or None)
    result.transactions.to_parquet(transactions.path, index=False)
    for frame, artifact in ((result.customers, customers), (result.feedback, feedback)):
        (frame if frame is not None else pd.DataFrame()).to_parquet(artifact.path, index=False)
        artifact.metadata["rows"] = 0 if frame is None else len(frame)
    transactions.metadata["rows"] = len(result.transactions)
    with open(quality_report.path, "w") as handle:
        json.dump(result.report, handle, indent=2, default=str)
    quality_metrics.log_metric("quality_score", round(result.quality_score, 4))
    quality_metrics.log_metric("transactions_rows", len(result.transactions))
    quality_metrics.log_metric("files", len(result.files))
    start, end = result.data_range()
    print(f"ingested {len(result.files)} files, quality score {result.quality_score:.3f}")
    outputs = namedtuple(
        "IngestOutputs",
        ["quality_score", "data_start", "data_end", "has_customers", "has_feedback"],
    )
    return outputs(
        float(result.quality_score),
        pd.Timestamp(start).isoformat(),
        pd.Timestamp(end).isoformat(),
        result.customers is not None and len(result.customers) > 0,
        result.feedback is not None and len(result.feedback) > 0,
    )
