"""Components of the retraining loop: new-data check, monitoring, decision, commit.

Each one is a thin wrapper around the modules of :mod:`churn_kfp.loop` (periods, monitor,
decision, finalize). Only :func:`finalize_period` (and :func:`record_skip`) write the
loop's state, and the ledger mark is the last write of a period: a run that fails anywhere
leaves the period pending for the next run.

Test hook: every component here raises before doing anything when the environment variable
``CHURN_FAIL_AT`` equals its step name (``check-new-data``, ``score-and-monitor``,
``decide-retraining``, ``finalize-period``).
"""

from typing import NamedTuple

from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Output

from churn_kfp.components._base import churn_component


@churn_component
def check_new_data(
    landing_zone: str, tracking_uri: str, model_name: str, period: str, reprocess: bool = False
) -> NamedTuple(
    "CheckOutputs",
    [("has_new", bool), ("period", str), ("new_cutoff", str), ("plan", str)],
):
    """Finds the next period to process from the ledger of processed partitions.

    Reads live state (ledger, landing zone, champion alias): never cache this step.

    Args:
        landing_zone: Landing-zone path or ``s3://`` URI; empty means ``CHURN_LANDING_ZONE``.
        tracking_uri: MLflow tracking URI; empty means ``MLFLOW_TRACKING_URI`` (or local).
        model_name: Registered model whose champion is monitored.
        period: Process this month (``YYYY-MM``); empty picks the oldest pending one.
        reprocess: Process a period a run already committed when the ledger lost it
            (refused otherwise: :func:`churn_kfp.loop.state.refuse_reprocessing`).

    Returns:
        Whether there is work, the period, its new cutoff and the plan as JSON.
    """
    import json
    from collections import namedtuple

    from churn_kfp.core.config import Settings
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.loop.failpoints import fail_if_requested
    from churn_kfp.loop.periods import PeriodPlan, plan_period
    from churn_kfp.loop.state import refuse_reprocessing
    from churn_kfp.registry import register as registry
    from churn_kfp.registry.champion import champion_version
    from churn_kfp.registry.lineage import covered_month

    fail_if_requested("check-new-data")
    settings = Settings.from_env()
    zone = open_landing_zone(landing_zone or settings.landing_zone)
    registry.connect(tracking_uri or settings.tracking_uri, settings.artifact_root)
    current = champion_version(model_name)
    if current is None:
        plan = PeriodPlan(
            has_new=False,
            reason=f"no champion of {model_name!r} yet: run the training pipeline first",
        )
    else:
        version, tags = current
        plan = plan_period(zone, covered_month(tags), period or None)
        if not reprocess:
            refuse_reprocessing(zone, plan)
    print(f"new-data check: {plan.reason}")
    outputs = namedtuple("CheckOutputs", ["has_new", "period", "new_cutoff", "plan"])
    return outputs(plan.has_new, plan.period, plan.new_cutoff, json.dumps(plan.to_dict()))


@churn_component
def score_and_monitor(
    transactions: Input[Dataset],
    customers: Input[Dataset],
    scored_feedback: Input[Dataset],
    plan: str,
    tracking_uri: str,
    model_name: str,
    landing_zone: str,
    horizon_days: int,
    eligibility_days: int,
    windows: str,
    drift_columns: str,
    monitoring: Output[Artifact],
    drift_report: Output[HTML],
    monitoring_metrics: Output[Metrics],
) -> NamedTuple(
    "MonitorOutputs",
    [("latest_f1", float), ("drift_share", float), ("champion_version", str), ("summary", str)],
):
    """Scores the new cutoff with the champion, judges matured predictions, measures drift.

    Writes nothing to the loop's state: predictions, performance rows and reports go to the
    ``monitoring`` artifact (a folder) for ``finalize-period``. The drift report (Evidently)
    is the HTML output; drift share, drifted columns, prediction drift and the latest
    matured metrics are KFP metrics. Reads the live champion alias: never cache this step.

    Args:
        plan: The period plan (JSON) from ``check-new-data``.
        tracking_uri: MLflow tracking URI; empty means ``MLFLOW_TRACKING_URI`` (or local).
        model_name: Registered model whose champion scores.
        landing_zone: Landing zone holding ``state/``; empty means ``CHURN_LANDING_ZONE``.
        horizon_days: Churn window after a cutoff.
        eligibility_days: A customer is scored if they bought within this many days.
        windows: Comma-separated feature windows in days.
        drift_columns: Comma-separated columns for the drift share; empty means the
            default monitored columns (see :mod:`churn_kfp.loop.drift`).

    Returns:
        Latest matured F1 (-1 before any cutoff matured), drift share (-1 when not
        measured), champion version and the monitoring summary as JSON.
    """
    import json
    import shutil
    from collections import namedtuple
    from pathlib import Path

    import pandas as pd

    from churn_kfp.core.config import Settings
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.loop.failpoints import fail_if_requested
    from churn_kfp.loop.monitor import monitor
    from churn_kfp.loop.periods import PeriodPlan
    from churn_kfp.registry import register as registry
    from churn_kfp.registry.champion import load_champion

    fail_if_requested("score-and-monitor")
    settings = Settings.from_env()
    zone = open_landing_zone(landing_zone or settings.landing_zone)
    registry.connect(tracking_uri or settings.tracking_uri, settings.artifact_root)
    champion = load_champion(model_name)
    if champion is None:
        raise RuntimeError(f"no champion of {model_name!r}: run the training pipeline first")
    cust = pd.read_parquet(customers.path)
    fb = pd.read_parquet(scored_feedback.path)
    summary = monitor(
        zone=zone,
        plan=PeriodPlan.from_dict(json.loads(plan)),
        champion=champion,
        transactions=pd.read_parquet(transactions.path),
        customers=cust if len(cust) else None,
        feedback=fb if len(fb) else None,
        horizon_days=horizon_days,
        eligibility_days=eligibility_days,
        windows=[int(w) for w in windows.split(",")],
        out_dir=monitoring.path,
        drift_columns=[c.strip() for c in drift_columns.split(",") if c.strip()] or None,
    )
    shutil.copyfile(Path(monitoring.path) / "drift_report.html", drift_report.path)

    latest = summary.get("latest_matured") or {}
    drift = summary.get("drift") or {}
    measured = bool(drift.get("n_columns"))
    values = {
        "latest_matured_f1": latest.get("f1"),
        "latest_matured_roc_auc": latest.get("roc_auc"),
        "latest_matured_precision": latest.get("precision"),
        "latest_matured_recall": latest.get("recall"),
        "drift_share": drift.get("share") if measured else None,
        "drifted_columns": drift.get("n_drifted") if measured else None,
        "prediction_drift_score": (drift.get("prediction") or {}).get("score"),
        "target_drift_score": (drift.get("target") or {}).get("score"),
        "scored_customers": summary["scored"]["rows"],
        "predicted_churn_rate": summary["scored"]["predicted_churn_rate"],
    }
    for name, value in values.items():
        if value is not None:
            monitoring_metrics.log_metric(name, float(value))
    monitoring.metadata.update({"period": summary["period"], "new_cutoff": summary["new_cutoff"]})
    print(
        f"period {summary['period']}: champion v{champion.version} scored "
        f"{summary['scored']['rows']} customers at {summary['new_cutoff']}; latest matured: "
        f"{json.dumps(latest, default=str)}; drift share {drift.get('share')} "
        f"({', '.join(drift.get('drifted_columns') or []) or 'no column'})"
    )
    outputs = namedtuple(
        "MonitorOutputs", ["latest_f1", "drift_share", "champion_version", "summary"]
    )
    f1 = latest.get("f1")
    return outputs(
        float(f1) if f1 is not None else -1.0,
        float(drift["share"]) if measured else -1.0,
        champion.version,
        json.dumps(summary, default=str),
    )


@churn_component
def decide_retraining(
    summary: str,
    retrain_threshold: float,
    drift_threshold: float,
    prediction_drift_triggers: bool,
    retraining_enabled: bool,
    force: bool,
    performance_drop: float = 0.05,
    drift_persistence: int = 2,
    drift_effect_floor: float = 0.2,
    backoff_periods: int = 2,
) -> NamedTuple("DecisionOutputs", [("retrain", bool), ("decision", str)]):
    """Decides whether to train a challenger (a pure function of the monitoring signals).

    Each reason records the rule that fired (:mod:`churn_kfp.loop.decision`).

    Args:
        summary: The monitoring summary (JSON) from ``score-and-monitor``.
        retrain_threshold: Retrain when the latest matured F1 is below this (0: off).
        drift_threshold: Drift counts when this share of monitored features drifted.
        prediction_drift_triggers: Whether drift of the champion's scores is a reason.
        retraining_enabled: False = frozen policy: monitor, never retrain.
        force: Retrain whatever the signals say.
        performance_drop: Retrain when the matured F1 is more than this below the
            champion's held-out test F1.
        drift_persistence: Drift retrains after this many consecutive periods...
        drift_effect_floor: ... or at once when more than ``drift_threshold`` of the
            features moved by at least this effect size.
        backoff_periods: After a retrain that did not promote, drift alone waits this many
            periods.

    Returns:
        Whether to retrain, and the decision with its reasons as JSON.
    """
    import json
    from collections import namedtuple

    from churn_kfp.loop import decision as dec
    from churn_kfp.loop.failpoints import fail_if_requested

    fail_if_requested("decide-retraining")
    result = dec.decide(
        dec.Signals.from_summary(json.loads(summary)),
        dec.Policy(
            retrain_threshold=retrain_threshold,
            drift_threshold=drift_threshold,
            prediction_drift_triggers=prediction_drift_triggers,
            retraining_enabled=retraining_enabled,
            force=force,
            performance_drop=performance_drop,
            drift_persistence=drift_persistence,
            drift_effect_floor=drift_effect_floor,
            backoff_periods=backoff_periods,
        ),
    )
    print(result.summary)
    outputs = namedtuple("DecisionOutputs", ["retrain", "decision"])
    return outputs(result.retrain, json.dumps(result.to_dict()))


@churn_component
def finalize_period(
    monitoring: Input[Artifact],
    plan: str,
    decision: str,
    registration: str,
    landing_zone: str,
    tracking_uri: str,
    webhook_url: str,
    pipeline_name: str,
    pipeline_run_id: str,
    run_tag: str,
) -> str:
    """Commits the period: predictions, performance history, MLflow, alerts, then the ledger.

    The ledger mark is the last write: if this step fails, the period stays pending and the
    next run redoes it (everything else is keyed by period or cutoff and overwritten).

    Args:
        plan: The period plan (JSON) from ``check-new-data``.
        decision: The retraining decision (JSON) from ``decide-retraining``.
        registration: The registration summary (JSON) when a challenger was trained, else
            empty.
        landing_zone: Landing zone holding ``state/``; empty means ``CHURN_LANDING_ZONE``.
        tracking_uri: MLflow tracking URI; empty means ``MLFLOW_TRACKING_URI`` (or local).
        webhook_url: Optional URL the alerts are POSTed to as JSON.
        pipeline_name: Recorded in the period summary.
        pipeline_run_id: Recorded in the period summary and the ledger.
        run_tag: Caller's id of this run (the CLI reads ``state/runs/<run_tag>.json``).

    Returns:
        The period summary as JSON.
    """
    import json

    from churn_kfp.core.config import Settings
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.loop.failpoints import fail_if_requested
    from churn_kfp.loop.finalize import finalize
    from churn_kfp.loop.periods import PeriodPlan
    from churn_kfp.registry import register as registry

    fail_if_requested("finalize-period")
    settings = Settings.from_env()
    zone = open_landing_zone(landing_zone or settings.landing_zone)
    experiment_id = registry.connect(tracking_uri or settings.tracking_uri, settings.artifact_root)
    summary = finalize(
        zone=zone,
        plan=PeriodPlan.from_dict(json.loads(plan)),
        monitoring_dir=monitoring.path,
        decision=json.loads(decision),
        registration=json.loads(registration) if registration else None,
        run_info={
            "pipeline": pipeline_name,
            "pipeline_run_id": pipeline_run_id,
            "run_tag": run_tag,
        },
        webhook_url=webhook_url,
        experiment_id=experiment_id,
    )
    print(f"period {summary['period']} done: champion {summary['champion_after']}")
    return json.dumps(summary, default=str)


@churn_component
def record_skip(
    plan: str, landing_zone: str, pipeline_name: str, pipeline_run_id: str, run_tag: str
) -> str:
    """Records that the run found no new data (the run ends here, in seconds).

    Args:
        plan: The period plan (JSON) from ``check-new-data``, with the reason.
        landing_zone: Landing zone holding ``state/``; empty means ``CHURN_LANDING_ZONE``.
        pipeline_name: Recorded in the run record.
        pipeline_run_id: Recorded in the run record.
        run_tag: Caller's id of this run (the CLI reads ``state/runs/<run_tag>.json``).

    Returns:
        The skip record as JSON.
    """
    import json

    from churn_kfp.core.config import Settings
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.loop import finalize
    from churn_kfp.loop.periods import PeriodPlan

    zone = open_landing_zone(landing_zone or Settings.from_env().landing_zone)
    record = finalize.record_skip(
        zone,
        PeriodPlan.from_dict(json.loads(plan)),
        {"pipeline": pipeline_name, "pipeline_run_id": pipeline_run_id, "run_tag": run_tag},
    )
    print(f"skipped: {record['reason']}")
    return json.dumps(record)
