"""Components: choose the feature engine, and the features step as a Spark job."""

from typing import NamedTuple

from kfp.dsl import Artifact, Dataset, Input, Output

from churn_kfp.components._base import churn_component


@churn_component
def choose_feature_engine(
    transactions: Input[Dataset], feature_engine: str, spark_threshold_bytes: int
) -> str:
    """Resolves ``feature_engine`` (``auto`` | ``duckdb`` | ``spark``) to the engine to run.

    Args:
        feature_engine: ``auto`` picks ``spark`` from ``spark_threshold_bytes`` of Parquet on.
        spark_threshold_bytes: The ``auto`` threshold in bytes.
    """
    import os

    from churn_kfp.orchestration.spark_app import choose_engine

    path = transactions.path
    if os.path.isdir(path):
        size = sum(
            os.path.getsize(os.path.join(root, name))
            for root, _, names in os.walk(path)
            for name in names
        )
    else:
        size = os.path.getsize(path)
    engine = choose_engine(feature_engine, size, spark_threshold_bytes)
    print(f"feature engine {engine} ({feature_engine}; transactions {size} bytes)")
    return engine


@churn_component
def build_features_spark(
    transactions: Input[Dataset],
    customers: Input[Dataset],
    scored_feedback: Input[Dataset],
    horizon_days: int,
    n_train_cutoffs: int,
    eligibility_days: int,
    windows: str,
    namespace: str,
    features: Output[Dataset],
    cutoff_plan: Output[Artifact],
    test_cutoff: str = "",
    cutoff_spacing: str = "MS",
    spark_executors: int = 2,
) -> NamedTuple("FeatureOutputs", [("feature_groups", str), ("test_cutoff", str), ("rows", int)]):
    """The features step as a SparkApplication: created, watched to its end, outputs read back.

    The driver (:mod:`churn_kfp.learn.spark_engine`) plans the cutoffs from the data and
    writes the features and the plan to this step's output artifacts (S3A); the arguments
    are those of ``build_features``.

    Args:
        namespace: Where the SparkApplication runs (empty: this pod's namespace).
        spark_executors: Executor count.
    """
    import json
    import os
    from collections import namedtuple

    import pyarrow.parquet as pq

    from churn_kfp.learn import features as feats
    from churn_kfp.orchestration import spark_app
    from churn_kfp.orchestration.image import component_image
    from churn_kfp.serving.deploy import POD_NAMESPACE_PATH, kubernetes_api

    if not namespace and os.path.isfile(POD_NAMESPACE_PATH):
        with open(POD_NAMESPACE_PATH) as handle:
            namespace = handle.read().strip()
    run = os.path.basename(os.path.dirname(features.uri.rstrip("/")))[-40:].strip("-").lower()
    arguments = [
        "--transactions", spark_app.s3a(transactions.uri),
        "--customers", spark_app.s3a(customers.uri),
        "--feedback", spark_app.s3a(scored_feedback.uri),
        "--horizon-days", str(horizon_days),
        "--n-train-cutoffs", str(n_train_cutoffs),
        "--cutoff-spacing", cutoff_spacing,
        "--test-cutoff", test_cutoff,
        "--windows", windows,
        "--eligibility-days", str(eligibility_days),
        "--output", spark_app.s3a(features.uri),
        "--plan-output", spark_app.s3a(cutoff_plan.uri),
    ]  # fmt: skip
    endpoint = os.environ.get("S3_ENDPOINT_URL", "")
    conf = {
        "spark.hadoop.fs.s3a.endpoint": endpoint,
        "spark.hadoop.fs.s3a.path.style.access": "true",
    }
    manifest = spark_app.spark_application(
        f"churn-features-{run}" if run else "churn-features",
        namespace or "default",
        component_image(),
        arguments,
        executors=spark_executors,
        spark_conf=conf if endpoint else None,
    )
    spark_app.run_spark_application(kubernetes_api(), manifest)
    with open(cutoff_plan.path) as handle:
        plan = json.load(handle)
    dataset = pq.ParquetDataset(features.path)  # a file here, a folder of parts from S3A
    rows = dataset.read(columns=[]).num_rows
    groups = feats.feature_groups_used(dataset.schema.names)
    features.metadata["rows"] = rows
    outputs = namedtuple("FeatureOutputs", ["feature_groups", "test_cutoff", "rows"])
    return outputs(",".join(groups), str(plan["test"])[:10], rows)
