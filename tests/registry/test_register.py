"""Tests of registration and the champion against a real MLflow (SQLite DB + file artifacts).

One tracking DB per module (MLflow's schema creation costs seconds); every test that touches
the champion alias uses its own registered model name, so the tests stay independent.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from support.mlflow_db import scratch_dir

from churn_kfp.core.columns import CUSTOMER_ID, LABEL, SPLIT
from churn_kfp.core.config import CHAMPION_ALIAS
from churn_kfp.registry import register as registry
from churn_kfp.registry.champion import champion, load_champion
from churn_kfp.registry.contract import MissingInputColumnsError
from churn_kfp.registry.gate import GateConfig, metric_value

# MLflow's SQL store triggers a SQLAlchemy deprecation warning of its own; nothing to act on.
pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")

NUMERIC = ["recency_days", "frequency_90d", "monetary_90d", "sentiment_mean"]
CATEGORICAL = ["segment"]
LINEAGE = {
    "data_start": "2025-01-01",
    "data_end": "2025-06-30",
    "rows": 600,
    "data_hash": "sha256:abc123",
    "git_commit": "0123456789abcdef",
    "pipeline_run_id": "run-42",
    "not_known": None,
}
OPEN_GATE = GateConfig(min_f1=None, min_roc_auc=None, max_train_test_gap=None)


def make_frame(n: int, seed: int) -> pd.DataFrame:
    """Customers with learnable churn, an int64 column, a category and missing values."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            CUSTOMER_ID: [f"c{seed}-{i}" for i in range(n)],
            "recency_days": rng.exponential(30.0, n),
            "frequency_90d": rng.poisson(3, n).astype("int64"),
            "monetary_90d": rng.gamma(2.0, 50.0, n),
            "sentiment_mean": rng.uniform(-1, 1, n),
            "segment": rng.choice(["retail", "smb", "enterprise"], n),
            SPLIT: "train",
        }
    )
    logit = 0.06 * (frame.recency_days - 30) - 0.7 * (frame.frequency_90d - 3)
    logit -= 1.5 * frame.sentiment_mean
    frame[LABEL] = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    frame.loc[rng.choice(n, n // 20, replace=False), "monetary_90d"] = np.nan
    return frame


def preprocessor() -> ColumnTransformer:
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    return ColumnTransformer(
        [
            ("num", numeric, NUMERIC),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )


def fit(classifier, frame: pd.DataFrame, shuffle_labels: bool = False) -> Pipeline:
    y = frame[LABEL].to_numpy()
    if shuffle_labels:
        y = np.random.default_rng(7).permutation(y)
    return Pipeline([("pre", preprocessor()), ("clf", classifier)]).fit(
        frame[NUMERIC + CATEGORICAL], y
    )


@pytest.fixture(scope="module")
def data():
    return make_frame(600, seed=1), make_frame(400, seed=2)


@pytest.fixture(scope="module")
def models(data):
    from xgboost import XGBClassifier

    train, _ = data
    return {
        "good": fit(LogisticRegression(max_iter=500), train),
        "bad": fit(LogisticRegression(max_iter=500), train, shuffle_labels=True),
        "xgb": fit(XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1), train),
    }


@pytest.fixture(scope="module")
def tracking(tmp_path_factory, new_mlflow_db):
    """One SQLite tracking DB and artifact root for the module; MLflow state restored after."""
    saved_env = {
        k: os.environ.get(k)
        for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_EXPERIMENT_ID")
    }
    home = scratch_dir(tmp_path_factory, "registry")
    uri = new_mlflow_db(home)
    artifact_root = (home / "mlartifacts").as_uri()
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    experiment_id = registry.connect(uri, artifact_root=artifact_root)
    yield {"uri": uri, "artifact_root": artifact_root, "home": home, "experiment": experiment_id}
    mlflow.set_tracking_uri(saved_env["MLFLOW_TRACKING_URI"])
    mlflow.set_registry_uri(saved_env["MLFLOW_REGISTRY_URI"])
    import mlflow.tracking.fluent as fluent

    fluent._active_experiment_id = None
    for key, value in saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    shutil.rmtree(home, ignore_errors=True)


def metrics_of(pipeline, frame: pd.DataFrame, threshold: float = 0.5) -> dict[str, float]:
    proba = pipeline.predict_proba(frame[NUMERIC + CATEGORICAL])[:, 1]
    y = frame[LABEL]
    return {m: metric_value(m, y, proba, threshold) for m in ("f1", "roc_auc")}


def decide(pipeline, data, tmp_path, model_name, *, gate=OPEN_GATE, threshold=0.5, **overrides):
    train, test = data
    report = tmp_path / f"report-{model_name}.json"
    report.write_text("{}")
    test_metrics = overrides.pop("test_metrics", None) or metrics_of(pipeline, test, threshold)
    kwargs = dict(
        test_frame=test,
        test_metrics=test_metrics,
        train_test_gap=0.01,
        threshold=threshold,
        input_example=train,
        params={"model": {"C": 1.0, "unused": None}, "seed": 1},
        metrics={"test": test_metrics, "train": {"f1": test_metrics["f1"] + 0.01}},
        artifacts={"reports": report},
        lineage=LINEAGE,
        gate_config=gate,
        model_name=model_name,
    )
    kwargs.update(overrides)
    return registry.register_and_decide(pipeline, **kwargs)


def alias_version(model_name: str) -> str | None:
    current = champion(model_name)
    return None if current is None else str(current.version)


# ------------------------------------------------------------------------------ pure functions


def test_flatten_uses_dotted_names_and_skips_none():
    nested = {"a": {"b": 1, "c": None, "d": {"e": "x"}}, "f": None, "g": 2.5}
    assert registry.flatten(nested) == {"a.b": 1, "a.d.e": "x", "g": 2.5}


def test_import_has_no_side_effects():
    """Importing the module neither imports MLflow nor touches its URIs."""
    code = (
        "import os, sys; import churn_kfp.registry.register; "
        "assert 'mlflow' not in sys.modules, 'mlflow imported'; "
        "assert 'MLFLOW_TRACKING_URI' not in os.environ"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=60)


# ------------------------------------------------------------------------------ connection


def _connect_in_child(uri, artifact_root, barrier, queue):
    barrier.wait(timeout=30)
    try:
        queue.put(("ok", registry.connect(uri, artifact_root=artifact_root, experiment="race")))
    except Exception as exc:  # reported to the parent, which fails the test
        queue.put(("error", repr(exc)))


def test_connect_is_safe_when_two_processes_create_the_db_at_once(tracking):
    """Both processes start on a missing DB; both must get the same experiment."""
    ctx = multiprocessing.get_context("fork")
    tmp_path = tracking["home"] / "race"
    uri = f"sqlite:///{tmp_path / 'fresh' / 'mlflow.db'}"
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    args = (uri, (tmp_path / "art").as_uri(), barrier, queue)
    children = [ctx.Process(target=_connect_in_child, args=args) for _ in range(2)]
    for child in children:
        child.start()
    results = [queue.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
    assert [status for status, _ in results] == ["ok", "ok"], results
    assert results[0][1] == results[1][1]
    experiment = MlflowClient(tracking_uri=uri).get_experiment(results[0][1])
    assert experiment.artifact_location == (tmp_path / "art").as_uri()


def test_connect_returns_the_existing_experiment(tracking):
    again = registry.connect(tracking["uri"], artifact_root=tracking["artifact_root"])
    assert again == tracking["experiment"]
    assert mlflow.get_tracking_uri() == tracking["uri"]


# ------------------------------------------------------------------------------ registry


@pytest.fixture(scope="module")
def first(tracking, models, data, tmp_path_factory):
    """The first registration of a fresh model name, with a tuned threshold."""
    tmp = tmp_path_factory.mktemp("first")
    (tmp / "plots").mkdir()
    (tmp / "plots" / "roc.png").write_bytes(b"png")
    (tmp / "schema.json").write_text("{}")
    return decide(
        models["good"],
        data,
        tmp,
        "churn-first",
        gate=GateConfig(),
        threshold=0.42,
        artifacts={"reports": tmp / "plots", "data": tmp / "schema.json"},
    )


def test_champion_is_none_without_model_or_alias(tracking, models, data):
    assert champion("no-such-model") is None
    assert load_champion("no-such-model") is None
    client = MlflowClient()
    client.create_registered_model("no-alias-yet")
    assert champion("no-alias-yet") is None


def test_first_registration_becomes_champion(first):
    assert first["promoted"] is True
    assert first["gate"] == {"passed": True, "reasons": []}
    assert first["previous_champion_version"] is None
    assert first["champion_version"] == first["model_version"] == alias_version("churn-first")
    assert first["champion_metric"] is None
    assert 0 < first["candidate_metric"] <= 1
    assert first["decision_reason"] == "no champion yet"
    expected_keys = {
        "model_name",
        "model_version",
        "champion_version",
        "previous_champion_version",
        "promoted",
        "gate",
        "decision_reason",
        "champion_metric",
        "candidate_metric",
        "run_id",
        "artifact_uri",
    }
    assert expected_keys <= set(first)
    assert json.loads(json.dumps(first, allow_nan=False)) == first


def test_lineage_threshold_and_metric_tags_on_the_version(first):
    version = MlflowClient().get_model_version("churn-first", first["model_version"])
    tags = version.tags
    for key in ("data_start", "data_end", "rows", "data_hash", "git_commit", "pipeline_run_id"):
        assert tags[key] == str(LINEAGE[key])
    assert "not_known" not in tags
    assert float(tags["threshold"]) == 0.42
    assert float(tags["metric.test.f1"]) == pytest.approx(first["candidate_metric"])
    assert "metric.train.f1" in tags and "metric.test.roc_auc" in tags
    assert tags["decision.promote"] == "true"
    assert tags["decision.metric"] == "f1" and tags["decision.champion_version"] == ""
    assert tags["previous_champion_version"] == ""
    assert tags["promotion_reason"] == "no champion yet"


def test_run_params_metrics_and_artifacts(first):
    client = MlflowClient()
    run = client.get_run(first["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["threshold"] == "0.42"
    assert run.data.params["model.C"] == "1.0"
    assert "model.unused" not in run.data.params
    assert run.data.metrics["test.f1"] == pytest.approx(first["candidate_metric"])
    assert run.data.tags["git_commit"] == LINEAGE["git_commit"]
    logged = {a.path for a in client.list_artifacts(first["run_id"], "reports")}
    assert logged == {"reports/roc.png"}
    assert [a.path for a in client.list_artifacts(first["run_id"], "data")] == ["data/schema.json"]


def test_artifact_uri_exists_on_disk(first, tracking):
    uri = first["artifact_uri"]
    assert uri.startswith(tracking["artifact_root"])
    path = Path(urlparse(uri).path)
    assert (path / "MLmodel").is_file()
    assert (path / "model.skops").is_file()
    requirements = (path / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements and "mlflow==" in requirements
    # the registered version leads to the same files (MLflow 3: its source is models:/m-<id>)
    version = MlflowClient().get_model_version("churn-first", first["model_version"])
    model_id = version.model_id or version.source.removeprefix("models:/")
    assert mlflow.get_logged_model(model_id).artifact_location == uri


def test_signature_has_the_feature_columns_only(first):
    model = load_champion("churn-first").model
    signature = model.metadata.signature
    assert signature is not None
    assert signature.inputs.input_names() == NUMERIC + CATEGORICAL  # no id, split or label
    assert signature.outputs.inputs[0].shape == (-1, 2)


@pytest.mark.parametrize("kind", ["good", "xgb"])
def test_loaded_pyfunc_matches_in_memory_predict_proba(kind, tracking, models, data, tmp_path):
    pipeline = models[kind]
    result = registry.log_and_register(
        pipeline,
        input_example=data[0],
        params={},
        metrics={},
        artifacts={},
        lineage=LINEAGE,
        threshold=0.5,
        model_name=f"churn-roundtrip-{kind}",
    )
    _, test = data
    registry.promote(result.version, f"churn-roundtrip-{kind}", reason="test")
    loaded = load_champion(f"churn-roundtrip-{kind}")
    served = loaded.model.predict(test[NUMERIC + CATEGORICAL])  # the pyfunc, as served
    expected = pipeline.predict_proba(test[NUMERIC + CATEGORICAL])
    assert isinstance(served, np.ndarray) and served.shape == (len(test), 2)
    np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)
    assert loaded.version == result.version and loaded.threshold == 0.5
    proba = loaded.score(test)  # extra columns are left out
    np.testing.assert_allclose(proba, expected[:, 1], rtol=0, atol=1e-9)


def test_worse_candidate_does_not_replace_the_champion(tracking, models, data, tmp_path):
    name = "churn-worse"
    first = decide(models["good"], data, tmp_path, name)
    second = decide(models["bad"], data, tmp_path, name)
    assert first["promoted"] and not second["promoted"]
    assert second["gate"]["passed"]
    assert second["champion_metric"] > second["candidate_metric"]
    assert second["champion_version"] == second["previous_champion_version"] == "1"
    assert alias_version(name) == "1"
    assert "champion kept" in second["decision_reason"]


def test_better_candidate_replaces_the_champion(tracking, models, data, tmp_path):
    name = "churn-better"
    decide(models["bad"], data, tmp_path, name)
    second = decide(models["good"], data, tmp_path, name)
    assert second["promoted"] is True
    assert second["candidate_metric"] > second["champion_metric"]
    assert second["previous_champion_version"] == "1"
    assert second["champion_version"] == "2" == alias_version(name)
    tags = MlflowClient().get_model_version(name, "2").tags
    assert tags["previous_champion_version"] == "1"
    assert float(tags["decision.champion_metric"]) == pytest.approx(second["champion_metric"])
    assert "candidate is better" in tags["promotion_reason"]


def test_tie_keeps_the_champion(tracking, models, data, tmp_path):
    name = "churn-tie"
    decide(models["good"], data, tmp_path, name)
    second = decide(models["good"], data, tmp_path, name)
    assert second["candidate_metric"] == second["champion_metric"]
    assert second["promoted"] is False
    assert alias_version(name) == "1"


def test_champion_is_scored_with_its_own_threshold(tracking, models, data, tmp_path):
    """Same model, but the champion's tag says threshold 0.99: its F1 collapses, so it loses."""
    name = "churn-threshold"
    decide(models["good"], data, tmp_path, name, threshold=0.99)
    second = decide(models["good"], data, tmp_path, name, threshold=0.5)
    assert second["champion_metric"] < second["candidate_metric"]
    assert second["promoted"] is True


def test_gate_failure_leaves_the_alias_even_for_a_better_model(tracking, models, data, tmp_path):
    name = "churn-gate"
    decide(models["bad"], data, tmp_path, name)
    strict = GateConfig(min_f1=0.99)
    second = decide(models["good"], data, tmp_path, name, gate=strict)
    assert second["gate"]["passed"] is False
    assert "test f1" in second["gate"]["reasons"][0]
    assert second["promoted"] is False
    assert second["decision_reason"].startswith("gate failed")
    assert second["champion_metric"] is None  # the champion is not even scored
    assert alias_version(name) == "1"
    assert MlflowClient().get_model_version(name, "2").tags["decision.gate_passed"] == "false"


@pytest.mark.parametrize("target", ["load_version", "compare_with_champion", "_record_decision"])
def test_exception_before_promotion_leaves_the_alias_and_deletes_the_version(
    target, tracking, models, data, tmp_path, monkeypatch
):
    name = f"churn-crash-{target.strip('_')}"
    decide(models["bad"], data, tmp_path, name)

    def explode(*args, **kwargs):
        raise RuntimeError("injected failure")

    monkeypatch.setattr(registry, target, explode)
    with pytest.raises(RuntimeError, match="injected failure"):
        decide(models["good"], data, tmp_path, name)
    client = MlflowClient()
    # A failed run registers nothing: version 2 was deleted again, its run says why.
    assert [str(v.version) for v in client.search_model_versions(f"name='{name}'")] == ["1"]
    assert alias_version(name) == "1"
    failed = client.search_runs(
        [tracking["experiment"]], f"tags.registered_version = '2' and tags.model_name = '{name}'"
    )
    assert [r.data.tags.get("registration_failed") for r in failed] == [
        "RuntimeError: injected failure"
    ]
    if target == "_record_decision":  # the last step before promote: a retry recovers
        monkeypatch.undo()
        third = decide(models["good"], data, tmp_path, name)
        assert third["promoted"] and third["previous_champion_version"] == "1"


def test_champion_missing_columns_is_replaced(tracking, models, data, tmp_path):
    name = "churn-schema"
    decide(models["good"], data, tmp_path, name)
    train, test = data
    renamed = {"sentiment_mean": "sentiment_avg"}
    new_train, new_test = train.rename(columns=renamed), test.rename(columns=renamed)
    numeric = [renamed.get(c, c) for c in NUMERIC]
    pre = ColumnTransformer(
        [
            ("num", Pipeline([("i", SimpleImputer()), ("s", StandardScaler())]), numeric),
            ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
        ]
    )
    pipeline = Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])
    pipeline.fit(new_train[numeric + CATEGORICAL], new_train[LABEL])
    with pytest.raises(MissingInputColumnsError, match="sentiment_mean"):
        load_champion(name).score(new_test)
    result = decide(
        pipeline,
        (new_train, new_test),
        tmp_path,
        name,
        test_metrics={"f1": 0.9, "roc_auc": 0.9},
    )
    assert result["promoted"] is True
    assert "cannot score" in result["decision_reason"]


def test_bad_inputs_fail_before_anything_is_registered(tracking, models, data, tmp_path):
    name = "churn-invalid"
    common = dict(
        input_example=data[0], params={}, metrics={}, lineage={}, threshold=0.5, model_name=name
    )
    with pytest.raises(ValueError, match="untrusted types"):
        registry.log_and_register(
            models["xgb"], artifacts={}, skops_trusted_types=["numpy.dtype"], **common
        )
    with pytest.raises(FileNotFoundError):
        registry.log_and_register(models["good"], artifacts={"x": tmp_path / "nope"}, **common)
    with pytest.raises(ValueError, match="threshold"):
        registry.log_and_register(models["good"], artifacts={}, **{**common, "threshold": 1.5})
    assert champion(name) is None
    assert MlflowClient().search_model_versions(f"name='{name}'") == []


def test_the_champion_version_holds_the_alias_and_its_run_the_metrics(first):
    client = MlflowClient()
    version = client.get_model_version("churn-first", first["model_version"])
    assert sorted(version.aliases) == [CHAMPION_ALIAS]
    assert version.tags["git_commit"] == LINEAGE["git_commit"]
    run = client.get_run(version.run_id)
    assert math.isclose(run.data.metrics["test.f1"], first["candidate_metric"])


# ------------------------------------------------------------- unusable or hostile champions


def test_unloadable_champion_counts_as_no_champion(tracking, models, data, tmp_path):
    """The champion's model.skops is gone: the candidate is judged by the gate alone."""
    name = "churn-unloadable"
    first = decide(models["good"], data, tmp_path, name)
    skops_file = Path(urlparse(first["artifact_uri"]).path) / "model.skops"
    skops_file.unlink()
    second = decide(models["bad"], data, tmp_path, name)  # worse, but the gate is open
    assert second["promoted"] is True and alias_version(name) == "2"
    assert second["champion_metric"] is None
    assert second["decision_reason"].startswith("no usable champion, judged by the gate alone")
    assert f"'{name}' version 1" in second["decision_reason"]
    assert "model.skops is missing" in second["decision_reason"]
    tags = MlflowClient().get_model_version(name, "2").tags
    assert tags["decision.reason"] == second["decision_reason"]
    strict = decide(models["good"], data, tmp_path, name, gate=GateConfig(min_f1=0.99))
    assert strict["promoted"] is False  # the gate still applies


@pytest.mark.parametrize("kind", ["cloudpickle", "python_model"])
def test_pickled_champion_is_refused_and_never_unpickled(kind, tracking, models, data, tmp_path):
    """Champion scoring (the register step of `churn run`) and `load_champion` (the
    retraining loop's monitoring and finalize steps) refuse it by name."""
    from support.hostile_model import log_hostile_version

    from churn_kfp.registry.loading import UnsafeModelError

    name = f"churn-hostile-{kind.replace('_', '-')}"
    marker = tmp_path / "marker"
    version = log_hostile_version(name, marker, kind=kind, champion=True)
    with pytest.raises(UnsafeModelError, match=f"'{name}' version {version}"):
        load_champion(name)
    result = decide(models["good"], data, tmp_path, name)
    assert f"'{name}' version {version}" in result["decision_reason"]
    assert ("cloudpickle" if kind == "cloudpickle" else "python_model") in result["decision_reason"]
    assert result["promoted"] is True and alias_version(name) == result["model_version"]
    assert not marker.exists()


def test_example_probabilities_are_recorded_for_the_deploy_smoke_test(first, models, tracking):
    """The deploy step compares the served P(churn) of the logged input example with these."""
    from churn_kfp.serving.deploy import resolve_storage_uri
    from churn_kfp.serving.smoke import registered_example

    location = resolve_storage_uri("churn-first", first["model_version"], tracking["uri"])
    recorded = registered_example("churn-first", first["model_version"], location, tracking["uri"])
    assert recorded is not None
    example, probabilities = recorded
    expected = models["good"].predict_proba(example[NUMERIC + CATEGORICAL])[:, 1]
    assert len(example) == len(probabilities) > 0
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-9)
