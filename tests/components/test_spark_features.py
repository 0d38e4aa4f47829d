"""Components of the Spark feature path: the engine choice, and the SparkApplication step.

The step runs against the Kubernetes STAND-IN (tests/support/spark_stand_in.py); when it
creates the SparkApplication, the test runs the driver's entry point with the manifest's own
arguments on local-mode Spark, as the operator would on a cluster.
"""

from __future__ import annotations

import json
from pathlib import Path

import kubernetes.client as k8s
import pandas as pd
import pytest
from kfp import dsl

from churn_kfp.components.spark_features import build_features_spark, choose_feature_engine
from churn_kfp.data import datagen
from churn_kfp.learn.duckdb_engine import build_feature_table_duckdb
from churn_kfp.learn.plan import CutoffPlan

TOKEN = "stand-in-token"


def test_choose_feature_engine_measures_the_transactions(artifacts, purchases):
    tx = artifacts.dataset("tx", purchases([("a", "2024-01-01", 1.0)]))
    size = len(Path(tx.path).read_bytes())
    choose = choose_feature_engine.python_func
    assert choose(transactions=tx, feature_engine="auto", spark_threshold_bytes=size) == "spark"
    assert choose(transactions=tx, feature_engine="auto", spark_threshold_bytes=size + 1) == (
        "duckdb"
    )
    assert choose(transactions=tx, feature_engine="spark", spark_threshold_bytes=10**12) == "spark"
    with pytest.raises(ValueError, match="unknown feature_engine"):
        choose(transactions=tx, feature_engine="pandas", spark_threshold_bytes=1)


class _DriverOnCreate:
    """The real API client; on create, runs the driver entry point with the manifest's args."""

    def __init__(self, api: k8s.CustomObjectsApi, spark):
        self.api, self.spark, self.manifests = api, spark, []

    def create_namespaced_custom_object(self, *args, **kwargs):
        created = self.api.create_namespaced_custom_object(*args, **kwargs)
        manifest = args[4]
        self.manifests.append(manifest)
        from churn_kfp.learn import spark_engine

        spark_engine.main(manifest["spec"]["arguments"], spark=self.spark)
        return created

    def get_namespaced_custom_object(self, *args, **kwargs):
        return self.api.get_namespaced_custom_object(*args, **kwargs)


@pytest.mark.slow
@pytest.mark.spark
def test_spark_step_creates_the_application_and_reads_its_outputs(
    artifacts, make_spark_operator, monkeypatch
):
    pytest.importorskip("pyspark", reason="pyspark is the [spark] extra")
    from churn_kfp.learn import spark_engine
    from churn_kfp.serving import deploy

    data = datagen.simulate(n_customers=150, n_months=6, seed=5)
    tx = artifacts.dataset("transactions", data.transactions)
    customers = artifacts.dataset("customers", data.customers)
    feedback = artifacts.dataset("feedback", data.feedback.iloc[:0])
    server = make_spark_operator(token=TOKEN)
    configuration = k8s.Configuration()
    configuration.host = server.url
    configuration.api_key = {"authorization": f"Bearer {TOKEN}"}
    api = _DriverOnCreate(k8s.CustomObjectsApi(k8s.ApiClient(configuration)), None)
    api.spark = spark_engine.local_session(app_name="churn-component-test")
    monkeypatch.setattr(deploy, "kubernetes_api", lambda: api)
    features = artifacts.output(dsl.Dataset, "features")
    plan_artifact = artifacts.output(dsl.Artifact, "cutoff_plan")

    result = build_features_spark.python_func(
        transactions=tx,
        customers=customers,
        scored_feedback=feedback,
        horizon_days=30,
        n_train_cutoffs=2,
        eligibility_days=90,
        windows="30,60,90",
        namespace="kubeflow-user",
        features=features,
        cutoff_plan=plan_artifact,
    )

    (manifest,) = api.manifests
    assert manifest["metadata"]["namespace"] == "kubeflow-user"
    assert server.objects[("kubeflow-user", manifest["metadata"]["name"])]
    plan = CutoffPlan.from_dict(json.loads(Path(plan_artifact.path).read_text()))
    want = build_feature_table_duckdb(data.transactions, plan, customers=data.customers)
    assert result.rows == len(want) == len(pd.read_parquet(features.path))
    assert result.feature_groups == ",".join(want.attrs["feature_groups"])
    assert result.test_cutoff == plan.test.date().isoformat()
