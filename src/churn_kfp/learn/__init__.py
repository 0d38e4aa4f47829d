"""Learning a churn model from clean data: the steps between ingestion and registration.

- :mod:`~churn_kfp.learn.plan`: the cutoff plan (which cutoffs train, validate and test).
- :mod:`~churn_kfp.learn.features`: point-in-time customer features at each cutoff (the
  numpy reference builder).
- :mod:`~churn_kfp.learn.feature_sql`: the same behaviour features as one SQL query for every
  cutoff, shared by the SQL engines.
- :mod:`~churn_kfp.learn.duckdb_engine`: that query on an embedded DuckDB.
- :mod:`~churn_kfp.learn.spark_engine`: that query on Spark (local mode or a SparkApplication's
  driver; needs the ``spark`` extra).
- :mod:`~churn_kfp.learn.engines`: :func:`~churn_kfp.learn.engines.build_features_with`, the
  features step's entry point with an engine name.
- :mod:`~churn_kfp.learn.labels`: churn labels once their window is observed, label checks.
- :mod:`~churn_kfp.learn.metrics`: pure metrics of churn scores.
- :mod:`~churn_kfp.learn.training`: candidate pipelines, random search, threshold, refit.
- :mod:`~churn_kfp.learn.weights`: sample weights of training rows (newer cutoffs weigh more).
- :mod:`~churn_kfp.learn.evaluation`: candidates vs baselines on test, champion choice.
- :mod:`~churn_kfp.learn.report`: the HTML evaluation report.
"""

__all__ = [
    "duckdb_engine",
    "engines",
    "evaluation",
    "feature_sql",
    "features",
    "labels",
    "metrics",
    "plan",
    "report",
    "spark_engine",
    "training",
    "weights",
]
