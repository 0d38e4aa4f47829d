import json

from churn_kfp.core.config import Settings
from churn_kfp.orchestration.localrun import PipelineRunError
from churn_kfp.runs.retraining import build_retraining_summary, format_retraining_summary
from churn_kfp.runs.summary import record_failure, write_last_run
from churn_kfp.runs.training import (
    build_training_summary,
    format_training_summary,
    publish_training_summary,
)

METRICS = {"f1": 0.71234, "precision": 0.6, "recall": 0.8, "accuracy": 0.9, "roc_auc": 0.91}
EVALUATION = {
    "champion": "xgboost",
    "candidates": {
        "xgboost": {
            "validation": METRICS,
            "test": dict(
                METRICS, pr_auc=0.7, lift_top_decile=2.5, capture_top_decile=0.25, base_rate=0.2
            ),
            "params": {"a": 1},
        },
        "logistic_regression": {"validation": METRICS, "test": dict(METRICS, roc_auc=0.85)},
    },
    "baselines": {"recency_only": {"test": {"roc_auc": 0.8, "pr_auc": 0.5}}},
    "leakage_warning": None,
    "train_test_gap": 0.02,
    "data": {
        "features": {"numeric": ["recency_days", "frequency_30d"], "categorical": []},
        "cutoffs": {"train": ["2025-02-01", "2025-03-01"], "validation": ["2025-04-01"]},
    },
}
REGISTERED = {
    "pipeline": "churn-training",
    "pipeline_run_id": "42",
    "model_name": "churn-classifier",
    "model_version": "3",
    "champion_version": "2",
    "promoted": False,
    "decision_reason": "champion kept",
}


def test_summary_has_the_documented_fields_and_rounds():
    summary = build_training_summary(REGISTERED, EVALUATION, elapsed_s=12.345)
    assert summary["status"] == "succeeded"
    assert summary["metrics"]["f1"] == 0.7123
    assert summary["metrics"]["pr_auc"] == 0.7
    assert summary["candidates"]["logistic_regression"]["test"]["roc_auc"] == 0.85
    assert "params" not in summary["candidates"]["xgboost"]
    assert summary["baselines"] == {"recency_only": {"roc_auc": 0.8, "pr_auc": 0.5}}
    assert summary["features"]["description"] == "behaviour only"
    assert summary["elapsed_s"] == 12.3


def test_format_names_version_decision_and_report():
    summary = build_training_summary(REGISTERED, EVALUATION, elapsed_s=1.0)
    text = format_training_summary(summary)
    assert "version 3: not promoted (champion kept)" in text
    assert "champion is now version 2" in text
    assert "baseline recency_only: roc_auc=0.8" in text
    assert "top decile:    lift=2.5  capture=0.25  (base churn rate 0.2)" in text
    assert "train=2025-02-01,2025-03-01  validation=2025-04-01" in text


def test_publish_copies_report_and_keeps_every_run(tmp_path):
    settings = Settings.from_env({"CHURN_HOME": str(tmp_path)})
    report = tmp_path / "src.html"
    report.write_text("<html>report</html>")
    summary = build_training_summary(
        dict(REGISTERED, report_path=str(report)), EVALUATION, elapsed_s=1.0
    )
    publish_training_summary(summary, settings)
    written = json.loads(settings.last_run_path.read_text())
    assert written["report_path"] == str(settings.reports_dir / "evaluation-v3.html")
    assert (settings.reports_dir / "evaluation-v3.html").read_text() == "<html>report</html>"
    assert (tmp_path / "runs" / "churn-training-42.json").is_file()


def test_a_failure_replaces_last_run_and_keeps_the_history(tmp_path):
    settings = Settings.from_env({"CHURN_HOME": str(tmp_path)})
    write_last_run({"pipeline": "churn-training", "status": "succeeded"}, settings, "7")
    error = PipelineRunError("churn-training", "train-model", "ValueError: boom")
    record_failure(settings, "churn-training", error)
    assert json.loads(settings.last_run_path.read_text()) == {
        "status": "failed",
        "pipeline": "churn-training",
        "failed_step": "train-model",
        "error": "ValueError: boom",
    }
    kept = json.loads((tmp_path / "runs" / "churn-training-7.json").read_text())
    assert kept["status"] == "succeeded"
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["churn-training-7.json"]


def test_retraining_summary_of_a_skipped_and_of_a_retraining_run():
    skipped = build_retraining_summary(
        {"status": "skipped", "reason": "no new data", "run_tag": "t1"}, None, elapsed_s=2.04
    )
    assert skipped["pipeline"] == "churn-retraining" and skipped["elapsed_s"] == 2.0
    assert "skipped: no new data" in format_retraining_summary(skipped)
    period = {
        "new_cutoff": "2025-06-01",
        "champion_before": "1",
        "champion_after": "2",
        "latest_matured": {"cutoff": "2025-05-01", "f1": 0.612345, "roc_auc": 0.8},
        "drift": {"share": 0.25, "drifted_columns": ["recency_days"]},
        "decision": {"retrain": True, "reasons": [{"message": "F1 below 0.8"}]},
        "registration": {"model_version": "2", "promoted": True, "decision_reason": "better"},
        "scored": {"rows": 900},
        "alerts": [{"kind": "degradation", "message": "F1 fell"}],
    }
    summary = build_retraining_summary(
        {"status": "succeeded", "period": "2025-05", "run_tag": "t2"}, period, elapsed_s=9.0
    )
    assert summary["metrics"]["matured_f1"] == 0.6123 and summary["promoted"] is True
    text = format_retraining_summary(summary)
    assert "retrained because: F1 below 0.8" in text
    assert "challenger version 2: promoted (better)" in text
    assert "alert [degradation] F1 fell" in text


def test_reprocess_reaches_the_retraining_pipeline_and_defaults_to_off():
    from churn_kfp.cli.main import build_parser
    from churn_kfp.core.protocol import RETRAINING_PROTOCOL
    from churn_kfp.pipelines.retraining import retraining_pipeline
    from churn_kfp.runs.retraining import retraining_arguments

    assert build_parser().parse_args(["retrain", "--reprocess"]).reprocess is True
    assert build_parser().parse_args(["retrain"]).reprocess is False
    assert retraining_arguments(RETRAINING_PROTOCOL, reprocess=True)["reprocess"] is True
    parameter = retraining_pipeline.component_spec.inputs["reprocess"]
    assert parameter.default is False
