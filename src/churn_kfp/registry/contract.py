"""The model contract: what a registered churn model promises its callers.

Every model version carries its decision threshold as a tag; P(churn) is column 1 of
``predict_proba`` (or the single column of a probability vector). Registration, champion
scoring, batch scoring and serving all read the contract from here.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DEFAULT_THRESHOLD", "THRESHOLD_TAG", "parse_threshold", "positive_class_proba"]

THRESHOLD_TAG = "threshold"
"""Model-version tag holding the decision threshold tuned on validation."""
DEFAULT_THRESHOLD = 0.5


def parse_threshold(value: Any) -> float | None:
    """Reads a threshold tag value; ``None`` when absent, not a number or outside [0, 1]."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        return None
    return threshold if 0.0 <= threshold <= 1.0 else None


def positive_class_proba(output: Any) -> np.ndarray:
    """Returns P(churn) from a model's ``predict_proba``-style output.

    Args:
        output: ``(n, 2)`` array or frame (column 1 is churn), or ``(n,)``/``(n, 1)``
            already holding the churn probability.

    Returns:
        A float64 array of shape ``(n,)``.

    Raises:
        ValueError: The output has any other shape.
    """
    values = np.asarray(output.to_numpy() if hasattr(output, "to_numpy") else output, dtype=float)
    if values.ndim == 2 and values.shape[1] == 2:
        return values[:, 1]
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim == 1:
        return values
    raise ValueError(f"cannot read churn probabilities from output of shape {values.shape}")
