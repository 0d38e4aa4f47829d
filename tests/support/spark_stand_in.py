"""A STAND-IN for the Kubernetes API's ``sparkoperator.k8s.io`` SparkApplication endpoints.

NOT the real API server and no Spark operator runs here. It does what a client meets: a
bearer token on every request (401), ``POST`` of JSON only (415), 409 ``AlreadyExists`` for
a second object of the same name, 404 for an unknown one, and the operator's state machine
in ``status.applicationState``: ``SUBMITTED`` on the first read, ``RUNNING`` on the next,
then ``COMPLETED`` (or ``FAILED`` with ``errorMessage`` for names in ``failing``).
"""

# STAND-IN: a test double for the Kubernetes API server + Spark operator, not the real one.

from __future__ import annotations

import copy
import json
from typing import Any

from kube_stand_in import status_body
from stand_ins import HttpError, Recorded, _StandInServer

PREFIX = "/apis/sparkoperator.k8s.io/v1beta2/namespaces/"
STATES = ("SUBMITTED", "RUNNING")


class SparkOperatorStandIn(_StandInServer):
    """STAND-IN for SparkApplication create/get (see the module docstring).

    Args:
        token: The bearer token every request must carry.
        failing: Object names whose driver fails, with the error message it reports.
    """

    name = "spark-operator-stand-in"

    def __init__(self, token: str = "stand-in-token", failing: dict[str, str] | None = None):
        super().__init__()
        self.token = token
        self.failing = dict(failing or {})
        self.objects: dict[tuple[str, str], dict] = {}
        self.reads: dict[tuple[str, str], int] = {}

    def route(self, rec: Recorded) -> tuple[int, Any]:  # noqa: D102
        if rec.headers.get("authorization") != f"Bearer {self.token}":
            raise HttpError(401, status_body(401, "Unauthorized", "Unauthorized"))
        parts = rec.path[len(PREFIX) :].strip("/").split("/")
        if not rec.path.startswith(PREFIX) or parts[1:2] != ["sparkapplications"]:
            raise HttpError(404, status_body(404, "NotFound", f"stand-in has no {rec.path}"))
        namespace, name = parts[0], parts[2] if len(parts) == 3 else None
        if rec.method == "POST" and name is None:
            return self._create(namespace, rec)
        if rec.method == "GET" and name:
            return 200, self._read(namespace, name)
        raise HttpError(405, status_body(405, "MethodNotAllowed", f"{rec.method} {rec.path}"))

    def _create(self, namespace: str, rec: Recorded) -> tuple[int, Any]:
        if rec.headers.get("content-type", "").split(";")[0] != "application/json":
            raise HttpError(415, status_body(415, "UnsupportedMediaType", "POST takes JSON"))
        body = json.loads(rec.body)
        rec.json = copy.deepcopy(body)
        name = body["metadata"]["name"]
        if (namespace, name) in self.objects:
            message = f'sparkapplications.sparkoperator.k8s.io "{name}" already exists'
            raise HttpError(409, status_body(409, "AlreadyExists", message))
        body["metadata"]["namespace"] = namespace
        body["status"] = {}
        self.objects[(namespace, name)] = body
        self.reads[(namespace, name)] = 0
        return 201, body

    def _read(self, namespace: str, name: str) -> dict:
        key = (namespace, name)
        if key not in self.objects:
            message = f'sparkapplications.sparkoperator.k8s.io "{name}" not found'
            raise HttpError(404, status_body(404, "NotFound", message))
        reads = self.reads[key]
        self.reads[key] = reads + 1
        if reads < len(STATES):
            state = {"state": STATES[reads]}
        elif name in self.failing:
            state = {"state": "FAILED", "errorMessage": self.failing[name]}
        else:
            state = {"state": "COMPLETED"}
        self.objects[key]["status"] = {"applicationState": state}
        return self.objects[key]
