"""The protocol options: what each command hands to its run (no pipeline runs here)."""

import dataclasses

import pytest

from churn_kfp.cli import main as cli
from churn_kfp.core.protocol import PROTOCOL, SIMULATION_PROTOCOL, Protocol, option_of
from churn_kfp.runs import retraining, simulation, training


class Stop(Exception):
    """Raised by the stand-in runs once they have what the command handed them."""


def run_cli(argv):
    with pytest.raises(Stop):
        cli.main(argv)


@pytest.fixture
def captured(monkeypatch, tmp_path):
    """Replaces the runs with stand-ins that record their arguments."""
    monkeypatch.setenv("CHURN_HOME", str(tmp_path))
    calls = {}

    def fake_training(arguments, settings, quiet=False, progress=False):
        calls["training"] = arguments
        raise Stop

    def fake_retraining(arguments, settings, quiet=False, progress=False):
        calls["retraining"] = arguments
        raise Stop

    def fake_simulation(settings, **kwargs):
        calls["simulation"] = kwargs
        raise Stop

    monkeypatch.setattr(training, "run_training", fake_training)
    monkeypatch.setattr(retraining, "run_retraining", fake_retraining)
    monkeypatch.setattr(simulation, "run_simulation", fake_simulation)
    return calls


def test_run_hands_the_training_pipeline_its_documented_arguments(captured):
    run_cli(["run"])
    assert captured["training"] == {
        "landing_zone": "",
        "model_name": "churn-classifier",
        "generate": True,
        "n_customers": 5000,
        "n_months": 6,
        "start_month": "2025-01",
        "seed": 42,
        "drift_from_month": 0,
        "until": "",
        "horizon_days": 30,
        "n_train_cutoffs": 3,
        "eligibility_days": 90,
        "windows": "30,60,90",
        "test_cutoff": "",
        "cutoff_spacing": "MS",
        "n_iter": 6,
        "validation_folds": 2,
        "recency_half_life": 0.0,
        "min_f1": 0.5,
        "min_roc_auc": 0.7,
        "max_train_test_gap": 0.15,
        "promotion_margin": 0.0,
    }


def test_run_options_reach_the_arguments(captured):
    argv = ["run", "--no-generate", "--train-cutoffs", "2", "--max-gap", "0.3", "--margin", "0.1"]
    run_cli([*argv, "--cutoff-spacing", "14d", "--landing-zone", "/data"])
    arguments = captured["training"]
    assert arguments["generate"] is False and arguments["landing_zone"] == "/data"
    assert arguments["n_train_cutoffs"] == 2 and arguments["cutoff_spacing"] == "14d"
    assert arguments["max_train_test_gap"] == 0.3 and arguments["promotion_margin"] == 0.1


def test_run_refuses_a_bad_cutoff_spacing(capsys):
    with pytest.raises(SystemExit):
        cli.main(["run", "--cutoff-spacing", "fortnightly"])
    assert "--cutoff-spacing" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["abc", "30,,90", "30,sixty", "0,30", "-30", ""])
def test_run_refuses_bad_windows_before_any_pipeline(value, captured, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["run", "--windows", value])
    assert exit_info.value.code == 2 and "training" not in captured
    err = capsys.readouterr().err
    assert "argument --windows: expected comma-separated whole numbers of days" in err
    assert repr(value) in err and "Traceback" not in err


def test_run_accepts_windows_with_blanks(captured):
    run_cli(["run", "--windows", " 14, 28 ,56"])
    assert captured["training"]["windows"] == "14,28,56"


def test_retrain_hands_the_retraining_pipeline_its_arguments(captured):
    run_cli(["retrain", "--no-prediction-drift", "--candidate-models", "xgboost, random_forest"])
    arguments = captured["retraining"]
    assert arguments["n_iter"] == 4 and arguments["n_train_cutoffs"] == 3
    assert arguments["prediction_drift_triggers"] is False
    assert arguments["candidate_models"] == ["xgboost", "random_forest"]
    assert arguments["retraining_enabled"] is True and arguments["period"] == ""
    assert "test_cutoff" not in arguments and "run_tag" not in arguments


def test_retrain_hands_every_decision_threshold_to_the_pipeline(captured):
    run_cli(["retrain", "--drift-persistence", "3", "--backoff-periods", "1"])
    arguments = captured["retraining"]
    assert arguments["drift_persistence"] == 3 and arguments["backoff_periods"] == 1
    assert arguments["performance_drop"] == 0.05 and arguments["drift_effect_floor"] == 0.2
    assert arguments["retrain_threshold"] == 0.0 and arguments["drift_threshold"] == 0.3


def test_simulate_passes_the_simulation_protocol(captured):
    run_cli(["simulate", "--seed", "3", "--n-iter", "1"])
    protocol = captured["simulation"]["protocol"]
    assert protocol == dataclasses.replace(SIMULATION_PROTOCOL, seed=3, n_iter=1)


def test_every_protocol_parameter_has_its_own_flag():
    flags = [option_of(f.name).flag for f in dataclasses.fields(Protocol)]
    assert len(set(flags)) == len(flags)
    assert PROTOCOL.as_arguments()["candidate_models"] == list(PROTOCOL.candidate_models)
