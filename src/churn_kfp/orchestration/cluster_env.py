"""The single place that wires Kubernetes configuration into pipeline tasks.

:func:`use_cluster_config` makes a task's pod read its settings from two objects that
``manifests/`` creates in the profile namespace:

* the Secret :data:`S3_SECRET` -> ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``;
* the ConfigMap :data:`CONFIG_MAP` -> ``MLFLOW_TRACKING_URI``, ``MLFLOW_S3_ENDPOINT_URL``,
  ``S3_ENDPOINT_URL``, ``CHURN_LANDING_ZONE``, ``CHURN_ARTIFACT_ROOT`` and
  ``CHURN_KSERVE_SERVICE_ACCOUNT`` (the account the deploy step puts in the
  InferenceService).

The compiled pipeline YAML then holds only the *names* of the Secret, the ConfigMap and
their keys; the values are resolved by Kubernetes when the pod starts. Locally
(``kfp.local``) the platform config is ignored and the same variables come from the shell
or their defaults (:class:`churn_kfp.core.config.Settings`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfp.dsl import PipelineTask

S3_SECRET = "churn-s3-credentials"
"""Secret holding the S3/MinIO credentials (also the one KServe's ServiceAccount uses)."""

CONFIG_MAP = "churn-config"
"""ConfigMap holding endpoints and URIs (no secrets)."""

SECRET_KEY_TO_ENV = {
    "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY": "AWS_SECRET_ACCESS_KEY",
}
"""Secret key -> environment variable."""

CONFIG_MAP_KEY_TO_ENV = {
    "MLFLOW_TRACKING_URI": "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL": "MLFLOW_S3_ENDPOINT_URL",
    "S3_ENDPOINT_URL": "S3_ENDPOINT_URL",
    "CHURN_LANDING_ZONE": "CHURN_LANDING_ZONE",
    "CHURN_ARTIFACT_ROOT": "CHURN_ARTIFACT_ROOT",
    "CHURN_KSERVE_SERVICE_ACCOUNT": "CHURN_KSERVE_SERVICE_ACCOUNT",
}
"""ConfigMap key -> environment variable."""


def use_cluster_config(task: PipelineTask) -> PipelineTask:
    """Injects the S3 credentials Secret and the ``churn-config`` ConfigMap as env vars.

    Args:
        task: A pipeline task (inside a ``@dsl.pipeline`` function).

    Returns:
        The same task, for chaining.
    """
    from kfp import kubernetes

    kubernetes.use_secret_as_env(task, secret_name=S3_SECRET, secret_key_to_env=SECRET_KEY_TO_ENV)
    kubernetes.use_config_map_as_env(
        task, config_map_name=CONFIG_MAP, config_map_key_to_env=CONFIG_MAP_KEY_TO_ENV
    )
    return task
