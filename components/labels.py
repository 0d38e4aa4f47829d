"""Component: churn labels for every cutoff whose window has passed."""

from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from churn_kfp.components._base import churn_component


@churn_component
def label_churn(
    features: Input[Dataset],
    transactions: Input[Dataset],
    horizon_days: int,
    labelled: Output[Dataset],
    label_report: Output[Artifact],
    label_metrics: Output[Metrics],
):
    """Labels churn (no purchase within ``horizon_days`` after the cutoff) and checks balance.

    Refuses cutoffs whose window is not fully observed and splits with a single class.
    """
    import json

    import pandas as pd

    from churn_kfp.core import columns
    from churn_kfp.learn import labels

    rows = pd.read_parquet(features.path)
    tx, data_end = labels.read_label_transactions(
        transactions.path, rows[columns.CUTOFF].unique(), horizon_days
    )
    table = labels.label_churn(rows, tx, horizon_days, data_end)
    labels.check_label_quality(table)
    report = labels.label_report(table)
    table.to_parquet(labelled.path, index=False)
    labelled.metadata["rows"] = len(table)
    with open(label_report.path, "w") as handle:
        json.dump(report, handle, indent=2, default=str)
    for split, stats in report.get("splits", {}).items():
        label_metrics.log_metric(f"{split}_churn_rate", round(float(stats["churn_rate"]), 4))
        label_metrics.log_metric(f"{split}_rows", int(stats["rows"]))
