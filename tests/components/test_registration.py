"""Component ``register-model`` against a real MLflow (SQLite tracking DB, file artifacts)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from kfp import dsl
from mlflow import MlflowClient
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from churn_kfp.components.registration import register_model
from churn_kfp.learn import training

pytestmark = pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning")

FEATURES = ["recency_days", "signal", "noise"]
PLAN = {
    "train": ["2024-02-01"],
    "validation": "2024-03-01",
    "test": "2024-04-01",
    "horizon_days": 30,
}
QUALITY = {
    "transactions": {"date_range": ["2024-01-01T00:00:00", "2024-05-31T00:00:00"]},
    "quality_score": 0.95,
}
OPEN_GATE = {"min_f1": 0.5, "min_roc_auc": 0.5, "max_train_test_gap": 0.5, "promotion_margin": 0.0}


@pytest.fixture
def inputs(artifacts, separable) -> dict[str, dsl.Artifact]:
    """The artifacts the training pipeline hands to registration, for a fitted LR."""
    best_model = artifacts.output(dsl.Model, "best_model")
    candidate = training.fit_candidate(separable, "logistic_regression", seed=0)
    training.save_candidate(candidate, best_model.path)
    test = separable[separable["split"] == "test"]
    proba = candidate.pipeline.predict_proba(test[FEATURES])[:, 1]
    predicted = proba >= candidate.threshold
    test_metrics = {
        "f1": f1_score(test["churn"], predicted),
        "precision": precision_score(test["churn"], predicted),
        "recall": recall_score(test["churn"], predicted),
        "roc_auc": roc_auc_score(test["churn"], proba),
    }
    evaluation = {
        "champion": "logistic_regression",
        "candidates": {
            "logistic_regression": {
                "test": test_metrics,
                "validation": candidate.validation_metrics,
            }
        },
        "train_test_gap": 0.0,
        "baselines": {},
    }
    return {
        "best_model": best_model,
        "evaluation": artifacts.file(dsl.Artifact, "evaluation", json.dumps(evaluation)),
        "labelled": artifacts.dataset("labelled", separable),
        "quality_report": artifacts.file(dsl.Artifact, "quality_report", json.dumps(QUALITY)),
        "cutoff_plan": artifacts.file(dsl.Artifact, "cutoff_plan", json.dumps(PLAN)),
        "report": artifacts.file(dsl.HTML, "report", "<html><body>report</body></html>"),
    }


def register(inputs, model_name: str, **gate):
    return register_model.python_func(
        **inputs,
        tracking_uri="",  # MLFLOW_TRACKING_URI from mlflow_env
        model_name=model_name,
        pipeline_name="churn-training",
        pipeline_run_id="run-1",
        **OPEN_GATE | gate,
    )


def test_registers_the_first_model_as_champion_with_its_lineage(mlflow_env, inputs, separable):
    result = register(inputs, "components-first")

    summary = json.loads(result.summary)
    assert (result.model_version, result.champion_version, result.promoted) == ("1", "1", True)
    assert summary["model_version"] == "1" and summary["promoted"] is True
    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])
    version = client.get_model_version_by_alias("components-first", "champion")
    assert str(version.version) == "1"
    threshold = json.loads((Path(inputs["best_model"].path) / "candidate.json").read_text())[
        "threshold"
    ]
    counts = separable["split"].value_counts()
    expected_tags = {
        "data_start": "2024-01-01T00:00:00",
        "data_end": "2024-05-31T00:00:00",
        "quality_score": "0.9500",
        "rows": str(len(separable)),
        "rows_train": str(counts["train"]),
        "rows_test": str(counts["test"]),
        "cutoffs": "2024-02-01,2024-03-01,2024-04-01",
        "test_cutoff": "2024-04-01",
        "horizon_days": "30",
        "pipeline": "churn-training",
        "pipeline_run_id": "run-1",
    }
    assert {k: version.tags.get(k) for k in expected_tags} == expected_tags
    assert float(version.tags["threshold"]) == pytest.approx(threshold)

    run = client.get_run(version.run_id)
    assert run.info.run_name == "churn-training-run-1"
    assert run.data.params["model_type"] == "logistic_regression"
    expected_f1 = json.loads(Path(inputs["evaluation"].path).read_text())["candidates"][
        "logistic_regression"
    ]["test"]["f1"]
    assert run.data.metrics["test.f1"] == pytest.approx(expected_f1)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "reference")}
    assert logged == {"reference/reference.parquet"}
    local = client.download_artifacts(run.info.run_id, "reference/reference.parquet")
    reference = pd.read_parquet(local)
    assert sorted(reference["split"].unique()) == ["test", "train", "validation"]
    assert len(reference) == len(separable)  # fewer than 5000 rows per split: all of them
    report = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation_report.html")}
    assert report == {"evaluation_report.html/report"}


def test_a_failing_gate_registers_without_promoting(mlflow_env, inputs):
    register(inputs, "components-gate")

    result = register(inputs, "components-gate", min_f1=1.01)

    summary = json.loads(result.summary)
    assert (result.model_version, result.champion_version, result.promoted) == ("2", "1", False)
    assert summary["gate"]["passed"] is False
    assert any("f1" in reason for reason in summary["gate"]["reasons"])
    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias("components-gate", "champion").version) == "1"
    assert client.get_model_version("components-gate", "2").tags["decision.promote"] == "false"


def test_the_refit_is_registered_and_its_held_out_fit_meets_the_champion(
    mlflow_env, inputs, separable
):
    held_out = training.fit_candidate(separable, "logistic_regression", seed=0)
    served = training.refit_on_matured(held_out, separable)
    best = Path(inputs["best_model"].path)
    training.save_candidate(served, best)
    training.save_candidate(held_out, best / training.HELD_OUT_DIR)
    register(inputs, "components-refit")  # the first version becomes the champion

    result = register(inputs, "components-refit")

    summary = json.loads(result.summary)
    newest = separable[separable["cutoff"] == separable["cutoff"].max()]
    held_out_f1 = f1_score(newest["churn"], held_out.predict_proba(newest) >= held_out.threshold)
    champion_f1 = f1_score(newest["churn"], served.predict_proba(newest) >= served.threshold)
    # the challenger is judged by its held-out fit, the champion by what it serves
    assert summary["candidate_metric"] == pytest.approx(held_out_f1)
    assert summary["champion_metric"] == pytest.approx(champion_f1)
    assert summary["refit_through"] == served.refit_through == "2024-04-01"
    assert summary["held_out_threshold"] == pytest.approx(held_out.threshold)
    client = MlflowClient(mlflow_env["MLFLOW_TRACKING_URI"])
    version = client.get_model_version("components-refit", result.model_version)
    assert version.tags["refit_through"] == "2024-04-01"
    assert float(version.tags["threshold"]) == pytest.approx(served.threshold)
