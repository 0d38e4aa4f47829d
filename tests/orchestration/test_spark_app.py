"""The SparkApplication: its manifest against the operator's own API models, create and watch.

The Spark operator's CRD is not among ``../shared/schemas``. Its OpenAPI-generated pydantic
models ship on PyPI as ``kubeflow-spark-api`` (generated from the operator's Go types, the
same source as its CRD), installed apart from the venv. A manifest validates when the model
parses it (required fields, strict types) and writes it back unchanged (the models drop
fields they do not declare, so an unknown or misspelt field shows as a difference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import kubernetes.client as k8s
import pytest
from support.throwaway import installed_apart

from churn_kfp.orchestration import spark_app

SPARK_API = "kubeflow-spark-api==2.4.0"  # Kubeflow Spark Operator v2.4 (docs/deploy-kubeflow.md)
TOKEN = "stand-in-token"
NS = "kubeflow-user"

_CHECK = """
import json, sys
from kubeflow_spark_api.models.spark_v1beta2_spark_application import (
    SparkV1beta2SparkApplication as Model,
)
manifest = json.load(sys.stdin)
parsed = Model.from_dict(manifest)
print(json.dumps(parsed.to_dict()))
"""


def _through_models(manifest: dict) -> subprocess.CompletedProcess:
    folder = installed_apart(SPARK_API.replace("==", "-"), [SPARK_API], no_deps=True)
    env = {**os.environ, "PYTHONPATH": str(folder)}
    return subprocess.run(
        [sys.executable, "-c", _CHECK],
        input=json.dumps(manifest),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _manifest(name: str = "features-run-1") -> dict:
    return spark_app.spark_application(
        name,
        NS,
        "registry.example.com/ml/churn-kfp:0.1.0",
        ["--transactions", "s3a://zone/tx", "--plan", "{}", "--output", "s3a://zone/f"],
        spark_conf={"spark.hadoop.fs.s3a.endpoint": "http://minio:9000"},
    )


@pytest.mark.slow  # installs the models once (cached)
def test_manifest_validates_against_the_operators_api_models():
    manifest = _manifest()
    done = _through_models(manifest)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == manifest
    assert manifest["spec"]["mainApplicationFile"].endswith("churn_kfp/learn/spark_engine.py")


@pytest.mark.slow
def test_the_model_check_can_fail():
    misspelt = _manifest()
    misspelt["spec"]["executor"]["instance"] = misspelt["spec"]["executor"].pop("instances")
    done = _through_models(misspelt)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) != misspelt  # the unknown field is dropped: a difference
    wrong_type = _manifest()
    wrong_type["spec"]["executor"]["instances"] = "2"
    assert _through_models(wrong_type).returncode != 0
    no_main = _manifest()
    del no_main["spec"]["mainApplicationFile"]
    assert "mainApplicationFile" in _through_models(no_main).stderr


def _api(server) -> k8s.CustomObjectsApi:
    configuration = k8s.Configuration()
    configuration.host = server.url
    configuration.api_key = {"authorization": f"Bearer {TOKEN}"}
    return k8s.CustomObjectsApi(k8s.ApiClient(configuration))


def test_creates_and_watches_to_completion(make_spark_operator):
    server = make_spark_operator(token=TOKEN)
    seen: list[str] = []
    final = spark_app.run_spark_application(
        _api(server), _manifest(), poll_s=0.01, timeout_s=5, log=seen.append
    )
    assert final["status"]["applicationState"]["state"] == "COMPLETED"
    (post,) = server.calls(
        "POST", f"/apis/sparkoperator.k8s.io/v1beta2/namespaces/{NS}/sparkapplications"
    )
    assert post.json == _manifest()
    assert [s.rsplit(": ", 1)[-1] for s in seen[1:]] == ["SUBMITTED", "RUNNING", "COMPLETED"]


def test_a_retried_step_adopts_the_existing_application(make_spark_operator):
    server = make_spark_operator(token=TOKEN)
    api = _api(server)
    spark_app.run_spark_application(api, _manifest(), poll_s=0.01, timeout_s=5, log=print)
    again: list[str] = []
    spark_app.run_spark_application(api, _manifest(), poll_s=0.01, timeout_s=5, log=again.append)
    assert "exists already" in again[0]


def test_a_failed_driver_is_named(make_spark_operator):
    error = "Py4JJavaError: FileNotFoundException s3a://zone/tx"
    server = make_spark_operator(token=TOKEN, failing={"features-bad": error})
    with pytest.raises(spark_app.SparkApplicationFailed, match="ended FAILED: Py4JJavaError"):
        spark_app.run_spark_application(
            _api(server), _manifest("features-bad"), poll_s=0.01, timeout_s=5, log=print
        )


def test_a_refused_create_is_raised(make_spark_operator):
    server = make_spark_operator(token="another-token")
    with pytest.raises(k8s.exceptions.ApiException) as caught:
        spark_app.run_spark_application(_api(server), _manifest(), poll_s=0.01, timeout_s=5)
    assert caught.value.status == 401


@pytest.mark.parametrize(
    ("engine", "size", "expected"),
    [
        ("auto", 10, "duckdb"),
        ("auto", 100, "spark"),
        ("auto", 99, "duckdb"),
        ("spark", 0, "spark"),
        ("duckdb", 10**15, "duckdb"),
    ],
)
def test_auto_picks_by_size(engine, size, expected):
    assert spark_app.choose_engine(engine, size, threshold_bytes=100) == expected


def test_choose_engine_rejects_bad_input():
    with pytest.raises(ValueError, match="unknown feature_engine 'polars'"):
        spark_app.choose_engine("polars", 1, 1)
    with pytest.raises(ValueError, match=">= 0 bytes"):
        spark_app.choose_engine("auto", 1, -1)
