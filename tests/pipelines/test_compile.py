"""Compile checks on the generated pipeline YAML (what a cluster would run)."""

import os
import subprocess
import sys

import pytest
import yaml
from kfp import components

from churn_kfp.cli.compile import compile_pipelines
from churn_kfp.core.config import RETRAINING_PIPELINE, TRAINING_PIPELINE
from churn_kfp.core.protocol import PROTOCOL, RETRAINING_PROTOCOL
from churn_kfp.orchestration.image import component_image

LIVE_STATE_TASKS = {"generate-data", "ingest-and-validate", "register-model", "deploy-model"}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    out = tmp_path_factory.mktemp("compiled")
    paths = compile_pipelines(out)
    return {p.stem: p for p in paths}


def _spec(path):
    """The pipeline spec: the first YAML document (the second is the Kubernetes platform)."""
    return next(yaml.safe_load_all(path.read_text()))


def _executors(spec):
    return spec["deploymentSpec"]["executors"]


def _tasks(spec, component="root"):
    """Every task, through the sub-pipeline, loops and conditions: name -> task spec."""
    dag = spec["root"]["dag"] if component == "root" else spec["components"][component]["dag"]
    for name, task in dag["tasks"].items():
        yield name, task
        ref = task["componentRef"]["name"]
        if "dag" in spec["components"][ref]:
            yield from _tasks(spec, ref)


def test_training_pipeline_compiles_and_loads_back(compiled):
    path = compiled[TRAINING_PIPELINE]
    loaded = components.load_component_from_file(str(path))
    assert loaded.name == TRAINING_PIPELINE
    assert "n_customers" in loaded.component_spec.inputs


def test_every_executor_uses_the_project_image(compiled):
    for path in compiled.values():
        spec = _spec(path)
        images = {e["container"]["image"] for e in _executors(spec).values()}
        assert images == {component_image()}
        assert not any(i.endswith(":latest") for i in images)


def test_no_runtime_pip_install(compiled):
    for path in compiled.values():
        assert "pip install" not in path.read_text()


def test_compilation_is_deterministic(compiled, tmp_path):
    again = {p.stem: p for p in compile_pipelines(tmp_path)}
    for name, path in compiled.items():
        assert again[name].read_text() == path.read_text()


def test_live_state_tasks_are_not_cached(compiled):
    tasks = dict(_tasks(_spec(compiled[TRAINING_PIPELINE])))
    for name in LIVE_STATE_TASKS:
        assert tasks[name]["cachingOptions"] == {}, name


def test_both_pipelines_train_through_the_one_sub_pipeline(compiled):
    for name in (TRAINING_PIPELINE, RETRAINING_PIPELINE):
        spec = _spec(compiled[name])
        users = [
            t for _, t in _tasks(spec) if t["componentRef"]["name"] == "comp-train-and-register"
        ]
        assert len(users) == 1, name
        trained = [n for n, t in _tasks(spec) if t["componentRef"]["name"] == "comp-train-model"]
        assert trained == ["train-model"], name


def test_candidates_train_in_parallel_and_are_collected(compiled):
    spec = _spec(compiled[TRAINING_PIPELINE])
    loop = next(t for _, t in _tasks(spec) if "parameterIterator" in t)
    assert loop["iteratorPolicy"]["parallelismLimit"] == 3
    sub_task = dict(_tasks(spec))["train-and-register"]
    candidates = sub_task["inputs"]["parameters"]["candidate_models"]["runtimeValue"]["constant"]
    assert candidates == list(PROTOCOL.candidate_models)
    models = spec["components"]["comp-evaluate-models"]["inputDefinitions"]["artifacts"]["models"]
    assert models["isArtifactList"] is True


def test_image_override_reaches_the_yaml(tmp_path):
    env = {**os.environ, "CHURN_IMAGE": "registry.example/churn:9.9.9"}
    subprocess.run(
        [sys.executable, "-m", "churn_kfp.cli.main", "compile", "--out-dir", str(tmp_path)],
        env=env,
        check=True,
        capture_output=True,
    )
    spec = _spec(tmp_path / f"{TRAINING_PIPELINE}.yaml")
    images = {e["container"]["image"] for e in _executors(spec).values()}
    assert images == {"registry.example/churn:9.9.9"}


@pytest.mark.parametrize("pipeline", [TRAINING_PIPELINE, RETRAINING_PIPELINE])
def test_every_task_reads_cluster_config_from_secret_and_config_map(compiled, pipeline):
    from churn_kfp.orchestration.cluster_env import CONFIG_MAP, S3_SECRET

    docs = list(yaml.safe_load_all(compiled[pipeline].read_text()))
    pipeline_spec, platform = docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]
    executors = set(_executors(pipeline_spec))
    configured = platform["executors"]
    assert set(configured) == executors
    for name, config in configured.items():
        assert [s["secretName"] for s in config["secretAsEnv"]] == [S3_SECRET], name
        assert [c["configMapName"] for c in config["configMapAsEnv"]] == [CONFIG_MAP], name
    text = compiled[pipeline].read_text()
    assert "CHANGE_ME" not in text and "secretKey: AWS_SECRET_ACCESS_KEY" in text


def _defaults(spec):
    params = spec["root"]["inputDefinitions"]["parameters"]
    return {name: p.get("defaultValue") for name, p in params.items()}


def test_protocol_parameters_have_documented_defaults(compiled):
    spec = _spec(compiled[TRAINING_PIPELINE])
    defaults = _defaults(spec)
    assert defaults["horizon_days"] == 30.0
    assert defaults["n_train_cutoffs"] == 3.0
    assert defaults["windows"] == "30,60,90"
    assert defaults["cutoff_spacing"] == "MS"
    tasks = dict(_tasks(spec))
    for task in (tasks["train-and-register"], tasks["build-features"]):
        wired = task["inputs"]["parameters"]["cutoff_spacing"]["componentInputParameter"]
        # inside the feature-engine condition KFP names the input pipelinechannel--<name>
        assert wired.removeprefix("pipelinechannel--") == "cutoff_spacing"


@pytest.mark.parametrize(
    ("pipeline", "protocol"),
    [(TRAINING_PIPELINE, PROTOCOL), (RETRAINING_PIPELINE, RETRAINING_PROTOCOL)],
)
def test_pipeline_defaults_are_the_protocol(compiled, pipeline, protocol):
    defaults = _defaults(_spec(compiled[pipeline]))
    expected = {k: v for k, v in protocol.as_arguments().items() if k in defaults}
    assert expected and {k: defaults[k] for k in expected} == expected


def test_component_defaults_agree_with_the_protocol():
    """KFP copies a component's source into its task: its defaults stay literal, and equal."""
    import inspect

    from churn_kfp.components.data_generation import generate_data
    from churn_kfp.components.features import build_features

    def default(component, name):
        return inspect.signature(component.python_func).parameters[name].default

    assert default(build_features, "test_cutoff") == PROTOCOL.test_cutoff
    assert default(build_features, "cutoff_spacing") == PROTOCOL.cutoff_spacing
    assert default(generate_data, "seed") == PROTOCOL.seed


@pytest.mark.parametrize("pipeline", [TRAINING_PIPELINE, RETRAINING_PIPELINE])
def test_on_a_cluster_the_pipelines_deploy_what_they_promote(compiled, pipeline):
    spec = _spec(compiled[pipeline])
    defaults = _defaults(spec)
    assert defaults["deploy_mode"] == "cluster"
    assert defaults["canary_percent"] == 0.0
    tasks = dict(_tasks(spec))
    for name, wired in (("train-and-register", "deploy_mode"), ("deploy-model", "mode")):
        parameters = tasks[name]["inputs"]["parameters"]
        assert _input_of(parameters[wired]) == "deploy_mode", name
        assert _input_of(parameters["canary_percent"]) == "canary_percent", name


def _input_of(parameter: dict) -> str:
    """The pipeline input a task parameter reads (KFP renames it inside conditions)."""
    return parameter["componentInputParameter"].removeprefix("pipelinechannel--")


def test_the_generator_runs_only_when_asked(compiled):
    spec = _spec(compiled[TRAINING_PIPELINE])
    assert _defaults(spec)["generate"] is False
    generate = dict(_tasks(spec))["generate-data"]["inputs"]["parameters"]["enabled"]
    assert generate == {"componentInputParameter": "generate"}


def test_local_runs_keep_their_local_defaults():
    from churn_kfp.orchestration.localrun import LOCAL_DEFAULTS, local_arguments
    from churn_kfp.pipelines.retraining import retraining_pipeline
    from churn_kfp.pipelines.training import training_pipeline

    assert LOCAL_DEFAULTS == {"deploy_mode": "local", "generate": True}
    assert local_arguments(training_pipeline, {"seed": 1}) == {
        "deploy_mode": "local",
        "generate": True,
        "seed": 1,
    }
    given = {"generate": False, "deploy_mode": "cluster"}
    assert local_arguments(training_pipeline, given) == given
    # the retraining pipeline has no generator: only what it takes is filled in
    assert local_arguments(retraining_pipeline, {}) == {"deploy_mode": "local"}


@pytest.mark.slow  # compiles both pipelines in a fresh process
def test_an_image_named_after_the_components_were_imported_still_reaches_the_yaml(tmp_path):
    """The image is fixed at import: naming another one compiles in a fresh process."""
    pinned = "registry.example/ml/churn-kfp@sha256:" + "e1" * 32
    assert component_image() != pinned  # this process imported the components with another
    paths = compile_pipelines(tmp_path, pinned)
    for path in paths:
        images = {e["container"]["image"] for e in _executors(_spec(path)).values()}
        assert images == {pinned}, path.name
