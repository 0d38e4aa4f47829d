"""The compiled pipelines parse with the protos of the oldest supported KFP backend.

The backend's Go driver parses every task's spec and platform config strictly: a field its
protos do not know fails the run before any step starts (kfp 2.17 compiles some that older
backends lack). So the YAML ``churn compile`` writes is parsed here with the generated
protos of ``kfp-pipeline-spec`` and ``kfp-kubernetes`` **at the floor version**, rejecting
unknown fields. Those wheels conflict with the project's pins, so they are installed with
pip into a throwaway folder (cached under ``$CHURN_TEST_CACHE``, default
``<tmp>/churn-kfp-test-cache``) and the parse runs in a separate, isolated interpreter.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.throwaway import installed_apart

from churn_kfp.cli.compile import compile_pipelines
from churn_kfp.core.config import RETRAINING_PIPELINE, TRAINING_PIPELINE
from churn_kfp.orchestration.kfp_client import FLOOR_TEXT

pytestmark = pytest.mark.slow

FLOOR_RELEASE = f"{FLOOR_TEXT}.0"
PARSER = Path(__file__).with_name("strict_ir_parse.py")
REQUIREMENTS = (
    f"kfp-pipeline-spec=={FLOOR_RELEASE}",
    f"kfp-kubernetes=={FLOOR_RELEASE}",
    # the floor's generated code needs protobuf 6 (>= its gencode 6.31.1) and google.rpc
    "protobuf>=6.31.1,<7",
    "googleapis-common-protos>=1.63,<2",
)


@pytest.fixture(scope="session")
def floor_protos() -> Path:
    """A folder holding only the floor's proto packages and protobuf (installed once)."""
    return installed_apart(f"kfp-protos-{FLOOR_RELEASE}", REQUIREMENTS, no_deps=True)


@pytest.fixture(scope="module")
def documents(tmp_path_factory) -> dict:
    """Every compiled pipeline: file name -> [pipeline spec, platform spec]."""
    out = tmp_path_factory.mktemp("compiled")
    found = {}
    for path in compile_pipelines(out):
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert len(docs) == 2, f"{path.name}: expected a pipeline spec and a platform spec"
        found[path.name] = docs
    return found


def _strict_parse(site: Path, documents: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    data = tmp_path / "documents.json"
    data.write_text(json.dumps(documents))
    # -I: no PYTHONPATH and no user site; -S: not the project's site-packages either.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(PARSER), str(site), str(data)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_floor_protos_are_the_floor_release_only(floor_protos):
    names = {p.name for p in floor_protos.glob("*.dist-info")}
    assert f"kfp_pipeline_spec-{FLOOR_RELEASE}.dist-info" in names
    assert f"kfp_kubernetes-{FLOOR_RELEASE}.dist-info" in names
    assert not any(n.startswith("kfp-") or n.startswith("kfp_server") for n in names)


def test_compiled_pipelines_parse_strictly_with_the_floor_protos(floor_protos, documents, tmp_path):
    assert {f"{TRAINING_PIPELINE}.yaml", f"{RETRAINING_PIPELINE}.yaml"} <= set(documents)
    for name, (spec, platform) in documents.items():
        executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        assert set(executors) == set(spec["deploymentSpec"]["executors"]), name
    done = _strict_parse(floor_protos, documents, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("where", "inject"),
    [
        (
            "platform executor",
            lambda spec, platform: next(
                iter(platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"].values())
            )["secretAsEnv"][0].update(secretNameParameterFromTheFuture={"x": 1}),
        ),
        (
            "pipeline spec",
            lambda spec, platform: spec["root"]["inputDefinitions"].update(fieldFromTheFuture=1),
        ),
        (
            "deploymentSpec",
            lambda spec, platform: next(iter(spec["deploymentSpec"]["executors"].values()))[
                "container"
            ].update(fieldFromTheFuture="x"),
        ),
    ],
)
def test_an_unknown_field_fails_the_check(floor_protos, documents, tmp_path, where, inject):
    name = f"{TRAINING_PIPELINE}.yaml"
    spec, platform = copy.deepcopy(documents[name])
    inject(spec, platform)
    done = _strict_parse(floor_protos, {name: [spec, platform]}, tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{name} {where}" in done.stdout
    assert "FromTheFuture" in done.stdout
