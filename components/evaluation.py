"""Component: evaluate every candidate on the held-out test cutoff and pick the winner."""

from typing import NamedTuple

from kfp.dsl import (
    HTML,
    Artifact,
    ClassificationMetrics,
    Dataset,
    Input,
    Metrics,
    Model,
    Output,
)

from churn_kfp.components._base import churn_component


@churn_component
def evaluate_models(
    labelled: Input[Dataset],
    models: Input[list[Model]],
    evaluation: Output[Artifact],
    best_model: Output[Model],
    test_metrics: Output[Metrics],
    test_curves: Output[ClassificationMetrics],
    report: Output[HTML],
) -> NamedTuple("EvaluationOutputs", [("chosen_model", str), ("test_f1", float)]):
    """Scores candidates and baselines on test; the best on validation is the one kept.

    Writes the metrics for the KFP UI (scalar metrics, ROC curve, confusion matrix), an
    HTML report with feature importance, and a JSON evaluation for registration. The test
    metrics are the held-out fit's (it never saw the test cutoff's labels); ``best_model``
    is the model to serve, refit on every matured cutoff, with the held-out fit in its
    ``held_out`` subfolder.
    """
    import json
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from churn_kfp.learn import evaluation as ev
    from churn_kfp.learn import report as rep
    from churn_kfp.learn import training

    table = pd.read_parquet(labelled.path)
    candidates = [training.load_candidate(m.path) for m in models]
    result = ev.evaluate_candidates(table, candidates).to_dict()
    chosen = result["champion"]
    held_out = next(c for c in candidates if c.model_type == chosen)
    served = training.refit_on_matured(held_out, table)
    result["served_model"] = ev.served_model_summary(served, held_out, table)
    with open(evaluation.path, "w") as handle:
        json.dump(result, handle, indent=2, default=str)

    training.save_candidate(served, best_model.path)
    training.save_candidate(held_out, Path(best_model.path) / training.HELD_OUT_DIR)
    best_model.metadata.update({"model_type": chosen, "refit_through": served.refit_through})

    metrics = result["candidates"][chosen]["test"]
    for name, value in metrics.items():
        if isinstance(value, int | float) and value == value:
            test_metrics.log_metric(name, float(value))
    fpr, tpr, thresholds = (result["roc_curve"][k] for k in ("fpr", "tpr", "thresholds"))
    test_curves.log_roc_curve(fpr, tpr, thresholds)
    test_curves.log_confusion_matrix(["stays", "churns"], result["confusion_matrix"])

    with tempfile.TemporaryDirectory() as tmp:
        html = rep.render_report(result, Path(tmp))
        shutil.copyfile(html, report.path)
    print(f"chosen on validation: {chosen}; test metrics: {json.dumps(metrics, default=str)}")
    outputs = namedtuple("EvaluationOutputs", ["chosen_model", "test_f1"])
    return outputs(chosen, float(metrics["f1"]))
