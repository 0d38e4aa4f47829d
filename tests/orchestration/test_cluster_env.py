"""cluster_env wires the Secret and ConfigMap into a task's platform spec, by name only."""

import yaml
from kfp import compiler, dsl

from churn_kfp.core.config import Settings
from churn_kfp.data.s3storage import ENDPOINT_ENV_VARS, S3Settings
from churn_kfp.orchestration.cluster_env import (
    CONFIG_MAP,
    CONFIG_MAP_KEY_TO_ENV,
    S3_SECRET,
    SECRET_KEY_TO_ENV,
    use_cluster_config,
)

SECRET_VALUE = "s3cr3t-value-that-must-not-leak"


@dsl.component(base_image="python:3.11-slim")
def _echo(text: str) -> str:
    return text


@dsl.pipeline(name="cluster-env-probe")
def _probe(text: str = "hi"):
    first = use_cluster_config(_echo(text=text))
    use_cluster_config(_echo(text=first.output))


def _compile(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_VALUE)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRET_VALUE + "-id")
    path = tmp_path / "probe.yaml"
    compiler.Compiler().compile(_probe, str(path))
    text = path.read_text()
    docs = list(yaml.safe_load_all(text))
    return text, docs


def test_every_task_gets_the_secret_and_config_map_by_name(tmp_path, monkeypatch):
    text, docs = _compile(tmp_path, monkeypatch)
    assert len(docs) == 2, "expected a pipeline spec and a platform spec"
    executors = docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == {"exec-echo", "exec-echo-2"}
    for spec in executors.values():
        (secret,) = spec["secretAsEnv"]
        assert secret["secretName"] == S3_SECRET
        assert {(e["secretKey"], e["envVar"]) for e in secret["keyToEnv"]} == set(
            SECRET_KEY_TO_ENV.items()
        )
        (config_map,) = spec["configMapAsEnv"]
        assert config_map["configMapName"] == CONFIG_MAP
        assert {(e["configMapKey"], e["envVar"]) for e in config_map["keyToEnv"]} == set(
            CONFIG_MAP_KEY_TO_ENV.items()
        )


def test_no_secret_value_is_compiled_in(tmp_path, monkeypatch):
    text, _ = _compile(tmp_path, monkeypatch)
    assert SECRET_VALUE not in text
    assert "CHANGE_ME" not in text


def test_injected_variables_are_the_ones_the_code_reads():
    env = {var: f"value-of-{var}" for var in CONFIG_MAP_KEY_TO_ENV.values()}
    settings = Settings.from_env(env)
    assert settings.landing_zone == env["CHURN_LANDING_ZONE"]
    assert settings.tracking_uri == env["MLFLOW_TRACKING_URI"]
    assert settings.artifact_root == env["CHURN_ARTIFACT_ROOT"]
    assert set(ENDPOINT_ENV_VARS) <= set(CONFIG_MAP_KEY_TO_ENV.values())
    env.update({var: "x" for var in SECRET_KEY_TO_ENV.values()})
    env["S3_ENDPOINT_URL"] = "http://minio:9000"
    assert S3Settings.from_env(env).host == "minio:9000"
