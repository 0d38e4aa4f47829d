"""The features step as a Spark job: a ``SparkApplication`` for the Kubeflow Spark Operator.

:func:`spark_application` builds the manifest (``sparkoperator.k8s.io/v1beta2``, checked in
the tests against the operator's own API models, ``kubeflow-spark-api``); its driver runs
:mod:`churn_kfp.learn.spark_engine` from the project image. :func:`run_spark_application`
creates it through the Kubernetes API and watches it to ``COMPLETED``, or raises with the
driver's error message on ``FAILED``. :func:`choose_engine` is the ``auto`` rule.

Supported operator: Kubeflow Spark Operator v2.4 (API ``v1beta2``); the service account
running the step needs ``create``, ``get`` and ``delete`` on ``sparkapplications`` in the
``sparkoperator.k8s.io`` group, and the driver's service account the usual Spark-on-K8s pod
rights (see docs/deploy-kubeflow.md).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from churn_kfp.orchestration.cluster_env import S3_SECRET, SECRET_KEY_TO_ENV

__all__ = [
    "AUTO_SPARK_BYTES",
    "FEATURE_ENGINES",
    "GROUP",
    "PLURAL",
    "SPARK_VERSION",
    "VERSION",
    "SparkApplicationFailed",
    "choose_engine",
    "spark_application",
    "run_spark_application",
    "s3a",
]

GROUP, VERSION, PLURAL = "sparkoperator.k8s.io", "v1beta2", "sparkapplications"
SPARK_VERSION = "4.3.0"
"""The Spark the image carries (pyspark, pinned in requirements.lock)."""

ENTRY_POINT = "local:///opt/venv/lib/python3.11/site-packages/churn_kfp/learn/spark_engine.py"
"""The driver's main file: :mod:`churn_kfp.learn.spark_engine` as installed in the image."""

FEATURE_ENGINES = ("auto", "duckdb", "spark")
"""Values of the pipelines' ``feature_engine`` parameter."""

AUTO_SPARK_BYTES = 20 * 2**30
"""``auto`` runs Spark from this much Parquet on (20 GiB, roughly 1.5 billion order lines)."""

_FAILED = ("FAILED", "SUBMISSION_FAILED", "FAILING", "INVALIDATING")


class SparkApplicationFailed(RuntimeError):
    """The SparkApplication ended in a failed state (the message names the driver's error)."""


def s3a(uri: str) -> str:
    """An artifact or landing-zone URI as Spark's S3A connector names it (``s3a://``)."""
    for scheme in ("s3://", "minio://"):
        if uri.startswith(scheme):
            return "s3a://" + uri[len(scheme) :]
    return uri


def choose_engine(feature_engine: str, landing_bytes: int, threshold_bytes: int) -> str:
    """Resolves ``auto`` by size: ``spark`` from ``threshold_bytes`` of Parquet on.

    Raises:
        ValueError: Unknown engine or a negative threshold.
    """
    if feature_engine not in FEATURE_ENGINES:
        raise ValueError(f"unknown feature_engine {feature_engine!r}; expected {FEATURE_ENGINES}")
    if threshold_bytes < 0:
        raise ValueError(f"spark threshold must be >= 0 bytes, got {threshold_bytes}")
    if feature_engine != "auto":
        return feature_engine
    return "spark" if landing_bytes >= threshold_bytes else "duckdb"


def spark_application(
    name: str,
    namespace: str,
    image: str,
    arguments: Sequence[str],
    service_account: str = "spark",
    executors: int = 2,
    executor_cores: int = 2,
    executor_memory: str = "4g",
    driver_memory: str = "2g",
    spark_conf: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The SparkApplication manifest running the feature engine's entry point.

    Args:
        name: Object name (a DNS label).
        namespace: Where it runs.
        image: The project image (``churn_kfp.orchestration.image.component_image``).
        arguments: Arguments of :func:`churn_kfp.learn.spark_engine.main`.
        service_account: The driver's service account (it creates the executor pods).
        executors: Executor count.
        executor_cores: Cores per executor.
        executor_memory: Memory per executor (``4g``).
        driver_memory: Driver memory (``2g``).
        spark_conf: Extra Spark settings (S3A endpoint and credentials provider...).

    Returns:
        The manifest as a dict.
    """
    labels = {"app.kubernetes.io/part-of": "churn-kfp", "app.kubernetes.io/component": "features"}
    # S3A's default credential chain reads these, as boto3 does in the components.
    env = [
        {"name": var, "valueFrom": {"secretKeyRef": {"name": S3_SECRET, "key": key}}}
        for key, var in SECRET_KEY_TO_ENV.items()
    ]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "SparkApplication",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "type": "Python",
            "pythonVersion": "3",
            "mode": "cluster",
            "image": image,
            "imagePullPolicy": "IfNotPresent",
            "mainApplicationFile": ENTRY_POINT,
            "arguments": [str(a) for a in arguments],
            "sparkVersion": SPARK_VERSION,
            "sparkConf": {"spark.sql.session.timeZone": "UTC", **(spark_conf or {})},
            "restartPolicy": {"type": "Never"},
            "driver": {
                "cores": 1,
                "memory": driver_memory,
                "serviceAccount": service_account,
                "labels": labels,
                "env": env,
            },
            "executor": {
                "instances": int(executors),
                "cores": int(executor_cores),
                "memory": executor_memory,
                "labels": labels,
                "env": env,
            },
        },
    }


def run_spark_application(
    api: Any,
    manifest: dict[str, Any],
    timeout_s: float = 6 * 3600,
    poll_s: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Creates the SparkApplication (or adopts one of the same name) and waits for its end.

    Args:
        api: A ``kubernetes.client.CustomObjectsApi``.
        manifest: From :func:`spark_application`.
        timeout_s: Give up after this long.
        poll_s: Seconds between status reads.
        log: Where state changes are reported.

    Returns:
        The final object (``status.applicationState.state == "COMPLETED"``).

    Raises:
        SparkApplicationFailed: It failed (the driver's error message is named).
        TimeoutError: Still running after ``timeout_s``.
    """
    from kubernetes.client.exceptions import ApiException

    meta = manifest["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
        log(f"created SparkApplication {namespace}/{name}")
    except ApiException as exc:
        if exc.status != 409:
            raise
        log(f"SparkApplication {namespace}/{name} exists already (a retried step): watching it")
    deadline, seen = time.monotonic() + timeout_s, None
    while True:
        current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        state = (current.get("status") or {}).get("applicationState") or {}
        phase = state.get("state") or "NEW"
        if phase != seen:
            log(f"SparkApplication {name}: {phase}")
            seen = phase
        if phase == "COMPLETED":
            return current
        if phase in _FAILED:
            message = state.get("errorMessage") or "no error message from the operator"
            raise SparkApplicationFailed(
                f"SparkApplication {namespace}/{name} ended {phase}: {message}"
            )
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"SparkApplication {namespace}/{name} still {phase} after {timeout_s:.0f}s"
            )
        time.sleep(poll_s)
