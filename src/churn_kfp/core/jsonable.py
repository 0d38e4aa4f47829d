"""Conversion of numpy/pandas values into plain, strictly JSON-safe Python values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """Converts numpy scalars/arrays and non-finite floats into JSON-safe Python values.

    Dicts (keys become ``str``), lists, tuples and arrays are converted recursively;
    non-finite floats become ``None``; ``pd.Timestamp`` becomes its ISO string; anything
    else is returned as it is.
    """
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return value
