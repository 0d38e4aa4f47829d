"""Component ``evaluate-models``: candidates scored on test, the best on validation kept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from kfp import dsl
from sklearn.metrics import confusion_matrix, f1_score, roc_auc_score

from churn_kfp.components.evaluation import evaluate_models
from churn_kfp.learn import training


@pytest.fixture
def candidates(artifacts, separable) -> dict[str, dsl.Model]:
    """A logistic regression trained on the table, a random forest trained on scrambled labels."""
    scrambled = separable.copy()
    scrambled["churn"] = np.random.default_rng(1).permutation(scrambled["churn"].to_numpy())
    models = {}
    for model_type, table in (("logistic_regression", separable), ("random_forest", scrambled)):
        model = artifacts.output(dsl.Model, model_type)
        training.save_candidate(training.fit_candidate(table, model_type, seed=0), model.path)
        models[model_type] = model
    return models


def test_keeps_the_best_candidate_on_validation_and_logs_its_test_metrics(
    artifacts, separable, candidates
):
    saved = {
        name: json.loads((Path(m.path) / "candidate.json").read_text())
        for name, m in candidates.items()
    }
    validation_auc = {name: s["validation_metrics"]["roc_auc"] for name, s in saved.items()}
    assert validation_auc["logistic_regression"] > validation_auc["random_forest"]
    outputs = {
        "evaluation": artifacts.output(dsl.Artifact, "evaluation"),
        "best_model": artifacts.output(dsl.Model, "best_model"),
        "test_metrics": artifacts.output(dsl.Metrics, "test_metrics"),
        "test_curves": artifacts.output(dsl.ClassificationMetrics, "test_curves"),
        "report": artifacts.output(dsl.HTML, "report"),
    }

    result = evaluate_models.python_func(
        labelled=artifacts.dataset("labelled", separable),
        models=list(candidates.values()),
        **outputs,
    )

    # Expected test figures of the winner, from its saved pipeline and threshold.
    winner = Path(candidates["logistic_regression"].path)
    pipeline = training.load_candidate(winner).pipeline
    test = separable[separable["split"] == "test"]
    proba = pipeline.predict_proba(test[["recency_days", "signal", "noise"]])[:, 1]
    predicted = (proba >= saved["logistic_regression"]["threshold"]).astype(int)
    expected_f1 = f1_score(test["churn"], predicted)

    assert result.chosen_model == "logistic_regression"
    assert result.test_f1 == pytest.approx(expected_f1)
    assert outputs["test_metrics"].metadata["f1"] == pytest.approx(expected_f1)
    assert outputs["test_metrics"].metadata["roc_auc"] == pytest.approx(
        roc_auc_score(test["churn"], proba)
    )
    # the held-out fit (the winner as evaluated) is kept beside the served refit
    best = Path(outputs["best_model"].path)
    held_out = training.load_candidate(best / training.HELD_OUT_DIR)
    assert held_out.threshold == saved["logistic_regression"]["threshold"]
    np.testing.assert_array_equal(held_out.predict_proba(test), proba)
    served = training.load_candidate(best)
    assert served.refit_on == training.SERVED_REFIT_ON
    assert served.refit_through == str(test["cutoff"].max().date())
    assert served.n_rows["fit"] == len(separable)
    assert outputs["best_model"].metadata["model_type"] == "logistic_regression"
    assert outputs["best_model"].metadata["refit_through"] == served.refit_through

    curves = outputs["test_curves"].metadata
    matrix = curves["confusionMatrix"]
    assert [spec["displayName"] for spec in matrix["annotationSpecs"]] == ["stays", "churns"]
    assert [r["row"] for r in matrix["rows"]] == confusion_matrix(test["churn"], predicted).tolist()
    points = sorted((p["falsePositiveRate"], p["recall"]) for p in curves["confidenceMetrics"])
    fpr, tpr = (np.array(v, dtype=float) for v in zip(*points, strict=True))
    assert np.trapezoid(tpr, fpr) == pytest.approx(roc_auc_score(test["churn"], proba))

    evaluation = json.loads(Path(outputs["evaluation"].path).read_text())
    assert evaluation["champion"] == "logistic_regression"
    assert evaluation["served_model"]["refit_through"] == served.refit_through
    assert set(evaluation["candidates"]) == {"logistic_regression", "random_forest"}
    assert "<html" in Path(outputs["report"].path).read_text().lower()
