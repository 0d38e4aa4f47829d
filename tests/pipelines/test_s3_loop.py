"""The whole loop on S3: train, retrain on drift, serve the champion from its S3 artifacts.

The landing zone (raw data, ledger, predictions, period summaries) and MLflow's artifacts
(models, references, drift reports) live in a bucket of the SeaweedFS server
(``tests/support/s3_server.py``); only MLflow's SQLite metadata, kfp.local's scratch space
and copies (reports, the serving cache) are local, as on a cluster.

1. the training pipeline trains v1 on January..April;
2. May arrives with the synthetic drift (``datagen.simulate(drift_from_month=5)``: budget
   prices up, sentiment turning negative); the retraining run uses the simulation's policy
   with every other trigger switched off (no absolute floor, no performance drop, no
   prediction drift, not forced), so only the data drift can make it retrain;
3. the champion is resolved from the registry, downloaded from its ``s3://`` location and
   served by MLServer; a V2 request returns P(churn) equal to the registered model loaded
   in this process from its own download.

Checked by mutation: the same test on data without the drift (``drift_from_month=None``)
fails at ``decision["retrain"]``: the run keeps v1 and records the drift as held ("1 of 2
periods, effects below 0.20").
"""

from __future__ import annotations

import dataclasses
import json
import uuid

import numpy as np
import pandas as pd
import pytest

from churn_kfp.core.config import CHAMPION_ALIAS, MODEL_NAME, Settings
from churn_kfp.core.protocol import SIMULATION_PROTOCOL
from churn_kfp.data import datagen
from churn_kfp.data.s3storage import S3LandingZone
from churn_kfp.data.storage import open_landing_zone
from churn_kfp.loop import decision as rules
from churn_kfp.loop.reference import REFERENCE_ARTIFACT
from churn_kfp.loop.state import PREDICTIONS_PREFIX, period_key, read_json
from churn_kfp.registry.loading import load_pyfunc
from churn_kfp.runs import simulation
from churn_kfp.runs.retraining import run_retraining
from churn_kfp.runs.training import run_training
from churn_kfp.serving import client as serving_client
from churn_kfp.serving import server as serving

# SeaweedFS, a training run, a retraining run that trains a challenger, MLServer: ~2.5 min
# on an idle 2-core machine, more on a busy one
pytestmark = [
    pytest.mark.pipeline,
    pytest.mark.s3,
    pytest.mark.serving,
    pytest.mark.slow,
    pytest.mark.timeout(600),
]

SEED = 7
DRIFT_MONTH = 5  # May: the month the retraining run processes
# small data, gates loose enough for it (the test is about the loop, not the model)
SMALL = dataclasses.replace(
    SIMULATION_PROTOCOL,
    n_iter=1,
    seed=SEED,
    min_f1=0.3,
    min_roc_auc=0.6,
    max_train_test_gap=0.3,
)
# only data drift may retrain (the simulation's persistence and effect-size rules)
DRIFT_ONLY = dataclasses.replace(
    SMALL,
    retrain_threshold=0.0,
    performance_drop=1.0,
    prediction_drift_triggers=False,
    backoff_periods=0,
)


@pytest.fixture
def s3_world(s3_env, tmp_path, monkeypatch):
    """Settings whose landing zone and MLflow artifact root are in a fresh bucket."""
    bucket = f"churn-loop-{uuid.uuid4().hex[:10]}"
    assert S3LandingZone(bucket).ensure_bucket() is True
    home = tmp_path / "home"
    # set (not only read) so that what the local runner exports is undone after the test
    monkeypatch.setenv("CHURN_HOME", str(home))
    monkeypatch.setenv("CHURN_LANDING_ZONE", f"s3://{bucket}/landing")
    monkeypatch.setenv("CHURN_ARTIFACT_ROOT", f"s3://{bucket}/mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return bucket, Settings.from_env()


def _client(settings):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _signature_columns(model_dir) -> list[str]:
    from mlflow.models import Model

    return Model.load(str(model_dir / "MLmodel")).get_input_schema().input_names()


def test_training_then_a_drift_retrain_then_serving_all_on_s3(s3_world, tmp_path):
    import mlflow

    bucket, settings = s3_world
    zone = open_landing_zone(settings.landing_zone)
    data = datagen.simulate(
        n_customers=1200, n_months=DRIFT_MONTH, seed=SEED, drift_from_month=DRIFT_MONTH
    )

    def write_through(last_month):
        months = data.months[: data.months.index(last_month) + 1]
        datagen.write_to_landing_zone(dataclasses.replace(data, months=months), zone)

    # 1. training on January..April
    write_through(data.months[DRIFT_MONTH - 2])
    trained = run_training(
        simulation.training_arguments_of(settings, SMALL),
        settings,
        quiet=True,
    )
    assert trained["champion_version"] == "1"
    assert trained["artifact_uri"].startswith(f"s3://{bucket}/mlflow/")

    # 2. May arrives, drifted; the retraining run may only retrain on data drift
    write_through(data.months[DRIFT_MONTH - 1])
    arguments = simulation.retraining_arguments_of(settings, DRIFT_ONLY, simulation.RETRAIN)
    assert arguments["force"] is False and arguments["landing_zone"].startswith("s3://")
    result = run_retraining(arguments, settings, quiet=True)
    assert result["status"] == "succeeded" and result["period"] == data.months[DRIFT_MONTH - 1]

    period = read_json(zone, period_key(result["period"]))
    decision = period["decision"]
    assert decision["retrain"] is True, decision["summary"]
    assert [r["kind"] for r in decision["reasons"]] == [rules.DRIFT], decision["reasons"]
    # May is the first period under v1 and persistence needs two: the size of the drift fired
    assert decision["evidence"]["drift_periods"] == 1 < DRIFT_ONLY.drift_persistence
    assert decision["reasons"][0]["rule"] == rules.EFFECT_SIZE
    assert decision["evidence"]["large_drift_share"] > DRIFT_ONLY.drift_threshold
    drift = period["drift"]
    assert drift["share"] > DRIFT_ONLY.drift_threshold
    # the run log says so too, and a new version was registered from this run
    last_run = json.loads(settings.last_run_path.read_text())
    assert last_run["retrained"] is True and last_run["run_tag"] == result["run_tag"]
    assert last_run["retrain_reasons"] == [r["message"] for r in decision["reasons"]]
    assert last_run["retrain_reasons"][0].startswith("data drift:")
    assert "[drift]" in " ".join(last_run["alerts"])
    registration = period["registration"]
    assert registration["model_version"] == "2"
    client = _client(settings)
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name='{MODEL_NAME}'"))
    assert versions == [1, 2]
    champion = str(client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS).version)
    assert champion == period["champion_after"] == registration["champion_version"]

    # everything the loop wrote is in the bucket, nothing in a local landing folder
    assert not (settings.home / "landing").exists()
    stored = S3LandingZone(bucket).list_keys("")
    assert any(k.startswith(f"landing/{PREDICTIONS_PREFIX}/") for k in stored)
    assert f"landing/{period_key(result['period'])}" in stored
    for version in ("1", "2"):
        location = client.get_model_version_download_uri(MODEL_NAME, version)
        assert location.startswith(f"s3://{bucket}/mlflow/"), location
    monitoring_artifacts = client.list_artifacts(
        period["monitoring_run_id"], f"periods/{result['period']}"
    )
    assert f"periods/{result['period']}/drift_report.html" in [a.path for a in monitoring_artifacts]

    # 3. the champion, served from its S3 artifact location
    served = serving.resolve_model(settings=settings)
    assert served.version == champion
    assert served.source_uri.startswith(f"s3://{bucket}/mlflow/"), served.source_uri
    assert served.model_dir.is_relative_to(settings.home / "serving")
    # the reference rows the registration step logged (also read back from S3)
    run_id = client.get_model_version(MODEL_NAME, champion).run_id
    reference = pd.read_parquet(
        mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=str(tmp_path / "ref")
        )
    )
    columns = _signature_columns(served.model_dir)
    rows = reference[columns].head(200)
    # the registered model, downloaded again on its own and loaded in this process
    own_copy = mlflow.artifacts.download_artifacts(
        f"models:/{MODEL_NAME}/{champion}", dst_path=str(tmp_path / "own")
    )
    pyfunc = load_pyfunc(own_copy, model_name=MODEL_NAME, version=champion)
    expected = np.asarray(pyfunc.predict(rows))[:, 1]
    assert 0 < expected.min() < expected.max() < 1
    with serving.serve(served, workdir=tmp_path / "mlserver") as running:
        answer = serving_client.predict_frame(running.url, rows, batch_size=len(rows))
    assert running.process.poll() is not None
    np.testing.assert_allclose(answer.probability, expected, rtol=0, atol=1e-6)
