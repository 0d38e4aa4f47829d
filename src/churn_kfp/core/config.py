"""Settings shared by the CLI, the components and the tests.

Nothing here touches the file system or the network at import time: call
:meth:`Settings.from_env` when the values are needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MODEL_NAME = "churn-classifier"
CHAMPION_ALIAS = "champion"
EXPERIMENT_NAME = "churn-kfp"
TRAINING_PIPELINE = "churn-training"
RETRAINING_PIPELINE = "churn-retraining"

# Environment every process that trains, registers or serves needs (set in the image too).
# Never MLFLOW_ALLOW_PICKLE_DESERIALIZATION: models load through churn_kfp.registry.loading.
RUNTIME_ENV = {
    # XGBoost's OpenMP threads spin-wait by default: 10-15x slower fits on busy shared cores.
    "OMP_WAIT_POLICY": "PASSIVE",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}


def apply_runtime_env(environ: dict[str, str] | None = None) -> None:
    """Sets :data:`RUNTIME_ENV` defaults in ``environ`` (``os.environ`` by default)."""
    env = os.environ if environ is None else environ
    for key, value in RUNTIME_ENV.items():
        env.setdefault(key, value)


@dataclass(frozen=True)
class Settings:
    """Where local state lives and which services to talk to.

    Attributes:
        home: Root of all local state (``CHURN_HOME``, default ``.churn``).
        landing_zone: URI or path of the raw-data landing zone (``CHURN_LANDING_ZONE``).
        tracking_uri: MLflow tracking URI (``MLFLOW_TRACKING_URI``).
        artifact_root: Default artifact location for new MLflow experiments.
    """

    home: Path
    landing_zone: str
    tracking_uri: str
    artifact_root: str

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        """Reads the settings from environment variables, with local defaults."""
        env = os.environ if environ is None else environ
        home = Path(env.get("CHURN_HOME", ".churn")).expanduser().absolute()
        return cls(
            home=home,
            landing_zone=env.get("CHURN_LANDING_ZONE", str(home / "landing")),
            tracking_uri=env.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
            artifact_root=env.get("CHURN_ARTIFACT_ROOT", (home / "mlartifacts").as_uri()),
        )

    @property
    def pipeline_root(self) -> Path:
        """Where ``kfp.local`` keeps task outputs."""
        return self.home / "kfp-local"

    @property
    def reports_dir(self) -> Path:
        """Where run reports (HTML, PNG, JSON) are copied for humans."""
        return self.home / "reports"

    @property
    def logs_dir(self) -> Path:
        """Full task logs of every local pipeline run."""
        return self.home / "logs"

    @property
    def last_run_path(self) -> Path:
        """JSON summary of the latest pipeline run."""
        return self.home / "last-run.json"
