"""Component ``deploy-model``: the champion's KServe manifest, from a real MLflow registry.

No cluster here: ``local`` mode writes the manifest only, ``cluster`` mode refuses a model
whose artifacts KServe could not download before it contacts any cluster, and a promoted
champion is applied to a STAND-IN Kubernetes API (tests/support/kube_stand_in.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kfp import dsl

from churn_kfp.components.deployment import deploy_model

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")

MODEL_NAME = "components-deploy"


@pytest.fixture(scope="module")
def storage_uri(mlflow_env) -> str:
    """Registers a tiny scikit-learn model (version 1, alias ``champion``); its artifact URI."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression

    uri = mlflow_env["MLFLOW_TRACKING_URI"]
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment(
        "components-deploy", artifact_location=mlflow_env["CHURN_ARTIFACT_ROOT"]
    )
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            LogisticRegression().fit([[0.0], [1.0]], [0, 1]),
            name="model",
            registered_model_name=MODEL_NAME,
            # given, not inferred: inference re-imports the model in a subprocess (~7 s)
            pip_requirements=["scikit-learn"],
        )
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")
    return client.get_logged_model(info.model_id).artifact_location.rstrip("/")


def deploy(artifacts, **overrides) -> tuple[dict, dsl.Artifact]:
    manifest = artifacts.output(dsl.Artifact, "manifest")
    arguments = {
        "model_name": MODEL_NAME,
        "champion_version": "champion",
        "promoted": True,
        "namespace": "ml",
        "mode": "local",
        "tracking_uri": "",  # MLFLOW_TRACKING_URI from mlflow_env
    }
    result = deploy_model.python_func(manifest=manifest, **arguments | overrides)
    return json.loads(result), manifest


def test_local_mode_writes_the_manifest_of_the_champion(artifacts, storage_uri):
    result, manifest = deploy(artifacts, canary_percent=20)

    written = yaml.safe_load(Path(manifest.path).read_text())
    assert written["kind"] == "InferenceService"
    assert written["metadata"]["name"] == MODEL_NAME
    assert written["metadata"]["namespace"] == "ml"
    predictor = written["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == storage_uri
    assert predictor["canaryTrafficPercent"] == 20
    assert manifest.metadata == {
        "skipped": False,
        "applied": False,
        "storage_uri": storage_uri,
        "inference_service": f"ml/{MODEL_NAME}",
    }
    assert result["deployed"] is False and result["skipped"] is False
    assert result["storage_uri"] == storage_uri and result["version"] == "champion"


def test_a_version_number_and_no_canary(artifacts, storage_uri):
    _, manifest = deploy(artifacts, champion_version="1", canary_percent=0)

    predictor = yaml.safe_load(Path(manifest.path).read_text())["spec"]["predictor"]
    assert predictor["model"]["storageUri"] == storage_uri
    assert "canaryTrafficPercent" not in predictor  # 0 rolls out fully


def test_nothing_promoted_skips_and_says_so(artifacts):
    result, manifest = deploy(artifacts, promoted=False)

    assert result == {
        "deployed": False,
        "skipped": True,
        "reason": f"no new champion was promoted: {MODEL_NAME} is not redeployed",
    }
    assert Path(manifest.path).read_text().startswith("# skipped: no new champion")
    assert manifest.metadata == {"skipped": True}


def test_cluster_mode_refuses_artifacts_kserve_cannot_download(artifacts, storage_uri):
    assert storage_uri.startswith("file://")
    with pytest.raises(RuntimeError, match="not reachable by KServe"):
        deploy(artifacts, mode="cluster")


def test_an_unknown_version_fails_with_the_model_name(artifacts, storage_uri):
    with pytest.raises(RuntimeError, match=f"cannot resolve {MODEL_NAME}@7"):
        deploy(artifacts, champion_version="7")


def test_cluster_mode_deploys_a_promoted_champion_from_the_real_registry(
    artifacts, mlflow_env, make_kube_server, tmp_path, monkeypatch
):
    """``promoted=True`` in cluster mode: the real SQLite registry resolves the champion (its
    logged model's ``s3://`` location, not contacted), and the component applies it through
    the kubeconfig to a STAND-IN Kubernetes API (tests/support/kube_stand_in.py)."""
    import mlflow
    from kubernetes.config import kube_config
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])
    experiment = client.create_experiment(
        "components-deploy-s3", artifact_location="s3://mlflow/components-deploy-s3"
    )
    logged = mlflow.initialize_logged_model(name="model", experiment_id=experiment)
    client.create_registered_model("cluster-deploy")
    client.create_model_version(
        "cluster-deploy", source=f"models:/{logged.model_id}", model_id=logged.model_id
    )
    client.set_registered_model_alias("cluster-deploy", "champion", "1")
    expected_uri = f"s3://mlflow/components-deploy-s3/models/{logged.model_id}/artifacts"

    server = make_kube_server(ready_after_reads=1)
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "stand-in", "cluster": {"server": server.url}}],
                "users": [{"name": "runner", "user": {"token": server.token}}],
                "contexts": [{"name": "c", "context": {"cluster": "stand-in", "user": "runner"}}],
                "current-context": "c",
            }
        )
    )
    # what KUBECONFIG at process start sets (the client reads the variable at import)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)

    result, manifest = deploy(
        artifacts, model_name="cluster-deploy", mode="cluster", namespace="ml", timeout_s=10
    )

    assert result["deployed"] is True and result["action"] == "created"
    stored = server.objects[("ml", "cluster-deploy")]
    assert stored["spec"]["predictor"]["model"]["storageUri"] == expected_uri
    assert stored["spec"]["predictor"]["model"]["runtime"] == "churn-kfp-mlserver"
    assert server.revisions[("ml", "cluster-deploy")][-1]["ready"] is True
    assert manifest.metadata["applied"] is True
