"""A pickled version holding ``@champion``: `churn run` and `churn retrain` never unpickle it.

The training pipeline trains v1 on January..April; then a cloudpickle version whose
unpickling writes a marker file is registered as v2 and given the champion alias. The next
training run (as `churn run` runs it) judges its candidate by the gate alone, says why, and
takes the alias; with the alias back on v2 and May arrived, the retraining pipeline (as
`churn retrain` runs it) fails naming v2 and its format. The marker file never appears.
"""

import dataclasses

import pytest
from support.hostile_model import log_hostile_version
from test_retraining_pipeline import RETRAINING, SEED, TRAINING  # the same small settings

from churn_kfp.core.config import MODEL_NAME, Settings
from churn_kfp.data import datagen
from churn_kfp.data.storage import open_landing_zone
from churn_kfp.orchestration.localrun import PipelineRunError
from churn_kfp.registry.register import connect
from churn_kfp.runs.retraining import run_retraining
from churn_kfp.runs.training import run_training

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    home = tmp_path_factory.mktemp("churn-home")
    with pytest.MonkeyPatch.context() as patch:
        for var in ("CHURN_LANDING_ZONE", "MLFLOW_TRACKING_URI", "CHURN_ARTIFACT_ROOT"):
            patch.delenv(var, raising=False)
        patch.setenv("CHURN_HOME", str(home))
        settings = Settings.from_env()
        data = datagen.simulate(n_customers=1500, n_months=5, seed=SEED)
        zone = open_landing_zone(settings.landing_zone)

        def write(months):
            datagen.write_to_landing_zone(dataclasses.replace(data, months=tuple(months)), zone)

        write(data.months[:4])
        assert run_training(dict(TRAINING), settings, quiet=True)["champion_version"] == "1"
        connect(settings.tracking_uri, settings.artifact_root)
        marker = home / "unpickled.marker"
        version = log_hostile_version(MODEL_NAME, marker, champion=True)
        yield {
            "settings": settings,
            "marker": marker,
            "version": version,
            "write": lambda: write(data.months),  # January..May: May is the new period
        }


def test_churn_run_judges_by_the_gate_alone_and_says_why(world):
    result = run_training(dict(TRAINING), world["settings"], quiet=True)
    assert result["promoted"] is True
    reason = result["decision"]
    assert reason.startswith("no usable champion, judged by the gate alone")
    assert f"version {world['version']}" in reason and "cloudpickle" in reason
    assert result["previous_champion_version"] == world["version"]
    assert not world["marker"].exists()


def test_churn_retrain_refuses_the_pickled_champion_by_name(world):
    from mlflow import MlflowClient

    MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", world["version"])
    world["write"]()
    with pytest.raises(PipelineRunError) as error:
        run_retraining(dict(RETRAINING, force=True), world["settings"], quiet=True)
    message = str(error.value)
    assert f"refusing to load model '{MODEL_NAME}' version {world['version']}" in message
    assert "serialization_format 'cloudpickle'" in message
    assert not world["marker"].exists()
