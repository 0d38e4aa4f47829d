"""Test-wide set-up: the same runtime environment the CLI and the image use."""

import os
from pathlib import Path

import pytest

from churn_kfp.core.config import apply_runtime_env

# Before any test imports xgboost (OMP_WAIT_POLICY is read once, at import).
apply_runtime_env()


REPO = Path(__file__).resolve().parents[1]

MLFLOW_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")

# Shared fixtures: the SeaweedFS S3 server, the STAND-IN cluster APIs and fresh MLflow DBs
# (tests/support/).
pytest_plugins = ("support.s3_server", "support.cluster", "support.mlflow_db")


@pytest.fixture(scope="module", autouse=True)
def isolated_mlflow_uris():
    """Gives MLflow's process-wide URIs back as they were after each test module.

    ``mlflow.set_tracking_uri`` / ``set_registry_uri`` (called by our register step, so by
    every test that registers in-process) also export ``MLFLOW_*_URI`` into ``os.environ``;
    left behind, they point the next module's MLflow calls at a deleted temporary database.
    """
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    saved_env = {key: os.environ.get(key) for key in MLFLOW_ENV}
    saved_uris = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    yield
    tracking_utils._tracking_uri, registry_utils._registry_uri = saved_uris
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def cdnow_path() -> Path:
    """The CDNOW log beside the checkout (``../shared``) or under ``$CHURN_SHARED_DIR``.

    It is not committed: a missing file fails the calling test with the places looked in
    (a silent skip would hide that the real-data example is untested).
    """
    candidates = []
    if os.environ.get("CHURN_SHARED_DIR"):
        candidates.append(Path(os.environ["CHURN_SHARED_DIR"]) / "data/cdnow/CDNOW_master.txt")
    candidates.append(REPO.parent / "shared/data/cdnow/CDNOW_master.txt")
    for path in candidates:
        if path.is_file():
            return path
    pytest.fail(
        "CDNOW_master.txt not found; looked in: "
        + ", ".join(str(p) for p in candidates)
        + ". It is not committed: put the shared data beside the checkout (../shared) or "
        "set CHURN_SHARED_DIR to the folder holding data/cdnow/."
    )
