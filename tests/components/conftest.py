"""Shared builders of the component tests (fixtures: ``conftest`` cannot be imported safely).

Every component test calls a component's ``python_func`` directly with real ``kfp.dsl``
artifact objects whose ``uri`` is a local path under ``tmp_path`` (an artifact's ``path``
is then that same path), and asserts on what the component wrote.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from kfp import dsl
from support.mlflow_db import scratch_dir

from churn_kfp.core.columns import CUSTOMER_ID, CUTOFF, LABEL, SPLIT

SPLIT_CUTOFFS = {"train": "2024-02-01", "validation": "2024-03-01", "test": "2024-04-01"}


class ArtifactFolder:
    """Makes KFP artifacts that live in one folder."""

    def __init__(self, folder: Path):
        self.folder = folder

    def output(self, kind: type[dsl.Artifact], name: str, **metadata) -> dsl.Artifact:
        """An artifact of type ``kind`` at ``folder / name`` (nothing written yet)."""
        return kind(name=name, uri=str(self.folder / name), metadata=dict(metadata))

    def dataset(self, name: str, frame: pd.DataFrame) -> dsl.Dataset:
        """An input Dataset holding ``frame`` as Parquet."""
        data = self.output(dsl.Dataset, name)
        frame.to_parquet(data.path, index=False)
        return data

    def file(self, kind: type[dsl.Artifact], name: str, text: str) -> dsl.Artifact:
        """An input artifact holding ``text``."""
        item = self.output(kind, name)
        Path(item.path).write_text(text)
        return item


@pytest.fixture
def artifacts(tmp_path: Path) -> ArtifactFolder:
    """KFP artifacts in ``tmp_path``."""
    return ArtifactFolder(tmp_path)


@pytest.fixture(scope="module")
def module_artifacts(tmp_path_factory: pytest.TempPathFactory) -> ArtifactFolder:
    """KFP artifacts shared by the tests of a module (a chain of components)."""
    return ArtifactFolder(tmp_path_factory.mktemp("artifacts"))


def _purchases(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "timestamp": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [float(r[2]) for r in rows],
        }
    )


@pytest.fixture(scope="session")
def purchases() -> Callable[[list[tuple[str, str, float]]], pd.DataFrame]:
    """Builds a clean transactions table from ``(customer_id, timestamp, amount)`` rows."""
    return _purchases


def _separable_table(n_per_split: int = 40, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for split, cutoff in SPLIT_CUTOFFS.items():
        label = np.arange(n_per_split) % 2
        parts.append(
            pd.DataFrame(
                {
                    CUSTOMER_ID: [f"c{i:03d}" for i in range(n_per_split)],
                    CUTOFF: pd.Timestamp(cutoff),
                    SPLIT: split,
                    LABEL: label.astype("int64"),
                    "recency_days": 10.0 + 40.0 * label + rng.uniform(0, 5, n_per_split),
                    "signal": np.where(label == 1, 1.0, -1.0) * rng.uniform(1, 2, n_per_split),
                    "noise": rng.normal(size=n_per_split),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


@pytest.fixture(scope="session")
def separable() -> pd.DataFrame:
    """A labelled table (train, validation, test cutoffs) whose label is ``signal > 0``.

    The margin around 0 is wide, so any sensible classifier ranks every split perfectly
    (ROC AUC 1); ``noise`` carries nothing; half of each split churns. Copy before editing.
    """
    return _separable_table()


@pytest.fixture(scope="module")
def mlflow_env(tmp_path_factory, new_mlflow_db) -> Iterator[dict[str, str]]:
    """A real MLflow (SQLite tracking DB + file artifacts) for the module, via the environment.

    The components read ``MLFLOW_TRACKING_URI`` and ``CHURN_ARTIFACT_ROOT`` through
    ``Settings.from_env`` when their ``tracking_uri`` is empty. The DB is a fresh copy of
    the session's migrated template, in RAM (/dev/shm) when possible (tests/support/
    mlflow_db.py). MLflow's process-wide tracking state is reset afterwards.
    """
    import mlflow
    import mlflow.tracking.fluent as fluent

    home = scratch_dir(tmp_path_factory, "components")
    tracking_uri = new_mlflow_db(home)
    # The registry URI is set too, so that it is restored afterwards: the components'
    # ``mlflow.set_registry_uri`` also exports MLFLOW_REGISTRY_URI, which would otherwise
    # outlive this module and point later tests at a deleted database.
    env = {
        "CHURN_HOME": str(home),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "MLFLOW_REGISTRY_URI": tracking_uri,
        "CHURN_ARTIFACT_ROOT": (home / "mlartifacts").as_uri(),
    }
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        for key in ("MLFLOW_EXPERIMENT_ID", "CHURN_LANDING_ZONE"):
            patch.delenv(key, raising=False)
        yield env
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    fluent._active_experiment_id = None
    shutil.rmtree(home, ignore_errors=True)
