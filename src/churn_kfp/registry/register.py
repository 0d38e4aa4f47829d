"""MLflow tracking and model registration: log a candidate, gate it, crown the champion.

One training run becomes one MLflow run and one new version of the registered model
:data:`~churn_kfp.core.config.MODEL_NAME`. The version that serves is the one the alias
:data:`~churn_kfp.core.config.CHAMPION_ALIAS` points to (aliases, not the deprecated stages).
:func:`connect` points MLflow at the tracking server; :func:`register_and_decide` is the
whole registration step of the pipelines:

1. :func:`log_and_register` logs params, metrics, artifacts and the model, and registers a
   new version tagged with its lineage, tuned threshold and metric summary;
2. :func:`~churn_kfp.registry.gate.gate` checks absolute quality (minimum F1 / ROC AUC,
   maximum train-test gap);
3. the current champion (:mod:`churn_kfp.registry.champion`) scores the same test rows with
   its own tuned threshold and :func:`~churn_kfp.registry.gate.compare_with_champion`
   decides; ties keep the champion;
4. :func:`promote` moves the alias, as the very last write.

A failed gate or a lost comparison leaves the alias where it was; the new version then
stays un-aliased in the registry, with its decision tags. An exception after step 1 deletes
the new version (a failed run registers nothing) and leaves the alias where it was. A
champion that cannot be loaded (files missing or corrupt, or refused as not skops by
:mod:`churn_kfp.registry.loading`) counts as no champion: the candidate is judged by the
gate alone and the decision reason names the problem.

What the registered model returns: it is logged with ``pyfunc_predict_fn="predict_proba"``,
so ``mlflow.pyfunc.load_model(uri).predict(frame)`` (and therefore ``mlflow models serve``,
MLServer's MLflow runtime and KServe's ``modelFormat: mlflow``) returns a float
``numpy.ndarray`` of shape ``(n, 2)``: column 0 is P(no churn), column 1 is P(churn),
because :func:`log_and_register` only accepts classifiers whose ``classes_`` are ``[0, 1]``.
The signature's output says exactly that (a ``(-1, 2)`` tensor). Consumers take column 1
(:func:`~churn_kfp.registry.contract.positive_class_proba` does) and compare it with the
version's ``threshold`` tag (:data:`~churn_kfp.registry.contract.THRESHOLD_TAG`).
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
import json
import logging
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_kfp.core.columns import LABEL, feature_columns
from churn_kfp.core.config import CHAMPION_ALIAS, EXPERIMENT_NAME, MODEL_NAME
from churn_kfp.registry.champion import champion, load_version
from churn_kfp.registry.contract import (
    EXAMPLE_PROBABILITIES_TAG,
    THRESHOLD_TAG,
    MissingInputColumnsError,
    positive_class_proba,
)
from churn_kfp.registry.gate import (
    METRICS,
    Decision,
    GateConfig,
    GateResult,
    compare_with_champion,
    gate,
    metric_value,
)
from churn_kfp.registry.loading import UnloadableModelError

__all__ = [
    "MODEL_ARTIFACT_NAME",
    "TRUSTED_MODULE_PREFIXES",
    "RegisteredModel",
    "connect",
    "flatten",
    "log_and_register",
    "promote",
    "register_and_decide",
]

logger = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"
"""The ``name`` the model is logged under (MLflow 3's replacement of ``artifact_path``)."""

PREVIOUS_CHAMPION_TAG = "previous_champion_version"
PROMOTION_REASON_TAG = "promotion_reason"
PROMOTED_AT_TAG = "promoted_at"
METRIC_TAG_PREFIX = "metric."
DECISION_TAG_PREFIX = "decision."

SUMMARY_METRIC_LEAVES = frozenset(METRICS) | {"log_loss", "brier", "train_test_gap", "gap"}
"""Flattened metrics whose last component is one of these become model-version tags."""

TRUSTED_MODULE_PREFIXES = ("numpy.", "scipy.", "sklearn.", "xgboost.")
"""Modules whose types :func:`log_and_register` trusts for skops when not told otherwise."""

_EXAMPLE_ROWS = 5
_MAX_TAG_CHARS = 5000
_INTEGER_HINT = r"Hint: Inferred schema contains integer column"


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


def _numeric_metrics(metrics: Mapping[str, Any] | None) -> dict[str, float]:
    result: dict[str, float] = {}
    for key, value in flatten(metrics).items():
        if isinstance(value, numbers.Real):
            result[key] = float(value)
        else:
            logger.debug("metric %s is not a number (%s); not logged as a metric", key, type(value))
    return result


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
    example_probabilities = positive_class_proba(pipeline.predict_proba(example))

    flat_params = {k: _param_value(v) for k, v in flatten(params).items()}
    flat_params[THRESHOLD_TAG] = float(threshold)
    flat_metrics = _numeric_metrics(metrics)
    lineage_tags = {k: str(v) for k, v in flatten(lineage).items()}
    version_tags = {
        **lineage_tags,
        THRESHOLD_TAG: repr(float(threshold)),
        EXAMPLE_PROBABILITIES_TAG: json.dumps([float(p) for p in example_probabilities]),
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
        with discarded_on_failure(model_name, str(version.version), run.info.run_id):
            mlflow.set_tag("registered_version", version.version)
            artifact_uri = mlflow.get_logged_model(info.model_id).artifact_location
    return RegisteredModel(
        run_id=run.info.run_id,
        model_id=info.model_id,
        version=str(version.version),
        model_uri=f"models:/{model_name}/{version.version}",
        artifact_uri=artifact_uri,
    )


@contextlib.contextmanager
def discarded_on_failure(model_name: str, version: str, run_id: str) -> Iterator[None]:
    """Deletes a just-registered version when the block fails (then re-raises).

    A failed run registers nothing: no half-registered version without its decision tags
    is left to look usable. The MLflow run keeps its artifacts and gets a
    ``registration_failed`` tag naming the error. A version the champion alias already
    points to is kept.
    """
    try:
        yield
    except BaseException as exc:
        _discard_version(model_name, version, run_id, f"{type(exc).__name__}: {exc}")
        raise


def _discard_version(model_name: str, version: str, run_id: str, error: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient()
    try:
        current = champion(model_name)
        if current is not None and str(current.version) == version:
            return
        client.delete_model_version(model_name, version)
        client.set_tag(run_id, "registration_failed", error[:_MAX_TAG_CHARS])
        logger.warning(
            "deleted %s version %s: the registration step failed (%s)", model_name, version, error
        )
    except Exception as cleanup_error:
        logger.error(
            "%s version %s is left half-registered (the step failed: %s; deleting it failed: "
            "%s): delete it with MlflowClient().delete_model_version(%r, %r)",
            model_name,
            version,
            error,
            cleanup_error,
            model_name,
            version,
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
    challenger: tuple[Any, float] | None = None,
) -> dict[str, Any]:
    """Registers a candidate and promotes it if it passes the gate and beats the champion.

    The candidate (in memory) and the champion (loaded from the registry, as served) score
    the same ``test_frame`` rows, each with its own tuned threshold, on
    ``gate_config.metric``. A champion whose input schema needs columns the rows lack cannot
    be compared and is replaced by a candidate that passed the gate; so is a champion whose
    files cannot be loaded or are refused (not skops): the decision reason says why. An
    error after the version is registered deletes it again (:func:`discarded_on_failure`).
    With ``challenger``, that fit scores the rows in the candidate's place (a held-out fit
    that never trained on them, while ``pipeline``, refit on them too, is what gets
    registered and promoted).

    Args:
        pipeline: Fitted candidate (see :func:`log_and_register`).
        test_frame: Test rows: features and the label column (id/split columns are ignored).
        test_metrics: The candidate's test metrics as evaluated (``f1``, ``roc_auc``, ...),
            checked by :func:`~churn_kfp.registry.gate.gate`.
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
        challenger: ``(fitted model, threshold)`` compared with the champion instead of
            ``pipeline`` and ``threshold``.

    Returns:
        A JSON-serialisable dict with ``model_name``, ``model_version``, ``champion_version``
        (after the decision), ``previous_champion_version`` (before it), ``promoted``,
        ``gate`` (``passed``, ``reasons``), ``decision_reason``, ``metric``,
        ``champion_metric``, ``candidate_metric``, ``threshold``, ``run_id``, ``model_id``,
        ``model_uri`` and ``artifact_uri``.
    """
    config = gate_config or GateConfig()
    if label_column not in test_frame.columns:
        raise ValueError(f"test_frame has no label column {label_column!r}")
    y_true = test_frame[label_column].to_numpy()
    compared, compared_threshold = challenger or (pipeline, threshold)
    candidate_inputs = _model_inputs(compared, test_frame)  # fail before registering anything

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
    with discarded_on_failure(model_name, registered.version, registered.run_id):
        return _decide(
            registered,
            model_name=model_name,
            config=config,
            gate_result=gate(test_metrics, train_test_gap, config),
            test_frame=test_frame,
            y_true=y_true,
            candidate=(compared, compared_threshold, candidate_inputs),
            threshold=threshold,
        )


def _decide(
    registered: RegisteredModel,
    *,
    model_name: str,
    config: GateConfig,
    gate_result: GateResult,
    test_frame: pd.DataFrame,
    y_true: np.ndarray,
    candidate: tuple[Any, float, pd.DataFrame],
    threshold: float,
) -> dict[str, Any]:
    """Compares a registered candidate with the champion, records the decision, promotes."""
    from mlflow import MlflowClient

    compared, compared_threshold, candidate_inputs = candidate
    current = champion(model_name)
    previous_version = str(current.version) if current is not None else None
    candidate_metric: float | None = None
    champion_metric: float | None = None

    if not gate_result.passed:
        decision = Decision(False, "gate failed: " + "; ".join(gate_result.reasons))
    else:
        candidate_proba = positive_class_proba(compared.predict_proba(candidate_inputs))
        candidate_metric = metric_value(config.metric, y_true, candidate_proba, compared_threshold)
        if current is None:
            decision = compare_with_champion(candidate_metric, None, config.promotion_margin)
        else:
            try:
                loaded = load_version(model_name, current)
                champion_proba = loaded.score(test_frame)
            except UnloadableModelError as exc:
                logger.error("no usable champion: %s", exc)
                decision = Decision(
                    True, f"no usable champion, judged by the gate alone: the champion {exc}"
                )
            except MissingInputColumnsError as exc:
                decision = Decision(True, f"champion cannot score the test rows ({exc})")
            else:
                champion_metric = metric_value(
                    config.metric, y_true, champion_proba, loaded.threshold
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


def _json_float(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return float(value)
