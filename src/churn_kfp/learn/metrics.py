"""Pure metrics of churn scores: ranking and threshold metrics, lift, confusion, curve points.

Arrays in, plain Python values out; nothing here fits a model. Training scores its random
search with these, evaluation its candidates and baselines, and monitoring a champion's
matured predictions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

__all__ = [
    "TOP_FRACTION",
    "classification_metrics",
    "confusion",
    "lift_capture",
    "pr_curve_points",
    "roc_curve_points",
    "safe_average_precision",
    "safe_roc_auc",
]

TOP_FRACTION = 0.1
"""Share of the highest scores behind ``lift_top_decile`` and ``capture_top_decile``."""


def safe_roc_auc(
    y: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray
) -> float | None:
    """ROC AUC, or None when ``y`` holds a single class."""
    y_arr = np.asarray(y).astype(int)
    if y_arr.size == 0 or len(np.unique(y_arr)) < 2:
        return None
    return float(roc_auc_score(y_arr, np.asarray(proba, dtype=float)))


def safe_average_precision(
    y: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray
) -> float | None:
    """Average precision (PR AUC), or None when ``y`` holds a single class."""
    y_arr = np.asarray(y).astype(int)
    if y_arr.size == 0 or len(np.unique(y_arr)) < 2:
        return None
    return float(average_precision_score(y_arr, np.asarray(proba, dtype=float)))


def lift_capture(
    y: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray, fraction: float = 0.1
) -> tuple[float | None, float | None]:
    """Lift and capture rate of the top ``fraction`` of scores.

    The top group holds ``max(1, ceil(fraction * n))`` rows, highest scores first (ties keep
    input order). Lift = churn rate in the group / overall churn rate; capture = churners in
    the group / all churners.

    Returns:
        ``(lift, capture)``; both None when there are no positives.
    """
    y_arr = np.asarray(y).astype(int)
    p_arr = np.asarray(proba, dtype=float)
    positives = int(y_arr.sum())
    if y_arr.size == 0 or positives == 0:
        return None, None
    k = max(1, math.ceil(fraction * y_arr.size))
    top = np.argsort(-p_arr, kind="stable")[:k]
    hits = int(y_arr[top].sum())
    base_rate = positives / y_arr.size
    return float((hits / k) / base_rate), float(hits / positives)


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    proba: Sequence[float] | np.ndarray,
    threshold: float,
) -> dict[str, Any]:
    """Threshold and ranking metrics of churn scores.

    Args:
        y_true: True labels (0/1).
        proba: Scores, higher meaning more likely to churn.
        threshold: Predict churn when ``proba >= threshold``.

    Returns:
        ``f1``, ``precision``, ``recall``, ``accuracy`` (at the threshold; 0 when undefined),
        ``roc_auc``, ``pr_auc`` (average precision; None for a single class),
        ``base_rate``, ``lift_top_decile``, ``capture_top_decile`` (None without positives),
        ``n``, ``positives``, ``threshold``.
    """
    y_arr = np.asarray(y_true).astype(int)
    p_arr = np.asarray(proba, dtype=float)
    if y_arr.shape != p_arr.shape:
        raise ValueError(f"y_true and proba differ in shape: {y_arr.shape} vs {p_arr.shape}")
    n = int(y_arr.size)
    positives = int(y_arr.sum())
    out: dict[str, Any] = {
        "f1": None,
        "precision": None,
        "recall": None,
        "accuracy": None,
        "roc_auc": None,
        "pr_auc": None,
        "base_rate": None,
        "lift_top_decile": None,
        "capture_top_decile": None,
        "n": n,
        "positives": positives,
        "threshold": float(threshold),
    }
    if n == 0:
        return out
    pred = (p_arr >= threshold).astype(int)
    lift, capture = lift_capture(y_arr, p_arr, TOP_FRACTION)
    out.update(
        f1=float(f1_score(y_arr, pred, labels=[0, 1], zero_division=0)),
        precision=float(precision_score(y_arr, pred, labels=[0, 1], zero_division=0)),
        recall=float(recall_score(y_arr, pred, labels=[0, 1], zero_division=0)),
        accuracy=float(accuracy_score(y_arr, pred)),
        roc_auc=safe_roc_auc(y_arr, p_arr),
        pr_auc=safe_average_precision(y_arr, p_arr),
        base_rate=positives / n,
        lift_top_decile=lift,
        capture_top_decile=capture,
    )
    return out


def confusion(y: Sequence[int] | np.ndarray, pred: Sequence[int] | np.ndarray) -> list[list[int]]:
    """Returns ``[[tn, fp], [fn, tp]]`` (rows: true 0/1, columns: predicted 0/1)."""
    y_arr = np.asarray(y).astype(int)
    p_arr = np.asarray(pred).astype(int)
    return [
        [int(((y_arr == t) & (p_arr == p)).sum()) for p in (0, 1)]
        for t in (0, 1)  # true class
    ]


def _downsample(n: int, max_points: int) -> np.ndarray:
    if n <= max_points:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(2, max_points)).round().astype(int))


def roc_curve_points(
    y: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray, max_points: int = 100
) -> tuple[list[float], list[float], list[float]]:
    """ROC curve as at most ``max_points`` points with finite thresholds.

    scikit-learn's first threshold is ``inf``; it is replaced by a finite value above every
    score (1.0 for probabilities), as KFP's ``ClassificationMetrics.log_roc_curve`` needs.
    The first and last points are always kept.

    Returns:
        ``(fpr, tpr, thresholds)`` as lists; all empty when ``y`` holds a single class.
    """
    y_arr = np.asarray(y).astype(int)
    p_arr = np.asarray(proba, dtype=float)
    if y_arr.size == 0 or len(np.unique(y_arr)) < 2:
        return [], [], []
    fpr, tpr, thresholds = roc_curve(y_arr, p_arr)
    top = float(np.max(p_arr))
    above = 1.0 if top < 1.0 else float(np.nextafter(top, np.inf))
    thresholds = np.where(np.isfinite(thresholds), thresholds, above)
    keep = _downsample(len(fpr), max_points)
    return (
        [float(v) for v in fpr[keep]],
        [float(v) for v in tpr[keep]],
        [float(v) for v in thresholds[keep]],
    )


def pr_curve_points(
    y: Sequence[int] | np.ndarray, proba: Sequence[float] | np.ndarray, max_points: int = 100
) -> tuple[list[float], list[float]]:
    """Precision-recall curve as at most ``max_points`` points; empty for a single class."""
    y_arr = np.asarray(y).astype(int)
    if y_arr.size == 0 or len(np.unique(y_arr)) < 2:
        return [], []
    precision, recall, _ = precision_recall_curve(y_arr, np.asarray(proba, dtype=float))
    keep = _downsample(len(precision), max_points)
    return [float(v) for v in precision[keep]], [float(v) for v in recall[keep]]
