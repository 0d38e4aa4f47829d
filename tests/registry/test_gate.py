import math

import numpy as np
import pytest

from churn_kfp.registry.gate import GateConfig, compare_with_champion, gate, metric_value

OPEN_GATE = GateConfig(min_f1=None, min_roc_auc=None, max_train_test_gap=None)


@pytest.mark.parametrize(
    ("candidate", "champion", "margin", "promote"),
    [
        (0.60, None, 0.0, True),  # no champion yet
        (0.10, None, 0.05, True),  # no champion: margin is irrelevant
        (0.80, 0.70, 0.0, True),  # better
        (0.70, 0.80, 0.0, False),  # worse
        (0.75, 0.75, 0.0, False),  # tie keeps the champion
        (0.76, 0.75, 0.02, False),  # better, but not by the margin
        (0.78, 0.75, 0.02, True),  # better by more than the margin
        (0.77, 0.75, 0.02, False),  # exactly the margin is still a tie
        (float("nan"), 0.75, 0.0, False),  # candidate metric undefined
        (0.75, float("nan"), 0.0, True),  # champion metric undefined
    ],
)
def test_compare_with_champion(candidate, champion, margin, promote):
    decision = compare_with_champion(candidate, champion, margin, metric="f1")
    assert decision.promote is promote
    assert decision.reason


def test_compare_with_champion_reason_names_the_metric():
    reason = compare_with_champion(0.5, 0.6, 0.0, metric="f1").reason
    assert "f1" in reason and "champion kept" in reason


@pytest.mark.parametrize(
    ("metrics", "gap", "passed", "fragments"),
    [
        ({"f1": 0.8, "roc_auc": 0.9}, 0.05, True, []),
        ({"f1": 0.8, "roc_auc": 0.9}, None, True, []),  # gap unknown: not checked
        ({"f1": 0.4, "roc_auc": 0.9}, 0.05, False, ["test f1"]),
        ({"f1": 0.8, "roc_auc": 0.6}, 0.05, False, ["test roc_auc"]),
        ({"f1": 0.8, "roc_auc": 0.9}, 0.30, False, ["overfitting"]),
        ({"roc_auc": 0.9}, 0.0, False, ["f1 is missing"]),
        ({"f1": float("nan"), "roc_auc": 0.9}, 0.0, False, ["f1 is missing"]),
        ({"f1": 0.1, "roc_auc": 0.1}, 0.9, False, ["test f1", "test roc_auc", "overfitting"]),
    ],
)
def test_gate(metrics, gap, passed, fragments):
    result = gate(metrics, gap, GateConfig())
    assert result.passed is passed
    assert len(result.reasons) == len(fragments)
    for reason, fragment in zip(result.reasons, fragments, strict=True):
        assert fragment in reason


def test_gate_checks_can_be_disabled():
    assert gate({}, 5.0, OPEN_GATE).passed


def test_gate_config_rejects_unknown_metric_and_negative_margin():
    with pytest.raises(ValueError, match="metric"):
        GateConfig(metric="mse")
    with pytest.raises(ValueError, match="margin"):
        GateConfig(promotion_margin=-0.1)


def test_metric_value_uses_the_threshold_and_is_nan_for_one_class():
    y = np.array([0, 1, 1, 0])
    proba = np.array([0.2, 0.6, 0.4, 0.7])
    assert metric_value("recall", y, proba, threshold=0.5) == 0.5
    assert metric_value("recall", y, proba, threshold=0.3) == 1.0
    assert metric_value("roc_auc", y, proba) == 0.5
    assert math.isnan(metric_value("roc_auc", np.ones(4), proba))
    with pytest.raises(ValueError, match="unknown metric"):
        metric_value("mse", y, proba)
