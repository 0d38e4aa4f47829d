"""Pure metrics of churn scores (churn_kfp.learn.metrics) on hand examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from churn_kfp.learn import metrics


def test_classification_metrics_match_sklearn() -> None:
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1, 1, 0])
    proba = np.array([0.1, 0.4, 0.35, 0.8, 0.65, 0.9, 0.2, 0.55, 0.3, 0.7])
    m = metrics.classification_metrics(y, proba, threshold=0.5)
    pred = (proba >= 0.5).astype(int)  # [0,0,0,1,1,1,0,1,0,1]: tp=3 fp=2 fn=2 tn=3
    assert m["precision"] == pytest.approx(precision_score(y, pred)) == pytest.approx(3 / 5)
    assert m["recall"] == pytest.approx(recall_score(y, pred)) == pytest.approx(3 / 5)
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred)) == pytest.approx(0.6)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, proba))
    assert (m["n"], m["positives"], m["base_rate"], m["threshold"]) == (10, 5, 0.5, 0.5)
    assert metrics.confusion(y, pred) == [[3, 2], [2, 3]]


def test_lift_and_capture_on_hand_example() -> None:
    # 20 rows, 5 churners; the top decile is the 2 highest scores: one churner, one not.
    y = np.zeros(20, dtype=int)
    y[[0, 5, 6, 7, 8]] = 1
    proba = np.linspace(1.0, 0.05, 20)  # row 0 highest, row 1 second
    m = metrics.classification_metrics(y, proba, 0.5)
    # top-2 churn rate 1/2 over base rate 5/20 -> lift 2.0; captured 1 of 5 churners.
    assert m["lift_top_decile"] == pytest.approx(2.0)
    assert m["capture_top_decile"] == pytest.approx(0.2)
    # Small sets still use at least one row: top 1 of 5 is a churner, base rate 2/5.
    lift, capture = metrics.lift_capture([1, 0, 1, 0, 0], [0.9, 0.8, 0.1, 0.2, 0.3])
    assert (lift, capture) == (pytest.approx(2.5), pytest.approx(0.5))


def test_single_class_input_does_not_crash() -> None:
    m = metrics.classification_metrics([0, 0, 0], [0.2, 0.7, 0.4], 0.5)
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert m["lift_top_decile"] is None and m["capture_top_decile"] is None
    assert m["precision"] == 0.0 and m["accuracy"] == pytest.approx(2 / 3)
    assert metrics.roc_curve_points([1, 1], [0.3, 0.9]) == ([], [], [])
    assert metrics.pr_curve_points([0, 0], [0.3, 0.9]) == ([], [])
    empty = metrics.classification_metrics([], [], 0.5)
    assert empty["n"] == 0 and empty["f1"] is None


def test_roc_curve_points_are_finite_and_downsampled() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 5000)
    proba = np.clip(0.3 * y + rng.uniform(0, 0.7, 5000), 0, 1)
    fpr, tpr, thresholds = metrics.roc_curve_points(y, proba, max_points=50)
    assert 2 <= len(fpr) <= 50 and len(fpr) == len(tpr) == len(thresholds)
    assert all(math.isfinite(t) for t in thresholds)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert thresholds[0] >= proba.max()
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
