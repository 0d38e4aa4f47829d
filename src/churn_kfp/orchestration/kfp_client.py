"""Talk to a Kubeflow Pipelines API server: upload pipeline versions, start runs, schedule.

Thin, idempotent helpers on top of :class:`kfp.Client` (KFP v2beta1 API) for ``churn submit``
and ``churn schedule``. They encode the fixes for traps users of KFP report upstream:

* **Upload idempotence** (kubeflow/pipelines#3901, #7494, #2940): no single call creates a
  pipeline and a *named* version, and uploading a version name that exists fails. So:
  look the pipeline up by name (in the namespace), ``upload_pipeline`` if it is missing,
  then reuse the version named by :func:`version_name` if the server has it, else
  ``upload_pipeline_version``.
* **Six-field cron** (kubeflow/pipelines#5014, #2318): KFP parses cron with seconds first,
  so the usual ``0 10 * * *`` would fire hourly. :func:`~churn_kfp.orchestration.cron.to_kfp_cron`
  converts 5-field
  expressions and rejects malformed ones before anything is sent.
* **Recurring runs** (kubeflow/pipelines#11296, #7421): a recurring run is pinned to the
  pipeline version it was created with, and the API has no update. :func:`schedule`
  deletes a recurring run of the same name and recreates it (restoring the old one if the
  creation fails), always with ``max_concurrency=1`` and ``no_catchup=True``.

Version policy: ``churn submit`` uploads the checked-out code as a new pipeline version; a
recurring run keeps running the version it was created with until ``churn schedule`` is
run again, which moves it to the current version. Nothing moves it silently.

Nothing here touches the network or the file system at import time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import os
import re
import sys
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from churn_kfp.orchestration.cron import to_kfp_cron

# Where Kubeflow projects a service-account token for the KFP API into pods (the SDK's
# ``ServiceAccountTokenVolumeCredentials`` convention); ``KF_PIPELINES_SA_TOKEN_PATH``
# overrides it.
DEFAULT_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
SA_TOKEN_PATH_ENV = "KF_PIPELINES_SA_TOKEN_PATH"
# The pod's own namespace, used in multi-user mode when no namespace is given.
POD_NAMESPACE_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
# The KFP API service inside the cluster (used only when running in a pod with no host).
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
HEALTHZ_PATH = "/apis/v2beta1/healthz"
PAGE_SIZE = 100

KFP_BACKEND_FLOOR = (2, 16)
"""The oldest KFP backend the compiled pipelines run on (the Kubeflow platform 26.03 ships
it). Older drivers reject fields kfp 2.17 compiles (``tests/pipelines/test_backend_floor.py``
parses the YAML with the floor's own protos)."""
FLOOR_TEXT = ".".join(map(str, KFP_BACKEND_FLOOR))

HOST_HELP = (
    "set KFP_HOST or pass --host, e.g. http://localhost:8080 after "
    "`kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`, or "
    "https://<kubeflow-gateway>/pipeline for a multi-user Kubeflow"
)
TOKEN_AUDIENCE = "pipelines.kubeflow.org"
"""The audience the KFP API server's token review expects."""
TOKEN_HELP = (
    "set KFP_TOKEN or pass --token with a bearer token, e.g. "
    "`kubectl -n <profile-namespace> create token default-editor "
    f"--audience={TOKEN_AUDIENCE}`"
)


class KfpError(RuntimeError):
    """A problem talking to Kubeflow Pipelines; the message is meant for the user."""


class KfpConfigError(KfpError):
    """Missing or invalid connection settings (host, token, namespace)."""


class KfpUnreachableError(KfpError):
    """The KFP API server did not answer."""


class KfpBackendTooOldError(KfpError):
    """The KFP backend is older than :data:`KFP_BACKEND_FLOOR`."""


class KfpApiError(KfpError):
    """The KFP API server answered with an error.

    Attributes:
        status: The HTTP status, when there was one.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class ParameterError(ValueError):
    """A ``--param`` that does not match the pipeline's parameters."""


# --------------------------------------------------------------------------- connection


@dataclass(frozen=True)
class Connection:
    """Where the KFP API is and how to authenticate.

    Attributes:
        host: Base URL of the KFP API (``http(s)://...``, no trailing slash).
        namespace: Kubeflow profile namespace (multi-user mode), or None (single-user).
        token: Bearer token, or None.
        token_source: Where the token came from, for messages (never the token itself).
        backend_version: The KFP backend's version as its healthz reports it, once known.
    """

    host: str
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)
    token_source: str = "none"
    backend_version: str | None = None

    @classmethod
    def resolve(
        cls,
        host: str | None = None,
        namespace: str | None = None,
        token: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> Connection:
        """Resolves host, namespace and token from flags first, then the environment.

        Host: ``--host``, ``KFP_HOST``, ``KF_PIPELINES_ENDPOINT`` (the SDK's variable), or
        the in-cluster service when running in a pod. Namespace: ``--namespace``,
        ``KFP_NAMESPACE``. Token: ``--token``, ``KFP_TOKEN``, else the service-account
        token file (``KF_PIPELINES_SA_TOKEN_PATH``, else
        ``/var/run/secrets/kubeflow/pipelines/token`` when present).

        Raises:
            KfpConfigError: No host, a host without ``http://``/``https://``, or a token
                file named by ``KF_PIPELINES_SA_TOKEN_PATH`` that cannot be read.
        """
        env = os.environ if environ is None else environ
        host = host or env.get("KFP_HOST") or env.get("KF_PIPELINES_ENDPOINT")
        if not host and env.get("KUBERNETES_SERVICE_HOST"):
            host = IN_CLUSTER_HOST
        if not host:
            raise KfpConfigError(f"no Kubeflow Pipelines host: {HOST_HELP}")
        host = host.strip().rstrip("/")
        if not re.match(r"^https?://[^/\s]+", host):
            raise KfpConfigError(
                f"KFP host {host!r} must start with http:// or https:// "
                f"(e.g. http://{host.split('://')[-1]})"
            )
        namespace = namespace or env.get("KFP_NAMESPACE") or None

        source = "none"
        if token:
            source = "--token"
        elif env.get("KFP_TOKEN"):
            token, source = env["KFP_TOKEN"].strip(), "KFP_TOKEN"
        else:
            path = env.get(SA_TOKEN_PATH_ENV)
            if path:
                try:
                    token = Path(path).read_text().strip()
                except OSError as exc:
                    raise KfpConfigError(
                        f"{SA_TOKEN_PATH_ENV}={path} but the token file cannot be read ({exc})"
                    ) from exc
                source = f"service-account token {path}"
            elif Path(DEFAULT_SA_TOKEN_PATH).is_file():
                token = Path(DEFAULT_SA_TOKEN_PATH).read_text().strip()
                source = f"service-account token {DEFAULT_SA_TOKEN_PATH}"
        return cls(host=host, namespace=namespace, token=token or None, token_source=source)

    def describe(self) -> str:
        """One line naming host, namespace and auth (without the token)."""
        namespace = self.namespace or "(none: single-user)"
        line = f"KFP {self.host}, namespace {namespace}, auth {self.token_source}"
        return line + (f", backend {self.backend_version}" if self.backend_version else "")


def backend_version(health: dict) -> tuple[int, ...] | None:
    """The backend version in a healthz answer (``tag_name``, e.g. ``2.16.0``), or None.

    The API server fills ``tag_name`` from its build (``unknown`` for unreleased builds).
    """
    match = re.match(r"^v?(\d+)\.(\d+)(?:\.(\d+))?", str(health.get("tag_name") or "").strip())
    return tuple(int(part) for part in match.groups() if part is not None) if match else None


def require_backend_floor(health: dict, host: str) -> str | None:
    """Checks the backend is at least :data:`KFP_BACKEND_FLOOR`.

    Returns:
        A warning when the version is not reported (nothing to compare), else None.

    Raises:
        KfpBackendTooOldError: The backend reports an older version.
    """
    version = backend_version(health)
    if version is None:
        return (
            f"warning: {host} does not report its KFP version (tag_name "
            f"{health.get('tag_name')!r}); these pipelines need KFP backend {FLOOR_TEXT} or newer"
        )
    if version[:2] < KFP_BACKEND_FLOOR:
        raise KfpBackendTooOldError(
            f"{host} runs KFP backend {health.get('tag_name')}, older than {FLOOR_TEXT}, the "
            f"oldest these pipelines run on (its driver rejects fields they use); upgrade to "
            f"KFP {FLOOR_TEXT} or newer (the Kubeflow platform 26.03 ships it)"
        )
    return None


def check_reachable(conn: Connection, timeout_s: float = 10.0) -> dict:
    """Calls the KFP health endpoint once, with a timeout, and explains failures.

    Returns:
        The healthz answer (``{"multi_user": bool, ...}``).

    Raises:
        KfpUnreachableError: Nothing answers at the host (refused, DNS, timeout).
        KfpConfigError: The host answers but is not the KFP API, or wants credentials.
    """
    url = conn.host + HEALTHZ_PATH
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if conn.token:
        request.add_header("Authorization", f"Bearer {conn.token}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read()
            content_type = response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        if exc.code in (301, 302, 303, 307, 308):
            where = exc.headers.get("Location", "?")
            raise KfpConfigError(
                f"{url} redirected to a login page ({where}): the Kubeflow gateway wants "
                f"credentials; {TOKEN_HELP}"
            ) from None
        if exc.code in (401, 403):
            raise KfpConfigError(
                f"{url} refused the request (HTTP {exc.code}, auth {conn.token_source}); "
                f"{TOKEN_HELP}"
            ) from None
        raise KfpConfigError(
            f"{url} answered HTTP {exc.code}: is {conn.host} the Kubeflow Pipelines API? "
            f"({HOST_HELP})"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise KfpUnreachableError(
            f"cannot reach the Kubeflow Pipelines API at {conn.host} ({reason}); check the "
            f"host and that it is reachable from here: {HOST_HELP}"
        ) from None
    try:
        return json.loads(body or b"{}")
    except ValueError:
        raise KfpConfigError(
            f"{url} did not answer like the KFP API (got {content_type or 'non-JSON'}); "
            f"is the host right? ({HOST_HELP})"
        ) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Surfaces redirects (a login page in front of Kubeflow) instead of following them."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None


def connect(conn: Connection, timeout_s: float = 10.0):
    """Checks the host answers, then returns a ``kfp.Client`` for it.

    In multi-user mode a namespace is required: the one given, else the pod's own.

    Returns:
        A tuple ``(client, conn)``; ``conn`` carries the namespace actually used.

    Raises:
        KfpError: See :func:`check_reachable`; a backend older than the floor
            (:class:`KfpBackendTooOldError`); a multi-user server with no namespace.
    """
    health = check_reachable(conn, timeout_s)
    warning = require_backend_floor(health, conn.host)
    if warning:
        print(warning, file=sys.stderr)
    conn = dataclasses.replace(conn, backend_version=str(health.get("tag_name") or "unknown"))
    if health.get("multi_user") and not conn.namespace:
        if Path(POD_NAMESPACE_PATH).is_file():
            conn = dataclasses.replace(conn, namespace=Path(POD_NAMESPACE_PATH).read_text().strip())
        else:
            raise KfpConfigError(
                f"{conn.host} is a multi-user Kubeflow: set KFP_NAMESPACE or pass --namespace "
                "with your profile namespace"
            )
    import kfp

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore", FutureWarning)
        client = _call(
            conn,
            "connect",
            kfp.Client,
            host=conn.host,
            namespace=conn.namespace or "kubeflow",
            existing_token=conn.token,
        )
    return client, conn


def _call(conn: Connection, what: str, func, *args, **kwargs):
    """Calls a ``kfp.Client`` method; turns transport and API errors into :class:`KfpError`."""
    import kfp_server_api
    import urllib3

    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the SDK prints links; we print ours
            return func(*args, **kwargs)
    except kfp_server_api.ApiException as exc:
        if exc.status == 0:
            raise KfpUnreachableError(f"{what}: {conn.host}: {exc.reason}") from None
        raise KfpApiError(
            f"{what}: KFP API at {conn.host} answered HTTP {exc.status} {exc.reason or ''}: "
            f"{_error_text(exc.body)}",
            status=exc.status,
        ) from None
    except urllib3.exceptions.HTTPError as exc:
        raise KfpUnreachableError(
            f"{what}: lost the connection to {conn.host} ({exc}); {HOST_HELP}"
        ) from None


def _error_text(body: Any) -> str:
    """Extracts the message of a KFP error body (gRPC gateway or upload server shape)."""
    if isinstance(body, bytes):
        body = body.decode(errors="replace")
    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return str(body or "").strip()[:500]
    if isinstance(data, dict):
        message = data.get("message") or data.get("error_message") or data.get("error")
        details = data.get("error_details")
        if message and details and details != message:
            message = f"{message} ({details})"
        return str(message or data)[:500]
    return str(data)[:500]


# --------------------------------------------------------------------------- pipelines


def version_name(package_path: Path, package_version: str | None = None) -> str:
    """Names the pipeline version for a compiled package.

    ``<package version>-<git short sha>-<first 8 hex of the compiled YAML's SHA-256>``: the
    same code and image map to the same name (so re-submitting reuses the version), while
    uncommitted changes or another ``CHURN_IMAGE`` get a new version instead of silently
    reusing a stale one.
    """
    from churn_kfp import __version__
    from churn_kfp.registry import lineage

    commit = lineage.git_commit()
    short = commit[:7] if commit and commit != "unknown" else "nogit"
    digest = hashlib.sha256(Path(package_path).read_bytes()).hexdigest()[:8]
    return f"{package_version or __version__}-{short}-{digest}"


def pipeline_parameters(package_path: Path) -> dict[str, str]:
    """Returns the pipeline's input parameters and their KFP types from a compiled YAML."""
    with open(package_path) as handle:
        spec = next(yaml.safe_load_all(handle))
    params = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    return {name: item.get("parameterType", "STRING") for name, item in params.items()}


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    """Parses ``k=v`` strings from ``--param``.

    Raises:
        ParameterError: An item has no ``=`` or an empty name.
    """
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ParameterError(f"--param {pair!r}: expected NAME=VALUE")
        out[key.strip()] = value
    return out


def coerce_params(raw: dict[str, str], types: dict[str, str], pipeline: str) -> dict[str, Any]:
    """Converts string values to the types the pipeline declares.

    Raises:
        ParameterError: Unknown parameter name, or a value of the wrong type.
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in types:
            raise ParameterError(
                f"{pipeline} has no parameter {key!r}; it takes: {', '.join(sorted(types))}"
            )
        kind = types[key]
        try:
            if kind == "NUMBER_INTEGER":
                out[key] = int(value)
            elif kind == "NUMBER_DOUBLE":
                out[key] = float(value)
            elif kind == "BOOLEAN":
                lowered = value.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                out[key] = lowered in ("true", "1", "yes")
            elif kind in ("LIST", "STRUCT"):
                out[key] = json.loads(value)
            else:
                out[key] = value
        except ValueError:
            raise ParameterError(
                f"--param {key}={value!r}: {pipeline} expects {kind.lower().replace('_', ' ')}"
            ) from None
    return out


@dataclass(frozen=True)
class PipelineVersionRef:
    """A pipeline version on the server, and what :func:`ensure_pipeline_version` did."""

    pipeline_name: str
    pipeline_id: str
    version_name: str
    version_id: str
    pipeline_created: bool
    version_created: bool


def find_pipeline_id(client, conn: Connection, name: str) -> str | None:
    """Looks a pipeline up by name in the connection's namespace (shared when None)."""
    response = _call(
        conn,
        f"look up pipeline {name}",
        client.list_pipelines,
        page_size=PAGE_SIZE,
        filter=_name_filter(name),
        namespace=conn.namespace,
    )
    matches = [p for p in response.pipelines or [] if p.display_name == name]
    if len(matches) > 1:
        raise KfpApiError(f"{len(matches)} pipelines are named {name!r}; names must be unique")
    return matches[0].pipeline_id if matches else None


def find_version_id(client, conn: Connection, pipeline_id: str, name: str) -> str | None:
    """Returns the id of the pipeline's version called ``name``, or None."""
    token = ""
    while True:
        response = _call(
            conn,
            f"list versions of pipeline {pipeline_id}",
            client.list_pipeline_versions,
            pipeline_id=pipeline_id,
            page_token=token,
            page_size=PAGE_SIZE,
            filter=_name_filter(name),
        )
        for version in response.pipeline_versions or []:
            if version.display_name == name:
                return version.pipeline_version_id
        token = response.next_page_token or ""
        if not token:
            return None


def ensure_pipeline_version(
    client,
    conn: Connection,
    pipeline_name: str,
    package_path: Path,
    version: str,
    description: str = "",
) -> PipelineVersionRef:
    """Makes sure ``pipeline_name`` has a version named ``version``; uploads only if needed.

    A new pipeline is created with ``upload_pipeline`` (which also makes a first version
    named after the pipeline), then the named version is added, so every version this
    project runs carries its code version. A version that exists is reused, never
    re-uploaded (uploading an existing name fails: kubeflow/pipelines#2940); if another
    submit uploads it at the same moment, the conflict is resolved by reusing theirs.
    """
    pipeline_id = find_pipeline_id(client, conn, pipeline_name)
    pipeline_created = False
    if pipeline_id is None:
        pipeline = _call(
            conn,
            f"upload pipeline {pipeline_name}",
            client.upload_pipeline,
            pipeline_package_path=str(package_path),
            pipeline_name=pipeline_name,
            description=description or None,
            namespace=conn.namespace,
        )
        pipeline_id, pipeline_created = pipeline.pipeline_id, True
    version_id = find_version_id(client, conn, pipeline_id, version)
    version_created = False
    if version_id is None:
        try:
            uploaded = _call(
                conn,
                f"upload version {version} of pipeline {pipeline_name}",
                client.upload_pipeline_version,
                pipeline_package_path=str(package_path),
                pipeline_version_name=version,
                pipeline_id=pipeline_id,
                description=description or None,
            )
            version_id, version_created = uploaded.pipeline_version_id, True
        except KfpApiError as exc:
            version_id = find_version_id(client, conn, pipeline_id, version)
            if version_id is None or exc.status != 409:
                raise
    return PipelineVersionRef(
        pipeline_name, pipeline_id, version, version_id, pipeline_created, version_created
    )


def ensure_experiment(client, conn: Connection, name: str) -> str:
    """Returns the id of the experiment called ``name``, creating it if missing."""
    try:
        experiment = _call(
            conn,
            f"get or create experiment {name}",
            client.create_experiment,
            name=name,
            namespace=conn.namespace,
        )
    except ValueError as exc:  # the SDK's "Multiple experiments is found with name ..."
        raise KfpApiError(f"experiment {name!r}: {exc}") from None
    return experiment.experiment_id


def start_run(
    client,
    conn: Connection,
    ref: PipelineVersionRef,
    experiment_id: str,
    params: dict[str, Any],
    service_account: str | None = None,
) -> str:
    """Starts a run of a pipeline version in an experiment; returns the run id."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
    run = _call(
        conn,
        f"start a run of {ref.pipeline_name}",
        client.run_pipeline,
        experiment_id=experiment_id,
        job_name=f"{ref.pipeline_name} {ref.version_name} {stamp}",
        params=params,
        pipeline_id=ref.pipeline_id,
        version_id=ref.version_id,
        service_account=service_account,
    )
    return run.run_id


def run_url(conn: Connection, run_id: str) -> str:
    """Link to a run in the KFP UI."""
    return f"{conn.host}/#/runs/details/{run_id}"


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class ScheduleResult:
    """What :func:`schedule` did.

    Attributes:
        recurring_run_id: Id of the recurring run now in place.
        cron: The six-field cron sent to KFP.
        replaced: Descriptions of the recurring runs of the same name that were deleted.
    """

    recurring_run_id: str
    cron: str
    replaced: list[str]


def find_recurring_runs(client, conn: Connection, name: str) -> list:
    """Returns every recurring run called ``name`` visible in the namespace."""
    found, token = [], ""
    while True:
        response = _call(
            conn,
            f"list recurring runs named {name}",
            client.list_recurring_runs,
            page_token=token,
            page_size=PAGE_SIZE,
            namespace=conn.namespace,
            filter=_name_filter(name),
        )
        found += [r for r in response.recurring_runs or [] if r.display_name == name]
        token = response.next_page_token or ""
        if not token:
            return found


def schedule(
    client,
    conn: Connection,
    *,
    name: str,
    cron: str,
    ref: PipelineVersionRef,
    experiment_id: str,
    params: dict[str, Any],
    service_account: str | None = None,
) -> ScheduleResult:
    """Creates (or replaces) the recurring run ``name`` for a pipeline version.

    ``max_concurrency=1``, ``no_catchup=True``, enabled. The KFP API cannot update a
    recurring run (kubeflow/pipelines#7421), so one with the same name is deleted and then
    recreated; if the creation fails, the deleted ones are recreated from their old
    definitions and the error is raised.

    Args:
        client: A ``kfp.Client`` from :func:`connect`.
        conn: The connection it was made with (host and namespace for messages/lists).
        name: Display name of the recurring run (the identity used for idempotence).
        cron: Cron expression (converted with :func:`to_kfp_cron`).
        ref: The pipeline version to pin the recurring run to.
        experiment_id: Experiment the runs are created in.
        params: Pipeline parameters, already typed (:func:`coerce_params`).
        service_account: Kubernetes service account for the runs; None for the default.

    Raises:
        KfpError: The API refused; the message says whether the old schedule was restored.
    """
    cron = to_kfp_cron(cron)
    existing = find_recurring_runs(client, conn, name)
    replaced = []
    for old in existing:
        _call(
            conn,
            f"delete recurring run {name} ({old.recurring_run_id})",
            client.delete_recurring_run,
            old.recurring_run_id,
        )
        replaced.append(_describe_recurring_run(old))
    try:
        created = _call(
            conn,
            f"create recurring run {name}",
            client.create_recurring_run,
            experiment_id=experiment_id,
            job_name=name,
            description=f"{ref.pipeline_name} version {ref.version_name}, cron {cron}",
            cron_expression=cron,
            max_concurrency=1,
            no_catchup=True,
            params=params,
            pipeline_id=ref.pipeline_id,
            version_id=ref.version_id,
            enabled=True,
            service_account=service_account,
        )
    except KfpError as exc:
        if not existing:
            raise
        restored = [_restore(client, conn, old) for old in existing]
        raise KfpApiError(
            f"{exc}; the previous recurring run(s) named {name!r} had been deleted first: "
            + "; ".join(restored)
        ) from None
    return ScheduleResult(created.recurring_run_id, cron, replaced)


def _describe_recurring_run(run) -> str:
    trigger = run.trigger
    cron = getattr(getattr(trigger, "cron_schedule", None), "cron", None)
    ref = run.pipeline_version_reference
    version = getattr(ref, "pipeline_version_id", None) or run.pipeline_version_id or "?"
    return f"id {run.recurring_run_id}, cron {cron!r}, pipeline version {version}"


def _restore(client, conn: Connection, old) -> str:
    """Recreates a deleted recurring run from its old definition (best effort)."""
    ref = old.pipeline_version_reference
    trigger = old.trigger
    cron = getattr(getattr(trigger, "cron_schedule", None), "cron", None)
    interval = getattr(getattr(trigger, "periodic_schedule", None), "interval_second", None)
    if ref is None or not (cron or interval):
        return f"could not restore {_describe_recurring_run(old)} (no version reference)"
    runtime = old.runtime_config
    try:
        restored = _call(
            conn,
            f"restore recurring run {old.display_name}",
            client.create_recurring_run,
            experiment_id=old.experiment_id,
            job_name=old.display_name,
            description=old.description,
            cron_expression=cron,
            interval_second=None if cron else int(interval or 0),
            max_concurrency=int(old.max_concurrency or 1),
            no_catchup=old.no_catchup,
            params=(runtime.parameters if runtime else None) or {},
            pipeline_id=ref.pipeline_id,
            version_id=ref.pipeline_version_id,
            enabled=old.mode != "DISABLE",
            pipeline_root=runtime.pipeline_root if runtime else None,
            service_account=old.service_account or None,
        )
    except KfpError as exc:
        return f"restoring {_describe_recurring_run(old)} failed too ({exc})"
    return f"restored it as {restored.recurring_run_id}"


def _name_filter(name: str) -> str:
    return json.dumps(
        {"predicates": [{"operation": "EQUALS", "key": "display_name", "string_value": name}]}
    )
