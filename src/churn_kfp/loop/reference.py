"""The drift reference: the labelled sample a champion is compared with, logged and read back.

The registration step logs :func:`reference_sample` of the labelled table in the model's
MLflow run (:data:`REFERENCE_ARTIFACT`); the monitor step reads the test rows back with
:func:`load_reference` (from MLflow), or rebuilds them from the data at the champion's test
cutoff for a version registered without one.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import pandas as pd

from churn_kfp.core import columns
from churn_kfp.core.dates import label_window_closed
from churn_kfp.learn.features import build_features
from churn_kfp.learn.labels import label_churn
from churn_kfp.registry.champion import Champion

__all__ = ["REFERENCE_ARTIFACT", "load_reference", "reference_sample"]

REFERENCE_ARTIFACT = "reference/reference.parquet"
"""Where the registration step logs the reference sample in the model's MLflow run."""


def load_reference(
    champion: Champion,
    transactions: pd.DataFrame,
    customers: pd.DataFrame | None,
    feedback: pd.DataFrame | None,
    windows: Sequence[int],
    eligibility_days: int,
    horizon_days: int,
    max_rows: int = 5000,
) -> tuple[pd.DataFrame, str]:
    """The champion's reference rows: features and labels of its test cutoff.

    Read from the reference sample the registration step logged in the champion's MLflow
    run (:data:`REFERENCE_ARTIFACT`, rows of split ``test``); for a version registered
    without one, rebuilt from the data at the ``test_cutoff`` of its lineage tags.

    Returns:
        ``(frame, source)``; an empty frame when neither works (``source`` says why).
    """
    frame: pd.DataFrame | None = None
    source = ""
    if champion.run_id:
        try:
            import mlflow

            with tempfile.TemporaryDirectory() as tmp:
                local = mlflow.artifacts.download_artifacts(
                    run_id=champion.run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp
                )
                frame = pd.read_parquet(local)
            if columns.SPLIT in frame.columns and (frame[columns.SPLIT] == columns.TEST).any():
                frame = frame[frame[columns.SPLIT] == columns.TEST]
            source = f"logged reference of version {champion.version} ({REFERENCE_ARTIFACT})"
        except Exception as exc:  # noqa: BLE001 - any failure means "not logged": rebuild
            frame = None
            source = f"no logged reference ({type(exc).__name__})"
    if frame is None or frame.empty:
        test_cutoff = champion.tags.get("test_cutoff")
        if not test_cutoff:
            return pd.DataFrame(), f"{source}; no test_cutoff tag to rebuild it from".lstrip("; ")
        data_end = pd.Timestamp(transactions["timestamp"].max())
        frame = build_features(
            transactions,
            pd.Timestamp(test_cutoff),
            customers=customers,
            feedback=feedback,
            windows=tuple(windows),
            eligibility_days=eligibility_days,
        )
        if label_window_closed(test_cutoff, data_end, horizon_days):
            frame = label_churn(frame, transactions, horizon_days, data_end)
        source = f"{source}; rebuilt at the champion's test cutoff {test_cutoff}".lstrip("; ")
    if len(frame) > max_rows:
        frame = frame.sample(n=max_rows, random_state=0)
    return frame.reset_index(drop=True), source


def reference_sample(table: pd.DataFrame, max_rows_per_split: int = 5000) -> pd.DataFrame:
    """A seeded sample (at most ``max_rows_per_split`` per split) of a labelled table.

    The registration step logs it as :data:`REFERENCE_ARTIFACT`, the reference of drift.
    """
    if columns.SPLIT not in table.columns:
        return table.sample(n=min(len(table), max_rows_per_split), random_state=0)
    parts = [
        part.sample(n=min(len(part), max_rows_per_split), random_state=0)
        for _, part in table.groupby(columns.SPLIT, sort=True)
    ]
    return pd.concat(parts).sort_index()
