import json

import numpy as np
import pandas as pd
import pytest

from churn_kfp.data.storage import LocalLandingZone
from churn_kfp.loop import state
from churn_kfp.loop.monitor import evaluate_matured


def _features(ids, cutoff):
    return pd.DataFrame({"customer_id": ids, "cutoff": pd.Timestamp(cutoff)})


def test_prediction_store_keeps_one_prediction_per_customer_and_cutoff(tmp_path):
    zone = LocalLandingZone(tmp_path)
    rows = _features(["C2", "C1", "C3"], "2025-06-01")
    first = state.make_predictions(rows, np.array([0.9, 0.2, 0.5]), "1", 0.5)
    assert list(first["customer_id"]) == ["C1", "C2", "C3"]
    assert list(first["prediction"]) == [0, 1, 1]
    state.write_predictions(zone, first)
    state.write_predictions(zone, first)  # a re-run: same key, overwritten
    assert len(state.read_predictions(zone)) == 3
    # a later run of the same period with another champion replaces, never adds
    second = state.make_predictions(rows, np.array([0.1, 0.2, 0.3]), "2", 0.25)
    state.write_predictions(zone, second)
    stored = state.read_predictions(zone)
    assert len(stored) == 3 and set(stored["model_version"]) == {"2"}
    assert zone.list_keys("state/predictions/") == [
        "state/predictions/cutoff=2025-06-01/model=2.parquet"
    ]
    other = state.make_predictions(_features(["C1"], "2025-07-01"), np.array([0.7]), "2", 0.5)
    state.write_predictions(zone, other)
    assert sorted(state.prediction_index(zone)) == ["2025-06-01", "2025-07-01"]
    assert len(state.read_predictions(zone, ["2025-07-01"])) == 1


def test_prediction_store_refuses_ambiguous_frames(tmp_path):
    zone = LocalLandingZone(tmp_path)
    rows = _features(["C1", "C1"], "2025-06-01")
    with pytest.raises(ValueError, match="duplicate"):
        state.write_predictions(zone, state.make_predictions(rows, np.array([0.1, 0.2]), "1", 0.5))
    mixed = pd.concat(
        [
            state.make_predictions(_features(["C1"], "2025-06-01"), [0.1], "1", 0.5),
            state.make_predictions(_features(["C2"], "2025-06-01"), [0.1], "2", 0.5),
        ]
    )
    with pytest.raises(ValueError, match="predictions of"):
        state.write_predictions(zone, mixed)
    with pytest.raises(ValueError, match="probabilities"):
        state.make_predictions(rows, np.array([0.1]), "1", 0.5)


def test_performance_history_upserts_by_cutoff_and_version(tmp_path, tx):
    zone = LocalLandingZone(tmp_path)
    predictions = state.make_predictions(
        _features(["A", "B", "C"], "2025-02-01"), [0.8, 0.9, 0.2], "1", 0.5
    )
    rows = evaluate_matured(predictions, tx, "2025-03-31", 30, "2025-03")
    history = state.upsert_performance(state.read_performance(zone), rows)
    state.write_performance(zone, history)
    again = state.upsert_performance(state.read_performance(zone), rows)
    assert len(again) == 1
    other = rows.assign(model_version="2")
    assert len(state.upsert_performance(again, other)) == 2
    records = state.performance_records(again)
    assert records[0]["cutoff"] == "2025-02-01"
    json.dumps(records)


def test_json_records_round_trip_and_keys(tmp_path):
    zone = LocalLandingZone(tmp_path)
    assert state.read_json(zone, state.period_key("2025-05")) is None
    state.write_json(zone, state.period_key("2025-05"), {"n": np.int64(3)})
    assert state.read_json(zone, "state/periods/2025-05.json") == {"n": 3}
    assert state.alerts_key("2025-05") == "state/alerts/2025-05.json"
    assert state.run_key("a b/c") == "state/runs/a_b_c.json"
    with pytest.raises(ValueError, match="YYYY-MM"):
        state.period_key("May")
