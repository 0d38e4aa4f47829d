"""The model contract: what a registered churn model promises its callers.

Every model version carries its decision threshold as a tag; P(churn) is column 1 of
``predict_proba`` (or the single column of a probability vector); the model takes the input
columns its signature names. Registration, champion scoring, batch scoring and serving all
read the contract from here. Nothing here imports MLflow: :func:`score_rows` works on an
already loaded ``mlflow.pyfunc`` model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from churn_kfp.core.columns import feature_columns

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DECISION_OUTPUT",
    "PROBABILITY_OUTPUT",
    "DEFAULT_THRESHOLD",
    "EXAMPLE_PROBABILITIES_TAG",
    "THRESHOLD_TAG",
    "MissingInputColumnsError",
    "parse_threshold",
    "positive_class_proba",
    "score_rows",
]

THRESHOLD_TAG = "threshold"
"""Model-version tag holding the decision threshold tuned on validation."""
EXAMPLE_PROBABILITIES_TAG = "example_probabilities"
"""Model-version tag: JSON list of P(churn) for the rows of the model's input example,
computed at registration; the deploy step's smoke test compares the served answers with it."""
DEFAULT_THRESHOLD = 0.5
PROBABILITY_OUTPUT = "churn_probability"
"""V2 output of a served model: P(churn) per row."""
DECISION_OUTPUT = "churn"
"""V2 output of a served model: P(churn) >= the version's threshold."""


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


class MissingInputColumnsError(ValueError):
    """A model cannot score the given rows: its input schema needs columns they lack."""


def score_rows(model: Any, frame: pd.DataFrame, *, model_name: str, version: str) -> np.ndarray:
    """P(churn) of each row through a loaded ``mlflow.pyfunc`` model, as it is served.

    Only the model's input columns are passed (the signature's names, else every non-meta
    column), so id, split and label columns may stay in ``frame``.

    Args:
        model: A loaded ``mlflow.pyfunc`` model.
        frame: Rows to score.
        model_name: Registered model name (for the error message).
        version: Its version (for the error message).

    Returns:
        A float64 array of shape ``(len(frame),)``; empty for an empty frame.

    Raises:
        MissingInputColumnsError: ``frame`` lacks columns the model's schema requires.
    """
    if frame.empty:
        return np.zeros(0, dtype=float)
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        missing = [c for c in schema.required_input_names() if c not in frame.columns]
        if missing:
            raise MissingInputColumnsError(
                f"{model_name} version {version} needs columns missing from the rows: {missing}"
            )
        inputs = frame[[c for c in schema.input_names() if c in frame.columns]]
    else:
        inputs = frame[feature_columns(frame.columns)]
    return positive_class_proba(model.predict(inputs))
