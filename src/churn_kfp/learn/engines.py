"""Which engine computes the feature table: one entry point for the features step.

:func:`build_features_with` dispatches on an engine name: ``"duckdb"`` (the default, the
query of :mod:`churn_kfp.learn.feature_sql` on an embedded DuckDB) or ``"pandas"`` (the numpy
builder of :mod:`churn_kfp.learn.features`, kept as the reference the other engines are tested
against). ``"auto"`` picks the default. Every engine returns the same table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from churn_kfp.learn.plan import CutoffPlan

__all__ = ["DEFAULT_ENGINE", "ENGINES", "build_features_with"]

ENGINES = ("auto", "duckdb", "pandas")
"""Engine names :func:`build_features_with` accepts."""

DEFAULT_ENGINE = "duckdb"
"""What ``"auto"`` runs."""


def build_features_with(
    engine: str,
    transactions: Any,
    plan: CutoffPlan,
    customers: pd.DataFrame | None = None,
    feedback: pd.DataFrame | None = None,
    windows: Sequence[int] = (30, 60, 90),
    eligibility_days: int = 90,
) -> pd.DataFrame:
    """The feature table of every cutoff of a plan, computed by the named engine.

    Args:
        engine: One of :data:`ENGINES`.
        transactions: Clean transactions: a pandas frame, or Parquet path(s), local or
            ``s3://`` (read directly by DuckDB; loaded into a frame for ``"pandas"``).
        plan: The cutoffs and their splits.
        customers: Optional customers table.
        feedback: Optional scored feedback.
        windows: Look-back windows in days.
        eligibility_days: Eligibility look-back in days.

    Returns:
        The table of :func:`churn_kfp.learn.features.build_feature_table`.

    Raises:
        ValueError: Unknown engine (or bad input, from the engine).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown feature engine {engine!r}; expected one of {ENGINES}")
    options: dict[str, Any] = {
        "customers": customers,
        "feedback": feedback,
        "windows": windows,
        "eligibility_days": eligibility_days,
    }
    if engine == "pandas":
        from churn_kfp.learn.features import build_feature_table

        if not isinstance(transactions, pd.DataFrame):
            transactions = _read_frame(transactions)
        return build_feature_table(transactions, plan, **options)
    from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb

    return build_feature_table_duckdb(transactions, plan, **options)


def _read_frame(paths: Any) -> pd.DataFrame:
    """Loads local or ``s3://`` Parquet path(s) into one frame."""
    from churn_kfp.data.s3storage import remote_parquet

    items = [str(p) for p in (paths if isinstance(paths, list | tuple) else [paths])]
    dataset = remote_parquet(items)
    return pd.read_parquet(paths) if dataset is None else dataset.to_table().to_pandas()
