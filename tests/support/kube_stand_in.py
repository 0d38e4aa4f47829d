"""A STAND-IN for the Kubernetes API server's KServe ``InferenceService`` endpoints.

NOT the real API server and no KServe runs here. It enforces what the real ones do to a
client, so a client that merely "talks to it" is not enough to pass:

* **Auth**: every request needs ``Authorization: Bearer <token>`` (401 ``Unauthorized``).
* **Schema**: every object written (create, any patch) is validated against the
  ``openAPIV3Schema`` of KServe's CRD (``../shared/schemas/kserve/``); a wrong type such as
  ``canaryTrafficPercent: "20"`` gets 422 ``Invalid`` naming the field, like the API server.
* **Content types** as the API server takes them for custom resources: ``POST`` JSON;
  ``PATCH`` with ``application/merge-patch+json`` (RFC 7386), ``application/json-patch+json``
  (RFC 6902; a failed ``test`` or a missing path: 422), ``application/apply-patch+yaml``
  (server-side apply: ``fieldManager`` required, per-manager field ownership, 409
  ``Conflict`` naming the owner when another manager's field would change, ``force=true``
  takes it over, fields a manager stops applying are removed); strategic merge patch: 415.
* **Optimistic concurrency**: a write carrying a stale ``metadata.resourceVersion``: 409.
* **KServe status with Knative revisions**: a change of ``spec.predictor`` creates a new
  revision ``<name>-predictor-0000N`` only after ``lag_reads`` reads (until then the status
  still describes the old revision, Ready included: stale, like the real controller); it
  turns ready after ``ready_after_reads`` more reads, or fails (hooks below).
  ``latestCreatedRevision`` / ``latestReadyRevision``, ``Ready`` only when the latest created
  revision is ready, per-revision ``traffic`` honouring ``canaryTrafficPercent`` (tagged
  ``latest``/``prev`` URLs during a canary), and the last ready revision keeps serving while
  a new one fails.
* **Fault hooks**: :meth:`KubeStandIn.fail_next` (any status for the next N requests of a
  method), :meth:`KubeStandIn.delay_next` (a response slower than the client's timeout),
  :meth:`KubeStandIn.write_before_next_patch` (another writer changes the object first: a
  real 409), :meth:`KubeStandIn.fail_revisions` (the next revisions never get ready, or fail
  their model load terminally).
"""

# STAND-IN: a test double for the Kubernetes API server + KServe controller, not the real one.

from __future__ import annotations

import copy
import functools
import itertools
import json
import time
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from stand_ins import HttpError, Recorded, _now, _StandInServer

KSERVE_CRD = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "schemas"
    / "kserve"
    / "serving.kserve.io_inferenceservices.yaml"
)
PREFIX = "/apis/serving.kserve.io/v1beta1/namespaces/"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


@functools.cache
def isvc_schema() -> dict:
    """KServe's ``v1beta1`` InferenceService ``openAPIV3Schema`` (fails loudly if absent).

    Parsed once per session for every test that needs it (the CRD is 2 MB); callers copy
    before changing it.
    """
    if not KSERVE_CRD.is_file():
        raise FileNotFoundError(
            f"KServe CRD schema not found at {KSERVE_CRD} (expected ../shared/schemas/kserve/ "
            "beside the project checkout)"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(KSERVE_CRD.read_text(), Loader=loader)
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return served["schema"]["openAPIV3Schema"]


@functools.cache
def isvc_validator() -> jsonschema.Draft7Validator:
    """The validator of KServe's ``v1beta1`` InferenceService schema, as the CRD has it."""
    return jsonschema.Draft7Validator(isvc_schema())


def status_body(code: int, reason: str, message: str) -> dict:
    """A Kubernetes ``Status`` error body."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (null deletes a key; lists are replaced)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict, ops: list) -> dict:
    """RFC 6902 JSON patch (add, remove, replace, test); a bad operation raises 422."""
    doc = copy.deepcopy(target)
    if not isinstance(ops, list):
        raise _invalid("a JSON patch must be a list of operations")
    for op in ops:
        *parents, last = _pointer(op.get("path", ""))
        node = doc
        for key in parents:
            if not isinstance(node, dict) or key not in node:
                raise _invalid(f"path {op.get('path')!r} does not exist (at {key!r})")
            node = node[key]
        kind = op.get("op")
        if kind == "add":
            node[last] = copy.deepcopy(op["value"])
        elif kind in ("remove", "replace", "test"):
            if last not in node:
                raise _invalid(f"{kind}: path {op.get('path')!r} does not exist")
            if kind == "remove":
                del node[last]
            elif kind == "replace":
                node[last] = copy.deepcopy(op["value"])
            elif node[last] != op["value"]:
                raise _invalid(f"test failed at {op.get('path')!r}")
        else:
            raise _invalid(f"unsupported JSON patch operation {kind!r}")
    return doc


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise _invalid(f"bad JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _invalid(message: str) -> HttpError:
    return HttpError(422, status_body(422, "Invalid", message))


def leaves(obj: Any, prefix: tuple = ()) -> dict[tuple, Any]:
    """Leaf fields of an object by path (lists are atomic, as for CRDs without list types)."""
    if isinstance(obj, dict) and obj:
        out: dict[tuple, Any] = {}
        for key, value in obj.items():
            out.update(leaves(value, (*prefix, key)))
        return out
    return {prefix: obj}


def _set(obj: dict, path: tuple, value: Any) -> None:
    for key in path[:-1]:
        obj = obj.setdefault(key, {})
    obj[path[-1]] = copy.deepcopy(value)


def _remove(obj: dict, path: tuple) -> None:
    nodes = [obj]
    for key in path[:-1]:
        if key not in nodes[-1]:
            return
        nodes.append(nodes[-1][key])
    nodes[-1].pop(path[-1], None)
    for node, key in zip(reversed(nodes[:-1]), reversed(path[:-1]), strict=True):
        if node[key] == {}:
            del node[key]


def _owned(path: tuple) -> bool:
    """Whether a field can have a manager: spec and the like, labels, annotations."""
    if path[:1] == ("metadata",):
        return path[:2] in (("metadata", "annotations"), ("metadata", "labels"))
    return path not in (("apiVersion",), ("kind",)) and path[:1] != ("status",)


class KubeStandIn(_StandInServer):
    """STAND-IN for the Kubernetes API server + KServe controller (see the module docstring).

    Args:
        token: The bearer token every request must carry.
        ready_after_reads: Reads after a new revision appears until it is ready.
        lag_reads: Reads after a spec change until the controller creates the revision.
        never_ready_uris: storageUris whose revisions never get ready (RevisionFailed).
        failing_uris: storageUris whose model load fails terminally (BlockedByFailedLoad).
    """

    name = "kubernetes-api-stand-in"

    def __init__(
        self,
        token: str = "stand-in-token",
        ready_after_reads: int = 2,
        lag_reads: int = 1,
        never_ready_uris: set[str] | None = None,
        failing_uris: set[str] | None = None,
    ) -> None:
        super().__init__()
        self.token = token
        self.ready_after_reads = ready_after_reads
        self.lag_reads = lag_reads
        self.never_ready_uris = set(never_ready_uris or ())
        self.failing_uris = set(failing_uris or ())
        self.objects: dict[tuple[str, str], dict] = {}
        self.owners: dict[tuple[str, str], dict[str, set[tuple]]] = {}
        self.revisions: dict[tuple[str, str], list[dict]] = {}
        self._pending: dict[tuple[str, str], dict] = {}
        self._faults: list[tuple[str, int, str]] = []
        self._delays: list[tuple[str, float]] = []
        self._revision_faults: list[str] = []
        self._interloper: dict | None = None
        self._resource_version = itertools.count(100)

    # ----------------------------------------------------------------- hooks
    def fail_next(
        self, method: str, status: int, message: str = "", times: int = 1, skip: int = 0
    ) -> None:
        """After ``skip`` more requests with ``method``, the next ``times`` get ``status``."""
        reason = {409: "Conflict", 500: "InternalError", 503: "ServiceUnavailable"}.get(
            status, "Failure"
        )
        self._faults += [(method, 0, "")] * skip + [(method, status, message or reason)] * times

    def delay_next(self, method: str, seconds: float) -> None:
        """The next request with ``method`` is answered only after ``seconds``."""
        self._delays.append((method, seconds))

    def write_before_next_patch(self, annotations: dict[str, str]) -> None:
        """Another writer merges ``annotations`` into the object just before the next PATCH."""
        self._interloper = annotations

    def fail_revisions(self, how: str = "never-ready", count: int = 1) -> None:
        """The next ``count`` revisions fail: ``never-ready`` or ``failed-load`` (terminal)."""
        assert how in ("never-ready", "failed-load"), how
        self._revision_faults += [how] * count

    def managers(self, namespace: str, name: str) -> dict[str, set[tuple]]:
        """Field manager -> the leaf paths it owns."""
        return self.owners[(namespace, name)]

    # ----------------------------------------------------------------- routing
    def route(self, rec: Recorded) -> tuple[int, Any]:  # noqa: D102
        if rec.headers.get("authorization") != f"Bearer {self.token}":
            raise HttpError(401, status_body(401, "Unauthorized", "Unauthorized"))
        for i, (method, seconds) in enumerate(self._delays):
            if method == rec.method:
                del self._delays[i]
                time.sleep(seconds)
                break
        for i, (method, code, message) in enumerate(self._faults):
            if method == rec.method:
                del self._faults[i]
                if code:
                    raise HttpError(code, status_body(code, message, f"stand-in fault: {message}"))
                break
        if not rec.path.startswith(PREFIX):
            raise HttpError(404, status_body(404, "NotFound", f"stand-in has no {rec.path}"))
        parts = rec.path[len(PREFIX) :].strip("/").split("/")
        if len(parts) not in (2, 3) or parts[1] != "inferenceservices":
            raise HttpError(404, status_body(404, "NotFound", f"stand-in has no {rec.path}"))
        namespace, name = parts[0], parts[2] if len(parts) == 3 else None
        if rec.method == "POST" and name is None:
            return self._create(namespace, rec)
        if rec.method == "GET" and name:
            return 200, self._read(namespace, name)
        if rec.method == "PATCH" and name:
            return self._patch(namespace, name, rec)
        raise HttpError(405, status_body(405, "MethodNotAllowed", f"{rec.method} {rec.path}"))

    def _body(self, rec: Recorded) -> Any:
        try:
            if rec.headers.get("content-type", "").split(";")[0] == APPLY_PATCH:
                return yaml.safe_load(rec.body)
            return json.loads(rec.body)
        except (ValueError, yaml.YAMLError) as exc:
            message = f"cannot decode body: {exc}"
            raise HttpError(400, status_body(400, "BadRequest", message)) from None

    def _create(self, namespace: str, rec: Recorded):
        if rec.headers.get("content-type", "").split(";")[0] != "application/json":
            raise HttpError(415, status_body(415, "UnsupportedMediaType", "POST takes JSON"))
        body = self._body(rec)
        rec.json = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        name = meta.get("name")
        if meta.get("namespace", namespace) != namespace:
            raise HttpError(400, status_body(400, "BadRequest", "namespace does not match"))
        if (namespace, name) in self.objects:
            raise HttpError(
                409, status_body(409, "AlreadyExists", f'inferenceservices "{name}" already exists')
            )
        body.pop("status", None)
        self._validate(body)
        meta.update(
            {
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "generation": 1,
                "resourceVersion": str(next(self._resource_version)),
                "creationTimestamp": _now(),
            }
        )
        body["status"] = {}
        key = (namespace, name)
        self.objects[key] = body
        self.owners[key] = {}
        self.revisions[key] = []
        self._take(key, rec.q("fieldManager") or "unknown", leaves(body))
        self._pending[key] = {"reads": 0}
        return 201, body

    def _patch(self, namespace: str, name: str, rec: Recorded):
        key = (namespace, name)
        current = self._existing(namespace, name)
        if self._interloper is not None:
            meta = current["metadata"]
            meta.setdefault("annotations", {}).update(self._interloper)
            meta["resourceVersion"] = str(next(self._resource_version))
            self._interloper = None
        content_type = rec.headers.get("content-type", "").split(";")[0]
        body = self._body(rec)
        rec.json = copy.deepcopy(body)
        if not isinstance(body, list if content_type == JSON_PATCH else dict):
            raise HttpError(400, status_body(400, "BadRequest", f"bad {content_type} body"))
        manager = rec.q("fieldManager")
        if content_type == MERGE_PATCH:
            updated = merge_patch(current, body)
        elif content_type == JSON_PATCH:
            updated = json_patch(current, body)
        elif content_type == APPLY_PATCH:
            if not manager:
                raise HttpError(
                    400, status_body(400, "BadRequest", "fieldManager is required for apply")
                )
            updated = self._apply(key, current, body, manager, rec.q("force") == "true")
        elif content_type == STRATEGIC_PATCH:
            raise HttpError(
                415,
                status_body(
                    415,
                    "UnsupportedMediaType",
                    "strategic merge patch is not supported for custom resources",
                ),
            )
        else:
            raise HttpError(
                415, status_body(415, "UnsupportedMediaType", f"unsupported {content_type!r}")
            )
        sent_version = updated["metadata"].get("resourceVersion")
        if sent_version != current["metadata"]["resourceVersion"]:
            raise HttpError(
                409,
                status_body(
                    409,
                    "Conflict",
                    "Operation cannot be fulfilled on inferenceservices.serving.kserve.io "
                    f'"{name}": the object has been modified; please apply your changes to '
                    "the latest version and try again",
                ),
            )
        updated["status"] = current.get("status", {})
        for field in ("uid", "generation", "creationTimestamp", "name", "namespace"):
            updated["metadata"][field] = current["metadata"][field]
        self._validate(updated)
        if content_type != APPLY_PATCH:
            before, after = leaves(current), leaves(updated)
            changed = {p: v for p, v in after.items() if before.get(p, object()) != v}
            self._take(key, manager or "unknown", changed)
            for path in set(before) - set(after):
                for owned in self.owners[key].values():
                    owned.discard(path)
        if updated["spec"] != current["spec"]:
            updated["metadata"]["generation"] += 1
            if updated["spec"].get("predictor") != current["spec"].get("predictor"):
                self._pending[key] = {"reads": 0}
        updated["metadata"]["resourceVersion"] = str(next(self._resource_version))
        self.objects[key] = updated
        return 200, updated

    def _apply(self, key, current: dict, config: dict, manager: str, force: bool) -> dict:
        """Server-side apply: set the config's fields, check and record ownership."""
        wanted = {p: v for p, v in leaves(config).items() if _owned(p)}
        live = leaves(current)
        conflicts = [
            (other, path)
            for other, paths in self.owners[key].items()
            if other != manager
            for path in paths
            if path in wanted and live.get(path) != wanted[path]
        ]
        if conflicts and not force:
            listed = "; ".join(f'conflict with "{o}": .{".".join(p)}' for o, p in conflicts)
            raise HttpError(
                409,
                status_body(
                    409, "Conflict", f"Apply failed with {len(conflicts)} conflict(s): {listed}"
                ),
            )
        updated = copy.deepcopy(current)
        for path, value in wanted.items():
            _set(updated, path, value)
        mine = self.owners[key].get(manager, set())
        others = set().union(*(p for o, p in self.owners[key].items() if o != manager))
        for path in mine - set(wanted) - others:
            _remove(updated, path)
        self.owners[key][manager] = set()
        self._take(key, manager, wanted)
        updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        return updated

    def _take(self, key, manager: str, fields: dict[tuple, Any]) -> None:
        owned = {p for p in fields if _owned(p)}
        for other, paths in self.owners[key].items():
            if other != manager:
                paths.difference_update(owned)
        self.owners[key].setdefault(manager, set()).update(owned)

    def _validate(self, obj: dict) -> None:
        errors = sorted(
            f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
            for e in isvc_validator().iter_errors(obj)
        )
        if errors:
            name = (obj.get("metadata") or {}).get("name")
            raise _invalid(f'InferenceService.serving.kserve.io "{name}" is invalid: {errors}')

    def _existing(self, namespace: str, name: str) -> dict:
        obj = self.objects.get((namespace, name))
        if obj is None:
            raise HttpError(
                404,
                status_body(
                    404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found'
                ),
            )
        return obj

    # ----------------------------------------------------------------- the fake controller
    def _read(self, namespace: str, name: str) -> dict:
        obj = self._existing(namespace, name)
        key = (namespace, name)
        pending = self._pending.get(key)
        if pending is not None:
            pending["reads"] += 1
            if pending["reads"] >= self.lag_reads:
                del self._pending[key]
                self._new_revision(key, obj)
        for revision in self.revisions[key]:
            if revision["ready"] is None:
                revision["reads"] += 1
                if revision["reads"] >= self.ready_after_reads and revision["fault"] is None:
                    revision["ready"] = True
                elif revision["fault"] == "failed-load":
                    revision["ready"] = False
        self._status(obj, self.revisions[key])
        return obj

    def _new_revision(self, key, obj: dict) -> None:
        uri = obj["spec"]["predictor"]["model"].get("storageUri")
        fault = self._revision_faults.pop(0) if self._revision_faults else None
        if uri in self.failing_uris:
            fault = "failed-load"
        elif uri in self.never_ready_uris:
            fault = fault or "never-ready"
        number = len(self.revisions[key]) + 1
        self.revisions[key].append(
            {
                "name": f"{key[1]}-predictor-{number:05d}",
                "uri": uri,
                "ready": None,
                "reads": 0,
                "fault": fault,
                "canary": obj["spec"]["predictor"].get("canaryTrafficPercent"),
            }
        )

    def _status(self, obj: dict, revisions: list[dict]) -> None:
        meta = obj["metadata"]
        host = f"{meta['name']}.{meta['namespace']}"
        status = obj.setdefault("status", {})
        if not revisions:
            return
        latest = revisions[-1]
        ready = [r for r in revisions if r["ready"]]
        serving = ready[-1] if ready else None
        rolled_out = [r for r in ready if r is not latest]
        traffic = []
        canary = obj["spec"]["predictor"].get("canaryTrafficPercent")
        if latest["ready"] and canary is not None and rolled_out and canary < 100:
            traffic = [
                {"revisionName": latest["name"], "percent": canary, "tag": "latest",
                 "latestRevision": True, "url": f"http://latest-{host}.example.com"},
                {"revisionName": rolled_out[-1]["name"], "percent": 100 - canary, "tag": "prev",
                 "latestRevision": False, "url": f"http://prev-{host}.example.com"},
            ]  # fmt: skip
        elif serving is not None:
            traffic = [{"revisionName": serving["name"], "percent": 100, "latestRevision": True}]
        predictor = {"latestCreatedRevision": latest["name"], "traffic": traffic}
        if serving is not None:
            predictor["latestReadyRevision"] = serving["name"]
            predictor["url"] = f"http://{meta['name']}-predictor.{meta['namespace']}.example.com"
        if latest["ready"]:
            status["conditions"] = [
                {"type": "PredictorReady", "status": "True"},
                {"type": "IngressReady", "status": "True"},
                {"type": "Ready", "status": "True"},
            ]
            status["modelStatus"] = {
                "transitionStatus": "UpToDate",
                "states": {"activeModelState": "Loaded"},
            }
        elif latest["fault"] is not None:
            message = (
                f'Revision "{latest["name"]}" failed with message: storage-initializer: '
                f"cannot load {latest['uri']}"
            )
            status["conditions"] = [
                {"type": "PredictorReady", "status": "False", "reason": "RevisionFailed",
                 "message": message},
                {"type": "Ready", "status": "False", "reason": "RevisionFailed",
                 "message": message},
            ]  # fmt: skip
            status["modelStatus"] = {"transitionStatus": "InProgress"}
            if latest["fault"] == "failed-load":
                status["modelStatus"] = {
                    "transitionStatus": "BlockedByFailedLoad",
                    "states": {"activeModelState": "FailedToLoad"},
                    "lastFailureInfo": {"reason": "ModelLoadFailed", "message": message},
                }
        else:
            status["conditions"] = [
                {"type": "PredictorReady", "status": "Unknown", "reason": "RevisionMissing"},
                {"type": "Ready", "status": "Unknown", "reason": "RevisionMissing"},
            ]
            status["modelStatus"] = {"transitionStatus": "InProgress"}
        status["components"] = {"predictor": predictor}
        # KServe copies this from the Knative Service: it does not count our generations.
        status["observedGeneration"] = len(revisions)
        if serving is not None:
            status["url"] = f"http://{host}.example.com"
            status["address"] = {
                "url": f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local"
            }
