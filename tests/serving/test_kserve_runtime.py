"""Our ServingRuntime, run the way KServe runs it, against the real S3 server (SeaweedFS).

1. A model is logged and registered with MLflow, its artifacts on SeaweedFS (``s3://``).
2. **KServe's own storage-initializer code** (``kserve-storage`` from PyPI at the KServe
   version we support, installed at test time into a throwaway ``--target`` folder: it pins
   ``google-cloud-storage<3``, which conflicts with ours) downloads the champion's
   ``storageUri``, with the environment KServe derives from the serving Secret's
   ``serving.kserve.io/s3-*`` annotations (rendered from ``manifests/base``).
3. The model server starts with **the container command, args and env of the
   ServingRuntime in manifests/** (read from the rendered YAML, not re-typed). Only what a
   pod has and this machine has not is translated: ``/mnt/models`` is the download folder,
   ``{{.Name}}`` the InferenceService name (KServe substitutes both), and the ports and bind
   address are free loopback ones.
4. A V2 request answers the P(churn) of the registered model loaded in process (1e-6), and
   the deploy step's smoke test (:func:`churn_kfp.serving.smoke.v2_smoke_check`) passes
   against it, and fails when the recorded probabilities differ.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml
from support.throwaway import installed_apart

from churn_kfp.serving import client as serving_client
from churn_kfp.serving import deploy, smoke
from churn_kfp.serving import server as serving

pytestmark = [pytest.mark.serving, pytest.mark.s3, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
KSERVE_STORAGE = "kserve-storage==0.16.0"  # KServe 0.16: Kubeflow 26.03's (the floor)
ISVC_NAME = "churn-classifier"
MOUNT = "/mnt/models"


def rendered_base() -> list[dict]:
    kubectl = Path(sys.executable).parent / "kubectl"
    assert kubectl.is_file(), f"kubectl not found at {kubectl}: install the dev dependencies"
    out = subprocess.run(
        [str(kubectl), "kustomize", str(ROOT / "manifests" / "base")],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}"
    return found[0]


@pytest.fixture(scope="module")
def kserve_storage() -> Path:
    """``kserve-storage`` and its requirements in a folder of their own (not our venv)."""
    return installed_apart(KSERVE_STORAGE.replace("==", "-"), [KSERVE_STORAGE])


def storage_initializer_env(secret: dict, endpoint: str, keys: dict[str, str]) -> dict[str, str]:
    """The env KServe's S3 credential builder gives the storage initializer for ``secret``.

    Mirrors kserve ``pkg/credentials/s3/s3_secret.go``: keys from the Secret; the endpoint
    annotation becomes ``S3_ENDPOINT`` and ``AWS_ENDPOINT_URL`` (``http://`` when
    ``s3-usehttps`` is ``"0"``); ``S3_USE_HTTPS``, ``S3_VERIFY_SSL``, ``AWS_DEFAULT_REGION``
    and ``awsAnonymousCredential`` from the other annotations. ``endpoint`` replaces the
    in-cluster ``minio:9000`` with the test server's address.
    """
    annotations = secret["metadata"]["annotations"]
    assert annotations["serving.kserve.io/s3-endpoint"] == "minio:9000"
    https = annotations.get("serving.kserve.io/s3-usehttps", "1")
    env = {
        "AWS_ACCESS_KEY_ID": keys["AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": keys["AWS_SECRET_ACCESS_KEY"],
        "S3_ENDPOINT": endpoint,
        "AWS_ENDPOINT_URL": ("http://" if https == "0" else "https://") + endpoint,
        "S3_USE_HTTPS": https,
    }
    for annotation, name in [
        ("serving.kserve.io/s3-verifyssl", "S3_VERIFY_SSL"),
        ("serving.kserve.io/s3-region", "AWS_DEFAULT_REGION"),
        ("serving.kserve.io/s3-useanoncredential", "awsAnonymousCredential"),
    ]:
        if annotation in annotations:
            env[name] = annotations[annotation]
    return env


@pytest.fixture(scope="module")
def champion(s3_server, tmp_path_factory):
    """A model registered with MLflow (SQLite), its artifacts on SeaweedFS."""
    import mlflow
    from mlflow import MlflowClient
    from test_server import FEATURES, build_pipeline, log_skops_model, make_features

    from churn_kfp.data.s3storage import S3LandingZone

    home = tmp_path_factory.mktemp("kserve-runtime")
    saved = {k: os.environ.get(k) for k in s3_server.env()}
    os.environ.update(s3_server.env())
    try:
        bucket = f"mlflow-{uuid.uuid4().hex[:10]}"
        assert S3LandingZone(bucket).ensure_bucket() is True
        train = make_features(400, seed=3)
        y = (train["recency_days"] > 20).astype(int)
        pipeline = build_pipeline().fit(train[FEATURES], y)
        tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
        experiment = mlflow.create_experiment("kserve-runtime", f"s3://{bucket}/churn")
        with mlflow.start_run(experiment_id=experiment):
            info = log_skops_model(pipeline, train, example_rows=5)
        version = mlflow.register_model(info.model_uri, ISVC_NAME)
        MlflowClient().set_registered_model_alias(ISVC_NAME, "champion", version.version)
        uri = deploy.resolve_storage_uri(ISVC_NAME, "champion", tracking_uri)
        rows = make_features(50, seed=4)[FEATURES]
        in_process = mlflow.pyfunc.load_model(f"models:/{ISVC_NAME}@champion").predict(rows)
        yield {"storage_uri": uri, "rows": rows, "expected": np.asarray(in_process)[:, 1]}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_storage_initializer_and_manifest_runtime_serve_the_registered_model(
    champion, kserve_storage, s3_server, tmp_path
):
    assert champion["storage_uri"].startswith("s3://")
    docs = rendered_base()
    sa = one(docs, "ServiceAccount", "churn-kserve-sa")
    (secret_ref,) = sa["secrets"]
    secret = one(docs, "Secret", secret_ref["name"])
    endpoint = s3_server.endpoint_url.removeprefix("http://")
    keys = {
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
    }
    models = tmp_path / "mnt-models"
    download = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from kserve_storage import Storage; "
            "print(Storage.download(sys.argv[1], sys.argv[2]))",
            champion["storage_uri"],
            str(models),
        ],
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(tmp_path),
            "PYTHONPATH": str(kserve_storage),
            **storage_initializer_env(secret, endpoint, keys),
        },
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert download.returncode == 0, download.stderr[-3000:]
    assert (models / "MLmodel").is_file(), sorted(p.name for p in models.iterdir())

    isvc = one(docs, "InferenceService", ISVC_NAME)
    runtime = one(docs, "ServingRuntime", isvc["spec"]["predictor"]["model"]["runtime"])
    (container,) = runtime["spec"]["containers"]

    def pod_value(value: str) -> str:
        return value.replace("{{.Name}}", ISVC_NAME).replace(MOUNT, str(models))

    http_port, grpc_port, metrics_port = (serving.free_port() for _ in range(3))
    env = {e["name"]: pod_value(e["value"]) for e in container["env"]}
    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in env
    env.update(
        MLSERVER_HOST="127.0.0.1",
        MLSERVER_HTTP_PORT=str(http_port),
        MLSERVER_GRPC_PORT=str(grpc_port),
        MLSERVER_METRICS_PORT=str(metrics_port),
        HOME=str(tmp_path),
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    command = [pod_value(part) for part in container["command"] + container["args"]]
    assert command[0] == "python"
    url = f"http://127.0.0.1:{http_port}"
    with open(tmp_path / "mlserver.log", "w") as log:
        process = subprocess.Popen(
            command,
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        serving.wait_until_ready(url, ISVC_NAME, timeout=150, process=process)
        answer = serving_client.predict_frame(url, champion["rows"], model_name=ISVC_NAME)
        np.testing.assert_allclose(answer.probability, champion["expected"], atol=1e-6)
        # the deploy step's smoke test against this server: passes, and fails on a mismatch
        example, expected = champion["rows"].head(5), list(champion["expected"][:5])
        smoke.v2_smoke_check(example, expected, ISVC_NAME, url_of=lambda obj: url)({})
        wrong = [p + 1e-3 for p in expected]
        with pytest.raises(smoke.SmokeTestError, match="registration recorded"):
            smoke.v2_smoke_check(example, wrong, ISVC_NAME, url_of=lambda obj: url)({})
    finally:
        serving.stop_process(process)
