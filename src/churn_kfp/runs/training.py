"""A local training run: the training pipeline through kfp.local, then its summary.

:func:`run_training` is what ``churn run``, the simulation and the benches call; the summary
it returns is also ``$CHURN_HOME/last-run.json`` (:mod:`churn_kfp.runs.summary`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from churn_kfp.core.config import MODEL_NAME, TRAINING_PIPELINE, Settings
from churn_kfp.core.protocol import Protocol, pipeline_arguments
from churn_kfp.runs.summary import record_failure, rounded, write_last_run

__all__ = [
    "HEADLINE_METRICS",
    "build_training_summary",
    "format_training_summary",
    "publish_training_summary",
    "run_training",
    "training_arguments",
]

HEADLINE_METRICS = ("f1", "precision", "recall", "accuracy", "roc_auc", "pr_auc")


def training_arguments(protocol: Protocol, **inputs: Any) -> dict[str, Any]:
    """The training pipeline's arguments: its protocol parameters and the run's ``inputs``."""
    from churn_kfp.pipelines.training import training_pipeline

    return pipeline_arguments(protocol, training_pipeline.component_spec.inputs or {}, **inputs)


def run_training(
    arguments: dict[str, Any], settings: Settings, quiet: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Runs the training pipeline locally and publishes its summary.

    ``quiet`` hides the task logs; with ``progress`` too, one line per finished task shows.
    The run holds its landing zone's lock throughout (:mod:`churn_kfp.data.locking`), and
    a run that generates data checks first that the landing zone holds no other data.

    Raises:
        PipelineRunError: A step failed (``last-run.json`` then records the failure).
        LandingZoneError: The landing zone is busy (``LandingZoneBusy``) or holds data the
            generator must not write beside (``ForeignDataError``); nothing ran.
    """
    from churn_kfp.data.datagen import check_generator_owns
    from churn_kfp.data.locking import landing_zone_lock
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.orchestration.localrun import PipelineRunError, local_arguments, run_locally
    from churn_kfp.pipelines.training import training_pipeline

    arguments = local_arguments(training_pipeline, arguments)
    zone = open_landing_zone(arguments.get("landing_zone") or settings.landing_zone)
    with landing_zone_lock(zone, "churn run"):
        if arguments.get("generate"):
            check_generator_owns(zone)
        try:
            output, elapsed = run_locally(
                training_pipeline, arguments, settings, quiet=quiet, progress=progress
            )
        except PipelineRunError as exc:
            record_failure(settings, TRAINING_PIPELINE, exc)
            raise
    registered = json.loads(output or "{}")
    evaluation = json.loads(Path(registered["evaluation_path"]).read_text())
    result = build_training_summary(registered, evaluation, elapsed)
    return publish_training_summary(result, settings)


def _metrics(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k: rounded(v) for k, v in (values or {}).items() if not isinstance(v, dict | list)}


def _feature_summary(data: dict[str, Any]) -> dict[str, Any]:
    from churn_kfp.learn.features import describe_feature_groups, feature_groups_used

    names = data.get("features") or []
    if isinstance(names, dict):  # {"numeric": [...], "categorical": [...]}
        names = [n for group in names.values() for n in group]
    groups = feature_groups_used(names)
    return {"groups": groups, "description": describe_feature_groups(groups), "count": len(names)}


def build_training_summary(
    registered: dict[str, Any], evaluation: dict[str, Any], elapsed_s: float
) -> dict[str, Any]:
    """Combines the registration result and the evaluation into the run summary."""
    chosen = evaluation["champion"]
    test = evaluation["candidates"][chosen]["test"]
    return {
        "status": "succeeded",
        "pipeline": registered.get("pipeline"),
        "pipeline_run_id": registered.get("pipeline_run_id"),
        "model_name": registered.get("model_name", MODEL_NAME),
        "model_version": registered.get("model_version"),
        "champion_version": registered.get("champion_version"),
        "previous_champion_version": registered.get("previous_champion_version"),
        "promoted": registered.get("promoted"),
        "decision": registered.get("decision_reason"),
        "gate": registered.get("gate"),
        "chosen_model": chosen,
        "refit_through": registered.get("refit_through")
        or (evaluation.get("served_model") or {}).get("refit_through"),
        "served_model": evaluation.get("served_model"),
        "metrics_source": "held-out fit (never saw the test cutoff's labels)",
        "metrics": {k: rounded(test.get(k)) for k in HEADLINE_METRICS},
        "lift_top_decile": rounded(test.get("lift_top_decile")),
        "capture_top_decile": rounded(test.get("capture_top_decile")),
        "base_rate": rounded(test.get("base_rate")),
        "candidates": {
            name: {split: _metrics(c.get(split)) for split in ("validation", "test")}
            for name, c in evaluation["candidates"].items()
        },
        "baselines": {
            name: _metrics(b.get("test")) for name, b in evaluation.get("baselines", {}).items()
        },
        "leakage_warning": evaluation.get("leakage_warning"),
        "features": _feature_summary(evaluation.get("data", {})),
        "data": {k: v for k, v in evaluation.get("data", {}).items() if k not in ("features",)},
        "train_test_gap": rounded(evaluation.get("train_test_gap")),
        "lineage": registered.get("lineage", {}),
        "run_id": registered.get("run_id"),
        "artifact_uri": registered.get("artifact_uri"),
        "report_path": registered.get("report_path"),
        "elapsed_s": round(elapsed_s, 1),
    }


def publish_training_summary(summary: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Copies the report next to the other reports and writes ``last-run.json``."""
    settings.reports_dir.mkdir(parents=True, exist_ok=True)
    source = summary.get("report_path")
    if source and Path(source).is_file():
        target = settings.reports_dir / f"evaluation-v{summary.get('model_version')}.html"
        shutil.copyfile(source, target)
        shutil.copyfile(source, settings.reports_dir / "latest-evaluation.html")
        summary["report_path"] = str(target)
    return write_last_run(summary, settings, summary.get("pipeline_run_id") or "run")


def format_training_summary(summary: dict[str, Any]) -> str:
    """Renders the summary as a few readable lines."""
    m = summary["metrics"]
    lines = [
        "",
        f"== {summary['pipeline']} finished in {summary['elapsed_s']} s ==",
        f"features: {summary['features']['description']} ({summary['features']['count']})",
        f"chosen model (best on validation): {summary['chosen_model']}",
        "test metrics:  "
        + "  ".join(f"{k}={m[k]}" for k in HEADLINE_METRICS if m.get(k) is not None),
    ]
    if summary.get("lift_top_decile") is not None:
        lines.append(
            f"top decile:    lift={summary['lift_top_decile']}  "
            f"capture={summary.get('capture_top_decile')}  "
            f"(base churn rate {summary.get('base_rate')})"
        )
    for name, vals in summary.get("baselines", {}).items():
        lines.append(f"baseline {name}: roc_auc={vals.get('roc_auc')} pr_auc={vals.get('pr_auc')}")
    cutoffs = summary.get("data", {}).get("cutoffs")
    if cutoffs:
        lines.append(
            "cutoffs:       "
            + "  ".join(f"{split}={','.join(cutoffs.get(split, []))}" for split in cutoffs)
        )
    served = summary.get("served_model") or {}
    if served:
        lines.append(
            f"served model:  refit on {len(served.get('cutoffs', []))} matured cutoffs through "
            f"{summary.get('refit_through')} (the test metrics are the held-out fit's, on "
            f"{','.join(served.get('held_out_cutoffs', []))})"
        )
    if summary.get("leakage_warning"):
        lines.append(f"WARNING: {summary['leakage_warning']}")
    verdict = "promoted to @champion" if summary["promoted"] else "not promoted"
    lines += [
        f"registered {summary['model_name']} version {summary['model_version']}: {verdict}"
        f" ({summary.get('decision')})",
        f"champion is now version {summary['champion_version']}",
        f"report: {summary['report_path']}",
    ]
    return "\n".join(lines)
