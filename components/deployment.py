"""Component: serve the new champion with KServe (or, locally, write its manifest)."""

from kfp.dsl import Artifact, Output

from churn_kfp.components._base import churn_component


@churn_component
def deploy_model(
    model_name: str,
    champion_version: str,
    promoted: bool,
    namespace: str,
    mode: str,
    manifest: Output[Artifact],
    tracking_uri: str = "",
    canary_percent: int = 0,
    timeout_s: int = 600,
) -> str:
    """Renders the champion's ``InferenceService`` and applies it (``mode="cluster"``).

    Skips, saying so, when nothing was promoted. In ``local`` mode the manifest is written
    to the ``manifest`` artifact and not applied. In ``cluster`` mode it is created, or only
    its ``storageUri``, canary and model annotations are patched, with the pod's service
    account (which needs get/create/patch on ``inferenceservices.serving.kserve.io`` in
    ``namespace``); the step waits for the new revision to be Ready, smoke-tests it with
    the model's input example, and rolls back to the previous ``storageUri`` (failing the
    step) if the revision fails, times out or answers differently.

    Args:
        model_name: Registered MLflow model name.
        champion_version: The model version to serve (a number or an alias).
        promoted: Whether the gate promoted a new champion; False skips the step.
        namespace: Target namespace; empty means the pod's own.
        mode: ``"local"`` (write the manifest only) or ``"cluster"`` (apply it).
        tracking_uri: MLflow tracking URI; empty means ``MLFLOW_TRACKING_URI`` (or the local
            default under ``CHURN_HOME``).
        canary_percent: Traffic percent for the new revision; 0 rolls out fully.
        timeout_s: Seconds to wait for Ready before rolling back.

    Returns:
        A JSON summary: deployed or skipped, storage URI, manifest path, apply result.
    """
    import json

    from churn_kfp.core.config import Settings
    from churn_kfp.serving import deploy

    if not promoted:
        message = f"no new champion was promoted: {model_name} is not redeployed"
        print(message)
        with open(manifest.path, "w") as handle:
            handle.write(f"# skipped: {message}\n")
        manifest.metadata["skipped"] = True
        return json.dumps({"deployed": False, "skipped": True, "reason": message})

    result = deploy.deploy(
        model_name,
        champion_version,
        namespace=namespace,
        mode=mode,
        out_path=manifest.path,
        canary_percent=canary_percent or None,
        tracking_uri=tracking_uri or Settings.from_env().tracking_uri,
        timeout_s=timeout_s,
    )
    manifest.metadata.update(
        {
            "skipped": False,
            "applied": result["applied"],
            "storage_uri": result["storage_uri"],
            "inference_service": f"{result['namespace']}/{result['name']}",
        }
    )
    print(json.dumps(result, indent=2, default=str))
    return json.dumps({"deployed": result["applied"], "skipped": False, **result}, default=str)
