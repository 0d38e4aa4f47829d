"""Column names shared by the feature, label, training, evaluation and serving code."""

from __future__ import annotations

from collections.abc import Iterable

CUSTOMER_ID = "customer_id"
CUTOFF = "cutoff"
SPLIT = "split"
LABEL = "churn"

TRAIN, VALIDATION, TEST = "train", "validation", "test"
SPLITS = (TRAIN, VALIDATION, TEST)
REFIT = "refit"
"""Rows only the served model fits on: matured cutoffs outside the evaluation splits."""

META_COLUMNS = (CUSTOMER_ID, CUTOFF, SPLIT, LABEL)


def feature_columns(columns: Iterable[str]) -> list[str]:
    """Returns the model's input columns: every column that is not an id, split or label."""
    return [c for c in columns if c not in META_COLUMNS]
