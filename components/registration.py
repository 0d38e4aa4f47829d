"""Component: log and register the chosen model in MLflow; promote it if it wins."""

from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Model

from churn_kfp.components._base import churn_component


@churn_component
def register_model(
    best_model: Input[Model],
    evaluation: Input[Artifact],
    labelled: Input[Dataset],
    quality_report: Input[Artifact],
    cutoff_plan: Input[Artifact],
    report: Input[HTML],
    tracking_uri: str,
    model_name: str,
    pipeline_name: str,
    pipeline_run_id: str,
    min_f1: float,
    min_roc_auc: float,
    max_train_test_gap: float,
    promotion_margin: float,
) -> NamedTuple(
    "RegistrationOutputs",
    [("summary", str), ("model_version", str), ("champion_version", str), ("promoted", bool)],
):
    """Registers a new ``churn-classifier`` version; gives it the ``champion`` alias if it wins.

    The registered model is the one refit on every matured cutoff (``best_model``); its
    held-out fit (``best_model/held_out``) supplies the test metrics of the gate and meets
    the champion on the newest matured cutoff, which neither has trained on. The version is
    tagged with data lineage (range, rows, hash, git commit, pipeline run, ``refit_through``).
    A failing gate or a lost comparison leaves the current champion untouched.

    Args:
        tracking_uri: MLflow tracking URI; empty means ``MLFLOW_TRACKING_URI`` (or the local
            default under ``CHURN_HOME``).
        model_name: Registered model name (one per dataset: the champion is compared within it).
        min_f1: Gate: minimum test F1.
        min_roc_auc: Gate: minimum test ROC AUC.
        max_train_test_gap: Gate: largest allowed train-minus-test ROC AUC.
        promotion_margin: The challenger must beat the champion by more than this.

    Returns:
        ``summary`` (JSON: version, champion, decision, metrics, lineage, report path), the
        registered ``model_version``, the ``champion_version`` after the decision and
        whether this version was ``promoted``.
    """
    import json
    import os
    import tempfile
    from collections import namedtuple

    import pandas as pd

    from churn_kfp.core.columns import SPLIT, TEST, feature_columns
    from churn_kfp.core.config import Settings
    from churn_kfp.learn import training
    from churn_kfp.loop.reference import reference_sample
    from churn_kfp.registry import lineage
    from churn_kfp.registry import register as registry
    from churn_kfp.registry.gate import GateConfig

    settings = Settings.from_env()
    registry.connect(tracking_uri or settings.tracking_uri, settings.artifact_root)
    candidate = training.load_candidate(best_model.path)
    held_out_path = os.path.join(best_model.path, training.HELD_OUT_DIR)
    held_out = training.load_candidate(held_out_path) if os.path.isdir(held_out_path) else None
    with open(evaluation.path) as handle:
        result = json.load(handle)
    table = pd.read_parquet(labelled.path)
    with open(cutoff_plan.path) as handle:
        plan = json.load(handle)
    tags = lineage.lineage_tags(
        table,
        plan=plan,
        pipeline_name=pipeline_name,
        pipeline_run_id=pipeline_run_id,
        quality_report_path=quality_report.path,
    )
    tags["refit_through"] = candidate.refit_through or str(plan.get("test", ""))
    chosen = result["candidates"][result["champion"]]
    test_frame = table[table[SPLIT] == TEST]
    # A sample of the labelled rows: the reference of the retraining loop's drift checks.
    reference_path = os.path.join(tempfile.mkdtemp(prefix="reference-"), "reference.parquet")
    reference_sample(table).to_parquet(reference_path, index=False)
    summary = registry.register_and_decide(
        candidate.pipeline,
        test_frame=training.newest_cutoff_rows(table),
        test_metrics=chosen["test"],
        train_test_gap=result.get("train_test_gap"),
        threshold=candidate.threshold,
        input_example=test_frame[feature_columns(test_frame.columns)].head(5),
        params={"model_type": candidate.model_type, **candidate.params},
        metrics={
            "test": chosen["test"],
            "validation": chosen["validation"],
            "baseline": {name: b["test"] for name, b in result.get("baselines", {}).items()},
        },
        artifacts={
            "evaluation_report.html": report.path,
            "evaluation.json": evaluation.path,
            "reference": reference_path,
        },
        lineage=tags,
        gate_config=GateConfig(
            min_f1=min_f1,
            min_roc_auc=min_roc_auc,
            max_train_test_gap=max_train_test_gap,
            promotion_margin=promotion_margin,
        ),
        model_name=model_name,
        run_name=f"{pipeline_name}-{pipeline_run_id}"[:250],
        skops_trusted_types=training.SKOPS_TRUSTED_TYPES,
        challenger=(held_out.pipeline, held_out.threshold) if held_out else None,
    )
    summary.update(
        {
            "pipeline": pipeline_name,
            "pipeline_run_id": pipeline_run_id,
            "report_path": report.path,
            "evaluation_path": evaluation.path,
            "lineage": tags,
            "refit_through": tags["refit_through"],
            "held_out_threshold": held_out.threshold if held_out else candidate.threshold,
        }
    )
    print(json.dumps(summary, indent=2, default=str))
    outputs = namedtuple(
        "RegistrationOutputs", ["summary", "model_version", "champion_version", "promoted"]
    )
    return outputs(
        json.dumps(summary, default=str),
        str(summary["model_version"]),
        str(summary["champion_version"] or ""),
        bool(summary["promoted"]),
    )
