"""STAND-IN HTTP servers for the cluster tests. They are NOT the real servers.

No Kubeflow cluster exists where these tests run, so the code that talks to one is driven
through real clients (``kfp.Client`` and ``kubernetes.client.ApiClient``) against small
local HTTP servers bound to 127.0.0.1 on ephemeral ports:

* :class:`KfpStandIn` is a STAND-IN for the Kubeflow Pipelines API server. It implements
  only the KFP v2beta1 REST endpoints ``churn submit`` / ``churn schedule`` call (healthz,
  pipelines list/upload, versions upload/list, experiments list/create, runs create,
  recurring runs create/list/get/delete), with the request and response shapes of the real
  server (proto field names, the upload server's multipart ``uploadfile``, HTTP 409 on a
  duplicate pipeline or version name, a version named after the pipeline created by
  ``upload``, ``recurringRuns`` as the list key). It keeps state in memory and records
  every request so tests can assert what was sent. It does not run anything.
* The Kubernetes API / KServe STAND-IN is :class:`kube_stand_in.KubeStandIn`.

Each says what it is in every response header (``X-Stand-In``).
"""

# STAND-IN servers: a test double for the KFP API server and the Kubernetes API server,
# not the real thing. See the module docstring for exactly what they implement.

from __future__ import annotations

import base64
import copy
import email.parser
import email.policy
import itertools
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import yaml


@dataclass
class Recorded:
    """One request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    json: Any = None
    files: dict[str, bytes] = field(default_factory=dict)
    files_name: str | None = None

    def q(self, key: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        return self.query.get(key, [default])[0]


class HttpError(Exception):
    """Raised by a route to answer with an error status."""

    def __init__(self, status: int, payload: dict, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status = status
        self.payload = payload
        self.headers = headers or {}


class _StandInServer:
    """A threaded HTTP server on 127.0.0.1 (ephemeral port) dispatching to ``route``."""

    name = "stand-in"

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> _StandInServer:
        """Starts serving in a daemon thread."""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parsed = urlparse(self.path)
                rec = Recorded(
                    method=self.command,
                    path=parsed.path,
                    query=parse_qs(parsed.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                )
                headers = {}
                with owner.lock:
                    owner.requests.append(rec)
                    try:
                        status, payload = owner.route(rec)
                    except HttpError as exc:
                        status, payload, headers = exc.status, exc.payload, exc.headers
                data = json.dumps(payload).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Stand-In", owner.name)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def route(self, rec: Recorded) -> tuple[int, Any]:
        """Answers one request; overridden by each stand-in."""
        raise NotImplementedError

    def calls(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        """Recorded requests, filtered by method and exact path."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and (path is None or r.path == path)
        ]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# =========================================================================== KFP


DEFAULT_PAGE_SIZE = 20
"""Page size when a list request names none."""


class KfpStandIn(_StandInServer):
    """STAND-IN for the Kubeflow Pipelines v2beta1 API server (not the real one).

    Args:
        multi_user: What ``healthz`` reports; in multi-user mode listing experiments or
            recurring runs and creating experiments require a namespace, as on Kubeflow.
        token: When set, every request must carry ``Authorization: Bearer <token>``.
        tag_name: The backend version ``healthz`` reports (the real API server reports its
            build's ``TAG_NAME`` and ``COMMIT_SHA`` there, ``unknown`` when unset).
        page_size_cap: The largest page any list answers with, so that tests spread their
            data over several pages (every list endpoint pages: ``page_size``,
            ``page_token`` in, ``next_page_token`` out, omitted on the last page).
    """

    name = "kfp-v2beta1-stand-in"
    API = "/apis/v2beta1"

    def __init__(
        self,
        multi_user: bool = False,
        token: str | None = None,
        tag_name: str = "2.16.0",
        page_size_cap: int | None = None,
    ) -> None:
        super().__init__()
        self.page_size_cap = page_size_cap
        self.multi_user = multi_user
        self.token = token
        self.tag_name = tag_name
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, dict] = {}
        self.specs: dict[str, list] = {}  # version id -> parsed YAML documents uploaded
        self.experiments: dict[str, dict] = {}
        self.runs: dict[str, dict] = {}
        self.recurring_runs: dict[str, dict] = {}
        self.max_same_name_recurring_runs = 0
        self.fail_next: dict[tuple[str, str], tuple[int, str]] = {}
        self._ids = itertools.count(1)

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids):04d}-{uuid.uuid4().hex[:8]}"

    # ----------------------------------------------------------------- routing
    def route(self, rec: Recorded) -> tuple[int, Any]:  # noqa: D102
        if self.token and rec.headers.get("authorization") != f"Bearer {self.token}":
            raise HttpError(401, _grpc_error(16, "Unauthenticated: missing or wrong token"))
        fault = self.fail_next.pop((rec.method, rec.path), None)
        if fault:
            raise HttpError(fault[0], _grpc_error(13, fault[1]))
        if not rec.path.startswith(self.API):
            raise HttpError(404, _grpc_error(5, f"Not Found: {rec.path}"))
        parts = rec.path[len(self.API) :].strip("/").split("/")
        if rec.body and "json" in rec.headers.get("content-type", ""):
            rec.json = json.loads(rec.body)
        key = (rec.method, parts[0], len(parts))
        routes = {
            ("GET", "healthz", 1): self._healthz,
            ("GET", "pipelines", 1): self._list_pipelines,
            ("GET", "pipelines", 3): self._list_versions,
            ("POST", "experiments", 1): self._create_experiment,
            ("GET", "experiments", 1): self._list_experiments,
            ("GET", "experiments", 2): self._get_experiment,
            ("POST", "runs", 1): self._create_run,
            ("POST", "recurringruns", 1): self._create_recurring_run,
            ("GET", "recurringruns", 1): self._list_recurring_runs,
            ("GET", "recurringruns", 2): self._get_recurring_run,
            ("DELETE", "recurringruns", 2): self._delete_recurring_run,
        }
        if rec.method == "POST" and parts[:2] == ["pipelines", "upload"]:
            return self._upload_pipeline(rec)
        if rec.method == "POST" and parts[:2] == ["pipelines", "upload_version"]:
            return self._upload_version(rec)
        handler = routes.get(key)
        if handler is None or (len(parts) == 3 and parts[2] != "versions"):
            raise HttpError(404, _grpc_error(12, f"stand-in does not implement {rec.path}"))
        return handler(rec, parts)

    # ----------------------------------------------------------------- endpoints
    def _healthz(self, rec, parts):
        # The real server writes this JSON by hand (backend/src/apiserver/main.go).
        return 200, {
            "commit_sha": "stand-in",
            "tag_name": self.tag_name,
            "multi_user": self.multi_user,
            "pipeline_store": "stand-in",
        }

    def _require_namespace(self, namespace: str | None, what: str) -> None:
        if self.multi_user and not namespace:
            raise HttpError(
                400, _grpc_error(3, f"Invalid input error: In multi-user mode, {what} requires")
            )

    def _list_pipelines(self, rec, parts):
        namespace = rec.q("namespace") or ""
        items = [p for p in self.pipelines.values() if p["namespace"] == namespace]
        items = _apply_filter(items, rec.q("filter"))
        return 200, self._page(rec, items, "pipelines")

    def _upload_pipeline(self, rec):
        files = _multipart_files(rec)
        spec_docs = _parse_spec(files)
        name = rec.q("name") or rec.q("display_name") or rec.files_name
        namespace = rec.q("namespace") or ""
        if any(p["name"] == name and p["namespace"] == namespace for p in self.pipelines.values()):
            raise HttpError(
                409,
                {
                    "error_message": "Failed to create a pipeline and a pipeline version",
                    "error_details": f"The name {name} already exists. Please specify a new name",
                },
            )
        pipeline = {
            "pipeline_id": self._id("pipeline"),
            "name": name,
            "display_name": rec.q("display_name") or name,
            "description": rec.q("description") or "",
            "namespace": namespace,
            "created_at": _now(),
        }
        self.pipelines[pipeline["pipeline_id"]] = pipeline
        # The real server names the first version after the pipeline.
        self._add_version(pipeline["pipeline_id"], name, rec.q("description"), spec_docs)
        return 200, pipeline

    def _upload_version(self, rec):
        files = _multipart_files(rec)
        spec_docs = _parse_spec(files)
        pipeline_id = rec.q("pipelineid")
        if pipeline_id not in self.pipelines:
            raise HttpError(400, {"error_message": "Failed to create a pipeline version"})
        name = rec.q("name") or rec.q("display_name") or rec.files_name
        if any(
            v["pipeline_id"] == pipeline_id and v["name"] == name for v in self.versions.values()
        ):
            raise HttpError(
                409,
                {
                    "error_message": "Failed to create a pipeline version",
                    "error_details": f"The name {name} already exist. Specify a new name",
                },
            )
        return 200, self._add_version(pipeline_id, name, rec.q("description"), spec_docs)

    def _add_version(self, pipeline_id, name, description, spec_docs) -> dict:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._id("version"),
            "name": name,
            "display_name": name,
            "description": description or "",
            "created_at": _now(),
            "pipeline_spec": spec_docs[0],
        }
        self.versions[version["pipeline_version_id"]] = version
        self.specs[version["pipeline_version_id"]] = spec_docs
        return version

    def _list_versions(self, rec, parts):
        pipeline_id = parts[1]
        if pipeline_id not in self.pipelines:
            raise HttpError(404, _grpc_error(5, f"Pipeline {pipeline_id} not found"))
        items = [v for v in self.versions.values() if v["pipeline_id"] == pipeline_id]
        items = _apply_filter(items, rec.q("filter"))
        return 200, self._page(rec, items, "pipeline_versions")

    def _create_experiment(self, rec, parts):
        body = rec.json or {}
        self._require_namespace(body.get("namespace"), "CreateExperiment")
        experiment = {
            "experiment_id": self._id("experiment"),
            "display_name": body["display_name"],
            "description": body.get("description") or "",
            "namespace": body.get("namespace") or "",
            "created_at": _now(),
            "storage_state": "AVAILABLE",
        }
        self.experiments[experiment["experiment_id"]] = experiment
        return 200, experiment

    def _list_experiments(self, rec, parts):
        namespace = rec.q("namespace")
        self._require_namespace(namespace, "ListExperiment")
        items = [e for e in self.experiments.values() if e["namespace"] == (namespace or "")]
        items = _apply_filter(items, rec.q("filter"))
        return 200, self._page(rec, items, "experiments")

    def _get_experiment(self, rec, parts):
        if parts[1] not in self.experiments:
            raise HttpError(404, _grpc_error(5, f"Experiment {parts[1]} not found"))
        return 200, self.experiments[parts[1]]

    def _check_reference(self, body: dict) -> None:
        if body.get("experiment_id") not in self.experiments:
            raise HttpError(400, _grpc_error(3, f"experiment {body.get('experiment_id')} unknown"))
        ref = body.get("pipeline_version_reference") or {}
        version = self.versions.get(ref.get("pipeline_version_id"))
        if not body.get("pipeline_spec") and (
            version is None or version["pipeline_id"] != ref.get("pipeline_id")
        ):
            raise HttpError(400, _grpc_error(3, f"pipeline version reference {ref} unknown"))

    def _create_run(self, rec, parts):
        body = copy.deepcopy(rec.json or {})
        self._check_reference(body)
        run = {
            **body,
            "run_id": self._id("run"),
            "state": "PENDING",
            "storage_state": "AVAILABLE",
            "created_at": _now(),
        }
        self.runs[run["run_id"]] = run
        return 200, run

    def _create_recurring_run(self, rec, parts):
        body = copy.deepcopy(rec.json or {})
        self._check_reference(body)
        experiment = self.experiments[body["experiment_id"]]
        run = {
            **body,
            "recurring_run_id": self._id("recurring"),
            "namespace": experiment["namespace"],
            "status": "ENABLED" if body.get("mode") == "ENABLE" else "DISABLED",
            "max_concurrency": str(body.get("max_concurrency", "")),
            "created_at": _now(),
            "updated_at": _now(),
        }
        self.recurring_runs[run["recurring_run_id"]] = run
        same = [
            r for r in self.recurring_runs.values() if r["display_name"] == body["display_name"]
        ]
        self.max_same_name_recurring_runs = max(self.max_same_name_recurring_runs, len(same))
        return 200, run

    def _list_recurring_runs(self, rec, parts):
        namespace, experiment_id = rec.q("namespace"), rec.q("experiment_id")
        if not experiment_id:
            self._require_namespace(namespace, "ListRecurringRuns")
        items = list(self.recurring_runs.values())
        if experiment_id:
            items = [r for r in items if r["experiment_id"] == experiment_id]
        elif namespace:
            items = [r for r in items if r["namespace"] == namespace]
        items = _apply_filter(items, rec.q("filter"))
        return 200, self._page(rec, items, "recurringRuns")

    def _get_recurring_run(self, rec, parts):
        if parts[1] not in self.recurring_runs:
            raise HttpError(404, _grpc_error(5, f"RecurringRun {parts[1]} not found"))
        return 200, self.recurring_runs[parts[1]]

    def _delete_recurring_run(self, rec, parts):
        if self.recurring_runs.pop(parts[1], None) is None:
            raise HttpError(404, _grpc_error(5, f"RecurringRun {parts[1]} not found"))
        return 200, {}

    def _page(self, rec, items: list[dict], key: str) -> dict:
        """One page of a list answer; the token is opaque to clients (here: an offset)."""
        size = int(rec.q("page_size") or 0) or DEFAULT_PAGE_SIZE
        if self.page_size_cap:
            size = min(size, self.page_size_cap)
        token = rec.q("page_token") or ""
        try:
            start = int(base64.urlsafe_b64decode(token).decode()) if token else 0
        except ValueError:
            raise HttpError(400, _grpc_error(3, f"Invalid page token {token!r}")) from None
        answer: dict[str, Any] = {key: items[start : start + size], "total_size": len(items)}
        if start + size < len(items):
            answer["next_page_token"] = base64.urlsafe_b64encode(
                str(start + size).encode()
            ).decode()
        return answer

    # ----------------------------------------------------------------- helpers for tests
    def recurring_runs_named(self, name: str) -> list[dict]:
        """Recurring runs now on the stand-in with that display name."""
        return [r for r in self.recurring_runs.values() if r["display_name"] == name]

    def versions_of(self, pipeline_name: str) -> list[dict]:
        """Versions of the pipeline called ``pipeline_name``, oldest first."""
        ids = [p["pipeline_id"] for p in self.pipelines.values() if p["name"] == pipeline_name]
        return [v for v in self.versions.values() if v["pipeline_id"] in ids]


def _grpc_error(code: int, message: str) -> dict:
    return {"error": message, "code": code, "message": message, "details": []}


def _multipart_files(rec: Recorded) -> dict[str, bytes]:
    content_type = rec.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise HttpError(400, {"error_message": "Failed to read pipeline from file"})
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + rec.body
    )
    files, names = {}, {}
    for part in message.iter_parts():
        field_name = part.get_param("name", header="content-disposition")
        files[field_name] = part.get_payload(decode=True)
        names[field_name] = part.get_filename()
    if "uploadfile" not in files:
        raise HttpError(400, {"error_message": "Failed to read pipeline from file"})
    rec.files = files
    rec.files_name = names["uploadfile"]
    return files


def _parse_spec(files: dict[str, bytes]) -> list:
    try:
        docs = [d for d in yaml.safe_load_all(files["uploadfile"]) if d is not None]
    except yaml.YAMLError as exc:
        raise HttpError(
            400, {"error_message": f"Failed to read a pipeline spec file: {exc}"}
        ) from None
    name = ((docs[0] if docs else {}).get("pipelineInfo") or {}).get("name", "")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,127}", name):
        raise HttpError(400, {"error_message": f"invalid pipeline spec name {name!r}"})
    return docs


def _apply_filter(items: list[dict], encoded: str | None) -> list[dict]:
    """Applies a v2beta1 filter (EQUALS on display_name/name only, like the callers use)."""
    if not encoded:
        return items
    try:
        predicates = json.loads(encoded).get("predicates", [])
    except ValueError:
        raise HttpError(
            400, _grpc_error(3, f"failed to parse valid filter from {encoded!r}")
        ) from None
    for predicate in predicates:
        operation = predicate.get("operation")
        key = predicate.get("key")
        value = predicate.get("string_value", predicate.get("stringValue"))
        if operation not in ("EQUALS", 1) or key not in ("display_name", "name"):
            raise HttpError(400, _grpc_error(3, f"stand-in filter unsupported: {predicate}"))
        items = [i for i in items if i.get(key) == value]
    return items
