"""Orchestration: what it takes to run the pipelines, locally or on Kubeflow.

``image`` names the component image (one place, never ``:latest``); ``cluster_env`` wires the
Secret and ConfigMap into every task; ``kfp_client`` uploads, runs and schedules against the
KFP API, with ``cron`` converting schedules to KFP's six fields; ``localrun`` runs a pipeline
through ``kfp.local`` with progress lines and kept logs; ``spark_app`` builds, creates and
watches the features step's SparkApplication (Kubeflow Spark Operator).
"""

__all__ = ["cluster_env", "cron", "image", "kfp_client", "localrun", "spark_app"]
