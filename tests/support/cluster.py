"""Cluster-facing test fixtures: STAND-IN servers (not real KFP / Kubernetes) on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kube_stand_in import KubeStandIn  # noqa: E402
from stand_ins import KfpStandIn  # noqa: E402

CONNECTION_ENV = (
    "KFP_HOST",
    "KF_PIPELINES_ENDPOINT",
    "KFP_NAMESPACE",
    "KFP_TOKEN",
    "KF_PIPELINES_SA_TOKEN_PATH",
    "KUBERNETES_SERVICE_HOST",
)


@pytest.fixture
def kfp_server():
    """A STAND-IN for the KFP v2beta1 API server (single-user, no auth)."""
    server = KfpStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def make_kfp_server():
    """Factory for KFP stand-ins with options (multi_user, token); all stopped afterwards."""
    servers = []

    def make(**kwargs) -> KfpStandIn:
        server = KfpStandIn(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def make_kube_server():
    """Factory for STAND-INS of the Kubernetes API + KServe controller (kube_stand_in.py)."""
    servers = []

    def make(**kwargs) -> KubeStandIn:
        server = KubeStandIn(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


# STAND-IN addition for the Spark operator's group (sparkoperator.k8s.io): spark_stand_in.py.
@pytest.fixture
def make_spark_operator():
    """Factory for STAND-INS of the Kubernetes API + Spark operator; all stopped afterwards."""
    from spark_stand_in import SparkOperatorStandIn

    servers = []

    def make(**kwargs) -> SparkOperatorStandIn:
        server = SparkOperatorStandIn(**kwargs).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def clean_kfp_env(monkeypatch, tmp_path):
    """No KFP connection settings from the developer's shell, pod files or kfp context."""
    from kfp.client import client as kfp_client_module

    from churn_kfp.orchestration import kfp_client

    for name in CONNECTION_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CHURN_GIT_COMMIT", "0123456789abcdef0123456789abcdef01234567")
    monkeypatch.setattr(kfp_client, "DEFAULT_SA_TOKEN_PATH", str(tmp_path / "no-sa-token"))
    monkeypatch.setattr(kfp_client, "POD_NAMESPACE_PATH", str(tmp_path / "no-pod-namespace"))
    monkeypatch.setattr(
        kfp_client_module.Client, "_LOCAL_KFP_CONTEXT", str(tmp_path / "kfp-context.json")
    )
    return monkeypatch
