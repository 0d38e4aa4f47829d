"""The KServe deploy step: manifest vs the KServe CRD schema, apply/wait/rollback, component.

Apply, wait and rollback run through a real ``kubernetes.client.ApiClient`` against a
STAND-IN for the Kubernetes API server and the KServe controller
(tests/support/kube_stand_in.py): not the real ones, but it enforces what they do (bearer
token, the CRD schema, patch content types, resourceVersion conflicts, server-side apply
field ownership, Knative revisions with a stale status until the new one exists, canary
traffic) and has hooks for faults (409, 5xx, slow reads, failing revisions).
"""

import copy
import functools
import json
import time
from pathlib import Path

import jsonschema
import pytest
import yaml
from kfp import compiler, dsl
from kube_stand_in import isvc_schema
from kubernetes import client as k8s

from churn_kfp.orchestration.image import component_image
from churn_kfp.serving import deploy

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
    return jsonschema.Draft7Validator(_strict(isvc_schema()))  # _strict builds new dicts


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
    assert predictor["model"]["runtime"] == deploy.SERVING_RUNTIME
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

TOKEN = "stand-in-token"
OWNED_PATHS = {
    "/metadata/resourceVersion",
    "/metadata/annotations",
    "/metadata/annotations/churn-kfp.io~1model-name",
    "/metadata/annotations/churn-kfp.io~1model-version",
    "/spec/predictor/model/storageUri",
    "/spec/predictor/canaryTrafficPercent",
}
# What the kustomize overlays own (sizing, env): a deploy must leave it alone.
OVERLAY_MODEL = {
    "env": [{"name": "OVERLAY_ONLY", "value": "kept"}],
    "resources": {"requests": {"cpu": "3", "memory": "5Gi"}, "limits": {"memory": "6Gi"}},
}


def _api(server, token=TOKEN) -> k8s.CustomObjectsApi:
    configuration = k8s.Configuration()
    configuration.host = server.url
    if token:
        configuration.api_key = {"authorization": f"Bearer {token}"}
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
        api=kwargs.pop("api", None) or _api(server),
        log=lambda line: None,
        **kwargs,
    )


def _stored(server):
    return server.objects[(NS, "churn-classifier")]


def _served(server):
    return _stored(server)["spec"]["predictor"]["model"].get("storageUri")


def _kustomized(server, uri=GOOD):
    """The object as `kubectl apply` of an overlay leaves it, then served from ``uri``."""
    manifest = deploy.render_inference_service("churn-classifier", NS, uri, "churn-kserve")
    manifest["spec"]["predictor"]["model"].update(copy.deepcopy(OVERLAY_MODEL))
    _api(server).create_namespaced_custom_object(
        "serving.kserve.io", "v1beta1", NS, "inferenceservices", manifest, field_manager="kubectl"
    )
    while not deploy.readiness(_stored(server))[0]:
        _api(server).get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", NS, "inferenceservices", "churn-classifier"
        )


def test_first_deploy_creates_and_waits_for_its_revision(make_kube_server, tmp_path):
    server = make_kube_server(ready_after_reads=3)
    result = _deploy(server, GOOD, tmp=tmp_path)
    assert result["action"] == "created" and result["applied"] is True
    (post,) = server.calls("POST", PATH)
    assert post.json == yaml.safe_load(Path(result["manifest_path"]).read_text())
    assert post.q("fieldManager") == "churn-kfp"
    assert result["revision"] == "churn-classifier-predictor-00001"
    assert server.revisions[(NS, "churn-classifier")][-1]["ready"] is True
    assert result["url"] == f"http://churn-classifier.{NS}.example.com"
    assert _served(server) == GOOD


def test_a_deploy_patches_only_what_it_owns_and_overlays_survive(make_kube_server, tmp_path):
    server = make_kube_server()
    _kustomized(server)
    kustomized = copy.deepcopy(_stored(server))
    result = _deploy(server, NEWER, version="2", tmp=tmp_path, canary_percent=20)
    assert result["action"] == "patched" and result["previous_storage_uri"] == GOOD
    (patch,) = server.calls("PATCH", f"{PATH}/churn-classifier")
    assert patch.headers["content-type"] == "application/json-patch+json"
    assert {op["path"] for op in patch.json} <= OWNED_PATHS
    stored = _stored(server)
    model = stored["spec"]["predictor"]["model"]
    assert model["env"] == OVERLAY_MODEL["env"]
    assert model["resources"] == OVERLAY_MODEL["resources"]
    assert model["runtime"] == deploy.SERVING_RUNTIME
    assert model["storageUri"] == NEWER
    assert stored["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert stored["metadata"]["annotations"][deploy.MODEL_VERSION_ANNOTATION] == "2"
    unchanged = {"canaryTrafficPercent", "model"}
    assert {k: v for k, v in stored["spec"]["predictor"].items() if k not in unchanged} == {
        k: v for k, v in kustomized["spec"]["predictor"].items() if k not in unchanged
    }
    # the canary: 20 % to the new revision, the rest to the one before
    traffic = {
        t["revisionName"]: t["percent"]
        for t in stored["status"]["components"]["predictor"]["traffic"]
    }
    assert traffic == {
        "churn-classifier-predictor-00002": 20,
        "churn-classifier-predictor-00001": 80,
    }
    # full rollout: the canary field is removed, nothing else written
    _deploy(server, NEWER, version="2", tmp=tmp_path)
    last = server.calls("PATCH", f"{PATH}/churn-classifier")[-1]
    assert {"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"} in last.json
    assert "canaryTrafficPercent" not in _stored(server)["spec"]["predictor"]
    assert _stored(server)["spec"]["predictor"]["model"]["env"] == OVERLAY_MODEL["env"]


def test_readiness_follows_revisions_not_a_stale_ready(make_kube_server, tmp_path):
    """Right after the patch the status still reads Ready=True (for the old revision).

    Mutation shown: make :func:`deploy.readiness` ignore revisions (return True whenever
    the ``Ready`` condition is True); this test then fails, because the deploy returns
    on the stale Ready of revision 1 while revision 2 never becomes ready.
    """
    server = make_kube_server(ready_after_reads=2, lag_reads=3)
    _deploy(server, GOOD, tmp=tmp_path)
    server.fail_revisions("never-ready")
    with pytest.raises(deploy.DeployError) as failure:
        _deploy(server, NEWER, version="2", tmp=tmp_path, timeout_s=0.5)
    message = str(failure.value)
    assert "revision churn-classifier-predictor-00002 is not ready" in message
    assert "Ready=False RevisionFailed" in message
    assert f"Rolled back to storageUri {GOOD}; it is Ready again" in message
    assert failure.value.rolled_back and failure.value.previous_storage_uri == GOOD
    assert _served(server) == GOOD
    assert _stored(server)["metadata"]["annotations"][deploy.MODEL_VERSION_ANNOTATION] == "1"
    revisions = server.revisions[(NS, "churn-classifier")]
    assert [r["ready"] for r in revisions] == [True, None, True]  # rollback = a new revision


def test_failed_model_load_stops_waiting_and_rolls_back(make_kube_server, tmp_path):
    server = make_kube_server(ready_after_reads=1, failing_uris={BROKEN})
    _deploy(server, GOOD, tmp=tmp_path)
    started = time.monotonic()
    with pytest.raises(deploy.DeployError, match="ModelLoadFailed") as failure:
        _deploy(server, BROKEN, version="2", tmp=tmp_path, timeout_s=60)
    assert time.monotonic() - started < 5  # terminal state: no need to wait for the timeout
    assert failure.value.rolled_back
    assert _served(server) == GOOD


def test_first_deploy_that_never_gets_ready_has_nothing_to_roll_back(make_kube_server, tmp_path):
    server = make_kube_server(never_ready_uris={BROKEN})
    with pytest.raises(deploy.DeployError, match="Nothing to roll back to") as failure:
        _deploy(server, BROKEN, tmp=tmp_path, timeout_s=0.2)
    assert not failure.value.rolled_back
    assert server.calls("PATCH", f"{PATH}/churn-classifier") == []


def test_a_conflict_is_retried_on_the_fresh_object(make_kube_server, tmp_path):
    server = make_kube_server()
    _deploy(server, GOOD, tmp=tmp_path)
    server.write_before_next_patch({"someone.else/note": "written meanwhile"})
    result = _deploy(server, NEWER, version="2", tmp=tmp_path)
    first, second = server.calls("PATCH", f"{PATH}/churn-classifier")
    assert first.json[0]["path"] == "/metadata/resourceVersion"
    assert first.json[0]["value"] != second.json[0]["value"]  # re-read after the 409
    assert result["action"] == "patched" and _served(server) == NEWER
    assert _stored(server)["metadata"]["annotations"]["someone.else/note"] == "written meanwhile"


def test_a_failing_rollback_is_reported(make_kube_server, tmp_path):
    server = make_kube_server()
    _deploy(server, GOOD, tmp=tmp_path)
    server.fail_revisions("never-ready")
    server.fail_next("PATCH", 500, skip=1)  # the deploy's patch passes, the rollback's fails
    with pytest.raises(deploy.DeployError, match=f"Rollback to {GOOD} failed too") as failure:
        _deploy(server, NEWER, version="2", tmp=tmp_path, timeout_s=0.3)
    assert not failure.value.rolled_back and "InternalError" in str(failure.value)
    assert _served(server) == NEWER  # left as it is: the message says so


def test_a_rollback_that_does_not_get_ready_is_reported(make_kube_server, tmp_path):
    server = make_kube_server()
    _deploy(server, GOOD, tmp=tmp_path)
    server.fail_revisions("never-ready", count=2)
    with pytest.raises(deploy.DeployError, match="it is not Ready either") as failure:
        _deploy(server, NEWER, version="2", tmp=tmp_path, timeout_s=0.3)
    assert failure.value.rolled_back and _served(server) == GOOD


def test_server_errors_and_slow_reads_while_waiting_are_retried(
    make_kube_server, tmp_path, monkeypatch
):
    server = make_kube_server()
    _deploy(server, GOOD, tmp=tmp_path)
    monkeypatch.setattr(deploy, "REQUEST_TIMEOUT_S", 0.3)
    server.fail_next("GET", 503, times=3, skip=1)  # skip the existence check
    server.delay_next("GET", 1.0)
    result = _deploy(server, NEWER, version="2", tmp=tmp_path)
    assert result["action"] == "patched" and result["revision"].endswith("00002")
    assert _served(server) == NEWER


def test_a_failing_smoke_test_rolls_back(make_kube_server, tmp_path):
    server = make_kube_server()
    _deploy(server, GOOD, tmp=tmp_path)
    checked = []

    def smoke(obj):
        checked.append(obj["spec"]["predictor"]["model"]["storageUri"])
        if checked[-1] == NEWER:
            raise deploy.DeployError("P(churn) differs", reason="SmokeTestFailed")

    with pytest.raises(deploy.DeployError, match="smoke test failed: P.churn. differs") as failure:
        _deploy(server, NEWER, version="2", tmp=tmp_path, smoke_check=smoke)
    assert checked == [NEWER] and failure.value.rolled_back and _served(server) == GOOD


def test_api_errors_are_reported_with_rbac_hint(make_kube_server, tmp_path):
    server = make_kube_server()
    server.fail_next("GET", 403, "Forbidden")
    with pytest.raises(
        deploy.DeployError, match="needs get, create and patch on inferenceservices"
    ):
        _deploy(server, GOOD, tmp=tmp_path)


def test_the_api_wants_a_token(make_kube_server, tmp_path):
    server = make_kube_server()
    with pytest.raises(deploy.DeployError, match="401 Unauthorized"):
        _deploy(server, GOOD, tmp=tmp_path, api=_api(server, token=None))


def test_the_stand_in_enforces_the_crd_schema_and_content_types(make_kube_server):
    server = make_kube_server()
    manifest = deploy.render_inference_service("churn-classifier", NS, GOOD, "churn-kserve")
    bad = copy.deepcopy(manifest)
    bad["spec"]["predictor"]["canaryTrafficPercent"] = "20"
    api = _api(server)
    args = ("serving.kserve.io", "v1beta1", NS, "inferenceservices")
    with pytest.raises(k8s.ApiException) as refused:
        api.create_namespaced_custom_object(*args, bad)
    assert refused.value.status == 422 and "canaryTrafficPercent" in refused.value.body
    api.create_namespaced_custom_object(*args, manifest)
    with pytest.raises(k8s.ApiException) as refused:
        api.patch_namespaced_custom_object(
            *args, "churn-classifier", {"spec": {"predictor": {"minReplicas": "two"}}}
        )
    assert refused.value.status == 422 and "minReplicas" in refused.value.body
    with pytest.raises(k8s.ApiException) as refused:
        api.api_client.call_api(
            f"{PATH}/churn-classifier",
            "PATCH",
            header_params={"Content-Type": "application/strategic-merge-patch+json"},
            body={"spec": {}},
            auth_settings=["BearerToken"],
        )
    assert refused.value.status == 415


def test_a_manifest_reapply_keeps_the_served_model(make_kube_server, tmp_path):
    """`kubectl apply -k` after a deploy: client-side (merge patch) and server-side apply.

    The InferenceService in manifests/ has no storageUri, so neither kind of apply touches
    the deploy step's field. Had it one (the placeholder), client-side apply would reset the
    served model and server-side apply would conflict with the deploy step's field manager.
    """
    server = make_kube_server()
    _deploy(server, GOOD, tmp=tmp_path)
    _deploy(server, NEWER, version="2", tmp=tmp_path)
    (isvc,) = [d for d in _kustomize("base") if d["kind"] == "InferenceService"]
    isvc["metadata"]["namespace"] = NS
    assert "storageUri" not in isvc["spec"]["predictor"]["model"]
    api = _api(server)
    args = ("serving.kserve.io", "v1beta1", NS, "inferenceservices", "churn-classifier")
    api.patch_namespaced_custom_object(*args, isvc)  # what client-side apply sends
    assert _served(server) == NEWER
    # JSON is YAML: kubectl --server-side sends the object as JSON with this content type
    ssa = {"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"}
    call = functools.partial(
        api.api_client.call_api,
        f"{PATH}/churn-classifier",
        "PATCH",
        header_params=ssa,
        auth_settings=["BearerToken"],
        response_type="object",
        _return_http_data_only=True,
    )
    call(query_params=[("fieldManager", "kubectl")], body=isvc)
    call(query_params=[("fieldManager", "kubectl")], body=isvc)
    assert _served(server) == NEWER
    assert ("spec", "predictor", "model", "storageUri") in server.managers(NS, "churn-classifier")[
        "churn-kfp"
    ]
    placeholder = copy.deepcopy(isvc)
    placeholder["spec"]["predictor"]["model"]["storageUri"] = "s3://placeholder"
    with pytest.raises(k8s.ApiException) as conflict:
        call(query_params=[("fieldManager", "kubectl")], body=placeholder)
    assert conflict.value.status == 409
    assert (
        'conflict with "churn-kfp": .spec.predictor.model.storageUri'
        in (json.loads(conflict.value.body)["message"])
    )
    assert _served(server) == NEWER


def _kustomize(target):
    import subprocess
    import sys

    kubectl = Path(sys.executable).parent / "kubectl"
    assert kubectl.is_file(), f"kubectl not found at {kubectl}: install the dev dependencies"
    out = subprocess.run(
        [
            str(kubectl),
            "kustomize",
            str(Path(__file__).resolve().parents[2] / "manifests" / target),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


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


def test_storage_uri_is_the_logged_models_s3_location(tmp_path, new_mlflow_db):
    """A real MLflow store (SQLite); the experiment's artifact root is on S3 (not contacted)."""
    import mlflow
    from mlflow import MlflowClient

    uri = new_mlflow_db(tmp_path)
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
