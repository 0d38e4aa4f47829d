"""The retraining pipeline end to end through kfp.local, on small synthetic data.

One module-scoped story (each run costs tens of seconds):

1. the training pipeline trains v1 on January..April;
2. May arrives; a forced run processes it: backfills and judges May 1, scores June 1,
   retrains (one candidate model, to keep the test short);
3. the same month again: skipped, nothing registered, nothing duplicated;
4. June arrives; a run that crashes in ``finalize-period`` (test hook ``CHURN_FAIL_AT``:
   after monitoring and the decision, before the commit) leaves champion, ledger and
   histories as they were;
5. the next run completes June.
"""

import dataclasses
import json
from pathlib import Path

import pytest

from churn_kfp.core.config import MODEL_NAME, Settings
from churn_kfp.data import datagen
from churn_kfp.data.storage import open_landing_zone
from churn_kfp.loop import ledger
from churn_kfp.loop.failpoints import FAIL_AT_ENV
from churn_kfp.loop.periods import iso_date
from churn_kfp.loop.state import (
    ALERTS_PREFIX,
    PERIODS_PREFIX,
    PREDICTIONS_PREFIX,
    period_key,
    prediction_index,
    read_json,
    read_performance,
)
from churn_kfp.orchestration.localrun import PipelineRunError
from churn_kfp.runs.retraining import run_retraining
from churn_kfp.runs.training import run_training

# the first test waits for the training run and the retraining runs of the module fixtures
pytestmark = [pytest.mark.pipeline, pytest.mark.timeout(900)]

SEED = 7
TRAINING = {
    "landing_zone": "",
    "model_name": MODEL_NAME,
    "generate": False,
    "seed": SEED,
    "until": "",
    "horizon_days": 30,
    "n_train_cutoffs": 2,
    "eligibility_days": 90,
    "windows": "30,60,90",
    "n_iter": 1,
    "min_f1": 0.3,
    "min_roc_auc": 0.6,
    "max_train_test_gap": 0.3,
    "promotion_margin": 0.0,
}
RETRAINING = {
    "landing_zone": "",
    "model_name": MODEL_NAME,
    "period": "",
    "horizon_days": 30,
    "eligibility_days": 90,
    "windows": "30,60,90",
    "n_train_cutoffs": 2,
    "n_iter": 1,
    "seed": SEED,
    "min_f1": 0.3,
    "min_roc_auc": 0.6,
    "max_train_test_gap": 0.3,
    "promotion_margin": 0.0,
    "retrain_threshold": 0.0,  # only drift or force retrain in this test
    "performance_drop": 1.0,
    "drift_threshold": 1.0,
    "prediction_drift_triggers": False,
    "retraining_enabled": True,
    "force": False,
    "drift_columns": "",
    "webhook_url": "",
    "candidate_models": ["xgboost"],
}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def world(tmp_path_factory, monkeypatch_module):
    home = tmp_path_factory.mktemp("churn-home")
    for var in ("CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT"):
        monkeypatch_module.delenv(var, raising=False)
    monkeypatch_module.delenv(FAIL_AT_ENV, raising=False)
    monkeypatch_module.setenv("CHURN_HOME", str(home))
    settings = Settings.from_env()
    data = datagen.simulate(n_customers=1500, n_months=6, seed=SEED, drift_from_month=5)
    zone = open_landing_zone(settings.landing_zone)

    def write_through(last_month):
        """A new month arrives: the generator rewrites its whole dataset up to that month."""
        months = data.months[: data.months.index(last_month) + 1]
        datagen.write_to_landing_zone(dataclasses.replace(data, months=months), zone)

    write_through(data.months[3])
    trained = run_training(dict(TRAINING), settings, quiet=True)
    assert trained["champion_version"] == "1"
    return {
        "settings": settings,
        "zone": zone,
        "write_through": write_through,
        "months": data.months,
    }


def _versions(settings):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))


def _champion(settings):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)
    return str(client.get_model_version_by_alias(MODEL_NAME, "champion").version)


def _state(world):
    zone = world["zone"]
    return {
        "ledger": sorted(ledger.read_ledger(zone)[0]),
        "predictions": sorted(zone.list_keys(PREDICTIONS_PREFIX + "/")),
        "performance": read_performance(zone).to_json(),
        "periods": sorted(zone.list_keys(PERIODS_PREFIX + "/")),
        "alerts": sorted(zone.list_keys(ALERTS_PREFIX + "/")),
        "versions": _versions(world["settings"]),
        "champion": _champion(world["settings"]),
    }


@pytest.fixture(scope="module")
def may(world):
    world["write_through"]("2025-05")
    return run_retraining(dict(RETRAINING, force=True), world["settings"], quiet=True)


@pytest.fixture(scope="module")
def may_again(world, may):
    before = _state(world)
    result = run_retraining(dict(RETRAINING, force=True), world["settings"], quiet=True)
    return before, result


@pytest.fixture(scope="module")
def june(world, may_again):
    world["write_through"]("2025-06")
    before = _state(world)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(FAIL_AT_ENV, "finalize-period")
        with pytest.raises(PipelineRunError) as excinfo:
            run_retraining(dict(RETRAINING), world["settings"], quiet=True)
    after_crash = _state(world)
    failure = json.loads(world["settings"].last_run_path.read_text())
    completed = run_retraining(dict(RETRAINING), world["settings"], quiet=True)
    return before, (excinfo.value, failure), after_crash, completed


def test_forced_run_processes_may(world, may):
    zone = world["zone"]
    assert may["status"] == "succeeded" and may["period"] == "2025-05"
    assert may["new_cutoff"] == "2025-06-01"
    assert may["retrained"] is True and may["retrain_reasons"] == [
        "retraining forced by the caller"
    ]
    assert may["registration"]["model_version"] == "2"
    assert may["champion_after"] == _champion(world["settings"])
    # May 1 had no stored predictions (v1 came from the training pipeline): backfilled by v1
    # and judged now that May's data closed its window
    metrics = may["metrics"]
    assert metrics["matured_cutoff"] == "2025-05-01" and 0 < metrics["matured_f1"] <= 1
    period = read_json(zone, period_key("2025-05"))
    assert period["backfilled"] == "2025-05-01"
    assert period["latest_matured"]["model_version"] == "1"
    assert period["drift"]["n_columns"] > 0 and 0 <= period["drift"]["share"] <= 1
    assert period["reference"]["source"].startswith("logged reference of version 1")
    assert [a["kind"] for a in period["alerts"]][0] == "forced"
    # stored: one prediction file per cutoff, by the champion that serves it
    index = prediction_index(zone)
    assert sorted(index) == ["2025-05-01", "2025-06-01"]
    assert f"model={may['champion_after']}.parquet" in index["2025-06-01"]
    history = read_performance(zone)
    assert [iso_date(c) for c in history["cutoff"]] == ["2025-05-01"]
    assert ledger.pending_partitions(zone) == []  # May and the training months are marked
    last = json.loads(world["settings"].last_run_path.read_text())
    assert last["pipeline"] == "churn-retraining" and last["status"] == "succeeded"
    assert last["metrics"]["matured_f1"] == metrics["matured_f1"]
    report = Path(may["report_path"])
    assert report.parent == world["settings"].reports_dir
    assert "<html" in report.read_text()[:2000].lower()


def test_running_the_same_month_twice_skips(world, may_again):
    before, result = may_again
    assert result["status"] == "skipped" and result["reason"] == "no new data"
    assert result["elapsed_s"] < 60
    assert _state(world) == before  # nothing registered, nothing duplicated


def test_a_crash_before_the_commit_changes_nothing_and_the_next_run_completes(world, june):
    before, (error, failure), after_crash, completed = june
    assert error.task.startswith("finalize-period") and "injected failure" in str(error)
    assert failure["status"] == "failed" and failure["pipeline"] == "churn-retraining"
    assert failure["failed_step"] == error.task
    assert after_crash == before
    assert completed["status"] == "succeeded" and completed["period"] == "2025-06"
    assert completed["retrained"] is False
    state = _state(world)
    assert state["versions"] == before["versions"] and state["champion"] == before["champion"]
    assert sorted(prediction_index(world["zone"])) == [
        "2025-05-01",
        "2025-06-01",
        "2025-07-01",
    ]
    history = read_performance(world["zone"])
    assert [iso_date(c) for c in history["cutoff"]] == ["2025-05-01", "2025-06-01"]
    assert not history.duplicated(["cutoff", "model_version"]).any()
    # June 1 was scored by the champion of the May run and is judged by the June run
    june_row = history[history["cutoff"] == "2025-06-01"].iloc[0]
    assert june_row["model_version"] == before["champion"]
    assert completed["metrics"]["matured_cutoff"] == "2025-06-01"
    assert ledger.pending_partitions(world["zone"]) == []


def test_monitoring_metrics_are_in_mlflow_with_the_cutoff_as_step(world, june):
    from mlflow import MlflowClient

    settings = world["settings"]
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    period = read_json(world["zone"], period_key("2025-06"))
    run_id = period["monitoring_run_id"]
    history = client.get_metric_history(run_id, "matured_f1")
    assert sorted(m.step for m in history) == [20250501, 20250601]  # logged once each
    drift = client.get_metric_history(run_id, "drift_share")
    assert sorted(m.step for m in drift) == [20250601, 20250701]
    artifacts = [a.path for a in client.list_artifacts(run_id, "periods/2025-06")]
    assert "periods/2025-06/drift_report.html" in artifacts


# ----------------------------------------------------------------------------- compiled YAML


def _tasks(spec, component="root", conditions=()):
    """(task name, enclosing conditions, caching) of every task, through nested DAGs."""
    dag = spec["root"]["dag"] if component == "root" else spec["components"][component]["dag"]
    for name, task in dag["tasks"].items():
        ref = task["componentRef"]["name"]
        condition = task.get("triggerPolicy", {}).get("condition")
        inner = (*conditions, condition) if condition else conditions
        if "dag" in spec["components"][ref]:
            yield from _tasks(spec, ref, inner)
        else:
            yield name, inner, task.get("cachingOptions")


def test_compiled_branches_and_caching(tmp_path):
    import yaml
    from kfp import compiler

    from churn_kfp.pipelines.retraining import retraining_pipeline

    path = tmp_path / "retraining.yaml"
    compiler.Compiler().compile(retraining_pipeline, str(path))
    spec = next(yaml.safe_load_all(path.read_text()))
    tasks = {name: (conds, cache) for name, conds, cache in _tasks(spec)}

    has_new = "inputs.parameter_values['pipelinechannel--check-new-data-has_new'] == true"
    retrain = "inputs.parameter_values['pipelinechannel--decide-retraining-retrain'] == true"
    assert tasks["check-new-data"][0] == ()
    assert tasks["record-skip"][0] == (f"!({has_new})",)
    for name in (
        "ingest-and-validate",
        "score-sentiment",
        "score-and-monitor",
        "decide-retraining",
    ):
        assert tasks[name][0] == (has_new,), name
    for name in (
        "build-features",
        "label-churn",
        "train-model",
        "evaluate-models",
        "register-model",
        "deploy-model",
        "finalize-period",
    ):
        # then under the feature-engine branch (the chain runs in both; the last one is kept)
        assert tasks[name][0][:2] == (has_new, retrain), name
    on_spark = "inputs.parameter_values['pipelinechannel--choose-feature-engine-Output'] == 'spark'"
    assert tasks["build-features"][0] == (has_new, retrain, f"!({on_spark})")
    assert tasks["build-features-spark"][0] == (has_new, retrain, on_spark)
    assert tasks["finalize-period-2"][0] == (has_new, f"!({retrain})")
    live_state = (
        "check-new-data",
        "ingest-and-validate",
        "score-and-monitor",
        "decide-retraining",
        "register-model",
        "deploy-model",
        "finalize-period",
        "finalize-period-2",
        "record-skip",
    )
    for name in live_state:
        assert tasks[name][1] == {}, f"{name} must not be cached"
    assert spec["pipelineInfo"]["name"] == "churn-retraining"
