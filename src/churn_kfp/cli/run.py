"""``churn run``: the training pipeline end to end on this machine (kfp.local)."""

from __future__ import annotations

import argparse
import sys

from churn_kfp.cli.options import add_protocol_options, protocol_from_args
from churn_kfp.core.config import MODEL_NAME, TRAINING_PIPELINE, Settings
from churn_kfp.core.protocol import PROTOCOL


def _handle(args: argparse.Namespace) -> int:
    from churn_kfp.data.landing import LandingZoneError
    from churn_kfp.data.staging import sigterm_as_interrupt
    from churn_kfp.orchestration.localrun import PipelineRunError
    from churn_kfp.runs.summary import record_interruption
    from churn_kfp.runs.training import format_training_summary, run_training, training_arguments

    settings = Settings.from_env()
    arguments = training_arguments(
        protocol_from_args(args, PROTOCOL),
        landing_zone=args.landing_zone or "",
        model_name=args.model_name,
        generate=not args.no_generate,
        n_customers=args.customers,
        n_months=args.months,
        start_month=args.start_month,
        drift_from_month=args.drift_from_month,
        until=args.until,
    )
    try:
        with sigterm_as_interrupt():
            result = run_training(arguments, settings, quiet=args.quiet, progress=True)
    except LandingZoneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        record_interruption(settings, TRAINING_PIPELINE, exc)
        raise
    except PipelineRunError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)
        print(f"nothing was promoted; details in {settings.last_run_path}", file=sys.stderr)
        if exc.log_path:
            print(f"task logs: {exc.log_path}", file=sys.stderr)
        return 1
    print(format_training_summary(result))
    print(f"summary: {settings.last_run_path}")
    return 0


def _add_options(parser: argparse.ArgumentParser) -> None:
    """The options of ``churn run``: data, labels, features, training and the gate."""
    data = parser.add_argument_group("data")
    data.add_argument("--landing-zone", help="landing-zone folder or s3:// URI")
    data.add_argument(
        "--no-generate",
        action="store_true",
        help="use the data already in the landing zone (e.g. after `churn import`); without "
        "it, synthetic data replaces what the generator wrote before, and a landing zone "
        "holding other data is refused",
    )
    data.add_argument("--customers", type=int, default=5000, help="synthetic customers")
    data.add_argument("--months", type=int, default=6, help="synthetic months of history")
    data.add_argument("--start-month", default="2025-01", help="first synthetic month YYYY-MM")
    add_protocol_options(data, "run", ["seed"], PROTOCOL)
    data.add_argument(
        "--drift-from-month", type=int, default=0, help="synthetic drift from this month (1-based)"
    )
    data.add_argument("--until", default="", help="only use partitions up to YYYY-MM")
    model = parser.add_argument_group("labels, features and training")
    add_protocol_options(
        model,
        "run",
        [
            "horizon_days",
            "n_train_cutoffs",
            "eligibility_days",
            "windows",
            "test_cutoff",
            "cutoff_spacing",
            "n_iter",
            "validation_folds",
            "recency_half_life",
        ],
        PROTOCOL,
    )
    gate = parser.add_argument_group("registration, validation gate and promotion")
    gate.add_argument("--model-name", default=MODEL_NAME, help="registered model (one per dataset)")
    add_protocol_options(
        gate, "run", ["min_f1", "min_roc_auc", "max_train_test_gap", "promotion_margin"], PROTOCOL
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="one line per finished step instead of the step logs",
    )


def register(subparsers) -> None:
    """Adds the ``run`` sub-command."""
    parser = subparsers.add_parser(
        "run",
        help="run the training pipeline locally (no cluster)",
        description="Run the churn-training pipeline through kfp.local.SubprocessRunner: "
        "generate (or read) data, validate, featurize, label, train XGBoost and baselines, "
        "evaluate, register in MLflow and promote the champion. Writes a summary to "
        "$CHURN_HOME/last-run.json and the HTML report to $CHURN_HOME/reports/.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    _add_options(parser)
    parser.set_defaults(handler=_handle)
