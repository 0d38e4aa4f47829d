"""MLflow tracking and model registry: log a candidate, gate it, crown the champion.

One training run becomes one MLflow run and one new version of the registered model
:data:`~churn_kfp.core.config.MODEL_NAME`. The version that serves is the one the alias
:data:`~churn_kfp.core.config.CHAMPION_ALIAS` points to (aliases, not the deprecated stages).
:func:`register_and_decide` is the whole registration step of the pipelines:

1. :func:`log_and_register` logs params, metrics, artifacts and the model, and registers a
   new version tagged with its lineage, tuned threshold and metric summary;
2. :func:`gate` checks absolute quality (minimum F1 / ROC AUC, maximum train-test gap);
3. the current champion scores the same test rows (with its own tuned threshold) and
   :func:`compare_with_champion` decides; ties keep the champion;
4. :func:`promote` moves the alias, as the very last write.

A failed gate, a lost comparison or an exception anywhere before step 4 leaves the alias
where it was; the new version then simply stays un-aliased in the registry.

What the registered model returns: it is logged with ``pyfunc_predict_fn="predict_proba"``,
so ``mlflow.pyfunc.load_model(uri).predict(frame)`` (and therefore ``mlflow models serve``,
MLServer's MLflow runtime and KServe's ``modelFormat: mlflow``) returns a float
``numpy.ndarray`` of shape ``(n, 2)``: column 0 is P(no churn), column 1 is P(churn),
because :func:`log_and_register` only accepts classifiers whose ``classes_`` are ``[0, 1]``.
The signature's output says exactly that (a ``(-1, 2)`` tensor). Consumers take column 1
(:func:`positive_class_proba` does) and compare it with the version's ``threshold`` tag.
Plain scikit-learn cannot make ``predict_proba`` return one column without custom code in
the serving image, which the stock MLServer/KServe runtimes do not have.

Input schema: the signature is inferred from the training features with their dtypes. MLflow
enforces it at predict time, and it refuses ``int64`` data for a ``double`` column and
``float64`` (NaN) data for a ``long`` column; send the dtypes the features step produces.

Nothing happens at import time: MLflow is imported inside the functions, and
:func:`connect` sets the tracking/registry URIs when called.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn_kfp.core.columns import LABEL, feature_columns
from churn_kfp.core.config import CHAMPION_ALIAS, EXPERIMENT_NAME, MODEL_NAME

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"
"""The ``name`` the model is logged under (MLflow 3's replacement of ``artifact_path``)."""

THRESHOLD_TAG = "threshold"
PREVIOUS_CHAMPION_TAG = "previous_champion_version"
PROMOTION_REASON_TAG = "promotion_reason"
PROMOTED_AT_TAG = "promoted_at"
METRIC_TAG_PREFIX = "metric."
DECISION_TAG_PREFIX = "decision."
DEFAULT_THRESHOLD = 0.5

THRESHOLD_METRICS = ("f1", "precision", "recall", "accuracy")
RANKING_METRICS = ("roc_auc", "pr_auc")
METRICS = THRESHOLD_METRICS + RANKING_METRICS
"""Metrics :func:`metric_value` computes; all of them are better when higher."""

SUMMARY_METRIC_LEAVES = frozenset(METRICS) | {"log_loss", "brier", "train_test_gap", "gap"}
"""Flattened metrics whose last component is one of these become model-version tags."""

TRUSTED_MODULE_PREFIXES = ("numpy.", "scipy.", "sklearn.", "xgboost.")
"""Modules whose types :func:`log_and_register` trusts for skops when not told otherwise."""

_EXAMPLE_ROWS = 5
_MAX_TAG_CHARS = 5000
_INTEGER_HINT = r"Hint: Inferred schema contains integer column"


class ChampionIncompatibleError(ValueError):
    """The champion cannot score the given rows (its input schema needs missing columns)."""


@dataclass(frozen=True)
class GateConfig:
    """Absolute quality bar and promotion rule.

    Attributes:
        min_f1: Minimum test F1 (``None`` disables the check).
        min_roc_auc: Minimum test ROC AUC (``None`` disables the check).
        max_train_test_gap: Maximum train-minus-test gap of the primary metric, an
            overfitting guard (``None`` disables the check).
        promotion_margin: How much the candidate must beat the champion by (>= 0).
        metric: The metric the candidate and the champion are compared on; one of
            :data:`METRICS`.
    """

    min_f1: float | None = 0.5
    min_roc_auc: float | None = 0.7
    max_train_test_gap: float | None = 0.15
    promotion_margin: float = 0.0
    metric: str = "f1"

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown comparison metric {self.metric!r}; choose from {METRICS}")
        if not self.promotion_margin >= 0:
            raise ValueError(f"promotion_margin must be >= 0, got {self.promotion_margin!r}")


@dataclass
class GateResult:
    """Outcome of :func:`gate`.

    Attributes:
        passed: Whether every enabled check passed.
        reasons: One human-readable line per failed check (empty when passed).
    """

    passed: bool
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Decision:
    """Outcome of :func:`compare_with_champion`.

    Attributes:
        promote: Whether the candidate should become the champion.
        reason: Why, in one line.
    """

    promote: bool
    reason: str


@dataclass(frozen=True)
class RegisteredModel:
    """What :func:`log_and_register` created.

    Attributes:
        run_id: The MLflow run holding params, metrics and artifacts.
        model_id: The MLflow 3 logged-model id (``m-...``).
        version: The new registered model version.
        model_uri: ``models:/<name>/<version>``.
        artifact_uri: Where the model files live (``file://...`` or ``s3://...``): the
            value for KServe's ``storageUri``, which cannot resolve ``models:/`` URIs.
    """

    run_id: str
    model_id: str
    version: str
    model_uri: str
    artifact_uri: str


# --------------------------------------------------------------------------- connection


def connect(
    tracking_uri: str, artifact_root: str | None = None, experiment: str = EXPERIMENT_NAME
) -> str:
    """Points MLflow at a tracking server/registry and makes the experiment the active one.

    Safe when several processes call it at once: on a SQLite URI the first-time schema
    creation and the experiment creation run under a file lock next to the database, and a
    lost creation race on any backend falls back to the experiment that won.

    Args:
        tracking_uri: MLflow tracking URI, also used as the registry URI
            (``sqlite:///<CHURN_HOME>/mlflow.db`` locally, ``http://...`` on a cluster).
        artifact_root: Artifact location for the experiment if it has to be created
            (``file://...`` or ``s3://...``; a plain path is turned into a ``file://`` URI).
            An existing experiment keeps its location.
        experiment: Experiment name.

    Returns:
        The experiment id.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    location = _as_artifact_uri(artifact_root) if artifact_root else None
    with _sqlite_init_lock(tracking_uri):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        existing = client.get_experiment_by_name(experiment)
        if existing is None:
            try:
                experiment_id = client.create_experiment(experiment, artifact_location=location)
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                existing = client.get_experiment_by_name(experiment)
                if existing is None:
                    raise
                experiment_id = existing.experiment_id
        else:
            experiment_id = existing.experiment_id
            if existing.lifecycle_stage == "deleted":
                logger.warning("restoring deleted MLflow experiment %r", experiment)
                client.restore_experiment(experiment_id)
            if location and existing.artifact_location.rstrip("/") != location.rstrip("/"):
                logger.warning(
                    "experiment %r keeps its artifact location %s (asked for %s)",
                    experiment,
                    existing.artifact_location,
                    location,
                )
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _as_artifact_uri(artifact_root: str) -> str:
    if "://" in artifact_root:
        return artifact_root
    return Path(artifact_root).expanduser().absolute().as_uri()


@contextlib.contextmanager
def _sqlite_init_lock(tracking_uri: str) -> Iterator[None]:
    """Serialises first use of a SQLite tracking DB across processes (MLflow does not)."""
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix) or tracking_uri == prefix:
        yield
        return
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    db_path = Path(tracking_uri[len(prefix) :].split("?", 1)[0])
    db_path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db_path}.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- pure decisions


def gate(
    test_metrics: Mapping[str, Any],
    train_test_gap: float | None,
    config: GateConfig | None = None,
) -> GateResult:
    """Checks a candidate's absolute quality before it may challenge the champion.

    Args:
        test_metrics: Test-split metrics, at least ``f1`` and ``roc_auc`` for the enabled
            checks. A missing or NaN metric fails its check.
        train_test_gap: Train-minus-test value of the primary metric; ``None`` skips the
            overfitting check (for example when no train metrics exist).
        config: Thresholds; defaults to :class:`GateConfig`.

    Returns:
        Whether the candidate passed, with one reason per failed check.
    """
    config = config or GateConfig()
    reasons: list[str] = []
    for name, minimum in (("f1", config.min_f1), ("roc_auc", config.min_roc_auc)):
        if minimum is None:
            continue
        value = _as_float(test_metrics.get(name))
        if value is None:
            reasons.append(f"test {name} is missing or not a number")
        elif value < minimum:
            reasons.append(f"test {name} {value:.4f} < minimum {minimum:.4f}")
    if config.max_train_test_gap is not None and train_test_gap is not None:
        gap = _as_float(train_test_gap)
        if gap is None:
            reasons.append("train-test gap is not a number")
        elif gap > config.max_train_test_gap:
            reasons.append(
                f"train-test gap {gap:.4f} > maximum {config.max_train_test_gap:.4f} (overfitting)"
            )
    return GateResult(passed=not reasons, reasons=reasons)


def compare_with_champion(
    candidate_metric: float,
    champion_metric: float | None,
    margin: float = 0.0,
    *,
    metric: str = "metric",
) -> Decision:
    """Decides whether a candidate replaces the champion (higher metric is better).

    Args:
        candidate_metric: The candidate's metric on the comparison rows.
        champion_metric: The champion's metric on the same rows; ``None`` when there is no
            champion.
        margin: The candidate must exceed ``champion_metric + margin``; ties keep the champion.
        metric: Metric name, only used in the reason.

    Returns:
        The decision and its reason.
    """
    if champion_metric is None:
        return Decision(True, "no champion yet")
    if candidate_metric is None or math.isnan(candidate_metric):
        return Decision(False, f"candidate {metric} is not a number; champion kept")
    if math.isnan(champion_metric):
        return Decision(True, f"champion {metric} is not a number; candidate promoted")
    detail = (
        f"candidate {metric} {candidate_metric:.4f} vs champion {champion_metric:.4f}"
        f" + margin {margin:.4f}"
    )
    if candidate_metric > champion_metric + margin:
        return Decision(True, f"{detail}: candidate is better")
    return Decision(False, f"{detail}: not better, champion kept")


def metric_value(
    metric: str, y_true: Any, proba: Any, threshold: float = DEFAULT_THRESHOLD
) -> float:
    """Computes one comparison metric from churn probabilities.

    Args:
        metric: One of :data:`METRICS`.
        y_true: True 0/1 labels.
        proba: Predicted churn probabilities (positive class).
        threshold: Decision threshold for the threshold metrics (``proba >= threshold``).

    Returns:
        The metric; NaN for a ranking metric when the labels hold a single class.
    """
    from sklearn import metrics as skm

    y = np.asarray(y_true).astype(int)
    p = np.asarray(proba, dtype=float)
    if metric in RANKING_METRICS:
        if len(np.unique(y)) < 2:
            return float("nan")
        scorer = skm.roc_auc_score if metric == "roc_auc" else skm.average_precision_score
        return float(scorer(y, p))
    predicted = (p >= threshold).astype(int)
    if metric == "f1":
        return float(skm.f1_score(y, predicted, zero_division=0))
    if metric == "precision":
        return float(skm.precision_score(y, predicted, zero_division=0))
    if metric == "recall":
        return float(skm.recall_score(y, predicted, zero_division=0))
    if metric == "accuracy":
        return float(skm.accuracy_score(y, predicted))
    raise ValueError(f"unknown metric {metric!r}; choose from {METRICS}")


def positive_class_proba(output: Any) -> np.ndarray:
    """Returns P(churn) from a model's ``predict_proba``-style output.

    Args:
        output: ``(n, 2)`` array or frame (column 1 is churn), or ``(n,)``/``(n, 1)``
            already holding the churn probability.

    Returns:
        A float64 array of shape ``(n,)``.
    """
    values = np.asarray(output.to_numpy() if hasattr(output, "to_numpy") else output, dtype=float)
    if values.ndim == 2 and values.shape[1] == 2:
        return values[:, 1]
    if values.ndim == 2 and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim == 1:
        return values
    raise ValueError(f"cannot read churn probabilities from output of shape {values.shape}")


def flatten(values: Mapping[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """Flattens nested mappings into dotted keys, dropping ``None`` values.

    Args:
        values: Possibly nested mapping.
        prefix: Key prefix (used by the recursion).

    Returns:
        ``{"a": {"b": 1, "c": None}}`` becomes ``{"a.b": 1}``.
    """
    flat: dict[str, Any] = {}
    for key, value in (values or {}).items():
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, Mapping):
            flat.update(flatten(value, prefix=f"{name}."))
        else:
            flat[name] = value
    return flat


def _as_float(value: Any) -> float | None:
    """A real, non-NaN number as float, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    result = float(value)
    return None if math.isnan(result) else result


def _numeric_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    result: dict[str, float] = {}
    for key, value in flatten(metrics).items():
        if isinstance(value, numbers.Real):
            result[key] = float(value)
        else:
            logger.debug("metric %s is not a number (%s); not logged as a metric", key, type(value))
    return result


# --------------------------------------------------------------------------- registry reads


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


def artifact_location(version: str, model_name: str = MODEL_NAME) -> str:
    """Returns where a registered version's files live (the URI KServe's ``storageUri`` needs).

    Args:
        version: Registered model version.
        model_name: Registered model name.

    Returns:
        ``file://.../artifacts`` or ``s3://.../artifacts``; a version's ``source`` is only
        ``models:/m-<id>`` in MLflow 3.
    """
    import mlflow
    from mlflow import MlflowClient

    model_version = MlflowClient().get_model_version(model_name, str(version))
    model_id = model_version.model_id
    if not model_id and (model_version.source or "").startswith("models:/m-"):
        model_id = model_version.source.removeprefix("models:/")
    if model_id:
        return mlflow.get_logged_model(model_id).artifact_location
    return model_version.source


def version_summary(version: str, model_name: str = MODEL_NAME) -> dict[str, Any]:
    """Describes one registered version for humans and the CLI (JSON-serialisable).

    Args:
        version: Registered model version.
        model_name: Registered model name.

    Returns:
        Name, version, aliases, tags, status, run id, model id, artifact URI, and the run's
        metrics and params.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    model_version = client.get_model_version(model_name, str(version))
    summary: dict[str, Any] = {
        "name": model_name,
        "version": str(model_version.version),
        "aliases": sorted(model_version.aliases or []),
        "tags": dict(model_version.tags or {}),
        "status": model_version.status,
        "created": _iso_ms(model_version.creation_timestamp),
        "run_id": model_version.run_id,
        "model_id": model_version.model_id,
        "source": model_version.source,
        "artifact_uri": artifact_location(model_version.version, model_name),
        "metrics": {},
        "params": {},
    }
    if model_version.run_id:
        run = client.get_run(model_version.run_id)
        summary["metrics"] = dict(run.data.metrics)
        summary["params"] = dict(run.data.params)
    return summary


def score_champion(
    frame: pd.DataFrame, model_name: str = MODEL_NAME
) -> tuple[str, np.ndarray] | None:
    """Scores rows with the current champion, as served (through pyfunc).

    Args:
        frame: Rows to score; may hold id/label columns, only the champion's input columns
            are passed to it.
        model_name: Registered model name.

    Returns:
        ``(champion version, churn probabilities)``, or ``None`` without a champion.

    Raises:
        ChampionIncompatibleError: The frame lacks columns the champion requires.
    """
    current = champion(model_name)
    if current is None:
        return None
    version = str(current.version)
    return version, _score_version(frame, model_name, version)


def _score_version(frame: pd.DataFrame, model_name: str, version: str) -> np.ndarray:
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{model_name}/{version}")
    schema = model.metadata.get_input_schema()
    if schema is not None and schema.has_input_names():
        missing = [c for c in schema.required_input_names() if c not in frame.columns]
        if missing:
            raise ChampionIncompatibleError(
                f"{model_name} version {version} needs columns missing from the rows: {missing}"
            )
        inputs = frame[[c for c in schema.input_names() if c in frame.columns]]
    else:
        inputs = frame[feature_columns(frame.columns)]
    return positive_class_proba(model.predict(inputs))


# --------------------------------------------------------------------------- registry writes


def log_and_register(
    pipeline: Any,
    *,
    input_example: pd.DataFrame,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    artifacts: Mapping[str, str | os.PathLike[str]],
    lineage: Mapping[str, Any],
    threshold: float,
    model_name: str = MODEL_NAME,
    run_name: str | None = None,
    skops_trusted_types: list[str] | None = None,
) -> RegisteredModel:
    """Logs one MLflow run with the fitted pipeline and registers it as a new version.

    The run holds the flattened ``params`` (plus ``threshold``), the numeric flattened
    ``metrics`` (``None`` and non-numbers skipped), the ``artifacts`` and the lineage as run
    tags. The model is logged with ``mlflow.sklearn.log_model`` (skops format,
    ``pyfunc_predict_fn="predict_proba"``, a signature inferred from the features and the
    ``(n, 2)`` probabilities, a few example rows, pinned pip requirements of the libraries the
    pipeline uses) and registered with version tags: the lineage, ``threshold`` and
    ``metric.<name>`` for the summary metrics.

    Args:
        pipeline: Fitted scikit-learn classifier (usually a ``Pipeline``) with
            ``predict_proba`` and ``classes_ == [0, 1]``.
        input_example: Training feature rows; only the pipeline's input columns
            (``feature_names_in_``, else every non-meta column) are used; the signature is
            inferred from all rows, the first few are stored as the example.
        params: Parameters, possibly nested (flattened to dotted names).
        metrics: Metrics, possibly nested (flattened to dotted names).
        artifacts: Destination folder in the run's artifacts -> local file or directory.
        lineage: Data and code lineage (``data_start``, ``data_end``, ``rows``, ``data_hash``,
            ``git_commit``, ``pipeline_run_id``, ...); ``None`` values are skipped.
        threshold: The tuned decision threshold on P(churn).
        model_name: Registered model name.
        run_name: MLflow run name.
        skops_trusted_types: Types skops may load; by default the pipeline's own types,
            provided they all come from :data:`TRUSTED_MODULE_PREFIXES`.

    Returns:
        Ids and URIs of the run, logged model and registered version.

    Raises:
        ValueError: Not a binary 0/1 probabilistic classifier, a bad threshold, or types
            skops would refuse to load.
        FileNotFoundError: An artifact path does not exist.
    """
    import mlflow
    from mlflow.models import infer_signature

    _check_classifier(pipeline)
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold!r}")
    missing_artifacts = {k: str(v) for k, v in artifacts.items() if not Path(v).exists()}
    if missing_artifacts:
        raise FileNotFoundError(f"artifacts not found: {missing_artifacts}")
    trusted = _trusted_types(pipeline, skops_trusted_types)
    features = _model_inputs(pipeline, input_example)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_INTEGER_HINT, category=UserWarning)
        signature = infer_signature(features, np.asarray(pipeline.predict_proba(features)))
    example = features.head(_EXAMPLE_ROWS)

    flat_params = {k: _param_value(v) for k, v in flatten(params).items()}
    flat_params[THRESHOLD_TAG] = float(threshold)
    flat_metrics = _numeric_metrics(metrics)
    lineage_tags = {k: str(v) for k, v in flatten(lineage).items()}
    version_tags = {
        **lineage_tags,
        THRESHOLD_TAG: repr(float(threshold)),
        **{
            f"{METRIC_TAG_PREFIX}{k}": repr(v)
            for k, v in flat_metrics.items()
            if k.rsplit(".", 1)[-1] in SUMMARY_METRIC_LEAVES
        },
    }

    with mlflow.start_run(run_name=run_name) as run:
        mlflow.set_tags({**lineage_tags, "model_name": model_name})
        mlflow.log_params(flat_params)
        if flat_metrics:
            mlflow.log_metrics(flat_metrics)
        for destination, local in artifacts.items():
            if Path(local).is_dir():
                mlflow.log_artifacts(str(local), artifact_path=destination)
            else:
                mlflow.log_artifact(str(local), artifact_path=destination)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_INTEGER_HINT, category=UserWarning)
            info = mlflow.sklearn.log_model(
                sk_model=pipeline,
                name=MODEL_ARTIFACT_NAME,
                signature=signature,
                input_example=example,
                pyfunc_predict_fn="predict_proba",
                skops_trusted_types=trusted,
                pip_requirements=_pip_requirements(pipeline),
            )
        # register_model (rather than log_model's registered_model_name) creates the version
        # with its lineage tags in one call.
        version = mlflow.register_model(info.model_uri, model_name, tags=version_tags)
        mlflow.set_tag("registered_version", version.version)
    return RegisteredModel(
        run_id=run.info.run_id,
        model_id=info.model_id,
        version=str(version.version),
        model_uri=f"models:/{model_name}/{version.version}",
        artifact_uri=mlflow.get_logged_model(info.model_id).artifact_location,
    )


def promote(version: str, model_name: str = MODEL_NAME, reason: str = "") -> str | None:
    """Points the champion alias at a version.

    The version is tagged first (previous champion, reason, time), the alias moves last, so
    a failure leaves the alias where it was.

    Args:
        version: Version to crown.
        model_name: Registered model name.
        reason: Why, stored as the ``promotion_reason`` tag.

    Returns:
        The previous champion version, or ``None`` if there was none.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    previous = champion(model_name)
    previous_version = str(previous.version) if previous is not None else None
    version = str(version)
    tags = {
        PREVIOUS_CHAMPION_TAG: previous_version or "",
        PROMOTION_REASON_TAG: reason[:_MAX_TAG_CHARS],
        PROMOTED_AT_TAG: dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, version, key, value)
    client.set_registered_model_alias(model_name, CHAMPION_ALIAS, version)
    logger.info(
        "%s version %s is the champion (previous: %s): %s",
        model_name,
        version,
        previous_version,
        reason,
    )
    return previous_version


def register_and_decide(
    pipeline: Any,
    *,
    test_frame: pd.DataFrame,
    test_metrics: Mapping[str, Any],
    train_test_gap: float | None,
    threshold: float,
    input_example: pd.DataFrame,
    params: Mapping[str, Any],
    metrics: Mapping[str, Any],
    artifacts: Mapping[str, str | os.PathLike[str]],
    lineage: Mapping[str, Any],
    gate_config: GateConfig | None = None,
    model_name: str = MODEL_NAME,
    run_name: str | None = None,
    skops_trusted_types: list[str] | None = None,
    label_column: str = LABEL,
) -> dict[str, Any]:
    """Registers a candidate and promotes it if it passes the gate and beats the champion.

    The candidate (in memory) and the champion (loaded from the registry, as served) score
    the same ``test_frame`` rows, each with its own tuned threshold, on
    ``gate_config.metric``. A champion whose input schema needs columns the rows lack cannot
    be compared and is replaced by a candidate that passed the gate.

    Args:
        pipeline: Fitted candidate (see :func:`log_and_register`).
        test_frame: Test rows: features and the label column (id/split columns are ignored).
        test_metrics: The candidate's test metrics as evaluated (``f1``, ``roc_auc``, ...),
            checked by :func:`gate`.
        train_test_gap: Train-minus-test gap of the primary metric (``None``: unchecked).
        threshold: The candidate's tuned decision threshold.
        input_example: Training features (see :func:`log_and_register`).
        params: Run parameters (nested allowed).
        metrics: Run metrics (nested allowed).
        artifacts: Run artifacts, destination folder -> local path.
        lineage: Lineage tags.
        gate_config: Gate and comparison settings.
        model_name: Registered model name.
        run_name: MLflow run name.
        skops_trusted_types: See :func:`log_and_register`.
        label_column: Label column of ``test_frame``.

    Returns:
        A JSON-serialisable dict with ``model_name``, ``model_version``, ``champion_version``
        (after the decision), ``previous_champion_version`` (before it), ``promoted``,
        ``gate`` (``passed``, ``reasons``), ``decision_reason``, ``metric``,
        ``champion_metric``, ``candidate_metric``, ``threshold``, ``run_id``, ``model_id``,
        ``model_uri`` and ``artifact_uri``.
    """
    from mlflow import MlflowClient

    config = gate_config or GateConfig()
    if label_column not in test_frame.columns:
        raise ValueError(f"test_frame has no label column {label_column!r}")
    y_true = test_frame[label_column].to_numpy()
    candidate_inputs = _model_inputs(pipeline, test_frame)  # fail before registering anything

    registered = log_and_register(
        pipeline,
        input_example=input_example,
        params=params,
        metrics=metrics,
        artifacts=artifacts,
        lineage=lineage,
        threshold=threshold,
        model_name=model_name,
        run_name=run_name,
        skops_trusted_types=skops_trusted_types,
    )
    gate_result = gate(test_metrics, train_test_gap, config)
    current = champion(model_name)
    previous_version = str(current.version) if current is not None else None
    candidate_metric: float | None = None
    champion_metric: float | None = None

    if not gate_result.passed:
        decision = Decision(False, "gate failed: " + "; ".join(gate_result.reasons))
    else:
        candidate_proba = positive_class_proba(pipeline.predict_proba(candidate_inputs))
        candidate_metric = metric_value(config.metric, y_true, candidate_proba, threshold)
        if current is None:
            decision = compare_with_champion(candidate_metric, None, config.promotion_margin)
        else:
            try:
                champion_proba = _score_version(test_frame, model_name, previous_version)
            except ChampionIncompatibleError as exc:
                decision = Decision(True, f"champion cannot score the test rows ({exc})")
            else:
                champion_threshold = _champion_threshold(current)
                champion_metric = metric_value(
                    config.metric, y_true, champion_proba, champion_threshold
                )
                decision = compare_with_champion(
                    candidate_metric,
                    champion_metric,
                    config.promotion_margin,
                    metric=config.metric,
                )

    _record_decision(
        MlflowClient(),
        model_name,
        registered,
        gate_result,
        decision,
        {
            "metric": config.metric,
            "candidate_metric": _json_float(candidate_metric),
            "champion_metric": _json_float(champion_metric),
            "champion_version": previous_version,
        },
    )
    champion_version = previous_version
    if decision.promote:
        previous_version = promote(registered.version, model_name, reason=decision.reason)
        champion_version = registered.version
    return {
        "model_name": model_name,
        "model_version": registered.version,
        "champion_version": champion_version,
        "previous_champion_version": previous_version,
        "promoted": bool(decision.promote),
        "gate": {"passed": gate_result.passed, "reasons": list(gate_result.reasons)},
        "decision_reason": decision.reason,
        "metric": config.metric,
        "champion_metric": _json_float(champion_metric),
        "candidate_metric": _json_float(candidate_metric),
        "threshold": float(threshold),
        "run_id": registered.run_id,
        "model_id": registered.model_id,
        "model_uri": registered.model_uri,
        "artifact_uri": registered.artifact_uri,
    }


def _record_decision(
    client: Any,
    model_name: str,
    registered: RegisteredModel,
    gate_result: GateResult,
    decision: Decision,
    details: Mapping[str, Any],
) -> None:
    """Writes the gate outcome and the decision on the version and the run (before promotion)."""
    tags = {
        **{f"{DECISION_TAG_PREFIX}{k}": "" if v is None else str(v) for k, v in details.items()},
        f"{DECISION_TAG_PREFIX}gate_passed": str(gate_result.passed).lower(),
        f"{DECISION_TAG_PREFIX}gate_reasons": "; ".join(gate_result.reasons)[:_MAX_TAG_CHARS],
        f"{DECISION_TAG_PREFIX}promote": str(decision.promote).lower(),
        f"{DECISION_TAG_PREFIX}reason": decision.reason[:_MAX_TAG_CHARS],
    }
    for key, value in tags.items():
        client.set_model_version_tag(model_name, registered.version, key, value)
        client.set_tag(registered.run_id, key, value)


# --------------------------------------------------------------------------- helpers


def _check_classifier(pipeline: Any) -> None:
    if not hasattr(pipeline, "predict_proba"):
        raise ValueError(f"{type(pipeline).__name__} has no predict_proba")
    classes = getattr(pipeline, "classes_", None)
    if classes is None or [int(c) for c in classes] != [0, 1]:
        raise ValueError(f"expected a fitted binary classifier with classes_ [0, 1], got {classes}")


def _model_inputs(pipeline: Any, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns the pipeline was fitted on, in order (else every non-meta column)."""
    names = getattr(pipeline, "feature_names_in_", None)
    if names is None:
        return frame[feature_columns(frame.columns)]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise ValueError(f"rows lack the model's input columns {missing}")
    return frame[list(names)]


def _trusted_types(pipeline: Any, given: list[str] | None) -> list[str]:
    """Types skops must trust to load the pipeline back, checked before anything is logged."""
    import skops.io

    needed = set(skops.io.get_untrusted_types(data=skops.io.dumps(pipeline)))
    if given is None:
        foreign = sorted(t for t in needed if not t.startswith(TRUSTED_MODULE_PREFIXES))
        if foreign:
            raise ValueError(
                f"the pipeline holds types outside {TRUSTED_MODULE_PREFIXES}: {foreign}; "
                "pass skops_trusted_types explicitly if they are safe"
            )
        return sorted(needed)
    missing = sorted(needed - set(given))
    if missing:
        raise ValueError(f"skops could not load the model back; untrusted types: {missing}")
    return list(given)


_IMPORT_TO_DIST = {"sklearn": "scikit-learn"}


def _pip_requirements(pipeline: Any) -> list[str]:
    """Pins the libraries needed to load the pipeline to the versions installed here.

    Passing requirements explicitly keeps them exact (the serving image must match) and
    skips MLflow's requirement inference, which loads the model in a subprocess.
    """
    modules = {"sklearn", "skops", "numpy", "scipy", "pandas"}
    objects = [pipeline]
    if hasattr(pipeline, "get_params"):
        objects += list(pipeline.get_params(deep=True).values())
    for obj in objects:
        top = type(obj).__module__.split(".", 1)[0]
        if top not in ("builtins", "__main__") and hasattr(obj, "get_params"):
            modules.add(top)
    requirements = set()
    for module in modules:
        dist = _IMPORT_TO_DIST.get(module, module)
        try:
            requirements.add(f"{dist}=={importlib_metadata.version(dist)}")
        except importlib_metadata.PackageNotFoundError:
            logger.warning(
                "cannot pin %s for the model environment: no distribution %r", module, dist
            )
    return sorted(requirements, key=str.lower)


def _param_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _champion_threshold(version: ModelVersion) -> float:
    raw = (version.tags or {}).get(THRESHOLD_TAG)
    try:
        return float(raw) if raw is not None else DEFAULT_THRESHOLD
    except ValueError:
        logger.warning("champion version %s has a bad threshold tag %r", version.version, raw)
        return DEFAULT_THRESHOLD


def _json_float(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(value)


def _iso_ms(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.UTC).isoformat(timespec="seconds")
