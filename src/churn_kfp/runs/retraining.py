"""A local retraining run: the retraining pipeline through kfp.local, then its summary.

:func:`run_retraining` is what ``churn retrain``, the simulation and the benches call; the
summary it returns is also ``$CHURN_HOME/last-run.json`` (:mod:`churn_kfp.runs.summary`).
"""

from __future__ import annotations

import builtins
import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from churn_kfp.core.config import RETRAINING_PIPELINE, Settings
from churn_kfp.core.protocol import Protocol, pipeline_arguments
from churn_kfp.runs.summary import record_failure, rounded, write_last_run

__all__ = [
    "build_retraining_summary",
    "format_retraining_summary",
    "restored_print",
    "retraining_arguments",
    "run_retraining",
]


def retraining_arguments(protocol: Protocol, **inputs: Any) -> dict[str, Any]:
    """The retraining pipeline's arguments (without ``run_tag``, which each run draws)."""
    from churn_kfp.pipelines.retraining import retraining_pipeline

    return pipeline_arguments(protocol, retraining_pipeline.component_spec.inputs or {}, **inputs)


def run_retraining(
    arguments: dict[str, Any], settings: Settings, quiet: bool = False, progress: bool = False
) -> dict[str, Any]:
    """Runs the retraining pipeline once, locally, and publishes its summary.

    ``quiet`` hides the task logs; with ``progress`` too, one line per finished task shows.

    Returns:
        The run summary (also ``$CHURN_HOME/last-run.json``): ``pipeline``, ``status``
        (``succeeded`` or ``skipped``), ``reason``, ``period``, ``metrics`` and the period's
        details.

    The run holds its landing zone's lock throughout (:mod:`churn_kfp.data.locking`).

    Raises:
        PipelineRunError: A step failed (``last-run.json`` then records the failure).
        LandingZoneBusy: Another run or import holds the landing zone; nothing ran.
    """
    from churn_kfp.data.locking import landing_zone_lock
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.loop.state import period_key, read_json, run_key
    from churn_kfp.orchestration.localrun import PipelineRunError, run_locally
    from churn_kfp.pipelines.retraining import retraining_pipeline

    run_tag = f"retrain-{uuid.uuid4().hex[:12]}"
    arguments = {**arguments, "run_tag": run_tag}
    zone = open_landing_zone(arguments.get("landing_zone") or settings.landing_zone)
    with landing_zone_lock(zone, "churn retrain"):
        try:
            with restored_print():
                _, elapsed = run_locally(
                    retraining_pipeline, arguments, settings, quiet=quiet, progress=progress
                )
        except PipelineRunError as exc:
            record_failure(settings, RETRAINING_PIPELINE, exc)
            raise
    record = read_json(zone, run_key(run_tag)) or {}
    period_summary = None
    if record.get("status") == "succeeded":
        period_summary = read_json(zone, period_key(record["period"]))
    result = build_retraining_summary(record, period_summary, elapsed)
    result["report_path"] = _copy_drift_report(settings, period_summary)
    return write_last_run(result, settings, result.get("run_tag") or "run")


@contextlib.contextmanager
def restored_print() -> Iterator[None]:
    """Puts ``builtins.print`` back after a kfp.local run.

    kfp 2.17's local runner indents task logs by swapping ``builtins.print``; with parallel
    tasks (``dsl.ParallelFor``) the swaps interleave and an indenting wrapper can stay in
    place, which would indent everything the process prints afterwards.
    """
    saved = builtins.print
    try:
        yield
    finally:
        builtins.print = saved


def build_retraining_summary(
    record: dict[str, Any], period: dict[str, Any] | None, elapsed_s: float
) -> dict[str, Any]:
    """Combines a run record and its period summary into the CLI's summary."""
    status = record.get("status", "unknown")
    result: dict[str, Any] = {
        "pipeline": RETRAINING_PIPELINE,
        "pipeline_run_id": record.get("pipeline_run_id"),
        "run_tag": record.get("run_tag"),
        "status": status,
        "reason": record.get("reason"),
        "period": record.get("period") or None,
        "elapsed_s": round(elapsed_s, 1),
    }
    if status == "skipped":
        result["pending_periods"] = record.get("pending_periods", [])
        result["metrics"] = {}
        return result
    period = period or {}
    latest = period.get("latest_matured") or {}
    drift = period.get("drift") or {}
    decision = period.get("decision") or {}
    registration = period.get("registration") or {}
    result.update(
        {
            "new_cutoff": period.get("new_cutoff"),
            "champion_before": period.get("champion_before"),
            "champion_after": period.get("champion_after"),
            "retrained": bool(decision.get("retrain")),
            "would_retrain": bool(decision.get("would_retrain")),
            "retrain_reasons": [r.get("message") for r in decision.get("reasons", [])],
            "promoted": bool(registration.get("promoted")) if registration else False,
            "registration": registration or None,
            "metrics": {
                "matured_cutoff": latest.get("cutoff"),
                **{
                    f"matured_{k}": rounded(latest.get(k))
                    for k in ("f1", "precision", "recall", "roc_auc", "base_rate")
                },
                "drift_share": rounded(drift.get("share")),
                "drifted_columns": drift.get("drifted_columns"),
                "prediction_drift_score": rounded((drift.get("prediction") or {}).get("score")),
                "target_drift_score": rounded((drift.get("target") or {}).get("score")),
                "scored_customers": (period.get("scored") or {}).get("rows"),
            },
            "alerts": [f"[{a['kind']}] {a['message']}" for a in period.get("alerts", [])],
        }
    )
    return result


def _copy_drift_report(settings: Settings, period: dict[str, Any] | None) -> str | None:
    """Copies the period's Evidently report from the MLflow monitoring run to reports/."""
    if not period or not period.get("monitoring_run_id"):
        return None
    import shutil
    import tempfile

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        mlflow.set_tracking_uri(settings.tracking_uri)
        with tempfile.TemporaryDirectory() as tmp:
            local = mlflow.artifacts.download_artifacts(
                run_id=period["monitoring_run_id"],
                artifact_path=f"periods/{period['period']}/drift_report.html",
                dst_path=tmp,
            )
            settings.reports_dir.mkdir(parents=True, exist_ok=True)
            target = settings.reports_dir / f"drift-{period['period']}.html"
            shutil.copyfile(local, target)
            shutil.copyfile(local, settings.reports_dir / "latest-drift.html")
        return str(target)
    except Exception as exc:  # noqa: BLE001 - the report copy is a convenience
        print(f"warning: could not copy the drift report: {exc}", file=sys.stderr)
        return None


def format_retraining_summary(summary: dict[str, Any]) -> str:
    """Renders the summary as a few readable lines."""
    lines = ["", f"== {summary['pipeline']} {summary['status']} in {summary['elapsed_s']} s =="]
    if summary["status"] == "skipped":
        lines.append(f"skipped: {summary.get('reason')}")
        return "\n".join(lines)
    m = summary.get("metrics", {})
    lines.append(
        f"period {summary['period']}: champion v{summary['champion_before']} scored "
        f"{m.get('scored_customers')} customers as of {summary.get('new_cutoff')}"
    )
    if m.get("matured_cutoff"):
        lines.append(
            f"matured predictions of {m['matured_cutoff']}: f1={m.get('matured_f1')} "
            f"precision={m.get('matured_precision')} recall={m.get('matured_recall')} "
            f"roc_auc={m.get('matured_roc_auc')} (churn rate {m.get('matured_base_rate')})"
        )
    else:
        lines.append("no predictions have matured yet (labels need the churn window to pass)")
    lines.append(
        f"drift share {m.get('drift_share')} "
        f"({', '.join(m.get('drifted_columns') or []) or 'no column drifted'}); "
        f"prediction drift score {m.get('prediction_drift_score')}"
    )
    if summary.get("retrained"):
        lines.append("retrained because: " + "; ".join(summary["retrain_reasons"]))
        reg = summary.get("registration") or {}
        verdict = "promoted" if summary.get("promoted") else "not promoted"
        lines.append(
            f"challenger version {reg.get('model_version')}: {verdict} "
            f"({reg.get('decision_reason')})"
        )
    else:
        lines.append(str(summary.get("reason")))
    lines.append(f"champion is now version {summary.get('champion_after')}")
    for alert in summary.get("alerts", []):
        lines.append(f"alert {alert}")
    if summary.get("report_path"):
        lines.append(f"drift report: {summary['report_path']}")
    return "\n".join(lines)
