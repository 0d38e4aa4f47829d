"""Learning a churn model from clean data: the steps between ingestion and registration.

- :mod:`~churn_kfp.learn.plan`: the cutoff plan (which cutoffs train, validate and test).
- :mod:`~churn_kfp.learn.features`: point-in-time customer features at each cutoff.
- :mod:`~churn_kfp.learn.labels`: churn labels once their window is observed, label checks.
- :mod:`~churn_kfp.learn.metrics`: pure metrics of churn scores.
- :mod:`~churn_kfp.learn.training`: candidate pipelines, random search, threshold, refit.
- :mod:`~churn_kfp.learn.evaluation`: candidates vs baselines on test, champion choice.
- :mod:`~churn_kfp.learn.report`: the HTML evaluation report.
"""

__all__ = ["evaluation", "features", "labels", "metrics", "plan", "report", "training"]
