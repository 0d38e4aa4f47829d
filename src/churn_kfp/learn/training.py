"""Candidate models: preprocessing + classifier pipelines and a bounded random search.

Protocol (also described in :data:`churn_kfp.learn.evaluation.PROTOCOL`):

1. Each sampled parameter set is fitted on ``split == "train"`` and scored on
   ``split == "validation"`` by **ROC AUC**. ROC AUC is threshold-free and does not depend on
   the churn base rate, which differs a lot between shops and periods (CDNOW churns at ~77 %,
   synthetic data nearer 20-30 %); it measures how well the model *ranks* customers, which is
   what a retention campaign with a fixed budget uses. Ties are broken by PR AUC.
2. The decision threshold of the best parameter set is tuned on the validation predictions to
   maximise F1 (the business's primary metric), see :func:`tune_threshold`.
3. The best parameter set is refitted on train + validation and keeps the validation-tuned
   threshold. The splits are time-based, so validation holds the most recent labelled
   behaviour before the test period; leaving it out of the final fit would throw away the
   freshest data, which matters more under churn drift than the small shift of the score
   distribution between the train-only fit (where the threshold was tuned) and the refit.
   The reported ``validation_metrics`` therefore come from the train-only fit (an honest
   out-of-sample estimate); the refitted model is judged on the test split only. This is
   the *held-out fit*: it never sees the test cutoff's labels, so its test metrics are
   honest.
4. The model that is registered and served is refit once more, with the chosen
   hyperparameters, on every cutoff whose label window has closed (the test cutoff
   included), see :func:`refit_on_matured`: it learns from the freshest labels the data
   allow, which is what a model serving the next period needs under drift.

Speed: the default search (8 parameter sets per candidate + refit) of all three candidates on
~20k training rows x ~30 features costs ~45 CPU-seconds, i.e. ~25 s on two free cores. XGBoost
and the random forest use ``n_jobs=2`` (:data:`N_JOBS`). XGBoost's OpenMP threads spin while
waiting: when the cores are shared with other busy processes (parallel local tasks, CI) a
2-thread fit was measured 10-15x slower than a 1-thread one. Set ``OMP_WAIT_POLICY=PASSIVE`` in
the environment of processes that train or serve (it must be set before xgboost is imported),
or pass ``n_jobs=1`` in ``params``.

Everything inside a fitted :class:`~sklearn.pipeline.Pipeline` is a stock scikit-learn or
XGBoost object, so MLflow can save it with skops (see :data:`SKOPS_TRUSTED_TYPES`) and MLServer
can serve it. Models are passed between pipeline steps with :func:`save_candidate` /
:func:`load_candidate` (joblib: only for artifacts this project wrote itself).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import xgboost
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_curve
from sklearn.model_selection import ParameterSampler
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from churn_kfp.core import columns
from churn_kfp.core.jsonable import jsonable
from churn_kfp.learn.metrics import classification_metrics, safe_average_precision, safe_roc_auc
from churn_kfp.learn.weights import recency_weights

__all__ = [
    "CANDIDATES",
    "CANDIDATE_FILE",
    "DEFAULT_FOLDS",
    "DEFAULT_MIN_FREQUENCY",
    "MAX_BOOSTING_BUDGET",
    "N_JOBS",
    "PIPELINE_FILE",
    "HELD_OUT_DIR",
    "REFIT_ON",
    "SERVED_REFIT_ON",
    "SELECTION_METRIC",
    "SKOPS_TRUSTED_TYPES",
    "TrainedCandidate",
    "build_pipeline",
    "default_params",
    "feature_types",
    "fit_candidate",
    "load_candidate",
    "newest_cutoff_rows",
    "refit_on_matured",
    "rolling_folds",
    "save_candidate",
    "search_space",
    "split_frames",
    "train_candidate",
    "tune_threshold",
]

CANDIDATES = ("xgboost", "logistic_regression", "random_forest")

DEFAULT_FOLDS = 1
"""Rolling validation folds of :func:`rolling_folds` unless told otherwise."""

SELECTION_METRIC = "roc_auc"
"""The validation metric that picks parameters here and the champion in evaluation."""

REFIT_ON = "train+validation"
SERVED_REFIT_ON = "every matured cutoff"
"""``refit_on`` of the served model (:func:`refit_on_matured`)."""
HELD_OUT_DIR = "held_out"
"""Subfolder of a saved served model holding the held-out fit it was refit from."""

N_JOBS = 2
"""Threads per XGBoost / random-forest fit (override with ``params["n_jobs"]``)."""

PIPELINE_FILE = "pipeline.joblib"
CANDIDATE_FILE = "candidate.json"

DEFAULT_MIN_FREQUENCY = 0.01
"""Categories rarer than this share of the training rows are grouped as infrequent."""

SKOPS_TRUSTED_TYPES: list[str] = [
    "numpy.dtype",
    "pandas._libs.missing.NAType",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
]
"""Types skops must be told to trust to load any pipeline built here.

Found with ``skops.io.get_untrusted_types`` on fitted pipelines of every candidate (skops
0.16; ``tests/learn/test_training.py`` checks it stays complete): numpy dtypes, ``pandas.NA``
(the missing-value marker of the categorical imputer), the random forest's trees, and XGBoost's
classifier and booster. Pass it as ``mlflow.sklearn.log_model(...,
skops_trusted_types=SKOPS_TRUSTED_TYPES)``.
"""

MAX_BOOSTING_BUDGET = 10.0
"""Upper bound of ``learning_rate x n_estimators`` in XGBoost's search space and defaults."""

_SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    # A small boosting budget (learning_rate x n_estimators <= 10): churn labels are noisy and
    # the test period lies after the validation one. On CDNOW the validation score keeps
    # rising with the budget while the later test score falls (rates 0.1-0.2 with 300 trees
    # cost ~0.01 of test ROC AUC and made it depend on the search seed); on the synthetic
    # data this space scores as well as larger ones. See MAX_BOOSTING_BUDGET.
    "xgboost": {
        "n_estimators": [100, 200],
        "max_depth": [3, 4, 5],
        "learning_rate": [0.02, 0.03, 0.05],
        "subsample": [0.7, 0.85, 1.0],
        "colsample_bytree": [0.6, 0.8, 1.0],
        "min_child_weight": [1, 3, 5, 10],
        "reg_lambda": [0.5, 1.0, 2.0, 5.0],
    },
    "logistic_regression": {
        "C": [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0],
    },
    "random_forest": {
        "n_estimators": [80, 120],
        "max_depth": [6, 8, 10],
        "min_samples_leaf": [5, 10, 20],
        "max_features": ["sqrt"],
        "max_samples": [0.25, 0.4],
    },
}

_DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "xgboost": {"n_estimators": 200, "max_depth": 4, "learning_rate": 0.05},
    "logistic_regression": {"C": 1.0},
    "random_forest": {
        "n_estimators": 120,
        "max_depth": 10,
        "min_samples_leaf": 5,
        "max_samples": 0.4,
    },
}


@dataclass
class TrainedCandidate:
    """A tuned, refitted candidate model and what the search learned on the way.

    Attributes:
        model_type: One of :data:`CANDIDATES`.
        pipeline: The fitted preprocessing + classifier pipeline (refitted on ``refit_on``).
        params: The best sampled hyper-parameters (JSON-serialisable). For XGBoost the
            ``scale_pos_weight`` computed from the class ratio is not part of them.
        threshold: Decision threshold tuned on validation (predict churn when
            ``proba >= threshold``).
        validation_metrics: :func:`churn_kfp.learn.metrics.classification_metrics` of the
            train-only fit on the validation split, at ``threshold``.
        search_results: One dict per tried parameter set: ``params``, ``score`` (validation
            ROC AUC, None when undefined), ``pr_auc``, ``seconds``.
        fit_seconds: Wall time of the whole search, threshold tuning and refit.
        feature_names: ``(numeric, categorical)`` raw input column names.
        selection_metric: Name of the validation metric behind ``score``.
        refit_on: Which rows fitted ``pipeline``: ``"train+validation"``, ``"train"`` or
            :data:`SERVED_REFIT_ON`.
        validation_source: ``"split"`` or how a missing validation split was replaced.
        n_rows: Row counts used: ``train``, ``validation``, ``fit``.
        seed: Random seed of the search and the models.
        refit_through: The newest cutoff ``pipeline`` was fit on (served models only).
        cv_score: Mean validation ROC AUC of the chosen parameters over the rolling folds
            (what chose them, and what chooses between candidates).
        n_folds: Rolling validation folds that scored the parameters.
        recency_half_life: Half-life, in cutoffs, of the sample weights every fit used
            (:func:`~churn_kfp.learn.weights.recency_weights`; 0: equal weights).
    """

    model_type: str
    pipeline: Pipeline
    params: dict[str, Any]
    threshold: float
    validation_metrics: dict[str, Any]
    search_results: list[dict[str, Any]]
    fit_seconds: float
    feature_names: tuple[list[str], list[str]]
    selection_metric: str = SELECTION_METRIC
    refit_on: str = REFIT_ON
    validation_source: str = "split"
    n_rows: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    refit_through: str = ""
    cv_score: float | None = None
    n_folds: int = 1
    recency_half_life: float = 0.0

    @property
    def numeric_features(self) -> list[str]:
        """Numeric raw input columns."""
        return list(self.feature_names[0])

    @property
    def categorical_features(self) -> list[str]:
        """Categorical raw input columns."""
        return list(self.feature_names[1])

    @property
    def input_columns(self) -> list[str]:
        """All raw input columns the pipeline reads, numeric first."""
        return self.numeric_features + self.categorical_features

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Returns the churn probability of every row of ``frame``."""
        return self.pipeline.predict_proba(frame[self.input_columns])[:, 1]


def feature_types(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Splits the feature columns of a labelled table into numeric and categorical ones.

    Numeric: numeric or boolean dtypes. Categorical: object, string and category dtypes.
    Other dtypes (datetimes) are not model inputs and are left out.

    Args:
        frame: A table whose feature columns are ``columns.feature_columns(frame.columns)``.

    Returns:
        ``(numeric, categorical)`` column names in table order.
    """
    numeric: list[str] = []
    categorical: list[str] = []
    for name in columns.feature_columns(frame.columns):
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or (
            pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
        ):
            numeric.append(name)
        elif (
            pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
        ):
            categorical.append(name)
    return numeric, categorical


def search_space(model_type: str) -> dict[str, list[Any]]:
    """Returns the random-search space of a candidate (lists of values, bounded for speed).

    Args:
        model_type: One of :data:`CANDIDATES`.

    Returns:
        A fresh dict of parameter name to candidate values.
    """
    _check_model_type(model_type)
    return {k: list(v) for k, v in _SEARCH_SPACES[model_type].items()}


def default_params(model_type: str) -> dict[str, Any]:
    """Returns reasonable fixed hyper-parameters (used by the logistic-regression baseline)."""
    _check_model_type(model_type)
    return dict(_DEFAULT_PARAMS[model_type])


def build_pipeline(
    model_type: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    params: dict[str, Any] | None = None,
    seed: int = 0,
) -> Pipeline:
    """Builds an unfitted preprocessing + classifier pipeline.

    Numeric columns: median imputation with missing-value indicators (+ standard scaling for
    logistic regression). Categorical columns: missing values (``None``, ``NaN``, ``pd.NA``)
    become ``"unknown"``, then one-hot encoding that ignores unseen categories and groups rare
    ones. The pipeline reads a DataFrame holding (at least) the named raw columns.

    Args:
        model_type: One of :data:`CANDIDATES`.
        numeric: Numeric input columns.
        categorical: Categorical input columns (may be empty).
        params: Classifier hyper-parameters. ``min_frequency`` (if present) goes to the
            one-hot encoder; for XGBoost ``scale_pos_weight`` may be given (default 1).
        seed: Random seed of the classifier.

    Returns:
        ``Pipeline([("preprocess", ColumnTransformer), ("model", classifier)])``.
    """
    _check_model_type(model_type)
    params = dict(params or {})
    min_frequency = params.pop("min_frequency", DEFAULT_MIN_FREQUENCY)
    numeric_steps: list[tuple[str, Any]] = [
        ("impute", SimpleImputer(strategy="median", add_indicator=True))
    ]
    if model_type == "logistic_regression":
        numeric_steps.append(("scale", StandardScaler()))
    transformers: list[tuple[str, Any, list[str]]] = []
    if numeric:
        transformers.append(("num", Pipeline(numeric_steps), list(numeric)))
    if categorical:
        categorical_pipe = Pipeline(
            [
                (
                    "impute",
                    SimpleImputer(missing_values=pd.NA, strategy="constant", fill_value="unknown"),
                ),
                (
                    "onehot",
                    OneHotEncoder(
                        handle_unknown="ignore", min_frequency=min_frequency, sparse_output=False
                    ),
                ),
            ]
        )
        transformers.append(("cat", categorical_pipe, list(categorical)))
    if not transformers:
        raise ValueError("no feature columns: need at least one numeric or categorical column")
    preprocess = ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)
    return Pipeline([("preprocess", preprocess), ("model", _classifier(model_type, params, seed))])


def _classifier(model_type: str, params: dict[str, Any], seed: int) -> Any:
    if model_type == "xgboost":
        settings = {
            "tree_method": "hist",
            "n_jobs": N_JOBS,
            "random_state": seed,
            "eval_metric": "logloss",
            "verbosity": 0,
            "scale_pos_weight": 1.0,
        }
        settings.update(params)
        return xgboost.XGBClassifier(**settings)
    if model_type == "logistic_regression":
        settings = {"class_weight": "balanced", "max_iter": 2000, "random_state": seed}
        settings.update(params)
        return LogisticRegression(**settings)
    settings = {"class_weight": "balanced_subsample", "n_jobs": N_JOBS, "random_state": seed}
    settings.update(params)
    return RandomForestClassifier(**settings)


def tune_threshold(y: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray) -> float:
    """Returns the threshold that maximises F1 of ``proba >= threshold`` on ``(y, proba)``.

    Every distinct score is a candidate threshold; ties in F1 keep the lowest threshold. With
    no positives F1 is 0 everywhere and 0.5 is returned; with only positives the lowest score
    (predict everybody) is returned.

    Args:
        y: True labels (0/1).
        proba: Scores, higher meaning more likely to churn.

    Returns:
        The threshold as a Python float.
    """
    y_arr = np.asarray(y).astype(int)
    p_arr = np.asarray(proba, dtype=float)
    if y_arr.size == 0 or y_arr.sum() == 0:
        return 0.5
    if y_arr.sum() == y_arr.size:
        return float(np.min(p_arr))
    precision, recall, thresholds = precision_recall_curve(y_arr, p_arr)
    precision, recall = precision[:-1], recall[:-1]
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(denom), where=denom > 0)
    return float(thresholds[int(np.argmax(f1))])


def split_frames(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Returns the train and validation rows of a labelled table.

    When the table has no validation rows, the latest training cutoff becomes the validation
    set (if there are at least two training cutoffs), otherwise a seeded 20 % sample of the
    training customers does. The third value says which happened (``"split"``,
    ``"latest train cutoff"`` or ``"random 20% of train"``).

    Args:
        table: Labelled table with ``split``, ``cutoff`` and ``churn`` columns.
        seed: Seed of the random fallback.

    Returns:
        ``(train, validation, validation_source)``.
    """
    train = table[table[columns.SPLIT] == columns.TRAIN]
    validation = table[table[columns.SPLIT] == columns.VALIDATION]
    if len(train) == 0:
        raise ValueError("the labelled table has no rows with split == 'train'")
    if len(validation) > 0:
        return train, validation, "split"
    cutoffs = pd.to_datetime(train[columns.CUTOFF]).drop_duplicates().sort_values()
    if len(cutoffs) >= 2:
        last = pd.to_datetime(train[columns.CUTOFF]) == cutoffs.iloc[-1]
        return train[~last], train[last], "latest train cutoff"
    customers = train[columns.CUSTOMER_ID].drop_duplicates().to_numpy()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(customers, size=max(1, len(customers) // 5), replace=False).tolist())
    mask = train[columns.CUSTOMER_ID].isin(held)
    return train[~mask], train[mask], "random 20% of train"


def rolling_folds(
    train: pd.DataFrame, validation: pd.DataFrame, n_folds: int = DEFAULT_FOLDS
) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """Rolling-origin validation folds, newest first: ``(fit rows, validation rows)``.

    The first fold is the plan's own (training cutoffs, validation cutoff). Each further
    fold moves the validation cutoff back to the next older training cutoff and fits on the
    training cutoffs at least as far before it as the plan's training cutoffs are before
    the validation cutoff (so no fold's training labels reach into its validation period,
    as in the plan). Folds without two classes on both sides are left out.

    Args:
        train: Training rows (``cutoff``, ``churn``).
        validation: Validation rows (one cutoff).
        n_folds: Most folds (1: the plan's split only).
    """
    folds = [(train, validation)]
    if n_folds <= 1 or validation.empty:
        return folds
    train_cutoffs = pd.to_datetime(train[columns.CUTOFF])
    ordered = sorted(train_cutoffs.unique())
    gap = pd.Timestamp(pd.to_datetime(validation[columns.CUTOFF]).min()) - ordered[-1]
    for held in reversed(ordered):
        if len(folds) >= n_folds:
            break
        fit = train[train_cutoffs <= held - gap]
        rows = train[train_cutoffs == held]
        if fit[columns.LABEL].nunique() == 2 and rows[columns.LABEL].nunique() == 2:
            folds.append((fit, rows))
    return folds


def train_candidate(
    table: pd.DataFrame,
    model_type: str,
    n_iter: int = 8,
    seed: int = 0,
    time_budget_s: float | None = None,
    refit: bool = True,
    n_folds: int = 1,
    recency_half_life: float = 0.0,
) -> TrainedCandidate:
    """Random-searches, threshold-tunes and refits one candidate (see the module docstring).

    Args:
        table: Labelled table (``columns.META_COLUMNS`` + feature columns).
        model_type: One of :data:`CANDIDATES`.
        n_iter: Number of sampled parameter sets (capped by the size of a finite space).
        seed: Seed of the parameter sampler and of the models.
        time_budget_s: Stop sampling new parameter sets once this many seconds have passed
            (at least one is always fitted).
        refit: Refit the best parameters on train + validation (default) or keep the
            train-only fit.
        n_folds: Rolling validation folds that score each parameter set
            (:func:`rolling_folds`; 1: the validation cutoff only).
        recency_half_life: Every fit weighs rows by ``weights.recency_weights`` with this
            half-life in cutoffs (0: equal weights).

    Returns:
        The fitted :class:`TrainedCandidate`.
    """
    _check_model_type(model_type)
    if n_iter < 1:
        raise ValueError("n_iter must be at least 1")
    space = search_space(model_type)
    size = math.prod(len(values) for values in space.values())
    sampled = list(ParameterSampler(space, n_iter=min(n_iter, size), random_state=seed))
    return _train(
        table, model_type, sampled, seed, time_budget_s, refit, n_folds, recency_half_life
    )


def fit_candidate(
    table: pd.DataFrame,
    model_type: str,
    params: dict[str, Any] | None = None,
    seed: int = 0,
    refit: bool = True,
) -> TrainedCandidate:
    """Like :func:`train_candidate` with one fixed parameter set.

    Args:
        table: Labelled table.
        model_type: One of :data:`CANDIDATES`.
        params: Hyper-parameters; default :func:`default_params`.
        seed: Seed of the model.
        refit: Refit on train + validation after tuning the threshold.

    Returns:
        The fitted :class:`TrainedCandidate`.
    """
    _check_model_type(model_type)
    chosen = default_params(model_type) if params is None else dict(params)
    return _train(table, model_type, [chosen], seed, None, refit)


def _train(
    table: pd.DataFrame,
    model_type: str,
    param_list: list[dict[str, Any]],
    seed: int,
    time_budget_s: float | None,
    refit: bool,
    n_folds: int = 1,
    half_life: float = 0.0,
) -> TrainedCandidate:
    started = time.perf_counter()
    numeric, categorical = feature_types(table)
    inputs = numeric + categorical
    train, validation, source = split_frames(table, seed=seed)
    y_train = train[columns.LABEL].to_numpy().astype(int)
    y_val = validation[columns.LABEL].to_numpy().astype(int)
    if len(np.unique(y_train)) < 2:
        raise ValueError(
            f"the training rows hold a single class ({int(y_train[0])}): cannot fit a classifier"
        )
    folds = rolling_folds(train, validation, n_folds) if source == "split" else []

    results: list[dict[str, Any]] = []
    best: tuple[float, float, int] | None = None
    best_index = 0
    best_pipe: Pipeline | None = None
    best_proba: np.ndarray | None = None
    for index, params in enumerate(param_list):
        if time_budget_s is not None and results and time.perf_counter() - started > time_budget_s:
            break
        t0 = time.perf_counter()
        pipe = _fit_weighted(model_type, numeric, categorical, params, seed, train, half_life)
        first_score, proba = _held_out_roc_auc(pipe, validation, inputs)
        fold_scores = [first_score]
        for fit_rows, held_rows in folds[1:]:
            pipe_k = _fit_weighted(
                model_type, numeric, categorical, params, seed, fit_rows, half_life
            )
            fold_scores.append(_held_out_roc_auc(pipe_k, held_rows, inputs)[0])
        defined = [v for v in fold_scores if v is not None]
        score = float(np.mean(defined)) if defined else None
        pr_auc = safe_average_precision(y_val, proba)
        results.append(
            {
                "params": jsonable(params),
                "score": score,
                "fold_scores": fold_scores,
                "pr_auc": pr_auc,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        # Undefined scores (single-class validation) rank last; ties keep the earlier set.
        key = (
            -math.inf if score is None else score,
            -math.inf if pr_auc is None else pr_auc,
            -index,
        )
        if best is None or key > best:
            best, best_index, best_pipe, best_proba = key, index, pipe, proba
    assert best_pipe is not None and best_proba is not None
    best_params = dict(param_list[best_index])
    threshold = tune_threshold(y_val, best_proba)
    validation_metrics = classification_metrics(y_val, best_proba, threshold)
    cv_score = results[best_index]["score"]

    pipeline = best_pipe
    refit_on = "train"
    fit_rows = len(train)
    if refit:
        fit_frame = pd.concat([train, validation])
        pipeline = _fit_weighted(
            model_type, numeric, categorical, best_params, seed, fit_frame, half_life
        )
        refit_on = REFIT_ON
        fit_rows = len(fit_frame)
    return TrainedCandidate(
        model_type=model_type,
        pipeline=pipeline,
        params=jsonable(best_params),
        threshold=threshold,
        validation_metrics=validation_metrics,
        search_results=results,
        fit_seconds=round(time.perf_counter() - started, 3),
        feature_names=(numeric, categorical),
        refit_on=refit_on,
        validation_source=source,
        n_rows={"train": len(train), "validation": len(validation), "fit": fit_rows},
        seed=seed,
        cv_score=cv_score,
        n_folds=max(1, len(folds)),
        recency_half_life=half_life,
    )


def _held_out_roc_auc(
    pipe: Pipeline, rows: pd.DataFrame, inputs: list[str]
) -> tuple[float | None, np.ndarray]:
    """ROC AUC of a fitted pipeline on held-out rows (``None`` for one class) and its scores."""
    proba = pipe.predict_proba(rows[inputs])[:, 1]
    return safe_roc_auc(rows[columns.LABEL].to_numpy().astype(int), proba), proba


def newest_cutoff_rows(table: pd.DataFrame) -> pd.DataFrame:
    """The rows of the latest cutoff of a labelled table (where champion and challenger meet)."""
    cutoffs = pd.to_datetime(table[columns.CUTOFF])
    return table[cutoffs == cutoffs.max()]


def refit_on_matured(held_out: TrainedCandidate, table: pd.DataFrame) -> TrainedCandidate:
    """The model to serve: the held-out fit's hyperparameters refit on every labelled row.

    The refit weighs rows as the held-out fit did (its ``recency_half_life``), counted
    from the newest cutoff of ``table``.

    ``table`` holds every cutoff whose label window has closed (the test cutoff and the
    plan's ``refit`` cutoffs included). The threshold procedure is the held-out fit's, one
    step later: the held-out fit scores the newest cutoff, whose labels it never trained on,
    and the threshold that maximises F1 there is the served model's (the held-out fit's own
    was tuned on validation by the fit before it). The held-out fit's metrics stay the
    honest estimate; nothing here is scored on rows it trained on.

    Args:
        held_out: The chosen candidate as evaluated (fit on train + validation).
        table: The labelled table of the run (all splits).

    Returns:
        A candidate with ``refit_on`` :data:`SERVED_REFIT_ON`, ``refit_through`` the newest
        cutoff and ``n_rows["fit"]`` the rows it was fit on.
    """
    started = time.perf_counter()
    newest = newest_cutoff_rows(table)
    threshold = tune_threshold(
        newest[columns.LABEL].to_numpy().astype(int), held_out.predict_proba(newest)
    )
    numeric, categorical = held_out.feature_names
    pipeline = _fit_weighted(
        held_out.model_type,
        numeric,
        categorical,
        held_out.params,
        held_out.seed,
        table,
        held_out.recency_half_life,
    )
    return dataclasses.replace(
        held_out,
        pipeline=pipeline,
        threshold=threshold,
        fit_seconds=round(time.perf_counter() - started, 3),
        refit_on=SERVED_REFIT_ON,
        refit_through=pd.Timestamp(newest[columns.CUTOFF].iloc[0]).date().isoformat(),
        n_rows={**held_out.n_rows, "fit": len(table), "threshold": len(newest)},
    )


def _fit_weighted(
    model_type: str,
    numeric: Sequence[str],
    categorical: Sequence[str],
    params: dict[str, Any],
    seed: int,
    rows: pd.DataFrame,
    half_life: float,
) -> Pipeline:
    """Builds and fits a pipeline on ``rows``; newer cutoffs weigh more (``recency_weights``).

    With ``half_life`` 0 no sample weights reach the classifier: the fit is the unweighted one.
    """
    y = rows[columns.LABEL].to_numpy().astype(int)
    weights = recency_weights(rows[columns.CUTOFF], half_life)
    pipe = build_pipeline(
        model_type, numeric, categorical, _fit_params(model_type, params, y, weights), seed
    )
    weighted = {"model__sample_weight": weights} if half_life > 0 else {}
    pipe.fit(rows[list(numeric) + list(categorical)], y, **weighted)
    return pipe


def _fit_params(
    model_type: str, params: dict[str, Any], y: np.ndarray, weights: np.ndarray
) -> dict[str, Any]:
    """Adds data-dependent settings: XGBoost's ``scale_pos_weight`` = negatives / positives.

    The classes are counted with the sample weights the fit uses.
    """
    out = dict(params)
    if model_type == "xgboost" and "scale_pos_weight" not in out:
        positives = float(weights[y == 1].sum())
        negatives = float(weights[y == 0].sum())
        out["scale_pos_weight"] = negatives / positives if positives else 1.0
    return out


def save_candidate(candidate: TrainedCandidate, directory: str | Path) -> Path:
    """Writes a candidate to ``directory`` (created): ``pipeline.joblib`` + ``candidate.json``.

    Args:
        candidate: The candidate to save.
        directory: Target folder, e.g. a KFP output artifact's path.

    Returns:
        The directory.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(candidate.pipeline, out / PIPELINE_FILE)
    meta = {
        "model_type": candidate.model_type,
        "params": candidate.params,
        "threshold": candidate.threshold,
        "validation_metrics": candidate.validation_metrics,
        "search_results": candidate.search_results,
        "fit_seconds": candidate.fit_seconds,
        "feature_names": {
            "numeric": list(candidate.feature_names[0]),
            "categorical": list(candidate.feature_names[1]),
        },
        "selection_metric": candidate.selection_metric,
        "refit_on": candidate.refit_on,
        "validation_source": candidate.validation_source,
        "n_rows": candidate.n_rows,
        "seed": candidate.seed,
        "refit_through": candidate.refit_through,
        "cv_score": candidate.cv_score,
        "n_folds": candidate.n_folds,
        "recency_half_life": candidate.recency_half_life,
        "versions": {"xgboost": xgboost.__version__, "scikit-learn": _sklearn_version()},
    }
    (out / CANDIDATE_FILE).write_text(json.dumps(jsonable(meta), indent=2, allow_nan=False))
    return out


def load_candidate(directory: str | Path) -> TrainedCandidate:
    """Reads a candidate written by :func:`save_candidate` (trusted, project-made files only)."""
    src = Path(directory)
    meta = json.loads((src / CANDIDATE_FILE).read_text())
    pipeline = joblib.load(src / PIPELINE_FILE)
    names = meta["feature_names"]
    return TrainedCandidate(
        model_type=meta["model_type"],
        pipeline=pipeline,
        params=meta["params"],
        threshold=float(meta["threshold"]),
        validation_metrics=meta["validation_metrics"],
        search_results=meta["search_results"],
        fit_seconds=float(meta["fit_seconds"]),
        feature_names=(list(names["numeric"]), list(names["categorical"])),
        selection_metric=meta.get("selection_metric", SELECTION_METRIC),
        refit_on=meta.get("refit_on", REFIT_ON),
        validation_source=meta.get("validation_source", "split"),
        n_rows=meta.get("n_rows", {}),
        seed=int(meta.get("seed", 0)),
        refit_through=str(meta.get("refit_through", "")),
        cv_score=meta.get("cv_score"),
        n_folds=int(meta.get("n_folds", 1)),
        recency_half_life=float(meta.get("recency_half_life", 0.0)),
    )


def _sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


def _check_model_type(model_type: str) -> None:
    if model_type not in CANDIDATES:
        raise ValueError(f"unknown model type {model_type!r}; expected one of {CANDIDATES}")
