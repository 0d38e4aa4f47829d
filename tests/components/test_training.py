"""Component ``train-model``: one candidate searched, threshold-tuned and refitted."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import pytest
from kfp import dsl
from sklearn.metrics import f1_score, roc_auc_score

from churn_kfp.components.training import train_model


def test_trains_a_candidate_on_a_separable_table(artifacts, separable):
    model = artifacts.output(dsl.Model, "model")
    metrics = artifacts.output(dsl.Metrics, "validation_metrics")

    score = train_model.python_func(
        labelled=artifacts.dataset("labelled", separable),
        model_type="logistic_regression",
        n_iter=2,
        seed=0,
        model=model,
        validation_metrics=metrics,
    )

    # The label is `signal > 0` with a wide margin: validation ranks perfectly (ROC AUC,
    # the selection metric, is 1) and the tuned threshold separates the classes (F1 is 1).
    assert score == 1.0
    for name in ("roc_auc", "f1", "precision", "recall"):
        assert metrics.metadata[name] == pytest.approx(1.0), name
    saved = json.loads((Path(model.path) / "candidate.json").read_text())
    assert model.metadata == {"model_type": "logistic_regression", "threshold": saved["threshold"]}
    counts = separable["split"].value_counts()
    assert saved["refit_on"] == "train+validation"
    assert saved["n_rows"] == {
        "train": counts["train"],
        "validation": counts["validation"],
        "fit": counts["train"] + counts["validation"],
    }
    assert saved["validation_metrics"]["roc_auc"] == metrics.metadata["roc_auc"]

    # The saved pipeline scores the (unseen) test rows.
    pipeline = joblib.load(Path(model.path) / "pipeline.joblib")
    test = separable[separable["split"] == "test"]
    proba = pipeline.predict_proba(test[["recency_days", "signal", "noise"]])[:, 1]
    assert roc_auc_score(test["churn"], proba) == 1.0
    assert f1_score(test["churn"], proba >= saved["threshold"]) == 1.0


def test_an_unknown_model_type_is_refused(artifacts, separable):
    with pytest.raises(ValueError, match="unknown model type 'svm'"):
        train_model.python_func(
            labelled=artifacts.dataset("labelled", separable),
            model_type="svm",
            n_iter=1,
            seed=0,
            model=artifacts.output(dsl.Model, "model"),
            validation_metrics=artifacts.output(dsl.Metrics, "validation_metrics"),
        )
