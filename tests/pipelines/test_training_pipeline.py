"""The training pipeline end to end through kfp.local, on small synthetic data."""

import json
from pathlib import Path

import pytest

from churn_kfp.core.config import Settings
from churn_kfp.data.storage import LocalLandingZone, partition_key, read_frame, write_frame
from churn_kfp.orchestration.localrun import PipelineRunError
from churn_kfp.runs.training import run_training

# each test runs (or waits for) a whole training run
pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(600)]

SMALL = {
    "landing_zone": "",
    "model_name": "churn-classifier",
    "generate": True,
    "n_customers": 1500,
    "n_months": 5,
    "start_month": "2025-01",
    "seed": 7,
    "drift_from_month": 0,
    "until": "",
    "horizon_days": 30,
    "n_train_cutoffs": 2,
    "eligibility_days": 90,
    "windows": "30,60,90",
    "n_iter": 2,
    "min_f1": 0.3,
    "min_roc_auc": 0.6,
    "max_train_test_gap": 0.3,
    "promotion_margin": 0.0,
}


@pytest.fixture(scope="module")
def home(tmp_path_factory, monkeypatch_module):
    path = tmp_path_factory.mktemp("churn-home")
    for var in ("CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT"):
        monkeypatch_module.delenv(var, raising=False)
    monkeypatch_module.setenv("CHURN_HOME", str(path))
    return path


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def first_run(home):
    return run_training(dict(SMALL), Settings.from_env(), quiet=True)


def _registered_versions(settings, name="churn-classifier"):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))


def test_first_run_registers_and_promotes_version_1(first_run, home):
    summary = json.loads((home / "last-run.json").read_text())
    assert summary == json.loads(json.dumps(first_run, default=str))
    assert summary["status"] == "succeeded"
    assert summary["pipeline"] == "churn-training"
    assert summary["model_name"] == "churn-classifier"
    assert summary["model_version"] == "1"
    assert summary["champion_version"] == "1"
    assert summary["promoted"] is True
    assert set(summary["metrics"]) >= {"f1", "precision", "recall", "accuracy", "roc_auc"}
    assert 0.5 < summary["metrics"]["roc_auc"] <= 1.0
    assert set(summary["candidates"]) == {"xgboost", "logistic_regression", "random_forest"}
    assert {"roc_auc", "pr_auc"} <= set(summary["baselines"]["recency_only"])
    assert (home / "reports").is_dir()
    report = summary["report_path"]
    assert report.startswith(str(home)) and "<html" in Path(report).read_text().lower()
    assert summary["elapsed_s"] > 0


def test_a_second_run_on_the_same_data_and_seed_keeps_the_champion(first_run, home):
    """Same seed, same data: the challenger is the first run's model again (the same
    held-out metrics), so it cannot beat the champion, which is that model refit on the
    comparison cutoff too; version 2 is registered, not promoted."""
    second = run_training(dict(SMALL), Settings.from_env(), quiet=True)
    assert second["model_version"] == "2"
    assert second["metrics"] == first_run["metrics"]  # the same model, held out the same way
    assert second["promoted"] is False
    assert second["champion_version"] == "1"
    assert second["decision"]


def test_malformed_partition_fails_naming_file_and_registers_nothing(first_run, home):
    settings = Settings.from_env()
    zone = LocalLandingZone(settings.landing_zone)
    key = partition_key("transactions", 2025, 3)
    original = read_frame(zone, key)
    before = _registered_versions(settings)
    try:
        write_frame(zone, key, original.drop(columns=["amount"]))
        args = dict(SMALL, generate=False)
        with pytest.raises(PipelineRunError) as excinfo:
            run_training(args, settings, quiet=True)
        message = str(excinfo.value)
        assert "ingest-and-validate" in message
        assert "sales_2025_03.csv" in message and "amount" in message
        assert _registered_versions(settings) == before
        failure = json.loads((home / "last-run.json").read_text())
        assert failure["status"] == "failed" and "amount" in failure["error"]
    finally:
        write_frame(zone, key, original)
