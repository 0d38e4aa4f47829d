"""The retraining loop stage: once a period, monitor the champion and decide to retrain.

``periods`` (the period calendar and which period is next), ``ledger`` (processed
partitions), ``state`` (the state store: keys, JSON records, predictions, performance),
``reference`` (the champion's drift reference), ``drift`` (Evidently drift of features,
scores and labels), ``monitor`` (the monitor step), ``decision`` (retrain or not, alerts),
``finalize`` (committing a period or recording a skip) and ``failpoints`` (the test hook
that makes a step fail).
"""

__all__ = [
    "decision",
    "drift",
    "failpoints",
    "finalize",
    "ledger",
    "monitor",
    "periods",
    "reference",
    "state",
]
