"""``churn retrain`` and ``churn simulate``: the continuous-learning loop on this machine."""

from __future__ import annotations

import argparse
import sys

from churn_kfp.cli.options import add_protocol_options, protocol_from_args
from churn_kfp.core.config import MODEL_NAME, RETRAINING_PIPELINE, Settings
from churn_kfp.core.protocol import (
    POLICY_PARAMETERS,
    RETRAINING_PROTOCOL,
    SIMULATION_PROTOCOL,
    Protocol,
)
from churn_kfp.runs.simulation import DRIFT_FROM, INITIAL_MONTHS, MONTHS


def _handle_retrain(args: argparse.Namespace) -> int:
    from churn_kfp.data.landing import LandingZoneError
    from churn_kfp.data.staging import sigterm_as_interrupt
    from churn_kfp.orchestration.localrun import PipelineRunError
    from churn_kfp.runs.retraining import (
        format_retraining_summary,
        retraining_arguments,
        run_retraining,
    )
    from churn_kfp.runs.summary import record_interruption

    settings = Settings.from_env()
    arguments = retraining_arguments(
        protocol_from_args(args, RETRAINING_PROTOCOL),
        landing_zone=args.landing_zone or "",
        model_name=args.model_name,
        period=args.period or "",
        retraining_enabled=not args.no_retrain,
        force=args.force,
        reprocess=args.reprocess,
        drift_columns=args.drift_columns,
        webhook_url=args.webhook_url,
    )
    while True:
        try:
            with sigterm_as_interrupt():
                result = run_retraining(arguments, settings, quiet=args.quiet, progress=True)
        except LandingZoneError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as exc:
            record_interruption(settings, RETRAINING_PIPELINE, exc)
            raise
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
            start=args.start_month,
            protocol=protocol_from_args(args, SIMULATION_PROTOCOL),
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


def _add_loop_options(parser: argparse.ArgumentParser, command: str, defaults: Protocol) -> None:
    policy = parser.add_argument_group("retraining policy")
    add_protocol_options(policy, command, list(POLICY_PARAMETERS), defaults)
    model = parser.add_argument_group("training of challengers")
    add_protocol_options(
        model,
        command,
        ["n_train_cutoffs", "n_iter", "validation_folds", "recency_half_life"],
        defaults,
    )


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
        "--reprocess",
        action="store_true",
        help="process a period again that a run already committed but the ledger "
        "(state/ledger.json) does not list, e.g. after the ledger was lost; refused otherwise",
    )
    parser.add_argument(
        "--no-retrain", action="store_true", help="frozen policy: monitor but never retrain"
    )
    parser.add_argument(
        "--all-pending", action="store_true", help="keep going until no new period is left"
    )
    parser.add_argument("--landing-zone", help="landing-zone folder or s3:// URI")
    parser.add_argument("--model-name", default=MODEL_NAME, help="registered model")
    parser.add_argument("--webhook-url", default="", help="POST alerts as JSON to this URL")
    add_protocol_options(parser, "retrain", ["prediction_drift_triggers"], RETRAINING_PROTOCOL)
    parser.add_argument(
        "--drift-columns", default="", help="comma-separated columns for the drift share"
    )
    _add_loop_options(parser, "retrain", RETRAINING_PROTOCOL)
    data = parser.add_argument_group("features and gate (as for `churn run`)")
    add_protocol_options(
        data,
        "retrain",
        [
            "horizon_days",
            "eligibility_days",
            "windows",
            "seed",
            "min_f1",
            "min_roc_auc",
            "max_train_test_gap",
            "promotion_margin",
            "candidate_models",
        ],
        RETRAINING_PROTOCOL,
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
        help="replay months of data: retraining vs a frozen model vs no drift, side by side",
        description="Generate synthetic data with drift once, train on the first months, "
        "then run the retraining pipeline month by month for three arms: retraining enabled "
        "and the frozen first model on the drifting data, and retraining on the same world "
        "without drift (its retrains are false alarms), each in its own landing zone and "
        "MLflow under $CHURN_HOME/simulation/. Writes $CHURN_HOME/simulation.json and a "
        "timeline plot in $CHURN_HOME/reports/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    sim.add_argument("--months", type=int, default=MONTHS, help="months of data in total")
    sim.add_argument(
        "--drift-from", type=int, default=DRIFT_FROM, help="drift from this month (1-based)"
    )
    sim.add_argument(
        "--initial-months",
        type=int,
        default=INITIAL_MONTHS,
        help="months the first model is trained on",
    )
    sim.add_argument("--customers", type=int, default=5000, help="synthetic customers")
    add_protocol_options(sim, "simulate", ["seed"], SIMULATION_PROTOCOL)
    sim.add_argument("--start-month", default="2025-01", help="first month YYYY-MM")
    _add_loop_options(sim, "simulate", SIMULATION_PROTOCOL)
    sim.add_argument(
        "--verbose-runs", action="store_true", help="show the per-step logs of every run"
    )
    sim.add_argument(
        "--sequential",
        action="store_true",
        help="run the policies one after the other (default: one worker process each)",
    )
    sim.set_defaults(handler=_handle_simulate)
