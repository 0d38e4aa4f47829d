"""Our ServingRuntime checked against KServe's own API models (the ``kserve`` SDK from PyPI).

The ServingRuntime CRD is not among ``../shared/schemas``; KServe's Python SDK carries the
OpenAPI-generated models of the same API (``V1alpha1ServingRuntime`` and the types below
it, generated from KServe's Go types) at the supported KServe version. The SDK is installed
apart from our venv and never imported (its package ``__init__`` pulls a model server's
dependencies): its model files are read as data, and every field of the manifest must be
one the model declares, with the declared type. Kubernetes core types (``V1Container``...)
are checked against the pinned ``kubernetes`` client's models the same way.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml
from support.throwaway import installed_apart

KSERVE_SDK = "kserve==0.16.0"  # the KServe of the support matrix (docs/deploy-kubeflow.md)
MANIFEST = Path(__file__).resolve().parents[2] / "manifests/base/serving-runtime.yaml"

pytestmark = pytest.mark.slow  # installs the SDK once (cached)


def _model_tables(source: str) -> tuple[dict[str, str], dict[str, str]]:
    """``openapi_types`` and ``attribute_map`` of the model class in one SDK file."""
    tables: dict[str, dict[str, str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("openapi_types", "attribute_map"):
                tables[target.id] = ast.literal_eval(node.value)
    return tables["openapi_types"], tables["attribute_map"]


@pytest.fixture(scope="module")
def kserve_models() -> dict[str, dict[str, str]]:
    """KServe model name -> {JSON field: declared type}, read from the SDK's files."""
    folder = installed_apart(KSERVE_SDK.replace("==", "-"), [KSERVE_SDK], no_deps=True)
    models = {}
    for path in (folder / "kserve" / "models").glob("v1*.py"):
        source = path.read_text()
        found = re.search(r"^class (V1\w+)\(object\):", source, re.MULTILINE)
        if found and "openapi_types = {" in source:
            types, names = _model_tables(source)
            models[found.group(1)] = {names[attr]: kind for attr, kind in types.items()}
    assert "V1alpha1ServingRuntime" in models, sorted(models)[:10]
    return models


def _fields(name: str, kserve_models: dict) -> dict[str, str] | None:
    if name in kserve_models:
        return kserve_models[name]
    from kubernetes import client

    model = getattr(client, name, None)
    if model is None:
        return None
    return {model.attribute_map[attr]: kind for attr, kind in model.openapi_types.items()}


def problems(value, kind: str, kserve_models: dict, path: str = "") -> list[str]:
    """What in ``value`` the declared type ``kind`` does not allow (empty when it fits)."""
    if kind.startswith("list[") and kind.endswith("]"):
        if not isinstance(value, list):
            return [f"{path}: expected a list, got {type(value).__name__}"]
        return [
            p
            for i, item in enumerate(value)
            for p in problems(item, kind[5:-1], kserve_models, f"{path}[{i}]")
        ]
    if kind.startswith("dict("):
        inner = kind[5:-1].split(", ", 1)[1]
        if not isinstance(value, dict):
            return [f"{path}: expected a mapping, got {type(value).__name__}"]
        return [
            p for k, v in value.items() for p in problems(v, inner, kserve_models, f"{path}.{k}")
        ]
    simple = {"str": str, "bool": bool, "int": int, "float": (int, float), "object": object}
    if kind in simple:
        wrong = kind == "int" and isinstance(value, bool)
        if wrong or not isinstance(value, simple[kind]):
            return [f"{path}: expected {kind}, got {type(value).__name__} {value!r}"]
        return []
    fields = _fields(kind, kserve_models)
    if fields is None:
        return [f"{path}: type {kind} is unknown to both the KServe and Kubernetes models"]
    if not isinstance(value, dict):
        return [f"{path}: expected a {kind} object, got {type(value).__name__}"]
    found = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{path}.{key}: not a field of {kind}")
        else:
            found += problems(item, fields[key], kserve_models, f"{path}.{key}")
    return found


def test_our_serving_runtime_fits_kserve_api_models(kserve_models):
    runtime = yaml.safe_load(MANIFEST.read_text())
    assert runtime["apiVersion"] == "serving.kserve.io/v1alpha1"
    assert problems(runtime, "V1alpha1ServingRuntime", kserve_models) == []
    assert runtime["spec"]["containers"][0]["name"] == "kserve-container"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda r: r["spec"].update(multiModels=False), "spec.multiModels: not a field"),
        (lambda r: r["spec"].update(protocolVersions="v2"), "spec.protocolVersions: expected a"),
        (
            lambda r: r["spec"]["supportedModelFormats"][0].update(autoSelect="no"),
            "autoSelect: expected bool",
        ),
        (
            lambda r: r["spec"]["containers"][0].update(imagePullPolicy=1),
            "imagePullPolicy: expected str",
        ),
        (
            lambda r: r["spec"]["containers"][0]["env"][0].update(values="x"),
            "env[0].values: not a field of V1EnvVar",
        ),
    ],
    ids=["unknown-spec-field", "list-as-string", "bool-as-string", "core-type", "core-field"],
)
def test_the_check_catches_what_the_api_server_would_reject(kserve_models, mutate, expected):
    runtime = copy.deepcopy(yaml.safe_load(MANIFEST.read_text()))
    mutate(runtime)
    found = problems(runtime, "V1alpha1ServingRuntime", kserve_models)
    assert any(expected in p for p in found), found
