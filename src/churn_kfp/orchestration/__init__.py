"""Orchestration: what it takes to run the pipelines, locally or on Kubeflow.

``image`` names the component image (one place, never ``:latest``); ``cluster_env`` wires the
Secret and ConfigMap into every task; ``kfp_client`` uploads, runs and schedules against the
KFP API, with ``cron`` converting schedules to KFP's six fields; ``localrun`` runs a pipeline
through ``kfp.local`` with progress lines and kept logs.
"""

__all__ = ["cluster_env", "cron", "image", "kfp_client", "localrun"]
