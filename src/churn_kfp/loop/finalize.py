"""The end of a retraining run: commit a period to the loop's state, or record a skip.

:func:`finalize` stores what the monitor step wrote (predictions, re-scored by a champion
promoted in this run, see :func:`rescore_new_cutoff`; the performance history), logs the
period to the model's MLflow monitoring run (:func:`log_monitoring`), sends the alerts, writes
the period summary and, last, marks the ledger: a failure before that mark leaves the period
pending. :func:`record_skip` records a run that found nothing to do.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from churn_kfp.core import columns
from churn_kfp.data.contract import TRANSACTIONS
from churn_kfp.data.storage import LandingZone, discover_partitions
from churn_kfp.loop.decision import build_alerts, log_alerts, notify, skip_alert
from churn_kfp.loop.ledger import mark_processed
from churn_kfp.loop.periods import PeriodPlan, cutoff_step
from churn_kfp.loop.state import (
    HEADLINE,
    LAST_SKIP_KEY,
    alerts_key,
    make_predictions,
    period_key,
    read_performance,
    run_key,
    upsert_performance,
    write_json,
    write_performance,
    write_predictions,
)
from churn_kfp.registry.champion import load_champion

__all__ = [
    "MONITORING_RUN_TAG",
    "MONITORING_RUN_VALUE",
    "finalize",
    "log_monitoring",
    "record_skip",
    "rescore_new_cutoff",
]

MONITORING_RUN_TAG = "churn.kind"
MONITORING_RUN_VALUE = "monitoring"


def log_monitoring(
    experiment_id: str,
    model_name: str,
    summary: Mapping[str, Any],
    decision: Mapping[str, Any],
    artifacts: Mapping[str, str],
) -> str:
    """Logs a period to the model's long-lived MLflow monitoring run; idempotent per step.

    Metrics of matured cutoffs (``matured_f1``, ``matured_precision``, ...) use the cutoff
    as the step (``yyyymmdd``); metrics of the new cutoff (``drift_share``,
    ``drifted_columns``, ``prediction_drift_score``, ``target_drift_score``,
    ``predicted_churn_rate``, ``retrain``) use the new cutoff. A step already logged for a
    key is not logged again, so re-running a period adds nothing. The period's reports go to
    ``periods/<period>/``.

    Args:
        experiment_id: MLflow experiment (from :func:`churn_kfp.registry.register.connect`).
        model_name: Registered model name; one monitoring run per name.
        summary: The monitoring summary of :func:`~churn_kfp.loop.monitor.monitor`.
        decision: The retraining decision dict.
        artifacts: File name -> local path of the period's reports.

    Returns:
        The monitoring run id.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{MONITORING_RUN_TAG}` = '{MONITORING_RUN_VALUE}' "
        f"and tags.model_name = '{model_name}'",
        max_results=1,
    )
    if found:
        run_id = found[0].info.run_id
    else:
        run = client.create_run(
            experiment_id,
            run_name=f"monitoring-{model_name}",
            tags={MONITORING_RUN_TAG: MONITORING_RUN_VALUE, "model_name": model_name},
        )
        run_id = run.info.run_id

    points: list[tuple[str, float, int]] = []
    for row in summary.get("matured", []):
        step = cutoff_step(row[columns.CUTOFF])
        for name in (*HEADLINE, "base_rate"):
            value = row.get(name)
            if value is not None:
                points.append((f"matured_{name}", float(value), step))
    step = cutoff_step(summary["new_cutoff"])
    data = summary.get("drift") or {}
    pred = data.get("prediction") or {}
    target = data.get("target") or {}
    scored = summary.get("scored") or {}
    for name, value in (
        ("drift_share", data.get("share") if data.get("n_columns") else None),
        ("drifted_columns", data.get("n_drifted") if data.get("n_columns") else None),
        ("prediction_drift_score", pred.get("score")),
        ("target_drift_score", target.get("score")),
        ("predicted_churn_rate", scored.get("predicted_churn_rate")),
        ("scored_customers", scored.get("rows")),
        ("retrain", 1.0 if decision.get("retrain") else 0.0),
    ):
        if value is not None:
            points.append((name, float(value), step))

    logged: dict[str, set[int]] = {}
    for key, value, point_step in points:
        if key not in logged:
            logged[key] = {m.step for m in client.get_metric_history(run_id, key)}
        if point_step in logged[key]:
            continue
        client.log_metric(run_id, key, value, step=point_step)
        logged[key].add(point_step)
    for local in artifacts.values():
        client.log_artifact(run_id, local, artifact_path=f"periods/{summary['period']}")
    client.set_tag(run_id, "last_period", summary["period"])
    return run_id


def finalize(
    *,
    zone: LandingZone,
    plan: PeriodPlan,
    monitoring_dir: str,
    decision: Mapping[str, Any],
    registration: Mapping[str, Any] | None,
    run_info: Mapping[str, Any],
    webhook_url: str = "",
    experiment_id: str | None = None,
) -> dict[str, Any]:
    """Commits a period: stores predictions, history, alerts and summary, then marks the ledger.

    Order matters: everything keyed by period/cutoff is written first (a re-run overwrites
    it), the ledger is marked last. A failure before the mark leaves the period pending and
    the next run redoes it from scratch.

    Args:
        zone: The landing zone holding ``state/``.
        plan: The period plan from the new-data check.
        monitoring_dir: The folder :func:`~churn_kfp.loop.monitor.monitor` wrote.
        decision: :meth:`~churn_kfp.loop.decision.RetrainDecision.to_dict` output.
        registration: The registration summary when a challenger was trained, else ``None``.
        run_info: ``pipeline``, ``pipeline_run_id``, ``run_tag`` of this run.
        webhook_url: Optional endpoint for the alerts.
        experiment_id: MLflow experiment of the monitoring run (``None``: do not log to
            MLflow, for tests without a tracking server).

    Returns:
        The period summary (also stored as ``state/periods/<period>.json``).
    """
    folder = Path(monitoring_dir)
    summary = json.loads((folder / "summary.json").read_text())
    predictions = pd.read_parquet(folder / "predictions.parquet")
    performance = pd.read_parquet(folder / "performance.parquet")
    if registration and registration.get("promoted"):
        predictions, summary["scored"] = rescore_new_cutoff(
            predictions, folder / "features.parquet", summary, registration
        )

    write_predictions(zone, predictions)
    history = upsert_performance(read_performance(zone), performance)
    write_performance(zone, history)

    monitoring_run = None
    if experiment_id is not None:
        artifacts = {
            name: str(folder / name)
            for name in ("drift_report.html", "target_drift.html", "summary.json")
            if (folder / name).exists()
        }
        monitoring_run = log_monitoring(
            experiment_id, summary["champion"]["model_name"], summary, decision, artifacts
        )

    alerts = build_alerts(plan.period, decision, registration)
    log_alerts(alerts)
    webhook = notify(webhook_url, plan.period, alerts)
    write_json(zone, alerts_key(plan.period), alerts)

    champion_after = summary["champion"]["version"]
    if registration:
        champion_after = str(registration.get("champion_version") or champion_after)
    period_summary = {
        "period": plan.period,
        "new_cutoff": plan.new_cutoff,
        "data_end": summary.get("data_end"),
        "status": "succeeded",
        "champion_before": summary["champion"]["version"],
        "champion_after": champion_after,
        "scored": summary.get("scored"),
        "backfilled": summary.get("backfilled"),
        "latest_matured": summary.get("latest_matured"),
        "newly_matured": summary.get("newly_matured"),
        "drift": {
            key: (summary.get("drift") or {}).get(key)
            for key in (
                "share",
                "n_drifted",
                "n_columns",
                "drifted_columns",
                "prediction",
                "target",
                "note",
            )
        },
        "reference": summary.get("reference"),
        "decision": dict(decision),
        "registration": _registration_brief(registration),
        "alerts": alerts,
        "webhook": webhook,
        "partitions": plan.keys_to_mark(),
        "monitoring_run_id": monitoring_run,
        **{k: run_info.get(k) for k in ("pipeline", "pipeline_run_id", "run_tag")},
    }
    write_json(zone, period_key(plan.period), period_summary)

    # the commit point: only now is the period done
    keys = set(plan.keys_to_mark())
    partitions = [p for p in discover_partitions(zone, TRANSACTIONS) if p.key in keys]
    run_id = str(run_info.get("run_tag") or run_info.get("pipeline_run_id") or "run")
    mark_processed(zone, partitions, run_id=run_id)

    record = {
        "status": "succeeded",
        "period": plan.period,
        "reason": decision.get("summary", ""),
        "summary_key": period_key(plan.period),
        **{k: run_info.get(k) for k in ("pipeline", "pipeline_run_id", "run_tag")},
    }
    if run_info.get("run_tag"):
        write_json(zone, run_key(str(run_info["run_tag"])), record)
    return period_summary


def rescore_new_cutoff(
    predictions: pd.DataFrame,
    features_path: Any,
    summary: Mapping[str, Any],
    registration: Mapping[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Replaces the new cutoff's predictions with those of a champion promoted in this run.

    The monitoring step scored the new cutoff before retraining; when a challenger wins, it
    is the model that serves the coming period, so its scores are the ones stored (and
    judged once the labels mature).

    Returns:
        The updated predictions and the updated ``scored`` block of the summary.
    """
    model_name = str(registration.get("model_name") or summary["champion"]["model_name"])
    champion = load_champion(model_name)
    expected = str(registration.get("champion_version"))
    if champion is None or champion.version != expected:
        raise RuntimeError(
            f"the champion of {model_name!r} is {champion and champion.version}, expected "
            f"version {expected} promoted by this run"
        )
    features = pd.read_parquet(features_path)
    proba = champion.score(features)
    fresh = make_predictions(features, proba, champion.version, champion.threshold)
    new_cutoff = pd.Timestamp(summary["new_cutoff"])
    kept = predictions[pd.to_datetime(predictions[columns.CUTOFF]) != new_cutoff]
    scored = dict(summary.get("scored") or {})
    scored.update(
        {
            "model_version": champion.version,
            "rescored_after_promotion": True,
            "predicted_churn_rate": float(np.mean(proba >= champion.threshold))
            if len(proba)
            else None,
            "mean_probability": float(np.mean(proba)) if len(proba) else None,
        }
    )
    return pd.concat([kept, fresh], ignore_index=True), scored


def _registration_brief(registration: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not registration:
        return None
    keys = (
        "model_name",
        "model_version",
        "champion_version",
        "previous_champion_version",
        "promoted",
        "gate",
        "decision_reason",
        "metric",
        "candidate_metric",
        "champion_metric",
        "threshold",
        "run_id",
    )
    brief = {k: registration.get(k) for k in keys}
    lineage = registration.get("lineage") or {}
    brief["cutoffs"] = lineage.get("cutoffs")
    brief["test_cutoff"] = lineage.get("test_cutoff")
    return brief


def record_skip(zone: LandingZone, plan: PeriodPlan, run_info: Mapping[str, Any]) -> dict:
    """Records a run that found nothing to do (``state/last-skip.json`` and the run record)."""
    alert = skip_alert(plan.period, plan.reason)
    log_alerts([alert])
    record = {
        "status": "skipped",
        "period": plan.period,
        "reason": plan.reason,
        "pending_periods": plan.pending_periods,
        "last_handled": plan.last_handled,
        **{k: run_info.get(k) for k in ("pipeline", "pipeline_run_id", "run_tag")},
    }
    write_json(zone, LAST_SKIP_KEY, record)
    if run_info.get("run_tag"):
        write_json(zone, run_key(str(run_info["run_tag"])), record)
    return record
