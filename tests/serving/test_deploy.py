"""The KServe deploy step: manifest vs the KServe CRD schema, apply/wait/rollback, component.

Apply, wait and rollback run through a real ``kubernetes.client.ApiClient`` against a
STAND-IN for the Kubernetes API server (tests/support/stand_ins.py): it implements only
the InferenceService GET/POST/PATCH calls the deploy step makes, with a fake controller
that turns the status Ready after a few reads, never, or reports a failed model load. It
is not a real API server and runs no KServe.
"""

import copy
import json
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from kfp import compiler, dsl
from kubernetes import client as k8s
from stand_ins import HttpError

from churn_kfp.orchestration.image import component_image
from churn_kfp.serving import deploy

CRD_PATH = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "schemas"
    / "kserve"
    / "serving.kserve.io_inferenceservices.yaml"
)
NS = "churn"
GOOD = "s3://mlflow/1/models/m-aaaa/artifacts"
NEWER = "s3://mlflow/1/models/m-bbbb/artifacts"
BROKEN = "s3://mlflow/1/models/m-dead/artifacts"
PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices"


# --------------------------------------------------------------------------- schema


def _strict(schema):
    """Like the API server with fieldValidation=Strict: unknown fields are errors."""
    if isinstance(schema, dict):
        schema = {key: _strict(value) for key, value in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(item) for item in schema]
    return schema


@pytest.fixture(scope="module")
def isvc_validator():
    assert CRD_PATH.is_file(), (
        f"KServe CRD schema not found at {CRD_PATH} (expected ../shared/schemas/kserve/ "
        "beside the project checkout)"
    )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 2 MB in ~1 s, not 20
    crd = yaml.load(CRD_PATH.read_text(), Loader=loader)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    schema = _strict(served["schema"]["openAPIV3Schema"])
    return jsonschema.Draft7Validator(schema)


def _errors(validator, manifest):
    return sorted(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(manifest)
    )


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"canary_percent": 10},
        {"runtime_version": "1.7.1", "resources": {"requests": {"cpu": 1, "memory": "512Mi"}}},
    ],
)
def test_manifest_matches_the_kserve_crd_schema(isvc_validator, options):
    manifest = deploy.render_inference_service(
        "churn-classifier",
        NS,
        GOOD,
        "churn-kserve",
        model_name="churn",
        model_version="3",
        **options,
    )
    assert _errors(isvc_validator, manifest) == []
    predictor = manifest["spec"]["predictor"]
    assert manifest["apiVersion"] == "serving.kserve.io/v1beta1"
    assert manifest["kind"] == "InferenceService"
    assert predictor["model"]["modelFormat"] == {"name": "mlflow"}
    assert predictor["model"]["protocolVersion"] == "v2"
    assert predictor["model"]["storageUri"] == GOOD
    assert predictor["serviceAccountName"] == "churn-kserve"
    assert predictor.get("canaryTrafficPercent") == options.get("canary_percent")
    assert manifest["metadata"]["annotations"][deploy.MODEL_VERSION_ANNOTATION] == "3"


def test_schema_check_catches_a_misspelled_field(isvc_validator):
    manifest = deploy.render_inference_service("churn-classifier", NS, GOOD, "sa")
    broken = copy.deepcopy(manifest)
    broken["spec"]["predictor"]["model"]["storageURI"] = broken["spec"]["predictor"]["model"].pop(
        "storageUri"
    )
    broken["spec"]["predictor"]["canaryTrafficPercent"] = "ten"
    errors = _errors(isvc_validator, broken)
    assert any("storageURI" in e for e in errors)
    assert any("canaryTrafficPercent" in e for e in errors)


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"name": "Churn_Classifier"}, "DNS-1035"),
        ({"name": "9lives"}, "DNS-1035"),
        ({"canary_percent": 0}, "between 1 and 100"),
        ({"canary_percent": 150}, "between 1 and 100"),
    ],
)
def test_render_rejects_bad_input(kwargs, says):
    args = {
        "name": "churn-classifier",
        "namespace": NS,
        "storage_uri": GOOD,
        "service_account": "sa",
    }
    with pytest.raises(ValueError, match=says):
        deploy.render_inference_service(**{**args, **kwargs})


# --------------------------------------------------------------------------- apply


def _api(server) -> k8s.CustomObjectsApi:
    configuration = k8s.Configuration()
    configuration.host = server.url
    return k8s.CustomObjectsApi(k8s.ApiClient(configuration))


def _deploy(server, uri, version="1", **kwargs):
    kwargs.setdefault("timeout_s", 5)
    kwargs.setdefault("poll_s", 0.01)
    return deploy.deploy(
        "churn-classifier",
        version,
        NS,
        mode="cluster",
        out_path=kwargs.pop("out_path", None) or Path(kwargs.pop("tmp")) / f"isvc-{version}.yaml",
        storage_uri=uri,
        service_account="churn-kserve",
        api=_api(server),
        log=lambda line: None,
        **kwargs,
    )


def _stored(server):
    return server.objects[(NS, "churn-classifier")]


def test_first_deploy_creates_and_waits_until_ready(make_kube_server, tmp_path):
    server = make_kube_server(ready_after_reads=3)
    result = _deploy(server, GOOD, tmp=tmp_path)
    assert result["action"] == "created" and result["applied"] is True
    (post,) = server.calls("POST", PATH)
    assert post.json == yaml.safe_load(Path(result["manifest_path"]).read_text())
    assert post.q("fieldManager") == "churn-kfp"
    reads = server.calls("GET", f"{PATH}/churn-classifier")
    assert len(reads) >= 1 + 3  # the existence check, then polls until the 3rd read is Ready
    assert result["url"] == f"http://churn-classifier.{NS}.example.com"
    assert _stored(server)["spec"]["predictor"]["model"]["storageUri"] == GOOD


def test_second_deploy_merge_patches_and_ignores_the_stale_ready(make_kube_server, tmp_path):
    server = make_kube_server(ready_after_reads=3)
    _deploy(server, GOOD, tmp=tmp_path)
    before = len(server.requests)
    result = _deploy(server, NEWER, version="2", tmp=tmp_path)
    assert result["action"] == "patched"
    assert result["previous_storage_uri"] == GOOD and result["storage_uri"] == NEWER
    (patch,) = server.calls("PATCH", f"{PATH}/churn-classifier")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.json["spec"]["predictor"]["model"]["storageUri"] == NEWER
    assert patch.json["metadata"]["resourceVersion"]  # optimistic concurrency
    # the status still said Ready (for generation 1) right after the patch: not good enough
    later_reads = [r for r in server.requests[before:] if r.method == "GET"]
    assert len(later_reads) >= 1 + 3
    stored = _stored(server)
    assert stored["metadata"]["generation"] == 2
    assert stored["status"]["observedGeneration"] == 2
    assert stored["metadata"]["annotations"][deploy.MODEL_VERSION_ANNOTATION] == "2"


def test_never_ready_revision_is_rolled_back(make_kube_server, tmp_path):
    server = make_kube_server(ready_after_reads=2, never_ready_uris={BROKEN})
    _deploy(server, GOOD, version="1", tmp=tmp_path)
    started = time.monotonic()
    with pytest.raises(deploy.DeployError) as failure:
        _deploy(server, BROKEN, version="2", tmp=tmp_path, timeout_s=0.3)
    assert time.monotonic() - started < 5
    error = failure.value
    message = str(error)
    assert f"did not become Ready with storageUri {BROKEN}" in message
    assert "Ready=False RevisionFailed" in message and "cannot download" in message
    assert f"Rolled back to storageUri {GOOD}; it is Ready again" in message
    assert error.rolled_back and error.previous_storage_uri == GOOD
    deploy_patch, rollback_patch = server.calls("PATCH", f"{PATH}/churn-classifier")
    assert deploy_patch.json["spec"]["predictor"]["model"]["storageUri"] == BROKEN
    assert rollback_patch.json["spec"]["predictor"]["model"]["storageUri"] == GOOD
    stored = _stored(server)
    assert stored["spec"]["predictor"]["model"]["storageUri"] == GOOD
    assert stored["metadata"]["annotations"][deploy.MODEL_VERSION_ANNOTATION] == "1"
    assert deploy.readiness(stored, stored["metadata"]["generation"])[0]


def test_failed_model_load_stops_waiting_and_rolls_back(make_kube_server, tmp_path):
    server = make_kube_server(ready_after_reads=1, failing_uris={BROKEN})
    _deploy(server, GOOD, tmp=tmp_path)
    started = time.monotonic()
    with pytest.raises(deploy.DeployError, match="ModelLoadFailed") as failure:
        _deploy(server, BROKEN, version="2", tmp=tmp_path, timeout_s=60)
    assert time.monotonic() - started < 5  # terminal state: no need to wait for the timeout
    assert failure.value.rolled_back
    assert _stored(server)["spec"]["predictor"]["model"]["storageUri"] == GOOD


def test_first_deploy_that_never_gets_ready_has_nothing_to_roll_back(make_kube_server, tmp_path):
    server = make_kube_server(never_ready_uris={BROKEN})
    with pytest.raises(deploy.DeployError, match="Nothing to roll back to") as failure:
        _deploy(server, BROKEN, tmp=tmp_path, timeout_s=0.2)
    assert not failure.value.rolled_back
    assert server.calls("PATCH", f"{PATH}/churn-classifier") == []


def test_canary_then_full_rollout(make_kube_server, tmp_path):
    server = make_kube_server(ready_after_reads=1)
    _deploy(server, GOOD, tmp=tmp_path)
    _deploy(server, NEWER, version="2", tmp=tmp_path, canary_percent=20)
    assert _stored(server)["spec"]["predictor"]["canaryTrafficPercent"] == 20
    _deploy(server, NEWER, version="2", tmp=tmp_path)
    last = server.calls("PATCH", f"{PATH}/churn-classifier")[-1]
    assert last.json["spec"]["predictor"]["canaryTrafficPercent"] is None  # merge patch: delete
    assert "canaryTrafficPercent" not in _stored(server)["spec"]["predictor"]


def test_api_errors_are_reported_with_rbac_hint(make_kube_server, tmp_path):
    server = make_kube_server()

    def forbidden(rec):
        raise HttpError(403, {"kind": "Status", "code": 403, "reason": "Forbidden"})

    server.route = forbidden
    with pytest.raises(
        deploy.DeployError, match="needs get, create and patch on inferenceservices"
    ):
        _deploy(server, GOOD, tmp=tmp_path)


def test_local_mode_writes_the_manifest_and_calls_nothing(make_kube_server, tmp_path, capsys):
    server = make_kube_server()
    out = tmp_path / "artifacts" / "isvc.yaml"
    result = deploy.deploy(
        "churn-classifier", "4", NS, mode="local", out_path=out, storage_uri=GOOD, api=_api(server)
    )
    assert result["applied"] is False and result["mode"] == "local"
    manifest = yaml.safe_load(out.read_text())
    assert manifest["spec"]["predictor"]["model"]["storageUri"] == GOOD
    assert manifest["metadata"]["annotations"][deploy.MODEL_VERSION_ANNOTATION] == "4"
    assert server.requests == []
    assert "local mode" in capsys.readouterr().out


def test_cluster_mode_refuses_a_local_artifact_uri(make_kube_server, tmp_path):
    server = make_kube_server()
    with pytest.raises(deploy.DeployError, match="not reachable by KServe"):
        _deploy(server, "file:///tmp/mlartifacts/1/models/m-x/artifacts", tmp=tmp_path)
    assert server.requests == []


def test_unknown_mode_is_rejected(tmp_path):
    with pytest.raises(deploy.DeployError, match="mode must be one of"):
        deploy.deploy("m", "1", NS, mode="kubectl", out_path=tmp_path / "x", storage_uri=GOOD)


# --------------------------------------------------------------------------- MLflow


def test_storage_uri_is_the_logged_models_s3_location(tmp_path):
    """A real MLflow store (SQLite); the experiment's artifact root is on S3 (not contacted)."""
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)  # MLflow resolves models:/ sources with the global client
    try:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        experiment = client.create_experiment("churn", artifact_location="s3://mlflow/churn")
        logged = mlflow.initialize_logged_model(name="model", experiment_id=experiment)
        client.create_registered_model("churn-classifier")
        client.create_model_version(
            "churn-classifier", source=f"models:/{logged.model_id}", model_id=logged.model_id
        )
        client.set_registered_model_alias("churn-classifier", "champion", "1")
        expected = f"s3://mlflow/churn/models/{logged.model_id}/artifacts"
        assert client.get_model_version("churn-classifier", "1").source.startswith("models:/")

        assert deploy.resolve_storage_uri("churn-classifier", "1", uri) == expected
        assert deploy.resolve_storage_uri("churn-classifier", "champion", uri) == expected
        with pytest.raises(deploy.DeployError, match="cannot resolve churn-classifier@nope"):
            deploy.resolve_storage_uri("churn-classifier", "nope", uri)
    finally:
        mlflow.set_tracking_uri(None)


# --------------------------------------------------------------------------- component


def test_component_compiles_with_the_project_image(tmp_path):
    from churn_kfp.components.deployment import deploy_model

    @dsl.pipeline(name="deploy-check")
    def deploy_check(promoted: bool = True):
        deploy_model(
            model_name="churn-classifier",
            champion_version="3",
            promoted=promoted,
            namespace=NS,
            mode="cluster",
        )

    package = tmp_path / "deploy-check.yaml"
    compiler.Compiler().compile(deploy_check, str(package))
    spec = next(yaml.safe_load_all(package.read_text()))
    (executor,) = spec["deploymentSpec"]["executors"].values()
    image = executor["container"]["image"]
    assert image == component_image() and not image.endswith(":latest")
    assert "pip install" not in json.dumps(executor["container"]["command"])
    inputs = spec["components"]["comp-deploy-model"]["inputDefinitions"]["parameters"]
    assert {"model_name", "champion_version", "promoted", "namespace", "mode"} <= set(inputs)
    outputs = spec["components"]["comp-deploy-model"]["outputDefinitions"]
    assert "manifest" in outputs["artifacts"]


def test_component_skips_when_nothing_was_promoted(tmp_path, capsys):
    from churn_kfp.components.deployment import deploy_model

    manifest = dsl.Artifact(name="manifest", uri=str(tmp_path / "manifest"), metadata={})
    result = json.loads(
        deploy_model.python_func(
            model_name="churn-classifier",
            champion_version="3",
            promoted=False,
            namespace=NS,
            mode="cluster",
            manifest=manifest,
        )
    )
    assert result["skipped"] is True and result["deployed"] is False
    assert "not redeployed" in capsys.readouterr().out
    assert (tmp_path / "manifest").read_text().startswith("# skipped")


def test_component_local_mode_writes_the_manifest_artifact(tmp_path, monkeypatch):
    from churn_kfp.components.deployment import deploy_model

    monkeypatch.setattr(deploy, "resolve_storage_uri", lambda name, version, uri=None: GOOD)
    manifest = dsl.Artifact(name="manifest", uri=str(tmp_path / "manifest"), metadata={})
    result = json.loads(
        deploy_model.python_func(
            model_name="churn-classifier",
            champion_version="3",
            promoted=True,
            namespace=NS,
            mode="local",
            manifest=manifest,
            tracking_uri="sqlite:///unused.db",
        )
    )
    assert result["deployed"] is False and result["storage_uri"] == GOOD
    written = yaml.safe_load((tmp_path / "manifest").read_text())
    assert written["spec"]["predictor"]["model"]["storageUri"] == GOOD
    assert manifest.metadata["applied"] is False
