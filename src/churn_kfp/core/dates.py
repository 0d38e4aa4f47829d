"""Timestamps and the label-maturity rule every stage shares.

A cutoff's churn label looks at the window ``[cutoff, cutoff + horizon_days)``. The label
exists only once that window has been fully observed: ``cutoff + horizon <= data_end + 1 day``
(the whole ``data_end`` day counts as observed). Labels, the cutoff plan and monitoring
all ask :func:`label_window_closed`; nothing else restates the rule.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["iso", "label_window_closed", "observed_until", "to_timestamp"]


def to_timestamp(value: Any) -> pd.Timestamp:
    """Returns a naive (UTC) nanosecond ``pd.Timestamp``.

    Raises:
        ValueError: ``value`` is not a valid timestamp.
    """
    ts = pd.Timestamp(value)
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"not a valid timestamp: {value!r}")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("ns")


def iso(ts: pd.Timestamp) -> str:
    """ISO date (``YYYY-MM-DD``) for midnight, full ISO timestamp otherwise."""
    return ts.date().isoformat() if ts == ts.normalize() else ts.isoformat()


def observed_until(data_end: Any) -> pd.Timestamp:
    """The exclusive end of the observed data: midnight after ``data_end``'s day."""
    return to_timestamp(data_end).normalize() + pd.Timedelta(days=1)


def label_window_closed(cutoff: Any, data_end: Any, horizon_days: int) -> bool:
    """Whether a cutoff's label window ``[cutoff, cutoff + horizon_days)`` is fully observed."""
    window_end = to_timestamp(cutoff) + pd.Timedelta(days=int(horizon_days))
    return bool(window_end <= observed_until(data_end))
