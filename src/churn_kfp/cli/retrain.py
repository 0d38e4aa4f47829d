"""``churn retrain`` and ``churn simulate``: the continuous-learning loop on this machine."""

from __future__ import annotations

import argparse
import builtins
import contextlib
import json
import os
import sys
import uuid
from collections.abc import Iterator
from typing import Any

from churn_kfp.core.config import MODEL_NAME, RETRAINING_PIPELINE, Settings


def retraining_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """Maps command-line options to retraining-pipeline parameters (without ``run_tag``)."""
    return {
        "landing_zone": args.landing_zone or "",
        "model_name": args.model_name,
        "period": args.period or "",
        "horizon_days": args.horizon_days,
        "eligibility_days": args.eligibility_days,
        "windows": args.windows,
        "n_train_cutoffs": args.train_cutoffs,
        "n_iter": args.n_iter,
        "seed": args.seed,
        "min_f1": args.min_f1,
        "min_roc_auc": args.min_roc_auc,
        "max_train_test_gap": args.max_gap,
        "promotion_margin": args.margin,
        "retrain_threshold": args.retrain_threshold,
        "drift_threshold": args.drift_threshold,
        "prediction_drift_triggers": not args.no_prediction_drift,
        "retraining_enabled": not args.no_retrain,
        "force": args.force,
        "drift_columns": args.drift_columns,
        "webhook_url": args.webhook_url,
        "candidate_models": [m.strip() for m in args.candidate_models.split(",") if m.strip()],
    }


def run_retraining(
    arguments: dict[str, Any], settings: Settings, quiet: bool = False, progress: bool = False
) -> dict:
    """Runs the retraining pipeline once, locally, and publishes its summary.

    ``quiet`` hides the task logs; with ``progress`` too, one line per finished task shows.

    Returns:
        The run summary (also ``$CHURN_HOME/last-run.json``): ``pipeline``, ``status``
        (``succeeded`` or ``skipped``), ``reason``, ``period``, ``metrics`` and the period's
        details.

    Raises:
        PipelineRunError: A step failed (``last-run.json`` then records the failure).
    """
    from churn_kfp.cli.run import record_failure
    from churn_kfp.data.storage import open_landing_zone
    from churn_kfp.loop import monitoring
    from churn_kfp.orchestration.localrun import PipelineRunError, run_locally
    from churn_kfp.pipelines.retraining import retraining_pipeline

    run_tag = f"retrain-{uuid.uuid4().hex[:12]}"
    arguments = {**arguments, "run_tag": run_tag}
    try:
        with restored_print():
            _, elapsed = run_locally(
                retraining_pipeline, arguments, settings, quiet=quiet, progress=progress
            )
    except PipelineRunError as exc:
        record_failure(settings, RETRAINING_PIPELINE, exc)
        raise
    zone = open_landing_zone(arguments.get("landing_zone") or settings.landing_zone)
    record = monitoring.read_json(zone, monitoring.run_key(run_tag)) or {}
    period_summary = None
    if record.get("status") == "succeeded":
        period_summary = monitoring.read_json(zone, monitoring.period_key(record["period"]))
    result = build_retraining_summary(record, period_summary, elapsed)
    result["report_path"] = _copy_drift_report(settings, period_summary)
    return _publish(result, settings)


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
                    f"matured_{k}": _round(latest.get(k))
                    for k in ("f1", "precision", "recall", "roc_auc", "base_rate")
                },
                "drift_share": _round(drift.get("share")),
                "drifted_columns": drift.get("drifted_columns"),
                "prediction_drift_score": _round((drift.get("prediction") or {}).get("score")),
                "target_drift_score": _round((drift.get("target") or {}).get("score")),
                "scored_customers": (period.get("scored") or {}).get("rows"),
            },
            "alerts": [f"[{a['kind']}] {a['message']}" for a in period.get("alerts", [])],
        }
    )
    return result


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


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


def _publish(summary: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Writes ``last-run.json`` (and a copy under ``runs/``)."""
    settings.home.mkdir(parents=True, exist_ok=True)
    text = json.dumps(summary, indent=2, default=str)
    runs = settings.home / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{RETRAINING_PIPELINE}-{summary.get('run_tag') or 'run'}.json").write_text(text)
    tmp = settings.last_run_path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(settings.last_run_path)
    return summary


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


def _handle_retrain(args: argparse.Namespace) -> int:
    from churn_kfp.orchestration.localrun import PipelineRunError

    settings = Settings.from_env()
    arguments = retraining_arguments(args)
    while True:
        try:
            result = run_retraining(arguments, settings, quiet=args.quiet, progress=True)
        except PipelineRunError as exc:
            print(f"\nerror: {exc}", file=sys.stderr)
            print(
                f"the period stays pending (nothing was committed); details in "
                f"{settings.last_run_path}",
                file=sys.stderr,
            )
            if exc.log_path:
                print(f"task logs: {exc.log_path}", file=sys.stderr)
            return 1
        print(format_retraining_summary(result))
        if not args.all_pending or result["status"] != "succeeded" or arguments["period"]:
            break
    print(f"summary: {settings.last_run_path}")
    return 0


def _handle_simulate(args: argparse.Namespace) -> int:
    from churn_kfp.orchestration.localrun import PipelineRunError
    from churn_kfp.runs import simulation

    settings = Settings.from_env()
    try:
        result = simulation.run_simulation(
            settings,
            months=args.months,
            drift_from=args.drift_from,
            initial_months=args.initial_months,
            n_customers=args.customers,
            seed=args.seed,
            start=args.start_month,
            options=simulation.SimulationOptions(
                n_iter=args.n_iter,
                n_train_cutoffs=args.train_cutoffs,
                retrain_threshold=args.retrain_threshold,
                drift_threshold=args.drift_threshold,
            ),
            quiet=not args.verbose_runs,
            parallel=not args.sequential,
        )
    except PipelineRunError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        return 1
    print(simulation.format_table(result))
    print(f"\nresults: {settings.home / 'simulation.json'}")
    print(f"timeline: {result['plot_path']}")
    return 0


def _add_loop_options(parser: argparse.ArgumentParser, simulate: bool) -> None:
    policy = parser.add_argument_group("retraining policy")
    policy.add_argument(
        "--retrain-threshold",
        type=float,
        default=simulation_default("retrain_threshold") if simulate else 0.8,
        help="retrain when the latest matured F1 is below this",
    )
    policy.add_argument(
        "--drift-threshold",
        type=float,
        default=simulation_default("drift_threshold") if simulate else 0.3,
        help="retrain when this share of monitored features drifted",
    )
    model = parser.add_argument_group("training of challengers")
    model.add_argument(
        "--train-cutoffs",
        type=int,
        default=simulation_default("n_train_cutoffs") if simulate else 3,
        help="rolling window: training cutoffs before the validation cutoff",
    )
    model.add_argument(
        "--n-iter",
        type=int,
        default=simulation_default("n_iter") if simulate else 4,
        help="search iterations per candidate model",
    )


def simulation_default(name: str) -> Any:
    """The simulation's default for one option (see :class:`SimulationOptions`)."""
    from dataclasses import fields

    from churn_kfp.runs.simulation import SimulationOptions

    return next(f.default for f in fields(SimulationOptions) if f.name == name)


def register(subparsers) -> None:
    """Adds the ``retrain`` and ``simulate`` sub-commands."""
    parser = subparsers.add_parser(
        "retrain",
        help="run the retraining pipeline locally for the next new period",
        description="Run the churn-retraining pipeline through kfp.local: find the next "
        "unprocessed period in the landing zone (skip in seconds if there is none), score "
        "it with the champion, judge earlier predictions whose churn window has passed, "
        "measure drift with Evidently, retrain and run champion/challenger when F1 falls "
        "below the threshold or the data drift, alert, and commit the period. Writes "
        "$CHURN_HOME/last-run.json. Test hook: CHURN_FAIL_AT=<step> makes that step raise.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--period", default="", help="process this month YYYY-MM")
    parser.add_argument("--force", action="store_true", help="retrain whatever the signals say")
    parser.add_argument(
        "--no-retrain", action="store_true", help="frozen policy: monitor but never retrain"
    )
    parser.add_argument(
        "--all-pending", action="store_true", help="keep going until no new period is left"
    )
    parser.add_argument("--landing-zone", help="landing-zone folder or s3:// URI")
    parser.add_argument("--model-name", default=MODEL_NAME, help="registered model")
    parser.add_argument("--webhook-url", default="", help="POST alerts as JSON to this URL")
    parser.add_argument(
        "--no-prediction-drift",
        action="store_true",
        help="do not retrain on prediction drift alone (still reported)",
    )
    parser.add_argument(
        "--drift-columns", default="", help="comma-separated columns for the drift share"
    )
    _add_loop_options(parser, simulate=False)
    data = parser.add_argument_group("features and gate (as for `churn run`)")
    data.add_argument("--horizon-days", type=int, default=30, help="churn window after a cutoff")
    data.add_argument("--eligibility-days", type=int, default=90, help="scoring eligibility")
    data.add_argument("--windows", default="30,60,90", help="feature windows in days")
    data.add_argument("--seed", type=int, default=42, help="random seed of the search")
    data.add_argument("--min-f1", type=float, default=0.5, help="gate: minimum test F1")
    data.add_argument("--min-roc-auc", type=float, default=0.7, help="gate: minimum ROC AUC")
    data.add_argument("--max-gap", type=float, default=0.15, help="gate: max train-test gap")
    data.add_argument("--margin", type=float, default=0.0, help="promotion margin")
    data.add_argument(
        "--candidate-models",
        default="xgboost,logistic_regression,random_forest",
        help="challenger models trained in parallel",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="one line per finished step instead of the step logs",
    )
    parser.set_defaults(handler=_handle_retrain)

    sim = subparsers.add_parser(
        "simulate",
        help="replay months of data: retraining vs a frozen model, side by side",
        description="Generate synthetic data with drift once, train on the first months, "
        "then run the retraining pipeline month by month for two policies on the same data "
        "(retraining enabled vs the frozen first model), each in its own landing zone and "
        "MLflow under $CHURN_HOME/simulation/. Writes $CHURN_HOME/simulation.json and a "
        "timeline plot in $CHURN_HOME/reports/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument("--months", type=int, default=8, help="months of data in total")
    sim.add_argument("--drift-from", type=int, default=5, help="drift from this month (1-based)")
    sim.add_argument(
        "--initial-months", type=int, default=4, help="months the first model is trained on"
    )
    sim.add_argument("--customers", type=int, default=5000, help="synthetic customers")
    sim.add_argument("--seed", type=int, default=42, help="random seed (data and models)")
    sim.add_argument("--start-month", default="2025-01", help="first month YYYY-MM")
    _add_loop_options(sim, simulate=True)
    sim.add_argument(
        "--verbose-runs", action="store_true", help="show the per-step logs of every run"
    )
    sim.add_argument(
        "--sequential",
        action="store_true",
        help="run the policies one after the other (default: one worker process each)",
    )
    sim.set_defaults(handler=_handle_simulate)
