"""Runs on this machine: the logic behind ``churn run``, ``churn retrain`` and ``churn simulate``.

Each run goes through a pipeline on kfp.local and ends in a summary: ``training`` (the training
pipeline), ``retraining`` (one retraining period), ``simulation`` (months of both policies,
retraining vs frozen) and ``summary`` (``last-run.json`` and the ``runs/`` history).
"""

__all__ = ["retraining", "simulation", "summary", "training"]
