"""The promotion rules: the absolute quality gate and the candidate-versus-champion decision.

Pure functions, no MLflow: :func:`gate` checks a candidate's test metrics against
:class:`GateConfig`; :func:`metric_value` computes a comparison metric from churn
probabilities; :func:`compare_with_champion` decides (higher is better, ties keep the
champion). :func:`churn_kfp.registry.register.register_and_decide` applies them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from churn_kfp.registry.contract import DEFAULT_THRESHOLD

__all__ = [
    "METRICS",
    "RANKING_METRICS",
    "THRESHOLD_METRICS",
    "Decision",
    "GateConfig",
    "GateResult",
    "compare_with_champion",
    "gate",
    "metric_value",
]

THRESHOLD_METRICS = ("f1", "precision", "recall", "accuracy")
RANKING_METRICS = ("roc_auc", "pr_auc")
METRICS = THRESHOLD_METRICS + RANKING_METRICS
"""Metrics :func:`metric_value` computes; all of them are better when higher."""


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


def _as_float(value: Any) -> float | None:
    """A real, non-NaN number as float, else ``None``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    result = float(value)
    return None if math.isnan(result) else result
