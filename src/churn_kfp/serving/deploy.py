"""Serve the champion with KServe: render, apply and watch its ``InferenceService``.

* :func:`render_inference_service` builds a KServe ``serving.kserve.io/v1beta1``
  ``InferenceService``: ``modelFormat: mlflow``, ``protocolVersion: v2``, served by our own
  ``ServingRuntime`` :data:`SERVING_RUNTIME` (the project image running
  :class:`~churn_kfp.serving.runtime.ValidatingMLflowRuntime`), the model's ``storageUri``,
  resources, the service account whose Secret holds the S3 credentials, and an optional
  canary percentage.
* :func:`resolve_storage_uri` turns a registered model version or alias into the
  ``s3://.../artifacts`` location of its files. KServe cannot resolve ``models:/`` URIs
  (kserve#3555) and in MLflow 3 a version's ``source`` reads ``models:/m-<id>``, so the
  location comes from ``MlflowClient.get_logged_model(model_id).artifact_location``.
* :func:`apply_inference_service` creates the resource, or changes only what this step owns
  (:func:`owned_fields`: ``storageUri``, ``canaryTrafficPercent``, the model annotations)
  with a JSON patch of exactly those paths, so the runtime, resources and env the kustomize
  overlays set survive. It waits until a *new* predictor revision is Ready
  (:func:`readiness`), runs a smoke test over V2 (:mod:`churn_kfp.serving.smoke`), and on
  a failure, a timeout or a wrong answer patches the previous owned fields back and fails
  with the reason.
* :func:`deploy` does the three; in ``local`` mode it only writes the manifest and says so.

Kubernetes RBAC the caller needs (nothing broader): ``get``, ``create`` and ``patch`` on
``inferenceservices`` in API group ``serving.kserve.io``, in the target namespace. Readiness
follows Knative revisions: KServe in Serverless mode (the Kubeflow platform's default).

Nothing here touches the network or the file system at import time.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from churn_kfp.core.config import MODEL_NAME
from churn_kfp.serving import smoke

GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"
KIND = "InferenceService"
FIELD_MANAGER = "churn-kfp"
SERVING_RUNTIME = "churn-kfp-mlserver"
"""Our ``ServingRuntime`` (manifests/base/serving-runtime.yaml): the project image running
:class:`churn_kfp.serving.runtime.ValidatingMLflowRuntime`. KServe's stock MLflow runtime
cannot load MLflow 3 skops models."""
TAG_ROUTING_ANNOTATION = "serving.kserve.io/enable-tag-routing"
REQUEST_TIMEOUT_S = 30  # per Kubernetes API call
MODES = ("local", "cluster")

# The ServiceAccount whose Secret carries the S3 credentials and endpoint annotations
# (serving.kserve.io/s3-endpoint, s3-usehttps, s3-verifyssl) KServe's storage initializer
# uses to fetch the model. Override with CHURN_KSERVE_SERVICE_ACCOUNT.
DEFAULT_SERVICE_ACCOUNT = "churn-kserve-sa"
DEFAULT_RESOURCES = {
    "requests": {"cpu": "500m", "memory": "1Gi"},
    "limits": {"cpu": "1", "memory": "2Gi"},
}
# Annotations recording which registered model version the InferenceService serves.
MODEL_NAME_ANNOTATION = "churn-kfp.io/model-name"
MODEL_VERSION_ANNOTATION = "churn-kfp.io/model-version"
OWNED_ANNOTATIONS = (MODEL_NAME_ANNOTATION, MODEL_VERSION_ANNOTATION)
# Storage schemes KServe's storage initializer can download from.
REMOTE_SCHEMES = ("s3://", "gs://", "pvc://", "https://", "http://", "hdfs://", "webhdfs://")
POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# KServe model transition states that will not recover by waiting.
_TERMINAL_TRANSITIONS = ("BlockedByFailedLoad", "InvalidSpec")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


class DeployError(RuntimeError):
    """A deployment failed; the message says why and what was rolled back.

    Attributes:
        reason: The failure reason taken from the status conditions (or the API error).
        rolled_back: Whether the previous ``storageUri`` was patched back.
        previous_storage_uri: The ``storageUri`` before this deployment, if any.
    """

    def __init__(
        self,
        message: str,
        reason: str = "",
        rolled_back: bool = False,
        previous_storage_uri: str | None = None,
    ):
        super().__init__(message)
        self.reason = reason
        self.rolled_back = rolled_back
        self.previous_storage_uri = previous_storage_uri


# --------------------------------------------------------------------------- render


def render_inference_service(
    name: str,
    namespace: str,
    storage_uri: str,
    service_account: str,
    canary_percent: int | None = None,
    resources: dict | None = None,
    runtime_version: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    runtime: str = SERVING_RUNTIME,
) -> dict:
    """Builds the KServe v1beta1 ``InferenceService`` for an MLflow model.

    Args:
        name: Resource name; also the model name in V2 URLs (``/v2/models/<name>/infer``).
        namespace: Kubernetes namespace.
        storage_uri: Where the MLflow model directory is (``s3://.../artifacts``).
        service_account: ServiceAccount with the S3 credentials Secret.
        canary_percent: Percent of traffic for the new revision (1-100); None rolls out
            fully.
        resources: Container resources; default :data:`DEFAULT_RESOURCES`.
        runtime_version: Serving runtime image tag (MLServer), if not the cluster default.
        model_name: Registered model name, recorded as an annotation.
        model_version: Registered model version, recorded as an annotation.
        runtime: The ``ServingRuntime`` that serves it (``manifests/base/serving-runtime.yaml``).

    Returns:
        The manifest as a dict (``yaml.safe_dump`` it to write a file).

    Raises:
        ValueError: Invalid name or canary percentage.
    """
    if not _DNS1035.match(name or "") or len(name) > 63:
        raise ValueError(
            f"InferenceService name {name!r} must be a DNS-1035 label (lowercase letters, "
            "digits and '-', starting with a letter, at most 63 characters)"
        )
    if not namespace:
        raise ValueError("namespace is required")
    if canary_percent is not None and not 1 <= int(canary_percent) <= 100:
        raise ValueError(f"canary_percent must be between 1 and 100, got {canary_percent}")
    model: dict[str, Any] = {
        "modelFormat": {"name": "mlflow"},
        "runtime": runtime,
        "protocolVersion": "v2",
        "storageUri": storage_uri,
        "resources": copy.deepcopy(resources or DEFAULT_RESOURCES),
    }
    if runtime_version:
        model["runtimeVersion"] = runtime_version
    predictor: dict[str, Any] = {"serviceAccountName": service_account, "model": model}
    if canary_percent is not None:
        predictor["canaryTrafficPercent"] = int(canary_percent)
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {
            "app.kubernetes.io/name": name,
            "app.kubernetes.io/part-of": "churn-kfp",
            "app.kubernetes.io/managed-by": FIELD_MANAGER,
        },
    }
    # Tag routing gives the new revision its own URL during a canary (the smoke test's).
    annotations = {TAG_ROUTING_ANNOTATION: "true"}
    if model_name:
        annotations[MODEL_NAME_ANNOTATION] = model_name
    if model_version:
        annotations[MODEL_VERSION_ANNOTATION] = str(model_version)
    metadata["annotations"] = annotations
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": {"predictor": predictor},
    }


# --------------------------------------------------------------------------- resolve


def resolve_storage_uri(
    model_name: str,
    alias_or_version: str,
    tracking_uri: str | None = None,
    client=None,
) -> str:
    """Returns the artifact location of a registered model version, for ``storageUri``.

    Args:
        model_name: Registered model name.
        alias_or_version: A version number (``"3"``) or an alias (``"champion"``).
        tracking_uri: MLflow tracking URI; None uses ``MLFLOW_TRACKING_URI`` / the default.
        client: An ``mlflow.MlflowClient`` to use instead of creating one.

    Returns:
        The URI of the model directory, e.g. ``s3://mlflow/1/models/m-<id>/artifacts``.

    Raises:
        DeployError: The version or alias does not exist, or has no artifact location.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = client or MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    ref = str(alias_or_version).strip()
    try:
        if ref.isdigit():
            version = client.get_model_version(model_name, ref)
        else:
            version = client.get_model_version_by_alias(model_name, ref)
        model_id = getattr(version, "model_id", None) or _model_id_from_source(version.source)
        if model_id:
            location = client.get_logged_model(model_id).artifact_location
        elif (version.source or "").startswith("runs:/"):
            run_id, _, path = version.source[len("runs:/") :].partition("/")
            location = client.get_run(run_id).info.artifact_uri.rstrip("/") + "/" + path
        else:
            location = version.source
    except MlflowException as exc:
        raise DeployError(
            f"cannot resolve {model_name}@{ref} in MLflow: {exc.message}",
            reason="ModelNotFound",
        ) from None
    if not location:
        raise DeployError(f"{model_name}@{ref} has no artifact location", reason="NoArtifacts")
    return location.rstrip("/")


def _model_id_from_source(source: str | None) -> str | None:
    match = re.match(r"^models:/(m-[0-9a-f]+)/?$", source or "")
    return match.group(1) if match else None


# --------------------------------------------------------------------------- apply


def predictor_revisions(obj: dict | None) -> tuple[str | None, str | None]:
    """``(latestCreatedRevision, latestReadyRevision)`` of the predictor, from the status."""
    predictor = (((obj or {}).get("status") or {}).get("components") or {}).get("predictor")
    predictor = predictor or {}
    return predictor.get("latestCreatedRevision"), predictor.get("latestReadyRevision")


def readiness(obj: dict, revision_before: str | None = None) -> tuple[bool, str, bool]:
    """Reads an ``InferenceService`` status after a change of its predictor.

    Ready means all three: the predictor's ``latestCreatedRevision`` differs from
    ``revision_before`` (the change made a new revision: a status still describing the old
    one says nothing about the new model), ``latestCreatedRevision ==
    latestReadyRevision``, and the ``Ready`` condition is ``True``. KServe's
    ``observedGeneration`` is not used: it is copied from the Knative Service or the
    Deployment and does not count the InferenceService's own generations.

    Args:
        obj: The resource as returned by the API.
        revision_before: ``latestCreatedRevision`` before the change (None: created now).

    Returns:
        ``(ready, reason, terminal)``: ``reason`` says what is missing; ``terminal`` is
        True when KServe reports a state waiting will not fix.
    """
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready_condition = any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in conditions
    )
    created, latest = predictor_revisions(obj)
    problems = []
    if not created or created == revision_before:
        problems.append(
            "no new predictor revision yet"
            + (f" (still {revision_before})" if revision_before else "")
        )
    elif created != latest:
        problems.append(f"revision {created} is not ready (latest ready: {latest or 'none'})")
    if ready_condition and not problems:
        return True, "", False
    problems += [
        f"{c.get('type')}={c.get('status')}"
        + (f" {c['reason']}" if c.get("reason") else "")
        + (f": {c['message']}" if c.get("message") else "")
        for c in conditions
        if c.get("status") != "True"
    ]
    model_status = status.get("modelStatus") or {}
    failure = model_status.get("lastFailureInfo") or {}
    if failure:
        problems.append(f"model {failure.get('reason', '')}: {failure.get('message', '')}".strip())
    new_revision = bool(created) and created != revision_before
    terminal = new_revision and model_status.get("transitionStatus") in _TERMINAL_TRANSITIONS
    return False, "; ".join(problems), terminal


def owned_fields(manifest: dict) -> dict:
    """What the deploy step owns of an ``InferenceService``: model location, canary, annotations.

    Everything else (runtime, resources, env, replicas, service account) belongs to the
    kustomize manifests and is never written by a patch.
    """
    predictor = manifest["spec"]["predictor"]
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    return {
        "storageUri": predictor["model"].get("storageUri"),
        "canaryTrafficPercent": predictor.get("canaryTrafficPercent"),
        "annotations": {key: annotations.get(key) for key in OWNED_ANNOTATIONS},
    }


def owned_patch(live: dict, wanted: dict) -> list[dict]:
    """The JSON patch (RFC 6902) setting exactly the owned fields of ``live`` to ``wanted``.

    ``wanted`` is :func:`owned_fields`' shape. The first operation replaces
    ``metadata.resourceVersion`` with the one read, so the API server answers 409 Conflict
    when someone changed the object in between. A None value removes the field.
    """
    metadata = live.get("metadata") or {}
    predictor = (live.get("spec") or {}).get("predictor") or {}
    ops: list[dict] = [
        {"op": "replace", "path": "/metadata/resourceVersion", "value": metadata["resourceVersion"]}
    ]
    annotations = metadata.get("annotations")
    if annotations is None and any(v is not None for v in wanted["annotations"].values()):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
        annotations = {}
    for key, value in wanted["annotations"].items():
        path = "/metadata/annotations/" + key.replace("~", "~0").replace("/", "~1")
        if value is not None:
            ops.append({"op": "add", "path": path, "value": str(value)})
        elif key in (annotations or {}):
            ops.append({"op": "remove", "path": path})
    if wanted["storageUri"] is not None:
        value = wanted["storageUri"]
        ops.append({"op": "add", "path": "/spec/predictor/model/storageUri", "value": value})
    if wanted["canaryTrafficPercent"] is not None:
        value = int(wanted["canaryTrafficPercent"])
        ops.append({"op": "add", "path": "/spec/predictor/canaryTrafficPercent", "value": value})
    elif "canaryTrafficPercent" in predictor:
        ops.append({"op": "remove", "path": "/spec/predictor/canaryTrafficPercent"})
    return ops


def apply_inference_service(
    manifest: dict,
    api,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
    log: Callable[[str], None] = print,
    smoke_check: Callable[[dict], None] | None = None,
) -> dict:
    """Creates an ``InferenceService``, or changes only what the deploy step owns, and waits.

    A new resource is created whole. An existing one gets a JSON patch of exactly
    :func:`owned_fields` (``storageUri``, ``canaryTrafficPercent`` and the model
    annotations): the runtime, resources, env and replicas the kustomize overlays set are
    left as they are. The step then waits for a new predictor revision to be Ready (see
    :func:`readiness`) and runs ``smoke_check`` on the Ready resource. A terminal failure,
    the timeout or a failed smoke check patches the previous owned fields back, waits for
    that revision too, and raises.

    Args:
        manifest: Output of :func:`render_inference_service`.
        api: A ``kubernetes.client.CustomObjectsApi``.
        timeout_s: How long to wait for Ready (each of deploy and rollback).
        poll_s: Seconds between status reads.
        log: Where progress lines go.
        smoke_check: Called with the Ready resource; raises to reject the new model.

    Returns:
        ``{"action": "created"|"patched"|"unchanged", "name", "namespace", "storage_uri",
        "previous_storage_uri", "revision", "url", "waited_s"}``.

    Raises:
        DeployError: The API refused, the new revision never became Ready, or the smoke
            check failed (the message names the reason and the rollback outcome).
    """
    from kubernetes.client.exceptions import ApiException

    name = manifest["metadata"]["name"]
    namespace = manifest["metadata"]["namespace"]
    new_uri = _storage_uri(manifest)
    wanted = owned_fields(manifest)
    where = f"InferenceService {namespace}/{name}"
    started = time.monotonic()
    previous: dict | None = None
    try:
        existing = _get(api, namespace, name)
        if existing is None:
            api.create_namespaced_custom_object(
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                manifest,
                field_manager=FIELD_MANAGER,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
            action, revision_before = "created", None
            log(f"created {where} with storageUri {new_uri}")
        elif owned_fields(existing) == wanted:
            action, revision_before = "unchanged", None
            log(f"{where} already serves storageUri {new_uri}: nothing to change")
        else:
            previous = existing
            revision_before = predictor_revisions(existing)[0]
            _patch_owned(api, namespace, name, wanted, existing)
            action = "patched"
            log(
                f"patched {where}: storageUri {_storage_uri(existing)} -> {new_uri}"
                + (f" (canary {_canary(manifest)}%)" if _canary(manifest) is not None else "")
            )
    except ApiException as exc:
        raise DeployError(
            f"{where}: the Kubernetes API refused ({exc.status} {exc.reason}): "
            f"{_api_message(exc)}{_rbac_hint(exc, namespace)}",
            reason=str(exc.reason),
        ) from None

    if action == "unchanged":
        obj = existing or {}
        created, latest = predictor_revisions(obj)
        ready = created is not None and created == latest and readiness(obj, None)[0]
        reason = "" if ready else readiness(obj, None)[1]
    else:
        obj, ready, reason = _wait_ready(api, namespace, name, revision_before, timeout_s, poll_s)
    if ready and smoke_check is not None:
        try:
            smoke_check(obj)
        except Exception as exc:  # any failure of the check rejects the model
            ready, reason = False, f"smoke test failed: {exc}"
    if ready:
        url = (obj.get("status") or {}).get("url")
        log(f"{where} is Ready" + (f" at {url}" if url else ""))
        return {
            "action": action,
            "name": name,
            "namespace": namespace,
            "storage_uri": new_uri,
            "previous_storage_uri": _storage_uri(previous) if previous else None,
            "revision": predictor_revisions(obj)[0],
            "url": url,
            "waited_s": round(time.monotonic() - started, 3),
        }

    failure = f"{where} did not become Ready with storageUri {new_uri}: {reason}"
    if previous is None:
        raise DeployError(
            f"{failure}. Nothing to roll back to (this deploy did not change a served "
            f"model); left in place: kubectl describe inferenceservice -n {namespace} {name}",
            reason=reason,
        )
    previous_uri = _storage_uri(previous)
    log(f"{failure}; rolling back to storageUri {previous_uri}")
    try:
        live = _get(api, namespace, name) or previous
        failed_revision = predictor_revisions(live)[0]
        _patch_owned(api, namespace, name, owned_fields(previous), live)
        _, back, back_reason = _wait_ready(api, namespace, name, failed_revision, timeout_s, poll_s)
    except (ApiException, DeployError) as exc:
        detail = _api_message(exc) if isinstance(exc, ApiException) else str(exc)
        raise DeployError(
            f"{failure}. Rollback to {previous_uri} failed too: {detail}",
            reason=reason,
            previous_storage_uri=previous_uri,
        ) from None
    outcome = "it is Ready again" if back else f"it is not Ready either: {back_reason}"
    raise DeployError(
        f"{failure}. Rolled back to storageUri {previous_uri}; {outcome}",
        reason=reason,
        rolled_back=True,
        previous_storage_uri=previous_uri,
    )


def _get(api, namespace: str, name: str) -> dict | None:
    from kubernetes.client.exceptions import ApiException

    try:
        return api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT_S
        )
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _patch_owned(api, namespace: str, name: str, wanted: dict, live: dict, attempts: int = 3):
    """JSON-patches the owned fields; on 409 (changed meanwhile) re-reads and tries again."""
    from kubernetes.client.exceptions import ApiException

    for attempt in range(attempts):
        try:
            return api.api_client.call_api(
                f"/apis/{GROUP}/{VERSION}/namespaces/{{namespace}}/{PLURAL}/{{name}}",
                "PATCH",
                {"namespace": namespace, "name": name},
                [("fieldManager", FIELD_MANAGER)],
                {"Accept": "application/json", "Content-Type": "application/json-patch+json"},
                body=owned_patch(live, wanted),
                response_type="object",
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=REQUEST_TIMEOUT_S,
            )
        except ApiException as exc:
            if exc.status != 409 or attempt == attempts - 1:
                raise
            live = _get(api, namespace, name) or live
    raise AssertionError("unreachable")


def _wait_ready(api, namespace, name, revision_before, timeout_s, poll_s) -> tuple[dict, bool, str]:
    """Polls until a new revision is Ready, a terminal failure, or the timeout.

    Server errors (5xx) and timeouts of single reads are retried until the deadline.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError as Urllib3Error

    deadline = time.monotonic() + timeout_s
    obj: dict = {}
    while True:
        try:
            obj = _get(api, namespace, name) or {}
            ready, reason, terminal = readiness(obj, revision_before)
        except ApiException as exc:
            if exc.status < 500:
                raise DeployError(
                    f"InferenceService {namespace}/{name}: reading its status failed "
                    f"({exc.status} {exc.reason}): {_api_message(exc)}"
                    f"{_rbac_hint(exc, namespace)}",
                    reason=str(exc.reason),
                ) from None
            ready, reason, terminal = False, f"API error {exc.status} {exc.reason}", False
        except Urllib3Error as exc:
            ready, reason, terminal = False, f"API unreachable: {exc}", False
        if ready:
            return obj, True, ""
        if terminal or time.monotonic() >= deadline:
            if not terminal:
                reason = f"not Ready after {timeout_s:g}s ({reason})"
            return obj, False, reason
        time.sleep(poll_s)


def _storage_uri(obj: dict | None) -> str | None:
    spec = (obj or {}).get("spec") or {}
    return ((spec.get("predictor") or {}).get("model") or {}).get("storageUri")


def _canary(obj: dict) -> int | None:
    return ((obj.get("spec") or {}).get("predictor") or {}).get("canaryTrafficPercent")


def _api_message(exc) -> str:
    import json

    try:
        return json.loads(exc.body).get("message") or str(exc.body)
    except (TypeError, ValueError, AttributeError):
        return str(exc.body or exc.reason)


def _rbac_hint(exc, namespace: str) -> str:
    if exc.status != 403:
        return ""
    return (
        f" (the service account needs get, create and patch on {PLURAL}.{GROUP} in "
        f"namespace {namespace})"
    )


def kubernetes_api():
    """Returns a ``CustomObjectsApi`` from the in-cluster config, else the kubeconfig.

    Raises:
        DeployError: Neither is available.
    """
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        try:
            config.load_kube_config()
        except (config.ConfigException, OSError) as exc:
            raise DeployError(
                "no Kubernetes credentials: not running in a pod and no usable kubeconfig "
                f"({exc}); use mode='local' to only write the manifest",
                reason="NoCredentials",
            ) from None
    return client.CustomObjectsApi()


# --------------------------------------------------------------------------- deploy


def deploy(
    model_name: str,
    version: str,
    namespace: str = "",
    mode: str = "local",
    out_path: str | Path = "inferenceservice.yaml",
    *,
    service_name: str | None = None,
    service_account: str | None = None,
    canary_percent: int | None = None,
    resources: dict | None = None,
    runtime_version: str | None = None,
    storage_uri: str | None = None,
    tracking_uri: str | None = None,
    timeout_s: float = 600.0,
    poll_s: float = 5.0,
    api=None,
    log: Callable[[str], None] = print,
    smoke_check: Callable[[dict], None] | None = None,
) -> dict:
    """Deploys a registered model version with KServe (cluster) or writes its manifest (local).

    Both modes resolve the version's artifact location and write the manifest YAML to
    ``out_path``. ``local`` stops there and says so (no cluster is contacted). ``cluster``
    loads the in-cluster config (or the kubeconfig) unless ``api`` is given, then calls
    :func:`apply_inference_service`.

    Args:
        model_name: Registered MLflow model name.
        version: Version number or alias to serve.
        namespace: Target namespace; empty means the pod's own (``default`` locally).
        mode: ``"local"`` or ``"cluster"``.
        out_path: Where to write the manifest YAML.
        service_name: InferenceService name; default: the model name.
        service_account: ServiceAccount with the S3 credentials; default
            ``CHURN_KSERVE_SERVICE_ACCOUNT`` or :data:`DEFAULT_SERVICE_ACCOUNT`.
        canary_percent: Traffic percent for the new revision; None rolls out fully.
        resources: Container resources (default :data:`DEFAULT_RESOURCES`).
        runtime_version: Serving runtime image tag, if not the cluster default.
        storage_uri: Skip the MLflow lookup (and the default smoke test) and serve this
            location.
        tracking_uri: MLflow tracking URI for the lookup.
        timeout_s: Seconds to wait for Ready (cluster mode).
        poll_s: Seconds between status reads (cluster mode).
        api: A ``CustomObjectsApi`` to use (tests, or a caller with its own config).
        log: Where progress lines go.
        smoke_check: Run on the Ready resource (see :func:`apply_inference_service`);
            default in cluster mode: :func:`churn_kfp.serving.smoke.v2_smoke_check` with the
            version's logged input example and the probabilities recorded at registration.

    Returns:
        A summary: mode, applied, manifest path, storage URI, and the apply result.

    Raises:
        DeployError: Unknown mode, a location KServe cannot download from (cluster mode),
            or a failed apply (see :func:`apply_inference_service`).
    """
    if mode not in MODES:
        raise DeployError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    namespace = namespace or _pod_namespace() or ("default" if mode == "local" else "")
    if not namespace:
        raise DeployError("no namespace given and not running in a pod", reason="NoNamespace")
    uri = storage_uri or resolve_storage_uri(model_name, version, tracking_uri)
    if mode == "cluster" and not uri.startswith(REMOTE_SCHEMES):
        raise DeployError(
            f"storageUri {uri!r} is not reachable by KServe (needs one of "
            f"{', '.join(REMOTE_SCHEMES)}): point MLflow's artifact root at S3/MinIO",
            reason="LocalArtifacts",
        )
    manifest = render_inference_service(
        name=service_name or _service_name(model_name),
        namespace=namespace,
        storage_uri=uri,
        service_account=service_account
        or os.environ.get("CHURN_KSERVE_SERVICE_ACCOUNT", DEFAULT_SERVICE_ACCOUNT),
        canary_percent=canary_percent,
        resources=resources,
        runtime_version=runtime_version,
        model_name=model_name,
        model_version=version,
    )
    out = Path(out_path)
    write_manifest(manifest, out)
    summary: dict[str, Any] = {
        "mode": mode,
        "model_name": model_name,
        "version": str(version),
        "storage_uri": uri,
        "manifest_path": str(out),
        "name": manifest["metadata"]["name"],
        "namespace": namespace,
    }
    if mode == "local":
        log(
            f"local mode: wrote the InferenceService manifest to {out}; not applied "
            "(no cluster in local mode; `kubectl apply -f` it or deploy with mode=cluster)"
        )
        if not uri.startswith(REMOTE_SCHEMES):
            log(f"note: storageUri {uri} is local; KServe needs s3://, gs://, pvc:// or https")
        return {**summary, "applied": False}
    if smoke_check is None:
        recorded = (
            None
            if storage_uri
            else smoke.registered_example(model_name, version, uri, tracking_uri)
        )
        if recorded is None:
            log(
                f"note: no example probabilities recorded for {model_name} {version} (an "
                "explicit storage_uri, or registered before they were): no smoke test after Ready"
            )
        else:
            smoke_check = smoke.v2_smoke_check(*recorded, model_name=manifest["metadata"]["name"])
    api = api or kubernetes_api()
    result = apply_inference_service(
        manifest, api, timeout_s=timeout_s, poll_s=poll_s, log=log, smoke_check=smoke_check
    )
    return {**summary, "applied": True, **result}


def write_manifest(manifest: dict, path: Path) -> Path:
    """Writes a manifest as YAML (creating parent folders)."""
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    return path


def _service_name(model_name: str) -> str:
    name = re.sub(r"[^a-z0-9-]+", "-", (model_name or MODEL_NAME).lower()).strip("-")
    return name if name[:1].isalpha() else f"m-{name}"


def _pod_namespace() -> str | None:
    try:
        return Path(POD_NAMESPACE_PATH).read_text().strip() or None
    except OSError:
        return None
