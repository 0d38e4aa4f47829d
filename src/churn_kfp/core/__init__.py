"""The core every stage shares: settings, column names, dates, JSON and process helpers.

Nothing here imports another ``churn_kfp`` package; every other package may import it.
"""

__all__ = ["columns", "config", "dates", "jsonable", "processes", "protocol"]
