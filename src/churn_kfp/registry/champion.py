"""The champion: the registered version the champion alias points to, found and loaded.

:func:`champion` looks the alias up (no model loading); :func:`load_champion` also loads the
version as a pyfunc model, exactly as it is served (:mod:`churn_kfp.registry.loading`: skops
with trusted types only), into a :class:`Champion` that scores rows under the model contract
(:func:`churn_kfp.registry.contract.score_rows`) with its own tuned threshold
(:func:`version_threshold`). Registration scores the champion this
way before deciding on a candidate; the retraining loop scores every period with it.

MLflow is imported inside the functions; they use the tracking/registry URIs set by
:func:`churn_kfp.registry.register.connect`.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from churn_kfp.core.config import CHAMPION_ALIAS, MODEL_NAME
from churn_kfp.registry.contract import (
    DEFAULT_THRESHOLD,
    THRESHOLD_TAG,
    parse_threshold,
    score_rows,
)
from churn_kfp.registry.lineage import covered_month
from churn_kfp.registry.loading import load_pyfunc

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from mlflow.entities.model_registry import ModelVersion

__all__ = [
    "Champion",
    "champion",
    "champion_version",
    "load_champion",
    "load_version",
    "version_threshold",
]

logger = logging.getLogger(__name__)


@dataclass
class Champion:
    """A registered version loaded to score rows (usually the one holding the champion alias).

    Attributes:
        model_name: Registered model name.
        version: Its version.
        threshold: Its tuned decision threshold (version tag).
        tags: Its version tags (lineage, metrics).
        run_id: The MLflow run that logged it.
        model: The loaded pyfunc model (as served).
    """

    model_name: str
    version: str
    threshold: float
    tags: dict[str, str]
    run_id: str | None
    model: Any = field(repr=False, default=None)

    def score(self, frame: pd.DataFrame) -> np.ndarray:
        """P(churn) of each row, through the served (pyfunc) model.

        Raises:
            MissingInputColumnsError: The rows lack columns the version requires.
        """
        return score_rows(self.model, frame, model_name=self.model_name, version=self.version)

    def covered_month(self) -> str | None:
        """Last month of its training data, from its lineage tags (``YYYY-MM`` or ``None``)."""
        return covered_month(self.tags)


def champion(model_name: str = MODEL_NAME) -> ModelVersion | None:
    """Returns the version the champion alias points to.

    Args:
        model_name: Registered model name.

    Returns:
        The champion :class:`~mlflow.entities.model_registry.ModelVersion`, or ``None`` when
        the model or the alias does not exist. Other registry errors propagate.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient()
    try:
        return client.get_model_version_by_alias(model_name, CHAMPION_ALIAS)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        if exc.error_code != "INVALID_PARAMETER_VALUE":
            raise
        # The SQL store reports a missing alias as INVALID_PARAMETER_VALUE; confirm it is that.
        try:
            registered = client.get_registered_model(model_name)
        except MlflowException:
            raise exc from None
        if CHAMPION_ALIAS in (registered.aliases or {}):
            raise
        return None


def champion_version(model_name: str) -> tuple[str, dict[str, str]] | None:
    """The champion's version and tags (no model loading), or ``None``."""
    current = champion(model_name)
    if current is None:
        return None
    return str(current.version), dict(current.tags or {})


def version_threshold(model_version: ModelVersion) -> float:
    """A version's decision threshold from its tag; the default (with a warning) when bad."""
    raw = (model_version.tags or {}).get(THRESHOLD_TAG)
    threshold = parse_threshold(raw)
    if threshold is not None:
        return threshold
    if raw is not None:
        logger.warning(
            "%s version %s has a bad threshold tag %r",
            model_version.name,
            model_version.version,
            raw,
        )
    return DEFAULT_THRESHOLD


def load_version(model_name: str, model_version: ModelVersion) -> Champion:
    """Loads a registered version (``models:/<name>/<version>``) with its threshold and tags.

    The files are downloaded to a temporary folder and loaded by
    :func:`churn_kfp.registry.loading.load_pyfunc` (skops only, trusted types only).

    Raises:
        UnloadableModelError: Its files are missing or corrupt, or
            :class:`~churn_kfp.registry.loading.UnsafeModelError`: not a skops model.
    """
    import mlflow.artifacts

    version = str(model_version.version)
    with tempfile.TemporaryDirectory(prefix="churn-model-") as scratch:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{model_name}/{version}", dst_path=scratch
        )
        model = load_pyfunc(local, model_name=model_name, version=version)
    return Champion(
        model_name,
        version,
        version_threshold(model_version),
        dict(model_version.tags or {}),
        model_version.run_id,
        model,
    )


def load_champion(model_name: str) -> Champion | None:
    """Loads the champion (``models:/<name>@champion`` resolved to its version), or ``None``."""
    current = champion(model_name)
    if current is None:
        return None
    return load_version(model_name, current)
