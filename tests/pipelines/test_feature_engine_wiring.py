"""The ``feature_engine`` parameter: the compiled pipelines hold the SparkApplication step."""

import pytest
import yaml
from kfp import compiler

from churn_kfp.orchestration.image import component_image
from churn_kfp.orchestration.spark_app import AUTO_SPARK_BYTES
from churn_kfp.pipelines.retraining import retraining_pipeline
from churn_kfp.pipelines.training import training_pipeline


def _compiled(pipeline, tmp_path, **defaults) -> dict:
    path = tmp_path / "pipeline.yaml"
    compiler.Compiler().compile(pipeline, str(path), pipeline_parameters=defaults or None)
    return next(yaml.safe_load_all(path.read_text()))


def _tasks(spec, component="root", condition=()):
    """Every task with the conditions it sits under: name -> (task, conditions)."""
    dag = spec["root"]["dag"] if component == "root" else spec["components"][component]["dag"]
    for name, task in dag["tasks"].items():
        here = (*condition, task.get("triggerPolicy", {}).get("condition", ""))
        yield name, (task, here)
        ref = task["componentRef"]["name"]
        if "dag" in spec["components"][ref]:
            yield from _tasks(spec, ref, here)


@pytest.mark.parametrize("pipeline", [training_pipeline, retraining_pipeline])
def test_spark_engine_selected_runs_the_spark_application_step(pipeline, tmp_path):
    spec = _compiled(pipeline, tmp_path, feature_engine="spark")
    root = spec["root"]["inputDefinitions"]["parameters"]
    assert root["feature_engine"]["defaultValue"] == "spark"
    assert root["spark_threshold_bytes"]["defaultValue"] == AUTO_SPARK_BYTES
    tasks = dict(_tasks(spec))
    spark_task, conditions = tasks["build-features-spark"]
    selected = "inputs.parameter_values['pipelinechannel--choose-feature-engine-Output'] == 'spark'"
    assert selected in conditions, conditions
    in_pod, pod_conditions = tasks["build-features"]
    negated = "!(inputs.parameter_values['pipelinechannel--choose-feature-engine-Output'] =="
    assert any(c.startswith(negated) for c in pod_conditions), pod_conditions
    executor = spec["deploymentSpec"]["executors"]["exec-build-features-spark"]["container"]
    assert executor["image"] == component_image()
    assert "run_spark_application" in "".join(executor["command"])
    choose = tasks["choose-feature-engine"][0]["inputs"]["parameters"]["feature_engine"]
    assert choose == {"componentInputParameter": "feature_engine"}


def test_the_default_is_auto(tmp_path):
    spec = _compiled(training_pipeline, tmp_path)
    assert (
        spec["root"]["inputDefinitions"]["parameters"]["feature_engine"]["defaultValue"] == "auto"
    )
