"""Sample weights of training rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["recency_weights"]


def recency_weights(cutoffs: pd.Series, half_life: float) -> np.ndarray:
    """Sample weights that halve every ``half_life`` cutoffs back from the newest one.

    A cutoff's age is its rank counted back from the newest cutoff of the rows (0, 1, 2...),
    so the weighting means the same on any cutoff grid. Weights are scaled to a mean of 1.

    Args:
        cutoffs: The ``cutoff`` column of the rows to fit.
        half_life: Cutoffs after which a row weighs half; 0 (or less) gives equal weights.

    Returns:
        One weight per row.
    """
    if half_life <= 0:
        return np.ones(len(cutoffs))
    dates = pd.to_datetime(cutoffs)
    age = dates.rank(method="dense", ascending=False).to_numpy() - 1.0
    weights = np.power(0.5, age / half_life)
    return weights / weights.mean()
