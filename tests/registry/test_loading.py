"""The safe model loader: skops with the project's trusted types; everything else refused.

Hostile models (tests/support/hostile_model.py) write a marker file when unpickled; every
refusal must happen before that, so the marker must never appear.
"""

from __future__ import annotations

import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from support.hostile_model import save_hostile_model

from churn_kfp.learn.training import SKOPS_TRUSTED_TYPES
from churn_kfp.registry import loading


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (x["a"] + rng.normal(0, 0.5, 200) > 0).astype(int)
    return LogisticRegression().fit(x, y), x


@pytest.fixture
def skops_dir(fitted, tmp_path):
    import mlflow.sklearn
    from mlflow.models import infer_signature

    model, x = fitted
    path = tmp_path / "model"
    mlflow.sklearn.save_model(
        model,
        str(path),
        serialization_format="skops",
        signature=infer_signature(x, model.predict_proba(x)),
        pyfunc_predict_fn="predict_proba",
        pip_requirements=["scikit-learn"],
    )
    return path


def test_skops_loads_without_the_pickle_flag(fitted, skops_dir, monkeypatch):
    monkeypatch.delenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", raising=False)
    model, x = fitted
    estimator = loading.load_sklearn(skops_dir, model_name="m", version="3")
    np.testing.assert_array_equal(estimator.predict_proba(x), model.predict_proba(x))
    pyfunc = loading.load_pyfunc(skops_dir, model_name="m", version="3")
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(x)), model.predict_proba(x))
    assert pyfunc.metadata.signature.inputs.input_names() == ["a", "b"]


def test_trusted_types_are_the_projects_not_the_model_files(fitted, tmp_path):
    """The model file's own skops_trusted_types entry never widens the list."""
    import mlflow.sklearn
    from sklearn.tree import DecisionTreeClassifier

    _, x = fitted
    tree = DecisionTreeClassifier(max_depth=2).fit(x, x["a"] > 0)
    path = tmp_path / "tree"
    mlflow.sklearn.save_model(
        tree,
        str(path),
        serialization_format="skops",
        skops_trusted_types=["sklearn.tree._tree.Tree"],
        pip_requirements=["scikit-learn"],
    )
    assert loading.trusted_types() == SKOPS_TRUSTED_TYPES
    assert "sklearn.tree._tree.Tree" in SKOPS_TRUSTED_TYPES
    loaded = loading.load_sklearn(path, model_name="m", version="3")
    np.testing.assert_array_equal(loaded.predict(x), tree.predict(x))
    with pytest.raises(
        loading.UnsafeModelError,
        match=r"version 3: .*outside the trusted list: \['sklearn.tree._tree.Tree'\]",
    ):
        loading.load_sklearn(path, model_name="m", version="3", trusted=[])


@pytest.mark.parametrize(
    ("kind", "named"),
    [
        ("cloudpickle", "serialization_format 'cloudpickle'"),
        ("pickle", "serialization_format 'pickle'"),
        ("python_model", "pyfunc python_model"),
    ],
)
def test_pickled_models_are_refused_before_anything_is_unpickled(kind, named, tmp_path):
    marker = tmp_path / "marker"
    path = save_hostile_model(tmp_path / "model", marker, kind)
    for load in (loading.check_model_dir, loading.load_sklearn, loading.load_pyfunc):
        with pytest.raises(loading.UnsafeModelError) as error:
            load(path, model_name="churn-classifier", version="7")
        assert "model 'churn-classifier' version 7" in str(error.value)
        assert named in str(error.value)
    assert not marker.exists()


def test_hostile_payload_is_real(tmp_path, monkeypatch):
    """The refusal above matters: MLflow's own loader, with the flag, runs the payload."""
    marker = tmp_path / "marker"
    path = save_hostile_model(tmp_path / "model", marker, "cloudpickle")
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    mlflow.pyfunc.load_model(str(path))
    assert marker.read_text() == "unpickled"


def test_missing_or_escaping_model_files(skops_dir):
    mlmodel = yaml.safe_load((skops_dir / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["pickled_model"] = "../elsewhere.skops"
    (skops_dir / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(loading.UnsafeModelError, match="bad model file path"):
        loading.check_model_dir(skops_dir, model_name="m", version="1")
    shutil.rmtree(skops_dir)
    skops_dir.mkdir()
    with pytest.raises(loading.UnloadableModelError, match="version 1: no MLmodel file"):
        loading.load_pyfunc(skops_dir, model_name="m", version="1")


def test_missing_or_corrupt_skops_file(skops_dir):
    skops_file = skops_dir / "model.skops"
    skops_file.write_bytes(b"not a zip")
    with pytest.raises(loading.UnloadableModelError, match="version 2: cannot read"):
        loading.load_pyfunc(skops_dir, model_name="m", version="2")
    skops_file.unlink()
    with pytest.raises(loading.UnloadableModelError, match="model.skops is missing"):
        loading.load_pyfunc(skops_dir, model_name="m", version="2")


def test_nothing_sets_the_pickle_flag():
    """Not the runtime environment, the Makefile, the image, the manifests or the code."""
    import re
    from pathlib import Path

    from churn_kfp.core.config import RUNTIME_ENV

    assert "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" not in RUNTIME_ENV
    repo = Path(__file__).resolve().parents[2]
    setting = re.compile(
        r"MLFLOW_ALLOW_PICKLE_DESERIALIZATION\W{1,12}(value\W{1,4})?true", re.IGNORECASE
    )
    files = [repo / "Makefile", *(repo / "docker").rglob("*"), *(repo / "manifests").rglob("*")]
    files += [*(repo / "src").rglob("*.py"), *(repo / "components").rglob("*.py")]
    offenders = [
        str(path.relative_to(repo))
        for path in files
        if path.is_file() and setting.search(path.read_text(errors="replace"))
    ]
    assert offenders == []
    assert setting.search('- {name: MLFLOW_ALLOW_PICKLE_DESERIALIZATION, value: "true"}')
    assert setting.search("export MLFLOW_ALLOW_PICKLE_DESERIALIZATION ?= true")
