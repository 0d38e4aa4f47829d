"""Pipeline definitions: wiring only (which component feeds which, loops, conditions).

``training`` and ``retraining`` are the pipelines the project ships (``registry`` lists them
by name); both run the ``train_and_register`` sub-pipeline. Their protocol parameters take
their defaults from :mod:`churn_kfp.core.protocol`.
"""

__all__ = ["registry", "retraining", "train_and_register", "training"]
