import numpy as np
import pandas as pd
import pytest

from churn_kfp.core.dates import label_window_closed
from churn_kfp.loop.monitor import evaluate_matured, labels_for
from churn_kfp.loop.periods import iso_date
from churn_kfp.loop.state import make_predictions


def _features(ids, cutoff):
    return pd.DataFrame({"customer_id": ids, "cutoff": pd.Timestamp(cutoff)})


def test_a_cutoff_is_judged_once_its_label_window_is_observed():
    # a 30-day window from June 1 needs data through June 30
    assert label_window_closed("2025-06-01", "2025-06-30 18:00", 30)
    assert not label_window_closed("2025-06-01", "2025-06-29", 30)


def test_delayed_label_join_on_hand_made_frames(tx):
    # cutoff Feb 1, 30-day window [Feb 1, Mar 3); labels: A 0, B 1, C 1, D 0, E 0
    predictions = make_predictions(
        _features(["A", "B", "C", "D", "E"], "2025-02-01"),
        np.array([0.8, 0.9, 0.2, 0.1, 0.6]),  # predicted churn: A, B, E (threshold 0.5)
        "1",
        0.5,
    )
    result = evaluate_matured(predictions, tx, "2025-03-31", 30, "2025-03")
    (row,) = result.to_dict("records")
    # TP = B, FP = A + E, FN = C, TN = D
    assert row["n"] == 5 and row["positives"] == 2
    assert row["precision"] == pytest.approx(1 / 3)
    assert row["recall"] == pytest.approx(1 / 2)
    assert row["f1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert row["accuracy"] == pytest.approx(2 / 5)
    assert row["roc_auc"] == pytest.approx(4 / 6)  # B > A,D,E; C > D only
    assert row["model_version"] == "1" and row["evaluated_period"] == "2025-03"
    labels = labels_for(predictions, tx, "2025-03-31", 30)
    assert dict(zip(labels["customer_id"], labels["churn"], strict=True)) == {
        "A": 0,
        "B": 1,
        "C": 1,
        "D": 0,
        "E": 0,
    }


def test_immature_cutoffs_are_not_judged(tx):
    early = make_predictions(_features(["A", "B"], "2025-02-01"), [0.5, 0.5], "1", 0.5)
    late = make_predictions(_features(["A", "B"], "2025-03-01"), [0.5, 0.5], "1", 0.5)
    both = pd.concat([early, late], ignore_index=True)
    # data through Mar 20: Feb 1's window (to Mar 2) has passed, Mar 1's (to Mar 30) has not
    result = evaluate_matured(both, tx, "2025-03-20", 30)
    assert [iso_date(c) for c in result["cutoff"]] == ["2025-02-01"]
    assert evaluate_matured(late, tx, "2025-03-20", 30).empty
    assert evaluate_matured(early.iloc[0:0], tx, "2025-03-20", 30).empty


def test_recent_periods_read_back_what_the_decision_needs(tmp_path):
    from churn_kfp.data.storage import LocalLandingZone
    from churn_kfp.loop.monitor import recent_periods
    from churn_kfp.loop.state import period_key, write_json

    zone = LocalLandingZone(tmp_path / "zone")

    def stored(champion, share, retrain, promoted):
        return {
            "champion_before": champion,
            "drift": {"share": share, "n_columns": 20, "prediction": {"drifted": share > 0.2}},
            "decision": {"retrain": retrain},
            "registration": {"promoted": promoted} if retrain else None,
        }

    write_json(zone, period_key("2025-03"), stored("1", 0.0, False, False))
    write_json(zone, period_key("2025-05"), stored("1", 0.3, True, False))
    write_json(zone, period_key("2025-06"), stored("1", 0.1, False, False))
    history = recent_periods(zone, "2025-07")
    # newest first; stops at the first month without a summary (2025-04)
    assert history == [
        {
            "period": "2025-06",
            "champion": "1",
            "drift_share": 0.1,
            "prediction_drift": False,
            "retrained": False,
            "promoted": False,
        },
        {
            "period": "2025-05",
            "champion": "1",
            "drift_share": 0.3,
            "prediction_drift": True,
            "retrained": True,
            "promoted": False,
        },
    ]
    assert recent_periods(zone, "2025-07", limit=1) == history[:1]
    assert recent_periods(zone, "2025-03") == []
