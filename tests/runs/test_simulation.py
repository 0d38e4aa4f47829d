"""A short simulation through kfp.local: structure and determinism-relevant invariants.

Five months of small data: both policies train the same first model on January..April in
their own worker process, then run the retraining pipeline once, for May. The retrain
policy's F1 threshold is set to 1.0 so that it retrains (reason: degradation) while the
frozen policy only reports that it would have.
"""

import dataclasses
import json

import pytest

from churn_kfp.core.config import Settings
from churn_kfp.core.protocol import SIMULATION_PROTOCOL
from churn_kfp.runs import simulation

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    home = tmp_path_factory.mktemp("sim-home")
    settings = Settings.from_env({"CHURN_HOME": str(home)})
    protocol = dataclasses.replace(
        SIMULATION_PROTOCOL,
        seed=3,
        n_iter=1,
        retrain_threshold=1.0,
        min_f1=0.2,
        min_roc_auc=0.55,
        max_train_test_gap=0.4,
        candidate_models=("xgboost",),
    )
    return settings, simulation.run_simulation(
        settings,
        months=5,
        drift_from=5,
        initial_months=4,
        n_customers=1000,
        protocol=protocol,
        parallel=True,
        progress=False,
    )


def test_files_and_structure(result):
    settings, res = result
    stored = json.loads((settings.home / "simulation.json").read_text())
    assert stored == json.loads(json.dumps(res, default=str))
    assert (settings.reports_dir / "simulation.png").stat().st_size > 10_000
    for policy in simulation.POLICIES:
        sub = settings.home / "simulation" / policy
        assert (sub / "mlflow.db").is_file() and (sub / "landing" / "state").is_dir()
    assert res["parameters"]["drift_start_period"] == "2025-05"
    (month,) = res["months"]
    assert month["period"] == "2025-05" and month["drifted"] is True
    assert month["new_cutoff"] == "2025-06-01"
    assert set(month["policies"]) == {"retrain", "frozen"}
    assert set(res["checks"]) == {
        "frozen_f1_drops",
        "drift_detected_within_one_month",
        "retrain_triggered_with_reason",
        "retraining_beats_frozen",
    }
    table = simulation.format_table(res)
    assert "2025-05" in table and "check retrain_triggered_with_reason: PASS" in table


def test_both_policies_start_from_the_same_model(result):
    _, res = result
    retrain, frozen = res["training"]["retrain"], res["training"]["frozen"]
    # trained in two separate processes with the same seed: identical
    for key in ("test_cutoff", "champion_version", "chosen_model", "f1", "roc_auc"):
        assert retrain[key] == frozen[key], key
    assert retrain["champion_version"] == "1"


def test_the_first_month_is_judged_identically_and_only_retrain_retrains(result):
    _, res = result
    cells = res["months"][0]["policies"]
    retrain, frozen = cells["retrain"], cells["frozen"]
    # same data, same champion v1, same cutoff: same monitoring figures
    for key in ("matured_cutoff", "f1", "roc_auc", "drift_share", "prediction_drift_score"):
        assert retrain[key] == frozen[key], key
    assert retrain["matured_cutoff"] == "2025-05-01" and retrain["scored_by"] == "1"
    assert retrain["prediction_source"] == "backfill"
    assert retrain["retrained"] is True and "degradation" in retrain["reasons"]
    assert retrain["challenger_version"] == "2"
    assert retrain["champion_version"] == ("2" if retrain["promoted"] else "1")
    assert frozen["retrained"] is False and frozen["would_retrain"] is True
    assert frozen["champion_version"] == "1" and frozen["challenger_version"] is None
    assert res["summary"]["first_retrain"]["period"] == "2025-05"
    assert res["checks"]["retrain_triggered_with_reason"] is True
