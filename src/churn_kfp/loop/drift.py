"""Drift of features, predictions and the target, measured with Evidently (0.7 API).

Three comparisons, each *current* against the champion's *reference* (the rows of the
champion's most recent labelled cutoff, its test cutoff: the data it was last judged on):

- **data drift** (:func:`feature_drift`): Evidently's ``DataDriftPreset`` over the monitored
  feature columns of the new cutoff, with the normed Wasserstein distance for numbers and
  the Jensen-Shannon distance for categories, both drifted at 0.1 (Evidently's own choice
  for more than 1000 rows). They are fixed rather than left to Evidently, which switches to
  p-value tests (K-S, chi-square) below 1000 non-empty values: on a sparse column such as a
  sentiment average those flag tiny, irrelevant shifts, and the share would depend on the
  shop's size. The *drift share* is the share of monitored columns whose test says
  "drifted" (``DriftedColumnsCount``).
- **prediction drift**: the champion's churn probabilities on the new cutoff against its
  probabilities on the reference rows (``ValueDrift`` on a ``prediction`` column, in the
  same report).
- **target drift** (:func:`target_drift`): the realised churn labels of the latest matured
  cutoff against the reference labels (``ValueDrift`` on the label, as a category).

Results are read from the snapshot's ``dict()`` **by metric type and column name**, never by
position (:func:`parse_snapshot`): the preset's metric order is an implementation detail.

Monitored columns (:func:`monitored_columns`) leave out features whose distribution moves
by construction as the observed history grows, so that a stable world reads as "no drift":
cumulative counts since the start of the data (``lifetime_*``, time-decayed sums with a
half-life over 30 days), ages of the relationship (``tenure_days``, ``customer_age_days``),
and statistics over the whole purchase history (``days_since_feedback``,
``sentiment_last``, ``mean_days_between_purchases``, ``purchase_gap_cv``,
``active_span_ratio``). They stay model inputs; their drift is still computed and shown in
the report when passed explicitly. ``tests/loop/test_drift.py`` checks on a stationary
synthetic world that the monitored columns do not drift, so a new history-dependent feature
shows up there.

Evidently is imported inside the functions (it is slow to import).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from churn_kfp.core import columns

__all__ = [
    "CAT_METHOD",
    "DRIFTED_COLUMNS_COUNT",
    "DRIFT_SCORE_THRESHOLD",
    "FAIL",
    "HISTORY_DEPENDENT",
    "HISTORY_DEPENDENT_PREFIXES",
    "MAX_MONITORED_HALF_LIFE_DAYS",
    "NUM_METHOD",
    "PREDICTION_COLUMN",
    "VALUE_DRIFT",
    "ColumnDrift",
    "DriftResult",
    "feature_drift",
    "is_history_dependent",
    "monitored_columns",
    "parse_snapshot",
    "save_html",
    "target_drift",
]

NUM_METHOD = "wasserstein"
CAT_METHOD = "jensenshannon"
DRIFT_SCORE_THRESHOLD = 0.1
"""Distance at or above which a column counts as drifted (Evidently's default for both)."""

PREDICTION_COLUMN = "prediction"
"""Name of the churn-probability column in the drift frames."""

HISTORY_DEPENDENT = (
    "lifetime_frequency",
    "lifetime_monetary",
    "lifetime_quantity",
    "tenure_days",
    "customer_age_days",
    "days_since_feedback",
    "sentiment_last",
    "mean_days_between_purchases",
    "purchase_gap_cv",
    "active_span_ratio",
)
"""Features left out of the drift share by default (see the module docstring)."""

HISTORY_DEPENDENT_PREFIXES = ("lifetime_",)
MAX_MONITORED_HALF_LIFE_DAYS = 30
"""Time-decayed features with a longer half-life sum over months of history: left out."""
_DECAYED = re.compile(r"^decayed_\w+_(\d+)d$")

DRIFTED_COLUMNS_COUNT = "DriftedColumnsCount"
VALUE_DRIFT = "ValueDrift"
FAIL = "FAIL"


@dataclass
class ColumnDrift:
    """Drift of one column.

    Attributes:
        column: Column name.
        score: The test's score (a distance, or a p-value for statistical tests).
        method: Evidently's name of the test.
        threshold: The test's threshold.
        drifted: Whether the test flags drift.
    """

    column: str
    score: float | None
    method: str
    threshold: float | None
    drifted: bool


@dataclass
class DriftResult:
    """Parsed outcome of a drift report.

    Attributes:
        share: Share of monitored columns that drifted (0 when none were compared).
        n_drifted: Number of monitored columns that drifted.
        n_columns: Number of monitored columns compared.
        drifted_columns: Names of the drifted monitored columns.
        columns: Per-column results of the monitored columns, by name.
        prediction: Result of the prediction column, if it was compared.
        rows: ``{"reference": n, "current": n}``.
        note: Why drift was not measured, when it was not.
    """

    share: float = 0.0
    n_drifted: int = 0
    n_columns: int = 0
    drifted_columns: list[str] = field(default_factory=list)
    columns: dict[str, ColumnDrift] = field(default_factory=dict)
    prediction: ColumnDrift | None = None
    rows: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def monitored_columns(
    feature_names: Iterable[str], exclude: Sequence[str] | None = None
) -> list[str]:
    """The feature columns that count towards the drift share.

    Args:
        feature_names: Column names of a feature table (id/cutoff/split/label and the
            prediction column are dropped).
        exclude: Columns to leave out; default :data:`HISTORY_DEPENDENT` (and any
            ``lifetime_*`` column).

    Returns:
        The monitored columns, in table order.
    """
    names = [c for c in columns.feature_columns(feature_names) if c != PREDICTION_COLUMN]
    if exclude is None:
        return [c for c in names if not is_history_dependent(c)]
    return [c for c in names if c not in set(exclude)]


def is_history_dependent(name: str) -> bool:
    """Whether a feature's distribution moves by construction as the observed history grows."""
    if name in HISTORY_DEPENDENT or name.startswith(HISTORY_DEPENDENT_PREFIXES):
        return True
    decayed = _DECAYED.match(name)
    return decayed is not None and int(decayed.group(1)) > MAX_MONITORED_HALF_LIFE_DAYS


def _definition(frame: pd.DataFrame, names: Sequence[str], categorical: Sequence[str] = ()):
    from evidently import DataDefinition

    numerical, categories = [], list(categorical)
    for name in names:
        if name in categories:
            continue
        dtype = frame[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
            categories.append(name)
        else:
            numerical.append(name)
    return DataDefinition(numerical_columns=numerical, categorical_columns=categories)


def _prepare(frame: pd.DataFrame, names: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
    out = frame.loc[:, list(names)].copy()
    for name in categorical:
        out[name] = out[name].astype(object).where(out[name].notna(), "unknown").astype(str)
    for name in names:
        if name not in categorical and not pd.api.types.is_numeric_dtype(out[name].dtype):
            out[name] = out[name].astype(object).where(out[name].notna(), "unknown").astype(str)
    return out


def _run(report, current: pd.DataFrame, reference: pd.DataFrame, definition):
    from evidently import Dataset

    os.environ.setdefault("DO_NOT_TRACK", "1")
    return report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    feature_names: Sequence[str],
    prediction_column: str | None = PREDICTION_COLUMN,
    max_rows: int | None = 20_000,
    seed: int = 0,
) -> tuple[Any, DriftResult]:
    """Data drift of the monitored features (and prediction drift) with Evidently.

    Args:
        reference: Reference rows (features, and ``prediction_column`` if given).
        current: Current rows (same columns).
        feature_names: Monitored feature columns (see :func:`monitored_columns`).
        prediction_column: Column with the champion's churn probability, compared too (not
            part of the share); ``None`` to skip.
        max_rows: Sample each side down to this many rows (seeded) to bound the run time.
        seed: Sampling seed.

    Returns:
        ``(snapshot, result)``: Evidently's snapshot (for the HTML report) and the parsed
        result.
    """
    from evidently import Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    names = [
        c
        for c in feature_names
        if c in reference.columns and c in current.columns and c != prediction_column
    ]
    if not names:
        return None, DriftResult(note="no monitored feature columns in both frames")
    prediction = (
        prediction_column
        if prediction_column and prediction_column in reference and prediction_column in current
        else None
    )
    all_names = [*names, prediction] if prediction else list(names)
    reference, current = _sample(reference, max_rows, seed), _sample(current, max_rows, seed)
    categorical = [c for c in names if not pd.api.types.is_numeric_dtype(reference[c].dtype)]
    ref = _prepare(reference, all_names, categorical)
    cur = _prepare(current, all_names, categorical)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=list(names),
            num_method=NUM_METHOD,
            cat_method=CAT_METHOD,
            num_threshold=DRIFT_SCORE_THRESHOLD,
            cat_threshold=DRIFT_SCORE_THRESHOLD,
        )
    ]
    if prediction:
        metrics.append(
            ValueDrift(column=prediction, method=NUM_METHOD, threshold=DRIFT_SCORE_THRESHOLD)
        )
    snapshot = _run(
        Report(metrics, include_tests=True), cur, ref, _definition(ref, all_names, categorical)
    )
    result = parse_snapshot(snapshot.dict(), names, prediction)
    result.rows = {"reference": len(ref), "current": len(cur)}
    return snapshot, result


def target_drift(
    reference_labels: pd.Series, current_labels: pd.Series
) -> tuple[Any, ColumnDrift | None]:
    """Drift of the realised churn labels (as a category) against the reference labels.

    Returns:
        ``(snapshot, result)``; ``(None, None)`` when either side is empty.
    """
    from evidently import Report
    from evidently.metrics import ValueDrift

    if len(reference_labels) == 0 or len(current_labels) == 0:
        return None, None
    name = columns.LABEL
    ref = pd.DataFrame({name: reference_labels.astype(int).astype(str).to_numpy()})
    cur = pd.DataFrame({name: current_labels.astype(int).astype(str).to_numpy()})
    snapshot = _run(
        Report(
            [ValueDrift(column=name, method=CAT_METHOD, threshold=DRIFT_SCORE_THRESHOLD)],
            include_tests=True,
        ),
        cur,
        ref,
        _definition(ref, [name], [name]),
    )
    values = _value_drifts(snapshot.dict())
    return snapshot, values.get(name)


def _sample(frame: pd.DataFrame, max_rows: int | None, seed: int) -> pd.DataFrame:
    if max_rows is None or len(frame) <= max_rows:
        return frame
    return frame.sample(n=max_rows, random_state=seed)


def _metric_type(config: Mapping[str, Any] | None) -> str:
    """``"evidently:metric_v2:ValueDrift"`` -> ``"ValueDrift"``."""
    return str((config or {}).get("type", "")).rsplit(":", 1)[-1]


def _float(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def _value_drifts(snapshot: Mapping[str, Any]) -> dict[str, ColumnDrift]:
    """Per-column ``ValueDrift`` results by column name, with the test verdict if present."""
    verdicts: dict[str, bool] = {}
    for test in snapshot.get("tests", []) or []:
        params = (test.get("metric_config") or {}).get("params") or {}
        if _metric_type(params) == VALUE_DRIFT and "column" in params:
            status = test.get("status", "")
            status = getattr(status, "value", status)  # an enum in dict(), a string in JSON
            verdicts[str(params["column"])] = str(status).upper() == FAIL
    results: dict[str, ColumnDrift] = {}
    for metric in snapshot.get("metrics", []) or []:
        config = metric.get("config") or {}
        if _metric_type(config) != VALUE_DRIFT or "column" not in config:
            continue
        column = str(config["column"])
        score = _float(metric.get("value"))
        method = str(config.get("method") or "")
        threshold = _float(config.get("threshold"))
        drifted = verdicts.get(column)
        if drifted is None:
            drifted = _verdict(score, method, threshold)
        results[column] = ColumnDrift(column, score, method, threshold, bool(drifted))
    return results


def _verdict(score: float | None, method: str, threshold: float | None) -> bool:
    """Drift verdict without a test result: p-values drift below, distances at/above."""
    if score is None or threshold is None:
        return False
    if "p_value" in method.lower() or "test" in method.lower():
        return score < threshold
    return score >= threshold


def parse_snapshot(
    snapshot: Mapping[str, Any],
    feature_names: Sequence[str],
    prediction_column: str | None = None,
) -> DriftResult:
    """Reads a drift snapshot's ``dict()`` by metric type and column name.

    Args:
        snapshot: ``Snapshot.dict()`` of a report with ``DataDriftPreset`` (and optionally
            a ``ValueDrift`` of the prediction column), run with ``include_tests=True``.
        feature_names: The monitored feature columns.
        prediction_column: The prediction column's name, if it was compared.

    Returns:
        The parsed result. The share is Evidently's own ``DriftedColumnsCount`` when the
        snapshot has one for exactly the monitored columns, else recomputed from the
        per-column verdicts.
    """
    values = _value_drifts(snapshot)
    monitored = {c: values[c] for c in feature_names if c in values}
    drifted = [c for c in feature_names if c in monitored and monitored[c].drifted]
    n_columns = len(monitored)
    share = len(drifted) / n_columns if n_columns else 0.0
    count = len(drifted)
    for metric in snapshot.get("metrics", []) or []:
        config = metric.get("config") or {}
        if _metric_type(config) != DRIFTED_COLUMNS_COUNT:
            continue
        scope = config.get("columns")
        if scope is not None and sorted(scope) != sorted(feature_names):
            continue
        value = metric.get("value") or {}
        if isinstance(value, Mapping) and _float(value.get("share")) is not None:
            share = float(value["share"])
            count = int(round(float(value.get("count", count))))
    return DriftResult(
        share=share,
        n_drifted=count,
        n_columns=n_columns,
        drifted_columns=drifted,
        columns=monitored,
        prediction=values.get(prediction_column) if prediction_column else None,
    )


def save_html(snapshot: Any, path: str | os.PathLike[str], empty_message: str = "") -> Path:
    """Writes a snapshot's HTML report (or a small page saying why there is none)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if snapshot is None:
        path.write_text(
            "<!doctype html><html><body><h1>No drift report</h1>"
            f"<p>{empty_message or 'nothing to compare'}</p></body></html>"
        )
    else:
        snapshot.save_html(str(path))
    return path
