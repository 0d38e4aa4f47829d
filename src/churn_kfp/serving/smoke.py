"""The deploy step's smoke test: the served model answers what was registered.

After a new ``InferenceService`` revision is Ready, :func:`v2_smoke_check` sends the model's
logged input example over V2 and compares P(churn) with the probabilities recorded when the
version was registered (:data:`~churn_kfp.registry.contract.EXAMPLE_PROBABILITIES_TAG`,
read with :func:`registered_example`). ``churn serve`` runs the same check on the local
server once it is ready (:func:`check_local_server`). Nothing here runs at import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


class SmokeTestError(RuntimeError):
    """The served model answered differently from the registered one (or not at all)."""


def serving_url(obj: dict) -> str:
    """The URL that reaches the latest ready predictor revision of an ``InferenceService``.

    During a canary that is the revision's tagged route (``serving.kserve.io/
    enable-tag-routing``), so the smoke test talks to the new model, not to the split;
    otherwise the cluster-internal address, else the external URL.

    Raises:
        SmokeTestError: The status names no URL.
    """
    status = obj.get("status") or {}
    predictor = (status.get("components") or {}).get("predictor") or {}
    latest = predictor.get("latestReadyRevision")
    for target in predictor.get("traffic") or []:
        split = 0 < int(target.get("percent") or 0) < 100
        if target.get("revisionName") == latest and target.get("url") and split:
            return target["url"]
    url = ((status.get("address") or {}).get("url")) or status.get("url")
    if not url:
        raise SmokeTestError("the InferenceService status names no URL")
    return url


def registered_example(
    model_name: str, version: str, storage_uri: str, tracking_uri: str | None = None
) -> tuple[Any, list[float]] | None:
    """The model's logged input example and the P(churn) recorded for it at registration.

    Returns:
        ``(frame, probabilities)``, or None when the version was registered without
        :data:`~churn_kfp.registry.contract.EXAMPLE_PROBABILITIES_TAG` or its example.
    """
    import json
    import tempfile

    import mlflow
    from mlflow import MlflowClient

    from churn_kfp.registry.contract import EXAMPLE_PROBABILITIES_TAG
    from churn_kfp.serving.client import input_example

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    ref = str(version)
    found = (
        client.get_model_version(model_name, ref)
        if ref.isdigit()
        else client.get_model_version_by_alias(model_name, ref)
    )
    recorded = (found.tags or {}).get(EXAMPLE_PROBABILITIES_TAG)
    if not recorded:
        return None
    with tempfile.TemporaryDirectory() as folder:
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"{storage_uri}/input_example.json",
                dst_path=folder,
                tracking_uri=tracking_uri,
            )
        except Exception:  # no example logged with this version
            return None
        frame = input_example(folder)
    if frame is None:
        return None
    return frame, [float(p) for p in json.loads(recorded)]


def v2_smoke_check(
    example: Any,
    expected: list[float],
    model_name: str,
    tolerance: float = 1e-6,
    url_of: Callable[[dict], str] = serving_url,
) -> Callable[[dict], None]:
    """A check for ``apply_inference_service``: the served P(churn) equals the recorded one.

    Args:
        example: Input rows (a DataFrame), e.g. the model's logged input example.
        expected: P(churn) per row, recorded when the model was registered.
        model_name: The model name in the V2 URL (the InferenceService name).
        tolerance: Largest allowed absolute difference.
        url_of: Picks the URL from the Ready resource.

    Returns:
        A callable raising :class:`SmokeTestError` on a mismatch (or the client's error on
        a refused request).
    """

    def check(obj: dict) -> None:
        from churn_kfp.serving.client import predict_frame

        url = url_of(obj)
        served = [float(p) for p in predict_frame(url, example, model_name=model_name).probability]
        if len(served) != len(expected):
            raise SmokeTestError(
                f"{url} answered {len(served)} scores for {len(expected)} example rows"
            )
        worst = max((abs(a - b) for a, b in zip(served, expected, strict=True)), default=0.0)
        if worst > tolerance:
            raise SmokeTestError(
                f"{url} answers P(churn) {served} for the input example, registration "
                f"recorded {expected} (largest difference {worst:.3g} > {tolerance:g})"
            )

    return check


def check_local_server(
    url: str, model_name: str, model_dir: Path, expected: Sequence[float] | None
) -> str:
    """The deploy step's smoke test, run on a local server (``churn serve``).

    Args:
        url: Base URL of the running server.
        model_name: The model name in the V2 URL.
        model_dir: The served model's folder (holds ``input_example.json``).
        expected: P(churn) recorded at registration, or None for a version registered
            without them.

    Returns:
        What was checked, or why the check was skipped.

    Raises:
        SmokeTestError: The server answers differently from the registered model.
    """
    from churn_kfp.serving.client import input_example

    if expected is None:
        return "skipped (the version was registered without example probabilities)"
    example = input_example(model_dir)
    if example is None:
        return "skipped (the version has no logged input example)"
    v2_smoke_check(example, list(expected), model_name, url_of=lambda _status: url)({})
    return f"passed (P(churn) of the {len(example)}-row input example equals the registered one)"
